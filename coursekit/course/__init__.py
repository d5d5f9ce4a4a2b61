"""The course machinery: stages and their release (:mod:`.stages`), the notebook anatomy
(:mod:`.anatomy`, docs/ANATOMY.md), nbgrader preprocessors (:mod:`.nbgrader_ext`) and the
command line (:mod:`.cli`). Only the CLI and the tests import this package."""

from coursekit.course.anatomy import (
    Exercise,
    anatomy_problems,
    exercise_labels,
    exercises,
    full_budget_on_cpu,
    is_answer,
    is_manual,
    is_test,
    nbgrader_meta,
    read_notebook,
    stage_problems,
)
from coursekit.course.stages import (
    STUB_MARKERS,
    answered_cells,
    find_root,
    notebook_from_source,
    notebook_text,
    release,
    release_path,
    solution_path,
    source_path,
    stages,
    stale,
)

__all__ = [
    "STUB_MARKERS", "Exercise", "anatomy_problems", "answered_cells", "exercise_labels", "exercises", "find_root",
    "full_budget_on_cpu", "is_answer",
    "is_manual", "is_test", "nbgrader_meta", "notebook_from_source", "notebook_text", "read_notebook",
    "release", "release_path", "solution_path", "source_path", "stage_problems", "stages", "stale",
]
