"""nbgrader preprocessors of this course (configured in nbgrader_config.py)."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor


class StripTracebacks(NbGraderPreprocessor):
    """In feedback, reduce the errors of autograder test cells to ``ename: evalue``.

    A traceback quotes the source lines around the failing one, which for a hidden test is the
    hidden test itself; the checks' own messages say what failed without that.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        nbgrader = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and nbgrader.get("grade") and not nbgrader.get("solution"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
