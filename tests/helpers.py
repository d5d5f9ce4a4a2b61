"""Helpers shared by coursekit's tests: float64 torch tensors for the oracles, random two-layer problems.
(Oracles that the notebooks' test cells use too live in coursekit.grading.oracles.)"""

from __future__ import annotations

import numpy as np
import torch


def leaf(array) -> torch.Tensor:
    """A float64 tensor that autograd differentiates."""
    return torch.tensor(np.asarray(array, dtype=np.float64), dtype=torch.float64, requires_grad=True)


def const(array) -> torch.Tensor:
    """A float64 tensor that autograd treats as a constant."""
    return torch.tensor(np.asarray(array, dtype=np.float64), dtype=torch.float64)


def random_params(rng, D, H, K, scale=0.7):
    """Random parameters of the two-layer net ``D -> H -> K``."""
    return {
        "W1": scale * rng.standard_normal((D, H)),
        "b1": scale * rng.standard_normal(H),
        "W2": scale * rng.standard_normal((H, K)),
        "b2": scale * rng.standard_normal(K),
    }
