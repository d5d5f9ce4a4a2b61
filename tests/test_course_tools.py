"""coursekit.course and the `coursekit` command: stages, deterministic builds, staleness, anatomy."""

from __future__ import annotations

import shutil
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coursekit import course
from coursekit.course import cli

ROOT = Path(__file__).resolve().parents[1]


def test_stages_are_found_in_lecture_order():
    found = course.stages(ROOT)
    assert found[0] == "01-backprop"
    assert found == sorted(found)


def test_cli_lists_stages(capsys):
    assert cli.main(["--root", str(ROOT), "stages"]) == 0
    assert "01-backprop" in capsys.readouterr().out.split()


def test_cli_names_an_unknown_stage(capsys):
    assert cli.main(["--root", str(ROOT), "release", "--check", "99-nope"]) == 2
    assert "99-nope" in capsys.readouterr().err


def test_building_a_notebook_is_deterministic():
    source = course.source_path(ROOT, "01-backprop")
    first, second = (course.notebook_text(course.notebook_from_source(source)) for _ in range(2))
    assert first == second
    nb = nbformat.reads(first, as_version=4)
    ids = [cell.id for cell in nb.cells]
    assert len(set(ids)) == len(ids)
    assert "softmax-impl" in ids  # graded cells keep their grade_id as their cell id


@pytest.fixture
def course_copy(tmp_path):
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path)
    for part in ("solutions", "notebooks"):
        shutil.copytree(ROOT / part / "01-backprop", tmp_path / part / "01-backprop")
    return tmp_path


def test_stale_release_is_detected_and_release_fixes_it(course_copy):
    assert course.stale(course_copy) == []
    source = course.source_path(course_copy, "01-backprop")
    source.write_text(source.read_text() + "\n# %% [markdown]\n# An instructor's late addition.\n")
    problems = course.stale(course_copy)
    assert any("01-backprop.ipynb differs" in p for p in problems)
    assert any(p.startswith("notebooks/01-backprop/") and "out of date" in p for p in problems)
    course.release(course_copy)
    assert course.stale(course_copy) == []
    release = course.read_notebook(course.release_path(course_copy, "01-backprop"))
    assert "An instructor's late addition." in release.cells[-1].source


def test_release_never_contains_solutions_or_the_source(course_copy):
    course.release(course_copy)
    folder = course.release_path(course_copy, "01-backprop").parent
    assert sorted(p.name for p in folder.iterdir()) == ["01-backprop.ipynb"]
    text = (folder / "01-backprop.ipynb").read_text()
    assert "### BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    release = course.read_notebook(folder / "01-backprop.ipynb")
    answers = [c for c in release.cells if course.is_answer(c)]
    assert answers
    for cell in answers:  # every stub names its exercise, as the lead-in above it numbers it
        gid = course.nbgrader_meta(cell)["grade_id"]
        assert re.search(rf'raise NotImplementedError\("Exercise \d+\.\d+ \({gid}\) is not answered yet', cell.source), gid


def test_a_released_stub_raises_naming_its_exercise_and_keeps_its_docstring(course_copy):
    course.release(course_copy)
    release = course.read_notebook(course.release_path(course_copy, "01-backprop"))
    (cell,) = [c for c in release.cells if course.nbgrader_meta(c).get("grade_id") == "softmax-impl"]
    namespace = {}
    exec(cell.source, namespace)  # noqa: S102 - the released stub, which defines softmax
    assert "(N, K)" in namespace["softmax"].__doc__
    with pytest.raises(NotImplementedError, match=r"^Exercise 1\.2 \(softmax-impl\) is not answered yet"):
        namespace["softmax"](None)


