"""coursekit.grading: checks that never reveal the expected values, gradient checks, blocking of the
coursekit counterparts, and the grading conditions of own_work (fp errors, warnings, time limit)."""

from __future__ import annotations

import math
import signal
import sys
import time
import warnings

import numpy as np
import pytest
import scipy.special
import torch

from coursekit import grading
from coursekit.nets import backprop
from coursekit.grading import CheckFailed, GradingTimeout

# Distinctive digits: if any of these strings shows up in a failure message, it leaked the answer.
EXPECTED = np.array([[0.123456789, -9.87654321], [3.14159265, 271.828182]])


def leaked_fragments(values) -> list[str]:
    fragments = []
    for v in np.ravel(values):
        fragments += [str(v), repr(v), f"{v:.2f}", f"{v:.3g}", f"{v:.1e}", f"{abs(v):.4f}"[:5]]
    return fragments


# -- basic checks -----------------------------------------------------------------------------------


def test_check_passes_on_truthy_and_fails_with_the_message():
    grading.check(True, "unused")
    grading.check(np.array([1, 2]).all(), "unused")
    with pytest.raises(CheckFailed, match="^the sky is not blue$"):
        grading.check(0, "the sky is not blue")
    assert issubclass(CheckFailed, AssertionError)


def test_check_shape_returns_the_array_and_names_the_value():
    out = grading.check_shape([[1, 2, 3]], (1, 3), "Y")
    assert isinstance(out, np.ndarray) and out.shape == (1, 3)
    out = grading.check_shape(torch.ones(2, 2, requires_grad=True), (2, 2), "Y")
    assert isinstance(out, np.ndarray)
    with pytest.raises(CheckFailed, match=r"^Y has shape \(3, 1\); it should have shape \(1, 3\)"):
        grading.check_shape(np.zeros((3, 1)), (1, 3), "Y")
    with pytest.raises(CheckFailed, match="Y is None"):
        grading.check_shape(None, (1,), "Y")


def test_check_finite():
    grading.check_finite(np.array([1.0, -2.0]), "Y")
    with pytest.raises(CheckFailed, match=r"^Y has 2 entries that are inf or nan"):
        grading.check_finite(np.array([1.0, np.nan, np.inf]), "Y")
    with pytest.raises(CheckFailed, match="^Y should hold numbers"):
        grading.check_finite(np.array(["a"]), "Y")


def test_rel_error_hand_computation():
    a = np.array([1.0, 2.0, 0.0, -1.0])
    b = np.array([1.5, 2.0, 0.0, -1.0])
    assert grading.rel_error(a, b) == pytest.approx(0.5 / 2.5, rel=1e-15)
    assert grading.rel_error(b, a) == grading.rel_error(a, b)
    # Denominator floored at 1e-8: |1e-10 - 0| / 1e-8 = 0.01.
    assert grading.rel_error([1e-10], [0.0]) == pytest.approx(0.01, rel=1e-12)
    # Opposite signs: |1 - (-1)| / (1 + 1) = 1.
    assert grading.rel_error([1.0], [-1.0]) == 1.0
    assert grading.rel_error([], []) == 0.0


# -- check_close ------------------------------------------------------------------------------------


def test_check_close_passes_on_equal_and_nearly_equal_arrays():
    grading.check_close(EXPECTED.copy(), EXPECTED, "Y")
    grading.check_close(EXPECTED.tolist(), EXPECTED, "Y")
    grading.check_close(torch.tensor(EXPECTED), EXPECTED, "Y")
    grading.check_close(EXPECTED * (1 + 1e-9), EXPECTED, "Y")  # rel error ~5e-10 < 1e-7
    grading.check_close(EXPECTED * (1 + 1e-4), EXPECTED, "Y", tol=1e-3)


@pytest.mark.parametrize(
    "actual",
    [
        EXPECTED * 1.1,
        EXPECTED * (1 + 1e-5),
        -EXPECTED,
        EXPECTED.T,
        EXPECTED[:1],
        np.where(EXPECTED > 1, np.nan, EXPECTED),
        np.zeros_like(EXPECTED),
    ],
    ids=["10%-off", "slightly-off", "negated", "transposed", "wrong-shape", "nan", "zeros"],
)
def test_check_close_fails_without_revealing_expected(actual):
    with pytest.raises(CheckFailed) as info:
        grading.check_close(actual, EXPECTED, "Y")
    message = str(info.value)
    assert message.startswith("Y")
    for fragment in leaked_fragments(EXPECTED):
        assert fragment not in message, (fragment, message)
    assert str(EXPECTED) not in message and str(EXPECTED.tolist()) not in message


def test_check_close_reports_how_many_entries_are_off():
    actual = EXPECTED.copy()
    actual[0, 1] *= 2
    with pytest.raises(CheckFailed, match=r"^Y: 1 of 4 entries"):
        grading.check_close(actual, EXPECTED, "Y")


def test_check_close_passes_on_empty_arrays():
    # rel_error handles empty arrays; check_close must too (an empty batch is a valid answer).
    grading.check_close(np.zeros((0, 3)), np.zeros((0, 3)), "Y")


# -- numerical gradients ----------------------------------------------------------------------------


