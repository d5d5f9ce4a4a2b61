"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) and the paper's ingredients (stage 05).

Two variants of the same network:

- :class:`AlexNet`, one tower: the layers that the paper splits between its two GPUs are convolutions
  with ``groups=2`` (conv2, conv4, conv5), and local response normalisation works within each half;
- :class:`TwoTowerAlexNet`, the paper's Figure 2: two towers, one per GPU, that exchange their maps only
  at conv3 and at the fully connected layers. With two CUDA devices each tower lives on its own device
  (model parallelism); otherwise both live on one device. :meth:`TwoTowerAlexNet.from_one_tower` copies
  a one-tower network's weights, after which both compute the same function.

Both take the sizes as arguments, so the same design serves the paper's 224x224 ImageNet network and
the smaller network that the stage trains on photo patches (:func:`alexnet_style`). Also here: the
paper's local response normalisation (:func:`local_response_norm`), its dropout (:func:`paper_dropout`),
its initialisation (:func:`paper_init_`) and its update rule (:class:`PaperSGD`), and receptive fields
(:func:`receptive_fields`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

STAGE = 5  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

# the paper's local response normalisation constants (section 3.3)
LRN_K, LRN_N, LRN_ALPHA, LRN_BETA = 2.0, 5, 1e-4, 0.75
CONV_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")
FC_NAMES = ("fc6", "fc7", "fc8")
# the layers whose biases the paper starts at 1 (section 5); all others start at 0
BIASES_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")


def local_response_norm(a: torch.Tensor, k: float = LRN_K, n: int = LRN_N, alpha: float = LRN_ALPHA,
                        beta: float = LRN_BETA) -> torch.Tensor:
    """The paper's normalisation across channels of ``a (N, C, H, W)``:
    ``b_i = a_i / (k + alpha * sum_{j=max(0, i-n/2)}^{min(C-1, i+n/2)} a_j^2) ** beta``.

    torch's ``nn.LocalResponseNorm(size, alpha', beta, k)`` divides the sum by ``size``: it is this
    with ``size = n`` and ``alpha' = n * alpha``.
    """
    if a.ndim != 4:
        raise ValueError(f"a must have shape (N, C, H, W); got {tuple(a.shape)}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    n = int(n)
    squares = nn.functional.pad(a.square(), (0, 0, 0, 0, n // 2, (n - 1) // 2))  # zero channels around
    window = squares.unfold(1, n, 1).sum(-1)  # (N, C, H, W): the sum over each channel's window
    return a / (k + alpha * window) ** beta


class LocalResponseNorm(nn.Module):
    """:func:`local_response_norm` with the paper's constants, applied within each of ``groups`` equal
    blocks of channels (one block per GPU: the paper normalises each GPU's maps among themselves)."""

    def __init__(self, groups: int = 2, k: float = LRN_K, n: int = LRN_N, alpha: float = LRN_ALPHA,
                 beta: float = LRN_BETA):
        super().__init__()
        self.groups, self.k, self.n, self.alpha, self.beta = groups, k, n, alpha, beta

    def forward(self, x):
        if x.shape[1] % self.groups:
            raise ValueError(f"{x.shape[1]} channels do not split into {self.groups} equal groups")
        parts = x.chunk(self.groups, dim=1)
        return torch.cat([local_response_norm(p, self.k, self.n, self.alpha, self.beta) for p in parts], 1)

    def extra_repr(self):
        return f"groups={self.groups}, k={self.k}, n={self.n}, alpha={self.alpha}, beta={self.beta}"


def paper_dropout(x: torch.Tensor, p: float = 0.5, training: bool = True,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's dropout: in training each entry is set to zero with probability ``p`` (the others
    are kept as they are); at test time every entry is multiplied by ``1 - p``. (torch's inverted
    dropout divides the kept entries by ``1 - p`` in training and leaves the test pass alone: the
    same expected activation, with nothing to do at test time.)"""
    if not 0 <= p < 1:
        raise ValueError(f"p must lie in [0, 1); got {p}")
    if not training:
        return x * (1 - p)
    keep = torch.rand(x.shape, device=x.device, generator=generator) >= p
    return x * keep


class PaperDropout(nn.Module):
    """:func:`paper_dropout` as a module (training or test behaviour from ``self.training``)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        return paper_dropout(x, self.p, self.training)


@dataclass(frozen=True)
class Design:
    """The sizes of an AlexNet-style network: conv1's kernel, stride and padding, the five conv widths,
    the hidden FC width, the input size and the classes."""

    num_classes: int = 1000
    size: int = 224
    conv1: tuple[int, int, int] = (11, 4, 2)  # kernel, stride, padding (224 + 4 -> 55, the paper's maps)
    widths: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256)
    hidden: int = 4096
    groups: int = 2

    def __post_init__(self):
        if any(w % self.groups for w in self.widths) or self.hidden % self.groups:
            raise ValueError(f"the widths {self.widths} and hidden {self.hidden} must split into {self.groups} towers")


def conv_output(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output size of a convolution or pooling over ``n`` inputs: ``floor((n + 2p - k) / s) + 1``."""
    out = (n + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(f"a kernel of {kernel} (stride {stride}, padding {padding}) does not fit in {n} inputs")
    return out


def map_sizes(design: Design) -> dict[str, int]:
    """The side of every layer's output maps: conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5."""
    k, s, p = design.conv1
    sizes = {"conv1": conv_output(design.size, k, s, p)}
    sizes["pool1"] = conv_output(sizes["conv1"], 3, 2)
    sizes["conv2"] = conv_output(sizes["pool1"], 5, 1, 2)
    sizes["pool2"] = conv_output(sizes["conv2"], 3, 2)
    sizes["conv3"] = sizes["conv4"] = sizes["conv5"] = sizes["pool2"]
    sizes["pool5"] = conv_output(sizes["conv5"], 3, 2)
    return sizes


class AlexNet(nn.Module):
    """AlexNet as one tower: the paper's split layers are ``groups=2`` convolutions.

    conv1 96@11x11/4 -> ReLU -> LRN -> max-pool 3/2 -> conv2 256@5x5 (groups 2) -> ReLU -> LRN -> pool
    -> conv3 384@3x3 -> ReLU -> conv4 384@3x3 (groups 2) -> ReLU -> conv5 256@3x3 (groups 2) -> ReLU
    -> pool -> fc6 4096 -> ReLU -> dropout -> fc7 4096 -> ReLU -> dropout -> fc8 (classes).
    The sizes come from ``design`` (the paper's by default); ``activation`` builds the non-linearity
    (``nn.ReLU``; ``nn.Tanh`` for the paper's Figure 1), ``lrn`` and ``dropout`` turn those off.
    """

    def __init__(self, design: Design | None = None, *, activation=nn.ReLU, lrn: bool = True,
                 dropout: float = 0.5, **sizes):
        super().__init__()
        self.design = design = Design(**sizes) if design is None else design
        c1, c2, c3, c4, c5 = design.widths
        g, (k, s, p) = design.groups, design.conv1
        norm = (lambda: LocalResponseNorm(g)) if lrn else nn.Identity
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, c1, k, s, p)), ("act1", activation()), ("norm1", norm()), ("pool1", nn.MaxPool2d(3, 2)),
            ("conv2", nn.Conv2d(c1, c2, 5, padding=2, groups=g)), ("act2", activation()), ("norm2", norm()),
            ("pool2", nn.MaxPool2d(3, 2)),
            ("conv3", nn.Conv2d(c2, c3, 3, padding=1)), ("act3", activation()),
            ("conv4", nn.Conv2d(c3, c4, 3, padding=1, groups=g)), ("act4", activation()),
            ("conv5", nn.Conv2d(c4, c5, 3, padding=1, groups=g)), ("act5", activation()), ("pool5", nn.MaxPool2d(3, 2)),
        ]))
        side = map_sizes(design)["pool5"]
        drop = (lambda: nn.Dropout(dropout)) if dropout else nn.Identity
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),
            ("fc6", nn.Linear(c5 * side * side, design.hidden)), ("act6", activation()), ("drop6", drop()),
            ("fc7", nn.Linear(design.hidden, design.hidden)), ("act7", activation()), ("drop7", drop()),
            ("fc8", nn.Linear(design.hidden, design.num_classes)),
        ]))

    def layers(self) -> dict[str, nn.Module]:
        """The eight layers with weights, by the paper's names: conv1..conv5, fc6..fc8."""
        return {**{n: getattr(self.features, n) for n in CONV_NAMES}, **{n: getattr(self.classifier, n) for n in FC_NAMES}}

    def forward(self, x):
        return self.classifier(self.features(x))


