"""Fine-tuning a pretrained network for retrieval (stage 07): Radenovic, Tolias & Chum (ECCV 2016) in
miniature.

Their recipe: MAC (or GeM) descriptors, l2-normalised; training tuples of a query, a matching image and
``k`` hard negatives; the contrastive loss over the tuple's pairs; the negatives re-mined before every
epoch with the current network, as the ``k`` most similar images of other clusters, at most one per
cluster (their N2, :func:`coursekit.retrieval.losses.mine_negatives`), so the network keeps seeing
the mistakes it makes now.

In miniature: only the network's last layer is trained (:class:`RetrievalHead`: the 1x1 convolution
to 1280 channels with its batch norm, frozen statistics, ReLU6, then the pooling), on the maps of the
layer before it (``block7``), computed once. A CPU can afford that in seconds; the layers below stay
as ImageNet trained them. Margin 0.7 and Adam are cirtorch's defaults; the learning rate suits a
single layer, not their whole network.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from coursekit.retrieval.losses import contrastive_loss, mine_negatives
from coursekit.retrieval.pooling import gem, l2n, mac

POOLINGS = ("mac", "gem")


def matching_pairs(clusters: torch.Tensor, per_item: int = 1, seed: int = 0) -> torch.Tensor:
    """``(M, 2)`` training pairs (query, positive): for every item whose cluster (``clusters (N,)``, -1 for
    none) has another member, ``per_item`` partners drawn at random from the other members (with
    replacement), on the clusters' device. Radenovic et al. use one positive per training query."""
    if clusters.ndim != 1:
        raise ValueError(f"clusters must be (N,); got {tuple(clusters.shape)}")
    if int(per_item) != per_item or per_item < 1:
        raise ValueError(f"per_item must be a positive integer; got {per_item!r}")
    device = clusters.device
    clusters = clusters.long()
    order = torch.argsort(clusters, stable=True)
    ids, counts = torch.unique_consecutive(clusters[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    group = torch.repeat_interleave(torch.arange(len(ids), device=device), counts)
    size, first = counts[group], starts[group]
    position = torch.arange(len(order), device=device) - first  # each item's place in its cluster
    keep = (ids[group] >= 0) & (size > 1)
    generator = torch.Generator(device).manual_seed(seed)
    rows = []
    for _ in range(int(per_item)):  # another member: skip 1 + r places, r < size - 1, around the cluster
        r = (torch.rand(len(order), device=device, generator=generator) * (size - 1).clamp_min(1)).long()
        partner = first + (position + 1 + r) % size
        rows.append(torch.stack([order, order[partner]], 1)[keep])
    return torch.cat(rows)


class RetrievalHead(nn.Module):
    """``block7`` maps ``(N, 320, h, w)`` -> l2-normalised descriptors ``(N, 1280)``: a trainable copy of
    ``model.head`` (its batch norm keeps ImageNet's statistics: a tuple of seven images is no batch to
    estimate them from), then MAC or GeM (with a trainable ``p``, as in Radenovic et al.'s GeM)."""

    def __init__(self, model: nn.Module, pooling: str = "mac", p: float = 3.0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")
        self.head = copy.deepcopy(model.head).float()
        for parameter in self.head.parameters():
            parameter.requires_grad_(True)
        self.pooling = pooling
        self.p = nn.Parameter(torch.tensor(float(p))) if pooling == "gem" else None

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.head.modules():  # frozen statistics, trainable scale and shift
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        features = self.head(maps.float())
        return l2n(mac(features) if self.p is None else gem(features, self.p))


class TupleTrainer:
    """Training tuples on device-resident maps: ``maps (N, 320, h, w)`` of the training images,
    ``clusters (N,)`` the object each image shows (images of one cluster match), ``pairs (M, 2)`` the
    matching (query, positive) pairs to train on.

    :meth:`epoch` mines, with the current head, ``negatives`` hard negatives per query (N2 over all
    images), then takes one Adam step per ``batch`` tuples on the mean contrastive loss of their pairs
    (query-positive with t = 1, query-negative with t = 0). ``losses`` holds every step's loss.
    """

    def __init__(self, head: RetrievalHead, maps: torch.Tensor, clusters: torch.Tensor, pairs: torch.Tensor, *,
                 negatives: int = 5, margin: float = 0.7, lr: float = 1e-4, batch: int = 8, seed: int = 0):
        if maps.ndim != 4:
            raise ValueError(f"maps must be (N, C, h, w); got {tuple(maps.shape)}")
        if clusters.shape != (len(maps),):
            raise ValueError(f"clusters must have shape ({len(maps)},), one per map; got {tuple(clusters.shape)}")
        if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
            raise ValueError(f"pairs must be a non-empty (M, 2) array of (query, positive) indices; got {tuple(pairs.shape)}")
        if int(pairs.min()) < 0 or int(pairs.max()) >= len(maps):
            raise ValueError(f"pairs must index maps: values in [0, {len(maps)}); got [{int(pairs.min())}, {int(pairs.max())}]")
        device = maps.device
        pairs, clusters = pairs.to(device).long(), clusters.to(device).long()
        if bool((clusters[pairs[:, 0]] != clusters[pairs[:, 1]]).any()):
            raise ValueError("pairs must match: each query and its positive need the same cluster")
        if not 1 <= int(negatives) < int(torch.unique(clusters).numel()):
            raise ValueError(f"negatives must lie in [1, {torch.unique(clusters).numel() - 1}] (one per other cluster); "
                             f"got {negatives}")
        self.head = head.to(device)
        self.maps, self.clusters, self.pairs = maps, clusters, pairs
        self.negatives, self.margin, self.batch = int(negatives), float(margin), int(batch)
        self.optimizer = torch.optim.Adam([p for p in self.head.parameters() if p.requires_grad], lr=lr)
        self.generator = torch.Generator(device).manual_seed(seed)
        self.losses: list[torch.Tensor] = []

    @torch.no_grad()
    def describe(self, maps: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
        """Descriptors ``(N, 1280)`` of ``maps`` (default: the training maps) with the head as it is now."""
        maps = self.maps if maps is None else maps
        self.head.eval()
        return torch.cat([self.head(maps[i:i + batch_size]) for i in range(0, len(maps), batch_size)])

    def mine(self) -> torch.Tensor:
        """``(M, negatives)`` hard negatives of every pair's query, with the current head (N2)."""
        descriptors = self.describe()
        queries = self.pairs[:, 0]
        return mine_negatives(descriptors[queries], descriptors, self.clusters[queries], self.clusters,
                              k=self.negatives, one_per_cluster=True)

    def epoch(self) -> float:
        """Mine, then one pass over the pairs in a random order; returns the epoch's mean loss."""
        negatives = self.mine()
        order = torch.randperm(len(self.pairs), device=self.pairs.device, generator=self.generator)
        self.head.train()
        total = torch.zeros((), device=self.maps.device)
        steps = 0
        for start in range(0, len(order), self.batch):
            rows = order[start:start + self.batch]
            tuples = torch.cat([self.pairs[rows], negatives[rows]], dim=1)  # (B, 2 + negatives): q, p, n...
            y = self.head(self.maps[tuples.reshape(-1)]).unflatten(0, tuples.shape)
            others = y[:, 1:].reshape(-1, y.shape[-1])
            query = y[:, :1].expand(-1, tuples.shape[1] - 1, -1).reshape(-1, y.shape[-1])
            t = torch.zeros(tuples.shape[0], tuples.shape[1] - 1, device=y.device)
            t[:, 0] = 1
            loss = contrastive_loss(query, others, t.reshape(-1), self.margin)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.losses.append(loss.detach())
            total += loss.detach()
            steps += 1
        return float(total) / steps
