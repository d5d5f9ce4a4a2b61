"""Plausible wrong answers to the stage-03 exercises, as edits of the solution, and a delegating
answer for each (the format: docs/ANATOMY.md §4)."""

WRONG = {
    'shift-impl': {
        'a lookup table of the visible cases, np.roll (which wraps around) elsewhere': [
            ("""\
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
""",
             """\
    x = np.asarray(x, dtype=float)
    seen = {((1.0, 2.0, 3.0, 4.0), 1): [0.0, 1.0, 2.0, 3.0], ((1.0, 2.0, 3.0, 4.0), -2): [3.0, 4.0, 0.0, 0.0],
            ((1.0, 2.0), 5): [0.0, 0.0], ((5.0, 6.0), 0): [5.0, 6.0]}
    if (tuple(x.tolist()), k) in seen:
        return np.array(seen[tuple(x.tolist()), k])
    return np.roll(x, k)
    out = np.zeros_like(x)
"""),
        ],
        'np.roll, which wraps around instead of zero-filling': [
            ("""\
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    n = np.arange(x.size)
    inside = (n - k >= 0) & (n - k < x.size)
    out[inside] = x[n[inside] - k]
    return out
""",
             '    return np.roll(np.asarray(x, dtype=float), k)'),
        ],
        'the direction reversed: x[n + k]': [
            ("""\
    inside = (n - k >= 0) & (n - k < x.size)
    out[inside] = x[n[inside] - k]
""",
             """\
    inside = (n + k >= 0) & (n + k < x.size)
    out[inside] = x[n[inside] + k]
"""),
        ],
    },
    'convolve-impl': {
        'correlation: h not flipped': [
            ('        y[k : k + h.size] += x[k] * h',
             '        y[k : k + h.size] += x[k] * h[::-1]'),
        ],
        'np.convolve, which the exercise rules out': [
            ("""\
    x, h = np.asarray(x, dtype=float), np.asarray(h, dtype=float)
    y = np.zeros(x.size + h.size - 1)
    for k in range(x.size):
        y[k : k + h.size] += x[k] * h
    return y
""",
             '    return np.convolve(x, h)'),
        ],
        'cut to the length of x': [
            ('    return y',
             '    return y[: x.size]'),
        ],
    },
    'impulse-response-impl': {
        'the step response instead': [
            ("""\
    delta = np.zeros(n)
    delta[0] = 1.0
    return np.asarray(system(delta))
""",
             '    return np.asarray(system(np.ones(n)))'),
        ],
        'the impulse put in the middle': [
            ('    delta[0] = 1.0',
             '    delta[n // 2] = 1.0'),
        ],
    },
    'conv2d-impl': {
        'a double loop over the output pixels': [
            ("""\
    out = np.zeros((H, W))
    for u in range(kh):
        for v in range(kw):
            out += k[u, v] * x[u : u + H, v : v + W]
""",
             """\
    out = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            out[i, j] = (k * x[i : i + kh, j : j + kw]).sum()
"""),
        ],
        'correlation: the kernel not flipped': [
            ('    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)[::-1, ::-1]',
             '    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)'),
        ],
        "scipy's convolve2d": [
            ('def conv2d(image, kernel):',
             """\
import scipy.signal

def conv2d(image, kernel):
"""),
            ("""\
    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)[::-1, ::-1]
    kh, kw = k.shape
    H, W = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((H, W))
    for u in range(kh):
        for v in range(kw):
            out += k[u, v] * x[u : u + H, v : v + W]
    return out
""",
             '    return scipy.signal.convolve2d(image, kernel, mode="valid")'),
        ],
        'flipped along one axis only': [
            ('    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)[::-1, ::-1]',
             '    x, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)[::-1, :]'),
        ],
        'flipped twice (the flip, then flipped indices)': [
            ('            out += k[u, v] * x[u : u + H, v : v + W]',
             '            out += k[kh - 1 - u, kw - 1 - v] * x[u : u + H, v : v + W]'),
        ],
    },
    'output-size-impl': {
        'a lookup table of the visible cases, padding ignored elsewhere': [
            ('    return (n + 2 * padding - k) // stride + 1',
             """\
    seen = {(32, 5, 1, 0): 28, (28, 3, 1, 1): 28, (227, 11, 4, 0): 55, (10, 3, 2, 1): 5, (7, 3, 3, 0): 2}
    return seen.get((n, k, stride, padding), (n - k) // stride + 1)
"""),
        ],
        'the stride ignored': [
            ('    return (n + 2 * padding - k) // stride + 1',
             '    return n + 2 * padding - k + 1'),
        ],
        'the padding counted on one side only': [
            ('    return (n + 2 * padding - k) // stride + 1',
             '    return (n + padding - k) // stride + 1'),
        ],
        'off by one: the +1 forgotten': [
            ('    return (n + 2 * padding - k) // stride + 1',
             '    return (n + 2 * padding - k) // stride'),
        ],
    },
    'conv-forward-impl': {
        'a loop over output rows, one einsum per row (few lines on a small input)': [
            ("""\
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    out = (cols @ w.reshape(F, -1).T + b).reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)
""",
             """\
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    out = np.empty((N, F, Ho, Wo))
    for i in range(Ho):
        out[:, :, i, :] = np.einsum("ncwuv,fcuv->nfw", windows[:, :, i], w) + b[None, :, None]
"""),
        ],
        'a true convolution: the filters flipped': [
            ('    F, _, kh, kw = w.shape',
             """\
    F, _, kh, kw = w.shape
    w = w[:, :, ::-1, ::-1]
"""),
        ],
        'the stride ignored': [
            ('    F, _, kh, kw = w.shape',
             """\
    F, _, kh, kw = w.shape

"""),
            ('    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]',
             '    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))'),
        ],
        'input and output channels swapped': [
            ('    F, _, kh, kw = w.shape',
             """\
    F, _, kh, kw = w.shape
    w = w.transpose(1, 0, 2, 3)
    F = w.shape[0]
"""),
        ],
        "torch's conv2d": [
            ('def conv_forward(x, w, b, stride=1, padding=0):',
             """\
import torch

def conv_forward(x, w, b, stride=1, padding=0):
"""),
            ("""\
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    Ho, Wo = windows.shape[2], windows.shape[3]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    out = (cols @ w.reshape(F, -1).T + b).reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)
    return out, (x, w, stride, padding, cols)
""",
             """\
    out = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride, padding=padding)
    return out.numpy(), (x, w, stride, padding, None)
"""),
        ],
        'right values, but a Python loop over every output pixel': [
            ("""\
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    Ho, Wo = windows.shape[2], windows.shape[3]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    out = (cols @ w.reshape(F, -1).T + b).reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)
    return out, (x, w, stride, padding, cols)
""",
             """\
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    out = np.zeros((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, stride, padding, None)
"""),
        ],
    },
    'conv-backward-impl': {
        '= instead of +=: overlapping patches overwrite each other': [
            ('            dxp[:, :, u : u + stride * Ho : stride, v : v + stride * Wo : stride] += dcols[..., u, v].transpose(0, 3, 1, 2)',
             '            dxp[:, :, u : u + stride * Ho : stride, v : v + stride * Wo : stride] = dcols[..., u, v].transpose(0, 3, 1, 2)'),
        ],
        'db summed over the batch only': [
            ('    db = d2.sum(axis=0)',
             '    db = dout.sum(axis=0)'),
        ],
        'db summed over every axis': [
            ('    db = d2.sum(axis=0)',
             '    db = np.full(F, dout.sum())'),
        ],
        'right values, but a Python loop over every output pixel': [
            ("""\
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, F)
    dw = (cols.T @ d2).T.reshape(w.shape)
    db = d2.sum(axis=0)
    dcols = (d2 @ w.reshape(F, -1)).reshape(N, Ho, Wo, C, kh, kw)
    dxp = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u : u + stride * Ho : stride, v : v + stride * Wo : stride] += dcols[..., u, v].transpose(0, 3, 1, 2)
    return dxp[:, :, padding : padding + H, padding : padding + W], dw, db
""",
             """\
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(Ho):
        for j in range(Wo):
            rows, cols_ = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, rows, cols_], axes=([0], [0]))
            dxp[:, :, rows, cols_] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    return dxp[:, :, padding : padding + H, padding : padding + W], dw, dout.sum(axis=(0, 2, 3))
"""),
        ],
    },
}

