"""coursekit.graphs.discovery against loops over pixels and regions, and the properties the reference
(§7.2) names: saliency precision 1 for the ground-truth indicator, area(GT)/area(image) for a uniform map."""

import numpy as np
import pytest
import torch

from coursekit.graphs import discovery as D
from coursekit.graphs import egm


def random_regions(gen, images, height, width, count):
    x0 = gen.uniform(0, width - 0.5, count)
    y0 = gen.uniform(0, height - 0.5, count)
    boxes = np.stack([x0, y0, np.minimum(x0 + gen.uniform(0.1, width, count), width),
                      np.minimum(y0 + gen.uniform(0.1, height, count), height)], axis=1)
    image = np.sort(gen.integers(0, images, count))
    return D.Regions(torch.tensor(boxes), torch.tensor(image), torch.tensor(gen.uniform(0.1, 1, count)))


def cells_overlapped(box, height, width):
    """The cells (row, col) whose unit square [col, col+1] x [row, row+1] overlaps the box by more than a line."""
    x0, y0, x1, y1 = box
    return {(r, c) for r in range(height) for c in range(width) if c < x1 and c + 1 > x0 and r < y1 and r + 1 > y0}


def test_feature_saliency_is_the_normalised_positive_channel_sum():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, 6, generator=gen, dtype=torch.float64)
    x[2] = -x[2].abs()  # no positive activation: stays zero
    fs = D.feature_saliency(x)
    for n in range(2):
        total = sum(max(float(x[n, k, i, j]), 0.0) for k in range(5) for i in range(4) for j in range(6))
        for i, j in [(0, 0), (3, 5), (1, 2)]:
            expected = sum(max(float(x[n, k, i, j]), 0.0) for k in range(5)) / total
            assert abs(float(fs[n, i, j]) - expected) < 1e-12
    assert torch.all(fs[2] == 0)
    with pytest.raises(ValueError, match="features"):
        D.feature_saliency(torch.zeros(3, 4, 5))


def test_cell_boxes_and_masks_cover_exactly_the_cells_a_box_overlaps():
    gen = np.random.default_rng(1)
    regions = random_regions(gen, 2, 7, 9, 40)
    masks = D.region_masks(regions, 7, 9)
    for r in range(40):
        expected = cells_overlapped(regions.boxes[r].tolist(), 7, 9)
        assert {tuple(p) for p in torch.nonzero(masks[r]).tolist()} == expected
    # a box thinner than a cell still holds the cell it lies in
    thin = D.Regions(torch.tensor([[2.2, 3.1, 2.3, 3.2]]), torch.tensor([0]), torch.tensor([1.0]))
    assert torch.nonzero(D.region_masks(thin, 7, 9)[0]).tolist() == [[3, 2]]


def test_regional_macs_against_a_loop():
    gen = np.random.default_rng(2)
    x = torch.tensor(gen.normal(size=(3, 4, 5, 6)))
    regions = random_regions(gen, 3, 5, 6, 25)
    out = D.regional_macs(x, regions, chunk=7)
    for r in range(25):
        cells = cells_overlapped(regions.boxes[r].tolist(), 5, 6)
        n = int(regions.image[r])
        for k in range(4):
            assert float(out[r, k]) == max(float(x[n, k, i, j]) for i, j in cells)
    with pytest.raises(ValueError, match="regions.image"):
        D.regional_macs(x[:1], regions)


def test_aggregate_sums_each_images_regions_then_normalises():
    gen = np.random.default_rng(3)
    desc = torch.tensor(gen.normal(size=(10, 3)))
    image = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3, 3])
    out = D.aggregate(desc, image, 5)
    for n in range(5):
        rows = desc[image == n]
        if len(rows) == 0:
            assert torch.all(out[n] == 0)
        else:
            total = rows.sum(0)
            assert torch.allclose(out[n], total / total.norm(), atol=1e-12)


