"""Pooled descriptors of a convolutional feature map (stage 07): MAC, SPoC, GeM and R-MAC.

Conventions (cirtorch, Radenovic, Tolias & Chum, TPAMI 2018, and Tolias, Sicre & Jegou, ICLR 2016):
features ``X`` are ``(N, K, H, W)``, the last convolutional activations after their ReLU, so they are
non-negative; every pooling returns one ``(N, K)`` row per image, not normalised (the caller applies
:func:`l2n`), except :func:`rmac`, whose last step is the l2-normalisation.

- MAC: ``f_k = max_{h,w} X_k``; SPoC (cirtorch's): ``f_k = mean_{h,w} X_k``, without the centre prior
  of Babenko & Lempitsky's sum (after l2-normalisation a sum and a mean are the same);
- GeM: ``f_k = (mean_{h,w} max(X_k, eps)^p)^(1/p)``, eps = 1e-6 clamped *before* the power; p = 1
  is SPoC, p -> infinity is MAC;
- R-MAC: the MAC of square regions on a grid of ``levels`` scales (:func:`rmac_regions`), each
  l2-normalised, optionally PCA-whitened and l2-normalised again, summed, l2-normalised.
"""

from __future__ import annotations

import math
import numbers
import operator

import torch

STAGE = 7  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

GEM_EPS = 1e-6
RMAC_OVERLAP = 0.4  # the overlap of neighbouring regions R-MAC aims for
RMAC_STEPS = (2, 3, 4, 5, 6, 7)  # how many regions level 1 may put along the long side


def _check_features(features, name: str = "features") -> torch.Tensor:
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor (N, K, H, W); got {type(features).__name__}")
    if features.ndim != 4:
        raise ValueError(f"{name} must be (N, K, H, W); got {tuple(features.shape)}")
    if not features.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor; got {features.dtype}")
    if features.shape[-2] == 0 or features.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty map (H, W >= 1); got {tuple(features.shape)}")
    return features


def _positive_int(value, name: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1; got {number}")
    return number


def l2n(x: torch.Tensor, dim: int = -1, eps: float = 1e-6) -> torch.Tensor:
    """``x / (||x||_2 + eps)`` along ``dim`` (any shape; the eps keeps a zero vector at zero)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch tensor; got {type(x).__name__}")
    return x / (x.norm(dim=dim, keepdim=True) + eps)


def mac(features: torch.Tensor) -> torch.Tensor:
    """Maximum activation of convolutions: ``(N, K, H, W)`` -> ``(N, K)``, each channel's maximum."""
    return _check_features(features).amax(dim=(-2, -1))


def spoc(features: torch.Tensor) -> torch.Tensor:
    """Sum-pooling as cirtorch writes it, a mean: ``(N, K, H, W)`` -> ``(N, K)``."""
    return _check_features(features).mean(dim=(-2, -1))


def gem(features: torch.Tensor, p=3.0, eps: float = GEM_EPS) -> torch.Tensor:
    """Generalised mean: ``(N, K, H, W)`` -> ``(N, K)``, ``(mean_{h,w} max(X, eps)^p)^(1/p)``.

    ``p``: a positive number, a 0-d (or ``(1,)``) tensor or a ``(K,)`` tensor (one exponent per channel,
    cirtorch's GeMmp); differentiable in ``p`` and ``features``. It is computed as
    ``m (mean (x/m)^p)^(1/p)`` with ``m`` each channel's largest clamped value, held constant: the same
    value and gradients (the identity holds for any constant ``m > 0``), but ``x^p`` neither overflows
    (ReLU6's 6 at p = 100 is 6.5e77, beyond float32) nor underflows for large ``p``.
    """
    _check_features(features)
    channels = features.shape[1]
    if isinstance(p, torch.Tensor):
        if p.shape not in ((), (1,), (channels,)):
            raise ValueError(f"p must be a number, a 0-d tensor or a ({channels},) tensor; got shape {tuple(p.shape)}")
        if not bool(torch.isfinite(p).all() and (p > 0).all()):
            raise ValueError(f"p must be positive and finite; got values from {p.min().item()} to {p.max().item()}")
        p = p.to(device=features.device, dtype=features.dtype)
        p = p.reshape(()) if p.numel() == 1 else p  # cirtorch's GeM keeps p as a (1,) parameter
        exponent = p.reshape(channels, 1, 1) if p.ndim == 1 else p
    else:
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"p must be a number or a tensor; got {type(p).__name__}")
        if not (math.isfinite(p) and p > 0):
            raise ValueError(f"p must be positive and finite; got {p}")
        exponent = float(p)
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps}")
    x = features.clamp(min=eps)
    scale = x.detach().amax(dim=(-2, -1), keepdim=True)
    pooled = (x / scale).pow(exponent).mean(dim=(-2, -1)).pow(1.0 / p)
    return scale[..., 0, 0] * pooled


