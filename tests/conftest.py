"""Suite-wide guards: a test module that collects nothing is an error, and a skipped test is a
failure unless it is marked ``gpu`` (the only tests allowed to skip, on machines without CUDA)."""

from __future__ import annotations

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



STAGE_IN_NODEID = re.compile(r"\[(\d\d-[a-z0-9]+(?:-[a-z0-9]+)*)\]$")


def pytest_collection_modifyitems(config, items):
    """The course checks first, later stages (which train networks) before earlier ones, then the
    other tests in their own order: with ``--no-loadscope-reorder`` xdist hands out the units of work
    in this order, so the longest ones start first and the short ones fill the gaps at the end."""
    def order(pair):
        index, item = pair
        stage = STAGE_IN_NODEID.search(item.nodeid)
        return (0, -int(stage.group(1)[:2]), index) if stage else (1, 0, index)

    items[:] = [item for _, item in sorted(enumerate(items), key=order)]


def pytest_xdist_make_scheduler(config, log):
    """Under ``-n 2 --dist loadscope`` (pyproject.toml), the course checks of one stage (node ids
    ending in ``[NN-name]``) form one unit of work, given to one worker: the module-scoped fixtures
    that execute a stage's notebooks (a kernel session, a graded round trip) then run once per stage,
    and the stages spread over the workers. Every other test is a unit of its own. (xdist's
    ``loadgroup`` would say this with marks, but it does not group under pytest 9.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class StageScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            stage = STAGE_IN_NODEID.search(nodeid)
            return stage.group(1) if stage else nodeid

    return StageScheduling(config, log)
