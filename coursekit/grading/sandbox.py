"""Running the student's code under grading conditions (:func:`own_work`).

While an answer runs, the coursekit pieces of the stage being graded and of later stages are switched
off (so an answer that only delegates to coursekit fails, whatever copy of them it reaches), numpy
floating-point trouble becomes a clear error, warnings and stderr output become a note on stdout
(stderr would zero the cell), a call that never returns is stopped, and whatever the call changed in
the grading environment is put back.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import io
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

from coursekit.grading.checks import STUB_SAYS, CheckFailed, NotAnswered, _OneLine, unanswered

DEFAULT_TIME_LIMIT = 20.0  # seconds a graded call may take before it counts as "never returns"


class GradingTimeout(_OneLine, RuntimeError):
    """The answer did not return within the time limit."""


_INHERITED = object()  # a class attribute found on a base class, not in the class's own dict
_BLOCKERS: set = set()  # the code of every blocker made (one per switched-off piece and free variables)


@functools.cache
def _blocker(qualname: str, freevars: tuple[str, ...] = ()) -> types.CodeType:
    """Code for a function that refuses to run, naming the piece it replaces.

    A function's code can only be swapped for code with the same free variables (a closure's, a
    decorator's wrapper, a method that calls ``super()`` and so holds ``__class__``): the blocker is
    built nested in a function that defines them, and referring to them, so that it has the same ones.
    """
    message = _refusal(qualname)
    define = "".join(f"    {name} = None\n" for name in freevars)
    refer = f"        ({', '.join(freevars)},)\n" if freevars else ""
    namespace: dict = {}
    exec(  # noqa: S102 - builds a constant-raising function; the message is ours
        f"def make():\n{define}    def blocked(*args, **kwargs):\n{refer}"
        f"        raise RuntimeError({message!r})\n    return blocked\n", {}, namespace
    )
    code = namespace["make"]().__code__
    _BLOCKERS.add(code)
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

        # the top level by name only, so that the packages above the library (the course tools, whose
        # imports cost seconds: nbformat's validators) are never imported just to be skipped
        for info in pkgutil.iter_modules(coursekit.__path__, prefix="coursekit."):
            if info.name.startswith(ABOVE_THE_LIBRARY) or info.name == "coursekit.__main__":
                continue
            module = importlib.import_module(info.name)
            if info.ispkg:
                for sub in pkgutil.walk_packages(module.__path__, prefix=f"{info.name}."):
                    importlib.import_module(sub.name)
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
                raise RuntimeError(_refusal(name))
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
                # torch wraps an optimiser's step in a wrapper whose code all optimisers share: switch off
                # the method itself, never the wrapper (that would switch off torch.optim.Adam.step too)
                func = inspect.unwrap(func)
                if isinstance(func, types.FunctionType) and func.__module__ == target.__module__:
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


def _fingerprint(code: types.CodeType) -> tuple:
    """What a copy of ``code`` keeps however it was made (from the code object, by reloading its
    module, by exec of its source): its name, bytecode, names and constants."""
    consts = tuple(_fingerprint(c) if isinstance(c, types.CodeType) else (type(c).__name__, repr(c)) for c in code.co_consts)
    return code.co_name, code.co_code, code.co_names, consts


class _Refused:
    """The pieces switched off during a graded call, recognised by their code's origin: the code
    object itself, code compiled from the same file and line (a reload, a second copy of the module)
    or, for code compiled from a string, the same bytecode (``exec`` of ``inspect.getsource``).

    While the call runs, a profile function (``sys.setprofile``) notes any call of such code, whatever
    function object carries it, and the graded call then fails when it ends. (It notes rather than
    raises: a profile function that raises is switched off by the interpreter.)
    """

    def __init__(self):
        self.names: dict = {}  # code -> qualname
        self.places: dict = {}  # (file, first line, name) -> qualname
        self.prints: dict = {}  # fingerprint -> qualname
        self.verdicts: dict = {}  # code -> qualname or "" (allowed), cached
        self.refused: str | None = None

    def add(self, code: types.CodeType, qualname: str):
        if code in _BLOCKERS:  # already switched off by an enclosing block
            return
        self.names[code] = qualname
        if code.co_filename.startswith("<"):  # generated code (a dataclass's __init__): only itself
            return
        self.places[(code.co_filename, code.co_firstlineno, code.co_name)] = qualname
        self.prints[_fingerprint(code)] = qualname

    def verdict(self, code: types.CodeType) -> str:
        found = self.verdicts.get(code)
        if found is None:
            found = self.names.get(code) or self.places.get((code.co_filename, code.co_firstlineno, code.co_name))
            if not found and code.co_filename.startswith("<"):
                found = self.prints.get(_fingerprint(code))
            found = self.verdicts[code] = found or ""
        return found

    def hook(self, frame, event, arg):
        if event == "call":
            qualname = self.verdict(frame.f_code)
            if qualname and self.refused is None:
                self.refused = qualname


def _refusal(name: str) -> str:
    return f"{name} is switched off while your answer is graded: write the computation yourself instead of calling it"


def _swap_aliases(compiled: dict, stack: contextlib.ExitStack) -> None:
    """Replace, for the block, the notebook's own references to refused compiled routines (``e =
    scipy.special.expit``; a default argument; a closure) by blockers: a ufunc has no code to swap."""
    if not compiled:
        return
    main = getattr(sys.modules.get("__main__"), "__dict__", {})
    swapped = []
    for key, value in list(main.items()):
        name = compiled.get(id(value))
        if name is not None and value is not None:
            main[key] = types.FunctionType(_blocker(name), {}, key)
            swapped.append((main, key, value))
        elif isinstance(value, types.FunctionType):
            defaults = value.__defaults__ or ()
            if any(id(d) in compiled for d in defaults):
                stack.callback(setattr, value, "__defaults__", value.__defaults__)
                value.__defaults__ = tuple(types.FunctionType(_blocker(compiled[id(d)]), {}, "blocked")
                                           if id(d) in compiled else d for d in defaults)
            for cell in value.__closure__ or ():
                try:
                    content = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if id(content) in compiled:
                    stack.callback(setattr, cell, "cell_contents", content)
                    cell.cell_contents = types.FunctionType(_blocker(compiled[id(content)]), {}, "blocked")

    def put_back():
        for mapping, key, value in swapped:
            mapping[key] = value

    stack.callback(put_back)


@contextlib.contextmanager
def blocked(*targets) -> Iterator[None]:
    """Make the given functions raise while the block runs.

    A Python function's code object is replaced (not a module attribute), which also catches an
    answer that imported the function under another name before the test ran, and a profile function
    refuses any other copy of that code (:class:`_Refused`). A compiled function
    (``torch.nn.functional.conv2d``, a numpy ufunc) has no code object: its module attribute is
    replaced instead, which catches calls through the module (``F.conv2d``, ``scipy.special.expit``),
    and so are the notebook's own references to it. A numpy dispatcher (``np.convolve``) is stopped in
    its Python implementation. A torch routine (a dotted name under ``torch.``,
    ``torch.Tensor.softmax`` included) is also refused by a torch function mode, which catches it under
    any name and as a Tensor method.
    """
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    patched: list[tuple[object, str, object]] = []
    refused: dict = {}  # torch routines, by the routine itself and, for Tensor methods, by name
    compiled: dict = {}  # id -> name, of refused objects without code of their own
    copies = _Refused()
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
                    implementation = getattr(obj, "_implementation", None)
                    if isinstance(implementation, types.FunctionType):  # a numpy dispatcher
                        copies.add(implementation.__code__, name)
                        swapped.append((implementation, implementation.__code__))
                        implementation.__code__ = _blocker(name, implementation.__code__.co_freevars)
                    compiled[id(obj)] = name
                    own = vars(owner).get(attr, _INHERITED) if isinstance(owner, type) else obj
                    patched.append((owner, attr, own))  # an inherited method is put back by deleting ours
                    setattr(owner, attr, types.FunctionType(_blocker(name), {}, attr))
                    continue
                for func, qualname in _functions_of(target):
                    copies.add(func.__code__, qualname)
                    swapped.append((func, func.__code__))
                    func.__code__ = _blocker(qualname, func.__code__.co_freevars)
            _swap_aliases(compiled, stack)
            if refused:
                stack.enter_context(_torch_refusal(refused))
            previous, hook = sys.getprofile(), copies.hook  # one bound method, to compare with below
            sys.setprofile(hook)
            try:
                yield
            finally:
                hooked = sys.getprofile()
                sys.setprofile(previous)
            if copies.refused:
                raise CheckFailed(f"{_refusal(copies.refused)} (your code ran a copy of it)")
            if hooked is not hook:
                raise CheckFailed("your code switched off the grading's profile function (sys.setprofile): "
                                  "this is recorded for your instructor")
        finally:
            for func, code in reversed(swapped):
                func.__code__ = code
            for owner, attr, obj in reversed(patched):
                if obj is _INHERITED:
                    delattr(owner, attr)
                else:
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
def _stderr_kept(what: str) -> Iterator[None]:
    """Keep what the block writes to stderr, and the warnings it raises, out of stderr (where
    nbgrader would score the whole test cell 0): they are shown on stdout as a note instead."""
    kept = io.StringIO()
    saved = sys.stderr
    sys.stderr = kept
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        sys.stderr = saved
        notes = [f"{w.category.__name__}: {w.message}" for w in caught] + kept.getvalue().splitlines()
        notes = [line for line in dict.fromkeys(notes) if line.strip()]
        if notes:
            shown = "\n  ".join(line[:300] for line in notes[:10])
            more = f"\n  ... and {len(notes) - 10} more lines" if len(notes) > 10 else ""
            print(f"Note: {what} wrote warnings or messages to stderr (they do not cost points):\n  {shown}{more}")


def _check_untouched(snapshot, what: str) -> None:
    """After a graded call: put back whatever the call changed in the grading environment, and fail
    the check if it changed anything (the sealed run also records it for the instructor)."""
    from coursekit.grading import seal

    changes = seal.restore_during(what) if seal.active() else snapshot.restore(hooks=False)
    if changes:
        listed = "; ".join(changes[:3]) + (f" (and {len(changes) - 3} more)" if len(changes) > 3 else "")
        raise CheckFailed(f"{what} changed the grading environment: {listed}. It has been put back, the check "
                          f"fails, and this is recorded for your instructor")


@contextlib.contextmanager
def own_work(*counterparts, stage, what: str = "your code", seconds: float | None = None) -> Iterator[None]:
    """Run the student's code for an exercise of ``stage`` (``1`` or ``"01-backprop"``) under grading
    conditions.

    - the coursekit pieces of ``stage`` and of later stages (:func:`pieces_of_stage`) and the further
      ``counterparts`` (functions, classes, modules or dotted names, e.g. the library routine an
      exercise asks to write by hand) are switched off, whatever name or copy of them the answer
      reaches (:func:`blocked`): an answer that calls them fails with a message that says so;
    - numpy overflow, division by zero and invalid operations fail the check with a message about
      numerical stability (underflow is allowed: ``exp(-1000)`` is 0), whatever ``np.seterr`` the
      notebook set;
    - warnings and stderr output are shown on stdout as a note instead of reaching stderr, which
      nbgrader scores as 0;
    - a call that takes longer than ``seconds`` (default :func:`time_limit_seconds`) raises
      :class:`GradingTimeout`;
    - an answer whose stub is still in place raises :class:`~coursekit.grading.checks.NotAnswered`,
      which the notebook shows as one line naming the exercise, not a traceback through the test;
    - whatever the call changed in the libraries, the interpreter's hooks or coursekit
      (:class:`~coursekit.grading.integrity.Integrity`) is put back and the check fails.
    """
    from coursekit.grading import seal
    from coursekit.grading.integrity import Integrity

    limit = time_limit_seconds() if seconds is None else seconds
    snapshot = None if seal.active() else Integrity()
    with contextlib.ExitStack() as stack:
        stack.enter_context(blocked(*pieces_of_stage(stage), *counterparts))
        stack.enter_context(np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"))
        stack.enter_context(_stderr_kept(what))
        stack.enter_context(time_limit(limit, what))
        try:
            yield
        except FloatingPointError as err:
            raise CheckFailed(
                f"{what} is not numerically stable: numpy reported {err} (an exp that overflows, "
                f"a log of 0 or a 0/0)"
            ) from None
        except NotImplementedError as err:
            if (exercise := unanswered(err)) is None:
                raise
            raise NotAnswered(f"{exercise}{STUB_SAYS}: write it in its answer cell, run that cell, "
                              f"then run this one again") from None
    _check_untouched(snapshot, what)
