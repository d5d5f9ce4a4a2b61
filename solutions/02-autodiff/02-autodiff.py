# ---
# jupyter:
#   coursekit:
#     full_budget_on_cpu: true
# ---

# %% [markdown]
# # Stage 02 — Automatic differentiation with nodes and blocks
#
# *Deep learning for vision*, lecture part "automatic differentiation".
#
# In stage 01 you wrote the backward pass of the two-layer network line by line. The lecture asks:
# *what is an easy way to automatically generate the backward code from the forward one?* Its answer:
# every operation returns a **node** that carries its value and its own backward rule,
#
# ```python
# def relu(A):
#     Z = max(0, A)
#     def back(dZ, dA):
#         dA += dZ * (Z > 0)
#     return node(Z, back)
# ```
#
# and a **block** composes nodes into larger units (`loss`, `model`) whose backward calls its parts in reverse order.
#
# **You will**
# 1. write the `back` rule of `relu`, `affine`, `entropy`, `decay` and `add`;
# 2. compose them into the `loss` and `model` blocks;
# 3. train the stage-01 network with them and check the gradients against your stage-01 backprop and torch autograd;
# 4. watch the backward pass run node by node in a graph viewer.
#
# **The engine** is `coursekit.nets.autodiff`: `node(value, back, inputs)` records an operation, `Param` is a
# parameter, `value(x)` gives the numpy array of a node or of a plain array, `backward(L)` runs the whole
# backward pass, and `block(out, inputs, back)` makes a block. In `back(dOut, *dIns)`, `dOut` is a numpy
# array and each `dIn` is a gradient **slot**: `dIn += g` *assigns* on the first contribution and *adds*
# afterwards, so a value used by two nodes collects both contributions (there is no `dIn = ...`).
# The `dIns` have the same nesting as the inputs: `affine(X, (W, b))` gets `back(dA, dX, (dW, db))`.
#
# **Only the answer cells are graded: put all your code in them** (cells you add are dropped when your notebook
# is graded).

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import scipy.special
import torch

import coursekit
from coursekit.data import samples
from coursekit.explore import plots
from coursekit.nets import backprop
from coursekit.nets.autodiff import Param, backward, block, node, value
from coursekit.grading import block_order, check, check_close, check_gradients, node_gradients, own_work, torch_gradients

BUDGET = coursekit.budget()  # "fast" under the autograder and in CI, "full" otherwise
coursekit.seed_everything(0)
# While your code is graded, coursekit's reference versions of what you write here are switched off
# (the engine itself -- node, block, Param, value, backward -- stays on), and so are the gradients
# of stage 01, which are these back rules:
LIBRARY = ["coursekit.nets.backprop.relu_backward", "coursekit.nets.backprop.affine_backward",
           "coursekit.nets.backprop.cross_entropy_grad", "coursekit.nets.backprop.loss_and_grads"]
print(BUDGET)

# %% [markdown]
# ## 1. Nodes
#
# ### Exercise 1.1 — relu
# The forward value is given; write `back`: add `dZ * (Z > 0)` to the gradient of `A`. **Never modify `dZ` (the
# gradient from above) in place**: the engine may hand the same array to another node (`add` passes its `dOut` to
# every input), so `dZ[Z <= 0] = 0` would corrupt that node's gradient. Compute a new array, as above.

# %% nbgrader={"grade": false, "grade_id": "relu-back", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu(A):
    """max(0, A) as a node; back adds dZ where A was positive (shapes of A)."""
    Z = np.maximum(0.0, value(A))

    def back(dZ, dA):
        ### BEGIN SOLUTION
        dA += dZ * (Z > 0)
        ### END SOLUTION

    return node(Z, back, (A,))


# %% nbgrader={"grade": true, "grade_id": "relu-back-torch", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The gradient that relu passes back, versus torch autograd, for a random upstream gradient dZ.
rng = np.random.default_rng(201)
A_r, dZ_r = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
with own_work(*LIBRARY, stage=2, what="relu's back"):
    got = node_gradients(relu, (A_r,), dZ_r)
check_gradients(got, torch_gradients(torch.relu, (A_r,), dZ_r), ["dA"])
### BEGIN HIDDEN TESTS
A_rh, dZ_rh = rng.normal(size=(3, 7)), rng.normal(size=(3, 7))
with own_work(*LIBRARY, stage=2, what="relu's back"):
    got = node_gradients(relu, (A_rh,), dZ_rh)
check_gradients(got, torch_gradients(torch.relu, (A_rh,), dZ_rh), ["dA of a (3, 7) input"])
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "relu-back-accumulates", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# A value used twice: if A's gradient already holds a contribution (here 1 everywhere), back adds to it.
with own_work(*LIBRARY, stage=2, what="relu's back"):
    got = node_gradients(relu, (A_r,), dZ_r, prefill=1.0)
