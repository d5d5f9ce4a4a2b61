"""Plausible wrong answers to the stage-02 exercises, as edits of the solution, and a delegating
answer for each (the format: docs/ANATOMY.md §4)."""

WRONG = {
    'relu-back': {
        'masks dOut in place (corrupts the gradient of another node that shares it)': [
            ('        dA += dZ * (Z > 0)',
             '        dZ[Z <= 0] = 0\n        dA += dZ'),
        ],
        '= instead of +=: rebinds the name, contributes nothing': [
            ('        dA += dZ * (Z > 0)',
             '        dA = dZ * (Z > 0)'),
        ],
        'overwrites an earlier contribution': [
            ('        dA += dZ * (Z > 0)',
             '        dA.value = dZ * (Z > 0)'),
        ],
        'masks with the upstream gradient instead of the output': [
            ('        dA += dZ * (Z > 0)',
             '        dA += dZ * (dZ > 0)'),
        ],
    },
    'affine-back': {
        'dW without the transpose of X': [
            ('        dW += x.T @ dA',
             '        dW += x @ dA'),
        ],
        'dW transposed, (K, D) added to a (D, K) gradient': [
            ('        dW += x.T @ dA',
             '        dW += dA.T @ x'),
        ],
        'db summed over the wrong axis': [
            ('        db += dA.sum(axis=0)',
             '        db += dA.sum(axis=1)'),
        ],
        'dX with W instead of its transpose': [
            ('        dX += dA @ w.T',
             '        dX += dA @ w'),
        ],
        'dX forgotten': [
            ('        dX += dA @ w.T',
             ''),
        ],
    },
    'entropy-back': {
        'the upstream gradient dD ignored': [
            ('        dA += dD * (Y - t) / N',
             '        dA += (Y - t) / N'),
        ],
        'the 1/N forgotten': [
            ('        dA += dD * (Y - t) / N',
             '        dA += dD * (Y - t)'),
        ],
        'the sign flipped': [
            ('        dA += dD * (Y - t) / N',
             '        dA += dD * (t - Y) / N'),
        ],
        'overwrites an earlier contribution': [
            ('        dA += dD * (Y - t) / N',
             '        dA.value = dD * (Y - t) / N'),
        ],
    },
    'decay-back': {
        'lambda forgotten': [
            ('            dw += dR * lam * w',
             '            dw += dR * w'),
        ],
        'lambda/2 as in the forward pass': [
            ('            dw += dR * lam * w',
             '            dw += dR * lam / 2 * w'),
        ],
        'only the first weight': [
            ("""\
        for w, dw in zip(ws, dW):
            dw += dR * lam * w
""",
             '        dW[0] += dR * lam * ws[0]'),
        ],
        'overwrites an earlier contribution': [
            ('            dw += dR * lam * w',
             '            dw.value = dR * lam * w'),
        ],
    },
    'add-back': {
        'only the first input receives the gradient': [
            ("""\
        for dx in dX:
            dx += dS
""",
             '        dX[0] += dS'),
        ],
        'the gradient split between the inputs': [
            ('            dx += dS',
             '            dx += dS / len(dX)'),
        ],
        '= instead of +=': [
            ('            dx += dS',
             '            dx = dS'),
        ],
    },
    'loss-block': {
        "no back of its own: the engine's default order": [
            ('    return block(L, (A, T, W), back)',
             '    return block(L, (A, T, W))'),
        ],
        'the block without its inputs': [
            ('    return block(L, (A, T, W), back)',
             '    return block(L, (), back)'),
        ],
        'the add node returned, no block': [
            ('    return block(L, (A, T, W), back)',
             '    return L'),
        ],
        'back in forward order': [
            ('    def back():',
             """\
    def back():
        D.back()
        R.back()
"""),
            ("""\
        R.back()
        D.back()
""",
             ''),
        ],
        "the decay node's back forgotten": [
            ('        R.back()',
             ''),
        ],
        'weight decay left out of the loss': [
            ("""\
    R = decay(W, lam)
    L = add((D, R))
""",
             ''),
            ("""\
        L.back()
        R.back()
""",
             ''),
            ('    return block(L, (A, T, W), back)',
             '    return block(D, (A, T, W), back)'),
        ],
    },
    'model-block': {
        "no back of its own: the engine's default order": [
            ('    return block(A2, (X, U), back)',
             '    return block(A2, (X, U))'),
        ],
        'the block without its inputs': [
            ('    return block(A2, (X, U), back)',
             '    return block(A2, (), back)'),
        ],
        'back in forward order': [
            ('    def back():',
             """\
    def back():
        A1.back()
        Z.back()
"""),
            ("""\
        Z.back()
        A1.back()
""",
             ''),
        ],
        "relu's back forgotten": [
            ('        Z.back()',
             ''),
        ],
        'no relu between the layers': [
            ("""\
    Z = relu(A1)
    A2 = affine(Z, U2)
""",
             '    A2 = affine(A1, U2)'),
            ('        Z.back()',
             ''),
        ],
    },
}

DELEGATING = {
    "relu-back": "from coursekit.nets.ops import relu",
    "affine-back": "from coursekit.nets.ops import affine",
    "entropy-back": {
        "delegates to coursekit": "from coursekit.nets.ops import entropy",
        "back through stage 01's cross_entropy_grad": """
from coursekit.nets import backprop

def entropy(A, T):
    a, t = value(A), value(T)
    D = backprop.cross_entropy(a, t)

    def back(dD, dA, dT):
        dA += dD * backprop.cross_entropy_grad(a, t)

    return node(D, back, (A, T))
""",
    },
    "decay-back": "from coursekit.nets.ops import decay",
    "add-back": "from coursekit.nets.ops import add",
    "loss-block": "import coursekit.nets.ops\nloss = coursekit.nets.ops.loss",
    "model-block": """
from coursekit.nets import autodiff, ops

def model(X, U):
    return ops.model(X, U)
""",
}

# Test cells without hidden inputs, each with why: every other test cell checks values on hidden random
# inputs too (the course checks enforce it).
VISIBLE_ONLY = {'engine-training': 'it checks what a whole training run reaches, not values of given inputs'}

# Correct answers written another way, each of which must pass every test of its exercise.
VALID = {
    "loss-block": {
        "the lecture's back, each node given its inputs": [
            ("""\
        L.back()
        R.back()
        D.back()""", """\
        L.back((D, R))
        R.back(W)
        D.back(A, T)"""),
        ],
        "decay's back before entropy's, the other order the two allow": [
            ("""\
        R.back()
        D.back()""", """\
        D.back()
        R.back()"""),
        ],
    },
    "model-block": {
        "the lecture's back, each node given its inputs": [
            ("""\
        A2.back()
        Z.back()
        A1.back()""", """\
        A2.back(Z, U2)
        Z.back(A1)
        A1.back(X, U1)"""),
        ],
    },
}
