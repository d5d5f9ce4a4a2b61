"""coursekit.convolution against independent oracles, and the properties that define an LTI system.

Oracles: ``np.convolve`` (1-D), ``scipy.signal.convolve2d`` / ``correlate2d`` (2-D),
``scipy.signal.windows.gaussian`` (kernels), ``torch.nn.functional`` ``conv2d`` / ``unfold`` /
``fold`` / ``max_pool2d`` / ``avg_pool2d`` and torch autograd in float64 (layers), and
definitions written out in the tests themselves (``shift``, ``impulse``, Sobel on a ramp by hand).
No expected value is taken from running coursekit; coursekit-vs-coursekit comparisons only check
properties (linearity, equivariance, convolution = flipped correlation, adjointness...).

Tolerances: the same float64 sums computed by numpy, scipy or torch agree to ~1e-15 relative, so
oracle checks use ``ORACLE_TOL = 1e-10`` (whole-array :func:`scaled_error` for gradients, where
cancelling entries make an entry-by-entry error meaningless). float32 layers carry ~1e-7 relative
rounding per product and sum over at most a few dozen terms: ``FLOAT32_TOL = 1e-5``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as tF

from coursekit.nets import autodiff as ad, ops
from coursekit.convolution import filters, layer, signals
from coursekit.grading import scaled_error

ORACLE_TOL = 1e-10  # numpy / scipy / torch vs coursekit, float64
FLOAT32_TOL = 1e-5  # float32 layer vs the float64 torch result
SEEDS = range(6)
LAYER_SEEDS = range(24)


# -- helpers ---------------------------------------------------------------------------------------


def assert_close(actual, expected, name, tol=ORACLE_TOL):
    actual = np.asarray(actual)
    assert actual.shape == np.shape(expected), f"{name}: shape {actual.shape} != {np.shape(expected)}"
    err = scaled_error(actual, expected)
    assert err <= tol, f"{name}: error {err:.1e} > {tol:.0e}"


def t64(a, grad=False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def random_layer(seed):
    """A random layer problem: x (N, C, H, W), w (F, C, KH, KW), b (F,), stride 1..3, padding 0..2;
    kernels and images are often non-square."""
    rng = np.random.default_rng(seed)
    N, C, F = rng.integers(1, 4, size=3)
    KH, KW = rng.integers(1, 5, size=2)
    stride, padding = int(rng.integers(1, 4)), int(rng.integers(0, 3))
    H = int(rng.integers(max(1, KH - 2 * padding), KH + 7))
    W = int(rng.integers(max(1, KW - 2 * padding), KW + 7))
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, KH, KW))
    b = rng.standard_normal(F)
    return x, w, b, stride, padding


# fixed cases that every run covers, beside the random ones: (x shape, w shape, stride, padding)
LAYER_CASES = [
    ((2, 3, 5, 7), (4, 3, 2, 3), 1, 0),  # non-square kernel and image
    ((1, 2, 8, 6), (3, 2, 3, 1), 2, 1),
    ((3, 1, 7, 9), (2, 1, 4, 2), 3, 2),
    ((2, 2, 4, 4), (1, 2, 4, 4), 1, 0),  # kernel as large as the image: 1x1 output
    ((1, 3, 1, 5), (2, 3, 3, 3), 1, 1),  # a one-row image, padded
]


def layer_case(case):
    xs, ws, stride, padding = case
    rng = np.random.default_rng(sum(xs) + sum(ws))
    return rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0]), stride, padding


ALL_LAYERS = [pytest.param(lambda s=s: random_layer(s), id=f"seed{s}") for s in LAYER_SEEDS] + [
    pytest.param(lambda c=c: layer_case(c), id=f"case{i}") for i, c in enumerate(LAYER_CASES)
]


def torch_conv(x, w, b, stride, padding, dout=None):
    """Output of torch's conv2d and, given ``dout``, the gradients of ``sum(out * dout)``."""
    X, Wt = t64(x, True), t64(w, True)
    B = None if b is None else t64(b, True)
    out = tF.conv2d(X, Wt, B, stride=stride, padding=padding)
    if dout is None:
        return out.detach().numpy()
    (out * t64(dout)).sum().backward()
    return out.detach().numpy(), X.grad.numpy(), Wt.grad.numpy(), None if B is None else B.grad.numpy()


def shift_by_definition(x, k):
    """``y[n] = x[n - k]`` where ``0 <= n - k < len(x)``, else 0, written out sample by sample."""
    return np.array([x[n - k] if 0 <= n - k < len(x) else 0.0 for n in range(len(x))])


# -- 1-D signals: impulse and shift ------------------------------------------------------------------


