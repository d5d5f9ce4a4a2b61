"""What an answer must not change: the libraries the checks rely on, the interpreter's hooks, and (in a
kernel) IPython's execution machinery.

:class:`Integrity` takes a snapshot of that state and later puts back whatever differs, returning one
line per change (``"numpy.count_nonzero was replaced"``). :func:`coursekit.grading.own_work` uses it
around every graded call, so a check never runs on a library an answer has replaced; the sealed run of
the autograder (:mod:`coursekit.grading.seal`) uses it before every cell.

No in-process check can be made perfectly tamper-proof in Python: what this cannot undo (frame
access, ctypes, the garbage collector's referrers) is flagged by the integrity audit
(:mod:`coursekit.course.audit`), which reads the answers' source.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import types

_MISSING = object()

# Modules whose namespaces the checks and oracles use. Loaded when a snapshot is taken, so that one
# first imported (and patched) by an answer is still covered.
PROTECTED_MODULES = (
    "builtins", "math", "signal", "warnings", "linecache", "importlib", "inspect", "types", "time", "os",
    "numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.lib.stride_tricks",
    "scipy", "scipy.special", "scipy.signal", "scipy.ndimage", "scipy.linalg", "scipy.sparse",
    "torch", "torch.nn", "torch.nn.functional", "torch.linalg", "torch.special", "torch.autograd", "torch.fft",
)
# torch rebinds one of its own names lazily: the first optimizer made (torch.optim), torch.compile... import
# torch._dynamo, which replaces torch.manual_seed by torch._disable_dynamo(torch.manual_seed). A snapshot taken
# before saw that as an answer's change (every student of stage 04 flagged, its training cells making the first
# optimizer). Importing torch._dynamo before each snapshot settled it, at 1.6 to 2.4 s per graded kernel; instead,
# :func:`_wrapped_by_torch` recognises exactly that wrapper (torch's code, torch's globals, the snapshot's function
# inside) as no change.
# Classes (by module and name) whose attributes a check can reach through an object, as a method.
PROTECTED_CLASSES = (("torch", "Tensor"), ("torch.nn", "Module"), ("torch.nn.parameter", "Parameter"))
# builtins that IPython and the kernel set and reset around each cell, or that the display hook sets
_BUILTINS_IPYTHON_MANAGES = {"_", "__", "___", "get_ipython", "display", "exit", "quit", "__IPYTHON__", "help",
                             "copyright", "credits", "license", "input", "raw_input", "getpass"}
# sys entries that the checks' interpreter relies on (functions of sys are covered as well). The
# streams and the display and exception hooks are not: IPython swaps them around each cell itself.
_SYS_ENTRIES = ("modules", "meta_path", "path_hooks", "path_importer_cache", "breakpointhook")
_SYS_IPYTHON_MANAGES = {"displayhook", "excepthook"}
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGALRM", "SIGTERM", "SIGVTALRM", "SIGPROF")
                 if hasattr(signal, name))
_ENVIRONMENT = ("COURSEKIT_", "NBGRADER_")  # variables the grading reads: budget, time limit, execution


def _covered_functions(module: types.ModuleType):
    """The Python functions of ``module`` (its own, methods of its classes, numpy dispatchers'
    implementations) whose code, defaults or keyword defaults an answer could replace."""
    for value in list(vars(module).values()):
        if isinstance(value, types.FunctionType):
            yield value
        implementation = getattr(value, "_implementation", None) if type(value).__name__ == "_ArrayFunctionDispatcher" else None
        if isinstance(implementation, types.FunctionType):
            yield implementation
        if isinstance(value, type) and value.__module__ == module.__name__:
            for member in vars(value).values():
                member = getattr(member, "__func__", member)
                if isinstance(member, property):
                    member = member.fget
                if isinstance(member, types.FunctionType):
                    yield member


def _wrapped_by_torch(old, new) -> bool:
    """Whether ``new`` is torch's own lazy wrapper of ``old``, ``torch._disable_dynamo(old)``, as torch._dynamo makes
    it when it is first imported: the same code object and globals as a wrapper made now (torch's, not code an
    answer compiled), no defaults, and ``old`` itself, recursively disabled, in its closure."""
    make = getattr(sys.modules.get("torch"), "_disable_dynamo", None)
    if make is None or not isinstance(new, types.FunctionType) or not callable(old):
        return False
    try:
        reference = make(old)
    except Exception:  # noqa: BLE001 - a torch without this wrapper: nothing is recognised
        return False
    if (new.__code__ is not reference.__code__ or new.__globals__ is not reference.__globals__ or new.__defaults__
            or new.__kwdefaults__ or not new.__closure__ or getattr(new, "__wrapped__", None) is not old):
        return False
    try:
        cells = {name: cell.cell_contents for name, cell in zip(new.__code__.co_freevars, new.__closure__)}
    except ValueError:  # an empty cell
        return False
    return cells.get("fn", _MISSING) is old and cells.get("recursive", True) is True


def _settle_optimizers() -> None:
    """torch wraps an optimiser class's ``step`` (for its profiler and step hooks) the first time one is made,
    by rebinding the class attribute: for coursekit's optimisers (stage 05's ``PaperSGD``), the first made by a
    locked cell would look like an answer's change. Wrap them now, as torch would, before the snapshot."""
    optim = sys.modules.get("torch.optim")
    if optim is None:
        return
    for name in _library_names():
        for value in list(vars(sys.modules[name]).values()):
            if isinstance(value, type) and issubclass(value, optim.Optimizer) and value.__module__ == name:
                optim.Optimizer._patch_step_function(object.__new__(value))


