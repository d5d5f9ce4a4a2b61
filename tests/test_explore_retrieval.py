"""Stage 07's explorers driven headless: class activation maps of the real EfficientNet-Lite0 over real photos, and
a retrieval browser over hand-made descriptors and ground truth.

The oracles are computed here: the features by the network's own forward pass, the maps by the class weights
times the features, their bilinear upsampling by interpolation matrices written out, the rankings by numpy's
argsort of the dot products, and the average precision by hand (the trapezoid rule with the junk removed).
The weights must be in the cache (``coursekit data fetch``); nothing here downloads.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from coursekit.data import samples
from coursekit.explore import plots
from coursekit.explore.retrieval import CAMExplorer, RetrievalBrowser, square_input
from coursekit.nets.pretrained import imagenet_classes, load_efficientnet_lite0, preprocess

PNG = b"\x89PNG\r\n\x1a\n"
NOTEBOOK_WIDTH = 900  # px left for a cell's output in JupyterLab at 1280x800 with the file browser open
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")


# -- CAMExplorer ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return load_efficientnet_lite0("cpu", download=False)


@pytest.fixture(scope="module")
def photos():
    return {"chelsea": samples.colour_photo("chelsea"), "coffee": samples.colour_photo("coffee")}


@pytest.fixture(scope="module")
def cams(model, photos):
    """One explorer for the CAM tests (each sets the photo and class it needs)."""
    return CAMExplorer(photos, model)


@pytest.fixture(scope="module")
def network_view(model, photos):
    """Per photo, from the network's own forward pass on the explorer's input: ``(features (1280, h, w),
    probabilities (1000,))``."""
    out = {}
    with torch.no_grad():
        for name, photo in photos.items():
            x = preprocess(torch.from_numpy(square_input(photo, 224))[None])
            out[name] = model.features(x)[0].double(), torch.softmax(model(x)[0].double(), 0)
    return out


def _bilinear(size: int, cells: int) -> np.ndarray:
    """``(size, cells)``: bilinear interpolation from ``cells`` samples to ``size`` pixels, sample ``i`` at the
    centre of pixel cell ``i``, clamped at the ends (``align_corners=False``)."""
    matrix = np.zeros((size, cells))
    for o in range(size):
        source = min(max((o + 0.5) * cells / size - 0.5, 0.0), cells - 1.0)
        low = int(np.floor(source))
        high, frac = min(low + 1, cells - 1), source - low
        matrix[o, low] += 1 - frac
        matrix[o, high] += frac
    return matrix


def test_cam_input_is_the_photos_centre_square_resized():
    import skimage.transform

    photo = samples.colour_photo("chelsea")  # 300 x 451
    h, w = photo.shape[:2]
    centre = photo[:, (w - h) // 2:(w - h) // 2 + h]
    expected = skimage.transform.resize(centre, (224, 224), anti_aliasing=True, preserve_range=True)
    got = square_input(photo, 224)
    assert got.shape == (224, 224, 3) and got.dtype == np.uint8
    assert np.abs(got - expected).mean() < 2.0  # two resamplers agree to a couple of grey levels
    shifted = skimage.transform.resize(photo[:, :h], (224, 224), anti_aliasing=True, preserve_range=True)
    assert np.abs(got - shifted).mean() > 10.0  # and the left square is not it


def test_cam_class_menu_lists_the_photos_top_classes_and_follows_the_photo(cams, network_view):
    for name in ("chelsea", "coffee"):
        if cams.photo.value != name:
            updates = cams.updates
            cams.photo.value = name
            assert cams.updates == updates + 1  # one redraw, with the new photo's classes
        p, index = network_view[name][1].topk(5)
        names = imagenet_classes()
        assert cams.target.options == tuple((f"{names[c]} ({float(q):.0%})", c) for q, c in zip(p, index.tolist()))
        assert cams.target.value == int(index[0])  # the top class is chosen
        assert f"probability <b>{float(p[0]):.1%}</b>" in cams.status.value
    assert cams.target.value == ESPRESSO and "espresso" in cams.status.value
    cams.photo.value = "chelsea"
    assert cams.target.value in CATS and {value for _, value in cams.target.options[:3]} <= set(CATS)


def test_cam_overlay_peaks_where_the_class_weights_meet_the_features(cams, model, network_view):
    weights = model.classifier.weight.detach().double()
    up = _bilinear(224, 7)
    for name in ("chelsea", "coffee"):
        cams.photo.value = name
        features = network_view[name][0]
        for _, c in cams.target.options[:2]:
            cams.target.value = c
            M = torch.einsum("k,khw->hw", weights[c], features).numpy()
            row, column = np.unravel_index(M.argmax(), M.shape)
            assert cams.peak_cell == (row, column), (name, c)
            assert f"cell (row {row}, column {column})" in cams.status.value
            fig = cams.draw()
            ax = fig.axes[0]  # the large panel: the input, its heat map and the peak cross
            (cross,) = [line for line in ax.get_lines() if line.get_label() == "peak"]
            np.testing.assert_allclose(cross.get_xydata()[0], ((column + 0.5) * 32, (row + 0.5) * 32))
            heat = np.asarray(ax.get_images()[1].get_array(), dtype=float)
            np.testing.assert_allclose(heat, up @ M @ up.T, rtol=1e-4, atol=1e-4 * np.abs(M).max())
            assert np.unravel_index(heat.argmax(), heat.shape)[0] // 32 == row  # the drawn peak is in that cell
            assert np.unravel_index(heat.argmax(), heat.shape)[1] // 32 == column


def test_cam_changing_the_class_changes_the_map_and_the_framed_panel(cams):
    cams.photo.value = "chelsea"
    first, second = (value for _, value in cams.target.options[:2])
    before, map_before, updates = bytes(cams.image.value), cams.map.copy(), cams.updates
    cams.target.value = second
    assert cams.updates == updates + 1
    assert bytes(cams.image.value) != before
    assert not np.allclose(cams.map, map_before)
    assert f"<b>{imagenet_classes()[second]}</b> (ImageNet class {second})" in cams.status.value
    assert "ranked 2 of the top 5" in cams.status.value
    fig = cams.draw()
    panels = fig.axes[2:]  # the main panel, its colour bar, then one panel per class
    assert len(panels) == 6 and not panels[5].axison  # 5 classes on a 2 x 3 grid: the last one empty
    framed = [i for i, ax in enumerate(panels[:5]) if ax.title.get_fontweight() == "bold"]
    assert framed == [1]
    assert to_rgba(panels[1].spines["top"].get_edgecolor()) != to_rgba(panels[0].spines["top"].get_edgecolor())
    cams.target.value = first


def test_cam_opacity_slider_sets_the_heat_maps_alpha(cams):
    for opacity in (0.2, 0.9):
        updates = cams.updates
        cams.opacity.value = opacity
        assert cams.updates == updates + 1
        fig = cams.draw()
        heats = [ax.get_images()[1] for ax in fig.axes if len(ax.get_images()) == 2]
        assert len(heats) == 6 and all(h.get_alpha() == pytest.approx(opacity) for h in heats)
    assert bytes(cams.image.value).startswith(PNG) and _png_width(bytes(cams.image.value)) <= NOTEBOOK_WIDTH


def test_cam_explorer_computes_each_photos_features_once(model, photos, monkeypatch):
    from coursekit.retrieval import descriptors

    calls = []
    real = descriptors.feature_maps
    monkeypatch.setattr(descriptors, "feature_maps", lambda *a, **k: calls.append(1) or real(*a, **k))
    ex = CAMExplorer(photos, model, classes=3)
    assert len(ex.target.options) == 3
    for name in ("coffee", "chelsea", "coffee"):
        ex.photo.value = name
    assert len(calls) == 2 and ex.updates == 4


def test_cam_explorer_refuses_bad_input_naming_the_argument(model, photos):
    with pytest.raises(ValueError, match=r"^photos must be a non-empty dict"):
        CAMExplorer({}, model)
    with pytest.raises(ValueError, match=r"^photos\['grey'\] must be a uint8 image \(H, W, 3\); got uint8 \(20, 20\)"):
        CAMExplorer({"grey": np.zeros((20, 20), np.uint8)}, model)
    with pytest.raises(ValueError, match=r"^photos\['float'\] must be a uint8 image .* got float32 \(8, 8, 3\)"):
        CAMExplorer({"float": np.zeros((8, 8, 3), np.float32)}, model)
    with pytest.raises(ValueError, match=r"^classes must be an integer in \[1, 1000\]; got 0"):
        CAMExplorer(photos, model, classes=0)
    with pytest.raises(ValueError, match=r"^size must be an integer of at least 32"):
        CAMExplorer(photos, model, size=16)


# -- RetrievalBrowser -------------------------------------------------------------------------------

COLOURS = {"easy": "#2ca02c", "hard": "#ff7f0e", "junk": "#8c8c8c", "negative": "#d62728"}


def _images(count: int, seed: int) -> np.ndarray:
    """``count`` random uint8 images ``(count, 12, 16, 3)``, each told apart by its pixels."""
    return np.random.default_rng(seed).integers(0, 256, (count, 12, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def random_set():
    g = np.random.default_rng(0)
    database, queries = _images(30, 1), [g.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in
                                         ((10, 14), (8, 8), (16, 9), (12, 12))]
    descriptors = {"numpy": (g.normal(size=(4, 6)).astype(np.float32), g.normal(size=(30, 6)).astype(np.float32)),
                   "torch": (torch.from_numpy(g.normal(size=(4, 3))), torch.from_numpy(g.normal(size=(30, 3))))}
    gnd = []
    for _ in range(4):
        ids = g.permutation(30)
        gnd.append({"easy": ids[:4].tolist(), "hard": ids[4:7].tolist(), "junk": ids[7:9].tolist()})
    return database, queries, descriptors, gnd


def _label(gnd_entry: dict, image_id: int) -> str:
    return next((key for key in ("easy", "hard", "junk") if image_id in gnd_entry[key]), "negative")


def _thumbnails(fig, database):
    """The drawn thumbnails in rank order: ``(rank, score, database id, frame colour)``, the id found by the
    pixels drawn."""
    found = []
    for ax in fig.axes:
        title = ax.get_title()
        if not title.startswith("#"):
            continue
        rank, score = title[1:].split(" · ")
        drawn = np.asarray(ax.get_images()[0].get_array())
        (image_id,) = [i for i, image in enumerate(database) if np.array_equal(image, drawn)]
        colours = {to_rgba(ax.spines[side].get_edgecolor()) for side in ("top", "bottom", "left", "right")}
        assert len(colours) == 1, title
        found.append((int(rank), float(score), image_id, colours.pop()))
    return sorted(found)


def test_retrieval_browser_shows_the_top_k_by_dot_product_framed_by_their_labels(random_set):
    database, queries, descriptors, gnd = random_set
    browser = RetrievalBrowser(database, queries, descriptors, gnd, k=8)
    assert browser.updates == 1 and bytes(browser.image.value).startswith(PNG)
    assert _png_width(bytes(browser.image.value)) <= NOTEBOOK_WIDTH
    for name, q in (("numpy", 0), ("numpy", 3), ("torch", 3), ("torch", 1)):
        browser.descriptor.value, browser.query.value = name, q
        q_desc, db_desc = descriptors[name]
        scores = np.asarray(q_desc, dtype=np.float64) @ np.asarray(db_desc, dtype=np.float64).T
        expected = np.argsort(-scores[q], kind="stable")[:8]
        drawn = _thumbnails(browser.draw(), database)
        assert [rank for rank, *_ in drawn] == list(range(1, 9))
        assert [image_id for _, _, image_id, _ in drawn] == expected.tolist(), (name, q)
        assert browser.shown.tolist() == expected.tolist()
        np.testing.assert_allclose([score for _, score, _, _ in drawn], scores[q, expected], atol=5e-4)
        labels = [_label(gnd[q], i) for i in expected]
        assert [colour for *_, colour in drawn] == [to_rgba(COLOURS[label]) for label in labels]
        counts = {label: labels.count(label) for label in COLOURS}
        assert browser.counts == counts
        listed = ", ".join(f"{count} {label}" for label, count in counts.items())
        status = browser.status.value
        plain = "".join(part.split(">")[-1] for part in status.split("<"))  # the status without its tags
        assert f"In the top 8: {listed}." in plain and f"descriptor {name}" in plain


def test_retrieval_browser_legend_names_the_four_labels_in_their_colours(random_set):
    browser = RetrievalBrowser(*random_set)
    (legend,) = browser.draw().legends
    entries = {text.get_text(): to_rgba(patch.get_edgecolor()) for text, patch in
               zip(legend.get_texts(), legend.get_patches())}
    assert entries == {label: to_rgba(colour) for label, colour in COLOURS.items()}
    assert len(set(entries.values())) == 4


@pytest.fixture
def hand_made():
    """Five database images ranked [3, 1, 2, 0, 4] by the dot product for both queries under "ranked"; query 0:
    easy {0}, hard {1}, junk {2}; query 1: easy {4}; query 2: no positive, junk {3}."""
    database, queries = _images(5, 2), _images(3, 3)
    scores = np.array([[2.0], [4.0], [3.0], [5.0], [1.0]])
    descriptors = {"ranked": (np.ones((3, 1)), scores),
                   "perfect": (np.ones((3, 1)), -np.arange(5.0)[:, None])}  # ranks [0, 1, 2, 3, 4]
    gnd = [{"easy": [0], "hard": [1], "junk": [2]}, {"easy": [4], "hard": [], "junk": []},
           {"easy": [], "hard": [], "junk": [3]}]
    return database, queries, descriptors, gnd


def test_retrieval_browser_average_precision_is_the_hand_computed_one(hand_made):
    browser = RetrievalBrowser(*hand_made, k=3)
    # query 0, ranking [3, 1, 2, 0, 4] with 2 junk: positives at junk-free places 1 and 2 of [3, 1, 0, 4]:
    # (0 + 1/2) / 2 + (1/2 + 2/3) / 2, over 2 positives = 5/12
    assert browser.average_precision == pytest.approx(5 / 12)
    assert "AP = <b>0.417</b>" in browser.status.value
    # query 1: its one positive last of five: (0 + 1/5) / 2 = 0.1; the mAP of the two queries with positives
    assert f"mAP {(5 / 12 + 0.1) / 2:.3f} over the 2 queries with a positive" in browser.status.value
    assert [_label(hand_made[3][0], i) for i in browser.shown] == ["negative", "hard", "junk"]
    assert browser.counts == {"easy": 0, "hard": 1, "junk": 1, "negative": 1}
    browser.query.value = 1
    assert browser.average_precision == pytest.approx(0.1) and "AP = <b>0.100</b>" in browser.status.value
    browser.query.value = 2
    assert np.isnan(browser.average_precision) and "no positive" in browser.status.value
    browser.query.value = 0
    browser.descriptor.value = "perfect"  # [0, 1, 2, 3, 4]: both positives first
    assert browser.average_precision == pytest.approx(1.0) and "AP = <b>1.000</b>" in browser.status.value
    assert browser.shown.tolist() == [0, 1, 2]
    assert browser.counts == {"easy": 1, "hard": 1, "junk": 1, "negative": 0}


def test_retrieval_browser_k_slider_sets_the_number_of_thumbnails(random_set):
    database = random_set[0]
    browser = RetrievalBrowser(*random_set, k=5)
    assert browser.k.max == 30 and browser.k.min == 1
    for k in (1, 7, 12):
        updates, before = browser.updates, bytes(browser.image.value)
        browser.k.value = k
        assert browser.updates == updates + 1 and bytes(browser.image.value) != before
        assert len(browser.shown) == k and len(_thumbnails(browser.draw(), database)) == k
        assert f"In the top {k}:" in browser.status.value


def test_retrieval_browser_every_control_redraws(random_set):
    browser = RetrievalBrowser(*random_set)
    for control, value in ((browser.query, 2), (browser.descriptor, "torch"), (browser.k, 4)):
        updates, before = browser.updates, bytes(browser.image.value)
        control.value = value
        assert browser.updates == updates + 1 and bytes(browser.image.value) != before, control.description


def _trapezoid_ap(ranked, ok, junk) -> float:
    """AP by walking the ranking: junk skipped, each positive adding the trapezoid between the precision before
    it and at it, over the number of positives."""
    area, found, place = 0.0, 0, 0
    for image_id in ranked:
        if image_id in junk:
            continue
        if image_id in ok:
            before = 1.0 if place == 0 else found / place
            found += 1
            area += (before + found / (place + 1)) / 2
        place += 1
    return area / len(ok)


def test_retrieval_browser_on_the_instance_set_with_its_query_crops():
    from coursekit.data.instances import instance_set

    data = instance_set("test", "tiny", cache=False)
    crops = data.query_crops()

    def histograms(images):  # 4 bins per colour channel, l2-normalised: a crude descriptor computed here
        rows = np.stack([np.concatenate([np.histogram(image[..., c], bins=4, range=(0, 256))[0] for c in range(3)])
                         for image in images]).astype(np.float64)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    queries, database = histograms(crops), histograms(data.images)
    names = [data.instance_names[i] for i in data.query_instances]
    browser = RetrievalBrowser(data.images, crops, {"colour histogram": (queries, database)}, data.gnd, k=6,
                               query_names=names)
    assert [label for label, _ in browser.query.options] == [f"{q}: {name}" for q, name in enumerate(names)]
    aps = []
    for q, entry in enumerate(data.gnd):
        browser.query.value = q
        ranked = np.argsort(-(database @ queries[q]), kind="stable")
        assert browser.shown.tolist() == ranked[:6].tolist()
        np.testing.assert_array_equal(np.asarray(browser.draw().axes[0].get_images()[0].get_array()), crops[q])
        ok, junk = set(entry["easy"]) | set(entry["hard"]), set(entry["junk"])
        aps.append(_trapezoid_ap(ranked.tolist(), ok, junk))
        assert browser.average_precision == pytest.approx(aps[-1])
        assert f"AP = <b>{aps[-1]:.3f}</b>" in browser.status.value
        assert browser.counts == {label: sum(_label(entry, i) == label for i in ranked[:6]) for label in COLOURS}
    assert f"mAP {np.mean(aps):.3f} over the 3 queries with a positive" in browser.status.value


def test_retrieval_browser_refuses_bad_input_naming_the_argument(random_set):
    database, queries, descriptors, gnd = random_set
    q_desc, db_desc = descriptors["numpy"]
    cases = (
        ({"descriptors": {"A": (q_desc[:3], db_desc)}},
         r"^descriptors\['A'\]: the query descriptors must have one row per query image, \(4, D\); got \(3, 6\)"),
        ({"descriptors": {"A": (q_desc, db_desc[:29])}},
         r"^descriptors\['A'\]: the database descriptors must have one row per database image, \(30, D\); "
         r"got \(29, 6\)"),
        ({"descriptors": {"A": (q_desc, db_desc[:, :5])}},
         r"^descriptors\['A'\]: the query and database descriptors must have the same dimension D"),
        ({"descriptors": {"A": (q_desc[0], db_desc)}}, r"^descriptors\['A'\]: the query descriptors must be a float"),
        ({"descriptors": {"A": q_desc}}, r"^descriptors\['A'\] must be a pair"),
        ({"descriptors": {}}, r"^descriptors must be a non-empty dict"),
        ({"gnd": gnd[:3]}, r"^gnd must have one entry per query image \(4\); got 3"),
        ({"gnd": [*gnd[:3], {"easy": [30], "hard": [], "junk": []}]},
         r"^gnd\[3\]\['easy'\] must hold database ids in \[0, 30\); got \[30\]"),
        ({"gnd": [*gnd[:3], {"easy": [1], "junk": []}]}, r"^gnd\[3\] must be a dict with 'easy', 'hard' and 'junk'"),
        ({"gnd": [*gnd[:3], {"easy": [1], "hard": [1], "junk": []}]}, r"^gnd\[3\]: the ids \[1\] of 'hard'"),
        ({"k": 31}, r"^k must be an integer in \[1, 30\]"),
        ({"query_names": ["a", "b"]}, r"^query_names must have one name per query image \(4\); got 2"),
        ({"database_images": database[..., 0]}, r"^database_images must be uint8 \(N, H, W, 3\)"),
        ({"query_images": [*queries[:3], queries[3].astype(np.float32)]},
         r"^query_images\[3\] must be a uint8 image \(H, W, 3\); got float32"),
    )
    arguments = {"database_images": database, "query_images": queries, "descriptors": descriptors, "gnd": gnd}
    for change, message in cases:
        given = {**arguments, **change}
        k, names = given.pop("k", 10), given.pop("query_names", None)
        with pytest.raises(ValueError, match=message):
            RetrievalBrowser(given["database_images"], given["query_images"], given["descriptors"], given["gnd"], k=k,
                             query_names=names)


# -- the plotting helpers ---------------------------------------------------------------------------


def test_overlay_map_and_framed_image_draw_what_they_are_given():
    image = _images(1, 4)[0]
    heat = np.arange(12 * 16, dtype=float).reshape(12, 16)
    fig, (a, b) = plots.new_figure(ncols=2)
    picture = plots.overlay_map(a, image, heat, alpha=0.3, title="t")
    assert picture.get_alpha() == 0.3 and picture.get_clim() == (0.0, 12 * 16 - 1.0)
    np.testing.assert_array_equal(a.get_images()[0].get_array(), image)
    plots.framed_image(b, image, "#123456", width=5, caption="easy")
    assert all(to_rgba(s.get_edgecolor()) == to_rgba("#123456") and s.get_linewidth() == 5 for s in b.spines.values())
    assert b.get_xlabel() == "easy"
    with pytest.raises(ValueError, match=r"heat must have the image's size \(12, 16\); got \(3, 3\)"):
        plots.overlay_map(a, image, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\)"):
        plots.framed_image(b, image[..., 0], "red")
