"""Graph centrality (stage 08, Siméoni et al.'s Katz centrality on a reciprocal k-NN graph): two timings,
each against a baseline run on the same data in the same process. Called by ``benchmarks/egm_graphs.py``
(``bench_centrality(device, quick)``).

Data: ``n`` random-but-clustered l2-normalised descriptors, 128-D, float32 (n = 20,000, ``quick``: 5,000):
one cluster per 250 points, each point its cluster's random unit centre plus Gaussian noise of norm about
0.8, normalised, so that within a cluster similarities are about 0.6 and across clusters about 0 +- 0.05.

1. graph construction, the reciprocal k-NN affinity (k = 50, ``a_ij = max(s_ij, 0)^3``, zero diagonal):
   - coursekit: ``knn_affinity`` on the device (chunked matrix products and ``topk``, the reciprocal pairs
     by a sort of the pair keys), a sparse COO tensor;
   - baseline on the host: numpy, in chunks of 4096 rows, ``X_chunk @ X.T`` (float32 BLAS), the diagonal
     masked, ``np.argpartition`` for the k largest, then the mutual graph the way the Python ports build
     it, ``G.minimum(G.T)`` of the scipy.sparse k-NN graph (an entry survives only where both lists hold
     the pair). The two graphs are compared (edges in one only: near-ties at the k-th neighbour, which
     float32 products from two libraries may order differently).
2. Katz centrality ``L_alpha g = 1`` on ``W = D^-1/2 A D^-1/2`` (coursekit's ``symmetric_normalise`` of
   coursekit's graph, float64), alpha = 0.99, at the diffusion papers' CG settings (tol 1e-6, 20
   iterations):
   - coursekit: ``katz_centrality(W)`` on the device (W a COO tensor, as ``symmetric_normalise`` returns it);
   - baseline: ``scipy.sparse.linalg.cg`` on the same ``L_alpha`` as a float64 CSR matrix, built before the
     clock starts, ``rtol=1e-6, atol=0, maxiter=20``.
   (scipy tests its rule before each iteration only, so a run whose 20th iterate meets it still says
   ``info 20``; coursekit also tests after the last one.) The two centralities must agree within 1e-5
   relative (max |difference| / max |g|): the script fails beyond.

Medians of repeated runs after warm-up ones (graphs: 5 after 2, ``quick`` 3 after 1; solves: 30 after 5,
``quick`` 15 after 3); CUDA is synchronised before each clock is read.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from timing import describe
from coursekit.graphs.centrality import katz_centrality
from coursekit.graphs.knn import knn_affinity, symmetric_normalise

DIM, K, GAMMA, ALPHA, TOL, ITERATIONS = 128, 50, 3.0, 0.99, 1e-6, 20
PER_CLUSTER, NOISE = 250, 0.8
SIZE, QUICK_SIZE = 20_000, 5_000
BASELINE_CHUNK = 4096
AGREEMENT = 1e-5


def clustered_descriptors(n: int, seed: int = 0) -> np.ndarray:
    """``(n, DIM)`` float32 unit rows: random unit centres, one per ``PER_CLUSTER`` points, plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // PER_CLUSTER), DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = centres[rng.integers(0, len(centres), n)] + NOISE * rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def baseline_affinity(x: np.ndarray, k: int, gamma: float) -> scipy.sparse.csr_array:
    """The reciprocal k-NN affinity with numpy and scipy: chunked scores, ``argpartition``, ``min(G, G^T)``."""
    n = len(x)
    neighbours = np.empty((n, k), dtype=np.int64)
    similarities = np.empty((n, k), dtype=x.dtype)
    for start in range(0, n, BASELINE_CHUNK):
        scores = x[start:start + BASELINE_CHUNK] @ x.T
        rows = np.arange(len(scores))
        scores[rows, start + rows] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        neighbours[start:start + len(scores)] = top
        similarities[start:start + len(scores)] = np.take_along_axis(scores, top, 1)
    values = np.maximum(similarities, 0) ** gamma
    graph = scipy.sparse.csr_array((values.ravel(), (np.repeat(np.arange(n), k), neighbours.ravel())), shape=(n, n))
    mutual = graph.minimum(graph.T)
    mutual.eliminate_zeros()
    return scipy.sparse.csr_array(mutual)


