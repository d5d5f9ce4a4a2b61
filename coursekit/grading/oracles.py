"""Independent oracles, written once and used both by the test cells and by coursekit's own tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TwoLayerReference:
    """The two-layer net's loss, the gradients of every parameter, and the activations ``A1``, ``A2``."""

    loss: float
    grads: dict
    A1: np.ndarray
    A2: np.ndarray


def torch_two_layer(X, T, params: dict, lam: float, h: str = "relu") -> TwoLayerReference:
    """The lecture's two-layer net ``affine -> h -> affine -> softmax cross-entropy + (lam/2)
    (||W1||^2 + ||W2||^2)`` with ``h`` one of ``relu``, ``tanh``, ``sigmoid``, written directly in
    torch (float64); gradients by autograd."""
    import torch

    if h not in ("relu", "tanh", "sigmoid"):
        raise ValueError(f"h must be 'relu', 'tanh' or 'sigmoid'; got {h!r}")

    def const(a):
        return torch.tensor(np.asarray(a, dtype=np.float64))

    P = {k: const(v).requires_grad_(True) for k, v in params.items()}
    A1 = const(X) @ P["W1"] + P["b1"]
    A2 = getattr(torch, h)(A1) @ P["W2"] + P["b2"]
    L = -(const(T) * torch.log_softmax(A2, dim=1)).sum() / np.shape(X)[0]
    L = L + lam / 2 * ((P["W1"] ** 2).sum() + (P["W2"] ** 2).sum())
    L.backward()
    return TwoLayerReference(L.item(), {k: p.grad.numpy() for k, p in P.items()},
                             A1.detach().numpy(), A2.detach().numpy())


def torch_linear(X, T, W, b, lam: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The linear softmax classifier ``A = X W + b`` with loss ``cross-entropy + (lam/2)||W||^2``,
    written directly in torch (float64): ``(L, dL/dW, dL/db)`` by autograd."""
    import torch

    W_, b_ = (torch.tensor(np.asarray(p, dtype=np.float64), requires_grad=True) for p in (W, b))
    A = torch.tensor(np.asarray(X, dtype=np.float64)) @ W_ + b_
    L = -(torch.tensor(np.asarray(T, dtype=np.float64)) * torch.log_softmax(A, dim=1)).sum() / np.shape(X)[0]
    L = L + lam / 2 * (W_ ** 2).sum()
    L.backward()
    return L.item(), W_.grad.numpy(), b_.grad.numpy()