expected = torch_gradients(torch.relu, (A_r,), dZ_r)[0] + 1.0
check_gradients(got, [expected], ["dA after an earlier contribution of 1"])
### BEGIN HIDDEN TESTS
A_ra, dZ_ra = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
with own_work(*LIBRARY, stage=2, what="relu's back"):
    got = node_gradients(relu, (A_ra,), dZ_ra, prefill=0.3)
check_gradients(got, [torch_gradients(torch.relu, (A_ra,), dZ_ra)[0] + 0.3], ["dA of a (4, 2) input after 0.3"])
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.2 — affine
# `affine(X, (W, b))` computes `A = X W + b` with `X` $(N, D)$, `W` $(D, K)$, `b` $(K,)$. Write its `back`,
# as on the slide: `dW += dot(X.T, dA)`, `db += sum0(dA)`, `dX += dot(dA, W.T)`.

# %% nbgrader={"grade": false, "grade_id": "affine-back", "locked": false, "schema_version": 3, "solution": true, "task": false}
def affine(X, U):
    """X W + b as a node, for X (N, D) and U = (W (D, K), b (K,)); back adds X^T dA, the column sums
    of dA, and dA W^T to the gradients of W, b and X."""
    W, b = U
    x, w = value(X), value(W)
    A = x @ w + value(b)

    def back(dA, dX, dU):
        dW, db = dU
        ### BEGIN SOLUTION
        dW += x.T @ dA
        db += dA.sum(axis=0)
        dX += dA @ w.T
        ### END SOLUTION

    return node(A, back, (X, U))


# %% nbgrader={"grade": true, "grade_id": "affine-back-torch", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# dX, dW and db versus torch autograd; D, K and N all differ so that a missing transpose cannot hide.
rng = np.random.default_rng(202)
X_a, W_a, b_a = rng.normal(size=(6, 3)), rng.normal(size=(3, 4)), rng.normal(size=4)
dA_a = rng.normal(size=(6, 4))
with own_work(*LIBRARY, stage=2, what="affine's back"):
    got = node_gradients(affine, (X_a, (W_a, b_a)), dA_a, names=("X", "W", "b"))
expected = torch_gradients(lambda X, U: X @ U[0] + U[1], (X_a, (W_a, b_a)), dA_a)
check_gradients(got, expected, ["dX", "dW", "db"])
### BEGIN HIDDEN TESTS
with own_work(*LIBRARY, stage=2, what="affine's back"):
    got = node_gradients(affine, (X_a, (W_a, b_a)), dA_a, prefill=-2.0, names=("X", "W", "b"))
check_gradients(got, [g - 2.0 for g in expected], ["dX", "dW", "db"])
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.3 — entropy
# `entropy(A, T)` is the average cross-entropy of stage 01 as one node. Its `back` adds
# `dD * (Y - T) / N` to the gradient of `A`. `T` is a constant (its gradient slot discards anything added).
# Note the factor `dD`: the gradient arriving from above is not always 1.

# %% nbgrader={"grade": false, "grade_id": "entropy-back", "locked": false, "schema_version": 3, "solution": true, "task": false}
def entropy(A, T):
    """The average cross-entropy of softmax(A) against T, both (N, K), as a scalar node; back adds
    dD (Y - T) / N to the gradient of A."""
    a, t = value(A), value(T)
    log_Y = a - scipy.special.logsumexp(a, axis=1, keepdims=True)
    Y = np.exp(log_Y)
    N = a.shape[0]
    D = -(t * log_Y).sum() / N

    def back(dD, dA, dT):
        ### BEGIN SOLUTION
        dA += dD * (Y - t) / N
        ### END SOLUTION

    return node(D, back, (A, T))


# %% nbgrader={"grade": true, "grade_id": "entropy-back-torch", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# dA versus torch autograd, with an upstream gradient dD = 0.7 (not 1).
rng = np.random.default_rng(203)
A_e = rng.normal(size=(7, 3))
labels_e = rng.integers(0, 3, size=7)
T_e = np.eye(3)[labels_e]
with own_work(*LIBRARY, stage=2, what="entropy's back"):
    got = node_gradients(entropy, (A_e, T_e), 0.7, constants=(1,))
expected = torch_gradients(lambda A, T: torch.nn.functional.cross_entropy(A, T.argmax(dim=1)), (A_e, T_e), 0.7,
                           constants=(1,))
check_gradients(got, expected, ["dA"])
# A used twice: an earlier contribution (here 0.5 everywhere) must be kept and added to.
with own_work(*LIBRARY, stage=2, what="entropy's back"):
    got = node_gradients(entropy, (A_e, T_e), 0.7, constants=(1,), prefill=0.5)
