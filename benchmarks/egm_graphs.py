"""Stage 08 (graph-based methods): figures measured on one device in this one run, each against a baseline run
in the same process. The sections present (``--only`` picks one):

``egm``: EGM region detection on saliency-like maps, ``egm_maps`` against a per-component Python loop.
   The maps: B = 64 maps of 8x10 (a VGG conv5 map of a 128x160 image; EfficientNet-Lite0's head on
   240x320) and 64 of 15x20, each 1 to 4 Gaussian blobs (random centres, sigmas of 0.8 to 2.5 cells,
   heights 0.3 to 1) plus uniform noise of 0 to 0.1, seeded, float32. The same parameters for both ways:
   ``sigma0 = 1``, ``tau = 0.75``, 10 iterations, ``relative_threshold = 0.1`` (one initial component per
   cell above a tenth of its map's maximum), the early stop of :func:`coursekit.graphs.egm.egm_maps`.

   - coursekit: ``egm_maps(maps)``, all maps at once on the device (every E- and M-step one tensor
     operation over the batch; the purge a loop over rank positions, vectorised over the maps);
   - baseline, the algorithm as one writes it from the paper: for each map, on the host in numpy
     (float64), each iteration a Python loop over the alive components for the E-step (each
     component's log density over the cells, accumulated by ``logaddexp``), a loop over them for the
     responsibilities and the M-step sums (``N_k``, the mean, the variance about the previous mean),
     and the purge as a loop over the components by decreasing weight, each against the kept ones
     in a loop (overlaps from their formula).

   Printed: the images per second of each way (medians of ``--repeats`` runs of all B maps for
   coursekit, one run for the baseline), their ratio (the goal is >= 10x), and the check: both ways
   must give every map the same alive components, with means equal to 1e-4 cells (the script fails
   otherwise).

``cg``: Katz centrality by coursekit's conjugate gradients against ``scipy.sparse.linalg.cg`` on the same
   reciprocal k-NN graph, and the graph's construction against a numpy baseline
   (:func:`_centrality_bench.bench_centrality`, whose docstring says how).

CUDA is synchronised before each clock is read; coursekit's first call is left out of its timing.

    python benchmarks/egm_graphs.py [--quick] [--device cuda] [--only egm|cg]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

import coursekit
from _centrality_bench import bench_centrality
from timing import describe, machine
from coursekit.graphs.egm import egm_maps
from coursekit.nets.training import synchronized_clock

GOAL = 10.0  # the goal: egm_maps >= 10x the per-component loop, in images per second
SIGMA0, TAU, ITERATIONS, THRESHOLD, TOL = 1.0, 0.75, 10, 0.1, 1e-6
STARVED = 1e-12  # as in coursekit.graphs.egm: a component with N_k below this share of the mass dies


def blob_maps(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """``(count, height, width)`` float32 maps: 1 to 4 Gaussian blobs each plus uniform noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    x, y = cols + 0.5, rows + 0.5
    maps = np.empty((count, height, width), dtype=np.float32)
    for b in range(count):
        total = rng.uniform(0, 0.1) * rng.random((height, width))
        for _ in range(rng.integers(1, 5)):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            sigma, peak = rng.uniform(0.8, 2.5), rng.uniform(0.3, 1.0)
            total = total + peak * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
        maps[b] = total
    return maps


