"""Time per training step of the two-layer net: hand-written backprop vs coursekit.nets.autodiff vs torch.

One step = forward, loss with weight decay, all gradients, a gradient-descent update. Batch 256,
hidden 100, 10 classes, inputs of 2 and of 784 dimensions, float64 throughout (the engine's dtype),
torch on the CPU (also float32 for reference). Prints the median time per step and the ratios to the
hand-written backprop of stage 01, measured in this one run.

    python benchmarks/autodiff_step.py [--repeats 200]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from timing import machine, median_seconds

from coursekit.nets import autodiff, ops, backprop

N, H, K, LAM, LR = 256, 100, 10, 1e-3, 0.1


def problem(D: int, seed: int = 0):
    g = np.random.default_rng(seed)
    return g.normal(size=(N, D)), np.eye(K)[g.integers(0, K, size=N)], backprop.init_params(D, H, K, g, scale=0.05)


def handwritten(X, T, params):
    state = dict(params)

    def step():
        nonlocal state
        _, grads = backprop.loss_and_grads(X, T, state, LAM)
        state = backprop.gd_step(state, grads, LR)
    return step


def engine(X, T, params):
    P = [autodiff.Param(params[k].copy(), k) for k in ("W1", "b1", "W2", "b2")]
    W1, b1, W2, b2 = P

    def step():
        L = ops.loss(ops.model(X, ((W1, b1), (W2, b2))), T, (W1, W2), LAM)
        autodiff.backward(L)
        for p in P:
            p.value -= LR * p.grad
    return step


def torch_autograd(X, T, params, dtype):
    Xt, labels = torch.tensor(X, dtype=dtype), torch.tensor(T.argmax(axis=1))
    P = [torch.tensor(params[k], dtype=dtype, requires_grad=True) for k in ("W1", "b1", "W2", "b2")]
    W1, b1, W2, b2 = P

    def step():
        A2 = torch.relu(Xt @ W1 + b1) @ W2 + b2
        L = torch.nn.functional.cross_entropy(A2, labels) + LAM / 2 * ((W1 ** 2).sum() + (W2 ** 2).sum())
        for p in P:
            p.grad = None
        L.backward()
        with torch.no_grad():
            for p in P:
                p -= LR * p.grad
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(machine())
    print(f"batch {N}, hidden {H}, {K} classes; median of {args.repeats} steps")
    print(f"{'D':>4} {'hand-written':>13} {'engine':>10} {'torch f64':>10} {'torch f32':>10} "
          f"{'engine/hand':>12} {'engine/torch64':>15}")
    for D in (2, 784):
        X, T, params = problem(D)
        t_hand = median_seconds(handwritten(X, T, params), args.repeats, warmup=10)
        t_engine = median_seconds(engine(X, T, params), args.repeats, warmup=10)
        t_torch64 = median_seconds(torch_autograd(X, T, params, torch.float64), args.repeats, warmup=10)
        t_torch32 = median_seconds(torch_autograd(X, T, params, torch.float32), args.repeats, warmup=10)
        print(f"{D:>4} {t_hand * 1e3:>10.3f} ms {t_engine * 1e3:>7.3f} ms {t_torch64 * 1e3:>7.3f} ms "
              f"{t_torch32 * 1e3:>7.3f} ms {t_engine / t_hand:>11.2f}x {t_engine / t_torch64:>14.2f}x")


if __name__ == "__main__":
    main()
