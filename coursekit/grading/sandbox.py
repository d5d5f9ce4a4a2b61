"""Running the student's code under grading conditions (:func:`own_work`).

While an answer runs, the coursekit pieces of the stage being graded and of later stages are switched
off (so an answer that only delegates to coursekit fails), numpy floating-point trouble and warnings
become clear errors instead of stderr output (which would zero the cell), and a call that never
returns is stopped.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import pkgutil
import re
import signal
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterator

import numpy as np

from coursekit.grading.checks import CheckFailed, _OneLine

DEFAULT_TIME_LIMIT = 20.0  # seconds a graded call may take before it counts as "never returns"


class GradingTimeout(_OneLine, RuntimeError):
    """The answer did not return within the time limit."""


def _blocker(qualname: str, freevars: tuple[str, ...] = ()) -> types.CodeType:
    """Code for a function that refuses to run, naming the piece it replaces.

    A function's code can only be swapped for code with the same free variables (a closure's, a
    decorator's wrapper, a method that calls ``super()`` and so holds ``__class__``): the blocker is
    built nested in a function that defines them, and referring to them, so that it has the same ones.
    """
    message = (
        f"{qualname} is switched off while your answer is graded: write the computation yourself "
        f"instead of calling it"
    )
    define = "".join(f"    {name} = None\n" for name in freevars)
    refer = f"        ({', '.join(freevars)},)\n" if freevars else ""
    namespace: dict = {}
    exec(  # noqa: S102 - builds a constant-raising function; the message is ours
        f"def make():\n{define}    def blocked(*args, **kwargs):\n{refer}"
        f"        raise RuntimeError({message!r})\n    return blocked\n", {}, namespace
    )
    code = namespace["make"]().__code__
    if code.co_freevars != tuple(freevars):  # CPython orders free variables by name; never skip one
        raise RuntimeError(f"cannot switch off {qualname}: its free variables {freevars} could not be matched")
    return code


# The library is coursekit without the machinery above it. Each of its modules that sets ``STAGE = N``
# holds pieces that stage N's exercises ask students to write; a module without STAGE holds tools (the
# autodiff engine, the data registry), never switched off.
ABOVE_THE_LIBRARY = ("coursekit.grading", "coursekit.explore", "coursekit.course")
_imported_library = False


def stage_number(stage) -> int:
    """The number of a stage given as ``4`` or ``"04-mnist"``."""
    if isinstance(stage, str) and re.fullmatch(r"\d\d-[a-z0-9-]+", stage):
        return int(stage[:2])
    if isinstance(stage, (int, np.integer)) and not isinstance(stage, bool) and 1 <= stage <= 99:
        return int(stage)
    raise ValueError(f"stage must be a stage number from 1 to 99 or an id like '04-mnist'; got {stage!r}")


def library_modules() -> list[types.ModuleType]:
    """Every loaded coursekit module that declares the stage teaching it (``STAGE``), after importing
    the whole library once, so that a piece is switched off even before anything imported it."""
    global _imported_library
    if not _imported_library:
        import coursekit

        for info in pkgutil.walk_packages(coursekit.__path__, prefix="coursekit."):
            if not info.name.startswith(ABOVE_THE_LIBRARY) and info.name != "coursekit.__main__":
                importlib.import_module(info.name)
        _imported_library = True
    return sorted(
        (m for name, m in list(sys.modules.items())
         if name.startswith("coursekit.") and isinstance(getattr(m, "STAGE", None), int)),
        key=lambda m: m.__name__,
    )


def pieces_of_stage(stage) -> list[types.ModuleType]:
    """The modules switched off while ``stage``'s answers run: those of that stage and of later ones.
    Earlier stages' pieces stay on: they are tools a student may use, having written them."""
    number = stage_number(stage)
    return [m for m in library_modules() if m.STAGE >= number]


def _resolve(target):
    """``target`` itself, or the object a dotted name stands for (``"torch.Tensor.softmax"``: a module,
    then attributes), with the object and attribute it was found under (``None`` for a module or an
    object given directly)."""
    if not isinstance(target, str):
        return target, None, None
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        owner = attr = None
        for attr in parts[end:]:
            owner, obj = obj, getattr(obj, attr)
        return obj, owner, attr
    raise ImportError(f"no module found for {target!r}")


def _torch_refusal(refused: dict):
    """A torch function mode that refuses the given torch routines however they are reached: through
    another name, a saved reference, or a Tensor method (``A.softmax(1)`` for ``torch.softmax``).
    ``refused`` maps each routine, and each refused Tensor method's name, to the name shown."""
    from torch.overrides import TorchFunctionMode

    class Refuse(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = refused.get(func) or refused.get(getattr(func, "__name__", None))
            if name is not None:
                raise RuntimeError(f"{name} is switched off while your answer is graded: write the "
                                   f"computation yourself instead of calling it")
            return func(*args, **(kwargs or {}))

    return Refuse()


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
    A torch routine (a dotted name under ``torch.``, ``torch.Tensor.softmax`` included) is also refused
    by a torch function mode, which catches it under any name and as a Tensor method.
    """
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    patched: list[tuple[object, str, object]] = []
    refused: dict = {}  # torch routines, by the routine itself and, for Tensor methods, by name
    with contextlib.ExitStack() as stack:
        try:
            for target in targets:
                obj, owner, attr = _resolve(target)
                if owner is not None and not isinstance(obj, (types.FunctionType, type, types.ModuleType)):
                    name = f"{getattr(owner, '__name__', owner)}.{attr}"
                    if isinstance(target, str) and target.startswith("torch."):
                        refused[obj] = name
                        if getattr(owner, "__name__", None) == "Tensor":
                            refused[attr] = name  # the method as torch's dispatch names it
                    patched.append((owner, attr, obj))
                    setattr(owner, attr, types.FunctionType(_blocker(name), {}, attr))
                    continue
                for func, qualname in _functions_of(target):
                    swapped.append((func, func.__code__))
                    func.__code__ = _blocker(qualname, func.__code__.co_freevars)
            if refused:
                stack.enter_context(_torch_refusal(refused))
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
def own_work(*counterparts, stage, what: str = "your code", seconds: float | None = None) -> Iterator[None]:
    """Run the student's code for an exercise of ``stage`` (``1`` or ``"01-backprop"``) under grading
    conditions.

    - the coursekit pieces of ``stage`` and of later stages (:func:`pieces_of_stage`) and the further
      ``counterparts`` (functions, classes, modules or dotted names, e.g. the library routine an
      exercise asks to write by hand) are switched off: an answer that calls them fails with a
      message that says so;
    - numpy overflow, division by zero and invalid operations fail the check with a message about
      numerical stability, and any warning raises, instead of printing to stderr (which nbgrader
      scores as 0);
    - a call that takes longer than ``seconds`` (default :func:`time_limit_seconds`) raises
      :class:`GradingTimeout`.
    """
    limit = time_limit_seconds() if seconds is None else seconds
    with contextlib.ExitStack() as stack:
        stack.enter_context(blocked(*pieces_of_stage(stage), *counterparts))
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
