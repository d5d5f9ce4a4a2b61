"""coursekit.nets.models against LeCun et al. 1998, and the training loop's promises."""

from __future__ import annotations

import itertools
import math
import time
from typing import ClassVar

import numpy as np
import pytest
import torch

from coursekit.nets import models, training

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


# -- stage 04: confusion matrix -------------------------------------------------------------------


def _brute_force_confusion(predicted, labels, k):
    C = [[0] * k for _ in range(k)]
    for p, t in zip(predicted.tolist(), labels.tolist()):
        C[t][p] += 1
    return C


@pytest.mark.parametrize("n, k, seed", [(1, 2, 0), (50, 3, 1), (500, 10, 2)])
def test_confusion_matrix_counts_true_class_by_predicted_class(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    predicted, labels = torch.randint(0, k, (n,), generator=g), torch.randint(0, k, (n,), generator=g)
    C = training.confusion_matrix(predicted, labels, num_classes=k)
    assert C.dtype == torch.int64 and C.shape == (k, k)
    assert C.tolist() == _brute_force_confusion(predicted, labels, k)
    # rows: how many of each true class; columns: how often each class was predicted; trace: correct ones
    assert torch.equal(C.sum(dim=1), torch.bincount(labels, minlength=k))
    assert torch.equal(C.sum(dim=0), torch.bincount(predicted, minlength=k))
    assert int(C.trace()) == int((predicted == labels).sum())
    assert int(C.sum()) == n


def test_confusion_matrix_keeps_classes_that_never_occur_and_empty_input():
    predicted, labels = torch.tensor([0, 1, 1]), torch.tensor([1, 1, 0])
    C = training.confusion_matrix(predicted, labels, num_classes=4)
    assert C.shape == (4, 4)
    assert C.tolist() == [[0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]  # worked out by hand
    empty = torch.zeros(0, dtype=torch.long)
    assert torch.equal(training.confusion_matrix(empty, empty, num_classes=3), torch.zeros(3, 3, dtype=torch.long))


def test_confusion_matrix_refuses_bad_input_naming_the_argument():
    a = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"^predicted and labels must be 1-D of one shape; got \(3,\) and \(2,\)"):
        training.confusion_matrix(a, a[:2])
    with pytest.raises(ValueError, match="^predicted and labels must be 1-D"):
        training.confusion_matrix(a.reshape(3, 1), a.reshape(3, 1))
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, 10\)"):
        training.confusion_matrix(a, torch.tensor([0, 10, 1]))
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, 3\)"):
        training.confusion_matrix(a, torch.tensor([0, -1, 1]), num_classes=3)
    with pytest.raises(ValueError, match=r"^predicted must lie in \[0, 2\)"):
        training.confusion_matrix(a, torch.tensor([0, 1, 1]), num_classes=2)


# -- stage 04: fit's evaluations, schedule and early stop -----------------------------------------


class _RecordingAdam(torch.optim.Adam):
    """Adam that writes down the learning rate each step uses (fit builds its optimizer inside)."""

    made: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lrs = []
        _RecordingAdam.made.append(self)

    def step(self, closure=None):
        self.lrs.append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.fixture
def adam(monkeypatch):
    """The optimizers fit makes during the test, recording their learning rates."""
    made = []
    monkeypatch.setattr(_RecordingAdam, "made", made)
    monkeypatch.setattr(torch.optim, "Adam", _RecordingAdam)
    return made


def _correct_fraction(net, images, labels):
    """Test accuracy computed here with torch alone: argmax of the net on the prepared images."""
    with torch.no_grad():
        return float((net(training.prepare(images)).argmax(dim=1) == labels).double().mean())


@pytest.mark.parametrize("every", [1, 3, 4, 100])
def test_fit_evaluates_every_k_steps_and_at_each_epochs_end(every, adam, monkeypatch):
    images, labels = _toy(256)  # batch 64: 4 steps an epoch
    test = _toy(128, seed=1)
    steps_when_called = []
    real_accuracy = training.accuracy

    def counting_accuracy(model, *data, **options):
        steps_when_called.append(len(adam[0].lrs))  # optimizer steps taken so far
        return real_accuracy(model, *data, **options)

    monkeypatch.setattr(training, "accuracy", counting_accuracy)
    history = training.fit(_tiny_net(), images, labels, epochs=2, batch_size=64, lr=1e-2, test=test,
                           evaluate_every=every)
    expected = sorted(set(range(every, 9, every)) | {4, 8})  # multiples of k, and the epoch ends, once each
    assert [e[0] for e in history.evaluations] == expected
    assert steps_when_called == expected  # the recorded step is the number of optimizer steps taken
    assert len(adam[0].lrs) == 8
    # an epoch's test accuracy is the evaluation at its end
    at = {e[0]: e[2] for e in history.evaluations}
    assert history.test_accuracy == [at[4], at[8]]
    assert all(0.0 <= e[2] <= 1.0 for e in history.evaluations)
    assert history.reached is None  # no target given


