"""Stage 07 (image retrieval evaluation): two figures, each measured on one device in this one run.

1. ``eval``: the whole evaluation of a retrieval run, from the head feature maps of the database and
   query images to mAP under the three revisited protocols (Easy, Medium and Hard) and mP@1, 5, 10.
   The maps are random ReLU maps ``relu(z)``, ``z`` standard normal, of EfficientNet-Lite0's head on
   240x320 images (1280 x 8 x 10), at ROxford's size (70 queries, 4993 database images; ``--quick``:
   20 x 1000), with made-up ground truth: per query, easy, hard and junk database images, the easy
   and hard ones made from the query's ``z`` (correlation 0.4 and 0.25 with it, the rest fresh noise),
   so that the mAPs come out E > M > H as on the real sets. The maps are made chunk by chunk from one
   seeded generator and kept on the device, in float32, in chunks (500 maps, 200 MB, on a GPU; 64 on a
   CPU, whose caches the smaller batches fit: a 500-map batch is slower there). Whitening is learned
   on the descriptors of a separate set of 2000 maps (1000 with ``--quick``), pooled once before the
   clocks start, as one learns on Paris to test on Oxford. Three stages, timed one by one, each for
   both descriptors, R-MAC (3 levels, 20 regions of the 8x10 map) and GeM (p = 3):

   - coursekit: (1) pooling, ``rmac(maps)`` and ``l2n(gem(maps))``, batched, one chunk at a time;
     (2) ``pca_whitening(train, 512)`` (torch ``eigh`` in float64) applied to all descriptors in one
     matrix product; (3) ``ranking`` and ``revisited_map``, all on the device;
   - baseline, in the style of the public scripts (cirtorch's ``extract_vectors``, ``pcawhitenlearn``
     and ``whitenapply``, revisitop's ``compute_map``): (1) each image's map pooled on its own on the
     device, R-MAC by a Python loop over its regions (``rmac_regions``, computed once: MAC, l2, sum,
     l2), GeM by ``clamp``, ``pow``, ``mean``, ``pow``, l2, each vector copied to a column of a host
     array; (2) whitening learned by numpy's ``eigh`` of the float64 covariance (``P`` kept in float32,
     the descriptors' dtype, as cirtorch's is) and applied as ``whitenapply`` does, one ``np.dot`` on
     the ``(D, N)`` array; (3) numpy scores, ``np.argsort`` per query and the per-query Python AP loop
     below. Printed: each stage's median time, the total ratio (the goal is >= 10x), and how far the
     two ways agree: the pooled descriptors, the whitened scores, the mAPs and mP@k (the script fails
     beyond 1e-4: float32 scores from two libraries can order near-ties differently) and, exactly,
     the per-query APs of the baseline's ranking as coursekit evaluates it (beyond 1e-12).

   Then ranking + mAP alone, on random l2-normalised descriptors (D = 1280) with made-up ground truth
   as above (the easy and hard positives noisy copies of the query), at ROxford's size and a bigger
   one (1000 queries, 20,000 images): coursekit's ``ranking`` (matrix products and a stable sort, in
   chunks of queries, on the device) and ``revisited_map`` (a label matrix and cumulative sums, all
   queries at once) against the baseline of revisitop's ``example_evaluate`` and ``compute_map``: the
   scores by one numpy matrix product on the host (float32), ``np.argsort`` per query, then for each
   protocol and query the positions of its positives and junk with ``np.isin``, a Python loop moving
   the positives up past the junk, a Python loop over the positives for the trapezoids, and the capped
   precisions at k. The same agreement checks.

2. ``extract``: images per second of feature extraction with the pretrained EfficientNet-Lite0
   (``model.features(preprocess(x))``, eval mode, no gradients) on batches of random uint8 images of
   240x320 made and kept on the device (no host round trip per image), batch sizes 1 and 32, and the
   ratio of the two.

Warm-up runs are left out of every timing (for the whole evaluation, one run of each way on the queries
and the first chunk, and then the two ways alternate run by run, so that other work on a shared
machine slows both alike); CUDA is synchronised before each clock is read.

    python benchmarks/retrieval_eval.py [--quick] [--device cuda] [--only eval|extract]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

import coursekit
from timing import describe
from coursekit.nets.pretrained import load_efficientnet_lite0, preprocess
from coursekit.nets.training import synchronized_clock
from coursekit.retrieval.evaluation import PROTOCOLS, format_revisited, ranking, revisited_map
from coursekit.retrieval.pooling import gem, l2n, rmac, rmac_regions
from coursekit.retrieval.whitening import pca_whitening

DIM, KAPPAS = 1280, (1, 5, 10)
GOAL = 10.0  # figure 1: coursekit's whole evaluation >= 10x the per-image, per-query baseline
EASY_NOISE, HARD_NOISE = 9.0, 13.0  # the norm of the noise added to a unit query to make a positive
SIZES = {"ROxford-sized": (70, 4993), "bigger": (1000, 20000)}
QUICK_BIGGER = (200, 5000)
MAP_SHAPE = (DIM, 8, 10)  # EfficientNet-Lite0's head on a 240x320 image: stride 32
MAP_SIZE, QUICK_MAP_SIZE = (70, 4993), (20, 1000)  # (queries, database images) of the whole evaluation
TRAIN_MAPS, QUICK_TRAIN_MAPS = 2000, 1000  # the separate set the whitening is learned on
EASY_SHARE, HARD_SHARE = 0.4, 0.25  # the correlation of a positive's pre-ReLU map with its query's
WHITEN_DIM, GEM_P = 512, 3.0
L2_EPS = 1e-6  # cirtorch's l2n: x / (||x|| + eps)
# maps per batch: a CPU pools 64-map chunks (26 MB) faster than 500-map ones (200 MB), whose
# temporaries outgrow its caches (1.8 s against 2.5 s per 1000 maps on one Xeon thread); a GPU
# wants big batches
CHUNKS = {"cuda": 500, "cpu": 64}
STAGES = ("pooling", "whitening", "ranking + mAP")
POOLINGS = ("R-MAC", "GeM")


def timed(step, repeats: int, warmup: int, device: torch.device):
    """The median wall time of ``step()`` over ``repeats`` calls after ``warmup`` untimed ones, and what
    the last call returned."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = synchronized_clock(device)
        result = step()
        times.append(synchronized_clock(device) - start)
    return statistics.median(times), result


