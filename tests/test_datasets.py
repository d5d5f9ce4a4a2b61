"""coursekit.datasets.spiral against its documented construction. That the spiral can be learnt is
tests/test_nn.py::test_train_learns_the_spiral."""

from __future__ import annotations

import numpy as np
import pytest

from coursekit.datasets import spiral


@pytest.mark.parametrize("n, K", [(100, 3), (1, 2), (7, 5)])
def test_shapes_and_dtypes(n, K):
    X, labels = spiral(n_per_class=n, num_classes=K)
    assert X.shape == (n * K, 2) and X.dtype == np.float64
    assert labels.shape == (n * K,) and labels.dtype == np.int64


def test_labels_are_grouped_and_balanced():
    _, labels = spiral(n_per_class=20, num_classes=4)
    np.testing.assert_array_equal(labels[:20], 0)
    np.testing.assert_array_equal(labels[20:40], 1)
    np.testing.assert_array_equal(labels[-20:], 3)
    assert np.all(np.diff(labels) >= 0)
    np.testing.assert_array_equal(np.bincount(labels), [20, 20, 20, 20])


def test_same_seed_same_data_other_seed_other_data():
    X1, y1 = spiral(seed=5)
    X2, y2 = spiral(seed=5)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, y3 = spiral(seed=6)
    np.testing.assert_array_equal(y1, y3)
    assert np.mean(X1 != X3) > 0.9  # all but the radius-0 points move


def test_radii_are_evenly_spaced_in_the_unit_interval():
    n = 50
    X, labels = spiral(n_per_class=n, num_classes=3, noise=0.3)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() >= 0.0 and r.max() <= 1.0 + 1e-12
    for k in range(3):
        np.testing.assert_allclose(np.sort(r[labels == k]), np.linspace(0, 1, n), atol=1e-12)


def test_noise_free_arms_follow_the_documented_angles():
    # Arm k: radii linspace(0, 1, n), angles 4k + linspace(0, 4, n); X = (r sin t, r cos t).
    n, K = 9, 3
    X, labels = spiral(n_per_class=n, num_classes=K, noise=0.0)
    for k in range(K):
        r = np.linspace(0, 1, n)
        t = 4.0 * k + np.linspace(0, 4, n)
        np.testing.assert_allclose(X[labels == k], np.column_stack([r * np.sin(t), r * np.cos(t)]), atol=1e-12)


def test_noise_is_angular():
    X0, _ = spiral(noise=0.0)
    X1, _ = spiral(noise=0.5)
    np.testing.assert_allclose(np.hypot(*X0.T), np.hypot(*X1.T), atol=1e-12)  # same radii
    assert np.abs(X0 - X1).max() > 0.1  # different angles


@pytest.mark.parametrize("seed", range(5))
def test_classes_are_not_linearly_separable(seed):
    # A least-squares linear classifier on one-hot targets (with a bias) gets < 0.7 accuracy;
    # by chance alone it would get 1/3.
    X, labels = spiral(seed=seed)
    Xb = np.column_stack([X, np.ones(len(X))])
    T = np.eye(3)[labels]
    W, *_ = np.linalg.lstsq(Xb, T, rcond=None)
    accuracy = np.mean((Xb @ W).argmax(axis=1) == labels)
    assert 0.34 < accuracy < 0.7


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_per_class": 0}, "n_per_class"),
        ({"n_per_class": -5}, "n_per_class"),
        ({"n_per_class": 2.5}, "n_per_class"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 3.5}, "num_classes"),
        ({"noise": -0.1}, "noise"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        spiral(**kwargs)


def test_nan_noise_is_rejected():
    # "noise must be >= 0": nan is not, and would silently make every point nan.
    with pytest.raises(ValueError, match="^noise must be"):
        spiral(noise=float("nan"))


def test_integral_floats_that_pass_validation_work():
    # The checks accept 10.0 ("int(value) == value"), so the call must then work, not TypeError.
    X, labels = spiral(n_per_class=10.0, num_classes=3.0)
    X_int, labels_int = spiral(n_per_class=10, num_classes=3)
    np.testing.assert_array_equal(X, X_int)
    np.testing.assert_array_equal(labels, labels_int)
