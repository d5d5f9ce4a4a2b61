"""``coursekit explore [PART]``: the explorers of a lecture part as a page with no code showing, for a class.

The apps are the notebooks ``coursekit/explore/apps/<part>.py`` (jupytext percent files: why, in that package's
docstring), one per module of :mod:`coursekit.explore`, each building every explorer of its part. This module only
finds them by path (``course`` does not import ``explore``: tests/test_layout.py), turns them into notebooks
(:func:`coursekit.course.stages.notebook_from_source`) and serves them with Voilà, started as
``python -m voila`` from this environment, with the course's settings (:data:`VOILA_SETTINGS`): sources stripped,
so no code shows; errors shown with their traceback (to the instructor, who owns the machine, not a generic
"There was an error"); on loopback unless an ``--Voila.ip=...`` is given. Options after the part go to Voilà
(``--port=8870``, ``--no-browser``) and come after the course's, so they win.

``PART`` is a part (``nets``), or a stage id or number (``04-mnist``, ``04``) for the part that holds its
explorers; without it every app is served, Voilà's list of them at the root and each at
``/voila/render/<part>.ipynb``. The notebooks are written anew each time (the sources are the truth) into a
temporary folder, removed when Voilà stops. Nothing downloads: the apps read the data cache only."""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

APPS = Path(__file__).resolve().parents[1] / "explore" / "apps"
DEFAULT_PORT = 8866  # Voilà's
VOILA_SETTINGS = (
    "--strip_sources=True",  # the page shows the explorers and the markdown, never the code
    "--show_tracebacks=True",  # a cell that fails says why, on the instructor's own machine
    "--theme=light",
)


class App(NamedTuple):
    part: str  # the module of coursekit.explore whose explorers it builds
    title: str  # its first heading
    stages: tuple[str, ...]  # the stages whose explorers it shows (its header's ``coursekit: stages``)
    source: Path


def apps(folder: Path = APPS) -> dict[str, App]:
    """Every app, by part, in lecture order (by the first stage each shows)."""
    from coursekit.course.stages import notebook_from_source

    found = []
    for source in sorted(Path(folder).glob("*.py")):
        if source.name.startswith("_"):
            continue
        nb = notebook_from_source(source)
        stages = tuple(nb.metadata.get("coursekit", {}).get("stages", ()))
        if not stages:
            raise ValueError(f"{source}: the header must list the stages whose explorers the app shows "
                             f"(`coursekit: stages: [...]`)")
        heading = next((line for cell in nb.cells if cell.cell_type == "markdown"
                        for line in cell.source.splitlines() if line.startswith("# ")), f"# {source.stem}")
        found.append(App(source.stem, heading[2:].strip(), stages, source))
    return {app.part: app for app in sorted(found, key=lambda app: app.stages[0])}


def chosen(part: str | None, known: dict[str, App] | None = None) -> list[App]:
    """The apps that ``part`` names: a part, or a stage id or number (``04-mnist``, ``04``); None for all."""
    known = apps() if known is None else known
    if part is None:
        return list(known.values())
    if part in known:
        return [known[part]]
    for app in known.values():
        if any(part == stage or (re.fullmatch(r"\d\d", part) and stage.startswith(f"{part}-")) for stage in app.stages):
            return [app]
    listed = "; ".join(f"{app.part} (stages {', '.join(app.stages)})" for app in known.values())
    raise ValueError(f"no lecture part {part!r}: the parts are {listed}; a stage id or number names its part too")


def explorers(app: App) -> list[str]:
    """The explorers ``app`` builds, in the order of its source: the name of each call of a class imported from
    ``coursekit.explore`` (tests/test_explore_apps.py checks that each is an explorer, and that every explorer of
    the part is among them; the browser test that the page shows that many)."""
    tree = ast.parse(app.source.read_text(encoding="utf-8"))
    imported = {alias.asname or alias.name: alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("coursekit.explore")
                for alias in node.names if alias.name[:1].isupper()}
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported]
    return [imported[call.func.id] for call in sorted(calls, key=lambda call: (call.lineno, call.col_offset))]


