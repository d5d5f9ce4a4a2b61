"""``coursekit lab``: JupyterLab with the settings the course needs.

JupyterLab does not save widget state in a notebook unless asked to, so a notebook reopened after its
kernel stopped shows "Error displaying widget: model not found" where every explorer was. The course
asks for it through a settings-override file in the environment
(``<prefix>/share/jupyter/lab/settings/overrides.d/coursekit.json``, read by every JupyterLab started
from that environment: ``jupyter lab``, a JupyterHub single-user server, ``coursekit lab``). The file
also stops JupyterLab asking, on first start, to fetch news from the internet.

An editable install (``pip install -e .``) does not install data files, so the file is written here,
by :func:`install_settings`, each time ``coursekit lab`` starts (``coursekit lab --settings-only``
writes it and exits, for a hub image).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SETTINGS = {
    # the explorers' last state (their picture included) is saved with the notebook, so that they
    # still show after the kernel stops and the notebook is reopened
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
    # the course runs offline: no news or update checks from the internet
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
}


def settings_path(prefix: str | os.PathLike | None = None) -> Path:
    """Where JupyterLab of the environment at ``prefix`` (default: this one) reads the course's settings."""
    return Path(sys.prefix if prefix is None else prefix) / "share/jupyter/lab/settings/overrides.d/coursekit.json"


def install_settings(prefix: str | os.PathLike | None = None) -> Path:
    """Write :data:`SETTINGS` where JupyterLab reads them (unchanged if already there); return the path."""
    path = settings_path(prefix)
    text = json.dumps(SETTINGS, indent=2) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def command(folder: str | os.PathLike | None, options: list[str]) -> list[str]:
    """The ``jupyter lab`` command line: the folder to serve (default: the course's ``notebooks/`` if
    the current directory has one), the given options, and ``--allow-root`` when run as root (a
    container), which JupyterLab otherwise refuses."""
    if folder is None and Path("notebooks").is_dir():
        folder = "notebooks"
    line = [sys.executable, "-m", "jupyterlab", *([os.fspath(folder)] if folder is not None else []), *options]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in options:
        line.append("--allow-root")
    return line


def lab(folder: str | os.PathLike | None, options: list[str], settings_only: bool = False) -> int:
    try:
        path = install_settings()
    except OSError as err:
        print(f"coursekit: could not write JupyterLab's settings for the course ({err}): explorers will not "
              f"show after a notebook is reopened", file=sys.stderr)
        if settings_only:
            return 2
    else:
        if settings_only:
            print(f"wrote {path}")
            return 0
    line = command(folder, options)
    if os.name == "posix":
        os.execv(line[0], line)  # JupyterLab takes this process's place: Ctrl+C and signals reach it
    return subprocess.call(line)
