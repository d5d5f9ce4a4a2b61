"""Suite-wide guards: a test module that collects nothing is an error, and a skipped test is a
failure unless it is marked ``gpu`` (the only tests allowed to skip, on machines without CUDA)."""

from __future__ import annotations

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