def alexnet_style(num_classes: int, size: int = 56, **options) -> AlexNet:
    """The AlexNet design sized for small images (``size`` 56: 56x56 crops of 64x64 patches, as
    224 of 256): conv1 48@11x11 stride 2, the other widths halved, 1024 hidden units."""
    design = Design(num_classes=num_classes, size=size, conv1=(11, 2, 5), widths=(48, 128, 192, 192, 128), hidden=1024)
    return AlexNet(design, **options)


class _Tower(nn.Module):
    """One GPU's half of AlexNet: the first half of every layer's maps and units."""

    def __init__(self, design: Design, activation, lrn: bool, dropout: float):
        super().__init__()
        c1, c2, c3, c4, c5 = (w // 2 for w in design.widths)
        k, s, p = design.conv1
        self.conv1 = nn.Conv2d(3, c1, k, s, p)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.conv3 = nn.Conv2d(2 * c2, c3, 3, padding=1)  # reads both towers' conv2 maps
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)
        side = map_sizes(design)["pool5"]
        self.fc6 = nn.Linear(2 * c5 * side * side, design.hidden // 2)  # reads both towers' pool5
        self.fc7 = nn.Linear(design.hidden, design.hidden // 2)  # reads both towers' fc6
        self.act = activation()
        self.norm = LocalResponseNorm(1) if lrn else nn.Identity()
        self.pool = nn.MaxPool2d(3, 2)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def bottom(self, x):  # conv1, conv2: this tower's maps only
        x = self.pool(self.norm(self.act(self.conv1(x))))
        return self.pool(self.norm(self.act(self.conv2(x))))

    def top(self, both):  # conv3 reads both towers; conv4, conv5 this tower's maps only
        x = self.act(self.conv5(self.act(self.conv4(self.act(self.conv3(both))))))
        return self.pool(x).flatten(1)


class TwoTowerAlexNet(nn.Module):
    """AlexNet as the paper ran it: two towers (one per GPU) that talk only at conv3 and the FC layers.

    ``devices``: the two devices of the towers; by default ``cuda:0`` and ``cuda:1`` when there are two
    CUDA devices, else both on ``coursekit.device()``. fc8 lives with the first tower. The input may
    be on any device; the output is on the first tower's device.
    """

    def __init__(self, design: Design | None = None, *, activation=nn.ReLU, lrn: bool = True,
                 dropout: float = 0.5, devices: Sequence | None = None, **sizes):
        super().__init__()
        self.design = design = Design(**sizes) if design is None else design
        if design.groups != 2:
            raise ValueError(f"a two-tower AlexNet has groups=2; got {design.groups}")
        if devices is None:
            if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
                devices = ("cuda:0", "cuda:1")
            else:
                from coursekit.runtime import device

                devices = (device(), device())
        if len(devices) != 2:
            raise ValueError(f"devices must name two devices, one per tower; got {devices!r}")
        self.devices = tuple(torch.device(d) for d in devices)
        self.towers = nn.ModuleList(_Tower(design, activation, lrn, dropout) for _ in range(2))
        self.fc8 = nn.Linear(design.hidden, design.num_classes)
        self.place()

    def place(self):
        """Put each tower on its device (and fc8 on the first): after ``.to(...)`` moved everything."""
        for tower, d in zip(self.towers, self.devices):
            tower.to(d)
        self.fc8.to(self.devices[0])
        return self

    def _exchange(self, parts):
        """Each tower gets both towers' outputs, concatenated (the first tower's first)."""
        return [torch.cat([p.to(d) for p in parts], 1) for d in self.devices]

    def forward(self, x):
        a, b = self.towers
        low = [t.bottom(x.to(d)) for t, d in zip(self.towers, self.devices)]
        high = [t.top(both) for t, both in zip(self.towers, self._exchange(low))]
        h6 = [t.drop(t.act(t.fc6(both))) for t, both in zip(self.towers, self._exchange(high))]
        h7 = [t.drop(t.act(t.fc7(both))) for t, both in zip(self.towers, self._exchange(h6))]
        return self.fc8(torch.cat([h.to(self.devices[0]) for h in h7], 1))

    @classmethod
    @torch.no_grad()
    def from_one_tower(cls, model: AlexNet, devices: Sequence | None = None) -> TwoTowerAlexNet:
        """A two-tower network with ``model``'s weights: tower ``t`` gets half ``t`` of every layer's
        filters and units (and of conv1's, conv2's, conv4's and conv5's, whose groups are the towers)."""
        act = type(next(m for m in model.features if isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid))))
        lrn = any(isinstance(m, LocalResponseNorm) for m in model.features)
        drops = [m.p for m in model.classifier if isinstance(m, nn.Dropout)]
        twin = cls(model.design, activation=act, lrn=lrn, dropout=drops[0] if drops else 0.0, devices=devices)
        for name in CONV_NAMES + ("fc6", "fc7"):
            source = model.layers()[name]
            half = source.out_channels // 2 if name in CONV_NAMES else source.out_features // 2
            for t, tower in enumerate(twin.towers):
                target = getattr(tower, name)
                target.weight.copy_(source.weight[t * half:(t + 1) * half])
                target.bias.copy_(source.bias[t * half:(t + 1) * half])
        twin.fc8.weight.copy_(model.layers()["fc8"].weight)
        twin.fc8.bias.copy_(model.layers()["fc8"].bias)
        return twin


