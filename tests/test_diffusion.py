"""coursekit.graphs.diffusion against dense solves, Zhou's iteration, scipy's dense eigh, brute-force
loops and the properties of the reference (§4.3, §5.2)."""

import numpy as np
import pytest
import torch

from coursekit.data.samples import moons
from coursekit.graphs import diffusion as F
from coursekit.graphs import knn


def random_graph(n, seed, density=0.2):
    gen = np.random.default_rng(seed)
    upper = np.triu((gen.random((n, n)) < density) * gen.uniform(0.1, 1, (n, n)), 1)
    upper[np.arange(n - 1), np.arange(1, n)] = 0.5  # a path: connected
    A = upper + upper.T
    d = A.sum(1)
    return A, A / np.sqrt(np.outer(d, d))


def test_transfer_is_the_filter_of_the_regularised_inverse():
    assert F.transfer(1.0, 0.99) == pytest.approx(1.0)
    assert F.transfer(-1.0, 0.99) == pytest.approx(0.01 / 1.99)
    _, W = random_graph(12, 0)
    values, vectors = np.linalg.eigh(W)
    h_of_W = vectors @ np.diag(F.transfer(values, 0.9)) @ vectors.T
    assert np.allclose(h_of_W, 0.1 * np.linalg.inv(np.eye(12) - 0.9 * W), atol=1e-12)


def test_query_vectors_keep_the_top_kq_summed_similarities_raised_after_the_sum():
    gen = torch.Generator().manual_seed(1)
    database = torch.nn.functional.normalize(torch.randn(30, 5, generator=gen, dtype=torch.float64), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(3, 5, generator=gen, dtype=torch.float64), dim=1)
    y = F.query_vectors(queries, database, k_q=4, gamma=3)
    assert y.shape == (30, 3)
    for q in range(3):
        s = (database @ queries[q]).numpy()
        top = np.argsort(-s)[:4]
        expected = np.zeros(30)
        expected[top] = np.maximum(s[top], 0) ** 3
        assert np.allclose(y[:, q].numpy(), expected, atol=1e-15)
    regions = [queries[:2], queries[2:]]
    y_regional = F.query_vectors(regions, database, k_q=5, gamma=3)
    summed = (database @ queries[:2].T).sum(1).numpy()
    top = np.argsort(-summed)[:5]
    expected = np.zeros(30)
    expected[top] = np.maximum(summed[top], 0) ** 3  # the power after the sum
    assert np.allclose(y_regional[:, 0].numpy(), expected, atol=1e-15)
    with pytest.raises(ValueError, match="k_q"):
        F.query_vectors(queries, database, k_q=31)


def test_diffusion_solves_the_system_and_is_the_limit_of_zhous_iteration():
    _, W = random_graph(40, 2)
    y = np.zeros((40, 2))
    y[[3, 7], 0] = [1.0, 0.5]
    y[20, 1] = 1.0
    x = F.diffusion(torch.tensor(W).to_sparse(), torch.tensor(y), alpha=0.9, tol=1e-12, max_iterations=500).numpy()
    L = (np.eye(40) - 0.9 * W) / 0.1
    assert np.allclose(x, np.linalg.solve(L, y), atol=1e-9)
    f = y.copy()
    for _ in range(5000):  # f <- alpha W f + (1 - alpha) y
        f = 0.9 * W @ f + 0.1 * y
    assert np.allclose(x, f, atol=1e-9)
    assert (x >= -1e-12).all()  # non-negative for y >= 0
    x_sum = F.diffusion(torch.tensor(W), torch.tensor(y.sum(1)), alpha=0.9, tol=1e-12, max_iterations=500).numpy()
    assert np.allclose(x_sum, x.sum(1), atol=1e-9)  # linear in y


def test_gmp_weights_solve_each_images_regularised_gram_system():
    gen = torch.Generator().manual_seed(3)
    descriptors = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    image = torch.tensor([2, 0, 0, 2, 1, 2, 0, 0, 2])
    w = F.gmp_weights(descriptors, image, lam=1.0)
    for n in range(3):
        rows = torch.nonzero(image == n).flatten()
        V = descriptors[rows].numpy().T  # (d, r): regions as columns
        expected = np.linalg.solve(V.T @ V + np.eye(len(rows)), np.ones(len(rows)))
        assert np.allclose(w[rows].numpy(), expected, atol=1e-12)
        # GMP: the pooled vector V w has the same dot product with every region, up to the regulariser
        pooled = V @ expected
        assert np.allclose(V.T @ pooled + expected, np.ones(len(rows)), atol=1e-12)


