"""coursekit.retrieval.pooling (stage 07) against numpy formulas, closed-form bounds, autograd's gradcheck,
R-MAC region grids worked out by hand from the arithmetic of Tolias et al.'s MATLAB code, an exact
(rational) re-derivation of the grid, and a brute-force R-MAC written with python loops."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from coursekit.retrieval import pooling as P


def seeded_maps(*shape, seed=0, sparsity=0.5, dtype=torch.float64):
    """Non-negative maps like post-ReLU activations: about ``sparsity`` of them exactly zero."""
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(*shape, generator=g, dtype=dtype) * 6
    return values * (torch.rand(*shape, generator=g, dtype=dtype) > sparsity)


# -- MAC, SPoC, GeM, l2n -----------------------------------------------------------------------------


def test_mac_is_the_channel_maximum_and_spoc_the_mean():
    x = seeded_maps(3, 5, 4, 6, seed=1)
    np.testing.assert_array_equal(P.mac(x).numpy(), x.numpy().max(axis=(2, 3)))
    assert torch.equal(P.mac(x), x.amax((-2, -1)))
    np.testing.assert_allclose(P.spoc(x).numpy(), x.numpy().sum(axis=(2, 3)) / 24, rtol=1e-14)
    assert P.mac(x).shape == P.spoc(x).shape == (3, 5)


def test_l2n_gives_unit_norms_along_the_dim_asked_and_keeps_zero_at_zero():
    x = torch.randn(4, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 30
    norms = np.linalg.norm(P.l2n(x).numpy(), axis=1)
    np.testing.assert_allclose(norms, 1, atol=1e-6)
    assert np.all(norms < 1)  # x / (||x|| + 1e-6): just under 1
    np.testing.assert_allclose(np.linalg.norm(P.l2n(x, dim=0).numpy(), axis=0), 1, atol=1e-6)
    np.testing.assert_allclose(P.l2n(x).numpy(), x.numpy() / (np.linalg.norm(x.numpy(), axis=1, keepdims=True) + 1e-6))
    assert torch.equal(P.l2n(torch.zeros(2, 3)), torch.zeros(2, 3))


def numpy_gem(x: np.ndarray, p, eps=1e-6) -> np.ndarray:
    """GeM as the formula says: clamp, power, mean over the map, root; ``p`` a number or one per channel."""
    p = np.asarray(p, dtype=np.float64)
    exponent = p.reshape(-1, 1, 1) if p.ndim else p
    return (np.maximum(x, eps) ** exponent).mean(axis=(-2, -1)) ** (1 / p)


def test_gem_with_p_1_is_spoc():
    x = seeded_maps(2, 6, 5, 5, seed=3) + 0.01  # above the clamp: the two are the same number
    np.testing.assert_allclose(P.gem(x, p=1.0).numpy(), P.spoc(x).numpy(), rtol=1e-12)
    x32 = x.float()
    torch.testing.assert_close(P.gem(x32, p=1.0), x32.mean((-2, -1)), rtol=1e-6, atol=0)


def test_gem_with_a_large_p_is_within_the_closed_form_bound_of_mac_even_in_float32():
    # mean(x^p)^(1/p) lies between max (HW)^(-1/p) and max: for p = 100 on 7x7 that is within 3.9%
    x = seeded_maps(4, 32, 7, 7, seed=4, dtype=torch.float32)  # values up to 6: 6^100 overflows float32
    pooled, peak = P.gem(x, p=100.0), P.mac(x)
    assert torch.isfinite(pooled).all()
    assert torch.all(pooled <= peak * (1 + 1e-5))
    assert torch.all(pooled >= peak * 49 ** (-1 / 100) * (1 - 1e-5))
    assert float(((peak - pooled).abs() / peak).max()) < 0.05


def test_gem_of_a_constant_map_is_the_constant_for_any_p():
    constant = torch.tensor([0.5, 2.0, 6.0], dtype=torch.float64)
    x = constant.reshape(1, 3, 1, 1).expand(2, 3, 4, 5)
    for p in (0.5, 1.0, 3.0, 7.5, torch.tensor(2.0, dtype=torch.float64), torch.tensor([1.0, 3.0, 10.0])):
        np.testing.assert_allclose(P.gem(x, p).numpy(), np.tile(constant.numpy(), (2, 1)), rtol=1e-12)


def test_gem_clamps_before_the_power():
    x = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    x[0, 0] = torch.tensor([[0.0, 0.0], [0.0, 4e-6]], dtype=torch.float64)  # zeros count as eps: 1.75e-6, not 1e-6
    x[0, 1] = torch.tensor([[0.0, 2.0], [1e-9, 3.0]], dtype=torch.float64)
    # channel 2 is zero everywhere: eps
    for p in (1.0, 3.0, 0.5):
        np.testing.assert_allclose(P.gem(x, p).numpy(), numpy_gem(x.numpy(), p), rtol=1e-12)
    np.testing.assert_allclose(P.gem(x, 1.0)[0, 0].item(), 1.75e-6, rtol=1e-12)
    assert P.gem(x, 3.0)[0, 2].item() == pytest.approx(1e-6, rel=1e-12)
    # below the clamp the gradient is 0, not the infinite one of x^0.5 at 0
    leaf = x.clone().requires_grad_(True)
    P.gem(leaf, 0.5).sum().backward()
    assert torch.isfinite(leaf.grad).all() and torch.all(leaf.grad[x < 1e-6] == 0)


def test_gem_with_one_p_per_channel_pools_each_channel_with_its_own_p():
    x = seeded_maps(3, 4, 5, 6, seed=5)
    p = torch.tensor([1.0, 2.0, 3.5, 20.0], dtype=torch.float64)
    expected = np.stack([numpy_gem(x[:, k:k + 1].numpy(), float(p[k]))[:, 0] for k in range(4)], axis=1)
    np.testing.assert_allclose(P.gem(x, p).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(P.gem(x, p).numpy(), numpy_gem(x.numpy(), p.numpy()), rtol=1e-12)
    # cirtorch's (1,) parameter is one p for every channel
    np.testing.assert_allclose(P.gem(x, torch.tensor([3.0])).numpy(), numpy_gem(x.numpy(), 3.0), rtol=1e-6)


def test_gem_gradients_in_x_and_p_pass_gradcheck():
    g = torch.Generator().manual_seed(6)
    x = (torch.rand(2, 3, 3, 4, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)  # away from the clamp
    p = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, q: P.gem(a, q), (x, p))
    per_channel = torch.tensor([1.5, 3.0, 6.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, q: P.gem(a, q), (x, per_channel))
    # d/dp of the formula, by hand: f (mean(x^p ln x) / (p mean(x^p)) - ln(mean x^p) / p^2)
    xs = x.detach().numpy()
    m, mlog = (xs ** 3).mean(axis=(2, 3)), (xs ** 3 * np.log(xs)).mean(axis=(2, 3))
    f = m ** (1 / 3)
    P.gem(x, p).sum().backward()
    np.testing.assert_allclose(p.grad.item(), (f * (mlog / (3 * m) - np.log(m) / 9)).sum(), rtol=1e-10)


def test_poolings_refuse_bad_input_naming_it():
    with pytest.raises(ValueError, match=r"features must be \(N, K, H, W\); got \(3, 4\)"):
        P.mac(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="floating-point"):
        P.spoc(torch.zeros(1, 2, 3, 3, dtype=torch.long))
    x = torch.rand(1, 3, 2, 2)
    for bad in (0.0, -1.0, float("nan"), float("inf"), torch.tensor([1.0, 0.0, 2.0])):
        with pytest.raises(ValueError, match="p must be positive"):
            P.gem(x, bad)
    with pytest.raises(ValueError, match=r"\(3,\) tensor; got shape \(4,\)"):
        P.gem(x, torch.ones(4))
    with pytest.raises(TypeError, match="p must be a number"):
        P.gem(x, "3")


# -- the R-MAC grid ----------------------------------------------------------------------------------

# Worked out on paper from the arithmetic of §1.2 (ovr = 0.4, L = 3): per level, the square side and
# the lists of tops and lefts (every top with every left, row by row). w = min(H, W); the extra count
# Wd (or Hd) is 1 + the index of the smallest |1 - b/w - 0.4|, b = (max(H, W) - w) / (steps - 1).
HAND_GRIDS = {
    # w = 7, square: level 1 the whole map; l = 2: side floor(14/3) = 4, wl2 = 1, b = 3: 0, 3;
    # l = 3: side floor(14/4) = 3, wl2 = floor(0.5) = 0, b = 2: 0, 2, 4
    (7, 7): [(7, [0], [0]), (4, [0, 3], [0, 3]), (3, [0, 2, 4], [0, 2, 4])],
    # w = 8, b/w = 0.25, 0.125, ...: |0.6 - b/w| smallest for 2 steps, so Wd = 1;
    # l = 1: side 8, wl2 = 3, b = 2: lefts 0, 2; l = 2: side 5, wl2 = 1, lefts b = 2.5: 0, floor(3.5) - 1 = 2,
    # 5; tops b = 3: 0, 3; l = 3: side 4, wl2 = 1, lefts b = 2: 0, 2, 4, 6; tops b = 2: 0, 2, 4
    (8, 10): [(8, [0], [0, 2]), (5, [0, 3], [0, 2, 5]), (4, [0, 2, 4], [0, 2, 4, 6])],
    (10, 8): [(8, [0, 2], [0]), (5, [0, 2, 5], [0, 3]), (4, [0, 2, 4, 6], [0, 2, 4])],  # the transpose
    # w = 3, b/w = 0.667, 0.333, ...: Wd = 1; l = 2: side 2, wl2 = 0, lefts b = 1.5: 0, 1, 3; tops b = 1: 0, 1;
    # l = 3: side 1, wl2 = floor(-0.5) = -1, lefts b = 4/3: floor(-1 + i 4/3) + 1 = 0, 1, 2, 4 (never 3)
    (3, 5): [(3, [0], [0, 2]), (2, [0, 1], [0, 1, 3]), (1, [0, 1, 2], [0, 1, 2, 4])],
    # w = 2: l = 2: side 1, wl2 = -1, b = 1: 0, 1; l = 3: side 1, b = 0.5: floor(-1), floor(-0.5), floor(0)
    # plus 1 = 0, 0, 1: the square (0, 0) four times, kept as the reference codes keep it
    (2, 2): [(2, [0], [0]), (1, [0, 1], [0, 1]), (1, [0, 0, 1], [0, 0, 1])],
    # w = 1: levels 2 and 3 have side floor(2/3) = floor(2/4) = 0: no region
    (1, 1): [(1, [0], [0]), None, None],
    # w = 12, b/w = 1/3, ...: Wd = 1; l = 1: side 12, wl2 = 5, b = 4: 0, 4; l = 2: side 8, wl2 = 3, lefts
    # b = 4: 0, 4, 8, tops b = 4: 0, 4; l = 3: side 6, wl2 = 2, lefts b = 10/3: 0, 3, 6, 10; tops b = 3
    (12, 16): [(12, [0], [0, 4]), (8, [0, 4], [0, 4, 8]), (6, [0, 3, 6], [0, 3, 6, 10])],
    # w = 5, b = 4, 2, ...: |(25 - 20)/25 - 0.4| = 0.2 and |(25 - 10)/25 - 0.4| = 0.2 tie in real numbers;
    # in doubles 0.6 rounds down and 0.2 up, so 0.6 - 0.4 < 0.4 - 0.2: 3 steps win, Wd = 2 (MATLAB's;
    # cirtorch's float32 picks Wd = 1). l = 1: side 5, wl2 = 1, b = 2: 0, 2, 4; l = 2: side 3, wl2 = 0,
    # lefts b = 2: 0, 2, 4, 6, tops b = 2: 0, 2; l = 3: side 2, wl2 = 0, lefts b = 7/4: 0, 1, 3, 5, 7;
    # tops b = 3/2: 0, 1, 3
    (5, 9): [(5, [0], [0, 2, 4]), (3, [0, 2], [0, 2, 4, 6]), (2, [0, 1, 3], [0, 1, 3, 5, 7])],
    # w = 1, b = 4, 2, 1.33, 1, 0.8, 0.67: |0.6 - b| smallest for 7 steps, Wd = 6; l = 1: side 1, wl2 = -1,
    # b = 4/6: floor(-1 + i 2/3) + 1 = 0, 0, 1, 2, 2, 3, 4 (6 (4/6) and 3 (4/6) round to 4 and 2 exactly);
    # levels 2 and 3: side 0
    (1, 5): [(1, [0], [0, 0, 1, 2, 2, 3, 4]), None, None],
}


def expand(grid):
    return [(top, left, side, side) for level in grid if level for side, tops, lefts in [level]
            for top in tops for left in lefts]


@pytest.mark.parametrize("size", list(HAND_GRIDS), ids=lambda s: f"{s[0]}x{s[1]}")
def test_rmac_regions_are_the_hand_worked_grids(size):
    regions = P.rmac_regions(*size)
    assert regions.dtype == torch.int64 and regions.shape[1] == 4
    assert [tuple(r) for r in regions.tolist()] == expand(HAND_GRIDS[size])
    counts = [0 if level is None else len(level[1]) * len(level[2]) for level in HAND_GRIDS[size]]
    assert P.regions_per_level(*size) == counts


def test_rmac_regions_of_more_levels_and_of_one_level():
    # 7x7, level 4: side floor(14/5) = 2, wl2 = 0, b = 5/3: 0, 1, 3, 5; level 5: floor(14/6) = 2, b = 5/4:
    # 0, 1, 2, 3, 5
    assert P.regions_per_level(7, 7, levels=5) == [1, 4, 9, 16, 25]
    level4 = P.rmac_regions(7, 7, levels=4)[14:]
    assert sorted({r[1] for r in level4.tolist()}) == [0, 1, 3, 5] and {r[2] for r in level4.tolist()} == {2}
    level5 = P.rmac_regions(7, 7, levels=5)[30:]
    assert sorted({r[1] for r in level5.tolist()}) == [0, 1, 2, 3, 5]
    assert P.rmac_regions(8, 10, levels=1).tolist() == [[0, 0, 8, 8], [0, 2, 8, 8]]


def exact_extras(height, width):
    """The counts 1..6 of extra regions along the long side whose |1 - b/w - 0.4| is smallest, in exact
    rational arithmetic (more than one where they tie)."""
    w, long = min(height, width), max(height, width)
    gaps = [abs(1 - Fraction(long - w, (steps - 1) * w) - Fraction(2, 5)) for steps in range(2, 8)]
    return {i + 1 for i, gap in enumerate(gaps) if gap == min(gaps)}


def exact_counts(height, width, extra):
    """Regions per level for ``extra`` regions along the long side: (l + Wd)(l + Hd), 0 where the side is 0."""
    w, extra_w, extra_h = min(height, width), extra * (height < width), extra * (height > width)
    return [(level + extra_w) * (level + extra_h) if 2 * w // (level + 1) else 0 for level in (1, 2, 3)]


def exact_offsets(size, side, count):
    half = math.floor(Fraction(side, 2) - 1)
    step = Fraction(0) if count == 1 else Fraction(size - side, count - 1)
    return [math.floor(half + i * step) - half for i in range(count)]


def test_rmac_grid_properties_and_the_exact_arithmetic_for_every_size_up_to_40():
    for height in range(1, 41):
        for width in range(1, 41):
            regions = P.rmac_regions(height, width).tolist()
            counts = P.regions_per_level(height, width)
            assert len(regions) == sum(counts) >= 1
            # the extra count the grid used: one of the exact minima, the one whose (l + Wd)(l + Hd) it has
            fits = [e for e in exact_extras(height, width) if counts == exact_counts(height, width, e)]
            assert fits, (height, width, counts)
            extra_w, extra_h = fits[0] * (height < width), fits[0] * (height > width)
            w, start = min(height, width), 0
            for level, count in zip((1, 2, 3), counts):
                side = 2 * w // (level + 1)
                rows = regions[start:start + count]
                start += count
                assert all(r[2] == r[3] == side for r in rows)
                assert all(0 <= t and 0 <= l and t + s <= height and l + s2 <= width for t, l, s, s2 in rows)
                if side:  # up to 40, doubles floor as exact arithmetic does but at ties (checked above)
                    expected = [(t, l, side, side) for t in exact_offsets(height, side, level + extra_h)
                                for l in exact_offsets(width, side, level + extra_w)]
                    assert [tuple(r) for r in rows] == expected, (height, width, level)
                    assert rows[0][:2] == [0, 0] and rows[-1][:2] == [height - side, width - side]
            if height == width:
                assert regions[0] == [0, 0, height, width]


def test_rmac_regions_refuse_bad_arguments():
    with pytest.raises(ValueError, match="levels must be at least 1; got 0"):
        P.rmac_regions(7, 7, levels=0)
    with pytest.raises(ValueError, match="height must be at least 1"):
        P.rmac_regions(0, 7)
    with pytest.raises(TypeError, match="width must be an integer"):
        P.rmac_regions(7, 7.5)
    with pytest.raises(ValueError, match="overlap"):
        P.regions_per_level(7, 7, overlap=1.2)


# -- regional MAC and R-MAC --------------------------------------------------------------------------


def test_regional_mac_is_each_regions_maximum():
    x = seeded_maps(3, 4, 8, 10, seed=7)
    regions = [(0, 0, 8, 8), (3, 5, 5, 5), (2, 1, 1, 3), (7, 9, 1, 1)]
    out = P.regional_mac(x, regions)
    assert out.shape == (3, 4, 4)
    for n in range(3):
        for r, (top, left, h, w) in enumerate(regions):
            for k in range(4):
                expected = max(x[n, k, i, j].item() for i in range(top, top + h) for j in range(left, left + w))
                assert out[n, r, k].item() == expected
    with pytest.raises(ValueError, match="inside the 8x10 map"):
        P.regional_mac(x, [(4, 0, 5, 5)])
    with pytest.raises(ValueError, match=r"\(R, 4\)"):
        P.regional_mac(x, torch.zeros(2, 3, dtype=torch.long))


def brute_force_rmac(x: np.ndarray, regions, whiten=None, whole=False) -> np.ndarray:
    """Per image, per region: MAC, l2, whiten (a function of one vector, returning it l2-normalised), l2;
    sum; l2."""
    out = []
    for image in x:
        channels, height, width = image.shape
        boxes = ([(0, 0, height, width)] if whole else []) + list(regions)
        total = 0
        for top, left, h, w in boxes:
            v = np.array([image[k, top:top + h, left:left + w].max() for k in range(channels)])
            v = v / (np.linalg.norm(v) + 1e-6)
            if whiten is not None:
                v = whiten(v)
                v = v / (np.linalg.norm(v) + 1e-6)
            total = total + v
        out.append(total / (np.linalg.norm(total) + 1e-6))
    return np.array(out)


def test_rmac_is_the_brute_force_loop_in_both_variants_and_with_a_whitening():
    x = seeded_maps(3, 6, 8, 10, seed=8)
    regions = expand(HAND_GRIDS[(8, 10)])
    np.testing.assert_allclose(P.rmac(x).numpy(), brute_force_rmac(x.numpy(), regions), rtol=1e-12)
    np.testing.assert_allclose(P.rmac(x, include_whole=True).numpy(),
                               brute_force_rmac(x.numpy(), regions, whole=True), rtol=1e-12)
    # any callable on (M, K) rows that returns l2-normalised rows: here a shift and a projection to 4-D
    g = torch.Generator().manual_seed(9)
    shift, matrix = torch.rand(6, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    whitened = P.rmac(x, whitening=lambda rows: P.l2n((rows - shift) @ matrix))
    assert whitened.shape == (3, 4)
    def whiten(v):
        w = (v - shift.numpy()) @ matrix.numpy()
        return w / (np.linalg.norm(w) + 1e-6)

    expected = brute_force_rmac(x.numpy(), regions, whiten=whiten)
    np.testing.assert_allclose(whitened.numpy(), expected, rtol=1e-12)
    # a square map: level 1 is the whole map, so cirtorch's variant counts it twice
    square = seeded_maps(2, 5, 7, 7, seed=10)
    np.testing.assert_allclose(P.rmac(square, include_whole=True).numpy(),
                               brute_force_rmac(square.numpy(), expand(HAND_GRIDS[(7, 7)]), whole=True), rtol=1e-12)


def test_rmac_is_unit_norm_and_ignores_the_scale_of_the_maps():
    x = seeded_maps(4, 16, 5, 9, seed=11)
    v = P.rmac(x, levels=2)
    np.testing.assert_allclose(v.norm(dim=1).numpy(), 1, atol=1e-6)
    torch.testing.assert_close(P.rmac(7.0 * x, levels=2), v)
    with pytest.raises(TypeError, match="whitening must be None or a callable"):
        P.rmac(x, whitening="pca")


@pytest.mark.gpu
def test_poolings_run_on_cuda_and_agree_with_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = seeded_maps(4, 32, 8, 10, seed=12, dtype=torch.float32)
    cuda = x.cuda()
    p = torch.full((32,), 3.0, device="cuda", requires_grad=True)
    for name, pool in (("mac", P.mac), ("spoc", P.spoc), ("gem", lambda t: P.gem(t, p.to(t.device))),
                       ("rmac", P.rmac), ("rmac whole", lambda t: P.rmac(t, include_whole=True))):
        out = pool(cuda)
        assert out.device.type == "cuda", name
        torch.testing.assert_close(out.cpu(), pool(x).detach(), rtol=1e-5, atol=1e-6, msg=name)
    P.gem(cuda, p).sum().backward()
    assert p.grad.device.type == "cuda" and torch.isfinite(p.grad).all()
