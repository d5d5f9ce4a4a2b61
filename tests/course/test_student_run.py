"""The solution as a student runs it: outside the autograder, in the full budget, widgets included.

Only for stages whose notebooks say their full budget takes seconds on a CPU (metadata
``coursekit.full_budget_on_cpu``, docs/ANATOMY.md); the heavier stages' full budgets are for GPUs.
"""

from __future__ import annotations

import pytest

from coursekit import course

from . import support

FULL_BUDGET_ON_CPU = [stage for stage in support.STAGES
                     if course.full_budget_on_cpu(course.read_notebook(course.solution_path(support.ROOT, stage)))]

pytestmark = pytest.mark.course


def test_the_light_stages_say_so():
    assert {"01-backprop", "02-autodiff", "03-convolution"} <= set(FULL_BUDGET_ON_CPU)
    assert "04-mnist" not in FULL_BUDGET_ON_CPU  # five networks on 60k images: minutes on a CPU


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
