"""Transforms of image datasets (stage 04: the pixels of MNIST shuffled by one fixed permutation)."""

from __future__ import annotations

import numpy as np

STAGE = 4  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


def pixel_permutation(num_pixels: int, seed: int = 0):
    """A random permutation of ``range(num_pixels)`` (int64 torch tensor), the same for the same seed."""
    import torch

    if not isinstance(num_pixels, (int, np.integer)) or isinstance(num_pixels, bool) or num_pixels < 1:
        raise ValueError(f"num_pixels must be a positive integer; got {num_pixels!r}")
    return torch.randperm(int(num_pixels), generator=torch.Generator().manual_seed(seed))


def permute_pixels(images, permutation):
    """Shuffle the pixels of every image ``(N, H, W)`` with one fixed ``permutation`` of ``H*W``.

    Pixel ``j`` of an output image (in row-major order) is pixel ``permutation[j]`` of its input
    image. Works on torch tensors (on any device) and numpy arrays; keeps dtype and shape.
    """
    import torch

    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {tuple(images.shape)}")
    n, h, w = images.shape
    given = np.asarray(permutation.cpu() if isinstance(permutation, torch.Tensor) else permutation)
    if not np.issubdtype(given.dtype, np.integer):
        raise ValueError(f"permutation must hold integers (pixel indices); got dtype {given.dtype}")
    valid = given.shape == (h * w,) and np.array_equal(np.sort(given), np.arange(h * w))
    if isinstance(images, torch.Tensor):
        index = torch.as_tensor(given, dtype=torch.long).to(images.device)
    else:
        index = given
    if not valid:
        raise ValueError(f"permutation must hold each of 0..{h * w - 1} once (a permutation of the "
                         f"{h}x{w} pixels); got shape {tuple(index.shape)}")
    return images.reshape(n, h * w)[:, index].reshape(n, h, w)