def test_fit_records_the_final_models_accuracy():
    images, labels = _toy()
    test = _toy(256, seed=1)
    net = _tiny_net()
    history = training.fit(net, images, labels, epochs=1, batch_size=64, test=test, evaluate_every=3)
    assert history.evaluations[-1][2] == pytest.approx(_correct_fraction(net, *test), abs=1e-12)


def test_fits_training_seconds_grow_and_leave_the_evaluations_out(monkeypatch):
    # make each of the 4 evaluations take 0.25 s: the epoch's wall time includes that second, the
    # training seconds do not, however fast or slow the training steps themselves are
    real_accuracy = training.accuracy

    def slow_accuracy(*args, **options):
        time.sleep(0.25)
        return real_accuracy(*args, **options)

    monkeypatch.setattr(training, "accuracy", slow_accuracy)
    images, labels = _toy(256)
    history = training.fit(_tiny_net(), images, labels, epochs=1, batch_size=32, test=_toy(64, seed=1),
                           evaluate_every=2)
    seconds = [e[1] for e in history.evaluations]
    assert [e[0] for e in history.evaluations] == [2, 4, 6, 8]
    assert seconds[0] > 0 and all(b >= a for a, b in itertools.pairwise(seconds))
    assert history.seconds[0] - seconds[-1] >= 0.99


def _backwards_net(strength=0.2):
    """A tiny net that starts out sure of the wrong class (bright left read as class 1): the toy is so
    easy that a random start may be right after one step, this one needs several to turn around."""
    net = _tiny_net()
    left = torch.zeros(8, 8)
    left[:, :4] = 1.0
    with torch.no_grad():
        net[1].weight.copy_(strength * torch.stack([(1 - left).flatten(), left.flatten()]))
        net[1].bias.zero_()
    return net


@pytest.mark.parametrize("every", [1, 3])
def test_fit_stops_at_the_first_evaluation_reaching_the_target(every, adam):
    images, labels = _toy()  # batch 64: 8 steps an epoch, 32 planned
    test = _toy(256, seed=1)
    net = _backwards_net()
    assert _correct_fraction(net, *test) < 0.1
    history = training.fit(net, images, labels, epochs=4, batch_size=64, lr=1e-2, test=test, evaluate_every=every,
                           target_accuracy=0.9)
    scores = [e[2] for e in history.evaluations]
    assert history.reached is not None and history.reached == history.evaluations[-1]  # nothing after it
    assert scores[-1] >= 0.9 and all(s < 0.9 for s in scores[:-1])  # and it is the first one at the target
    step = history.reached[0]
    assert 1 < step < 32  # it took some steps, and stopped before the planned ones ran out
    planned = sorted(set(range(every, 33, every)) | {8, 16, 24, 32})
    assert [e[0] for e in history.evaluations] == [s for s in planned if s <= step]
    assert len(adam[0].lrs) == step  # no optimizer step after the stop
    assert len(history.train_loss) == len(history.test_accuracy) == len(history.seconds) == -(-step // 8)
    assert history.test_accuracy[-1] == history.reached[2]
    assert history.reached[2] == pytest.approx(_correct_fraction(net, *test), abs=1e-12)  # the net as it stopped
    # the cosine schedule was cut short where the stop came: lr(t) = lr (1 + cos(pi t / T)) / 2
    assert adam[0].param_groups[0]["lr"] == pytest.approx(1e-2 * (1 + math.cos(math.pi * step / 32)) / 2, rel=1e-9)


def test_an_unreached_target_lets_fit_run_to_the_end():
    images, labels = _toy(256)
    history = training.fit(_backwards_net(), images, labels, epochs=2, batch_size=64, lr=1e-3, test=_toy(64, seed=1),
                           evaluate_every=2, target_accuracy=0.9)
    assert all(e[2] < 0.9 for e in history.evaluations)  # 8 small steps cannot turn the backwards net round
    assert history.reached is None
    assert [e[0] for e in history.evaluations] == [2, 4, 6, 8] and len(history.train_loss) == 2


def test_a_target_of_zero_stops_at_the_first_evaluation():
    images, labels = _toy()
    history = training.fit(_tiny_net(), images, labels, epochs=3, batch_size=64, test=_toy(64, seed=1),
                           evaluate_every=5, target_accuracy=0.0)
    assert len(history.evaluations) == 1 and history.reached == history.evaluations[0]
    assert history.reached[0] == 5
    assert len(history.train_loss) == len(history.test_accuracy) == len(history.seconds) == 1


def test_the_cosine_schedule_decays_the_learning_rate_to_zero(adam):
    images, labels = _toy()
    lr, T = 0.02, 3 * 8
    training.fit(_tiny_net(), images, labels, epochs=3, batch_size=64, lr=lr, schedule="cosine")
    (optimizer,) = adam
    expected = [lr * (1 + math.cos(math.pi * t / T)) / 2 for t in range(T)]  # the rate step t uses
    assert optimizer.lrs == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12 * lr)
    assert all(b < a for a, b in itertools.pairwise(optimizer.lrs))


