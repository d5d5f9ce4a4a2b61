"""An nbgrader round trip for every stage without an adversarial corpus (those are graded through nbgrader by
tests/course/test_adversarial.py), in a scratch course directory (docs/ANATOMY.md §4).

generate_assignment -> two submissions -> one autograde -> generate_feedback, then the gradebook:
- ada submits the full solution: every autograded point;
- mix submits every kind of trouble at once, one exercise each: the first answer never returns (a
  top-level infinite loop), cut off by ``SealedExecute.answer_timeout`` (shortened here) as a fault,
  so that exercise scores 0; the last but one is a registered wrong answer and loses a point; the last
  is the release's stub and scores 0; every exercise between is solved and scores full points, which
  shows the rest of the notebook is graded after the fault (the wrong answer comes after them: later
  exercises may call it, and only the stub's follow it). Its total is strictly between 0 and the maximum.
The feedback of both students contains no hidden-test source and no traceback.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursekit import course
from coursekit.course import sealing

from . import support

# A stage with an adversarial corpus (tests/adversarial/NN-name.py) is autograded through nbgrader there, with two
# dozen submissions in one run: its control student is this round trip's full solution, its faults (a killed kernel,
# a hang) cost one exercise each as the loop does here, and its feedback is checked for hidden tests too. The round
# trip covers the other stages, so that no stage's notebook is graded twice through nbgrader for the same facts.
CORPORA = support.ROOT / "tests" / "adversarial"
STAGES = [stage for stage in support.STAGES if not (CORPORA / f"{stage}.py").is_file()]
ANSWER_TIMEOUT = 5  # seconds: the round trip's SealedExecute.answer_timeout, so the loop is cut off quickly
STUDENTS = ("ada", "mix")

pytestmark = pytest.mark.course


def nbgrader(course_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # nbgrader runs `alembic` to create a gradebook: it must be found beside this Python
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("NBGRADER_EXECUTION", None)
    env.pop("COURSEKIT_BUDGET", None)
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_dir, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def submission(release: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        gid = course.nbgrader_meta(cell).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def hidden_lines(nb, release) -> list[str]:
    """The meaningful source lines of the hidden-test regions that the release does not show anyway."""
    shown = "\n".join(cell.source for cell in release.cells)  # a hidden line the release shows anyway is no leak
    lines, inside = [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            marker = line.strip()
            if marker == "### BEGIN HIDDEN TESTS":
                inside = True
            elif marker == "### END HIDDEN TESTS":
                inside = False
            elif inside and len(marker) >= 12 and marker not in shown:  # substring: a visible line may extend it
                lines.append(marker)
    return lines


def page_text(page: str) -> str:
    """What a reader sees: tags removed (the highlighter splits code into spans), entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def leaks(page: str, lines: list[str]) -> list[str]:
    text = page_text(page)
    return [line for line in lines if line in text]


def test_leak_detection_sees_through_highlighting():
    line = 'check_close(s, scipy.special.expit(a), "sigmoid", tol=1e-12)'
    page = ('<span class="n">check_close</span><span class="p">(</span>s, scipy.special.expit(a), '
            '&quot;sigmoid&quot;, tol=1e-12)')
    assert leaks(page, [line]) == [line]
    assert leaks("<p>nothing here</p>", [line]) == []


@pytest.fixture(scope="module", params=STAGES)
def graded(request, tmp_path_factory):
    stage = request.param
    root = tmp_path_factory.mktemp(f"course-{stage}")
    shutil.copy2(support.ROOT / "nbgrader_config.py", root)
    shutil.copytree(support.ROOT / "solutions" / stage, root / "solutions" / stage)
    nbgrader(root, "generate_assignment", stage, "--force")

    source = course.read_notebook(root / "solutions" / stage / f"{stage}.ipynb")
    release = course.read_notebook(root / "notebooks" / stage / f"{stage}.ipynb")
    solved = {course.nbgrader_meta(c)["grade_id"]: support.strip_markers(c.source)
              for c in source.cells if course.nbgrader_meta(c).get("solution")}
    exercises = course.exercises(source)
    assert len(exercises) >= 4, (f"{stage} has {len(exercises)} autograded exercises: the round trip needs at "
                                 f"least 4 (a loop, a solved one, a wrong answer and a stub, one exercise each)")
    looping, wrong, stub = exercises[0], exercises[-2], exercises[-1]
    mix = {**solved, looping.grade_id: "while True:\n    pass\n" + solved[looping.grade_id],
           wrong.grade_id: next(iter(support.wrong_answers(stage)[wrong.grade_id].values()))}
    del mix[stub.grade_id]  # the release's stub stays
    students = {"ada": submission(release, solved), "mix": submission(release, mix)}
    for student, nb in students.items():
        folder = root / "submitted" / student / stage
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{stage}.ipynb")

    # one run for both: only the answer cells get the short limit, every other cell keeps the configured one
    nbgrader(root, "autograde", stage, "--create", "--force", f"--SealedExecute.answer_timeout={ANSWER_TIMEOUT}")
    nbgrader(root, "generate_feedback", stage, "--force")
    return stage, root, source, release, exercises


def scores(root: Path, stage: str, student: str):
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(stage, stage, student)
        cells = {grade.name: (grade.score, grade.max_score) for grade in nb.grades if grade.cell_type == "code"}
        return nb.code_score, nb.max_code_score, cells