def _rmac_long_side_steps(height: int, width: int, overlap: float) -> int:
    """How many more regions than ``levels`` each level puts along the long side (``Wd`` or ``Hd``).

    The count whose regions of side ``w = min(H, W)`` overlap by the fraction closest to ``overlap``,
    computed as the MATLAB code does, in double precision and in the same order of operations, the
    first of equal values winning."""
    w = min(height, width)
    best, best_gap = 0, math.inf
    for i, steps in enumerate(RMAC_STEPS):
        b = (max(height, width) - w) / (steps - 1)
        gap = abs((w**2 - w * b) / w**2 - overlap)
        if gap < best_gap:
            best, best_gap = i, gap
    return best + 1


def _rmac_offsets(size: int, side: int, count: int) -> list[int]:
    """``count`` region starts along a side of ``size`` cells, as floor(wl2 + i b) - wl2, first at 0
    and last at ``size - side`` (up to the rounding of ``b``)."""
    half = math.floor(side / 2 - 1)
    step = 0.0 if count == 1 else (size - side) / (count - 1)
    return [math.floor(half + i * step) - half for i in range(count)]


def _rmac_grid(height: int, width: int, levels: int, overlap: float) -> list[list[tuple[int, int, int, int]]]:
    extra = _rmac_long_side_steps(height, width, overlap)
    extra_w = extra if height < width else 0
    extra_h = extra if height > width else 0
    w = min(height, width)
    grid = []
    for level in range(1, levels + 1):
        side = math.floor(2 * w / (level + 1))
        if side == 0:  # the reference codes skip regions of side 0: such a level adds nothing
            grid.append([])
            continue
        tops = _rmac_offsets(height, side, level + extra_h)
        lefts = _rmac_offsets(width, side, level + extra_w)
        grid.append([(top, left, side, side) for top in tops for left in lefts])
    return grid


def _check_grid_arguments(height, width, levels, overlap) -> tuple[int, int, int, float]:
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    levels = _positive_int(levels, "levels")
    if isinstance(overlap, bool) or not isinstance(overlap, numbers.Real) or not 0 <= overlap < 1:
        raise ValueError(f"overlap must be a number in [0, 1); got {overlap!r}")
    return height, width, levels, float(overlap)


def rmac_regions(height: int, width: int, levels: int = 3, overlap: float = RMAC_OVERLAP) -> torch.Tensor:
    """The R-MAC regions of a ``height x width`` map: an int64 tensor ``(R, 4)`` of rows
    ``(top, left, side_h, side_w)`` (squares, so ``side_h == side_w``), level 1 first, each level's
    regions row by row (top to bottom, then left to right).

    The arithmetic of Tolias et al.'s MATLAB ``rmac_regionvec_act.m`` (which cirtorch's ``rmac`` repeats):
    with ``w = min(H, W)``, level ``l`` has squares of side ``floor(2 w / (l + 1))``, ``l + Wd`` across
    and ``l + Hd`` down, where the long side gets ``Wd`` (or ``Hd``) extra regions, the count in 1..6
    whose overlap is closest to ``overlap`` (:func:`regions_per_level`). The offsets are
    ``floor(wl2 + i b) - wl2`` with ``wl2 = floor(side / 2 - 1)`` and ``b = (W - side) / (l + Wd - 1)``,
    ``b = 0`` when a level has a single region across (MATLAB's NaN made 0).

    Where the reference code does something particular, so does this function:

    - levels whose side floors to 0 (``2 w < l + 1``: a 1-pixel-high map at levels 2 and 3) give no
      region (both codes skip them): such a level adds nothing, and ``levels`` larger than that is
      allowed;
    - regions that coincide (a 2x2 map puts the square (0, 0) twice at level 3) are all kept, as both
      codes keep them: in the sum of :func:`rmac` they count twice;
    - the floats are IEEE doubles in MATLAB's order of operations, so where the overlaps of two counts
      tie exactly in real numbers, their rounding decides, as in MATLAB: for 5x9 (and 10x18, 15x27,
      ...) the counts 1 and 2 tie and double rounding picks 2 (3 regions along the long side at level
      1); cirtorch's float32 picks 1 there. ``regions_per_level`` shows the choice. Up to 40x40 these
      ties are the only shapes where doubles and exact arithmetic differ; on long thin maps ``i b``
      can round below an integer, so that the last region stops a cell short of the border, as in
      MATLAB (2x62, level 2: the last of 8 regions starts at 60, not 61).
    """
    height, width, levels, overlap = _check_grid_arguments(height, width, levels, overlap)
    rows = [region for level in _rmac_grid(height, width, levels, overlap) for region in level]
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 4)