def test_numeric_gradient_of_sum_of_cubes():
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], size=(3, 4)) * rng.uniform(0.5, 2.0, size=(3, 4))
    x_before = x.copy()
    g = grading.numeric_gradient(lambda v: np.sum(v**3), x)
    np.testing.assert_allclose(g, 3 * x_before**2, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(x, x_before)  # restored exactly


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_numeric_gradient_of_quadratic_form(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((6, 6))  # not symmetric: the gradient is (A + A^T) x
    x = rng.standard_normal(6)
    g = grading.numeric_gradient(lambda v: v @ A @ v, x)
    np.testing.assert_allclose(g, (A + A.T) @ x, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    "make", [np.asfortranarray, lambda m: m.T, lambda m: m[:, :3]], ids=["fortran", "transposed", "column-slice"]
)
def test_numeric_gradient_of_non_contiguous_arrays(make):
    # A float64 array that is not C-contiguous is still a float64 array: perturbing a reshaped copy
    # would leave x (and the returned gradient) untouched and give zeros.
    base = np.random.default_rng(3).uniform(0.5, 2.0, size=(4, 6))
    x = make(base.copy())
    expected = 3 * np.array(x) ** 2
    g = grading.numeric_gradient(lambda v: np.sum(v**3), x)
    np.testing.assert_allclose(g, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    "x", [np.ones(3, dtype=np.float32), np.ones(3, dtype=np.int64), [1.0, 2.0], torch.ones(3, dtype=torch.float64)],
    ids=["float32", "int", "list", "tensor"],
)
def test_numeric_gradient_rejects_non_float64(x):
    with pytest.raises(TypeError, match="float64"):
        grading.numeric_gradient(lambda v: float(np.sum(v)), x)


def test_check_gradient_passes_a_correct_gradient():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 5))
    x = rng.standard_normal(5)
    grading.check_gradient(lambda v: v @ A @ v, x, (A + A.T) @ x, "dx")
    x = rng.standard_normal((2, 3))
    grading.check_gradient(lambda v: np.sum(v**2), x, 2 * x, "dx")


def test_check_gradient_fails_a_gradient_missing_a_factor_of_two():
    x = np.random.default_rng(2).standard_normal((2, 3))
    with pytest.raises(CheckFailed, match=r"^dx does not match the numeric gradient"):
        grading.check_gradient(lambda v: np.sum(v**2), x, x, "dx")


def test_check_gradient_fails_a_transposed_gradient():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((5, 5))
    x = rng.standard_normal(5)
    with pytest.raises(CheckFailed, match="dx"):
        grading.check_gradient(lambda v: v @ A @ v, x, 2 * A @ x, "dx")  # right only for symmetric A
    with pytest.raises(CheckFailed, match="shape"):
        grading.check_gradient(lambda v: v @ A @ v, x, ((A + A.T) @ x)[:4], "dx")


# -- blocking the coursekit counterparts ------------------------------------------------------------

A_ROWS = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])


def assert_softmax_works(func):
    np.testing.assert_allclose(func(A_ROWS), scipy.special.softmax(A_ROWS, axis=1), rtol=1e-12)


def assert_blocked(call, name):
    with pytest.raises(RuntimeError) as info:
        call()
    message = str(info.value)
    assert name in message and "coursekit" in message, message


def test_blocked_makes_the_function_raise_and_restores_it():
    with grading.blocked(backprop.softmax):
        assert_blocked(lambda: backprop.softmax(A_ROWS), "softmax")
        np.testing.assert_allclose(backprop.sigmoid(0.0), 0.5)  # only the target is blocked
    assert_softmax_works(backprop.softmax)


def test_blocked_catches_a_function_imported_under_another_name():
    from coursekit.nets.backprop import softmax as s  # bound before the block starts

    with grading.blocked(backprop.softmax):
        assert_blocked(lambda: s(A_ROWS), "softmax")
    assert_softmax_works(s)


def test_blocked_accepts_dotted_names():
    with grading.blocked("coursekit.nets.backprop.softmax"):
        assert_blocked(lambda: backprop.softmax(A_ROWS), "softmax")
    assert_softmax_works(backprop.softmax)


def test_blocked_restores_when_the_block_raises():
    with pytest.raises(ZeroDivisionError):
        with grading.blocked(backprop.softmax, backprop.relu):
            1 / 0  # noqa: B018
    assert_softmax_works(backprop.softmax)
    np.testing.assert_array_equal(backprop.relu(np.array([-1.0, 2.0])), [0.0, 2.0])
    with pytest.raises(RuntimeError):
        with grading.blocked(backprop.softmax):
            backprop.softmax(A_ROWS)  # the block's own error escapes the block
    assert_softmax_works(backprop.softmax)


@pytest.mark.parametrize("target", [backprop, "coursekit.nets.backprop"], ids=["module", "dotted"])
def test_blocking_a_module_blocks_its_functions_and_methods(target):
    params = {"W1": np.eye(2), "b1": np.zeros(2), "W2": np.eye(2), "b2": np.zeros(2)}
    result = backprop.TrainResult(params)
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    with grading.blocked(target):
        assert_blocked(lambda: backprop.softmax(A_ROWS), "softmax")
        assert_blocked(lambda: backprop.one_hot(np.array([0]), 2), "one_hot")
        assert_blocked(lambda: result.accuracy(X, [0, 1]), "TrainResult.accuracy")
        np.testing.assert_allclose(np.exp(0.0), 1.0)  # numpy, imported by nn, is left alone
    assert_softmax_works(backprop.softmax)
    assert result.accuracy(X, [0, 1]) == 1.0
    np.testing.assert_array_equal(backprop.one_hot(np.array([1]), 2), [[0.0, 1.0]])


