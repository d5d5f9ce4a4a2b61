"""JupyterLab in Chromium, driven by Playwright, for the browser test (tests/course/test_browser.py).

The server is the course's own start command (``coursekit lab``) on a loopback port, serving copies of
the notebooks from a temporary folder with its own JupyterLab user settings, so that neither the
repository nor the user's settings are touched. Chromium is Debian's (``apt-get install chromium``),
or the one ``COURSEKIT_CHROMIUM`` names; Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coursekit import course

from . import support

CHROMIUM_FLAGS = [  # headless, as root, on a machine with no network beyond loopback
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}  # a laptop's screen, as the defects were seen
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# a code cell's prompt once it has run: a new "[N]:" in place of the one before
PROMPT_CHANGED = """([prompt, before]) => { const shown = prompt.textContent.trim();
    return shown !== before && /^\\[\\d+\\]:?$/.test(shown); }"""


def screenshot_dir() -> Path:
    """Where the screenshots go: ``COURSEKIT_SCREENSHOTS``, or ``browser-screenshots/`` in the repository."""
    return Path(os.environ.get("COURSEKIT_SCREENSHOTS") or support.ROOT / "browser-screenshots")


def chromium() -> str:
    """The Chromium to drive; the test fails (it does not skip) when there is none."""
    named = os.environ.get("COURSEKIT_CHROMIUM")
    for candidate in ([named] if named else ["chromium", "chromium-browser", "google-chrome"]):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    pytest.fail("the browser test needs Chromium: `apt-get install chromium` (Debian, Ubuntu), or set "
                "COURSEKIT_CHROMIUM to a Chromium or Chrome executable; `-m 'not browser'` leaves the test out")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """``coursekit lab`` serving ``root`` on loopback, with a token and private user settings."""

    def __init__(self, root: Path, home: Path, env: dict[str, str] | None = None):
        self.root, self.port, self.token = root, free_port(), "coursekit-browser-test"
        settings = home / "user-settings"
        settings.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings),
                           JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
                           JUPYTER_RUNTIME_DIR=str(home / "runtime"), **(env or {}))
        self.log_path = home / "jupyterlab.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit", "lab", str(root), "--no-browser", f"--port={self.port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
             "--ServerApp.port_retries=0"],
            cwd=root, env=environment, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                self.api("status")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"JupyterLab did not start:\n{self.log()}") from None
                time.sleep(0.3)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(self.url(f"api/{path}"), method=method)
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for kernel in self.api("kernels"):
            self.api(f"kernels/{kernel['id']}", method="DELETE")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Notebook:
    """One notebook open in a JupyterLab tab."""

    def __init__(self, page, lab: Lab, path: str):
        self.page, self.lab, self.path = page, lab, path
        self.nb = course.read_notebook(lab.root / path)

    def open(self, kernel: bool = True) -> "Notebook":
        """Open the notebook and wait for its cells, and with ``kernel`` for its kernel to be idle (to run cells;
        a notebook opened only to look at its saved outputs need not wait for it)."""
        # `reset`: a fresh workspace, with no tab of an earlier notebook restored behind this one
        self.page.goto(self.lab.url(f"lab/tree/{self.path}") + "&reset")
        self.panel = self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        self.cells = self.panel.locator(".jp-Cell")
        self.cells.first.wait_for(timeout=90_000)
        if kernel:
            self.panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
                state="attached", timeout=90_000)
        deadline = time.monotonic() + 60
        while (found := self.cells.count()) != len(self.nb.cells):  # the cells are attached as they load
            assert time.monotonic() < deadline, (
                f"{self.path}: JupyterLab shows {found} cells, the file has {len(self.nb.cells)}")
            time.sleep(0.2)
        return self

    def run_all_one_by_one(self, timeout_s: float = 300) -> dict[int, float]:
        """Run every cell in order as a student does (Shift+Enter, waiting for each to finish, going on
        after an error); return each code cell's seconds."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        self.cells.first.locator(".jp-InputPrompt").first.click()
        self.page.keyboard.press("Escape")
        seconds = {}
        last = len(self.nb.cells) - 1
        for i, cell in enumerate(self.nb.cells):
            prompt = self.cells.nth(i).locator(".jp-InputArea-prompt").first
            before = prompt.text_content().strip() if cell.cell_type == "code" else ""
            start = time.monotonic()
            self.page.keyboard.press("Control+Enter" if i == last else "Shift+Enter")
            if cell.cell_type != "code":
                continue
            # the page watches the prompt itself (textContent: no layout), instead of a round trip from here every
            # 50 ms that made Chromium lay out the whole notebook while the kernel wanted the same cores
            try:
                self.page.wait_for_function(PROMPT_CHANGED, arg=[prompt.element_handle(), before], polling=50,
                                            timeout=timeout_s * 1000)
            except PlaywrightTimeout:
                raise AssertionError(f"{self.path}: cell {i} ({cell.id}) still runs after {timeout_s:.0f} s") from None
            seconds[i] = time.monotonic() - start
        return seconds

    def save(self) -> None:
        """Save from the browser (the widget state is written then), and wait for the file to change."""
        before = (self.lab.root / self.path).stat().st_mtime_ns
        self.page.keyboard.press("Control+s")
        deadline = time.monotonic() + 60
        while (self.lab.root / self.path).stat().st_mtime_ns == before:
            assert time.monotonic() < deadline, f"{self.path}: saving from the browser did not write the file"
            time.sleep(0.1)
        time.sleep(0.5)
        self.nb = course.read_notebook(self.lab.root / self.path)

    def widget_errors(self) -> int:
        return self.panel.get_by_text("Error displaying widget").count()

    def explorers(self):
        """The explorers shown: each a widget box whose picture is an image widget."""
        return self.panel.locator(".jp-OutputArea-output .widget-vbox:has(> .widget-image)")


def reveal(element) -> None:
    """Scroll an element into view. JupyterLab skips the layout of cells out of view
    (content-visibility), where Playwright's own scrolling sees nothing visible to scroll to."""
    top = None
    for _ in range(5):  # the cells above take their real height as they render: aim again until it stays put
        element.evaluate("e => e.scrollIntoView({block: 'center'})")
        element.wait_for(state="visible", timeout=30_000)
        time.sleep(0.1)
        now = element.evaluate("e => Math.round(e.getBoundingClientRect().top)")
        if now == top:
            return
        top = now


def error_lines(cell) -> list[str] | None:
    """The lines a cell's error shows in the notebook (ANSI colours removed), or None if it has none."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            text = "\n".join(output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"])
            return [line for line in ANSI.sub("", text).splitlines() if line.strip()]
    return None


def line_count(element) -> int:
    """How many lines an element's text takes on the screen (its line boxes' distinct tops)."""
    return element.evaluate("""e => { const r = document.createRange(); r.selectNodeContents(e);
        return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }""")


def change_a_control(explorer) -> str:
    """Change the first menu of an explorer (to its next option), or else its first slider (one step);
    return what was changed."""
    menus = explorer.locator("select")
    if menus.count():
        menu = menus.first
        options = menu.locator("option").all_inner_texts()
        current = menu.evaluate("m => m.selectedIndex")
        menu.select_option(index=(current + 1) % len(options))
        return f"menu -> {options[(current + 1) % len(options)]!r}"
    handle = explorer.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    return "slider one step right"
