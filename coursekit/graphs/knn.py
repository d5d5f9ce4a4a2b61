"""Exact k-nearest-neighbour graphs of descriptors, their reciprocal affinity and its symmetric
normalisation (stage 09), with the conventions of the diffusion of Iscen, Tolias, Avrithis, Furon & Chum
(CVPR 2017):

- similarity: the dot product ``s_ij = x_i . x_j`` of l2-normalised descriptors (the cosine);
  ``NN_k(i)``: the ``k`` most similar *other* points (exact, by matrix products and ``topk`` on the
  device, ``chunk`` query rows at a time, so the scores held are ``(chunk, n)``, never ``(n, n)``);
- affinity: ``a_ij = max(s_ij, 0)^gamma`` (``gamma = 3``) kept only for reciprocal neighbours,
  ``j in NN_k(i)`` and ``i in NN_k(j)`` ("to handle noise and outliers"; k = 50 for global descriptors,
  200 for regional ones), so ``A`` is symmetric with a zero diagonal and non-negative; pairs with
  ``a_ij = 0`` are not stored, so that every stored entry is an edge;
- normalisation: ``W = D^-1/2 A D^-1/2``, ``D = diag(A 1)``, whose eigenvalues lie in [-1, 1], 1 once
  per connected component of two or more nodes; this is the ``W`` of
  :mod:`coursekit.graphs.centrality`.

Where this differs from the authors' MATLAB code (``knn_wrap``, ``knngraph``, ``transition_matrix``):

- their neighbour lists are taken from the database against itself, so each point comes first in its
  own list and their ``k`` counts it (k - 1 other points; the self-pairs are then zeroed on the
  diagonal); here ``NN_k(i)`` excludes ``i`` and holds ``k`` other points;
- they raise ``s`` to ``gamma`` and then zero the negatives, which is ``max(s, 0)^gamma`` for their odd
  ``gamma = 3`` only; here the clamp comes first for every ``gamma``;
- their ``a_ij`` is the similarity found in ``i``'s list; here the larger of the two lists' values
  (the same number up to rounding: two matrix products can round ``x_i . x_j`` differently), so that
  ``A`` is symmetric exactly;
- an isolated node (no reciprocal neighbour) has degree 0, and their ``D^-1/2`` has an infinity there
  (fyang93's port adds 1e-12 to the degree, ducha-aiki's sets the infinities to 0); here its row and
  column of ``W`` are 0, without an infinity or a NaN;
- exact neighbours by default (for Oxford105k they load a precomputed approximate graph); ``method="faiss"``
  finds them approximately with faiss's inverted-file index (IVF-Flat on the inner product), for the
  collections where ``n^2`` products are too many: :func:`approximate_neighbours`, whose recall against the
  exact lists ``benchmarks/diffusion.py`` measures.

Kinds: numpy in, numpy out (a scipy.sparse CSR array for a sparse result); torch in, torch out on the
input's device, sparse results as coalesced COO tensors.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse
import torch

from coursekit.graphs.sparse import as_csr, as_torch, torch_to_scipy

STAGE = 9  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


def _descriptors(array, name: str, device=None) -> torch.Tensor:
    if not isinstance(array, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch tensor or a numpy array; got {type(array).__name__}")
    tensor = as_torch(array, name, device=device)
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be (n, d); got {tuple(tensor.shape)}")
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"{name} must be floating point; got {tensor.dtype}")
    return tensor


def _check_count(value, name: str, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}] {what}; got {value!r}")
    return int(value)


def _check_chunk(chunk) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (query rows per matrix product); got {chunk!r}")
    return int(chunk)


def _neighbours(database: torch.Tensor, queries: torch.Tensor | None, k: int, chunk: int):
    """Torch ``(m, k)`` similarities and indices: each query row's ``k`` most similar database rows,
    most similar first; without ``queries`` the database against itself, each row's own index excluded."""
    search = database if queries is None else queries
    m = len(search)
    similarities = torch.empty(m, k, dtype=search.dtype, device=search.device)
    indices = torch.empty(m, k, dtype=torch.long, device=search.device)
    for start in range(0, m, chunk):
        scores = search[start:start + chunk] @ database.T  # (chunk, n)
        if queries is None:  # row r of the chunk is point start + r: its own column is on that diagonal
            scores.diagonal(offset=start).fill_(-float("inf"))
        found = scores.topk(k, dim=1)
        similarities[start:start + chunk] = found.values
        indices[start:start + chunk] = found.indices
    return similarities, indices


