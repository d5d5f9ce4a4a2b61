"""coursekit.models against LeCun et al. 1998, and the training loop's promises."""

from __future__ import annotations

import pytest
import torch

from coursekit import models, training

# LeNet-5's trainable parameters per layer, as given in the paper (Section II.B).
PAPER_PARAMETERS = {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164}


def test_lenet5_has_the_papers_parameter_counts_with_the_partial_table():
    net = models.LeNet5(partial=True)
    assert {name: models.parameter_count(getattr(net, name)) for name in PAPER_PARAMETERS} == PAPER_PARAMETERS


def test_the_full_c3_has_more_parameters_than_the_papers():
    assert models.parameter_count(models.LeNet5(partial=False).c3) == 16 * (6 * 25 + 1)


def test_the_c3_table_is_the_papers():
    sizes = [len(row) for row in models.LENET_C3_TABLE]
    assert sizes == [3] * 6 + [4] * 9 + [6]
    # the first six read three contiguous maps (cyclically), the next six four contiguous ones
    for j in range(6):
        assert set(models.LENET_C3_TABLE[j]) == {j % 6, (j + 1) % 6, (j + 2) % 6}
        assert set(models.LENET_C3_TABLE[6 + j]) == {(j + k) % 6 for k in range(4)}
    assert all(sum(j in row for row in models.LENET_C3_TABLE) == 10 for j in range(6))  # each S2 map feeds 10


def test_lenet5_layer_shapes_follow_the_paper():
    net = models.LeNet5(partial=True)
    shapes = {}
    for name in ("c1", "s2", "c3", "s4", "c5"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    out = net(torch.zeros(2, 1, 28, 28))
    assert shapes == {"c1": (6, 28, 28), "s2": (6, 14, 14), "c3": (16, 10, 10), "s4": (16, 5, 5), "c5": (120, 1, 1)}
    assert out.shape == (2, 10)


def test_the_partial_connections_stay_cut_through_training():
    conv = models.PartialConv(models.LENET_C3_TABLE, 5)
    x = torch.randn(4, 6, 14, 14)
    conv(x).square().sum().backward()
    torch.optim.SGD(conv.parameters(), lr=0.1).step()
    # an output map does not change when an input map it does not read changes
    x2 = x.clone()
    x2[:, 5] += 1.0  # map 5 is not read by C3 map 0 (0, 1, 2)
    assert torch.allclose(conv(x)[:, 0], conv(x2)[:, 0])
    assert not torch.allclose(conv(x)[:, 3], conv(x2)[:, 3])  # map 3 reads (3, 4, 5)


@pytest.mark.parametrize("make", [models.fc_net, models.small_cnn, models.LeNet5])
def test_models_map_digits_to_ten_activations(make):
    assert make()(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def _toy(n=512, seed=0):
    """Two classes of 8x8 'images': a bright left half or a bright right half, with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.randint(0, 60, (n, 8, 8), generator=g, dtype=torch.int64)
    images[labels == 0, :, :4] += 150
    images[labels == 1, :, 4:] += 150
    return images.to(torch.uint8), labels


def _tiny_net():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))


def test_fit_learns_and_records_its_history():
    images, labels = _toy()
    test = _toy(256, seed=1)
    history = training.fit(_tiny_net(), images, labels, epochs=3, batch_size=64, lr=1e-2, test=test)
    assert len(history.train_loss) == len(history.test_accuracy) == len(history.seconds) == 3
    assert history.test_accuracy[-1] > 0.95
    assert history.train_loss[-1] < history.train_loss[0]


def test_fit_is_reproducible_for_a_seed():
    images, labels = _toy()
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the same initial weights
        net = _tiny_net()
        runs.append(training.fit(net, images, labels, epochs=2, seed=7).train_loss)
    assert runs[0] == runs[1]


def test_fit_stops_at_the_target_accuracy():
    images, labels = _toy()
    history = training.fit(_tiny_net(), images, labels, epochs=20, lr=1e-2, test=_toy(256, seed=1), target_accuracy=0.9)
    assert len(history.test_accuracy) < 20 and history.test_accuracy[-1] >= 0.9


def test_fit_is_silent_under_grading(monkeypatch, capfd):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    images, labels = _toy(128)
    training.fit(_tiny_net(), images, labels, epochs=1)
    assert capfd.readouterr().err == ""


def test_fit_refuses_mismatched_data():
    images, labels = _toy(64)
    with pytest.raises(ValueError, match="same length; got 64 and 63"):
        training.fit(_tiny_net(), images, labels[:63])
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        training.fit(_tiny_net(), images, labels, epochs=0)
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, H, W\)"):
        training.prepare(images.float())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_keeps_everything_on_the_gpu_with_mixed_precision():
    images, labels = (t.cuda() for t in _toy())
    history = training.fit(_tiny_net(), images, labels, epochs=3, lr=1e-2, test=tuple(t.cuda() for t in _toy(256, 1)))
    assert history.test_accuracy[-1] > 0.95