def _library_names() -> list[str]:
    return sorted(name for name in sys.modules if name == "coursekit" or name.startswith("coursekit."))


class Integrity:
    """A snapshot of the state that graded code must leave alone; :meth:`restore` puts it back.

    ``ipython=True`` covers IPython's and the kernel's execution machinery too (input and AST
    transformers, event callbacks, the methods that run cells): the autograder's sealed run.
    """

    def __init__(self, ipython: bool = False):
        from coursekit.grading.sandbox import library_modules

        library_modules()  # the whole library imported, so that importing it later changes nothing here
        for name in PROTECTED_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        _settle_optimizers()
        self.modules = {name: (sys.modules[name], dict(vars(sys.modules[name])))
                        for name in (*PROTECTED_MODULES, *_library_names()) if name in sys.modules and name != "sys"}
        self.classes = []
        for module_name, class_name in PROTECTED_CLASSES:
            cls = getattr(sys.modules.get(module_name), class_name, None)
            if isinstance(cls, type):
                self.classes.append((f"{module_name}.{class_name}", cls, dict(vars(cls))))
        for name in _library_names():
            for value in vars(sys.modules[name]).values():
                if isinstance(value, type) and value.__module__ == name:
                    self.classes.append((f"{name}.{value.__qualname__}", value, dict(vars(value))))
        self.functions = {}
        for _, (module, _) in self.modules.items():
            for func in _covered_functions(module):
                self.functions[func] = (func.__code__, func.__defaults__, func.__kwdefaults__)
        self.sys_entries = {name: getattr(sys, name) for name in _SYS_ENTRIES if hasattr(sys, name)}
        self.sys_functions = {name: value for name, value in vars(sys).items()
                              if isinstance(value, types.BuiltinFunctionType) and name not in _SYS_IPYTHON_MANAGES}
        self.recursion_limit = sys.getrecursionlimit()
        self.signals = {}
        if threading.current_thread() is threading.main_thread():
            self.signals = {number: signal.getsignal(number) for number in _SIGNALS}
        self.environment = {k: v for k, v in os.environ.items() if k.startswith(_ENVIRONMENT)}
        import numpy

        self.numpy_errors = numpy.geterr()
        self.ipython = _IPythonMachinery() if ipython else None

    def restore(self, hooks: bool = True) -> list[str]:
        """Put back everything that differs from the snapshot; one line per change found.

        ``hooks``: also remove trace and profile functions, pending timers and blocked signals (false
        inside a graded call, where the grading's own hooks are set).
        """
        changes: list[str] = []
        # sys first: the other repairs use it
        for name, value in self.sys_functions.items():
            if vars(sys).get(name) is not value:
                setattr(sys, name, value)
                changes.append(f"sys.{name} was replaced")
        for name, value in self.sys_entries.items():
            if getattr(sys, name, _MISSING) is not value:
                setattr(sys, name, value)
                changes.append(f"sys.{name} was replaced")
        for name, (module, _) in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changes.append(f"sys.modules[{name!r}] was replaced")
        if sys.getrecursionlimit() != self.recursion_limit:
            sys.setrecursionlimit(self.recursion_limit)
            changes.append("the recursion limit was changed")
        if hooks:
            import numpy

            if numpy.geterr() != self.numpy_errors:  # a student's np.seterr: harmless, but the oracles
                numpy.seterr(**self.numpy_errors)  # in the tests must not raise on an underflow
            if sys.gettrace() is not None:
                sys.settrace(None)
                changes.append("a trace function (sys.settrace) was left set")
            if sys.getprofile() is not None:
                sys.setprofile(None)
                changes.append("a profile function (sys.setprofile) was left set")
            if getattr(threading, "_trace_hook", None) is not None or getattr(threading, "_profile_hook", None) is not None:
                threading.settrace(None)
                threading.setprofile(None)
                changes.append("a thread trace or profile function was left set")
        for name, (module, snapshot) in self.modules.items():
            current = vars(module)
            for key, value in snapshot.items():
                if current.get(key, _MISSING) is not value:
                    if name == "builtins" and key in _BUILTINS_IPYTHON_MANAGES:
                        continue
                    if _wrapped_by_torch(value, current.get(key, _MISSING)):
                        wrapper = snapshot[key] = current[key]  # torch's own rebinding, now the state to keep
                        self.functions[wrapper] = (wrapper.__code__, wrapper.__defaults__, wrapper.__kwdefaults__)
                        continue
                    if key.startswith("_") and not callable(value) and name != "builtins":
                        continue  # a module's private state (a cache, a flag): not the checks' concern
                    setattr(module, key, value)
                    changes.append(f"{name}.{key} was replaced" if key in current else f"{name}.{key} was deleted")
            if name == "builtins" or name.startswith("coursekit"):  # nothing may be added there
                for key in set(current) - set(snapshot):
                    if name == "builtins" and key in _BUILTINS_IPYTHON_MANAGES:
                        continue
                    if (key.startswith("__") and name != "builtins") or isinstance(current[key], types.ModuleType):
                        continue  # module bookkeeping (__warningregistry__...), a submodule imported
                    delattr(module, key)
                    changes.append(f"{name}.{key} was added")
        for label, cls, snapshot in self.classes:
            current = dict(vars(cls))
            for key, value in snapshot.items():
                if current.get(key, _MISSING) is not value and key not in ("__dict__", "__weakref__", "__doc__"):
                    setattr(cls, key, value)
                    changes.append(f"{label}.{key} was replaced")
            for key in set(current) - set(snapshot):
                if not (key.startswith("__") and key.endswith("__")) or key in ("__eq__", "__call__", "__getattr__",
                                                                              "__getattribute__", "__array__"):
                    delattr(cls, key)
                    changes.append(f"{label}.{key} was added")
        for func, (code, defaults, kwdefaults) in self.functions.items():
            if func.__code__ is not code:
                func.__code__ = code
                changes.append(f"the code of {func.__module__}.{func.__qualname__} was replaced")
            if func.__defaults__ is not defaults or func.__kwdefaults__ is not kwdefaults:
                func.__defaults__, func.__kwdefaults__ = defaults, kwdefaults
                changes.append(f"the default arguments of {func.__module__}.{func.__qualname__} were replaced")
        for key in {k for k in os.environ if k.startswith(_ENVIRONMENT)} | set(self.environment):
            if os.environ.get(key) != self.environment.get(key):
                if key in self.environment:
                    os.environ[key] = self.environment[key]
                else:
                    del os.environ[key]
                changes.append(f"the environment variable {key} was changed")
        if self.signals:
            for number, handler in self.signals.items():
                if signal.getsignal(number) is not handler and handler is not None:
                    signal.signal(number, handler)
                    changes.append(f"the handler of {signal.Signals(number).name} was replaced")
            if hooks:
                if hasattr(signal, "pthread_sigmask") and signal.pthread_sigmask(signal.SIG_BLOCK, []):
                    signal.pthread_sigmask(signal.SIG_SETMASK, [])
                    changes.append("signals were blocked (signal.pthread_sigmask)")
                if hasattr(signal, "setitimer") and signal.getitimer(signal.ITIMER_REAL)[0]:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    changes.append("a timer (signal.setitimer or signal.alarm) was left running")
        if self.ipython is not None:
            changes += self.ipython.restore()
        return changes


