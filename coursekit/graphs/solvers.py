"""Conjugate gradient for symmetric positive-definite systems ``A x = b``, many right-hand sides at once
(stage 08: the solver of diffusion and of graph centrality).

Hestenes & Stiefel's CG without a preconditioner, the ``pcg(A, b, tol, maxit)`` that the diffusion of
Iscen et al. (CVPR 2017) calls with ``tol = 1e-6`` and ``maxit = 20``::

    r_0 = b - A x_0,  p_0 = r_0
    alpha_t = r_t^T r_t / p_t^T A p_t,   x_{t+1} = x_t + alpha_t p_t,   r_{t+1} = r_t - alpha_t A p_t
    beta_t = r_{t+1}^T r_{t+1} / r_t^T r_t,   p_{t+1} = r_{t+1} + beta_t p_t

Conventions:

- stopping rule of MATLAB's ``pcg``: a column is done once ``||r|| <= tol ||b||``, ``r`` the residual
  the recursion carries (as pcg's and scipy's loops test it). A right-hand side ``b = 0`` has the solution
  ``x = 0`` (whatever ``x0``) and needs no iteration;
- ``b (n, Q)`` holds Q independent systems solved in lock step: each column has its own ``alpha`` and
  ``beta``, the operator is applied to the whole ``(n, Q)`` block of directions at once, and a column that
  has converged stops changing while the others go on (by masks, so a column's iterates are those of a
  solve of that column alone);
- when the iterations run out first, ``x`` is the last iterate, as scipy's ``cg`` returns it (MATLAB's
  ``pcg`` may return its smallest-residual iterate instead);
- torch inside, on the device of the torch operand (``A`` or ``b``; two on different devices are
  refused): numpy arrays and scipy.sparse matrices become float64 tensors, every sparse matrix a CSR one
  with int32 indices (the fast products on a CPU), and the result is a numpy array when ``b`` is one.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import scipy.sparse
import torch

from coursekit.graphs.sparse import as_csr as _as_csr
from coursekit.graphs.sparse import as_torch as _as_torch
from coursekit.graphs.sparse import solve_dtype as _solve_dtype

STAGE = 8  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


class CGResult(NamedTuple):
    """What :func:`conjugate_gradient` returns.

    ``x``: the solution, of ``b``'s shape and kind; ``iterations``: the products with ``A`` done (the most
    any column needed); ``residuals``: ``iterations + 1`` relative residual norms ``||r_t|| / ||b||``, the
    largest over the columns, from the start ``t = 0`` to the end; ``converged``: every column met the
    stopping rule."""

    x: torch.Tensor | np.ndarray
    iterations: int
    residuals: list[float]
    converged: bool


def _block_operator(matrix, b: torch.Tensor, numpy_mode: bool):
    """``P (n, Q) -> A P (n, Q)`` for a matrix (already a torch tensor) or a callable, which receives the
    directions in ``b``'s shape and kind (a numpy array in numpy mode)."""
    n, q = b.shape[0], (b.shape[1] if b.ndim == 2 else 1)
    if isinstance(matrix, torch.Tensor):
        return lambda block: matrix @ block

    def apply(block):
        v = block if b.ndim == 2 else block[:, 0]
        out = matrix(v.numpy() if numpy_mode else v)
        out = torch.as_tensor(out, dtype=b.dtype, device=b.device)
        if out.shape != v.shape:
            raise ValueError(f"matrix(v) must return A v of v's shape {tuple(v.shape)}; got {tuple(out.shape)}")
        return out.reshape(n, q)

    return apply


def _prepare(matrix, b, x0):
    """Everything in torch on one device and dtype: ``(operator, b (n, Q), x0 (n, Q) or None, numpy_mode)``,
    ``numpy_mode`` when ``b`` is a numpy array (the result goes back to numpy)."""
    numpy_mode = isinstance(b, np.ndarray)
    is_matrix = isinstance(matrix, (torch.Tensor, np.ndarray)) or scipy.sparse.issparse(matrix)
    if not is_matrix and not callable(matrix):
        raise TypeError("matrix must be a torch tensor, a numpy array, a scipy.sparse matrix or a callable "
                        f"v -> A v; got {type(matrix).__name__}")
    if isinstance(matrix, torch.Tensor) and matrix.layout not in (torch.strided, torch.sparse_coo, torch.sparse_csr):
        raise TypeError(f"matrix must be dense, sparse COO or sparse CSR; got layout {matrix.layout}")
    if not isinstance(b, (torch.Tensor, np.ndarray)):
        raise TypeError(f"b must be a torch tensor or a numpy array; got {type(b).__name__}")
    if is_matrix and (len(matrix.shape) != 2 or matrix.shape[0] != matrix.shape[1]):
        raise ValueError(f"matrix must be square (n, n); got {tuple(matrix.shape)}")
    if b.ndim not in (1, 2):
        raise ValueError(f"b must be (n,) or (n, Q); got {tuple(b.shape)}")
    if is_matrix and b.shape[0] != matrix.shape[0]:
        raise ValueError(f"b must have n = {matrix.shape[0]} rows to match matrix {tuple(matrix.shape)}; "
                         f"got {tuple(b.shape)}")
    if b.ndim == 2 and b.shape[1] == 0:
        raise ValueError(f"b must have at least one column; got {tuple(b.shape)}")
    if x0 is not None and tuple(x0.shape) != tuple(b.shape):
        raise ValueError(f"x0 must have b's shape {tuple(b.shape)}; got {tuple(x0.shape)}")

    # the device: that of the torch operands (which must agree), else the CPU
    torch_operands = [a for a in (matrix, b, x0) if isinstance(a, torch.Tensor)]
    device = torch_operands[0].device if torch_operands else torch.device("cpu")
    operands = [a for a in (matrix if is_matrix else None, b, x0) if a is not None]
    # numpy and scipy operands are solved in float64
    dtype = _solve_dtype(*(a.dtype if isinstance(a, torch.Tensor) else torch.float64 for a in operands))
    b_t = _as_torch(b, "b", dtype, device).contiguous()  # a column of a block (y[:, q]) is strided: slow products
    x0_t = None if x0 is None else _as_torch(x0, "x0", dtype, device).reshape(b_t.shape[0], -1)
    if is_matrix:
        matrix = _as_torch(matrix, "matrix", dtype, device)
        if matrix.layout != torch.strided:
            matrix = _as_csr(matrix)
    operator = _block_operator(matrix, b_t, numpy_mode)
    return operator, b_t.reshape(b_t.shape[0], -1), x0_t, numpy_mode


