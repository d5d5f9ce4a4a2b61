"""coursekit.runtime: the run budget, the device, the seeds and the progress bars (docs/ANATOMY.md §3, §7)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import coursekit
from coursekit import runtime
from coursekit.runtime import Budget, budget, device, progress, seed_everything

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Each test starts from a student's laptop: no grader, no CI, no overrides."""
    for name in ("CI", "NBGRADER_EXECUTION", "COURSEKIT_BUDGET", "COURSEKIT_DEVICE"):
        monkeypatch.delenv(name, raising=False)


# -- budget -----------------------------------------------------------------------------------------


def test_budget_is_full_by_default():
    b = budget()
    assert b.name == "full" and not b.fast


@pytest.mark.parametrize("mode", ["autograde", "validate"])
def test_budget_is_fast_under_nbgrader(monkeypatch, mode):
    monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    assert runtime.under_grading()
    b = budget()
    assert b.name == "fast" and b.fast
    assert "nbgrader" in b.reason


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_budget_is_fast_in_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert budget().name == "fast"


@pytest.mark.parametrize("value", ["false", "0", "", "no", "False"])
def test_budget_is_full_when_ci_is_falsy(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert budget().name == "full"


def test_coursekit_budget_overrides_both_ways(monkeypatch):
    monkeypatch.setenv("COURSEKIT_BUDGET", "fast")
    assert budget().name == "fast"
    assert "COURSEKIT_BUDGET" in budget().reason
    monkeypatch.setenv("COURSEKIT_BUDGET", " FULL ")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("CI", "true")
    assert budget().name == "full"


def test_invalid_coursekit_budget_names_the_variable_and_value(monkeypatch):
    monkeypatch.setenv("COURSEKIT_BUDGET", "turbo")
    with pytest.raises(ValueError, match=r"COURSEKIT_BUDGET.*'turbo'"):
        budget()


def test_budget_pick_and_str():
    assert Budget("full", "default").pick(full=10_000, fast=1_500) == 10_000
    assert Budget("fast", "CI").pick(full=10_000, fast=1_500) == 1_500
    assert str(Budget("fast", "running in CI")) == "fast budget (running in CI)"
    with pytest.raises(TypeError):
        Budget("fast", "CI").pick(10_000, 1_500)  # keyword-only, so the two cannot be swapped


def test_budget_rejects_unknown_names():
    with pytest.raises(ValueError, match="'turbo'"):
        Budget("turbo", "because")


def test_budget_is_exported_at_the_top_level():
    assert coursekit.budget is budget and coursekit.device is device


# -- device -----------------------------------------------------------------------------------------


def test_device_is_cuda_when_available_else_cpu():
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_coursekit_device_cpu_is_honoured(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "cpu")
    assert device() == torch.device("cpu")
    monkeypatch.setenv("COURSEKIT_DEVICE", "")
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_device_argument_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "nonsense")
    assert device("cpu") == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised on a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_coursekit_device_cuda_without_cuda_is_an_error(monkeypatch, name):
    monkeypatch.setenv("COURSEKIT_DEVICE", name)
    with pytest.raises(RuntimeError, match=r"^COURSEKIT_DEVICE asks for"):
        device()


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised on a machine without CUDA")
def test_device_argument_cuda_without_cuda_names_the_argument():
    with pytest.raises(RuntimeError, match="^device argument"):
        device("cuda")


@pytest.mark.parametrize("name", ["banana", "gpu", "meta"])
def test_nonsense_device_names_raise_value_error(monkeypatch, name):
    monkeypatch.setenv("COURSEKIT_DEVICE", name)
    with pytest.raises(ValueError, match=rf"^COURSEKIT_DEVICE must .*'{name}'"):
        device()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_device_picks_cuda_and_a_tensor_round_trips(monkeypatch):
    dev = device()
    assert dev.type == "cuda"
    monkeypatch.setenv("COURSEKIT_DEVICE", "cuda:0")
    assert device() == torch.device("cuda:0")
    x = torch.arange(10, dtype=torch.float64)
    y = x.to(dev)
    assert y.device.type == "cuda"
    torch.testing.assert_close((y * 2).cpu(), x * 2)
    with pytest.raises(RuntimeError, match="CUDA device"):
        device(f"cuda:{torch.cuda.device_count()}")