# -- 1. the evaluation: made-up data --------------------------------------------------------------


def made_up_ground_truth(n_queries: int, n_database: int, rng: np.random.Generator):
    """Revisited-style ground truth: each query owns its own positives, up to ``n_database // n_queries``
    of them, easy and hard ones about 2 : 3, and junk images drawn among all the others. Returns
    ``gnd`` and, for the positives, flat: their database ids, their queries and whether they are hard."""
    share = n_database // n_queries
    owned = rng.permutation(n_database)
    gnd, hard = [], []
    for q in range(n_queries):
        mine = owned[q * share:(q + 1) * share]
        n_easy, n_hard = int(rng.integers(1, 0.4 * share + 1)), int(rng.integers(1, 0.6 * share + 1))
        others = np.setdiff1d(np.arange(n_database), mine[:n_easy + n_hard], assume_unique=True)
        junk = rng.choice(others, int(rng.integers(0, 0.4 * share + 1)), replace=False)
        gnd.append({"easy": mine[:n_easy], "hard": mine[n_easy:n_easy + n_hard], "junk": junk, "bbx": [0.0, 0.0, 1.0, 1.0]})
        hard.append(np.r_[np.zeros(n_easy, dtype=bool), np.ones(n_hard, dtype=bool)])
    rows = np.concatenate([np.r_[g["easy"], g["hard"]] for g in gnd])
    owners = np.repeat(np.arange(n_queries), [len(g["easy"]) + len(g["hard"]) for g in gnd])
    return gnd, rows, owners, np.concatenate(hard)


