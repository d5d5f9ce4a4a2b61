"""Numpy reference pieces of the lecture's "neural networks" slides (stage 01).

Conventions (the lecture's): samples are rows. ``X`` is ``(N, D)`` inputs, ``A`` is ``(N, K)`` class
activations, ``T`` is ``(N, K)`` one-hot targets, ``W`` is ``(D, K)`` and ``b`` is ``(K,)`` so that
``A = X @ W + b``. Every function checks its inputs and names the argument that is wrong.

The two-layer network of the slides::

    A1 = X W1 + b1,  Z = relu(A1),  A2 = Z W2 + b2,  Y = softmax(A2)
    L  = -(1/N) sum_nk T_nk ln Y_nk + (lambda/2)(||W1||^2 + ||W2||^2)

and its backward pass, written in the slides' order, is :meth:`TwoLayerNet.loss_and_grads`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

STAGE = 1  # the stage whose exercises write these pieces (coursekit.grading switches them off there)

PARAM_NAMES = ("W1", "b1", "W2", "b2")


# -- argument checks --------------------------------------------------------------------------------


def _float_array(value, name: str, ndim: int | None = None) -> np.ndarray:
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or value != int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} and {b_name} must have the same shape; got {a.shape} and {b.shape}")


# -- logistic regression ----------------------------------------------------------------------------


def sigmoid(a) -> np.ndarray:
    """``1 / (1 + exp(-a))`` elementwise, without overflow for large ``|a|``."""
    a = _float_array(a, "a")
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])  # a < 0 here, so exp(a) is in (0, 1)
    out[~pos] = e / (1.0 + e)
    return out


def log_softmax(A, axis: int = -1) -> np.ndarray:
    """``ln softmax(A)`` along ``axis``, via the log-sum-exp with the maximum subtracted."""
    A = _float_array(A, "A")
    shifted = A - A.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(A, axis: int = -1) -> np.ndarray:
    """``exp(a_k) / sum_j exp(a_j)`` along ``axis`` (rows by default); shift-invariant and stable."""
    A = _float_array(A, "A")
    E = np.exp(A - A.max(axis=axis, keepdims=True))
    return E / E.sum(axis=axis, keepdims=True)


def one_hot(labels, num_classes: int) -> np.ndarray:
    """``(N,)`` integer labels in ``[0, num_classes)`` -> ``(N, num_classes)`` float64 targets."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array; got shape {labels.shape}, dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got values from {labels.min()} to {labels.max()}"
        )
    T = np.zeros((labels.size, num_classes))
    T[np.arange(labels.size), labels] = 1.0
    return T


def cross_entropy(A, T) -> float:
    """Average cross-entropy ``-(1/N) sum_nk T_nk ln softmax(A)_nk`` from activations ``A``.

    Working from activations through :func:`log_softmax` never takes ``log(0)``.
    """
    A = _float_array(A, "A", ndim=2)
    T = _float_array(T, "T", ndim=2)
    _same_shape(A, "A", T, "T")
    return float(-(T * log_softmax(A)).sum() / A.shape[0])


def cross_entropy_grad(A, T) -> np.ndarray:
    """``dL/dA = (softmax(A) - T) / N`` for :func:`cross_entropy`."""
    A = _float_array(A, "A", ndim=2)
    T = _float_array(T, "T", ndim=2)
    _same_shape(A, "A", T, "T")
    return (softmax(A) - T) / A.shape[0]


# -- layers -----------------------------------------------------------------------------------------


def affine(X, W, b) -> np.ndarray:
    """``X @ W + b``: ``X (N, D)``, ``W (D, K)``, ``b (K,)`` -> ``(N, K)``."""
    X = _float_array(X, "X", ndim=2)
    W = _float_array(W, "W", ndim=2)
    b = _float_array(b, "b", ndim=1)
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X is {X.shape} and W is {W.shape}: X's columns must equal W's rows")
    if b.shape[0] != W.shape[1]:
        raise ValueError(f"b must have shape ({W.shape[1]},) to match W {W.shape}; got {b.shape}")
    return X @ W + b


