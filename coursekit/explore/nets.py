"""Explorers of the lecture part "neural networks": the two-layer net retrained as sliders move
(stage 01) and a computation graph stepped through its backward pass (stage 02)."""

from __future__ import annotations

import numpy as np

from coursekit.explore import plots
from coursekit.explore.base import Explorer
from coursekit.nets import autodiff, backprop


class BackpropExplorer(Explorer):
    """Stage 01: retrain the two-layer net on a 2-D dataset as the sliders move.

    A menu picks the hidden layer's activation function ``h`` (relu, tanh, sigmoid: ``sigmoid`` may be
    a student's own function) or no hidden layer at all (the linear softmax classifier); sliders set
    the hidden width, weight decay ``lambda`` and learning rate. Each change retrains with full-batch
    gradient descent for ``steps`` steps (seeded, so the same settings give the same picture) and
    redraws the decision regions and the loss curve.
    """

    LINEAR = "none: linear classifier"

    DPI = 110

    def __init__(self, X, labels, *, steps: int = 1000, seed: int = 0, hidden: int = 100,
                 lam: float = 1e-3, lr: float = 1.0, h: str = "relu", sigmoid=None):
        import ipywidgets as w

        self.X = np.asarray(X, dtype=np.float64)
        self.labels = np.asarray(labels)
        if self.X.ndim != 2 or self.X.shape[1] != 2:
            raise ValueError(f"X must have shape (N, 2); got {self.X.shape}")
        if self.labels.shape != (self.X.shape[0],):
            raise ValueError(f"labels must have shape ({self.X.shape[0]},); got {self.labels.shape}")
        self.steps = steps
        self.seed = seed
        common = dict(continuous_update=False, style={"description_width": "initial"},
                      layout=w.Layout(min_width="330px"))
        self.hidden = w.IntSlider(value=hidden, min=1, max=200, step=1, description="hidden width", **common)
        self.lam = w.FloatLogSlider(value=lam, base=10, min=-5, max=0, step=0.25,
                                    description="weight decay λ", readout_format=".1e", **common)
        self.lr = w.FloatLogSlider(value=lr, base=10, min=-2, max=1, step=0.25,
                                   description="learning rate ε", readout_format=".2g", **common)
        choices = [*backprop.ACTIVATIONS, self.LINEAR]
        if h not in choices:
            raise ValueError(f"h must be one of {choices}; got {h!r}")
        self.h = w.Dropdown(options=choices, value=h, description="activation h",
                            style={"description_width": "initial"})
        self.activations = {name: backprop.activation(name, sigmoid_fn=sigmoid) for name in backprop.ACTIVATIONS}
        self.own_sigmoid = sigmoid is not None
        self.result: backprop.TrainResult | None = None
        super().__init__(self.row(self.h, self.hidden), self.row(self.lam, self.lr),
                         redraw_on=(self.h, self.hidden, self.lam, self.lr))
        self.update()

    def settings(self) -> dict:
        return {"h": self.h.value, "hidden": int(self.hidden.value), "lam": float(self.lam.value),
                "lr": float(self.lr.value)}

    def draw(self):
        """Retrain with the current settings; the decision regions and the loss curve."""
        s = self.settings()
        linear = s["h"] == self.LINEAR
        self.hidden.disabled = linear
        with np.errstate(over="ignore", invalid="ignore"):  # a too-large lr may diverge: shown, not raised
            if linear:
                self.result = backprop.train_linear(self.X, self.labels, lam=s["lam"], lr=s["lr"], steps=self.steps)
                record_every = 1
                predict = lambda G: backprop.predict_linear(G, self.result.params)  # noqa: E731
            else:
                try:
                    self.result = backprop.train(self.X, self.labels, steps=self.steps, seed=self.seed,
                                                 hidden=s["hidden"], lam=s["lam"], lr=s["lr"], h=self.activations[s["h"]])
                except Exception as err:
                    if not (self.own_sigmoid and s["h"] == "sigmoid"):
                        raise
                    # the sigmoid given (a student's) failed: say so in the status line, keep the widget alive
                    self.train_accuracy = self.final_loss = float("nan")
                    self.status.value = f"h = sigmoid uses your sigmoid, which failed: {type(err).__name__}: {err}"
                    return None
                record_every = 10
                predict = self.result.predict
            final = self.result.losses[-1] if self.result.losses else float("nan")
            acc = float(np.mean(predict(self.X) == self.labels)) if np.isfinite(final) else float("nan")
        self.train_accuracy = acc
        self.final_loss = final
        if np.isfinite(final):
            network = "no hidden layer" if linear else f"h = {s['h']}, hidden {s['hidden']}"
            self.status.value = (
                f"<b>{self.steps}</b> steps, {network}, λ={s['lam']:.1e}, ε={s['lr']:.2g}: "
                f"training accuracy <b>{acc:.1%}</b>, final loss {final:.3f}"
            )
        else:
            self.status.value = (
                f"ε={s['lr']:.2g} makes gradient descent diverge (the loss became inf/nan): lower it"
            )
        fig, (ax_regions, ax_loss) = plots.new_figure(ncols=2)
        if np.isfinite(final):
            plots.plot_decision_regions(ax_regions, predict, self.X, self.labels, resolution=120,
                                        title="decision regions")
            plots.plot_loss(ax_loss, self.result.losses, record_every=record_every)
        else:
            ax_regions.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax_regions.transAxes)
        return fig


