"""coursekit.nets.backprop against independent oracles: torch autograd (float64), scipy.special, closed forms.

Nothing here compares coursekit with itself. Tolerances: float64 computations of the same formula
agree to ~1e-15, so oracle comparisons use ``rtol=1e-10`` (``atol=1e-12`` for entries near 0).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.special
import torch
import torch.nn.functional as F

from coursekit.grading.oracles import torch_two_layer

from .helpers import const, leaf, random_params
from coursekit.nets import backprop
from coursekit.data.samples import spiral

RTOL, ATOL = 1e-10, 1e-12
SEEDS = (0, 1, 2)
SHAPES = ((1, 2), (4, 3), (17, 10))  # (N, K)
NET_SHAPES = ((1, 2, 3, 2), (8, 3, 5, 4), (20, 6, 7, 3))  # (N, D, H, K)


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def random_targets(rng, N, K, soft=False):
    if soft:
        return scipy.special.softmax(rng.standard_normal((N, K)), axis=1)
    labels = rng.integers(0, K, size=N)
    return np.eye(K)[labels]


@pytest.fixture
def strict_numpy():
    """Grading conditions (grading.own_work): overflow, 0-division, invalid ops and warnings raise.

    Underflow is left alone: exp(-2000) == 0.0 is the exact float64 answer, and numpy ignores it
    by default.
    """
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield


# -- sigmoid ----------------------------------------------------------------------------------------


def test_sigmoid_of_zero_is_one_half():
    assert backprop.sigmoid(0.0) == 0.5
    close(backprop.sigmoid(np.zeros((2, 3))), np.full((2, 3), 0.5))


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_matches_scipy_expit(seed):
    a = 10 * np.random.default_rng(seed).standard_normal((5, 7))
    close(backprop.sigmoid(a), scipy.special.expit(a))


def test_sigmoid_accepts_integers_and_is_symmetric():
    a = np.arange(-5, 6)
    s = backprop.sigmoid(a)
    assert s.dtype == np.float64
    close(s, scipy.special.expit(a.astype(float)))
    close(backprop.sigmoid(-a) + s, np.ones(a.shape))


def test_sigmoid_is_stable_for_large_activations(strict_numpy):
    s = backprop.sigmoid(np.array([-1000.0, -50.0, 50.0, 1000.0]))
    assert np.all(np.isfinite(s))
    assert s[0] == 0.0 and s[-1] == 1.0
    close(s[1:3], scipy.special.expit(np.array([-50.0, 50.0])), atol=0)


# -- softmax / log_softmax --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_and_log_softmax_match_scipy(seed, shape):
    A = 3 * np.random.default_rng(seed).standard_normal(shape)
    close(backprop.softmax(A), scipy.special.softmax(A, axis=1))
    close(backprop.log_softmax(A), scipy.special.log_softmax(A, axis=1))


def test_softmax_along_axis_0_matches_scipy():
    A = np.random.default_rng(3).standard_normal((4, 6))
    close(backprop.softmax(A, axis=0), scipy.special.softmax(A, axis=0))
    close(backprop.log_softmax(A, axis=0), scipy.special.log_softmax(A, axis=0))


@pytest.mark.parametrize("K", (1, 2, 7))
def test_softmax_of_equal_activations_is_uniform(K):
    A = np.full((3, K), 2.5)
    close(backprop.softmax(A), np.full((3, K), 1.0 / K))
    close(backprop.log_softmax(A), np.full((3, K), -math.log(K)))


def test_softmax_rows_sum_to_one_and_are_shift_invariant():
    rng = np.random.default_rng(4)
    A = 5 * rng.standard_normal((6, 5))
    Y = backprop.softmax(A)
    assert np.all(Y > 0)
    close(Y.sum(axis=1), np.ones(6))
    shift = 100 * rng.standard_normal((6, 1))  # a different constant per row
    close(backprop.softmax(A + shift), Y, rtol=1e-9)
    close(backprop.log_softmax(A + shift), backprop.log_softmax(A), rtol=1e-9, atol=1e-10)


def test_softmax_family_is_stable_for_huge_activations(strict_numpy):
    A = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, 1000.0]])
    Y = backprop.softmax(A)
    logY = backprop.log_softmax(A)
    assert np.all(np.isfinite(Y)) and np.all(np.isfinite(logY))
    close(Y, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3]])
    close(logY, [[0.0, -2000.0, -1000.0], [-math.log(3)] * 3, [-math.log(3)] * 3])
    T = np.eye(3)[[1, 0, 2]]  # the first row's target has probability exp(-2000)
    L = backprop.cross_entropy(A, T)
    assert math.isfinite(L)
    close(L, (2000.0 + 2 * math.log(3)) / 3)
    G = backprop.cross_entropy_grad(A, T)
    assert np.all(np.isfinite(G))
    close(G, (Y - T) / 3)


# -- one_hot ----------------------------------------------------------------------------------------


def test_one_hot_hand_case():
    T = backprop.one_hot(np.array([2, 0, 1, 2]), 4)
    assert T.dtype == np.float64
    np.testing.assert_array_equal(T, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])


def test_one_hot_of_no_labels_is_empty():
    assert backprop.one_hot(np.array([], dtype=int), 3).shape == (0, 3)


@pytest.mark.parametrize(
    "labels",
    [np.array([0.0, 1.0]), np.array([[0, 1]]), np.array([True, False]), np.array(["a", "b"])],
    ids=["float", "2-D", "bool", "str"],
)
def test_one_hot_rejects_non_integer_or_non_1d_labels(labels):
    with pytest.raises(ValueError, match="labels"):
        backprop.one_hot(labels, 3)


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]], ids=["too-big", "negative"])
def test_one_hot_rejects_labels_out_of_range(labels):
    with pytest.raises(ValueError, match="labels"):
        backprop.one_hot(np.array(labels), 3)


# -- cross-entropy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("K", (2, 3, 10))
def test_cross_entropy_of_uniform_activations_is_ln_k(K):
    rng = np.random.default_rng(K)
    T = random_targets(rng, 5, K)
    close(backprop.cross_entropy(np.zeros((5, K)), T), math.log(K))
    close(backprop.cross_entropy(np.full((5, K), -7.0), T), math.log(K))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("soft", (False, True), ids=("one-hot", "soft"))
def test_cross_entropy_and_grad_match_torch(seed, shape, soft):
    rng = np.random.default_rng(seed)
    A = 3 * rng.standard_normal(shape)
    T = random_targets(rng, *shape, soft=soft)
    At = leaf(A)
    loss = F.cross_entropy(At, const(T))  # probabilities as targets, mean over rows
    loss.backward()
    L = backprop.cross_entropy(A, T)
    assert isinstance(L, float)
    close(L, loss.item())
    close(backprop.cross_entropy_grad(A, T), At.grad.numpy())


def test_cross_entropy_mismatched_shapes_name_both_arguments():
    with pytest.raises(ValueError, match=r"\bA\b.*\bT\b"):
        backprop.cross_entropy(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\bA\b.*\bT\b"):
        backprop.cross_entropy_grad(np.zeros((4, 3)), np.zeros((5, 3)))


@pytest.mark.parametrize("func", (backprop.cross_entropy, backprop.cross_entropy_grad))
def test_cross_entropy_rejects_non_2d_inputs(func):
    with pytest.raises(ValueError, match=r"^A must be 2-D"):
        func(np.zeros(3), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"^T must be 2-D"):
        func(np.zeros((1, 3)), np.zeros(3))
    with pytest.raises(TypeError, match=r"^A must hold real numbers"):
        func(np.array([["a", "b"]]), np.zeros((1, 2)))


# -- affine and relu --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("N, D, K", ((1, 1, 1), (5, 3, 4), (12, 7, 2)))
def test_affine_and_affine_backward_match_torch(seed, N, D, K):
    rng = np.random.default_rng(seed)
    X, W, b = rng.standard_normal((N, D)), rng.standard_normal((D, K)), rng.standard_normal(K)
    dA = rng.standard_normal((N, K))
    Xt, Wt, bt = leaf(X), leaf(W), leaf(b)
    At = F.linear(Xt, Wt.T, bt)
    (At * const(dA)).sum().backward()  # so that dL/dA == dA
    close(backprop.affine(X, W, b), At.detach().numpy())
    dX, dW, db = backprop.affine_backward(dA, X, W)
    close(dX, Xt.grad.numpy())
    close(dW, Wt.grad.numpy())
    close(db, bt.grad.numpy())


def test_affine_rejects_bad_shapes_naming_the_argument():
    X, W, b = np.zeros((4, 3)), np.zeros((3, 2)), np.zeros(2)
    with pytest.raises(ValueError, match=r"^X must be 2-D"):
        backprop.affine(np.zeros(3), W, b)
    with pytest.raises(ValueError, match=r"^W must be 2-D"):
        backprop.affine(X, np.zeros(3), b)
    with pytest.raises(ValueError, match=r"X.*columns.*W.*rows"):
        backprop.affine(X, np.zeros((2, 2)), b)
    with pytest.raises(ValueError, match=r"^b must have shape \(2,\)"):
        backprop.affine(X, W, np.zeros(3))
    with pytest.raises(ValueError, match=r"^b must be 1-D"):
        backprop.affine(X, W, np.zeros((1, 2)))


def test_affine_backward_rejects_wrong_da_shape():
    with pytest.raises(ValueError, match=r"^dA must have shape \(4, 2\)"):
        backprop.affine_backward(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((3, 2)))


def test_affine_backward_rejects_x_and_w_that_do_not_fit():
    # X has 4 columns but W has 5 rows: no affine layer has this pair; dW would come out (4, 3)
    # for a (5, 3) W if this passed silently.
    with pytest.raises(ValueError, match=r"\bX\b|\bW\b"):
        backprop.affine_backward(np.ones((2, 3)), np.ones((2, 4)), np.ones((5, 3)))


def test_affine_backward_accepts_array_likes_like_affine():
    # affine takes lists (np.asarray); its backward should too.
    dX, dW, db = backprop.affine_backward([[1.0, 2.0]], [[3.0]], [[4.0, 5.0]])
    close(dX, [[14.0]])
    close(dW, [[3.0, 6.0]])
    close(db, [1.0, 2.0])


def test_relu_backward_accepts_array_likes_like_relu():
    close(backprop.relu_backward([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]), [0.0, 2.0, 3.0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", ((1,), (3, 4), (2, 3, 5)))
def test_relu_and_relu_backward_match_torch(seed, shape):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal(shape)  # exact zeros (the kink) have probability 0
    dZ = rng.standard_normal(shape)
    At = leaf(A)
    Zt = torch.relu(At)
    (Zt * const(dZ)).sum().backward()
    Z = backprop.relu(A)
    close(Z, Zt.detach().numpy(), atol=0)
    close(backprop.relu_backward(dZ, Z), At.grad.numpy(), atol=0)


def test_relu_hand_case():
    np.testing.assert_array_equal(backprop.relu(np.array([[-2.0, 0.0, 3.5]])), [[0.0, 0.0, 3.5]])
    np.testing.assert_array_equal(backprop.relu_backward(np.array([[5.0, 6.0, 7.0]]), np.array([[0.0, 0.0, 3.5]])), [[0, 0, 7.0]])


def test_relu_backward_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\bdZ\b.*\bZ\b"):
        backprop.relu_backward(np.zeros((2, 3)), np.zeros((3, 2)))


# -- weight decay and parameters --------------------------------------------------------------------


def test_decay_hand_case():
    W1 = np.array([[1.0, 2.0], [3.0, 4.0]])  # ||W1||^2 = 30
    W2 = np.array([[0.5], [-1.5]])  # ||W2||^2 = 2.5
    close(backprop.decay((W1, W2), 2.0), 32.5)
    close(backprop.decay([W1], 0.1), 1.5)
    assert backprop.decay((W1, W2), 0.0) == 0.0


def test_decay_rejects_negative_lam():
    with pytest.raises(ValueError, match="lam"):
        backprop.decay([np.ones((2, 2))], -1e-3)


def test_decay_rejects_nan_lam():
    # "lam must be >= 0": nan is not, and would turn every loss into nan.
    with pytest.raises(ValueError, match="lam"):
        backprop.decay([np.ones((2, 2))], float("nan"))


def test_init_params_shapes_zero_biases_and_scale():
    params = backprop.init_params(30, 40, 5, np.random.default_rng(0), scale=0.5)
    assert {k: v.shape for k, v in params.items()} == {"W1": (30, 40), "b1": (40,), "W2": (40, 5), "b2": (5,)}
    assert not params["b1"].any() and not params["b2"].any()
    # 1200 standard normals times 0.5: the sample std is within ~5% of 0.5.
    assert 0.45 < params["W1"].std() < 0.55
    again = backprop.init_params(30, 40, 5, np.random.default_rng(0), scale=0.5)
    for k in params:
        np.testing.assert_array_equal(params[k], again[k])


@pytest.mark.parametrize("name, dims", (("D", (0, 2, 2)), ("H", (2, -1, 2)), ("K", (2, 2, 2.5))))
def test_init_params_rejects_bad_sizes(name, dims):
    with pytest.raises(ValueError, match=rf"^{name} must be a positive integer"):
        backprop.init_params(*dims, np.random.default_rng(0))


def test_init_params_accepts_integral_floats_it_validates():
    # The check accepts 2.0 ("int(value) == value"); the result must then be usable, not a TypeError.
    params = backprop.init_params(2.0, 3.0, 4.0, np.random.default_rng(0))
    assert params["W1"].shape == (2, 3) and params["b2"].shape == (4,)


def test_check_params_returns_sizes():
    params = random_params(np.random.default_rng(0), 3, 5, 2)
    assert backprop.check_params(params) == (3, 5, 2)


@pytest.mark.parametrize("missing", backprop.PARAM_NAMES)
def test_check_params_missing_key_names_it(missing):
    params = random_params(np.random.default_rng(0), 3, 5, 2)
    del params[missing]
    with pytest.raises(KeyError, match=rf"params is missing \['{missing}'\]"):
        backprop.check_params(params)


@pytest.mark.parametrize(
    "name, shape", (("b1", (4,)), ("b1", (1, 5)), ("W2", (4, 2)), ("b2", (3,)), ("b2", ()))
)
def test_check_params_wrong_shape_names_the_parameter(name, shape):
    params = random_params(np.random.default_rng(0), 3, 5, 2)
    params[name] = np.zeros(shape)
    with pytest.raises(ValueError, match=rf"^{name} must have shape"):
        backprop.check_params(params)


def test_check_params_rejects_1d_weights():
    params = random_params(np.random.default_rng(0), 3, 5, 2)
    params["W1"] = np.zeros(3)
    with pytest.raises(ValueError, match="W1"):
        backprop.check_params(params)


# -- the two-layer network --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_intermediates_match_torch(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, 3))
    params = random_params(rng, 3, 4, 5)
    P = {k: const(v) for k, v in params.items()}
    A1 = const(X) @ P["W1"] + P["b1"]
    A2 = torch.relu(A1) @ P["W2"] + P["b2"]
    cache = backprop.forward(X, params)
    close(cache["A1"], A1.numpy())
    close(cache["Z"], torch.relu(A1).numpy())
    close(cache["A2"], A2.numpy())
    close(cache["Y"], torch.softmax(A2, dim=1).numpy())


def test_forward_rejects_x_with_wrong_columns():
    params = random_params(np.random.default_rng(0), 3, 4, 2)
    with pytest.raises(ValueError, match=r"^X must have 3 columns"):
        backprop.forward(np.zeros((5, 4)), params)
    with pytest.raises(ValueError, match=r"^X must be 2-D"):
        backprop.forward(np.zeros(3), params)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("N, D, H, K", NET_SHAPES)
@pytest.mark.parametrize("lam", (0.0, 1e-3, 0.7))
def test_loss_and_grads_match_torch_autograd(seed, N, D, H, K, lam):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    T = random_targets(rng, N, K)
    params = random_params(rng, D, H, K)
    before = {k: v.copy() for k, v in params.items()}
    L, grads = backprop.loss_and_grads(X, T, params, lam)
    reference = torch_two_layer(X, T, params, lam)
    L_torch, grads_torch = reference.loss, reference.grads
    close(L, L_torch)
    assert set(grads) == set(backprop.PARAM_NAMES)
    for k in backprop.PARAM_NAMES:
        assert grads[k].shape == params[k].shape, k
        close(grads[k], grads_torch[k])
        np.testing.assert_array_equal(params[k], before[k])  # the parameters are not touched


def test_loss_includes_weight_decay_of_both_weight_matrices():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((7, 3))
    T = random_targets(rng, 7, 4)
    params = random_params(rng, 3, 6, 4)
    lam = 0.37
    L0, _ = backprop.loss_and_grads(X, T, params, 0.0)
    L, _ = backprop.loss_and_grads(X, T, params, lam)
    W1 = torch.tensor(params["W1"])
    W2 = torch.tensor(params["W2"])
    expected_decay = (lam / 2) * (torch.sum(W1**2) + torch.sum(W2**2)).item()
    close(L - L0, expected_decay, rtol=1e-9)
    close(L, torch_two_layer(X, T, params, lam).loss)


def test_loss_and_grads_with_soft_targets_match_torch():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((10, 4))
    T = random_targets(rng, 10, 3, soft=True)
    params = random_params(rng, 4, 5, 3)
    L, grads = backprop.loss_and_grads(X, T, params, 0.1)
    reference = torch_two_layer(X, T, params, 0.1)
    L_torch, grads_torch = reference.loss, reference.grads
    close(L, L_torch)
    for k in backprop.PARAM_NAMES:
        close(grads[k], grads_torch[k])


def test_loss_and_grads_bad_input():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    params = random_params(rng, 3, 4, 2)
    T = np.eye(2)[[0, 1, 0, 1, 1]]
    with pytest.raises(ValueError, match=r"\bT\b"):
        backprop.loss_and_grads(X, T[:4], params, 0.0)
    with pytest.raises(ValueError, match=r"\bT\b"):
        backprop.loss_and_grads(X, np.eye(3)[[0, 1, 2, 0, 1]], params, 0.0)
    with pytest.raises(ValueError, match="lam"):
        backprop.loss_and_grads(X, T, params, -0.1)
    del params["b2"]
    with pytest.raises(KeyError, match="b2"):
        backprop.loss_and_grads(X, T, params, 0.0)


def test_gd_step_moves_against_the_gradient_and_leaves_params_alone():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 3))
    T = random_targets(rng, 12, 3)
    params = random_params(rng, 3, 5, 3)
    before = {k: v.copy() for k, v in params.items()}
    L, grads = backprop.loss_and_grads(X, T, params, 1e-2)
    lr = 1e-3
    new = backprop.gd_step(params, grads, lr)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
        assert new[k] is not params[k]
        close(new[k], before[k] - lr * grads[k])
    # A small step against the gradient lowers the loss (first order: by about lr * ||g||^2).
    L_new = torch_two_layer(X, T, new, 1e-2).loss
    gnorm2 = sum(float(np.sum(g**2)) for g in grads.values())
    assert L_new < L
    assert L - L_new == pytest.approx(lr * gnorm2, rel=0.05)


@pytest.mark.parametrize("lr", (0.0, -0.5, float("nan")))
def test_gd_step_rejects_non_positive_lr(lr):
    params = random_params(np.random.default_rng(0), 2, 2, 2)
    with pytest.raises(ValueError, match="^lr must be positive"):
        backprop.gd_step(params, params, lr)


def test_gd_step_rejects_missing_or_misshapen_grads():
    params = random_params(np.random.default_rng(0), 2, 3, 2)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    del grads["W2"]
    with pytest.raises(KeyError, match=r"grads.*'W2'"):
        backprop.gd_step(params, grads, 0.1)
    grads["W2"] = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"grads\['W2'\]"):
        backprop.gd_step(params, grads, 0.1)


def test_predict_and_accuracy_hand_case():
    # Identity layers: the class is the larger of relu(x_0), relu(x_1).
    params = {"W1": np.eye(2), "b1": np.zeros(2), "W2": np.eye(2), "b2": np.array([0.0, 0.0])}
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 3.0], [5.0, -1.0]])
    np.testing.assert_array_equal(backprop.predict(X, params), [0, 1, 1, 0])
    assert backprop.accuracy(X, [0, 1, 0, 0], params) == 0.75
    assert backprop.accuracy(X, np.array([1, 0, 0, 1]), params) == 0.0


def test_accuracy_rejects_labels_of_the_wrong_shape():
    # (N, 1) labels against (N,) predictions broadcast to an (N, N) comparison: a wrong number.
    params = {"W1": np.eye(2), "b1": np.zeros(2), "W2": np.eye(2), "b2": np.zeros(2)}
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="labels"):
        backprop.accuracy(X, np.array([[0], [1]]), params)


# -- training ---------------------------------------------------------------------------------------


def test_train_learns_the_spiral():
    X, labels = spiral()
    steps, record_every = 2000, 10
    result = backprop.train(X, labels, hidden=100, lam=1e-3, lr=1.0, steps=steps, record_every=record_every)
    assert result.accuracy(X, labels) >= 0.95
    losses = np.array(result.losses)
    assert losses.shape == (steps // record_every,)
    assert np.all(np.isfinite(losses))
    # The init scale 0.01 makes every activation ~0, so training starts near ln 3.
    assert losses[0] == pytest.approx(math.log(3), abs=0.01)
    # Full-batch steps with lr = 1 overshoot now and then, so compare averages over fifths of the
    # run, not neighbouring records: each fifth ends lower than the one before.
    fifths = losses.reshape(5, -1).mean(axis=1)
    assert np.all(np.diff(fifths) < 0), fifths
    assert fifths[-1] < 0.5 * fifths[0]
    assert losses[-1] < 0.5 * losses[0]


def test_train_bad_input():
    X, labels = spiral(n_per_class=5)
    with pytest.raises(ValueError, match="labels"):
        backprop.train(X, labels[:-1], steps=1)
    with pytest.raises(ValueError, match="labels"):
        backprop.train(X, labels.astype(float), steps=1)
    with pytest.raises(ValueError, match="labels"):
        backprop.train(X, labels - 1, steps=1)
    with pytest.raises(ValueError, match="steps"):
        backprop.train(X, labels, steps=-1)
    with pytest.raises(ValueError, match="lam"):
        backprop.train(X, labels, lam=-1.0, steps=1)
    with pytest.raises(ValueError, match="lr"):
        backprop.train(X, labels, lr=0.0, steps=1)
    with pytest.raises(ValueError, match="X"):
        backprop.train(X[:, 0], labels, steps=1)


# -- activation functions h and the linear classifier ------------------------------------------------


@pytest.mark.parametrize("h", backprop.ACTIVATIONS)
@pytest.mark.parametrize("seed", SEEDS)
def test_loss_and_grads_with_every_activation_match_torch_autograd(h, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((9, 3))
    T = random_targets(rng, 9, 4)
    params = random_params(rng, 3, 6, 4)
    L, grads = backprop.loss_and_grads(X, T, params, 0.2, h=h)
    reference = torch_two_layer(X, T, params, 0.2, h=h)
    close(L, reference.loss)
    for k in backprop.PARAM_NAMES:
        close(grads[k], reference.grads[k])


@pytest.mark.parametrize("h", backprop.ACTIVATIONS)
def test_each_activation_derivative_from_its_output_matches_autograd(h):
    a = torch.linspace(-6, 6, 61, dtype=torch.float64, requires_grad=True)
    getattr(torch, h)(a).sum().backward()
    act = backprop.activation(h)
    Z = act.h(a.detach().numpy())
    close(act.backward(np.ones_like(Z), Z)[a.detach().numpy() != 0], a.grad.numpy()[a.detach().numpy() != 0])


def test_the_sigmoid_activation_uses_the_function_it_is_given():
    calls = []

    def mine(a):
        calls.append(np.shape(a))
        return scipy.special.expit(a)

    rng = np.random.default_rng(3)
    X, T, params = rng.standard_normal((5, 2)), random_targets(rng, 5, 3), random_params(rng, 2, 4, 3)
    L, _ = backprop.loss_and_grads(X, T, params, 0.0, h=backprop.activation("sigmoid", sigmoid_fn=mine))
    assert calls == [(5, 4)]
    close(L, torch_two_layer(X, T, params, 0.0, h="sigmoid").loss)


def test_an_unknown_activation_is_refused_by_name():
    with pytest.raises(ValueError, match=r"h must be one of \('relu', 'tanh', 'sigmoid'\).*'softplus'"):
        backprop.activation("softplus")


def test_train_records_its_activation_and_predicts_with_it():
    X, labels = spiral(n_per_class=20, seed=1)
    result = backprop.train(X, labels, hidden=8, steps=30, h="tanh")
    assert result.h.name == "tanh"
    np.testing.assert_array_equal(result.predict(X), backprop.predict(X, result.params, "tanh"))
    assert not np.array_equal(backprop.forward(X, result.params, "tanh")["Z"],
                              backprop.forward(X, result.params, "relu")["Z"])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lam", (0.0, 0.3))
def test_linear_loss_and_grads_match_torch_autograd(seed, lam):
    from coursekit.grading.oracles import torch_linear

    rng = np.random.default_rng(seed)
    X, T = rng.standard_normal((11, 4)), random_targets(rng, 11, 3)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    L, dW, db = backprop.linear_loss_and_grads(X, T, W, b, lam)
    L_t, dW_t, db_t = torch_linear(X, T, W, b, lam)
    close(L, L_t)
    close(dW, dW_t)
    close(db, db_t)


def test_train_linear_reaches_the_minimum_of_its_convex_loss():
    # the loss is convex: its minimiser is found independently by scipy's L-BFGS
    import scipy.optimize

    X, labels = spiral(n_per_class=50, seed=2)
    T = backprop.one_hot(labels, 3)
    result = backprop.train_linear(X, labels, lam=1e-2, lr=1.0, steps=3000)

    def objective(theta):
        W, b = theta[:6].reshape(2, 3), theta[6:]
        A = X @ W + b
        return -(T * scipy.special.log_softmax(A, axis=1)).sum() / len(X) + 0.5e-2 * (W ** 2).sum()

    best = scipy.optimize.minimize(objective, np.zeros(9), method="L-BFGS-B", options={"gtol": 1e-12})
    close(result.losses[-1], best.fun, rtol=1e-7)
    assert np.all(np.diff(result.losses) <= 1e-12)  # lr = 1 is below 2 / curvature here: the loss never rises
    np.testing.assert_array_equal(backprop.predict_linear(X, result.params),
                                  (X @ result.params["W"] + result.params["b"]).argmax(axis=1))


def test_train_linear_refuses_bad_arguments_by_name():
    X, labels = spiral(n_per_class=5)
    with pytest.raises(ValueError, match=r"labels must have shape \(15,\)"):
        backprop.train_linear(X, labels[:-1])
    with pytest.raises(ValueError, match="lr must be positive; got 0"):
        backprop.train_linear(X, labels, lr=0)
