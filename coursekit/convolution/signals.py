"""Signals and linear time-invariant systems (stage 03).

A finite signal is a 1-D array ``x[0..n-1]``, zero outside. ``shift(x, k)[n] = x[n - k]`` (a delay
for ``k > 0``, zero-filled), ``impulse(n, k)`` is ``delta[. - k]``. Convolution
``(x * h)[n] = sum_k x[k] h[n - k]`` in the ``full``, ``same`` and ``valid`` sizes of numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

STAGE = 3  # the stage whose exercises write these pieces (coursekit.grading switches them off there)
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
