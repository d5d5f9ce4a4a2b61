"""Unsupervised object discovery (stage 08): Siméoni, Iscen, Tolias, Avrithis & Chum, *Unsupervised deep
object discovery for instance recognition* (WACV 2018), on the maps of a pretrained network.

The pipeline, with what the reference (``retrieval-and-graphs.md`` §7.2) marks as inferred:

1. **feature saliency** (FS): per image, the total activation ``FS(p) = sum_k max(X_k(p), 0)`` of the last
   convolutional layer, normalised to sum 1 (inferred: CroW's spatial aggregate before its normalisation);
2. **regions** by EGM on each FS map (:func:`coursekit.graphs.egm.egm_maps`: the cells are the points,
   weighted by the map), each surviving component the box ``mu +- 2 sigma`` (the 2 is a free choice) in
   map cells ``(x0, y0, x1, y1)``; a :class:`Regions` lists the regions of many images at once;
3. **regional descriptors**: MAC over the cells a box overlaps -> l2 -> whitening -> l2;
4. a reciprocal k-NN graph of all the regions of the dataset (:mod:`coursekit.graphs.knn`) and their Katz
   centrality (:mod:`coursekit.graphs.centrality`);
5. **object saliency** (OS): each image's regions' centralities back-projected onto its cells,
   ``OS(p) = sum_{r contains p} g_r`` (:func:`object_saliency`; a cell is in a region when the region's box
   overlaps it);
6. regions re-detected by EGM on OS, and the global descriptor: the regional descriptors summed over an
   image's regions, l2 (:func:`aggregate`), as R-MAC sums its grid's. **OS.EGM-4** adds, inside each
   region, uniform regions at a second scale: the four corner boxes of 2/3 of the region's sides
   (:func:`sub_regions`; inferred from "uniform region sampling at 2 scales inside each detected region").

Saliency precision (:func:`saliency_precision`): the saliency inside the ground-truth boxes over the
saliency of the whole image, with each cell counted by the fraction of its pixels that the boxes cover
(:func:`box_coverage`).

Everything is torch on the maps' device; boxes are float (map cells) until :func:`cell_boxes` rounds them
outwards to the integer cells they overlap (half-open: columns ``x0 .. x1 - 1``, rows ``y0 .. y1 - 1``).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import torch

from coursekit.graphs.egm import egm_maps, mixture_boxes
from coursekit.retrieval.pooling import l2n

STAGE = 8  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


class Regions(NamedTuple):
    """The regions of a set of images: ``boxes (R, 4)`` float ``(x0, y0, x1, y1)`` in map cells, ``image
    (R,)`` int64 (the image each belongs to, ascending) and ``weight (R,)`` (its component's mixing weight)."""

    boxes: torch.Tensor
    image: torch.Tensor
    weight: torch.Tensor

    def count(self, images: int) -> torch.Tensor:
        """How many regions each of ``images`` images has: ``(images,)`` int64."""
        return torch.bincount(self.image, minlength=images)

    def select(self, keep: torch.Tensor) -> Regions:
        """The regions where ``keep (R,)`` bool is true."""
        return Regions(self.boxes[keep], self.image[keep], self.weight[keep])


def _maps(maps, name: str = "maps") -> torch.Tensor:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3 or not maps.dtype.is_floating_point:
        what = f"{maps.dtype} {tuple(maps.shape)}" if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"{name} must be a floating-point torch tensor (B, H, W); got {what}")
    return maps


def _features(features) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.ndim != 4 or not features.dtype.is_floating_point:
        what = f"{features.dtype} {tuple(features.shape)}" if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a floating-point torch tensor (B, C, H, W); got {what}")
    return features


