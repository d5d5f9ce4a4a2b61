"""One worker of ``coursekit autograde --jobs N`` (:mod:`coursekit.course.grade`): a process that loads
nbgrader once and autogrades, in its own course directory (the working directory), one student at a
time as the parent names them on stdin (one JSON string per line), answering on stdout with one JSON
object per student: ``{"student", "status", "seconds", "files"}``, where ``files`` maps each file it
wrote for that student (the graded notebooks, the integrity reports), relative to the course
directory, to its sha256, taken as soon as nbgrader returns. nbgrader's log goes to stderr (the
parent's log file); anything else that writes to stdout is sent there too.

    python -m coursekit.course.grade_worker ASSIGNMENT [nbgrader autograde options]

nbgrader's own API grades one student this way (Formgrader's "autograde" button); starting nbgrader
once per worker instead of once per student saves its start-up, seconds per submission.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def written(root: Path, assignment: str, student: str) -> dict[str, str]:
    from coursekit.course.sealing import REPORTS

    found = {}
    for folder in (root / "autograded" / student / assignment, root / REPORTS / assignment / student):
        for path in sorted(folder.glob("*")):
            if path.is_file() and path.suffix in (".ipynb", ".json"):
                found[str(path.relative_to(root))] = digest(path)
    return found


def main(argv: list[str]) -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # print() and nbgrader's stdout now land in the log
    sys.stdout = sys.stderr
    from nbgrader.apps.autogradeapp import AutogradeApp
    from nbgrader.converters import Autograde
    from nbgrader.converters.base import NbGraderException

    assignment, options = argv[0], argv[1:]
    app = AutogradeApp()
    app.initialize([assignment, *options])
    app.coursedir.assignment_id = assignment
    root = Path(app.coursedir.root)
    for line in sys.stdin:
        if not line.strip():
            continue
        student = json.loads(line)
        app.coursedir.student_id = glob.escape(student)  # nbgrader globs it: this student only
        started = time.monotonic()
        try:
            Autograde(coursedir=app.coursedir, parent=app).start()
            status = 0
        except NbGraderException:
            status = 1
        except Exception:  # noqa: BLE001 - reported in the log, and the next student is graded
            traceback.print_exc()
            status = 1
        files = written(root, assignment, student) if status == 0 else {}
        sys.stderr.flush()
        protocol.write(json.dumps({"student": student, "status": status, "files": files,
                                   "seconds": round(time.monotonic() - started, 3)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
