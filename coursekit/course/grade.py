"""``coursekit autograde``: nbgrader's autograde, with every failure reported and the audit after it.

nbgrader reports a submission it could not process in its log and goes on; the gradebook then shows
0 for every cell of it, which reads like a student who answered nothing. This wrapper runs
``nbgrader autograde`` (with this course's sealed run, nbgrader_config.py), keeps its log, checks
its exit status, the log's errors and that every submission has an autograded notebook, and prints
the integrity audit (:mod:`coursekit.course.audit`). It exits 1 if any submission was not graded.

With ``jobs > 1`` the submissions are graded in parallel by ``jobs`` worker processes
(:mod:`coursekit.course.grade_worker`), each in a course directory of its own under
``integrity/.parallel/<assignment>/workerNN/`` (the course's config, its source and release folders
linked, a copy of the gradebook), each loading nbgrader once and grading one student after another
as it is handed them (the next submission goes to the first worker free); then one
``nbgrader autograde`` in the course itself, with ``SealedExecute.replay`` pointing at those folders,
puts each graded notebook's outputs on the submission, after checking its cells are the sealed
rebuild's, and saves the grades: the gradebook has one writer, and the scores come out of the same
steps (sanitizing, SaveAutoGrades, late penalties) as a sequential run's, unless a submission runs
near a time limit (N kernels share the cores). Each worker reports the sha256 of every file it wrote
for a student the moment that student is graded; the parent writes them into the replay's manifest
once every worker has finished, and the replay takes only files that still have those digests, found
by exact path (student ids are never used as glob patterns).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from coursekit.course import audit
from coursekit.course.sealing import MANIFEST, REPORTS

WORK = ".parallel"  # integrity/.parallel/<assignment>/workerNN/: no student or assignment id starts with a dot
FORCE = ("--force", "-f", "--BaseConverter.force=True", "--Autograde.force=True")


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs alembic
    return env


def work_folder(root: Path, assignment: str) -> Path:
    return root / REPORTS / WORK / assignment


def autograde(root: Path, assignment: str, options: list[str], jobs: int = 1) -> int:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of parallel graders, at least 1; got {jobs!r}")
    cores = os.cpu_count() or 1
    if jobs > cores:
        raise ValueError(f"jobs must be at most this machine's {cores} cores (each job runs a kernel of its own, "
                         f"and kernels that wait for a core run into the cell time limits); got {jobs}")
    log_path = root / REPORTS / assignment / "autograde.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    submitted = sorted({p.parts[-3] for p in (root / "submitted").glob(f"*/{assignment}/*.ipynb")})
    chosen = _chosen_students(options, submitted)
    if not chosen:
        which = f" matching {_student_option(options)!r}" if _student_option(options) else ""
        print(f"coursekit: no submission of {assignment}{which} in {root / 'submitted'}", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "nbgrader", "autograde", assignment, *options]
    began = time.monotonic()
    if jobs == 1:
        print("running:", " ".join(command[2:]), flush=True)
        with log_path.open("w") as log:
            done = subprocess.run(command, cwd=root, env=_environment(), stdout=log, stderr=subprocess.STDOUT,
                                  text=True)
        returncode = done.returncode
    else:
        returncode = _parallel(root, assignment, options, jobs, log_path, chosen)
    seconds = time.monotonic() - began
    text = log_path.read_text()
    problems = []
    if returncode != 0:
        problems.append(f"nbgrader autograde exited with status {returncode}")
    problems += sorted(set(re.findall(r"There was an error processing[^\n]*", text)))
    for student in chosen:
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
        if jobs > 1:
            print(f"the workers' course directories and logs are kept in {work_folder(root, assignment)}")
        return 1
    print(f"every submission of {assignment} was graded ({seconds:.0f} s, {jobs} job{'s' if jobs > 1 else ''})")
    if jobs > 1:
        shutil.rmtree(work_folder(root, assignment), ignore_errors=True)  # kept when something failed
    return 0


def _up_to_date(root: Path, assignment: str, student: str) -> bool:
    """nbgrader's reason to skip a submission without --force (``BaseConverter.init_destination``, for all of an
    assignment's notebooks): the graded folder exists, and the submission's timestamp is not newer than the
    graded one's (with either missing, nbgrader skips)."""
    from nbgrader.utils import parse_utc

    submitted, graded = root / "submitted" / student / assignment, root / "autograded" / student / assignment
    if not graded.is_dir():
        return False

    def stamp(folder: Path):
        path = folder / "timestamp.txt"
        text = path.read_text().strip() if path.is_file() else ""
        return parse_utc(text) if text else None

    try:
        new, old = stamp(submitted), stamp(graded)
    except ValueError:  # an unreadable timestamp: nbgrader stops on it, so let it say so
        return False
    return not (new is not None and old is not None and new > old)