def _regions(regions, images: int | None = None) -> Regions:
    if not isinstance(regions, Regions):
        raise TypeError(f"regions must be a Regions; got {type(regions).__name__}")
    r = len(regions.boxes)
    if regions.boxes.shape != (r, 4) or regions.image.shape != (r,) or regions.weight.shape != (r,):
        raise ValueError(f"regions must hold boxes (R, 4), image (R,) and weight (R,); got "
                         f"{tuple(regions.boxes.shape)}, {tuple(regions.image.shape)}, {tuple(regions.weight.shape)}")
    if images is not None and r and not (0 <= int(regions.image.min()) and int(regions.image.max()) < images):
        raise ValueError(f"regions.image must index the {images} images; got ids from {int(regions.image.min())} "
                         f"to {int(regions.image.max())}")
    return regions


def feature_saliency(features: torch.Tensor) -> torch.Tensor:
    """FS: ``features (B, C, H, W)`` -> ``(B, H, W)``, the sum over channels of the positive part, each map
    normalised to sum 1 (an all-zero map stays zero), in float32 at least."""
    x = _features(features)
    total = x.float().clamp_min(0).sum(dim=1) if x.dtype == torch.float16 else x.clamp_min(0).sum(dim=1)
    mass = total.sum(dim=(-2, -1), keepdim=True)
    return torch.where(mass > 0, total / mass.clamp_min(torch.finfo(total.dtype).tiny), total)


def detect_regions(maps: torch.Tensor, *, sigma0: float = 1.0, tau: float = 0.75, iterations: int = 10,
                   extent: float = 2.0, relative_threshold: float = 0.1, batch: int = 64) -> Regions:
    """EGM on each of ``maps (B, H, W)`` (non-negative), ``batch`` maps at a time; each surviving component
    becomes the box ``mu +- extent * sigma`` clipped to the map: a :class:`Regions` in map cells, the
    regions of each image by decreasing weight. An all-zero map has none."""
    maps = _maps(maps)
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise ValueError(f"batch must be a positive integer; got {batch!r}")
    b, h, w = maps.shape
    boxes, owners, weights = [], [], []
    for start in range(0, b, int(batch)):
        chunk = maps[start:start + int(batch)].float()
        mixture = egm_maps(chunk, sigma0=sigma0, tau=tau, iterations=iterations,
                           relative_threshold=relative_threshold).mixture
        found = mixture_boxes(mixture, w, h, extent)  # (b, M, 4)
        alive = mixture.alive & (mixture.weights > 0)
        order = torch.argsort(torch.where(alive, mixture.weights, -1.0), dim=1, descending=True, stable=True)
        alive, found = alive.gather(1, order), found.gather(1, order[..., None].expand(-1, -1, 4))
        kept_weights = mixture.weights.gather(1, order)
        rows = torch.arange(len(chunk), device=maps.device)[:, None].expand_as(alive)
        boxes.append(found[alive])
        owners.append(rows[alive] + start)
        weights.append(kept_weights[alive])
    return Regions(torch.cat(boxes), torch.cat(owners).long(), torch.cat(weights))


def cell_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float boxes ``(R, 4)`` ``(x0, y0, x1, y1)`` in map cells -> the int64 half-open boxes of the cells
    they overlap (``floor`` of the starts, ``ceil`` of the ends, at least one cell, inside ``H x W``)."""
    if not isinstance(boxes, torch.Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be a torch tensor (R, 4) (x0, y0, x1, y1); got "
                         f"{tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__}")
    limit = torch.tensor([width, height], device=boxes.device)
    start = boxes[:, :2].floor().long().clamp_min(0)
    start = torch.minimum(start, limit - 1)
    end = torch.maximum(boxes[:, 2:].ceil().long(), start + 1)
    end = torch.minimum(end, limit)
    return torch.cat([start, end], dim=1)


def _inside(cells: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(R, H, W)`` bool: the cells inside each int64 half-open box ``(x0, y0, x1, y1)`` of ``cells (R, 4)``."""
    cols = torch.arange(width, device=cells.device)
    rows = torch.arange(height, device=cells.device)
    in_x = (cols[None] >= cells[:, 0:1]) & (cols[None] < cells[:, 2:3])
    in_y = (rows[None] >= cells[:, 1:2]) & (rows[None] < cells[:, 3:4])
    return in_y[:, :, None] & in_x[:, None, :]


