"""Losses for learning an embedding from pairs and triplets, and hard-negative mining (stage 06).

Conventions (the lecture's, not DrLIM's paper): ``t = 1`` for a similar pair, ``t = 0`` for a
dissimilar one, and no factor 1/2:

- contrastive loss (Hadsell, Chopra & LeCun 2006, lecture form):
  ``l = t ||y1 - y2||^2 + (1 - t) [m - ||y1 - y2||]_+^2``; the paper writes ``Y = 0`` for similar pairs
  and halves both terms, which changes nothing but a factor 2 and the meaning of the label;
- triplet loss: ``[m + ||a - p||^2 - ||a - n||^2]_+``;
- Wang & Gupta's ranking loss (ICCV 2015): ``[D(a, p) - D(a, n) + M]_+`` with the cosine distance
  ``D = 1 - cos``, ``M = 0.5``.

Every loss returns the mean over the batch unless ``reduction="sum"`` or ``"none"``. Mining works
on a batch of descriptors (hardest and semi-hard negatives) or on a pool with clusters (Radenovic,
Tolias & Chum: N1, the ``k`` nearest non-matching items; N2, at most one per cluster).
"""

from __future__ import annotations

import torch

STAGE = 6  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

_TINY = 1e-24  # under a square root: a zero distance has a zero (not an infinite) gradient


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


def _pairs(y1: torch.Tensor, y2: torch.Tensor, names=("y1", "y2")) -> None:
    if y1.ndim != 2 or y1.shape != y2.shape:
        raise ValueError(f"{names[0]} and {names[1]} must both have shape (N, D); got {tuple(y1.shape)} and "
                         f"{tuple(y2.shape)}")


def contrastive_loss(y1: torch.Tensor, y2: torch.Tensor, t: torch.Tensor, margin: float = 1.0,
                     reduction: str = "mean") -> torch.Tensor:
    """``t d^2 + (1 - t) [margin - d]_+^2`` per pair, ``d = ||y1 - y2||``; ``t`` is 1 for similar pairs."""
    _pairs(y1, y2)
    if t.shape != (len(y1),):
        raise ValueError(f"t must have shape ({len(y1)},), one label per pair; got {tuple(t.shape)}")
    if margin <= 0:
        raise ValueError(f"margin must be positive; got {margin}")
    t = t.to(y1.dtype)
    squared = (y1 - y2).square().sum(1)
    distance = squared.clamp_min(_TINY).sqrt()
    return _reduce(t * squared + (1 - t) * (margin - distance).clamp_min(0).square(), reduction)


def contrastive_gradient(y1: torch.Tensor, y2: torch.Tensor, t: torch.Tensor, margin: float = 1.0):
    """The gradients of the summed contrastive loss with respect to ``y1`` and ``y2``, by hand:
    ``2 t (y1 - y2) - 2 (1 - t) [m - d]_+ (y1 - y2) / d`` for ``y1``, the opposite for ``y2``."""
    _pairs(y1, y2)
    t = t.to(y1.dtype)[:, None]
    diff = y1 - y2
    distance = diff.square().sum(1, keepdim=True).clamp_min(_TINY).sqrt()
    g = 2 * t * diff - 2 * (1 - t) * (margin - distance).clamp_min(0) * diff / distance
    return g, -g


def spring_force(distance: torch.Tensor, similar: bool, margin: float = 1.0) -> torch.Tensor:
    """The magnitude of the force a pair's loss exerts along the line between the two points, as a
    function of their distance (positive: they attract): ``2 d`` for a similar pair (an attract-only
    spring), ``-2 [m - d]_+`` for a dissimilar one (an m-repulse-only spring: no force beyond ``m``,
    the largest at distance 0)."""
    return 2 * distance if similar else -2 * (margin - distance).clamp_min(0)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.1,
                 reduction: str = "mean") -> torch.Tensor:
    """``[margin + ||a - p||^2 - ||a - n||^2]_+`` per triplet (squared Euclidean distances)."""
    _pairs(anchor, positive, ("anchor", "positive"))
    _pairs(anchor, negative, ("anchor", "negative"))
    gap = (anchor - positive).square().sum(1) - (anchor - negative).square().sum(1)
    return _reduce((margin + gap).clamp_min(0), reduction)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - a.b / (||a|| ||b||)`` row by row."""
    _pairs(a, b, ("a", "b"))
    return 1 - torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12)


def ranking_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.5,
                 reduction: str = "mean") -> torch.Tensor:
    """Wang & Gupta's ``[D(a, p) - D(a, n) + margin]_+`` with the cosine distance ``D``."""
    return _reduce((cosine_distance(anchor, positive) - cosine_distance(anchor, negative) + margin).clamp_min(0),
                   reduction)


