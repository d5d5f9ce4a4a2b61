"""Adversarial submissions of stage 03 (the format: tests/adversarial/01-backprop.py).

``{"failing": [test grade ids]}``: these test cells score 0 (an attack on one check of an exercise whose
other checks the answer passes honestly).
"""

LOOPED_CONV_FORWARD = (
    "def conv_forward(x, w, b, stride=1, padding=0):\n"
    "    N, C, H, W = x.shape\n    F, _, Kh, Kw = w.shape\n"
    "    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))\n"
    "    Ho, Wo = (H + 2 * padding - Kh) // stride + 1, (W + 2 * padding - Kw) // stride + 1\n"
    "    out = np.zeros((N, F, Ho, Wo))\n"
    "    for i in range(Ho):\n        for j in range(Wo):\n"
    "            patch = xp[:, :, i * stride:i * stride + Kh, j * stride:j * stride + Kw]\n"
    "            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b\n"
    "    return out, (x, w, stride, padding, None)\n"
)

CORPUS = {
    "replaces-the-shells-run-cell": {"base": "stub", "expect": "nothing", "answers": {
        "shift-impl": "shell = get_ipython()\nshell.run_cell = shell.run_cell_async = lambda *a, **k: None\n"}},
    "kills-the-kernel-with-a-signal": {"base": "solution", "expect": {"only": ["shift-impl"]}, "answers": {
        "shift-impl": "__SOLUTION__\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"}},
    "switches-off-the-line-count": {"base": "solution", "expect": {"failing": ["conv-forward-vectorised"]}, "answers": {
        "conv-forward-impl": "import sys\n" + LOOPED_CONV_FORWARD.replace(
            "    N, C, H, W = x.shape\n", "    sys.settrace(None)\n    N, C, H, W = x.shape\n", 1)}},
    "numpy-convolve-under-another-name": {"base": "solution", "expect": {"without": ["convolve-impl"]}, "answers": {
        "convolve-impl": "full = np.convolve\ndef convolve(x, h):\n    return full(np.asarray(x, float), np.asarray(h, float))\n"}},
    "torch-convolution": {"base": "solution", "expect": {"without": ["conv-forward-impl"]}, "answers": {
        "conv-forward-impl": (
            "def conv_forward(x, w, b, stride=1, padding=0):\n"
            "    out = torch.convolution(torch.as_tensor(x), torch.as_tensor(w), torch.as_tensor(b), [stride] * 2,\n"
            "                            [padding] * 2, [1, 1], False, [0, 0], 1)\n"
            "    return out.numpy(), (x, w, stride, padding, None)\n")}},
    "torch-nn-grad-for-the-backward-pass": {"base": "solution", "expect": {"without": ["conv-backward-impl"]}, "answers": {
        "conv-backward-impl": (
            "import torch.nn.grad as tg\n"
            "def conv_backward(dout, cache):\n    x, w, stride, padding, _ = cache\n"
            "    d, xt, wt = torch.as_tensor(dout), torch.as_tensor(x), torch.as_tensor(w)\n"
            "    dx = tg.conv2d_input(xt.shape, wt, d, stride=stride, padding=padding)\n"
            "    dw = tg.conv2d_weight(xt, wt.shape, d, stride=stride, padding=padding)\n"
            "    return dx.numpy(), dw.numpy(), dout.sum(axis=(0, 2, 3))\n")}},
    "sliding-windows-and-einsum": {"base": "solution", "expect": "full", "flagged": False, "answers": {
        "conv2d-impl": ("def conv2d(image, kernel):\n    k = np.asarray(kernel, dtype=float)[::-1, ::-1]\n"
                        "    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(image, dtype=float), k.shape)\n"
                        "    return np.einsum('ijkl,kl->ij', windows, k)\n")}},
}