METHODS = ("exact", "faiss")


def _check_method(method) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
    return method


def approximate_neighbours(database: torch.Tensor, queries: torch.Tensor | None, k: int, *, nlist: int | None = None,
                           nprobe: int = 16):
    """Approximate :func:`knn` lists by faiss (``pip install faiss-cpu``): an IVF-Flat index on the inner
    product, ``nlist`` cells (default ``4 sqrt(n)``, at most ``n / 39``: faiss trains each centroid on 39 points or
    more) learned by k-means on the database, each query compared with the points of its ``nprobe`` nearest cells.
    Float32 on the host; torch ``(m, k)`` similarities (the database's dtype) and int64 indices back on the
    database's device. Without ``queries`` each point's own index is left out; where the probed cells hold fewer
    than ``k`` other points, the missing entries are the index -1 with similarity ``-inf`` (the affinity ignores
    them)."""
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - faiss is a dependency of the project
        raise ImportError("method='faiss' needs the faiss library: pip install faiss-cpu") from error
    if isinstance(nprobe, bool) or not isinstance(nprobe, numbers.Integral) or nprobe < 1:
        raise ValueError(f"nprobe must be a positive integer; got {nprobe!r}")
    n, d = database.shape
    cells = int(round(4 * np.sqrt(n))) if nlist is None else nlist
    if isinstance(cells, bool) or not isinstance(cells, numbers.Integral) or cells < 1:
        raise ValueError(f"nlist must be a positive integer; got {nlist!r}")
    cells = max(1, min(int(cells), n // 39))
    points = np.ascontiguousarray(database.detach().cpu().numpy(), dtype=np.float32)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, cells, faiss.METRIC_INNER_PRODUCT)
    index.train(points)
    index.add(points)
    index.nprobe = min(int(nprobe), cells)
    search = points if queries is None else np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32)
    found_s, found_i = index.search(search, k + (queries is None))
    found_s = np.where(found_i < 0, -np.inf, found_s)
    if queries is None:  # each row's own index dropped (or, where it was not found, its last entry)
        own = found_i == np.arange(n)[:, None]
        own[~own.any(axis=1), -1] = True
        keep = ~own
        found_s = found_s[keep].reshape(n, k)
        found_i = found_i[keep].reshape(n, k)
    device = database.device
    return (torch.from_numpy(found_s).to(device=device, dtype=database.dtype),
            torch.from_numpy(found_i.astype(np.int64)).to(device))


def _lists(database: torch.Tensor, queries: torch.Tensor | None, k: int, chunk, method, nprobe):
    """The neighbour lists by ``method``: exact (:func:`_neighbours`) or by faiss (:func:`approximate_neighbours`)."""
    if _check_method(method) == "faiss":
        return approximate_neighbours(database, queries, k, nprobe=nprobe)
    return _neighbours(database, queries, k, _check_chunk(chunk))