check_gradients(got, [expected[0] + 0.5], ["dA after an earlier contribution of 0.5"])
### BEGIN HIDDEN TESTS
A_eh = rng.normal(scale=2.0, size=(4, 6))
T_eh = np.eye(6)[rng.integers(0, 6, size=4)]
with own_work(*LIBRARY, stage=2, what="entropy's back"):
    got = node_gradients(entropy, (A_eh, T_eh), 1.3, constants=(1,))
expected = torch_gradients(lambda A, T: torch.nn.functional.cross_entropy(A, T.argmax(dim=1)), (A_eh, T_eh), 1.3,
                           constants=(1,))
check_gradients(got, expected, ["dA of a (4, 6) batch"])
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.4 — decay
# `decay(W, lam)` is $R = \frac{\lambda}{2}\sum_i \|W_i\|_F^2$ over a tuple of weights. Its `back(dR, dW)` receives a
# tuple of slots `dW`, one per weight: add `dR * lam * w` to each.

# %% nbgrader={"grade": false, "grade_id": "decay-back", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decay(W, lam):
    """(lam / 2) sum_i ||W_i||^2 over a tuple of weights, as a scalar node; back adds dR lam W_i to
    each weight's gradient."""
    W = tuple(W)
    ws = [value(w) for w in W]
    R = 0.5 * lam * sum(float(np.sum(w * w)) for w in ws)

    def back(dR, dW):
        ### BEGIN SOLUTION
        for w, dw in zip(ws, dW):
            dw += dR * lam * w
        ### END SOLUTION

    return node(R, back, (W,))


# %% nbgrader={"grade": true, "grade_id": "decay-back-torch", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The gradients of two weights of different shapes, with lam = 0.3 and an upstream gradient dR = 1.5.
rng = np.random.default_rng(204)
W1_d, W2_d = rng.normal(size=(3, 5)), rng.normal(size=(5, 2))
with own_work(*LIBRARY, stage=2, what="decay's back"):
    got = node_gradients(lambda W: decay(W, 0.3), ((W1_d, W2_d),), 1.5)
expected = torch_gradients(lambda W: 0.15 * ((W[0] ** 2).sum() + (W[1] ** 2).sum()), ((W1_d, W2_d),), 1.5)
check_gradients(got, expected, ["dW1", "dW2"])
# The weights are also used by affine nodes: an earlier contribution (here -1) must be kept.
with own_work(*LIBRARY, stage=2, what="decay's back"):
    got = node_gradients(lambda W: decay(W, 0.3), ((W1_d, W2_d),), 1.5, prefill=-1.0)
check_gradients(got, [g - 1.0 for g in expected], ["dW1 after an earlier contribution", "dW2 after an earlier contribution"])
### BEGIN HIDDEN TESTS
W1_dh, W2_dh = rng.normal(size=(2, 2)), rng.normal(size=(4, 3))
with own_work(*LIBRARY, stage=2, what="decay's back"):
    got = node_gradients(lambda W: decay(W, 0.8), ((W1_dh, W2_dh),), 0.6)
expected = torch_gradients(lambda W: 0.4 * ((W[0] ** 2).sum() + (W[1] ** 2).sum()), ((W1_dh, W2_dh),), 0.6)
check_gradients(got, expected, ["dW1 with lam = 0.8", "dW2 with lam = 0.8"])
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.5 — add
# `add(X)` sums a tuple of values of one shape, as in `L = add((D, R))`. Its `back(dS, dX)` passes `dS` on to every input.

# %% nbgrader={"grade": false, "grade_id": "add-back", "locked": false, "schema_version": 3, "solution": true, "task": false}
def add(X):
    """The sum of a tuple of values of one shape, as a node; back adds dS to every input's gradient."""
    X = tuple(X)
    S = sum(value(x) for x in X)

    def back(dS, dX):
        ### BEGIN SOLUTION
        for dx in dX:
            dx += dS
        ### END SOLUTION

    return node(S, back, (X,))


# %% nbgrader={"grade": true, "grade_id": "add-back-torch", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Three inputs of shape (2, 3): each receives the upstream gradient.
rng = np.random.default_rng(205)
P_s = [rng.normal(size=(2, 3)) for _ in range(3)]
dS_s = rng.normal(size=(2, 3))
with own_work(*LIBRARY, stage=2, what="add's back"):
    got = node_gradients(add, (tuple(P_s),), dS_s)
check_gradients(got, torch_gradients(lambda X: X[0] + X[1] + X[2], (tuple(P_s),), dS_s), ["dX0", "dX1", "dX2"])
### BEGIN HIDDEN TESTS
P_h = [rng.normal(size=(4, 1)) for _ in range(2)]
dS_h = rng.normal(size=(4, 1))
with own_work(*LIBRARY, stage=2, what="add's back"):
    got = node_gradients(add, (tuple(P_h),), dS_h)
