"""coursekit.data.instances: the offline instance-retrieval set, checked against the documented
thresholds written out here, hand-built canvases, closed-form mask areas and brute-force walks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from coursekit.data import instances as M

H, W = 240, 320


@pytest.fixture(scope="module")
def small():
    return M.instance_set("test", "tiny", num_instances=4, queries_per_instance=2, num_images=32, cache=False)


@pytest.fixture(scope="module")
def tiny():
    return M.instance_set("test", "tiny", cache=False)


def label_by_hand(v, s):
    # the module's documented thresholds, written out independently
    if v < 0.4:
        return "junk"
    return "easy" if v >= 0.8 and s >= 0.2 else "hard"


def same_sets(a, b):
    assert np.array_equal(a.images, b.images) and np.array_equal(a.queries, b.queries)
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.query_boxes, b.query_boxes)
    assert a.objects == b.objects and np.array_equal(a.query_instances, b.query_instances)
    for ga, gb in zip(a.gnd, b.gnd, strict=True):
        assert all(np.array_equal(ga[key], gb[key]) for key in ("easy", "hard", "junk", "bbx"))


def test_shapes_dtypes_and_the_revisited_format(small):
    n, q = 32, 8
    assert small.images.shape == (n, H, W, 3) and small.images.dtype == np.uint8
    assert small.queries.shape == (q, H, W, 3) and small.queries.dtype == np.uint8
    assert small.masks.shape == (n, H, W) and small.masks.dtype == np.uint8
    assert small.query_boxes.shape == (q, 4) and small.query_instances.shape == (q,)
    assert len(small.objects) == n and len(small.gnd) == q and len(small.instances) == 4
    assert np.array_equal(np.bincount(small.query_instances)[small.instances], [2, 2, 2, 2])
    assert len(small.instance_names) == len(M.INSTANCES) and "Oxford" in small.description
    for g, box in zip(small.gnd, small.query_boxes):
        assert set(g) == {"easy", "hard", "junk", "bbx"}
        for key in ("easy", "hard", "junk"):
            assert g[key].dtype.kind == "i" and np.all(np.diff(g[key]) > 0)
        assert np.array_equal(g["bbx"], box)
    assert small.images.std() > 20  # photos, not flat fields


def test_labels_follow_the_documented_thresholds(small):
    for q, instance in enumerate(small.query_instances):
        expected = {"easy": [], "hard": [], "junk": []}
        for i, objs in enumerate(small.objects):
            mine = [o for o in objs if o.instance == instance]
            assert len(mine) <= 1  # an image shows an instance at most once
            if mine:
                expected[label_by_hand(mine[0].visible, mine[0].scale)].append(i)
        for key, indices in expected.items():
            assert small.gnd[q][key].tolist() == indices
        assert len(expected["easy"]) >= 1 and len(expected["hard"]) >= 1
        for i in small.gnd[q]["junk"]:  # junk: the object is there, but barely visible
            assert [o.visible < 0.4 for o in small.objects[i] if o.instance == instance] == [True]
    # the labels span every case: small but visible objects are hard, not easy
    everything = [o for objs in small.objects for o in objs]
    assert any(o.visible >= 0.8 and o.scale < 0.2 for o in everything)
    assert all(0.1 <= o.scale <= 0.5 and 0.0 <= o.visible <= 1.0 for o in everything)


def test_every_query_has_an_easy_and_a_hard_positive_even_with_few_images():
    # guaranteed by construction: the tightest case, two database images per instance
    few = M.instance_set("train", "tiny", num_instances=19, num_images=38, cache=False)
    assert all(len(g["easy"]) and len(g["hard"]) for g in few.gnd)


def test_boxes_lie_in_the_images_and_hold_the_visible_pixels(small):
    for objs, mask in zip(small.objects, small.masks):
        assert mask.max() <= len(objs)
        for k, o in enumerate(objs):
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
            rows, cols = np.nonzero(mask == k + 1)
            assert (len(rows) > 0) == (o.visible > 0)
            if len(rows):
                assert x0 <= cols.min() and cols.max() < x1 and y0 <= rows.min() and rows.max() < y1
    for box in small.query_boxes:
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
        assert max(x1 - x0, y1 - y0) >= 0.5 * H * math.cos(math.radians(10)) - 3  # a larger view
    for crop, (x0, y0, x1, y1) in zip(small.query_crops(), small.query_boxes):
        assert crop.shape == (y1 - y0, x1 - x0, 3)


def test_the_visible_fraction_matches_the_closed_form_area_of_each_mask(small):
    # rectangles and ellipses keep their area under rotation: w' h' and pi/4 w' h', with the longer
    # side at s * 240; the visible pixels over that area is v, whatever hides the rest (an occluder,
    # the border or being only a fragment)
    checked = border = 0
    for objs, mask in zip(small.objects, small.masks):
        for k, o in enumerate(objs):
            spec = M.INSTANCES[o.instance]
            if spec.shape not in ("rect", "ellipse"):
                continue
            bw, bh = spec.box[2] - spec.box[0], spec.box[3] - spec.box[1]
            factor = o.scale * H / max(bw, bh)
            w, h = round(bw * factor), round(bh * factor)
            area = w * h * (1.0 if spec.shape == "rect" else math.pi / 4)
            seen = int((mask == k + 1).sum())
            assert seen / area == pytest.approx(o.visible, abs=0.01 + 0.5 * (w + h) / area), (spec.name, o)
            checked += 1
            x0, y0, x1, y1 = o.box
            border += o.visible < 0.8 and (x0 == 0 or y0 == 0 or x1 == W or y1 == H)
    assert checked >= 20 and border >= 1


def test_the_canvas_measures_visibility_in_hand_built_cases():
    canvas = M.Canvas(np.zeros((20, 30, 3)))
    ones = np.ones((10, 10), np.float32)
    white = np.full((10, 10, 3), 255.0)
    a = canvas.paste(white, ones, 5, 5, instance=7, scale=0.3)
    assert canvas.objects()[a] == M.Object(7, (5, 5, 15, 15), 1.0, 0.3)
    canvas.paste(np.full((10, 5, 3), 100.0), np.ones((10, 5), np.float32), 5, 5)  # hides the left half
    assert canvas.objects()[a].visible == 0.5
    b = canvas.paste(white, ones, -5, 20, instance=8)  # half above the image
    assert canvas.objects()[b].box == (20, 0, 30, 5) and canvas.objects()[b].visible == 0.5
    c = canvas.paste(white, ones, 10, 18, instance=9)
    canvas.paste(np.full((12, 14, 3), 255.0), np.ones((12, 14), np.float32), 9, 16)  # all of it
    assert canvas.objects()[c].visible == 0.0
    piece = np.zeros((10, 10), np.float32)
    piece[:5, :4] = 1.0
    d = canvas.paste(white, piece, 14, 0, instance=3, full_pixels=80)  # 20 of the object's 80 pixels
    assert canvas.objects()[d].visible == 0.25 and canvas.objects()[d].box == (0, 14, 4, 19)
    labels = canvas.label_map()
    assert (labels == a + 1).sum() == 50 and (labels == c + 1).sum() == 0
    picture = canvas.picture()
    assert picture[10, 12, 0] == 255 and picture[10, 7, 0] == 100 and picture[0, 0, 0] == 0
    half = M.Canvas(np.zeros((4, 4, 3)))
    half.paste(np.full((4, 4, 3), 200.0), np.full((4, 4), 0.25, np.float32), 0, 0, instance=1)
    assert half.picture()[0, 0, 0] == 50 and half.objects()[0].visible == 0.0  # blended, but no mask pixel


def test_the_same_seed_gives_identical_sets_through_two_caches(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "a"))
    first = M.instance_set("test", "tiny")
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "b"))
    second = M.instance_set("test", "tiny")
    same_sets(first, second)
    same_sets(first, tiny)  # and without any cache
    assert len(list((tmp_path / "a" / "instance-sets").glob("*.npz"))) == 1


def test_different_seeds_differ(tiny):
    other = M.instance_set("test", "tiny", seed=1, cache=False)
    assert other.images.shape == tiny.images.shape
    assert not np.array_equal(other.images, tiny.images)
    assert not np.array_equal(other.queries, tiny.queries)


def test_the_instance_table_and_the_splits():
    test_ids = {k for k, spec in enumerate(M.INSTANCES) if spec.split == "test"}
    train_ids = {k for k, spec in enumerate(M.INSTANCES) if spec.split == "train"}
    assert len(test_ids) == 22 and len(train_ids) == 19 and not test_ids & train_ids
    assert len({spec.name for spec in M.INSTANCES}) == len(M.INSTANCES) >= 30
    assert len({spec.photo for spec in M.INSTANCES}) >= 8
    assert len({M.INSTANCES[k].photo for k in test_ids}) >= 8
    for p, q in itertools.combinations(M.INSTANCES, 2):
        if p.photo == q.photo:  # an instance never contains part of another
            assert (p.box[2] <= q.box[0] or q.box[2] <= p.box[0] or p.box[3] <= q.box[1] or q.box[3] <= p.box[1]), \
                (p.name, q.name)
    train = M.instance_set("train", "tiny", cache=False)
    shown = {o.instance for objs in train.objects for o in objs} | set(train.query_instances.tolist())
    assert shown <= train_ids and set(train.instances.tolist()) <= train_ids


def test_pairs_are_the_images_sharing_a_visible_instance(small):
    brute = []
    for i, j in itertools.combinations(range(len(small.objects)), 2):
        a = {o.instance for o in small.objects[i] if o.visible >= 0.4}
        b = {o.instance for o in small.objects[j] if o.visible >= 0.4}
        if a & b:
            brute.append((i, j))
    pairs = small.pairs()
    assert pairs.dtype == np.int64 and pairs.shape == (len(brute), 2) and pairs.tolist() == [list(p) for p in brute]
    assert len(brute) > 10
    ids = small.image_instances()
    assert all(set(ids[i].tolist()) == {o.instance for o in small.objects[i] if o.visible >= 0.4}
               for i in range(len(ids)))
    everything = small.object_boxes(min_visible=0.0)
    assert [len(b) for b in everything] == [len(objs) for objs in small.objects]
    assert all(b.shape[1:] == (4,) and b.dtype == np.int64 for b in small.object_boxes())


def test_distractors_hold_no_instance_and_leave_the_rest_unchanged(tiny):
    more = M.instance_set("test", "tiny", distractors=3, cache=False)
    n = len(tiny.images)
    assert more.images.shape == (n + 3, H, W, 3)
    assert np.array_equal(more.images[:n], tiny.images) and np.array_equal(more.masks[:n], tiny.masks)
    assert more.objects[:n] == tiny.objects and more.objects[n:] == [[], [], []]
    assert not more.masks[n:].any() and more.images[n:].std() > 10
    for a, b in zip(more.gnd, tiny.gnd, strict=True):
        assert all(np.array_equal(a[key], b[key]) for key in ("easy", "hard", "junk", "bbx"))


def test_the_cache_is_loaded_and_a_corrupt_file_is_regenerated(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    M.instance_set("test", "tiny")
    (path,) = (tmp_path / "instance-sets").glob("*.npz")
    assert path.with_name(path.name + ".sha256").read_text().strip() == M.sha256_of(path)
    generate = M._generate

    def refuse(*args):
        raise AssertionError("the cached set should have been loaded")

    monkeypatch.setattr(M, "_generate", refuse)
    same_sets(M.instance_set("test", "tiny"), tiny)
    calls = []

    def counted(*args):
        calls.append(args)
        return generate(*args)

    monkeypatch.setattr(M, "_generate", counted)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    same_sets(M.instance_set("test", "tiny"), tiny)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    same_sets(M.instance_set("test", "tiny"), tiny)
    assert len(calls) == 2
    assert path.with_name(path.name + ".sha256").read_text().strip() == M.sha256_of(path)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"split": "val"}, ValueError, "split"),
    ({"size": "huge"}, ValueError, "size"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"distractors": -2}, ValueError, "distractors"),
    ({"num_instances": 23}, ValueError, "num_instances"),
    ({"num_instances": 4, "num_images": 7}, ValueError, "num_images"),
    ({"queries_per_instance": 0}, ValueError, "queries_per_instance"),
])
def test_argument_errors_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        M.instance_set(**{"size": "tiny", "cache": False, **kwargs})
