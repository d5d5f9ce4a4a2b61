"""Stage 08's explorers driven headless: EGM stepped through on a mixture of two far-apart blobs, and the
saliency explorer over hand-made maps whose regions and precision are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit.explore.graphs import EGMExplorer, SaliencyExplorer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def blobs():
    gen = np.random.default_rng(0)
    points = np.concatenate([gen.normal((0.2, 0.2), 0.03, (100, 2)), gen.normal((0.8, 0.7), 0.03, (100, 2))])
    return points, points[gen.choice(200, 30, replace=False)]


def test_egm_explorer_steps_from_every_component_to_one_per_blob(blobs):
    points, start = blobs
    explorer = EGMExplorer(points, start, sigma0=0.02, tau=0.75, iterations=8)
    assert explorer.iteration.value == 0 and explorer.alive == 30 and bytes(explorer.image.value).startswith(PNG)
    assert "<b>30</b> components" in explorer.status.value
    updates = explorer.updates
    for _ in range(8):
        explorer.step.click()
    assert explorer.iteration.value == 8 and explorer.updates == updates + 8
    assert explorer.alive == 2
    means = explorer.mixture.means[explorer.mixture.alive]
    truth = np.array([[0.2, 0.2], [0.8, 0.7]])
    assert np.abs(np.sort(means, axis=0) - np.sort(truth, axis=0)).max() < 0.02
    explorer.step.click()  # at the last iteration a click changes nothing
    assert explorer.iteration.value == 8


def test_egm_explorer_reruns_on_tau_and_sigma0(blobs):
    points, start = blobs
    explorer = EGMExplorer(points, start, iterations=6)
    explorer.iteration.value = 6
    many = explorer.alive
    explorer.tau.value = 0.05  # purges almost nothing that overlaps little: at least as many survive
    assert explorer.iteration.value == 6 and explorer.alive >= many
    explorer.tau.value = 0.95
    assert explorer.alive <= many
    before = explorer.updates
    explorer.sigma0.value = 0.1
    assert explorer.updates == before + 1 and "sigma0 0.1" in explorer.status.value
    with pytest.raises(ValueError, match="points"):
        EGMExplorer(points[:, :1], start)


def test_saliency_explorer_finds_the_blob_and_its_precision():
    images = np.zeros((2, 80, 100, 3), dtype=np.uint8)
    rows, cols = np.mgrid[0:8, 0:10] + 0.5
    blob = np.exp(-((cols - 2.5) ** 2 + (rows - 2.5) ** 2) / 1.0)
    maps = {"FS": torch.tensor(np.stack([blob, blob[::-1].copy()]), dtype=torch.float32),
            "uniform": torch.ones(2, 8, 10)}
    truth = [np.array([[0, 0, 50, 40]]), np.array([[50, 40, 100, 80]])]
    explorer = SaliencyExplorer(images, maps, truth, extent=1.0)
    assert bytes(explorer.image.value).startswith(PNG) and len(explorer.regions) == 1
    x0, y0, x1, y1 = explorer.regions[0]
    assert x0 < 2.5 < x1 and y0 < 2.5 < y1 and x1 < 5 and y1 < 5  # one box around the blob, in the top-left quarter
    assert explorer.precision > 0.95  # nearly all the blob's mass is in the top-left quarter
    explorer.map.value = "uniform"
    assert abs(explorer.precision - 0.25) < 1e-6  # a uniform map scores the box's share of the image
    explorer.photo.value = 1
    assert abs(explorer.precision - 0.25) < 1e-6 and "image 1, uniform" in explorer.status.value
    explorer.map.value = "FS"
    assert explorer.precision < 0.05  # the blob is now at the bottom-left: the box at the bottom right misses it
    with pytest.raises(ValueError, match="maps"):
        SaliencyExplorer(images, {"FS": torch.ones(3, 8, 10)})


def test_diffusion_explorer_ranks_along_the_moon_and_redraws_on_its_controls():
    from coursekit.data.samples import moons
    from coursekit.explore.graphs import DiffusionExplorer

    X, labels = moons(60, 3, noise=0.03, seed=0)
    explorer = DiffusionExplorer(X, labels, k=10, top=60)
    euclidean, diffusion = explorer.on_group
    assert diffusion > 0.9 and diffusion > euclidean + 0.2 and bytes(explorer.image.value).startswith(PNG)
    q = explorer.query.value
    assert labels[q] == 0 and X[q, 0] == X[labels == 0, 0].max()  # the right tip of moon 0
    before, held = explorer.updates, explorer.scores[q] / explorer.scores.sum()
    explorer.alpha.value = 0.5  # little diffusion: more of the mass stays on the query itself
    assert explorer.updates == before + 1 and explorer.scores[q] / explorer.scores.sum() > 2 * held
    explorer.k.value = 20
    explorer.gamma.value = 1.0
    assert explorer.updates == before + 3 and "gamma 1" in explorer.status.value


def test_spectral_explorer_error_falls_with_the_rank_to_zero_at_full_rank():
    from coursekit.explore.graphs import SpectralExplorer

    gen = np.random.default_rng(3)
    upper = np.triu((gen.random((40, 40)) < 0.2) * gen.uniform(0.1, 1, (40, 40)), 1)
    upper[np.arange(39), np.arange(1, 40)] = 0.5
    A = upper + upper.T
    d = A.sum(1)
    W = torch.tensor(A / np.sqrt(np.outer(d, d)))
    y = torch.zeros(40, 2, dtype=torch.float64)
    y[5, 0], y[17, 1] = 1.0, 1.0
    explorer = SpectralExplorer(W, y, alpha=0.9, max_rank=40, top=10)
    errors = []
    for rank in (1, 10, 40):
        explorer.rank.value = rank
        errors.append(explorer.error)
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-9 and explorer.overlap == 1.0
    explorer.query.value = 1
    assert "query 1" in explorer.status.value and explorer.error < 1e-9
    with pytest.raises(ValueError, match="y must be"):
        SpectralExplorer(W, torch.zeros(39))