def affine_backward(dA, X, W) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dX, dW, db)`` of ``A = X @ W + b`` given ``dA (N, K)``."""
    dA = _float_array(dA, "dA", ndim=2)
    X = _float_array(X, "X", ndim=2)
    W = _float_array(W, "W", ndim=2)
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X is {X.shape} and W is {W.shape}: X's columns must equal W's rows")
    if dA.shape != (X.shape[0], W.shape[1]):
        raise ValueError(f"dA must have shape {(X.shape[0], W.shape[1])}; got {dA.shape}")
    return dA @ W.T, X.T @ dA, dA.sum(axis=0)


def relu(A) -> np.ndarray:
    """``max(0, A)`` elementwise."""
    return np.maximum(0.0, _float_array(A, "A"))


def relu_backward(dZ, Z) -> np.ndarray:
    """``dA = dZ * (Z > 0)`` for ``Z = relu(A)`` (the slides' relu node)."""
    dZ = _float_array(dZ, "dZ")
    Z = _float_array(Z, "Z")
    _same_shape(dZ, "dZ", Z, "Z")
    return dZ * (Z > 0)


@dataclass(frozen=True)
class Activation:
    """An activation function ``h`` of the hidden layer and its derivative written with its output:
    ``h'(a) = dh(h(a))``, so that the backward pass needs only the cached ``Z = h(A)``."""

    name: str
    h: Callable[[np.ndarray], np.ndarray]
    dh: Callable[[np.ndarray], np.ndarray]

    def backward(self, dZ, Z) -> np.ndarray:
        """``dA = dZ * h'(A)`` for ``Z = h(A)``."""
        dZ = _float_array(dZ, "dZ")
        Z = _float_array(Z, "Z")
        _same_shape(dZ, "dZ", Z, "Z")
        return dZ * self.dh(Z)


def activation(h="relu", *, sigmoid_fn: Callable | None = None) -> Activation:
    """The lecture's activation functions by name: ``"relu"`` ``max(0, a)``, ``"tanh"`` and ``"sigmoid"``
    (``sigmoid_fn``, e.g. a student's own, replaces :func:`sigmoid`); an :class:`Activation` is returned
    as it is."""
    if isinstance(h, Activation):
        return h
    if h == "relu":
        return Activation("relu", relu, lambda Z: (Z > 0).astype(Z.dtype))
    if h == "tanh":
        return Activation("tanh", np.tanh, lambda Z: 1.0 - Z * Z)
    if h == "sigmoid":
        return Activation("sigmoid", sigmoid if sigmoid_fn is None else sigmoid_fn, lambda Z: Z * (1.0 - Z))
    raise ValueError(f"h must be one of {ACTIVATIONS} or an Activation; got {h!r}")


ACTIVATIONS = ("relu", "tanh", "sigmoid")


def decay(weights, lam: float) -> float:
    """Weight decay ``(lam/2) sum_i ||W_i||_F^2`` over a sequence of weight matrices."""
    if not lam >= 0:  # also refuses nan
        raise ValueError(f"lam must be >= 0; got {lam}")
    return float(0.5 * lam * sum(np.sum(np.square(_float_array(W, "W"))) for W in weights))


# -- the two-layer network --------------------------------------------------------------------------


def init_params(D: int, H: int, K: int, rng: np.random.Generator, scale: float = 0.01) -> dict:
    """Parameters of the two-layer net: ``W1 (D,H)``, ``b1 (H,)``, ``W2 (H,K)``, ``b2 (K,)``."""
    D, H, K = (_positive_int(value, name) for value, name in ((D, "D"), (H, "H"), (K, "K")))
    return {
        "W1": scale * rng.standard_normal((D, H)),
        "b1": np.zeros(H),
        "W2": scale * rng.standard_normal((H, K)),
        "b2": np.zeros(K),
    }


def check_params(params: dict) -> tuple[int, int, int]:
    """Validate a parameter dict; return ``(D, H, K)``."""
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise KeyError(f"params is missing {missing}; it needs {list(PARAM_NAMES)}")
    W1, b1, W2, b2 = (np.asarray(params[k]) for k in PARAM_NAMES)
    if W1.ndim != 2 or W2.ndim != 2:
        raise ValueError(f"W1 and W2 must be 2-D; got shapes {W1.shape} and {W2.shape}")
    D, H = W1.shape
    K = W2.shape[1]
    expected = {"b1": (H,), "W2": (H, K), "b2": (K,)}
    for name, arr in (("b1", b1), ("W2", W2), ("b2", b2)):
        if arr.shape != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]} to match W1 {W1.shape}; got {arr.shape}")
    return D, H, K


