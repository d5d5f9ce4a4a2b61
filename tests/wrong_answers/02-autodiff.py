"""Plausible wrong answers to the stage-02 exercises (see tests/wrong_answers/01-backprop.py)."""

RELU = """
def relu(A):
    Z = np.maximum(0.0, value(A))

    def back(dZ, dA):
{body}

    return node(Z, back, (A,))
"""

AFFINE = """
def affine(X, U):
    W, b = U
    x, w = value(X), value(W)
    A = x @ w + value(b)

    def back(dA, dX, dU):
        dW, db = dU
{body}

    return node(A, back, (X, U))
"""

ENTROPY = """
def entropy(A, T):
    a, t = value(A), value(T)
    log_Y = a - scipy.special.logsumexp(a, axis=1, keepdims=True)
    Y = np.exp(log_Y)
    N = a.shape[0]
    D = -(t * log_Y).sum() / N

    def back(dD, dA, dT):
{body}

    return node(D, back, (A, T))
"""

DECAY = """
def decay(W, lam):
    W = tuple(W)
    ws = [value(w) for w in W]
    R = 0.5 * lam * sum(float(np.sum(w * w)) for w in ws)

    def back(dR, dW):
{body}

    return node(R, back, (W,))
"""

ADD = """
def add(X):
    X = tuple(X)
    S = sum(value(x) for x in X)

    def back(dS, dX):
{body}

    return node(S, back, (X,))
"""

WRONG = {
    "relu-back": {
        "= instead of +=: rebinds the name, contributes nothing": RELU.format(body="        dA = dZ * (Z > 0)"),
        "overwrites an earlier contribution": RELU.format(body="        dA.value = dZ * (Z > 0)"),
        "masks with the upstream gradient instead of the output": RELU.format(body="        dA += dZ * (dZ > 0)"),
    },
    "affine-back": {
        "dW without the transpose of X": AFFINE.format(
            body="        dW += x @ dA\n        db += dA.sum(axis=0)\n        dX += dA @ w.T"),
        "db summed over the wrong axis": AFFINE.format(
            body="        dW += x.T @ dA\n        db += dA.sum(axis=1)\n        dX += dA @ w.T"),
        "dX with W instead of its transpose": AFFINE.format(
            body="        dW += x.T @ dA\n        db += dA.sum(axis=0)\n        dX += dA @ w"),
        "dX forgotten": AFFINE.format(body="        dW += x.T @ dA\n        db += dA.sum(axis=0)"),
    },
    "entropy-back": {
        "the upstream gradient dD ignored": ENTROPY.format(body="        dA += (Y - t) / N"),
        "the 1/N forgotten": ENTROPY.format(body="        dA += dD * (Y - t)"),
        "the sign flipped": ENTROPY.format(body="        dA += dD * (t - Y) / N"),
        "overwrites an earlier contribution": ENTROPY.format(body="        dA.value = dD * (Y - t) / N"),
    },
    "decay-back": {
        "lambda forgotten": DECAY.format(body="        for w, dw in zip(ws, dW):\n            dw += dR * w"),
        "lambda/2 as in the forward pass": DECAY.format(body="        for w, dw in zip(ws, dW):\n            dw += dR * lam / 2 * w"),
        "only the first weight": DECAY.format(body="        dW[0] += dR * lam * ws[0]"),
        "overwrites an earlier contribution": DECAY.format(
            body="        for w, dw in zip(ws, dW):\n            dw.value = dR * lam * w"),
    },
    "add-back": {
        "only the first input receives the gradient": ADD.format(body="        dX[0] += dS"),
        "the gradient split between the inputs": ADD.format(body="        for dx in dX:\n            dx += dS / len(dX)"),
        "= instead of +=": ADD.format(body="        for dx in dX:\n            dx = dS"),
    },
    "loss-block": {
        "back in forward order": """
def loss(A, T, W, lam):
    D = entropy(A, T)
    R = decay(W, lam)
    L = add((D, R))

    def back():
        D.back()
        R.back()
        L.back()

    return block(L, (A, T, W), back)
""",
        "the decay node's back forgotten": """
def loss(A, T, W, lam):
    D = entropy(A, T)
    R = decay(W, lam)
    L = add((D, R))

    def back():
        L.back()
        D.back()

    return block(L, (A, T, W), back)
""",
        "weight decay left out of the loss": """
def loss(A, T, W, lam):
    D = entropy(A, T)

    def back():
        D.back()

    return block(D, (A, T, W), back)
""",
    },
    "model-block": {
        "back in forward order": """
def model(X, U):
    U1, U2 = U
    A1 = affine(X, U1)
    Z = relu(A1)
    A2 = affine(Z, U2)

    def back():
        A1.back()
        Z.back()
        A2.back()

    return block(A2, (X, U), back)
""",
        "relu's back forgotten": """
def model(X, U):
    U1, U2 = U
    A1 = affine(X, U1)
    Z = relu(A1)
    A2 = affine(Z, U2)

    def back():
        A2.back()
        A1.back()

    return block(A2, (X, U), back)
""",
        "no relu between the layers": """
def model(X, U):
    U1, U2 = U
    A1 = affine(X, U1)
    A2 = affine(A1, U2)

    def back():
        A2.back()
        A1.back()

    return block(A2, (X, U), back)
""",
    },
}

DELEGATING = {
    "relu-back": "from coursekit.autodiff import relu",
    "affine-back": "from coursekit.autodiff import affine",
    "entropy-back": "from coursekit.autodiff import entropy",
    "decay-back": "from coursekit.autodiff import decay",
    "add-back": "from coursekit.autodiff import add",
    "loss-block": "import coursekit.autodiff\nloss = coursekit.autodiff.loss",
    "model-block": """
from coursekit import autodiff

def model(X, U):
    return autodiff.model(X, U)
""",
}