def made_up_benchmark(n_queries: int, n_database: int, device: torch.device, seed: int = 0):
    """Random unit descriptors on ``device`` and :func:`made_up_ground_truth`: the easy positives are the
    query plus some noise, the hard ones more noise."""
    generator = torch.Generator(device).manual_seed(seed)
    unit = torch.nn.functional.normalize
    queries = unit(torch.randn(n_queries, DIM, device=device, generator=generator), dim=1)
    database = unit(torch.randn(n_database, DIM, device=device, generator=generator), dim=1)
    gnd, rows, owners, hard = made_up_ground_truth(n_queries, n_database, np.random.default_rng(seed))
    noise = np.where(hard, HARD_NOISE, EASY_NOISE) / np.sqrt(DIM)
    scale = torch.from_numpy(noise).float().to(device)[:, None]
    rows, owners = torch.from_numpy(rows).to(device), torch.from_numpy(owners).to(device)
    database[rows] = unit(queries[owners] + scale * torch.randn(len(rows), DIM, device=device, generator=generator), dim=1)
    return queries, database, gnd


def coursekit_pool(maps: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"R-MAC": (n, K), "GeM": (n, K)}``, l2-normalised, of maps ``(n, K, H, W)``, batched."""
    return {"R-MAC": rmac(maps), "GeM": l2n(gem(maps, GEM_P))}


def made_up_maps(n_queries: int, n_database: int, n_train: int, chunk: int, device: torch.device, seed: int = 0):
    """Random ReLU head maps ``(n, *MAP_SHAPE)`` on ``device``, made and kept in chunks of ``chunk``: the
    queries' and the database's (lists of chunks), and, of a separate set of ``n_train`` maps, the
    pooled descriptors ``{pooling: (n_train, K)}`` to learn the whitening on; and the ground truth.

    A positive's pre-ReLU map is ``c z_query + sqrt(1 - c^2) z`` with fresh noise ``z`` and ``c`` the
    easy or hard share; every other map is ``relu(z)``."""
    generator = torch.Generator(device).manual_seed(seed)
    gnd, rows, owners, hard = made_up_ground_truth(n_queries, n_database, np.random.default_rng(seed))
    query_z = torch.randn(n_queries, *MAP_SHAPE, device=device, generator=generator)
    rows = torch.from_numpy(rows).to(device)
    owner = torch.full((n_database,), -1, dtype=torch.long, device=device)
    owner[rows] = torch.from_numpy(owners).to(device)
    share = torch.zeros(n_database, device=device)
    share[rows] = torch.from_numpy(np.where(hard, HARD_SHARE, EASY_SHARE)).float().to(device)
    database = []
    for start in range(0, n_database, chunk):
        z = torch.randn(min(chunk, n_database - start), *MAP_SHAPE, device=device, generator=generator)
        positives = (owner[start:start + len(z)] >= 0).nonzero()[:, 0]
        c = share[start + positives].reshape(-1, 1, 1, 1)
        z[positives] = c * query_z[owner[start + positives]] + (1 - c**2).sqrt() * z[positives]
        database.append(z.relu_())
    queries = list(query_z.relu_().split(chunk))
    sizes = [min(chunk, n_train - start) for start in range(0, n_train, chunk)]
    pieces = [coursekit_pool(torch.randn(size, *MAP_SHAPE, device=device, generator=generator).relu_())
              for size in sizes]
    train = {name: torch.cat([piece[name] for piece in pieces]) for name in POOLINGS}
    return queries, database, train, gnd


# -- 1. the evaluation: the per-query baseline ------------------------------------------------------


def loop_average_precision(ranked: np.ndarray, ok: np.ndarray, junk: np.ndarray, kappas) -> tuple[float, list[float]]:
    """One query as the public scripts compute it: positions with np.isin, loops for the junk and the AP."""
    positives = np.arange(len(ranked))[np.isin(ranked, ok)]
    junk_places = np.arange(len(ranked))[np.isin(ranked, junk)]
    skipped, next_junk = 0, 0
    for i in range(len(positives)):  # each positive moves up past the junk ranked before it
        while next_junk < len(junk_places) and junk_places[next_junk] < positives[i]:
            skipped += 1
            next_junk += 1
        positives[i] -= skipped
    ap = 0.0
    for j, r in enumerate(positives):
        ap += ((1.0 if r == 0 else j / r) + (j + 1) / (r + 1)) / (2 * len(ok))
    places = positives + 1
    precisions = []
    for k in kappas:
        cap = min(int(places.max()), k)
        precisions.append(float((places <= cap).sum()) / cap)
    return ap, precisions


def loop_evaluation(queries: np.ndarray, database: np.ndarray, gnd: list) -> dict:
    """The baseline: scores by one matrix product, argsort per query, the AP of each query in a loop."""
    scores = database @ queries.T  # (N, Q), as example_evaluate has it
    ranks = np.stack([np.argsort(-scores[:, q]) for q in range(scores.shape[1])])
    return loop_map(ranks, gnd), ranks


def loop_map(ranks: np.ndarray, gnd: list) -> dict:
    """``{protocol: (mAP, mP@k (K,), APs (Q,))}`` of ``ranks (Q, N)``, query by query."""
    junk_of = {"easy": ("junk", "hard"), "medium": ("junk",), "hard": ("junk", "easy")}
    ok_of = {"easy": ("easy",), "medium": ("easy", "hard"), "hard": ("hard",)}
    out = {}
    for which in PROTOCOLS:
        aps, precisions = [], []
        for q, g in enumerate(gnd):
            ok = np.concatenate([g[key] for key in ok_of[which]])
            junk = np.concatenate([g[key] for key in junk_of[which]])
            ap, p = loop_average_precision(ranks[q], ok, junk, KAPPAS)
            aps.append(ap)
            precisions.append(p)
        out[which] = (float(np.mean(aps)), np.mean(precisions, axis=0), np.array(aps))
    return out


# -- 1. the evaluation: the two ways --------------------------------------------------------------


def coursekit_evaluation(query_chunks: list, database_chunks: list, train: dict, gnd: list, device: torch.device):
    """coursekit's whole evaluation, on ``device``: the seconds of each stage, and per pooling the
    pooled ``(queries, database)``, the whitened ones and ``revisited_map``'s results."""
    def pooled_rows(chunks):
        pieces = [coursekit_pool(maps) for maps in chunks]
        return {name: torch.cat([piece[name] for piece in pieces]) for name in POOLINGS}

    start = synchronized_clock(device)
    queries, database = pooled_rows(query_chunks), pooled_rows(database_chunks)
    pooled = synchronized_clock(device)
    whitened = {}
    for name in POOLINGS:
        whitening = pca_whitening(train[name], WHITEN_DIM)
        whitened[name] = (whitening(queries[name]), whitening(database[name]))
    white = synchronized_clock(device)
    results = {name: revisited_map(ranking(q, db), gnd, KAPPAS) for name, (q, db) in whitened.items()}
    done = synchronized_clock(device)
    seconds = dict(zip(STAGES, (pooled - start, white - pooled, done - white)))
    return seconds, {name: (queries[name], database[name]) for name in POOLINGS}, whitened, results