def knn(descriptors, k: int, queries=None, chunk: int = 4096, *, method: str = "exact", nprobe: int = 16):
    """The k nearest neighbours by dot product: ``(similarities (m, k), indices (m, k) int64)``, most
    similar first, of each row of ``queries (m, d)`` among the rows of ``descriptors (n, d)``; without
    ``queries``, of each descriptor among the others (``m = n``, itself excluded, ``k <= n - 1``).
    Similarities in the descriptors' floating dtype; numpy arrays for numpy descriptors. Ties are ordered
    as ``torch.topk`` leaves them. ``method="exact"`` (the default) computes every product, ``chunk``
    query rows at a time; ``"faiss"`` searches approximately (:func:`approximate_neighbours`, ``nprobe``
    cells per query)."""
    database = _descriptors(descriptors, "descriptors")
    n, d = database.shape
    if queries is None:
        k = _check_count(k, "k", 1, n - 1, f"for n = {n} descriptors (each point's own index excluded)")
        search = None
    else:
        search = _descriptors(queries, "queries", database.device if isinstance(descriptors, torch.Tensor) else None)
        if search.shape[1] != d:
            raise ValueError(f"queries must be (m, d) with d = {d} as descriptors {tuple(database.shape)}; "
                             f"got {tuple(search.shape)}")
        k = _check_count(k, "k", 1, n, f"for n = {n} descriptors")
        dtype = torch.promote_types(database.dtype, search.dtype)
        database, search = database.to(device=search.device, dtype=dtype), search.to(dtype)
    similarities, indices = _lists(database, search, k, chunk, method, nprobe)
    if isinstance(descriptors, np.ndarray):
        return similarities.cpu().numpy(), indices.cpu().numpy()
    return similarities, indices


def knn_affinity(descriptors, k: int, gamma: float = 3.0, mutual: bool = True, chunk: int = 4096, *,
                 method: str = "exact", nprobe: int = 16):
    """The reciprocal k-NN affinity ``A (n, n)`` of ``descriptors (n, d)`` (l2-normalised):
    ``a_ij = max(s_ij, 0)^gamma`` where ``j in NN_k(i)`` and ``i in NN_k(j)``, else 0 (with
    ``mutual=False``, where either holds: the symmetrised union, ``max(a_ij, a_ji)``). Symmetric, zero
    diagonal, in the descriptors' dtype: a coalesced sparse COO tensor on their device, or a scipy.sparse
    CSR array for numpy descriptors. ``method`` and ``nprobe``: how the neighbours are found (:func:`knn`)."""
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0 < gamma < float("inf"):
        raise ValueError(f"gamma must be a positive number; got {gamma!r}")
    database = _descriptors(descriptors, "descriptors")
    n = len(database)
    k = _check_count(k, "k", 1, n - 1, f"for n = {n} descriptors (each point's own index excluded)")
    similarities, neighbours = _lists(database, None, k, chunk, method, nprobe)
    A = _affinity(similarities, neighbours, n, gamma, mutual)
    return torch_to_scipy(A) if isinstance(descriptors, np.ndarray) else A