def region_masks(regions: Regions, height: int, width: int) -> torch.Tensor:
    """``(R, H, W)`` bool: the cells each region's box overlaps."""
    return _inside(cell_boxes(_regions(regions).boxes, height, width), height, width)


def regional_macs(features: torch.Tensor, regions: Regions, chunk: int = 256) -> torch.Tensor:
    """MAC of ``features (B, C, H, W)`` over the cells of each region (``regions.image`` indexes ``B``):
    ``(R, C)`` in float32 at least, ``chunk`` regions at a time."""
    x = _features(features)
    regions = _regions(regions, len(x))
    b, c, h, w = x.shape
    masks = region_masks(regions, h, w)
    out = []
    for start in range(0, len(masks), chunk):
        maps = x[regions.image[start:start + chunk]]
        maps = maps.float() if maps.dtype == torch.float16 else maps
        hidden = ~masks[start:start + chunk, None]
        out.append(maps.masked_fill(hidden, -torch.inf).amax(dim=(-2, -1)))
    dtype = torch.float32 if x.dtype == torch.float16 else x.dtype
    return torch.cat(out) if out else torch.zeros(0, c, dtype=dtype, device=x.device)


def regional_descriptors(features: torch.Tensor, regions: Regions, whitening=None) -> torch.Tensor:
    """The regional descriptors: MAC in each region -> l2 -> ``whitening`` (if given; a
    :class:`~coursekit.retrieval.whitening.Whitening`, which l2-normalises its output) -> l2: ``(R, D)``."""
    described = l2n(regional_macs(features, regions))
    return l2n(whitening(described)) if whitening is not None else described


def aggregate(descriptors: torch.Tensor, image: torch.Tensor, images: int) -> torch.Tensor:
    """Sum-pool the regional ``descriptors (R, D)`` of each of ``images`` images (``image (R,)``), then l2:
    ``(images, D)``; an image without regions gets a zero row."""
    if descriptors.ndim != 2 or image.shape != (len(descriptors),):
        raise ValueError(f"descriptors must be (R, D) and image (R,); got {tuple(descriptors.shape)} and "
                         f"{tuple(image.shape)}")
    total = torch.zeros(images, descriptors.shape[1], dtype=descriptors.dtype, device=descriptors.device)
    return l2n(total.index_add_(0, image, descriptors))


def sub_regions(regions: Regions, scale: float = 2 / 3) -> Regions:
    """OS.EGM-4's regions: each region and, inside it, the four corner boxes of ``scale`` times its sides
    (uniform sampling at a second scale; inferred). Per image, its regions first, then their corners;
    a corner box has its region's weight divided by 4."""
    regions = _regions(regions)
    x0, y0, x1, y1 = regions.boxes.unbind(1)
    dx, dy = scale * (x1 - x0), scale * (y1 - y0)
    corners = [torch.stack(c, dim=1) for c in (
        (x0, y0, x0 + dx, y0 + dy), (x1 - dx, y0, x1, y0 + dy), (x0, y1 - dy, x0 + dx, y1), (x1 - dx, y1 - dy, x1, y1))]
    boxes = torch.cat([regions.boxes, *corners])
    image = regions.image.repeat(5)
    weight = torch.cat([regions.weight, *(regions.weight / 4,) * 4])
    order = torch.argsort(image, stable=True)
    return Regions(boxes[order], image[order], weight[order])


