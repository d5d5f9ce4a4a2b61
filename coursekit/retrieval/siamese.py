"""DrLIM's network and data (Hadsell, Chopra & LeCun 2006; stage 06): the mapping G_W of its MNIST
experiments, the 4s and 9s, horizontally shifted copies, and the slant of a digit from its moments."""

from __future__ import annotations

import torch
from torch import nn

STAGE = 6  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

SHIFTS = (-6, -3, 3, 6)  # the second experiment's horizontal shifts, in pixels


def drlim_network(out: int = 2) -> nn.Module:
    """G_W: C1 15 maps 6x6 -> S2 2x2 sub-sampling -> C3 30 maps 9x9 -> F3 ``out`` units, on ``(N, 1, 28, 28)``
    (28 -> 23 -> 11 -> 3: C3's 30 maps of 3x3 feed F3). ReLU after C1 and C3; S2 is average pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 15, 6), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(15, 30, 9), nn.ReLU(),
        nn.Flatten(), nn.Linear(30 * 3 * 3, out),
    )


def branch_gradients(net: nn.Module, x1: torch.Tensor, x2: torch.Tensor, pair_loss):
    """The siamese architecture's gradient (Chopra, Hadsell & LeCun 2005): for ``pair_loss(g(x1), g(x2))``
    with one network ``g = net`` used twice, ``(total, first, second)``, lists with one tensor per parameter
    of ``net``: the gradient with respect to the shared parameters, and the contributions of the first and
    second copies (each copy's own parameters, the other copy held fixed). ``total = first + second``."""
    names = [name for name, _ in net.named_parameters()]
    copies = [{name: p.detach().clone().requires_grad_(True) for name, p in net.named_parameters()} for _ in range(2)]
    y1 = torch.func.functional_call(net, copies[0], (x1,))
    y2 = torch.func.functional_call(net, copies[1], (x2,))
    grads = torch.autograd.grad(pair_loss(y1, y2), [c[n] for c in copies for n in names], allow_unused=True)
    grads = [torch.zeros_like(c[n]) if g is None else g for g, (c, n) in zip(grads, [(c, n) for c in copies for n in names])]
    first, second = grads[: len(names)], grads[len(names):]
    return [a + b for a, b in zip(first, second)], first, second


def shift_horizontally(images: torch.Tensor, shift: int) -> torch.Tensor:
    """``images (N, H, W)`` moved ``shift`` pixels to the right (left if negative), zeros coming in."""
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {tuple(images.shape)}")
    if abs(shift) >= images.shape[-1]:
        raise ValueError(f"a shift of {shift} moves {images.shape[-1]}-pixel-wide images out of view")
    out = torch.zeros_like(images)
    if shift > 0:
        out[..., shift:] = images[..., :-shift]
    elif shift < 0:
        out[..., :shift] = images[..., -shift:]
    else:
        out.copy_(images)
    return out


def slant(images: torch.Tensor) -> torch.Tensor:
    """The slant of each digit ``(N, H, W)`` from the second-order central moments of its intensity: the
    shear ``-mu11 / mu02`` (x to the right, y down) by which deskewing would straighten it. 0 for an
    upright stroke, positive when its top leans to the right (x grows as y falls)."""
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {tuple(images.shape)}")
    w = images.double()
    n, h, wd = w.shape
    ys = torch.arange(h, dtype=torch.float64, device=w.device)[None, :, None]
    xs = torch.arange(wd, dtype=torch.float64, device=w.device)[None, None, :]
    mass = w.sum((1, 2)).clamp_min(1e-12)
    cy = (w * ys).sum((1, 2)) / mass
    cx = (w * xs).sum((1, 2)) / mass
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    mu11 = (w * dx * dy).sum((1, 2)) / mass
    mu02 = (w * dy * dy).sum((1, 2)).div(mass).clamp_min(1e-12)
    return -mu11 / mu02


def fours_and_nines(images: torch.Tensor, labels: torch.Tensor, per_class: int):
    """The first ``per_class`` 4s and the first ``per_class`` 9s of ``(images, labels)``: images, and labels
    4 or 9, the 4s first."""
    fours = torch.nonzero(labels == 4).flatten()[:per_class]
    nines = torch.nonzero(labels == 9).flatten()[:per_class]
    if len(fours) < per_class or len(nines) < per_class:
        raise ValueError(f"asked for {per_class} of each; the set has {len(fours)} 4s and {len(nines)} 9s")
    index = torch.cat([fours, nines])
    return images[index], labels[index]


def shifted_copies(images: torch.Tensor, shifts=SHIFTS) -> torch.Tensor:
    """The second experiment's set: ``images (N, H, W)`` followed by their copies shifted by each of
    ``shifts`` in turn, ``(N (1 + len(shifts)), H, W)``: sample ``c N + i`` is image ``i`` under copy ``c``
    (copy 0 unshifted)."""
    return torch.cat([images] + [shift_horizontally(images, s) for s in shifts])


def prior_knowledge_pairs(neighbours: torch.Tensor, copies: int) -> torch.Tensor:
    """DrLIM's shift-invariant pairs for ``copies`` versions of ``N`` images laid out as
    :func:`shifted_copies` does, from ``neighbours (N, k)``, the nearest neighbours of the unshifted
    images among themselves: each sample is paired with (a) its ``k`` neighbours, (b) its other
    versions and (c) the other versions of each of its neighbours (Hadsell et al. 2006, §3.3);
    ``(P, 2)`` pairs ``(i, j)``, ``i != j``."""
    if neighbours.ndim != 2:
        raise ValueError(f"neighbours must have shape (N, k); got {tuple(neighbours.shape)}")
    n, k = neighbours.shape
    device = neighbours.device
    version = torch.arange(copies, device=device)
    base = torch.arange(n, device=device)
    # partners in image terms: the sample itself and its k neighbours, each in every version
    images = torch.cat([base[:, None], neighbours], 1)  # (N, 1 + k)
    first = (version[:, None] * n + base[None, :]).reshape(-1)  # every sample, version-major
    partner_images = images.repeat(copies, 1)  # (copies N, 1 + k)
    partners = (version[None, None, :] * n + partner_images[:, :, None]).reshape(len(first), -1)
    pairs = torch.stack([first[:, None].expand_as(partners), partners], -1).reshape(-1, 2)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def pair_labels(similar: torch.Tensor, dissimilar: torch.Tensor):
    """Stacks similar and dissimilar pairs into ``(pairs (M, 2), t (M,))`` with ``t = 1`` for similar."""
    pairs = torch.cat([similar, dissimilar])
    t = torch.cat([torch.ones(len(similar), device=pairs.device), torch.zeros(len(dissimilar), device=pairs.device)])
    return pairs, t


def prepare_digits(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` digits as the network's float input ``(N, 1, 28, 28)`` in [0, 1]."""
    return images.unsqueeze(1).float().div(255)


class PairTrainer:
    """Siamese training on device-resident data: each step draws ``batch_size`` pairs of ``pairs (M, 2)``
    (indices into ``images``) at random on the device, runs both sides through the one network in a
    single batch (the two copies of G_W share their weights: one call on the concatenated batch is the
    same function), and takes an optimiser step on ``loss(y1, y2, t, margin)``.

    ``step(n)`` trains ``n`` steps and returns their mean loss; ``embed(images)`` maps stored images;
    ``losses`` holds every step's loss (on the device until read). The margin can be changed between
    steps (``trainer.margin = ...``).
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, pairs: torch.Tensor, t: torch.Tensor, *,
                 margin: float = 1.0, loss=None, lr: float = 1e-3, batch_size: int = 128, transform=prepare_digits,
                 seed: int = 0):
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError(f"pairs must have shape (M, 2); got {tuple(pairs.shape)}")
        if t.shape != (len(pairs),):
            raise ValueError(f"t must have shape ({len(pairs)},), one label per pair; got {tuple(t.shape)}")
        if len(pairs) == 0:
            raise ValueError("pairs is empty: nothing to train on")
        if int(pairs.min()) < 0 or int(pairs.max()) >= len(images):
            raise ValueError(f"pairs must index images: values in [0, {len(images)}); got [{int(pairs.min())}, {int(pairs.max())}]")
        from coursekit.retrieval.losses import contrastive_loss

        self.device = images.device
        self.model = model.to(self.device)
        self.images, self.pairs, self.t = images, pairs.to(self.device), t.to(self.device).float()
        self.margin, self.loss = margin, loss or contrastive_loss
        self.batch_size, self.transform = int(batch_size), transform
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.losses: list[torch.Tensor] = []

    def step(self, n: int = 1) -> float:
        self.model.train()
        total = torch.zeros((), device=self.device)
        for _ in range(int(n)):
            index = torch.randint(0, len(self.pairs), (self.batch_size,), device=self.device, generator=self.generator)
            pair = self.pairs[index]
            y = self.model(self.transform(self.images[pair.T.reshape(-1)]))
            y1, y2 = y[: len(index)], y[len(index):]
            loss = self.loss(y1, y2, self.t[index], self.margin)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.losses.append(loss.detach())
            total += loss.detach()
        return float(total) / max(int(n), 1)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        self.model.eval()
        out = [self.model(self.transform(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
        return torch.cat(out).float()


def knn_accuracy(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
                 k: int = 5) -> float:
    """The share of ``test`` embeddings whose ``k`` nearest ``train`` embeddings (Euclidean) vote for their
    label (a majority vote; a tie goes to the label of the nearest among the tied)."""
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"train (N, D) and test (M, D) must share D; got {tuple(train.shape)} and {tuple(test.shape)}")
    if not 1 <= k <= len(train):
        raise ValueError(f"k must be in [1, {len(train)}]; got {k}")
    nearest = torch.cdist(test.float(), train.float()).topk(k, dim=1, largest=False).indices  # (M, k), nearest first
    votes = train_labels[nearest]  # (M, k)
    counts = (votes[:, :, None] == votes[:, None, :]).sum(2)  # each vote's tally
    best = counts.max(1, keepdim=True).values
    first = (counts == best).float().argmax(1)  # the nearest vote among the most frequent labels
    predicted = votes.gather(1, first[:, None]).squeeze(1)
    return float((predicted == test_labels).float().mean())


def class_distances(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """The mean Euclidean distance between embeddings of the same label and of different labels
    (over all pairs of distinct items)."""
    d = torch.cdist(embeddings.float(), embeddings.float())
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return float(d[same & off].mean()), float(d[~same].mean())