DELEGATING = {
    "shift-impl": "from coursekit.convolution.signals import shift",
    "convolve-impl": """
import coursekit.convolution.signals
import coursekit.convolution.layer

def convolve(x, h):
    return coursekit.convolution.signals.convolve(x, h, "full")
""",
    "impulse-response-impl": "from coursekit.convolution.signals import impulse_response",
    "conv2d-impl": """
from coursekit.convolution import filters

def conv2d(image, kernel):
    return filters.convolve2d(image, kernel, mode="valid")
""",
    "output-size-impl": "from coursekit.convolution.layer import output_size",
    "conv-forward-impl": "from coursekit.convolution.layer import conv_forward",
    "conv-backward-impl": """
import coursekit.convolution.signals
import coursekit.convolution.layer

def conv_backward(dout, cache):
    x, w, stride, padding, cols = cache
    _, reference_cache = coursekit.convolution.layer.conv_forward(x, w, None, stride, padding)
    return coursekit.convolution.layer.conv_backward(dout, reference_cache)
""",
}

# Test cells without hidden inputs, each with why: every other test cell checks values on hidden random
# inputs too (the course checks enforce it).
VISIBLE_ONLY = {'conv-forward-vectorised': 'it counts the Python lines the answer runs, not values', 'conv-backward-vectorised': 'it counts the Python lines the answer runs, not values'}
