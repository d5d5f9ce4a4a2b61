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


def synchronized_clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@dataclass
class History:
    """Per epoch: the mean training loss, the test accuracy (if a test set was given), the seconds.

    ``evaluations`` holds ``(step, training seconds so far, test accuracy)`` for every evaluation
    (every ``evaluate_every`` steps and at each epoch's end); the training seconds leave out the
    time spent evaluating. ``reached`` is the first such entry at or above ``target_accuracy``.
    """

    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)
    reached: tuple[int, float, float] | None = None


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Predicted classes of uint8 images, computed on the images' device (in batches of
    ``batch_size``: by default 4096 on a GPU, 512 on a CPU, where larger batches run slower)."""
    batch_size = batch_size or (4096 if images.device.type == "cuda" else 512)
    model.eval()
    out = [model(prepare(images[i : i + batch_size])).argmax(dim=1) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=images.device)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict(model, images) == labels).float().mean().item())


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """``C[i, j]`` = how many examples of true class ``i`` were predicted as class ``j`` (int64)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    for name, t in (("predicted", predicted), ("labels", labels)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer class indices; got dtype {t.dtype}")
    if predicted.shape != labels.shape or predicted.ndim != 1:
        raise ValueError(f"predicted and labels must be 1-D of one shape; got {tuple(predicted.shape)} "
                         f"and {tuple(labels.shape)}")
    for name, t in (("predicted", predicted), ("labels", labels)):
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}); got values in [{int(t.min())}, {int(t.max())}]")
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


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
    evaluate_every: int | None = None,
    schedule: str = "cosine",
    amp: bool | None = None,
    description: str = "training",
    quiet: bool = False,
) -> History:
    """Train ``model`` with Adam on ``(images, labels)``, all on ``images.device``.

    Shuffles with a seeded generator on the device and evaluates on ``test`` after every epoch (and
    every ``evaluate_every`` steps if given); stops as soon as an evaluation reaches
    ``target_accuracy``. The progress bar (``description``) is off when ``quiet``, under grading and in
    CI. ``schedule`` is ``"cosine"`` (the learning rate decays from ``lr`` to 0
    along a half cosine over the planned steps: a few epochs then reach what a constant rate reaches
    in many) or ``"constant"``. ``amp`` (default: on for CUDA) runs the forward pass in bfloat16 autocast.
    """
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length; got {len(images)} and {len(labels)}")
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; got {epochs!r}")
    if evaluate_every is not None and (int(evaluate_every) != evaluate_every or evaluate_every < 1):
        raise ValueError(f"evaluate_every must be a positive integer or None; got {evaluate_every!r}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant'; got {schedule!r}")
    if (target_accuracy is not None or evaluate_every is not None) and test is None:
        raise ValueError("target_accuracy and evaluate_every need a test set: pass test=(images, labels)")
    device = images.device
    if labels.device != device:
        raise ValueError(f"images are on {device} but labels on {labels.device}: keep both on one device")
    torch.manual_seed(seed)
    model.to(device)
    amp = device.type == "cuda" if amp is None else amp
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = (len(images) + batch_size - 1) // batch_size
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
                 if schedule == "cosine" else None)
    generator = torch.Generator(device=device).manual_seed(seed)
    history = History()
    trained = 0.0  # seconds spent training, evaluations left out

    def evaluate(step: int) -> bool:
        score = accuracy(model, *test)
        history.evaluations.append((step, trained, score))
        model.train()
        if target_accuracy is not None and score >= target_accuracy and history.reached is None:
            history.reached = history.evaluations[-1]
        return history.reached is not None

    bar = progress(total=epochs * steps_per_epoch, desc=description, leave=False, **({"disable": True} if quiet else {}))
    step, done = 0, False
    try:
        for _ in range(epochs):
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(len(images), device=device, generator=generator)
            total, count = torch.zeros((), device=device), 0
            tick = synchronized_clock(device)
            for i in range(0, len(images), batch_size):
                index = order[i : i + batch_size]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = nn.functional.cross_entropy(model(prepare(images[index])), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += loss.detach() * len(index)  # stays on the device: no sync per batch
                count += len(index)
                step += 1
                bar.update(1)
                if evaluate_every is not None and step % evaluate_every == 0:
                    trained += synchronized_clock(device) - tick
                    done = evaluate(step)
                    tick = synchronized_clock(device)
                    if done:
                        break
            trained += synchronized_clock(device) - tick
            history.train_loss.append(float(total.item()) / count)
            if test is not None:
                if not done and (evaluate_every is None or step % evaluate_every):
                    done = evaluate(step)
                history.test_accuracy.append(history.evaluations[-1][2])
            history.seconds.append(time.perf_counter() - epoch_start)
            if done:
                break
    finally:
        bar.close()
    return history
