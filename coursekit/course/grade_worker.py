"""One worker of ``coursekit autograde --jobs N`` (:mod:`coursekit.course.grade`): a process that loads
nbgrader once and autogrades, in its own course directory (the working directory), one student at a
time as the parent names them on stdin, answering on stdout with one line per student:
``graded STUDENT STATUS SECONDS``. nbgrader's log goes to stderr (the parent's log file); anything
else that writes to stdout is sent there too, so that the answers stay one line each.

    python -m coursekit.course.grade_worker ASSIGNMENT [nbgrader autograde options]

nbgrader's own API grades one student this way (Formgrader's "autograde" button); starting nbgrader
once per worker instead of once per student saves its start-up, seconds per submission.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

ANSWER = "graded"


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
    for line in sys.stdin:
        student = line.strip()
        if not student:
            continue
        app.coursedir.student_id = student
        started = time.monotonic()
        try:
            Autograde(coursedir=app.coursedir, parent=app).start()
            status = 0
        except NbGraderException:
            status = 1
        except Exception:  # noqa: BLE001 - reported in the log, and the next student is graded
            traceback.print_exc()
            status = 1
        sys.stderr.flush()
        protocol.write(f"{ANSWER} {student} {status} {time.monotonic() - started:.3f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
