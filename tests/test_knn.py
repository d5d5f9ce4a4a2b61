"""coursekit.graphs.knn (stage 09): exact k-NN against a brute-force argsort, the reciprocal affinity against
a Python loop over the pairs, and the normalisation's spectrum against numpy and scipy's csgraph."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
import torch

from coursekit.graphs import knn as K

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")  # the tests' own CSR


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n_per: int = 30, clusters: int = 4, outliers: int = 3, d: int = 16, seed: int = 0) -> np.ndarray:
    """l2-normalised points around ``clusters`` orthogonal directions (spread 0.3), then ``outliers`` points
    along directions of their own (all similarities positive, no ties)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(d)[:clusters] + 0.2
    points = [centres[c] + 0.3 * rng.normal(size=(n_per, d)) / np.sqrt(d) for c in range(clusters)]
    points.append(np.eye(d)[clusters:clusters + outliers] + 0.05)
    return unit_rows(np.concatenate(points))


def brute_knn(database: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool):
    """Each query's k most similar database rows by a full sort of its dot products."""
    indices, similarities = [], []
    for q, query in enumerate(queries):
        scores = database @ query
        if exclude_self:
            scores[q] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        indices.append(order)
        similarities.append(scores[order])
    return np.array(similarities), np.array(indices)


def dense(A) -> np.ndarray:
    return A.toarray() if scipy.sparse.issparse(A) else A.to_dense().numpy() if A.layout != torch.strided else A.numpy()


def test_knn_is_a_brute_force_sort_in_chunks_smaller_than_n():
    x = unit_rows(np.random.default_rng(1).normal(size=(203, 8)))
    expected_s, expected_i = brute_knn(x, x, 7, exclude_self=True)
    for chunk in (17, 64, 4096):  # 17 and 64 do not divide 203
        s, i = K.knn(x, 7, chunk=chunk)
        assert isinstance(s, np.ndarray) and s.dtype == np.float64 and i.dtype == np.int64 and s.shape == (203, 7)
        np.testing.assert_array_equal(i, expected_i)
        np.testing.assert_allclose(s, expected_s, rtol=1e-13, atol=1e-15)
    s32, i32 = K.knn(torch.from_numpy(x).float(), 7, chunk=50)
    assert s32.dtype == torch.float32 and i32.dtype == torch.int64
    np.testing.assert_array_equal(i32.numpy(), expected_i)
    np.testing.assert_allclose(s32.numpy(), expected_s, atol=1e-6)


def test_self_is_excluded_by_index_and_queries_search_the_whole_database():
    x = unit_rows(np.random.default_rng(2).normal(size=(40, 5)))
    x[11] = x[30]  # a duplicate: the other copy is the nearest, at similarity 1, never the point itself
    _, i = K.knn(torch.from_numpy(x), 3, chunk=8)
    assert np.all(i.numpy() != np.arange(40)[:, None])
    assert i[11, 0] == 30 and i[30, 0] == 11
    x = unit_rows(np.random.default_rng(3).normal(size=(40, 5)))  # no duplicate: no tie
    queries = np.concatenate([x[:4], unit_rows(np.random.default_rng(4).normal(size=(9, 5)))])
    s, i = K.knn(x, 40, queries=queries, chunk=5)  # with queries k may be n: the whole database, ranked
    expected_s, expected_i = brute_knn(x, queries, 40, exclude_self=False)
    np.testing.assert_array_equal(i, expected_i)
    np.testing.assert_allclose(s, expected_s, rtol=1e-13, atol=1e-15)
    assert np.all(i[:4, 0] == np.arange(4)) and np.allclose(s[:4, 0], 1)  # a query in the database finds itself


