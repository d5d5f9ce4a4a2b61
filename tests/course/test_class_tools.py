"""The class tools on a round trip with four made-up students whose scores are known (stage 01):
``coursekit autograde --jobs 2`` against the sequential run, and ``coursekit report``.

- full submits the instructor's answers: every automatic point, its two written answers awaiting grading;
- blank submits the release untouched: 0 everywhere (nbgrader scores an unchanged written answer 0);
- partial leaves the last two exercises as the release's stubs: those score 0, the rest full marks;
- crash answers everything but kills its kernel in the first answer (``os._exit``): that exercise
  scores 0 as a grading fault, the audit flags the call, and the rest is graded.

The same submissions are graded twice, one after another and two at a time, in two course directories;
every grade cell must score the same in both gradebooks. Then, in a copy of the parallel course, two more
students kill the worker grading them (their kernel's parent): only they go ungraded.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursekit import course
from coursekit.course import audit, cli, grade, report, sealing

from . import support
from .test_nbgrader_roundtrip import scratch_course, submission

STUBBED = ("gd-step-impl", "linear-impl")  # the last two exercises: no later exercise calls them
CRASHED = "sigmoid-impl"
STUDENTS = ("full", "blank", "partial", "crash")

pytestmark = pytest.mark.course


@pytest.fixture(scope="module", params=["01-backprop"])  # the stage in the node id: one unit of work (conftest)
def graded(request, tmp_path_factory):
    stage = request.param
    sequential = tmp_path_factory.mktemp("sequential")
    source, release, solved = scratch_course(sequential, stage)
    answers = {
        "full": solved,
        "blank": {},
        "partial": {gid: text for gid, text in solved.items() if gid not in STUBBED},
        "crash": {**solved, CRASHED: solved[CRASHED] + "\nimport os\nos._exit(1)\n"},
    }
    for student in STUDENTS:
        folder = sequential / "submitted" / student / stage
        folder.mkdir(parents=True)
        nbformat.write(submission(release, answers[student]), folder / f"{stage}.ipynb")
    parallel = tmp_path_factory.mktemp("parallel") / "course"
    shutil.copytree(sequential, parallel, symlinks=True)
    with support.environment({}, unset=("NBGRADER_EXECUTION", "COURSEKIT_BUDGET")):
        status = {"sequential": grade.autograde(sequential, stage, ["--create", "--force"]),
                  "parallel": grade.autograde(parallel, stage, ["--create", "--force"], jobs=2)}
    return stage, sequential, parallel, source, status, (release, answers)


def cell_scores(root, stage):
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {(s.student_id, nb.name, g.name): (g.score, g.max_score, g.needs_manual_grade)
                for s in gb.find_assignment(stage).submissions for nb in s.notebooks for g in nb.grades}


def expected(source) -> dict[str, dict[str, float | None]]:
    """Each student's known score of each exercise (None: a written answer awaiting the instructor)."""
    points = {course.nbgrader_meta(c)["grade_id"]: float(course.nbgrader_meta(c)["points"])
              for c in source.cells if course.nbgrader_meta(c).get("grade")}
    exercises = {ex.grade_id: sum(points[t] for t in ex.test_ids) for ex in course.exercises(source)}
    written = [gid for gid in points if course.nbgrader_meta(next(
        c for c in source.cells if course.nbgrader_meta(c).get("grade_id") == gid)).get("solution")]
    assert set(STUBBED) | {CRASHED} <= set(exercises) and len(written) == 2
    known = {}
    for student in STUDENTS:
        zero = {"full": (), "blank": tuple(exercises), "partial": STUBBED, "crash": (CRASHED,)}[student]
        known[student] = {gid: 0.0 if gid in zero else value for gid, value in exercises.items()}
        known[student].update({gid: 0.0 if student == "blank" else None for gid in written})
    return known