def test_cli_check_exits_1_on_a_stale_release(course_copy):
    release = course.release_path(course_copy, "01-backprop")
    release.write_text(release.read_text().replace("Backpropagation by hand", "Backprop"))
    done = subprocess.run([sys.executable, "-m", "coursekit", "release", "--check"], cwd=course_copy,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "notebooks/01-backprop/01-backprop.ipynb is out of date" in done.stdout


def _cell(kind, source, **nbgrader):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


ANSWER = dict(grade=False, solution=True, locked=False, grade_id="f-impl")
TEST = dict(grade=True, solution=False, locked=True, points=1, grade_id="f-tests")


def test_anatomy_accepts_a_sound_notebook():
    nb = nbformat.v4.new_notebook(cells=[
        _cell("code", "import numpy", grade=False, solution=False, locked=True, grade_id="setup"),
        _cell("code", "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", **ANSWER),
        _cell("code", "assert f() == 1", **TEST),
    ])
    assert course.anatomy_problems(nb) == []
    assert [(e.grade_id, e.test_ids) for e in course.exercises(nb)] == [("f-impl", ["f-tests"])]


@pytest.mark.parametrize("cells, problem", [
    ([_cell("code", "x = 1")], "without nbgrader metadata"),
    ([_cell("code", "### BEGIN SOLUTION\n### END SOLUTION", **ANSWER)], "followed by no test cell"),
    ([_cell("code", "### BEGIN SOLUTION\n### END SOLUTION", **ANSWER), _cell("code", "assert 1", **dict(TEST, points=0))],
     "has no points"),
    ([_cell("code", "### BEGIN SOLUTION\n### END SOLUTION", **ANSWER), _cell("code", "assert 1", **dict(TEST, locked=False))],
     "is not locked"),
    ([_cell("code", "### BEGIN SOLUTION\n### END SOLUTION", **ANSWER), _cell("code", "assert 1", **dict(TEST, grade_id="f-impl"))],
     "is used by cells"),
    ([_cell("code", "### BEGIN SOLUTION\n### END SOLUTION", **dict(ANSWER, grade_id="Bad_Id")),
      _cell("code", "assert 1", **TEST)], "kebab-case"),
    ([_cell("code", "def f(): pass", **ANSWER), _cell("code", "assert 1", **TEST)], "no ### BEGIN SOLUTION"),
    ([_cell("markdown", "# nothing graded")], "no autograded test cells"),
])
def test_anatomy_reports_unsafe_notebooks(cells, problem):
    nb = nbformat.v4.new_notebook(cells=cells)
    problems = course.anatomy_problems(nb)
    assert any(problem in p for p in problems), problems


def test_release_refuses_to_overwrite_a_students_answers(course_copy):
    path = course.release_path(course_copy, "01-backprop")
    nb = course.read_notebook(path)
    answer = next(c for c in nb.cells if course.nbgrader_meta(c).get("grade_id") == "softmax-impl")
    answer.source = "def softmax(A):\n    return A"
    nbformat.write(nb, path)
    with pytest.raises(RuntimeError, match="softmax-impl"):
        course.release(course_copy)
    assert "return A" in path.read_text()  # untouched
    course.release(course_copy, force=True)
    assert course.answered_cells(path) == []


def _cell(kind, source, **nbgrader):
    make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    cell = make(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, "task": False, "grade": False, "solution": False,
                                     "locked": False, **nbgrader}
    return cell


def _stage_notebook(**changes):
    """A tiny notebook with the whole anatomy, and the named parts broken."""
    cells = [
        _cell("markdown", "# Stage 05 — AlexNet\n\n**You will**\n1. count\n\n**Only the answer cells are graded: put all "
                          "your code in them** (cells you add are dropped)."),
        _cell("code", "import coursekit\nBUDGET = coursekit.budget()\ncoursekit.seed_everything(0)",
              grade_id="setup", locked=True),
        _cell("markdown", "### Exercise 1.1 — a count\nWrite `count()`."),
        _cell("code", 'def count():\n    """The count."""\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION',
              grade_id="count-impl", solution=True),
        _cell("code", "assert count() == 1", grade_id="count-test", grade=True, locked=True, points=1),
        _cell("markdown", "## Summary\n\nCounted."),
    ]
    rule = "\n\n**Only the answer cells are graded: put all your code in them**."
    if changes.get("title"):
        cells[0].source = "# AlexNet\n\n**You will**\n1. count" + rule
    if changes.get("goals"):
        cells[0].source = "# Stage 05 — AlexNet" + rule
    if changes.get("added_cells_rule"):
        cells[0].source = "# Stage 05 — AlexNet\n\n**You will**\n1. count"
    if changes.get("setup"):
        cells[1].source = "import coursekit"
    if changes.get("lead_in"):
        cells[2].source = "Write `count()`."
    if changes.get("docstring"):
        cells[3].source = cells[3].source.replace('    """The count."""\n', "")
    if changes.get("docstring_inside"):  # the release would drop it with the solution
        cells[3].source = cells[3].source.replace('    """The count."""\n    ### BEGIN SOLUTION\n',
                                                  '    ### BEGIN SOLUTION\n    """The count."""\n')
    if changes.get("summary"):
        cells[-1].source = "That is all."
    nb = nbformat.v4.new_notebook(cells=cells)
    if not changes.get("metadata"):
        nb.metadata["coursekit"] = {"full_budget_on_cpu": True}
    return nb


@pytest.mark.parametrize("broken, problem", [
    ("title", "markdown title"), ("goals", "learning goals"), ("setup", "coursekit.budget()"),
    ("added_cells_rule", "rule on added cells"),
    ("lead_in", "no markdown lead-in"), ("docstring", "no docstring"), ("docstring_inside", "no docstring"),
    ("summary", "## Summary"),
    ("metadata", "full_budget_on_cpu"),
])
def test_the_stage_anatomy_check_names_each_missing_part(broken, problem):
    assert course.stage_problems(_stage_notebook(), "05-alexnet") == []
    problems = course.stage_problems(_stage_notebook(**{broken: True}), "05-alexnet")
    assert len(problems) == 1 and problem in problems[0], problems


def test_the_title_must_name_its_own_stage():
    assert "names stage 05" in course.stage_problems(_stage_notebook(), "06-siamese")[0]


def test_exercise_labels_follow_the_lead_ins():
    assert course.exercise_labels(_stage_notebook()) == {"count-impl": "Exercise 1.1 (count-impl)"}
    assert course.exercise_labels(_stage_notebook(lead_in=True)) == {"count-impl": "the exercise count-impl"}


# -- the students' handout --------------------------------------------------------------------------


@pytest.fixture
def handout_course(course_copy):
    """The one-stage course copy with the library and its install files, as in the repository."""
    shutil.copytree(ROOT / "coursekit", course_copy / "coursekit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "environment.yml"):
        shutil.copy2(ROOT / name, course_copy / name)
    shutil.copytree(ROOT / "tests" / "wrong_answers", course_copy / "tests" / "wrong_answers")
    return course_copy


def test_the_handout_holds_the_releases_the_library_and_a_readme_and_no_solutions(handout_course, tmp_path_factory):
    folder = tmp_path_factory.mktemp("handout") / "students"
    done = subprocess.run([sys.executable, "-m", "coursekit", "handout", str(folder)], cwd=handout_course,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    top = sorted(p.name for p in folder.iterdir())
    assert top == ["README.md", "coursekit", "environment.yml", "notebooks", "pyproject.toml"]
    assert (folder / "notebooks" / "01-backprop" / "01-backprop.ipynb").read_bytes() == \
        course.release_path(handout_course, "01-backprop").read_bytes()
    for path in folder.rglob("*"):
        assert not path.name.endswith(".py") or "coursekit" in path.relative_to(folder).parts[0], path
        if path.suffix in (".ipynb", ".md"):
            text = path.read_text()
            assert "### BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, path
    readme = (folder / "README.md").read_text()
    assert ".venv/bin/pip install -e . && .venv/bin/coursekit data fetch" in readme
    assert "Only the answer cells are graded" in readme and "`01-backprop`" in readme
    imported = subprocess.run([sys.executable, "-c", "import coursekit.grading, coursekit.nets.backprop as b; "
                               "print(b.__file__)"], cwd=folder.parent, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(folder)})
    assert imported.returncode == 0 and imported.stdout.startswith(str(folder)), imported.stderr


def test_the_handout_refuses_a_stale_release_a_full_folder_and_the_repository_itself(handout_course, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("handout")
    from coursekit.course.handout import handout

    full = elsewhere / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        handout(handout_course, full)
    assert (full / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="outside the course repository"):
        handout(handout_course, handout_course / "students")
    source = course.source_path(handout_course, "01-backprop")
    source.write_text(source.read_text() + "\n# %% [markdown]\n# Late.\n")
    with pytest.raises(RuntimeError, match="out of date"):
        handout(handout_course, elsewhere / "students")
    assert not (elsewhere / "students").exists()


def test_a_handout_that_would_leak_a_solution_is_not_written(handout_course, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("handout")
    from coursekit.course import handout as module

    leaking = module.STUDENT_README + "\n### BEGIN SOLUTION\n"
    monkeypatch.setattr(module, "STUDENT_README", leaking)
    with pytest.raises(RuntimeError, match="README.md"):
        module.handout(handout_course, elsewhere / "students")
    assert not (elsewhere / "students").exists()


def test_a_test_cell_that_would_show_a_value_when_it_passes_is_an_anatomy_problem():
    def problems(test_source):
        nb = _stage_notebook()
        nb.cells[4].source = test_source
        return [p for p in course.anatomy_problems(nb) if "would show" in p]

    # check_shape returns the array it checked: as the cell's last line, Jupyter shows it
    assert problems("check_shape(count(), ())")
    assert problems("count()")
    assert problems("x = 1\ncheck_shape(count(), ())\n### BEGIN HIDDEN TESTS\ncheck(count() == 1, 'one')\n"
                    "### END HIDDEN TESTS")  # the release ends with check_shape
    for silent in ("check(count() == 1, 'one')", "check_close(count(), 1, 'one')", "y = check_shape(count(), ())",
                   "assert count() == 1"):
        assert not problems(silent), silent


def test_a_test_cell_may_end_with_a_check_helper_of_a_locked_cell_that_returns_nothing():
    def problems(helper_source):
        nb = _stage_notebook()
        nb.cells[1].source += "\n\n" + helper_source
        nb.cells[4].source = "check_twice(1)"
        return [p for p in course.anatomy_problems(nb) if "would show" in p]

    assert not problems("def check_twice(n):\n    check(count() == n, 'once')\n    check(count() == n, 'twice')")
    assert not problems("def check_twice(n):\n    if count() == n:\n        return\n    raise AssertionError(n)")
    assert problems("def check_twice(n):\n    return count() == n")  # the value would show
    assert problems("def other(n):\n    pass")  # check_twice is not a helper of the notebook: unknown, so a value


def test_a_test_cell_may_end_with_a_helper_it_defines_itself_that_returns_nothing():
    def problems(test_source):
        nb = _stage_notebook()
        nb.cells[4].source = test_source
        return [p for p in course.anatomy_problems(nb) if "would show" in p]

    assert not problems("def check_all(n):\n    check(count() == n, 'n')\n\n\ncheck_all(1)")
    assert problems("def check_all(n):\n    return count() == n\n\n\ncheck_all(1)")  # its value would show
    # a helper defined only in the hidden tests is not in the release: its call there would be unknown
    assert problems("check_all(1)\n### BEGIN HIDDEN TESTS\ndef check_all(n):\n    pass\n### END HIDDEN TESTS")


def test_coursekit_lab_writes_settings_that_jupyterlab_knows(tmp_path, monkeypatch):
    import json

    from coursekit.course import lab

    path = lab.install_settings(tmp_path)
    assert path == tmp_path / "share/jupyter/lab/settings/overrides.d/coursekit.json"
    written = json.loads(path.read_text())
    assert written["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True
    before = path.stat().st_mtime_ns
    assert lab.install_settings(tmp_path) == path and path.stat().st_mtime_ns == before  # unchanged: not rewritten
    # every setting names a plugin and a property that this environment's JupyterLab declares
    # (a misspelt one would be ignored without a word)
    schemas = [Path(sys.prefix) / "share/jupyter/lab/schemas", Path(sys.prefix) / "share/jupyter/labextensions"]
    for plugin, values in written.items():
        package, name = plugin.split(":")
        found = [p for root in schemas for p in root.rglob(f"{name}.json") if p.parent.name == package.split("/")[-1]]
        assert found, f"no JupyterLab schema for {plugin}"
        declared = json.loads(found[0].read_text())["properties"]
        assert set(values) <= set(declared), f"{plugin}: {set(values) - set(declared)} not in its schema"

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    line = lab.command(None, ["--port=8890"])
    assert line[1:4] == ["-m", "jupyterlab", "notebooks"] and "--port=8890" in line
    assert ("--allow-root" in line) == (os.geteuid() == 0)


def test_the_audit_tells_numerical_code_from_reaching_the_internals_by_the_same_attribute_name():
    from coursekit.course.audit import audit_source

    def flagged(source, **kw):
        return [f.construct for f in audit_source(source, **kw)]

    # what stage 05's answers write: torch.stack, np.stack, model.modules(), a layer's kernel
    ordinary = ("y = torch.stack([a, b], dim=1)", "y = np.stack(parts)", "convs = [m for m in model.modules()]",
                "k = layer.kernel", "z = torch.nn.functional.pad(x, (1, 1)).stack")
    for source in ordinary:
        assert flagged(source, locked_imports={"torch": "torch", "np": "numpy"}) == [], source
    # the same names on the interpreter's modules are flagged, under any alias
    assert ".modules" in flagged("import sys\nsys.modules['x'] = None")
    assert ".stack" in flagged("import inspect\nframes = inspect.stack()")
    assert ".stack" in flagged("import inspect as i\nframes = i.stack()")
    assert ".stack" in flagged("from traceback import extract_stack as e\nimport traceback\ntraceback.stack")
    assert ".kernel" in flagged("import IPython\nIPython.get_ipython().kernel")
