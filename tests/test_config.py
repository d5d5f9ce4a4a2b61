"""The project's configuration files agree with each other and with what grading needs."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def nbgrader_config():
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_pyproject_lists_what_the_course_needs(pyproject):
    names = {requirement_name(d) for d in pyproject["project"]["dependencies"]}
    needed = {"jupyterlab", "numpy", "torch", "matplotlib", "ipywidgets", "scipy", "nbgrader", "pytest", "tqdm"}
    assert needed <= names, f"missing: {needed - names}"
    assert "torchvision" not in names, "torchvision does not import beside the CPU torch wheel (docs/ANATOMY.md §7)"


def test_environment_yml_installs_the_same_as_pip(pyproject):
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
        else:
            conda.append(dep)
    assert pip == ["-e ."], "environment.yml must install the project itself, with pyproject's dependencies"
    conda_names = {requirement_name(d) for d in conda}
    assert conda_names == {"python", "pip"}, (
        f"dependencies belong in pyproject.toml, not in environment.yml: {conda_names - {'python', 'pip'}}"
    )
    python = next(d for d in conda if requirement_name(d) == "python")
    assert python.replace(" ", "") == "python" + pyproject["project"]["requires-python"].replace(" ", "")


def test_readme_and_ci_run_the_same_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README has no command block"
    setup = blocks[0].strip().splitlines()
    assert any("pip install -e ." in line for line in setup), "the first block installs the project"
    test_line = next(line for line in setup if "pytest" in line)
    assert test_line.strip() in ci, f".ci/run must run the README's test command {test_line.strip()!r}"


def test_nbgrader_directories(nbgrader_config):
    cd = nbgrader_config.CourseDirectory
    assert cd.source_directory == "solutions"
    assert cd.release_directory == "notebooks"
    assert any(fnmatch.fnmatch("01-backprop.py", pattern) for pattern in cd.ignore), (
        "the jupytext sources hold the solutions: they must never be released"
    )
    assert not any(fnmatch.fnmatch("01-backprop.ipynb", pattern) for pattern in cd.ignore)


def test_nbgrader_timeout_interrupts_and_goes_on(nbgrader_config):
    assert 30 <= nbgrader_config.Execute.timeout <= 600
    assert nbgrader_config.Execute.interrupt_on_timeout is True


def test_ignore_pattern_drops_benign_noise_only(nbgrader_config):
    assert nbgrader_config.IgnorePattern.enabled is True
    pattern = re.compile(nbgrader_config.IgnorePattern.pattern)
    assert pattern.search("Matplotlib is building the font cache; this may take a moment.\n")
    for real in ("Traceback (most recent call last):", "RuntimeWarning: overflow encountered in exp",
                 "NotImplementedError"):
        assert not pattern.search(real), real


def test_feedback_clears_hidden_tests_and_tracebacks(nbgrader_config):
    steps = nbgrader_config.GenerateFeedback.preprocessors
    assert "nbgrader.preprocessors.ClearHiddenTests" in steps
    assert "coursekit.course.nbgrader_ext.StripTracebacks" in steps
    assert steps.index("nbgrader.preprocessors.GetGrades") < steps.index("nbgrader.preprocessors.ClearHiddenTests")


def test_strip_tracebacks_keeps_only_the_message_of_every_error():
    from coursekit.course.nbgrader_ext import StripTracebacks

    error = nbformat.v4.new_output("error", ename="CheckFailed", evalue="softmax: 2 of 6 entries are wrong",
                                   traceback=["Traceback", "check_close(Y, secret_expected_values)"])
    test_cell = nbformat.v4.new_code_cell("check_close(Y, secret_expected_values)", outputs=[error])
    test_cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 1}
    answer_cell = nbformat.v4.new_code_cell("raise ValueError()", outputs=[nbformat.from_dict(dict(error))])
    answer_cell.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": "a"}
    nb = nbformat.v4.new_notebook(cells=[test_cell, answer_cell])
    nb, _ = StripTracebacks().preprocess(nb, {})
    assert nb.cells[0].outputs[0].traceback == ["CheckFailed: softmax: 2 of 6 entries are wrong"]
    assert nb.cells[1].outputs[0].traceback == ["CheckFailed: softmax: 2 of 6 entries are wrong"]
    assert nb.cells[0].outputs[0].ename == "CheckFailed"  # the message itself stays


def test_gitignore_keeps_student_work_out():
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in ("submitted/", "autograded/", "feedback/", "gradebook.db"):
        assert entry in ignored


def test_generate_assignment_runs_nbgraders_steps_with_named_stubs(nbgrader_config):
    # nbgrader's own list, ClearSolutions replaced by its subclass: a newer nbgrader that adds or
    # reorders a step shows up here instead of silently going missing from the releases
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions

    from coursekit.course.nbgrader_ext import NamedStubs

    def dotted(step):
        return step if isinstance(step, str) else f"nbgrader.preprocessors.{step.__name__}"

    expected = [dotted(step) if step is not ClearSolutions else "coursekit.course.nbgrader_ext.NamedStubs"
                for step in GenerateAssignment.class_traits()["preprocessors"].default()]
    assert list(nbgrader_config.GenerateAssignment.preprocessors) == expected
    assert issubclass(NamedStubs, ClearSolutions)
    assert "{exercise}" in nbgrader_config.ClearSolutions.code_stub["python"]
