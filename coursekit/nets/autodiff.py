"""Reverse-mode automatic differentiation with nodes and blocks (lecture: "automatic differentiation").

This module is the engine (values, nodes, blocks, backward); the lecture's operations written with it
are in :mod:`coursekit.nets.ops`. The engine carries no ``STAGE``: stage 02's answers are written with
it, so grading never switches it off.

The lecture turns the hand-written backward pass into code that writes itself. Every operation
computes its value and returns ``node(value, back, inputs)``, where ``back(dOut, *dIns)`` adds its
contribution to the gradients of its inputs::

    def relu(A):
        Z = np.maximum(0, value(A))
        def back(dZ, dA):
            dA += dZ * (Z > 0)
        return node(Z, back, (A,))

``dIns`` mirror the structure of ``inputs`` (``affine(X, (W, b))`` gets ``back(dA, dX, (dW, db))``)
and are gradient *slots*: ``slot += g`` assigns on the first contribution and adds afterwards, so
a value used by several nodes collects all of them. A :func:`block` composes nodes into a larger
unit (``loss``, ``model``) whose backward calls its parts in reverse order.

:func:`backward` clears every gradient in the graph, seeds ``dL = 1`` and calls the nodes' ``back``
in reverse order of creation (a reverse topological order), so a second backward pass gives the
same gradients as the first. Inside ``with no_grad():`` operations record nothing (inference).
Values are numpy arrays; gradients have exactly the shape of their value.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator

import numpy as np

_creation = itertools.count()
_recording = True


class Slot:
    """A gradient being accumulated: ``slot += g`` assigns first, adds afterwards.

    ``wanted`` is False for the slot of a constant, so an operation may skip computing a
    contribution nobody reads (``affine`` skips ``dX`` for the input data, a large product).
    """

    __slots__ = ("value", "shape", "owner", "_owned", "_spare")
    wanted = True

    def __init__(self, shape: tuple | None, owner: str):
        self.value = None
        self.shape = shape
        self.owner = owner
        self._owned = False
        self._spare = None

    def clear(self) -> None:
        """Empty the slot for a new backward pass; an array it made itself is kept for reuse.

        (Freeing and reallocating large gradients on every step makes the allocator hand memory
        back to the system and fault it in again: reusing them made the engine's step about 1.5x faster.)
        """
        if self._owned:
            self._spare = self.value
        self.value, self._owned = None, False

    def __iadd__(self, contribution):
        contribution = np.asarray(contribution, dtype=np.float64)
        if self.shape is not None and contribution.shape != self.shape:
            raise ValueError(
                f"gradient of {self.owner} must have shape {self.shape}; a contribution has shape "
                f"{contribution.shape}"
            )
        if self.value is None:  # the first contribution is kept as it is: no copy
            self.value, self._owned = contribution, False
        elif self._owned:  # an array this slot made itself: add in place
            self.value += contribution
        else:  # the first contribution may be shared (add passes one dS to every input): sum elsewhere
            spare, self._spare = self._spare, None
            if isinstance(spare, np.ndarray) and spare.shape == self.shape and spare.dtype == np.result_type(self.value, contribution):
                self.value = np.add(self.value, contribution, out=spare)
            else:
                self.value = self.value + contribution
            self._owned = True
        return self

    def __repr__(self):
        return f"Slot({self.owner}, {'empty' if self.value is None else self.value.shape})"


class _Sink(Slot):
    """The slot of a constant (targets, data): contributions are discarded."""

    wanted = False

    def __init__(self):
        super().__init__(None, "a constant")

    def __iadd__(self, contribution):
        return self


class Value:
    """Something in the graph: a numpy ``value`` and its gradient ``grad`` (None until backward)."""

    def __init__(self, value, name: str):
        self.value = np.asarray(value, dtype=np.float64)
        self.name = name
        self.slot = Slot(self.value.shape, name)
        self.order = next(_creation)

    @property
    def grad(self) -> np.ndarray | None:
        """The gradient after :func:`backward` (None if nothing reached this value).

        The next backward pass may reuse this array: copy it to keep it.
        """
        return self.slot.value

    @property
    def shape(self) -> tuple:
        return self.value.shape

    def zero_grad(self) -> None:
        self.slot.clear()

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"{self.name} is a graph value, not an array: use value({self.name}) for its numpy array")

    # arithmetic or comparisons on a node itself are a mistake: say so instead of failing obscurely
    __array__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __matmul__ = __rmatmul__ = _refuse

    def __repr__(self):
        return f"{type(self).__name__}({self.name}, shape={self.shape})"


class Param(Value):
    """A trainable parameter: a leaf of the graph whose gradient is read after :func:`backward`."""

    def __init__(self, value, name: str = "param"):
        super().__init__(value, name)


class Node(Value):
    """The result of an operation: its value, its ``back`` rule and the inputs it was computed from."""

    def __init__(self, value, back: Callable | None, inputs: tuple, op: str):
        super().__init__(value, op)
        self.op = op
        self._back = back
        self.inputs = inputs
        # the graph values among the (nested) inputs, found once: every traversal reads them
        self.parents: list[Value] = [v for v in _flatten(inputs) if isinstance(v, Value)]


    def back(self, *inputs) -> None:
        """Add this node's contributions to its inputs' gradients (nothing if it has no gradient).

        The lecture writes ``Z.back(A1)``; the inputs may be passed as a check, or left out.
        """
        if self._back is None:
            raise RuntimeError(f"{self.name} was computed under no_grad(): it has no backward rule")
        if inputs and not _same_structure(inputs, self.inputs):
            raise ValueError(f"{self.name}.back() was given inputs other than the ones it was computed from")
        if self.slot.value is None:
            return
        self._back(self.slot.value, *_slots(self.inputs))


class Block(Node):
    """Nodes composed into one unit. Its value and gradient are those of its output node."""

    def __init__(self, out: Node, inputs: tuple, back: Callable | None, op: str):
        inner = _inner_nodes(out, inputs)
        if back is None:
            def back():
                for n in sorted(inner, key=lambda n: n.order, reverse=True):
                    n.back()
        super().__init__(out.value, None, inputs, op)
        self.slot = out.slot  # the block's gradient is its output's
        self.out = out
        self.inner = inner
        self._block_back = back

    def back(self, *inputs) -> None:
        if inputs and not _same_structure(inputs, self.inputs):
            raise ValueError(f"{self.name}.back() was given inputs other than the ones it was computed from")
        if self.slot.value is not None:
            self._block_back()

    def zero_grad(self) -> None:
        for n in self.inner:
            n.zero_grad()


def value(x) -> np.ndarray:
    """The numpy value of a graph value or of a plain array-like."""
    return x.value if isinstance(x, Value) else np.asarray(x, dtype=np.float64)


def node(value, back: Callable, inputs: tuple = ()) -> Node:
    """Record an operation's result; the op's name is taken from the function ``back`` is defined in."""
    # the function that defines `back`: the last name before ".<locals>.back" (ops may be nested)
    op = back.__qualname__.rsplit(".<locals>.", 1)[0].rsplit(".", 1)[-1] if back is not None else "constant"
    if not isinstance(inputs, tuple):
        raise TypeError(f"inputs must be a tuple of the operation's inputs; got {type(inputs).__name__}")
    if not _recording:
        return Node(value, None, (), op)
    return Node(value, back, inputs, op)


def block(out: Node, inputs: tuple, back: Callable | None = None, op: str | None = None) -> Node:
    """Compose the nodes between ``inputs`` and ``out`` into one node.

    ``back()`` (no arguments) runs the inner nodes' backward rules; by default in reverse order of
    creation. ``op`` defaults to the name of the calling function (``loss``, ``model``...).
    """
    if not isinstance(out, Node):
        raise TypeError(f"out must be the Node the block computes; got {type(out).__name__}")
    if op is None:
        import sys

        op = sys._getframe(1).f_code.co_name
    if not _recording:
        return Node(out.value, None, (), op)
    return Block(out, inputs, back, op)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run operations without recording the graph (inference): nodes keep values only."""
    global _recording
    saved, _recording = _recording, False
    try:
        yield
    finally:
        _recording = saved


def graph(out: Value) -> list[Value]:
    """Every value ``out`` depends on (blocks are opaque), in order of creation."""
    seen: dict[int, Value] = {}
    stack = [out]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen[id(v)] = v
        if isinstance(v, Node):
            stack.extend(v.parents)
    return sorted(seen.values(), key=lambda v: v.order)


def backward(out: Value) -> None:
    """Gradients of the scalar ``out`` with respect to everything it depends on."""
    _start(out)
    for v in reversed(graph(out)):
        if isinstance(v, Node):
            v.back()


def _start(out: Value) -> list[Value]:
    """Check ``out``, clear every gradient it depends on (blocks opened up: also a Param a block uses
    without listing it) and seed ``dL = 1``; return those values in creation order."""
    if out.value.shape != ():
        raise ValueError(f"backward needs a scalar output; {out.name} has shape {out.value.shape}")
    if isinstance(out, Node) and out._back is None and not isinstance(out, Block):
        raise RuntimeError(f"{out.name} was computed under no_grad(): there is no graph to go back through")
    values = expand(out)[0]
    for v in values:
        v.zero_grad()
    out.slot += 1.0
    return values


def expand(out: Value) -> tuple[list[Value], list[Block]]:
    """Every value ``out`` depends on with blocks opened up (their inner nodes instead of the block),
    in order of creation, and the blocks met on the way."""
    seen: dict[int, Value] = {}
    blocks: dict[int, Block] = {}
    stack = [out]
    while stack:
        v = stack.pop()
        if isinstance(v, Block):
            if id(v) not in blocks:
                blocks[id(v)] = v
                stack.append(v.out)
            continue
        if id(v) in seen:
            continue
        seen[id(v)] = v
        if isinstance(v, Node):
            stack.extend(v.parents)
    by_order = lambda v: v.order  # noqa: E731
    return sorted(seen.values(), key=by_order), sorted(blocks.values(), key=by_order)


def backward_steps(out: Value) -> Iterator[Node]:
    """:func:`backward` one node at a time, blocks opened up: yields each node after its ``back`` ran.

    Running every step gives the same gradients as :func:`backward`.
    """
    values = _start(out)  # eagerly: cleared and seeded before the first step is asked for
    return _steps(values)


def _steps(values: list[Value]) -> Iterator[Node]:
    for v in reversed(values):
        if isinstance(v, Node):
            v.back()
            yield v


# -- helpers --------------------------------------------------------------------------------------


def _flatten(structure) -> Iterator:
    if isinstance(structure, (tuple, list)):
        for item in structure:
            yield from _flatten(item)
    else:
        yield structure


def _slots(structure):
    # lists, not tuples: `dW[0] += g` reads the slot, adds, and stores the same slot back
    if isinstance(structure, (tuple, list)):
        return [_slots(item) for item in structure]
    return structure.slot if isinstance(structure, Value) else _Sink()


def _same_structure(given, recorded) -> bool:
    if isinstance(recorded, tuple):
        return (isinstance(given, (tuple, list)) and len(given) == len(recorded)
                and all(map(_same_structure, given, recorded)))
    return given is recorded


def _inner_nodes(out: Node, inputs) -> list[Node]:
    """The nodes of a block: reachable from ``out`` without passing through the block's inputs."""
    stop = {id(v) for v in _flatten(inputs) if isinstance(v, Value)}
    inner: dict[int, Node] = {}
    stack = [out]
    while stack:
        v = stack.pop()
        if id(v) in stop or id(v) in inner or not isinstance(v, Node):
            continue
        inner[id(v)] = v
        stack.extend(v.parents)
    return sorted(inner.values(), key=lambda n: n.order)
