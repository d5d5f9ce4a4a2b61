"""The kernel side of the autograder's sealed run (docs/ANATOMY.md, "Grading integrity").

The grader (:class:`coursekit.course.nbgrader_ext.SealedExecute`) drives the kernel cell by cell and,
around each cell, evaluates a guard through the execute request's ``user_expressions`` (which IPython
evaluates without its input transformers, so an answer cannot turn the guard into ``pass``):

- :func:`start` takes the snapshot of the trusted state (:class:`~coursekit.grading.integrity.Integrity`
  with IPython's machinery) before any cell runs;
- :func:`before` restores that state before a cell, and puts back the names that locked cells bound
  (helpers, oracles, imports) if a student's cell rebound them;
- :func:`after` records the names a locked cell bound, and what a student's cell changed;
- a test cell is sent as a call of :func:`run_test` with its source: the test runs in its own
  namespace (the student's answers and earlier tests' results, with the trusted names on top), so a name the
  student's code rebinds while the test calls it does not reach the test; the test only counts if
  :func:`finished` then confirms that it ran to its end (a one-time token the grader chose).

Every change found is reported back to the grader with the cell it was found after: the integrity
audit shows them to the instructor.
"""

from __future__ import annotations

import json
import linecache

from coursekit.grading.integrity import Integrity

_seal = None
_MISSING = object()
_WRAPPER_MARK = "coursekit-sealed-test"


class _Seal:
    def __init__(self):
        from IPython import get_ipython

        from coursekit.grading import checks, gradients, oracles, sandbox, tracing  # noqa: F401 - covered from the start

        sandbox.library_modules()  # the whole library is imported, so that all of it is in the snapshot
        self.ip = get_ipython()
        self.user_ns = self.ip.user_ns
        self.integrity = Integrity(ipython=True)
        self.trusted: dict = {}  # name -> object, bound by the locked cells that are not tests
        self.before_cell: dict = {}
        self.cell = "(start)"  # the cell running now
        self.finished: set[str] = set()
        self.events: list[dict] = []

    def record(self, where: str, changes: list[str]):
        self.events += [{"cell": where, "change": change} for change in changes]

    def report(self) -> str:
        events, self.events = self.events, []
        return json.dumps({"sealed": True, "events": events})


def _active() -> _Seal:
    if _seal is None:
        raise RuntimeError("coursekit.grading.seal.start() has not run in this kernel")
    return _seal


def active() -> bool:
    """Whether this process runs a sealed autograding (``own_work`` restores against its snapshot)."""
    return _seal is not None


def restore_during(what: str) -> list[str]:
    """Restore the trusted state after a graded call (``own_work``'s exit); the changes found."""
    seal = _active()
    changes = seal.integrity.restore(hooks=False)
    seal.record(seal.cell, [f"during the graded call of {what}: {change}" for change in changes])
    return changes


def start() -> str:
    global _seal
    if _seal is None:
        _seal = _Seal()
    return _seal.report()


def before(kind: str, cell: str, last_student_cell: str) -> str:
    """Before a code cell of ``kind`` ("answer", "test", "locked"): put the trusted state back."""
    seal = _active()
    seal.record(last_student_cell, seal.integrity.restore())
    seal.cell = cell
    shadowed = []
    for name, value in seal.trusted.items():
        if seal.user_ns.get(name, _MISSING) is not value:
            seal.user_ns[name] = value
            shadowed.append(f"the name {name!r}, which a locked cell defined, was rebound (the tests used the "
                            f"locked cell's value)")
    seal.record(last_student_cell, shadowed)
    if kind == "locked":
        seal.before_cell = dict(seal.user_ns)
    return seal.report()


def after(kind: str, cell: str) -> str:
    """After a code cell: a locked cell's new bindings become trusted; a student's changes are found."""
    seal = _active()
    if kind == "locked":
        for name, value in seal.user_ns.items():
            if not name.startswith("_") and seal.before_cell.get(name, _MISSING) is not value:
                seal.trusted[name] = value
    elif kind == "answer":
        seal.record(cell, seal.integrity.restore())
    return seal.report()


def run_test(source: str, token: str, cell: str) -> None:
    """Run a test cell's source in its own namespace; mark ``token`` finished if it ran to its end."""
    seal = _active()
    namespace = {**seal.user_ns, **seal.trusted}
    before_test = dict(namespace)
    code = compile(source, f"<test cell {cell}>", "exec")
    _forget_wrapper_source()
    try:
        exec(code, namespace)  # noqa: S102 - the instructor's test cell
    finally:
        for name, value in namespace.items():
            if not name.startswith("__") and before_test.get(name, _MISSING) is not value:
                seal.user_ns[name] = value  # later tests and demos may read what a test computed
                if name in seal.trusted:  # a test is locked code too: what it rebinds stays trusted
                    seal.trusted[name] = value
    seal.finished.add(token)


def finished(token: str, cell: str) -> str:
    """Whether the test cell sent with ``token`` ran to its end; what its graded calls changed."""
    seal = _active()
    seal.record(cell, seal.integrity.restore())
    _forget_wrapper_source()
    report = json.loads(seal.report())
    report["finished"] = token in seal.finished
    return json.dumps(report)


def _forget_wrapper_source() -> None:
    """Drop the test sources that IPython cached for tracebacks (``linecache``): a later cell that
    printed the cache would show the hidden tests."""
    for name, entry in list(linecache.cache.items()):
        lines = entry[2] if len(entry) > 2 else []
        if lines and _WRAPPER_MARK in lines[0]:
            del linecache.cache[name]


def wrapper(source: str, token: str, cell: str) -> str:
    """The code sent to the kernel in place of a test cell's source."""
    return (f"# {_WRAPPER_MARK}\n__import__('coursekit.grading.seal', fromlist=['run_test'])"
            f".run_test({source!r}, {token!r}, {cell!r})\n")


def guard(call: str) -> str:
    """The user expression that runs one of this module's guards (``call``: e.g. ``"start()"``)."""
    return f"__import__('coursekit.grading.seal', fromlist=['start']).{call}"

