"""``coursekit autograde``: nbgrader's autograde, with every failure reported and the audit after it.

nbgrader reports a submission it could not process in its log and goes on; the gradebook then shows
0 for every cell of it, which reads like a student who answered nothing. This wrapper runs
``nbgrader autograde`` (with this course's sealed run, nbgrader_config.py), keeps its log, checks
its exit status, the log's errors and that every submission has an autograded notebook, and prints
the integrity audit (:mod:`coursekit.course.audit`). It exits 1 if any submission was not graded.

With ``jobs > 1`` the submissions are graded in parallel by ``jobs`` worker processes
(:mod:`coursekit.course.grade_worker`), each in a course directory of its own under
``integrity/<assignment>/parallel/workerNN/`` (the course's config, its source and release folders
linked, a copy of the gradebook), each loading nbgrader once and grading one student after another
as it is handed them (the next submission goes to the first worker free); then one
``nbgrader autograde`` in the course itself, with ``SealedExecute.replay`` pointing at those folders,
puts each graded notebook's outputs on the submission, after checking its cells are the sealed
rebuild's, and saves the grades: the gradebook has one writer, and the scores come out of the same
steps (sanitizing, SaveAutoGrades, late penalties) as a sequential run's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import threading
from pathlib import Path

from coursekit.course import audit
from coursekit.course.grade_worker import ANSWER
from coursekit.course.sealing import REPORTS


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs alembic
    return env


def autograde(root: Path, assignment: str, options: list[str], jobs: int = 1) -> int:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of parallel graders, at least 1; got {jobs!r}")
    log_path = root / REPORTS / assignment / "autograde.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "nbgrader", "autograde", assignment, *options]
    began = time.monotonic()
    if jobs == 1:
        print("running:", " ".join(command[2:]), flush=True)
        with log_path.open("w") as log:
            done = subprocess.run(command, cwd=root, env=_environment(), stdout=log, stderr=subprocess.STDOUT,
                                  text=True)
        returncode = done.returncode
    else:
        returncode = _parallel(root, assignment, options, jobs, log_path)
    seconds = time.monotonic() - began
    text = log_path.read_text()
    problems = []
    if returncode != 0:
        problems.append(f"nbgrader autograde exited with status {returncode}")
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
    print(f"every submission of {assignment} was graded ({seconds:.0f} s, {jobs} job{'s' if jobs > 1 else ''})")
    if jobs > 1:
        shutil.rmtree(root / REPORTS / assignment / PARALLEL, ignore_errors=True)  # kept when something failed
    return 0


PARALLEL = "parallel"  # integrity/<assignment>/parallel/<student>/: one course directory per submission


def _parallel(root: Path, assignment: str, options: list[str], jobs: int, log_path: Path) -> int:
    """Grade the submissions in ``jobs`` worker processes, each in a course directory of its own, then save
    every grade from one process (see the module's docstring). Returns 0 when every step succeeded."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    coursedir = CourseDirectory(config=config)
    folders = [coursedir.source_directory, coursedir.release_directory]
    chosen = _chosen_students(options)
    students = sorted({p.parts[-3] for p in (root / "submitted").glob(f"*/{assignment}/*.ipynb")})
    students = [s for s in students if chosen is None or s in chosen]
    if "--force" not in options and "-f" not in options:  # nbgrader skips what it graded before: so do the workers
        students = [s for s in students if not (root / "autograded" / s / assignment).is_dir()]
    work = root / REPORTS / assignment / PARALLEL
    shutil.rmtree(work, ignore_errors=True)
    worker_options = [o for o in options if not o.startswith("--student")]
    if "--student" in worker_options:  # "--student NAME" as two words
        at = worker_options.index("--student")
        del worker_options[at:at + 2]
    env = _environment()
    # each kernel gets its share of the cores: N kernels with all the cores each only fight over them
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))

    queue = list(reversed(students))  # popped from the end: in order
    lock = threading.Lock()
    results: list[tuple[str, int, float, str]] = []  # student, status, seconds, worker

    def worker(number: int) -> None:
        """One process grading the students it is handed, one at a time, until none is left (it loads
        nbgrader once: its start-up is paid once per worker, not per student)."""
        folder = work / f"worker{number:02d}"
        for name in folders:
            (folder / name).mkdir(parents=True)
            (folder / name / assignment).symlink_to((root / name / assignment).resolve(), target_is_directory=True)
        (folder / "submitted").mkdir()
        shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
        if (root / "gradebook.db").is_file():
            shutil.copy2(root / "gradebook.db", folder / "gradebook.db")
        with (folder / "autograde.log").open("w") as log:
            process = subprocess.Popen([sys.executable, "-m", "coursekit.course.grade_worker", assignment,
                                        *worker_options], cwd=folder, env=env, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
            try:
                while True:
                    with lock:
                        if not queue:
                            break
                        student = queue.pop()
                    shutil.copytree(root / "submitted" / student / assignment, folder / "submitted" / student / assignment)
                    started = time.monotonic()
                    process.stdin.write(student + "\n")
                    process.stdin.flush()
                    answer = process.stdout.readline().split()
                    if len(answer) != 4 or answer[:2] != [ANSWER, student]:  # the worker died: the others go on
                        results.append((student, 1, time.monotonic() - started, folder.name))
                        break
                    results.append((student, int(answer[2]), float(answer[3]), folder.name))
            finally:
                process.stdin.close()
                process.wait()

    print(f"grading {len(students)} submissions of {assignment}, {jobs} at a time", flush=True)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(min(jobs, len(students)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with log_path.open("w") as log:
        for name in sorted({r[3] for r in results}):
            mine = [r for r in results if r[3] == name]
            log.write(f"===== {name}, a course directory of its own: " + ", ".join(
                f"{student} in {seconds:.1f} s (status {status})" for student, status, seconds, _ in mine) + "\n")
            log.write((work / name / "autograde.log").read_text())
        log.write("===== the grades saved into the course's gradebook, from the graded notebooks\n")
        log.flush()
        if not students:
            return 0
        merge = [sys.executable, "-m", "nbgrader", "autograde", assignment, *options,
                 f"--SealedExecute.replay={work.resolve()}"]
        done = subprocess.run(merge, cwd=root, env=_environment(), stdout=log, stderr=subprocess.STDOUT, text=True)
    failed = [student for student, status, _, _ in results if status != 0]
    return done.returncode or (1 if failed or len(results) < len(students) else 0)


def _chosen_students(options: list[str]) -> set[str] | None:
    for index, option in enumerate(options):
        if option.startswith("--student="):
            return {option.split("=", 1)[1]}
        if option == "--student" and index + 1 < len(options):
            return {options[index + 1]}
    return None