def test_blocking_a_class_blocks_its_methods():
    result = backprop.TrainResult({"W1": np.eye(2), "b1": np.zeros(2), "W2": np.eye(2), "b2": np.zeros(2)})
    with grading.blocked(backprop.TrainResult):
        assert_blocked(lambda: result.accuracy(np.eye(2), [0, 1]), "TrainResult.accuracy")
        assert_softmax_works(backprop.softmax)
    assert result.accuracy(np.eye(2), [0, 1]) == 1.0


def test_blocking_the_same_function_twice_still_restores_it():
    with grading.blocked(backprop.softmax, "coursekit.nets.backprop.softmax"):
        with grading.blocked(backprop.softmax):
            assert_blocked(lambda: backprop.softmax(A_ROWS), "softmax")
        assert_blocked(lambda: backprop.softmax(A_ROWS), "softmax")  # the outer block still holds
    assert_softmax_works(backprop.softmax)


def test_blocked_rejects_targets_it_cannot_block():
    with pytest.raises(TypeError):
        with grading.blocked(42):
            pass


# -- own_work ---------------------------------------------------------------------------------------


def test_own_work_blocks_counterparts_and_restores_them():
    from coursekit.nets.backprop import softmax as s

    def answer(A):  # a "solution" that only delegates
        return s(A)

    with grading.own_work(backprop.softmax, stage=1, seconds=5):
        assert_blocked(lambda: answer(A_ROWS), "softmax")
    assert_softmax_works(answer)


def test_own_work_turns_numpy_fp_trouble_into_errors():
    before = np.geterr()
    with grading.own_work(stage=1, seconds=5):
        with pytest.raises(FloatingPointError):
            np.exp(1000.0)
        with pytest.raises(FloatingPointError):
            np.float64(1.0) / np.float64(0.0)
        with pytest.raises(FloatingPointError):
            np.log(np.array([-1.0]))
    assert np.geterr() == before
    with np.errstate(over="ignore"):
        assert np.exp(1000.0) == math.inf


def test_own_work_shows_warnings_and_stderr_as_a_note_on_stdout_and_restores_the_filters(capsys):
    with grading.own_work(stage=1, seconds=5, what="your sigmoid"):
        warnings.warn("careful", stacklevel=1)
        print("debugging", file=sys.stderr)
    out, err = capsys.readouterr()
    assert err == ""  # stderr would zero a test cell under nbgrader
    assert "your sigmoid wrote warnings or messages to stderr" in out
    assert "UserWarning: careful" in out and "debugging" in out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("careful", stacklevel=1)  # a warning again, not an exception
    assert len(caught) == 1


# A watchdog thread (not SIGALRM, which time_limit itself uses) ends the run if the limit fails.
@pytest.mark.timeout(20, method="thread")
def test_own_work_stops_a_loop_that_never_ends():
    start = time.monotonic()
    with pytest.raises(GradingTimeout, match=r"softmax answer did not return within 0.5 s"):
        with grading.own_work(stage=1, seconds=0.5, what="your softmax answer"):
            while True:
                pass
    assert time.monotonic() - start < 2.0


# A watchdog thread (not SIGALRM, which time_limit itself uses) ends the run if the limit fails.
@pytest.mark.timeout(20, method="thread")
def test_own_work_reads_the_time_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("COURSEKIT_TIME_LIMIT", "0.3")
    start = time.monotonic()
    with pytest.raises(GradingTimeout, match="0.3 s"):
        with grading.own_work(stage=1):
            while True:
                pass
    assert time.monotonic() - start < 2.0
    monkeypatch.setenv("COURSEKIT_TIME_LIMIT", "soon")
    with pytest.raises(ValueError, match="COURSEKIT_TIME_LIMIT"):
        with grading.own_work(stage=1):
            pass


# -- time limits ------------------------------------------------------------------------------------


def test_time_limit_lets_a_quick_block_finish_and_leaves_no_alarm_behind():
    handler = signal.getsignal(signal.SIGALRM)
    with grading.time_limit(0.2):
        total = sum(range(1000))
    assert total == 499500
    time.sleep(0.4)  # an alarm left running would fire here
    assert signal.getsignal(signal.SIGALRM) is handler


def test_nested_time_limits_keep_the_outer_limit():
    # The inner block ends quickly; the outer limit (0.5 s) must still stop what follows it.
    start = time.monotonic()
    timed_out = False
    try:
        with grading.time_limit(0.5, "outer"):
            with grading.time_limit(10, "inner"):
                pass
            while time.monotonic() - start < 3.0:  # bounded, so a broken limit cannot hang the run
                pass
    except GradingTimeout as err:
        timed_out = True
        assert "outer" in str(err)
    assert timed_out, "the outer time limit was cancelled by the inner one"
    assert time.monotonic() - start < 2.0


