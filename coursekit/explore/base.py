"""The explorers' base: the output (a status line and a figure shown as a PNG image), the redraw on
every change of a control, and the display in a notebook.

A subclass builds its controls, passes the rows they sit in to ``__init__``, and implements
:meth:`Explorer.draw`, which reads the controls, sets ``status.value`` and returns a matplotlib figure
(or None for no picture). Tests drive an explorer without a browser: set a control's ``value`` and
read the state back (``updates`` counts the redraws).
"""

from __future__ import annotations

from coursekit.explore import plots


class Explorer:
    DPI = 100

    def __init__(self, *rows, redraw_on=()):
        import ipywidgets as w

        self.status = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(align_self="flex-start", max_width="100%"))
        self.widget = w.VBox([*rows, self.status, self.image])
        self.updates = 0
        self.redraw_on(*redraw_on)

    @staticmethod
    def row(*controls):
        """Controls side by side, wrapping onto the next line on a narrow screen."""
        import ipywidgets as w

        return w.HBox(list(controls), layout=w.Layout(flex_flow="row wrap"))

    def redraw_on(self, *controls) -> None:
        for control in controls:
            control.observe(lambda change: self.update(), names="value")

    def draw(self):
        raise NotImplementedError(f"{type(self).__name__} must implement draw()")

    def update(self) -> None:
        """Redraw with the controls' current values."""
        fig = self.draw()
        self.image.value = b"" if fig is None else plots.figure_png(fig, dpi=self.DPI)
        self.updates += 1

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
