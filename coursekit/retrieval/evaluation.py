"""Retrieval evaluation as the field computes it (stage 07): rankings by inner product, average precision
with junk images, mAP and mean precision at k, and the Oxford/Paris protocols, old and revisited.

The measure is the one of the Oxford buildings' ``compute_ap.cpp`` and of revisitop's ``compute_map``
(Radenović, Iscen, Tolias, Avrithis & Chum, "Revisiting Oxford and Paris", CVPR 2018), which the
published numbers use:

- **junk** images are deleted from a ranking before anything is counted: they are neither hits nor
  misses, and each positive moves up by the number of junk images ranked before it;
- **AP** is the area under the precision-recall curve by the trapezoid rule: the ``j``-th positive
  (``j = 0, 1, ...``) at junk-free 0-based position ``r`` adds ``(p0 + p1) / (2 n_pos)``, with
  ``p0 = j / r`` (1 when ``r = 0``) and ``p1 = (j + 1) / (r + 1)``; positives never retrieved add
  nothing. This is neither scikit-learn's non-interpolated AP (the mean precision at each hit: one
  positive in second place gives 0.5 there, 0.25 here) nor PASCAL's 11-point AP;
- **mAP** is the mean AP over the queries that have positives: a query whose ``ok`` list is empty
  gets NaN and is left out;
- **mP@k** caps ``k`` at the last retrieved positive: ``kq = min(max pos, k)`` (junk-free, 1-based),
  ``P = #(pos <= kq) / kq``, so positives at ranks 1 and 2 give P@5 = P@10 = 1.

Conventions: descriptors are rows, l2-normalised, compared by inner product. ``ranks`` has **one row
per query** (``ranks[q]`` lists database ids, best first), the layout Python code naturally makes;
revisitop's ``compute_map`` takes the transpose, one column per query (pass ``ranks.T``). Ground truth
``gnd`` is a list with one dict per query holding ``ok`` and ``junk`` id lists; :func:`protocol` makes
it from the revisited annotation (``easy``, ``hard``, ``junk``) and :func:`oxford_protocol` from the
old one (``good``, ``ok``, ``junk``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

STAGE = 7  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

PROTOCOLS = ("easy", "medium", "hard")
_REVISITED_LABELS = ("easy", "hard", "junk")  # the lists of the revisited annotation
# the revisited protocols (Radenović et al. 2018, section 3): which labels are positives and which junk
_PROTOCOL_LABELS = {
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}
_CHUNK_ENTRIES = 1 << 24  # scores per chunk of queries in ranking(): 64 MB of float32 and 128 MB of ids


# -- rankings ------------------------------------------------------------------------------------


def _descriptors(x, name: str, rows: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or numpy array of shape ({rows}, D); got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape ({rows}, D), one descriptor a row; got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must hold floating-point descriptors; got dtype {x.dtype}")
    return x


def ranking(queries, database, k: int | None = None, chunk: int | None = None) -> torch.Tensor:
    """Each query's database ids by descending inner product: ``(Q, k)`` int64, or ``(Q, N)`` with
    ``k=None``, on the descriptors' device.

    ``queries (Q, D)`` and ``database (N, D)`` are l2-normalised descriptors (torch tensors on one
    device, or numpy arrays), so the inner product is the cosine similarity. The scores are computed
    ``chunk`` queries at a time (default: as many as keep a chunk at about 16M scores), in the wider of
    the two dtypes. Ties: with ``k=None`` (a stable sort) equal scores keep ascending database ids,
    as ``np.argsort(-scores, kind="stable")`` orders them; with ``k`` (``torch.topk``) the ``k`` ids
    returned are ordered the same way, but which of several ids tied at exactly the ``k``-th score make
    the cut is topk's choice.
    """
    q, db = _descriptors(queries, "queries", "Q"), _descriptors(database, "database", "N")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries (Q, D) and database (N, D) must share D; got {tuple(q.shape)} and {tuple(db.shape)}")
    if q.device != db.device:
        raise ValueError(f"queries and database must be on one device; got {q.device} and {db.device}")
    n = len(db)
    if k is not None and (isinstance(k, bool) or int(k) != k or not 1 <= k <= n):
        raise ValueError(f"k must be None (the whole ranking) or an integer in [1, {n}]; got {k!r}")
    if chunk is not None and (isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1):
        raise ValueError(f"chunk must be a positive integer (queries per chunk) or None; got {chunk!r}")
    dtype = torch.promote_types(q.dtype, db.dtype)
    q, db = q.to(dtype), db.to(dtype)
    width = n if k is None else int(k)
    rows = int(chunk) if chunk is not None else max(1, _CHUNK_ENTRIES // max(n, 1))
    out = torch.empty(len(q), width, dtype=torch.long, device=q.device)
    for start in range(0, len(q), rows):
        scores = q[start:start + rows] @ db.T
        if k is None:
            out[start:start + rows] = torch.sort(scores, dim=1, descending=True, stable=True).indices
        else:
            top = torch.topk(scores, width, dim=1)
            # topk orders equal scores as it likes: put them in ascending id order (two stable sorts)
            by_id = top.indices.argsort(dim=1)
            ids, values = top.indices.gather(1, by_id), top.values.gather(1, by_id)
            out[start:start + rows] = ids.gather(1, torch.sort(values, dim=1, descending=True, stable=True).indices)
    return out


# -- one query, the reference algorithm ---------------------------------------------------------


def _id_list(values, what: str) -> np.ndarray:
    ids = np.asarray(values)
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    if ids.ndim != 1:
        raise ValueError(f"{what} must be a 1-D list of database ids; got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{what} must hold integer database ids; got dtype {ids.dtype}")
    return ids.astype(np.int64)


def average_precision(ranked, ok, junk=()) -> float:
    """The AP of one query: ``ranked (N,)`` database ids, best first; ``ok`` the ids of its positives,
    ``junk`` the ids to ignore. Trapezoid rule on the precision-recall curve after deleting the junk
    images (the module docstring). NaN when ``ok`` is empty."""
    ranked = _id_list(ranked, "ranked")
    ok, junk = _id_list(ok, "ok"), _id_list(junk, "junk")
    if np.intersect1d(ok, junk).size:
        raise ValueError(f"ok and junk must not share ids; both hold {np.intersect1d(ok, junk).tolist()}")
    if len(ok) == 0:
        return float("nan")
    positions = np.flatnonzero(np.isin(ranked, ok))  # 0-based places of the positives, in rank order
    junk_positions = np.flatnonzero(np.isin(ranked, junk))
    # deleting the junk: each positive moves up by the number of junk images ranked before it
    positions = positions - np.searchsorted(junk_positions, positions)
    area = 0.0
    for j, r in enumerate(positions):  # the j-th positive (0-based) at junk-free position r
        precision_before = 1.0 if r == 0 else j / r
        precision_at = (j + 1) / (r + 1)
        area += (precision_before + precision_at) / 2  # a trapezoid of width 1 / len(ok) in recall
    return area / len(ok)


# -- all queries at once ------------------------------------------------------------------------


class MeanAP(NamedTuple):
    """:func:`mean_average_precision`'s result: ``map`` (a float), ``aps (Q,)``, ``mp`` (one mP@k per
    kappa) and ``precisions (Q, len(kappas))``, NaN for a query without positives. Fractions, not %."""

    map: float
    aps: np.ndarray
    mp: np.ndarray
    precisions: np.ndarray


def _checked_ranks(ranks, n_database: int | None) -> tuple[torch.Tensor, int]:
    """``ranks`` as an int64 tensor ``(Q, K)`` (on its device; a numpy array or list on the CPU) and the
    database size, after checking the shape, the dtype, the range and that no row repeats an id."""
    if not isinstance(ranks, torch.Tensor):
        ranks = torch.from_numpy(np.ascontiguousarray(ranks))  # revisitop's ranks.T is a strided view
    if ranks.ndim != 2:
        raise ValueError(f"ranks must have shape (Q, N), one ranking of database ids a row (revisitop's "
                         f"(N, Q) layout transposed); got {tuple(ranks.shape)}")
    if ranks.dtype.is_floating_point or ranks.dtype.is_complex or ranks.dtype == torch.bool:
        raise TypeError(f"ranks must hold integer database ids; got dtype {ranks.dtype}")
    ranks = ranks.long()
    n_queries, width = ranks.shape
    if n_database is None:
        n_database = width
    elif isinstance(n_database, bool) or int(n_database) != n_database or n_database < width:
        raise ValueError(f"n_database must be an integer >= the ranking length {width}; got {n_database!r}")
    n_database = int(n_database)
    if ranks.numel():
        low, high = (int(v) for v in torch.aminmax(ranks))
        if low < 0 or high >= n_database:
            hint = "" if width < n_database else "; for rankings cut short, pass n_database (the database size)"
            raise ValueError(f"ranks must hold database ids in [0, {n_database}); got ids from {low} to {high}{hint}")
        seen = torch.zeros(n_queries, n_database, dtype=torch.bool, device=ranks.device).scatter_(1, ranks, True)
        if int(seen.count_nonzero()) != ranks.numel():  # one sum for all; the row is looked for only then
            q = int((seen.count_nonzero(1) != width).nonzero()[0, 0])
            values, counts = np.unique(ranks[q].cpu().numpy(), return_counts=True)
            raise ValueError(f"ranks[{q}] lists database id {int(values[counts > 1][0])} more than once; "
                             f"each row must rank each id at most once")
    return ranks, n_database


def _checked_lists(gnd, n_queries: int, n_database: int, keys: tuple[str, ...], optional: tuple[str, ...] = ()):
    """For each of ``keys``, each query's id array: ``lists[k][q]``, checked (types, range); a key of
    ``optional`` that a query's dict leaves out is an empty list."""
    if isinstance(gnd, (str, bytes, dict)) or not hasattr(gnd, "__len__"):
        raise TypeError(f"gnd must be a list with one dict of id lists per query; got {type(gnd).__name__}")
    if len(gnd) != n_queries:
        raise ValueError(f"gnd must hold one dict per query, {n_queries} for ranks of shape ({n_queries}, ...); "
                         f"got {len(gnd)}")
    lists = [[] for _ in keys]
    needed = [key for key in keys if key not in optional]
    wanted = f"an {needed[0]!r} list" if len(needed) == 1 else f"{', '.join(map(repr, needed[:-1]))} and {needed[-1]!r} lists"
    wanted += f" (and optionally {', '.join(map(repr, optional))})" if optional else ""
    for i, g in enumerate(gnd):
        if not hasattr(g, "keys"):
            raise TypeError(f"gnd[{i}] must be a dict with {wanted}; got {type(g).__name__}")
        if any(key not in g for key in needed):
            hint = " (for revisited annotation use protocol(gnd, 'medium'))" if "easy" in g and "ok" in needed else ""
            raise ValueError(f"gnd[{i}] must be a dict with {wanted}; got one with keys {sorted(g.keys())}{hint}")
        for per_query, key in zip(lists, keys):
            ids = _id_list(g.get(key, ()), f"gnd[{i}][{key!r}]")
            if ids.size and (ids.min() < 0 or ids.max() >= n_database):
                raise ValueError(f"gnd[{i}][{key!r}] must hold database ids in [0, {n_database}); got ids from "
                                 f"{ids.min()} to {ids.max()}")
            per_query.append(ids)
    return lists


