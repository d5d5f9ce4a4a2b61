"""nbgrader preprocessors of this course (configured in nbgrader_config.py)."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor


class StripTracebacks(NbGraderPreprocessor):
    """In feedback, reduce every error to ``ename: evalue``.

    A traceback quotes the source lines around the failing one: in a test cell that can be the
    hidden test itself. The checks' own messages say what failed without that; other cells are
    treated alike so that the feedback reads the same everywhere.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