def _callable_entries(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if callable(v) or isinstance(v, (list, tuple))}


class _IPythonMachinery:
    """IPython's and the kernel's execution machinery: what decides how a cell's source is run."""

    def __init__(self):
        from IPython import get_ipython

        ip = get_ipython()
        if ip is None:
            raise RuntimeError("the sealed run needs an IPython kernel")
        self.ip = ip
        manager = ip.input_transformer_manager
        self.lists = [(label, owner, attr, getattr(owner, attr), list(getattr(owner, attr))) for label, owner, attr in (
            ("input_transformers_cleanup", manager, "cleanup_transforms"),
            ("input line transformers", manager, "line_transforms"),
            ("input token transformers", manager, "token_transformers"),
            ("input_transformers_post", ip, "input_transformers_post"),
            ("ast_transformers", ip, "ast_transformers"),
        )]
        self.callbacks = {event: list(callbacks) for event, callbacks in ip.events.callbacks.items()}
        self.objects = [("the shell", ip), ("the kernel", getattr(ip, "kernel", None)), ("the compiler", ip.compile),
                        ("the input transformer manager", manager), ("the display hook", ip.displayhook),
                        ("the display publisher", ip.display_pub), ("the events", ip.events)]
        self.objects = [(label, obj, _callable_entries(vars(obj)), _callable_entries(getattr(obj, "_trait_values", {})))
                        for label, obj in self.objects if obj is not None]
        classes = {}
        for _, obj, _, _ in self.objects:
            for cls in type(obj).__mro__:
                if cls is not object:
                    classes.setdefault(cls, dict(vars(cls)))
        self.classes = classes
        self.identities = {"compile": ip.compile, "input_transformer_manager": manager, "displayhook": ip.displayhook,
                           "display_pub": ip.display_pub, "events": ip.events, "user_ns": ip.user_ns,
                           "user_module": ip.user_module}
        self.custom = (ip.custom_exceptions, ip.CustomTB)

    def restore(self) -> list[str]:
        ip, changes = self.ip, []
        for name, obj in self.identities.items():
            if getattr(ip, name) is not obj:
                try:
                    setattr(ip, name, obj)
                except AttributeError:  # a property: its owner's attribute is restored below
                    pass
                changes.append(f"IPython's {name} was replaced")
        for label, owner, attr, lst, content in self.lists:
            if getattr(owner, attr) is not lst:
                setattr(owner, attr, lst)
                changes.append(f"IPython's {label} were replaced")
            if list(lst) != content or any(a is not b for a, b in zip(lst, content)):
                lst[:] = content
                changes.append(f"IPython's {label} were changed")
        for event, content in self.callbacks.items():
            current = ip.events.callbacks.get(event)
            if current is None or len(current) != len(content) or any(a is not b for a, b in zip(current, content)):
                ip.events.callbacks[event] = list(content) if current is None else current
                ip.events.callbacks[event][:] = content
                changes.append(f"IPython's {event} event callbacks were changed")
        if (ip.custom_exceptions, ip.CustomTB) != self.custom:
            ip.custom_exceptions, ip.CustomTB = self.custom
            changes.append("IPython's custom exception handler was set")
        for label, obj, entries, traits in self.objects:
            current = vars(obj)
            for key, value in entries.items():
                if current.get(key, _MISSING) is not value:
                    current[key] = value
                    changes.append(f"{label}'s {key} was replaced")
            for key in set(_callable_entries(current)) - set(entries):
                if key != "_trait_values":
                    del current[key]
                    changes.append(f"{label}'s {key} was added")
            trait_values = getattr(obj, "_trait_values", {})
            for key, value in traits.items():
                if trait_values.get(key, _MISSING) is not value:
                    trait_values[key] = value
                    changes.append(f"{label}'s {key} was replaced")
        for cls, snapshot in self.classes.items():
            current = dict(vars(cls))
            for key, value in snapshot.items():
                if current.get(key, _MISSING) is not value and key not in ("__dict__", "__weakref__", "__doc__"):
                    setattr(cls, key, value)
                    changes.append(f"{cls.__qualname__}.{key} was replaced")
            for key in set(current) - set(snapshot):
                delattr(cls, key)
                changes.append(f"{cls.__qualname__}.{key} was added")
        return changes

