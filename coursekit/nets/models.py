"""torch models of the lecture's MNIST slides (stage 04): a fully connected net, a small CNN, LeNet-5.

All take ``(N, 1, 28, 28)`` float images and return ``(N, 10)`` class activations.
"""

from __future__ import annotations

import torch
from torch import nn

STAGE = 4  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

# LeCun et al. 1998, Table I: the S2 feature maps (0-5) that each C3 map (0-15) reads.
LENET_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def fc_net(hidden: int = 100) -> nn.Module:
    """The two-layer fully connected network of stage 01, on 784 pixels."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def small_cnn(width: int = 16) -> nn.Module:
    """Two 3x3 convolution + max-pooling stages and a classifier: local, shared, few parameters."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 10),
    )


class Subsampling(nn.Module):
    """LeNet's sub-sampling: the sum over 2x2 windows, times a trainable coefficient, plus a trainable
    bias, per feature map (2 parameters a map), followed by the squashing function."""

    def __init__(self, channels: int):
        super().__init__()
        self.coefficient = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        pooled = nn.functional.avg_pool2d(x, 2) * 4  # the window sum
        return torch.tanh(pooled * self.coefficient[:, None, None] + self.bias[:, None, None])


class PartialConv(nn.Conv2d):
    """A convolution where output map ``j`` reads only the input maps ``table[j]`` (C3 of LeNet-5).

    The unused weights are held at zero by a mask, and are not counted as parameters by
    :func:`parameter_count`.
    """

    def __init__(self, table, kernel_size: int):
        in_channels = 1 + max(max(row) for row in table)
        super().__init__(in_channels, len(table), kernel_size)
        mask = torch.zeros(len(table), in_channels, 1, 1)
        for j, row in enumerate(table):
            mask[j, list(row)] = 1.0
        self.register_buffer("mask", mask)
        with torch.no_grad():
            self.weight.mul_(mask)

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def effective_parameters(self) -> int:
        return int(self.mask.sum().item()) * self.kernel_size[0] * self.kernel_size[1] + self.out_channels


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) on 28x28 digits padded to the paper's 32x32 input.

    C1 6@28x28 (5x5) -> S2 6@14x14 -> C3 16@10x10 (5x5; the paper's partial connection table if
    ``partial``) -> S4 16@5x5 -> C5 120 (5x5) -> F6 84 -> 10 outputs. Squashing is plain tanh after
    C1, C3, C5 and F6 (the paper squashes with 1.7159 tanh(2a/3), after the sub-sampling layers too);
    the paper's Gaussian (RBF) output layer is replaced by a linear layer and softmax cross-entropy,
    as every modern re-implementation does.
    """

    def __init__(self, partial: bool = False, subsampling=None):
        """``subsampling(channels)`` builds S2 and S4 (default :class:`Subsampling`, e.g. a student's own)."""
        super().__init__()
        subsampling = Subsampling if subsampling is None else subsampling
        self.c1 = nn.Conv2d(1, 6, 5)
        self.s2 = subsampling(6)
        self.c3 = PartialConv(LENET_C3_TABLE, 5) if partial else nn.Conv2d(6, 16, 5)
        self.s4 = subsampling(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.pad(x, (2, 2, 2, 2))  # 28x28 -> 32x32, as the paper's input
        x = self.s2(torch.tanh(self.c1(x)))
        x = self.s4(torch.tanh(self.c3(x)))
        x = torch.tanh(self.c5(x)).flatten(1)
        return self.output(torch.tanh(self.f6(x)))


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters, counting a :class:`PartialConv` by the connections it really has."""
    total = 0
    for m in module.modules():
        if isinstance(m, PartialConv):
            total += m.effective_parameters()
        else:
            total += sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
    return total


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first convolution layer of ``model`` (in module order), whose filters see the pixels."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError(f"the model has no Conv2d layer: {type(model).__name__}")


@torch.no_grad()
def layer_output(model: nn.Module, layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """What ``layer`` (a sub-module of ``model``) outputs while ``model`` runs on ``inputs``."""
    if not any(m is layer for m in model.modules()):
        raise ValueError(f"layer {type(layer).__name__} is not a part of the model")
    seen = []
    handle = layer.register_forward_hook(lambda module, args, out: seen.append(out))
    was_training = model.training
    try:
        model.eval()  # the output the trained model computes (dropout off, batch norm frozen)
        model(inputs)
    finally:
        handle.remove()
        model.train(was_training)
    if not seen:
        raise ValueError(f"layer {type(layer).__name__} is part of the model but its forward pass never calls it")
    return seen[0]
