"""Stage 05 (AlexNet): images per second of a training step, two ways each, on one device in this one run.

1. ``step``: a whole training step of the stage's network, augmentation included:
   ``alexnet_style(128)`` on 56x56 crops of 64x64 photo patches (``exemplar_patches``, repeated to
   4096 images or more), ``PaperSGD`` (lr 0.01), cross-entropy, batch 128, the paper's augmentation
   (random crop, flip, PCA colour shift, mean subtracted, x255). The precision is ``fit``'s default
   for both ways: bfloat16 autocast on CUDA, float32 on a CPU.

   - batched on the device: the uint8 images resident on the device; each step indexes a batch,
     converts it to floats and runs ``PaperAugment`` on the whole batch there;
   - baseline, the usual way: a ``Dataset`` whose ``__getitem__`` augments one uint8 CPU image with
     torch ops, a ``DataLoader`` (batch 128, shuffled, pinned memory on CUDA) and
     ``.to(device, non_blocking=True)``, then the same step.

2. ``full``: forward + backward of the full-size one-tower ``AlexNet()`` (224x224, 1000 classes):
   bfloat16 autocast with ``channels_last`` against the same weights in plain float32 (contiguous),
   batch 128 on a GPU, 16 on a CPU. TFLOP/s count ``3 x flops()`` multiply-adds per image (the
   backward pass ~ 2x the forward), and 2 FLOPs per multiply-add.

Warm-up steps are left out of every timing; CUDA is synchronised before each clock is read. The two
ways of figure 2 alternate step by step, so that other work on a shared machine slows both alike; those
of figure 1 run one after the other (a ``DataLoader``'s workers would prepare batches ahead while the
other way runs), so on a busy CPU its ratio is only as steady as the machine.

    python benchmarks/alexnet_step.py [--quick] [--device cuda] [--only step|full] [--workers N]
"""

from __future__ import annotations

import argparse
import copy
import os

import numpy as np
import torch
from torch import nn

import coursekit
from timing import describe
from coursekit.data.samples import exemplar_patches
from coursekit.nets import alexnet
from coursekit.nets.augment import PCA_SIGMA, PaperAugment, pca_colour_basis
from coursekit.nets.training import Step, synchronized_clock

CLASSES, BATCH, PATCH, CROP, SCALE, LR = 128, 128, 64, 56, 255.0, 0.01
GOAL = 5.0  # the goal for figure 1 on a GPU: batched on the device >= 5x the DataLoader pipeline


def images_per_second(step, warmup: int, steps: int, batch: int, device: torch.device) -> float:
    """``batch * steps`` over the wall time of ``steps`` calls of ``step()``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    start = synchronized_clock(device)
    for _ in range(steps):
        step()
    return batch * steps / (synchronized_clock(device) - start)


# -- 1. a training step with the augmentation ------------------------------------------------------


class PerImageAugment(torch.utils.data.Dataset):
    """The same augmentation as ``PaperAugment``, one uint8 CPU image at a time (as torchvision
    transforms do): random crop offsets, a flip with probability 1/2, the PCA colour shift with
    ``alpha ~ N(0, 0.1^2)`` per image, the mean pixel subtracted, x255."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, eigenvalues, eigenvectors, mean):
        self.images, self.labels = images, labels
        self.eigenvalues, self.eigenvectors = eigenvalues.float().cpu(), eigenvectors.float().cpu()
        self.mean = mean.float().cpu().reshape(3, 1, 1)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).float().div(255.0)
        top, left = torch.randint(0, PATCH - CROP + 1, (2,)).tolist()
        x = x[:, top:top + CROP, left:left + CROP]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        alphas = PCA_SIGMA * torch.randn(3)
        x = x + (self.eigenvectors @ (alphas * self.eigenvalues)).reshape(3, 1, 1)
        return (x - self.mean) * SCALE, int(self.labels[i])


def training_step(model: nn.Module, device: torch.device, **pieces) -> Step:
    return Step(model=model, loss=nn.functional.cross_entropy, optimizer=alexnet.PaperSGD(model.parameters(), lr=LR),
                scheduler=None, amp=device.type == "cuda", **pieces)


