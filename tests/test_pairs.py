"""coursekit.retrieval.pairs (stage 06) against brute force."""

from __future__ import annotations

import pytest
import torch

from coursekit.retrieval import pairs as P


def test_the_knn_of_each_row_are_its_nearest_other_rows_by_brute_force():
    x = torch.randint(0, 256, (70, 4, 5), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    found = P.euclidean_knn(x, k=5, chunk=16)  # several chunks, the last one short
    flat = x.reshape(70, -1).double()
    for i in range(70):
        d = [(float((flat[i] - flat[j]).square().sum()), j) for j in range(70) if j != i]
        nearest = [j for _, j in sorted(d)[:5]]
        assert set(found[i].tolist()) == set(nearest) or sorted(d)[4][0] == sorted(d)[5][0], i  # ties aside
        assert i not in found[i].tolist()
        dist = [float((flat[i] - flat[j]).square().sum()) for j in found[i].tolist()]
        assert dist == sorted(dist)


def test_knn_pairs_list_each_sample_with_its_neighbours():
    x = torch.tensor([[0.0], [1.0], [10.0], [11.5]])
    assert P.knn_pairs(x, k=1).tolist() == [[0, 1], [1, 0], [2, 3], [3, 2]]
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 3\]"):
        P.euclidean_knn(x, k=4)


def test_dissimilar_pairs_avoid_the_similar_ones_and_the_diagonal():
    similar = torch.tensor([[0, 1], [2, 3], [4, 5]])
    drawn = P.dissimilar_pairs(6, similar, 200, torch.Generator().manual_seed(1))
    assert drawn.shape == (200, 2)
    forbidden = {(0, 1), (1, 0), (2, 3), (3, 2), (4, 5), (5, 4)}
    assert not any((a, b) in forbidden or a == b for a, b in drawn.tolist())
    assert len({tuple(p) for p in drawn.tolist()}) > 10  # random, not one pair repeated
    with pytest.raises(ValueError, match="too few"):
        P.dissimilar_pairs(2, torch.tensor([[0, 1]]), 3)
