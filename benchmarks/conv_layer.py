"""Time of one convolution layer's forward + backward: coursekit.convolution.layer (numpy, im2col) vs torch on the CPU.

Layers (float32, 3x3, stride 1, padding 1): LeNet-sized (batch 64, 16 -> 32 channels, 28x28) and a
larger one (batch 32, 64 -> 128 channels, 56x56). Prints the median time and the ratio to torch,
measured in this one run.

    python benchmarks/conv_layer.py [--repeats 20]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from timing import machine, median_seconds

from coursekit.convolution import layer

LAYERS = {
    "LeNet-sized 64x16x28x28 -> 32": (64, 16, 32, 28),
    "larger 32x64x56x56 -> 128": (32, 64, 128, 56),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(machine() + f"; median of {args.repeats}")
    print(f"{'layer':<32} {'coursekit':>10} {'torch':>10} {'ratio':>7}")
    rng = np.random.default_rng(0)
    for name, (N, C, F, S) in LAYERS.items():
        x = rng.normal(size=(N, C, S, S)).astype(np.float32)
        w = (0.1 * rng.normal(size=(F, C, 3, 3))).astype(np.float32)
        b = np.zeros(F, np.float32)
        dout = rng.normal(size=(N, F, S, S)).astype(np.float32)

        def ours():
            _, cache = layer.conv_forward(x, w, b, 1, 1)
            layer.conv_backward(dout, cache)

        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        dt = torch.tensor(dout)

        def theirs():
            out = torch.nn.functional.conv2d(xt, wt, bt, padding=1)
            torch.autograd.grad(out, (xt, wt, bt), dt)

        t_ours = median_seconds(ours, args.repeats)
        t_torch = median_seconds(theirs, args.repeats)
        print(f"{name:<32} {t_ours * 1e3:>7.1f} ms {t_torch * 1e3:>7.1f} ms {t_ours / t_torch:>6.2f}x")


if __name__ == "__main__":
    main()