def test_knn_refuses_bad_arguments():
    x = np.random.default_rng(4).normal(size=(10, 3))
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 9\] for n = 10 descriptors"):
        K.knn(x, 10)
    for k in (0, 2.0, True):
        with pytest.raises(ValueError, match="k must be an integer"):
            K.knn(x, k)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 10\]"):
        K.knn(x, 11, queries=x[:2])
    with pytest.raises(ValueError, match=r"descriptors must be \(n, d\); got \(10,\)"):
        K.knn(x[:, 0], 2)
    with pytest.raises(TypeError, match="descriptors must be floating point; got torch.int64"):
        K.knn(torch.ones(10, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"queries must be \(m, d\) with d = 3 as descriptors \(10, 3\); got \(2, 4\)"):
        K.knn(x, 2, queries=np.ones((2, 4)))
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        K.knn(x, 2, chunk=0)
    with pytest.raises(ValueError, match="k must be an integer"):
        K.knn_affinity(x, 10)
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        K.knn_affinity(x, 2, gamma=0)


def test_the_affinity_keeps_exactly_the_reciprocal_pairs_with_s_to_the_gamma():
    x = clustered()
    n, k = len(x), 6
    s, neighbours = brute_knn(x, x, k, exclude_self=True)
    assert s.min() > 0  # so every reciprocal pair is an edge
    lists = [set(row) for row in neighbours.tolist()]
    similarity = x @ x.T
    for gamma in (1.0, 3.0):
        A = K.knn_affinity(torch.from_numpy(x), k, gamma=gamma, chunk=32)
        assert A.layout == torch.sparse_coo and A.is_coalesced() and A.dtype == torch.float64
        a = A.to_dense().numpy()
        np.testing.assert_array_equal(a, a.T)
        assert np.all(np.diag(a) == 0) and np.all(a >= 0)
        for i in range(n):
            for j in range(n):
                reciprocal = i != j and j in lists[i] and i in lists[j]
                assert (a[i, j] > 0) == reciprocal, (i, j)
                if reciprocal:
                    assert a[i, j] == pytest.approx(similarity[i, j] ** gamma, rel=1e-13)
        union = dense(K.knn_affinity(x, k, gamma=gamma, mutual=False))
        for i in range(n):
            for j in range(n):
                either = j in lists[i] or i in lists[j]
                assert (union[i, j] > 0) == either, (i, j)
                if either:
                    assert union[i, j] == pytest.approx(similarity[i, j] ** gamma, rel=1e-13)
        assert (union > 0).sum() > (a > 0).sum()


def test_negative_similarities_give_no_edge():
    angles = np.radians([0.0, 30.0, 200.0])
    x = np.stack([np.cos(angles), np.sin(angles)], 1)
    # 1-NN: 0 and 1 are reciprocal (cos 30); 2's nearest is 0 (cos 200 < 0), not reciprocal
    A = K.knn_affinity(x, 1)
    assert scipy.sparse.issparse(A) and A.format == "csr" and A.nnz == 2
    np.testing.assert_allclose(A.toarray(), [[0, np.cos(np.radians(30)) ** 3, 0],
                                             [np.cos(np.radians(30)) ** 3, 0, 0], [0, 0, 0]], rtol=1e-14)
    assert K.knn_affinity(x, 1, mutual=False).nnz == 2  # the pair (2, 0) is listed but its affinity is 0
    assert K.knn_affinity(x[[0, 2]], 1).nnz == 0  # reciprocal, but at a negative similarity


def test_the_normalised_graph_has_its_spectrum_in_minus_one_one():
    x = clustered(seed=5)
    A = K.knn_affinity(x, 5)
    a = A.toarray()
    degree = a.sum(1)
    isolated = degree == 0
    assert isolated.sum() >= 3  # the outliers have no reciprocal neighbour
    W = K.symmetric_normalise(A)
    assert scipy.sparse.issparse(W) and W.format == "csr"
    w = W.toarray()
    assert np.all(np.isfinite(w)) and np.all(w[isolated] == 0) and np.all(w[:, isolated] == 0)
    np.testing.assert_allclose(w, a / np.sqrt(np.outer(np.where(isolated, 1, degree), np.where(isolated, 1, degree))),
                               rtol=1e-13)
    eigenvalues = np.linalg.eigvalsh(w)
    assert eigenvalues.min() >= -1 - 1e-12 and eigenvalues.max() <= 1 + 1e-12
    count, labels = scipy.sparse.csgraph.connected_components(A, directed=False)
    sizes = np.bincount(labels)
    assert count - isolated.sum() >= 4  # each cluster is one or more components
    assert np.sum(np.abs(eigenvalues - 1) < 1e-9) == np.sum(sizes >= 2)
    root = np.sqrt(degree)
    np.testing.assert_allclose(w @ root, root, rtol=1e-12, atol=1e-15)


def test_normalise_takes_every_kind_and_refuses_negative_entries():
    rng = np.random.default_rng(6)
    a = np.triu(rng.uniform(size=(9, 9)) * (rng.uniform(size=(9, 9)) < 0.5), 1)
    a = a + a.T
    a[4] = a[:, 4] = 0
    degree = a.sum(1)
    scale = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0)
    expected = scale[:, None] * a * scale[None, :]
    t = torch.from_numpy(a)
    for name, matrix in (("numpy", a), ("scipy", scipy.sparse.coo_array(a)), ("torch dense", t),
                         ("torch coo", t.to_sparse()), ("torch csr", t.to_sparse_csr())):
        W = K.symmetric_normalise(matrix)
        if isinstance(matrix, torch.Tensor):
            assert W.layout == matrix.layout, name
        np.testing.assert_allclose(W if isinstance(W, np.ndarray) else dense(W), expected, rtol=1e-14, err_msg=name)
    assert K.symmetric_normalise(t.float().to_sparse()).dtype == torch.float32
    with pytest.raises(ValueError, match="A must be non-negative"):
        K.symmetric_normalise(-t)
    with pytest.raises(ValueError, match=r"A must be square \(n, n\); got \(9, 8\)"):
        K.symmetric_normalise(a[:, :8])


