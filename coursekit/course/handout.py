"""What students get: the released notebooks, the library and a student README, and nothing else.

The course repository holds the instructor sources (``solutions/``: every answer and every hidden
test), the wrong answers of the course checks and the tests: it stays private. :func:`handout` writes
the public part into a folder of its own, to be published as the students' repository.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from coursekit.course.stages import release_path, stages, stale

# What the handout copies from the course root: the library and its install files. The releases
# are copied stage by stage; nothing else (solutions/, tests/, benchmarks/, nbgrader_config.py) goes.
LIBRARY_FILES = ("pyproject.toml", "environment.yml")
NEVER = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")  # markers of what a handout must not hold

STUDENT_README = """\
# Deep learning for vision — the course

Interactive notebooks that follow Y. Avrithis' lecture *Deep learning for vision* slide by slide.
In each stage you implement the pieces the lecture derives, and test cells tell you at once whether
your answer is right, without showing the answer.

## Set up

Python 3.11 or newer. From this folder, install everything and fetch the datasets (once, online),
then open the course:

```bash
python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/coursekit data fetch
.venv/bin/coursekit lab
```

`coursekit lab` is JupyterLab on `notebooks/` with the course's settings: the explorers' last picture is
saved with the notebook, so they still show when you reopen it.

On a machine without an NVIDIA GPU, installing torch's CPU build first saves several GB:
`.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu`.

## Work through a stage

Open `notebooks/01-backprop/01-backprop.ipynb` and work top to bottom. Each exercise is a cell with
`# YOUR CODE HERE`: replace its `raise NotImplementedError(...)` line with your code, run it, then run
the test cells below it. A test that passes prints nothing; one that fails says which property failed,
in one line (or that its exercise is not answered yet). The cells between exercises run before you have
answered: where they need an answer of yours, they say so, or use coursekit's version until yours works.

**Only the answer cells are graded.** Put all your code in them; locked cells are restored from the
release before grading. While your answers are graded, coursekit's
reference versions of the stage's pieces are switched off, so your code must compute its results
itself; pieces of earlier stages are yours to use.

The stages: {stages}.
"""


def handout(root: Path, folder: Path) -> list[Path]:
    """Write the students' repository into ``folder`` (new or empty); returns the files written.

    Refuses when a release is out of date with its source (run ``coursekit release`` first), and
    checks that no file written holds a solution region or a hidden test.
    """
    root, folder = Path(root).resolve(), Path(folder).resolve()
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: a handout is written into a new or empty folder")
    if folder == root or root in folder.parents:
        raise ValueError(f"write the handout outside the course repository ({root}); got {folder}")
    problems = stale(root)
    if problems:
        raise RuntimeError("the releases are out of date, run `coursekit release` first:\n" + "\n".join(problems))
    folder.mkdir(parents=True, exist_ok=True)
    chosen = stages(root)
    for stage in chosen:
        target = folder / "notebooks" / stage
        shutil.copytree(release_path(root, stage).parent, target)
    shutil.copytree(root / "coursekit", folder / "coursekit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    for name in LIBRARY_FILES:
        shutil.copy2(root / name, folder / name)
    (folder / "README.md").write_text(STUDENT_README.format(stages=", ".join(f"`{s}`" for s in chosen)))
    written = sorted(p for p in folder.rglob("*") if p.is_file())
    # the notebooks and the README (the library's own code names the markers: it is what strips them)
    leaks = [str(p.relative_to(folder)) for p in written
             if p.suffix in (".ipynb", ".md") and any(marker in p.read_text() for marker in NEVER)]
    if leaks:
        shutil.rmtree(folder)
        raise RuntimeError(f"these files would hand out solutions or hidden tests, so nothing was written: {leaks}")
    return written