def _parallel(root: Path, assignment: str, options: list[str], jobs: int, log_path: Path,
              chosen: list[str]) -> int:
    """Grade the submissions in ``jobs`` worker processes, each in a course directory of its own, then save
    every grade from one process (see the module's docstring). Returns 0 when every step succeeded."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    coursedir = CourseDirectory(config=config)
    folders = [coursedir.source_directory, coursedir.release_directory]
    forced = any(o in FORCE for o in options)
    # nbgrader's merge pass below skips what is up to date, as a sequential run would: so do the workers
    students = [s for s in chosen if forced or not _up_to_date(root, assignment, s)]
    work = work_folder(root, assignment)
    shutil.rmtree(work, ignore_errors=True)
    worker_options = _without_student(options)
    env = _environment()
    # each kernel gets its share of the cores: N kernels with all the cores each only fight over them
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    queue = list(reversed(students))  # popped from the end: in order
    lock = threading.Lock()
    results: dict[str, dict] = {}  # student -> {"status", "seconds", "worker", "files"}
    errors: list[str] = []

    def worker(number: int) -> None:
        """One process grading the students it is handed, one at a time, until none is left (it loads
        nbgrader once: its start-up is paid once per worker, not per student)."""
        folder = work / f"worker{number:02d}"
        try:
            for name in folders:
                (folder / name).mkdir(parents=True)
                (folder / name / assignment).symlink_to((root / name / assignment).resolve(), target_is_directory=True)
            (folder / "submitted").mkdir()
            shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
            if (root / "gradebook.db").is_file():
                shutil.copy2(root / "gradebook.db", folder / "gradebook.db")
            pinned = [f"--CourseDirectory.root={folder.resolve()}",  # never the course's gradebook, whatever
                      f"--CourseDirectory.db_url=sqlite:///{(folder / 'gradebook.db').resolve()}"]  # ~/.jupyter says
            with (folder / "autograde.log").open("w") as log:
                def start() -> subprocess.Popen:
                    return subprocess.Popen([sys.executable, "-m", "coursekit.course.grade_worker", assignment,
                                             *worker_options, *pinned], cwd=folder, env=env, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)

                def stop(process: subprocess.Popen) -> None:
                    try:
                        process.stdin.close()  # the worker's end of the queue: it exits
                    except OSError:  # it had died with a line unread
                        pass
                    process.wait()

                process, deaths = start(), 0
                try:
                    while True:
                        with lock:
                            if not queue:
                                break
                            student = queue.pop()
                        shutil.copytree(root / "submitted" / student / assignment,
                                        folder / "submitted" / student / assignment)
                        started = time.monotonic()
                        try:
                            process.stdin.write(json.dumps(student) + "\n")
                            process.stdin.flush()
                            answer = json.loads(process.stdout.readline() or "null")
                        except (OSError, ValueError):  # a worker that died before or while reading
                            answer = None
                        if isinstance(answer, dict) and answer.get("student") == student:
                            results[student] = {**answer, "worker": folder.name}
                            deaths = 0
                            continue
                        # the worker died (a student's code can kill its kernel's parent): this student is not
                        # graded, and a new worker takes the next one, so one submission cannot stop the class
                        results[student] = {"status": 1, "seconds": time.monotonic() - started,
                                            "worker": folder.name, "files": {}}
                        deaths += 1
                        stop(process)
                        stopped = f"{folder.name} stopped while grading {student} (exit status {process.returncode})"
                        if deaths == 3:  # three in a row, none graded: the worker is at fault, not a student
                            errors.append(f"{stopped}, its third stop in a row: see its log; it grades no more")
                            break
                        errors.append(f"{stopped}: see its log; a new worker went on")
                        log.write(f"===== {folder.name} stopped while grading {student}: a new worker goes on\n")
                        log.flush()
                        process = start()
                finally:
                    stop(process)
        except Exception as err:  # noqa: BLE001 - reported, and the other workers go on
            errors.append(f"{folder.name}: {type(err).__name__}: {err}")

    print(f"grading {len(students)} submissions of {assignment}, {jobs} at a time", flush=True)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(min(jobs, len(students)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # written once every worker has stopped: no student's code runs any more
    manifest = {s: {"worker": r["worker"], "files": r.get("files", {})} for s, r in results.items() if r["status"] == 0}
    if students:
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    with log_path.open("w") as log:
        for number in range(len(threads)):
            name = f"worker{number:02d}"
            mine = [(s, r) for s, r in results.items() if r["worker"] == name]
            log.write(f"===== {name}, a course directory of its own: " + ", ".join(
                f"{s} in {r['seconds']:.1f} s (status {r['status']})" for s, r in mine) + "\n")
            if (work / name / "autograde.log").is_file():
                log.write((work / name / "autograde.log").read_text())
        for error in errors:
            log.write(f"There was an error processing the parallel run: {error}\n")
        log.write("===== the grades saved into the course's gradebook, from the graded notebooks\n")
        log.flush()
        done = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", assignment, *options,
                               f"--SealedExecute.replay={work.resolve()}"], cwd=root, env=_environment(),
                              stdout=log, stderr=subprocess.STDOUT, text=True)
    failed = [s for s in students if results.get(s, {}).get("status") != 0]
    return done.returncode or (1 if failed or errors else 0)


def _student_option(options: list[str]) -> str | None:
    for index, option in enumerate(options):
        for name in ("--student", "--CourseDirectory.student_id"):
            if option.startswith(name + "="):
                return option.split("=", 1)[1]
            if option == name and index + 1 < len(options):
                return options[index + 1]
    return None


def _without_student(options: list[str]) -> list[str]:
    kept, skip = [], False
    for option in options:
        if skip:
            skip = False
        elif option in ("--student", "--CourseDirectory.student_id"):
            skip = True
        elif not option.startswith(("--student=", "--CourseDirectory.student_id=")):
            kept.append(option)
    return kept


def _chosen_students(options: list[str], students: list[str]) -> list[str]:
    """The submitted students that nbgrader's ``--student`` pattern (a glob, as nbgrader reads it) selects."""
    pattern = _student_option(options)
    return [s for s in students if pattern is None or fnmatch.fnmatchcase(s, pattern)]


__all__ = ["autograde", "work_folder"]