def test_sub_regions_are_the_region_and_four_corners_inside_it():
    gen = np.random.default_rng(4)
    regions = random_regions(gen, 3, 8, 10, 6)
    more = D.sub_regions(regions)
    assert len(more.boxes) == 30 and torch.all(more.image[1:] >= more.image[:-1])
    for r in range(6):
        x0, y0, x1, y1 = regions.boxes[r].tolist()
        mine = more.boxes[more.image == regions.image[r]]
        corners = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
        assert any(torch.allclose(b, regions.boxes[r]) for b in mine)
        for cx, cy in corners:  # a box of 2/3 of the sides in each corner, inside the region
            match = [b for b in mine.tolist() if (abs(b[0] - cx) < 1e-12 or abs(b[2] - cx) < 1e-12)
                     and (abs(b[1] - cy) < 1e-12 or abs(b[3] - cy) < 1e-12)
                     and abs((b[2] - b[0]) - 2 / 3 * (x1 - x0)) < 1e-12 and abs((b[3] - b[1]) - 2 / 3 * (y1 - y0)) < 1e-12]
            assert match and all(x0 - 1e-12 <= m[0] and m[2] <= x1 + 1e-12 and y0 - 1e-12 <= m[1] and m[3] <= y1 + 1e-12
                                 for m in match)
    assert abs(float(more.weight.sum()) - 2 * float(regions.weight.sum())) < 1e-12


def test_box_coverage_against_pixel_counts():
    boxes = [np.array([[0, 0, 16, 12]]), np.zeros((0, 4), dtype=np.int64), np.array([[3, 5, 20, 9], [10, 0, 13, 24]])]
    cover = D.box_coverage(boxes, 24, 32, 4, 5)
    rows, cols = np.round(np.linspace(0, 24, 5)).astype(int), np.round(np.linspace(0, 32, 6)).astype(int)
    for n, image_boxes in enumerate(boxes):
        pixels = np.zeros((24, 32), dtype=bool)
        for x0, y0, x1, y1 in image_boxes:
            pixels[y0:y1, x0:x1] = True
        for i in range(4):
            for j in range(5):
                cell = pixels[rows[i]:rows[i + 1], cols[j]:cols[j + 1]]
                assert abs(float(cover[n, i, j]) - cell.mean()) < 1e-6


def test_saliency_precision_of_the_indicator_is_one_and_of_a_uniform_map_the_area():
    boxes = [np.array([[0, 0, 16, 12]]), np.array([[8, 6, 24, 18], [0, 0, 8, 6]])]
    cover = D.box_coverage(boxes, 24, 32, 4, 4)
    indicator = (cover > 0).double() * cover.double()
    assert torch.allclose(D.saliency_precision(indicator, cover.double()), torch.ones(2, dtype=torch.float64))
    uniform = D.saliency_precision(torch.ones(2, 4, 4, dtype=torch.float64), cover.double())
    assert abs(float(uniform[0]) - 16 * 12 / (24 * 32)) < 1e-7
    assert abs(float(uniform[1]) - (16 * 12 + 8 * 6) / (24 * 32)) < 1e-7
    assert torch.isnan(D.saliency_precision(torch.zeros(1, 4, 4), cover[:1])).all()
    with pytest.raises(ValueError, match="coverage"):
        D.saliency_precision(torch.ones(2, 4, 4), cover[:1])


def test_object_saliency_adds_every_region_that_holds_a_cell():
    gen = np.random.default_rng(5)
    regions = random_regions(gen, 4, 6, 7, 30)
    cells = D.cell_boxes(regions.boxes, 6, 7)
    g = torch.tensor(gen.uniform(0, 2, 30))
    out = D.object_saliency(cells, regions.image, g, 4, 6, 7)
    expected = np.zeros((4, 6, 7))
    for r, (x0, y0, x1, y1) in enumerate(cells.tolist()):
        for i in range(y0, y1):
            for j in range(x0, x1):
                expected[int(regions.image[r]), i, j] += float(g[r])
    assert np.allclose(out.numpy(), expected, atol=1e-12)