check_gradients(got, torch_gradients(lambda X: X[0] + X[1], (tuple(P_h),), dS_h), ["dX0 of two inputs", "dX1 of two inputs"])
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "add-back-reuse", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The same value added to itself, S = add((P, P)): both contributions must reach P, so dP = 2 dS.
P_one = Param(np.random.default_rng(207).normal(size=(2, 3)), "P")
with own_work(*LIBRARY, stage=2, what="add's back"):
    S_one = add((P_one, P_one))
    S_one.slot += dS_s
    S_one.back()
check_gradients([P_one.grad], [2 * dS_s], ["dP for S = P + P"])
### BEGIN HIDDEN TESTS
P_three = Param(np.random.default_rng(208).normal(size=(3, 2)), "P")
dS_three = np.random.default_rng(209).normal(size=(3, 2))
with own_work(*LIBRARY, stage=2, what="add's back"):
    S_three = add((P_three, P_three, P_three))
    S_three.slot += dS_three
    S_three.back()
check_gradients([P_three.grad], [3 * dS_three], ["dP for S = P + P + P"])
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Blocks
#
# With the nodes, the stage-01 network reads:
#
# ```python
# A1 = affine(X, (W1, b1));  Z = relu(A1);  A2 = affine(Z, (W2, b2))
# D = entropy(A2, T);  R = decay((W1, W2));  L = add((D, R))
# ```
#
# and its backward pass is the nodes' `back` in reverse order: `L.back(); R.back(); D.back(); A2.back(); Z.back(); A1.back()`.
# A **block** packs a group of nodes into one unit with one `back`:
#
# ```python
# def loss(A, T, W):                       def model(X, (U1, U2)):
#     D = entropy(A, T)                        A1 = affine(X, U1)
#     R = decay(W)                             Z = relu(A1)
#     L = add((D, R))                          A2 = affine(Z, U2)
#     def back(A, T, W):                       def back(X, (U1, U2)):
#         L.back((D, R))                           A2.back(Z, U2)
#         R.back(W)                                Z.back(A1)
#         D.back(A, T)                             A1.back(X, U1)
#     return block(L, back)                    return block(A2, back)
# ```
#
# In `coursekit.nets.autodiff`, a block also names its inputs, `block(out, inputs, back)`, and `back` takes no
# arguments (each node remembers its inputs, so `Z.back()` is enough; `Z.back(A1)` also works and checks them).
#
# **The short form.** The lecture first writes the loss block in one line, with no `back` at all:
#
# ```python
# def loss(A, T, W):
#     L = entropy(A, T) + decay(W)
#     return block(L)
# ```
#
# Here that reads `block(add((entropy(A, T), decay(W, lam))), (A, T, W))`. The `+` is spelled `add((D, R))`:
# graph values refuse arithmetic (`D + R` raises a `TypeError` that says so), so that every node of the graph is
# one whose `back` you wrote. A block given no `back` gets the engine's default: it runs its inner nodes' `back`
# rules in reverse order of creation, which is right for any block whose nodes were created in forward order. The
# long form writes that order out, and that order is what the two exercises below are about: write the `back`.
#
# **What the inputs are for.** They are the block's boundary. The block's inner nodes are found by walking back
# from `out` and stopping at its inputs (its default back runs exactly those, and the graph viewer draws them as
# one box); and `backward` sees the block as one node whose parents are its inputs, so that everything before the
# block runs after it, in the graph's order, once all of its gradient has arrived. Leave them out,
# `block(L, ())`, and the walk goes on past `A` into the model that computed it: the loss block claims the model's
# nodes and runs their `back` when the loss's own contribution has arrived, whether or not all of `A`'s gradient
# has. With one loss on `A` that happens to give the right numbers; add a second loss on the same activations (an
# auxiliary loss, as some networks have) and the model's `back` runs too early, with a partial gradient, and again
# later: the gradients are wrong. The cell below shows it with coursekit's reference nodes.

# %% nbgrader={"grade": false, "grade_id": "block-inputs-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
from coursekit.nets import ops  # the reference nodes: this cell works before your answers do


def loss_short(A, T, W, lam, inputs):
    """The lecture's short form of the loss block, with the default back, over the given inputs."""
    return block(ops.add((ops.entropy(A, T), ops.decay(W, lam))), inputs)


g_demo = np.random.default_rng(7)
X_demo, T_demo, T_other = g_demo.normal(size=(6, 2)), np.eye(3)[g_demo.integers(0, 3, size=6)], np.eye(3)[[0, 1, 2] * 2]
start_demo = {"W1": g_demo.normal(size=(2, 4)), "b1": g_demo.normal(size=4), "W2": g_demo.normal(size=(4, 3)),
              "b2": g_demo.normal(size=3)}