def test_time_limit_seconds_default(monkeypatch):
    monkeypatch.delenv("COURSEKIT_TIME_LIMIT", raising=False)
    assert grading.time_limit_seconds() == 20.0
    monkeypatch.setenv("COURSEKIT_TIME_LIMIT", "   ")
    assert grading.time_limit_seconds() == 20.0


@pytest.mark.parametrize("raw, seconds", [("2.5", 2.5), (" 7 ", 7.0), ("1e-1", 0.1)])
def test_time_limit_seconds_parses_the_variable(monkeypatch, raw, seconds):
    monkeypatch.setenv("COURSEKIT_TIME_LIMIT", raw)
    assert grading.time_limit_seconds() == seconds


@pytest.mark.parametrize("raw", ["soon", "10s", "0", "-3", "nan"])
def test_time_limit_seconds_rejects_bad_values_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("COURSEKIT_TIME_LIMIT", raw)
    with pytest.raises(ValueError, match=r"^COURSEKIT_TIME_LIMIT must be .*" + repr(raw)):
        grading.time_limit_seconds()


def _switched_off(call) -> bool:
    try:
        call()
    except RuntimeError as err:
        if "switched off" in str(err):
            return True
        raise
    return False


def _calls():
    import coursekit.convolution.signals
    import coursekit.data.transforms
    import coursekit.nets.backprop
    import coursekit.nets.ops

    return {
        1: lambda: coursekit.nets.backprop.softmax(np.zeros((1, 2))),
        2: lambda: coursekit.nets.ops.relu(np.zeros(2)),
        3: lambda: coursekit.convolution.signals.shift(np.zeros(3), 1),
        4: lambda: coursekit.data.transforms.pixel_permutation(4),
    }


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5, "03-convolution"])
def test_own_work_switches_off_the_pieces_of_its_stage_and_later_ones_only(stage):
    number = grading.stage_number(stage)
    calls = _calls()
    with grading.own_work(stage=stage, seconds=10):
        off = {taught: _switched_off(call) for taught, call in calls.items()}
    assert off == {taught: taught >= number for taught in calls}
    assert not any(_switched_off(call) for call in calls.values()), "the pieces were not switched back on"


def test_every_library_module_is_covered_and_the_engine_is_a_tool():
    import coursekit.nets.autodiff

    names = {m.__name__ for m in grading.library_modules()}
    for expected in ("coursekit.nets.backprop", "coursekit.nets.ops", "coursekit.nets.models",
                     "coursekit.nets.training", "coursekit.convolution.signals", "coursekit.convolution.filters",
                     "coursekit.convolution.layer", "coursekit.data.transforms"):
        assert expected in names
    # the engine, the data registry and the samples are tools: no STAGE, never switched off
    assert not {"coursekit.nets.autodiff", "coursekit.data.registry", "coursekit.data.samples"} & names
    with grading.own_work(stage=1, seconds=10):
        p = coursekit.nets.autodiff.Param(np.ones(2), "p")
        assert coursekit.nets.autodiff.value(p).shape == (2,)


def test_a_piece_added_to_a_module_is_switched_off_in_its_stage_and_usable_later(monkeypatch):
    import coursekit.nets.training as training

    def brand_new_piece():
        return 42

    brand_new_piece.__module__ = training.__name__  # as if written in coursekit/nets/training.py
    monkeypatch.setattr(training, "brand_new_piece", brand_new_piece, raising=False)
    with grading.own_work(stage=training.STAGE, seconds=10):
        assert _switched_off(brand_new_piece)
    with grading.own_work(stage=training.STAGE + 1, seconds=10):
        assert brand_new_piece() == 42


