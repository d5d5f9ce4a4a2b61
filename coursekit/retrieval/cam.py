"""Class activation maps and CroW (stage 07): where a network looks, and weighted sum-pooling.

- CAM (Zhou, Khosla, Lapedriza, Oliva & Torralba, "Learning Deep Features for Discriminative
  Localization", CVPR 2016): for a network that ends in global average pooling and one linear layer,
  the map of class ``c`` is ``M_c(x, y) = sum_k w_k^c f_k(x, y)``, so the class score is its spatial
  mean plus the bias: ``S_c = mean_{x,y} M_c + b_c`` (the paper writes GAP as a sum and drops the
  bias: ``S_c = sum_{x,y} M_c``). Upsampled to the image, the map localises the class.
- CroW (Kalantidis, Mellina & Osindero, "Cross-dimensional Weighting for Aggregated Deep
  Convolutional Features", ECCV workshops 2016; yahoo/crow ``crow.py``): a sum-pooling of the maps
  weighted per position by their normalised total activation, ``S = (S' / ||S'||_a)^(1/b)``,
  ``S' = sum_k X_k``, and per channel by an IDF-like sparsity weight ``Omega_k``. The paper pools
  VGG16's pool5 (conv5_3 max-pooled): max-pool the maps before :func:`crow` to follow it. Descriptors
  are not normalised: the caller l2-normalises, PCA-whitens (d = 128 by default) and l2-normalises.
"""

from __future__ import annotations

import numbers

import torch
from torch.nn import functional as F

STAGE = 7  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


def _check_features(features, name: str = "features") -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or not features.dtype.is_floating_point:
        got = features.dtype if isinstance(features, torch.Tensor) else type(features).__name__
        raise TypeError(f"{name} must be a floating-point torch tensor (N, K, H, W); got {got}")
    if features.ndim != 4 or features.shape[-2] == 0 or features.shape[-1] == 0:
        raise ValueError(f"{name} must be (N, K, H, W) with H, W >= 1; got {tuple(features.shape)}")
    return features


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return float(value)


def class_activation_maps(features: torch.Tensor, weights: torch.Tensor, classes) -> torch.Tensor:
    """``M_c = sum_k w_k^c f_k``: ``features (N, K, h, w)``, ``weights (C, K)`` (the last linear layer's,
    e.g. ``model.classifier.weight``), ``classes``:

    - an int (or a 0-d integer tensor): one class for every image -> ``(N, h, w)``;
    - an ``(N,)`` integer tensor: one class per image -> ``(N, h, w)``;
    - an ``(N, k)`` integer tensor: ``k`` classes per image -> ``(N, k, h, w)``.

    Computed in the features' dtype; no bias (it is a constant, not a map).
    """
    _check_features(features)
    if not isinstance(weights, torch.Tensor) or weights.ndim != 2 or weights.shape[1] != features.shape[1]:
        got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights must be (C, K) with K = {features.shape[1]}, the features' channels; got {got}")
    count, num_classes = len(features), len(weights)
    weights = weights.to(device=features.device, dtype=features.dtype)
    if isinstance(classes, torch.Tensor) and classes.ndim == 0 and not classes.dtype.is_floating_point:
        classes = int(classes)
    if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
        if not 0 <= classes < num_classes:
            raise ValueError(f"classes must be class indices in 0..{num_classes - 1}; got {classes}")
        return torch.einsum("k,nkhw->nhw", weights[int(classes)], features)
    classes = torch.as_tensor(classes, device=features.device)
    if classes.dtype.is_floating_point or classes.dtype.is_complex or classes.dtype == torch.bool:
        raise TypeError(f"classes must be an int or an integer tensor; got {classes.dtype}")
    if classes.ndim not in (1, 2) or len(classes) != count:
        raise ValueError(f"classes must be an int, ({count},) or ({count}, k); got {tuple(classes.shape)}")
    if classes.numel() and bool(((classes < 0) | (classes >= num_classes)).any()):
        raise ValueError(f"classes must be class indices in 0..{num_classes - 1}; got values from "
                         f"{int(classes.min())} to {int(classes.max())}")
    chosen = weights[classes.long()]  # (N, K) or (N, k, K)
    if classes.ndim == 1:
        return torch.einsum("nk,nkhw->nhw", chosen, features)
    return torch.einsum("njk,nkhw->njhw", chosen, features)


