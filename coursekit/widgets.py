"""Interactive explorers built on ipywidgets. Each keeps its logic in plain methods so the tests
can drive it without a browser (set a slider's ``value`` and read the state back)."""

from __future__ import annotations

import numpy as np

from coursekit import nn, plots


class BackpropExplorer:
    """Stage 01: retrain the two-layer net on a 2-D dataset as the sliders move.

    Sliders: hidden width, weight decay ``lambda`` and learning rate. Each change retrains with
    full-batch gradient descent for ``steps`` steps (seeded, so the same settings give the same
    picture) and redraws the decision regions and the loss curve.
    """

    def __init__(self, X, labels, *, steps: int = 1000, seed: int = 0, hidden: int = 100,
                 lam: float = 1e-3, lr: float = 1.0):
        import ipywidgets as w

        self.X = np.asarray(X, dtype=np.float64)
        self.labels = np.asarray(labels)
        if self.X.ndim != 2 or self.X.shape[1] != 2:
            raise ValueError(f"X must have shape (N, 2); got {self.X.shape}")
        if self.labels.shape != (self.X.shape[0],):
            raise ValueError(f"labels must have shape ({self.X.shape[0]},); got {self.labels.shape}")
        self.steps = steps
        self.seed = seed
        style = {"description_width": "initial"}
        common = dict(continuous_update=False, style=style)
        self.hidden = w.IntSlider(value=hidden, min=1, max=200, step=1, description="hidden width", **common)
        self.lam = w.FloatLogSlider(value=lam, base=10, min=-5, max=0, step=0.25,
                                    description="weight decay λ", readout_format=".1e", **common)
        self.lr = w.FloatLogSlider(value=lr, base=10, min=-2, max=1, step=0.25,
                                   description="learning rate ε", readout_format=".2g", **common)
        self.status = w.HTML()
        self.image = w.Image(format="png")
        self.result: nn.TrainResult | None = None
        self.updates = 0
        for slider in (self.hidden, self.lam, self.lr):
            slider.observe(self._on_change, names="value")
        sliders = w.HBox([self.hidden, self.lam, self.lr], layout=w.Layout(flex_flow="row wrap"))
        for slider in (self.hidden, self.lam, self.lr):
            slider.layout = w.Layout(min_width="330px")
        self.widget = w.VBox([sliders, self.status, self.image])
        self.update()

    def settings(self) -> dict:
        return {"hidden": int(self.hidden.value), "lam": float(self.lam.value), "lr": float(self.lr.value)}

    def _on_change(self, change) -> None:
        self.update()

    def update(self) -> None:
        """Retrain with the current settings and redraw."""
        s = self.settings()
        with np.errstate(over="ignore", invalid="ignore"):  # a too-large lr may diverge: shown, not raised
            self.result = nn.train(self.X, self.labels, steps=self.steps, seed=self.seed, **s)
            final = self.result.losses[-1] if self.result.losses else float("nan")
            acc = self.result.accuracy(self.X, self.labels) if np.isfinite(final) else float("nan")
        self.train_accuracy = acc
        self.final_loss = final
        if np.isfinite(final):
            self.status.value = (
                f"<b>{self.steps}</b> steps, hidden {s['hidden']}, λ={s['lam']:.1e}, ε={s['lr']:.2g}: "
                f"training accuracy <b>{acc:.1%}</b>, final loss {final:.3f}"
            )
        else:
            self.status.value = (
                f"ε={s['lr']:.2g} makes gradient descent diverge (the loss became inf/nan): lower it"
            )
        fig, (ax_regions, ax_loss) = plots.new_figure(ncols=2)
        if np.isfinite(final):
            plots.plot_decision_regions(
                ax_regions, lambda G: nn.predict(G, self.result.params), self.X, self.labels,
                resolution=120, title="decision regions",
            )
            plots.plot_loss(ax_loss, self.result.losses, record_every=10)
        else:
            ax_regions.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax_regions.transAxes)
        self.image.value = plots.figure_png(fig, dpi=110)
        self.updates += 1

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class GraphViewer:
    """Stage 02: the graph of a computation, stepped through its backward pass node by node.

    ``step`` 0 shows the forward values with only ``dL = 1`` seeded; step ``k`` shows the gradients
    after the first ``k`` nodes ran their ``back``; the last step equals :func:`autodiff.backward`.
    Blocks are opened up and drawn as frames around their nodes.
    """

    def __init__(self, out):
        import ipywidgets as w

        from coursekit import autodiff

        self.out = out
        self.values, self.blocks = autodiff.expand(out)
        self.order = [v for v in reversed(self.values) if isinstance(v, autodiff.Node)]
        self.step = w.IntSlider(value=0, min=0, max=len(self.order), description="backward step",
                                style={"description_width": "initial"})
        self.status = w.HTML()
        self.image = w.Image(format="png")
        self.step.observe(lambda change: self.show(change["new"]), names="value")
        self.widget = w.VBox([self.step, self.status, self.image])
        self.current = None
        self.show(0)

    def show(self, step: int) -> None:
        """Run the backward pass up to ``step`` nodes and redraw."""
        from coursekit import autodiff

        if not 0 <= step <= len(self.order):
            raise ValueError(f"step must be in [0, {len(self.order)}]; got {step}")
        steps = autodiff.backward_steps(self.out)
        self.current = None
        for _ in range(step):
            self.current = next(steps)
        steps.close()
        if self.current is None:
            self.status.value = "forward values; dL = 1 seeded at the output"
        else:
            self.status.value = f"step {step}/{len(self.order)}: <b>{self.current.op}</b> ran its back"
        width = 1.6 * (1 + max(plots.graph_layout(self.values, self._parents).values(), key=lambda p: p[0])[0])
        fig, (ax,) = plots.new_figure(width=max(6.0, width), height=4.5)
        plots.draw_graph(ax, self.values, self.blocks, parents_of=self._parents, current=self.current)
        self.image.value = plots.figure_png(fig, dpi=110)

    @staticmethod
    def _parents(v):
        """Parents with blocks replaced by their output node (blocks are drawn opened up)."""
        found = []
        for p in getattr(v, "parents", []):
            while hasattr(p, "inner"):
                p = p.out
            found.append(p)
        return found

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