def box_coverage(boxes: list, image_height: int, image_width: int, height: int, width: int,
                 device=None) -> torch.Tensor:
    """The fraction of each cell of an ``height x width`` map over an ``image_height x image_width`` image
    that the union of the image's ground-truth boxes covers: ``boxes`` one int ``(k, 4)`` array
    ``(x0, y0, x1, y1)`` (pixels, half-open) per image -> ``(len(boxes), height, width)`` float32. Cells
    split the image evenly (``image_height / height`` pixels per cell, rounded per edge)."""
    row_edges = np.round(np.linspace(0, image_height, height + 1)).astype(int)
    col_edges = np.round(np.linspace(0, image_width, width + 1)).astype(int)
    out = np.zeros((len(boxes), height, width), dtype=np.float32)
    for n, image_boxes in enumerate(boxes):
        covered = np.zeros((image_height, image_width), dtype=bool)
        for x0, y0, x1, y1 in np.asarray(image_boxes, dtype=np.int64).reshape(-1, 4):
            covered[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        # each cell's covered pixels over its pixels, by sums over its rows and columns
        rows = np.add.reduceat(covered, row_edges[:-1], axis=0)
        cells = np.add.reduceat(rows, col_edges[:-1], axis=1)
        out[n] = cells / np.outer(np.diff(row_edges), np.diff(col_edges))
    return torch.from_numpy(out).to(device)


def saliency_precision(saliency: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """``sum_p s(p) c(p) / sum_p s(p)`` per map: ``saliency (B, H, W)`` non-negative, ``coverage (B, H, W)``
    the fraction of each cell inside the ground truth (:func:`box_coverage`) -> ``(B,)``; NaN for an
    all-zero map."""
    s = _maps(saliency, "saliency")
    if coverage.shape != s.shape:
        raise ValueError(f"coverage must be {tuple(s.shape)} like saliency; got {tuple(coverage.shape)}")
    total = s.sum(dim=(-2, -1))
    inside = (s * coverage.to(s)).sum(dim=(-2, -1))
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(s.dtype).tiny), torch.nan)


def object_saliency(boxes: torch.Tensor, image: torch.Tensor, centrality: torch.Tensor, images: int,
                    height: int, width: int) -> torch.Tensor:
    """OS: ``OS_n(p) = sum of centrality[r]`` over the regions ``r`` of image ``n`` whose half-open integer
    box ``boxes[r] = (x0, y0, x1, y1)`` (map cells) contains the cell ``p``: ``(images, H, W)`` in
    ``centrality``'s dtype."""
    if boxes.ndim != 2 or boxes.shape[1] != 4 or image.shape != (len(boxes),) or centrality.shape != (len(boxes),):
        raise ValueError(f"boxes must be (R, 4), image and centrality (R,); got {tuple(boxes.shape)}, "
                         f"{tuple(image.shape)} and {tuple(centrality.shape)}")
    out = torch.zeros(images, height, width, dtype=centrality.dtype, device=centrality.device)
    inside = _inside(boxes.long(), height, width).to(centrality.dtype)
    return out.index_add_(0, image.long(), inside * centrality[:, None, None])


def regional_search(queries: torch.Tensor, regions: torch.Tensor, image: torch.Tensor, images: int) -> torch.Tensor:
    """Regional search: the score of a database image for a query is the best similarity of the query's
    descriptor to any of the image's regional descriptors: ``queries (Q, D)``, ``regions (R, D)``, ``image
    (R,)`` -> ``(Q, images)`` (``-inf`` for an image without regions)."""
    similarities = queries @ regions.T
    out = torch.full((len(queries), images), -torch.inf, dtype=similarities.dtype, device=similarities.device)
    return out.scatter_reduce(1, image[None].expand_as(similarities), similarities, reduce="amax")


class TableDescriptors(NamedTuple):
    """What :func:`table_descriptors` computes: ``methods`` maps each of Table 1's names (``"MAC"``, ``"R-MAC
    (uniform)"``, ``"FS.EGM"``, ``"OS.EGM"``, ``"OS.EGM-4"``) to ``(queries (Q, D), database (N, D))``, l2-normalised;
    the database's FS ``regions``, their whitened regional ``descriptors (R, D)`` and the ``whitening`` learned
    on the training set's regions; each query's own FS ``query_regions`` and their descriptors
    ``query_descriptors``; the Katz ``centrality (R,)`` of the regions' graph."""

    methods: dict
    regions: Regions
    descriptors: torch.Tensor
    whitening: object
    query_regions: list
    query_descriptors: list
    centrality: torch.Tensor