def test_both_runs_report_every_submission_graded(graded):
    stage, sequential, parallel, _, status, _ = graded
    assert status == {"sequential": 0, "parallel": 0}
    for root in (sequential, parallel):
        for student in STUDENTS:
            assert (root / "autograded" / student / stage / f"{stage}.ipynb").is_file(), (root, student)
    assert not grade.work_folder(parallel, stage).exists(), "the workers' folders were not removed"


def test_parallel_scores_equal_the_sequential_run_exactly(graded):
    stage, sequential, parallel, _, _, _ = graded
    one, two = cell_scores(sequential, stage), cell_scores(parallel, stage)
    assert len(one) == len(STUDENTS) * 21  # every grade cell of stage 01 for every student
    assert two == one, {k: (one.get(k), two.get(k)) for k in one.keys() | two.keys() if one.get(k) != two.get(k)}


def test_the_report_has_the_known_scores(graded):
    stage, sequential, parallel, source, _, _ = graded
    known = expected(source)
    for root in (sequential, parallel):
        found = report.gather(root, stage)
        assert {item.name: {s: item.scores[s] for s in STUDENTS} for item in found.items} == \
            {gid: {s: known[s][gid] for s in STUDENTS} for gid in known["full"]}
        for student in STUDENTS:
            assert found.totals[student][0] == sum(v or 0.0 for v in known[student].values())
        assert found.not_graded == []
        assert [(r.student, r.where) for r in found.faults] == [("crash", CRASHED)]
        assert any(r.student == "crash" and r.where == CRASHED and "_exit" in r.finding for r in found.flags)
        assert not [r for r in found.flags if r.student != "crash"], found.flags
        assert set(found.seconds) == set(STUDENTS) and all(t > 0 for t in found.seconds.values())


