"""Convolution as a linear time-invariant system, and as a layer (stage 03).

Signals (1-D)
    A finite signal is a 1-D array ``x[0..n-1]``, zero outside. ``shift(x, k)[n] = x[n - k]`` (a delay
    for ``k > 0``, zero-filled), ``impulse(n, k)`` is ``delta[. - k]``. Convolution
    ``(x * h)[n] = sum_k x[k] h[n - k]`` in the ``full``, ``same`` and ``valid`` sizes of numpy.

Images (2-D)
    :func:`convolve2d` flips the kernel (true convolution), :func:`correlate2d` does not; with zero
    padding outside the image. Kernels: :func:`box`, :func:`gaussian`, ``SOBEL_X``, ``SOBEL_Y``, ``LAPLACIAN``.

Feature maps (layers)
    Arrays are ``(N, C, H, W)`` like torch; a filter bank ``w`` is ``(F, C, KH, KW)`` with bias
    ``b (F,)``. Like ``torch.nn.functional.conv2d`` (and every deep-learning library), the layer
    computes a **cross-correlation**: the flip is left out, since the filters are learned anyway.
    :func:`conv_forward` and :func:`conv_backward` are vectorised with im2col; the only Python
    loops run over the ``KH x KW`` kernel offsets, never over pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MODES = ("full", "same", "valid")


# -- 1-D signals ----------------------------------------------------------------------------------


def _signal(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be a 1-D numeric array; got shape {x.shape}, dtype {x.dtype}")
    return x.astype(np.result_type(x.dtype, np.float64))


def impulse(n: int, k: int = 0) -> np.ndarray:
    """The unit impulse ``delta[m - k]`` on ``m = 0..n-1``."""
    if not 0 <= k < n:
        raise ValueError(f"the impulse position k must lie in [0, {n}); got {k}")
    d = np.zeros(n)
    d[k] = 1.0
    return d


def shift(x, k: int) -> np.ndarray:
    """``t_k(x)[n] = x[n - k]``: a delay by ``k`` samples (advance for ``k < 0``), zero-filled."""
    x = _signal(x, "x")
    if int(k) != k:
        raise ValueError(f"k must be an integer; got {k!r}")
    k = int(k)
    out = np.zeros_like(x)
    if abs(k) >= x.size:  # shifted out entirely
        return out
    if k >= 0:
        out[k:] = x[: x.size - k]
    else:
        out[: x.size + k] = x[-k:]
    return out


def convolve(x, h, mode: str = "full") -> np.ndarray:
    """``(x * h)[n] = sum_k x[k] h[n - k]``; sizes as ``np.convolve``: full ``len(x)+len(h)-1``,
    same ``max(len(x), len(h))``, valid ``max - min + 1``."""
    x, h = _signal(x, "x"), _signal(h, "h")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if x.size == 0 or h.size == 0:
        raise ValueError(f"x and h must not be empty; got lengths {x.size} and {h.size}")
    if h.size > x.size:  # convolution commutes; keep the longer signal as the one we slide over
        x, h = h, x
    m = h.size
    padded = np.pad(x, m - 1)
    full = sliding_window_view(padded, m) @ h[::-1]
    if mode == "full":
        return full
    if mode == "valid":
        return full[m - 1 : x.size]
    start = (m - 1) // 2
    return full[start : start + x.size]


def impulse_response(system, n: int) -> np.ndarray:
    """``h = f(delta)``: the response of ``system`` to the unit impulse at 0, on ``n`` samples."""
    return _signal(system(impulse(n)), "the system's output")


def is_linear(system, n: int = 32, *, trials: int = 5, seed: int = 0, tol: float = 1e-9) -> bool:
    """Check ``f(a x + b y) = a f(x) + b f(y)`` on random signals and scalars."""
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        x, y = rng.normal(size=n), rng.normal(size=n)
        a, b = rng.normal(size=2)
        lhs = np.asarray(system(a * x + b * y))
        rhs = a * np.asarray(system(x)) + b * np.asarray(system(y))
        if lhs.shape != rhs.shape or not np.allclose(lhs, rhs, rtol=tol, atol=tol):
            return False
    return True


def is_time_invariant(system, n: int = 32, *, shifts=(1, 3, 7), seed: int = 0, tol: float = 1e-9) -> bool:
    """Check ``f(t_k(x)) = t_k(f(x))`` on random signals that are zero near both ends (so that a
    shift by ``k`` loses no sample of a finite signal)."""
    rng = np.random.default_rng(seed)
    margin = max(abs(k) for k in shifts) + 1
    if n <= 2 * margin:
        raise ValueError(f"n must exceed twice the largest shift plus one ({2 * margin}); got {n}")
    for k in shifts:
        x = np.zeros(n)
        x[margin : n - margin] = rng.normal(size=n - 2 * margin)
        lhs = np.asarray(system(shift(x, k)))
        rhs = shift(np.asarray(system(x)), k)
        if lhs.shape != rhs.shape or not np.allclose(lhs, rhs, rtol=tol, atol=tol):
            return False
    return True


# -- 2-D images -------------------------------------------------------------------------------------


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


# -- layers on feature maps -------------------------------------------------------------------------


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
    """The convolution layer as a :mod:`coursekit.autodiff` node: ``conv(X, (W, b))``."""
    from coursekit.autodiff import node, value

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