def test_the_constant_schedule_keeps_the_learning_rate(adam):
    images, labels = _toy()
    training.fit(_tiny_net(), images, labels, epochs=2, batch_size=64, lr=0.02, schedule="constant")
    (optimizer,) = adam
    assert optimizer.lrs == [0.02] * 16
    assert optimizer.param_groups[0]["lr"] == 0.02


def test_cosine_is_the_default_schedule(adam):
    images, labels = _toy(128)
    training.fit(_tiny_net(), images, labels, epochs=1, batch_size=64, lr=0.01)
    assert adam[0].lrs[0] == pytest.approx(0.01) and adam[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"evaluate_every": 2}, "target_accuracy and evaluate_every need a test set"),
        ({"target_accuracy": 0.5}, "target_accuracy and evaluate_every need a test set"),
        ({"evaluate_every": 0, "with_test": True}, "^evaluate_every must be a positive integer"),
        ({"evaluate_every": -1, "with_test": True}, "^evaluate_every must be a positive integer"),
        ({"evaluate_every": 1.5, "with_test": True}, "^evaluate_every must be a positive integer"),
        ({"schedule": "linear"}, "^schedule must be 'cosine' or 'constant'; got 'linear'"),
        ({"schedule": "Cosine"}, "^schedule must be"),
    ],
)
def test_fit_refuses_bad_evaluation_and_schedule_arguments(kwargs, message):
    images, labels = _toy(64)
    if kwargs.pop("with_test", False):
        kwargs["test"] = _toy(32, seed=1)
    with pytest.raises(ValueError, match=message):
        training.fit(_tiny_net(), images, labels, **kwargs)


# -- stage 04: looking inside a model --------------------------------------------------------------


def test_first_conv_is_the_first_convolution_in_module_order():
    cnn = models.small_cnn(4)
    assert models.first_conv(cnn) is cnn[0]
    lenet = models.LeNet5(partial=True)
    assert models.first_conv(lenet) is lenet.c1
    inner = torch.nn.Conv2d(1, 2, 3)
    nested = torch.nn.Sequential(torch.nn.Sequential(torch.nn.ReLU(), inner), torch.nn.Conv2d(2, 2, 3))
    assert models.first_conv(nested) is inner


def test_first_conv_refuses_a_model_without_one():
    with pytest.raises(ValueError, match="no Conv2d layer"):
        models.first_conv(models.fc_net())


def test_layer_output_is_the_layer_applied_to_its_input():
    torch.manual_seed(0)
    cnn = models.small_cnn(4)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        first = cnn[0](x)
        second = cnn[3](cnn[2](cnn[1](first)))
        final = cnn(x)
    assert torch.equal(models.layer_output(cnn, cnn[0], x), first)
    assert torch.allclose(models.layer_output(cnn, cnn[3], x), second, atol=1e-6)
    assert torch.allclose(models.layer_output(cnn, cnn[-1], x), final, atol=1e-6)
    assert not models.layer_output(cnn, cnn[0], x).requires_grad
    assert not cnn[0]._forward_hooks  # the hook is gone afterwards