def test_full_solution_scores_every_point(graded):
    stage, root, _, _, _ = graded
    score, max_score, cells = scores(root, stage, "ada")
    assert max_score > 0
    assert score == max_score, {k: v for k, v in cells.items() if v[0] != v[1]}


def mix_exercises(graded):
    """The gradebook's test cells of mix, and its exercises: looping, wrong, stub and the solved ones."""
    stage, root, _, _, exercises = graded
    score, max_score, cells = scores(root, stage, "mix")
    return score, max_score, cells, exercises[0], exercises[-2], exercises[-1], exercises[1:-2]


def test_an_answer_that_never_returns_is_cut_off_as_a_fault(graded):
    stage, root, _, _, _ = graded
    _, _, cells, looping, _, _, _ = mix_exercises(graded)
    assert all(cells[gid][0] == 0 for gid in looping.test_ids), "the looping exercise should score 0"
    autograded = root / "autograded" / "mix" / stage / f"{stage}.ipynb"
    answer = next(c for c in course.read_notebook(autograded).cells
                  if course.nbgrader_meta(c).get("grade_id") == looping.grade_id)
    assert any(o.get("output_type") == "error" for o in answer.outputs), "the loop was not interrupted"
    # the answer's own limit cut it off, as a fault that costs this exercise alone
    report = sealing.read_report(root / sealing.REPORTS / stage / "mix" / f"{stage}.json")
    faults = [(f["exercise"], f"{ANSWER_TIMEOUT} s limit (SealedExecute.answer_timeout)" in f["what"])
              for f in report.get("faults", [])]
    assert faults == [(looping.grade_id, True)], report.get("faults")


def test_a_wrong_answer_loses_a_point(graded):
    _, _, cells, _, wrong, _, _ = mix_exercises(graded)
    assert any(cells[gid][0] < cells[gid][1] for gid in wrong.test_ids), "the wrong answer kept every point"


def test_a_stub_scores_zero(graded):
    _, _, cells, _, _, stub, _ = mix_exercises(graded)
    assert sum(cells[gid][1] for gid in stub.test_ids) > 0
    assert all(cells[gid][0] == 0 for gid in stub.test_ids), "the release's stub scored points"


def test_every_other_exercise_is_graded_after_the_fault(graded):
    _, _, cells, _, _, _, others = mix_exercises(graded)
    assert others and all(ex.test_ids for ex in others)
    missed = {gid: cells[gid] for ex in others for gid in ex.test_ids if cells[gid][0] != cells[gid][1]}
    assert not missed, f"solved exercises lost points after the fault: {missed}"


def test_a_mixed_submission_scores_strictly_between(graded):
    score, max_score, _, _, _, _, _ = mix_exercises(graded)
    assert 0 < score < max_score


def test_feedback_holds_no_hidden_test_source(graded):
    stage, root, source, release, _ = graded
    secret = hidden_lines(source, release)
    assert secret, "the stage has no hidden tests to protect"
    # positive control: the autograded notebooks, which feedback is made from, do hold them
    for student in STUDENTS:
        autograded = course.read_notebook(root / "autograded" / student / stage / f"{stage}.ipynb")
        autograded_source = "\n".join(c.source for c in autograded.cells)
        assert all(line in autograded_source for line in secret), f"{student}'s autograded notebook lacks them"
    for student in STUDENTS:
        page = (root / "feedback" / student / stage / f"{stage}.html").read_text()
        assert page_text(page).strip(), f"{student}'s feedback is empty"
        assert leaks(page, secret) == [], f"{student}'s feedback shows hidden tests"
        # tracebacks quote the failing cell's source lines ("Cell In[...]"): feedback keeps messages only
        assert "Cell In[" not in page_text(page), f"{student}'s feedback shows a traceback"


def test_every_stage_is_autograded_through_nbgrader_by_the_round_trip_or_its_corpus():
    corpora = [stage for stage in support.STAGES if stage not in STAGES]
    assert STAGES and corpora, "the round trip and the adversarial corpora should each cover some stages"
    assert set(STAGES) | set(corpora) == set(support.STAGES)


def test_the_exchange_releases_fetches_submits_and_collects(tmp_path):
    """The single-machine exchange of nbgrader_config.py (a folder of the course directory): what
    Formgrader's Release and Collect run, with a student on the same machine."""
    stage = support.STAGES[0]
    root, student = tmp_path / "course", tmp_path / "student"
    student.mkdir()
    shutil.copytree(support.ROOT / "solutions" / stage, root / "solutions" / stage)
    shutil.copy2(support.ROOT / "nbgrader_config.py", root)
    exchange = root / "exchange"
    nbgrader(root, "generate_assignment", stage, "--force")
    assert exchange.is_dir(), "loading nbgrader_config.py should create the course's exchange folder"
    nbgrader(root, "release_assignment", stage, "--force")
    assert (exchange / "dl4vision" / "outbound" / stage / f"{stage}.ipynb").is_file()

    as_student = ("--course=dl4vision", f"--Exchange.root={exchange}")
    nbgrader(student, "fetch_assignment", stage, *as_student)
    fetched = student / stage / f"{stage}.ipynb"
    assert fetched.is_file()
    nbgrader(student, "submit", stage, *as_student)
    nbgrader(root, "collect", stage)
    collected = list((root / "submitted").glob(f"*/{stage}/{stage}.ipynb"))
    assert len(collected) == 1 and collected[0].read_bytes() == fetched.read_bytes()