def _scatter(lists: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (query, id) pairs of per-query id lists, as two flat tensors on ``device``."""
    lengths = np.array([len(ids) for ids in lists], dtype=np.int64)
    rows = np.repeat(np.arange(len(lists)), lengths)
    ids = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    return torch.from_numpy(rows).to(device), torch.from_numpy(ids).to(device)


class _Listed(NamedTuple):
    """The ids the ground truth lists, where the rankings put them: flat, query by query and, within a
    query, in rank order; ``code`` is 1 + the index of the key that lists the id."""

    query: torch.Tensor
    position: torch.Tensor  # 0-based, in the ranking as given (junk included)
    code: torch.Tensor
    counts: torch.Tensor  # (Q, len(keys)): how many ids each query lists under each key, retrieved or not


def _listed(ranks: torch.Tensor, n_database: int, gnd, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> _Listed:
    n_queries, device = len(ranks), ranks.device
    lists = _checked_lists(gnd, n_queries, n_database, keys, optional)
    # a code per (query, database id): which key lists it (0: none, a negative); gathered in rank order
    codes = torch.zeros(n_queries, n_database, dtype=torch.int8, device=device)
    for code, per_query in enumerate(lists, start=1):
        codes[_scatter(per_query, device)] = code
    counts = torch.tensor([[len(ids) for ids in per_query] for per_query in lists], dtype=torch.long)
    counts = counts.T.reshape(n_queries, len(keys)).to(device)
    if int(codes.count_nonzero()) != int(counts.sum()):  # an id written twice: one code overwrote another
        q = int((codes.count_nonzero(1) != counts.sum(1)).nonzero()[0, 0])
        values, times = np.unique(np.concatenate([per_query[q] for per_query in lists]), return_counts=True)
        twice = int(values[times > 1][0])
        under = [repr(key) for key, per_query in zip(keys, lists) for _ in range(int((per_query[q] == twice).sum()))]
        raise ValueError(f"gnd[{q}] lists database id {twice} more than once (under {', '.join(under)}): each id "
                         f"belongs to one list at most")
    ranked = codes.gather(1, ranks)
    query, position = ranked.nonzero(as_tuple=True)  # row-major: query by query, in rank order
    return _Listed(query, position, ranked[query, position], counts)


class _Hits(NamedTuple):
    """The retrieved positives of all queries, flat, query by query in rank order: the query of each,
    its index ``j`` among its query's positives and its junk-free 0-based position ``r``."""

    query: torch.Tensor
    j: torch.Tensor
    r: torch.Tensor
    n_positives: torch.Tensor  # (Q,) |ok| of each query


def _earlier_in_query(flags: torch.Tensor, query: torch.Tensor, n_queries: int) -> torch.Tensor:
    """For each entry of a flat list sorted by query, how many flagged entries of its query precede it."""
    before = flags.cumsum(0) - flags  # flagged entries before this one, all queries
    per_query = torch.bincount(query, minlength=n_queries)
    first = per_query.cumsum(0) - per_query  # where each query's entries start
    return before - before[first[query]]


def _hits(listed: _Listed, positive_codes: tuple[int, ...], junk_codes: tuple[int, ...]) -> _Hits:
    n_queries, device = len(listed.counts), listed.code.device
    is_positive = torch.zeros(listed.counts.shape[1] + 1, dtype=torch.bool, device=device)
    is_positive[list(positive_codes)] = True
    is_junk = torch.zeros_like(is_positive)
    is_junk[list(junk_codes)] = True
    code = listed.code.long()
    positive, junk = is_positive[code], is_junk[code]
    # deleting the junk: a positive moves up by the junk ranked before it in its query
    junk_before = _earlier_in_query(junk.long(), listed.query, n_queries)
    j = _earlier_in_query(positive.long(), listed.query, n_queries)
    r = listed.position - junk_before
    n_positives = listed.counts[:, [c - 1 for c in positive_codes]].sum(1).double()
    return _Hits(listed.query[positive], j[positive].double(), r[positive].double(), n_positives)


def _ok_junk(ranks: torch.Tensor, n_database: int, gnd) -> _Hits:
    return _hits(_listed(ranks, n_database, gnd, ("ok", "junk"), optional=("junk",)), (1,), (2,))


def _average_precisions(hits: _Hits) -> torch.Tensor:
    precision_before = torch.where(hits.r > 0, hits.j / hits.r.clamp_min(1), torch.ones_like(hits.r))
    precision_at = (hits.j + 1) / (hits.r + 1)
    area = torch.zeros_like(hits.n_positives).index_add_(0, hits.query, (precision_before + precision_at) / 2)
    return torch.where(hits.n_positives > 0, area / hits.n_positives.clamp_min(1), float("nan"))


def _precisions(hits: _Hits, kappas: tuple[int, ...]) -> torch.Tensor:
    rank = hits.r + 1  # junk-free, 1-based
    last = torch.zeros_like(hits.n_positives).scatter_reduce_(0, hits.query, rank, reduce="amax")
    kappa = torch.tensor(kappas, dtype=torch.float64, device=rank.device)
    cap = torch.minimum(last[:, None], kappa[None, :])  # (Q, len(kappas)): k, or the last positive's rank if sooner
    within = (rank[:, None] <= cap[hits.query]).double()
    found = torch.zeros_like(cap).index_add_(0, hits.query, within)
    # a query with no positive retrieved (a ranking cut short) has cap 0: its precision is 0
    precision = torch.where(cap > 0, found / cap.clamp_min(1), torch.zeros_like(cap))
    return torch.where(hits.n_positives[:, None] > 0, precision, float("nan"))


def _kappas(kappas) -> tuple[int, ...]:
    values = tuple(kappas)
    if any(isinstance(k, bool) or int(k) != k or k < 1 for k in values):
        raise ValueError(f"kappas must be positive integers (the k of mP@k); got {kappas!r}")
    return tuple(int(k) for k in values)


def average_precisions(ranks, gnd, *, n_database: int | None = None) -> np.ndarray:
    """The AP of every query at once, ``(Q,)`` float64 (NaN where ``ok`` is empty).

    ``ranks (Q, K)``: one ranking of database ids a row, best first (a torch tensor, computed on its
    device, or a numpy array); ``gnd``: one dict per query with ``ok`` and optionally ``junk`` id lists.
    ``n_database`` is the database size, by default ``K`` (full rankings); rankings cut short need it.
    A ``(Q, N)`` label matrix gathered in rank order gives the places of every positive and junk image
    of every query at once; cumulative sums over that short list give each positive's junk-free
    position: no loop over queries in the arithmetic.
    """
    ranks, n_database = _checked_ranks(ranks, n_database)
    return _average_precisions(_ok_junk(ranks, n_database, gnd)).cpu().numpy()


def precisions_at_k(ranks, gnd, kappas=(1, 5, 10), *, n_database: int | None = None) -> np.ndarray:
    """Each query's precision at each ``k`` of ``kappas``, ``(Q, len(kappas))`` (NaN where ``ok`` is
    empty), with revisitop's cap at the last retrieved positive (the module docstring); arguments as
    :func:`average_precisions`."""
    kappas = _kappas(kappas)
    ranks, n_database = _checked_ranks(ranks, n_database)
    return _precisions(_ok_junk(ranks, n_database, gnd), kappas).cpu().numpy()


def _summary(hits: _Hits, kappas: tuple[int, ...]) -> MeanAP:
    aps = _average_precisions(hits).cpu().numpy()
    precisions = _precisions(hits, kappas).cpu().numpy()
    valid = hits.n_positives.cpu().numpy() > 0
    if not valid.any():  # no query has positives: nothing to average
        return MeanAP(float("nan"), aps, np.full(len(kappas), np.nan), precisions)
    return MeanAP(float(aps[valid].mean()), aps, precisions[valid].mean(axis=0), precisions)


def mean_average_precision(ranks, gnd, kappas=(1, 5, 10), *, n_database: int | None = None) -> MeanAP:
    """mAP and mP@k over the queries with positives (a query with an empty ``ok`` is left out of both
    means, as revisitop's ``compute_map`` does), with the per-query values: a :class:`MeanAP`.
    Arguments as :func:`average_precisions` and :func:`precisions_at_k`."""
    kappas = _kappas(kappas)
    ranks, n_database = _checked_ranks(ranks, n_database)
    return _summary(_ok_junk(ranks, n_database, gnd), kappas)


# -- the protocols ------------------------------------------------------------------------------


def _union(g, keys: tuple[str, ...], i: int) -> np.ndarray:
    missing = [key for key in keys if key not in g]
    if missing:
        raise ValueError(f"gnd[{i}] has no {missing[0]!r} list; it has {sorted(g.keys())}")
    return np.unique(np.concatenate([_id_list(g[key], f"gnd[{i}][{key!r}]") for key in keys]))


def _annotations(gnd) -> list:
    if isinstance(gnd, (str, bytes, dict)) or not hasattr(gnd, "__len__"):
        raise TypeError(f"gnd must be a list with one dict per query; got {type(gnd).__name__}")
    for i, g in enumerate(gnd):
        if not hasattr(g, "keys"):
            raise TypeError(f"gnd[{i}] must be a dict of id lists; got {type(g).__name__}")
    return list(gnd)


def protocol(gnd, which: str) -> list[dict[str, np.ndarray]]:
    """The ground truth of one revisited protocol, ``[{"ok": ids, "junk": ids}, ...]`` (sorted int64),
    from the revisited annotation (one dict per query with ``easy``, ``hard`` and ``junk`` lists):

    ========  =============  ==============
    which     ok             junk
    ========  =============  ==============
    easy      easy           junk + hard
    medium    easy + hard    junk
    hard      hard           junk + easy
    ========  =============  ==============
    """
    if which not in _PROTOCOL_LABELS:
        raise ValueError(f"which must be one of {PROTOCOLS}; got {which!r}")
    ok_keys, junk_keys = _PROTOCOL_LABELS[which]
    return [{"ok": _union(g, ok_keys, i), "junk": _union(g, junk_keys, i)} for i, g in enumerate(_annotations(gnd))]


def oxford_protocol(gnd) -> list[dict[str, np.ndarray]]:
    """The old Oxford 5k / Paris 6k protocol: ``ok`` = good + ok, ``junk`` = junk, from one dict per query
    with ``ok`` and ``junk`` lists and, where the annotation keeps it apart, ``good`` (the ``gnd_oxford5k.pkl``
    of cirtorch has merged good into ok already)."""
    return [{"ok": _union(g, ("good", "ok") if "good" in g else ("ok",), i), "junk": _union(g, ("junk",), i)}
            for i, g in enumerate(_annotations(gnd))]


def revisited_map(ranks, gnd, kappas=(1, 5, 10), *, n_database: int | None = None) -> dict[str, MeanAP]:
    """:func:`mean_average_precision` under each revisited protocol: ``{"easy": ..., "medium": ...,
    "hard": ...}``, from ``ranks (Q, K)`` and the revisited annotation ``gnd`` (see :func:`protocol`)."""
    kappas = _kappas(kappas)
    ranks, n_database = _checked_ranks(ranks, n_database)
    listed = _listed(ranks, n_database, gnd, _REVISITED_LABELS)  # once for the three protocols
    code = {label: number for number, label in enumerate(_REVISITED_LABELS, start=1)}
    return {which: _summary(_hits(listed, tuple(code[k] for k in ok), tuple(code[k] for k in junk)), kappas)
            for which, (ok, junk) in _PROTOCOL_LABELS.items()}


def format_revisited(results: dict[str, MeanAP]) -> str:
    """One line of mAP in percent, the way papers quote it: ``"E 84.81  M 64.67  H 38.47"``."""
    missing = [which for which in PROTOCOLS if which not in results]
    if missing:
        raise ValueError(f"results must hold {PROTOCOLS} (what revisited_map returns); {missing} missing")
    return "  ".join(f"{which[0].upper()} {100 * results[which].map:.2f}" for which in PROTOCOLS)
