"""What the autograder test cells use: checks (:mod:`.checks`), gradient checks (:mod:`.gradients`),
the own-work sandbox that switches off the stage's coursekit pieces while an answer runs
(:mod:`.sandbox`), a count of the Python lines an answer runs (:mod:`.tracing`), and independent
oracles shared by the test cells and coursekit's own tests (:mod:`.oracles`), and the guards of the
locked cells that use answers outside the exercises (:mod:`.demos`).

Every check raises :class:`CheckFailed` (an ``AssertionError``) with a message that says which
property failed and by how much, never the expected values.
"""

from coursekit.grading.checks import (
    CheckFailed,
    NotAnswered,
    as_array,
    check,
    check_close,
    check_finite,
    check_shape,
    rel_error,
    scaled_error,
    unanswered,
)
from coursekit.grading.demos import demo, yours_or
from coursekit.grading.gradients import (
    block_order,
    check_gradient,
    check_gradients,
    node_gradients,
    numeric_gradient,
    torch_gradients,
)
from coursekit.grading.sandbox import (
    DEFAULT_TIME_LIMIT,
    GradingTimeout,
    blocked,
    library_modules,
    own_work,
    pieces_of_stage,
    stage_number,
    time_limit,
    time_limit_seconds,
)
from coursekit.grading.tracing import python_lines

__all__ = [
    "DEFAULT_TIME_LIMIT", "CheckFailed", "GradingTimeout", "NotAnswered", "as_array", "block_order", "blocked", "check",
    "check_close", "check_finite", "check_gradient", "check_gradients", "check_shape", "demo",
    "library_modules", "node_gradients", "numeric_gradient", "own_work", "pieces_of_stage", "python_lines",
    "rel_error", "scaled_error", "stage_number", "time_limit", "time_limit_seconds", "torch_gradients",
    "unanswered", "yours_or",
]
