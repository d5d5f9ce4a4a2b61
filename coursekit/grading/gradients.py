"""Gradient checks: centred differences, and single autodiff nodes against torch autograd."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

import numpy as np

from coursekit.grading.checks import CheckFailed, check, check_close, check_finite, check_shape, scaled_error


def numeric_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Centred-difference gradient of the scalar function ``f`` at ``x``, in float64.

    ``x`` is perturbed in place one entry at a time and restored, so ``f`` may close over it.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError(
            f"x must be a float64 numpy array for a numeric gradient; got "
            f"{type(x).__name__} of dtype {getattr(x, 'dtype', None)}"
        )
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):  # index x itself: reshape(-1) would copy a non-contiguous x
        saved = x[index]
        x[index] = saved + eps
        plus = float(f(x))
        x[index] = saved - eps
        minus = float(f(x))
        x[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def check_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, analytic, name: str, *, tol: float = 1e-6
) -> None:
    """Compare an analytic gradient with centred differences of ``f`` at ``x``.

    The error is :func:`scaled_error`. In float64 with ``eps = 1e-6`` a correct gradient agrees to
    about 1e-9; ``tol = 1e-6`` leaves room for relu's kinks, while a missing factor, term or transpose
    gives errors above 1e-2.
    """
    analytic = check_shape(analytic, x.shape, name)
    check_finite(analytic, name)
    numeric = numeric_gradient(f, x)
    err = scaled_error(analytic, numeric)
    check(
        err <= tol,
        f"{name} does not match the numeric gradient (relative error {err:.1e}, tolerance {tol:.0e})",
    )


def node_gradients(op, inputs, d_out, *, constants=(), prefill: float | None = None,
                   names: tuple[str, ...] | None = None) -> list:
    """Run ``op(*inputs)`` on :class:`coursekit.nets.autodiff.Param` copies of ``inputs``, seed its
    gradient with ``d_out``, call its ``back`` and return the inputs' gradients (None where none came).

    Positions listed in ``constants`` are passed as plain arrays. Nested tuples are kept (``affine``
    takes ``(X, (W, b))``). With ``prefill``, every input's gradient starts at that constant, as if an
    earlier node had already contributed: a ``back`` that assigns instead of adding loses it.
    ``back`` must leave the gradient arriving from above as it was (a node may share that array with
    another). ``names`` names the inputs that get a gradient, in order (default: from ``op``'s parameters,
    ``U[0]`` for the first item of a tuple ``U``): a ``back`` that fails on a shape fails the check
    with one line naming the input whose gradient has the wrong shape, and the shapes involved.
    """
    from coursekit.nets import autodiff

    params, labels = [], []
    try:
        parameters = [p.name for p in inspect.signature(op).parameters.values()]
    except (TypeError, ValueError):
        parameters = []

    def wrap(x, position, label):
        if isinstance(x, tuple):
            return tuple(wrap(item, position, f"{label}[{k}]") for k, item in enumerate(x))
        if position in constants:
            return np.asarray(x, dtype=np.float64)
        p = autodiff.Param(np.array(x, dtype=np.float64), f"input {len(params)}")
        labels.append(label)
        if prefill is not None:
            p.slot += np.full(p.shape, prefill)
        params.append(p)
        return p

    wrapped = [wrap(x, i, parameters[i] if i < len(parameters) else f"input {i}") for i, x in enumerate(inputs)]
    if names is not None:
        check(len(names) == len(params), f"internal: {len(names)} names for {len(params)} inputs with a gradient")
        labels = list(names)
    out = op(*wrapped)
    check(isinstance(out, autodiff.Node), f"the operation should return a node; it returned {type(out).__name__}")
    out.slot.clear()
    out.slot += np.asarray(d_out, dtype=np.float64)
    arriving = np.array(out.grad, dtype=np.float64)
    try:
        out.back()
    except ValueError as err:  # numpy's shape errors: name the gradient, not the engine's frames
        raise CheckFailed(_shape_error(err, params, labels, np.shape(d_out))) from None
    check(np.array_equal(np.asarray(out.grad, dtype=np.float64), arriving),
          "back changed the gradient arriving from above (dOut) in place: another node may share that "
          "array, so compute a new one (dA += dZ * mask) instead of masking dZ itself")
    return [p.grad for p in params]


_SHAPES = re.compile(r"\((\d+(?:,\s*\d+)*,?)?\)")


def _shape_error(err: ValueError, params, labels, d_out_shape) -> str:
    """One line for a ``back`` that raised a numpy shape error: the input whose gradient it was adding
    to, when the error shows that gradient's shape and no other input has it, and every shape."""
    shapes = {tuple(int(n) for n in m.group(1).replace(" ", "").split(",") if n) if m.group(1) else ()
              for m in _SHAPES.finditer(str(err))}
    owners = [f"{label} {tuple(p.shape)}" for label, p in zip(labels, params) if tuple(p.shape) in shapes]
    given = ", ".join(f"{label} {tuple(p.shape)}" for label, p in zip(labels, params))
    lead = (f"the gradient of {owners[0]} gets a contribution of another shape" if len(owners) == 1
            else "a gradient of the wrong shape")
    return (f"back failed on {lead}: each gradient must have the shape of its input (inputs {given}; "
            f"gradient from above {tuple(d_out_shape)}); numpy said: {err}")


