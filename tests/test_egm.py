"""coursekit.graphs.egm (stage 08) against numerical integration, closed forms, hand-computed cases, a
brute-force purge walk, an independent numpy EM and the paper's Figure 1 setting."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.integrate
import torch
from scipy.special import logsumexp

from coursekit.graphs import egm as E


def random_mixture(rng, m, d, box=1.0, tied_weights=False):
    means = rng.uniform(0, box, (m, d))
    variances = rng.uniform(0.02, 0.2, m) * box**2
    weights = rng.integers(1, 4, m).astype(float) if tied_weights else rng.uniform(0.1, 1, m)
    return means, variances, weights / weights.sum()


def density(x, mean, variance, weight):
    """``pi N(x | mu, var I)`` at the rows of ``x (..., d)``, written out."""
    d = len(mean)
    return weight * (2 * math.pi * variance) ** (-d / 2) * np.exp(-((x - mean) ** 2).sum(-1) / (2 * variance))


# -- overlaps and self-responsibility ----------------------------------------------------------------


def test_overlaps_are_the_integral_of_the_product_in_1d():
    rng = np.random.default_rng(0)
    means, variances, weights = random_mixture(rng, 4, 1)
    overlaps = E.gaussian_overlaps(means, variances, weights)
    assert isinstance(overlaps, np.ndarray) and overlaps.shape == (4, 4) and overlaps.dtype == np.float64
    for i, k in itertools.product(range(4), repeat=2):
        value, _ = scipy.integrate.quad(lambda t: density(np.array([t]), means[i], variances[i], weights[i])
                                        * density(np.array([t]), means[k], variances[k], weights[k]),
                                        -5, 6, epsabs=1e-13, epsrel=1e-11, limit=200)
        assert overlaps[i, k] == pytest.approx(value, rel=1e-8), (i, k)


@pytest.mark.parametrize("d, step", [(2, 0.01), (3, 0.02)])
def test_overlaps_are_the_integral_of_the_product_on_a_fine_grid(d, step):
    rng = np.random.default_rng(d)
    means, variances, weights = random_mixture(rng, 3, d)
    axis = np.arange(-1.5, 2.5, step) + step / 2
    grid = np.stack(np.meshgrid(*[axis] * d, indexing="ij"), axis=-1).reshape(-1, d)
    values = np.stack([density(grid, means[k], variances[k], weights[k]) for k in range(3)])
    numeric = values @ values.T * step**d  # the midpoint rule: spectrally accurate for Gaussians well inside
    np.testing.assert_allclose(E.gaussian_overlaps(means, variances, weights), numeric, rtol=1e-7)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_the_self_overlap_is_the_closed_form(d):
    rng = np.random.default_rng(10 + d)
    means, variances, weights = random_mixture(rng, 5, d)
    overlaps = E.gaussian_overlaps(means, variances, weights)
    np.testing.assert_allclose(np.diag(overlaps), weights**2 * (4 * math.pi * variances) ** (-d / 2), rtol=1e-13)
    np.testing.assert_allclose(overlaps, overlaps.T, rtol=1e-13)
    # batched over a leading dimension, torch in and out
    batch = E.gaussian_overlaps(torch.tensor(np.stack([means, means[::-1]])),
                                torch.tensor(np.stack([variances, variances[::-1]])),
                                torch.tensor(np.stack([weights, weights[::-1]])))
    assert isinstance(batch, torch.Tensor) and batch.shape == (2, 5, 5)
    np.testing.assert_allclose(batch[1].numpy(), overlaps[::-1, ::-1], rtol=1e-13)


def test_self_responsibility_by_hand():
    overlaps = np.array([[4.0, 1.0, 2.0], [1.0, 9.0, 3.0], [2.0, 3.0, 16.0]])
    assert E.self_responsibility(overlaps, 2, np.array([True, True, False])) == pytest.approx(16 / 21)
    assert E.self_responsibility(overlaps, 2, np.array([False, True, True])) == pytest.approx(16 / 19)  # not itself
    assert E.self_responsibility(overlaps, 0, np.array([False, False, False])) == 1.0
    assert E.self_responsibility(torch.tensor(overlaps), 1, torch.tensor([True, False, True])) == pytest.approx(9 / 13)


# -- the P-step ---------------------------------------------------------------------------------------


def brute_force_purge(means, variances, weights, alive, tau):
    """The greedy walk written out: alive components by decreasing weight, ties by lower index; keep
    ``i`` iff ``O_ii / (O_ii + sum over kept O_ij) >= tau``, every overlap from its formula."""
    m, d = means.shape

    def overlap(i, j):
        s = variances[i] + variances[j]
        squared = sum((means[i][c] - means[j][c]) ** 2 for c in range(d))
        return weights[i] * weights[j] * (2 * math.pi * s) ** (-d / 2) * math.exp(-squared / (2 * s))

    kept = []
    for i in sorted((k for k in range(m) if alive[k]), key=lambda k: (-weights[k], k)):
        own = overlap(i, i)
        if own / (own + sum(overlap(i, j) for j in kept)) >= tau:
            kept.append(i)
    return np.isin(np.arange(m), kept)


def test_purge_is_the_brute_force_walk_on_random_mixtures_with_ties():
    walked = 0
    for seed in range(60):
        rng = np.random.default_rng(100 + seed)
        m, d = int(rng.integers(2, 12)), int(rng.integers(1, 4))
        means, variances, weights = random_mixture(rng, m, d, tied_weights=seed % 2 == 0)
        alive = rng.random(m) < 0.85
        for tau in (0.2, 0.5, 0.75, 0.9):
            expected = brute_force_purge(means, variances, weights, alive, tau)
            kept = E.purge(means, variances, weights, tau, alive=alive)
            assert kept.dtype == bool and kept.shape == (m,)
            np.testing.assert_array_equal(kept, expected, err_msg=f"seed {seed}, tau {tau}")
            walked += int(expected.sum() < alive.sum())
    assert walked > 50  # the walks did purge


def test_purge_batched_rows_are_each_rows_walk():
    rng = np.random.default_rng(7)
    parts = [random_mixture(rng, 9, 2, tied_weights=True) for _ in range(5)]
    means, variances, weights = (np.stack(p) for p in zip(*parts))
    alive = rng.random((5, 9)) < 0.8
    alive[3] = False  # a row with nothing alive
    kept = E.purge(torch.tensor(means), torch.tensor(variances), torch.tensor(weights), 0.6, alive=torch.tensor(alive))
    assert isinstance(kept, torch.Tensor) and kept.shape == (5, 9)
    for b in range(5):
        expected = brute_force_purge(means[b], variances[b], weights[b], alive[b], 0.6)
        np.testing.assert_array_equal(kept[b].numpy(), expected, err_msg=f"row {b}")
    assert not kept[3].any()


def test_the_heaviest_is_never_purged_and_the_extremes_of_tau():
    for seed in range(20):
        rng = np.random.default_rng(200 + seed)
        means, variances, weights = random_mixture(rng, 10, 2, box=0.3)  # crowded: much overlap
        heaviest = int(np.argmax(weights))
        for tau in (0.3, 0.75, 1.0):
            assert E.purge(means, variances, weights, tau)[heaviest]
        assert E.purge(means, variances, weights, 1e-9).all()  # a tiny tau keeps everything
    # coinciding components: only the heaviest survives any tau > 1/2 ...
    means = np.tile([[0.3, 0.7]], (5, 1))
    variances = np.full(5, 0.01)
    weights = np.array([0.1, 0.3, 0.2, 0.25, 0.15])
    np.testing.assert_array_equal(E.purge(means, variances, weights, 0.5), [False, True, False, False, False])
    # ... and with equal weights, the m-th visited has rho = 1/m: tau = 1/2 keeps the first two by index
    equal = np.full(5, 0.2)
    np.testing.assert_array_equal(E.purge(means, variances, equal, 0.5), [True, True, False, False, False])
    np.testing.assert_array_equal(E.purge(means, variances, equal, 0.34), [True, True, False, False, False])
    np.testing.assert_array_equal(E.purge(means, variances, equal, 0.33), [True, True, True, False, False])
    np.testing.assert_array_equal(E.purge(means, variances, equal, 0.51), [True, False, False, False, False])


# -- E- and M-steps -----------------------------------------------------------------------------------


def test_responsibilities_are_the_normalised_densities_and_survive_underflow():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (40, 2))
    means, variances, weights = random_mixture(rng, 6, 2)
    alive = np.array([True, False, True, True, False, True])
    g = E.e_step(x, means, variances, weights, alive=alive)
    dens = np.stack([density(x, means[k], variances[k], weights[k]) * alive[k] for k in range(6)], axis=1)
    np.testing.assert_allclose(g, dens / dens.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(g.sum(1), 1, rtol=1e-13)
    assert np.all(g[:, ~alive] == 0)
    # far from both components every density underflows; the log domain still gives the ratio
    far = np.array([[100.0, 0.0]])
    two = E.e_step(far, np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([0.01, 0.01]), np.array([0.5, 0.5]))
    assert density(far, np.zeros(2), 0.01, 0.5)[0] == 0
    log_ratio = (100.0**2 - 99.0**2) / (2 * 0.01)  # log g_1 / g_0
    np.testing.assert_allclose(two, [[math.exp(-log_ratio), 1.0]], atol=1e-300)
    # batched: each map its own components
    batch = E.e_step(torch.tensor(x), torch.tensor(np.stack([means, means])), torch.tensor(np.stack([variances] * 2)),
                     torch.tensor(np.stack([weights] * 2)), alive=torch.tensor(np.stack([alive, np.ones(6, bool)])))
    np.testing.assert_allclose(batch[0].numpy(), g, rtol=1e-12)
    np.testing.assert_allclose(batch[1].sum(1).numpy(), 1, rtol=1e-13)


def test_the_expanding_variance_is_the_ml_variance_plus_the_squared_move():
    rng = np.random.default_rng(4)
    for d in (1, 2, 12):  # 12: beyond the coordinate-by-coordinate distances
        x = rng.normal(size=(60, d))
        g = rng.dirichlet(np.ones(7), size=60)
        previous = rng.normal(size=(7, d))
        w = rng.uniform(0.2, 3, 60)
        weights, means, expanded = E.m_step(x, g, previous, point_weights=w, expand=True)
        weights_ml, means_ml, ml = E.m_step(x, g, previous, point_weights=w, expand=False)
        np.testing.assert_allclose(means, means_ml, rtol=1e-13)
        np.testing.assert_allclose(weights, (w[:, None] * g).sum(0) / w.sum(), rtol=1e-13)
        np.testing.assert_allclose(means, (w[:, None] * g).T @ x / (w[:, None] * g).sum(0)[:, None], rtol=1e-12)
        np.testing.assert_allclose(expanded, ml + ((means - previous) ** 2).sum(1) / d, rtol=1e-12)
        assert np.all(expanded >= ml)


def test_integer_point_weights_are_repeated_points_and_empty_components_keep_their_values():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 3))
    g = rng.dirichlet(np.ones(4), size=30)
    g[:, 2] = 0  # a component nothing is assigned to
    g /= g.sum(1, keepdims=True)
    counts = rng.integers(0, 4, 30)
    previous = rng.normal(size=(4, 3))
    prev_var = np.array([0.1, 0.2, 0.3, 0.4])
    for expand in (True, False):
        weighted = E.m_step(x, g, previous, point_weights=counts.astype(float), expand=expand,
                            previous_variances=prev_var)
        repeated = E.m_step(np.repeat(x, counts, axis=0), np.repeat(g, counts, axis=0), previous, expand=expand,
                            previous_variances=prev_var)
        for a, b in zip(weighted, repeated):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        weights, means, variances = weighted
        assert weights[2] == 0 and np.array_equal(means[2], previous[2]) and variances[2] == 0.3


# -- EGM on points ------------------------------------------------------------------------------------


def plain_em(x, means, variances, weights, floor, iterations):
    """Textbook EM for an isotropic GMM in numpy (log-domain E-step, ML M-step, the variance floor)."""
    n, d = x.shape
    steps = []
    for _ in range(iterations):
        squared = ((x[:, None, :] - means[None]) ** 2).sum(-1)
        log = np.log(weights) - 0.5 * d * np.log(2 * np.pi * variances) - squared / (2 * variances)
        g = np.exp(log - logsumexp(log, axis=1, keepdims=True))
        nk = g.sum(0)
        means = g.T @ x / nk[:, None]
        variances = np.maximum((g * ((x[:, None, :] - means[None]) ** 2).sum(-1)).sum(0) / (d * nk), floor)
        weights = nk / n
        steps.append((means, variances, weights))
    return steps


@pytest.mark.parametrize("d", [2, 3])
def test_without_purge_and_expansion_egm_is_plain_em(d):
    rng = np.random.default_rng(20 + d)
    centres = rng.uniform(0, 4, (3, d))
    x = centres[rng.integers(0, 3, 200)] + 0.5 * rng.normal(size=(200, d))
    start = x[rng.choice(200, 6, replace=False)]
    sigma0 = 0.3
    result = E.egm(x, start, sigma0, purge=False, expand=False, iterations=8, tol=0.0, history=True)
    expected = plain_em(x, start, np.full(6, sigma0**2), np.full(6, 1 / 6), (0.1 * sigma0) ** 2, 8)
    assert result.iterations == 8 and len(result.history) == 9
    np.testing.assert_allclose(result.history[0].means, start)
    for t, (means, variances, weights) in enumerate(expected, start=1):
        step = result.history[t]
        assert step.alive.all()
        np.testing.assert_allclose(step.means, means, rtol=1e-10, atol=1e-12, err_msg=f"iteration {t}")
        np.testing.assert_allclose(step.variances, variances, rtol=1e-10, err_msg=f"iteration {t}")
        np.testing.assert_allclose(step.weights, weights, rtol=1e-10, err_msg=f"iteration {t}")


def numpy_egm(x, means, sigma0, tau, iterations, point_weights):
    """EGM written out in numpy: log-domain E-step, weighted M-step with the variance about the previous
    means, the floor (0.1 sigma0)^2, then the brute-force purge and the weights renormalised."""
    n, d = x.shape
    variances, weights = np.full(len(means), sigma0**2), np.full(len(means), 1 / len(means))
    alive = np.ones(len(means), bool)
    steps = []
    for _ in range(iterations):
        squared = ((x[:, None, :] - means[None]) ** 2).sum(-1)
        with np.errstate(divide="ignore"):
            log = np.log(weights) - 0.5 * d * np.log(2 * np.pi * variances) - squared / (2 * variances)
        log[:, ~alive] = -np.inf
        g = np.exp(log - logsumexp(log, axis=1, keepdims=True))
        wg = point_weights[:, None] * g
        nk = wg.sum(0)
        new_means = np.where(alive[:, None], wg.T @ x / np.where(alive, nk, 1)[:, None], means)
        spread = (wg * squared).sum(0) / (d * np.where(alive, nk, 1))
        variances = np.where(alive, np.maximum(spread, (0.1 * sigma0) ** 2), variances)
        means = new_means
        alive = brute_force_purge(means, variances, nk / point_weights.sum(), alive, tau)
        weights = np.where(alive, nk, 0) / nk[alive].sum()
        steps.append((means, variances, weights, alive))
    return steps


def test_egm_is_the_numpy_egm_iteration_by_iteration():
    rng = np.random.default_rng(30)
    centres = rng.uniform(0, 3, (4, 2))
    x = centres[rng.integers(0, 4, 150)] + 0.3 * rng.normal(size=(150, 2))
    w = rng.uniform(0.5, 2.0, 150)
    start = x[rng.choice(150, 25, replace=False)]
    result = E.egm(x, start, 0.1, tau=0.7, iterations=6, point_weights=w, tol=0.0, history=True)
    expected = numpy_egm(x, start, 0.1, 0.7, 6, w)
    assert sum(alive.sum() < 25 for *_, alive in expected) >= 3  # the purges did happen
    for t, (means, variances, weights, alive) in enumerate(expected, start=1):
        step = result.history[t]
        np.testing.assert_array_equal(step.alive, alive, err_msg=f"iteration {t}")
        for name, got, want in (("means", step.means, means), ("variances", step.variances, variances),
                                ("weights", step.weights, weights)):
            np.testing.assert_allclose(got[alive], want[alive], rtol=1e-10, atol=1e-13,
                                       err_msg=f"{name}, iteration {t}")


def test_mass_is_conserved_after_every_iteration():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 2)) * [1.0, 0.5]
    w = rng.uniform(0.5, 2, 300)
    result = E.egm(x, x[:60], 0.1, point_weights=w, iterations=12, tol=0.0, history=True)
    assert len(result.history) == result.iterations + 1 == 13
    sizes = [int(step.alive.sum()) for step in result.history]
    assert sizes[0] == 60 and sizes[-1] < 20 and all(a >= b for a, b in zip(sizes, sizes[1:]))  # purged, never revived
    for step in result.history:
        assert step.weights[step.alive].sum() == pytest.approx(1, abs=1e-12)
        assert np.all(step.weights[~step.alive] == 0) and np.all(step.variances > 0)
    g = E.e_step(x, *result.mixture[:3], alive=result.mixture.alive)
    np.testing.assert_allclose(g.sum(1), 1, rtol=1e-12)


def test_a_component_no_point_reaches_dies_and_keeps_its_values():
    rng = np.random.default_rng(31)
    x = rng.normal(size=(100, 2))
    start = np.vstack([x[:4], [[1e3, 1e3]]])
    for purge in (False, True):
        result = E.egm(x, start, 0.1, purge=purge, expand=False, iterations=3, tol=0.0, history=True)
        first = result.history[1]
        assert first.alive[:4].sum() >= 1 and not first.alive[4]
        assert first.weights[4] == 0 and first.weights.sum() == pytest.approx(1)
        np.testing.assert_array_equal(result.mixture.means[4], [1e3, 1e3])
        assert result.mixture.variances[4] == pytest.approx(0.01)


def test_the_early_stop_needs_an_unchanged_alive_set():
    x = np.array([[0.3, -0.2]])
    # two components on the lone point: neither moves; the lighter-by-index one is purged at iteration 1
    # (rho = 1/2 < tau), so only iteration 2, which changes nothing, ends the run
    result = E.egm(x, np.repeat(x, 2, axis=0), 0.1)
    assert result.iterations == 2
    np.testing.assert_array_equal(result.mixture.alive, [True, False])
    assert result.mixture.variances[0] == pytest.approx(0.1**4)  # the floor (0.1 sigma0)^2


def eight_modes(seed):
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(8) / 8
    centres = 0.5 + 0.35 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    x = centres[rng.integers(0, 8, 800)] + 0.04 * rng.normal(size=(800, 2))
    return centres, x, x[rng.choice(800, 50, replace=False)]


@pytest.mark.parametrize("seed", range(6))
def test_the_papers_figure_1_eight_modes_from_fifty_points(seed):
    centres, x, start = eight_modes(seed)
    found = E.egm(x, start, 0.02).mixture  # the defaults: tau = 0.75, 10 iterations
    means, weights = found.means[found.alive], found.weights[found.alive]
    assert 6 <= len(means) <= 12
    distances = np.sqrt(((centres[:, None] - means[None]) ** 2).sum(-1))
    assert distances.min(1).max() < 0.03  # every mode has a mean near it
    assert distances[:, weights > 0.05].min(0).max() < 0.03  # and every sizeable component is a mode
    assert weights.sum() == pytest.approx(1)
    em = E.egm(x, start, 0.02, purge=False, expand=False).mixture
    assert em.alive.sum() == 50


def test_kinds_and_dtypes_follow_the_points():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(50, 2))
    numpy_result = E.egm(x, x[:10], 0.3)
    assert all(isinstance(p, np.ndarray) for p in numpy_result.mixture)
    assert numpy_result.mixture.means.dtype == np.float64 and numpy_result.mixture.alive.dtype == bool
    torch_result = E.egm(torch.tensor(x, dtype=torch.float32), torch.tensor(x[:10], dtype=torch.float32), 0.3)
    assert torch_result.mixture.means.dtype == torch.float32
    assert torch.equal(torch_result.mixture.alive, torch.tensor(numpy_result.mixture.alive))
    np.testing.assert_allclose(torch_result.mixture.means.numpy(), numpy_result.mixture.means, atol=1e-4)
    assert E.egm(x, x[:10], 0.3, iterations=0).iterations == 0


# -- EGM on maps --------------------------------------------------------------------------------------


def blob_map(height, width, blobs, noise=0.0, seed=0):
    rows, cols = np.mgrid[0:height, 0:width]
    x, y = cols + 0.5, rows + 0.5
    out = sum(a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s)) for cx, cy, s, a in blobs)
    return out + noise * np.random.default_rng(seed).random((height, width))


def test_two_blobs_give_two_components_at_their_centres():
    blobs = [(5.0, 5.0, 1.5, 1.0), (14.0, 9.0, 1.8, 0.8)]
    maps = torch.tensor(np.stack([blob_map(15, 20, blobs), blob_map(15, 20, blobs, noise=0.05, seed=1)]),
                        dtype=torch.float32)
    result = E.egm_maps(maps, relative_threshold=0.1)
    assert result.mixture.means.shape == (2, 300, 2) and result.mixture.means.dtype == torch.float32
    for b in range(2):
        alive = result.mixture.alive[b]
        assert int(alive.sum()) == 2, b
        means = result.mixture.means[b][alive].double().numpy()
        order = np.argsort(means[:, 0])
        np.testing.assert_allclose(means[order], [[5.0, 5.0], [14.0, 9.0]], atol=0.35)
        sigma = result.mixture.variances[b][alive].sqrt().numpy()[order]
        assert np.all(sigma > 1.2) and np.all(sigma < 3.0)
    # the clean map: the blobs' masses, and sigmas that are the blobs' (sampled on whole pixels)
    clean = result.mixture
    weights = clean.weights[0][clean.alive[0]].numpy()
    np.testing.assert_allclose(sorted(weights), sorted([1.5**2 / (1.5**2 + 0.8 * 1.8**2),
                                                        0.8 * 1.8**2 / (1.5**2 + 0.8 * 1.8**2)]), atol=0.02)


def test_a_lone_pixel_is_one_component_at_its_centre_with_the_floor():
    maps = torch.zeros(1, 6, 9)
    maps[0, 3, 7] = 2.0  # row 3, column 7
    mixture = E.egm_maps(maps, sigma0=1.5).mixture
    assert mixture.alive[0].nonzero().flatten().tolist() == [3 * 9 + 7]
    torch.testing.assert_close(mixture.means[0, 34], torch.tensor([7.5, 3.5]))
    assert float(mixture.variances[0, 34]) == pytest.approx((0.1 * 1.5) ** 2)
    assert float(mixture.weights[0, 34]) == 1.0


def test_a_batch_is_each_map_on_its_own_and_zero_maps_have_nothing():
    rng = np.random.default_rng(11)
    maps = []
    for b in range(5):
        blobs = [(rng.uniform(2, 18), rng.uniform(2, 13), rng.uniform(1, 2.5), rng.uniform(0.3, 1)) for _ in range(3)]
        maps.append(blob_map(15, 20, blobs, noise=0.03, seed=b))
    maps[3] = np.zeros((15, 20))
    maps = torch.tensor(np.stack(maps), dtype=torch.float32)
    batch = E.egm_maps(maps, iterations=15, relative_threshold=0.05)
    assert not batch.mixture.alive[3].any() and torch.all(batch.mixture.weights[3] == 0)
    for b in range(5):
        alone = E.egm_maps(maps[b:b + 1], iterations=15, relative_threshold=0.05)
        assert torch.equal(alone.mixture.alive[0], batch.mixture.alive[b]), b
        alive = alone.mixture.alive[0]
        for part in ("means", "variances", "weights"):
            torch.testing.assert_close(getattr(batch.mixture, part)[b][alive], getattr(alone.mixture, part)[0][alive],
                                       rtol=1e-4, atol=1e-4, msg=f"map {b}, {part}")
    zero = E.egm_maps(torch.zeros(1, 8, 10))
    assert zero.iterations == 0 and not zero.mixture.alive.any()
    assert torch.all(E.mixture_boxes(zero.mixture, 10, 8) == 0)


def test_a_map_that_is_done_stays_frozen_while_its_batch_goes_on():
    quick = blob_map(15, 20, [(5.0, 5.0, 1.5, 1.0), (15.0, 10.0, 1.8, 0.8)])  # done while still moving a little
    slow = blob_map(15, 20, [(4.0, 4.0, 1.5, 1.0), (7.0, 5.0, 1.5, 0.9), (15.0, 10.0, 2.5, 0.7)], noise=0.2, seed=4)
    maps = torch.tensor(np.stack([quick, slow]))  # float64: the moves below tol stay visible
    alone = [E.egm_maps(maps[b:b + 1], iterations=40).iterations for b in range(2)]
    assert alone[0] < alone[1] - 2
    batch = E.egm_maps(maps, iterations=40, history=True)
    assert batch.iterations == alone[1]
    frozen = batch.history[alone[0]]
    for step in batch.history[alone[0] + 1:]:
        for part in ("means", "variances", "weights", "alive"):
            assert torch.equal(getattr(step, part)[0], getattr(frozen, part)[0]), part


def test_relative_threshold_drops_the_low_pixels_and_history_holds_mass():
    values = blob_map(8, 10, [(3.0, 4.0, 1.5, 1.0), (8.0, 2.0, 1.0, 0.5)], noise=0.1, seed=3)
    maps = torch.tensor(values[None], dtype=torch.float64)
    for threshold in (0.0, 0.2, 0.6):
        result = E.egm_maps(maps, relative_threshold=threshold, history=True)
        start = result.history[0].alive[0].reshape(8, 10).numpy()
        np.testing.assert_array_equal(start, values > threshold * values.max())
        for step in result.history:
            assert float(step.weights[step.alive].sum()) == pytest.approx(1, abs=1e-12)
        assert result.history[-1] is not result.history[0] and len(result.history) == result.iterations + 1
    assert E.egm_maps(maps, relative_threshold=0.6, history=True).history[0].alive.sum() < 20


# -- boxes and validation -----------------------------------------------------------------------------


def test_mixture_boxes_by_hand():
    mixture = E.Mixture(np.array([[1.0, 1.0], [5.0, 4.0], [9.0, 9.0], [9.5, 5.5]]), np.array([1.0, 0.25, 4.0, 1.0]),
                        np.array([0.4, 0.4, 0.0, 0.2]), np.array([True, True, False, True]))
    boxes = E.mixture_boxes(mixture, width=10, height=6)
    assert isinstance(boxes, np.ndarray) and boxes.shape == (4, 4)
    np.testing.assert_array_equal(boxes, [[0, 0, 3, 3], [4, 3, 6, 5], [0, 0, 0, 0], [7.5, 3.5, 10, 6]])
    wide = E.mixture_boxes(mixture, width=10, height=6, extent=3.0)
    np.testing.assert_array_equal(wide[1], [3.5, 2.5, 6.5, 5.5])
    batched = E.Mixture(*(torch.tensor(np.stack([p, p])) for p in mixture))
    out = E.mixture_boxes(batched, 10, 6)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 4)
    np.testing.assert_array_equal(out[1].numpy(), boxes)


def test_bad_inputs_name_the_argument():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"tau must be in \(0, 1\]; got 1.5"):
        E.egm(x, x, 0.1, tau=1.5)
    with pytest.raises(ValueError, match=r"maps must be .*\(B, H, W\) and non-negative; got .*\(3, 4\)"):
        E.egm_maps(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="maps must be .*non-negative"):
        E.egm_maps(-torch.ones(1, 3, 4))
    with pytest.raises(ValueError, match=r"initial_means must be \(M, 2\).*\(4, 3\)"):
        E.egm(x, np.zeros((4, 3)), 0.1)
    with pytest.raises(ValueError, match="sigma0 must be a positive"):
        E.egm(x, x, 0.0)
    with pytest.raises(ValueError, match=r"point_weights must be \(5,\)"):
        E.egm(x, x, 0.1, point_weights=-np.ones(5))
    with pytest.raises(ValueError, match=r"relative_threshold must be in \[0, 1\); got 1"):
        E.egm_maps(torch.ones(1, 3, 4), relative_threshold=1)
    with pytest.raises(ValueError, match=r"variances must be \(3,\).*got \(2,\)"):
        E.purge(np.zeros((3, 2)), np.ones(2), np.ones(3), 0.5)
    with pytest.raises(ValueError, match=r"alive must be a bool mask of shape \(3,\)"):
        E.purge(np.zeros((3, 2)), np.ones(3), np.ones(3), 0.5, alive=np.ones(3))
    with pytest.raises(ValueError, match="variances must be positive"):
        E.gaussian_overlaps(np.zeros((3, 2)), np.array([1.0, 0.0, 1.0]), np.ones(3))
    with pytest.raises(ValueError, match=r"responsibilities must be \(5, M\)"):
        E.m_step(x, np.ones((4, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="points must be a numpy array or a torch tensor; got list"):
        E.e_step([[0.0, 0.0]], np.zeros((1, 2)), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match=r"i must be a component index in \[0, 2\)"):
        E.self_responsibility(np.eye(2), 2, np.ones(2, bool))


@pytest.mark.gpu
def test_egm_maps_on_cuda_agrees_with_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(12)
    maps = torch.tensor(np.stack([blob_map(15, 20, [(rng.uniform(2, 18), rng.uniform(2, 13), 1.8, 1.0),
                                                    (rng.uniform(2, 18), rng.uniform(2, 13), 1.2, 0.6)],
                                           noise=0.05, seed=b) for b in range(8)]), dtype=torch.float32)
    cpu = E.egm_maps(maps, relative_threshold=0.1).mixture
    cuda = E.egm_maps(maps.cuda(), relative_threshold=0.1).mixture
    assert cuda.means.device.type == "cuda" and cuda.means.dtype == torch.float32
    assert torch.equal(cuda.alive.cpu(), cpu.alive)
    torch.testing.assert_close(cuda.means.cpu()[cpu.alive], cpu.means[cpu.alive], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cuda.weights.cpu(), cpu.weights, rtol=1e-4, atol=1e-5)
