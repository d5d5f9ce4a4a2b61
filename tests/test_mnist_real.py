"""The real MNIST, as the README's install command leaves it in the cache (no download here)."""

from __future__ import annotations

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