def loop_rmac(image: torch.Tensor, regions: list) -> torch.Tensor:
    """R-MAC of one map ``(K, H, W)`` -> ``(K,)``, region by region: MAC, l2, sum, l2."""
    vector = torch.zeros(image.shape[0], device=image.device)
    for top, left, height, width in regions:
        region = image[:, top:top + height, left:left + width].amax(dim=(-2, -1))
        vector += region / (region.norm() + L2_EPS)
    return vector / (vector.norm() + L2_EPS)


def loop_gem(image: torch.Tensor) -> torch.Tensor:
    """GeM of one map ``(K, H, W)`` -> ``(K,)``, l2-normalised, as cirtorch's ``gem`` writes it."""
    pooled = image.clamp(min=1e-6).pow(GEM_P).mean(dim=(-2, -1)).pow(1.0 / GEM_P)
    return pooled / (pooled.norm() + L2_EPS)


def loop_pool(chunks: list, regions: list) -> dict[str, np.ndarray]:
    """``{pooling: (K, n) float32}`` on the host, one column per image pooled on its own on its device,
    as ``extract_vectors`` fills its array."""
    count = sum(len(maps) for maps in chunks)
    vectors = {name: torch.zeros(DIM, count) for name in POOLINGS}
    i = 0
    for maps in chunks:
        for image in maps:
            vectors["R-MAC"][:, i] = loop_rmac(image, regions).cpu()
            vectors["GeM"][:, i] = loop_gem(image).cpu()
            i += 1
    return {name: column.numpy() for name, column in vectors.items()}


