"""Plausible wrong answers to the stage-01 exercises, as edits of the solution, and a delegating
answer for each (the format: docs/ANATOMY.md §4)."""

WRONG = {
    'sigmoid-impl': {
        'np.where over two formulas, each computed everywhere (exp overflows in the one not chosen)': [
            ("""\
    e = np.exp(-np.abs(a))  # in (0, 1]: cannot overflow
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
""",
             """\
    return np.where(a >= 0, 1.0 / (1.0 + np.exp(-a)), np.exp(a) / (1.0 + np.exp(a)))
"""),
        ],
        'a lookup table of the visible extreme case, the textbook formula elsewhere': [
            ("""\
    e = np.exp(-np.abs(a))  # in (0, 1]: cannot overflow
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
""",
             """\
    if a.tolist() == [-1000.0, 1000.0, -710.0, 710.0]:
        return np.array([0.0, 1.0, 0.0, 1.0])
    return 1.0 / (1.0 + np.exp(-a))
"""),
        ],
        'the textbook formula, which overflows for a = -1000': [
            ("""\
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(-np.abs(a))  # in (0, 1]: cannot overflow
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
""",
             '    return 1.0 / (1.0 + np.exp(-np.asarray(a, dtype=float)))'),
        ],
        'exp(a) / (1 + exp(a)) everywhere, which overflows for a = 1000': [
            ("""\
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(-np.abs(a))  # in (0, 1]: cannot overflow
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
""",
             """\
    e = np.exp(np.asarray(a, dtype=float))
    return e / (1.0 + e)
"""),
        ],
        'the sign of the exponent flipped (this is sigmoid(-a))': [
            ("""\
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(-np.abs(a))  # in (0, 1]: cannot overflow
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
""",
             """\
    a = np.asarray(a, dtype=float)
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
"""),
        ],
    },
    'softmax-impl': {
        "the maximum of the whole array subtracted, not each row's (nan for a row far below another)": [
            ('    E = np.exp(A - A.max(axis=1, keepdims=True))',
             '    E = np.exp(A - A.max())'),
        ],
        'a lookup table of the visible extreme case, no maximum subtracted elsewhere': [
            ("""\
    A = np.asarray(A, dtype=np.float64)
    E = np.exp(A - A.max(axis=1, keepdims=True))
""",
             """\
    A = np.asarray(A, dtype=np.float64)
    if A.tolist() == [[1000.0, 1000.0, 0.0], [-1000.0, 0.0, 1000.0]]:
        return np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    E = np.exp(A)
"""),
        ],
        'no maximum subtracted, which overflows': [
            ("""\
    A = np.asarray(A, dtype=np.float64)
    E = np.exp(A - A.max(axis=1, keepdims=True))
""",
             '    E = np.exp(np.asarray(A, dtype=float))'),
        ],
        'normalised over columns (axis 0) instead of rows': [
            ("""\
    A = np.asarray(A, dtype=np.float64)
    E = np.exp(A - A.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)
""",
             """\
    A = np.asarray(A, dtype=float)
    E = np.exp(A - A.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)
"""),
        ],
        'normalised over the whole array': [
            ("""\
    A = np.asarray(A, dtype=np.float64)
    E = np.exp(A - A.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)
""",
             """\
    A = np.asarray(A, dtype=float)
    E = np.exp(A - A.max())
    return E / E.sum()
"""),
        ],
    },
    'cross-entropy-impl': {
        'summed over samples: the 1/N forgotten': [
            ('    A = np.asarray(A, dtype=np.float64)',
             '    A = np.asarray(A, dtype=float)'),
            ('    return float(-(T * log_Y).sum() / A.shape[0])',
             '    return float(-(T * log_Y).sum())'),
        ],
        'log of the softmax output, which takes log(0)': [
            ("""\
    A = np.asarray(A, dtype=np.float64)
    m = A.max(axis=1, keepdims=True)
    log_Y = A - m - np.log(np.exp(A - m).sum(axis=1, keepdims=True))
    return float(-(T * log_Y).sum() / A.shape[0])
""",
             '    return float(-(T * np.log(softmax(A))).sum() / np.shape(A)[0])'),
        ],
        'averaged over all N*K entries instead of the N samples': [
            ('    A = np.asarray(A, dtype=np.float64)',
             '    A = np.asarray(A, dtype=float)'),
            ('    return float(-(T * log_Y).sum() / A.shape[0])',
             '    return float(-(T * log_Y).mean())'),
        ],
    },
    'cross-entropy-grad-impl': {
        'its own softmax, with no maximum subtracted (overflows for large activations)': [
            ('    return (softmax(A) - T) / np.shape(A)[0]',
             '    E = np.exp(A)\n    return (E / E.sum(axis=1, keepdims=True) - T) / np.shape(A)[0]'),
        ],
        'the 1/N forgotten': [
            ('    return (softmax(A) - T) / np.shape(A)[0]',
             '    return softmax(A) - T'),
        ],
        'the sign flipped: (T - Y) / N': [
            ('    return (softmax(A) - T) / np.shape(A)[0]',
             '    return (T - softmax(A)) / np.shape(A)[0]'),
        ],
        'divided by K instead of N': [
            ('    return (softmax(A) - T) / np.shape(A)[0]',
             '    return (softmax(A) - T) / np.shape(A)[1]'),
        ],
    },
    'forward-impl': {
        'Y by exp(A2) / sum, with no maximum subtracted (overflows for large activations)': [
            ('    Y = softmax(A2)',
             '    Y = np.exp(A2) / np.exp(A2).sum(axis=1, keepdims=True)'),
        ],
        'weight decay without the 1/2': [
            ("""\
    Y = softmax(A2)
    R = 0.5 * lam * (np.sum(W1 * W1) + np.sum(W2 * W2))
    L = cross_entropy(A2, T) + R
    return float(L), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": Y}
""",
             """\
    R = lam * (np.sum(W1 * W1) + np.sum(W2 * W2))
    return float(cross_entropy(A2, T) + R), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": softmax(A2)}
"""),
        ],
        'no relu between the layers': [
            ('    Z = np.maximum(0.0, A1)',
             '    Z = A1'),
            ('    Y = softmax(A2)',
             ''),
            ("""\
    L = cross_entropy(A2, T) + R
    return float(L), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": Y}
""",
             '    return float(cross_entropy(A2, T) + R), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": softmax(A2)}'),
        ],
        'the second bias forgotten': [
            ('    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]',
             '    W1, b1, W2 = params["W1"], params["b1"], params["W2"]'),
            ("""\
    A2 = Z @ W2 + b2
    Y = softmax(A2)
""",
             '    A2 = Z @ W2'),
            ("""\
    L = cross_entropy(A2, T) + R
    return float(L), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": Y}
""",
             '    return float(cross_entropy(A2, T) + R), {"X": X, "A1": A1, "Z": Z, "A2": A2, "Y": softmax(A2)}'),
        ],
    },
    'backward-impl': {
        '= instead of += : the decay gradient overwritten': [
            ("""\
    dD = dR = 1.0
    dW1 = dR * lam * W1
    dW2 = dR * lam * W2
    dA2 = dD * (Y - T) / X.shape[0]
    dW2 += Z.T @ dA2
""",
             """\
    dW1 = lam * W1
    dW2 = lam * W2
    dA2 = (Y - T) / X.shape[0]
    dW2 = Z.T @ dA2
"""),
            ('    dW1 += X.T @ dA1',
             '    dW1 = X.T @ dA1'),
        ],
        'the 1/N of dA2 forgotten': [
            ('    dA2 = dD * (Y - T) / X.shape[0]', '    dA2 = dD * (Y - T)'),
        ],
        'the relu mask forgotten': [
            ('    dA1 = dZ * (Z > 0)', '    dA1 = dZ'),
        ],
        "the decay term's gradient without lambda": [
            ('    dW1 = dR * lam * W1', '    dW1 = dR * W1'),
            ('    dW2 = dR * lam * W2', '    dW2 = dR * W2'),
        ],
    },
    'gd-step-impl': {
        'gradient ascent: + instead of -': [
            ('    return {name: value - lr * grads[name] for name, value in params.items()}',
             '    return {name: value + lr * grads[name] for name, value in params.items()}'),
        ],
        'only the weights updated, biases left behind': [
            ('    return {name: value - lr * grads[name] for name, value in params.items()}',
             """\
    return {name: (value - lr * grads[name] if name.startswith("W") else value)
            for name, value in params.items()}
"""),
        ],
        'the learning rate forgotten': [
            ('    return {name: value - lr * grads[name] for name, value in params.items()}',
             '    return {name: value - grads[name] for name, value in params.items()}'),
        ],
    },
    'linear-impl': {
        'the decay term left out of dW': [
            ('    return float(L), X.T @ dA + lam * W, dA.sum(axis=0)',
             '    return float(L), X.T @ dA, dA.sum(axis=0)'),
        ],
        'the decay without its 1/2 in the loss': [
            ('    L = cross_entropy(A, T) + 0.5 * lam * np.sum(W * W)',
             '    L = cross_entropy(A, T) + lam * np.sum(W * W)'),
        ],
        'the biases decayed too': [
            ('    L = cross_entropy(A, T) + 0.5 * lam * np.sum(W * W)\n    return float(L), X.T @ dA + lam * W, dA.sum(axis=0)',
             '    L = cross_entropy(A, T) + 0.5 * lam * (np.sum(W * W) + np.sum(b * b))\n'
             '    return float(L), X.T @ dA + lam * W, dA.sum(axis=0) + lam * b'),
        ],
        'db summed over the classes instead of the samples': [
            ('    return float(L), X.T @ dA + lam * W, dA.sum(axis=0)',
             '    return float(L), X.T @ dA + lam * W, dA.sum(axis=1)[:W.shape[1]]'),
        ],
        'dA without the 1/N: Y - T': [
            ('    dA = cross_entropy_grad(A, T)',
             '    dA = softmax(A) - T'),
        ],
        'an unstable softmax, exp(A) / sum exp(A)': [
            ('    dA = cross_entropy_grad(A, T)\n    L = cross_entropy(A, T) + 0.5 * lam * np.sum(W * W)',
             '    E = np.exp(A)\n    Y = E / E.sum(axis=1, keepdims=True)\n    dA = (Y - T) / X.shape[0]\n'
             '    L = -np.sum(T * np.log(Y)) / X.shape[0] + 0.5 * lam * np.sum(W * W)'),
        ],
    },
}

