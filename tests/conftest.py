"""Suite-wide guards: a test module that collects nothing is an error, and a skipped test is a
failure unless it is marked ``gpu`` (the only tests allowed to skip, on machines without CUDA)."""

from __future__ import annotations

import os
import re

import pytest

_empty_modules: list[str] = []


def pytest_collectreport(report):
    if report.nodeid.endswith(".py") and report.passed and not report.result:
        _empty_modules.append(report.nodeid)


def pytest_collection_finish(session):
    if _empty_modules:
        raise pytest.UsageError(f"these test files collect no test: {', '.join(_empty_modules)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("gpu") is None:
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} was skipped; only tests marked gpu may skip (a skip is not a pass)"



STAGE_IN_NODEID = re.compile(r"^tests/course/.*\[(\d\d-[a-z0-9]+(?:-[a-z0-9]+)*)\]$")  # a stage's course checks


def _work_unit(nodeid: str) -> str:
    """A stage's course checks in one test file form one unit of work (``file[NN-name]``): the
    module-scoped fixtures that execute its notebooks (a kernel session, a graded round trip) then run
    once. Every other test is a unit of its own."""
    stage = STAGE_IN_NODEID.search(nodeid)
    return f"{nodeid.split('::', 1)[0]}[{stage.group(1)}]" if stage else nodeid


# The release of a stage run with its stubs in place: test_stages.py runs it under the autograder's
# environment, test_browser.py in JupyterLab, and both make the same checks (support.stub_problems).
# Where both are collected for a stage, the first is deselected: one run instead of two.
STUB_RUNS = ("tests/course/test_stages.py::test_released_stubs_fail_every_test_cell[{}]",
             "tests/course/test_browser.py::test_the_release_with_its_stubs_in_a_browser[{}]")


def _stub_runs_done_in_the_browser(config, items):
    ids = {item.nodeid for item in items}
    twice = [item for item in items if (stage := STAGE_IN_NODEID.search(item.nodeid))
             and item.nodeid == STUB_RUNS[0].format(stage.group(1)) and STUB_RUNS[1].format(stage.group(1)) in ids]
    if twice:
        config.hook.pytest_deselected(items=twice)
        items[:] = [item for item in items if item not in twice]


def pytest_collection_modifyitems(config, items):
    """The course checks first (the adversarial corpora, then the later stages, which train networks, before
    earlier ones), then the other tests in their own order: with ``--no-loadscope-reorder`` xdist hands out the units of work
    in this order, so the longest ones start first and the short ones fill the gaps at the end."""
    def order(pair):
        index, item = pair
        stage = STAGE_IN_NODEID.search(item.nodeid)
        if not stage:
            return (1, 0, 0, index)
        # the adversarial corpora first: stage 01's is the longest unit of the suite (two dozen submissions
        # autograded one after another), and started last it kept one worker busy while the other sat idle
        corpus = item.nodeid.startswith("tests/course/test_adversarial.py")
        number = int(stage.group(1)[:2])
        if item.nodeid.startswith("tests/course/test_class_tools.py"):  # a minute, grading two courses: early too
            return (0, 0, 99, index)
        return (0, 0, number, index) if corpus else (0, 1, -number, index)  # 01's corpus, the larger, first

    _stub_runs_done_in_the_browser(config, items)
    items[:] = [item for _, item in sorted(enumerate(items), key=order)]


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist (the GPU machine) there is no such hook
def pytest_xdist_make_scheduler(config, log):
    """Under ``-n 2 --dist loadscope`` (pyproject.toml), one worker runs each unit of
    :func:`_work_unit`. (xdist's ``loadgroup`` would say this with marks, but it does not group under
    pytest 9.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class StageScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return StageScheduling(config, log)


if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: one thread each for torch and BLAS, in the worker and in the kernels
    # and nbgrader processes it starts, instead of two threads each spinning for one core
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
