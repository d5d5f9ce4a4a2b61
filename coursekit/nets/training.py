"""A training loop for image datasets (stage 04 on): data resident on the device, no per-batch host
copies, mixed precision on CUDA, seeded, a progress bar that is silent under grading.

What is trained and how is passed in: the ``loss`` (cross-entropy by default), the ``optimizer``
(Adam by default), the ``transform`` that turns a batch of stored images into the model's input
(MNIST's normalisation by default), an on-device ``augment`` step for training batches, and the
``metric`` of an evaluation (test accuracy by default). Images are stored as uint8 tensors
``(N, H, W)`` or ``(N, C, H, W)`` and converted batch by batch on the device, so a dataset stays 4x
smaller in memory than as floats.

The loop is made of small parts that later stages reuse: :class:`Clock` (training seconds, the
evaluations left out), :func:`train_epoch` (one pass over the data) and :func:`evaluate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from coursekit.runtime import progress

STAGE = 4  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the MNIST training pixels in [0, 1]

Transform = Callable[[torch.Tensor], torch.Tensor]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def prepare(images: torch.Tensor, mean: float | Sequence[float] = MNIST_MEAN,
            std: float | Sequence[float] = MNIST_STD) -> torch.Tensor:
    """uint8 ``(N, H, W)`` or ``(N, C, H, W)`` -> normalised float ``(N, C, H, W)`` on the same device:
    ``(x / 255 - mean) / std``, with one ``mean`` and ``std`` for all channels or one per channel."""
    if images.dtype != torch.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"images must be uint8 (N, H, W) or (N, C, H, W); got {images.dtype} "
                         f"of shape {tuple(images.shape)}")
    x = images.unsqueeze(1) if images.ndim == 3 else images
    channels = x.shape[1]
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1)
    for name, t in (("mean", mean_t), ("std", std_t)):
        if len(t) not in (1, channels):
            raise ValueError(f"{name} must have 1 or {channels} values for {channels}-channel images; got {len(t)}")
    if not bool((std_t > 0).all()):
        raise ValueError(f"std must be positive; got {std!r}")
    return (x.float() / 255.0 - mean_t.reshape(1, -1, 1, 1)) / std_t.reshape(1, -1, 1, 1)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of a batch ``(N, C, H, W)`` left-right with probability 1/2, on its device."""
    flip = torch.rand(len(x), device=x.device, generator=generator) < 0.5
    return torch.where(flip.reshape(-1, 1, 1, 1), x.flip(-1), x)