DELEGATING = {
    "sigmoid-impl": {
        "delegates to coursekit": "from coursekit.nets.backprop import sigmoid",
        "delegates to torch": """
def sigmoid(a):
    return torch.sigmoid(torch.as_tensor(np.asarray(a, dtype=np.float64))).numpy()
""",
    },
    "softmax-impl": {
        "delegates to coursekit": "import coursekit.nets.backprop\nsoftmax = coursekit.nets.backprop.softmax",
        "delegates to a torch Tensor method": """
def softmax(A):
    return torch.as_tensor(np.asarray(A, dtype=np.float64)).softmax(dim=1).numpy()
""",
    },
    "cross-entropy-impl": {
        "delegates to coursekit's stage-02 node": """
from coursekit.nets import autodiff, ops

def cross_entropy(A, T):
    return float(ops.entropy(A, T).value)
""",
        "delegates to torch": """
def cross_entropy(A, T):
    A, T = torch.as_tensor(np.asarray(A, dtype=np.float64)), torch.as_tensor(np.asarray(T, dtype=np.float64))
    return float(torch.nn.functional.cross_entropy(A, T))
""",
    },
    "cross-entropy-grad-impl": "from coursekit.nets.backprop import cross_entropy_grad",
    "forward-impl": """
import coursekit.nets.backprop

def forward(X, T, params, lam):
    cache = coursekit.nets.backprop.forward(X, params)
    D = coursekit.nets.backprop.cross_entropy(cache["A2"], T)
    return D + coursekit.nets.backprop.decay((params["W1"], params["W2"]), lam), cache
""",
    "backward-impl": """
from coursekit.nets import autodiff, ops

def backward(cache, T, params, lam):
    P = {k: autodiff.Param(v, k) for k, v in params.items()}
    L = ops.loss(ops.model(cache["X"], ((P["W1"], P["b1"]), (P["W2"], P["b2"]))), T, (P["W1"], P["W2"]), lam)
    autodiff.backward(L)
    return {k: p.grad for k, p in P.items()}
""",
    "gd-step-impl": "from coursekit.nets.backprop import gd_step",
    "linear-impl": "from coursekit.nets.backprop import linear_loss_and_grads",
}

# Test cells without hidden inputs, each with why: every other test cell checks values on hidden random
# inputs too (the course checks enforce it).
VISIBLE_ONLY = {'training-accuracy': 'it checks what a whole training run reaches on the spiral, not values of given inputs',
                'linear-training': "it checks what a whole training run reaches on the spiral: the least loss, found by scipy"}