def numpy_pca_whitening(train: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA-whitening of ``train (D, M)`` columns: the mean ``m (D, 1)`` and ``P (dim, D)``, in its dtype."""
    x = train.astype(np.float64)
    mean = x.mean(axis=1, keepdims=True)
    centred = x - mean
    covariance = centred @ centred.T / x.shape[1]
    values, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
    keep = np.argsort(values)[::-1][:dim]
    projection = (vectors[:, keep] / np.sqrt(values[keep])).T
    return mean.astype(train.dtype), projection.astype(train.dtype)


def whitenapply(x: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """``(D, N)`` columns -> whitened, l2-normalised ``(d, N)``: one product for all of them."""
    x = projection @ (x - mean)
    return x / (np.linalg.norm(x, axis=0, keepdims=True) + L2_EPS)


def loop_whole_evaluation(query_chunks: list, database_chunks: list, train: dict, gnd: list, device: torch.device):
    """The baseline's whole evaluation: the seconds of each stage and, per pooling, the pooled ``(K, n)``
    arrays of the queries and the database, the whitened ones, and :func:`loop_evaluation`'s output.
    ``train`` holds the whitening set's descriptors as host ``(K, M)`` arrays."""
    height, width = MAP_SHAPE[1:]
    regions = rmac_regions(height, width).tolist()
    start = synchronized_clock(device)
    queries, database = loop_pool(query_chunks, regions), loop_pool(database_chunks, regions)
    pooled = synchronized_clock(device)
    whitened = {}
    for name in POOLINGS:
        mean, projection = numpy_pca_whitening(train[name], WHITEN_DIM)
        whitened[name] = (whitenapply(queries[name], mean, projection), whitenapply(database[name], mean, projection))
    white = synchronized_clock(device)
    results = {name: loop_evaluation(q.T, db.T, gnd) for name, (q, db) in whitened.items()}
    done = synchronized_clock(device)
    seconds = dict(zip(STAGES, (pooled - start, white - pooled, done - white)))
    return seconds, {name: (queries[name], database[name]) for name in POOLINGS}, whitened, results


def warmup_ground_truth(n_queries: int, n_database: int) -> list:
    """Ground truth for a warm-up run against a database of ``n_database >= 2`` images: one easy and
    one hard positive per query, no junk."""
    return [{"easy": np.array([q % n_database]), "hard": np.array([(q + 1) % n_database]),
             "junk": np.zeros(0, dtype=np.int64)} for q in range(n_queries)]


def agreement(ours: tuple, theirs: tuple, gnd: list) -> dict[str, float]:
    """The largest differences between the two ways' outputs (:func:`coursekit_evaluation`'s and
    :func:`loop_whole_evaluation`'s): pooled descriptors, whitened scores, mAP and mP@k, and the
    per-query APs of the baseline's ranking as ``revisited_map`` evaluates it."""
    _, our_pooled, our_whitened, our_results = ours
    _, their_pooled, their_whitened, their_results = theirs
    gaps = {"descriptors": 0.0, "scores": 0.0, "map": 0.0, "aps": 0.0}
    for name in POOLINGS:
        for ours_rows, their_columns in zip(our_pooled[name], their_pooled[name]):
            gap = float(np.abs(ours_rows.cpu().numpy() - their_columns.T).max())
            gaps["descriptors"] = max(gaps["descriptors"], gap)
        our_scores = (our_whitened[name][0] @ our_whitened[name][1].T).cpu().numpy()
        their_scores = their_whitened[name][0].T @ their_whitened[name][1]
        gaps["scores"] = max(gaps["scores"], float(np.abs(our_scores - their_scores).max()))
        theirs_by_protocol, their_ranks = their_results[name]
        on_theirs = revisited_map(their_ranks, gnd, KAPPAS)
        for w in PROTOCOLS:
            result = our_results[name][w]
            gaps["map"] = max(gaps["map"], abs(result.map - theirs_by_protocol[w][0]),
                              float(np.abs(result.mp - theirs_by_protocol[w][1]).max()))
            gaps["aps"] = max(gaps["aps"], float(np.abs(on_theirs[w].aps - theirs_by_protocol[w][2]).max()))
    return gaps


def figure_whole(device: torch.device, size: tuple[int, int], n_train: int, repeats: int, quick: bool) -> None:
    n_queries, n_database = size
    chunk = CHUNKS["cuda" if device.type == "cuda" else "cpu"]
    channels, height, width = MAP_SHAPE
    print(f"\n1. the whole evaluation from head feature maps ({channels}x{height}x{width}, random ReLU maps, "
          f"float32, kept on {device} in chunks of {chunk}): {n_queries} queries x {n_database} database images; "
          f"R-MAC (3 levels, {len(rmac_regions(height, width))} regions) and GeM (p = {GEM_P:g}), each PCA-whitened "
          f"to {WHITEN_DIM} (learned on {n_train} other maps' descriptors), ranked, mAP and mP@{list(KAPPAS)} "
          f"under E, M and H; median of {repeats} alternating runs")
    queries, database, train, gnd = made_up_maps(n_queries, n_database, n_train, chunk, device)
    host_train = {name: rows.cpu().numpy().T.copy() for name, rows in train.items()}
    warmup_gnd = warmup_ground_truth(n_queries, len(database[0]))
    coursekit_evaluation(queries, database[:1], train, warmup_gnd, device)
    loop_whole_evaluation(queries, database[:1], host_train, warmup_gnd, device)
    ours_runs, theirs_runs = [], []
    for _ in range(repeats):
        ours_runs.append(coursekit_evaluation(queries, database, train, gnd, device))
        theirs_runs.append(loop_whole_evaluation(queries, database, host_train, gnd, device))
    gaps = agreement(ours_runs[-1], theirs_runs[-1], gnd)
    if gaps["map"] > 1e-4 or gaps["aps"] > 1e-12:
        raise SystemExit(f"whole evaluation: coursekit and the baseline disagree: mAP/mP@k by {gaps['map']:.3g}, the "
                         f"APs of one ranking by {gaps['aps']:.3g}")
    mine = {stage: statistics.median(run[0][stage] for run in ours_runs) for stage in STAGES}
    usual = {stage: statistics.median(run[0][stage] for run in theirs_runs) for stage in STAGES}
    total_mine = statistics.median(sum(run[0].values()) for run in ours_runs)
    total_usual = statistics.median(sum(run[0].values()) for run in theirs_runs)
    for name in POOLINGS:
        print(f"   mAP {name:5s}: {format_revisited(ours_runs[-1][3][name])}")
    print(f"   {'stage':42s} {'(a) coursekit':>14s} {'(b) baseline':>13s} {'(b) / (a)':>10s}")
    what = {"pooling": "pooling, R-MAC + GeM (b: per image)",
            "whitening": "whitening, 2 x (learn + apply)",
            "ranking + mAP": "ranking + mAP, 2 x (b: per query)"}
    for stage in STAGES:
        print(f"   {what[stage]:42s} {mine[stage]:12.3f} s {usual[stage]:11.3f} s {usual[stage] / mine[stage]:9.1f}x")
    ratio = total_usual / total_mine
    print(f"   {'total':42s} {total_mine:12.3f} s {total_usual:11.3f} s {ratio:9.1f}x")
    print(f"   agreement: pooled descriptors within {gaps['descriptors']:.2g}, whitened scores within "
          f"{gaps['scores']:.2g}, mAP and mP@k within {gaps['map']:.2g}, per-query APs of the baseline's ranking "
          f"within {gaps['aps']:.2g}")
    print(f"   goal (b) / (a) >= {GOAL:.0f}x on the whole evaluation: {'met' if ratio >= GOAL else 'NOT met'} "
          f"on {device} ({ratio:.1f}x)" + (" [--quick size]" if quick else ""))


def figure_ranking(device: torch.device, sizes: dict, repeats: int) -> None:
    print(f"\n   ranking + mAP alone, from random unit descriptors (D = {DIM}), made-up ground truth: (a) coursekit "
          f"ranking + revisited_map on {device}, (b) numpy scores, argsort and a Python AP loop per query; median "
          f"of {repeats} (baseline: 1 run for the bigger size)")
    for label, (n_queries, n_database) in sizes.items():
        queries, database, gnd = made_up_benchmark(n_queries, n_database, device)
        host_q, host_db = queries.cpu().numpy(), database.cpu().numpy()

        def ours():
            return revisited_map(ranking(queries, database), gnd, KAPPAS)

        mine, results = timed(ours, repeats, 1, device)
        baseline_repeats = repeats if n_queries * n_database <= 10**6 else 1
        usual, (theirs, their_ranks) = timed(lambda: loop_evaluation(host_q, host_db, gnd), baseline_repeats, 0, device)
        gap = max(max(abs(results[w].map - theirs[w][0]), float(np.abs(results[w].mp - theirs[w][1]).max()))
                  for w in PROTOCOLS)
        on_theirs = revisited_map(their_ranks, gnd, KAPPAS)
        exact = max(float(np.abs(on_theirs[w].aps - theirs[w][2]).max()) for w in PROTOCOLS)
        if gap > 1e-4 or exact > 1e-12:
            raise SystemExit(f"{label}: coursekit and the baseline disagree: mAP/mP@k by {gap:.3g}, the APs of one "
                             f"ranking by {exact:.3g}")
        print(f"   {label} ({n_queries} queries x {n_database} images): (a) {mine:.3f} s, (b) {usual:.3f} s, "
              f"(b) / (a): {usual / mine:.1f}x; mAP {format_revisited(results)}")
        print(f"      agreement: mAP and mP@k within {gap:.2g}, per-query APs of the baseline's ranking "
              f"within {exact:.2g}")
    if device.type == "cpu":
        print("   (on a CPU both ways share the matrix product, and most of (a) is torch's stable sort of every score, "
              "slower there than numpy's argsort)")


# -- 2. feature extraction ------------------------------------------------------------------------


def figure_extract(device: torch.device, batches: dict[int, int], seed: int = 0) -> None:
    model = load_efficientnet_lite0(device)
    generator = torch.Generator(device).manual_seed(seed)
    print(f"\n2. feature extraction: EfficientNet-Lite0 model.features(preprocess(x)), random uint8 images 3x240x320 "
          f"on {device}, eval mode, inference_mode, float32")
    rates = {}
    with torch.inference_mode():
        for batch, steps in batches.items():
            images = torch.randint(0, 256, (batch, 3, 240, 320), dtype=torch.uint8, device=device, generator=generator)
            shape = tuple(model.features(preprocess(images)).shape)  # warm-up, untimed
            start = synchronized_clock(device)
            for _ in range(steps):
                model.features(preprocess(images))
            rates[batch] = batch * steps / (synchronized_clock(device) - start)
            print(f"   batch {batch:3d}: {rates[batch]:9.1f} images/s ({steps} batches timed; features {shape})")
    small, large = min(rates), max(rates)
    print(f"   batch {large} / batch {small}: {rates[large] / rates[small]:.2f}x the images per second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: what coursekit picks)")
    parser.add_argument("--quick", action="store_true",
                        help=f"one timed run, the whole evaluation at {QUICK_MAP_SIZE[0]} x {QUICK_MAP_SIZE[1]}, "
                             f"the bigger ranking size cut to {QUICK_BIGGER[0]} x {QUICK_BIGGER[1]}, few batches")
    parser.add_argument("--only", choices=("eval", "extract"), default=None)
    args = parser.parse_args()
    device = coursekit.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    print(describe(device) + (" [--quick: small sizes, too few runs for stable figures]" if args.quick else ""))
    if args.only in (None, "eval"):
        repeats = 1 if args.quick else 3
        figure_whole(device, QUICK_MAP_SIZE if args.quick else MAP_SIZE, QUICK_TRAIN_MAPS if args.quick else TRAIN_MAPS,
                     repeats, args.quick)
        figure_ranking(device, dict(SIZES, bigger=QUICK_BIGGER) if args.quick else SIZES, repeats)
    if args.only in (None, "extract"):
        batches = {1: 5, 32: 2} if args.quick else {1: 200, 32: 40} if cuda else {1: 20, 32: 4}
        figure_extract(device, batches)


if __name__ == "__main__":
    main()
