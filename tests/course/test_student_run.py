"""The solution as a student runs it: outside the autograder, in the full budget, widgets included.

Only for stages whose full budget takes seconds on a CPU; the heavier stages' full budgets are for GPUs.
"""

from __future__ import annotations

import pytest

from coursekit import course

from . import support

FULL_BUDGET_ON_CPU = ["01-backprop", "02-autodiff", "03-convolution"]

pytestmark = pytest.mark.course


@pytest.mark.parametrize("stage", FULL_BUDGET_ON_CPU)
def test_solution_runs_in_the_full_budget(stage):
    run = support.execute(course.solution_path(support.ROOT, stage), env=support.student_environment)
    failures = run.failures(range(len(run.nb.cells)))
    assert not failures, "\n".join(f"cell {i} ({run.nb.cells[i].id}): {why}" for i, why in failures.items())
    printed = "".join(o.get("text", "") for c in run.nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "full budget" in printed
    figures_as_text = [c.id for c in run.nb.cells if c.cell_type == "code" for o in c.outputs
                       if o.get("data", {}).get("text/plain", "").startswith("<Figure size")]
    assert not figures_as_text, f"these cells show a figure as text, not as an image: {figures_as_text}"
    images = [c.id for c in run.nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook shows no plot"
    widgets = [o for c in run.nb.cells if c.cell_type == "code" for o in c.outputs
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the explorer widget was not displayed"
    print(f"{stage}: the solution executed in {run.seconds:.1f} s (full budget)")
