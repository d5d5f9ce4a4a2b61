"""Whitening of global descriptors (stage 07): PCA-whitening and Radenovic et al.'s learned whitening Lw.

A :class:`Whitening` is an affine map learned on a set of descriptors and applied to others:
``x -> l2n(P (x - m))``, the projection ``P (d, D)`` keeping ``d <= D`` directions, most important first.

- PCA-whitening (Jegou & Chum, ECCV 2012; the yael ``yael_pca`` of Tolias et al.'s R-MAC and cirtorch's
  ``pcawhitenlearn``): ``m`` the mean, ``C = (1/N) sum (x - m)(x - m)^T = V diag(lambda) V^T``,
  ``P = diag(lambda)^(-1/2) V^T``: the training set whitened has zero mean and identity covariance;
- learned whitening Lw (Radenovic, Tolias & Chum, ECCV 2016 / TPAMI 2018; cirtorch's ``whitenlearn``):
  from matching pairs ``(q, p)``, ``m`` the mean of the query descriptors, ``S_w = (1/M) sum (x_q -
  x_p)(x_q - x_p)^T = L L^T`` (Cholesky), ``P_1 = L^{-1}``, ``P_1 (X - m)(X - m)^T P_1^T = U diag(lambda)
  U^T`` over all descriptors ``X`` (no 1/N), ``P = U^T P_1``: matching pairs' differences are whitened,
  the rest of the variance decorrelated, ordered by it.

Everything is learned in float64 with ``torch.linalg.eigh`` (cirtorch's ``np.linalg.eig`` can return
complex values for a near-singular matrix) and applied in the input's dtype. Each eigenvector's sign
is fixed so that its largest entry (in magnitude) is positive, so a whitening is the same on any device.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from dataclasses import dataclass

import torch

from coursekit.retrieval.pooling import l2n

STAGE = 7  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

CHOLESKY_JITTER = 1e-10  # cirtorch's first diagonal jitter, multiplied by 10 until S_w + jitter I is PD
CHOLESKY_TRIES = 21  # up to a jitter of 1e10: beyond that S_w is no covariance (NaN or not symmetric)


@dataclass(frozen=True)
class Whitening:
    """``x (..., D) -> l2n((x - mean) @ projection.T)``, ``(..., d)``, in ``x``'s dtype and on its device.

    ``mean (D,)``, ``projection (d, D)`` (its rows the kept directions, most important first),
    ``eigenvalues (d,)`` (descending: the variances along them; for Lw, of the decorrelated set)."""

    mean: torch.Tensor
    projection: torch.Tensor
    eigenvalues: torch.Tensor

    def __post_init__(self):
        if self.mean.ndim != 1 or self.projection.ndim != 2 or self.projection.shape[1] != len(self.mean):
            raise ValueError(f"mean must be (D,) and projection (d, D); got {tuple(self.mean.shape)} and "
                             f"{tuple(self.projection.shape)}")
        if self.eigenvalues.shape != (len(self.projection),):
            raise ValueError(f"eigenvalues must be ({len(self.projection)},), one per row of projection; got "
                             f"{tuple(self.eigenvalues.shape)}")

    @property
    def dim(self) -> int:
        """``d``, the dimension of the whitened descriptors."""
        return len(self.projection)

    def to(self, device) -> Whitening:
        """The same whitening with its tensors on ``device``."""
        return dataclasses.replace(self, mean=self.mean.to(device), projection=self.projection.to(device),
                                   eigenvalues=self.eigenvalues.to(device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"x must be a floating-point torch tensor (..., {len(self.mean)}); got {got}")
        if x.ndim == 0 or x.shape[-1] != len(self.mean):
            raise ValueError(f"x must be (..., {len(self.mean)}); got {tuple(x.shape)}")
        return l2n((x - self.mean.to(x)) @ self.projection.to(x).T)


def _descriptors(descriptors, minimum: int = 2) -> torch.Tensor:
    if not isinstance(descriptors, torch.Tensor) or not descriptors.dtype.is_floating_point:
        got = descriptors.dtype if isinstance(descriptors, torch.Tensor) else type(descriptors).__name__
        raise TypeError(f"descriptors must be a floating-point torch tensor (N, D); got {got}")
    if descriptors.ndim != 2 or len(descriptors) < minimum or descriptors.shape[1] == 0:
        raise ValueError(f"descriptors must be (N, D) with N >= {minimum}; got {tuple(descriptors.shape)}")
    if not bool(torch.isfinite(descriptors).all()):
        raise ValueError("descriptors must be finite; they hold NaN or infinite values")
    return descriptors.double()


def _check_dim(dim, size: int) -> None:
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not 1 <= dim <= size):
        raise ValueError(f"dim must be None or an integer in 1..{size} (the descriptors' D); got {dim!r}")


def _descending_eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (columns) of a symmetric matrix, each vector's
    largest-magnitude entry positive."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    values, vectors = values.flip(0), vectors.flip(1)
    largest = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors.gather(0, largest[None]))
    return values, vectors * torch.where(signs == 0, 1.0, signs)


def pca_whitening(descriptors: torch.Tensor, dim: int | None = None, shrinkage: float = 0.0) -> Whitening:
    """PCA-whitening learned on ``descriptors (N, D)``: ``P = diag(lambda)^(-1/2) V^T`` restricted to the
    ``dim`` largest eigenvalues ``lambda`` of the covariance (with 1/N).

    When ``N <= D`` (or the descriptors span less than D dimensions) the covariance is singular: its
    rank is the number of eigenvalues above ``max(N, D) * eps(float64)`` times the largest, at most
    ``N - 1``. ``dim=None`` keeps those non-degenerate directions (all D for a full-rank covariance);
    a ``dim`` above the rank is an error (whitening would divide by a zero eigenvalue).

    ``shrinkage`` ``s`` in [0, 1] learns on ``(1 - s) C + s (tr C / D) I`` instead (every eigenvalue
    at least ``s tr C / D``, the eigenvectors unchanged), which keeps all D directions of a singular
    covariance usable; the training set is then no longer whitened exactly.
    """
    x = _descriptors(descriptors)
    count, size = x.shape
    _check_dim(dim, size)
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, numbers.Real) or not 0 <= shrinkage <= 1:
        raise ValueError(f"shrinkage must be a number in [0, 1]; got {shrinkage!r}")
    mean = x.mean(dim=0)
    centred = x - mean
    covariance = centred.T @ centred / count
    if shrinkage:
        identity = torch.eye(size, dtype=x.dtype, device=x.device)
        covariance = (1 - shrinkage) * covariance + shrinkage * covariance.trace() / size * identity
    eigenvalues, vectors = _descending_eigh(covariance)
    tolerance = eigenvalues[0].clamp_min(0) * max(count, size) * torch.finfo(torch.float64).eps
    rank = int((eigenvalues > tolerance).sum())
    if rank == 0:
        raise ValueError(f"descriptors must vary: all N={count} rows are equal, so the covariance is 0")
    if dim is None:
        dim = rank
    elif dim > rank:
        raise ValueError(f"dim={dim} exceeds the rank {rank} of the covariance of N={count} descriptors of D={size} "
                         f"dimensions (at most N - 1 for N <= D); ask for dim <= {rank}, or use shrinkage > 0")
    eigenvalues = eigenvalues[:dim]
    projection = vectors[:, :dim].T / eigenvalues.sqrt()[:, None]
    return Whitening(mean, projection, eigenvalues)


def _index(index, count: int, name: str, device) -> torch.Tensor:
    index = torch.as_tensor(index, device=device)
    if index.ndim != 1 or len(index) == 0 or index.dtype.is_floating_point or index.dtype == torch.bool:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of integer indices; got {index.dtype} "
                         f"{tuple(index.shape)}")
    if bool(((index < 0) | (index >= count)).any()):
        raise ValueError(f"{name} must index the {count} descriptors (0..{count - 1}); got values from "
                         f"{int(index.min())} to {int(index.max())}")
    return index.long()


def _cholesky_with_jitter(matrix: torch.Tensor) -> torch.Tensor:
    """The lower Cholesky factor of ``matrix + alpha I``, alpha = 0, then 1e-10, x10 until positive definite
    (every pivot above ``n eps`` times the largest diagonal entry)."""
    identity = torch.eye(len(matrix), dtype=matrix.dtype, device=matrix.device)
    jitter = 0.0
    for _ in range(CHOLESKY_TRIES + 1):
        factor, info = torch.linalg.cholesky_ex(matrix + jitter * identity)
        # a singular matrix can factor with pivots that are only rounding errors (how small depends on the
        # BLAS): a pivot below n eps times the largest diagonal entry counts as a failure too
        pivots = factor.diagonal().square()
        floor = len(matrix) * torch.finfo(matrix.dtype).eps * float(matrix.diagonal().abs().max())
        if int(info) == 0 and bool((pivots > floor).all()):
            if jitter:
                warnings.warn(f"learned_whitening: S_w is not positive definite (fewer independent pairs than "
                              f"dimensions?); added {jitter:.0e} on its diagonal", RuntimeWarning, stacklevel=3)
            return factor
        jitter = CHOLESKY_JITTER if jitter == 0 else jitter * 10
    raise ValueError(f"S_w is not positive definite even with {jitter / 10:.0e} on its diagonal")


def learned_whitening(descriptors: torch.Tensor, query_index, positive_index, dim: int | None = None) -> Whitening:
    """Lw learned on ``descriptors (N, D)`` and the matching pairs ``(descriptors[query_index[i]],
    descriptors[positive_index[i]])`` (two ``(M,)`` integer tensors or sequences); ``dim`` keeps the first
    ``dim`` rows of ``P`` (default all D).

    ``S_w`` needs about D independent pairs to be positive definite; otherwise the Cholesky factor is
    taken of ``S_w + alpha I`` with the smallest alpha in 1e-10, 1e-9, ... that works (cirtorch's
    jitter, absolute), with a ``RuntimeWarning``; then ``P S_w P^T`` is only close to I.
    """
    x = _descriptors(descriptors)
    count, size = x.shape
    _check_dim(dim, size)
    queries = _index(query_index, count, "query_index", x.device)
    positives = _index(positive_index, count, "positive_index", x.device)
    if queries.shape != positives.shape:
        raise ValueError(f"query_index and positive_index must pair up, one positive per query; got "
                         f"{tuple(queries.shape)} and {tuple(positives.shape)}")
    mean = x[queries].mean(dim=0)
    differences = x[queries] - x[positives]
    within = differences.T @ differences / len(differences)
    factor = _cholesky_with_jitter(within)
    identity = torch.eye(size, dtype=x.dtype, device=x.device)
    whiten_pairs = torch.linalg.solve_triangular(factor, identity, upper=False)  # P_1 = L^{-1}
    decorrelate = (x - mean) @ whiten_pairs.T
    eigenvalues, rotation = _descending_eigh(decorrelate.T @ decorrelate)
    dim = size if dim is None else int(dim)
    return Whitening(mean, (rotation.T @ whiten_pairs)[:dim], eigenvalues[:dim])
