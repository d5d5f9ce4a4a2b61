"""coursekit.retrieval.siamese (stage 06) against closed forms and torch's own layers."""

from __future__ import annotations

import pytest
import torch

from coursekit.retrieval import siamese as S


def test_drlims_network_has_the_papers_layers():
    net = S.drlim_network()
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 2)
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(15, 1, 6, 6), (30, 15, 9, 9)]
    assert sum(p.numel() for p in net.parameters()) == (15 * 36 + 15) + (30 * 15 * 81 + 30) + (270 * 2 + 2)


def test_shifts_move_the_pixels_and_let_zeros_in():
    x = torch.arange(2 * 3 * 5).reshape(2, 3, 5) + 1
    right = S.shift_horizontally(x, 2)
    assert torch.equal(right[..., 2:], x[..., :3]) and torch.all(right[..., :2] == 0)
    left = S.shift_horizontally(x, -1)
    assert torch.equal(left[..., :4], x[..., 1:]) and torch.all(left[..., 4] == 0)
    assert torch.equal(S.shift_horizontally(x, 0), x)
    with pytest.raises(ValueError, match="out of view"):
        S.shift_horizontally(x, 5)


@pytest.mark.parametrize("shear", [0.0, 0.3, -0.5])
def test_the_slant_of_a_sheared_stroke_is_its_shear(shear):
    image = torch.zeros(1, 28, 28)
    for y in range(4, 24):
        x = 14 + shear * (14 - y)  # the top (small y) moves right for a positive shear
        image[0, y, round(x)] = 1.0
    assert float(S.slant(image)) == pytest.approx(shear, abs=0.04)


def test_fours_and_nines_come_in_order_and_refuse_too_many():
    labels = torch.tensor([4, 1, 9, 4, 9, 9, 4])
    images = torch.arange(7)[:, None, None].expand(7, 2, 2)
    x, y = S.fours_and_nines(images, labels, 2)
    assert y.tolist() == [4, 4, 9, 9] and x[:, 0, 0].tolist() == [0, 3, 2, 4]
    with pytest.raises(ValueError, match="3 4s and 3 9s"):
        S.fours_and_nines(images, labels, 4)


def test_shifted_copies_are_laid_out_copy_by_copy():
    x = torch.randint(1, 255, (4, 6, 9), dtype=torch.uint8)
    out = S.shifted_copies(x, (-2, 3))
    assert out.shape == (12, 6, 9)
    assert torch.equal(out[:4], x)
    assert torch.equal(out[4:8, :, :-2], x[:, :, 2:]) and not out[4:8, :, -2:].any()
    assert torch.equal(out[8:, :, 3:], x[:, :, :-3]) and not out[8:, :, :3].any()


def test_prior_knowledge_pairs_are_the_papers_three_kinds():
    torch.manual_seed(0)
    n, k, copies = 7, 2, 3
    neighbours = torch.stack([torch.randperm(n - 1)[:k] for _ in range(n)])
    neighbours = neighbours + (neighbours >= torch.arange(n)[:, None]).long()  # never the image itself
    got = {tuple(p) for p in S.prior_knowledge_pairs(neighbours, copies).tolist()}
    expected = set()
    for c in range(copies):  # brute force, sample by sample
        for i in range(n):
            me = c * n + i
            expected |= {(me, c * n + int(j)) for j in neighbours[i]}  # (a) its neighbours
            expected |= {(me, d * n + i) for d in range(copies) if d != c}  # (b) its other versions
            expected |= {(me, d * n + int(j)) for j in neighbours[i] for d in range(copies) if d != c}  # (c)
    assert got == expected
    assert len(S.prior_knowledge_pairs(neighbours, copies)) == len(expected)  # no pair twice


def test_pair_trainer_lowers_the_loss_and_rejects_bad_pairs():
    torch.manual_seed(0)
    images = (torch.rand(60, 28, 28) * 255).to(torch.uint8)
    pairs = torch.randint(0, 60, (200, 2))
    t = (torch.rand(200) < 0.5).float()
    trainer = S.PairTrainer(S.drlim_network(), images, pairs, t, batch_size=200, lr=3e-3, seed=1)
    first = trainer.step(1)
    trainer.step(40)
    assert float(trainer.losses[-1]) < 0.8 * first
    assert trainer.embed(images).shape == (60, 2)
    # one batch of the trainer is the contrastive loss of its pairs, computed here by hand
    fixed = S.PairTrainer(S.drlim_network(), images, pairs[:1].repeat(4, 1), t[:1].repeat(4), batch_size=4)
    y = fixed.embed(images[pairs[0]])
    d = (y[0] - y[1]).norm()
    by_hand = t[0] * d**2 + (1 - t[0]) * torch.clamp(1.0 - d, min=0) ** 2
    assert abs(fixed.step(1) - float(by_hand)) < 1e-5
    with pytest.raises(ValueError, match="pairs must index images"):
        S.PairTrainer(S.drlim_network(), images, torch.tensor([[0, 60]]), torch.ones(1))
    with pytest.raises(ValueError, match="t must have shape"):
        S.PairTrainer(S.drlim_network(), images, pairs, torch.ones(3))


def test_knn_accuracy_against_a_brute_force_vote():
    g = torch.Generator().manual_seed(3)
    train, test = torch.randn(80, 3, generator=g), torch.randn(40, 3, generator=g)
    train_labels, test_labels = torch.randint(0, 4, (80,), generator=g), torch.randint(0, 4, (40,), generator=g)
    for k in (1, 4, 7):
        right = 0
        for q in range(40):
            order = sorted(range(80), key=lambda i: float(((train[i] - test[q]) ** 2).sum()))[:k]
            votes = [int(train_labels[i]) for i in order]
            top = max(votes.count(v) for v in votes)
            right += next(v for v in votes if votes.count(v) == top) == int(test_labels[q])
        assert S.knn_accuracy(train, train_labels, test, test_labels, k) == pytest.approx(right / 40)


def test_class_distances_by_hand():
    e = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    assert S.class_distances(e, labels) == pytest.approx((5.0, (1.0 + 18**0.5) / 2))


def test_branch_gradients_sum_to_the_shared_gradient():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    x1, x2 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(5, 2, dtype=torch.float64)

    def loss(a, b):  # not symmetric in its arguments: the branches' contributions differ
        return (a * w).sum() * b.square().sum()

    total, first, second = S.branch_gradients(net, x1, x2, loss)
    shared = torch.autograd.grad(loss(net(x1), net(x2)), list(net.parameters()))
    only_first = torch.autograd.grad(loss(net(x1), net(x2).detach()), list(net.parameters()))
    only_second = torch.autograd.grad(loss(net(x1).detach(), net(x2)), list(net.parameters()))
    for got, want in ((total, shared), (first, only_first), (second, only_second)):
        assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-12) for a, b in zip(got, want))
    assert not all(torch.allclose(a, b) for a, b in zip(first, second))
