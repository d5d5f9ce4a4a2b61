"""The real MNIST, as the README's install command leaves it in the cache (no download here)."""

from __future__ import annotations

import pytest
import torch

from coursekit import data

# The class counts of the official MNIST training and test sets (LeCun, Cortes, Burges).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_the_real_mnist_loads_offline_from_the_cache():
    try:
        mnist = data.load_mnist("cpu", download=False)
    except data.DataError as err:
        raise AssertionError(f"{err}\n(the install command fetches it: coursekit data fetch mnist)") from None
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 28, 28) and mnist.test_labels.dtype == torch.int64
    assert mnist.train_labels.bincount().tolist() == TRAIN_COUNTS
    assert mnist.test_labels.bincount().tolist() == TEST_COUNTS
    assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits
    assert int(mnist.train_images.min()) == 0 and int(mnist.train_images.max()) == 255
    # digits are written dark-on-light inverted: ink is bright, the border is background
    assert float(mnist.train_images[:, 0, :].float().mean()) < 1.0
    assert float(mnist.train_images[:, 10:18, 10:18].float().mean()) > 60.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_lectures_error_rates_in_stage_04s_full_budget_on_the_gpu():
    # The lecture: a two-layer FC net under 3% test error, a CNN under 1%; shuffling the pixels
    # leaves the FC net where it was and costs the CNN. Settings of the stage-04 notebook's full budget.
    from coursekit.data import transforms
    from coursekit.nets import models, training

    mnist = data.load_mnist("cuda", download=False)
    permutation = transforms.pixel_permutation(784, seed=2024)
    error = {}
    for name, make, epochs, seed in (("FC", models.fc_net, 10, 1), ("CNN", models.small_cnn, 5, 2)):
        for kind in ("original", "shuffled"):
            train, test = mnist.train_images, mnist.test_images
            if kind == "shuffled":
                train, test = transforms.permute_pixels(train, permutation), transforms.permute_pixels(test, permutation)
            torch.manual_seed(seed)
            history = training.fit(make(), train, mnist.train_labels, epochs=epochs, batch_size=128, lr=3e-3,
                                   test=(test, mnist.test_labels), seed=seed, quiet=True)
            error[name, kind] = 1 - history.test_accuracy[-1]
    assert error["FC", "original"] < 0.03
    assert error["CNN", "original"] < 0.01
    assert abs(error["FC", "shuffled"] - error["FC", "original"]) < 0.01
    assert error["CNN", "shuffled"] - error["CNN", "original"] > error["FC", "shuffled"] - error["FC", "original"]
