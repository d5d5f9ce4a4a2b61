"""The widgets' logic, driven headless: set a slider's value, read the state back."""

from __future__ import annotations

import numpy as np
import pytest

from coursekit import datasets
from coursekit.widgets import BackpropExplorer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def explorer():
    X, labels = datasets.spiral(n_per_class=40)
    return BackpropExplorer(X, labels, steps=300, hidden=20)


def test_it_trains_and_draws_on_creation(explorer):
    assert explorer.updates == 1
    assert bytes(explorer.image.value).startswith(PNG)
    assert explorer.result.params["W1"].shape == (2, 20)
    assert 0.0 <= explorer.train_accuracy <= 1.0
    assert f"{explorer.train_accuracy:.1%}" in explorer.status.value
    assert explorer.result.losses[-1] < explorer.result.losses[0]


def test_moving_a_slider_retrains_with_the_new_setting(explorer):
    before = bytes(explorer.image.value)
    explorer.hidden.value = 7
    assert explorer.updates == 2
    assert explorer.settings()["hidden"] == 7
    assert explorer.result.params["W1"].shape == (2, 7)
    assert bytes(explorer.image.value) != before


def test_strong_weight_decay_shrinks_the_weights(explorer):
    explorer.lam.value = 1e-4
    small = np.abs(explorer.result.params["W2"]).sum()
    explorer.lam.value = 1.0
    assert np.abs(explorer.result.params["W2"]).sum() < 0.5 * small


def test_a_diverging_learning_rate_is_reported_not_raised(explorer):
    # with lam = 1 and lr = 10, the decay step alone maps W to W - 10 W = -9 W: the weights explode
    explorer.lam.value = 1.0
    explorer.lr.value = 10.0
    assert not np.isfinite(explorer.final_loss)
    assert "diverge" in explorer.status.value
    assert bytes(explorer.image.value).startswith(PNG)


def test_same_settings_give_the_same_result():
    X, labels = datasets.spiral(n_per_class=20)
    a = BackpropExplorer(X, labels, steps=50, hidden=5)
    b = BackpropExplorer(X, labels, steps=50, hidden=5)
    assert a.result.losses == b.result.losses


def test_bad_data_is_refused_with_the_shapes():
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\); got \(5, 3\)"):
        BackpropExplorer(np.zeros((5, 3)), np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match=r"labels must have shape \(5,\)"):
        BackpropExplorer(np.zeros((5, 2)), np.zeros(4, dtype=int))
