"""The adversarial corpus (tests/adversarial/NN-name.py), autograded end to end through nbgrader with the
course's sealed run, as ``coursekit autograde`` does it (docs/ANATOMY.md, "Grading integrity").

Every attack scores no points it did not earn and is flagged by the audit; every valid alternative answer
scores full marks and is not flagged; every fault costs one exercise only; no feedback shows a hidden
test; and the wrapper reports every submission graded. A control student (the full solution) scores
every point, so a corpus that scores 0 because grading broke cannot pass.
"""

from __future__ import annotations

import importlib.util

import nbformat
import pytest

from coursekit import course
from coursekit.course import audit, grade

from . import support
from .test_nbgrader_roundtrip import hidden_lines, leaks, nbgrader, scores, scratch_course

CORPORA = support.ROOT / "tests" / "adversarial"
STAGES = [s for s in support.STAGES if (CORPORA / f"{s}.py").is_file()]
CELL_TIMEOUT = 20  # seconds: the corpus's Execute.timeout, so that the hang is cut off quickly

pytestmark = pytest.mark.course


def load_corpus(stage: str) -> dict:
    spec = importlib.util.spec_from_file_location(f"corpus_{stage.replace('-', '_')}", CORPORA / f"{stage}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CORPUS


def edit_metadata(nb):
    """A student who edited the notebook file: a test cell's grade switched off, an answer's grade id
    renamed, a test cell duplicated."""
    cells = nb.cells
    test = next(c for c in cells if course.nbgrader_meta(c).get("grade_id") == "sigmoid-values")
    test.metadata["nbgrader"]["grade"] = False
    answer = next(c for c in cells if course.nbgrader_meta(c).get("grade_id") == "softmax-impl")
    answer.metadata["nbgrader"]["grade_id"] = "my-softmax"
    twin = nbformat.from_dict(next(c for c in cells if course.nbgrader_meta(c).get("grade_id") == "softmax-values"))
    twin["id"] = "a-twin"
    cells.insert(cells.index(answer) + 1, twin)


EDITS = {"metadata": edit_metadata}


def build(release, solved, entry) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(release)
    answers = dict(solved) if entry["base"] == "solution" else {}
    for gid, source in entry.get("answers", {}).items():
        answers[gid] = source.replace("__SOLUTION__", solved[gid])
    for cell in nb.cells:
        gid = course.nbgrader_meta(cell).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    setup = next(i for i, c in enumerate(nb.cells) if course.nbgrader_meta(c).get("grade_id") == "setup")
    for offset, source in enumerate(entry.get("cells", []), start=1):
        nb.cells.insert(setup + offset, nbformat.v4.new_code_cell(source))
    if "edit" in entry:
        EDITS[entry["edit"]](nb)
    return nb


@pytest.fixture(scope="module", params=STAGES)
def graded(request, tmp_path_factory):
    stage = request.param
    root = tmp_path_factory.mktemp(f"corpus-{stage}")
    source, release, solved = scratch_course(root, stage)
    corpus = load_corpus(stage)
    students = {name: build(release, solved, entry) for name, entry in corpus.items()}
    students["control"] = build(release, solved, {"base": "solution"})
    for student, nb in students.items():
        folder = root / "submitted" / student / stage
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{stage}.ipynb")
    with support.environment({}, unset=("NBGRADER_EXECUTION", "COURSEKIT_BUDGET")):
        status = grade.autograde(root, stage, ["--create", "--force", f"--Execute.timeout={CELL_TIMEOUT}"])
    nbgrader(root, "generate_feedback", stage, "--force")
    rows = audit.audit_assignment(root, stage)
    return stage, root, source, release, corpus, status, rows


def _exercise_scores(root, stage, student, source):
    _, _, cells = scores(root, stage, student)
    found = {}
    for ex in course.exercises(source):
        got = sum(cells[gid][0] for gid in ex.test_ids)
        found[ex.grade_id] = (got, sum(cells[gid][1] for gid in ex.test_ids))
    return found


def test_the_wrapper_reports_every_submission_graded(graded):
    _, _, _, _, _, status, _ = graded
    assert status == 0


def test_the_control_student_scores_every_point(graded):
    stage, root, *_ = graded
    score, max_score, cells = scores(root, stage, "control")
    assert max_score > 0 and score == max_score, {k: v for k, v in cells.items() if v[0] != v[1]}


def test_attacks_on_stubs_score_nothing(graded):
    stage, root, source, _, corpus, _, _ = graded
    wrong = {}
    for name, entry in corpus.items():
        if entry["expect"] == "nothing":
            score, _, _ = scores(root, stage, name)
            if score != 0:
                wrong[name] = score
    assert not wrong, f"these attacks on an unanswered notebook scored points: {wrong}"
    assert any(e["expect"] == "nothing" for e in corpus.values())


def test_attacked_exercises_score_zero(graded):
    stage, root, source, _, corpus, _, _ = graded
    wrong = {}
    for name, entry in corpus.items():
        if isinstance(entry["expect"], dict) and "without" in entry["expect"]:
            found = _exercise_scores(root, stage, name, source)
            for gid in entry["expect"]["without"]:
                if found[gid][0] != 0:
                    wrong.setdefault(name, {})[gid] = "{}/{}".format(*found[gid])
    assert not wrong, f"attacked exercises scored points: {wrong}"


def test_attacked_checks_score_zero(graded):
    stage, root, _, _, corpus, _, _ = graded
    wrong = {}
    for name, entry in corpus.items():
        if isinstance(entry["expect"], dict) and "failing" in entry["expect"]:
            _, _, cells = scores(root, stage, name)
            wrong.update({f"{name}: {gid}": cells[gid] for gid in entry["expect"]["failing"] if cells[gid][0] != 0})
    assert not wrong, f"attacked test cells scored points: {wrong}"


def test_a_fault_costs_its_exercise_and_nothing_else(graded):
    stage, root, source, _, corpus, _, _ = graded
    faults = [name for name, entry in corpus.items() if isinstance(entry["expect"], dict) and "only" in entry["expect"]]
    assert faults, f"the corpus of {stage} has no fault: every corpus holds at least one"
    wrong = {}
    for name in faults:
        lost = set(corpus[name]["expect"]["only"])
        for gid, (got, best) in _exercise_scores(root, stage, name, source).items():
            if (gid in lost and got != 0) or (gid not in lost and got != best):
                wrong.setdefault(name, {})[gid] = f"{got}/{best}"
    assert not wrong, f"faults cost other than their own exercise (it 0, the rest full): {wrong}"


def test_valid_alternative_answers_and_harmless_edits_score_full_marks(graded):
    stage, root, source, _, corpus, _, _ = graded
    wrong = {}
    for name, entry in corpus.items():
        if entry["expect"] == "full":
            score, max_score, cells = scores(root, stage, name)
            if score != max_score:
                wrong[name] = {k: v for k, v in cells.items() if v[0] != v[1]}
    assert not wrong, f"valid answers lost points: {wrong}"


def test_every_attack_is_flagged_and_no_valid_answer_is(graded):
    *_, corpus, _, rows = graded
    flagged = {row.student for row in rows}
    missed = [n for n, e in corpus.items() if e.get("flagged", True) and n not in flagged]
    false = [n for n, e in corpus.items() if not e.get("flagged", True) and n in flagged]
    assert not missed, f"the audit did not flag these attacks: {missed}"
    assert not false, "the audit flagged valid answers:\n" + audit.table([r for r in rows if r.student in false])
    assert "control" not in flagged


def test_no_feedback_shows_a_hidden_test(graded):
    stage, root, source, release, corpus, _, _ = graded
    secret = hidden_lines(source, release)
    assert secret
    for student in [*corpus, "control"]:
        page = (root / "feedback" / student / stage / f"{stage}.html").read_text()
        assert leaks(page, secret) == [], f"{student}'s feedback shows hidden tests"
