"""DrLIM's network and data (Hadsell, Chopra & LeCun 2006; stage 06): the mapping G_W of its MNIST
experiments, the 4s and 9s, horizontally shifted copies, and the slant of a digit from its moments."""

from __future__ import annotations

import torch
from torch import nn

STAGE = 6  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

SHIFTS = (-6, -3, 3, 6)  # the second experiment's horizontal shifts, in pixels


def drlim_network(out: int = 2) -> nn.Module:
    """G_W: C1 15 maps 6x6 -> S2 2x2 sub-sampling -> C3 30 maps 9x9 -> F3 ``out`` units, on ``(N, 1, 28, 28)``
    (28 -> 23 -> 11 -> 3: C3's 30 maps of 3x3 feed F3). ReLU after C1 and C3; S2 is average pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 15, 6), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(15, 30, 9), nn.ReLU(),
        nn.Flatten(), nn.Linear(30 * 3 * 3, out),
    )


def shift_horizontally(images: torch.Tensor, shift: int) -> torch.Tensor:
    """``images (N, H, W)`` moved ``shift`` pixels to the right (left if negative), zeros coming in."""
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {tuple(images.shape)}")
    if abs(shift) >= images.shape[-1]:
        raise ValueError(f"a shift of {shift} moves {images.shape[-1]}-pixel-wide images out of view")
    out = torch.zeros_like(images)
    if shift > 0:
        out[..., shift:] = images[..., :-shift]
    elif shift < 0:
        out[..., :shift] = images[..., -shift:]
    else:
        out.copy_(images)
    return out


def slant(images: torch.Tensor) -> torch.Tensor:
    """The slant of each digit ``(N, H, W)`` from the second-order central moments of its intensity: the
    shear ``-mu11 / mu02`` (x to the right, y down) by which deskewing would straighten it. 0 for an
    upright stroke, positive when its top leans to the right (x grows as y falls)."""
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {tuple(images.shape)}")
    w = images.double()
    n, h, wd = w.shape
    ys = torch.arange(h, dtype=torch.float64, device=w.device)[None, :, None]
    xs = torch.arange(wd, dtype=torch.float64, device=w.device)[None, None, :]
    mass = w.sum((1, 2)).clamp_min(1e-12)
    cy = (w * ys).sum((1, 2)) / mass
    cx = (w * xs).sum((1, 2)) / mass
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    mu11 = (w * dx * dy).sum((1, 2)) / mass
    mu02 = (w * dy * dy).sum((1, 2)).div(mass).clamp_min(1e-12)
    return -mu11 / mu02


def fours_and_nines(images: torch.Tensor, labels: torch.Tensor, per_class: int):
    """The first ``per_class`` 4s and the first ``per_class`` 9s of ``(images, labels)``: images, and labels
    4 or 9, the 4s first."""
    fours = torch.nonzero(labels == 4).flatten()[:per_class]
    nines = torch.nonzero(labels == 9).flatten()[:per_class]
    if len(fours) < per_class or len(nines) < per_class:
        raise ValueError(f"asked for {per_class} of each; the set has {len(fours)} 4s and {len(nines)} 9s")
    index = torch.cat([fours, nines])
    return images[index], labels[index]
