"""The lecture's operations as autodiff nodes and blocks (stage 02): ``relu``, ``affine``, ``entropy``,
``decay``, ``add``, and the blocks ``loss`` and ``model`` of the two-layer network.

Each computes its value and returns ``node(value, back, inputs)``; ``back(dOut, *dIns)`` adds (``+=``)
its contribution to the gradient slots of its inputs (see :mod:`coursekit.nets.autodiff`).
"""

from __future__ import annotations

import numpy as np

from coursekit.nets import backprop
from coursekit.nets.autodiff import Node, block, node, value

STAGE = 2  # the stage whose exercises write these pieces (coursekit.grading switches them off there)


def relu(A) -> Node:
    """``max(0, A)``."""
    Z = np.maximum(0.0, value(A))

    def back(dZ, dA):
        dA += dZ * (Z > 0)

    return node(Z, back, (A,))


def affine(X, U) -> Node:
    """``X W + b`` for ``U = (W, b)``: ``X (N, D)``, ``W (D, K)``, ``b (K,)``."""
    W, b = U
    x, w, bias = value(X), value(W), value(b)
    if x.ndim != 2 or w.ndim != 2 or bias.ndim != 1:
        raise ValueError(f"affine needs X (N, D), W (D, K), b (K,); got {x.shape}, {w.shape}, {bias.shape}")
    if x.shape[1] != w.shape[0] or w.shape[1] != bias.shape[0]:
        raise ValueError(f"affine shapes do not fit: X {x.shape}, W {w.shape}, b {bias.shape}")
    A = x @ w + bias

    def back(dA, dX, dU):
        dW, db = dU
        dW += x.T @ dA
        db += dA.sum(axis=0)
        if dX.wanted:
            dX += dA @ w.T

    return node(A, back, (X, U))


def entropy(A, T) -> Node:
    """Average cross-entropy of the row-wise softmax of ``A (N, K)`` against targets ``T (N, K)``."""
    a, t = value(A), value(T)
    if a.ndim != 2 or a.shape != t.shape:
        raise ValueError(f"entropy needs A and T of the same (N, K) shape; got {a.shape} and {t.shape}")
    log_Y = backprop.log_softmax(a, axis=1)
    Y = np.exp(log_Y)
    N = a.shape[0]
    D = -(t * log_Y).sum() / N

    def back(dD, dA, dT):
        dA += dD * (Y - t) / N

    return node(D, back, (A, T))


def decay(W, lam: float) -> Node:
    """Weight decay ``(lam/2) sum_i ||W_i||^2`` over a tuple of weights."""
    W = tuple(W)
    ws = [value(w) for w in W]
    R = backprop.decay(ws, lam)  # checks lam too

    def back(dR, dW):
        for w, dw in zip(ws, dW):
            dw += dR * lam * w

    return node(R, back, (W,))


def add(X) -> Node:
    """The sum of a tuple of values of one shape."""
    X = tuple(X)
    if not X:
        raise ValueError("add needs at least one value")
    shapes = {value(x).shape for x in X}
    if len(shapes) != 1:
        raise ValueError(f"add needs values of one shape; got {sorted(shapes)}")
    S = sum(value(x) for x in X)

    def back(dS, dX):
        for dx in dX:
            dx += dS

    return node(S, back, (X,))


def loss(A, T, W, lam: float) -> Node:
    """``entropy(A, T) + decay(W)`` as a block."""
    D = entropy(A, T)
    R = decay(W, lam)
    L = add((D, R))

    def back():
        L.back()
        R.back()
        D.back()

    return block(L, (A, T, W), back)


def model(X, U) -> Node:
    """The two-layer network ``affine -> relu -> affine`` as a block; ``U = ((W1, b1), (W2, b2))``."""
    U1, U2 = U
    A1 = affine(X, U1)
    Z = relu(A1)
    A2 = affine(Z, U2)

    def back():
        A2.back()
        Z.back()
        A1.back()

    return block(A2, (X, U), back)
