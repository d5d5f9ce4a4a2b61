"""Plausible wrong answers to the stage-03 exercises (see tests/wrong_answers/01-backprop.py)."""

CONV_FORWARD = """
def conv_forward(x, w, b, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
{prepare}
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3)){subsample}
    Ho, Wo = windows.shape[2], windows.shape[3]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    out = (cols @ w.reshape(F, -1).T + b).reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)
    return out, (x, w, stride, padding, cols)
"""

CONV_BACKWARD = """
def conv_backward(dout, cache):
    x, w, stride, padding, cols = cache
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    Ho, Wo = dout.shape[2], dout.shape[3]
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, F)
    dw = (cols.T @ d2).T.reshape(w.shape)
    db = {db}
    dcols = (d2 @ w.reshape(F, -1)).reshape(N, Ho, Wo, C, kh, kw)
    dxp = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u : u + stride * Ho : stride, v : v + stride * Wo : stride] {op} dcols[..., u, v].transpose(0, 3, 1, 2)
    return dxp[:, :, padding : padding + H, padding : padding + W], dw, db
"""

WRONG = {
    "shift-impl": {
        "np.roll, which wraps around instead of zero-filling": """
def shift(x, k):
    return np.roll(np.asarray(x, dtype=float), k)
""",
        "the direction reversed: x[n + k]": """
def shift(x, k):
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    n = np.arange(x.size)
    inside = (n + k >= 0) & (n + k < x.size)
    out[inside] = x[n[inside] + k]
    return out
""",
    },
    "convolve-impl": {
        "correlation: h not flipped": """
def convolve(x, h):
    x, h = np.asarray(x, dtype=float), np.asarray(h, dtype=float)
    y = np.zeros(x.size + h.size - 1)
    for k in range(x.size):
        y[k : k + h.size] += x[k] * h[::-1]
    return y
""",
        "np.convolve, which the exercise rules out": """
def convolve(x, h):
    return np.convolve(x, h)
""",
        "cut to the length of x": """
def convolve(x, h):
    x, h = np.asarray(x, dtype=float), np.asarray(h, dtype=float)
    y = np.zeros(x.size + h.size - 1)
    for k in range(x.size):
        y[k : k + h.size] += x[k] * h
    return y[: x.size]
""",
    },
    "impulse-response-impl": {
        "the step response instead": """
def impulse_response(system, n):
    return np.asarray(system(np.ones(n)))
""",
        "the impulse put in the middle": """
def impulse_response(system, n):
    delta = np.zeros(n)
    delta[n // 2] = 1.0
    return np.asarray(system(delta))
""",
    },
    "conv2d-impl": {
        "correlation: the kernel not flipped": """
def conv2d(image, kernel):
    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)
    kh, kw = k.shape
    H, W = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((H, W))
    for u in range(kh):
        for v in range(kw):
            out += k[u, v] * x[u : u + H, v : v + W]
    return out
""",
        "scipy's convolve2d": """
import scipy.signal

def conv2d(image, kernel):
    return scipy.signal.convolve2d(image, kernel, mode="valid")
""",
        "flipped along one axis only": """
def conv2d(image, kernel):
    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)[::-1, :]
    kh, kw = k.shape
    H, W = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((H, W))
    for u in range(kh):
        for v in range(kw):
            out += k[u, v] * x[u : u + H, v : v + W]
    return out
""",
        "flipped twice (the flip, then flipped indices)": """
def conv2d(image, kernel):
    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)[::-1, ::-1]
    kh, kw = k.shape
    H, W = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((H, W))
    for u in range(kh):
        for v in range(kw):
            out += k[kh - 1 - u, kw - 1 - v] * x[u : u + H, v : v + W]
    return out
""",
    },
    "output-size-impl": {
        "the stride ignored": """
def output_size(n, k, stride=1, padding=0):
    return n + 2 * padding - k + 1
""",
        "the padding counted on one side only": """
def output_size(n, k, stride=1, padding=0):
    return (n + padding - k) // stride + 1
""",
        "off by one: the +1 forgotten": """
def output_size(n, k, stride=1, padding=0):
    return (n + 2 * padding - k) // stride
""",
    },
    "conv-forward-impl": {
        "a true convolution: the filters flipped": CONV_FORWARD.format(
            prepare="    w = w[:, :, ::-1, ::-1]", subsample="[:, :, ::stride, ::stride]"),
        "the stride ignored": CONV_FORWARD.format(prepare="", subsample=""),
        "input and output channels swapped": CONV_FORWARD.format(
            prepare="    w = w.transpose(1, 0, 2, 3)\n    F = w.shape[0]", subsample="[:, :, ::stride, ::stride]"),
        "torch's conv2d": """
import torch

def conv_forward(x, w, b, stride=1, padding=0):
    out = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride, padding=padding)
    return out.numpy(), (x, w, stride, padding, None)
""",
        "right values, but a Python loop over every output pixel": """
def conv_forward(x, w, b, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    out = np.zeros((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, stride, padding, None)
""",
    },
    "conv-backward-impl": {
        "= instead of +=: overlapping patches overwrite each other": CONV_BACKWARD.format(db="d2.sum(axis=0)", op="="),
        "db summed over the batch only": CONV_BACKWARD.format(db="dout.sum(axis=0)", op="+="),
        "db summed over every axis": CONV_BACKWARD.format(db="np.full(F, dout.sum())", op="+="),
        "right values, but a Python loop over every output pixel": """
def conv_backward(dout, cache):
    x, w, stride, padding, cols = cache
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    Ho, Wo = dout.shape[2], dout.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(Ho):
        for j in range(Wo):
            rows, cols_ = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, rows, cols_], axes=([0], [0]))
            dxp[:, :, rows, cols_] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    return dxp[:, :, padding : padding + H, padding : padding + W], dw, dout.sum(axis=(0, 2, 3))
""",
    },
}

DELEGATING = {
    "shift-impl": "from coursekit.conv import shift",
    "convolve-impl": """
import coursekit.conv

def convolve(x, h):
    return coursekit.conv.convolve(x, h, "full")
""",
    "impulse-response-impl": "from coursekit.conv import impulse_response",
    "conv2d-impl": """
from coursekit import conv as reference

def conv2d(image, kernel):
    return reference.convolve2d(image, kernel, mode="valid")
""",
    "output-size-impl": "from coursekit.conv import output_size",
    "conv-forward-impl": "from coursekit.conv import conv_forward",
    "conv-backward-impl": """
import coursekit.conv

def conv_backward(dout, cache):
    x, w, stride, padding, cols = cache
    _, reference_cache = coursekit.conv.conv_forward(x, w, None, stride, padding)
    return coursekit.conv.conv_backward(dout, reference_cache)
""",
}
