"""coursekit.nets.autodiff and coursekit.nets.ops against independent oracles, and the engine's own rules.

Oracles: torch autograd in float64 on random graphs with reuse (diamonds, a value feeding several
nodes, ``add((Z, Z))``), centred-difference gradients (:func:`coursekit.grading.numeric_gradient`)
and the hand-written stage-01 backward pass :func:`coursekit.nets.backprop.loss_and_grads`. No expected value
is taken from running the engine itself; engine-vs-engine comparisons only check properties
(a second pass equals the first, ``no_grad`` values equal recorded ones...).

Tolerances: the same float64 formula computed by torch or numpy agrees to ~1e-15 relative, so
oracle comparisons use the whole-array :func:`scaled_error` <= 1e-10 (entry-by-entry relative error
is meaningless for gradient entries that cancel to ~1e-17). Centred differences (eps = 1e-6) agree
to ~1e-9; those checks use 1e-6, as :func:`coursekit.grading.check_gradient` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.special
import torch

from coursekit.nets import autodiff as ad, ops
from coursekit.nets import backprop
from coursekit.grading.oracles import torch_two_layer

from .helpers import const, leaf, random_params
from coursekit.grading import numeric_gradient, rel_error, scaled_error

ORACLE_TOL = 1e-10  # torch / stage-01 numpy vs the engine, float64
NUMERIC_TOL = 1e-6  # centred differences, eps = 1e-6
GRAPH_SEEDS = range(120)
NUMERIC_SEEDS = range(0, 120, 12)
NET_SHAPES = ((1, 2, 3, 2), (5, 3, 4, 3), (16, 6, 7, 4))  # (N, D, H, K)
LAMS = (0.0, 0.1, 1.3)


# -- helpers ---------------------------------------------------------------------------------------


def assert_grad_close(actual, expected, name, tol=ORACLE_TOL):
    assert actual is not None, f"{name} has no gradient"
    actual = np.asarray(actual)
    assert actual.shape == np.shape(expected), f"{name}: grad shape {actual.shape} != {np.shape(expected)}"
    err = scaled_error(actual, expected)
    assert err <= tol, f"{name}: gradient error {err:.1e} > {tol:.0e}"


def one_hot(rng, N, K):
    return np.eye(K)[rng.integers(0, K, size=N)]


def soft_targets(rng, N, K):
    return scipy.special.softmax(rng.standard_normal((N, K)), axis=1)


def torch_entropy(A, T):
    return -(T * torch.log_softmax(A, dim=1)).sum() / A.shape[0]


def torch_decay(ws, lam):
    return lam / 2 * sum((w * w).sum() for w in ws)


def net_problem(seed, shape):
    N, D, H, K = shape
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), one_hot(rng, N, K), random_params(rng, D, H, K)


def engine_net(X, T, params, lam, model=None, loss=None):
    """The stage-01 net built from ``model`` and ``loss`` blocks; returns (L, Params by name)."""
    model = model or ops.model
    loss = loss or ops.loss
    P = {k: ad.Param(v.copy(), k) for k, v in params.items()}
    A2 = model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"])))
    L = loss(A2, T, (P["W1"], P["W2"]), lam)
    return L, P


# user-defined operations, a few lines each, as the lecture writes them


def square(A):
    a = ad.value(A)

    def back(dZ, dA):
        dA += 2 * a * dZ

    return ad.node(a * a, back, (A,))


def tanh(A):
    Z = np.tanh(ad.value(A))

    def back(dZ, dA):
        dA += dZ * (1 - Z * Z)

    return ad.node(Z, back, (A,))


# -- random graphs ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """A random graph, evaluated the same way by the engine and by torch.

    The pool of values starts with the (N, H) leaves and constants; every step appends one (N, H)
    value computed from values picked among *all* earlier ones, so reuse and diamonds happen.
    """

    N: int
    H: int
    leaves: list  # (N, H) Params
    consts: list  # (N, H) plain numpy inputs
    weights: list  # (H, H) Params
    biases: list  # (H,) Params
    steps: list = field(default_factory=list)
    T: np.ndarray | None = None
    head: str = "entropy"  # entropy | entropy+decay | entropy+decay+entropy
    decayed: tuple = ()  # indices into weights, repeats allowed
    lam: float = 0.0

    @property
    def param_arrays(self):
        return self.leaves + self.weights + self.biases


def make_plan(seed) -> Plan:
    rng = np.random.default_rng(seed)
    N, H = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    plan = Plan(
        N=N,
        H=H,
        leaves=[rng.standard_normal((N, H)) for _ in range(rng.integers(1, 4))],
        consts=[rng.standard_normal((N, H)) for _ in range(rng.integers(0, 2))],
        weights=[rng.standard_normal((H, H)) for _ in range(rng.integers(1, 4))],
        biases=[rng.standard_normal(H) for _ in range(rng.integers(1, 3))],
    )
    pool = len(plan.leaves) + len(plan.consts)

    def pick(size=None):  # any earlier value, later ones (more likely nodes of the graph) favoured
        weights = np.arange(1.0, pool + 1)
        return rng.choice(pool, size=size, p=weights / weights.sum())

    for _ in range(rng.integers(3, 9)):
        kind = rng.choice(["relu", "affine", "add2", "add3"], p=[0.25, 0.3, 0.3, 0.15])
        if kind == "relu":
            plan.steps.append(("relu", int(pick())))
        elif kind == "affine":
            plan.steps.append((
                "affine", int(pick()),
                int(rng.integers(len(plan.weights))), int(rng.integers(len(plan.biases))),
            ))
        else:  # inputs drawn with replacement: add((Z, Z)) happens
            n = 2 if kind == "add2" else 3
            plan.steps.append(("add", tuple(int(i) for i in pick(n))))
        pool += 1
    plan.T = soft_targets(rng, N, H) if rng.random() < 0.5 else one_hot(rng, N, H)
    plan.head = str(rng.choice(["entropy", "entropy+decay", "entropy+decay+entropy"]))
    if plan.head != "entropy":
        plan.decayed = tuple(int(i) for i in rng.integers(len(plan.weights), size=rng.integers(1, 4)))
        plan.lam = 0.0 if rng.random() < 0.2 else float(rng.uniform(0.01, 2.0))
    return plan


def evaluate(plan: Plan, params: list, ops: dict):
    """Run ``plan`` with ``params`` (leaves, weights, biases) and the operations ``ops``."""
    nl, nw = len(plan.leaves), len(plan.weights)
    leaves, weights, biases = params[:nl], params[nl:nl + nw], params[nl + nw:]
    pool = list(leaves) + [ops["const"](c) for c in plan.consts]
    for step in plan.steps:
        if step[0] == "relu":
            pool.append(ops["relu"](pool[step[1]]))
        elif step[0] == "affine":
            pool.append(ops["affine"](pool[step[1]], (weights[step[2]], biases[step[3]])))
        else:
            pool.append(ops["add"](tuple(pool[i] for i in step[1])))
    T = ops["const"](plan.T)
    D = ops["entropy"](pool[-1], T)
    if plan.head == "entropy":
        return D
    R = ops["decay"](tuple(weights[i] for i in plan.decayed), plan.lam)
    return ops["add"]((D, R) if plan.head == "entropy+decay" else (D, R, D))


ENGINE_OPS = {
    "const": lambda a: a,  # plain numpy arrays are constants
    "relu": ops.relu,
    "affine": ops.affine,
    "add": ops.add,
    "entropy": ops.entropy,
    "decay": ops.decay,
}

TORCH_OPS = {
    "const": const,
    "relu": torch.relu,
    "affine": lambda X, U: X @ U[0] + U[1],
    "add": lambda X: sum(X[1:], X[0]),
    "entropy": torch_entropy,
    "decay": torch_decay,
}


def engine_params(plan):
    return [ad.Param(a.copy(), f"p{i}") for i, a in enumerate(plan.param_arrays)]


def torch_run(plan):
    params = [leaf(a) for a in plan.param_arrays]
    L = evaluate(plan, params, TORCH_OPS)
    if L.requires_grad:
        L.backward()
    return L.item(), [None if p.grad is None else p.grad.numpy() for p in params]


def consumer_counts(out) -> dict:
    """How many times each value of the graph is used as an input (``add((Z, Z))`` counts twice)."""
    counts: dict[int, int] = {}
    for v in ad.graph(out):
        if isinstance(v, ad.Node):
            for p in ad._flatten(v.inputs):
                if isinstance(p, ad.Value):
                    counts[id(p)] = counts.get(id(p), 0) + 1
    return counts


def node_reuse(out) -> int:
    """The largest number of uses of one *node* (not a Param) of the graph."""
    counts = consumer_counts(out)
    return max((counts.get(id(v), 0) for v in ad.graph(out) if isinstance(v, ad.Node)), default=0)


@pytest.mark.parametrize("seed", GRAPH_SEEDS)
def test_random_graph_matches_torch(seed):
    plan = make_plan(seed)
    params = engine_params(plan)
    L = evaluate(plan, params, ENGINE_OPS)
    ad.backward(L)
    loss, grads = torch_run(plan)
    assert L.value.shape == ()
    assert rel_error(L.value, loss) <= 1e-12
    for p, g in zip(params, grads):
        if g is None:  # not in the graph: torch leaves it None, so must the engine
            assert p.grad is None, f"{p.name} does not feed the loss but has a gradient"
        else:
            assert_grad_close(p.grad, g, p.name)


def test_random_graphs_really_have_reuse():
    """The generator is only a test of accumulation if values really feed several nodes."""
    with_reuse = with_three = with_params_shared = 0
    for seed in GRAPH_SEEDS:
        plan = make_plan(seed)
        L = evaluate(plan, engine_params(plan), ENGINE_OPS)
        reuse = node_reuse(L)
        with_reuse += reuse > 1
        with_three += reuse > 2
        counts = consumer_counts(L)
        with_params_shared += any(counts.get(id(v), 0) > 1 for v in ad.graph(L) if isinstance(v, ad.Param))
    n = len(GRAPH_SEEDS)
    assert with_reuse > n / 2, f"only {with_reuse} of {n} random graphs reuse a node"
    assert with_three >= 10, f"only {with_three} of {n} random graphs have a node feeding three uses"
    assert with_params_shared > n / 2


@pytest.mark.parametrize("seed", NUMERIC_SEEDS)
def test_random_graph_matches_numeric_gradient(seed):
    plan = make_plan(seed)
    params = engine_params(plan)
    L = evaluate(plan, params, ENGINE_OPS)
    ad.backward(L)
    f = lambda _: float(evaluate(plan, params, ENGINE_OPS).value)  # noqa: E731 - rebuilds the forward
    used = {id(v) for v in ad.graph(L)}
    for p in params:
        if id(p) not in used:
            continue
        analytic = p.grad.copy()
        numeric = numeric_gradient(f, p.value)  # perturbs p.value in place
        err = scaled_error(analytic, numeric)
        assert err <= NUMERIC_TOL, f"{p.name}: error {err:.1e} against centred differences"


def test_random_graph_with_user_ops_matches_torch():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        N, H = 4, 3
        P, Q = (ad.Param(rng.standard_normal((N, H)), n) for n in "PQ")
        W, b = ad.Param(rng.standard_normal((H, H)), "W"), ad.Param(rng.standard_normal(H), "b")
        T = soft_targets(rng, N, H)
        S = square(P)
        A = ops.affine(ops.add((S, Q, S)), (W, b))
        Z = tanh(A)
        L = ops.entropy(ops.add((Z, square(Z), ops.relu(A))), T)
        ad.backward(L)

        tp = {n: leaf(v.value) for n, v in zip("PQWb", (P, Q, W, b))}
        tS = tp["P"] ** 2
        tA = (tS + tp["Q"] + tS) @ tp["W"] + tp["b"]
        tZ = torch.tanh(tA)
        tL = torch_entropy(tZ + tZ**2 + torch.relu(tA), const(T))
        tL.backward()
        assert rel_error(L.value, tL.item()) <= 1e-12
        for n, v in zip("PQWb", (P, Q, W, b)):
            assert_grad_close(v.grad, tp[n].grad.numpy(), n)


# -- the stage-01 network: hand-written backprop, torch, centred differences -------------------------


@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("shape", NET_SHAPES)
@pytest.mark.parametrize("seed", (0, 1, 2))
def test_model_loss_equals_stage01_backprop(seed, shape, lam):
    X, T, params = net_problem(seed, shape)
    L, P = engine_net(X, T, params, lam)
    ad.backward(L)
    ref_loss, ref = backprop.loss_and_grads(X, T, params, lam)
    assert rel_error(L.value, ref_loss) <= 1e-12
    for k in backprop.PARAM_NAMES:
        assert_grad_close(P[k].grad, ref[k], k)
    reference = torch_two_layer(X, T, params, lam)
    t_loss, t_grads = reference.loss, reference.grads
    assert rel_error(L.value, t_loss) <= 1e-12
    for k in backprop.PARAM_NAMES:
        assert_grad_close(P[k].grad, t_grads[k], k)


@pytest.mark.parametrize("lam", (0.0, 0.7))
def test_model_loss_matches_numeric_gradient(lam):
    X, T, params = net_problem(3, (6, 3, 5, 4))
    L, P = engine_net(X, T, params, lam)
    ad.backward(L)

    def f(_):  # the forward rebuilt from the (perturbed in place) Params
        A2 = ops.model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"])))
        return float(ops.loss(A2, T, (P["W1"], P["W2"]), lam).value)

    for k in backprop.PARAM_NAMES:
        analytic = P[k].grad.copy()
        err = scaled_error(analytic, numeric_gradient(f, P[k].value))
        assert err <= NUMERIC_TOL, f"{k}: error {err:.1e} against centred differences"


# -- rule 1: accumulation --------------------------------------------------------------------------


def test_slot_assigns_first_then_adds():
    s = ad.Slot((2,), "x")
    assert s.value is None
    s += np.array([1.0, 2.0])
    np.testing.assert_array_equal(s.value, [1.0, 2.0])
    s += np.array([10.0, 20.0])
    np.testing.assert_array_equal(s.value, [11.0, 22.0])
    s.value = None
    s += np.array([3.0, 4.0])
    np.testing.assert_array_equal(s.value, [3.0, 4.0])


def test_slot_contribution_is_not_mutated():
    s = ad.Slot((2,), "x")
    first = np.array([1.0, 2.0])
    s += first
    s += np.array([1.0, 1.0])
    np.testing.assert_array_equal(first, [1.0, 2.0])


def test_value_used_twice_collects_both_contributions():
    P = ad.Param(1.5, "P")
    ad.backward(ops.add((P, P)))
    assert P.grad == 2.0
    ad.backward(ops.add((ops.add((P, P)), P)))
    assert P.grad == 3.0


def test_one_value_feeding_three_nodes():
    rng = np.random.default_rng(7)
    P = ad.Param(rng.standard_normal((3, 4)), "P")
    W, b = ad.Param(rng.standard_normal((4, 4)), "W"), ad.Param(rng.standard_normal(4), "b")
    T = one_hot(rng, 3, 4)
    L = ops.entropy(ops.add((ops.relu(P), P, ops.affine(P, (W, b)))), T)
    ad.backward(L)
    tP, tW, tb = leaf(P.value), leaf(W.value), leaf(b.value)
    torch_entropy(torch.relu(tP) + tP + (tP @ tW + tb), const(T)).backward()
    assert_grad_close(P.grad, tP.grad.numpy(), "P")
    assert_grad_close(W.grad, tW.grad.numpy(), "W")


def test_first_contribution_assigns_no_stale_gradient():
    P = ad.Param(2.0, "P")
    P.slot.value = np.array(99.0)  # stale, as if left by an earlier pass
    ad.backward(ops.add((P, P)))
    assert P.grad == 2.0


def test_backward_of_a_new_graph_does_not_add_to_the_old_gradients():
    rng = np.random.default_rng(3)
    X, T, params = net_problem(4, (5, 3, 4, 3))
    L, P = engine_net(X, T, params, 0.5)
    ad.backward(L)
    # a second, different graph on the same Params: the gradients are those of the new loss alone
    T2 = one_hot(rng, 5, 3)
    A2 = ops.model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"])))
    ad.backward(ops.entropy(A2, T2))
    _, ref = backprop.loss_and_grads(X, T2, params, 0.0)
    for k in backprop.PARAM_NAMES:
        assert_grad_close(P[k].grad, ref[k], k)


# -- rule 2: a second backward pass gives the same gradients ------------------------------------------


@pytest.mark.parametrize("seed", range(0, 120, 10))
def test_backward_twice_random_graph(seed):
    plan = make_plan(seed)
    params = engine_params(plan)
    L = evaluate(plan, params, ENGINE_OPS)
    ad.backward(L)
    first = [None if p.grad is None else p.grad.copy() for p in params]
    ad.backward(L)
    for p, g in zip(params, first):
        if g is None:
            assert p.grad is None
        else:
            np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("lam", (0.0, 0.3))
def test_backward_twice_with_blocks(lam):
    X, T, params = net_problem(5, (6, 3, 4, 3))
    L, P = engine_net(X, T, params, lam)
    ad.backward(L)
    ad.backward(L)
    _, ref = backprop.loss_and_grads(X, T, params, lam)
    for k in backprop.PARAM_NAMES:
        assert_grad_close(P[k].grad, ref[k], k)
    # the blocks' inner nodes are cleared too: dD = dR = 1, not 2
    D, R, _ = L.inner
    assert D.grad == 1.0 and R.grad == 1.0
    assert L.grad == 1.0


def test_nested_blocks_twice_match_stage01():
    def net_loss(X, U, T, W, lam):
        return ad.block(ops.loss(ops.model(X, U), T, W, lam), (X, U, T, W))

    X, T, params = net_problem(6, (5, 4, 3, 3))
    P = {k: ad.Param(v.copy(), k) for k, v in params.items()}
    L = net_loss(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"])), T, (P["W1"], P["W2"]), 0.2)
    assert L.op == "net_loss"
    _, ref = backprop.loss_and_grads(X, T, params, 0.2)
    for _ in range(2):
        ad.backward(L)
        for k in backprop.PARAM_NAMES:
            assert_grad_close(P[k].grad, ref[k], k)


def test_block_output_reused_matches_torch():
    X, T, params = net_problem(20, (5, 3, 4, 3))
    P = {k: ad.Param(v.copy(), k) for k, v in params.items()}
    M = ops.model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"])))
    L = ops.loss(ops.add((M, M, ops.relu(M))), T, (P["W1"], P["W1"]), 0.3)  # W1 decayed twice
    tp = {k: leaf(v) for k, v in params.items()}
    tM = torch.relu(const(X) @ tp["W1"] + tp["b1"]) @ tp["W2"] + tp["b2"]
    tL = torch_entropy(tM + tM + torch.relu(tM), const(T)) + torch_decay((tp["W1"], tp["W1"]), 0.3)
    tL.backward()
    for _ in range(2):
        ad.backward(L)
        for k in backprop.PARAM_NAMES:
            assert_grad_close(P[k].grad, tp[k].grad.numpy(), k)


def test_block_closing_over_a_param_backward_twice():
    """A block whose inner node uses a Param that is not among the block's inputs (a layer closed
    over its weights). ``out`` depends on that Param, so backward must clear it: the second pass
    equals the first, and equals backward_steps (which opens blocks and does clear it)."""
    rng = np.random.default_rng(21)
    W, b = ad.Param(rng.standard_normal((3, 2)), "W"), ad.Param(rng.standard_normal(2), "b")
    X, T = rng.standard_normal((4, 3)), one_hot(rng, 4, 2)

    def layer(X):
        return ad.block(ops.affine(X, (W, b)), (X,))

    L = ops.entropy(layer(X), T)
    tW, tb = leaf(W.value), leaf(b.value)
    torch_entropy(const(X) @ tW + tb, const(T)).backward()
    list(ad.backward_steps(L))
    assert_grad_close(W.grad, tW.grad.numpy(), "W after backward_steps")
    for i in range(2):
        ad.backward(L)
        assert_grad_close(W.grad, tW.grad.numpy(), f"W after backward pass {i + 1}")
        assert_grad_close(b.grad, tb.grad.numpy(), f"b after backward pass {i + 1}")


# -- rule 3: no_grad --------------------------------------------------------------------------------


def test_no_grad_records_nothing():
    X, T, params = net_problem(8, (5, 3, 4, 3))
    P = {k: ad.Param(v.copy(), k) for k, v in params.items()}
    U = ((P["W1"], P["b1"]), (P["W2"], P["b2"]))
    recorded_A2 = ops.model(X, U)
    recorded_L = ops.loss(recorded_A2, T, (P["W1"], P["W2"]), 0.1)
    with ad.no_grad():
        Z = ops.relu(P["W1"])
        A2 = ops.model(X, U)
        L = ops.loss(A2, T, (P["W1"], P["W2"]), 0.1)
    assert Z.inputs == () and Z.parents == []
    assert type(A2) is ad.Node and type(L) is ad.Node  # block() returns a plain node
    assert A2.op == "model" and L.op == "loss"
    assert ad.graph(L) == [L]
    np.testing.assert_array_equal(A2.value, recorded_A2.value)
    np.testing.assert_array_equal(L.value, recorded_L.value)
    np.testing.assert_array_equal(Z.value, np.maximum(0, params["W1"]))
    with pytest.raises(RuntimeError):
        ad.backward(L)
    with pytest.raises(RuntimeError):
        Z.back()
    with pytest.raises(RuntimeError):
        A2.back()
    with pytest.raises(RuntimeError):
        list(ad.backward_steps(L))
    for p in P.values():
        assert p.grad is None


def test_no_grad_value_matches_stage01_and_recording_resumes():
    X, T, params = net_problem(9, (4, 3, 5, 2))
    P = {k: ad.Param(v.copy(), k) for k, v in params.items()}
    with ad.no_grad():
        L = ops.loss(ops.model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"]))), T, (P["W1"], P["W2"]), 0.4)
    ref_loss, _ = backprop.loss_and_grads(X, T, params, 0.4)
    assert rel_error(L.value, ref_loss) <= 1e-12
    Z = ops.relu(P["W1"])
    assert Z.parents == [P["W1"]]


def test_no_grad_restores_recording_after_an_error_and_when_nested():
    P = ad.Param(np.ones((2, 2)), "P")
    with pytest.raises(ZeroDivisionError):
        with ad.no_grad():
            1 / 0
    assert ops.relu(P).parents == [P]
    with ad.no_grad():
        with ad.no_grad():
            pass
        assert ops.relu(P).parents == []  # still off after the inner context
    assert ops.relu(P).parents == [P]


# -- rule 4: shape checks ---------------------------------------------------------------------------


def test_slot_refuses_wrong_shape():
    s = ad.Slot((2, 3), "W1")
    with pytest.raises(ValueError) as err:
        s += np.ones((3, 2))
    msg = str(err.value)
    assert "W1" in msg and "(2, 3)" in msg and "(3, 2)" in msg
    with pytest.raises(ValueError):
        s += np.ones(3)  # would broadcast: still refused
    assert s.value is None


def test_wrong_shaped_contribution_in_backward_names_the_param():
    def bad_sum(A):  # a wrong backward rule: the gradient of A loses its first axis
        def back(dS, dA):
            dA += dS * np.ones(ad.value(A).shape[1:])

        return ad.node(float(ad.value(A).sum()), back, (A,))

    P = ad.Param(np.ones((4, 3)), "Wbad")
    with pytest.raises(ValueError) as err:
        ad.backward(bad_sum(P))
    msg = str(err.value)
    assert "Wbad" in msg and "(4, 3)" in msg and "(3,)" in msg


def test_affine_shape_errors():
    X, W, b = np.ones((4, 3)), np.ones((2, 5)), np.ones(5)
    with pytest.raises(ValueError) as err:
        ops.affine(X, (W, b))
    assert "(4, 3)" in str(err.value) and "(2, 5)" in str(err.value)
    with pytest.raises(ValueError) as err:
        ops.affine(np.ones((4, 2)), (W, np.ones(4)))
    assert "(4,)" in str(err.value)
    with pytest.raises(ValueError):
        ops.affine(np.ones(2), (W, b))


def test_entropy_shape_errors():
    with pytest.raises(ValueError) as err:
        ops.entropy(np.ones((4, 3)), np.ones((4, 2)))
    assert "(4, 3)" in str(err.value) and "(4, 2)" in str(err.value)
    with pytest.raises(ValueError):
        ops.entropy(np.ones(3), np.ones(3))


def test_add_shape_errors():
    with pytest.raises(ValueError) as err:
        ops.add((ad.Param(np.ones((2, 3))), np.ones((3, 2))))
    assert "(2, 3)" in str(err.value) and "(3, 2)" in str(err.value)
    with pytest.raises(ValueError):
        ops.add(())


@pytest.mark.parametrize("lam", (-0.1, -1e-12, math.nan))
def test_decay_refuses_negative_or_nan_lam(lam):
    with pytest.raises(ValueError):
        ops.decay((ad.Param(np.ones((2, 2))),), lam)


def test_backward_needs_a_scalar():
    A = ops.relu(ad.Param(np.ones((2, 3)), "P"))
    with pytest.raises(ValueError) as err:
        ad.backward(A)
    assert "(2, 3)" in str(err.value)
    with pytest.raises(ValueError):
        next(ad.backward_steps(A))


# -- rule 5: the lecture's call form ------------------------------------------------------------------


def lecture_graph(seed=10, shape=(6, 3, 5, 4), lam=0.3):
    X, T, params = net_problem(seed, shape)
    W1, b1, W2, b2 = (ad.Param(params[k].copy(), k) for k in backprop.PARAM_NAMES)
    A1 = ops.affine(X, (W1, b1))
    Z = ops.relu(A1)
    A2 = ops.affine(Z, (W2, b2))
    D = ops.entropy(A2, T)
    R = ops.decay((W1, W2), lam)
    L = ops.add((D, R))
    return dict(X=X, T=T, params=params, lam=lam, W1=W1, b1=b1, W2=W2, b2=b2,
                A1=A1, Z=Z, A2=A2, D=D, R=R, L=L)


def test_lecture_explicit_backward_sequence():
    g = lecture_graph()
    X, T, W1, b1, W2, b2 = (g[k] for k in ("X", "T", "W1", "b1", "W2", "b2"))
    A1, Z, A2, D, R, L = (g[k] for k in ("A1", "Z", "A2", "D", "R", "L"))
    for v in (W1, b1, W2, b2, A1, Z, A2, D, R, L):
        v.zero_grad()
    L.slot += 1.0
    L.back((D, R))
    R.back((W1, W2))
    D.back(A2, T)
    A2.back(Z, (W2, b2))
    Z.back(A1)
    A1.back(X, (W1, b1))
    _, ref = backprop.loss_and_grads(X, T, g["params"], g["lam"])
    by_hand = {}
    for k in backprop.PARAM_NAMES:
        assert_grad_close(g[k].grad, ref[k], k)
        by_hand[k] = g[k].grad.copy()
    ad.backward(L)
    for k in backprop.PARAM_NAMES:
        np.testing.assert_allclose(g[k].grad, by_hand[k], rtol=1e-14, atol=0)


def test_back_without_a_gradient_does_nothing():
    P = ad.Param(np.array([[-1.0, 2.0]]), "P")
    Z = ops.relu(P)
    Z.back()  # Z has no gradient yet: nothing to pass on
    Z.back(P)
    assert P.grad is None
    Z.slot += np.array([[3.0, 5.0]])
    Z.back(P)
    np.testing.assert_array_equal(P.grad, [[0.0, 5.0]])


def test_back_refuses_other_inputs():
    g = lecture_graph()
    X, T, W1, b1, W2, b2 = (g[k] for k in ("X", "T", "W1", "b1", "W2", "b2"))
    A1, Z, A2, D, R, L = (g[k] for k in ("A1", "Z", "A2", "D", "R", "L"))
    ad.backward(L)
    wrong_calls = [
        lambda: Z.back(A2),
        lambda: Z.back(A1, A1),
        lambda: A1.back(X),
        lambda: A1.back(X, (W2, b2)),
        lambda: A1.back(X, (b1, W1)),
        lambda: A1.back(np.ones_like(X), (W1, b1)),
        lambda: A2.back(A1, (W2, b2)),
        lambda: L.back((R, D)),
        lambda: L.back(D, R),
        lambda: R.back((W1,)),
        lambda: D.back(A1, T),
    ]
    for call in wrong_calls:
        with pytest.raises(ValueError):
            call()
    # the refused calls added nothing
    _, ref = backprop.loss_and_grads(X, T, g["params"], g["lam"])
    for k in backprop.PARAM_NAMES:
        assert_grad_close(g[k].grad, ref[k], k)


def test_block_back_checks_inputs():
    X, T, params = net_problem(11, (4, 3, 3, 2))
    P = {k: ad.Param(v.copy(), k) for k, v in params.items()}
    U = ((P["W1"], P["b1"]), (P["W2"], P["b2"]))
    M = ops.model(X, U)
    L = ops.loss(M, T, (P["W1"], P["W2"]), 0.0)
    for v in (*P.values(), M, L):
        v.zero_grad()
    L.slot += 1.0
    L.back(M, T, (P["W1"], P["W2"]))  # the lecture's form, accepted
    M.back(X, U)
    _, ref = backprop.loss_and_grads(X, T, params, 0.0)
    for k in backprop.PARAM_NAMES:
        assert_grad_close(P[k].grad, ref[k], k)
    with pytest.raises(ValueError):
        M.back(X, ((P["W2"], P["b2"]), (P["W1"], P["b1"])))
    with pytest.raises(ValueError):
        L.back(M, T, (P["W2"], P["W1"]))


# -- rule 6: automatic reverse order ------------------------------------------------------------------


def loss_auto(A, T, W, lam):
    D = ops.entropy(A, T)
    R = ops.decay(W, lam)
    return ad.block(ops.add((D, R)), (A, T, W))


def model_auto(X, U):
    U1, U2 = U
    return ad.block(ops.affine(ops.relu(ops.affine(X, U1)), U2), (X, U))


@pytest.mark.parametrize("lam", (0.0, 0.25))
@pytest.mark.parametrize("shape", NET_SHAPES)
def test_block_with_automatic_back_equals_explicit_blocks(shape, lam):
    X, T, params = net_problem(12, shape)
    L_auto, P_auto = engine_net(X, T, params, lam, model=model_auto, loss=loss_auto)
    L, P = engine_net(X, T, params, lam)
    assert L_auto.op == "loss_auto" and isinstance(L_auto, ad.Block)
    ad.backward(L_auto)
    ad.backward(L)
    _, ref = backprop.loss_and_grads(X, T, params, lam)
    for k in backprop.PARAM_NAMES:
        np.testing.assert_allclose(P_auto[k].grad, P[k].grad, rtol=1e-13, atol=1e-15)
        assert_grad_close(P_auto[k].grad, ref[k], k)


# -- rule 7: names, graph, inner nodes, steps ---------------------------------------------------------


def test_op_names_are_the_creating_functions():
    P = ad.Param(np.random.default_rng(0).standard_normal((3, 2)), "P")
    W, b = ad.Param(np.ones((2, 2)), "W"), ad.Param(np.zeros(2), "b")
    T = np.eye(2)[[0, 1, 1]]
    assert ops.relu(P).op == "relu"
    assert ops.affine(P, (W, b)).op == "affine"
    assert ops.add((P, P)).op == "add"
    assert ops.entropy(P, T).op == "entropy"
    assert ops.decay((W,), 0.1).op == "decay"
    assert square(P).op == "square"
    assert tanh(P).op == "tanh"
    M = ops.model(P, ((W, b), (W, b)))
    assert M.op == "model"
    assert ops.loss(M, T, (W,), 0.1).op == "loss"


def test_op_name_of_an_op_defined_inside_a_function():
    """The op is named after the function ``back`` is defined in, even when that function is
    itself local (an op written inside a helper, a test or a notebook function)."""

    def cube(A):
        a = ad.value(A)

        def back(dZ, dA):
            dA += 3 * a * a * dZ

        return ad.node(a**3, back, (A,))

    P = ad.Param(np.array([1.0, 2.0]), "P")
    assert cube(P).op == "cube"


def test_graph_lists_values_in_creation_order_with_each_once():
    g = lecture_graph()
    expected = [g[k] for k in ("W1", "b1", "W2", "b2", "A1", "Z", "A2", "D", "R", "L")]
    got = ad.graph(g["L"])
    assert len(got) == len(expected) and all(a is b for a, b in zip(got, expected))
    # a diamond: Z feeds two nodes, listed once
    P = ad.Param(np.ones((2, 2)), "P")
    Z = ops.relu(P)
    S = ops.add((ops.relu(Z), Z, Z))
    got = ad.graph(S)
    assert [v.name for v in got] == ["P", "relu", "relu", "add"] and got[1] is Z


def test_graph_treats_blocks_as_opaque_and_inner_lists_them():
    X, T, params = net_problem(13, (4, 3, 3, 2))
    P = {k: ad.Param(v.copy(), k) for k, v in params.items()}
    M = ops.model(X, ((P["W1"], P["b1"]), (P["W2"], P["b2"])))
    L = ops.loss(M, T, (P["W1"], P["W2"]), 0.1)
    got = ad.graph(L)
    expected = [P["W1"], P["b1"], P["W2"], P["b2"], M, L]
    assert len(got) == len(expected) and all(a is b for a, b in zip(got, expected))
    assert [n.op for n in M.inner] == ["affine", "relu", "affine"]
    assert [n.op for n in L.inner] == ["entropy", "decay", "add"]
    assert M.inner[-1] is M.out and L.inner[-1] is L.out
    inner_ids = {id(n) for n in M.inner + L.inner}
    assert not inner_ids & {id(v) for v in got}
    np.testing.assert_allclose(M.inner[0].value, X @ params["W1"] + params["b1"], rtol=1e-14)
    np.testing.assert_allclose(M.value, backprop.forward(X, params)["A2"], rtol=1e-14)


def test_backward_steps_order_and_result():
    X, T, params = net_problem(14, (5, 3, 4, 3))
    lam = 0.2
    L, P = engine_net(X, T, params, lam)
    M = L.inner[0].inputs[0]
    assert M.op == "model"
    steps = ad.backward_steps(L)
    first = next(steps)
    assert first is L.out  # the final add ran first: its inputs have dD = dR = 1, no Param yet
    D, R, _ = L.inner
    assert D.grad == 1.0 and R.grad == 1.0
    assert all(p.grad is None for p in P.values())
    rest = list(steps)
    done = [first, *rest]
    expected = list(reversed(M.inner + L.inner))
    assert len(done) == len(expected) and all(a is b for a, b in zip(done, expected))
    assert all(a.order > b.order for a, b in zip(done, done[1:]))
    _, ref = backprop.loss_and_grads(X, T, params, lam)
    stepped = {k: P[k].grad.copy() for k in backprop.PARAM_NAMES}
    for k in backprop.PARAM_NAMES:
        assert_grad_close(stepped[k], ref[k], k)
    ad.backward(L)
    for k in backprop.PARAM_NAMES:
        np.testing.assert_allclose(P[k].grad, stepped[k], rtol=1e-14, atol=0)


@pytest.mark.parametrize("seed", range(0, 120, 15))
def test_backward_steps_on_random_graphs(seed):
    plan = make_plan(seed)
    params = engine_params(plan)
    L = evaluate(plan, params, ENGINE_OPS)
    done = list(ad.backward_steps(L))
    assert all(a.order > b.order for a, b in zip(done, done[1:]))
    assert {id(n) for n in done} == {id(v) for v in ad.graph(L) if isinstance(v, ad.Node)}
    _, grads = torch_run(plan)
    for p, g in zip(params, grads):
        if g is not None:
            assert_grad_close(p.grad, g, p.name)


# -- rule 8: constants and user-defined ops -----------------------------------------------------------


def test_numpy_constants_get_no_gradient_and_are_untouched():
    X, T, params = net_problem(15, (5, 3, 4, 3))
    X_before, T_before = X.copy(), T.copy()
    L, P = engine_net(X, T, params, 0.1)
    ad.backward(L)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(T, T_before)
    assert all(isinstance(v, ad.Value) for v in ad.graph(L))  # constants are not graph values
    t_grads = torch_two_layer(X, T, params, 0.1).grads
    for k in backprop.PARAM_NAMES:
        assert_grad_close(P[k].grad, t_grads[k], k)


def test_constant_and_param_inputs_mixed_in_add():
    rng = np.random.default_rng(16)
    C = rng.standard_normal((3, 4))
    P = ad.Param(rng.standard_normal((3, 4)), "P")
    T = one_hot(rng, 3, 4)
    ad.backward(ops.entropy(ops.add((C, P, C)), T))
    tP = leaf(P.value)
    torch_entropy(const(C) + tP + const(C), const(T)).backward()
    assert_grad_close(P.grad, tP.grad.numpy(), "P")


def test_user_defined_ops_match_torch_and_numeric():
    rng = np.random.default_rng(17)
    P = ad.Param(rng.standard_normal((4, 3)), "P")
    T = soft_targets(rng, 4, 3)

    def f(_):
        return float(ops.entropy(tanh(ops.add((square(P), P))), T).value)

    L = ops.entropy(tanh(ops.add((square(P), P))), T)
    ad.backward(L)
    tP = leaf(P.value)
    tL = torch_entropy(torch.tanh(tP**2 + tP), const(T))
    tL.backward()
    assert rel_error(L.value, tL.item()) <= 1e-12
    assert_grad_close(P.grad, tP.grad.numpy(), "P")
    analytic = P.grad.copy()
    assert scaled_error(analytic, numeric_gradient(f, P.value)) <= NUMERIC_TOL


def linear(X, U):
    """A user-defined affine op whose backward indexes the slots: ``dU[0] += ...``."""
    x, w, b = ad.value(X), ad.value(U[0]), ad.value(U[1])

    def back(dA, dX, dU):
        dU[0] += x.T @ dA
        dU[1] += dA.sum(axis=0)
        if dX.wanted:  # the slot of a constant is not wanted: skip the product
            dX += dA @ w.T

    return ad.node(x @ w + b, back, (X, U))


def test_user_op_indexing_slots_and_wanted_flag():
    rng = np.random.default_rng(18)
    X = rng.standard_normal((5, 3))  # a constant: its slot is not wanted
    P = ad.Param(rng.standard_normal((5, 3)), "P")
    W, b = ad.Param(rng.standard_normal((3, 3)), "W"), ad.Param(rng.standard_normal(3), "b")
    T = one_hot(rng, 5, 3)
    L = ops.entropy(ops.add((linear(X, (W, b)), linear(P, (W, b)))), T)
    assert L.inputs[0].inputs[0][0].op == "linear"
    ad.backward(L)
    tP, tW, tb = leaf(P.value), leaf(W.value), leaf(b.value)
    torch_entropy((const(X) @ tW + tb) + (tP @ tW + tb), const(T)).backward()
    for name, v, t in (("P", P, tP), ("W", W, tW), ("b", b, tb)):
        assert_grad_close(v.grad, t.grad.numpy(), name)
    assert P.slot.wanted and W.slot.wanted
    seen = []

    def probe(A, C):
        def back(dZ, dA, dC):
            seen.append((dA.wanted, dC.wanted))
            dA += dZ

        return ad.node(ad.value(A) + ad.value(C), back, (A, C))

    ad.backward(ops.entropy(probe(P, X), T))
    assert seen == [(True, False)]


def test_backward_steps_clears_and_seeds_before_the_first_step():
    X, T, params = net_problem(19, (4, 3, 3, 2))
    L, P = engine_net(X, T, params, 0.1)
    ad.backward(L)
    steps = ad.backward_steps(L)  # not iterated yet
    assert L.grad == 1.0
    assert all(p.grad is None for p in P.values())
    assert len(list(steps)) == 6


def test_node_requires_a_tuple_of_inputs():
    P = ad.Param(np.ones(2), "P")

    def back(dZ, dA):
        dA += dZ

    with pytest.raises(TypeError):
        ad.node(P.value, back, P)
    with pytest.raises(TypeError):
        ad.node(P.value, back, [P])


def test_arithmetic_on_a_node_itself_says_to_use_value():
    A = ad.Param(np.ones(3), "A")
    for attempt in (lambda: A > 0, lambda: A * 2.0, lambda: 2.0 + A, lambda: np.maximum(0.0, A)):
        with pytest.raises(TypeError, match=r"use value\(A\)"):
            attempt()