def regions_per_level(height: int, width: int, levels: int = 3, overlap: float = RMAC_OVERLAP) -> list[int]:
    """How many regions :func:`rmac_regions` puts at each level: ``(l + Wd)(l + Hd)``, or 0 where the
    level's side floors to 0."""
    height, width, levels, overlap = _check_grid_arguments(height, width, levels, overlap)
    return [len(level) for level in _rmac_grid(height, width, levels, overlap)]


def regional_mac(features: torch.Tensor, regions) -> torch.Tensor:
    """The MAC of each region: ``features (N, K, H, W)``, ``regions`` ``(R, 4)`` integer rows ``(top,
    left, height, width)`` inside the map (a tensor or a list of 4-tuples) -> ``(N, R, K)``."""
    _check_features(features)
    regions = torch.as_tensor(regions)
    if regions.ndim != 2 or regions.shape[1] != 4 or len(regions) == 0:
        raise ValueError(f"regions must be (R, 4) rows (top, left, height, width), R >= 1; got {tuple(regions.shape)}")
    if regions.dtype.is_floating_point or regions.dtype == torch.bool:
        raise TypeError(f"regions must hold integers; got {regions.dtype}")
    height, width = features.shape[-2:]
    rows = regions.tolist()
    for top, left, h, w in rows:
        if h < 1 or w < 1 or top < 0 or left < 0 or top + h > height or left + w > width:
            raise ValueError(f"regions must lie inside the {height}x{width} map with sides >= 1; got the region "
                             f"(top={top}, left={left}, height={h}, width={w})")
    return torch.stack([features[:, :, top:top + h, left:left + w].amax(dim=(-2, -1)) for top, left, h, w in rows],
                       dim=1)


def rmac(features: torch.Tensor, levels: int = 3, whitening=None, include_whole: bool = False) -> torch.Tensor:
    """Regional MAC: ``features (N, K, H, W)`` -> l2-normalised ``(N, K)``, or ``(N, d)`` with a whitening.

    Per region of :func:`rmac_regions`: MAC, l2, then ``whitening`` if given (a callable on ``(M, K)``
    rows returning whitened, l2-normalised ``(M, d)`` rows, e.g. a :class:`~coursekit.retrieval.whitening.Whitening`
    learned on regional descriptors of another set), l2; then the sum over regions, l2.

    - ``include_whole=False`` is Tolias et al.'s MATLAB R-MAC: regions only (level 1 already spans the
      short side), with PCA-whitening per region before the sum;
    - ``include_whole=True`` adds the whole map's MAC as one more region, as cirtorch's ``LF.rmac`` does
      (which has no whitening and leaves the last l2 to the network).
    """
    _check_features(features)
    if whitening is not None and not callable(whitening):
        raise TypeError(f"whitening must be None or a callable on (M, K) rows; got {type(whitening).__name__}")
    count, channels, height, width = features.shape
    regions = rmac_regions(height, width, levels)
    if include_whole:
        regions = torch.cat([torch.tensor([[0, 0, height, width]]), regions])
    vectors = l2n(regional_mac(features, regions))
    if whitening is not None:
        vectors = l2n(whitening(vectors.reshape(-1, channels))).reshape(count, len(regions), -1)
    return l2n(vectors.sum(dim=1))