def _affinity(similarities: torch.Tensor, neighbours: torch.Tensor, n: int, gamma: float, mutual: bool) -> torch.Tensor:
    """The coalesced COO affinity of neighbour lists ``(m, k)`` (row ``i`` lists ``i``'s neighbours; an entry
    naming ``i`` itself, or -1 (an approximate search's missing entry), is dropped)."""
    k = neighbours.shape[1]
    rows = torch.arange(len(neighbours), device=neighbours.device).repeat_interleave(k)
    cols = neighbours.reshape(-1)
    values = similarities.reshape(-1).clamp_min(0).pow(gamma)
    other = (rows != cols) & (cols >= 0)
    rows, cols, values = rows[other], cols[other], values[other]
    # each listed pair (i, j) votes for the entries (i, j) and (j, i): an entry with two votes is listed
    # both ways (reciprocal); its value is the larger of the two lists' values, so A is exactly symmetric
    keys, inverse, votes = torch.cat([rows * n + cols, cols * n + rows]).unique(return_inverse=True,
                                                                                return_counts=True)
    affinity = torch.zeros(len(keys), dtype=values.dtype, device=values.device)
    affinity = affinity.scatter_reduce(0, inverse, torch.cat([values, values]), reduce="amax")
    keep = affinity > 0
    if mutual:
        keep &= votes == 2
    keys = keys[keep]
    return torch.sparse_coo_tensor(torch.stack([keys // n, keys % n]), affinity[keep], (n, n),
                                   is_coalesced=True, check_invariants=False)  # unique() sorted the keys


def affinity_from_lists(similarities: torch.Tensor, neighbours: torch.Tensor, gamma: float = 3.0,
                        mutual: bool = True) -> torch.Tensor:
    """:func:`knn_affinity`'s rule on given neighbour lists (any similarity: a kernel of distances, say):
    ``similarities (n, k)`` and ``neighbours (n, k)`` int64, row ``i`` listing ``i``'s neighbours (an entry
    naming ``i`` itself is ignored, so the diagonal is 0) -> the coalesced COO ``A (n, n)``."""
    if not (isinstance(similarities, torch.Tensor) and isinstance(neighbours, torch.Tensor)
            and similarities.ndim == 2 and similarities.shape == neighbours.shape):
        raise ValueError(f"similarities and neighbours must be torch tensors (n, k) of one shape; got "
                         f"{getattr(similarities, 'shape', type(similarities).__name__)} and "
                         f"{getattr(neighbours, 'shape', type(neighbours).__name__)}")
    n = len(neighbours)
    if neighbours.numel() and not (0 <= int(neighbours.min()) and int(neighbours.max()) < n):
        raise ValueError(f"neighbours must index the {n} items; got ids from {int(neighbours.min())} to {int(neighbours.max())}")
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0 < gamma < float("inf"):
        raise ValueError(f"gamma must be a positive number; got {gamma!r}")
    return _affinity(similarities, neighbours.long(), n, float(gamma), bool(mutual))


def _non_negative(entries: torch.Tensor) -> None:
    if entries.numel() and bool(entries.min() < 0):
        raise ValueError(f"A must be non-negative; its smallest entry is {float(entries.min()):.3g}")


def _inverse_sqrt(degree: torch.Tensor) -> torch.Tensor:
    """``degree^-1/2``, and 0 for an isolated node (degree 0) instead of an infinity."""
    return torch.where(degree > 0, degree.rsqrt(), 0)


def symmetric_normalise(A):
    """``W = D^-1/2 A D^-1/2``, ``D = diag(A 1)``, for a symmetric non-negative ``A (n, n)``: a torch tensor
    (dense back for dense, CSR for CSR, else coalesced COO), a numpy array or a scipy.sparse matrix (a
    scipy CSR array back). Isolated nodes (degree 0) give zero rows and columns."""
    if not isinstance(A, (torch.Tensor, np.ndarray)) and not scipy.sparse.issparse(A):
        raise TypeError(f"A must be a torch tensor, a numpy array or a scipy.sparse matrix; got {type(A).__name__}")
    if len(A.shape) != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square (n, n); got {tuple(A.shape)}")
    matrix = as_torch(A, "A")
    if not matrix.dtype.is_floating_point:
        matrix = matrix.double()
    if matrix.layout == torch.strided:
        _non_negative(matrix)
        scale = _inverse_sqrt(matrix.sum(1))
        W = scale[:, None] * matrix * scale[None, :]
        return W.cpu().numpy() if isinstance(A, np.ndarray) else W
    coo = (matrix if matrix.layout == torch.sparse_coo else matrix.to_sparse_coo()).coalesce()
    _non_negative(coo.values())
    row, col = coo.indices()
    scale = _inverse_sqrt(torch.zeros(coo.shape[0], dtype=coo.dtype, device=coo.device).index_add_(0, row, coo.values()))
    W = torch.sparse_coo_tensor(coo.indices(), coo.values() * scale[row] * scale[col], coo.shape,
                                is_coalesced=True, check_invariants=False)
    if not isinstance(A, torch.Tensor):
        return torch_to_scipy(W)
    return as_csr(W) if matrix.layout == torch.sparse_csr else W
