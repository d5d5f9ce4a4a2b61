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
