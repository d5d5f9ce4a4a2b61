"""coursekit.data.samples.spiral against its documented construction. That the spiral can be learnt is
tests/test_backprop.py::test_train_learns_the_spiral."""

from __future__ import annotations

import numpy as np
import pytest

from coursekit.data.samples import spiral
from coursekit.data.transforms import permute_pixels, pixel_permutation


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


# -- stage 04: one fixed pixel permutation for every image -----------------------------------------


def _brute_force_permute(images, permutation):
    """Pixel j (row-major) of each output image is pixel permutation[j] of its input, one at a time."""
    n, _, w = images.shape
    out = np.empty_like(np.asarray(images))
    for k in range(n):
        for j, p in enumerate(np.asarray(permutation).tolist()):
            out[k, j // w, j % w] = np.asarray(images)[k, p // w, p % w]
    return out


@pytest.mark.parametrize("n", [1, 2, 17, 784])
def test_pixel_permutation_holds_each_index_once(n):
    import torch

    p = pixel_permutation(n, seed=3)
    assert isinstance(p, torch.Tensor) and p.dtype == torch.int64 and p.shape == (n,)
    assert sorted(p.tolist()) == list(range(n))


def test_pixel_permutation_is_fixed_by_the_seed():
    import torch

    assert pixel_permutation(784, seed=5).tolist() == pixel_permutation(784, seed=5).tolist()
    a, b = pixel_permutation(784, seed=5), pixel_permutation(784, seed=6)
    assert (a != b).float().mean() > 0.9  # two random permutations of 784 share few positions
    assert (a != torch.arange(784)).float().mean() > 0.9  # and it really shuffles


@pytest.mark.parametrize("bad", [0, -3, 2.5, "5"])
def test_pixel_permutation_refuses_a_bad_size_naming_it(bad):
    with pytest.raises(ValueError, match="^num_pixels must be"):
        pixel_permutation(bad)


def test_permute_pixels_matches_a_pixel_by_pixel_loop_for_numpy_and_torch():
    import torch

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 3, 5)).astype(np.uint8)  # not square: row-major matters
    permutation = rng.permutation(15)
    expected = _brute_force_permute(images, permutation)
    out = permute_pixels(images, permutation)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (4, 3, 5)
    np.testing.assert_array_equal(out, expected)
    out_t = permute_pixels(torch.from_numpy(images), torch.from_numpy(permutation))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.uint8 and out_t.shape == (4, 3, 5)
    np.testing.assert_array_equal(out_t.numpy(), expected)
    # a plain list, and a numpy permutation for torch images, mean the same
    np.testing.assert_array_equal(permute_pixels(images, permutation.tolist()), expected)
    np.testing.assert_array_equal(permute_pixels(torch.from_numpy(images), permutation).numpy(), expected)


def test_permute_pixels_leaves_its_input_alone():
    images = np.arange(2 * 2 * 3).reshape(2, 2, 3)
    before = images.copy()
    permute_pixels(images, [5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(images, before)


def test_the_inverse_permutation_gives_the_images_back():
    import torch

    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    p = pixel_permutation(784, seed=2)
    shuffled = permute_pixels(images, p)
    assert not torch.equal(shuffled, images)
    assert torch.equal(permute_pixels(shuffled, torch.argsort(p)), images)


def test_a_permutation_keeps_each_images_pixel_values():
    rng = np.random.default_rng(4)
    images = rng.normal(size=(6, 7, 7)).astype(np.float32)
    out = permute_pixels(images, rng.permutation(49))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.sort(out.reshape(6, -1), axis=1), np.sort(images.reshape(6, -1), axis=1))


def test_permuting_twice_composes_the_permutations():
    # out1[j] = x[p[j]], out2[j] = out1[q[j]] = x[p[q[j]]]
    rng = np.random.default_rng(5)
    images = rng.integers(0, 9, size=(3, 4, 4))
    p, q = rng.permutation(16), rng.permutation(16)
    np.testing.assert_array_equal(permute_pixels(permute_pixels(images, p), q), permute_pixels(images, p[q]))
    np.testing.assert_array_equal(permute_pixels(images, np.arange(16)), images)  # identity


@pytest.mark.parametrize(
    "permutation",
    [
        [0, 1, 2, 3, 4, 4],  # a repeated index (so one is missing)
        [0, 1, 2, 3, 4],  # too short
        [0, 1, 2, 3, 4, 5, 6],  # too long
        [0, 1, 2, 3, 4, 6],  # out of range
        [-1, 1, 2, 3, 4, 5],  # negative
        [[0, 1, 2], [3, 4, 5]],  # the right numbers in the wrong shape
    ],
)
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_permute_pixels_refuses_a_bad_permutation_naming_it(permutation, kind):
    import torch

    images = np.zeros((2, 2, 3), dtype=np.uint8)
    if kind == "torch":
        images, permutation = torch.from_numpy(images), torch.tensor(permutation)
    with pytest.raises(ValueError, match="^permutation must hold each of 0..5 once"):
        permute_pixels(images, permutation)


@pytest.mark.parametrize("shape", [(6,), (2, 6), (1, 2, 2, 3)])
def test_permute_pixels_refuses_images_that_are_not_3d(shape):
    with pytest.raises(ValueError, match=r"^images must have shape \(N, H, W\)"):
        permute_pixels(np.zeros(shape), np.arange(6))


def _cuda_available():
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device")
def test_permute_pixels_works_on_the_gpu():
    import torch

    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    p = pixel_permutation(784, seed=0)
    out = permute_pixels(images.cuda(), p)
    assert out.device.type == "cuda"
    np.testing.assert_array_equal(out.cpu().numpy(), _brute_force_permute(images.numpy(), p.numpy()))


@pytest.mark.parametrize("as_torch", [False, True])
def test_permute_pixels_refuses_fractional_indices(as_torch):
    # 0.5 would silently become pixel 0 once cast to an index
    images = np.zeros((2, 2, 3), dtype=np.uint8)
    permutation = np.array([0.5, 1, 2, 3, 4, 5])
    if as_torch:
        import torch

        images, permutation = torch.from_numpy(images), torch.from_numpy(permutation)
    with pytest.raises(ValueError, match="permutation must hold integers"):
        permute_pixels(images, permutation)


@pytest.mark.parametrize("bad", [float("nan"), None, 4.0, True])
def test_pixel_permutation_names_num_pixels_for_any_bad_value(bad):
    with pytest.raises(ValueError, match="num_pixels must be a positive integer"):
        pixel_permutation(bad)