db1_demo = {}
for bounded in (True, False):
    P_demo = {k: Param(v, k) for k, v in start_demo.items()}
    A_demo = ops.model(X_demo, ((P_demo["W1"], P_demo["b1"]), (P_demo["W2"], P_demo["b2"])))
    W_demo = (P_demo["W1"], P_demo["W2"])
    L_block = loss_short(A_demo, T_demo, W_demo, 0.1, (A_demo, T_demo, W_demo) if bounded else ())
    backward(ops.add((L_block, ops.entropy(A_demo, T_other))))  # a second loss on the same activations A
    db1_demo[bounded] = P_demo["b1"].grad
    print(f"loss block {'with its inputs (A, T, W)' if bounded else 'with no inputs, block(L, ())'}: "
          f"inner nodes {', '.join(n.op for n in L_block.inner)}")
error_demo = np.abs(db1_demo[False] - db1_demo[True]).max() / np.abs(db1_demo[True]).max()
print(f"with a second loss on A, the block without inputs gets the gradient of b1 wrong by {error_demo:.0%}")

# %% [markdown]
# ### Exercise 2.1 — the loss block
# Write `loss(A, T, W, lam)`: `entropy(A, T) + decay(W, lam)` as a block, from **your** `entropy`, `decay` and `add`,
# with its inputs `(A, T, W)` and a `back` of your own that calls the three nodes' `back` in reverse order (the long
# form above).

# %% nbgrader={"grade": false, "grade_id": "loss-block", "locked": false, "schema_version": 3, "solution": true, "task": false}
def loss(A, T, W, lam):
    """entropy(A, T) + decay(W, lam) as a block of three nodes; its back calls them in reverse order."""
    ### BEGIN SOLUTION
    D = entropy(A, T)
    R = decay(W, lam)
    L = add((D, R))

    def back():
        L.back()
        R.back()
        D.back()

    return block(L, (A, T, W), back)
    ### END SOLUTION


# %% [markdown]
# The test cells below use the same network written in torch as their oracle:

# %% nbgrader={"grade": false, "grade_id": "torch-oracle", "locked": true, "schema_version": 3, "solution": false, "task": false}
def torch_loss(A, T, W, lam):
    return -(T * torch.log_softmax(A, dim=1)).sum() / A.shape[0] + lam / 2 * sum((w ** 2).sum() for w in W)


def torch_model(X, U):
    (W1, b1), (W2, b2) = U
    return torch.relu(X @ W1 + b1) @ W2 + b2


def make_problem(seed, N=6, D=3, H=5, K=4):
    """A random batch with one-hot targets, and random parameters (scale 1: relu cuts about half)."""
    g = np.random.default_rng(seed)
    params = {"W1": g.normal(size=(D, H)), "b1": g.normal(size=H), "W2": g.normal(size=(H, K)), "b2": g.normal(size=K)}
    return g.normal(size=(N, D)), np.eye(K)[g.integers(0, K, size=N)], params


# %% nbgrader={"grade": true, "grade_id": "loss-block-value", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The block's value is entropy + decay.
X_l, T_l, P_l = make_problem(41)
A_l = X_l @ P_l["W1"]  # any (N, K) activations will do: use (6, 5) ones with 5 classes
T_l5 = np.eye(5)[np.arange(6) % 5]
with own_work(*LIBRARY, stage=2, what="the loss block"):
    L_l = loss(Param(A_l, "A"), T_l5, (Param(P_l["W1"], "W1"), Param(P_l["W2"], "W2")), 0.2)
expected = torch_loss(torch.tensor(A_l), torch.tensor(T_l5), (torch.tensor(P_l["W1"]), torch.tensor(P_l["W2"])), 0.2)
check_close(value(L_l), expected.item(), "the value of loss(A, T, W, lam)", tol=1e-12)
### BEGIN HIDDEN TESTS
X_lh, T_lh, P_lh = make_problem(43, N=9, D=2, H=3, K=4)
A_lh = X_lh @ P_lh["W1"] + 0.5  # (9, 3) activations, 3 classes
T_lh3 = np.eye(3)[np.arange(9) % 3]
with own_work(*LIBRARY, stage=2, what="the loss block"):
    L_lh = loss(Param(A_lh, "A"), T_lh3, (Param(P_lh["W1"], "W1"), Param(P_lh["W2"], "W2")), 0.45)
expected = torch_loss(torch.tensor(A_lh), torch.tensor(T_lh3), (torch.tensor(P_lh["W1"]), torch.tensor(P_lh["W2"])), 0.45)
check_close(value(L_lh), expected.item(), "the value of loss(A, T, W, lam) on a (9, 3) batch", tol=1e-12)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "loss-block-back", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The block's back: the gradients of A, W1 and W2 versus torch autograd.
with own_work(*LIBRARY, stage=2, what="the loss block"):
    got = node_gradients(lambda A, W: loss(A, T_l5, W, 0.2), (A_l, (P_l["W1"], P_l["W2"])), 1.0)