def table_descriptors(database_maps: torch.Tensor, training_maps: torch.Tensor, query_maps, *, extent: float = 1.0,
                      whiten_dim: int = 128, k: int = 20, gamma: float = 3.0, alpha: float = 0.99) -> TableDescriptors:
    """Stage 08's pipeline, from the head's maps to the global descriptors of Table 1 (its section 6), for the
    stages that use them (stage 09 diffuses them): ``database_maps (N, K, h, w)`` and ``training_maps`` (to
    learn every whitening on: other images), ``query_maps`` a list of ``(1, K, h_q, w_q)``.

    MAC and R-MAC are PCA-whitened to ``whiten_dim`` dimensions; FS regions by EGM (boxes ``mu +- extent
    sigma``), their regional descriptors whitened by a PCA learned on the training regions; the reciprocal
    ``k``-NN graph of the database's regions (``s^gamma``, normalised symmetrically), its Katz centrality
    at ``alpha`` by CG (tol 1e-8, 200 iterations), OS and the regions re-detected on it; OS.EGM-4 adds the
    corner sub-regions. Each query's regions are detected on its own FS."""
    from coursekit.graphs.centrality import katz_centrality
    from coursekit.graphs.knn import knn_affinity, symmetric_normalise
    from coursekit.retrieval import pooling
    from coursekit.retrieval.whitening import pca_whitening

    database_maps, training_maps = _features(database_maps), _features(training_maps)
    query_maps = [_features(maps).float() for maps in query_maps]
    images, (height, width) = len(database_maps), database_maps.shape[-2:]

    def whitened_global(pool):
        learned = pca_whitening(l2n(pool(training_maps.float())), whiten_dim)
        return (torch.cat([learned(l2n(pool(maps))) for maps in query_maps]),
                learned(l2n(pool(database_maps.float()))))

    regions = detect_regions(feature_saliency(database_maps), extent=extent)
    training_regions = detect_regions(feature_saliency(training_maps), extent=extent)
    region_whitening = pca_whitening(regional_descriptors(training_maps, training_regions), whiten_dim)
    described = regional_descriptors(database_maps, regions, region_whitening)
    graph = symmetric_normalise(knn_affinity(described.double(), k, gamma))
    centrality = katz_centrality(graph, alpha, tol=1e-8, max_iterations=200).x
    os_maps = object_saliency(cell_boxes(regions.boxes, height, width), regions.image, centrality.double(), images,
                              height, width).float()
    os_regions = detect_regions(os_maps, extent=extent)
    found = [detect_regions(feature_saliency(maps), extent=extent) for maps in query_maps]
    query_descriptors = [regional_descriptors(maps, r, region_whitening) for maps, r in zip(query_maps, found)]
    fs_queries = torch.cat([aggregate(d, r.image, 1) for d, r in zip(query_descriptors, found)])
    four_queries = torch.cat([aggregate(regional_descriptors(maps, four, region_whitening), four.image, 1)
                              for maps, four in ((maps, sub_regions(r)) for maps, r in zip(query_maps, found))])

    def pooled(over):
        return aggregate(regional_descriptors(database_maps, over, region_whitening), over.image, images)

    methods = {"MAC": whitened_global(pooling.mac), "R-MAC (uniform)": whitened_global(pooling.rmac),
               "FS.EGM": (fs_queries, aggregate(described, regions.image, images)),
               "OS.EGM": (fs_queries, pooled(os_regions)),
               "OS.EGM-4": (four_queries, pooled(sub_regions(os_regions)))}
    return TableDescriptors(methods, regions, described, region_whitening, found, query_descriptors, centrality)
