"""Diffusion for retrieval (stage 09): query expansion as a linear system on a k-NN graph (Iscen, Tolias,
Avrithis, Furon & Chum, CVPR 2017) and fast spectral ranking (Iscen, Avrithis, Tolias, Furon & Chum, CVPR
2018), with the settings of the authors' code (the reference's §4 and §5).

- the graph: ``W = D^-1/2 A D^-1/2`` of the reciprocal k-NN affinity ``a_ij = max(s_ij, 0)^gamma``
  (:mod:`coursekit.graphs.knn`);
- the query vector (:func:`query_vectors`): for each query, the similarities of its descriptor (or the
  **sum** over its regional descriptors) to every database item; the ``k_q`` largest kept, raised to
  ``gamma`` after the sum (``y_i = max(s_i, 0)^gamma``), every other entry 0;
- the ranking: ``L_alpha x = y``, ``L_alpha = (I - alpha W) / (1 - alpha)``, by conjugate gradients with
  MATLAB pcg's rule (tol 1e-6, 20 iterations: not always converged at ``alpha = 0.99``;
  :func:`coursekit.graphs.centrality.local_search`); items scored by ``x``;
- regional diffusion: the graph's nodes are regions, and an image scores the sum of its regions' scores,
  weighted by generalised max-pooling (:func:`gmp_weights`: ``w = (V^T V + lambda I)^-1 1`` per image, ``V``
  its regional descriptors as columns, ``lambda = 1``; :func:`pool_to_images`);
- truncation (:func:`truncated_diffusion`): the items of a shortlist only, on the affinity restricted to
  them and normalised again;
- spectral ranking: ``L_alpha^-1 = h_alpha(W)``, ``h_alpha(x) = (1 - alpha) / (1 - alpha x)`` (:func:`transfer`),
  approximated with the ``r`` largest eigenpairs of ``W`` (:func:`spectral_basis`: scipy's ``eigsh``, Lanczos);
  ``x = U_r h(Lambda_r) U_r^T y`` (:func:`spectral_ranking`), or, equivalently, dot products of the explicit
  embedding ``E = U_r h(Lambda_r)^1/2`` (:func:`spectral_embedding`): a query's ``y^T E`` against the rows.

Kinds: torch in, torch out on the input's device (the spectral basis is computed on the host, in float64,
and returned on ``W``'s device).
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
import torch

from coursekit.graphs.knn import symmetric_normalise
from coursekit.graphs.centrality import local_search
from coursekit.graphs.sparse import as_torch, torch_to_scipy

STAGE = 9  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
    return float(alpha)


def _count(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]; got {value!r}")
    return int(value)


def transfer(x, alpha: float = 0.99):
    """``h_alpha(x) = (1 - alpha) / (1 - alpha x)``: the spectral filter of ``L_alpha^-1``; 1 at ``x = 1``,
    ``(1 - alpha) / (1 + alpha)`` at ``x = -1``, positive on [-1, 1]."""
    alpha = _check_alpha(alpha)
    return (1 - alpha) / (1 - alpha * x)


def query_vectors(queries, database: torch.Tensor, k_q: int = 10, gamma: float = 3.0) -> torch.Tensor:
    """The sparse query vectors ``y (n, Q)`` of the authors' ``ymake``: for query ``q`` the similarities
    ``s = sum_regions (x_region . database_i)`` (``queries (Q, d)``: one descriptor each; or a list of ``(r_q,
    d)`` regional descriptors), the ``k_q`` largest kept and raised to ``gamma`` (``max(s, 0)^gamma``), the
    rest 0. Dense ``(n, Q)`` in the database's dtype, on its device."""
    if not isinstance(database, torch.Tensor) or database.ndim != 2:
        raise ValueError(f"database must be a torch tensor (n, d); got "
                         f"{tuple(database.shape) if hasattr(database, 'shape') else type(database).__name__}")
    n, d = database.shape
    k_q = _count(k_q, "k_q", 1, n)
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma > 0:
        raise ValueError(f"gamma must be a positive number; got {gamma!r}")
    if isinstance(queries, torch.Tensor) and queries.ndim == 2:
        if queries.shape[1] != d:
            raise ValueError(f"queries must be (Q, {d}) like the database; got {tuple(queries.shape)}")
        scores = queries.to(database) @ database.T  # (Q, n)
    else:
        groups = list(queries)
        for q, regions in enumerate(groups):
            if not isinstance(regions, torch.Tensor) or regions.ndim != 2 or regions.shape[1] != d or not len(regions):
                raise ValueError(f"queries[{q}] must be a torch tensor (r, {d}) of regional descriptors, r >= 1; got "
                                 f"{tuple(regions.shape) if hasattr(regions, 'shape') else type(regions).__name__}")
        scores = torch.stack([(regions.to(database) @ database.T).sum(dim=0) for regions in groups])
    return torch.stack([query_vector(row, k_q, gamma) for row in scores], dim=1)


def query_vector(similarities: torch.Tensor, k_q: int = 10, gamma: float = 3.0) -> torch.Tensor:
    """One query's ``y (n,)`` from its similarities to the database: ``(n,)``, or ``(r, n)`` for ``r``
    regions (summed first); the ``k_q`` largest kept as ``max(s, 0)^gamma``, zeros elsewhere."""
    if not isinstance(similarities, torch.Tensor) or similarities.ndim not in (1, 2):
        raise ValueError(f"similarities must be a torch tensor (n,) or (r, n); got "
                         f"{getattr(similarities, 'shape', type(similarities).__name__)}")
    summed = similarities if similarities.ndim == 1 else similarities.sum(dim=0)
    k_q = _count(k_q, "k_q", 1, len(summed))
    top = summed.topk(k_q)
    return torch.zeros_like(summed).scatter_(0, top.indices, top.values.clamp_min(0).pow(gamma))