def test_pool_to_images_sums_each_images_weighted_regions():
    scores = torch.arange(12.0).reshape(6, 2)
    image = torch.tensor([0, 0, 1, 3, 3, 3])
    weights = torch.tensor([1.0, 2.0, 1.0, 0.5, 0.5, 1.0])
    out = F.pool_to_images(scores, image, 4, weights)
    expected = np.zeros((4, 2))
    for r in range(6):
        expected[int(image[r])] += float(weights[r]) * scores[r].numpy()
    assert np.allclose(out.numpy(), expected)


def test_truncated_diffusion_is_diffusion_on_the_renormalised_subgraph():
    A, _ = random_graph(30, 4)
    keep = np.array([0, 1, 2, 5, 8, 13, 21, 29])
    sub = A[np.ix_(keep, keep)]
    d = sub.sum(1)
    W_sub = np.where(np.outer(d, d) > 0, sub / np.sqrt(np.maximum(np.outer(d, d), 1e-300)), 0)
    y = np.zeros(30)
    y[[1, 5]] = 1.0
    x = F.truncated_diffusion(torch.tensor(A).to_sparse(), torch.tensor(y), torch.tensor(keep), alpha=0.9, tol=1e-12,
                              max_iterations=200).numpy()
    expected = np.zeros(30)
    expected[keep] = np.linalg.solve((np.eye(len(keep)) - 0.9 * W_sub) / 0.1, y[keep])
    assert np.allclose(x, expected, atol=1e-9)


def test_spectral_basis_against_dense_eigh_and_the_full_rank_identity():
    _, W = random_graph(60, 5, density=0.1)
    values, vectors = F.spectral_basis(torch.tensor(W).to_sparse(), 8)
    dense_values, dense_vectors = np.linalg.eigh(W)
    assert np.allclose(values.numpy(), dense_values[::-1][:8], atol=1e-9)
    for j in range(8):  # eigenvectors up to sign
        assert abs(abs(float(vectors[:, j] @ torch.tensor(dense_vectors[:, -1 - j]))) - 1) < 1e-6
    assert abs(float(values[0]) - 1.0) < 1e-9  # connected: the eigenvalue 1, once
    full_values, full_vectors = F.spectral_basis(torch.tensor(W), 60)
    y = torch.zeros(60, dtype=torch.float64)
    y[[4, 9]] = 1.0
    exact = np.linalg.solve((np.eye(60) - 0.99 * W) / 0.01, y.numpy())
    assert np.allclose(F.spectral_ranking(full_values, full_vectors, y, 0.99).numpy(), exact, atol=1e-9)


def test_the_embeddings_dot_products_are_the_low_rank_ranking_for_every_rank():
    _, W = random_graph(50, 6, density=0.15)
    y = torch.zeros(50, 2, dtype=torch.float64)
    y[3, 0], y[30, 1], y[31, 1] = 1.0, 0.7, 0.2
    for rank in (1, 5, 20, 50):
        values, vectors = F.spectral_basis(torch.tensor(W), rank)
        E = F.spectral_embedding(values, vectors, 0.99)
        assert torch.allclose(E @ (E.T @ y), F.spectral_ranking(values, vectors, y, 0.99), atol=1e-12)


def test_diffusion_stays_on_the_querys_moon_where_euclidean_ranking_spills():
    X, labels = moons(100, 3, noise=0.03, seed=0)
    points = torch.tensor(X)
    query = int(np.argmax(np.where(labels == 0, X[:, 0], -np.inf)))  # the right tip of moon 0
    # a Gaussian-kernel similarity as the affinity, on the reciprocal 10-NN graph of the points
    d2 = torch.cdist(points, points).square()
    similarity = torch.exp(-d2 / (2 * 0.1**2))
    _, idx = torch.topk(similarity - 2 * torch.eye(len(X), dtype=torch.float64), 10, dim=1)
    chosen = torch.zeros_like(similarity, dtype=torch.bool).scatter_(1, idx, True)
    A = torch.where(chosen & chosen.T, similarity.pow(3), 0)
    W = knn.symmetric_normalise(A)
    y = torch.zeros(len(X), dtype=torch.float64)
    y[query] = 1.0
    x = F.diffusion(W, y, 0.99, tol=1e-10, max_iterations=500)
    top_diffusion = torch.argsort(x, descending=True)[:100].numpy()
    top_euclidean = torch.argsort(d2[query])[:100].numpy()
    on_moon_diffusion = (labels[top_diffusion] == 0).mean()
    on_moon_euclidean = (labels[top_euclidean] == 0).mean()
    assert on_moon_diffusion > 0.9 and on_moon_diffusion > on_moon_euclidean + 0.2
