"""The anatomy of a stage notebook (docs/ANATOMY.md): which cells are answers, tests and manually
graded questions, the exercises they form, and the violations that would make grading unsafe."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

GRADE_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
TITLE = re.compile(r"^# Stage (\d\d) — \S")
EXERCISE = re.compile(r"^#+ Exercise (\d+(?:\.\d+)*)\b", re.M)
SUMMARY = re.compile(r"^## Summary\s*$", re.M)


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_answer(cell) -> bool:
    """An autograded answer cell: code the student writes, graded by the test cells after it."""
    m = nbgrader_meta(cell)
    return cell["cell_type"] == "code" and bool(m.get("solution")) and not m.get("grade")


def is_test(cell) -> bool:
    """An autograder test cell (points, locked code)."""
    m = nbgrader_meta(cell)
    return cell["cell_type"] == "code" and bool(m.get("grade")) and not m.get("solution")


def is_manual(cell) -> bool:
    """A manually graded answer (markdown or code the instructor scores by hand)."""
    m = nbgrader_meta(cell)
    return bool(m.get("grade")) and bool(m.get("solution"))


@dataclass
class Exercise:
    """An autograded answer cell and the test cells that follow it (up to the next answer cell)."""

    grade_id: str
    answer_index: int
    test_indices: list[int] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)


def exercises(nb) -> list[Exercise]:
    found: list[Exercise] = []
    for index, cell in enumerate(nb["cells"]):
        if is_answer(cell):
            found.append(Exercise(nbgrader_meta(cell)["grade_id"], index))
        elif is_test(cell) and found:
            found[-1].test_indices.append(index)
            found[-1].test_ids.append(nbgrader_meta(cell)["grade_id"])
    return found


def exercise_labels(nb) -> dict[str, str]:
    """``grade_id -> "Exercise 1.2 (softmax-impl)"`` for every answer cell, numbered by the last
    "Exercise N.M" heading above it (its lead-in), or ``"the exercise softmax-impl"`` without one."""
    labels, number = {}, None
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            found = EXERCISE.findall(cell["source"])
            number = found[-1] if found else number
        elif is_answer(cell):
            gid = nbgrader_meta(cell)["grade_id"]
            labels[gid] = f"Exercise {number} ({gid})" if number else f"the exercise {gid}"
            number = None  # each lead-in names one answer
    return labels


def full_budget_on_cpu(nb) -> bool | None:
    """The stage's own statement (notebook metadata ``coursekit.full_budget_on_cpu``) of whether its
    full budget runs in seconds on a CPU, or None when the notebook does not say."""
    value = nb.get("metadata", {}).get("coursekit", {}).get("full_budget_on_cpu")
    return value if isinstance(value, bool) else None


def _as_released(source: str) -> str:
    """The answer as the release shows it: each solution region replaced by a stub line."""
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip() == "### BEGIN SOLUTION":
            inside = True
            lines.append(line.replace("### BEGIN SOLUTION", "raise NotImplementedError"))
        elif line.strip() == "### END SOLUTION":
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines)


# checks that return nothing: a test cell may end with one of them
_SILENT_CALLS = {"check", "check_close", "check_gradient", "check_gradients", "print"}


def visible_tests(source: str) -> str:
    """A test cell as the release shows it: its hidden-test regions removed."""
    lines, inside = [], False
    for line in source.splitlines():
        if line.strip() == "### BEGIN HIDDEN TESTS":
            inside = True
        elif line.strip() == "### END HIDDEN TESTS":
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines)


def _returns_nothing(sources) -> set[str]:
    """The functions defined at top level in ``sources`` (the locked cells) that never return a value:
    a test cell may end with a call to one of them (a check helper of the notebook's own)."""
    import ast

    silent = set()
    for source in sources:
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        for node in body:
            if isinstance(node, ast.FunctionDef) and not any(
                    isinstance(n, (ast.Return, ast.Yield, ast.YieldFrom)) and getattr(n, "value", None) is not None
                    for n in ast.walk(node)):
                silent.add(node.name)
    return silent


def _shows_a_value(source: str, silent: set[str] = frozenset()) -> bool:
    """Whether a test cell, as the release shows it (hidden tests removed), ends with an expression whose
    value Jupyter would display, such as ``check_shape(...)``, which returns the array it checked (a call
    of the checks that return nothing, or of the ``silent`` functions, shows nothing)."""
    import ast

    try:
        body = ast.parse(visible_tests(source)).body
    except SyntaxError:
        return False
    if not body or not isinstance(body[-1], ast.Expr):
        return False
    value = body[-1].value
    name = value.func.id if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) else None
    return name not in _SILENT_CALLS and name not in silent