def conjugate_gradient(matrix, b, *, tol: float = 1e-6, max_iterations: int = 20, x0=None) -> CGResult:
    """Solve ``A x = b`` for a symmetric positive-definite ``A`` by conjugate gradient.

    ``matrix``: ``A (n, n)``, a dense or sparse (COO, CSR) torch tensor, a numpy array, a scipy.sparse
    matrix, or a callable ``v -> A v`` taking and returning ``b``'s shape and kind (``(n,)`` or ``(n, Q)``;
    numpy arrays when ``b`` is one). ``b (n,)`` or ``(n, Q)``: Q right-hand sides solved together.
    ``x0``: the starting point (default 0), ``b``'s shape. A column stops at ``||r|| <= tol ||b||`` or after
    ``max_iterations``. Returns a :class:`CGResult`; ``x`` has ``b``'s shape, a numpy array when ``b`` is
    one. A direction ``p`` with ``p^T A p <= 0`` shows that ``A`` is not positive definite: ValueError.
    """
    if not isinstance(tol, numbers.Real) or not 0 <= tol < float("inf"):
        raise ValueError(f"tol must be a finite number >= 0; got {tol!r}")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, numbers.Integral) or max_iterations < 0:
        raise ValueError(f"max_iterations must be an integer >= 0; got {max_iterations!r}")
    operator, rhs, x, numpy_mode = _prepare(matrix, b, x0)

    if not bool(torch.isfinite(rhs).all()):
        raise ValueError("b must be finite; it holds an infinity or a NaN")
    b_norm = torch.linalg.vecdot(rhs, rhs, dim=0).sqrt()  # as the residuals' norms are taken: ||r_0|| / ||b|| = 1
    threshold = tol * b_norm
    if x is None:
        x, r = torch.zeros_like(rhs), rhs.clone()
    else:
        x = torch.where(b_norm > 0, x, 0)  # b = 0 has x = 0 whatever the start, as in pcg
        r = rhs - operator(x)
    rho = torch.linalg.vecdot(r, r, dim=0)
    r_norms = [rho.sqrt()]
    # A column is active while ||r|| > tol ||b||. An inactive column's alpha and beta are 0: its x and r no
    # longer change, so its ||r|| stays below the threshold, and its direction stays r: masks, no branches.
    active = r_norms[-1] > threshold
    p = r
    broken = torch.zeros((), dtype=torch.bool, device=rhs.device)
    iterations = 0
    while True:
        going, not_definite = torch.stack((active.any(), broken)).tolist()  # one host sync per iteration
        if not_definite:
            column = int((~(curvature > 0) & was_active).nonzero()[0, 0])
            raise ValueError(f"matrix is not positive definite: p^T A p = {float(curvature[column]):.3g} <= 0 for "
                             f"column {column} at iteration {iterations}")
        if not going or iterations == max_iterations:
            break
        q = operator(p)
        curvature = torch.linalg.vecdot(p, q, dim=0)
        was_active = active
        broken = (active & ~(curvature > 0)).any()  # NaN too; raised at the next sync, before x is returned
        alpha = rho / torch.where(active, curvature, float("inf"))  # 0 for the inactive columns
        x = torch.addcmul(x, alpha, p)
        r = torch.addcmul(r, alpha, q, value=-1)
        rho_next = torch.linalg.vecdot(r, r, dim=0)
        r_norms.append(rho_next.sqrt())
        active = r_norms[-1] > threshold
        p = torch.addcmul(r, torch.where(active, rho_next / rho, 0), p)  # where() drops an inactive 0/0
        rho = rho_next
        iterations += 1

    relative = torch.stack(r_norms) / torch.where(b_norm > 0, b_norm, 1)  # (iterations + 1, Q); 0 where b = 0
    residuals = relative.amax(1).tolist()
    x = x.reshape(b.shape)
    if numpy_mode:
        x = x.detach().cpu().numpy()
    return CGResult(x, iterations, residuals, not going)