def forward(X, params: dict, h="relu") -> dict:
    """The forward pass with hidden activation ``h`` (see :func:`activation`); returns every
    intermediate the backward pass needs (``A1, Z, A2, Y``)."""
    D, _, _ = check_params(params)
    X = _float_array(X, "X", ndim=2)
    if X.shape[1] != D:
        raise ValueError(f"X must have {D} columns to match W1; got shape {X.shape}")
    A1 = affine(X, params["W1"], params["b1"])
    Z = activation(h).h(A1)
    A2 = affine(Z, params["W2"], params["b2"])
    return {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": softmax(A2)}


def loss_and_grads(X, T, params: dict, lam: float, h="relu") -> tuple[float, dict]:
    """Loss of the two-layer net and the gradients of every parameter, in the slides' order."""
    h = activation(h)
    cache = forward(X, params, h)
    T = _float_array(T, "T", ndim=2)
    _same_shape(cache["A2"], "A2 = forward(X)", T, "T")
    N = T.shape[0]
    W1, W2 = params["W1"], params["W2"]
    L = cross_entropy(cache["A2"], T) + decay((W1, W2), lam)

    dD = dR = 1.0
    dW1 = dR * lam * W1
    dW2 = dR * lam * W2
    dA2 = dD * (cache["Y"] - T) / N
    dW2 += cache["Z"].T @ dA2
    db2 = dA2.sum(axis=0)
    dZ = dA2 @ W2.T
    dA1 = h.backward(dZ, cache["Z"])
    dW1 += cache["X"].T @ dA1
    db1 = dA1.sum(axis=0)
    return L, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def gd_step(params: dict, grads: dict, lr: float) -> dict:
    """One gradient-descent step ``theta - lr * dtheta``; returns new arrays, ``params`` is untouched."""
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr}")
    for k in params:
        if k not in grads:
            raise KeyError(f"grads has no entry for parameter {k!r}")
        if np.shape(grads[k]) != np.shape(params[k]):
            raise ValueError(f"grads[{k!r}] has shape {np.shape(grads[k])}; params[{k!r}] has {np.shape(params[k])}")
    return {k: params[k] - lr * grads[k] for k in params}


def predict(X, params: dict, h="relu") -> np.ndarray:
    """Predicted class of every row of ``X``."""
    return forward(X, params, h)["A2"].argmax(axis=1)


def accuracy(X, labels, params: dict, h="relu") -> float:
    """Fraction of the rows of ``X`` whose predicted class is their label."""
    predicted = predict(X, params, h)
    labels = np.asarray(labels)
    if labels.shape != predicted.shape:
        raise ValueError(f"labels must have shape {predicted.shape} to match X; got {labels.shape}")
    return float(np.mean(predicted == labels))


@dataclass
class TrainResult:
    params: dict
    losses: list[float] = field(default_factory=list)
    h: Activation | str = "relu"

    def accuracy(self, X, labels) -> float:
        return accuracy(X, labels, self.params, self.h)

    def predict(self, X) -> np.ndarray:
        return predict(X, self.params, self.h)


def train(
    X,
    labels,
    *,
    hidden: int = 100,
    lam: float = 1e-3,
    lr: float = 1.0,
    steps: int = 5000,
    seed: int = 0,
    record_every: int = 10,
    h="relu",
) -> TrainResult:
    """Full-batch gradient descent on the two-layer net with hidden activation ``h``; the loss is
    recorded every ``record_every`` steps."""
    X = _float_array(X, "X", ndim=2)
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"labels must have shape ({X.shape[0]},) to match X; got {labels.shape}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    record_every = _positive_int(record_every, "record_every")
    K = int(labels.max()) + 1
    T = one_hot(labels, K)
    params = init_params(X.shape[1], hidden, K, np.random.default_rng(seed))
    h = activation(h)
    result = TrainResult(params, h=h)
    for step in range(int(steps)):
        L, grads = loss_and_grads(X, T, result.params, lam, h)
        if step % record_every == 0:
            result.losses.append(L)
        result.params = gd_step(result.params, grads, lr)
    return result


# -- the linear classifier --------------------------------------------------------------------------


def linear_loss_and_grads(X, T, W, b, lam: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Multinomial logistic regression ``A = X W + b``: the loss ``cross_entropy(A, T) + (lam/2)||W||^2``
    and its gradients ``(dW, db)``."""
    A = affine(X, W, b)
    T = _float_array(T, "T", ndim=2)
    _same_shape(A, "A = X W + b", T, "T")
    dA = cross_entropy_grad(A, T)
    W = np.asarray(W, dtype=np.float64)
    return cross_entropy(A, T) + decay((W,), lam), X.T @ dA + lam * W, dA.sum(axis=0)


def train_linear(X, labels, *, lam: float = 1e-3, lr: float = 1.0, steps: int = 1000) -> TrainResult:
    """Full-batch gradient descent on the linear classifier from zero weights; ``params`` holds
    ``W`` and ``b``, and the loss of every step is recorded."""
    X = _float_array(X, "X", ndim=2)
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"labels must have shape ({X.shape[0]},) to match X; got {labels.shape}")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr}")
    T = one_hot(labels, int(labels.max()) + 1)
    W, b = np.zeros((X.shape[1], T.shape[1])), np.zeros(T.shape[1])
    result = TrainResult({"W": W, "b": b}, h="linear")
    for _ in range(int(steps)):
        L, dW, db = linear_loss_and_grads(X, T, W, b, lam)
        result.losses.append(L)
        W, b = W - lr * dW, b - lr * db
    result.params = {"W": W, "b": b}
    return result


def predict_linear(X, params: dict) -> np.ndarray:
    """Predicted class of every row of ``X`` by the linear classifier ``params = {"W", "b"}``."""
    return affine(X, params["W"], params["b"]).argmax(axis=1)
