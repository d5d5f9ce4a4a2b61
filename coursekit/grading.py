"""Helpers for the autograder test cells (DESIGN §3-4).

Every check raises :class:`CheckFailed` (an ``AssertionError``) with a message that says which
property failed and by how much, never the expected values. Nothing here writes to stderr.

The student's code runs inside :func:`own_work`: it blocks the coursekit counterparts of the
exercise (so an answer that only delegates to coursekit fails), turns numpy floating-point
trouble and warnings into clear errors instead of stderr output (which would zero the cell), and
stops a call that never returns.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import signal
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator

import numpy as np

DEFAULT_TIME_LIMIT = 20.0  # seconds a graded call may take before it counts as "never returns"


class _OneLine:
    """IPython shows these exceptions as one line: the message is the whole story for a student,
    and the frames of the grading helpers would only hide it."""

    def _render_traceback_(self):
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class CheckFailed(_OneLine, AssertionError):
    """A property of the student's answer does not hold."""


class GradingTimeout(_OneLine, RuntimeError):
    """The answer did not return within the time limit."""


# -- basic checks -------------------------------------------------------------------------------


def check(condition, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not bool(condition):
        raise CheckFailed(message)


def as_array(value, name: str) -> np.ndarray:
    """``value`` as a numpy array (torch tensors are detached and moved to the CPU)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if value is None:
        raise CheckFailed(f"{name} is None: did the function forget to return its result?")
    try:
        return np.asarray(value)
    except Exception as err:  # noqa: BLE001 - any conversion failure is the student's to see
        raise CheckFailed(f"{name} cannot be read as an array ({type(value).__name__}: {err})") from None


def check_shape(value, shape: tuple, name: str) -> np.ndarray:
    """Check that ``value`` is an array of the given shape; return it as a numpy array."""
    array = as_array(value, name)
    check(
        array.shape == tuple(shape),
        f"{name} has shape {array.shape}; it should have shape {tuple(shape)}",
    )
    return array


def check_finite(value, name: str) -> np.ndarray:
    array = as_array(value, name)
    check(np.issubdtype(array.dtype, np.number), f"{name} should hold numbers, not {array.dtype}")
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    check(bad == 0, f"{name} has {bad} entries that are inf or nan (is the computation stable?)")
    return array


def rel_error(a, b) -> float:
    """Largest elementwise relative error ``|a-b| / max(1e-8, |a|+|b|)`` (DESIGN §4)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def check_close(actual, expected, name: str, *, tol: float = 1e-7, atol: float = 0.0) -> None:
    """Check ``actual`` against ``expected`` entry by entry, without revealing ``expected``.

    An entry is wrong when its relative error (:func:`rel_error`) exceeds ``tol`` and its absolute
    error exceeds ``atol`` (use ``atol`` where the expected value is 0 up to rounding, such as a sum
    that cancels). The message reports how many entries are off and the largest relative error, so a
    student learns how wrong the answer is, not what it should be.
    """
    expected = np.asarray(expected)
    actual = check_shape(actual, expected.shape, name)
    check_finite(actual, name)
    a = actual.astype(np.float64)
    b = expected.astype(np.float64)
    diff = np.abs(a - b)
    errors = diff / np.maximum(1e-8, np.abs(a) + np.abs(b))
    wrong = int(np.count_nonzero((errors > tol) & (diff > atol)))
    if wrong:
        # no values at all, not even the student's own: on a hidden test's input they would show a
        # transposed or negated answer's expected values in the feedback
        raise CheckFailed(
            f"{name}: {wrong} of {errors.size} entries are not the expected values "
            f"(largest relative error {errors.max():.1e}, tolerance {tol:.0e})"
        )


def scaled_error(a, b) -> float:
    """``max|a-b| / max(1e-8, max|a| + max|b|)``: the relative error of a whole array.

    Used for gradient checks, where entries near 0 make the entry-by-entry error meaningless: a
    numeric gradient carries an absolute error of about 1e-10 in every entry.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, np.max(np.abs(a)) + np.max(np.abs(b))))


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


# -- running the student's code -------------------------------------------------------------------


def _blocker(qualname: str) -> types.CodeType:
    """Code for a function that refuses to run, naming the coursekit piece it replaces."""
    message = (
        f"{qualname} is switched off while your answer is graded: write the computation yourself "
        f"instead of calling coursekit"
    )
    namespace: dict = {}
    exec(  # noqa: S102 - builds a constant-raising function; the message is ours
        f"def blocked(*args, **kwargs):\n    raise RuntimeError({message!r})\n", {}, namespace
    )
    return namespace["blocked"].__code__


# The computing pieces of coursekit: switched off whenever a student's answer runs, whatever the
# exercise, so that no answer can get its result from a reference implementation. (The autodiff
# engine itself -- node, block, Param, backward -- stays on: stage 02 answers are written with it.)
REFERENCE_PIECES = (
    "coursekit.nn",
    "coursekit.conv",
    "coursekit.models",
    "coursekit.training",
    *(f"coursekit.autodiff.{op}" for op in ("relu", "affine", "entropy", "decay", "add", "loss", "model")),
)


def _resolve(target):
    """``target`` itself, or the object a dotted name stands for, with the module and attribute
    it was found under (``None`` for an object given directly)."""
    if not isinstance(target, str):
        return target, None, None
    try:
        return importlib.import_module(target), None, None
    except ImportError:
        module_name, _, attr = target.rpartition(".")
        owner = importlib.import_module(module_name)
        return getattr(owner, attr), owner, attr


def _functions_of(target) -> Iterator[tuple[types.FunctionType, str]]:
    """The Python functions that ``target`` (a function, class, module or dotted name) stands for."""
    target = _resolve(target)[0]
    if isinstance(target, types.FunctionType):
        yield target, f"{target.__module__}.{target.__qualname__}"
    elif inspect.isclass(target):
        for value in vars(target).values():
            func = getattr(value, "__func__", value)  # staticmethod/classmethod
            if isinstance(func, property):
                func = func.fget
            if isinstance(func, types.FunctionType):
                yield func, f"{target.__module__}.{func.__qualname__}"
    elif inspect.ismodule(target):
        for value in vars(target).values():
            if getattr(value, "__module__", None) == target.__name__ and (
                isinstance(value, types.FunctionType) or inspect.isclass(value)
            ):
                yield from _functions_of(value)
    else:
        raise TypeError(
            f"own_work targets must be functions, classes, modules or dotted names; got {target!r}"
        )


@contextlib.contextmanager
def blocked(*targets) -> Iterator[None]:
    """Make the given functions raise while the block runs.

    A Python function's code object is replaced (not a module attribute), which also catches an
    answer that imported the function under another name before the test ran. A compiled function
    (``torch.nn.functional.conv2d``, a numpy ufunc) has no code object: its module attribute is
    replaced instead, which catches calls through the module (``F.conv2d``, ``scipy.special.expit``).
    """
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    patched: list[tuple[object, str, object]] = []
    try:
        for target in targets:
            obj, owner, attr = _resolve(target)
            if owner is not None and not isinstance(obj, (types.FunctionType, type, types.ModuleType)):
                name = f"{owner.__name__}.{attr}"
                patched.append((owner, attr, obj))
                setattr(owner, attr, types.FunctionType(_blocker(name), {}, attr))
                continue
            for func, qualname in _functions_of(target):
                if func.__code__.co_freevars:  # a closure's code cannot be swapped; none in coursekit
                    continue
                swapped.append((func, func.__code__))
                func.__code__ = _blocker(qualname)
        yield
    finally:
        for func, code in reversed(swapped):
            func.__code__ = code
        for owner, attr, obj in reversed(patched):
            setattr(owner, attr, obj)


def time_limit_seconds() -> float:
    """The time a graded call may take: ``COURSEKIT_TIME_LIMIT`` seconds, default 20."""
    raw = os.environ.get("COURSEKIT_TIME_LIMIT", "")
    if not raw.strip():
        return DEFAULT_TIME_LIMIT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"COURSEKIT_TIME_LIMIT must be a number of seconds; got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"COURSEKIT_TIME_LIMIT must be positive; got {raw!r}")
    return value


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "your code") -> Iterator[None]:
    """Raise :class:`GradingTimeout` if the block runs longer than ``seconds``.

    Uses SIGALRM, so it works in the main thread on POSIX (where kernels run cells); elsewhere it
    does nothing and nbgrader's per-cell timeout is the safety net.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive; got {seconds!r}")
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise GradingTimeout(
            f"{what} did not return within {seconds:g} s: look for a loop that never ends"
        )

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.getitimer(signal.ITIMER_REAL)  # an enclosing limit (or pytest-timeout's) keeps running
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


@contextlib.contextmanager
def own_work(*counterparts, what: str = "your code", seconds: float | None = None) -> Iterator[None]:
    """Run the student's code under grading conditions.

    - the coursekit reference pieces (:data:`REFERENCE_PIECES`) and the further ``counterparts``
      (functions, classes, modules or dotted names, e.g. the library routine an exercise asks to
      write by hand) are blocked: an answer that calls them fails with a message that says so;
    - numpy overflow, division by zero and invalid operations fail the check with a message about
      numerical stability, and any warning raises, instead of printing to stderr (which nbgrader
      scores as 0);
    - a call that takes longer than ``seconds`` (default :func:`time_limit_seconds`) raises
      :class:`GradingTimeout`.
    """
    limit = time_limit_seconds() if seconds is None else seconds
    with contextlib.ExitStack() as stack:
        stack.enter_context(blocked(*REFERENCE_PIECES, *counterparts))
        stack.enter_context(np.errstate(over="raise", divide="raise", invalid="raise"))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("error")
        stack.enter_context(time_limit(limit, what))
        try:
            yield
        except FloatingPointError as err:
            raise CheckFailed(
                f"{what} is not numerically stable: numpy reported {err} (an exp that overflows, "
                f"a log of 0 or a 0/0)"
            ) from None


# -- gradients of single graph nodes (stages with coursekit.autodiff) ----------------------------


def node_gradients(op, inputs, d_out, *, constants=(), prefill: float | None = None) -> list:
    """Run ``op(*inputs)`` on :class:`coursekit.autodiff.Param` copies of ``inputs``, seed its
    gradient with ``d_out``, call its ``back`` and return the inputs' gradients (None where none came).

    Positions listed in ``constants`` are passed as plain arrays. Nested tuples are kept (``affine``
    takes ``(X, (W, b))``). With ``prefill``, every input's gradient starts at that constant, as if an
    earlier node had already contributed: a ``back`` that assigns instead of adding loses it.
    """
    from coursekit import autodiff

    params = []

    def wrap(x, position):
        if isinstance(x, tuple):
            return tuple(wrap(item, position) for item in x)
        if position in constants:
            return np.asarray(x, dtype=np.float64)
        p = autodiff.Param(np.array(x, dtype=np.float64), f"input {len(params)}")
        if prefill is not None:
            p.slot += np.full(p.shape, prefill)
        params.append(p)
        return p

    wrapped = [wrap(x, i) for i, x in enumerate(inputs)]
    out = op(*wrapped)
    check(isinstance(out, autodiff.Node), f"the operation should return a node; it returned {type(out).__name__}")
    out.slot.clear()
    out.slot += np.asarray(d_out, dtype=np.float64)
    out.back()
    return [p.grad for p in params]


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


# -- vectorisation -------------------------------------------------------------------------------


def python_lines(fn, *args, **kwargs) -> tuple[object, int]:
    """Call ``fn`` and count the Python lines it executed in the student's own code.

    Lines run inside installed packages (numpy, scipy, coursekit...) and the standard library are not
    counted, so the count measures the student's Python loops, not the work numpy does. A loop over
    pixels runs thousands of lines on a small image, a vectorised answer a few dozen: unlike a
    timing, the count is the same on every machine. Returns ``(result, lines)``.
    """
    import sys
    import sysconfig

    import site

    import numpy

    folders = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    folders |= set(site.getsitepackages()) | {site.getusersitepackages()}
    folders |= {os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__))),  # wherever numpy lives
                os.path.dirname(os.path.abspath(__file__))}
    skip = tuple(sorted(folders))
    counted = {}
    lines = 0

    def tracer(frame, event, arg):
        nonlocal lines
        code = frame.f_code
        own = counted.get(code)
        if own is None:
            own = counted[code] = not code.co_filename.startswith(skip)
        if not own:
            return None  # do not trace inside library calls
        if event == "line":
            lines += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return result, lines
