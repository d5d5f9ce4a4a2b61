"""An nbgrader round trip for every stage, in a scratch course directory (docs/ANATOMY.md §4).

generate_assignment -> four submissions -> autograde -> generate_feedback, then the gradebook:
- ada submits the full solution: every autograded point;
- bob submits the untouched release: 0;
- cy submits one registered wrong answer: strictly between;
- dee's first answer never returns (a top-level infinite loop): nbgrader's per-cell timeout
  (shortened for dee alone) interrupts it, that exercise scores 0 and the later ones are graded.
The feedback of every student contains no hidden-test source.
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

from . import support

STAGES = support.STAGES
LOOP_TIMEOUT = 10  # seconds: the round trip's Execute.timeout, so the loop is cut off quickly

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
    first, wrong_one = exercises[0], support.wrong_answers(stage)[exercises[0].grade_id]
    students = {
        "ada": submission(release, solved),
        "bob": submission(release, {}),
        "cy": submission(release, {**solved, first.grade_id: next(iter(wrong_one.values()))}),
        "dee": submission(release, {**solved, first.grade_id: "while True:\n    pass\n" + solved[first.grade_id]}),
    }
    for student, nb in students.items():
        folder = root / "submitted" / student / stage
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{stage}.ipynb")

    # ada, bob and cy under the configured timeout; dee alone under a short one, so that the loop is
    # cut off in seconds without putting every other cell under that limit
    nbgrader(root, "autograde", stage, "--create", "--force", "--CourseDirectory.student_id_exclude=dee")
    nbgrader(root, "autograde", stage, "--create", "--force", "--student=dee", f"--Execute.timeout={LOOP_TIMEOUT}")
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


def test_untouched_release_scores_zero(graded):
    stage, root, _, _, _ = graded
    score, max_score, _ = scores(root, stage, "bob")
    assert max_score > 0
    assert score == 0


def test_one_wrong_answer_scores_strictly_between(graded):
    stage, root, _, _, exercises = graded
    score, max_score, cells = scores(root, stage, "cy")
    assert 0 < score < max_score
    assert any(cells[gid][0] < cells[gid][1] for gid in exercises[0].test_ids)


def test_an_answer_that_never_returns_is_cut_off_and_the_rest_is_graded(graded):
    stage, root, _, _, exercises = graded
    score, max_score, cells = scores(root, stage, "dee")
    assert all(cells[gid][0] == 0 for gid in exercises[0].test_ids), "the looping exercise should score 0"
    later = [gid for ex in exercises[1:] for gid in ex.test_ids]
    assert any(cells[gid][0] == cells[gid][1] for gid in later), "the exercises after the loop were not graded"
    assert 0 < score < max_score
    autograded = root / "autograded" / "dee" / stage / f"{stage}.ipynb"
    answer = next(c for c in course.read_notebook(autograded).cells
                  if course.nbgrader_meta(c).get("grade_id") == exercises[0].grade_id)
    assert any(o.get("output_type") == "error" for o in answer.outputs), "the loop was not interrupted"


def test_feedback_holds_no_hidden_test_source(graded):
    stage, root, source, release, _ = graded
    secret = hidden_lines(source, release)
    assert secret, "the stage has no hidden tests to protect"
    # positive control: the autograded notebooks, which feedback is made from, do hold them
    autograded = course.read_notebook(root / "autograded" / "cy" / stage / f"{stage}.ipynb")
    autograded_source = "\n".join(c.source for c in autograded.cells)
    assert all(line in autograded_source for line in secret)
    for student in ("ada", "bob", "cy", "dee"):
        page = (root / "feedback" / student / stage / f"{stage}.html").read_text()
        assert page_text(page).strip(), f"{student}'s feedback is empty"
        assert leaks(page, secret) == [], f"{student}'s feedback shows hidden tests"
        # tracebacks quote the failing cell's source lines ("Cell In[...]"): feedback keeps messages only
        assert "Cell In[" not in page_text(page), f"{student}'s feedback shows a traceback"


def test_the_exchange_releases_fetches_submits_and_collects(tmp_path):
    """The single-machine exchange of nbgrader_config.py (a folder of the course directory): what
    Formgrader's Release and Collect run, with a student on the same machine."""
    stage = STAGES[0]
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
