"""A training loop for small image datasets (stage 04 on): data resident on the device, no per-batch
host copies, mixed precision on CUDA, seeded, a progress bar that is silent under grading.

Images arrive as uint8 tensors ``(N, H, W)``; each batch is converted to float and normalised on
the device (``(x / 255 - mean) / std``), so the dataset stays 4x smaller in memory than as floats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from coursekit.runtime import progress

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the MNIST training pixels in [0, 1]


def prepare(images: torch.Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> torch.Tensor:
    """uint8 ``(N, H, W)`` -> normalised float ``(N, 1, H, W)`` on the same device."""
    if images.dtype != torch.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 (N, H, W); got {images.dtype} of shape {tuple(images.shape)}")
    return ((images.float() / 255.0 - mean) / std).unsqueeze(1)


@dataclass
class History:
    """Per epoch: the mean training loss, the test accuracy (if a test set was given), the seconds."""

    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Predicted classes of uint8 images, computed on the images' device."""
    model.eval()
    out = [model(prepare(images[i : i + batch_size])).argmax(dim=1) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=images.device)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict(model, images) == labels).float().mean().item())


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 1,
    batch_size: int = 128,
    lr: float = 1e-3,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    target_accuracy: float | None = None,
    amp: bool | None = None,
    description: str = "training",
) -> History:
    """Train ``model`` with Adam on ``(images, labels)``, all on ``images.device``.

    Shuffles with a seeded generator on the device, evaluates on ``test`` after every epoch and stops
    early once ``target_accuracy`` is reached. ``amp`` (default: on for CUDA) runs the forward pass in
    bfloat16 autocast.
    """
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length; got {len(images)} and {len(labels)}")
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; got {epochs!r}")
    device = images.device
    if labels.device != device:
        raise ValueError(f"images are on {device} but labels on {labels.device}: keep both on one device")
    torch.manual_seed(seed)
    model.to(device)
    amp = device.type == "cuda" if amp is None else amp
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator(device=device).manual_seed(seed)
    history = History()
    bar = progress(total=epochs * ((len(images) + batch_size - 1) // batch_size), desc=description, leave=False)
    try:
        for _ in range(epochs):
            start = time.perf_counter()
            model.train()
            order = torch.randperm(len(images), device=device, generator=generator)
            total, count = torch.zeros((), device=device), 0
            for i in range(0, len(images), batch_size):
                index = order[i : i + batch_size]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = nn.functional.cross_entropy(model(prepare(images[index])), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(index)  # stays on the device: no sync per batch
                count += len(index)
                bar.update(1)
            history.train_loss.append(float(total.item()) / count)
            if test is not None:
                history.test_accuracy.append(accuracy(model, *test))
            history.seconds.append(time.perf_counter() - start)
            if target_accuracy is not None and history.test_accuracy and history.test_accuracy[-1] >= target_accuracy:
                break
    finally:
        bar.close()
    return history
