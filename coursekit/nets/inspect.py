"""Looking inside a trained network (stage 05 on): the image patches that activate a feature map most
(Zeiler & Fergus 2014, Fig. 2, without the deconvolution), and nearest neighbours in a feature space.

A unit at row ``i``, column ``j`` of a feature map with receptive field ``r`` and stride ``s`` sees the
``r x r`` input pixels centred near ``(i s + (s - 1) / 2, j s + (s - 1) / 2)``: :func:`patch_box` cuts
that window (clipped to the image); :func:`top_activations` finds, for one channel, the ``k`` images
whose maximum response is the largest, and where in each image it is.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Activation(NamedTuple):
    image: int  # index of the image
    row: int  # position in the feature map
    col: int
    value: float


def top_activations(maps: torch.Tensor, channel: int, k: int = 9) -> list[Activation]:
    """The ``k`` images of ``maps (N, C, H, W)`` whose channel ``channel`` responds most (its maximum
    over positions), largest first, each with the position of that maximum: one activation per image."""
    if maps.ndim != 4:
        raise ValueError(f"maps must have shape (N, C, H, W); got {tuple(maps.shape)}")
    if not 0 <= channel < maps.shape[1]:
        raise ValueError(f"channel must lie in [0, {maps.shape[1]}); got {channel}")
    n, _, h, w = maps.shape
    flat = maps[:, channel].reshape(n, -1).float()
    best, where = flat.max(1)
    order = best.argsort(descending=True)[: min(k, n)]
    return [Activation(int(i), int(where[i]) // w, int(where[i]) % w, float(best[i])) for i in order]


def patch_box(row: int, col: int, receptive_field: int, stride: int, height: int, width: int):
    """``(top, bottom, left, right)`` of the receptive field of unit ``(row, col)``, clipped to the image."""
    def start(unit):  # the first pixel of the field, before clipping
        centre = unit * stride + (stride - 1) / 2
        return math.floor(centre - (receptive_field - 1) / 2 + 0.5)

    top, left = start(row), start(col)
    return max(0, top), min(height, top + receptive_field), max(0, left), min(width, left + receptive_field)


def top_patches(images: torch.Tensor, maps: torch.Tensor, channel: int, receptive_field: int, stride: int,
                k: int = 9) -> list[torch.Tensor]:
    """The image patches ``(C, h, w)`` (cut by the receptive field, clipped) of the ``k`` strongest
    responses of ``channel`` in ``maps``, computed from ``images (N, C, H, W)``."""
    H, W = images.shape[-2:]
    patches = []
    for a in top_activations(maps, channel, k):
        top, bottom, left, right = patch_box(a.row, a.col, receptive_field, stride, H, W)
        patches.append(images[a.image, :, top:bottom, left:right])
    return patches


def nearest_neighbours(features: torch.Tensor, queries, k: int = 5) -> torch.Tensor:
    """For each query index, the ``k`` other items most similar to it by the cosine of their feature
    vectors ``features (N, D)``: ``(len(queries), k)`` indices, most similar first."""
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, D); got {tuple(features.shape)}")
    f = torch.nn.functional.normalize(features.float(), dim=1)
    q = torch.as_tensor(list(queries), dtype=torch.long, device=f.device)
    similarity = f[q] @ f.T
    similarity[torch.arange(len(q)), q] = -float("inf")  # not itself
    return similarity.topk(min(k, len(f) - 1), dim=1).indices
