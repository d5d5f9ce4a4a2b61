"""coursekit.graphs.centrality (stage 08): Katz centrality against the scaled Neumann series and dense
solves, local search against Zhou's iteration, hand cases (regular graphs, isolated nodes) and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg
import torch

from coursekit.graphs import centrality as C

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")  # the tests' own CSR

ISOLATED = (5, 17)


def normalised_graph(n: int = 60, seed: int = 0) -> np.ndarray:
    """``D^-1/2 A D^-1/2`` of a random sparse symmetric non-negative ``A`` whose nodes 5 and 17 are isolated,
    computed here with numpy (isolated rows 0)."""
    rng = np.random.default_rng(seed)
    A = np.triu(rng.uniform(size=(n, n)) * (rng.uniform(size=(n, n)) < 0.12), 1)
    A = A + A.T
    A[ISOLATED, :] = 0
    A[:, ISOLATED] = 0
    degree = A.sum(1)
    scale = np.zeros(n)
    scale[degree > 0] = degree[degree > 0] ** -0.5
    return scale[:, None] * A * scale[None, :]


def laplacian(W: np.ndarray, alpha: float) -> np.ndarray:
    return (np.eye(len(W)) - alpha * W) / (1 - alpha)


def kinds(W: np.ndarray) -> dict:
    dense = torch.from_numpy(W)
    return {"numpy": W, "scipy": scipy.sparse.csr_array(W), "torch dense": dense, "torch coo": dense.to_sparse(),
            "torch csr": dense.to_sparse_csr()}


def test_katz_is_the_scaled_neumann_series_and_the_dense_solve():
    W = normalised_graph()
    ones = np.ones(len(W))
    for alpha in (0.5, 0.9):
        terms = math.ceil(math.log(1e-18) / math.log(alpha))  # alpha^terms below 1e-18
        series, walk = np.zeros(len(W)), ones.copy()
        for _ in range(terms):
            series += walk
            walk = alpha * (W @ walk)
        series *= 1 - alpha
        result = C.katz_centrality(W, alpha, tol=1e-13, max_iterations=500)
        assert result.converged
        np.testing.assert_allclose(result.x, series, rtol=1e-11)
        np.testing.assert_allclose(result.x, (1 - alpha) * np.linalg.solve(np.eye(len(W)) - alpha * W, ones), rtol=1e-11)
        np.testing.assert_allclose(result.x[list(ISOLATED)], 1 - alpha, rtol=1e-13)  # walks of length 0 only


def test_katz_on_a_regular_graph_is_one():
    n = 12
    ring = np.zeros((n, n))
    ring[np.arange(n), (np.arange(n) + 1) % n] = ring[(np.arange(n) + 1) % n, np.arange(n)] = 1
    chords = ring.copy()
    chords[np.arange(n), (np.arange(n) + n // 2) % n] = 1  # each node joined to its opposite: 3-regular
    for A, degree in ((ring, 2), (chords, 3)):
        result = C.katz_centrality(A / degree, alpha=0.99)
        # W 1 = 1, so L 1 = 1: CG's first step lands on it
        assert result.converged and result.iterations == 1
        np.testing.assert_allclose(result.x, 1.0, rtol=1e-12)


def test_katz_at_the_papers_settings_is_scipys_cg():
    W = normalised_graph(seed=1)
    L = laplacian(W, 0.99)
    expected, info = scipy.sparse.linalg.cg(L, np.ones(len(W)), rtol=1e-6, atol=0.0, maxiter=20)
    result = C.katz_centrality(W)  # alpha 0.99, tol 1e-6, 20 iterations
    assert result.converged == (info == 0) and result.iterations <= 20
    np.testing.assert_allclose(result.x, expected, rtol=1e-9)


def test_katz_takes_every_kind_of_graph():
    W = normalised_graph(seed=2)
    expected = 0.2 * np.linalg.solve(np.eye(len(W)) - 0.8 * W, np.ones(len(W)))
    for name, graph in kinds(W).items():
        result = C.katz_centrality(graph, alpha=0.8, tol=1e-12, max_iterations=300)
        torch_in = isinstance(graph, torch.Tensor)
        assert isinstance(result.x, torch.Tensor if torch_in else np.ndarray), name
        assert result.x.dtype == (torch.float64 if torch_in else np.float64), name
        np.testing.assert_allclose(np.asarray(result.x), expected, rtol=1e-10, err_msg=name)
    single = C.katz_centrality(torch.from_numpy(W).float().to_sparse(), alpha=0.8, tol=1e-6, max_iterations=300)
    assert single.x.dtype == torch.float32
    np.testing.assert_allclose(single.x.numpy(), expected, rtol=1e-5)


def test_local_search_is_the_dense_solve_and_zhous_iteration():
    W = normalised_graph(seed=3)
    n, alpha = len(W), 0.99
    rng = np.random.default_rng(4)
    Y = np.zeros((n, 3))
    Y[[0, 9], 0] = 1.0
    Y[rng.choice(n, 6, replace=False), 1] = rng.uniform(0.1, 1.0, 6)
    Y[:, 2] = rng.normal(size=n)  # any sign: the system is linear
    result = C.local_search(W, Y, alpha, tol=1e-13, max_iterations=2000)
    assert result.converged and isinstance(result.x, np.ndarray) and result.x.shape == (n, 3)
    np.testing.assert_allclose(result.x, np.linalg.solve(laplacian(W, alpha), Y), rtol=1e-9, atol=1e-12)
    f = np.zeros_like(Y)
    for _ in range(5000):  # Zhou et al.'s iteration, alpha^5000 ~ 1e-22
        f = alpha * (W @ f) + (1 - alpha) * Y
    np.testing.assert_allclose(result.x, f, rtol=1e-8, atol=1e-12)
    single = C.local_search(torch.from_numpy(W).to_sparse(), torch.from_numpy(Y[:, 1]), alpha, tol=1e-13,
                            max_iterations=2000)
    assert isinstance(single.x, torch.Tensor) and single.x.shape == (n,)
    np.testing.assert_allclose(single.x.numpy(), result.x[:, 1], rtol=1e-9, atol=1e-12)


def test_local_search_is_linear_and_keeps_non_negative_vectors_non_negative():
    W = normalised_graph(seed=5)
    n, alpha = len(W), 0.9
    rng = np.random.default_rng(6)
    y1, y2 = np.zeros(n), np.zeros(n)
    y1[3] = 1.0  # Simeoni et al.'s local search: the query's indicator
    y2[rng.choice(n, 8, replace=False)] = rng.uniform(0.0, 1.0, 8)
    solve = lambda y: C.local_search(scipy.sparse.csr_array(W), y, alpha, tol=1e-14, max_iterations=1000).x  # noqa: E731
    x1, x2 = solve(y1), solve(y2)
    np.testing.assert_allclose(solve(y1 + 2.5 * y2), x1 + 2.5 * x2, rtol=1e-10, atol=1e-13)
    assert np.all(x1 >= 0) and np.all(x2 >= 0) and x1[3] > 0
    # the exact solution is 0 off the query's component: nothing else is reached
    _, component = scipy.sparse.csgraph.connected_components(W > 0, directed=False)
    reached = component == component[3]
    assert not reached.all() and np.all(x1[~reached] == 0) and np.all(x1[reached] > 0)
    # CG is scale equivariant even unconverged: a scaled query ranks the same
    y = torch.from_numpy(y2)
    np.testing.assert_allclose(C.local_search(W, 7.0 * y, alpha).x.numpy(), 7.0 * C.local_search(W, y, alpha).x.numpy(),
                               rtol=1e-12, atol=1e-15)


def test_the_regularised_laplacian_by_its_formula():
    W = normalised_graph(seed=7)
    alpha = 0.95
    expected = laplacian(W, alpha)
    for name, graph in kinds(W).items():
        L = C.regularised_laplacian(graph, alpha)
        if name == "numpy":
            assert isinstance(L, np.ndarray)
        elif name == "scipy":
            assert scipy.sparse.issparse(L) and L.format == "csr"
        else:
            assert L.layout == graph.layout, name
        dense = L if isinstance(L, np.ndarray) else L.toarray() if scipy.sparse.issparse(L) else L.to_dense().numpy()
        np.testing.assert_allclose(dense, expected, rtol=1e-14, atol=1e-14, err_msg=name)
    eigenvalues = np.linalg.eigvalsh(expected)
    assert eigenvalues.min() >= 1 - 1e-12 and eigenvalues.max() <= (1 + alpha) / (1 - alpha) + 1e-9


def test_bad_arguments_name_what_was_expected():
    W = normalised_graph()
    for alpha in (0, 1, 1.5, -0.2, True):
        with pytest.raises(ValueError, match=rf"alpha must be in \(0, 1\); got {alpha!r}"):
            C.katz_centrality(W, alpha)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        C.local_search(W, np.ones(60), alpha=1.0)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        C.regularised_laplacian(W, 0.0)
    with pytest.raises(ValueError, match=r"W must be square \(n, n\); got \(60, 59\)"):
        C.katz_centrality(W[:, :59])
    with pytest.raises(ValueError, match=r"y must be \(n,\) or \(n, Q\) with n = 60 rows to match W \(60, 60\); got \(59,\)"):
        C.local_search(W, np.ones(59))
    with pytest.raises(TypeError, match="W must be"):
        C.katz_centrality(W.tolist())
    with pytest.raises(ValueError, match="not positive definite"):  # an unnormalised graph: L_alpha is not PD
        C.katz_centrality(50 * W, alpha=0.9)


@pytest.mark.gpu
def test_centrality_runs_on_cuda_and_agrees_with_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    W = torch.from_numpy(normalised_graph(n=400, seed=8))
    Y = torch.zeros(400, 2, dtype=torch.float64)
    Y[[1, 2], [0, 1]] = 1
    for graph in (W, W.to_sparse(), W.to_sparse_csr()):
        g = C.katz_centrality(graph.cuda(), 0.99, tol=1e-10, max_iterations=500)
        assert g.x.device.type == "cuda"
        torch.testing.assert_close(g.x.cpu(), C.katz_centrality(graph, 0.99, tol=1e-10, max_iterations=500).x)
        x = C.local_search(graph.cuda(), Y.cuda(), 0.99, tol=1e-10, max_iterations=500)
        torch.testing.assert_close(x.x.cpu(), C.local_search(graph, Y, 0.99, tol=1e-10, max_iterations=500).x)
