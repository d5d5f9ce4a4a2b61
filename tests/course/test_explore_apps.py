"""The explorer apps in a real browser: ``coursekit explore`` (Voilà) in Chromium at 1280x800, as an instructor
shows them in class.

One server serves every part (``coursekit explore`` without a part), on a free loopback port, and each part's page
is opened in a tab of its own, all at once (each page's kernel builds its explorers while the others do). On each:

- no code shows: no code cell has an input area, and no line of the app's code is in the page's text;
- every explorer the app builds (:func:`coursekit.course.apps.explorers`) shows a picture, and the page shows
  nothing else: no text output, no stderr, no error or traceback, no "Error displaying widget";
- every explorer responds: its first menu (or slider) is changed in the page and its picture changes.

Screenshots go to ``browser-screenshots/explore/<part>/`` (``COURSEKIT_SCREENSHOTS`` moves them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from coursekit.course import apps

from . import browser

pytestmark = pytest.mark.browser

EXPLORERS = ".jp-OutputArea-output .widget-vbox:has(> .widget-image)"  # an explorer: a box whose picture is an image
FAILURES = ("Traceback", "There was an error when executing cell", "Error displaying widget", "Cell execution timed out")
STDERR = "[data-mime-type='application/vnd.jupyter.stderr'], [data-mime-type='application/vnd.jupyter.error']"


class Explore:
    """``coursekit explore`` serving every part on a free loopback port."""

    def __init__(self, home):
        self.port = browser.free_port()
        self.log_path = home / "explore.log"
        environment = dict(os.environ, JUPYTER_RUNTIME_DIR=str(home / "runtime"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit", "explore", "--no-browser", f"--port={self.port}", "--Voila.port_retries=0"],
            cwd=home, env=environment, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url(), timeout=10):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"`coursekit explore` did not start:\n{self.log()}") from None
                time.sleep(0.2)

    def url(self, page: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{page}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # coursekit passes it on to Voilà, which shuts its kernels down
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def code_lines(app) -> list[str]:
    """Lines of the app's code long enough to be recognised in a page's text (comments left out)."""
    from coursekit.course.stages import notebook_from_source

    return [line.strip() for cell in notebook_from_source(app.source).cells if cell.cell_type == "code"
            for line in cell.source.splitlines() if len(line.strip()) >= 24 and not line.strip().startswith("#")]


def loaded(picture) -> bool:
    return bool(picture.evaluate("i => i.complete && i.naturalWidth > 0"))


def wait_for_pictures(page, count: int, timeout_s: float) -> None:
    """Until ``count`` explorers show, each with a loaded picture (or the page shows a failure)."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = page.locator(EXPLORERS)
        pictures = [loaded(shown.nth(k).locator(":scope > .widget-image")) for k in range(shown.count())]
        failed = page.locator(STDERR).count() or any(text in page.locator("body").inner_text() for text in FAILURES)
        if failed or (len(pictures) >= count and all(pictures)) or time.monotonic() > deadline:
            return
        time.sleep(0.25)


def test_every_explorer_of_every_part_shows_no_code_renders_and_responds(tmp_path):
    from playwright.sync_api import sync_playwright

    executable = browser.chromium()
    known = apps.apps()
    folder = browser.screenshot_dir() / "explore"
    server = Explore(tmp_path)
    playwright = sync_playwright().start()
    problems, timings = [], {}
    try:
        chrome = playwright.chromium.launch(executable_path=executable, args=browser.CHROMIUM_FLAGS)
        started, pages, parts = time.monotonic(), {}, list(known)

        def open_page(part):
            pages[part] = chrome.new_page(viewport=browser.VIEWPORT)
            pages[part].goto(server.url(f"voila/render/{part}.ipynb"), wait_until="commit", timeout=60_000)

        open_page(parts[0])
        for index, (part, app) in enumerate(known.items()):
            if index + 1 < len(parts):  # the next page's kernel builds its explorers while this page is checked
                open_page(parts[index + 1])
            page, expected = pages[part], apps.explorers(app)
            shots = folder / part
            shots.mkdir(parents=True, exist_ok=True)
            page.wait_for_load_state("load", timeout=180_000)
            wait_for_pictures(page, len(expected), timeout_s=120)
            timings[part] = time.monotonic() - started
            page.screenshot(path=shots / "page.png")
            text = page.locator("body").inner_text()
            shown_code = page.locator(".jp-CodeCell .jp-InputArea").count()
            leaked = [line for line in code_lines(app) if line in text]
            if shown_code or leaked:
                problems.append(f"{part}: code shows ({shown_code} code inputs; lines such as {leaked[:2]})")
            failures = [failure for failure in FAILURES if failure in text]
            if failures or page.locator(STDERR).count():
                problems.append(f"{part}: the page shows an error or stderr ({failures}): {text[-1500:]}")
            outputs, explorers = page.locator(".jp-OutputArea-child").count(), page.locator(EXPLORERS)
            if explorers.count() != len(expected) or outputs != len(expected):
                problems.append(f"{part}: {explorers.count()} explorers and {outputs} outputs show; the app builds "
                                f"{len(expected)} ({', '.join(expected)}) and outputs nothing else")
            for k in range(min(explorers.count(), len(expected))):
                explorer, name = explorers.nth(k), expected[k]
                explorer.scroll_into_view_if_needed()
                picture = explorer.locator(":scope > .widget-image")
                if not loaded(picture):
                    problems.append(f"{part}: {name} shows no picture")
                    continue
                source, before = picture.get_attribute("src"), picture.screenshot()
                what, changed = browser.change_a_control(explorer), time.monotonic()
                deadline = changed + 60
                while (picture.get_attribute("src") == source or not loaded(picture)) and time.monotonic() < deadline:
                    time.sleep(0.05)
                timings[f"{part}: {name}"] = time.monotonic() - changed
                if picture.get_attribute("src") == source or picture.screenshot() == before:
                    problems.append(f"{part}: {name}'s picture did not change after a {what}")
                explorer.screenshot(path=shots / f"{k + 1}-{name}-after.png")
            text = page.locator("body").inner_text()  # a redraw may have failed loudly
            if not failures and (any(failure in text for failure in FAILURES) or page.locator(STDERR).count()):
                problems.append(f"{part}: after the controls changed, the page shows an error: {text[-1500:]}")
            page.close()  # Voilà shuts its kernel down
        chrome.close()
    finally:
        playwright.stop()
        server.close()
    print("; ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))
    assert not problems, "\n".join(problems) + f"\n`coursekit explore`'s log:\n{server.log()}"
