"""Filtering images (stage 03): 2-D convolution and correlation, and the classic kernels.

:func:`convolve2d` flips the kernel (true convolution), :func:`correlate2d` does not; with zero
padding outside the image. Kernels: :func:`box`, :func:`gaussian`, ``SOBEL_X``, ``SOBEL_Y``, ``LAPLACIAN``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from coursekit.convolution.signals import MODES

STAGE = 3  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


def _image(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be a 2-D numeric array; got shape {x.shape}, dtype {x.dtype}")
    return x.astype(np.result_type(x.dtype, np.float32))


def correlate2d(image, kernel, mode: str = "same") -> np.ndarray:
    """``y[i, j] = sum_{u,v} x[i + u, j + v] k[u, v]``, with zeros outside the image."""
    x, k = _image(image, "image"), _image(kernel, "kernel")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    kh, kw = k.shape
    if mode == "valid" and (kh > x.shape[0] or kw > x.shape[1]):
        raise ValueError(f"a {k.shape} kernel does not fit in a {x.shape} image for mode 'valid'")
    if mode == "full":
        x = np.pad(x, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    elif mode == "same":
        x = np.pad(x, (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)))
    return np.einsum("ijuv,uv->ij", sliding_window_view(x, (kh, kw)), k)


def convolve2d(image, kernel, mode: str = "same") -> np.ndarray:
    """True 2-D convolution: correlation with the kernel flipped in both axes.

    For ``same``, the output is aligned like ``scipy.signal.convolve2d(..., mode='same')``.
    """
    k = _image(kernel, "kernel")
    if mode == "same":  # flipping moves the kernel's centre for even sizes: pad on the other side
        x = _image(image, "image")
        kh, kw = k.shape
        x = np.pad(x, ((kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2)))
        return correlate2d(x, k[::-1, ::-1], mode="valid")
    return correlate2d(image, k[::-1, ::-1], mode=mode)


def box(size: int = 3) -> np.ndarray:
    """The ``size x size`` moving average."""
    return np.full((size, size), 1.0 / size**2)


def gaussian(sigma: float = 1.0, size: int | None = None) -> np.ndarray:
    """A normalised Gaussian kernel; ``size`` defaults to ``2 * ceil(3 sigma) + 1``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; got {sigma}")
    size = size or 2 * int(np.ceil(3 * sigma)) + 1
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


SOBEL_X = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])  # convolved: d/dx (x to the right)
SOBEL_Y = SOBEL_X.T.copy()
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