class Tables(HTMLParser):
    """The report page's tables (by class) as rows of cell texts, and its images."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self._table, self._row, self._cell = {}, 0, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("class"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "img" and attrs.get("src", "").startswith("data:image/png;base64,"):
            self.images += 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


def test_the_report_page_shows_them(graded, tmp_path):
    stage, _, parallel, source, _, _ = graded
    known = expected(source)
    out = tmp_path / "report.html"
    assert cli.main(["--root", str(parallel), "report", stage, "--output", str(out)]) == 0
    page = Tables()
    page.feed(out.read_text())
    rows = {row[0]: row for row in page.tables["exercises"][1:]}
    assert set(rows) == set(known["full"])
    for gid, row in rows.items():
        graded_ = [known[s][gid] for s in STUDENTS if known[s][gid] is not None]
        full = sum(v == known["full"][gid] for v in graded_) if known["full"][gid] is not None else \
            sum(v > 0 for v in graded_)
        assert row[3] == f"{sum(graded_) / len(graded_):.2f}", row  # mean
        if known["full"][gid] is not None:  # an exercise tested automatically: its share at full marks
            assert row[4] == f"{100 * full / len(graded_):.0f}%", row
        assert row[6] == str(len(STUDENTS) - len(graded_)), row  # awaiting grading
    failing = [row[0] for row in page.tables["failing"][1:]]
    # below full marks: 2 students on the stubbed and the crashed exercises, 1 (blank) on each of the others and
    # on the written answers (only blank's, unchanged, is graded yet)
    assert set(failing[:3]) == {*STUBBED, CRASHED} and len(failing) == len(rows), failing
    assert [row[:3] for row in page.tables["faults"][1:]] == [["crash", stage, CRASHED]]
    assert any(row[0] == "crash" and "_exit" in row[3] for row in page.tables["flags"][1:])
    assert sorted(row[0] for row in page.tables["times"][1:]) == sorted(STUDENTS)
    assert page.images == 1 + len(rows) + 1  # the total, one per exercise with grades, the times
    students = {row[0]: row for row in page.tables["students"][1:]}
    assert {s: float(students[s][1]) for s in STUDENTS} == {s: sum(v or 0.0 for v in known[s].values()) for s in STUDENTS}


def test_the_merge_replays_the_workers_and_executes_nothing(graded):
    stage, _, parallel, _, _, _ = graded
    log = (parallel / sealing.REPORTS / stage / "autograde.log").read_text()
    workers, merge = log.split("===== the grades saved into the course's gradebook")
    assert workers.count("[IPKernelApp]") >= len(STUDENTS)  # the workers ran the kernels
    assert "[IPKernelApp]" not in merge and "GradingFault" not in merge
    assert sorted(re.findall(r"(\w+): [\w-]+'s outputs replayed from worker\d\d", merge)) == sorted(STUDENTS)


def replay_run(course_dir, stage, student, replay, *options):
    return subprocess.run([sys.executable, "-m", "nbgrader", "autograde", stage, f"--student={student}", "--force",
                           f"--SealedExecute.replay={replay}", *options], cwd=course_dir, capture_output=True,
                          text=True, env=grade._environment(), timeout=300)


def fake_worker(replay, graded_course, stage, student, notebook_from, edit=None):
    """A worker folder holding ``notebook_from``'s graded notebook as ``student``'s, and a manifest with the
    digests taken before ``edit`` changes the notebook."""
    worker = replay / "worker00"
    files = {}
    for source, relative in ((graded_course / "autograded" / notebook_from / stage / f"{stage}.ipynb",
                              f"autograded/{student}/{stage}/{stage}.ipynb"),
                             (graded_course / sealing.REPORTS / stage / student / f"{stage}.json",
                              f"{sealing.REPORTS}/{stage}/{student}/{stage}.json")):
        target = worker / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        target.chmod(0o644)
        files[relative] = hashlib.sha256(target.read_bytes()).hexdigest()
    (replay / sealing.MANIFEST).write_text(json.dumps({student: {"worker": "worker00", "files": files}}))
    if edit is not None:
        path = worker / f"autograded/{student}/{stage}/{stage}.ipynb"
        path.write_text(edit(path.read_text()))


def test_a_replay_of_another_submission_or_of_a_changed_file_is_refused(graded, tmp_path):
    """The single writer takes a worker's outputs only for the very notebook it rebuilt, and only as the worker
    wrote it: blank's grades cannot come from full's graded notebook, nor from blank's with its errors removed."""
    stage, _, parallel, _, _, _ = graded
    course_dir = tmp_path / "course"
    shutil.copytree(parallel, course_dir, symlinks=True)
    before = cell_scores(course_dir, stage)

    def no_errors(text):
        nb = nbformat.reads(text, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"]
        return nbformat.writes(nb)

    for case, (source, edit, message) in {"another's": ("full", None, "is not this submission"),
                                          "changed": ("blank", no_errors, "changed after its worker graded it")}.items():
        replay = tmp_path / case
        fake_worker(replay, parallel, stage, "blank", source, edit)  # the graded files as the fixture left them
        done = replay_run(course_dir, stage, "blank", replay)
        assert message in done.stdout + done.stderr, (case, done.stdout[-2000:], done.stderr[-2000:])
        after = cell_scores(course_dir, stage)
        assert all(after[k][0] in (0, None) for k in after if k[0] == "blank"), f"{case}: blank got points"
        assert {k: v for k, v in after.items() if k[0] != "blank"} == \
            {k: v for k, v in before.items() if k[0] != "blank"}


def test_the_merge_applies_late_penalties_and_the_report_subtracts_them(graded, tmp_path):
    """The grades saved from a worker's notebook go through nbgrader's own late-penalty step: a submission after
    the due date, under the 'zero' method, totals 0 in the report (the gradebook keeps the score and the
    penalty apart)."""
    import datetime

    stage, _, parallel, _, _, _ = graded
    course_dir = tmp_path / "course"
    shutil.copytree(parallel, course_dir, symlinks=True)
    due = datetime.datetime(2026, 1, 1, 12, 0, 0)
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(stage, duedate=due)
    (course_dir / "submitted" / "full" / stage / "timestamp.txt").write_text("2026-01-01 13:00:00.000000 UTC")
    replay = tmp_path / "replay"
    fake_worker(replay, parallel, stage, "full", "full")
    done = replay_run(course_dir, stage, "full", replay, "--LateSubmissionPlugin.penalty_method=zero")
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        late = gb.find_submission(stage, "full")
        assert late.total_seconds_late == 3600
        score, penalty = float(late.score), float(late.late_submission_penalty)
    assert score > 0 and penalty == score
    found = report.gather(course_dir, stage)
    assert found.totals["full"][0] == 0.0
    assert found.totals["partial"] == report.gather(parallel, stage).totals["partial"]


def test_the_skip_rule_is_nbgraders(tmp_path):
    """Without --force, the wrapper skips exactly what nbgrader skips: its own converter is the oracle, asked
    whether it would grade each of these submissions (graded before or not, timestamps old, new, missing, bad)."""
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    t1, t2 = "2026-01-01 10:00:00.000000 UTC", "2026-01-02 10:00:00.000000 UTC"
    cases = {  # (graded folder, graded notebook, submitted stamp, graded stamp): nbgrader skips it
        "never graded": ((False, False, None, None), False),
        "graded, no stamps": ((True, True, None, None), True),
        "graded, same stamp": ((True, True, t1, t1), True),
        "resubmitted": ((True, True, t2, t1), False),
        "an older stamp": ((True, True, t1, t2), True),
        "a stamp only on the submission": ((True, True, t1, None), True),
        "a graded folder with no notebook": ((True, False, None, None), True),
    }
    for case, ((folder, notebook, new, old), skipped) in cases.items():
        root = tmp_path / case.replace(" ", "-").replace(",", "")
        (root / "submitted" / "ada" / "a1").mkdir(parents=True)
        (root / "submitted" / "ada" / "a1" / "a1.ipynb").write_text("{}")
        graded_dir = root / "autograded" / "ada" / "a1"
        if folder:
            graded_dir.mkdir(parents=True)
        if notebook:
            (graded_dir / "a1.ipynb").write_text("{}")
        for where, stamp in ((root / "submitted" / "ada" / "a1", new), (graded_dir, old)):
            if stamp:
                (where / "timestamp.txt").write_text(stamp)
        ours = grade._up_to_date(root, "a1", "ada")
        theirs = not Autograde(coursedir=CourseDirectory(root=str(root))).init_destination("a1", "ada")
        assert (ours, theirs) == (skipped, skipped), case
    bad = tmp_path / "never-graded"
    (bad / "autograded" / "ada" / "a1").mkdir(parents=True)
    (bad / "submitted" / "ada" / "a1" / "timestamp.txt").write_text("not a time")
    assert not grade._up_to_date(bad, "a1", "ada")  # handed to nbgrader, which stops on it and says why


def test_students_who_kill_their_worker_cost_only_their_own_submissions(graded, tmp_path, capsys):
    """An answer that kills the process grading it (its kernel's parent, a worker here) stops that worker: the
    student is reported as not graded and a new worker takes the next submission. Two killers and two workers:
    without the new workers, partial (handed out last) would not be graded."""
    stage, _, parallel, _, _, (release, answers) = graded
    course_dir = tmp_path / "course"
    shutil.copytree(parallel, course_dir, symlinks=True)
    kill = "\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    for killer in ("killer", "killer2"):
        folder = course_dir / "submitted" / killer / stage
        folder.mkdir(parents=True)
        nbformat.write(submission(release, {**answers["full"], CRASHED: answers["full"][CRASHED] + kill}),
                       folder / f"{stage}.ipynb")
    before = cell_scores(course_dir, stage)
    capsys.readouterr()
    with support.environment({}, unset=("NBGRADER_EXECUTION", "COURSEKIT_BUDGET")):
        # blank, killer, killer2, partial, handed out in that order
        status = grade.autograde(course_dir, stage, ["--student=[bkp]*", "--force"], jobs=2)
    out = capsys.readouterr().out
    assert status == 1
    not_graded = out.split("NOT GRADED", 1)[-1]
    for killer in ("killer", "killer2"):
        assert f"{killer}: 01-backprop.ipynb has no autograded copy" in not_graded, out[-3000:]
    assert "blank:" not in not_graded and "partial:" not in not_graded, out[-3000:]
    log = (course_dir / sealing.REPORTS / stage / "autograde.log").read_text()
    for killer in ("killer", "killer2"):
        assert re.search(rf"worker\d\d stopped while grading {killer} \(exit status -9\)", log), log[-3000:]
    assert log.count("a new worker goes on") == 2
    assert sorted(re.findall(r"(\w+): [\w-]+'s outputs replayed from worker\d\d", log)) == ["blank", "partial"]
    assert grade.work_folder(course_dir, stage).is_dir(), "the workers' folders must be kept when one failed"
    after = cell_scores(course_dir, stage)
    assert {k: v for k, v in after.items() if not k[0].startswith("killer")} == before
    assert all(v[0] in (0, None) for k, v in after.items() if k[0].startswith("killer"))
    flagged = {r.student for r in audit.audit_assignment(course_dir, stage) if ".kill" in r.finding}
    assert flagged == {"killer", "killer2"}, flagged


def test_bad_jobs_and_unknown_assignments_are_clear_errors(graded, capsys):
    stage, _, parallel, _, _, _ = graded
    with pytest.raises(ValueError, match="jobs must be a whole number"):
        grade.autograde(parallel, stage, [], jobs=0)
    with pytest.raises(ValueError, match="at most this machine's"):
        grade.autograde(parallel, stage, [], jobs=(os.cpu_count() or 1) + 1)
    # nbgrader reads --student as a glob: so does the wrapper, and a pattern that matches nobody is an error
    assert grade._chosen_students(["--student=p*"], list(STUDENTS)) == ["partial"]
    assert grade._chosen_students(["--CourseDirectory.student_id", "*a*"], list(STUDENTS)) == ["blank", "partial", "crash"]
    assert grade.autograde(parallel, stage, ["--student=nobody*"], jobs=2) == 1
    assert "no submission of 01-backprop matching 'nobody*'" in capsys.readouterr().err
    assert cli.main(["--root", str(parallel), "report", "no-such-stage"]) == 2
    err = capsys.readouterr().err
    assert "'no-such-stage' is not in the gradebook" in err and stage in err


def test_the_report_escapes_what_students_and_their_code_chose():
    """Student ids and audit findings are the students' text: the page shows them, never runs them."""
    evil = '<img src=x onerror="alert(1)">'
    made = report.ClassReport("a1", [report.Item("ex<1>", "nb", ["t"], 1.0, scores={evil: 1.0, "bob": 0.0})],
                              {evil: (1.0, 1.0), "bob": (0.0, 1.0)}, {evil: 2.0},
                              [audit.Row(evil, "nb", "ex<1>", "<script>alert(2)</script>")],
                              [audit.Row("bob", "nb", "ex<1>", "<b>died</b>")], [])
    page = report.render(made)
    assert evil not in page and "<script>" not in page and "<b>died" not in page
    assert html.escape(evil) in page and "&lt;script&gt;" in page
    parsed = Tables()
    parsed.feed(page)
    assert parsed.images == 3  # the totals, the one exercise, the times: all of them the report's own plots
    assert [row[0] for row in parsed.tables["students"][1:]] == sorted([evil, "bob"])
    assert report.render(report.ClassReport("a2", [], {}, {}, [], [], ["carol"])).count("No graded submission yet") == 1
