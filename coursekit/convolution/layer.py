"""The convolution layer and pooling on feature maps (stage 03).

Arrays are ``(N, C, H, W)`` like torch; a filter bank ``w`` is ``(F, C, KH, KW)`` with bias
``b (F,)``. Like ``torch.nn.functional.conv2d`` (and every deep-learning library), the layer
computes a **cross-correlation**: the flip is left out, since the filters are learned anyway.
:func:`conv_forward` and :func:`conv_backward` are vectorised with im2col; the only Python
loops run over the ``KH x KW`` kernel offsets, never over pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from coursekit.nets.autodiff import node, value

STAGE = 3  # the stage whose exercises write these pieces (coursekit.grading switches them off there)




def output_size(n: int, k: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution layer: ``floor((n + 2 padding - k) / stride) + 1``."""
    for name, v in (("n", n), ("k", k), ("stride", stride)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"padding must be a non-negative integer; got {padding!r}")
    if n + 2 * padding < k:
        raise ValueError(f"a kernel of {k} does not fit in {n} samples with padding {padding}")
    return (n + 2 * padding - k) // stride + 1


def _check_layer(x, w, b, stride, padding):
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, C, H, W); got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"w must be (F, C, KH, KW); got shape {w.shape}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w has {w.shape[1]} input channels but x has {x.shape[1]} (w is {w.shape}, x is {x.shape})")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ValueError(f"b must have shape ({w.shape[0]},) for {w.shape[0]} filters; got {np.shape(b)}")
    Ho = output_size(x.shape[2], w.shape[2], stride, padding)
    Wo = output_size(x.shape[3], w.shape[3], stride, padding)
    return x, w, Ho, Wo


def im2col(x, kh: int, kw: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Every ``C x kh x kw`` patch of ``x (N, C, H, W)`` as a column: ``(C * kh * kw, N * Ho * Wo)``.

    Built with one strided copy per kernel offset (``kh * kw`` of them), each moving whole
    ``Ho x Wo`` planes; this channel-major layout keeps both copies and the products contiguous.
    """
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, padding), output_size(W, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    cols = np.empty((C, kh, kw, N, Ho, Wo), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = xp[:, :, u : u + stride * Ho : stride, v : v + stride * Wo : stride].transpose(1, 0, 2, 3)
    return cols.reshape(C * kh * kw, N * Ho * Wo)


def col2im(cols, x_shape, kh: int, kw: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every patch back where it came from."""
    N, C, H, W = x_shape
    Ho, Wo = output_size(H, kh, stride, padding), output_size(W, kw, stride, padding)
    patches = cols.reshape(C, kh, kw, N, Ho, Wo)
    out = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for u in range(kh):  # loops over kernel offsets only
        for v in range(kw):
            out[:, :, u : u + stride * Ho : stride, v : v + stride * Wo : stride] += patches[:, u, v].transpose(1, 0, 2, 3)
    return out[:, :, padding : padding + H, padding : padding + W] if padding else out


def conv_forward(x, w, b=None, stride: int = 1, padding: int = 0) -> tuple[np.ndarray, tuple]:
    """``out[n, f] = sum_c corr(x[n, c], w[f, c]) + b[f]``: ``(N, F, Ho, Wo)`` and a cache for backward."""
    x, w, Ho, Wo = _check_layer(x, w, b, stride, padding)
    F, _, kh, kw = w.shape
    w = w.astype(np.result_type(x.dtype, w.dtype), copy=False)
    cols = im2col(x, kh, kw, stride, padding)
    out = w.reshape(F, -1) @ cols  # (F, N * Ho * Wo)
    if b is not None:
        out += np.asarray(b, dtype=out.dtype)[:, None]
    out = out.reshape(F, x.shape[0], Ho, Wo).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(out), (x.shape, cols, w, stride, padding)


def conv_backward(dout, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dw, db)`` of :func:`conv_forward` given ``dout (N, F, Ho, Wo)``."""
    x_shape, cols, w, stride, padding = cache
    F, _, kh, kw = w.shape
    dout = np.asarray(dout)
    expected = (x_shape[0], F, output_size(x_shape[2], kh, stride, padding), output_size(x_shape[3], kw, stride, padding))
    if dout.shape != expected:
        raise ValueError(f"dout must have shape {expected}; got {dout.shape}")
    d2 = dout.transpose(1, 0, 2, 3).reshape(F, -1).astype(cols.dtype, copy=False)  # (F, N * Ho * Wo)
    dw = (cols @ d2.T).T.reshape(w.shape)  # this operand order is several times faster in BLAS than d2 @ cols.T
    db = d2.sum(axis=1)
    dout_cols_bytes = F * kh * kw * x_shape[0] * x_shape[2] * x_shape[3] * cols.itemsize
    if stride == 1 and kh == kw and padding <= kh - 1 and dout_cols_bytes <= 128 * 2**20:
        # dx is itself a convolution: dout, padded by k-1-p, correlated with the filters flipped in space
        # and with input and output channels swapped. One more im2col product, instead of scattering
        # every patch back with col2im, which is the slowest step for small layers. (For large layers the
        # im2col of dout would take too much memory: they keep col2im.)
        flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        dx, _ = conv_forward(dout.astype(cols.dtype, copy=False), flipped, None, 1, kh - 1 - padding)
    else:
        dx = col2im(w.reshape(F, -1).T @ d2, x_shape, kh, kw, stride, padding)
    return dx, dw, db


def conv(X, U, stride: int = 1, padding: int = 0):
    """The convolution layer as a :mod:`coursekit.nets.autodiff` node: ``conv(X, (W, b))``."""
    W, b = U
    out, cache = conv_forward(value(X), value(W), value(b), stride, padding)

    def back(dOut, dX, dU):
        dW, db = dU
        dx, dw, dbias = conv_backward(dOut, cache)
        dW += dw
        db += dbias
        dX += dx

    return node(out, back, (X, U))


def _pool_windows(x, size: int, stride: int | None):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, C, H, W); got shape {x.shape}")
    stride = stride or size
    return sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]


def max_pool(x, size: int = 2, stride: int | None = None) -> np.ndarray:
    """Max over ``size x size`` windows of ``x (N, C, H, W)`` (stride defaults to ``size``)."""
    return _pool_windows(x, size, stride).max(axis=(4, 5))


def avg_pool(x, size: int = 2, stride: int | None = None) -> np.ndarray:
    """Mean over ``size x size`` windows of ``x (N, C, H, W)`` (LeNet's sub-sampling, without its weights)."""
    return _pool_windows(x, size, stride).mean(axis=(4, 5))
