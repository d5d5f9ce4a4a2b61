"""``coursekit autograde``: nbgrader's autograde, with every failure reported and the audit after it.

nbgrader reports a submission it could not process in its log and goes on; the gradebook then shows
0 for every cell of it, which reads like a student who answered nothing. This wrapper runs
``nbgrader autograde`` (with this course's sealed run, nbgrader_config.py), keeps its log, checks
its exit status, the log's errors and that every submission has an autograded notebook, and prints
the integrity audit (:mod:`coursekit.course.audit`). It exits 1 if any submission was not graded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from coursekit.course import audit
from coursekit.course.sealing import REPORTS


def autograde(root: Path, assignment: str, options: list[str]) -> int:
    log_path = root / REPORTS / assignment / "autograde.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs alembic
    command = [sys.executable, "-m", "nbgrader", "autograde", assignment, *options]
    print("running:", " ".join(command[2:]), flush=True)
    with log_path.open("w") as log:
        done = subprocess.run(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    text = log_path.read_text()
    problems = []
    if done.returncode != 0:
        problems.append(f"nbgrader autograde exited with status {done.returncode}")
    problems += sorted(set(re.findall(r"There was an error processing[^\n]*", text)))
    students = {p.parts[-3] for p in (root / "submitted").glob(f"*/{assignment}/*.ipynb")}
    chosen = _chosen_students(options)
    for student in sorted(students if chosen is None else students & chosen):
        for notebook in (root / "submitted" / student / assignment).glob("*.ipynb"):
            graded = root / "autograded" / student / assignment / notebook.name
            if not graded.is_file() or graded.stat().st_mtime < notebook.stat().st_mtime:
                problems.append(f"{student}: {notebook.name} has no autograded copy: it was not graded")
    faults = [line for line in text.splitlines() if "scores 0 there, and the rest is graded" in line]
    print(audit.table(audit.audit_assignment(root, assignment)))
    if faults:
        print("\nFaults isolated (each cost one exercise):\n  " + "\n  ".join(faults))
    print(f"\nnbgrader's log: {log_path}")
    if problems:
        print("\nNOT GRADED (fix and re-run; the gradebook's 0 for these is not a score):\n  " + "\n  ".join(problems))
        return 1
    print(f"every submission of {assignment} was graded")
    return 0


def _chosen_students(options: list[str]) -> set[str] | None:
    for index, option in enumerate(options):
        if option.startswith("--student="):
            return {option.split("=", 1)[1]}
        if option == "--student" and index + 1 < len(options):
            return {options[index + 1]}
    return None
