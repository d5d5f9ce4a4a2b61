"""``coursekit report ASSIGNMENT``: the class report, one self-contained HTML page read from the gradebook.

What an instructor wants after grading a class: the distribution of every exercise's scores (one plot
each), the exercises most students fail, what the integrity audit flagged, the grading faults (each
cost a student one exercise), the submissions that were not graded, and the time each submission took
to grade. The exercises are the stage's (:func:`coursekit.course.anatomy.exercises`: an answer cell and
the test cells after it), scored as the sum of their test cells' grades in the gradebook; a manually
graded answer is an item of its own, counted once an instructor has graded it.

:func:`gather` returns the numbers (tests check them against known scores); :func:`render` writes them
as HTML with the plots inline (PNG), so the page can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from coursekit.course import anatomy, audit
from coursekit.course.sealing import REPORTS


@dataclass
class Item:
    """An exercise (its test cells' grades summed) or a manually graded cell, and each student's score."""
    name: str
    notebook: str
    cells: list[str]
    max_score: float
    manual: bool = False
    scores: dict[str, float | None] = field(default_factory=dict)  # None: not graded yet (manual)

    def graded(self) -> list[float]:
        return [s for s in self.scores.values() if s is not None]

    def failed(self) -> int:
        """Students below full marks."""
        return sum(1 for s in self.graded() if s < self.max_score - 1e-9)

    def zero(self) -> int:
        return sum(1 for s in self.graded() if s <= 1e-9)


@dataclass
class ClassReport:
    assignment: str
    items: list[Item]
    totals: dict[str, tuple[float, float]]  # student -> (score after any late penalty, max score)
    seconds: dict[str, float]  # student -> seconds its notebooks took to run in the sealed run
    flags: list[audit.Row]
    faults: list[audit.Row]
    not_graded: list[str]


def _directories(root: Path) -> tuple[str, str, str]:
    """The course's source directory, gradebook URL and course id, as its nbgrader_config.py sets them."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config() \
        if (root / "nbgrader_config.py").is_file() else None
    coursedir = CourseDirectory(config=config) if config is not None else CourseDirectory()
    set_url = config is not None and "db_url" in config.get("CourseDirectory", {})
    url = coursedir.db_url if set_url else f"sqlite:///{root / 'gradebook.db'}"
    return coursedir.source_directory, url, coursedir.course_id


def _items_of(source: Path | None, notebook: str, cells: dict[str, tuple[float, bool]]) -> list[Item]:
    """The notebook's exercises from its source, and any grade cell they do not cover as an item of its own."""
    items: list[Item] = []
    if source is not None and source.is_file():
        for ex in anatomy.exercises(anatomy.read_notebook(source)):
            names = [gid for gid in ex.test_ids if gid in cells]
            if not names and ex.grade_id in cells:  # a manually graded answer (solution and grade)
                names = [ex.grade_id]
            if names:
                items.append(Item(ex.grade_id, notebook, names, sum(cells[n][0] for n in names),
                                  manual=any(cells[n][1] for n in names)))
    covered = {name for item in items for name in item.cells}
    items += [Item(name, notebook, [name], points, manual=manual)
              for name, (points, manual) in cells.items() if name not in covered]
    return items


def gather(root: Path, assignment: str) -> ClassReport:
    """The class report's numbers, read from the course directory ``root``'s gradebook and integrity reports."""
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(root)
    source_dir, db_url, course_id = _directories(root)
    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).is_file():
        raise FileNotFoundError(f"no gradebook at {db_url[len('sqlite:///'):]}: run `coursekit autograde {assignment}` first")
    items: list[Item] = []
    totals: dict[str, tuple[float, float]] = {}
    submitted = {p.parts[-3] for p in (root / "submitted").glob(f"*/{assignment}/*.ipynb")}
    not_graded = sorted(s for s in submitted if not all(
        (graded := root / "autograded" / s / assignment / p.name).is_file() and graded.stat().st_mtime >= p.stat().st_mtime
        for p in (root / "submitted" / s / assignment).glob("*.ipynb")))
    with Gradebook(db_url, course_id=course_id or "default_course") as gb:
        try:
            record = gb.find_assignment(assignment)
        except MissingEntry:
            known = ", ".join(a.name for a in gb.assignments) or "none"
            raise ValueError(f"assignment {assignment!r} is not in the gradebook (it has: {known})") from None
        by_key: dict[tuple[str, str], Item] = {}
        for notebook in record.notebooks:
            answers = {cell.name for cell in notebook.solution_cells}  # a grade cell that is an answer: manual
            cells = {cell.name: (float(cell.max_score), cell.name in answers) for cell in notebook.grade_cells}
            for item in _items_of(root / source_dir / assignment / f"{notebook.name}.ipynb", notebook.name, cells):
                items.append(item)
                for name in item.cells:
                    by_key[(notebook.name, name)] = item
        for submission in record.submissions:
            student = submission.student_id
            if student in not_graded:  # nbgrader's 0 for a submission it could not grade is not a score
                continue
            got: dict[int, list[float | None]] = {}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    item = by_key.get((notebook.name, grade.name))
                    if item is not None:
                        pending = grade.needs_manual_grade and grade.manual_score is None and item.manual
                        got.setdefault(id(item), []).append(None if pending or grade.score is None else float(grade.score))
            for item in items:
                values = got.get(id(item), [])
                item.scores[student] = None if not values or None in values else sum(values)
            penalty = float(submission.late_submission_penalty or 0.0)
            totals[student] = (float(submission.score) - penalty, float(submission.max_score))
    seconds: dict[str, float] = {}
    faults: list[audit.Row] = []
    for path in sorted((root / REPORTS / assignment).glob("*/*.json")):
        student = path.parent.name
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data.get("seconds"), (int, float)):
            seconds[student] = seconds.get(student, 0.0) + float(data["seconds"])
        faults += [audit.Row(student, path.stem, f.get("exercise", "-"), f.get("what", "?")) for f in data.get("faults", [])]
    rows = audit.audit_assignment(root, assignment)
    flags = [row for row in rows if not row.finding.startswith("fault: ")]
    return ClassReport(assignment, items, totals, seconds, flags, faults, not_graded)