# -- seeds ------------------------------------------------------------------------------------------


def draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_seed_everything_makes_draws_repeat():
    rng = seed_everything(123)
    first = draws(), rng.random(4).tolist()
    rng = seed_everything(123)
    second = draws(), rng.random(4).tolist()
    assert first == second
    rng = seed_everything(124)
    third = draws(), rng.random(4).tolist()
    for a, b in zip(first[0] + (first[1],), third[0] + (third[1],)):
        assert a != b


def test_seed_everything_returns_a_generator_on_that_seed():
    rng = seed_everything(np.int64(7))
    assert isinstance(rng, np.random.Generator)
    assert rng.random(3).tolist() == np.random.default_rng(7).random(3).tolist()


@pytest.mark.parametrize("seed", [-1, 1.5, 2.0, True, 2**32, "3", None])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="^seed must be"):
        seed_everything(seed)


# -- progress bars ----------------------------------------------------------------------------------


def test_progress_writes_a_bar_to_stderr_normally(capsys):
    # The control for the tests below: capsys does see tqdm's output.
    assert list(progress(range(5), desc="steps")) == list(range(5))
    assert "steps" in capsys.readouterr().err


@pytest.mark.parametrize("env", [{"NBGRADER_EXECUTION": "autograde"}, {"CI": "true"}])
def test_progress_is_silent_under_grading_and_ci(monkeypatch, capsys, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bar = progress(range(50), desc="steps")
    assert bar.disable
    assert list(bar) == list(range(50))
    bar.close()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_in_a_notebook_the_bar_is_one_line_of_html_cleared_when_it_closes(monkeypatch):
    # tqdm.auto's widget bar leaves "model not found" errors in saved notebooks: check the HTML line
    # that replaces it shows the bar while it runs and nothing once a leave=False bar closes.
    import IPython.display

    from coursekit import runtime

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj.data)

    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id=None: Handle())
    monkeypatch.setattr(runtime, "in_notebook", lambda: True)
    for name in ("NBGRADER_EXECUTION", "CI"):
        monkeypatch.delenv(name, raising=False)
    bar = progress(total=4, desc="FC", leave=False, mininterval=0)
    for _ in range(4):
        bar.update(1)
    assert any("FC:" in html and "4/4" in html for html in shown)
    assert all("\r" not in html for html in shown)
    bar.close()
    assert shown[-1] == ""


def test_in_a_notebook_a_training_bar_is_one_line_of_at_most_80_characters(monkeypatch):
    # With JupyterLab's file browser open a cell's output is about 900 px wide: 80 characters of the
    # monospace font (about 700 px) fit on one line, whatever the net's name and however long it runs.
    import html
    import re

    import IPython.display

    from coursekit import runtime

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj.data)

    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id=None: Handle())
    monkeypatch.setattr(runtime, "in_notebook", lambda: True)
    epochs, steps_per_epoch = 10, 469  # fit's bar: stage 04's FC net on 60k images, batches of 128
    for name in ("FC", "LeNet-5", "CNN on shuffled pixels"):
        bar = progress(total=epochs * steps_per_epoch, desc=name, leave=False, mininterval=0)
        bar.update(3 * steps_per_epoch + 17)
        count = f"{3 * steps_per_epoch + 17}/{epochs * steps_per_epoch}"
        lines = [str(bar)] + [bar.format_meter(**{**bar.format_dict, "elapsed": seconds, "rate": None})
                              for seconds in (12, 5400)]  # 12 s and an hour and a half into training
        for line in lines:
            assert len(line) <= 80, f"{len(line)} characters: {line!r}"
            assert count in line and line.startswith(name[:8]) and "%" in line
        text = html.unescape(re.sub("<[^>]+>", "", shown[-1]))
        assert len(text) <= 80 and count in text
        assert "white-space:pre" in shown[-1].replace(" ", "")  # never wrapped onto a second line
        bar.close()


def test_outside_a_kernel_we_are_not_in_a_notebook():
    from coursekit.runtime import in_notebook

    assert not in_notebook()


def test_progress_without_tqdm_is_a_silent_bar_with_the_same_calls(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    bar = progress(range(3), desc="training", leave=False)
    assert list(bar) == [0, 1, 2]
    bar.update(1)
    bar.close()
    assert list(progress(total=5)) == []