@pytest.mark.parametrize("n", (1, 2, 7))
def test_impulse_is_a_row_of_the_identity(n):
    for k in range(n):
        d = signals.impulse(n, k)
        assert d.shape == (n,)
        np.testing.assert_array_equal(d, np.eye(n)[k])


def test_impulse_default_position_is_zero():
    np.testing.assert_array_equal(signals.impulse(4), [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("n, k", [(5, 5), (5, -1), (5, 9), (1, 1), (0, 0)])
def test_impulse_outside_the_signal_raises(n, k):
    with pytest.raises(ValueError, match=r"\bk\b"):
        signals.impulse(n, k)


@pytest.mark.parametrize("k", [0, 1, 3, 6, 7, 8, 20, -1, -3, -6, -7, -8, -20])
def test_shift_matches_its_definition(k):
    """Delays for k > 0, advances for k < 0, zero-filled; shifts past the length give zeros."""
    x = np.random.default_rng(abs(k)).standard_normal(7)
    got = signals.shift(x, k)
    assert got.shape == x.shape
    np.testing.assert_array_equal(got, shift_by_definition(x, k))


def test_shift_delays_advances_and_zero_fills():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(signals.shift(x, 1), [0.0, 1.0, 2.0, 3.0])  # delay
    np.testing.assert_array_equal(signals.shift(x, -1), [2.0, 3.0, 4.0, 0.0])  # advance
    np.testing.assert_array_equal(signals.shift(x, 4), np.zeros(4))
    np.testing.assert_array_equal(signals.shift(x, -4), np.zeros(4))
    np.testing.assert_array_equal(signals.shift(x, -5), np.zeros(4))


def test_shift_does_not_modify_its_input():
    x = np.arange(1.0, 6.0)
    signals.shift(x, 2)
    signals.shift(x, -2)
    np.testing.assert_array_equal(x, np.arange(1.0, 6.0))


def test_shift_rejects_a_fractional_shift():
    with pytest.raises(ValueError, match=r"\bk\b"):
        signals.shift(np.ones(4), 1.5)


# -- 1-D convolution against np.convolve -------------------------------------------------------------

# (len(x), len(h)), including h longer than x, equal lengths and length-1 signals
LENGTHS = [(8, 3), (3, 8), (5, 5), (1, 4), (4, 1), (1, 1), (6, 2), (2, 6), (9, 4), (4, 9), (10, 7)]


@pytest.mark.parametrize("mode", signals.MODES)
@pytest.mark.parametrize("lengths", LENGTHS, ids=[f"x{a}-h{b}" for a, b in LENGTHS])
def test_convolve_matches_numpy(lengths, mode):
    rng = np.random.default_rng(lengths[0] * 31 + lengths[1])
    x, h = rng.standard_normal(lengths[0]), rng.standard_normal(lengths[1])
    expected = np.convolve(x, h, mode)
    got = signals.convolve(x, h, mode)
    assert got.shape == expected.shape, f"{mode}: shape {got.shape} != numpy's {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=ORACLE_TOL, atol=ORACLE_TOL)


def test_convolve_defaults_to_full():
    x, h = np.array([1.0, 2.0, 3.0]), np.array([1.0, -1.0])
    np.testing.assert_allclose(signals.convolve(x, h), np.convolve(x, h, "full"))


def test_convolve_accepts_integer_lists():
    x, h = [1, 2, 3, 4], [2, 0, -1]
    got = signals.convolve(x, h)
    assert np.issubdtype(got.dtype, np.floating)
    np.testing.assert_allclose(got, np.convolve(x, h).astype(float))


@pytest.mark.parametrize("mode", signals.MODES)
@pytest.mark.parametrize("seed", SEEDS)
def test_convolve_is_linear_in_the_signal(seed, mode):
    rng = np.random.default_rng(seed)
    x, y, h = rng.standard_normal(12), rng.standard_normal(12), rng.standard_normal(int(rng.integers(1, 6)))
    a, b = rng.standard_normal(2)
    np.testing.assert_allclose(
        signals.convolve(a * x + b * y, h, mode),
        a * signals.convolve(x, h, mode) + b * signals.convolve(y, h, mode),
        rtol=1e-10, atol=1e-12,
    )


@pytest.mark.parametrize("mode", ["circular", "bogus", "", None])
def test_convolve_rejects_a_bad_mode_naming_it(mode):
    with pytest.raises(ValueError, match=re.escape(repr(mode))):
        signals.convolve(np.ones(4), np.ones(2), mode)


@pytest.mark.parametrize(
    "x, h",
    [(np.ones((3, 3)), np.ones(2)), (np.ones(3), np.ones((2, 1))), (np.float64(3.0), np.ones(2)),
     (np.array(["a", "b"]), np.ones(2))],
    ids=["2-D x", "2-D h", "scalar x", "string x"],
)
def test_convolve_rejects_non_1d_or_non_numeric_signals(x, h):
    with pytest.raises(ValueError, match="1-D"):
        signals.convolve(x, h)


def test_shift_rejects_a_non_1d_signal():
    with pytest.raises(ValueError, match="1-D"):
        signals.shift(np.ones((2, 3)), 1)


@pytest.mark.parametrize("x, h", [(np.array([]), np.ones(2)), (np.ones(2), np.array([]))])
def test_convolve_rejects_empty_signals(x, h):
    with pytest.raises(ValueError, match="empty"):
        signals.convolve(x, h)


# -- LTI systems ------------------------------------------------------------------------------------


def moving_average(x):
    return np.convolve(x, np.full(4, 0.25), "full")[: len(x)]


def squaring(x):
    return np.asarray(x) ** 2


def time_varying_gain(x):
    return np.asarray(x) * np.arange(len(x))


def add_one(x):
    return np.asarray(x) + 1.0


def test_moving_average_is_linear_and_time_invariant():
    assert signals.is_linear(moving_average) is True
    assert signals.is_time_invariant(moving_average) is True


def test_squaring_is_not_linear_but_is_time_invariant():
    assert signals.is_linear(squaring) is False
    assert signals.is_time_invariant(squaring) is True


def test_time_varying_gain_is_linear_but_not_time_invariant():
    assert signals.is_linear(time_varying_gain) is True
    assert signals.is_time_invariant(time_varying_gain) is False


def test_an_offset_is_not_linear():
    assert signals.is_linear(add_one) is False


def test_a_reversal_is_linear_but_not_time_invariant():
    assert signals.is_linear(lambda x: np.asarray(x)[::-1]) is True
    assert signals.is_time_invariant(lambda x: np.asarray(x)[::-1]) is False


@pytest.mark.parametrize("seed", SEEDS)
def test_convolution_with_any_kernel_is_lti(seed):
    h = np.random.default_rng(seed).standard_normal(int(1 + 2 * seed % 7))
    same = lambda x: signals.convolve(x, h, "same")  # noqa: E731
    assert signals.is_linear(same, seed=seed) is True
    assert signals.is_time_invariant(same, seed=seed) is True


def test_is_time_invariant_needs_room_for_its_shifts():
    with pytest.raises(ValueError, match=r"\bn\b"):
        signals.is_time_invariant(moving_average, n=16)  # largest shift 7: needs n > 16


@pytest.mark.parametrize("seed", SEEDS)
def test_impulse_response_of_a_black_box_recovers_h(seed):
    """f(x) = (x * h)[:n] is LTI: its response to delta is h, and then f(x) = (x * h_rec)[:n]."""
    rng = np.random.default_rng(seed)
    n = 16
    h = rng.standard_normal(int(rng.integers(1, 8)))
    black_box = lambda x: np.convolve(x, h, "full")[: len(x)]  # noqa: E731
    recovered = signals.impulse_response(black_box, n)
    np.testing.assert_allclose(recovered, np.concatenate([h, np.zeros(n - h.size)]), rtol=0, atol=1e-15)
    for _ in range(3):
        x = rng.standard_normal(n)
        np.testing.assert_allclose(signals.convolve(x, recovered)[:n], black_box(x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(signals.convolve(x, h)[:n], black_box(x), rtol=1e-10, atol=1e-12)


def test_impulse_response_of_a_coursekit_convolution():
    h = np.array([0.5, -1.0, 2.0])
    recovered = signals.impulse_response(lambda x: signals.convolve(x, h, "full")[: len(x)], 6)
    np.testing.assert_allclose(recovered, [0.5, -1.0, 2.0, 0.0, 0.0, 0.0], rtol=0, atol=1e-15)


def test_impulse_response_rejects_a_system_with_non_1d_output():
    with pytest.raises(ValueError, match="1-D"):
        signals.impulse_response(lambda x: np.outer(x, x), 4)


# -- 2-D images against scipy ------------------------------------------------------------------------

KERNEL_SHAPES = [(1, 1), (3, 3), (5, 5), (2, 2), (4, 4), (2, 3), (3, 2), (4, 1), (1, 4), (5, 2)]


@pytest.mark.parametrize("mode", signals.MODES)
@pytest.mark.parametrize("kshape", KERNEL_SHAPES, ids=[f"{a}x{b}" for a, b in KERNEL_SHAPES])
def test_convolve2d_and_correlate2d_match_scipy(kshape, mode):
    rng = np.random.default_rng(kshape[0] * 10 + kshape[1])
    x = rng.standard_normal((7, 9))  # non-square
    k = rng.standard_normal(kshape)
    for name, ours, theirs in (("convolve2d", filters.convolve2d, scipy.signal.convolve2d),
                               ("correlate2d", filters.correlate2d, scipy.signal.correlate2d)):
        expected = theirs(x, k, mode=mode)
        got = ours(x, k, mode)
        assert got.shape == expected.shape, f"{name} {mode}: shape {got.shape} != scipy's {expected.shape}"
        np.testing.assert_allclose(got, expected, rtol=ORACLE_TOL, atol=ORACLE_TOL, err_msg=f"{name} {mode}")


def test_2d_default_mode_is_same():
    rng = np.random.default_rng(1)
    x, k = rng.standard_normal((6, 5)), rng.standard_normal((2, 3))
    np.testing.assert_allclose(filters.convolve2d(x, k), scipy.signal.convolve2d(x, k, mode="same"), atol=1e-12)
    np.testing.assert_allclose(filters.correlate2d(x, k), scipy.signal.correlate2d(x, k, mode="same"), atol=1e-12)


@pytest.mark.parametrize("mode", ("full", "valid"))
@pytest.mark.parametrize("kshape", [(3, 3), (2, 2), (2, 5), (4, 3)])
def test_convolution_is_correlation_with_the_kernel_flipped(kshape, mode):
    rng = np.random.default_rng(kshape[0] + 7 * kshape[1])
    x, k = rng.standard_normal((8, 6)), rng.standard_normal(kshape)
    np.testing.assert_allclose(filters.convolve2d(x, k, mode), filters.correlate2d(x, k[::-1, ::-1], mode), atol=1e-12)
    np.testing.assert_allclose(filters.convolve2d(x, k, mode), scipy.signal.correlate2d(x, k[::-1, ::-1], mode),
                               atol=1e-12)
    # and a kernel without symmetry does tell them apart
    assert not np.allclose(filters.convolve2d(x, k, mode), filters.correlate2d(x, k, mode))


SYMMETRIC = {"box3": filters.box(3), "box5": filters.box(5), "gaussian1": filters.gaussian(1.0),
             "gaussian0.7": filters.gaussian(0.7), "laplacian": filters.LAPLACIAN}


@pytest.mark.parametrize("mode", signals.MODES)
@pytest.mark.parametrize("name", SYMMETRIC)
def test_convolution_equals_correlation_for_symmetric_kernels(name, mode):
    x = np.random.default_rng(3).standard_normal((11, 13))
    k = SYMMETRIC[name]
    np.testing.assert_allclose(filters.convolve2d(x, k, mode), filters.correlate2d(x, k, mode), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(filters.convolve2d(x, k, mode), scipy.signal.convolve2d(x, k, mode), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", signals.MODES)
@pytest.mark.parametrize("seed", SEEDS)
def test_convolve2d_is_linear_in_the_image(seed, mode):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, 6, 7))
    k = rng.standard_normal(tuple(rng.integers(1, 5, size=2)))
    a, b = rng.standard_normal(2)
    np.testing.assert_allclose(
        filters.convolve2d(a * x + b * y, k, mode), a * filters.convolve2d(x, k, mode) + b * filters.convolve2d(y, k, mode),
        rtol=1e-10, atol=1e-12,
    )


@pytest.mark.parametrize("kshape", [(3, 3), (5, 4), (2, 2), (4, 5)])
@pytest.mark.parametrize("offset", [(2, -3), (-1, 1), (3, 0), (0, -2)])
def test_convolve2d_same_is_translation_equivariant_away_from_the_border(kshape, offset):
    """Content surrounded by a zero border wider than shift + kernel radius: shifting commutes."""
    rng = np.random.default_rng(kshape[0] * 100 + kshape[1] * 10 + offset[0] % 7)
    x = np.pad(rng.standard_normal((8, 9)), 6)  # 20 x 21, zero in a 6-pixel frame
    k = rng.standard_normal(kshape)
    shifted_then_convolved = filters.convolve2d(np.roll(x, offset, axis=(0, 1)), k, "same")
    convolved_then_shifted = np.roll(filters.convolve2d(x, k, "same"), offset, axis=(0, 1))
    np.testing.assert_allclose(shifted_then_convolved, convolved_then_shifted, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("offset", [(2, -3), (-1, 2)])
def test_translation_equivariance_breaks_at_the_border(offset):
    """With content at the border, zero padding and the shift do not commute there (only inside)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 14))
    k = rng.standard_normal((3, 3))
    r = 1  # kernel radius
    a = filters.convolve2d(np.roll(x, offset, axis=(0, 1)), k, "same")
    b = np.roll(filters.convolve2d(x, k, "same"), offset, axis=(0, 1))
    mi, mj = abs(offset[0]) + r, abs(offset[1]) + r
    inside = (slice(mi, x.shape[0] - mi), slice(mj, x.shape[1] - mj))
    np.testing.assert_allclose(a[inside], b[inside], rtol=1e-12, atol=1e-12)
    border = np.ones(x.shape, dtype=bool)
    border[inside] = False
    assert np.abs(a - b)[border].max() > 1e-3, "shifting should not commute with zero padding at the border"


@pytest.mark.parametrize("mode", ["circular", "bogus", "Same!"])
def test_2d_bad_mode_raises_naming_it(mode):
    for f in (filters.convolve2d, filters.correlate2d):
        with pytest.raises(ValueError, match=re.escape(repr(mode))):
            f(np.ones((4, 4)), np.ones((2, 2)), mode)


@pytest.mark.parametrize("image, kernel", [(np.ones(5), np.ones((2, 2))), (np.ones((4, 4)), np.ones(3)),
                                           (np.ones((2, 3, 4)), np.ones((2, 2)))])
def test_2d_rejects_non_2d_arrays(image, kernel):
    for f in (filters.convolve2d, filters.correlate2d):
        with pytest.raises(ValueError, match="2-D"):
            f(image, kernel)


# -- kernels -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", (1, 2, 3, 5))
def test_box_is_a_constant_average(size):
    k = filters.box(size)
    assert k.shape == (size, size)
    assert math.isclose(k.sum(), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(k, np.full((size, size), 1.0 / size**2), rtol=1e-12)


def test_box_default_is_3x3():
    assert filters.box().shape == (3, 3)


@pytest.mark.parametrize("sigma", (0.3, 0.5, 1.0, 1.3, 2.0))
def test_gaussian_default_size_normalisation_and_symmetry(sigma):
    k = filters.gaussian(sigma)
    size = 2 * math.ceil(3 * sigma) + 1
    assert k.shape == (size, size)
    assert math.isclose(k.sum(), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(k, k[::-1, :], rtol=1e-12)
    np.testing.assert_allclose(k, k[:, ::-1], rtol=1e-12)
    np.testing.assert_allclose(k, k.T, rtol=1e-12)
    assert k[size // 2, size // 2] == k.max()
    g = scipy.signal.windows.gaussian(size, sigma)  # independent oracle for the profile
    np.testing.assert_allclose(k, np.outer(g, g) / np.outer(g, g).sum(), rtol=1e-10)


@pytest.mark.parametrize("sigma, size", [(1.0, 3), (1.0, 4), (0.5, 9), (2.0, 6)])
def test_gaussian_with_an_explicit_size(sigma, size):
    k = filters.gaussian(sigma, size)
    assert k.shape == (size, size)
    assert math.isclose(k.sum(), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(k, k[::-1, ::-1], rtol=1e-12)
    g = scipy.signal.windows.gaussian(size, sigma)
    np.testing.assert_allclose(k, np.outer(g, g) / np.outer(g, g).sum(), rtol=1e-10)


@pytest.mark.parametrize("sigma", (0.0, -1.0))
def test_gaussian_rejects_a_non_positive_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        filters.gaussian(sigma)


def test_sobel_x_differentiates_a_horizontal_ramp():
    """x[i, j] = 3 j: convolved with SOBEL_X, y = (x[j+1] - x[j-1]) * (1 + 2 + 1) = 2 * 3 * 4 = 24."""
    ramp = np.tile(3.0 * np.arange(10), (8, 1))
    y = filters.convolve2d(ramp, filters.SOBEL_X, "same")
    np.testing.assert_allclose(y[1:-1, 1:-1], 24.0, rtol=1e-12)
    # it responds to x only: a vertical ramp gives zero in the interior
    np.testing.assert_allclose(filters.convolve2d(ramp.T.copy(), filters.SOBEL_X, "same")[1:-1, 1:-1], 0.0, atol=1e-12)


def test_sobel_y_differentiates_a_vertical_ramp():
    ramp = np.tile(np.arange(9.0)[:, None], (1, 7))  # x[i, j] = i
    y = filters.convolve2d(ramp, filters.SOBEL_Y, "same")
    np.testing.assert_allclose(y[1:-1, 1:-1], 8.0, rtol=1e-12)


@pytest.mark.parametrize("a, b, c", [(1.0, 0.0, 0.0), (0.0, 2.0, 1.0), (-0.7, 1.3, 5.0)])
def test_laplacian_of_a_linear_ramp_is_zero_inside(a, b, c):
    i, j = np.mgrid[0:9, 0:11]
    ramp = a * i + b * j + c
    np.testing.assert_allclose(filters.convolve2d(ramp, filters.LAPLACIAN, "same")[1:-1, 1:-1], 0.0, atol=1e-12)
    np.testing.assert_allclose(filters.convolve2d(ramp, filters.LAPLACIAN, "valid"), 0.0, atol=1e-12)
    # but not of a quadratic: the Laplacian of i^2 + j^2 is 4
    np.testing.assert_allclose(filters.convolve2d(i**2 + j**2.0, filters.LAPLACIAN, "valid"), 4.0, rtol=1e-12)


# -- layers: output_size, im2col / col2im ---------------------------------------------------------


def test_output_size_matches_torch_conv2d():
    for n in range(1, 10):
        for k in range(1, 6):
            for stride in (1, 2, 3):
                for padding in (0, 1, 2):
                    if n + 2 * padding < k:
                        continue
                    shape = tF.conv2d(torch.zeros(1, 1, n, n + 1), torch.zeros(1, 1, k, k),
                                      stride=stride, padding=padding).shape
                    assert layer.output_size(n, k, stride, padding) == shape[2], (n, k, stride, padding)
                    if n + 1 + 2 * padding >= k:
                        assert layer.output_size(n + 1, k, stride, padding) == shape[3], (n + 1, k, stride, padding)


def test_output_size_defaults_to_stride_1_no_padding():
    assert layer.output_size(7, 3) == 5


@pytest.mark.parametrize(
    "args, name",
    [((0, 3), "n"), ((-2, 1), "n"), ((4.5, 1), "n"), ((5, 0), "k"), ((5, 1.5), "k"),
     ((5, 3, 0), "stride"), ((5, 3, -1), "stride"), ((5, 3, 1.5), "stride"),
     ((5, 3, 1, -1), "padding"), ((5, 3, 1, 0.5), "padding")],
)
def test_output_size_rejects_bad_arguments_naming_them(args, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        layer.output_size(*args)


@pytest.mark.parametrize("n, k, padding", [(2, 3, 0), (1, 4, 1), (3, 8, 2)])
def test_output_size_rejects_a_kernel_that_does_not_fit(n, k, padding):
    with pytest.raises(ValueError, match="fit"):
        layer.output_size(n, k, 1, padding)


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_im2col_matches_torch_unfold(make):
    x, w, _, stride, padding = make()
    N, C, H, W = x.shape
    kh, kw = w.shape[2:]
    cols = torch.nn.functional.unfold(t64(x), (kh, kw), stride=stride, padding=padding).numpy()  # (N, C kh kw, L)
    expected = cols.transpose(1, 0, 2).reshape(C * kh * kw, -1)
    assert_close(layer.im2col(x, kh, kw, stride, padding), expected, "im2col")


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_col2im_matches_torch_fold(make):
    x, w, _, stride, padding = make()
    N, C, H, W = x.shape
    kh, kw = w.shape[2:]
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    c = np.random.default_rng(H * W).standard_normal((C * kh * kw, N * Ho * Wo))
    torch_cols = t64(c.reshape(C * kh * kw, N, Ho * Wo).transpose(1, 0, 2))
    expected = tF.fold(torch_cols, (H, W), (kh, kw), stride=stride, padding=padding).numpy()
    assert_close(layer.col2im(c, x.shape, kh, kw, stride, padding), expected, "col2im")


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_im2col_and_col2im_are_adjoint(make):
    """<im2col(x), c> = <x, col2im(c)> for every x and c: the defining property of the adjoint."""
    x, w, _, stride, padding = make()
    kh, kw = w.shape[2:]
    cols = layer.im2col(x, kh, kw, stride, padding)
    c = np.random.default_rng(cols.size).standard_normal(cols.shape)
    back = layer.col2im(c, x.shape, kh, kw, stride, padding)
    assert back.shape == x.shape
    lhs, rhs = np.sum(cols * c), np.sum(x * back)
    assert abs(lhs - rhs) <= 1e-10 * (np.abs(cols * c).sum() + 1e-300), (lhs, rhs)


# -- layers: conv_forward / conv_backward against torch --------------------------------------------


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_conv_forward_matches_torch(make):
    x, w, b, stride, padding = make()
    out, _ = layer.conv_forward(x, w, b, stride, padding)
    assert out.dtype == np.float64
    assert_close(out, torch_conv(x, w, b, stride, padding), "conv_forward")


@pytest.mark.parametrize("make", ALL_LAYERS[:6])
def test_conv_forward_without_bias_matches_torch(make):
    x, w, _, stride, padding = make()
    out, _ = layer.conv_forward(x, w, None, stride, padding)
    assert_close(out, torch_conv(x, w, None, stride, padding), "conv_forward(b=None)")


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_conv_backward_matches_torch_autograd(make):
    x, w, b, stride, padding = make()
    out, cache = layer.conv_forward(x, w, b, stride, padding)
    dout = np.random.default_rng(out.size).standard_normal(out.shape)
    _, dx_t, dw_t, db_t = torch_conv(x, w, b, stride, padding, dout)
    dx, dw, db = layer.conv_backward(dout, cache)
    assert_close(dx, dx_t, "dx")
    assert_close(dw, dw_t, "dw")
    assert_close(db, db_t, "db")


def test_conv_forward_defaults_to_stride_1_no_padding():
    x, w, b, _, _ = layer_case(LAYER_CASES[0])
    out, _ = layer.conv_forward(x, w, b)
    assert_close(out, torch_conv(x, w, b, 1, 0), "conv_forward defaults")


def test_conv_forward_does_not_modify_its_inputs():
    x, w, b, stride, padding = layer_case(LAYER_CASES[1])
    copies = x.copy(), w.copy(), b.copy()
    out, cache = layer.conv_forward(x, w, b, stride, padding)
    layer.conv_backward(np.ones_like(out), cache)
    for orig, kept in zip((x, w, b), copies):
        np.testing.assert_array_equal(orig, kept)


@pytest.mark.parametrize("make", ALL_LAYERS[:8])
def test_float32_layers_stay_float32(make):
    x, w, b, stride, padding = make()
    x32, w32, b32 = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    out, cache = layer.conv_forward(x32, w32, b32, stride, padding)
    assert out.dtype == np.float32
    dout = np.random.default_rng(out.size).standard_normal(out.shape).astype(np.float32)
    expected = torch_conv(x32, w32, b32, stride, padding, dout)  # float64 oracle on the float32 values
    assert_close(out, expected[0], "float32 out", FLOAT32_TOL)
    for name, g, ref in zip(("dx", "dw", "db"), layer.conv_backward(dout, cache), expected[1:]):
        assert g.dtype == np.float32, f"{name} is {g.dtype}"
        assert_close(g, ref, f"float32 {name}", FLOAT32_TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_1x1_conv_is_a_matrix_product_over_channels(seed):
    rng = np.random.default_rng(seed)
    N, C, F, H, W = rng.integers(1, 5, size=5)
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, 1, 1)), rng.standard_normal(F)
    out, _ = layer.conv_forward(x, w, b)
    assert_close(out, np.einsum("fc,nchw->nfhw", w[:, :, 0, 0], x) + b[None, :, None, None], "1x1 conv")


def test_conv_forward_rejects_mismatched_channels_naming_both_shapes():
    x, w = np.zeros((2, 3, 5, 5)), np.zeros((4, 2, 3, 3))
    with pytest.raises(ValueError) as info:
        layer.conv_forward(x, w, np.zeros(4))
    assert str(x.shape) in str(info.value) and str(w.shape) in str(info.value), str(info.value)


@pytest.mark.parametrize("x, w, b", [(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(2)),
                                     (np.zeros((1, 3, 5, 5)), np.zeros((3, 3, 3)), np.zeros(2)),
                                     (np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(3)),
                                     (np.zeros((1, 3, 2, 5)), np.zeros((2, 3, 3, 3)), np.zeros(2))],
                         ids=["3-D x", "3-D w", "bias length", "kernel too tall"])
def test_conv_forward_rejects_bad_shapes(x, w, b):
    with pytest.raises(ValueError):
        layer.conv_forward(x, w, b)


@pytest.mark.parametrize("bad", [(2, 4, 3, 3), (2, 4, 4, 4), (1, 4, 3, 4), (2, 3, 3, 4), (2, 4, 12)])
def test_conv_backward_rejects_a_wrong_dout_shape(bad):
    x, w = np.zeros((2, 3, 5, 6)), np.zeros((4, 3, 3, 3))  # output (2, 4, 3, 4)
    _, cache = layer.conv_forward(x, w, np.zeros(4))
    with pytest.raises(ValueError, match="dout"):
        layer.conv_backward(np.zeros(bad), cache)


# -- the autodiff node ---------------------------------------------------------------------------


def weighted_sum(A, G):
    """``sum(A * G)``, a scalar: a tiny custom node written as the lecture writes them."""
    g = np.asarray(G, dtype=np.float64)

    def back(dS, dA):
        dA += dS * g

    return ad.node(float(np.sum(ad.value(A) * g)), back, (A,))


@pytest.mark.parametrize("make", ALL_LAYERS[:12] + ALL_LAYERS[-len(LAYER_CASES):])
def test_conv_node_in_a_graph_matches_torch(make):
    """conv -> relu -> sum(. * G): value and gradients of x, W, b against torch autograd."""
    x, w, b, stride, padding = make()
    X, Wp, Bp = ad.Param(x, "X"), ad.Param(w, "W"), ad.Param(b, "b")
    Z = layer.conv(X, (Wp, Bp), stride, padding)
    G = np.random.default_rng(Z.value.size).standard_normal(Z.shape)
    S = weighted_sum(ops.relu(Z), G)
    ad.backward(S)

    xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
    zt = tF.conv2d(xt, wt, bt, stride=stride, padding=padding)
    st = (torch.relu(zt) * t64(G)).sum()
    st.backward()

    assert_close(Z.value, zt.detach().numpy(), "conv node value")
    assert abs(float(S.value) - st.item()) <= ORACLE_TOL * max(1.0, abs(st.item()))
    assert_close(X.grad, xt.grad.numpy(), "dX")
    assert_close(Wp.grad, wt.grad.numpy(), "dW")
    assert_close(Bp.grad, bt.grad.numpy(), "db")


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_node_with_shared_weights_collects_both_gradients(seed):
    """The same filters applied to two images: dW and db are the sums of both contributions."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((2, 2, 3, 6, 5))
    w, b = rng.standard_normal((3, 3, 3, 2)), rng.standard_normal(3)
    Wp, Bp = ad.Param(w, "W"), ad.Param(b, "b")
    Z1 = ops.relu(layer.conv(x1, (Wp, Bp), 1, 1))  # x1, x2 are constants: plain arrays
    Z2 = ops.relu(layer.conv(x2, (Wp, Bp), 1, 1))
    G = rng.standard_normal(Z1.shape)
    S = weighted_sum(ops.add((Z1, Z2)), G)
    ad.backward(S)

    wt, bt = t64(w, True), t64(b, True)
    zs = [torch.relu(tF.conv2d(t64(xi), wt, bt, padding=1)) for xi in (x1, x2)]
    ((zs[0] + zs[1]) * t64(G)).sum().backward()
    assert_close(Wp.grad, wt.grad.numpy(), "shared dW")
    assert_close(Bp.grad, bt.grad.numpy(), "shared db")


def test_conv_node_stacked_layers_match_torch():
    """conv -> relu -> conv (stride 2) -> relu -> sum: gradients flow through dX into the first layer."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 9, 8))
    w1, b1 = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    w2, b2 = rng.standard_normal((2, 4, 2, 3)), rng.standard_normal(2)
    P = [ad.Param(v, n) for v, n in ((w1, "W1"), (b1, "b1"), (w2, "W2"), (b2, "b2"))]
    Z = ops.relu(layer.conv(ops.relu(layer.conv(x, (P[0], P[1]), 1, 1)), (P[2], P[3]), 2, 0))
    G = rng.standard_normal(Z.shape)
    ad.backward(weighted_sum(Z, G))

    T = [t64(v, True) for v in (w1, b1, w2, b2)]
    zt = torch.relu(tF.conv2d(torch.relu(tF.conv2d(t64(x), T[0], T[1], padding=1)), T[2], T[3], stride=2))
    (zt * t64(G)).sum().backward()
    for p, t in zip(P, T):
        assert_close(p.grad, t.grad.numpy(), p.name)


# -- pooling against torch ---------------------------------------------------------------------------


POOL_CASES = [(2, None), (3, None), (2, 1), (3, 2), (2, 3), (1, None), (3, 1)]


@pytest.mark.parametrize("size, stride", POOL_CASES)
@pytest.mark.parametrize("seed", range(3))
def test_pooling_matches_torch(seed, size, stride):
    rng = np.random.default_rng(seed * 10 + size)
    N, C = rng.integers(1, 4, size=2)
    H, W = rng.integers(size, size + 7, size=2)  # non-square, not always a multiple of the stride
    x = rng.standard_normal((N, C, H, W))
    s = stride or size
    expected_max = tF.max_pool2d(t64(x), size, stride=s).numpy()
    expected_avg = tF.avg_pool2d(t64(x), size, stride=s).numpy()
    args = (size,) if stride is None else (size, stride)
    assert_close(layer.max_pool(x, *args), expected_max, "max_pool")
    assert_close(layer.avg_pool(x, *args), expected_avg, "avg_pool")


def test_pooling_default_is_2x2_stride_2():
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    assert_close(layer.max_pool(x), tF.max_pool2d(t64(x), 2).numpy(), "max_pool default")
    assert_close(layer.avg_pool(x), tF.avg_pool2d(t64(x), 2).numpy(), "avg_pool default")


@pytest.mark.parametrize("pool", (layer.max_pool, layer.avg_pool))
def test_pooling_rejects_non_4d_input(pool):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        pool(np.zeros((4, 4)))