# ---------------------------------------------------------------------------------------------- HTML

class Html(str):
    """Markup this module made (a plot): put into the page as it is; every other string is escaped."""


def _png(fig) -> Html:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return Html('<img alt="plot" src="data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode() + '">')


def _bars(values: list[float], maximum: float | None, title: str, xlabel: str) -> Html:
    """A bar per distinct score (scores are sums of cell points: few distinct values), or a histogram."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6, 2.2))
    ax = fig.add_subplot()
    distinct = sorted(set(values))
    if values and len(distinct) <= 12:
        counts = [values.count(v) for v in distinct]
        width = max(maximum or max(distinct) or 1.0, 1.0) / 25
        ax.bar(distinct, counts, width=width, color="#3b6ea5")
        ax.set_xticks(distinct)
        ax.set_xticklabels([f"{v:g}" for v in distinct], fontsize=7)
    elif values:
        ax.hist(values, bins=12, color="#3b6ea5")
    if maximum is not None:
        ax.set_xlim(-0.05 * max(maximum, 1), 1.08 * max(maximum, 1))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("students", fontsize=8)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _png(fig)


def _table(head: list[str], rows: list[list], cls: str) -> str:
    out = [f'<table class="{cls}"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{cell if isinstance(cell, Html) else html.escape(str(cell))}</td>"
                                    for cell in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;
vertical-align:middle}th{background:#f0f0f0}td.n{text-align:right}.none{color:#666;font-style:italic}"""


def render(report: ClassReport) -> str:
    totals = [score for score, _ in report.totals.values()]
    maximum = max((m for _, m in report.totals.values()), default=0.0)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(report.assignment)}: class report"
             f"</title><style>{CSS}</style></head><body>", f"<h1>Class report: {html.escape(report.assignment)}</h1>"]
    parts.append(_table(["submissions graded", "not graded", "mean score", "median score", "maximum"],
                        [[len(report.totals), len(report.not_graded),
                          f"{statistics.mean(totals):.2f}" if totals else "-",
                          f"{statistics.median(totals):g}" if totals else "-", f"{maximum:g}"]], "summary"))
    if totals:
        parts.append(_bars(totals, maximum, "total score", "points"))
    parts.append("<h2>Exercises</h2>")
    rows = []
    for item in report.items:
        graded = item.graded()
        rows.append([item.name, item.notebook, f"{item.max_score:g}" + (" (manual)" if item.manual else ""),
                     f"{statistics.mean(graded):.2f}" if graded else "-", _pct(len(graded) - item.failed(), len(graded)),
                     _pct(item.zero(), len(graded)), len(item.scores) - len(graded),
                     _bars(graded, item.max_score, item.name, "points") if graded else "no grades yet"])
    parts.append(_table(["exercise", "notebook", "points", "mean", "full marks", "zero", "awaiting grading",
                         "distribution"], rows, "exercises"))
    parts.append("<h2>Exercises most students fail</h2><p>Students below full marks, most first (a written answer "
                 "counts once graded).</p>")
    ranked = sorted((i for i in report.items if i.graded()),
                    key=lambda i: (-i.failed(), -i.failed() / len(i.graded()), i.name))
    parts.append(_table(["exercise", "below full marks", "students", "zero"],
                        [[i.name, _pct(i.failed(), len(i.graded())), i.failed(), i.zero()] for i in ranked
                         if i.failed()], "failing")
                 if any(i.failed() for i in ranked) else '<p class="none">Every graded student has full marks on every exercise.</p>'
                 if ranked else '<p class="none">No graded submission yet.</p>')
    parts.append("<h2>Integrity audit</h2><p>What <code>coursekit audit</code> found: a flag is for the instructor "
                 "to read, not a verdict.</p>")
    parts.append(_table(["student", "notebook", "cell", "finding"],
                        [[r.student, r.notebook, r.where, r.finding] for r in report.flags], "flags")
                 if report.flags else '<p class="none">No findings.</p>')
    parts.append("<h2>Grading faults</h2><p>Each cost the student the exercise it happened in; the rest of the "
                 "notebook was graded.</p>")
    parts.append(_table(["student", "notebook", "exercise", "what"],
                        [[r.student, r.notebook, r.where, r.finding] for r in report.faults], "faults")
                 if report.faults else '<p class="none">No faults.</p>')
    parts.append("<h2>Not graded</h2>")
    parts.append(_table(["student"], [[s] for s in report.not_graded], "not-graded") if report.not_graded
                 else '<p class="none">Every submission was graded.</p>')
    parts.append("<h2>Time per submission</h2><p>Seconds the sealed run took to execute each submission's "
                 "notebooks, slowest first.</p>")
    if report.seconds:
        times = list(report.seconds.values())
        parts.append(_bars(times, None, "time per submission", "seconds") if len(set(times)) > 12
                     else _bars([round(t) for t in times], None, "time per submission", "seconds (rounded)"))
        parts.append(_table(["student", "seconds"], [[s, f"{t:.1f}"] for s, t in
                                                      sorted(report.seconds.items(), key=lambda kv: -kv[1])], "times"))
    else:
        parts.append('<p class="none">No timings recorded (graded before coursekit recorded them).</p>')
    parts.append("<h2>Students</h2>")
    flags_of: dict[str, int] = {}
    for row in report.flags:
        flags_of[row.student] = flags_of.get(row.student, 0) + 1
    parts.append(_table(["student", "score", "of", "findings", "faults", "seconds"],
                        [[s, f"{score:g}", f"{of:g}", flags_of.get(s, 0), sum(r.student == s for r in report.faults),
                          f"{report.seconds[s]:.1f}" if s in report.seconds else "-"]
                         for s, (score, of) in sorted(report.totals.items())], "students"))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(root: Path, assignment: str, output: Path | None = None) -> Path:
    root = Path(root)
    path = Path(output) if output is not None else root / REPORTS / assignment / "report.html"
    page = render(gather(root, assignment))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


__all__ = ["ClassReport", "Item", "gather", "render", "write_report"]