def to_scipy(matrix: torch.Tensor) -> scipy.sparse.csr_array:
    """A coalesced sparse COO tensor as a scipy CSR array on the host."""
    row, col = matrix.indices().cpu().numpy()
    return scipy.sparse.csr_array((matrix.values().cpu().numpy(), (row, col)), shape=tuple(matrix.shape))


def _timed(step, repeats: int, warmup: int, device: torch.device):
    """Median seconds of ``step()`` over ``repeats`` calls after ``warmup`` ones, and the last result."""
    def synchronise():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        synchronise()
        start = time.perf_counter()
        result = step()
        synchronise()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_centrality(device: torch.device, quick: bool) -> None:
    """Print the two figures of this module's docstring for ``device``; raise SystemExit if coursekit's
    and scipy's centralities disagree beyond 1e-5 relative."""
    device = torch.device(device)
    n = QUICK_SIZE if quick else SIZE
    repeats, warmup = (3, 1) if quick else (5, 2)
    solve_repeats, solve_warmup = (15, 3) if quick else (30, 5)  # a solve takes milliseconds: more of them
    x = clustered_descriptors(n)
    on_device = torch.from_numpy(x).to(device)
    print(f"\ngraph centrality: {n} clustered unit descriptors ({DIM}-D, float32), reciprocal {K}-NN graph, "
          f"gamma {GAMMA:g}; {describe(device)}")

    ours_graph_s, A = _timed(lambda: knn_affinity(on_device, K, gamma=GAMMA), repeats, warmup, device)
    base_graph_s, A_base = _timed(lambda: baseline_affinity(x, K, GAMMA), repeats, warmup, torch.device("cpu"))
    A_ours = to_scipy(A)
    ours_edges, base_edges = A_ours != 0, A_base != 0
    shared = ours_edges.multiply(base_edges)
    only_one = ours_edges.nnz + base_edges.nnz - 2 * shared.nnz
    gap = abs(A_ours.multiply(shared) - A_base.multiply(shared)).max()
    print(f"1. construction: (a) coursekit knn_affinity on {device}: {ours_graph_s:8.3f} s; (b) numpy chunked "
          f"products + argpartition, scipy min(G, G^T) on the host: {base_graph_s:8.3f} s; (b) / (a): "
          f"{base_graph_s / ours_graph_s:.2f}x")
    print(f"   {A_ours.nnz} non-zeros ({A_ours.nnz / n:.1f} per node), {only_one} edges in one graph only (near-ties), "
          f"max |a_ours - a_base| on the shared edges {gap:.2e}")

    W = symmetric_normalise(A.double())
    W_host = to_scipy(W)
    L = scipy.sparse.csr_array((scipy.sparse.eye_array(n) - ALPHA * W_host) / (1 - ALPHA))
    ones = np.ones(n)
    ours_katz_s, g = _timed(lambda: katz_centrality(W, ALPHA, tol=TOL, max_iterations=ITERATIONS), solve_repeats,
                            solve_warmup, device)
    base_katz_s, (g_base, info) = _timed(
        lambda: scipy.sparse.linalg.cg(L, ones, rtol=TOL, atol=0.0, maxiter=ITERATIONS), solve_repeats,
        solve_warmup, torch.device("cpu"))
    difference = float(np.abs(g.x.cpu().numpy() - g_base).max() / np.abs(g_base).max())
    print(f"2. Katz centrality, alpha {ALPHA}, CG tol {TOL:g}, at most {ITERATIONS} iterations: (a) coursekit "
          f"katz_centrality on {device}: {ours_katz_s * 1e3:8.2f} ms ({g.iterations} iterations, converged "
          f"{g.converged}, relative residual {g.residuals[-1]:.2e}); (b) scipy.sparse.linalg.cg, CSR float64: "
          f"{base_katz_s * 1e3:8.2f} ms (info {info}); (b) / (a): {base_katz_s / ours_katz_s:.2f}x")
    print(f"   max |g_coursekit - g_scipy| / max |g_scipy| = {difference:.2e} (must be <= {AGREEMENT:g})")
    if not difference <= AGREEMENT:
        raise SystemExit(f"coursekit's and scipy's Katz centralities differ by {difference:.2e} relative "
                         f"(> {AGREEMENT:g})")