def _batch(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if embeddings.ndim != 2 or labels.shape != (len(embeddings),):
        raise ValueError(f"embeddings must be (N, D) and labels (N,); got {tuple(embeddings.shape)} and "
                         f"{tuple(labels.shape)}")
    return torch.cdist(embeddings.float(), embeddings.float()).square()


def hardest_negatives(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """For each item of a batch, the index of the nearest item of another label (the hardest
    negative), or -1 where every item has the same label."""
    d = _batch(embeddings, labels)
    d = d.masked_fill(labels[:, None] == labels[None, :], float("inf"))
    best = d.argmin(1)
    return torch.where(torch.isinf(d.gather(1, best[:, None]).squeeze(1)), torch.full_like(best, -1), best)


def semi_hard_negatives(embeddings: torch.Tensor, labels: torch.Tensor, positives: torch.Tensor,
                        margin: float) -> torch.Tensor:
    """For each anchor ``i`` with positive ``positives[i]``, the nearest negative that is farther than the
    positive but within the margin (``d(a,p) < d(a,n) < d(a,p) + margin``, squared distances: FaceNet's
    semi-hard negatives); where there is none, the hardest negative; -1 where there is no negative."""
    d = _batch(embeddings, labels)
    if positives.shape != labels.shape:
        raise ValueError(f"positives must have shape {tuple(labels.shape)}; got {tuple(positives.shape)}")
    negative = labels[:, None] != labels[None, :]
    to_positive = d.gather(1, positives[:, None].long())
    window = negative & (d > to_positive) & (d < to_positive + margin)
    semi = d.masked_fill(~window, float("inf"))
    choice = semi.argmin(1)
    has_semi = torch.isfinite(semi.gather(1, choice[:, None]).squeeze(1))
    return torch.where(has_semi, choice, hardest_negatives(embeddings, labels))


def mine_negatives(queries: torch.Tensor, pool: torch.Tensor, query_clusters: torch.Tensor,
                   pool_clusters: torch.Tensor, k: int = 5, one_per_cluster: bool = True) -> torch.Tensor:
    """Radenovic et al.'s negatives: for each query (rows of ``queries (Q, D)``), the ``k`` items of
    ``pool (P, D)`` most similar to it (by inner product, the descriptors being l2-normalised) whose cluster
    is not the query's; with ``one_per_cluster`` (N2) at most one per cluster, else (N1) the ``k`` nearest.
    Returns ``(Q, k)`` pool indices, most similar first (-1 where fewer than ``k`` qualify)."""
    if queries.ndim != 2 or pool.ndim != 2 or queries.shape[1] != pool.shape[1]:
        raise ValueError(f"queries (Q, D) and pool (P, D) must share D; got {tuple(queries.shape)} and {tuple(pool.shape)}")
    if query_clusters.shape != (len(queries),) or pool_clusters.shape != (len(pool),):
        raise ValueError("query_clusters and pool_clusters must have one cluster id per row of queries and pool")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    scores = queries.float() @ pool.float().T
    scores = scores.masked_fill(query_clusters[:, None] == pool_clusters[None, :], -float("inf"))
    order = scores.argsort(dim=1, descending=True)  # each query's ranking, ties as argsort orders them
    n_queries, n_pool, k = len(queries), len(pool), int(k)
    device = order.device
    if n_queries == 0 or n_pool == 0:
        return torch.full((n_queries, k), -1, dtype=torch.long, device=queries.device)
    if one_per_cluster:  # cluster ids made 0..C-1, equal exactly where their int() values are
        ids, cluster_of = torch.unique(pool_clusters.long(), return_inverse=True)
        cluster_of = cluster_of.to(device)

    def walk(rows, width: int):
        """The walk down the first ``width`` ranks of ``rows``, all rows at once: its (R, k) picks, and
        which rows need more ranks (the walk neither stopped nor found k)."""
        ranked = order[rows, :width]
        finite = torch.isfinite(scores[rows].gather(1, ranked)).cummin(dim=1).values  # stop at a non-finite
        keep = finite
        if one_per_cluster:  # N2: only the first (most similar) item of each cluster
            cluster = cluster_of[ranked]
            rank = torch.arange(width, device=device).expand_as(ranked)
            first = torch.full((len(ranked), len(ids)), width, dtype=torch.long, device=device)
            first = first.scatter_reduce(1, cluster, rank, reduce="amin")  # each cluster's first rank
            keep = finite & (first.gather(1, cluster) == rank)
        # the first k kept ranks go, in order, to columns 0..k-1; the others to a spare column k
        column = keep.cumsum(dim=1) - 1
        found = column[:, -1] + 1
        column = torch.where(keep & (column < k), column, k)
        picks = torch.full((len(ranked), k + 1), -1, dtype=torch.long, device=device)
        picks = picks.scatter(1, column, ranked)[:, :k]
        return picks, finite[:, -1] & (found < k) & (width < n_pool)

    # a short prefix of each ranking settles nearly every row (N1 always: k ranks); the rest walk it all
    out, unsettled = walk(slice(None), min(n_pool, max(64, 8 * k) if one_per_cluster else k))
    if bool(unsettled.any()):
        rows = unsettled.nonzero().squeeze(1)
        out[rows] = walk(rows, n_pool)[0]
    return out.to(queries.device)