def test_layer_output_follows_lenets_own_forward_pass():
    # C3 sees the padded digit through C1 and S2: the 28x28 input becomes 32x32 inside forward
    torch.manual_seed(1)
    net = models.LeNet5(partial=True)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        expected = net.c3(net.s2(torch.tanh(net.c1(torch.nn.functional.pad(x, (2, 2, 2, 2))))))
    out = models.layer_output(net, net.c3, x)
    assert out.shape == (2, 16, 10, 10)
    assert torch.allclose(out, expected, atol=1e-6)


def test_layer_output_refuses_a_layer_of_another_model():
    cnn, twin = models.small_cnn(4), models.small_cnn(4)
    with pytest.raises(ValueError, match="^layer Conv2d is not a part of the model"):
        models.layer_output(cnn, twin[0], torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="^layer Linear is not a part of the model"):
        models.layer_output(cnn, torch.nn.Linear(2, 2), torch.zeros(1, 1, 28, 28))


def test_confusion_matrix_refuses_float_predictions_and_a_bad_num_classes():
    with pytest.raises(ValueError, match="predicted must hold integer class indices"):
        training.confusion_matrix(torch.tensor([0.7, 1.2]), torch.tensor([0, 1]))
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="num_classes must be a positive integer"):
            training.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), num_classes=bad)


def test_layer_output_keeps_the_models_mode_and_names_a_layer_never_called():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5))
    net.train()
    models.layer_output(net, net[0], torch.zeros(1, 3))
    assert net.training and net[1].training
    unused = torch.nn.Linear(2, 2)
    net.add_module("spare", unused)  # a part of the model that forward never reaches
    net.forward = lambda x: net[1](net[0](x))
    with pytest.raises(ValueError, match="never calls it"):
        models.layer_output(net, unused, torch.zeros(1, 3))


def test_predict_gives_the_same_classes_whatever_the_batch_size():
    torch.manual_seed(0)
    net = _tiny_net()
    images, _ = _toy(300)
    expected = net(training.prepare(images)).argmax(dim=1)
    for batch_size in (None, 7, 1000):
        assert torch.equal(training.predict(net, images, batch_size=batch_size), expected)


# -- fit's parts and arguments (the general loop of stage 04 on) ----------------------------------------


def test_prepare_normalises_each_colour_channel_with_its_own_statistics():
    images = torch.randint(0, 256, (3, 3, 5, 4), dtype=torch.uint8)
    mean, std = (0.2, 0.5, 0.7), (0.1, 0.2, 0.4)
    x = training.prepare(images, mean, std)
    expected = np.stack([(images[:, c].numpy() / 255.0 - mean[c]) / std[c] for c in range(3)], axis=1)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert training.prepare(images[:, 0]).shape == (3, 1, 5, 4)  # one channel, MNIST's statistics
    with pytest.raises(ValueError, match="mean must have 1 or 3 values"):
        training.prepare(images, (0.1, 0.2), 0.3)
    with pytest.raises(ValueError, match="std must be positive"):
        training.prepare(images, 0.5, 0.0)