@torch.no_grad()
def paper_init_(model: nn.Module) -> nn.Module:
    """The paper's initialisation, in place: every weight from N(0, 0.01^2); the biases of conv2, conv4,
    conv5, fc6 and fc7 at 1 (positive inputs to the ReLUs speed up the start), all other biases at 0.

    The layers are the model's ``Conv2d`` and ``Linear`` modules in order: five convolutions, then the
    fully connected layers (an AlexNet or a :class:`TwoTowerAlexNet`'s towers alike).
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if isinstance(model, TwoTowerAlexNet):
        names = {id(getattr(t, n)): n for t in model.towers for n in CONV_NAMES + ("fc6", "fc7")}
        names[id(model.fc8)] = "fc8"
    else:
        if len(convs) != 5 or len(linears) != 3:
            raise ValueError(f"an AlexNet has 5 convolutions and 3 linear layers; this model has "
                             f"{len(convs)} and {len(linears)}")
        names = {id(m): n for m, n in zip(convs + linears, CONV_NAMES + FC_NAMES)}
    for m in convs + linears:
        m.weight.normal_(0.0, 0.01)
        m.bias.fill_(1.0 if names[id(m)] in BIASES_ONE else 0.0)
    return model


class PaperSGD(torch.optim.Optimizer):
    """The paper's update rule: ``v <- momentum * v - decay * lr * w - lr * dL/dw``, ``w <- w + v``.

    With a constant learning rate it takes the same steps as ``torch.optim.SGD(lr, momentum,
    weight_decay=decay)`` (whose velocity is this one divided by ``-lr``); when the learning rate
    changes they differ: here the velocity keeps the earlier steps at the rate they were taken with,
    while torch's rescales all of its accumulated velocity by the new rate.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, decay: float = 0.0005):
        if lr <= 0 or not 0 <= momentum < 1 or decay < 0:
            raise ValueError(f"need lr > 0, 0 <= momentum < 1, decay >= 0; got {lr}, {momentum}, {decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "decay": decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["decay"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                state = self.state[w]
                v = state.setdefault("velocity", torch.zeros_like(w))
                v.mul_(momentum).add_(w, alpha=-decay * lr).add_(w.grad, alpha=-lr)
                w.add_(v)
        return loss


def receptive_fields(layers: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """For a stack of convolution or pooling layers ``(kernel, stride)``, each layer's receptive field
    in input pixels and its stride (the step, in input pixels, between neighbouring outputs):
    ``r_l = r_{l-1} + (k_l - 1) * j_{l-1}``, ``j_l = j_{l-1} * s_l``, from ``r_0 = j_0 = 1``."""
    size, jump, out = 1, 1, []
    for kernel, stride in layers:
        size, jump = size + (kernel - 1) * jump, jump * stride
        out.append((size, jump))
    return out


def alexnet_receptive_fields(design: Design | None = None) -> dict[str, tuple[int, int]]:
    """:func:`receptive_fields` of AlexNet's layers, by name (conv1 .. pool5)."""
    design = design or Design()
    k, s, _ = design.conv1
    stack = [("conv1", (k, s)), ("pool1", (3, 2)), ("conv2", (5, 1)), ("pool2", (3, 2)), ("conv3", (3, 1)),
             ("conv4", (3, 1)), ("conv5", (3, 1)), ("pool5", (3, 2))]
    return dict(zip([n for n, _ in stack], receptive_fields([ks for _, ks in stack])))


def parameter_counts(model: AlexNet) -> dict[str, int]:
    """Weights and biases of each of the eight layers, from the model's tensors."""
    return {name: sum(p.numel() for p in layer.parameters()) for name, layer in model.layers().items()}


def neurons(design: Design | None = None) -> dict[str, int]:
    """The neurons of each layer's output, as the paper's caption counts them (conv maps before pooling)."""
    design = design or Design()
    side = map_sizes(design)
    out = {name: w * side[name] ** 2 for name, w in zip(CONV_NAMES, design.widths)}
    return {**out, "fc6": design.hidden, "fc7": design.hidden, "fc8": design.num_classes}


def flops(design: Design | None = None) -> int:
    """Multiply-adds of one forward pass through the conv and FC layers (the paper: 'the network's
    input is 150,528-dimensional'), for benchmarks' images-per-second figures."""
    design = design or Design()
    side, (k, _, _) = map_sizes(design), design.conv1
    c1, c2, c3, c4, c5 = design.widths
    g = design.groups
    convs = (side["conv1"] ** 2 * c1 * 3 * k * k + side["conv2"] ** 2 * c2 * (c1 // g) * 25
             + side["conv3"] ** 2 * (c3 * c2 + c4 * c3 // g + c5 * c4 // g) * 9)
    fcs = c5 * side["pool5"] ** 2 * design.hidden + design.hidden ** 2 + design.hidden * design.num_classes
    return int(convs + fcs)

