"""Running stage notebooks the way the autograder does, and reading the results."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from traitlets.config.loader import PyFileConfigLoader

from coursekit import course

ROOT = Path(__file__).resolve().parents[2]
STAGES = course.stages(ROOT)
WRONG_ANSWERS = ROOT / "tests" / "wrong_answers"
# the per-cell limit of nbgrader_config.py, so that the checks run notebooks as the autograder does
CELL_TIMEOUT = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config().Execute.timeout


def cell_failure(cell) -> str | None:
    """Why nbgrader would score this cell 0 (an error, or any stderr output), or None if it passes."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}"
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return f"wrote to stderr: {output.get('text', '')[:300]!r}"
    return None


@contextlib.contextmanager
def environment(set_vars: dict[str, str], unset: tuple[str, ...] = ()):
    """Run the block (and the kernels it starts) with these environment variables."""
    saved = dict(os.environ)
    for name in unset:
        os.environ.pop(name, None)
    os.environ.update(set_vars)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def grading_environment():
    """The environment of ``nbgrader autograde``: NBGRADER_EXECUTION set, so the fast budget."""
    return environment({"NBGRADER_EXECUTION": "autograde"}, unset=("COURSEKIT_BUDGET",))


def student_environment():
    """A student's JupyterLab: not graded, not CI, the full budget."""
    return environment({"COURSEKIT_BUDGET": "full"}, unset=("NBGRADER_EXECUTION", "CI"))


def client_for(nb, cwd: Path) -> NotebookClient:
    return NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
        interrupt_on_timeout=True, resources={"metadata": {"path": str(cwd)}},
    )


@dataclass
class Run:
    nb: nbformat.NotebookNode
    seconds: float

    def failures(self, indices) -> dict[int, str]:
        return {i: why for i in indices if (why := cell_failure(self.nb.cells[i])) is not None}