def write_notebooks(chosen_apps: list[App], folder: Path) -> list[Path]:
    """Each app as ``<part>.ipynb`` in ``folder``; returns the paths."""
    from coursekit.course.stages import notebook_from_source, notebook_text

    written = []
    for app in chosen_apps:
        path = Path(folder) / f"{app.part}.ipynb"
        path.write_text(notebook_text(notebook_from_source(app.source)), encoding="utf-8")
        written.append(path)
    return written


def _option(options: list[str], *names: str) -> str | None:
    """The value of the last ``--name=value`` or ``--name value`` among ``options``."""
    value = None
    for i, option in enumerate(options):
        for name in names:
            if option.startswith(f"{name}="):
                value = option.split("=", 1)[1]
            elif option == name and i + 1 < len(options):
                value = options[i + 1]
    return value


def command(target: Path, options: list[str]) -> list[str]:
    """The Voilà command line: the course's settings, loopback unless an ip is given, then ``options``."""
    loopback = [] if _option(options, "--Voila.ip") is not None else ["--Voila.ip=127.0.0.1"]
    return [sys.executable, "-m", "voila", os.fspath(target), *VOILA_SETTINGS, *loopback, *options]


def url(options: list[str], page: str = "") -> str:
    """Where Voilà listens with these options (if the port is free: else Voilà takes the next and says so)."""
    host = _option(options, "--Voila.ip") or "127.0.0.1"
    port = _option(options, "--port", "--Voila.port") or DEFAULT_PORT
    base = (_option(options, "--base_url", "--Voila.base_url") or "/").strip("/")
    return f"http://{'localhost' if host in ('', '0.0.0.0') else host}:{port}/{base + '/' if base else ''}{page}"


def explore(part: str | None, options: list[str], *, list_only: bool = False) -> int:
    """``coursekit explore``: serve the apps of ``part`` (all without one) until Voilà stops; Voilà's exit status."""
    try:
        serving = chosen(part)
    except ValueError as err:
        print(f"coursekit: {err}", file=sys.stderr)
        return 2
    if list_only:
        for app in serving:
            print(f"{app.part:<12} {app.title} (stages {', '.join(app.stages)}): {', '.join(explorers(app))}")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="coursekit-explore-"))
    try:
        notebooks = write_notebooks(serving, folder)
        if part is None:
            target = folder
            print(f"coursekit explore: the explorer apps at {url(options)}, one page per lecture part:")
            for app in serving:
                print(f"  {url(options, f'voila/render/{app.part}.ipynb')}  {app.title}")
        else:
            (app,) = serving
            target = notebooks[0]
            print(f"coursekit explore: {app.title} (stages {', '.join(app.stages)}) at {url(options)}")
        print("(Ctrl+C stops it; each page builds its explorers when it is opened, in seconds)", flush=True)
        return _run(command(target, options))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(line: list[str]) -> int:
    """Run Voilà until it stops. It runs in a session of its own, and a SIGINT (Ctrl+C), SIGTERM or SIGHUP that this
    process gets reaches it as one SIGTERM, on which it shuts its kernels down and stops (a SIGINT could be ignored
    there: a shell starts background jobs with SIGINT ignored, and the child would inherit that); then this
    process removes the notebooks."""
    if os.name != "posix":
        return subprocess.call(line)
    running: list[subprocess.Popen] = []
    stopped: list[int] = []

    def stop(signum, frame):
        stopped.append(signum)
        for process in running:
            process.terminate()

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, stop) for sig in forwarded}
    try:
        running.append(subprocess.Popen(line, start_new_session=True))
        if stopped:  # a signal that came before Voilà started
            running[0].terminate()
        return running[0].wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