def random_crop(size: int, padding: int = 0) -> Augment:
    """An augment step: a random ``size x size`` window of each image (zero-padded by ``padding``
    first), the offsets drawn per image on the device."""
    if int(size) != size or size < 1 or int(padding) != padding or padding < 0:
        raise ValueError(f"size must be a positive and padding a non-negative integer; got {size!r}, {padding!r}")

    def crop(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if padding:
            x = nn.functional.pad(x, (padding,) * 4)
        n, _, h, w = x.shape
        if size > h or size > w:
            raise ValueError(f"a {size}x{size} crop does not fit in {h}x{w} images (padding {padding})")
        top = torch.randint(0, h - size + 1, (n,), device=x.device, generator=generator)
        left = torch.randint(0, w - size + 1, (n,), device=x.device, generator=generator)
        offsets = torch.arange(size, device=x.device)
        rows = (top[:, None] + offsets)[:, None, :, None]  # (N, 1, size, 1)
        cols = (left[:, None] + offsets)[:, None, None, :]  # (N, 1, 1, size)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        return x.permute(0, 2, 3, 1)[batch, rows, cols].squeeze(1).permute(0, 3, 1, 2)

    return crop


def synchronized_clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class Clock:
    """Seconds spent training on ``device``: :meth:`pause` around an evaluation leaves it out."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0
        self._since: float | None = None

    def start(self) -> None:
        self._since = synchronized_clock(self.device)

    def stop(self) -> None:
        if self._since is not None:
            self.seconds += synchronized_clock(self.device) - self._since
            self._since = None


@dataclass
class History:
    """Per epoch: the mean training loss, the test metric (if a test set was given), the seconds.

    ``evaluations`` holds ``(step, training seconds so far, test metric)`` for every evaluation
    (every ``evaluate_every`` steps and at each epoch's end); the training seconds leave out the
    time spent evaluating. ``reached`` is the first such entry at or above ``target_accuracy``.
    The metric is the test accuracy unless ``fit`` was given another (hence the field's name).
    """

    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)
    reached: tuple[int, float, float] | None = None


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int | None = None, *,
            transform: Transform = prepare) -> torch.Tensor:
    """Predicted classes of stored images, computed on the images' device (in batches of
    ``batch_size``: by default 4096 on a GPU, 512 on a CPU, where larger batches run slower)."""
    batch_size = batch_size or (4096 if images.device.type == "cuda" else 512)
    model.eval()
    out = [model(transform(images[i : i + batch_size])).argmax(dim=1) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=images.device)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, transform: Transform = prepare) -> float:
    return float((predict(model, images, transform=transform) == labels).float().mean().item())


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


@dataclass
class Step:
    """What one optimisation step needs: the model, its loss and optimiser, how a batch of stored
    inputs becomes the model's input, and the precision."""

    model: nn.Module
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    transform: Transform
    augment: Augment | None
    amp: bool

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.transform(inputs)
        if self.augment is not None:
            x = self.augment(x, generator)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = self.loss(self.model(x), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach()


def train_epoch(step: Step, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                generator: torch.Generator, after_step: Callable[[], bool] = lambda: False) -> float:
    """One pass over ``(images, labels)`` in a seeded random order; returns the mean training loss.

    ``after_step`` runs after every step and stops the epoch early by returning True.
    """
    step.model.train()
    order = torch.randperm(len(images), device=images.device, generator=generator)
    total, count = torch.zeros((), device=images.device), 0
    for i in range(0, len(images), batch_size):
        index = order[i : i + batch_size]
        total += step(images[index], labels[index], generator) * len(index)  # on the device: no sync per batch
        count += len(index)
        if after_step():
            break
    return float(total.item()) / count


def evaluate(model: nn.Module, metric: Callable[..., float], test: tuple[torch.Tensor, torch.Tensor]) -> float:
    """``metric(model, *test)`` in evaluation mode; the model is left in training mode."""
    score = metric(model, *test)
    model.train()
    return score


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 1,
    batch_size: int = 128,
    lr: float | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    transform: Transform = prepare,
    augment: Augment | None = None,
    metric: Callable[..., float] | None = None,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    target_accuracy: float | None = None,
    evaluate_every: int | None = None,
    schedule: str = "cosine",
    amp: bool | None = None,
    description: str = "training",
    quiet: bool = False,
) -> History:
    """Train ``model`` on ``(images, labels)``, all on ``images.device``.

    - ``loss(outputs, targets)`` defaults to cross-entropy; ``optimizer(parameters)`` builds the
      optimiser, by default Adam at ``lr`` (default 1e-3); ``transform`` turns a batch of stored images into the
      model's input (default :func:`prepare`, MNIST's normalisation); ``augment(x, generator)``, if
      given, alters each training batch after the transform (:func:`random_flip`,
      :func:`random_crop`); ``metric(model, images, labels)`` scores an evaluation (default: the
      accuracy of the predictions through the same transform).
    - Shuffles with a seeded generator on the device and evaluates on ``test`` after every epoch (and
      every ``evaluate_every`` steps if given); stops as soon as an evaluation reaches
      ``target_accuracy``.
    - ``schedule`` is ``"cosine"`` (the learning rate decays from the optimiser's to 0 along a half
      cosine over the planned steps: a few epochs then reach what a constant rate reaches in many) or
      ``"constant"``. ``amp`` (default: on for CUDA) runs the forward pass in bfloat16 autocast.
    - The progress bar (``description``) is off when ``quiet``, under grading and in CI.
    """
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length; got {len(images)} and {len(labels)}")
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; got {epochs!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
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
    if optimizer is not None and lr is not None:
        raise ValueError("lr is for the default optimiser (Adam): give your optimizer its learning rate instead")
    built = (optimizer(model.parameters()) if optimizer is not None
             else torch.optim.Adam(model.parameters(), lr=1e-3 if lr is None else lr))
    steps_per_epoch = (len(images) + batch_size - 1) // batch_size
    step = Step(
        model=model,
        loss=loss or nn.functional.cross_entropy,
        optimizer=built,
        scheduler=(torch.optim.lr_scheduler.CosineAnnealingLR(built, T_max=epochs * steps_per_epoch)
                   if schedule == "cosine" else None),
        transform=transform,
        augment=augment,
        amp=device.type == "cuda" if amp is None else amp,
    )
    if metric is None:
        def metric(net, x, y):  # looked up when called: the default accuracy through fit's transform
            return accuracy(net, x, y, transform=transform)
    generator = torch.Generator(device=device).manual_seed(seed)
    history = History()
    clock = Clock(device)
    steps = 0

    def evaluation() -> bool:
        """Evaluate now, off the clock; True once the target is reached."""
        clock.stop()
        score = evaluate(model, metric, test)
        history.evaluations.append((steps, clock.seconds, score))
        if target_accuracy is not None and score >= target_accuracy and history.reached is None:
            history.reached = history.evaluations[-1]
        clock.start()
        return history.reached is not None

    bar = progress(total=epochs * steps_per_epoch, desc=description, leave=False, **({"disable": True} if quiet else {}))

    def after_step() -> bool:
        nonlocal steps
        steps += 1
        bar.update(1)
        return evaluate_every is not None and steps % evaluate_every == 0 and evaluation()

    try:
        for _ in range(epochs):
            epoch_start = time.perf_counter()
            clock.start()
            history.train_loss.append(train_epoch(step, images, labels, batch_size, generator, after_step))
            done = history.reached is not None
            if test is not None:
                if not done and (evaluate_every is None or steps % evaluate_every):
                    done = evaluation()
                history.test_accuracy.append(history.evaluations[-1][2])
            clock.stop()
            history.seconds.append(time.perf_counter() - epoch_start)
            if done:
                break
    finally:
        bar.close()
    return history