def test_a_new_module_with_a_stage_is_covered_with_no_edit_to_grading(monkeypatch):
    import sys
    import types

    module = types.ModuleType("coursekit.retrieval.brand_new")
    exec("STAGE = 7\ndef mean_average_precision(ranks):\n    return 1.0\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for stage, off in ((6, True), (7, True), (8, False)):
        with grading.own_work(stage=stage, seconds=10):
            assert _switched_off(lambda: module.mean_average_precision([1])) == off, stage


@pytest.mark.parametrize("bad", [0, 100, True, "4", "mnist", 2.0, None])
def test_stage_numbers_are_checked(bad):
    with pytest.raises(ValueError, match="stage must be"):
        grading.stage_number(bad)


def test_own_work_needs_the_stage():
    with pytest.raises(TypeError, match="stage"):
        with grading.own_work(seconds=5):
            pass


def test_blocking_a_compiled_function_patches_its_module_attribute():
    import scipy.special
    import torch.nn.functional as F

    with grading.blocked("scipy.special.expit", "torch.nn.functional.conv2d"):
        with pytest.raises(RuntimeError, match="scipy.special.expit is switched off"):
            scipy.special.expit(0.0)
        with pytest.raises(RuntimeError, match="torch.nn.functional.conv2d is switched off"):
            F.conv2d(None, None)
    assert scipy.special.expit(0.0) == 0.5
    assert F.conv2d.__name__ == "conv2d" and not isinstance(F.conv2d, type(lambda: 0))


# -- shared oracles ---------------------------------------------------------------------------------


def test_the_torch_two_layer_oracle_matches_its_formula_and_its_numeric_gradient():
    from coursekit.grading.oracles import torch_two_layer

    g = np.random.default_rng(5)
    X, T = g.normal(size=(5, 3)), np.eye(4)[g.integers(0, 4, size=5)]
    params = {"W1": g.normal(size=(3, 6)), "b1": g.normal(size=6), "W2": g.normal(size=(6, 4)), "b2": g.normal(size=4)}
    lam = 0.3

    def loss(p):  # the slide's formula in plain numpy, written here
        A1 = X @ p["W1"] + p["b1"]
        A2 = np.maximum(A1, 0) @ p["W2"] + p["b2"]
        log_Y = A2 - scipy.special.logsumexp(A2, axis=1, keepdims=True)
        return -(T * log_Y).sum() / len(X) + lam / 2 * ((p["W1"] ** 2).sum() + (p["W2"] ** 2).sum())

    reference = torch_two_layer(X, T, params, lam)
    assert reference.loss == pytest.approx(loss(params), rel=1e-12)
    np.testing.assert_allclose(reference.A1, X @ params["W1"] + params["b1"], rtol=1e-12)
    for name, value in params.items():
        numeric = grading.numeric_gradient(lambda v, name=name: loss({**params, name: v}), value.copy())
        assert grading.scaled_error(reference.grads[name], numeric) < 1e-8, name


def test_switching_a_stage_off_leaves_no_function_of_its_modules_on():
    # closures, decorated functions (torch.no_grad's wrappers), methods that call super() and the
    # methods dataclasses generate all hold free variables: each is switched off like the others
    from coursekit.grading.sandbox import _functions_of

    modules = grading.pieces_of_stage(1)
    functions = [(func, func.__code__) for module in modules for func, _ in _functions_of(module)]
    assert any(code.co_freevars for _, code in functions), "the check needs functions with free variables"
    with grading.blocked(*modules):
        left_on = [f"{func.__module__}.{func.__qualname__}" for func, code in functions if func.__code__ is code]
    assert not left_on, f"these pieces were not switched off: {left_on}"
    assert all(func.__code__ is code for func, code in functions), "not every piece was switched back on"


def test_a_refused_torch_routine_is_refused_however_it_is_reached():
    saved_function, saved_method = torch.softmax, torch.Tensor.softmax  # taken before the block
    t = torch.tensor([1.0, 2.0, 3.0])
    expected = torch.softmax(t, 0)
    calls = {
        "torch.softmax": lambda: torch.softmax(t, 0),
        "a saved torch.softmax": lambda: saved_function(t, 0),
        "the Tensor method": lambda: t.softmax(0),
        "a saved Tensor method": lambda: saved_method(t, 0),
        "torch.nn.functional.softmax": lambda: torch.nn.functional.softmax(t, 0),
    }
    with grading.blocked("torch.softmax", "torch.Tensor.softmax"):
        for how, call in calls.items():
            with pytest.raises(RuntimeError, match="softmax is switched off"):
                call()
        assert torch.exp(t).sum() > 0  # other routines run as usual
    for call in calls.values():
        assert torch.equal(call(), expected)


def test_dotted_names_reach_attributes_of_classes():
    from coursekit.grading.sandbox import _resolve

    obj, owner, attr = _resolve("torch.Tensor.softmax")
    assert owner is torch.Tensor and attr == "softmax" and obj is torch.Tensor.softmax
    assert _resolve("coursekit.nets")[1:] == (None, None)
    with pytest.raises(ImportError):
        _resolve("no_such_module_anywhere.f")


# -- what an answer cannot undo or reach --------------------------------------------------------------

def test_check_close_holds_a_float32_answer_to_float32_precision_only():
    a = np.random.default_rng(3).normal(scale=5.0, size=(4, 5))
    exact = 1 / (1 + np.exp(-a))
    grading.check_close((1 / (1 + np.exp(-a.astype(np.float32)))).astype(np.float32), exact, "float32 sigmoid", tol=1e-12)
    with pytest.raises(grading.CheckFailed):  # a float32 answer that is wrong beyond its precision still fails
        grading.check_close((exact * 1.001).astype(np.float32), exact, "float32 sigmoid", tol=1e-12)
    with pytest.raises(grading.CheckFailed):  # float64 keeps the tolerance asked for
        grading.check_close(exact.astype(np.float32).astype(np.float64), exact, "float64 sigmoid", tol=1e-12)


def test_own_work_puts_back_a_library_function_replaced_during_the_call_and_fails():
    original = np.count_nonzero
    with pytest.raises(grading.CheckFailed, match="numpy.count_nonzero was replaced"):
        with grading.own_work(stage=1, seconds=5, what="your softmax"):
            np.count_nonzero = lambda *args, **kwargs: 0
    assert np.count_nonzero is original


def test_own_work_puts_back_a_grading_helper_whose_code_was_replaced():
    from coursekit.grading import checks

    code = checks.check_close.__code__
    with pytest.raises(grading.CheckFailed, match="the code of coursekit.grading.checks.check_close was replaced"):
        with grading.own_work(stage=1, seconds=5):
            checks.check_close.__code__ = (lambda *args, **kwargs: None).__code__
    assert checks.check_close.__code__ is code


def test_torch_rebinding_its_own_names_on_a_lazy_import_is_no_change_and_an_answers_rebinding_is():
    # torch imports torch._dynamo on the first optimizer made, which wraps torch.manual_seed: in a fresh
    # interpreter, as in a grading kernel, a snapshot taken before must not see that as the answer's change
    import subprocess
    import textwrap

    script = textwrap.dedent("""
        import torch
        from coursekit import grading

        with grading.own_work(stage=1, seconds=120, what="a training step"):
            net = torch.nn.Linear(2, 2)
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
            net(torch.ones(1, 2)).sum().backward()
            optimizer.step()
        seeder = torch.manual_seed
        try:
            with grading.own_work(stage=1, seconds=120, what="your answer"):
                torch.manual_seed = lambda *args, **kwargs: None
        except grading.CheckFailed as err:
            print(err)
        assert torch.manual_seed is seeder
        # torch's own wrapper code around another function: not torch's rebinding, and flagged
        forged = torch._disable_dynamo(lambda *args, **kwargs: None)
        try:
            with grading.own_work(stage=1, seconds=120, what="a forged wrapper"):
                torch.manual_seed = forged
        except grading.CheckFailed as err:
            print(err)
        assert torch.manual_seed is seeder
        torch.manual_seed(0)
        first = torch.rand(1)
        torch.manual_seed(0)
        assert torch.equal(torch.rand(1), first)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "your answer changed the grading environment: torch.manual_seed was replaced" in done.stdout
    assert "a forged wrapper changed the grading environment: torch.manual_seed was replaced" in done.stdout
    # and the snapshot no longer imports torch._dynamo to settle the rebinding beforehand: it costs seconds per kernel
    fresh = subprocess.run([sys.executable, "-c", "import sys, coursekit.grading.integrity as i; i.Integrity(); "
                            "print('torch._dynamo' in sys.modules)"], capture_output=True, text=True, timeout=300)
    assert fresh.stdout.strip() == "False", fresh.stderr[-2000:]


def test_torch_wrapping_a_coursekit_optimisers_step_when_the_first_is_made_is_no_change():
    # torch rebinds an optimiser class's step (its profiler wrapper) when the first instance is made: the
    # first PaperSGD made in an answer, or in a locked cell under the sealed run, must not count as a change
    import subprocess
    import textwrap

    script = textwrap.dedent("""
        import torch
        from coursekit import grading
        from coursekit.nets import alexnet

        with grading.own_work(stage=4, seconds=120, what="a step of torch's Adam while stage 05 is off"):
            net = torch.nn.Linear(2, 2)  # torch's wrapper of step is shared: switching PaperSGD off must not refuse it
            adam = torch.optim.Adam(net.parameters())
            net(torch.ones(1, 2)).sum().backward()
            adam.step()
        try:
            with grading.own_work(stage=4, seconds=120, what="a step of the paper's rule while it is off"):
                alexnet.PaperSGD([torch.ones(1, requires_grad=True)]).step()
        except RuntimeError as err:
            print(err)
        with grading.own_work(stage=6, seconds=120, what="a step of the paper's rule"):
            w = torch.ones(3, requires_grad=True)
            optimiser = alexnet.PaperSGD([w], lr=0.1)
            w.sum().backward()
            optimiser.step()
        assert torch.allclose(w.detach(), torch.full((3,), 1 - 0.1 * 0.0005 - 0.1))
        hooked = alexnet.PaperSGD.step
        try:
            with grading.own_work(stage=6, seconds=120, what="your answer"):
                alexnet.PaperSGD.step = lambda self, closure=None: None
        except grading.CheckFailed as err:
            print(err)
        assert alexnet.PaperSGD.step is hooked
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "your answer changed the grading environment: coursekit.nets.alexnet.PaperSGD.step was replaced" in done.stdout
    assert "PaperSGD" in done.stdout.split("\n")[0] and "switched off" in done.stdout.split("\n")[0]


def test_own_work_is_not_fooled_by_np_seterr_raise_before_it():
    with np.errstate(all="raise"):  # a student's debugging setting: underflow must not fail a stable answer
        with grading.own_work(stage=1, seconds=5):
            assert np.exp(np.array([-1000.0]))[0] == 0.0


def test_copies_of_switched_off_code_are_refused_however_they_were_made(tmp_path):
    import importlib.util
    import inspect
    import types

    copy_from_code = types.FunctionType(backprop.softmax.__code__, backprop.softmax.__globals__, "mine",
                                        backprop.softmax.__defaults__)
    spec = importlib.util.spec_from_file_location("second_backprop", backprop.__file__)
    second = importlib.util.module_from_spec(spec)
    sys.modules["second_backprop"] = second  # as an import would (its dataclasses look themselves up)
    try:
        spec.loader.exec_module(second)
    finally:
        del sys.modules["second_backprop"]
    namespace = dict(backprop.__dict__)
    exec(inspect.getsource(backprop.softmax), namespace)  # noqa: S102 - the attack under test
    for label, copy in (("code object", copy_from_code), ("module file", second.softmax),
                        ("exec of getsource", namespace["softmax"])):
        # refused at the call (a helper it calls is switched off) or when the block ends (a copy ran)
        with pytest.raises((RuntimeError, grading.CheckFailed), match="is switched off"), grading.own_work(stage=1, seconds=5):
            copy(A_ROWS)
        assert np.allclose(copy(A_ROWS).sum(axis=1), 1.0), label  # usable again after the block


def test_a_student_function_identical_to_the_library_one_is_not_refused():
    namespace = {"np": np}
    exec(compile("def relu(a):\n    return np.maximum(0.0, a)\n", "/tmp/ipykernel_1/cell.py", "exec"), namespace)  # noqa: S102
    with grading.own_work(stage=1, seconds=5):
        assert namespace["relu"](np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]


def test_a_compiled_routine_held_under_another_name_in_the_notebook_is_refused():
    import __main__

    import scipy.special

    __main__.my_expit = scipy.special.expit
    try:
        with pytest.raises(RuntimeError, match="expit is switched off"), grading.own_work("scipy.special.expit", stage=1, seconds=5):
            __main__.my_expit(np.zeros(2))
        assert __main__.my_expit is scipy.special.expit
    finally:
        del __main__.my_expit


def test_a_numpy_dispatcher_is_refused_under_another_name():
    convolve = np.convolve
    with pytest.raises(RuntimeError, match="convolve is switched off"), grading.own_work("numpy.convolve", stage=1, seconds=5):
        convolve([1.0, 2.0], [1.0, 1.0])
    assert np.convolve([1.0, 2.0], [1.0, 1.0]).tolist() == [1.0, 3.0, 2.0]


def test_python_lines_fails_when_the_answer_switches_the_count_off():
    def sneaky(n):
        sys.settrace(None)
        return sum(i for i in range(n))

    with pytest.raises(grading.CheckFailed, match="switched off the count"):
        grading.python_lines(sneaky, 1000)


def test_a_copy_that_calls_nothing_switched_off_is_refused_when_the_block_ends(tmp_path):
    import importlib.util
    import types

    (tmp_path / "piece.py").write_text("def double(a):\n    return a * 2\n")
    spec = importlib.util.spec_from_file_location("piece", tmp_path / "piece.py")
    piece = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(piece)
    copy = types.FunctionType(piece.double.__code__, {}, "mine")
    with pytest.raises(grading.CheckFailed, match=r"piece.double is switched off.*\(your code ran a copy of it\)"):
        with grading.blocked(piece.double):
            assert copy(2) == 4  # the copy runs, and the block fails when it ends
    with grading.blocked(piece.double):
        pass  # nothing ran: nothing refused
    assert copy(2) == 4


# --- answers not written yet, and shape errors, shown as one line (the browser test's defects) ---

def _stub(exercise="Exercise 9.9 (made-up-impl)"):
    """A released answer as nbgrader_config.py's stub writes it."""
    from traitlets.config.loader import PyFileConfigLoader
    from pathlib import Path

    template = PyFileConfigLoader("nbgrader_config.py", path=str(Path(__file__).parents[1])).load_config()
    line = template.ClearSolutions.code_stub["python"].splitlines()[-1]
    namespace = {}
    exec(f"def answer(*args):\n    {line.format(exercise=exercise)}", namespace)
    return namespace["answer"]


def test_a_stub_raised_inside_own_work_is_one_line_naming_the_exercise():
    answer = _stub()
    with pytest.raises(grading.NotAnswered) as caught:
        with grading.own_work(stage=1, what="the answer"):
            answer()
    assert isinstance(caught.value, NotImplementedError)  # still an error to nbgrader
    shown = caught.value._render_traceback_()
    assert len(shown) == 1 and "Exercise 9.9 (made-up-impl) is not answered yet" in shown[0]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_other_errors_inside_own_work_keep_their_traceback():
    def answer():
        raise NotImplementedError("my own placeholder")

    with pytest.raises(NotImplementedError, match="my own placeholder") as caught:
        with grading.own_work(stage=1, what="the answer"):
            answer()
    assert not isinstance(caught.value, grading.NotAnswered)


def test_unanswered_reads_the_exercise_from_the_stub_only():
    with pytest.raises(NotImplementedError) as caught:
        _stub("Exercise 2.3 (decay-back)")()
    assert grading.unanswered(caught.value) == "Exercise 2.3 (decay-back)"
    assert grading.unanswered(NotImplementedError("not yet")) is None
    assert grading.unanswered(ValueError(caught.value.args[0])) is None


def test_a_demo_before_its_answer_prints_a_note_and_the_cell_goes_on(capsys):
    with grading.demo("The gradient check"):
        _stub("Exercise 2.1 (cross-entropy-impl)")()
        raise AssertionError("not reached")
    printed = capsys.readouterr()
    assert "The gradient check" in printed.out and "Exercise 2.1 (cross-entropy-impl)" in printed.out
    assert printed.err == ""
    with pytest.raises(ZeroDivisionError):
        with grading.demo():
            1 / 0


def test_yours_or_stands_in_until_the_answer_is_written(capsys):
    calls = []
    stand_in = lambda x: calls.append(x) or -x  # noqa: E731
    assert grading.yours_or(_stub("Exercise 4.2 (shuffle-datasets-impl)"), stand_in, "the runs")(3) == -3
    assert calls == [3] and "Exercise 4.2 (shuffle-datasets-impl)" in capsys.readouterr().out
    assert grading.yours_or(lambda x: 2 * x, stand_in, "the runs")(3) == 6 and calls == [3]
    with pytest.raises(KeyError):
        grading.yours_or(lambda x: {}[x], stand_in, "the runs")(3)
    assert calls == [3]


def test_yours_or_notes_the_stand_in_once_however_often_it_is_called(capsys):
    sigmoid = grading.yours_or(_stub("Exercise 1.1 (sigmoid-impl)"), lambda a: 0.5, "the explorer")
    assert [sigmoid(a) for a in range(1000)] == [0.5] * 1000
    assert capsys.readouterr().out.count("Exercise 1.1 (sigmoid-impl)") == 1


def _affine_with(rule):
    from coursekit.nets.autodiff import node, value

    def affine(X, U):
        W, b = U
        x, w = value(X), value(W)

        def back(dA, dX, dU):
            dW, db = dU
            rule(x, w, dA, dX, dW, db)

        return node(x @ w + value(b), back, (X, U))

    return affine


def test_a_back_that_adds_a_wrongly_shaped_gradient_fails_in_one_line_naming_it():
    def transposed(x, w, dA, dX, dW, db):
        dW += dA.T @ x  # (K, D) into (D, K)
        db += dA.sum(0)
        dX += dA @ w.T

    rng = np.random.default_rng(0)
    X, W, b, dA = rng.normal(size=(6, 3)), rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(6, 4))
    with pytest.raises(CheckFailed) as caught:
        grading.node_gradients(_affine_with(transposed), (X, (W, b)), dA, names=("X", "W", "b"))
    message = str(caught.value)
    assert "the gradient of W (3, 4)" in message and "gradient from above (6, 4)" in message
    assert len(caught.value._render_traceback_()) == 1
    with pytest.raises(CheckFailed, match=r"the gradient of U\[0\] \(3, 4\)"):  # names from the signature
        grading.node_gradients(_affine_with(transposed), (X, (W, b)), dA)

    def mismatched(x, w, dA, dX, dW, db):
        dX += dA @ w  # a matmul that cannot run: no gradient's shape in numpy's message
    with pytest.raises(CheckFailed, match="a gradient of the wrong shape.*inputs X \\(6, 3\\), W \\(3, 4\\)"):
        grading.node_gradients(_affine_with(mismatched), (X, (W, b)), dA, names=("X", "W", "b"))


def test_a_back_that_changes_dout_in_place_fails_and_a_correct_one_passes():
    from coursekit.nets.autodiff import node, value

    def relu_with(rule):
        def relu(A):
            Z = np.maximum(0.0, value(A))
            return node(Z, lambda dZ, dA: rule(Z, dZ, dA), (A,))
        return relu

    def in_place(Z, dZ, dA):
        dZ[Z <= 0] = 0  # right values for this node, but dZ may be another node's gradient too
        dA += dZ

    def correct(Z, dZ, dA):
        dA += dZ * (Z > 0)

    rng = np.random.default_rng(3)
    A, dZ = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    with pytest.raises(CheckFailed, match="in place"):
        grading.node_gradients(relu_with(in_place), (A,), dZ)
    (got,) = grading.node_gradients(relu_with(correct), (A,), dZ)
    torch_A = torch.tensor(A, requires_grad=True)
    torch.relu(torch_A).backward(torch.tensor(dZ))
    assert np.allclose(got, torch_A.grad.numpy(), rtol=0, atol=1e-15)


def test_block_order_records_the_back_rules_a_block_runs_and_refuses_non_blocks():
    from coursekit.nets import ops
    from coursekit.nets.autodiff import Param, block

    rng = np.random.default_rng(4)
    T = np.eye(3)[[0, 2, 1, 1]]

    def inputs():
        return Param(rng.normal(size=(4, 3)), "A"), (Param(rng.normal(size=(2, 3)), "W1"),)

    def loss(A, W, back_order=None, named=True, as_block=True):
        D, R = ops.entropy(A, T), ops.decay(W, 0.1)
        L = ops.add((D, R))
        if not as_block:
            return L
        back = None if back_order is None else (lambda: [n.back() for n in back_order(L, R, D)])
        return block(L, (A, T, W) if named else (), back)

    A, W = inputs()
    assert grading.block_order(loss(A, W, lambda L, R, D: (L, D, R)), (A, T, W), "loss") == ["add", "entropy", "decay"]
    for kind, message in (({"back_order": None}, "passes no back"), ({"named": False}, "does not name"),
                          ({"as_block": False}, "should return block")):
        A, W = inputs()
        with pytest.raises(CheckFailed, match=message):
            grading.block_order(loss(A, W, **{"back_order": lambda L, R, D: (L, R, D), **kind}), (A, T, W), "loss")
    A, W = inputs()
    L = loss(A, W, lambda L, R, D: (L, R, D))
    grading.block_order(L, (A, T, W), "loss")
    assert all("back" not in vars(n) for n in L.inner)  # the recorders are gone
