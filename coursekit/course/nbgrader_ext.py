"""nbgrader preprocessors of this course (configured in nbgrader_config.py)."""

from __future__ import annotations

from nbgrader.preprocessors import ClearSolutions, NbGraderPreprocessor

from coursekit.course.anatomy import exercise_labels


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


class NamedStubs(ClearSolutions):
    """ClearSolutions whose stub names the exercise it stands in.

    ``{exercise}`` in ``ClearSolutions.code_stub`` becomes the answer cell's label, e.g.
    "Exercise 1.2 (softmax-impl)" (:func:`coursekit.course.anatomy.exercise_labels`), so that a test
    run before the answer exists says which exercise is missing. It runs where ClearSolutions does,
    before the checksums are computed, so nbgrader records the stub as released.
    """

    def preprocess(self, nb, resources):
        self._labels = exercise_labels(nb)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        template = self.code_stub
        label = self._labels.get(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"), "this exercise")
        self.code_stub = {language: stub.replace("{exercise}", label) for language, stub in template.items()}
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self.code_stub = template
