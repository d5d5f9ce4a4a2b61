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


# -- stage 02: the graph viewer --------------------------------------------------------------------


def _two_layer_loss(seed=0):
    from coursekit import autodiff, nn

    g = np.random.default_rng(seed)
    X, T = g.normal(size=(8, 2)), np.eye(3)[g.integers(0, 3, size=8)]
    P = {k: autodiff.Param(v, k) for k, v in nn.init_params(2, 4, 3, g, scale=1.0).items()}
    L = autodiff.loss(autodiff.model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"]))), T, (P["W1"], P["W2"]), 0.1)
    return L, P, X, T


def test_graph_viewer_steps_through_every_node_of_the_opened_blocks():
    from coursekit.widgets import GraphViewer

    L, P, _, _ = _two_layer_loss()
    viewer = GraphViewer(L)
    # affine, relu, affine inside model; entropy, decay, add inside loss
    assert viewer.step.max == 6
    assert sorted(n.op for n in viewer.order) == ["add", "affine", "affine", "decay", "entropy", "relu"]
    assert viewer.order[0].op == "add"  # the backward pass starts at the loss
    assert all(p.grad is None for p in P.values())
    assert bytes(viewer.image.value).startswith(PNG)


def test_graph_viewer_gradients_arrive_in_reverse_order_and_end_at_backward():
    from coursekit import nn
    from coursekit.widgets import GraphViewer

    L, P, X, T = _two_layer_loss(1)
    viewer = GraphViewer(L)
    viewer.step.value = 2  # add, then decay (created after entropy in the loss block): W1 has only lam W1
    assert "decay" in viewer.status.value
    np.testing.assert_allclose(P["W1"].grad, 0.1 * P["W1"].value)
    assert P["b1"].grad is None
    viewer.step.value = viewer.step.max
    _, reference = nn.loss_and_grads(X, T, {k: p.value for k, p in P.items()}, 0.1)
    for k, p in P.items():
        np.testing.assert_allclose(p.grad, reference[k], rtol=1e-10, atol=1e-14)
    viewer.step.value = 0  # going back clears the gradients again
    assert all(p.grad is None for p in P.values())


def test_graph_viewer_refuses_steps_out_of_range():
    from coursekit.widgets import GraphViewer

    viewer = GraphViewer(_two_layer_loss()[0])
    with pytest.raises(ValueError, match=r"step must be in \[0, 6\]; got 7"):
        viewer.show(7)


# -- stage 03: the LTI and kernel explorers ---------------------------------------------------------


def test_lti_explorer_output_is_the_convolution_and_shifts_commute():
    import scipy.signal

    from coursekit.widgets import LTIExplorer

    e = LTIExplorer(n=64)
    for signal in e.signal.options:
        for response in e.response.options:
            e.signal.value, e.response.value = signal, response
            np.testing.assert_allclose(e.y, scipy.signal.convolve(e.x, e.h)[:64], atol=1e-12)
            # delaying, then filtering equals filtering, then delaying, on the samples both keep
            k = e.delay.value
            np.testing.assert_allclose(e.shift_then_filter[k:], e.filter_then_shift[k:], atol=1e-12)
            assert e.interior_gap < 1e-12 and "away from the ends" in e.note.value
    assert bytes(e.image.value).startswith(PNG)


def test_lti_explorer_redraws_when_the_length_of_h_changes():
    from coursekit.widgets import LTIExplorer

    e = LTIExplorer(n=64)
    before = bytes(e.image.value)
    e.response.value = "moving average"
    e.width.value = 15
    assert e.h.shape == (15,) and np.isclose(e.h.sum(), 1.0)
    assert bytes(e.image.value) != before


def test_kernel_explorer_presets_and_typed_kernels_filter_the_photo():
    import scipy.signal

    from coursekit.widgets import KernelExplorer

    k = KernelExplorer(photo="coins", size=64)
    for preset, kernel in k.kernels.items():
        k.preset.value = preset
        np.testing.assert_allclose(k.kernel, kernel, atol=5e-5)  # shown rounded to 4 decimals
        np.testing.assert_allclose(k.output, scipy.signal.convolve2d(k.input, k.kernel, mode="same"), atol=1e-5)
    k.preset.value = "identity"
    np.testing.assert_allclose(k.output, k.input, atol=1e-6)
    before = bytes(k.image.value)
    k.cells[0].value = 2.0  # typing into the grid refilters at once
    assert k.kernel[0, 0] == 2.0
    np.testing.assert_allclose(k.output, scipy.signal.convolve2d(k.input, k.kernel, mode="same"), atol=1e-5)
    assert bytes(k.image.value) != before
    k.photo.value = "camera"
    assert k.input.shape == (64, 64)