def loop_egm(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EGM on one map ``(H, W)`` with a Python loop over the components: ``(alive (H*W,), means (H*W, 2))``."""
    height, width = values.shape
    rows, cols = np.mgrid[0:height, 0:width]
    points = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    w = values.ravel().astype(np.float64)
    total = w.sum()
    m = len(points)
    means, variances = points.copy(), np.full(m, SIGMA0**2)
    alive = w > THRESHOLD * w.max()
    weights = np.where(alive, 1.0 / max(alive.sum(), 1), 0.0)
    floor, scale = (0.1 * SIGMA0) ** 2, max(height, width)
    for _ in range(ITERATIONS):
        live = np.flatnonzero(alive)
        if len(live) == 0:
            break
        # E-step: each component's log density over the cells
        log_density, norm = {}, np.full(len(points), -np.inf)
        for k in live:
            squared = ((points - means[k]) ** 2).sum(axis=1)
            log_density[k] = math.log(weights[k]) - math.log(2 * math.pi * variances[k]) - squared / (2 * variances[k])
            norm = np.logaddexp(norm, log_density[k])
        # responsibilities and M-step sums, component by component
        counts, new_means, new_variances = {}, {}, {}
        for k in live:
            weighted = w * np.exp(log_density[k] - norm)
            counts[k] = weighted.sum()
            if counts[k] >= STARVED * total:
                new_means[k] = weighted @ points / counts[k]
                spread = weighted @ ((points - means[k]) ** 2).sum(axis=1) / (2 * counts[k])
                new_variances[k] = max(spread, floor)
        survivors = list(new_means)
        # P-step: by decreasing weight (ties: lower index), each against the kept ones
        kept = []
        for i in sorted(survivors, key=lambda k: (-counts[k], k)):
            own = counts[i] ** 2 / (4 * math.pi * new_variances[i])
            others = 0.0
            for j in kept:
                spread = new_variances[i] + new_variances[j]
                squared = float(((new_means[i] - new_means[j]) ** 2).sum())
                others += counts[i] * counts[j] / (2 * math.pi * spread) * math.exp(-squared / (2 * spread))
            if own / (own + others) >= TAU:
                kept.append(i)
        moved = max((float(np.sqrt(((new_means[k] - means[k]) ** 2).sum())) for k in kept), default=0.0)
        unchanged = set(kept) == set(live.tolist())
        for k in survivors:
            means[k], variances[k] = new_means[k], new_variances[k]
        alive[:] = False
        alive[kept] = True
        mass = sum(counts[k] for k in kept)
        weights[:] = 0.0
        for k in kept:
            weights[k] = counts[k] / mass
        if unchanged and moved < TOL * scale:
            break
    return alive, means


def section_egm(device: torch.device, quick: bool, repeats: int) -> None:
    count = 8 if quick else 64
    print(f"\negm: egm_maps against a per-component Python loop, sigma0 = {SIGMA0}, tau = {TAU}, {ITERATIONS} "
          f"iterations, relative_threshold = {THRESHOLD}; {count} maps of each size, float32 on {device}")
    for height, width in ((8, 10), (15, 20)):
        host = blob_maps(count, height, width, seed=height * width)
        maps = torch.from_numpy(host).to(device)
        egm_maps(maps[:2], sigma0=SIGMA0, tau=TAU, iterations=ITERATIONS, relative_threshold=THRESHOLD)  # warm-up
        times = []
        for _ in range(repeats):
            start = synchronized_clock(device)
            result = egm_maps(maps, sigma0=SIGMA0, tau=TAU, iterations=ITERATIONS, relative_threshold=THRESHOLD)
            times.append(synchronized_clock(device) - start)
        ours = statistics.median(times)

        start = time.perf_counter()
        loops = [loop_egm(host[b]) for b in range(count)]
        baseline = time.perf_counter() - start

        alive = result.mixture.alive.cpu().numpy()
        means = result.mixture.means.cpu().double().numpy()
        for b, (loop_alive, loop_means) in enumerate(loops):
            if not np.array_equal(alive[b], loop_alive):
                raise SystemExit(f"{height}x{width} map {b}: egm_maps keeps cells {np.flatnonzero(alive[b]).tolist()}, "
                                 f"the loop {np.flatnonzero(loop_alive).tolist()}")
        worst = max((float(np.abs(means[b][loop_alive] - loop_means[loop_alive]).max(initial=0.0))
                     for b, (loop_alive, loop_means) in enumerate(loops)), default=0.0)
        if worst > 1e-4:
            raise SystemExit(f"{height}x{width}: the means differ by up to {worst:.2e} cells (more than 1e-4)")
        per_map = alive.sum(axis=1)
        flat = host.reshape(count, -1)
        initial = int((flat > THRESHOLD * flat.max(axis=1, keepdims=True)).sum())
        rate_ours, rate_loop = count / ours, count / baseline
        ratio = rate_ours / rate_loop
        print(f"   {height}x{width} ({height * width} cells, {initial} initial components in all, {per_map.min()} to "
              f"{per_map.max()} kept per map, {result.iterations} iterations for the batch):")
        print(f"      (a) coursekit egm_maps, one batch of {count}: {rate_ours:10.1f} images/s "
              f"({1e3 * ours:.2f} ms, median of {repeats})")
        print(f"      (b) per-component Python loop, numpy float64: {rate_loop:10.1f} images/s "
              f"({1e3 * baseline:.1f} ms)")
        verdict = "met" if ratio >= GOAL else "NOT met"
        if device.type != "cuda":
            verdict += " (on a CPU, where the batch's dense arithmetic costs about what the loop's does)"
        print(f"      (a) / (b): {ratio:.1f}x, goal >= {GOAL:.0f}x: {verdict}")
        print(f"      agree: the same alive components in every map, means within {worst:.1e} cells")


SECTIONS = {"egm": section_egm, "cg": lambda device, quick, repeats: bench_centrality(device, quick)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: what coursekit picks)")
    parser.add_argument("--quick", action="store_true", help="few maps and repeats only: a smoke test")
    parser.add_argument("--only", choices=tuple(SECTIONS), default=None, help="run one section")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of coursekit (default 5, 1 with --quick)")
    args = parser.parse_args()
    device = coursekit.device(args.device)
    repeats = args.repeats or (1 if args.quick else 5)
    print(describe(device) + (" [--quick: too few maps for stable figures]" if args.quick else ""))
    print(f"machine: {machine()}")
    for name, section in SECTIONS.items():
        if args.only in (None, name):
            section(device, args.quick, repeats)


if __name__ == "__main__":
    main()
