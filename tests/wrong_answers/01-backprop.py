"""Plausible wrong answers to the stage-01 exercises (DESIGN §4).

``WRONG[grade_id]`` maps a description of the mistake to the whole answer cell as a student
would submit it; each must make at least one of that exercise's test cells fail.
``DELEGATING[grade_id]`` is an answer that only calls a coursekit piece (the stage's own module or,
as for cross_entropy and backward here, another stage's engine); it must fail too.
"""

WRONG = {
    "sigmoid-impl": {
        "the textbook formula, which overflows for a = -1000": """
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-np.asarray(a, dtype=float)))
""",
        "exp(a) / (1 + exp(a)) everywhere, which overflows for a = 1000": """
def sigmoid(a):
    e = np.exp(np.asarray(a, dtype=float))
    return e / (1.0 + e)
""",
        "the sign of the exponent flipped (this is sigmoid(-a))": """
def sigmoid(a):
    a = np.asarray(a, dtype=float)
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
""",
    },
    "softmax-impl": {
        "no maximum subtracted, which overflows": """
def softmax(A):
    E = np.exp(np.asarray(A, dtype=float))
    return E / E.sum(axis=1, keepdims=True)
""",
        "normalised over columns (axis 0) instead of rows": """
def softmax(A):
    A = np.asarray(A, dtype=float)
    E = np.exp(A - A.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)
""",
        "normalised over the whole array": """
def softmax(A):
    A = np.asarray(A, dtype=float)
    E = np.exp(A - A.max())
    return E / E.sum()
""",
    },
    "cross-entropy-impl": {
        "summed over samples: the 1/N forgotten": """
def cross_entropy(A, T):
    A = np.asarray(A, dtype=float)
    m = A.max(axis=1, keepdims=True)
    log_Y = A - m - np.log(np.exp(A - m).sum(axis=1, keepdims=True))
    return float(-(T * log_Y).sum())
""",
        "log of the softmax output, which takes log(0)": """
def cross_entropy(A, T):
    return float(-(T * np.log(softmax(A))).sum() / np.shape(A)[0])
""",
        "averaged over all N*K entries instead of the N samples": """
def cross_entropy(A, T):
    A = np.asarray(A, dtype=float)
    m = A.max(axis=1, keepdims=True)
    log_Y = A - m - np.log(np.exp(A - m).sum(axis=1, keepdims=True))
    return float(-(T * log_Y).mean())
""",
    },
    "cross-entropy-grad-impl": {
        "the 1/N forgotten": """
def cross_entropy_grad(A, T):
    return softmax(A) - T
""",
        "the sign flipped: (T - Y) / N": """
def cross_entropy_grad(A, T):
    return (T - softmax(A)) / np.shape(A)[0]
""",
        "divided by K instead of N": """
def cross_entropy_grad(A, T):
    return (softmax(A) - T) / np.shape(A)[1]
""",
    },
    "forward-impl": {
        "weight decay without the 1/2": """
def forward(X, T, params, lam):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    A1 = X @ W1 + b1
    Z = np.maximum(0.0, A1)
    A2 = Z @ W2 + b2
    R = lam * (np.sum(W1 * W1) + np.sum(W2 * W2))
    return float(cross_entropy(A2, T) + R), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": softmax(A2)}
""",
        "no relu between the layers": """
def forward(X, T, params, lam):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    A1 = X @ W1 + b1
    Z = A1
    A2 = Z @ W2 + b2
    R = 0.5 * lam * (np.sum(W1 * W1) + np.sum(W2 * W2))
    return float(cross_entropy(A2, T) + R), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": softmax(A2)}
""",
        "the second bias forgotten": """
def forward(X, T, params, lam):
    W1, b1, W2 = params["W1"], params["b1"], params["W2"]
    A1 = X @ W1 + b1
    Z = np.maximum(0.0, A1)
    A2 = Z @ W2
    R = 0.5 * lam * (np.sum(W1 * W1) + np.sum(W2 * W2))
    return float(cross_entropy(A2, T) + R), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": softmax(A2)}
""",
    },
    "backward-impl": {
        "= instead of += : the decay gradient overwritten": """
def backward(cache, T, params, lam):
    X, Z, Y = cache["X"], cache["Z"], cache["Y"]
    W1, W2 = params["W1"], params["W2"]
    dW1 = lam * W1
    dW2 = lam * W2
    dA2 = (Y - T) / X.shape[0]
    dW2 = Z.T @ dA2
    db2 = dA2.sum(axis=0)
    dZ = dA2 @ W2.T
    dA1 = dZ * (Z > 0)
    dW1 = X.T @ dA1
    db1 = dA1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
""",
        "the 1/N of dA2 forgotten": """
def backward(cache, T, params, lam):
    X, Z, Y = cache["X"], cache["Z"], cache["Y"]
    W1, W2 = params["W1"], params["W2"]
    dW1 = lam * W1
    dW2 = lam * W2
    dA2 = Y - T
    dW2 += Z.T @ dA2
    db2 = dA2.sum(axis=0)
    dZ = dA2 @ W2.T
    dA1 = dZ * (Z > 0)
    dW1 += X.T @ dA1
    db1 = dA1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
""",
        "the relu mask forgotten": """
def backward(cache, T, params, lam):
    X, Z, Y = cache["X"], cache["Z"], cache["Y"]
    W1, W2 = params["W1"], params["W2"]
    dW1 = lam * W1
    dW2 = lam * W2
    dA2 = (Y - T) / X.shape[0]
    dW2 += Z.T @ dA2
    db2 = dA2.sum(axis=0)
    dA1 = dA2 @ W2.T
    dW1 += X.T @ dA1
    db1 = dA1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
""",
        "the decay term's gradient without lambda": """
def backward(cache, T, params, lam):
    X, Z, Y = cache["X"], cache["Z"], cache["Y"]
    W1, W2 = params["W1"], params["W2"]
    dW1 = W1.copy()
    dW2 = W2.copy()
    dA2 = (Y - T) / X.shape[0]
    dW2 += Z.T @ dA2
    db2 = dA2.sum(axis=0)
    dZ = dA2 @ W2.T
    dA1 = dZ * (Z > 0)
    dW1 += X.T @ dA1
    db1 = dA1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
""",
    },
    "gd-step-impl": {
        "gradient ascent: + instead of -": """
def gd_step(params, grads, lr):
    return {name: value + lr * grads[name] for name, value in params.items()}
""",
        "only the weights updated, biases left behind": """
def gd_step(params, grads, lr):
    return {name: (value - lr * grads[name] if name.startswith("W") else value)
            for name, value in params.items()}
""",
        "the learning rate forgotten": """
def gd_step(params, grads, lr):
    return {name: value - grads[name] for name, value in params.items()}
""",
    },
}

DELEGATING = {
    "sigmoid-impl": "from coursekit.nn import sigmoid",
    "softmax-impl": "import coursekit.nn\nsoftmax = coursekit.nn.softmax",
    "cross-entropy-impl": """
from coursekit import autodiff

def cross_entropy(A, T):
    return float(autodiff.entropy(A, T).value)
""",
    "cross-entropy-grad-impl": "from coursekit.nn import cross_entropy_grad",
    "forward-impl": """
import coursekit.nn

def forward(X, T, params, lam):
    cache = coursekit.nn.forward(X, params)
    D = coursekit.nn.cross_entropy(cache["A2"], T)
    return D + coursekit.nn.decay((params["W1"], params["W2"]), lam), cache
""",
    "backward-impl": """
from coursekit import autodiff

def backward(cache, T, params, lam):
    P = {k: autodiff.Param(v, k) for k, v in params.items()}
    L = autodiff.loss(autodiff.model(cache["X"], ((P["W1"], P["b1"]), (P["W2"], P["b2"]))), T, (P["W1"], P["W2"]), lam)
    autodiff.backward(L)
    return {k: p.grad for k, p in P.items()}
""",
    "gd-step-impl": "from coursekit.nn import gd_step",
}
