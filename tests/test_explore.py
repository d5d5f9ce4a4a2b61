"""The widgets' logic, driven headless: set a slider's value, read the state back."""

from __future__ import annotations

import numpy as np
import pytest

from coursekit.data import samples
from coursekit.explore import plots
from coursekit.explore.nets import BackpropExplorer

PNG = b"\x89PNG\r\n\x1a\n"
NOTEBOOK_WIDTH = 900  # px left for a cell's output in JupyterLab at 1280x800 with the file browser open


def _rendered(fig):
    """``fig`` drawn once by Agg (layout done, every artist placed); returns its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig.canvas.get_renderer()


@pytest.fixture  # one per test: xdist may split the tests of a module between workers, in any order
def explorer():
    X, labels = samples.spiral(n_per_class=40)
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


def test_the_decision_regions_and_the_loss_have_labelled_axes(explorer):
    explorer.lam.value, explorer.lr.value = 1e-3, 1.0
    fig = explorer.draw()
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), ax.get_title()
    regions = fig.axes[0]
    assert regions.get_xlabel() != regions.get_ylabel()  # one label per input coordinate
    assert "1" in regions.get_xlabel() and "2" in regions.get_ylabel()


def test_the_activation_menu_retrains_with_that_h(explorer):
    explorer.lam.value, explorer.lr.value = 1e-3, 1.0
    before, updates = bytes(explorer.image.value), explorer.updates
    explorer.h.value = "tanh"
    assert explorer.updates == updates + 1
    assert explorer.result.h.name == "tanh"
    assert "h = tanh" in explorer.status.value
    assert bytes(explorer.image.value) != before
    explorer.h.value = "relu"


def test_no_hidden_layer_trains_the_linear_classifier_and_disables_the_width(explorer):
    explorer.h.value = BackpropExplorer.LINEAR
    assert set(explorer.result.params) == {"W", "b"}
    assert explorer.hidden.disabled
    assert "no hidden layer" in explorer.status.value
    # three spiral arms are not linearly separable: a linear classifier stays far below the net
    assert explorer.train_accuracy < 0.7
    explorer.h.value = "relu"
    assert not explorer.hidden.disabled


def test_the_sigmoid_activation_is_the_function_given():
    X, labels = samples.spiral(n_per_class=10)
    calls = []

    def mine(a):
        calls.append(1)
        return 1 / (1 + np.exp(-a))

    explorer = BackpropExplorer(X, labels, steps=5, hidden=3, h="sigmoid", sigmoid=mine)
    assert len(calls) >= 5  # one forward pass per step, and the picture's predictions
    with pytest.raises(ValueError, match=r"h must be one of .*; got 'elu'"):
        BackpropExplorer(X, labels, h="elu")


def test_same_settings_give_the_same_result():
    X, labels = samples.spiral(n_per_class=20)
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
    from coursekit.nets import autodiff, ops, backprop

    g = np.random.default_rng(seed)
    X, T = g.normal(size=(8, 2)), np.eye(3)[g.integers(0, 3, size=8)]
    P = {k: autodiff.Param(v, k) for k, v in backprop.init_params(2, 4, 3, g, scale=1.0).items()}
    L = ops.loss(ops.model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"]))), T, (P["W1"], P["W2"]), 0.1)
    return L, P, X, T


def test_graph_viewer_steps_through_every_node_of_the_opened_blocks():
    from coursekit.explore.nets import GraphViewer

    L, P, _, _ = _two_layer_loss()
    viewer = GraphViewer(L)
    # affine, relu, affine inside model; entropy, decay, add inside loss
    assert viewer.step.max == 6
    assert sorted(n.op for n in viewer.order) == ["add", "affine", "affine", "decay", "entropy", "relu"]
    assert viewer.order[0].op == "add"  # the backward pass starts at the loss
    assert all(p.grad is None for p in P.values())
    assert bytes(viewer.image.value).startswith(PNG)


def test_graph_viewer_gradients_arrive_in_reverse_order_and_end_at_backward():
    from coursekit.nets import backprop
    from coursekit.explore.nets import GraphViewer

    L, P, X, T = _two_layer_loss(1)
    viewer = GraphViewer(L)
    viewer.step.value = 2  # add, then decay (created after entropy in the loss block): W1 has only lam W1
    assert "decay" in viewer.status.value
    np.testing.assert_allclose(P["W1"].grad, 0.1 * P["W1"].value)
    assert P["b1"].grad is None
    viewer.step.value = viewer.step.max
    _, reference = backprop.loss_and_grads(X, T, {k: p.value for k, p in P.items()}, 0.1)
    for k, p in P.items():
        np.testing.assert_allclose(p.grad, reference[k], rtol=1e-10, atol=1e-14)
    viewer.step.value = 0  # going back clears the gradients again
    assert all(p.grad is None for p in P.values())


def _inside(point, box, margin):
    return box.x0 + margin < point[0] < box.x1 - margin and box.y0 + margin < point[1] < box.y1 - margin


def _distance(point, box):
    dx = max(box.x0 - point[0], 0.0, point[0] - box.x1)
    dy = max(box.y0 - point[1], 0.0, point[1] - box.y1)
    return float(np.hypot(dx, dy))


def _densely(polyline, spacing=1.0):
    """The points of a polyline (display coordinates) at most ``spacing`` pixels apart."""
    points = [polyline[:1]]
    for a, b in zip(polyline[:-1], polyline[1:]):
        count = max(2, int(np.ceil(np.hypot(*(b - a)) / spacing)) + 1)
        points.append(a + np.linspace(0, 1, count)[:, None] * (b - a))
    return np.vstack(points)


def test_graph_viewer_edges_run_from_box_to_box_and_never_through_one():
    from matplotlib.patches import FancyArrowPatch

    from coursekit.explore import plots
    from coursekit.explore.nets import GraphViewer

    viewer = GraphViewer(_two_layer_loss()[0])
    position = plots.graph_layout(viewer.values, viewer._parents)
    expected = sorted((position[id(p)], position[id(v)]) for v in viewer.values for p in viewer._parents(v))
    for step in (0, 3, viewer.step.max):
        viewer.step.value = step
        fig = viewer.draw()
        _rendered(fig)
        (ax,) = fig.axes
        labels = [t for t in ax.texts if t.get_text() and t.get_bbox_patch() is not None]
        boxes = {tuple(t.get_position()): t.get_bbox_patch().get_window_extent() for t in labels}
        assert len(boxes) == len(viewer.values)
        arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
        arrows += [t.arrow_patch for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
        drawn = []
        for arrow in arrows:
            path = arrow.get_transform().transform_path(arrow.get_path())
            shaft, *head = path.to_polygons(closed_only=False)
            for point in np.vstack([_densely(line) for line in (shaft, *head)]):
                for where, box in boxes.items():
                    assert not _inside(point, box, margin=2), f"step {step}: an edge passes through the box at {where}"
            ends = [min(boxes, key=lambda where: _distance(end, boxes[where])) for end in (shaft[0], shaft[-1])]
            for end, where in zip((shaft[0], shaft[-1]), ends):  # at the box, past its outline and a point's gap
                assert _distance(end, boxes[where]) <= 4, f"step {step}: an edge stops short of the box at {where}"
            drawn.append(tuple(ends))
        assert sorted(drawn) == expected  # one arrow per parent, from the parent's box to the child's
        # the boxes are opaque and above every edge: where edges come close, the labels stay readable
        for label in labels:
            assert label.get_bbox_patch().get_facecolor()[3] == 1.0
            assert all(label.get_zorder() > arrow.get_zorder() for arrow in arrows)


def test_graph_viewer_refuses_steps_out_of_range():
    from coursekit.explore.nets import GraphViewer

    viewer = GraphViewer(_two_layer_loss()[0])
    with pytest.raises(ValueError, match=r"step must be in \[0, 6\]; got 7"):
        viewer.show(7)


# -- stage 03: the LTI and kernel explorers ---------------------------------------------------------


def test_lti_explorer_output_is_the_convolution_and_shifts_commute():
    import scipy.signal

    from coursekit.explore.convolution import LTIExplorer

    e = LTIExplorer(n=64)
    for signal in e.signal.options:
        for response in e.response.options:
            e.signal.value, e.response.value = signal, response
            np.testing.assert_allclose(e.y, scipy.signal.convolve(e.x, e.h)[:64], atol=1e-12)
            # delaying, then filtering equals filtering, then delaying, on the samples both keep
            k = e.delay.value
            np.testing.assert_allclose(e.shift_then_filter[k:], e.filter_then_shift[k:], atol=1e-12)
            assert e.interior_gap < 1e-12 and "away from the ends" in e.status.value
    assert bytes(e.image.value).startswith(PNG)


def test_lti_explorer_redraws_when_the_length_of_h_changes():
    from coursekit.explore.convolution import LTIExplorer

    e = LTIExplorer(n=64)
    before = bytes(e.image.value)
    e.response.value = "moving average"
    e.width.value = 15
    assert e.h.shape == (15,) and np.isclose(e.h.sum(), 1.0)
    assert bytes(e.image.value) != before


def test_lti_explorer_length_of_h_is_its_number_of_taps_or_is_off_with_a_reason():
    from coursekit.explore.convolution import LTIExplorer

    e = LTIExplorer(n=64)
    sized = []
    for response in e.response.options:
        e.response.value = response
        if e.width.disabled:  # a filter of one fixed length: the status line says so
            assert f"fixed at {len(e.h)}" in e.status.value and "length" in e.status.value, e.status.value
            continue
        sized.append(response)
        for width in (e.width.min, 12, 13, e.width.max):  # even and odd (12 once gave 13 gaussian taps)
            e.width.value = width
            assert len(e.h) == width, (response, width)
            assert "fixed" not in e.status.value
    assert {"moving average", "exponential decay", "gaussian"} <= set(sized)
    e.response.value = "difference [1, -1]"
    assert e.width.disabled and len(e.h) == 2
    e.response.value = "gaussian"  # and the slider comes back
    assert not e.width.disabled and len(e.h) == e.width.value


def test_lti_explorer_legend_leaves_the_curves_uncovered():
    from matplotlib.transforms import Bbox

    from coursekit.explore.convolution import LTIExplorer

    e = LTIExplorer()
    for signal in e.signal.options:
        for response in ("moving average", "gaussian"):
            e.signal.value, e.response.value = signal, response
            fig = e.draw()
            _rendered(fig)
            (ax,) = [ax for ax in fig.axes if ax.get_legend() is not None]
            legend = ax.get_legend().get_window_extent()
            curves = np.vstack([ax.transData.transform(line.get_xydata()) for line in ax.get_lines()])
            assert not legend.overlaps(Bbox([curves.min(axis=0), curves.max(axis=0)])), (signal, response)
            assert fig.bbox.containsx(legend.x0) and fig.bbox.containsx(legend.x1)  # and it is in the picture
            assert fig.bbox.containsy(legend.y0) and fig.bbox.containsy(legend.y1)


def test_kernel_explorer_scales_a_signed_response_by_a_high_percentile_not_its_extremes():
    from coursekit.explore.convolution import KernelExplorer

    k = KernelExplorer(photo="coins", size=256)
    k.preset.value = "laplacian"
    picture = k.draw().axes[1].images[0]
    low, high = picture.get_clim()
    magnitude = np.abs(k.output)
    assert low == -high  # zero is the white centre of the diverging map
    assert np.percentile(magnitude, 95) <= high <= np.percentile(magnitude, 99.9) < magnitude.max()
    assert 0.001 <= np.mean(magnitude > high) <= 0.05  # only the few extremes saturate
    colours = picture.to_rgba(picture.get_array())[..., :3]
    near_white = np.mean(np.all(colours >= 0.9, axis=-1))
    # the coins' flat background, about half the photo, is rightly white; most of the rest is not
    assert near_white < 2 / 3, f"{near_white:.0%} of the feature map is drawn nearly white"
    assert f"{high:.3g}" in k.status.value  # the scale is stated


def test_kernel_explorer_presets_and_typed_kernels_filter_the_photo():
    import scipy.signal

    from coursekit.explore.convolution import KernelExplorer

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


# -- plots shared by stage 04: image grids and confusion matrices -----------------------------------


def test_image_grid_draws_each_image_in_rows_of_ncols():
    from coursekit.explore import plots

    rng = np.random.default_rng(0)
    images = rng.normal(size=(7, 5, 4))
    titles = [f"digit {k}" for k in range(7)]
    fig = plots.image_grid(images, titles, ncols=3, suptitle="seven")
    assert len(fig.axes) == 7
    for k, ax in enumerate(fig.axes):
        assert ax.get_subplotspec().get_geometry()[:2] == (3, 3)  # ceil(7 / 3) rows of 3
        np.testing.assert_array_equal(ax.images[0].get_array(), images[k])
        assert ax.images[0].get_cmap().name == "gray"
        assert ax.get_title() == titles[k]
        assert len(ax.get_xticks()) == len(ax.get_yticks()) == 0
    assert fig.get_suptitle() == "seven"
    assert plots.figure_png(fig).startswith(PNG)


def test_image_grid_takes_torch_tensors_and_never_more_columns_than_images():
    import torch

    from coursekit.explore import plots

    images = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3).requires_grad_()
    fig = plots.image_grid(images, ncols=10)
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes] == [(1, 2), (1, 2)]
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), images[1].detach().numpy())
    assert all(ax.get_title() == "" for ax in fig.axes)


def test_image_grid_centres_filters_on_zero_when_symmetric():
    from coursekit.explore import plots

    filters = np.array([[[-0.5, 0.1], [0.2, 0.3]], [[0.0, 2.0], [1.0, 0.5]], np.zeros((2, 2))])
    fig = plots.image_grid(filters, symmetric=True)
    limits = [ax.images[0].get_clim() for ax in fig.axes]
    assert limits == [(-0.5, 0.5), (-2.0, 2.0), (-1.0, 1.0)]  # max |w| per filter; 1 for an all-zero one
    assert all(ax.images[0].get_cmap().name == "RdBu_r" for ax in fig.axes)


def test_image_grid_refuses_bad_input_naming_the_argument():
    from coursekit.explore import plots

    with pytest.raises(ValueError, match=r"^images must have shape \(N, H, W\) with N >= 1; got \(4, 4\)"):
        plots.image_grid(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"^images must have shape \(N, H, W\) with N >= 1; got \(0, 4, 4\)"):
        plots.image_grid(np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match=r"^titles must have one entry per image \(3\); got 2"):
        plots.image_grid(np.zeros((3, 4, 4)), titles=["a", "b"])


def test_plot_confusion_writes_every_count_and_colours_only_the_errors():
    import torch

    from coursekit.explore import plots

    rng = np.random.default_rng(1)
    matrix = rng.integers(0, 50, size=(4, 4))
    for given in (matrix, torch.from_numpy(matrix)):
        _, (ax,) = plots.new_figure()
        plots.plot_confusion(ax, given, title="FC")
        # each count is written at (column j, row i): predicted across, true down
        written = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
        assert len(ax.texts) == 16 and set(written) == {(i, j) for i in range(4) for j in range(4)}
        for (i, j), text in written.items():
            assert text.get_text() == str(matrix[i, j])
            assert (text.get_fontweight() == "bold") == (i == j)
        shown = ax.images[0].get_array()
        diagonal = np.eye(4, dtype=bool)
        assert np.ma.getmaskarray(shown)[diagonal].all() and not np.ma.getmaskarray(shown)[~diagonal].any()
        np.testing.assert_array_equal(np.ma.getdata(shown)[~diagonal], matrix[~diagonal])
        # the colour scale runs from no error to the largest off-diagonal count, shown by a colour bar
        assert ax.images[0].get_clim() == (0, matrix[~diagonal].max())
        assert len(ax.figure.axes) == 2
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "FC")
        assert list(ax.get_xticks()) == list(ax.get_yticks()) == [0, 1, 2, 3]


@pytest.mark.parametrize("matrix", [np.diag([5, 7, 9]), np.array([[12]])])
def test_plot_confusion_draws_a_classifier_without_errors(matrix):
    from coursekit.explore import plots

    fig, (ax,) = plots.new_figure()
    plots.plot_confusion(ax, matrix)
    k = len(matrix)
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in matrix.ravel())
    assert len(ax.texts) == k * k
    low, high = ax.images[0].get_clim()
    assert low == 0 and high > 0  # a usable scale although nothing is wrong
    assert plots.figure_png(fig).startswith(PNG)


# -- stage 04: the digit browser ----------------------------------------------------------------------


def _prepared(images):
    """The documented input transform, by its formula: (x / 255 - mean) / std, one channel."""
    from coursekit.nets import training

    return ((images.float() / 255.0 - training.MNIST_MEAN) / training.MNIST_STD).unsqueeze(1)


@pytest.fixture(scope="module")
def digits():
    """200 random 'digits', untrained nets, and what the browser should show, worked out here."""
    import torch

    from coursekit.nets import models

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (200, 28, 28), generator=g).to(torch.uint8)
    permutation = torch.randperm(784, generator=g)
    torch.manual_seed(0)
    original = {"FC": models.fc_net(), "CNN": models.small_cnn(4)}
    shuffled = {"FC": models.fc_net(), "CNN": models.small_cnn(4)}
    flat = images.reshape(200, 784)
    shuffled_images = torch.empty_like(flat)
    for j in range(784):  # pixel j of a shuffled digit is pixel permutation[j] of the digit
        shuffled_images[:, j] = flat[:, int(permutation[j])]
    shuffled_images = shuffled_images.reshape(200, 28, 28)
    with torch.no_grad():
        predictions = {
            "original": {name: net(_prepared(images)).argmax(dim=1) for name, net in original.items()},
            "shuffled": {name: net(_prepared(shuffled_images)).argmax(dim=1) for name, net in shuffled.items()},
        }
    labels = predictions["original"]["FC"].clone()  # so that the FC net is never wrong on the originals
    return {"images": images, "labels": labels, "permutation": permutation, "original": original,
            "shuffled": shuffled, "shuffled_images": shuffled_images, "predictions": predictions}


@pytest.fixture(scope="module")
def _one_browser(digits):
    from coursekit.explore.convolution import DigitBrowser

    return DigitBrowser(digits["images"], digits["labels"], digits["permutation"],
                        original=digits["original"], shuffled=digits["shuffled"])


@pytest.fixture
def browser(_one_browser):
    """One browser for the module (each drawing takes a while), set back to the first of all digits."""
    _one_browser.subset.value = "all digits"
    _one_browser.position.value = 0
    return _one_browser


def _wrong(digits, kind, name):
    return [i for i, (p, t) in enumerate(zip(digits["predictions"][kind][name].tolist(), digits["labels"].tolist()))
            if p != t]


def test_digit_browser_holds_each_nets_predictions_on_its_kind_of_pixels(browser, digits):
    import torch

    assert torch.equal(browser.shuffled_images, digits["shuffled_images"])
    for kind in ("original", "shuffled"):
        assert set(browser.predictions[kind]) == {"FC", "CNN"}
        for name, expected in digits["predictions"][kind].items():
            assert browser.predictions[kind][name].tolist() == expected.tolist(), (kind, name)


def test_digit_browser_subsets_are_the_digits_each_net_gets_wrong(browser, digits):
    expected = {"all digits": list(range(200))}
    for kind in ("original", "shuffled"):
        for name in ("FC", "CNN"):
            expected[f"{name} wrong on {kind} pixels"] = _wrong(digits, kind, name)
    assert {k: v.tolist() for k, v in browser.subsets.items()} == expected
    assert list(browser.subset.options) == list(browser.subsets)
    assert expected["FC wrong on original pixels"] == []  # as built
    assert 0 < len(expected["CNN wrong on original pixels"]) < 200  # a proper subset, to follow below


def test_digit_browser_slider_follows_the_subset(browser, digits):
    import re

    assert (browser.position.value, browser.position.max, browser.index) == (0, 199, 0)
    wrong = _wrong(digits, "original", "CNN")
    browser.subset.value = "CNN wrong on original pixels"
    assert (browser.position.value, browser.position.max) == (0, len(wrong) - 1)
    assert browser.index == wrong[0]
    browser.position.value = 3
    assert browser.index == wrong[3]
    assert re.search(rf"\b{wrong[3]}, label {int(digits['labels'][wrong[3]])}\b", browser.status.value)
    browser.subset.value = "all digits"  # from position 3: back to the first, with the slider's full range
    assert (browser.position.value, browser.position.max, browser.index) == (0, 199, 0)
    browser.position.value = 7
    assert browser.index == 7


def test_digit_browser_table_names_the_label_and_each_nets_predictions(browser, digits):
    import re

    for position in (5, 123):
        browser.position.value = position
        html = browser.status.value
        label = int(digits["labels"][position])
        assert re.search(rf"\b{position}, label {label}\b", html), html  # which digit, and its label
        for name in ("FC", "CNN"):
            row = re.search(rf">{name}</th><td style='color:(\w+)[^>]*>(\d+)</td><td style='color:(\w+)[^>]*>(\d+)</td>",
                            html)
            assert row, (name, html)
            for colour, shown, kind in ((row[1], row[2], "original"), (row[3], row[4], "shuffled")):
                predicted = int(digits["predictions"][kind][name][position])
                assert int(shown) == predicted
                assert colour == ("green" if predicted == label else "red")


def test_digit_browser_maps_are_the_first_conv_on_the_prepared_digit(browser, digits):
    import torch

    for position in (0, 42):
        browser.position.value = position
        i = browser.index
        with torch.no_grad():
            original = digits["original"]["CNN"][0](_prepared(digits["images"][i : i + 1]))[0]
            shuffled = digits["shuffled"]["CNN"][0](_prepared(digits["shuffled_images"][i : i + 1]))[0]
        assert browser.maps["original"].shape == (4, 28, 28)
        torch.testing.assert_close(browser.maps["original"], original)
        torch.testing.assert_close(browser.maps["shuffled"], shuffled)


def test_digit_browser_redraws_when_the_digit_changes(browser):
    first = bytes(browser.image.value)
    assert first.startswith(PNG)
    browser.position.value = 1
    second = bytes(browser.image.value)
    assert second.startswith(PNG) and second != first


def test_digit_browser_says_so_when_a_subset_is_empty(browser):
    browser.position.value = 9
    browser.subset.value = "FC wrong on original pixels"  # no digit: the labels are its predictions
    assert browser.index is None
    assert "no digit" in browser.status.value
    assert browser.maps == {} and bytes(browser.image.value) == b""
    assert (browser.position.value, browser.position.max) == (0, 0)
    browser.subset.value = "all digits"  # and it comes back
    assert browser.index == 0 and bytes(browser.image.value).startswith(PNG)
    assert set(browser.maps) == {"original", "shuffled"}


def test_digit_browser_figure_fits_the_notebook_and_each_header_one_line(browser):
    fig = browser.draw()
    fig.set_dpi(browser.DPI)  # the size it is shown at
    renderer = _rendered(fig)
    assert fig.bbox.width <= NOTEBOOK_WIDTH  # shown at its size, not shrunk to fit
    headers = [t for t in fig.texts if t.get_text()] + [ax.title for ax in fig.axes if ax.get_title()]
    assert len(headers) > 1
    for text in headers:
        assert "\n" not in text.get_text()
        extent = text.get_window_extent(renderer)
        assert 0 <= extent.x0 and extent.x1 <= fig.bbox.width, f"{text.get_text()!r} is wider than the figure"


def test_digit_browser_shows_the_named_cnns_first_layer():
    import torch

    from coursekit.nets import models
    from coursekit.explore.convolution import DigitBrowser

    torch.manual_seed(3)
    images = torch.randint(0, 256, (12, 28, 28), dtype=torch.uint8)
    lenet, other = models.LeNet5(), models.LeNet5()
    browser = DigitBrowser(images, torch.zeros(12, dtype=torch.long), torch.arange(784),
                           original={"LeNet": lenet}, shuffled={"LeNet": other}, cnn="LeNet")
    padded = torch.nn.functional.pad(_prepared(images[:1]), (2, 2, 2, 2))  # LeNet pads 28x28 to 32x32
    with torch.no_grad():
        expected = {"original": lenet.c1(padded)[0], "shuffled": other.c1(padded)[0]}  # identity permutation
    assert browser.maps["original"].shape == (6, 28, 28)
    torch.testing.assert_close(browser.maps["original"], expected["original"])
    torch.testing.assert_close(browser.maps["shuffled"], expected["shuffled"])


def test_digit_browser_refuses_bad_input_naming_the_argument(digits):
    import torch

    from coursekit.explore.convolution import DigitBrowser

    images, labels, p = digits["images"][:10], digits["labels"][:10], digits["permutation"]
    nets = {"original": digits["original"], "shuffled": digits["shuffled"]}
    with pytest.raises(ValueError, match=r"^images must be uint8 \(N, H, W\)"):
        DigitBrowser(images.float(), labels, p, **nets)
    with pytest.raises(ValueError, match=r"^images must be uint8 \(N, H, W\)"):
        DigitBrowser(images.reshape(10, 784), labels, p, **nets)
    with pytest.raises(ValueError, match=r"^labels must have shape \(10,\); got \(9,\)"):
        DigitBrowser(images, labels[:9], p, **nets)
    with pytest.raises(ValueError, match="^original and shuffled must name the same nets"):
        DigitBrowser(images, labels, p, original=digits["original"], shuffled={"CNN": digits["shuffled"]["CNN"]})
    with pytest.raises(ValueError, match="^original and shuffled must name the same nets, 'LeNet' among them"):
        DigitBrowser(images, labels, p, cnn="LeNet", **nets)
    with pytest.raises(ValueError, match="^permutation must hold each of 0..783 once"):
        DigitBrowser(images, labels, torch.zeros(784, dtype=torch.long), **nets)


def test_plots_refuse_a_bad_column_count_and_a_non_square_matrix():
    from coursekit.explore import plots

    with pytest.raises(ValueError, match="ncols must be a positive integer"):
        plots.image_grid(np.zeros((2, 3, 3)), ncols=0)
    fig, (ax,) = plots.new_figure()
    with pytest.raises(ValueError, match=r"matrix must be square \(K, K\); got shape \(2, 3\)"):
        plots.plot_confusion(ax, np.zeros((2, 3), dtype=int))


def test_a_failing_own_sigmoid_is_reported_in_the_status_line():
    X, labels = samples.spiral(n_per_class=10)

    def broken(a):
        raise ValueError("operands could not be broadcast")

    explorer = BackpropExplorer(X, labels, steps=5, hidden=3, sigmoid=broken)
    explorer.h.value = "sigmoid"
    assert "your sigmoid, which failed: ValueError: operands could not be broadcast" in explorer.status.value
    assert bytes(explorer.image.value) == b""
    explorer.h.value = "tanh"  # the other activations still work
    assert bytes(explorer.image.value).startswith(PNG)


def test_the_static_graph_figure_shows_every_value_with_its_gradient():
    from coursekit.explore.nets import graph_figure
    from coursekit.nets import ops
    from coursekit.nets.autodiff import Param

    g = np.random.default_rng(0)
    W1, b1, W2, b2 = (Param(g.normal(size=s), n) for s, n in (((2, 3), "W1"), ((3,), "b1"), ((3, 2), "W2"), ((2,), "b2")))
    L = ops.loss(ops.model(g.normal(size=(4, 2)), ((W1, b1), (W2, b2))), np.eye(2)[[0, 1, 1, 0]], (W1, W2), 0.1)
    fig = graph_figure(L, title="the two-layer net")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 10  # W1, b1, W2, b2, affine, relu, affine, entropy, decay, add
    assert all("∂ —" not in t for t in texts), "a box without its gradient"
    assert fig.axes[0].get_title() == "the two-layer net"
    assert W1.grad is not None and np.isfinite(W1.grad).all()


# -- stage 05: the augmentation explorer, the layer explorer, colour grids ---------------------------

def _png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")


@pytest.fixture(scope="module")
def photo_crops():
    import torch

    crops, _ = samples.photo_crops(96, per_photo=1, short_side=128, photos=("chelsea", "coffee", "rocket", "astronaut"))
    return torch.from_numpy(crops)


def test_augmentation_explorer_shifts_the_colour_by_the_formula_and_redraws(photo_crops):
    import torch

    from coursekit.explore.nets import AugmentationExplorer
    from coursekit.nets import augment

    values, vectors = augment.pca_colour_basis(photo_crops)
    calls = []

    def shift(x, lam, p, alphas):
        calls.append(alphas.clone())
        return augment.pca_colour_shift(x, lam, p, alphas)

    ex = AugmentationExplorer(photo_crops[0], values, vectors, shift=shift, size=64)
    assert ex.updates == 1 and bytes(ex.image.value).startswith(PNG)
    assert _png_width(bytes(ex.image.value)) <= NOTEBOOK_WIDTH
    before = bytes(ex.image.value)
    ex.alphas[0].value = 2.0
    assert ex.updates == 2 and bytes(ex.image.value) != before
    assert torch.allclose(calls[-1], torch.tensor([[0.2, 0.0, 0.0]], dtype=torch.float64))
    out = ex.augmented()
    t, l = ex.top.value, ex.left.value
    plain = photo_crops[0, :, t:t + 64, l:l + 64].double() / 255
    expected = plain + (0.2 * values[0] * vectors[:, 0]).double()[:, None, None]
    torch.testing.assert_close(out, expected)
    ex.flip.value = True
    torch.testing.assert_close(ex.augmented(), expected.flip(-1))
    ex.top.value = 0
    assert ex.updates == 4


@pytest.mark.gpu
def test_augmentation_explorer_takes_a_photo_and_basis_on_the_gpu(photo_crops):
    # stage 05 passes a crop and the PCA basis from the device; the explorer shifts on the host
    import torch

    from coursekit.explore.nets import AugmentationExplorer
    from coursekit.nets import augment

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    on_gpu = photo_crops.cuda()
    values, vectors = augment.pca_colour_basis(on_gpu)
    ex = AugmentationExplorer(on_gpu[0], values, vectors, shift=augment.pca_colour_shift, size=64)
    ex.alphas[1].value = -3.0
    assert "failed" not in ex.status.value and ex.status.value.startswith("colour shift")
    t, l = ex.top.value, ex.left.value
    plain = photo_crops[0, :, t:t + 64, l:l + 64].double() / 255
    expected = plain + (-0.3 * values[1] * vectors[:, 1]).double().cpu()[:, None, None]
    torch.testing.assert_close(ex.augmented().cpu(), expected)


def test_augmentation_explorer_reports_a_failing_shift_and_refuses_a_crop_too_big(photo_crops):
    from coursekit.explore.nets import AugmentationExplorer
    from coursekit.nets import augment

    values, vectors = augment.pca_colour_basis(photo_crops)

    def broken(*args):
        raise ValueError("not answered")

    ex = AugmentationExplorer(photo_crops[0], values, vectors, shift=broken, size=64)
    assert "failed" in ex.status.value and "not answered" in ex.status.value
    with pytest.raises(ValueError, match="does not fit"):
        AugmentationExplorer(photo_crops[0], values, vectors, shift=augment.pca_colour_shift, size=200)


def test_layer_explorer_shows_the_top_patches_of_the_channel_and_redraws(photo_crops):
    from coursekit.explore.nets import LayerExplorer
    from coursekit.nets import pretrained

    net = pretrained.load_efficientnet_lite0("cpu")
    ex = LayerExplorer(net, photo_crops, layers=("block2", "block3"))
    assert ex.updates == 1 and bytes(ex.image.value).startswith(PNG)
    assert "block2" in ex.status.value and "receptive field 19" in ex.status.value
    assert _png_width(bytes(ex.image.value)) <= NOTEBOOK_WIDTH + 200
    before = bytes(ex.image.value)
    ex.channel.value = 5
    assert ex.updates == 2 and bytes(ex.image.value) != before
    ex.layer.value = "block3"
    assert ex.channel.max == pretrained.FEATURE_LAYERS["block3"].channels - 1
    assert ex.maps["block3"].shape == (4, 40, 12, 12)  # 96 / 8
    ex.channel.value = 39
    ex.layer.value = "block2"  # 24 channels: the channel goes back to 0
    assert ex.channel.value == 0 and ex.channel.max == 23
    with pytest.raises(ValueError, match="not among"):
        LayerExplorer(net, photo_crops, layers=("conv9",))


def test_top_activations_pick_each_images_maximum_and_rank_the_images():
    import torch

    from coursekit.nets import inspect

    maps = torch.zeros(4, 2, 3, 5)
    maps[0, 1, 2, 4] = 3.0
    maps[2, 1, 0, 1] = 5.0
    maps[3, 1, 1, 1] = 1.0
    maps[3, 1, 2, 2] = 4.0
    found = inspect.top_activations(maps, 1, k=3)
    assert [(a.image, a.row, a.col, a.value) for a in found] == [(2, 0, 1, 5.0), (3, 2, 2, 4.0), (0, 2, 4, 3.0)]
    with pytest.raises(ValueError, match="channel must lie"):
        inspect.top_activations(maps, 2)


def test_patch_boxes_are_the_receptive_field_centred_on_the_unit_and_clipped():
    from coursekit.nets import inspect

    # a 3x3 kernel with stride 1 and no padding: unit (i, j) sees input rows i-1..i+1 around its centre i
    assert inspect.patch_box(5, 5, 3, 1, 20, 20) == (4, 7, 4, 7)
    # a field of 19 with stride 4: unit 3 is centred at 3 * 4 + 1.5 = 13.5 (rows 5..23); unit 0 at 1.5, its
    # field (rows -7..11) clipped at the border, not moved inside the image
    assert inspect.patch_box(3, 0, 19, 4, 56, 56) == (5, 24, 0, 12)
    assert inspect.patch_box(13, 13, 19, 4, 56, 56) == (45, 56, 45, 56)


def test_nearest_neighbours_by_cosine_leave_the_query_out():
    import torch

    from coursekit.nets import inspect

    f = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    assert inspect.nearest_neighbours(f, [0], k=2).tolist() == [[1, 2]]
    assert inspect.nearest_neighbours(f, [2], k=1).tolist() == [[1]]
    brute = [sorted(range(4), key=lambda j: -float(torch.cosine_similarity(f[0], f[j], 0)))[1:3]]
    assert inspect.nearest_neighbours(f, [0], k=2).tolist() == brute


def test_colour_grid_draws_each_image_in_colour_and_refuses_grey_ones():
    import torch

    images = [torch.rand(3, 5, 7), torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8)]
    fig = plots.colour_grid(images, ["a", "b"], ncols=1)
    axes = fig.get_axes()
    assert len(axes) == 2 and axes[1].get_title() == "b"
    shown = axes[1].get_images()[0].get_array()
    assert shown.shape == (4, 4, 3) and float(shown.max()) <= 1.0
    np.testing.assert_allclose(np.asarray(shown), images[1].numpy().transpose(1, 2, 0) / 255.0)
    stretched = plots.colour_grid([torch.full((3, 2, 2), -4.0) + torch.arange(4.0).reshape(1, 2, 2)], normalise=True)
    arr = np.asarray(stretched.get_axes()[0].get_images()[0].get_array())
    assert arr.min() == 0.0 and arr.max() == 1.0
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        plots.colour_grid([torch.rand(5, 5)])


# -- stage 06: DrLIM's embedding explorer -------------------------------------------------------------


@pytest.fixture(scope="module")
def drlim_data():
    """200 random 28x28 uint8 images, half labelled 4 and half 9, each with its 5 nearest neighbours in pixel
    space as similar pairs and as many random dissimilar pairs."""
    import torch

    from coursekit.retrieval import pairs, siamese

    g = torch.Generator().manual_seed(0)
    images = (torch.rand(200, 28, 28, generator=g) * 255).to(torch.uint8)
    labels = torch.tensor([4, 9]).repeat_interleave(100)
    similar = pairs.knn_pairs(images, 5)
    pair_set, t = siamese.pair_labels(similar, pairs.dissimilar_pairs(200, similar, len(similar), g))
    return images, labels, pair_set, t


def _embedding_explorer(data, **settings):
    from coursekit.explore.retrieval import EmbeddingExplorer

    return EmbeddingExplorer(*data, **{"steps_per_click": 10, "batch_size": 64, **settings})


def _springs_by_autograd(model, images, pair_set, t, i, margin):
    """For digit ``i``: each pair it is in as ``(partner, t, distance, force)``, the force minus the gradient of
    the lecture's contrastive loss ``t d^2 + (1 - t) relu(m - d)^2`` of that pair with respect to ``i``'s
    embedding, by autograd, the embeddings computed here from the model."""
    import torch

    rows = [(int(b) if int(a) == i else int(a), float(s)) for (a, b), s in zip(pair_set.tolist(), t.tolist())
            if i in (int(a), int(b))]
    partners = torch.tensor([p for p, _ in rows])
    with torch.no_grad():
        y = model(images[torch.cat([torch.tensor([i]), partners])].unsqueeze(1).float() / 255).double()
    me = y[:1].repeat(len(rows), 1).requires_grad_(True)  # one copy per pair: row k gets pair k's gradient
    labels = torch.tensor([s for _, s in rows], dtype=torch.float64)
    d = (me - y[1:]).norm(dim=1)
    (labels * d**2 + (1 - labels) * torch.relu(margin - d) ** 2).sum().backward()
    return [(p, s, float(dist), (-g).tolist()) for (p, s), dist, g in zip(rows, d.detach(), me.grad)]


def _arrows(fig):
    """The map's quivers, by their legend label's first word: {"attraction": (origins, vectors), ...}."""
    from matplotlib.quiver import Quiver

    found = {}
    for q in fig.axes[0].collections:
        if isinstance(q, Quiver):
            found[q.get_label().split()[0]] = (np.asarray(q.get_offsets()), np.column_stack([q.U, q.V]))
    return found


def test_embedding_explorer_draws_the_untrained_map_with_its_controls(drlim_data):
    ex = _embedding_explorer(drlim_data)
    assert ex.updates == 1 and bytes(ex.image.value).startswith(PNG)
    assert _png_width(bytes(ex.image.value)) <= NOTEBOOK_WIDTH
    assert len(ex.trainer.losses) == 0 and ex.steps.value == 0
    assert "<b>0</b> training steps" in ex.status.value
    fig = ex.draw()
    labelled = {c.get_label(): len(c.get_offsets()) for c in fig.axes[0].collections}
    assert labelled["4s"] + labelled["9s"] == 200  # every image on the map, coloured by its label
    assert ex.embedding.shape == (200, 2)
    for control, description in ((ex.steps, "training steps"), (ex.margin, "margin m"), (ex.point, "digit")):
        assert control.description == description
    assert ex.point.max == 199 and ex.steps.step == 10


def test_embedding_explorer_trains_when_the_steps_go_up(drlim_data):
    import torch

    ex = _embedding_explorer(drlim_data)
    before, picture = ex.embedding.copy(), bytes(ex.image.value)
    ex.steps.value = 20
    assert len(ex.trainer.losses) == 20 and ex.updates == 2
    assert not np.allclose(ex.embedding, before)
    assert bytes(ex.image.value) != picture
    last = float(torch.stack(ex.trainer.losses[-10:]).mean())
    assert "<b>20</b> training steps" in ex.status.value and f"<b>{last:.4f}</b>" in ex.status.value
    ex.train_button.click()
    assert ex.steps.value == 30 and len(ex.trainer.losses) == 30
    ex.steps.max = 30
    ex.train_button.click()  # past the slider's end: it grows
    assert ex.steps.max == ex.steps.value == 40 and len(ex.trainer.losses) == 40


def test_embedding_explorer_going_down_rewinds_to_the_same_weights(drlim_data):
    ex = _embedding_explorer(drlim_data)
    ex.steps.value = 30
    at_30 = ex.embedding.copy()
    ex.steps.value = 10
    assert len(ex.trainer.losses) == 10
    fresh = _embedding_explorer(drlim_data)
    fresh.steps.value = 10
    np.testing.assert_array_equal(ex.embedding, fresh.embedding)  # as if it had stopped at 10
    ex.steps.value = 30  # the same steps again: the same map
    np.testing.assert_array_equal(ex.embedding, at_30)
    # a margin changed on the way is replayed when rewinding past a state not kept
    ex.margin.value = 3.0
    ex.steps.value = 50
    at_50 = ex.embedding.copy()
    ex._snapshots = {0: ex._snapshots[0]}
    ex.steps.value = 40
    ex.steps.value = 50
    np.testing.assert_array_equal(ex.embedding, at_50)


def test_embedding_explorer_margin_applies_to_the_next_steps_without_retraining(drlim_data):
    import torch

    ex = _embedding_explorer(drlim_data)
    ex.steps.value = 10
    weights = [p.detach().clone() for p in ex.trainer.model.parameters()]
    ex.margin.value = 2.5
    assert ex.trainer.margin == 2.5 and len(ex.trainer.losses) == 10
    assert all(torch.equal(a, b) for a, b in zip(weights, ex.trainer.model.parameters()))
    seen, loss = [], ex.trainer.loss
    ex.trainer.loss = lambda y1, y2, t, m: seen.append(m) or loss(y1, y2, t, m)
    ex.steps.value = 20
    assert seen == [2.5] * 10


def test_embedding_explorer_repels_from_the_dissimilar_partners_inside_the_margin(drlim_data):
    images, _, pair_set, t = drlim_data
    ex = _embedding_explorer(drlim_data)
    ex.steps.value = 20
    ex.point.value = 17
    springs = _springs_by_autograd(ex.trainer.model, images, pair_set, t, 17, 1.0)
    far = sorted(d for _, s, d, _ in springs if s == 0)
    near = sum(s == 1 for _, s, _, _ in springs)
    assert len(far) >= 3
    middle = (far[len(far) // 2 - 1] + far[len(far) // 2]) / 2  # between two distances: no tie at the margin
    largest, smallest = 10.0 ** ex.margin.max, 10.0 ** ex.margin.min  # a log slider's ends are exponents
    for margin, expected in ((largest, len(far)), (smallest, 0), (middle, len(far) // 2)):
        assert expected == sum(d < margin for d in far)  # from the distances, computed here
        ex.margin.value = margin
        assert ex.trainer.margin == pytest.approx(margin)
        arrows = _arrows(ex.draw())
        assert len(arrows.get("repulsion", ((), ()))[1]) == expected, margin
        assert len(arrows["attraction"][1]) == near  # every similar pair pulls, whatever the margin
        assert f"<b>{expected} of its {len(far)}</b> dissimilar partners" in ex.status.value
        from matplotlib.patches import Circle

        (circle,) = [p for p in ex.draw().axes[0].patches if isinstance(p, Circle)]
        assert circle.get_radius() == pytest.approx(margin)
        np.testing.assert_allclose(circle.center, ex.trainer.embed(images[17:18])[0].numpy(), atol=1e-6)


def test_embedding_explorer_arrows_are_minus_the_gradient_of_each_pairs_loss(drlim_data):
    images, _, pair_set, t = drlim_data
    ex = _embedding_explorer(drlim_data)
    ex.steps.value = 20
    for i in (3, 120):
        ex.point.value = i
        far = sorted(d for _, s, d, _ in _springs_by_autograd(ex.trainer.model, images, pair_set, t, i, 1.0) if s == 0)
        margin = (far[len(far) // 2 - 1] + far[len(far) // 2]) / 2
        ex.margin.value = margin
        springs = _springs_by_autograd(ex.trainer.model, images, pair_set, t, i, margin)
        fig = ex.draw()
        arrows = _arrows(fig)
        colours = {name: tuple(q.get_facecolor()[0]) for q in fig.axes[0].collections
                   if (name := q.get_label().split()[0]) in arrows}
        assert colours["attraction"] != colours["repulsion"]
        origins = np.vstack([arrows[k][0] for k in ("attraction", "repulsion")])
        np.testing.assert_allclose(origins, ex.embedding[[i] * len(origins)], atol=1e-6)  # all at the digit
        largest = max(np.abs(f).max() for _, _, _, f in springs)
        scale = largest / max(np.abs(arrows[kind][1]).max() for kind in ("attraction", "repulsion"))  # one for all
        for kind, wanted in (("attraction", 1.0), ("repulsion", 0.0)):
            # a pair exactly at the margin pulls with a force that is zero up to rounding: drawn or not
            tiny = 1e-6 * largest
            expected = np.array([f for _, s, _, f in springs if s == wanted and np.hypot(*f) > tiny]).reshape(-1, 2)
            borderline = sum(1 for _, s, _, f in springs if s == wanted and 0 < np.hypot(*f) <= tiny)
            drawn = arrows[kind][1] * scale
            assert len(expected) <= len(drawn) <= len(expected) + borderline
            for force in expected:  # each nonzero force is drawn, at the common scale
                gap = np.abs(drawn - force).max(axis=1)
                assert gap.min() < 1e-4 * largest, (kind, force)
                drawn = np.delete(drawn, gap.argmin(), axis=0)
        # and the forces the explorer computed are the gradient's, pair by pair
        by_partner = sorted((int(p), tuple(np.round(f, 5))) for p, f in zip(ex.partners, ex.forces.double().numpy()))
        assert by_partner == sorted((p, tuple(np.round(f, 5))) for p, _, _, f in springs)


def test_embedding_explorer_refuses_bad_input_naming_the_argument(drlim_data):
    from coursekit.explore.retrieval import EmbeddingExplorer

    images, labels, pair_set, t = drlim_data
    with pytest.raises(ValueError, match=r"^images must be uint8 \(N, H, W\)"):
        EmbeddingExplorer(images.float(), labels, pair_set, t)
    with pytest.raises(ValueError, match=r"^labels must have shape \(200,\); got \(199,\)"):
        EmbeddingExplorer(images, labels[:199], pair_set, t)
    with pytest.raises(ValueError, match="model must map an image to 2 numbers"):
        from coursekit.retrieval import siamese

        EmbeddingExplorer(images, labels, pair_set, t, model=siamese.drlim_network(out=3))
