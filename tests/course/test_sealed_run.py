"""The sealed run (coursekit/course/sealing.py) of a tiny notebook, in a kernel of its own: what it records
must come from the student's code, never from a locked cell or from the libraries (docs/ANATOMY.md §8)."""

from __future__ import annotations

import nbformat
import pytest
from traitlets.config import Config

from coursekit.course import sealing

pytestmark = pytest.mark.course

STUB = 'raise NotImplementedError("the exercise is not answered yet")'


def cell(kind: str, grade_id: str, source: str):
    meta = {"grade": kind == "test", "grade_id": grade_id, "locked": kind != "answer", "schema_version": 3,
            "solution": kind == "answer", "task": False}
    if kind == "test":
        meta["points"] = 1
    return nbformat.v4.new_code_cell(source, metadata={"nbgrader": meta})


def tiny_notebook(first: str, second: str):
    """Two exercises; the locked cells do what stage 04's do: seed everything, then train (the first
    optimizer made, on which torch imports torch._dynamo, which rebinds torch.manual_seed)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        cell("locked", "setup", "import torch\n\nimport coursekit\n\ncoursekit.seed_everything(0)"),
        cell("answer", "first-impl", f"def first():\n    {first}"),
        cell("test", "first-tests", "assert callable(first)"),
        cell("locked", "train", "torch.manual_seed(1)\nnet = torch.nn.Linear(2, 2)\n"
                                "optimizer = torch.optim.SGD(net.parameters(), lr=0.1)\n"
                                "net(torch.ones(1, 2)).sum().backward()\noptimizer.step()"),
        cell("answer", "second-impl", second),
        cell("test", "second-tests", "assert second() == 2\ntorch.manual_seed(2)"),
    ]
    return nb


def sealed_run(tmp_path, submitted):
    """Autograde ``submitted`` as nbgrader's SealedExecute does, zeroing the flagged exercises; its report."""
    for folder, nb in (("source", tiny_notebook("return 1", "def second():\n    return 2")),
                       ("release", tiny_notebook(STUB, f"def second():\n    {STUB}"))):
        (tmp_path / folder / "tiny").mkdir(parents=True)
        nbformat.write(nb, tmp_path / folder / "tiny" / "tiny.ipynb")
    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    config.SealedExecute.zero_flagged = True
    config.Execute.timeout = 120
    resources = {"nbgrader": {"assignment": "tiny", "student": "student", "notebook": "tiny"},
                 "metadata": {"path": str(tmp_path)}}
    graded, _ = sealing.SealedExecute(config=config).preprocess(submitted, resources)
    report = sealing.read_report(tmp_path / sealing.REPORTS / "tiny" / "student" / "tiny.json")
    zeroed = sorted(c.metadata["nbgrader"]["grade_id"] for c in graded.cells
                    if any(o.get("ename") == "IntegrityFlag" for o in c.get("outputs", [])))
    return report, zeroed


def test_locked_cells_that_make_torch_rebind_its_own_names_flag_nothing_and_tampering_still_is(tmp_path):
    # the first answer is the release's stub, untouched; the second replaces torch.manual_seed
    submitted = tiny_notebook(STUB, "torch.manual_seed = lambda *a, **k: None\n\ndef second():\n    return 2")
    report, zeroed = sealed_run(tmp_path, submitted)
    events = [(e["exercise"], e["change"]) for e in report["events"]]
    assert events == [("second-impl", "torch.manual_seed was replaced")], report["events"]
    assert report["faults"] == []
    assert zeroed == ["second-tests"]  # zero_flagged: the tampering costs its own exercise only
