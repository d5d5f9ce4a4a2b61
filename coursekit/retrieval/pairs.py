"""Pairs for learning an embedding (stage 06): DrLIM's similar pairs, each sample with its ``k`` Euclidean
nearest neighbours in pixel space, found by chunked matrix products on the samples' device, and
dissimilar pairs drawn at random among the others, on the device too."""

from __future__ import annotations

import torch

STAGE = 6  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


def euclidean_knn(x: torch.Tensor, k: int = 5, chunk: int = 1024) -> torch.Tensor:
    """``(N, k)`` indices of each row's ``k`` nearest other rows of ``x (N, ...)`` (flattened) by Euclidean
    distance, nearest first; never the row itself. Computed ``chunk`` rows at a time with
    ``||a||^2 - 2 a.b + ||b||^2``, in float64 for rows of grey levels."""
    if x.ndim < 2:
        raise ValueError(f"x must have one sample per row, shape (N, ...); got {tuple(x.shape)}")
    n = len(x)
    if int(k) != k or not 1 <= k < n:
        raise ValueError(f"k must be an integer in [1, {n - 1}] for {n} samples; got {k!r}")
    flat = x.reshape(n, -1).double()
    norms = flat.square().sum(1)
    out = torch.empty(n, int(k), dtype=torch.long, device=x.device)
    for start in range(0, n, chunk):
        rows = flat[start:start + chunk]
        d = norms[start:start + chunk, None] - 2 * rows @ flat.T + norms[None, :]
        d[torch.arange(len(rows), device=x.device), torch.arange(start, start + len(rows), device=x.device)] = float("inf")
        out[start:start + chunk] = d.topk(int(k), dim=1, largest=False).indices
    return out


def knn_pairs(x: torch.Tensor, k: int = 5, chunk: int = 1024) -> torch.Tensor:
    """DrLIM's similar pairs: ``(N k, 2)`` index pairs ``(i, j)``, ``j`` among the ``k`` nearest neighbours of ``i``."""
    neighbours = euclidean_knn(x, k, chunk)
    first = torch.arange(len(x), device=x.device).repeat_interleave(neighbours.shape[1])
    return torch.stack([first, neighbours.reshape(-1)], 1)


def dissimilar_pairs(n: int, similar: torch.Tensor, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(count, 2)`` random pairs ``(i, j)``, ``i != j``, that are not in ``similar (M, 2)`` in either order,
    drawn on ``similar``'s device (rejection sampling: the similar pairs are a tiny share of all pairs)."""
    device = similar.device
    if count < 0 or n < 2:
        raise ValueError(f"need n >= 2 samples and count >= 0; got n={n}, count={count}")
    taken = torch.cat([similar[:, 0] * n + similar[:, 1], similar[:, 1] * n + similar[:, 0]]).unique()
    found = torch.empty(0, 2, dtype=torch.long, device=device)
    for _ in range(100):
        need = count - len(found)
        if need <= 0:
            break
        draw = torch.randint(0, n, (2 * need + 16, 2), device=device, generator=generator)
        codes = draw[:, 0] * n + draw[:, 1]
        keep = (draw[:, 0] != draw[:, 1]) & ~torch.isin(codes, taken)
        found = torch.cat([found, draw[keep][:need]])
    if len(found) < count:
        raise ValueError(f"could not draw {count} dissimilar pairs among {n} samples: too few pairs are left")
    return found