def test_regional_search_scores_each_image_by_its_best_region():
    gen = np.random.default_rng(6)
    queries, regions = torch.tensor(gen.normal(size=(3, 4))), torch.tensor(gen.normal(size=(9, 4)))
    image = torch.tensor([0, 0, 1, 1, 1, 3, 3, 3, 3])
    scores = D.regional_search(queries, regions, image, 4)
    for q in range(3):
        for n in range(4):
            rows = [float(queries[q] @ regions[r]) for r in range(9) if image[r] == n]
            assert (abs(float(scores[q, n]) - max(rows)) < 1e-12) if rows else float(scores[q, n]) == -np.inf


def test_detect_regions_are_the_boxes_of_each_maps_egm_components_by_decreasing_weight():
    gen = np.random.default_rng(7)
    maps = torch.zeros(5, 8, 10)
    for n in range(4):  # a few blobs each; the last map stays empty
        rows, cols = np.mgrid[0:8, 0:10] + 0.5
        for _ in range(n + 1):
            cx, cy = gen.uniform(1, 9), gen.uniform(1, 7)
            maps[n] += torch.tensor(np.exp(-((cols - cx) ** 2 + (rows - cy) ** 2) / 2), dtype=torch.float32)
    regions = D.detect_regions(maps, extent=1.5, batch=2)
    counts = regions.count(5)
    assert counts[4] == 0 and torch.all(counts[:4] >= 1)
    for n in range(4):
        alone = egm.egm_maps(maps[n:n + 1], relative_threshold=0.1).mixture
        alive = torch.nonzero(alone.alive[0]).flatten()
        alive = alive[torch.argsort(alone.weights[0, alive], descending=True, stable=True)]
        boxes = egm.mixture_boxes(alone, 10, 8, 1.5)[0, alive]
        mine = regions.boxes[regions.image == n]
        assert mine.shape == boxes.shape and torch.allclose(mine, boxes, atol=1e-4)
        assert torch.allclose(regions.weight[regions.image == n], alone.weights[0, alive], atol=1e-5)


def test_table_descriptors_are_unit_rows_and_mac_is_the_whitened_channel_maximum():
    from coursekit.retrieval import whitening

    gen = torch.Generator().manual_seed(5)

    def maps(count, height=6, width=8):  # a few strong cells over weak noise, as a network's head gives
        x = 0.05 * torch.rand(count, 40, height, width, generator=gen)
        for n in range(count):
            for _ in range(2):
                y0, x0 = int(torch.randint(0, height - 2, (1,), generator=gen)), int(torch.randint(0, width - 2, (1,), generator=gen))
                x[n, :, y0:y0 + 2, x0:x0 + 2] += torch.rand(40, 1, 1, generator=gen)
        return x

    database, training = maps(30), maps(60)
    queries = [maps(1, 4, 5) for _ in range(4)]
    out = D.table_descriptors(database, training, queries, whiten_dim=8, k=5)
    assert list(out.methods) == ["MAC", "R-MAC (uniform)", "FS.EGM", "OS.EGM", "OS.EGM-4"]
    for name, (q, d) in out.methods.items():
        assert q.shape == (4, 8) and d.shape == (30, 8), name
        norms = torch.cat([q, d]).norm(dim=1)
        assert bool(((norms - 1).abs() < 1e-5).all() | (norms == 0).all()), name
    learned = whitening.pca_whitening(torch.nn.functional.normalize(training.amax(dim=(-2, -1)), dim=1), 8)
    expected = learned(torch.nn.functional.normalize(database.amax(dim=(-2, -1)), dim=1))
    torch.testing.assert_close(out.methods["MAC"][1], expected)
    assert len(out.descriptors) == len(out.regions.image) == len(out.centrality)
    assert [len(d) for d in out.query_descriptors] == [len(r.image) for r in out.query_regions]
    assert bool((out.centrality > 0).all())