def stub_problems(nb) -> list[str]:
    """What is wrong with a run of a release with its stubs in place (docs/ANATOMY.md §4): a test cell that
    passes, or that fails other than in one line raising ``NotAnswered``; a cell outside the exercises
    that fails. Shared by the release's run under the autograder's environment and its run in a browser."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        name = f"cell {i} ({course.nbgrader_meta(cell).get('grade_id', cell.get('id'))})"
        if course.is_test(cell):
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if not errors:
                problems.append(f"test {name} passes on the untouched release")
            elif errors[0].get("ename") != "NotAnswered" or len(errors[0].get("traceback") or []) != 1:
                problems.append(f"test {name} does not fail with one line saying its exercise is not answered: "
                                f"{errors[0].get('ename')}: {str(errors[0].get('evalue'))[:200]} "
                                f"({len(errors[0].get('traceback') or [])} traceback lines)")
        elif not course.nbgrader_meta(cell).get("solution") and (why := cell_failure(cell)):
            problems.append(f"{name}, outside the exercises, fails with the stubs in place: {why}")
    if not any(course.is_test(c) for c in nb.cells):
        problems.append("the release has no test cell")
    return problems


def execute(path: Path, env=grading_environment) -> Run:
    """Execute a whole notebook top to bottom, by default under the grading environment."""
    nb = course.read_notebook(path)
    start = time.perf_counter()
    with env():
        client_for(nb, path.parent).execute()
    return Run(nb, time.perf_counter() - start)


class Session:
    """A kernel that has run a notebook once and can re-run single cells with other sources.

    Used to try many answers to one exercise without restarting: run the answer, run the
    exercise's test cells, restore the original answer.
    """

    def __init__(self, path: Path):
        self.nb = course.read_notebook(path)
        self.path = path
        # nbclient stores every executed cell back into self.nb: keep the instructor's sources apart
        self.sources = [cell.source for cell in self.nb.cells]
        self.executed = []
        self._env = grading_environment()
        self._kernel = None

    def __enter__(self):
        self._env.__enter__()
        self.client = client_for(self.nb, self.path.parent)
        self._kernel = self.client.setup_kernel()
        self._kernel.__enter__()
        start = time.perf_counter()
        for index, cell in enumerate(list(self.nb.cells)):
            if cell.cell_type == "code":
                self.executed.append(self.client.execute_cell(cell, index))
        self.seconds = time.perf_counter() - start
        return self

    def __exit__(self, *exc):
        try:
            self._kernel.__exit__(*exc)
        finally:
            self._env.__exit__(*exc)

    def run_source(self, index: int, source: str):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata = self.nb.cells[index].metadata
        self.client.execute_cell(cell, index)
        return cell

    def try_answer(self, exercise: course.Exercise, source: str) -> tuple[str | None, dict[str, str]]:
        """Run ``source`` as the exercise's answer, then its test cells; restore the real answer.

        Returns why the answer cell itself failed (None if it ran) and the failing test cells
        (grade_id -> reason).
        """
        answer_failure = cell_failure(self.run_source(exercise.answer_index, source))
        failures = {}
        for index, grade_id in zip(exercise.test_indices, exercise.test_ids):
            why = cell_failure(self.run_source(index, self.sources[index]))
            if why is not None:
                failures[grade_id] = why
        self.run_source(exercise.answer_index, self.sources[exercise.answer_index])
        return answer_failure, failures


def load_wrong_answers(stage: str):
    """The stage's module of wrong answers (``WRONG`` and ``DELEGATING``), or None if it has none."""
    path = WRONG_ANSWERS / f"{stage}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"wrong_answers_{stage.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strip_markers(source: str) -> str:
    """An answer as a student would type it: the instructor's solution without nbgrader's markers."""
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


class StaleEdit(LookupError):
    """A wrong answer edits a solution line that no longer exists (or exists more than once)."""


def apply_edits(solution: str, edits, where: str) -> str:
    """The solution with each ``(old, new)`` edit applied: ``old``, one or more whole lines of the
    solution (a final newline aside), must occur exactly once, and is replaced by ``new``."""
    text = f"\n{solution.strip(chr(10))}\n"  # framed by newlines, so that only whole lines match
    for old, new in edits:
        old, new = old.rstrip("\n"), new.rstrip("\n")
        count = len(re.findall(f"(?=\n{re.escape(old)}\n)", text))  # overlapping copies count too
        if count != 1:
            raise StaleEdit(f"{where}: the solution holds {count} copies of the lines this wrong answer edits "
                            f"(it needs exactly one); update the edit:\n{old}")
        text = text.replace(f"\n{old}\n", f"\n{new}\n" if new else "\n")
    return text.strip("\n") + "\n"


def solution_answers(stage: str) -> dict[str, str]:
    """grade_id -> the instructor's answer, as a student would type it."""
    nb = course.read_notebook(course.solution_path(ROOT, stage))
    return {course.nbgrader_meta(c)["grade_id"]: strip_markers(c.source) for c in nb.cells if course.is_answer(c)}


def _edited_answers(stage: str, register: str) -> dict[str, dict[str, str]]:
    """grade_id -> {label: the whole answer cell} for a register of edits (``WRONG``, ``VALID``) of the
    stage's module; raises :class:`StaleEdit` for an edit whose lines the solution no longer has."""
    solved = solution_answers(stage)
    return {gid: {label: apply_edits(solved[gid], edits, f"{stage} {gid} ({label})") for label, edits in answers.items()}
            for gid, answers in getattr(load_wrong_answers(stage), register, {}).items()}


def wrong_answers(stage: str) -> dict[str, dict[str, str]]:
    """grade_id -> {mistake: the whole answer cell}, each made by applying that mistake's edits to the
    solution."""
    return _edited_answers(stage, "WRONG")


def valid_answers(stage: str) -> dict[str, dict[str, str]]:
    """grade_id -> {how it differs: the whole answer cell} for the valid answers written another way
    (``VALID``, optional, in the format of ``WRONG``)."""
    return _edited_answers(stage, "VALID")


# A lookup table of the visible cases (docs/ANATOMY.md §3): the answer's functions wrapped so that, while
# the visible tests run, each call's result is recorded under its arguments; afterwards a call returns
# the recorded result for the same arguments, and for any other arguments the last one recorded.
LOOKUP_TABLE = '''
import copy as _lookup_copy, hashlib as _lookup_hash, pickle as _lookup_pickle
_lookup_table, _lookup_mode = {}, ["record"]
def _lookup_key(args, kwargs):
    try:
        return _lookup_hash.sha1(_lookup_pickle.dumps((args, sorted(kwargs.items())))).hexdigest()
    except Exception:
        return repr((args, sorted(kwargs.items())))
def _lookup_wrap(name, function):
    def looked_up(*args, **kwargs):
        key = (name, _lookup_key(args, kwargs))
        if _lookup_mode[0] == "record":
            result = function(*args, **kwargs)
            _lookup_table[key] = _lookup_table[(name, None)] = _lookup_copied(result)
            return result
        return _lookup_copied(_lookup_table.get(key, _lookup_table.get((name, None))))
    return looked_up
def _lookup_copied(value):
    try:
        return _lookup_copy.deepcopy(value)
    except Exception:  # a tensor inside an autograd graph cannot be copied: the table keeps it as it is
        return value
for _lookup_name in {names!r}:
    _lookup_owner, _, _lookup_method = _lookup_name.rpartition(".")
    if _lookup_owner:  # a method of a class the answer defines (its forward, say)
        _lookup_class = globals()[_lookup_owner]
        setattr(_lookup_class, _lookup_method, _lookup_wrap(_lookup_name, getattr(_lookup_class, _lookup_method)))
    else:
        globals()[_lookup_name] = _lookup_wrap(_lookup_name, globals()[_lookup_name])
'''


def answer_functions(source: str) -> list[str]:
    """The functions an answer cell defines at top level, and the methods (``Class.method``) of the classes it
    defines, ``__init__`` and other dunders aside (a lookup table replays what they compute, not their building)."""
    import ast

    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, functions):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef):
            names += [f"{node.name}.{item.name}" for item in node.body
                      if isinstance(item, functions) and not item.name.startswith("__")]
    return names


visible = course.anatomy.visible_tests  # a test cell as the release shows it


def try_lookup_table(session: Session, exercise: course.Exercise) -> tuple[dict[str, str], dict[str, str]]:
    """Run the solution of ``exercise`` as a lookup table of its visible cases: recorded on the visible
    tests, then run on the whole test cells. Returns the visible tests' failures while recording (none
    expected) and the whole tests' failures on the lookup table (at least one expected)."""
    solution = session.sources[exercise.answer_index]
    names = answer_functions(solution)
    recorded = {}
    session.run_source(exercise.answer_index, solution + "\n" + LOOKUP_TABLE.replace("{names!r}", repr(names)))
    for index, grade_id in zip(exercise.test_indices, exercise.test_ids):
        why = cell_failure(session.run_source(index, visible(session.sources[index])))
        if why is not None:
            recorded[grade_id] = why
    session.run_source(exercise.answer_index, '_lookup_mode[0] = "replay"')
    replayed = {}
    for index, grade_id in zip(exercise.test_indices, exercise.test_ids):
        why = cell_failure(session.run_source(index, session.sources[index]))
        if why is not None:
            replayed[grade_id] = why
    session.run_source(exercise.answer_index, solution)
    return recorded, replayed
