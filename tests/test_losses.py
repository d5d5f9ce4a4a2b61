"""coursekit.retrieval.losses (stage 06) against autograd, gradcheck, closed forms and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from coursekit.retrieval import losses as L


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_contrastive_loss_is_the_lectures_formula_per_pair():
    y1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    y2 = torch.tensor([[3.0, 4.0], [0.3, 0.4], [3.0, 4.0], [1.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([1, 0, 0, 0])
    per_pair = L.contrastive_loss(y1, y2, t, margin=1.0, reduction="none")
    # similar at distance 5: 25; dissimilar at 0.5 < m: (1 - 0.5)^2; dissimilar beyond m: 0; at distance 0: m^2
    np.testing.assert_allclose(per_pair.numpy(), [25.0, 0.25, 0.0, 1.0], atol=1e-12)
    assert float(L.contrastive_loss(y1, y2, t, 1.0)) == pytest.approx(26.25 / 4)
    assert float(L.contrastive_loss(y1, y2, t, 1.0, reduction="sum")) == pytest.approx(26.25)


def test_the_hand_gradient_is_autograds_and_the_springs_behave():
    y1, y2 = seeded(50, 3, seed=1), seeded(50, 3, seed=2) * 0.4
    t = (torch.arange(50) % 2).long()
    a, b = y1.clone().requires_grad_(True), y2.clone().requires_grad_(True)
    L.contrastive_loss(a, b, t, margin=1.5, reduction="sum").backward()
    g1, g2 = L.contrastive_gradient(y1, y2, t, margin=1.5)
    torch.testing.assert_close(g1, a.grad)
    torch.testing.assert_close(g2, b.grad)
    far = (y1 - y2).norm(dim=1) >= 1.5
    assert far.any() and torch.all(g1[far & (t == 0)] == 0)  # no force on a dissimilar pair beyond the margin
    d = torch.linspace(0, 2, 21, dtype=torch.float64)
    repulse = L.spring_force(d, similar=False, margin=1.0)
    assert repulse[0] == -2 and torch.all(repulse[d >= 1] == 0) and torch.all(torch.diff(repulse) >= 0)
    assert torch.all(L.spring_force(d, similar=True) == 2 * d)


def test_losses_pass_gradcheck_away_from_the_margin():
    y1, y2 = seeded(6, 4, seed=3), seeded(6, 4, seed=4)
    d = (y1 - y2).norm(dim=1)
    margin = float(d.median()) + 0.013  # no pair at exactly the margin
    t = torch.tensor([1, 0, 1, 0, 0, 0])
    assert torch.autograd.gradcheck(lambda a, b: L.contrastive_loss(a, b, t, margin),
                                    (y1.requires_grad_(True), y2.requires_grad_(True)))
    n = seeded(6, 4, seed=5)
    assert torch.autograd.gradcheck(lambda a, p, q: L.triplet_loss(a, p, q, 2.0),
                                    (y1.detach().requires_grad_(True), y2.detach().requires_grad_(True), n.requires_grad_(True)))
    assert torch.autograd.gradcheck(lambda a, p, q: L.ranking_loss(a, p, q),
                                    (y1.detach().requires_grad_(True), y2.detach().requires_grad_(True), n.detach().requires_grad_(True)))


def test_a_zero_distance_dissimilar_pair_has_a_finite_gradient():
    y = torch.ones(1, 2, dtype=torch.float64, requires_grad=True)
    L.contrastive_loss(y, y.detach().clone(), torch.tensor([0]), 1.0).backward()
    assert torch.isfinite(y.grad).all()


def test_triplet_and_ranking_losses_by_their_formulas():
    a, p, n = seeded(7, 5, seed=6), seeded(7, 5, seed=7), seeded(7, 5, seed=8)
    expected = np.maximum(0, 0.3 + ((a - p) ** 2).sum(1).numpy() - ((a - n) ** 2).sum(1).numpy())
    np.testing.assert_allclose(L.triplet_loss(a, p, n, 0.3, reduction="none").numpy(), expected)
    cos = lambda u, v: (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1))  # noqa: E731
    expected = ((1 - cos(a, p)) - (1 - cos(a, n)) + 0.5).clamp_min(0).numpy()
    np.testing.assert_allclose(L.ranking_loss(a, p, n, reduction="none").numpy(), expected, rtol=1e-12)
    # the ranking loss ignores the descriptors' norms; the triplet loss does not
    assert torch.allclose(L.ranking_loss(3 * a, p, 2 * n), L.ranking_loss(a, p, n))
    with pytest.raises(ValueError, match="reduction"):
        L.triplet_loss(a, p, n, reduction="average")


def test_bad_shapes_are_refused_with_the_shapes():
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(3, 4\)"):
        L.contrastive_loss(torch.zeros(3, 2), torch.zeros(3, 4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"t must have shape \(3,\)"):
        L.contrastive_loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(2))


def brute_hardest(x, labels):
    out = []
    for i in range(len(x)):
        others = [j for j in range(len(x)) if labels[j] != labels[i]]
        out.append(min(others, key=lambda j: float(((x[i] - x[j]) ** 2).sum())) if others else -1)
    return out


def test_hardest_and_semi_hard_negatives_against_brute_force():
    x = seeded(30, 4, seed=9).float()
    labels = torch.arange(30) % 4
    assert L.hardest_negatives(x, labels).tolist() == brute_hardest(x, labels)
    assert L.hardest_negatives(x[:3], torch.zeros(3, dtype=torch.long)).tolist() == [-1, -1, -1]
    positives = torch.tensor([(i + 4) % 30 if (i + 4) % 30 % 4 == i % 4 else i for i in range(30)])
    margin = 2.0
    chosen = L.semi_hard_negatives(x, labels, positives, margin).tolist()
    for i, j in enumerate(chosen):
        dp = float(((x[i] - x[positives[i]]) ** 2).sum())
        window = [k for k in range(30) if labels[k] != labels[i] and dp < float(((x[i] - x[k]) ** 2).sum()) < dp + margin]
        if window:
            assert j == min(window, key=lambda k: float(((x[i] - x[k]) ** 2).sum())), i
        else:
            assert j == brute_hardest(x, labels)[i], i


def test_n1_and_n2_mining_against_brute_force():
    g = torch.Generator().manual_seed(10)
    pool = torch.nn.functional.normalize(torch.randn(60, 8, generator=g), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(7, 8, generator=g), dim=1)
    pool_clusters = torch.randint(0, 12, (60,), generator=g)
    query_clusters = pool_clusters[:7].clone()
    for one_per_cluster in (False, True):
        found = L.mine_negatives(queries, pool, query_clusters, pool_clusters, k=5, one_per_cluster=one_per_cluster)
        for q in range(7):
            ranked = sorted(range(60), key=lambda i: -float(queries[q] @ pool[i]))
            picks, used = [], set()
            for i in ranked:
                c = int(pool_clusters[i])
                if c == int(query_clusters[q]) or (one_per_cluster and c in used):
                    continue
                used.add(c)
                picks.append(i)
            assert found[q].tolist() == picks[:5], (one_per_cluster, q)
    n2 = L.mine_negatives(queries, pool, query_clusters, pool_clusters, k=5)
    assert all(len({int(pool_clusters[i]) for i in row}) == 5 for row in n2)
    # fewer qualifying items than k: the rest is -1
    few = L.mine_negatives(queries[:1], pool[:3], torch.tensor([0]), torch.tensor([0, 1, 1]), k=3)
    assert few.tolist()[0][1:] == [-1, -1] and few.tolist()[0][0] in (1, 2)
    assert list(itertools.chain(*few.tolist())).count(-1) == 2


def exact_mining_case(n_queries, n_pool, n_clusters, seed, crowd=False):
    """Integer descriptors whose inner products are exact in float32 and tie-free within a row: the
    score of pool item i is n_pool * (an integer) + perm[i], perm a permutation of 0..n_pool-1. With
    ``crowd`` the items of cluster 0 outscore all the others, so N2 has to walk far down the ranking."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.randint(-3, 4, (n_pool, 9), generator=g).float() * n_pool
    queries = torch.randint(-3, 4, (n_queries, 9), generator=g).float()
    pool_clusters = torch.randint(0, n_clusters, (n_pool,), generator=g)
    query_clusters = torch.randint(0, n_clusters, (n_queries,), generator=g)
    pool[:, -1] = torch.randperm(n_pool, generator=g).float()
    queries[:, -1] = 1.0
    if crowd:
        pool_clusters[: n_pool // 2] = 0
        pool[:, 0] = torch.where(pool_clusters == 0, 1000.0 * n_pool, 0.0)
        queries[:, 0] = 1.0
    return queries, pool, query_clusters, pool_clusters


def python_mining(queries, pool, query_clusters, pool_clusters, k, one_per_cluster):
    """Radenovic et al.'s N1 / N2, walked down each ranking in plain Python (integer scores, no ties)."""
    q_rows = [[int(v) for v in row] for row in queries.tolist()]
    p_rows = [[int(v) for v in row] for row in pool.tolist()]
    q_clusters, p_clusters = query_clusters.tolist(), pool_clusters.tolist()
    out = []
    for q, row in enumerate(q_rows):
        scores = [sum(a * b for a, b in zip(row, item)) for item in p_rows]
        assert len(set(scores)) == len(scores)  # tie-free, so the ranking is unique
        picks, used = [], set()
        for i in sorted(range(len(p_rows)), key=lambda i: -scores[i]):
            c = p_clusters[i]
            if c == q_clusters[q] or (one_per_cluster and c in used):
                continue
            used.add(c)
            picks.append(i)
            if len(picks) == k:
                break
        out.append(picks + [-1] * (k - len(picks)))
    return out


@pytest.mark.parametrize("crowd", [False, True])
@pytest.mark.parametrize("one_per_cluster", [False, True])
def test_mining_matches_a_python_walk_on_a_larger_pool(one_per_cluster, crowd):
    queries, pool, query_clusters, pool_clusters = exact_mining_case(50, 400, 30, seed=11, crowd=crowd)
    found = L.mine_negatives(queries, pool, query_clusters, pool_clusters, k=7, one_per_cluster=one_per_cluster)
    assert found.dtype == torch.long and found.shape == (50, 7) and found.device == queries.device
    assert found.tolist() == python_mining(queries, pool, query_clusters, pool_clusters, 7, one_per_cluster)
    assert (found >= 0).all()  # 30 clusters and 400 items: every query has 7 negatives
    if crowd and one_per_cluster:  # the crowding cluster gives at most one negative per ranking
        assert ((pool_clusters[found] == 0).sum(dim=1) == (query_clusters != 0).long()).all()


def test_mining_fills_with_minus_one_where_fewer_than_k_qualify():
    # 4 clusters: N2 finds at most 3 negatives, N1 at most the items outside the query's cluster
    queries, pool, query_clusters, pool_clusters = exact_mining_case(20, 40, 4, seed=12)
    for one_per_cluster, k in ((True, 7), (True, 3), (False, 45)):
        found = L.mine_negatives(queries, pool, query_clusters, pool_clusters, k=k, one_per_cluster=one_per_cluster)
        assert found.tolist() == python_mining(queries, pool, query_clusters, pool_clusters, k, one_per_cluster)
        for q, row in enumerate(found.tolist()):
            qualifying = int((pool_clusters != query_clusters[q]).sum())
            if one_per_cluster:
                qualifying = len(set(pool_clusters.tolist()) - {int(query_clusters[q])})
            n = min(k, qualifying)
            assert all(i >= 0 for i in row[:n]) and row[n:] == [-1] * (k - n), (one_per_cluster, k, q)
    # every pool item in the query's cluster: nothing qualifies
    alone = L.mine_negatives(queries[:2], pool[:5], torch.tensor([3, 3]), torch.full((5,), 3), k=4)
    assert alone.tolist() == [[-1] * 4] * 2


@pytest.mark.parametrize("crowd", [False, True])
def test_n2_negatives_are_distinct_clusters_never_the_querys(crowd):
    queries, pool, query_clusters, pool_clusters = exact_mining_case(50, 400, 30, seed=13, crowd=crowd)
    found = L.mine_negatives(queries, pool, query_clusters, pool_clusters, k=12)
    for q, row in enumerate(found.tolist()):
        clusters = [int(pool_clusters[i]) for i in row if i >= 0]
        assert len(clusters) == 12 and len(set(clusters)) == 12, q
        assert int(query_clusters[q]) not in clusters, q
        scores = [float(queries[q] @ pool[i]) for i in row]
        assert scores == sorted(scores, reverse=True), q  # most similar first
