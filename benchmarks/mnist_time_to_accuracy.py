"""Wall time to a target MNIST test accuracy: coursekit's training loop vs a loop in the style of
PyTorch's official MNIST example, both on one device in this one run.

- coursekit: ``coursekit.nets.training.fit`` on ``coursekit.nets.models.small_cnn`` — the uint8 images resident on
  the device, normalised per batch there, Adam with a cosine schedule, bfloat16 autocast on CUDA.
- example-style baseline: a ``Dataset`` that turns each image into a normalised float tensor as it is
  read (like torchvision's ``ToTensor`` + ``Normalize``), a ``DataLoader`` (batch 64, shuffled, one
  worker, pinned memory on CUDA), the example's network (two 3x3 convolutions of 32 and 64 filters,
  max pooling, dropout, 9216 -> 128 -> 10), Adadelta with lr 1.0 and a step decay of 0.7 per epoch.

Both are evaluated on the 10k test images every ``--evaluate-every`` steps; the time reported is the
training time up to the first evaluation at or above the target, evaluations left out (the wall
time with evaluations is printed too). The target defaults to 99.0 % on a GPU and 98.5 % on a CPU.

    python benchmarks/mnist_time_to_accuracy.py [--device cuda] [--target 0.99] [--max-epochs 4]
"""

from __future__ import annotations

import argparse
import numpy as np
import torch
from torch import nn

from timing import machine

import coursekit
from coursekit.nets import models, training
from coursekit.data import load_mnist
from coursekit.nets.training import synchronized_clock


class ExampleNet(nn.Module):
    """The network of PyTorch's MNIST example."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = self.dropout1(torch.flatten(nn.functional.max_pool2d(x, 2), 1))
        return self.fc2(self.dropout2(torch.relu(self.fc1(x))))


class PerItemDataset(torch.utils.data.Dataset):
    """Each item converted to a normalised float tensor when it is read, as with torchvision transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).float().div(255.0)
        return (x - training.MNIST_MEAN).div(training.MNIST_STD).unsqueeze(0), int(self.labels[i])


def example_style(data, device, target, evaluate_every, max_epochs, seed):
    """Train the example's way until an evaluation reaches ``target``: (training seconds, wall seconds, steps, accuracy)."""
    torch.manual_seed(seed)
    cuda = device.type == "cuda"
    train_set = PerItemDataset(data.train_images.cpu().numpy(), data.train_labels.cpu().numpy())
    test_set = PerItemDataset(data.test_images.cpu().numpy(), data.test_labels.cpu().numpy())
    loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True, num_workers=1, pin_memory=cuda)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, num_workers=1, pin_memory=cuda)
    model = ExampleNet().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)

    def evaluate():
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
        model.train()
        return correct / len(test_set)

    trained, step, score = 0.0, 0, 0.0
    wall_start = synchronized_clock(device)
    for _ in range(max_epochs):
        tick = synchronized_clock(device)
        for x, y in loader:
            x, y = x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            step += 1
            if step % evaluate_every == 0:
                trained += synchronized_clock(device) - tick
                score = evaluate()
                if score >= target:
                    return trained, synchronized_clock(device) - wall_start, step, score
                tick = synchronized_clock(device)
        trained += synchronized_clock(device) - tick
        scheduler.step()
    return None, synchronized_clock(device) - wall_start, step, score


def coursekit_loop(data, device, target, evaluate_every, max_epochs, seed, width, batch_size, lr):
    torch.manual_seed(seed)
    model = models.small_cnn(width)
    wall_start = synchronized_clock(device)
    history = training.fit(model, data.train_images, data.train_labels, epochs=max_epochs, batch_size=batch_size,
                           lr=lr, test=(data.test_images, data.test_labels), seed=seed, target_accuracy=target,
                           evaluate_every=evaluate_every, quiet=True)
    wall = synchronized_clock(device) - wall_start
    step, trained, score = history.reached or history.evaluations[-1]
    return (trained if history.reached else None), wall, step, score


def warm_up(device) -> None:
    """One untimed step of each network, so neither timing pays for CUDA/cuDNN start-up."""
    for net in (ExampleNet(), models.small_cnn(8)):
        net = net.to(device)
        net(torch.zeros(64, 1, 28, 28, device=device)).sum().backward()
    synchronized_clock(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: what coursekit picks)")
    parser.add_argument("--target", type=float, default=None, help="test accuracy (default 0.99 on GPU, 0.985 on CPU)")
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    device = coursekit.device(args.device)
    cuda = device.type == "cuda"
    target = args.target if args.target is not None else (0.99 if cuda else 0.985)
    # ours: a wider net and larger batches where the GPU makes them cheap
    width, batch_size, lr = (32, 256, 4e-3) if cuda else (16, 128, 3e-3)
    print(f"machine: {machine()}; device {device}; target test accuracy {100 * target:.1f}%")
    data = load_mnist(device)
    warm_up(device)

    rows = [("coursekit fit, small_cnn(%d), batch %d" % (width, batch_size),
             coursekit_loop(data, device, target, 50 if cuda else 100, args.max_epochs, args.seed, width, batch_size, lr))]
    if not args.skip_baseline:
        rows.append(("example style: DataLoader, batch 64, Adadelta",
                     example_style(data, device, target, 100, args.max_epochs, args.seed)))
    for name, (trained, wall, step, score) in rows:
        reached = f"{trained:8.2f} s" if trained is not None else "not reached"
        print(f"{name:<46} to {100 * target:.1f}%: {reached} training ({wall:.2f} s with evaluations), "
              f"{step} steps, accuracy {100 * score:.2f}%")
    if len(rows) == 2 and rows[0][1][0] is not None and rows[1][1][0] is not None:
        print(f"example style / coursekit: {rows[1][1][0] / rows[0][1][0]:.1f}x (training time to the target)")


if __name__ == "__main__":
    main()
