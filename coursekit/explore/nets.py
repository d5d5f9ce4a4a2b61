"""Explorers of the lecture part "neural networks": the two-layer net retrained as sliders move
(stage 01), a computation graph stepped through its backward pass (stage 02), AlexNet's augmentation
by hand and the feature maps of a trained ImageNet network (stage 05)."""

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


def _as_picture(image):
    """(3, H, W) uint8 or float in [0, 1] -> (H, W, 3) floats in [0, 1] for imshow."""
    x = image.detach().cpu().float() if hasattr(image, "detach") else np.asarray(image, dtype=np.float32)
    x = np.asarray(x)
    x = x / 255.0 if x.max() > 1.0 else x
    return np.clip(x.transpose(1, 2, 0), 0.0, 1.0)


class AugmentationExplorer(Explorer):
    """Stage 05: AlexNet's training augmentation on one photo, by hand.

    Sliders set the crop's top-left corner, a check box the reflection, and three sliders the PCA colour
    coefficients ``alpha_i`` in units of the paper's standard deviation 0.1; ``shift(x, eigenvalues,
    eigenvectors, alphas)`` (a student's ``colour_shift`` or coursekit's) makes the colour change. The
    picture shows the photo with the crop's frame and the augmented crop.
    """

    DPI = 90

    def __init__(self, image, eigenvalues, eigenvectors, *, shift, size: int = 192):
        import ipywidgets as w
        import torch

        image = torch.as_tensor(image)
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image must have shape (3, H, W); got {tuple(image.shape)}")
        # one photo, shifted on the host with the basis below: a photo from the GPU would mix devices
        image = image.detach().cpu()
        self.photo = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        self.eigenvalues, self.eigenvectors, self.shift = eigenvalues, eigenvectors, shift
        h, wd = self.photo.shape[-2:]
        if not 1 <= size <= min(h, wd):
            raise ValueError(f"a {size}x{size} crop does not fit in the {h}x{wd} image")
        self.size = size
        common = dict(continuous_update=False, style={"description_width": "initial"})
        self.top = w.IntSlider(value=(h - size) // 2, min=0, max=h - size, description="crop top", **common)
        self.left = w.IntSlider(value=(wd - size) // 2, min=0, max=wd - size, description="crop left", **common)
        self.flip = w.Checkbox(value=False, description="reflect")
        self.alphas = [w.FloatSlider(value=0.0, min=-10.0, max=10.0, step=0.5, description=f"α{i + 1} / 0.1", **common)
                       for i in range(3)]
        super().__init__(self.row(self.top, self.left, self.flip), self.row(*self.alphas),
                         redraw_on=(self.top, self.left, self.flip, *self.alphas))
        self.update()

    def augmented(self):
        import torch

        t, l, s = self.top.value, self.left.value, self.size
        crop = self.photo[:, t:t + s, l:l + s]
        if self.flip.value:
            crop = crop.flip(-1)
        alphas = 0.1 * torch.tensor([[a.value for a in self.alphas]], dtype=torch.float64)
        values = torch.as_tensor(self.eigenvalues).double().cpu()
        vectors = torch.as_tensor(self.eigenvectors).double().cpu()
        return self.shift(crop[None].double(), values, vectors, alphas)[0]

    def draw(self):
        from matplotlib.patches import Rectangle

        try:
            out = self.augmented()
        except Exception as err:  # noqa: BLE001 - a student's shift that fails is reported, not raised
            self.status.value = f"the colour shift failed: {type(err).__name__}: {err}"
            return None
        fig, (ax_photo, ax_crop) = plots.new_figure(2, width=3.6, height=3.4)
        ax_photo.imshow(_as_picture(self.photo))
        ax_photo.add_patch(Rectangle((self.left.value - 0.5, self.top.value - 0.5), self.size, self.size,
                                     fill=False, color="yellow", lw=2))
        ax_photo.set_title("the photo and the crop")
        ax_crop.imshow(_as_picture(out))
        ax_crop.set_title("the augmented crop")
        for ax in (ax_photo, ax_crop):
            ax.set_xticks([])
            ax.set_yticks([])
        change = out.mean((1, 2)) - self._plain_mean()  # a reflection keeps the mean: this is the colour shift
        self.status.value = ("colour shift per channel (R, G, B): "
                             + ", ".join(f"{v:+.4f}" for v in change.tolist()) + " (pixels in [0, 1])")
        return fig

    def _plain_mean(self):
        t, l, s = self.top.value, self.left.value, self.size
        return self.photo[:, t:t + s, l:l + s].double().mean((1, 2))


class LayerExplorer(Explorer):
    """Stage 05: what the feature maps of a trained network respond to (Zeiler & Fergus 2014, Fig. 2).

    Menus pick a layer of ``model`` (a :class:`coursekit.nets.pretrained.EfficientNetLite0`) and a crop
    of ``images`` (uint8 ``(N, 3, H, W)``), a slider the channel. The picture: the nine crops' patches
    (receptive fields) where the channel responds most, and the channel's feature map on the chosen crop
    beside the crop. ``maps`` may hold feature maps already computed for ``images``, by layer name.
    """

    DPI = 90

    def __init__(self, model, images, *, layers=("stem", "block2", "block4", "block6"), maps=None,
                 batch_size: int = 16):
        import ipywidgets as w

        from coursekit.nets import pretrained

        unknown = [n for n in layers if n not in pretrained.FEATURE_LAYERS]
        if unknown:
            raise ValueError(f"layers {unknown} are not among {list(pretrained.FEATURE_LAYERS)}")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W); got {tuple(images.shape)}")
        self.model, self.images, self.batch_size = model, images, batch_size
        self.maps = {k: v for k, v in (maps or {}).items() if k in layers}
        self.layer = w.Dropdown(options=list(layers), value=layers[0], description="layer")
        self.channel = w.IntSlider(value=0, min=0, max=pretrained.FEATURE_LAYERS[layers[0]].channels - 1,
                                   description="channel", continuous_update=False)
        self.crop = w.Dropdown(options=list(range(len(images))), value=0, description="crop")
        self.layer.observe(self._layer_changed, names="value")
        super().__init__(self.row(self.layer, self.channel, self.crop), redraw_on=(self.channel, self.crop))
        self.update()

    def _layer_changed(self, change):
        from coursekit.nets import pretrained

        channels = pretrained.FEATURE_LAYERS[change["new"]].channels
        if self.channel.value >= channels:
            self.channel.value = 0  # redraws
        self.channel.max = channels - 1
        self.update()

    def feature_maps(self, name):
        import torch

        from coursekit.nets import pretrained

        if name not in self.maps:
            with torch.no_grad():
                parts = [self.model.feature_maps(pretrained.preprocess(self.images[i:i + self.batch_size]), [name])[name]
                         for i in range(0, len(self.images), self.batch_size)]
            self.maps[name] = torch.cat(parts)
        return self.maps[name]

    def draw(self):
        from coursekit.nets import inspect, pretrained

        name, channel, crop = self.layer.value, self.channel.value, self.crop.value
        info = pretrained.FEATURE_LAYERS[name]
        maps = self.feature_maps(name)
        patches = inspect.top_patches(self.images, maps, channel, info.receptive_field, info.stride, k=9)
        fig = plots.Figure(figsize=(10.5, 3.3), layout="constrained")
        grid = fig.add_gridspec(3, 6)
        for k, patch in enumerate(patches):
            ax = fig.add_subplot(grid[k // 3, k % 3])
            ax.imshow(_as_picture(patch))
            ax.set_xticks([])
            ax.set_yticks([])
        ax_crop = fig.add_subplot(grid[:, 3])
        ax_crop.imshow(_as_picture(self.images[crop]))
        ax_crop.set_title(f"crop {crop}", fontsize=9)
        ax_map = fig.add_subplot(grid[:, 4:6])
        picture = ax_map.imshow(maps[crop, channel].float().cpu().numpy(), cmap="magma")
        fig.colorbar(picture, ax=ax_map, shrink=0.8)
        ax_map.set_title(f"{name}, channel {channel} on crop {crop}", fontsize=9)
        for ax in (ax_crop, ax_map):
            ax.set_xticks([])
            ax.set_yticks([])
        best = float(maps[:, channel].amax())
        self.status.value = (f"{name}: {info.channels} channels, receptive field {info.receptive_field} px, "
                             f"stride {info.stride}; channel {channel}'s strongest response {best:.2f}")
        return fig