expected = torch_gradients(lambda A, W: torch_loss(A, torch.tensor(T_l5), W, 0.2), (A_l, (P_l["W1"], P_l["W2"])), 1.0)
check_gradients(got, expected, ["dA", "dW1", "dW2"])
# It is a block over its own inputs, and its back runs add's back first (then decay's and entropy's, in either order).
with own_work(*LIBRARY, stage=2, what="the loss block"):
    A_o, W_o = Param(A_l, "A"), (Param(P_l["W1"], "W1"), Param(P_l["W2"], "W2"))
    order = block_order(loss(A_o, T_l5, W_o, 0.2), (A_o, T_l5, W_o), "loss")
check(order[:1] == ["add"] and sorted(order[1:]) == ["decay", "entropy"],
      f"loss's back ran the nodes' back rules in the order {order}: add's first, then decay's and entropy's")
### BEGIN HIDDEN TESTS
X_lb, _, P_lb = make_problem(45, N=7, D=3, H=4, K=2)
A_lb = X_lb @ P_lb["W1"]  # (7, 4) activations, 4 classes
T_lb = np.eye(4)[np.random.default_rng(210).integers(0, 4, size=7)]
with own_work(*LIBRARY, stage=2, what="the loss block"):
    got = node_gradients(lambda A, W: loss(A, T_lb, W, 0.6), (A_lb, (P_lb["W1"], P_lb["W2"])), 1.0)
expected = torch_gradients(lambda A, W: torch_loss(A, torch.tensor(T_lb), W, 0.6), (A_lb, (P_lb["W1"], P_lb["W2"])), 1.0)
check_gradients(got, expected, ["dA of a (7, 4) batch", "dW1 with lam = 0.6", "dW2 with lam = 0.6"])
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.2 — the model block
# Write `model(X, U)` with `U = ((W1, b1), (W2, b2))`: `affine → relu → affine` as a block, from your nodes, over
# its inputs `(X, U)`, with a `back` of your own.

# %% nbgrader={"grade": false, "grade_id": "model-block", "locked": false, "schema_version": 3, "solution": true, "task": false}
def model(X, U):
    """affine -> relu -> affine as a block, for U = ((W1, b1), (W2, b2)); its back calls the three
    nodes in reverse order."""
    ### BEGIN SOLUTION
    U1, U2 = U
    A1 = affine(X, U1)
    Z = relu(A1)
    A2 = affine(Z, U2)

    def back():
        A2.back()
        Z.back()
        A1.back()

    return block(A2, (X, U), back)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "model-block-back", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The block's value, and the gradients of X and of every parameter, versus torch autograd.
X_m, T_m, P_m = make_problem(42)
U_m = ((P_m["W1"], P_m["b1"]), (P_m["W2"], P_m["b2"]))
dA2_m = np.random.default_rng(206).normal(size=(6, 4))
with own_work(*LIBRARY, stage=2, what="the model block"):
    A2_m = model(X_m, tuple(tuple(Param(p, "p") for p in u) for u in U_m))
    got = node_gradients(model, (X_m, U_m), dA2_m)
check_close(value(A2_m), torch_model(torch.tensor(X_m), tuple(tuple(torch.tensor(p) for p in u) for u in U_m)).numpy(),
            "the value of model(X, U)", tol=1e-12)
check_gradients(got, torch_gradients(torch_model, (X_m, U_m), dA2_m), ["dX", "dW1", "db1", "dW2", "db2"])
# A block over its own inputs, whose back runs the second affine's, relu's, then the first affine's back.
with own_work(*LIBRARY, stage=2, what="the model block"):
    X_o, U_o = Param(X_m, "X"), tuple(tuple(Param(p, "p") for p in u) for u in U_m)
    order = block_order(model(X_o, U_o), (X_o, U_o), "model")
check(order == ["affine", "relu", "affine"],
      f"model's back ran the nodes' back rules in the order {order}: the last node's first, back to the first")
### BEGIN HIDDEN TESTS
X_mh, _, P_mh = make_problem(44, N=5, D=3, H=4, K=2)
U_mh = ((P_mh["W1"], P_mh["b1"]), (P_mh["W2"], P_mh["b2"]))
dA2_mh = np.random.default_rng(211).normal(size=(5, 2))
with own_work(*LIBRARY, stage=2, what="the model block"):
    got = node_gradients(model, (X_mh, U_mh), dA2_mh)
