"""Local search and global (Katz) centrality on a graph by its regularised Laplacian (stage 08), as
Siméoni et al. (WACV 2018) use them to find what is frequent in a dataset.

``W (n, n)`` is a symmetric, non-negative affinity normalised as ``W = D^-1/2 A D^-1/2``
(:func:`coursekit.graphs.knn.symmetric_normalise`), so its eigenvalues lie in [-1, 1]. For
``0 < alpha < 1`` the regularised Laplacian

    L_alpha = (I - alpha W) / (1 - alpha)

has eigenvalues ``(1 - alpha lambda) / (1 - alpha)`` in ``[1, (1 + alpha) / (1 - alpha)]``: it is symmetric
positive definite, and conjugate gradient solves it (:mod:`coursekit.graphs.solvers`, MATLAB pcg's
defaults of the diffusion papers: tol 1e-6, 20 iterations, not always converged at alpha = 0.99).
Its inverse is ``h_alpha(W)``, ``h_alpha(x) = (1 - alpha) / (1 - alpha x)`` (Iscen et al. CVPR 2018),
i.e. ``L_alpha^-1 = (1 - alpha) sum_{t >= 0} alpha^t W^t``: the walks of every length, weighted by
``alpha^t``.

- local search (Iscen et al. CVPR 2017's diffusion): ``L_alpha x = y`` for a query vector ``y``, the
  limit of Zhou et al.'s iteration ``x <- alpha W x + (1 - alpha) y``;
- global centrality: ``L_alpha g = 1``, ``g = (1 - alpha)(I - alpha W)^-1 1``. This is the regularised
  Laplacian form on the *normalised* ``W`` (walks from length 0, scaled by ``1 - alpha``), not the classic
  Katz centrality ``sum_{t >= 1} alpha^t A^t 1`` of the adjacency ``A``; it is proportional to
  networkx's ``katz_centrality(G, alpha, beta=1)`` on the graph of ``W``. Since
  ``W D^1/2 1 = D^1/2 1``, ``L_alpha`` keeps ``D^1/2 1``: on a regular graph ``g = 1``.

``W`` may be a dense or sparse (COO, CSR) torch tensor, a numpy array or a scipy.sparse matrix; torch
inside, on the device of the torch operand, numpy and scipy in float64. Results are numpy arrays when
the input they follow (``y``; for Katz, ``W``) is numpy or scipy.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse
import torch

from coursekit.graphs.solvers import CGResult, conjugate_gradient
from coursekit.graphs.sparse import as_csr, as_torch, solve_dtype, torch_to_scipy

STAGE = 8  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
    return float(alpha)


def _check_graph(W) -> None:
    if not isinstance(W, (torch.Tensor, np.ndarray)) and not scipy.sparse.issparse(W):
        raise TypeError(f"W must be a torch tensor, a numpy array or a scipy.sparse matrix; got {type(W).__name__}")
    if len(W.shape) != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be square (n, n); got {tuple(W.shape)}")


def _graph_tensor(W, dtype: torch.dtype, device) -> torch.Tensor:
    """``W`` in torch, dense or CSR (whose products are the fast ones on a CPU)."""
    W = as_torch(W, "W", dtype, device)
    return W if W.layout == torch.strided else as_csr(W)


def regularised_laplacian(W, alpha: float):
    """``L_alpha = (I - alpha W) / (1 - alpha)`` as a matrix of ``W``'s kind: ``(n, n)`` dense for a dense
    ``W`` (torch or numpy), sparse for a sparse one (torch COO or CSR, coalesced; scipy CSR)."""
    alpha = _check_alpha(alpha)
    _check_graph(W)
    n = W.shape[0]
    host = not isinstance(W, torch.Tensor)
    graph = as_torch(W, "W", torch.float64 if host else None)
    if not graph.dtype.is_floating_point:
        graph = graph.double()
    if graph.layout == torch.strided:
        laplacian = (torch.eye(n, dtype=graph.dtype, device=graph.device) - alpha * graph) / (1 - alpha)
        return laplacian.cpu().numpy() if host else laplacian
    coo = graph.to_sparse_coo().coalesce()
    diagonal = torch.arange(n, device=coo.device).repeat(2, 1)
    identity = torch.sparse_coo_tensor(diagonal, torch.ones(n, dtype=coo.dtype, device=coo.device), (n, n),
                                       check_invariants=False)
    laplacian = ((identity - alpha * coo) / (1 - alpha)).coalesce()
    if host:
        return torch_to_scipy(laplacian)
    return as_csr(laplacian) if graph.layout == torch.sparse_csr else laplacian


def _solve(W, alpha: float, y: torch.Tensor, tol: float, max_iterations: int) -> CGResult:
    """CG on ``L_alpha x = y``, ``y`` a torch tensor on the device ``W`` goes to, in the solve's dtype; the
    operator is applied as ``v / (1 - alpha) - alpha / (1 - alpha) W v`` in one fused product, without
    building ``L_alpha``."""
    graph = _graph_tensor(W, y.dtype, y.device)

    def apply(v):
        product = torch.addmv if v.ndim == 1 else torch.addmm
        return product(v, graph, v, beta=1 / (1 - alpha), alpha=-alpha / (1 - alpha))

    return conjugate_gradient(apply, y, tol=tol, max_iterations=max_iterations)


def _result(result: CGResult, to_numpy: bool) -> CGResult:
    return result._replace(x=result.x.detach().cpu().numpy()) if to_numpy else result


def local_search(W, y, alpha: float = 0.99, tol: float = 1e-6, max_iterations: int = 20) -> CGResult:
    """Solve ``L_alpha x = y`` by conjugate gradient: the diffusion of ``y (n,)`` or ``(n, Q)`` (Q query
    vectors at once) on the graph ``W (n, n)``. Returns a :class:`CGResult` whose ``x`` has ``y``'s shape
    and kind (numpy when ``y`` is numpy)."""
    alpha = _check_alpha(alpha)
    _check_graph(W)
    if not isinstance(y, (torch.Tensor, np.ndarray)):
        raise TypeError(f"y must be a torch tensor or a numpy array; got {type(y).__name__}")
    if y.ndim not in (1, 2) or y.shape[0] != W.shape[0]:
        raise ValueError(f"y must be (n,) or (n, Q) with n = {W.shape[0]} rows to match W {tuple(W.shape)}; "
                         f"got {tuple(y.shape)}")
    if isinstance(W, torch.Tensor) and isinstance(y, torch.Tensor) and W.device != y.device:
        raise ValueError(f"W is on {W.device} but y is on {y.device}; put both on one device")
    device = next((a.device for a in (W, y) if isinstance(a, torch.Tensor)), torch.device("cpu"))
    dtype = solve_dtype(*(a.dtype if isinstance(a, torch.Tensor) else torch.float64 for a in (W, y)))
    result = _solve(W, alpha, torch.as_tensor(y, dtype=dtype, device=device), tol, max_iterations)
    return _result(result, isinstance(y, np.ndarray))


def katz_centrality(W, alpha: float = 0.99, tol: float = 1e-6, max_iterations: int = 20) -> CGResult:
    """The global centrality of every node of ``W (n, n)``: ``L_alpha g = 1`` solved by conjugate gradient,
    ``g = (1 - alpha)(I - alpha W)^-1 1``. Returns a :class:`CGResult` with ``x = g (n,)``, in ``W``'s dtype
    and on its device (a numpy float64 array for numpy or scipy ``W``)."""
    alpha = _check_alpha(alpha)
    _check_graph(W)
    torch_graph = isinstance(W, torch.Tensor)
    dtype = solve_dtype(W.dtype) if torch_graph else torch.float64
    ones = torch.ones(W.shape[0], dtype=dtype, device=W.device if torch_graph else "cpu")
    return _result(_solve(W, alpha, ones, tol, max_iterations), not torch_graph)