@pytest.mark.gpu
def test_knn_runs_on_cuda_and_agrees_with_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = torch.from_numpy(clustered(n_per=300, seed=7))
    s, i = K.knn(x, 10, chunk=256)
    s_gpu, i_gpu = K.knn(x.cuda(), 10, chunk=256)
    assert i_gpu.device.type == "cuda"
    torch.testing.assert_close(i_gpu.cpu(), i)
    torch.testing.assert_close(s_gpu.cpu(), s, rtol=1e-12, atol=1e-14)
    A, A_gpu = K.knn_affinity(x, 10, chunk=256), K.knn_affinity(x.cuda(), 10, chunk=256)
    assert A_gpu.device.type == "cuda" and A_gpu.is_coalesced()
    torch.testing.assert_close(A_gpu.cpu().to_dense(), A.to_dense(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(K.symmetric_normalise(A_gpu).cpu().to_dense(), K.symmetric_normalise(A).to_dense(),
                               rtol=1e-12, atol=1e-14)


def test_affinity_from_lists_keeps_reciprocal_pairs_and_drops_self_entries():
    gen = np.random.default_rng(11)
    n, k = 25, 4
    similarity = gen.uniform(-0.3, 1, (n, n))
    similarity = (similarity + similarity.T) / 2
    lists = [[i] + list(gen.choice([j for j in range(n) if j != i], k - 1, replace=False)) for i in range(n)]
    sims = torch.tensor([[similarity[i, j] for j in lists[i]] for i in range(n)])
    A = K.affinity_from_lists(sims, torch.tensor(lists), gamma=2.0).to_dense().numpy()
    expected = np.zeros((n, n))
    for i in range(n):
        for j in lists[i]:
            if i != j and i in lists[j]:
                expected[i, j] = max(similarity[i, j], 0) ** 2
    assert np.allclose(A, expected, atol=1e-15)
    union = K.affinity_from_lists(sims, torch.tensor(lists), gamma=2.0, mutual=False).to_dense().numpy()
    assert (union >= A).all() and np.allclose(union, union.T) and np.all(np.diag(union) == 0)
    with pytest.raises(ValueError, match="neighbours"):
        K.affinity_from_lists(sims, torch.tensor(lists) + n, gamma=2.0)


def test_faiss_neighbours_agree_with_the_exact_ones_when_every_cell_is_probed():
    # nprobe = nlist: the inverted file is searched whole, so the lists are exact (up to float32 rounding)
    x = clustered(n_per=120, clusters=4, outliers=0, d=16, seed=3)
    expected_s, expected_i = brute_knn(x, x, 6, exclude_self=True)
    s, i = K.knn(x, 6, method="faiss", nprobe=1000)
    assert isinstance(s, np.ndarray) and s.dtype == np.float64 and i.dtype == np.int64 and s.shape == (480, 6)
    assert (i != np.arange(480)[:, None]).all(), "a point listed as its own neighbour"
    same = np.mean([len(set(a) & set(b)) / 6 for a, b in zip(i, expected_i)])
    assert same > 0.99, same
    np.testing.assert_allclose(np.sort(s, axis=1), np.sort(expected_s, axis=1), atol=1e-5)
    queries = unit_rows(np.random.default_rng(4).normal(size=(9, 16)))
    qs, qi = K.knn(torch.from_numpy(x), 5, queries=torch.from_numpy(queries), method="faiss", nprobe=1000)
    bs, bi = brute_knn(x, queries, 5, exclude_self=False)
    assert qi.shape == (9, 5) and np.mean([len(set(a) & set(b)) / 5 for a, b in zip(qi.numpy(), bi)]) > 0.99
    # the affinity built from the faiss lists is the exact one, and a single probed cell misses some neighbours
    exact = dense(K.knn_affinity(x, 6))
    np.testing.assert_allclose(dense(K.knn_affinity(x, 6, method="faiss", nprobe=1000)), exact, atol=1e-5)
    _, few = K.knn(x, 6, method="faiss", nprobe=1)
    assert np.mean([len(set(a) & set(b) - {-1}) / 6 for a, b in zip(few, expected_i)]) < 1.0
    with pytest.raises(ValueError, match="method must be one of"):
        K.knn(x, 6, method="annoy")
    with pytest.raises(ValueError, match="nprobe"):
        K.knn_affinity(x, 6, method="faiss", nprobe=0)


def test_missing_approximate_entries_make_no_edge():
    similarities = torch.tensor([[0.9, -torch.inf], [0.9, 0.5], [0.5, -torch.inf]], dtype=torch.float64)
    neighbours = torch.tensor([[1, -1], [0, 2], [1, -1]])
    B = K._affinity(similarities, neighbours, 3, 1.0, True).to_dense()  # what knn_affinity builds from faiss's lists
    expected = torch.zeros(3, 3, dtype=torch.float64)
    expected[0, 1] = expected[1, 0] = 0.9
    expected[1, 2] = expected[2, 1] = 0.5
    torch.testing.assert_close(B, expected)