def _functions_without_docstring(source: str) -> list[str] | None:
    """Names of the top-level functions in ``source`` that have no docstring (None if it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return [node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node) is None]


ADDED_CELLS_RULE = "Only the answer cells are graded: put all your code in them"


def stage_problems(nb, stage: str) -> list[str]:
    """Violations of the stage-level anatomy (docs/ANATOMY.md): the title names the stage and its
    learning goals follow; a setup cell comes first among the code cells and reads the budget and the
    seed; every answer cell has a lead-in naming its exercise and keeps a docstring for each function;
    the notebook ends with a summary; the stage says whether its full budget runs on a CPU; the first
    cell states that only the answer cells are graded (the sealed run drops added cells)."""
    problems = []
    cells = nb["cells"]
    first = cells[0] if cells else None
    title = TITLE.match(first["source"]) if first is not None and first["cell_type"] == "markdown" else None
    if title is None:
        problems.append("the first cell is not a markdown title '# Stage NN — ...'")
    elif title.group(1) != stage[:2]:
        problems.append(f"the title names stage {title.group(1)}, but this is {stage}")
    if first is not None and ADDED_CELLS_RULE not in " ".join(first["source"].split()):
        problems.append(f"the first cell does not state the rule on added cells: {ADDED_CELLS_RULE!r}")
    elif "**You will**" not in first["source"]:
        problems.append("the title cell lists no learning goals ('**You will**' and a list)")
    code = [c for c in cells if c["cell_type"] == "code"]
    setup = code[0] if code else None
    if setup is None or nbgrader_meta(setup).get("grade_id") != "setup" or not nbgrader_meta(setup).get("locked"):
        problems.append("the first code cell is not the locked setup cell (grade_id 'setup')")
    elif not all(call in setup["source"] for call in ("coursekit.budget()", "coursekit.seed_everything(")):
        problems.append("the setup cell does not read coursekit.budget() and call coursekit.seed_everything()")
    labels = exercise_labels(nb)
    for index, cell in enumerate(cells):
        if not is_answer(cell):
            continue
        gid = nbgrader_meta(cell)["grade_id"]
        before = cells[index - 1] if index else None
        if labels[gid].startswith("the exercise") or before is None or before["cell_type"] != "markdown":
            problems.append(f"answer cell {gid!r} has no markdown lead-in right above it naming its exercise")
        missing = _functions_without_docstring(_as_released(cell["source"]))
        if missing is None:
            problems.append(f"answer cell {gid!r} does not parse as Python")
        elif missing:
            problems.append(f"answer cell {gid!r}: {', '.join(missing)} keep(s) no docstring (shapes and approach)")
    markdown = [c for c in cells if c["cell_type"] == "markdown"]
    if not markdown or not SUMMARY.search(markdown[-1]["source"]):
        problems.append("the last markdown cell is not the '## Summary'")
    if full_budget_on_cpu(nb) is None:
        problems.append("the notebook metadata does not say coursekit.full_budget_on_cpu (true or false)")
    return problems


def anatomy_problems(nb) -> list[str]:
    """Violations of the cell-level anatomy (docs/ANATOMY.md) that would make grading unsafe."""
    problems = []
    ids: dict[str, int] = {}
    tests = 0
    first_answer = None
    helpers = _returns_nothing("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"
                               and nbgrader_meta(c).get("locked") and not is_test(c))
    for index, cell in enumerate(nb["cells"]):
        m = nbgrader_meta(cell)
        if not m:
            if cell["cell_type"] == "code":
                problems.append(f"cell {index} is code without nbgrader metadata: lock it (a student could "
                                "change what the tests rely on)")
            continue
        gid = m.get("grade_id")
        if not gid or not GRADE_ID.match(gid):
            problems.append(f"cell {index} has grade_id {gid!r}; ids are kebab-case")
        elif gid in ids:
            problems.append(f"grade_id {gid!r} is used by cells {ids[gid]} and {index}")
        else:
            ids[gid] = index
        if is_answer(cell) and first_answer is None:
            first_answer = index
        if is_test(cell):
            tests += 1
            if not m.get("points", 0) > 0:
                problems.append(f"test cell {gid!r} has no points")
            if not m.get("locked"):
                problems.append(f"test cell {gid!r} is not locked")
            if first_answer is None:
                problems.append(f"test cell {gid!r} comes before any answer cell")
            source = "".join(cell["source"])  # its own helpers count too: the cell is locked like the others
            if _shows_a_value(source, helpers | _returns_nothing([visible_tests(source)])):
                problems.append(f"test cell {gid!r} ends, as released, with an expression whose value Jupyter would "
                                f"show (a passing test prints nothing): end it with a check or assign the value")
        if is_answer(cell) and "### BEGIN SOLUTION" not in "".join(cell["source"]):
            problems.append(f"answer cell {gid!r} has no ### BEGIN SOLUTION region")
        if is_manual(cell) and not m.get("points", 0) > 0:
            problems.append(f"manually graded cell {gid!r} has no points")
    if tests == 0:
        problems.append("the notebook has no autograded test cells")
    for ex in exercises(nb):
        if not ex.test_indices:
            problems.append(f"answer cell {ex.grade_id!r} is followed by no test cell")
    return problems


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)
