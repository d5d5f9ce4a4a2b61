"""Every stage in a real browser: JupyterLab in Chromium at 1280x800, as a student uses it.

For each stage (found by its folder, like every course check), on copies of its notebooks served by
``coursekit lab`` in the fast budget:

- the solution runs top to bottom, cell by cell, with no error and no stderr in any cell and no
  "Error displaying widget"; every progress bar stays on one line; every explorer's picture changes when one of its menus or sliders is
  changed; after a save from the browser, a kernel shutdown and a reopen, every explorer still shows;
- the release, with its stubs in place, run cell by cell going on after errors: every test cell shows
  a short failure (at most three lines) saying the exercise is not answered yet, raised as ``NotAnswered``
  in one line, and no cell outside the exercises fails. These are the checks of test_stages.py's run of
  the release, which tests/conftest.py leaves out of a session that runs this test for the same stage:
  one run of each release instead of two.

And Formgrader, in the same JupyterLab, offers Release and Collect (the exchange is configured).

Screenshots go to ``browser-screenshots/<stage>/`` (``COURSEKIT_SCREENSHOTS`` moves them).
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from coursekit import course

from . import browser, support

pytestmark = [pytest.mark.course, pytest.mark.browser]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    executable = browser.chromium()
    home = tmp_path_factory.mktemp("browser")
    root = home / "course"
    for stage in support.STAGES:
        for kind, source in (("solved", course.solution_path), ("released", course.release_path)):
            (root / kind / stage).mkdir(parents=True)
            shutil.copy2(source(support.ROOT, stage), root / kind / stage / f"{stage}.ipynb")
    shutil.copy2(support.ROOT / "nbgrader_config.py", root)  # the served folder is a course directory too
    # a student's JupyterLab (not CI: progress bars show) in the fast budget
    server = browser.Lab(root, home, env={"COURSEKIT_BUDGET": "fast", "NBGRADER_EXECUTION": "", "CI": ""})
    playwright = sync_playwright().start()
    try:
        chrome = playwright.chromium.launch(executable_path=executable, args=browser.CHROMIUM_FLAGS)
        yield server, chrome
        chrome.close()
    finally:
        playwright.stop()
        server.close()


def shots(stage: str):
    folder = browser.screenshot_dir() / stage
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def displayed_widgets(nb) -> int:
    return sum(WIDGET_VIEW in output.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", []))


def uses_explorers(stage: str) -> bool:
    nb = course.read_notebook(course.solution_path(support.ROOT, stage))
    return any("coursekit.explore" in cell.source and "display(" in cell.source
               for cell in nb.cells if cell.cell_type == "code")


@pytest.mark.parametrize("stage", support.STAGES)
def test_the_solution_in_a_browser(lab, stage):
    server, chrome = lab
    folder = shots(stage)
    page = chrome.new_page(viewport=browser.VIEWPORT)
    try:
        notebook = browser.Notebook(page, server, f"solved/{stage}/{stage}.ipynb").open()
        seconds = notebook.run_all_one_by_one()
        page.screenshot(path=folder / "solution-end.png")
        assert notebook.widget_errors() == 0, f"{stage}: a widget shows 'Error displaying widget'"
        bars = notebook.panel.locator(".jp-OutputArea-output pre", has_text=re.compile(r"\d+%\|"))
        for k in range(bars.count()):  # with the file browser open, as in these screenshots
            browser.reveal(bars.nth(k))
            assert browser.line_count(bars.nth(k)) == 1, f"{stage}: a progress bar takes more than one line"

        explorers = notebook.explorers()
        count = explorers.count()
        assert count > 0 or not uses_explorers(stage), f"{stage}: the notebook displays explorers, none shows"
        for k in range(count):
            explorer = explorers.nth(k)
            browser.reveal(explorer)
            picture = explorer.locator(":scope > .widget-image")
            source, before = picture.get_attribute("src"), picture.screenshot()
            explorer.screenshot(path=folder / f"explorer-{k + 1}-before.png")
            what = browser.change_a_control(explorer)
            deadline = time.monotonic() + 120
            while picture.get_attribute("src") == source:
                assert time.monotonic() < deadline, f"{stage}: explorer {k + 1} did not redraw after a {what}"
                time.sleep(0.1)
            time.sleep(0.3)
            assert picture.screenshot() != before, f"{stage}: explorer {k + 1}'s picture is the same after a {what}"
            explorer.screenshot(path=folder / f"explorer-{k + 1}-after.png")

        notebook.save()
        failures = {i: why for i, cell in enumerate(notebook.nb.cells) if (why := support.cell_failure(cell))}
        assert not failures, f"{stage}: " + "; ".join(
            f"cell {i} ({notebook.nb.cells[i].id}): {why}" for i, why in failures.items())
        assert displayed_widgets(notebook.nb) == count, f"{stage}: the saved notebook holds another number of explorers"
        if count:
            assert WIDGET_STATE in notebook.nb.metadata.get("widgets", {}), (
                f"{stage}: the notebook was saved without its widget state (JupyterLab's saveState setting, "
                f"written by `coursekit lab`)")

        server.shutdown_kernels()
        page.close()
        page = chrome.new_page(viewport=browser.VIEWPORT)
        reopened = browser.Notebook(page, server, f"solved/{stage}/{stage}.ipynb").open(kernel=False)
        deadline = time.monotonic() + 60
        while reopened.explorers().count() < count or reopened.widget_errors():
            if time.monotonic() > deadline:
                page.screenshot(path=folder / "reopened.png")
                raise AssertionError(
                    f"{stage}: after a save, a kernel shutdown and a reopen, {reopened.widget_errors()} widgets show "
                    f"'Error displaying widget' and {reopened.explorers().count()} of {count} explorers show")
            time.sleep(0.2)
        for k in range(count):
            explorer = reopened.explorers().nth(k)
            browser.reveal(explorer)
            width = explorer.locator(":scope > .widget-image").evaluate("img => img.complete ? img.naturalWidth : 0")
            assert width > 0, f"{stage}: explorer {k + 1} shows no picture after the notebook was reopened"
            explorer.screenshot(path=folder / f"explorer-{k + 1}-reopened.png")
        slowest = max(seconds, key=seconds.get)
        print(f"{stage}: the solution ran cell by cell in {sum(seconds.values()):.1f} s in Chromium "
              f"(slowest: cell {slowest}, {seconds[slowest]:.1f} s); {count} explorers")
    finally:
        page.close()


@pytest.mark.parametrize("stage", support.STAGES)
def test_the_release_with_its_stubs_in_a_browser(lab, stage):
    server, chrome = lab
    folder = shots(stage)
    page = chrome.new_page(viewport=browser.VIEWPORT)
    try:
        notebook = browser.Notebook(page, server, f"released/{stage}/{stage}.ipynb").open()
        seconds = notebook.run_all_one_by_one()
        notebook.save()
        # the checks of test_stages.py's run under the autograder's environment (left out where this runs) ...
        problems, first_test = support.stub_problems(notebook.nb), None
        for i, cell in enumerate(notebook.nb.cells):  # ... and what a student sees of each test cell's failure
            if cell.cell_type != "code" or not course.is_test(cell):
                continue
            first_test = i if first_test is None else first_test
            lines = browser.error_lines(cell)
            if lines is not None and (not any("not answered yet" in line for line in lines) or len(lines) > 3):
                problems.append(f"test cell {i} ({course.nbgrader_meta(cell)['grade_id']}) shows {len(lines)} lines, "
                                f"not a short 'not answered yet': {' | '.join(lines[:4])} ... {lines[-1]}")
        if first_test is not None:
            browser.reveal(notebook.cells.nth(first_test))
            page.screenshot(path=folder / "release-first-test.png")
        assert not problems, f"{stage}, released with its stubs:\n" + "\n".join(problems)
        print(f"{stage}: the release ran cell by cell in {sum(seconds.values()):.1f} s in Chromium")
    finally:
        page.close()


def test_formgrader_offers_release_and_collect(lab):
    server, chrome = lab
    page = chrome.new_page(viewport=browser.VIEWPORT)
    try:
        page.goto(server.url("formgrader/manage_assignments"))
        page.get_by_text("Manage Assignments").first.wait_for(timeout=60_000)
        page.screenshot(path=shots("formgrader") / "manage-assignments.png")
        for warning in ("#warning-exchange", "#warning-course-id", "#warning-windows"):
            assert page.locator(warning).count() == 0, (
                f"Formgrader warns: {page.locator(warning).inner_text()[:300]}")
    finally:
        page.close()
