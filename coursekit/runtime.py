"""Where and how much to run: the device, the seeds and the run budget (docs/ANATOMY.md §7).

Environment variables (all optional):

- ``COURSEKIT_DEVICE``: a torch device string (``cpu``, ``cuda``, ``cuda:1``...) that overrides the
  automatic choice (``cuda`` when available, else ``cpu``).
- ``COURSEKIT_BUDGET``: ``full`` or ``fast``; overrides the automatic choice, which is ``fast`` while
  nbgrader executes a notebook (``NBGRADER_EXECUTION``) or in CI (``CI``), else ``full``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

BUDGETS = ("full", "fast")
_FALSY = {"", "0", "false", "no", "off"}

T = TypeVar("T")


def under_grading() -> bool:
    """True while nbgrader executes the notebook (validate or autograde)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in _FALSY


@dataclass(frozen=True)
class Budget:
    """How much work heavy cells do. ``name`` is ``"full"`` or ``"fast"``; ``reason`` says why."""

    name: str
    reason: str

    def __post_init__(self):
        if self.name not in BUDGETS:
            raise ValueError(f"budget name must be one of {BUDGETS}, got {self.name!r}")

    @property
    def fast(self) -> bool:
        return self.name == "fast"

    def pick(self, *, full: T, fast: T) -> T:
        """The value for this budget: ``budget().pick(full=10_000, fast=1_500)``."""
        return fast if self.fast else full

    def __str__(self) -> str:
        return f"{self.name} budget ({self.reason})"


def budget() -> Budget:
    """The run budget every heavy cell reads (docs/ANATOMY.md §7)."""
    chosen = os.environ.get("COURSEKIT_BUDGET")
    if chosen is not None and chosen.strip():
        name = chosen.strip().lower()
        if name not in BUDGETS:
            raise ValueError(
                f"COURSEKIT_BUDGET must be one of {', '.join(BUDGETS)}; got {chosen!r}"
            )
        return Budget(name, "set by COURSEKIT_BUDGET")
    if under_grading():
        return Budget("fast", "nbgrader is executing this notebook")
    if in_ci():
        return Budget("fast", "running in CI")
    return Budget("full", "default")


def device(override: str | None = None):
    """The torch device to run on: ``override``, else ``COURSEKIT_DEVICE``, else cuda if available.

    A device that cannot be used (``cuda`` on a machine without CUDA, a misspelt name) is an error
    that names where it came from, never a silent fall-back to another device.
    """
    import torch

    source = "device argument"
    wanted = override
    if wanted is None:
        wanted = os.environ.get("COURSEKIT_DEVICE") or None
        source = "COURSEKIT_DEVICE"
    if wanted is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(wanted)
    except RuntimeError as err:
        raise ValueError(
            f"{source} must be a torch device such as 'cpu' or 'cuda'; got {wanted!r} ({err})"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{source} asks for {wanted!r} but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"{source} asks for {wanted!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise RuntimeError(f"{source} asks for {wanted!r} but MPS is not available here")
    elif dev.type != "cpu":
        raise ValueError(f"{source} must name a cpu, cuda or mps device; got {wanted!r}")
    return dev


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch (all devices); return a fresh numpy Generator on that seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)  # also seeds every CUDA device
    return np.random.default_rng(seed)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where output goes to a notebook, not a terminal)."""
    import sys

    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


NOTEBOOK_COLUMNS = 80  # characters in a notebook's bar: about 700 px, one line even beside the file browser
NOTEBOOK_DESC = 14  # characters of the description kept there
NOTEBOOK_BAR = "{l_bar}{bar:12}{r_bar}"  # tqdm's own line with a bar of fixed width


class NotebookLine:
    """A file for tqdm's text bar that shows the bar's latest state as one line of notebook output.

    tqdm.auto would draw an ipywidgets bar; a widget's output is saved in the notebook and shows
    "Error displaying widget: model not found" once the notebook is reopened. This writes plain HTML
    into one display instead, and clears it when a bar that is not left (``leave=False``) closes.
    """

    def __init__(self):
        import html

        from IPython.display import HTML, display

        self._html, self._escape = HTML, html.escape  # imported now: a bar may still write at exit
        self.line = ""
        self.handle = display(HTML(""), display_id=True)

    def write(self, text: str) -> None:
        text = text.replace("\n", "")
        self.line = text.rsplit("\r", 1)[-1] if "\r" in text else self.line + text
        shown = self._escape(self.line.strip())
        self.handle.update(self._html(f"<pre style='margin:0;white-space:pre;overflow:hidden'>{shown}</pre>"
                                      if shown else ""))

    def flush(self) -> None:
        pass


class _NoBar:
    """What :func:`progress` returns where tqdm is not installed (a bare machine that runs the GPU
    checks): the same calls, nothing shown."""

    def __init__(self, iterable=None, **kwargs):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(iterable=None, **kwargs):
    """A tqdm progress bar that stays silent under grading and in CI: on stderr in a terminal, as one
    line of plain notebook output in Jupyter (see :class:`NotebookLine`), at most
    ``NOTEBOOK_COLUMNS`` characters with a bar of fixed width and the description cut to
    ``NOTEBOOK_DESC``. Without tqdm (installed with coursekit, but not on every machine that runs the
    GPU checks), no bar at all."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(iterable, **kwargs)

    kwargs.setdefault("disable", under_grading() or in_ci())
    if not kwargs["disable"] and "file" not in kwargs and in_notebook():
        desc = kwargs.get("desc") or ""
        if len(desc) > NOTEBOOK_DESC:
            kwargs["desc"] = desc[: NOTEBOOK_DESC - 1] + "…"
        kwargs.update(file=NotebookLine(), ncols=NOTEBOOK_COLUMNS, bar_format=NOTEBOOK_BAR, ascii=False)
    return tqdm(iterable, **kwargs)
