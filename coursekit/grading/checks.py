"""Checks for the autograder test cells: each raises :class:`CheckFailed` (an ``AssertionError``) with a
message that says which property failed and by how much, never the expected values. Nothing here
writes to stderr."""

from __future__ import annotations

import numpy as np


class _OneLine:
    """IPython shows these exceptions as one line: the message is the whole story for a student,
    and the frames of the grading helpers would only hide it."""

    def _render_traceback_(self):
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class CheckFailed(_OneLine, AssertionError):
    """A property of the student's answer does not hold."""


class NotAnswered(_OneLine, NotImplementedError):
    """A test or a demo ran before the exercise it needs was answered (its stub is still in place)."""


# what the stub of every released answer cell says (nbgrader_config.py, STUB), after the exercise's name
STUB_SAYS = " is not answered yet"


def unanswered(err: BaseException) -> str | None:
    """The exercise ("Exercise 1.2 (softmax-impl)") whose stub raised ``err``, or None if ``err`` is not a
    stub's ``NotImplementedError``."""
    if isinstance(err, NotImplementedError) and STUB_SAYS in str(err):
        return str(err).split(STUB_SAYS, 1)[0]
    return None


def check(condition, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not bool(condition):
        raise CheckFailed(message)


def as_array(value, name: str) -> np.ndarray:
    """``value`` as a numpy array (torch tensors are detached and moved to the CPU)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if value is None:
        raise CheckFailed(f"{name} is None: did the function forget to return its result?")
    try:
        return np.asarray(value)
    except Exception as err:  # noqa: BLE001 - any conversion failure is the student's to see
        raise CheckFailed(f"{name} cannot be read as an array ({type(value).__name__}: {err})") from None


def check_shape(value, shape: tuple, name: str) -> np.ndarray:
    """Check that ``value`` is an array of the given shape; return it as a numpy array."""
    array = as_array(value, name)
    check(
        array.shape == tuple(shape),
        f"{name} has shape {array.shape}; it should have shape {tuple(shape)}",
    )
    return array


def check_finite(value, name: str) -> np.ndarray:
    array = as_array(value, name)
    check(np.issubdtype(array.dtype, np.number), f"{name} should hold numbers, not {array.dtype}")
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    check(bad == 0, f"{name} has {bad} entries that are inf or nan (is the computation stable?)")
    return array


def rel_error(a, b) -> float:
    """Largest elementwise relative error ``|a-b| / max(1e-8, |a|+|b|)`` (docs/ANATOMY.md §3)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def check_close(actual, expected, name: str, *, tol: float = 1e-7, atol: float = 0.0) -> None:
    """Check ``actual`` against ``expected`` entry by entry, without revealing ``expected``.

    An entry is wrong when its relative error (:func:`rel_error`) exceeds ``tol`` and its absolute
    error exceeds ``atol`` (use ``atol`` where the expected value is 0 up to rounding, such as a sum
    that cancels). The message reports how many entries are off and the largest relative error, so a
    student learns how wrong the answer is, not what it should be.

    The tolerances follow the precision of the answer: an answer computed in float32 (or float16)
    is held to its own dtype's rounding, ``32 * eps`` relative and its smallest normal number
    absolute, when that is looser than ``tol`` and ``atol`` (a float32 sigmoid is right to 4e-6,
    not to 1e-12).
    """
    expected = np.asarray(expected)
    actual = check_shape(actual, expected.shape, name)
    check_finite(actual, name)
    if np.issubdtype(actual.dtype, np.inexact) and np.finfo(actual.dtype).bits < 64:
        info = np.finfo(actual.dtype)
        tol, atol = max(tol, 32 * float(info.eps)), max(atol, float(info.tiny))
    a = actual.astype(np.float64)
    b = expected.astype(np.float64)
    diff = np.abs(a - b)
    errors = diff / np.maximum(1e-8, np.abs(a) + np.abs(b))
    wrong = int(np.count_nonzero((errors > tol) & (diff > atol)))
    if wrong:
        # no values at all, not even the student's own: on a hidden test's input they would show a
        # transposed or negated answer's expected values in the feedback
        raise CheckFailed(
            f"{name}: {wrong} of {errors.size} entries are not the expected values "
            f"(largest relative error {errors.max():.1e}, tolerance {tol:.0e})"
        )


def scaled_error(a, b) -> float:
    """``max|a-b| / max(1e-8, max|a| + max|b|)``: the relative error of a whole array.

    Used for gradient checks, where entries near 0 make the entry-by-entry error meaningless: a
    numeric gradient carries an absolute error of about 1e-10 in every entry.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, np.max(np.abs(a)) + np.max(np.abs(b))))