def diffusion(W, y: torch.Tensor, alpha: float = 0.99, tol: float = 1e-6, max_iterations: int = 20) -> torch.Tensor:
    """The diffusion scores ``x (n, Q)`` solving ``L_alpha x = y`` by conjugate gradients, pcg's defaults."""
    return local_search(W, y, alpha=alpha, tol=tol, max_iterations=max_iterations).x


def gmp_weights(descriptors: torch.Tensor, image: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Generalised max-pooling weights of each image's regions: ``w = (V^T V + lam I)^-1 1`` with ``V`` the
    image's regional ``descriptors`` as columns (``image (R,)`` says whose each row is): ``(R,)``."""
    if descriptors.ndim != 2 or image.shape != (len(descriptors),):
        raise ValueError(f"descriptors must be (R, d) and image (R,); got {tuple(descriptors.shape)} and "
                         f"{tuple(image.shape)}")
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not lam > 0:
        raise ValueError(f"lam must be a positive number; got {lam!r}")
    out = torch.empty(len(descriptors), dtype=descriptors.dtype, device=descriptors.device)
    order = torch.argsort(image, stable=True)
    counts = torch.bincount(image).tolist()
    start = 0
    for count in counts:
        if count:
            rows = order[start:start + count]
            V = descriptors[rows]  # (r, d): V^T V of the column convention is this Gram matrix
            gram = V @ V.T + lam * torch.eye(count, dtype=V.dtype, device=V.device)
            out[rows] = torch.linalg.solve(gram, torch.ones(count, dtype=V.dtype, device=V.device))
        start += count
    return out


def pool_to_images(scores: torch.Tensor, image: torch.Tensor, images: int, weights: torch.Tensor | None = None):
    """Image scores ``(images, Q)`` from region scores ``(R, Q)`` (or ``(R,)``): the (weighted) sum over each
    image's regions."""
    if scores.shape[0] != len(image):
        raise ValueError(f"scores must have one row per region ({len(image)}); got {tuple(scores.shape)}")
    values = scores if weights is None else scores * (weights if scores.ndim == 1 else weights[:, None])
    out = torch.zeros((images, *scores.shape[1:]), dtype=scores.dtype, device=scores.device)
    return out.index_add_(0, image, values)


def truncated_diffusion(A, y: torch.Tensor, keep: torch.Tensor, alpha: float = 0.99, tol: float = 1e-6,
                        max_iterations: int = 20) -> torch.Tensor:
    """Diffusion on the items ``keep (m,)`` only (a query's shortlist): the affinity ``A (n, n)`` (not
    normalised; dense or sparse torch) restricted to them, normalised again, ``L_alpha x = y[keep]`` solved;
    ``(n,)`` or ``(n, Q)`` scores, 0 outside ``keep``."""
    keep = torch.as_tensor(keep, device=y.device).long()
    graph = A if A.layout in (torch.strided, torch.sparse_coo) else A.to_sparse_coo()
    sub = graph.index_select(0, keep).index_select(1, keep)  # sparse stays sparse: no (n, n) dense copy
    W_sub = symmetric_normalise(sub)
    x = diffusion(W_sub, y[keep], alpha, tol, max_iterations)
    out = torch.zeros_like(y)
    out[keep] = x.to(out.dtype)
    return out


def spectral_basis(W, rank: int):
    """The ``rank`` largest eigenvalues ``(r,)`` (descending) and eigenvectors ``(n, r)`` of the symmetric
    ``W (n, n)``: scipy's ``eigsh`` (Lanczos, ``which='LA'``) in float64 on the host, or a dense ``eigh`` when
    ``rank >= n - 1`` (eigsh needs ``rank < n``); torch tensors on ``W``'s device, in float64."""
    n = W.shape[0]
    rank = _count(rank, "rank", 1, n)
    device = W.device if isinstance(W, torch.Tensor) else torch.device("cpu")
    if rank >= n - 1:
        dense = as_torch(W, "W", torch.float64).to_dense().cpu().numpy() if not isinstance(W, np.ndarray) else W
        values, vectors = scipy.linalg.eigh(np.asarray(dense, dtype=np.float64))
    else:
        matrix = torch_to_scipy(as_torch(W, "W", torch.float64)) if isinstance(W, torch.Tensor) else W
        values, vectors = scipy.sparse.linalg.eigsh(scipy.sparse.csr_array(matrix, dtype=np.float64), k=rank,
                                                    which="LA", v0=np.ones(n) / np.sqrt(n))
    order = np.argsort(values)[::-1][:rank]
    return (torch.from_numpy(values[order].copy()).to(device),
            torch.from_numpy(np.ascontiguousarray(vectors[:, order])).to(device))


def spectral_ranking(values: torch.Tensor, vectors: torch.Tensor, y: torch.Tensor, alpha: float = 0.99) -> torch.Tensor:
    """``x = U h_alpha(Lambda) U^T y``: the rank-``r`` approximation of ``L_alpha^-1 y`` from a spectral basis."""
    h = transfer(values, alpha)
    y = y.to(vectors)
    return vectors @ ((h[:, None] if y.ndim == 2 else h) * (vectors.T @ y))


def spectral_embedding(values: torch.Tensor, vectors: torch.Tensor, alpha: float = 0.99) -> torch.Tensor:
    """The explicit embedding ``E = U h_alpha(Lambda)^1/2`` ``(n, r)``: ``(y^T E) E^T`` is
    :func:`spectral_ranking`'s ``x^T``, so a query is one vector ``y^T E`` and a ranking dot products."""
    return vectors * transfer(values, alpha).sqrt()
