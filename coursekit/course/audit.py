"""The integrity audit: what in a submission an instructor should look at (docs/ANATOMY.md,
"Grading integrity").

Three sources, shown together by ``coursekit audit ASSIGNMENT`` and after ``coursekit autograde``:

- the **answers' source**, read with ``ast`` (:func:`audit_source`): the constructs that tampering
  needs and that the exercises never do (IPython internals, tracing hooks, code objects and frames,
  module loading and reloading, source inspection, exec/eval/compile, ``__import__``, assignment to
  attributes of imported modules or builtins, process control, names that shadow what locked cells
  defined);
- the **structure** of the submission against the release (added, missing, duplicated cells, edited
  metadata), found when the sealed run rebuilt it;
- what the sealed run **put back** at run time (a replaced library function, an input transformer)
  and the **faults** it isolated (a kernel that died, a hang).

A flag is a reason to read the answer, not a verdict: the audit can name, not judge.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from coursekit.course.anatomy import is_answer, is_manual, nbgrader_meta, read_notebook

# modules whose import an answer to these exercises never needs, and tampering does
SUSPECT_MODULES = {
"builtins": "the builtins", "importlib": "module loading",
    "imp": "module loading", "inspect": "source and frame inspection", "ctypes": "raw memory access",
    "gc": "the garbage collector's references", "types": "building functions and code objects",
    "linecache": "the source cache", "IPython": "IPython's internals", "ipykernel": "the kernel's internals",
    "signal": "signal handlers", "threading": "threads and their hooks", "_thread": "threads",
    "multiprocessing": "processes", "subprocess": "processes", "os": "the process and the file system",
    "shutil": "the file system", "pathlib": "the file system", "io": "files", "code": "an interpreter",
    "codeop": "compilation", "dis": "bytecode", "marshal": "code objects", "pickle": "arbitrary objects",
    "runpy": "running modules", "site": "the import path", "atexit": "exit hooks", "faulthandler": "crash hooks",
    "trace": "tracing", "bdb": "tracing", "pdb": "the debugger", "traceback": "frames", "sysconfig": "installation paths",
    "coursekit.grading": "the grading machinery", "coursekit.course": "the course machinery",
    "nbgrader": "the autograder", "nbformat": "notebooks", "nbclient": "the autograder",
    "jupyter_client": "the kernel", "unittest": "mocking", "weakref": "references",
}
SUSPECT_CALLS = {
    "exec": "runs code from a string", "eval": "runs code from a string", "compile": "compiles code",
    "__import__": "imports a module by name", "globals": "reaches the notebook's namespace",
    "locals": "reaches a namespace", "vars": "reaches a namespace", "setattr": "changes an attribute by name",
    "delattr": "deletes an attribute by name", "getattr": "reads an attribute by name",
    "get_ipython": "reaches IPython", "breakpoint": "starts the debugger", "open": "opens a file",
    "input": "waits for input", "exit": "ends the kernel", "quit": "ends the kernel",
}
# attributes tampering reaches for; dunder attributes are flagged too unless listed as ordinary
SUSPECT_ATTRIBUTES = {
    "f_globals", "f_locals", "f_back", "f_code", "f_builtins", "f_trace", "gi_frame", "cr_frame", "tb_frame",
    "tb_next", "co_code", "co_consts", "co_names", "cell_contents", "_getframe", "settrace", "setprofile",
    "gettrace", "getprofile", "_implementation", "_exit", "kill", "abort", "system", "popen", "fork",
    "reload", "getsource", "getsourcelines", "getfile", "currentframe", "stack", "user_ns", "user_global_ns",
    "input_transformers_cleanup", "input_transformers_post", "ast_transformers", "events", "run_cell",
    "shell", "kernel", "modules", "meta_path", "path_hooks", "setrecursionlimit", "pthread_sigmask",
    "setitimer", "alarm", "seterrcall", "get_referrers", "get_referents", "get_objects", "spec_from_file_location",
    "module_from_spec", "exec_module", "load_module", "import_module", "__code__",
}
# attribute names that ordinary numerical code uses too (torch.stack, np.stack, model.modules(), a conv
# layer's kernel): flagged only on a module that reaches the internals (sys.modules, inspect.stack)
AMBIGUOUS_ATTRIBUTES = {"stack", "modules", "kernel", "events", "shell"}
ORDINARY_DUNDERS = {"__init__", "__call__", "__name__", "__doc__", "__len__", "__getitem__", "__setitem__",
                    "__iter__", "__next__", "__repr__", "__str__", "__eq__", "__hash__", "__add__", "__mul__",
                    "__class__", "__enter__", "__exit__", "__contains__", "__array__", "__qualname__"}


@dataclass
class Flag:
    line: int
    construct: str
    why: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.construct} ({self.why})"


def _root_name(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _module_suspect(name: str) -> str | None:
    for module, why in SUSPECT_MODULES.items():
        if name == module or name.startswith(module + "."):
            return why
    return None


def _locked_trees(nb):
    """The syntax trees of the locked code cells that are not tests (setup, helpers, demos)."""
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and not meta.get("solution") and not meta.get("grade"):
            try:
                yield ast.parse(cell.source)
            except SyntaxError:
                continue


def locked_definitions(nb) -> tuple[set[str], dict[str, str]]:
    """The names that the locked cells which are not tests bind at top level, and, of those bound by
    imports, what they import (``{"np": "numpy"}``) so that an answer importing the same is fine."""
    names, imports = set(), {}
    for tree in _locked_trees(nb):
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    full = alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
                    names.add(bound)
                    imports[bound] = full if alias.asname or isinstance(node, ast.ImportFrom) else bound
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            names.add(sub.id)
    return names, imports


def switched_off(nb) -> set[str]:
    """The dotted names of the routines a stage switches off while answers are graded: the strings of
    the upper-case lists its locked cells define (``LIBRARY = ["scipy.special.expit", ...]``)."""
    found = set()
    for tree in _locked_trees(nb):
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
                for sub in ast.walk(node.value):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and "." in sub.value:
                        found.add(sub.value)
    return found


def audit_source(source: str, locked: set[str] = frozenset(), locked_imports: dict[str, str] | None = None,
                 refused: set[str] = frozenset()) -> list[Flag]:
    """The tampering constructs in one answer's source (see the module's docstring), and the uses of
    the ``refused`` routines (dotted names) under any name."""
    locked_imports = locked_imports or {}
    aliases = dict(locked_imports)  # name -> the dotted name it stands for
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # a syntax error is the student's own loss, not tampering
    flags: list[Flag] = []
    imported: set[str] = set(locked_imports)  # names bound to modules, here or by the locked cells

    def flag(node, construct, why):
        flags.append(Flag(getattr(node, "lineno", 0), construct, why))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                full = alias.name if isinstance(node, ast.Import) else f"{node.module or ''}.{alias.name}"
                why = _module_suspect(alias.name if isinstance(node, ast.Import) else (node.module or ""))
                if why:
                    flag(node, f"import {full}", why)
                bound = alias.asname or alias.name.split(".")[0]
                imported.add(bound)
                aliases[bound] = full if (alias.asname or isinstance(node, ast.ImportFrom)) else bound
                if full in refused:
                    flag(node, f"import {full}", "a routine switched off while this stage is graded")
                if node.col_offset == 0 and bound in locked and locked_imports.get(bound) not in (full, alias.name, bound):
                    flag(node, f"import ... as {bound}", "rebinds a name a locked cell defined")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name in SUSPECT_CALLS:
                constant = (name == "getattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                            and _root_name(node.args[0]) not in imported)
                if not constant:
                    flag(node, f"{name}()", SUSPECT_CALLS[name])
        elif isinstance(node, ast.Attribute) and refused:
            dotted = _dotted(node)
            root, _, rest = dotted.partition(".")
            full = f"{aliases.get(root, root)}.{rest}" if rest else dotted
            if full in refused or any(full.endswith("." + r.split(".", 1)[1]) and full.split(".")[0] == r.split(".")[0]
                                      for r in refused if "." in r):
                flag(node, dotted, f"{full}: a routine switched off while this stage is graded")
        if isinstance(node, ast.Attribute):
            dunder = node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in ORDINARY_DUNDERS
            if node.attr in AMBIGUOUS_ATTRIBUTES and not dunder:
                root = _root_name(node.value)
                on = aliases.get(root, root) if root is not None else None
                if on is None or _module_suspect(on) or on in ("sys", "builtins"):
                    flag(node, f".{node.attr}", "reaches the interpreter's or the grader's internals")
            elif node.attr in SUSPECT_ATTRIBUTES or dunder:
                flag(node, f".{node.attr}", "reaches the interpreter's or the grader's internals")
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__loader__", "__spec__", "In", "Out", "_ih", "_oh"):
            flag(node, node.id, "reaches the interpreter's internals or the input history")
        elif isinstance(node, ast.Global):
            for name in node.names:
                if name in locked:
                    flag(node, f"global {name}", "rebinds a name a locked cell defined, from inside a function")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, (ast.Attribute, ast.Subscript)):
                        root = _root_name(sub)
                        if root in imported or root in ("builtins", "__builtins__"):
                            flag(node, f"{_dotted(sub) or root}... = ", "changes a module or a locked cell's object")
                        elif root in locked:
                            flag(node, f"{root}[...] = " if isinstance(sub, ast.Subscript) else f"{_dotted(sub)} = ",
                                 "changes an object a locked cell defined")
    for node in tree.body:  # top-level bindings that shadow the locked cells' names
        bound = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound = [sub.id for t in targets for sub in ast.walk(t) if isinstance(sub, ast.Name)]
        for name in bound:
            if name in locked:
                flag(node, name, "rebinds a name a locked cell defined (the tests use the locked cell's value)")
    unique = {(f.line, f.construct): f for f in flags}
    return sorted(unique.values(), key=lambda f: (f.line, f.construct))


def audit_answers(nb, release) -> dict[str, list[str]]:
    """grade id -> the flags of that answer cell (code answers only)."""
    locked, imports = locked_definitions(release)
    refused = switched_off(release)
    found = {}
    for cell in nb.cells:
        if is_answer(cell) or (is_manual(cell) and cell.cell_type == "code"):
            gid = nbgrader_meta(cell).get("grade_id")
            found[gid] = [str(f) for f in audit_source(cell.source, locked, imports, refused)]
    return found


@dataclass
class Row:
    student: str
    notebook: str
    where: str
    finding: str


def release_directory(root: Path) -> str:
    """The course's release directory, as its nbgrader_config.py sets it (nbgrader's default otherwise)."""
    from traitlets.config.loader import PyFileConfigLoader

    config_file = root / "nbgrader_config.py"
    if config_file.is_file():
        value = PyFileConfigLoader(config_file.name, path=str(root)).load_config().CourseDirectory.get("release_directory")
        if value:
            return str(value)
    return "release"


def audit_assignment(root: Path, assignment: str) -> list[Row]:
    """Every finding for every submission of ``assignment`` in the course directory ``root``: the
    static audit of the submitted answers, the structure, and what the sealed run recorded."""
    import json

    from coursekit.course.sealing import REPORTS, rebuild

    rows: list[Row] = []
    release_dir = root / release_directory(root) / assignment
    submitted = sorted((root / "submitted").glob(f"*/{assignment}/*.ipynb"))
    for path in submitted:
        student, notebook = path.parts[-3], path.stem
        release_path = release_dir / path.name
        if not release_path.is_file():
            rows.append(Row(student, notebook, "-", f"no release {release_path} to compare with"))
            continue
        release = read_notebook(release_path)
        rebuilt, structure = rebuild(read_notebook(path), release)
        rows += [Row(student, notebook, "structure", finding) for finding in structure]
        for gid, flags in audit_answers(rebuilt, release).items():
            rows += [Row(student, notebook, gid, flag) for flag in flags]
        report = root / REPORTS / assignment / student / f"{notebook}.json"
        if report.is_file():
            data = json.loads(report.read_text())
            rows += [Row(student, notebook, e.get("exercise") or e["cell"], f"put back at run time: {e['change']}")
                     for e in data.get("events", [])]
            rows += [Row(student, notebook, f.get("exercise", "-"), f"fault: {f['what']}") for f in data.get("faults", [])]
    return rows


def table(rows: list[Row]) -> str:
    if not rows:
        return "No findings."
    widths = [max(len(getattr(r, k)) for r in rows) for k in ("student", "notebook", "where")]
    widths = [max(w, len(h)) for w, h in zip(widths, ("student", "notebook", "cell"))]
    head = f"{'student':<{widths[0]}}  {'notebook':<{widths[1]}}  {'cell':<{widths[2]}}  finding"
    lines = [head, "-" * len(head)]
    lines += [f"{r.student:<{widths[0]}}  {r.notebook:<{widths[1]}}  {r.where:<{widths[2]}}  {r.finding}" for r in rows]
    return "\n".join(lines)


__all__ = ["Flag", "Row", "switched_off", "audit_answers", "audit_assignment", "audit_source", "locked_definitions", "table"]
