"""Parallel autograding: submissions graded per minute by ``coursekit autograde``, one after another (one
``nbgrader autograde`` run, the baseline) against ``--jobs N``, in this one run on this machine.

The class: ``--students`` copies of a stage's submissions in two scratch course directories, a mix like a
real class's (the instructor's answers; the release untouched; the last exercise left as its stub;
the first answer crashing its kernel, a grading fault that re-runs the notebook), cycled. Both runs
grade the same submissions with the course's sealed run; the scores of every grade cell must be equal
(the script exits 1 otherwise). Wall time includes nbgrader's start-up, each worker's own, and the
final pass that saves the grades. Kernels use ``cores / jobs`` threads each.

    python benchmarks/autograde_parallel.py --stage 01-backprop --students 8 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import cpu_model  # noqa: E402


def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs alembic
    env.pop("NBGRADER_EXECUTION", None)
    env.pop("COURSEKIT_BUDGET", None)
    return env


def answer_and_tests(nb) -> list[str]:
    """The answer cells with test cells after them, in order: the stage's exercises."""
    found, tested = [], set()
    for cell in nb.cells:
        if meta(cell).get("solution") and cell.cell_type == "code":
            found.append(meta(cell)["grade_id"])
        elif meta(cell).get("grade") and found:
            tested.add(found[-1])
    return [gid for gid in found if gid in tested]


def strip_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def class_of(root: Path, stage: str, students: int) -> None:
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "solutions" / stage, root / "solutions" / stage)
    env = environment()
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", stage, "--force"], cwd=root, env=env,
                   check=True, capture_output=True)
    source = nbformat.read(root / "solutions" / stage / f"{stage}.ipynb", as_version=4)
    release = nbformat.read(root / "notebooks" / stage / f"{stage}.ipynb", as_version=4)
    solved = {meta(c)["grade_id"]: strip_markers(c.source) for c in source.cells if meta(c).get("solution")}
    exercises = answer_and_tests(source)
    kinds = [solved, {}, {k: v for k, v in solved.items() if k != exercises[-1]},
             {**solved, exercises[0]: solved[exercises[0]] + "\nimport os\nos._exit(1)\n"}]
    for n in range(students):
        nb = nbformat.from_dict(release)
        answers = kinds[n % len(kinds)]
        for cell in nb.cells:
            gid = meta(cell).get("grade_id")
            if gid in answers:
                cell.source = answers[gid]
        folder = root / "submitted" / f"student{n:03d}" / stage
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{stage}.ipynb")


def scores(root: Path, stage: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {(s.student_id, nb.name, g.name): g.score
                for s in gb.find_assignment(stage).submissions for nb in s.notebooks for g in nb.grades}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="01-backprop")
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sequential, parallel = Path(tmp) / "sequential", Path(tmp) / "parallel"
        sequential.mkdir()
        class_of(sequential, args.stage, args.students)
        shutil.copytree(sequential, parallel, symlinks=True)
        times = {}
        for name, root, jobs in (("sequential", sequential, 1), (f"--jobs {args.jobs}", parallel, args.jobs)):
            start = time.perf_counter()
            # the instructor's command, as a process of its own: `coursekit autograde STAGE --jobs N`
            done = subprocess.run([sys.executable, "-m", "coursekit", "--root", str(root), "autograde", args.stage,
                                   "--jobs", str(jobs), "--create", "--force"], env=environment(),
                                  capture_output=True, text=True)
            times[name] = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
                print(f"{name}: not every submission was graded", file=sys.stderr)
                return 1
        equal = scores(sequential, args.stage) == scores(parallel, args.stage)
    print(f"\nmachine: {cpu_model()}, {os.cpu_count()} cores; stage {args.stage}, {args.students} submissions")
    base = times["sequential"]
    for name, seconds in times.items():
        print(f"{name:>12}: {seconds:7.1f} s, {60 * args.students / seconds:6.2f} submissions per minute, "
              f"{base / seconds:.2f}x the sequential rate")
    print("scores of every grade cell equal in both gradebooks:", equal)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