check_gradients(got, torch_gradients(torch_model, (X_mh, U_mh), dA2_mh),
                [f"{g} of a (5, 3) -> 4 -> 2 network" for g in ("dX", "dW1", "db1", "dW2", "db2")])
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": true, "grade_id": "block-question", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Question (2 points).** What does `block` buy over writing the network as one flat list of nodes and
# calling their `back` in reverse? Think of a network with ten layers, of reusing `model` in another loss,
# and of the order of the `back` calls.
#
# ### BEGIN SOLUTION
# A block is itself a node: it has a value, a gradient slot and one `back`, so it composes like any
# operation. (1) **Abstraction and reuse**: `model` and `loss` are written, tested and debugged once, and
# used as single operations: `loss(model(X, U), T, W)`; swapping the loss, or stacking ten layers, does not
# touch the other unit's code. (2) **Correct order by construction**: the reverse order only has to be
# right inside each block, where it is short and local; at the outer level there are two calls,
# `L.back(); A2.back()`, instead of a long list to keep in step with the forward code. (3) **Hierarchy**:
# blocks nest (a layer is a block of nodes, a network a block of layers), so the graph can be looked at,
# timed or checked at the level that matters. A flat list works but grows with the network, must be
# rewritten whenever the forward code changes, and breaks silently if one `back` is misplaced.
# ### END SOLUTION

# %% [markdown]
# ## 3. Training with the engine
#
# The forward pass is now all we write; `backward(L)` clears every gradient in the graph, seeds $dL = 1$ and runs
# the `back` rules in reverse order. First, the gradients must equal those of the hand-written backprop of
# stage 01 (`coursekit.nets.backprop.loss_and_grads`, the slide's code) and of torch autograd.