class GraphViewer(Explorer):
    """Stage 02: the graph of a computation, stepped through its backward pass node by node.

    ``step`` 0 shows the forward values with only ``dL = 1`` seeded; step ``k`` shows the gradients
    after the first ``k`` nodes ran their ``back``; the last step equals :func:`autodiff.backward`.
    Blocks are opened up and drawn as frames around their nodes.
    """

    DPI = 110

    def __init__(self, out):
        import ipywidgets as w

        self.out = out
        self.values, self.blocks = autodiff.expand(out)
        self.order = [v for v in reversed(self.values) if isinstance(v, autodiff.Node)]
        self.step = w.IntSlider(value=0, min=0, max=len(self.order), description="backward step",
                                style={"description_width": "initial"})
        self.current = None
        super().__init__(self.step, redraw_on=(self.step,))
        self.show(0)

    def show(self, step: int) -> None:
        """Run the backward pass up to ``step`` nodes and redraw."""
        if not 0 <= step <= len(self.order):
            raise ValueError(f"step must be in [0, {len(self.order)}]; got {step}")
        if self.step.value != step:
            self.step.value = step  # redraws through the slider
        else:
            self.update()

    def draw(self):
        step = self.step.value
        steps = autodiff.backward_steps(self.out)
        self.current = None
        for _ in range(step):
            self.current = next(steps)
        steps.close()
        if self.current is None:
            self.status.value = "forward values; dL = 1 seeded at the output"
        else:
            block = next((b.op for b in self.blocks if any(n is self.current for n in b.inner)), None)
            where = f" [{block}]" if block else ""
            shape = "x".join(map(str, self.current.shape)) or "scalar"
            self.status.value = (f"step {step}/{len(self.order)}: <b>{self.current.op}</b>{where} "
                                 f"(output {shape}) ran its back")
        return _graph_figure(self.values, self.blocks, self.current)

    @staticmethod
    def _parents(v):
        """Parents with blocks replaced by their output node (blocks are drawn opened up)."""
        found = []
        for p in getattr(v, "parents", []):
            while hasattr(p, "inner"):
                p = p.out
            found.append(p)
        return found


def _graph_figure(values, blocks, current=None, title=None):
    width = 1.6 * (1 + max(plots.graph_layout(values, GraphViewer._parents).values(), key=lambda p: p[0])[0])
    fig, (ax,) = plots.new_figure(width=max(7.0, width), height=5.0)
    plots.draw_graph(ax, values, blocks, parents_of=GraphViewer._parents, current=current, title=title)
    return fig


def graph_figure(out, title: str | None = None):
    """A static picture of the graph of ``out`` (blocks opened up) after a whole backward pass: every
    box shows its value and the gradient that reached it."""
    autodiff.backward(out)
    values, blocks = autodiff.expand(out)
    return _graph_figure(values, blocks, title=title)