def test_random_flip_mirrors_about_half_the_images_and_nothing_else():
    x = torch.arange(64 * 2 * 3 * 5, dtype=torch.float32).reshape(64, 2, 3, 5)
    out = training.random_flip(x, torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(out[i], x[i].flip(-1))) for i in range(64)]
    kept = [bool(torch.equal(out[i], x[i])) for i in range(64)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image either mirrored or untouched
    assert 16 <= sum(flipped) <= 48


def test_random_crop_takes_windows_of_the_padded_images():
    x = torch.arange(8 * 3 * 6 * 7, dtype=torch.float32).reshape(8, 3, 6, 7)
    out = training.random_crop(4, padding=1)(x, torch.Generator().manual_seed(3))
    assert out.shape == (8, 3, 4, 4)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(8):  # brute force: some window of the padded image, the same for every channel
        windows = [(t, l) for t in range(8 - 4 + 1) for l in range(9 - 4 + 1)
                   if torch.equal(padded[i, :, t : t + 4, l : l + 4], out[i])]
        assert windows, f"image {i} is not a window of its padded self"
    with pytest.raises(ValueError, match="does not fit"):
        training.random_crop(9)(x, torch.Generator())
    with pytest.raises(ValueError, match="size must be a positive"):
        training.random_crop(0)


def test_fit_takes_the_loss_optimiser_transform_augment_and_metric_it_is_given():
    images, labels = _toy(128)
    calls = {"loss": 0, "transform": 0, "augment": 0, "metric": 0}
    made = []

    def loss(outputs, targets):
        calls["loss"] += 1
        return torch.nn.functional.nll_loss(torch.log_softmax(outputs, dim=1), targets)

    def optimizer(parameters):
        made.append(torch.optim.SGD(parameters, lr=0.05, momentum=0.9, weight_decay=5e-4))
        return made[-1]

    def transform(batch):
        calls["transform"] += 1
        return training.prepare(batch)

    def augment(x, generator):
        calls["augment"] += 1
        assert x.dtype == torch.float32 and x.ndim == 4  # after the transform
        return training.random_flip(x, generator)

    def metric(model, x, y):
        calls["metric"] += 1
        return 0.25

    history = training.fit(_tiny_net(), images, labels, epochs=2, batch_size=32, loss=loss, optimizer=optimizer,
                           transform=transform, augment=augment, metric=metric, test=_toy(64, seed=1),
                           schedule="constant")
    assert calls == {"loss": 8, "transform": 8, "augment": 8, "metric": 2}  # 4 steps an epoch, 2 evaluations
    assert isinstance(made[0], torch.optim.SGD) and made[0].param_groups[0]["momentum"] == 0.9
    assert history.test_accuracy == [0.25, 0.25]
    with pytest.raises(ValueError, match="lr is for the default optimiser"):
        training.fit(_tiny_net(), images, labels, lr=0.1, optimizer=optimizer)


def test_the_default_metric_predicts_through_fits_transform():
    # a transform that inverts the images: a net trained on it and scored without it would look poor
    images, labels = _toy(512)

    def inverted(batch):
        return training.prepare(255 - batch)

    net = _tiny_net()
    history = training.fit(net, images, labels, epochs=3, batch_size=64, lr=1e-2, transform=inverted,
                           test=_toy(256, seed=1))
    test_images, test_labels = _toy(256, seed=1)
    with torch.no_grad():
        direct = float((net(inverted(test_images)).argmax(1) == test_labels).double().mean())
    assert history.test_accuracy[-1] == pytest.approx(direct, abs=1e-12)


def test_the_clock_leaves_out_what_happens_while_it_is_stopped():
    clock = training.Clock(torch.device("cpu"))
    clock.start()
    time.sleep(0.05)
    clock.stop()
    time.sleep(0.2)  # stopped: not counted
    clock.start()
    time.sleep(0.05)
    clock.stop()
    assert 0.09 <= clock.seconds < 0.2


def test_train_epoch_stops_when_asked_and_returns_the_mean_loss():
    images, labels = _toy(256)
    net = _tiny_net()
    step = training.Step(model=net, loss=torch.nn.functional.cross_entropy,
                         optimizer=torch.optim.SGD(net.parameters(), lr=0.0), scheduler=None,
                         transform=training.prepare, augment=None, amp=False)
    steps = []

    def stop_after_two() -> bool:
        steps.append(1)
        return len(steps) == 2

    mean = training.train_epoch(step, images, labels, 64, torch.Generator().manual_seed(0), after_step=stop_after_two)
    assert len(steps) == 2
    with torch.no_grad():  # lr 0: the net is unchanged, so the mean is that of the first two batches
        order = torch.randperm(256, generator=torch.Generator().manual_seed(0))[:128]
        expected = float(torch.nn.functional.cross_entropy(net(training.prepare(images[order])), labels[order]))
    assert mean == pytest.approx(expected, rel=1e-5)


def test_lenet5_builds_s2_and_s4_with_the_subsampling_layer_it_is_given():
    built = []

    class Halve(torch.nn.Module):  # any layer (N, C, H, W) -> (N, C, H // 2, W // 2) will do
        def __init__(self, channels):
            super().__init__()
            built.append(channels)

        def forward(self, x):
            return torch.nn.functional.max_pool2d(x, 2)

    net = models.LeNet5(partial=True, subsampling=Halve)
    assert built == [6, 16] and isinstance(net.s2, Halve) and isinstance(net.s4, Halve)
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    # the default is the paper's trainable sub-sampling: 2 parameters per map
    assert sum(p.numel() for p in models.LeNet5().s2.parameters()) == 12