def figure_step(device: torch.device, warmup: int, steps: int, workers: int, seed: int = 0) -> None:
    cuda = device.type == "cuda"
    patches, _ = exemplar_patches(CLASSES, size=PATCH)
    repeats = -(-max(4096, BATCH * (warmup + steps)) // CLASSES)  # every step a fresh batch, one epoch in all
    images = np.ascontiguousarray(np.tile(patches, (repeats, 1, 1, 1)))
    labels = np.tile(np.arange(CLASSES), repeats)
    eigenvalues, eigenvectors = pca_colour_basis(torch.from_numpy(patches))
    mean = torch.from_numpy(patches).double().div(255.0).mean((0, 2, 3))
    torch.manual_seed(seed)
    model = alexnet.alexnet_style(CLASSES, size=CROP).to(device)
    precision = "bfloat16 autocast" if cuda else "float32"
    print(f"\n1. training step of alexnet_style({CLASSES}) on {CROP}x{CROP} crops of {PATCH}x{PATCH} patches, "
          f"PaperSGD lr {LR}, batch {BATCH}, {precision}, {len(images)} images; "
          f"{steps} timed steps after {warmup} warm-up")

    # (a) batched on the device
    stored, targets = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    order = torch.randperm(len(images), device=device, generator=generator)
    augment = PaperAugment(CROP, eigenvalues.to(device), eigenvectors.to(device), mean.float().to(device), scale=SCALE)
    step = training_step(copy.deepcopy(model), device, transform=lambda u: u.float() / 255.0, augment=augment)
    batches = iter(order.split(BATCH))

    def on_device():
        i = next(batches)
        step(stored[i], targets[i], generator)

    ours = images_per_second(on_device, warmup, steps, BATCH, device)

    # (b) the usual way: per-image CPU transforms through a DataLoader
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(PerImageAugment(images, labels, eigenvalues, eigenvectors, mean),
                                         batch_size=BATCH, shuffle=True, num_workers=workers, pin_memory=cuda)
    step = training_step(copy.deepcopy(model), device, transform=lambda x: x, augment=None)
    loaded = iter(loader)  # the workers start here and fill their queues during the warm-up steps

    def through_loader():
        x, y = next(loaded)
        step(x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda), generator)

    usual = images_per_second(through_loader, warmup, steps, BATCH, device)
    del loaded
    where = f"{workers} worker process{'es' if workers != 1 else ''}" if workers else "no workers (in the main process)"
    print(f"   (a) batched on the device (uint8 images resident, PaperAugment per batch): {ours:9.1f} images/s")
    print(f"   (b) per-image CPU pipeline, DataLoader with {where}{', pinned memory' if cuda else ''}: "
          f"{usual:9.1f} images/s")
    print(f"   (a) / (b): {ours / usual:.2f}x")
    if cuda:
        print(f"   goal (a) >= {GOAL:.0f}x (b) on a GPU: {'met' if ours / usual >= GOAL else 'NOT met'}")


# -- 2. the full-size network, mixed precision and channels_last against fp32 ----------------------


def figure_full(device: torch.device, warmup: int, steps: int, batch: int, seed: int = 0) -> None:
    cuda = device.type == "cuda"
    torch.manual_seed(seed)
    plain = alexnet.AlexNet().to(device)
    mixed = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    x_last = x.contiguous(memory_format=torch.channels_last)

    def forward_backward(model, inputs, amp):
        def run():
            model.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = nn.functional.cross_entropy(model(inputs), y)
            loss.backward()
        return run

    per_image = 3 * alexnet.flops()  # multiply-adds of forward + backward, per image
    tf32 = (f" (cuDNN TF32 convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, "
            f"matmul TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}: torch's defaults)") if cuda else ""
    print(f"\n2. forward + backward of AlexNet() (one tower, 224x224, 1000 classes), batch {batch}"
          f"{'' if cuda else ' (smaller on a CPU)'}; {steps} timed steps after {warmup} warm-up; "
          f"{per_image / 1e9:.2f} G multiply-adds per image (3 x flops()), x2 = FLOPs")
    rows = [("float32, contiguous" + tf32, forward_backward(plain, x, False)),
            ("bfloat16 autocast, channels_last", forward_backward(mixed, x_last, True))]
    for _, run in rows:
        for _ in range(warmup):
            run()
    seconds = [0.0, 0.0]
    for _ in range(steps):  # the two ways step by step in turn: background load on a shared machine hits both alike
        for k, (_, run) in enumerate(rows):
            start = synchronized_clock(device)
            run()
            seconds[k] += synchronized_clock(device) - start
    rates = [batch * steps / s for s in seconds]
    for (name, _), rate in zip(rows, rates):
        print(f"   {name}: {rate:9.1f} images/s, {rate * 2 * per_image / 1e12:.3f} TFLOP/s")
    print(f"   bfloat16 + channels_last / float32: {rates[1] / rates[0]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: what coursekit picks)")
    parser.add_argument("--quick", action="store_true", help="a few steps only: a smoke test")
    parser.add_argument("--only", choices=("step", "full"), default=None)
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers of the baseline (default: min(4, cores) on CUDA, 1 on a CPU)")
    args = parser.parse_args()
    device = coursekit.device(args.device)
    cuda = device.type == "cuda"
    workers = args.workers if args.workers is not None else (min(4, os.cpu_count() or 1) if cuda else 1)
    if cuda:
        torch.backends.cudnn.benchmark = True  # both ways alike
    print(describe(device) + (" [--quick: too few steps for stable figures]" if args.quick else ""))
    if not cuda and args.workers is None:
        print("baseline DataLoader: 1 worker on a CPU (the usual choice: it overlaps loading with the step; "
              "more would take cores from the training itself)")
    if args.only in (None, "step"):
        warmup, steps = (2, 5) if args.quick else (5, 30) if cuda else (2, 8)
        figure_step(device, warmup, steps, workers)
    if args.only in (None, "full"):
        warmup, steps = (1, 3) if args.quick and cuda else (1, 1) if args.quick else (5, 30) if cuda else (2, 6)
        figure_full(device, warmup, steps, 128 if cuda else (4 if args.quick else 16))


if __name__ == "__main__":
    main()