def upsample_maps(maps: torch.Tensor, size) -> torch.Tensor:
    """``maps (N, h, w)`` or ``(N, k, h, w)`` -> the same at ``size`` (an int or ``(H, W)``, the image's),
    bilinear with ``align_corners=False`` (each map cell the centre of its block of pixels)."""
    if not isinstance(maps, torch.Tensor) or maps.ndim not in (3, 4) or not maps.dtype.is_floating_point:
        got = f"{maps.dtype} {tuple(maps.shape)}" if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"maps must be a floating-point tensor (N, h, w) or (N, k, h, w); got {got}")
    size = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in size):
        raise ValueError(f"size must be a positive int or (H, W); got {size!r}")
    batch = maps[:, None] if maps.ndim == 3 else maps
    out = F.interpolate(batch, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)
    return out[:, 0] if maps.ndim == 3 else out


def crow_spatial_weight(features: torch.Tensor, a: float = 2, b: float = 2) -> torch.Tensor:
    """CroW's spatial weight: ``features (N, K, H, W)`` -> ``(N, H, W)``, ``S = (S' / ||S'||_a)^(1/b)``
    with ``S' = sum_k X_k`` and ``||S'||_a = (sum_{ij} S'_ij^a)^(1/a)``. For a = b = 2, ``sum S^4 = 1``.
    An all-zero map (a blank image) gets zero weights, where crow.py divides 0 by 0."""
    _check_features(features)
    a, b = _positive(a, "a"), _positive(b, "b")
    total = features.sum(dim=1)
    norm = total.pow(a).sum(dim=(-2, -1), keepdim=True).pow(1 / a)
    return (total / norm.clamp_min(torch.finfo(features.dtype).tiny)).pow(1 / b)


def crow_channel_weight(features: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """CroW's channel weight: ``features (N, K, H, W)`` -> ``(N, K)``, from each channel's fraction of
    non-zero positions ``Q_k``.

    - ``eps = 0`` (crow.py): ``Omega_k = log(sum_h Q_h / Q_k)`` where ``Q_k > 0``, and 0 for a channel
      that is zero everywhere;
    - ``eps > 0`` (the paper): ``Omega_k = log((K eps + sum_h Q_h) / (eps + Q_k))``, finite everywhere
      (an all-zero channel gets the largest weight, but its pooled value is 0 anyway).
    """
    _check_features(features)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"eps must be a number >= 0; got {eps!r}")
    nonzero = (features != 0).to(features.dtype).mean(dim=(-2, -1))
    total = nonzero.sum(dim=1, keepdim=True)
    if eps > 0:
        return torch.log((features.shape[1] * eps + total) / (eps + nonzero))
    return torch.where(nonzero > 0, torch.log(total / nonzero), torch.zeros_like(nonzero))


def crow(features: torch.Tensor, a: float = 2, b: float = 2) -> torch.Tensor:
    """CroW: ``features (N, K, H, W)`` -> ``(N, K)``, ``f_k = Omega_k sum_ij S_ij X_kij`` with the weights of
    :func:`crow_spatial_weight` and :func:`crow_channel_weight` (crow.py's, ``eps = 0``); not normalised."""
    spatial = crow_spatial_weight(features, a, b)
    return crow_channel_weight(features) * torch.einsum("nkhw,nhw->nk", features, spatial)


def ucrow(features: torch.Tensor) -> torch.Tensor:
    """Unweighted CroW, plain sum-pooling: ``features (N, K, H, W)`` -> ``(N, K)``, ``f_k = sum_ij X_kij``."""
    return _check_features(features).sum(dim=(-2, -1))
