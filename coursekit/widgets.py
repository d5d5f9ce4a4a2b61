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
            block = next((b.op for b in self.blocks if any(n is self.current for n in b.inner)), None)
            where = f" [{block}]" if block else ""
            shape = "x".join(map(str, self.current.shape)) or "scalar"
            self.status.value = (f"step {step}/{len(self.order)}: <b>{self.current.op}</b>{where} "
                                 f"(output {shape}) ran its back")
        width = 1.6 * (1 + max(plots.graph_layout(self.values, self._parents).values(), key=lambda p: p[0])[0])
        fig, (ax,) = plots.new_figure(width=max(7.0, width), height=5.0)
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


# -- stage 03 -------------------------------------------------------------------------------------


def _lti_signals(n: int) -> dict:
    t = np.arange(n)
    rng = np.random.default_rng(0)
    return {
        "pulse": ((t >= n // 4) & (t < n // 2)).astype(float),
        "step": (t >= n // 3).astype(float),
        "noisy sine": np.sin(2 * np.pi * t / 24) + 0.4 * rng.normal(size=n),
        "impulse": (t == n // 3).astype(float),
    }


def _lti_responses(width: int) -> dict:
    from coursekit import conv

    return {
        "moving average": np.full(width, 1.0 / width),
        "exponential decay": 0.7 ** np.arange(width) * (1 - 0.7),
        "difference [1, -1]": np.array([1.0, -1.0]),
        "gaussian": conv.gaussian(max(width / 4, 0.5), size=2 * (width // 2) + 1).sum(axis=0),
    }


class LTIExplorer:
    """Stage 03: a signal x, an impulse response h, the output y = x * h, and the time-invariance
    check f(t_k x) = t_k f(x) for a delay k."""

    def __init__(self, n: int = 96):
        import ipywidgets as w

        self.n = n
        style = {"description_width": "initial"}
        self.signal = w.Dropdown(options=list(_lti_signals(n)), value="pulse", description="signal x", style=style)
        self.response = w.Dropdown(options=list(_lti_responses(5)), value="moving average",
                                   description="impulse response h", style=style)
        self.width = w.IntSlider(value=7, min=2, max=25, description="length of h", style=style,
                                 continuous_update=False)
        self.delay = w.IntSlider(value=10, min=-20, max=20, description="delay k", style=style,
                                 continuous_update=False)
        self.image = w.Image(format="png")
        self.note = w.HTML()
        for control in (self.signal, self.response, self.width, self.delay):
            control.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.signal, self.response], layout=w.Layout(flex_flow="row wrap")),
                              w.HBox([self.width, self.delay], layout=w.Layout(flex_flow="row wrap")), self.image,
                              self.note])
        self.update()

    def update(self) -> None:
        from coursekit import conv, plots

        self.x = _lti_signals(self.n)[self.signal.value]
        self.h = _lti_responses(self.width.value)[self.response.value]
        system = lambda s: conv.convolve(s, self.h, "full")[: self.n]  # noqa: E731 - a causal LTI system
        self.y = system(self.x)
        self.shift_then_filter = system(conv.shift(self.x, self.delay.value))
        self.filter_then_shift = conv.shift(self.y, self.delay.value)
        fig, axes = plots.new_figure(ncols=3, width=3.8, height=2.8)
        axes[0].plot(self.x, drawstyle="steps-mid")
        axes[0].set_title("signal x")
        axes[1].stem(self.h, markerfmt="o", basefmt="k-")
        axes[1].set_title("impulse response h = f(δ)")
        axes[2].plot(self.y, label="y = x * h")
        k = self.delay.value
        axes[2].plot(self.shift_then_filter, "--", label=rf"$f(t_{{{k}}}\,x)$")
        axes[2].plot(self.filter_then_shift, ":", lw=2, label=rf"$t_{{{k}}}\,f(x)$")
        axes[2].legend(fontsize=8)
        # away from the ends the two orders agree; near them, samples shifted in are zeros
        edge = abs(k) + len(self.h)
        inner = np.abs(self.shift_then_filter - self.filter_then_shift)[edge : self.n - edge]
        self.interior_gap = float(inner.max()) if inner.size else 0.0
        self.note.value = (f"max |f(t<sub>k</sub>x) − t<sub>k</sub>f(x)| away from the ends: {self.interior_gap:.1e}; "
                           "near the ends they may differ: a finite signal shifts in zeros and loses samples")
        axes[2].set_title("output and the shift check")
        self.image.value = plots.figure_png(fig, dpi=100)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class KernelExplorer:
    """Stage 03: filter a real photo with a 3x3 kernel picked from a list or typed in; shows the
    photo and the feature map (true convolution, zero padding, same size)."""

    def __init__(self, photo: str = "camera", size: int = 256):
        import ipywidgets as w

        from coursekit import conv, datasets

        self.kernels = {
            "box 3x3": conv.box(3),
            "gaussian σ=0.8": conv.gaussian(0.8, size=3),
            "sobel x": conv.SOBEL_X,
            "sobel y": conv.SOBEL_Y,
            "laplacian": conv.LAPLACIAN,
            "identity": np.pad([[1.0]], 1),
        }
        self.size = size
        self.photo = w.Dropdown(options=datasets.PHOTOS, value=photo, description="photo")
        self.preset = w.Dropdown(options=list(self.kernels), value="sobel x", description="kernel")
        self.cells = [w.FloatText(value=0.0, layout=w.Layout(width="70px")) for _ in range(9)]
        self.image = w.Image(format="png")
        self._loading = False
        self.photo.observe(lambda change: self.update(), names="value")
        self.preset.observe(lambda change: self.load_preset(), names="value")
        for cell in self.cells:
            cell.observe(lambda change: None if self._loading else self.update(), names="value")
        grid = w.GridBox(self.cells, layout=w.Layout(grid_template_columns="repeat(3, 75px)"))
        self.widget = w.VBox([w.HBox([self.photo, self.preset]), w.HTML("kernel (editable):"), grid, self.image])
        self.load_preset()

    @property
    def kernel(self) -> np.ndarray:
        return np.array([c.value for c in self.cells], dtype=float).reshape(3, 3)

    def load_preset(self) -> None:
        self._loading = True
        try:
            for cell, v in zip(self.cells, self.kernels[self.preset.value].ravel()):
                cell.value = round(float(v), 4)
        finally:
            self._loading = False
        self.update()

    def update(self) -> None:
        from coursekit import conv, datasets, plots

        self.input = datasets.photo(self.photo.value, size=self.size)
        self.output = conv.convolve2d(self.input, self.kernel, mode="same")
        fig, (a, b) = plots.new_figure(ncols=2, width=3.6, height=3.6)
        a.imshow(self.input, cmap="gray")
        a.set_title(self.photo.value)
        limit = float(np.abs(self.output).max()) or 1.0
        signed = self.kernel.min() < 0
        b.imshow(self.output, cmap="RdBu_r" if signed else "gray",
                 vmin=-limit if signed else None, vmax=limit if signed else None)
        b.set_title("feature map (x * k)")
        for ax in (a, b):
            ax.set_xticks([])
            ax.set_yticks([])
        self.image.value = plots.figure_png(fig, dpi=90)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class DigitBrowser:
    """Stage 04: browse test digits, original and with shuffled pixels, side by side.

    ``original`` and ``shuffled`` map a net's name to a torch model trained on the original or on
    the shuffled pixels (one fixed ``permutation`` for every image). Shows each net's prediction
    on its kind of pixels and the first-layer feature maps of ``original["CNN"]`` on the digit and
    of ``shuffled["CNN"]`` on the shuffled digit. The subset menu narrows the slider to the
    digits some net gets wrong. ``images`` are uint8 ``(N, 28, 28)``, ``labels`` int64 ``(N,)``.
    """

    MAPS = 8  # feature maps shown per row

    def __init__(self, images, labels, permutation, *, original: dict, shuffled: dict, cnn: str = "CNN"):
        import ipywidgets as w
        import torch

        from coursekit import datasets, training

        if images.ndim != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, H, W); got {images.dtype} of shape {tuple(images.shape)}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},); got {tuple(labels.shape)}")
        if set(original) != set(shuffled) or cnn not in original:
            raise ValueError(f"original and shuffled must name the same nets, {cnn!r} among them; "
                             f"got {sorted(original)} and {sorted(shuffled)}")
        self.images, self.labels = images, labels
        self.shuffled_images = datasets.permute_pixels(images, permutation)
        self.nets = {"original": original, "shuffled": shuffled}
        self.cnn = cnn
        self.predictions = {
            kind: {name: training.predict(net, self.images if kind == "original" else self.shuffled_images)
                   for name, net in nets.items()}
            for kind, nets in self.nets.items()
        }
        self.subsets = {"all digits": torch.arange(len(images), device=images.device)}
        for kind in self.nets:
            for name, predicted in self.predictions[kind].items():
                self.subsets[f"{name} wrong on {kind} pixels"] = torch.nonzero(predicted != labels).flatten()
        self.subset = w.Dropdown(options=list(self.subsets), value="all digits", description="show")
        self.position = w.IntSlider(value=0, min=0, max=len(images) - 1, description="position in subset",
                                    continuous_update=False, style={"description_width": "initial"},
                                    layout=w.Layout(width="480px"))
        self.table = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(align_self="flex-start", max_width="100%"))
        self.subset.observe(lambda change: self._on_subset(), names="value")
        self.position.observe(lambda change: self.update(), names="value")
        hint = w.HTML("<small>(click the slider, then use the arrow keys to step one digit)</small>")
        self.widget = w.VBox([w.HBox([self.subset, self.position, hint]), self.table, self.image])
        self.update()

    @property
    def index(self) -> int | None:
        """The test image shown (its index in ``images``), or None when the subset is empty."""
        chosen = self.subsets[self.subset.value]
        return int(chosen[self.position.value]) if len(chosen) else None

    def _on_subset(self) -> None:
        size = len(self.subsets[self.subset.value])
        with self.position.hold_trait_notifications():
            self.position.value = 0
            self.position.max = max(size - 1, 0)
        if self._drawn != (self.subset.value, self.position.value):  # moving the slider already redrew
            self.update()

    def update(self) -> None:
        from matplotlib.figure import Figure

        from coursekit import models, plots, training

        self._drawn = (self.subset.value, self.position.value)
        i = self.index
        if i is None:
            self.table.value = "<i>no digit in this subset</i>"
            self.image.value = b""
            self.maps = {}
            return
        label = int(self.labels[i])
        rows = []
        for name in self.nets["original"]:
            cells = []
            for kind in self.nets:
                p = int(self.predictions[kind][name][i])
                colour = "green" if p == label else "red"
                cells.append(f"<td style='color:{colour};padding:0 12px'>{p}</td>")
            rows.append(f"<tr><th style='text-align:left'>{name}</th>{''.join(cells)}</tr>")
        size = len(self.subsets[self.subset.value])
        self.table.value = (f"<b>test image {i}, label {label}</b> (position {self.position.value} of {size} in "
                            f"“{self.subset.value}”)<table><tr><th>prediction</th><th>original pixels</th>"
                            f"<th>shuffled pixels</th></tr>{''.join(rows)}</table>")
        self.maps = {}
        fig = Figure(figsize=(1.1 * (self.MAPS + 1), 2.6), layout="constrained")
        grid = fig.add_gridspec(2, self.MAPS + 1)
        for row, (kind, pixels) in enumerate((("original", self.images), ("shuffled", self.shuffled_images))):
            net = self.nets[kind][self.cnn]
            self.maps[kind] = models.layer_output(net, models.first_conv(net), training.prepare(pixels[i : i + 1]))[0]
            ax = fig.add_subplot(grid[row, 0])
            ax.imshow(pixels[i].cpu().numpy(), cmap="gray")
            ax.set_title(kind, fontsize=9)
            maps = self.maps[kind].float().cpu().numpy()
            for k in range(min(self.MAPS, len(maps))):
                ax_map = fig.add_subplot(grid[row, k + 1])
                ax_map.imshow(maps[k], cmap="RdBu_r", vmin=-abs(maps[k]).max(), vmax=abs(maps[k]).max())
                ax_map.set_title(f"map {k}", fontsize=9)
        for ax in fig.axes:
            ax.set_xticks([])
            ax.set_yticks([])
        count = len(self.maps["original"])
        fig.suptitle(f"{self.cnn}'s first-layer feature maps ({min(self.MAPS, count)} of {count}; red positive, "
                     "blue negative): trained on original pixels (top), on shuffled pixels (bottom)", fontsize=9)
        self.image.value = plots.figure_png(fig, dpi=100)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
