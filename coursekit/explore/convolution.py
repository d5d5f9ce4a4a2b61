"""Explorers of the lecture part "convolution": an LTI system's output and shift check, a kernel on a
real photo (stage 03), and MNIST digits with shuffled pixels through trained nets (stage 04)."""

from __future__ import annotations

import numpy as np

from coursekit.convolution import filters, signals
from coursekit.data import samples, transforms
from coursekit.explore import plots
from coursekit.explore.base import Explorer


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
    """Each impulse response with ``width`` taps, except those in :data:`_FIXED_LENGTH`."""
    return {
        "moving average": np.full(width, 1.0 / width),
        "exponential decay": 0.7 ** np.arange(width) * (1 - 0.7),
        "difference [1, -1]": np.array([1.0, -1.0]),
        "gaussian": filters.gaussian(max(width / 4, 0.5), size=width).sum(axis=0),
    }


_FIXED_LENGTH = {"difference [1, -1]": "the first difference has exactly two taps"}


class LTIExplorer(Explorer):
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
        controls = (self.signal, self.response, self.width, self.delay)
        super().__init__(self.row(self.signal, self.response), self.row(self.width, self.delay), redraw_on=controls)
        self.update()

    def draw(self):
        self.x = _lti_signals(self.n)[self.signal.value]
        self.h = _lti_responses(self.width.value)[self.response.value]
        fixed = _FIXED_LENGTH.get(self.response.value)
        self.width.disabled = fixed is not None
        system = lambda s: signals.convolve(s, self.h, "full")[: self.n]  # noqa: E731 - a causal LTI system
        self.y = system(self.x)
        self.shift_then_filter = system(signals.shift(self.x, self.delay.value))
        self.filter_then_shift = signals.shift(self.y, self.delay.value)
        fig, axes = plots.new_figure(ncols=3, width=3.8, height=2.8)
        axes[0].plot(self.x, drawstyle="steps-mid")
        axes[0].set_title("signal x")
        axes[1].stem(self.h, markerfmt="o", basefmt="k-")
        axes[1].set_title("impulse response h = f(δ)")
        axes[2].plot(self.y, label="y = x * h")
        k = self.delay.value
        axes[2].plot(self.shift_then_filter, "--", label=rf"$f(t_{{{k}}}\,x)$")
        axes[2].plot(self.filter_then_shift, ":", lw=2, label=rf"$t_{{{k}}}\,f(x)$")
        axes[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        # away from the ends the two orders agree; near them, samples shifted in are zeros
        edge = abs(k) + len(self.h)
        inner = np.abs(self.shift_then_filter - self.filter_then_shift)[edge : self.n - edge]
        self.interior_gap = float(inner.max()) if inner.size else 0.0
        note = (f"<i>length of h fixed at {len(self.h)} (the slider is off): {fixed}</i><br>"
                if fixed is not None else "")
        self.status.value = (note + f"max |f(t<sub>k</sub>x) − t<sub>k</sub>f(x)| away from the ends: "
                             f"{self.interior_gap:.1e}; near the ends they may differ: a finite signal shifts in "
                             "zeros and loses samples")
        axes[2].set_title("output and the shift check")
        return fig


class KernelExplorer(Explorer):
    """Stage 03: filter a real photo with a 3x3 kernel picked from a list or typed in; shows the
    photo and the feature map (true convolution, zero padding, same size).

    A kernel with a negative entry gives a signed response, drawn on a diverging map centred on 0
    whose limits are the ``PERCENTILE``-th percentile of its magnitude: a few strong edges would
    otherwise set the scale and leave the rest of the map nearly white."""

    DPI = 90
    PERCENTILE = 99.0

    def __init__(self, photo: str = "camera", size: int = 256):
        import ipywidgets as w

        self.kernels = {
            "box 3x3": filters.box(3),
            "gaussian σ=0.8": filters.gaussian(0.8, size=3),
            "sobel x": filters.SOBEL_X,
            "sobel y": filters.SOBEL_Y,
            "laplacian": filters.LAPLACIAN,
            "identity": np.pad([[1.0]], 1),
        }
        self.size = size
        self.photo = w.Dropdown(options=samples.PHOTOS, value=photo, description="photo")
        self.preset = w.Dropdown(options=list(self.kernels), value="sobel x", description="kernel")
        self.cells = [w.FloatText(value=0.0, layout=w.Layout(width="70px")) for _ in range(9)]
        self._loading = False
        self.preset.observe(lambda change: self.load_preset(), names="value")
        for cell in self.cells:
            cell.observe(lambda change: None if self._loading else self.update(), names="value")
        grid = w.GridBox(self.cells, layout=w.Layout(grid_template_columns="repeat(3, 75px)"))
        super().__init__(self.row(self.photo, self.preset), w.HTML("kernel (editable):"), grid,
                         redraw_on=(self.photo,))
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

    def draw(self):
        self.input = samples.photo(self.photo.value, size=self.size)
        self.output = filters.convolve2d(self.input, self.kernel, mode="same")
        fig, (a, b) = plots.new_figure(ncols=2, width=3.6, height=3.6)
        a.imshow(self.input, cmap="gray")
        a.set_title(self.photo.value)
        if self.kernel.min() < 0:
            magnitude = np.abs(self.output)
            limit = float(np.percentile(magnitude, self.PERCENTILE)) or float(magnitude.max()) or 1.0
            b.imshow(self.output, cmap="RdBu_r", vmin=-limit, vmax=limit)
            self.status.value = (f"red positive, blue negative, white 0; the colours span ±{limit:.3g}, the "
                                 f"{self.PERCENTILE:g}th percentile of |x * k|: the "
                                 f"{np.mean(magnitude > limit):.1%} of pixels beyond it are drawn at full colour")
        else:
            b.imshow(self.output, cmap="gray")
            self.status.value = "gray from the smallest value of x * k (black) to the largest (white)"
        b.set_title("feature map (x * k)")
        for ax in (a, b):
            ax.set_xticks([])
            ax.set_yticks([])
        return fig


class DigitBrowser(Explorer):
    """Stage 04: browse test digits, original and with shuffled pixels, side by side.

    ``original`` and ``shuffled`` map a net's name to a torch model trained on the original or on
    the shuffled pixels (one fixed ``permutation`` for every image). Shows each net's prediction
    on its kind of pixels and the first-layer feature maps of ``original["CNN"]`` on the digit and
    of ``shuffled["CNN"]`` on the shuffled digit. The subset menu narrows the slider to the
    digits some net gets wrong. ``images`` are uint8 ``(N, 28, 28)``, ``labels`` int64 ``(N,)``.
    """

    MAPS = 8  # feature maps shown per row
    CELL = 0.95  # inches per picture: the figure fits a notebook beside JupyterLab's file browser

    def __init__(self, images, labels, permutation, *, original: dict, shuffled: dict, cnn: str = "CNN"):
        import ipywidgets as w
        import torch

        from coursekit.nets import training  # torch: imported only by the stage that needs it

        if images.ndim != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, H, W); got {images.dtype} of shape {tuple(images.shape)}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},); got {tuple(labels.shape)}")
        if set(original) != set(shuffled) or cnn not in original:
            raise ValueError(f"original and shuffled must name the same nets, {cnn!r} among them; "
                             f"got {sorted(original)} and {sorted(shuffled)}")
        self.images, self.labels = images, labels
        self.shuffled_images = transforms.permute_pixels(images, permutation)
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
        self.subset.observe(lambda change: self._on_subset(), names="value")
        hint = w.HTML("<small>(click the slider, then use the arrow keys to step one digit)</small>")
        super().__init__(self.row(self.subset, self.position, hint), redraw_on=(self.position,))
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

    def draw(self):
        from matplotlib.figure import Figure

        from coursekit.nets import models, training

        self._drawn = (self.subset.value, self.position.value)
        i = self.index
        if i is None:
            self.status.value = "<i>no digit in this subset</i>"
            self.maps = {}
            return None
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
        self.status.value = (f"<b>test image {i}, label {label}</b> (position {self.position.value} of {size} in "
                            f"“{self.subset.value}”)<table><tr><th>prediction</th><th>original pixels</th>"
                            f"<th>shuffled pixels</th></tr>{''.join(rows)}</table>")
        self.maps = {}
        fig = Figure(figsize=(self.CELL * (self.MAPS + 1), 2.5), layout="constrained")
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
        fig.suptitle(f"{self.cnn}'s first-layer maps ({min(self.MAPS, count)} of {count}; red +, blue −), "
                     "each row by the net trained on its pixels", fontsize=9)
        return fig