# %% nbgrader={"grade": false, "grade_id": "engine-gradients", "locked": true, "schema_version": 3, "solution": false, "task": false}
def engine_gradients(X, T, params, lam):
    """Loss and gradients of the two-layer net computed with your loss and model blocks."""
    P = {k: Param(v, k) for k, v in params.items()}
    L = loss(model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"]))), T, (P["W1"], P["W2"]), lam)
    backward(L)
    return float(value(L)), {k: p.grad for k, p in P.items()}


# %% nbgrader={"grade": true, "grade_id": "engine-versus-backprop", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Your engine's gradients equal the hand-written backprop of stage 01 to 1e-10 (relative),
# and a second backward pass gives the same gradients, not twice them.
X_t, T_t, P_t = make_problem(43, N=10, D=2, H=8, K=3)
L_ref, G_ref = backprop.loss_and_grads(X_t, T_t, P_t, 0.05)
with own_work(*LIBRARY, stage=2, what="the engine with your nodes and blocks"):
    L_eng, G_eng = engine_gradients(X_t, T_t, P_t, 0.05)
    P_twice = {k: Param(v, k) for k, v in P_t.items()}
    L_twice = loss(model(X_t, ((P_twice["W1"], P_twice["b1"]), (P_twice["W2"], P_twice["b2"]))), T_t,
                   (P_twice["W1"], P_twice["W2"]), 0.05)
    backward(L_twice)
    backward(L_twice)
check_close(L_eng, L_ref, "the loss", tol=1e-12)
names = ["W1", "b1", "W2", "b2"]
check_gradients([G_eng[k] for k in names], [G_ref[k] for k in names], [f"the gradient of {k}" for k in names])
check_gradients([P_twice[k].grad for k in names], [G_ref[k] for k in names],
                [f"the gradient of {k} after two backward passes" for k in names])
### BEGIN HIDDEN TESTS
X_h, T_h, P_h = make_problem(44, N=9, D=4, H=6, K=5)
with own_work(*LIBRARY, stage=2, what="the engine with your nodes and blocks"):
    _, G_h = engine_gradients(X_h, T_h, P_h, 0.0)
expected = torch_gradients(
    lambda W1, b1, W2, b2: torch_loss(torch_model(torch.tensor(X_h), ((W1, b1), (W2, b2))), torch.tensor(T_h), (W1, W2), 0.0),
    tuple(P_h[k] for k in names), 1.0)
check_gradients([G_h[k] for k in names], expected, [f"the gradient of {k} (lam = 0)" for k in names])
### END HIDDEN TESTS

# %% [markdown]
# Now train the stage-01 network on the spiral with nothing but forward code: gradient descent reads
# `p.grad` from every parameter after `backward(L)`. (With full-batch steps of $\varepsilon = 1$ the loss curve
# has spikes. That is not a bug in `back`: once the loss's curvature along the steepest direction exceeds
# $2/\varepsilon$, a step overshoots the floor of the valley and the loss jumps, then recovers within a few steps.
# Stage 01's explorer shows them go away with a smaller learning rate, about 0.3.)

# %% nbgrader={"grade": false, "grade_id": "engine-training-loop", "locked": true, "schema_version": 3, "solution": false, "task": false}
X_spiral, labels_spiral = samples.spiral(n_per_class=100, num_classes=3, noise=0.2, seed=0)
T_spiral = np.eye(3)[labels_spiral]
STEPS = BUDGET.pick(full=5000, fast=2000)


def train_with_engine(X, T, hidden=100, lam=1e-3, lr=1.0, steps=STEPS, seed=0):
    g = np.random.default_rng(seed)
    W1, b1 = Param(0.01 * g.standard_normal((X.shape[1], hidden)), "W1"), Param(np.zeros(hidden), "b1")
    W2, b2 = Param(0.01 * g.standard_normal((hidden, T.shape[1])), "W2"), Param(np.zeros(T.shape[1]), "b2")
    losses = []
    for _ in range(steps):
        L = loss(model(X, ((W1, b1), (W2, b2))), T, (W1, W2), lam)
        backward(L)
        for p in (W1, b1, W2, b2):
            p.value -= lr * p.grad
        losses.append(float(value(L)))
    return (W1, b1, W2, b2), losses


# %% nbgrader={"grade": true, "grade_id": "engine-training", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Training with your engine reaches the accuracy of stage 01 (fast budget: 2000 steps, >= 90%; full: >= 95%).
with own_work(*LIBRARY, stage=2, what="training with your nodes and blocks", seconds=120):
    trained, losses_trained = train_with_engine(X_spiral, T_spiral)
W1_t, b1_t, W2_t, b2_t = (p.value for p in trained)
predicted = (np.maximum(X_spiral @ W1_t + b1_t, 0.0) @ W2_t + b2_t).argmax(axis=1)
accuracy_trained = float(np.mean(predicted == labels_spiral))
required = BUDGET.pick(full=0.95, fast=0.90)
check(accuracy_trained >= required,
      f"training accuracy {accuracy_trained:.1%} is below the {required:.0%} required in the {BUDGET.name} budget")
print(f"training accuracy after {STEPS} steps: {accuracy_trained:.1%}")

# %% nbgrader={"grade": false, "grade_id": "engine-training-plot", "locked": true, "schema_version": 3, "solution": false, "task": false}
if "trained" in globals():  # set by the test cell above once your nodes and blocks work
    fig, (ax_regions, ax_loss) = plots.new_figure(ncols=2)
    plots.plot_decision_regions(
        ax_regions, lambda G: (np.maximum(G @ W1_t + b1_t, 0.0) @ W2_t + b2_t).argmax(axis=1), X_spiral,
        labels_spiral, title=f"trained with the engine ({accuracy_trained:.1%} correct)")
    plots.plot_loss(ax_loss, losses_trained)
    plots.show(fig)
else:
    print("Complete the exercises and run the training test above to see the decision regions.")

# %% [markdown]
# ## 4. Watch the backward pass
#
# The viewer draws the graph of one loss evaluation on 8 samples (blocks opened up: each node is tagged
# with its block). Parameters are green, nodes blue; each box shows the value ("v", a norm for arrays) and
# the gradient ("∂", "—" until it arrives). Move the slider to run the `back` rules one node at a time: the
# node that just ran is orange. Watch `W1` and `W2`: they receive a contribution from `decay` first and
# from their `affine` later, and the two add up.

# %% nbgrader={"grade": false, "grade_id": "graph-viewer", "locked": true, "schema_version": 3, "solution": false, "task": false}
if not coursekit.under_grading():  # the autograder skips the widget
    from coursekit.nets import ops
    from coursekit.explore.nets import GraphViewer

    g_view = np.random.default_rng(0)
    X_view, T_view = X_spiral[::38][:8], T_spiral[::38][:8]
    V1, c1 = Param(g_view.normal(size=(2, 4)), "W1"), Param(np.zeros(4), "b1")
    V2, c2 = Param(g_view.normal(size=(4, 3)), "W2"), Param(np.zeros(3), "b2")
    # drawn with coursekit's reference nodes, so that the viewer works before your answers do
    L_view = ops.loss(ops.model(X_view, ((V1, c1), (V2, c2))), T_view, (V1, V2), 0.1)
    display(GraphViewer(L_view))

# %% [markdown]
# ## Summary
#
# Each operation now carries its own backward rule, `node(value, back, inputs)`; gradient slots that assign
# first and add afterwards make reuse correct; blocks compose nodes into `loss` and `model`; and `backward`
# runs everything in reverse order. The result equals the hand-written backprop of stage 01 and torch
# autograd. The reference engine is `coursekit.nets.autodiff` (`node`, `block`, `Param`, `backward`, `no_grad`
# for inference), the reference operations are `coursekit.nets.ops` (`relu`, `affine`, `entropy`, `decay`, `add`,
# `loss`, `model`); the viewer is `coursekit.explore.nets.GraphViewer`.
# Next, stage 03 adds the operation that made deep learning work for images: convolution.