def torch_gradients(fn, inputs, d_out, *, constants=()) -> list:
    """The oracle for :func:`node_gradients`: torch autograd in float64 of ``fn`` on the same inputs.

    ``fn`` receives torch tensors with the same nesting; returns the flat list of gradients (None for
    inputs that do not influence the output).
    """
    import torch

    leaves = []

    def wrap(x, position):
        if isinstance(x, tuple):
            return tuple(wrap(item, position) for item in x)
        t = torch.tensor(np.asarray(x, dtype=np.float64))
        if position not in constants:
            t.requires_grad_(True)
            leaves.append(t)
        return t

    wrapped = [wrap(x, i) for i, x in enumerate(inputs)]
    out = fn(*wrapped)
    grads = torch.autograd.grad(out, leaves, torch.tensor(np.asarray(d_out, dtype=np.float64)), allow_unused=True)
    return [None if g is None else g.numpy() for g in grads]


def check_gradients(actual: list, expected: list, names: list[str], *, tol: float = 1e-10) -> None:
    """Compare lists of gradients by name; a missing gradient (None) fails with a clear message."""
    check(len(actual) == len(expected) == len(names), "internal: gradients and names do not match")
    for got, want, name in zip(actual, expected, names):
        check(got is not None, f"{name} received no gradient: did back add (+=) a contribution to it?")
        check_close(got, want, name, tol=tol)


def block_order(out, inputs, name: str) -> list[str]:
    """Check that ``out`` is a :func:`coursekit.nets.autodiff.block` over exactly ``inputs`` (the same
    objects, in the same nesting) with a ``back`` of its own; run that ``back`` once, from a gradient of
    ones, and return the operations whose ``back`` it called, in the order it called them."""
    from coursekit.nets import autodiff

    check(isinstance(out, autodiff.Block),
          f"{name} should return block(out, inputs, back), not a {type(out).__name__}: the exercise is the block")

    def leaves(x):
        return [y for item in x for y in leaves(item)] if isinstance(x, tuple) else [x]

    given, kept = leaves(inputs), leaves(out.inputs)
    check(len(given) == len(kept) and all(a is b for a, b in zip(given, kept)),
          f"{name}'s block does not name the inputs it received (it names {len(kept)} values, {name} got "
          f"{len(given)}): block(out, inputs, back) with {name}'s own inputs")
    check(not out._block_back.__qualname__.startswith(f"{autodiff.Block.__name__}."),
          f"{name} passes no back to block, so the engine's default order runs: write the back that calls "
          f"the nodes' back rules in reverse order")
    ran = []
    for inner in out.inner:
        def recorded(*args, _inner=inner, _back=inner.back):
            ran.append(_inner.op)
            return _back(*args)
        inner.back = recorded  # an instance attribute: the method stays as it is
    try:
        out.zero_grad()
        out.slot.clear()
        out.slot += np.ones(np.shape(out.value))
        out.back()
    finally:
        for inner in out.inner:
            del inner.back
    return ran
