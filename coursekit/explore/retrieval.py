"""Explorers of the lecture part "image retrieval": DrLIM's 2-D map trained step by step, with the springs
that pull and push one digit (stage 06); class activation maps over a photo, and a query's top k framed by
its labels (stage 07)."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import torch

from coursekit.explore import plots
from coursekit.explore.base import Explorer
from coursekit.nets.pretrained import NUM_CLASSES, top_classes
from coursekit.retrieval import cam, descriptors, evaluation, losses, siamese


class EmbeddingExplorer(Explorer):
    """Stage 06: DrLIM's training (Hadsell, Chopra & LeCun 2006) step by step, and the springs of one digit.

    ``images`` (uint8 ``(N, H, W)``, e.g. a few hundred 4s and 9s), their ``labels (N,)`` (only to colour the
    map: training never reads them), ``pairs (M, 2)`` of indices into ``images`` and their targets
    ``t (M,)`` (1 similar, 0 dissimilar: :func:`coursekit.retrieval.siamese.pair_labels`) feed a
    :class:`~coursekit.retrieval.siamese.PairTrainer` (``batch_size`` pairs a step, Adam at ``lr``) of
    ``model``, by default :func:`~coursekit.retrieval.siamese.drlim_network` initialised from ``seed``
    (a ``model`` given is trained in place; it must map an image to 2 numbers).

    Controls:

    - ``steps`` ("training steps", a slider in steps of ``steps_per_click`` up to ``max_steps``) is the number
      of training steps taken so far. Moving it up trains the extra steps with :meth:`PairTrainer.step` at the
      margin of the margin slider; moving it down rewinds: the weights, the optimiser and the trainer's random
      pair draws return to where they were after that many steps (restored from a snapshot kept at the
      positions visited, or from the last one before it by replaying the steps in between with the margins
      they had), and the later steps are forgotten. Going down and up again without touching the margin
      therefore gives back the same map (on a GPU up to its floating-point nondeterminism).
    - ``train_button`` ("train N more steps") moves ``steps`` up by ``steps_per_click`` (past its end if need be).
    - ``margin`` ("margin m", log scale) is the trainer's margin for the *next* steps: changing it retrains
      nothing; it redraws the springs, whose reach is the margin.
    - ``point`` ("digit") chooses the digit whose springs are drawn.

    The picture: the map of the images (at most ``max_points`` of them, a fixed seeded subset beyond),
    coloured by label; for the chosen digit, one arrow per pair it is in, the force of that pair's spring
    on it, minus the gradient of the pair's contrastive loss with respect to its embedding
    (:func:`~coursekit.retrieval.losses.contrastive_gradient`): green attract-only springs towards its
    similar partners (``2 d``), red m-repulse-only springs away from the dissimilar partners inside the dashed
    margin circle (``2 (m - d)``; the ones outside exert none and get no arrow). All arrows share one scale.
    Beside it the loss of every step, dotted lines where the margin changed. The status line gives the step
    count, the mean loss of the last ``steps_per_click`` steps and how many of the digit's dissimilar pairs lie
    inside the margin (a partner met in two pairs counts twice, as the loss does).
    """

    DPI = 90
    SNAPSHOTS = 32  # the training states kept for rewinding (the initial one always among them)
    ATTRACT, REPEL = "#2ca02c", "#d62728"

    def __init__(self, images, labels, pairs, t, *, model=None, margin: float = 1.0, steps_per_click: int = 25,
                 max_steps: int = 2000, batch_size: int = 128, lr: float = 1e-3, max_points: int = 1000,
                 seed: int = 0):
        import ipywidgets as w

        if not isinstance(images, torch.Tensor) or images.ndim != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, H, W); got {getattr(images, 'dtype', type(images))} "
                             f"of shape {tuple(getattr(images, 'shape', ()))}")
        n = len(images)
        if tuple(labels.shape) != (n,):
            raise ValueError(f"labels must have shape ({n},); got {tuple(labels.shape)}")
        if int(steps_per_click) != steps_per_click or steps_per_click < 1:
            raise ValueError(f"steps_per_click must be a positive integer; got {steps_per_click!r}")
        if max_steps < steps_per_click:
            raise ValueError(f"max_steps must be at least steps_per_click ({steps_per_click}); got {max_steps}")
        if not margin > 0:
            raise ValueError(f"margin must be positive; got {margin}")
        if model is None:
            with torch.random.fork_rng(devices=[]):  # the same initial weights for the same seed
                torch.manual_seed(seed)
                model = siamese.drlim_network()
        self.images, self.labels = images, labels.detach().cpu().numpy()
        self.trainer = siamese.PairTrainer(model, images, pairs, t, margin=margin, lr=lr, batch_size=batch_size,
                                           seed=seed)
        dims = tuple(self.trainer.embed(images[:1]).shape)
        if dims != (1, 2):
            raise ValueError(f"the explorer draws a 2-D map: model must map an image to 2 numbers; got {dims[1:]}")
        self.steps_per_click = int(steps_per_click)
        self.pair_list, self.t = pairs.detach().cpu(), t.detach().cpu().float()
        if n > max_points:
            pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_points]
            self.shown = pick.sort().values
        else:
            self.shown = torch.arange(n)
        self.margins: list[float] = []  # the margin of every step taken
        self._snapshots = {0: self._snapshot()}

        style = {"description_width": "initial"}
        self.steps = w.IntSlider(value=0, min=0, max=int(max_steps), step=self.steps_per_click,
                                 description="training steps", continuous_update=False, style=style,
                                 layout=w.Layout(min_width="360px"))
        self.train_button = w.Button(description=f"train {self.steps_per_click} more steps")
        self.train_button.on_click(lambda button: self.train_more())
        exponent = float(np.log10(margin))
        self.margin = w.FloatLogSlider(value=margin, base=10, min=min(-2.0, exponent), max=max(1.0, exponent),
                                       step=0.05, description="margin m", readout_format=".3g",
                                       continuous_update=False, style=style)
        self.point = w.IntSlider(value=0, min=0, max=n - 1, description="digit", continuous_update=False,
                                 style=style, layout=w.Layout(min_width="360px"))
        super().__init__(self.row(self.steps, self.train_button), self.row(self.margin, self.point),
                         redraw_on=(self.steps, self.margin, self.point))
        self.update()

    # -- training: forward with PairTrainer.step, backward by snapshots and replay ------------------------

    @property
    def steps_taken(self) -> int:
        return len(self.trainer.losses)

    def train_more(self) -> None:
        """The button: ``steps_per_click`` more steps (the slider grows past its end if need be)."""
        target = int(self.steps.value) + self.steps_per_click
        if target > self.steps.max:
            self.steps.max = target
        self.steps.value = target  # trains and redraws

    def _snapshot(self) -> dict:
        return {"model": {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()},
                "optimizer": copy.deepcopy(self.trainer.optimizer.state_dict()),
                "generator": self.trainer.generator.get_state()}

    def _restore(self, step: int) -> None:
        state = self._snapshots[step]
        self.trainer.model.load_state_dict(state["model"])
        # loading keeps the tensors given (Adam then updates them in place): hand it a copy
        self.trainer.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.trainer.generator.set_state(state["generator"])
        del self.trainer.losses[step:]
        del self.margins[step:]
        for later in [k for k in self._snapshots if k > step]:
            del self._snapshots[later]

    def _train(self, margins) -> None:
        for margin, run in itertools.groupby(margins):
            count = len(list(run))
            self.trainer.margin = margin
            self.trainer.step(count)
            self.margins.extend([margin] * count)

    def _go_to(self, target: int) -> None:
        done = self.steps_taken
        if target < done:
            start = max(k for k in self._snapshots if k <= target)
            replay = self.margins[start:target]
            self._restore(start)
            self._train(replay)
        elif target > done:
            self._train([float(self.margin.value)] * (target - done))
        if target not in self._snapshots:
            self._snapshots[target] = self._snapshot()
            while len(self._snapshots) > self.SNAPSHOTS:
                del self._snapshots[min(k for k in self._snapshots if k > 0)]

    # -- the picture ---------------------------------------------------------------------------------

    def springs(self, i: int, margin: float):
        """The pairs digit ``i`` is in, at the current weights: ``(partners (K,), similar (K,) bool, y (2,),
        ends (K, 2), forces (K, 2))``, ``y`` the digit's embedding, ``ends`` its partners', each force minus the
        gradient of that pair's contrastive loss with respect to ``y``."""
        rows = (self.pair_list[:, 0] == i) | (self.pair_list[:, 1] == i)
        chosen = self.pair_list[rows]
        partners = torch.where(chosen[:, 0] == i, chosen[:, 1], chosen[:, 0])
        index = torch.cat([torch.tensor([i]), partners]).to(self.images.device)
        embedded = self.trainer.embed(self.images[index]).cpu()
        y, ends = embedded[0], embedded[1:]
        gradient, _ = losses.contrastive_gradient(y.expand_as(ends), ends, self.t[rows], margin)
        return partners, self.t[rows] == 1, y, ends, -gradient

    def draw(self):
        from matplotlib.figure import Figure
        from matplotlib.patches import Circle

        self._go_to(int(self.steps.value))
        margin = float(self.margin.value)
        self.trainer.margin = margin  # for the next steps
        i = int(self.point.value)
        self.embedding = self.trainer.embed(self.images[self.shown.to(self.images.device)]).cpu().numpy()
        partners, similar, y, ends, forces = self.springs(i, margin)
        distances = (ends - y).norm(dim=1)
        inside = ~similar & (distances < margin)
        self.partners, self.similar, self.forces = partners, similar, forces
        self.distances, self.inside = distances, inside
        me, partners_y = y.numpy(), ends.numpy()

        fig = Figure(figsize=(9.6, 4.6), layout="constrained")
        grid = fig.add_gridspec(1, 2, width_ratios=(3, 2))
        ax, ax_loss = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
        shown_labels = self.labels[self.shown.numpy()]
        for k, label in enumerate(np.unique(self.labels)):
            at = shown_labels == label
            ax.scatter(self.embedding[at, 0], self.embedding[at, 1], s=7, alpha=0.45, linewidths=0,
                       color=plots.CLASS_COLOURS[k % len(plots.CLASS_COLOURS)], label=f"{label}s")
        ax.scatter(*partners_y[similar.numpy()].T, s=40, facecolors="none", edgecolors=self.ATTRACT, lw=1.2)
        ax.scatter(*partners_y[(~similar).numpy()].T, s=30, marker="x", color=self.REPEL, lw=1.2,
                   alpha=0.35)
        ax.scatter(*partners_y[inside.numpy()].T, s=30, marker="x", color=self.REPEL, lw=1.5)

        # one scale for every arrow: the longest a third of the map's extent
        points = np.vstack([self.embedding, me[None], partners_y])
        span = float(np.ptp(points, axis=0).max()) or 1.0
        drawn = (similar | inside).numpy()
        longest = float(forces[drawn].norm(dim=1).max()) if drawn.any() else 0.0
        self.arrow_scale = span / 3 / longest if longest > 0 else 0.0
        arrows = forces.numpy() * self.arrow_scale
        for which, colour, name in ((similar.numpy(), self.ATTRACT, "attraction (similar pair)"),
                                    (inside.numpy(), self.REPEL, "repulsion (dissimilar, inside m)")):
            if which.any():
                ax.quiver(np.full(which.sum(), me[0]), np.full(which.sum(), me[1]), arrows[which, 0],
                          arrows[which, 1], angles="xy", scale_units="xy", scale=1, color=colour, width=0.005,
                          zorder=4, label=name)
        ax.scatter([me[0]], [me[1]], s=120, marker="*", color="black", zorder=5, label=f"digit {i}")
        ax.add_patch(Circle(tuple(me), margin, fill=False, ls="--", lw=1.2, color="0.3", zorder=3,
                            label=f"margin m = {margin:.3g}"))
        tips = me + arrows[drawn]
        everything = np.vstack([points, tips])
        low, high = everything.min(axis=0), everything.max(axis=0)
        circle_shown = margin <= span
        if circle_shown:
            low, high = np.minimum(low, me - margin), np.maximum(high, me + margin)
        centre, half = (low + high) / 2, 0.55 * float((high - low).max() or 1.0)
        ax.set_xlim(centre[0] - half, centre[0] + half)  # a square view in a square box: circles stay round
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_box_aspect(1)
        ax.set_xlabel("$y_1$")
        ax.set_ylabel("$y_2$")
        ax.set_title(f"the map after {self.steps_taken} steps", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, markerscale=0.8, borderaxespad=0.0)

        n = self.steps_taken
        if n:
            values = torch.stack(self.trainer.losses).cpu().numpy()
            plots.plot_loss(ax_loss, np.maximum(values, 1e-12), title="contrastive loss per step")
            for k in range(1, n):
                if self.margins[k] != self.margins[k - 1]:
                    ax_loss.axvline(k, ls=":", color="0.4", lw=1)
            last = values[-self.steps_per_click:]
            self.recent_loss = float(last.mean())
            training = (f"<b>{n}</b> training steps of {self.trainer.batch_size} pairs; mean loss of the last "
                        f"{len(last)}: <b>{self.recent_loss:.4f}</b>")
        else:
            self.recent_loss = float("nan")
            ax_loss.text(0.5, 0.5, "no training step yet", ha="center", va="center", transform=ax_loss.transAxes)
            ax_loss.set(xlabel="step", ylabel="loss", title="contrastive loss per step")
            training = "<b>0</b> training steps: the untrained map (raise “training steps” or click train)"
        dissimilar = int((~similar).sum())
        where = "" if circle_shown else " (the margin circle is larger than the map)"
        self.status.value = (f"{training}. Digit <b>{i}</b> (a {self.labels[i]}): <b>{int(inside.sum())} of its "
                             f"{dissimilar}</b> dissimilar partners lie inside the margin m = {margin:.3g} and push "
                             f"it away{where}; its {int(similar.sum())} similar partners pull it in.")
        return fig


def _uint8_image(image, name: str) -> np.ndarray:
    """``image`` (numpy or torch, uint8 ``(H, W, 3)``) as a numpy array, or an error naming it."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be a uint8 image (H, W, 3); got {got}")
    return image


def _uint8_images(images, name: str) -> list[np.ndarray]:
    """A stack uint8 ``(N, H, W, 3)`` or a sequence of uint8 ``(H, W, 3)`` images (sizes may differ) as a list."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        if images.ndim != 4:
            raise ValueError(f"{name} must be uint8 (N, H, W, 3) or a list of uint8 (H, W, 3) images; got shape "
                             f"{tuple(images.shape)}")
        return [_uint8_image(image, f"{name}[{i}]") for i, image in enumerate(images)]
    if isinstance(images, (list, tuple)):
        return [_uint8_image(image, f"{name}[{i}]") for i, image in enumerate(images)]
    raise TypeError(f"{name} must be uint8 (N, H, W, 3) or a list of uint8 (H, W, 3) images; got "
                    f"{type(images).__name__}")


def square_input(photo: np.ndarray, size: int) -> np.ndarray:
    """The network's view of a photo: its central square, resized to ``size x size`` (bilinear, antialiased),
    uint8 ``(size, size, 3)``."""
    h, w = photo.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = torch.from_numpy(np.ascontiguousarray(photo[top:top + side, left:left + side])).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                                        align_corners=False)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


class CAMExplorer(Explorer):
    """Stage 07: class activation maps (Zhou et al., "Learning Deep Features for Discriminative Localization",
    CVPR 2016) of a real ImageNet network over a photo.

    ``photos`` maps a name to a uint8 ``(H, W, 3)`` photo; ``model`` has CAM's structure (convolutional features,
    global average pooling ``model.pool``, one linear layer ``model.classifier``), e.g.
    :func:`~coursekit.nets.pretrained.load_efficientnet_lite0`. Each photo is centre-cropped to a square and
    resized to ``size x size`` (:func:`square_input`) before the network; its head features ``(1, K, h, w)``
    (:func:`~coursekit.retrieval.descriptors.feature_maps`), logits and top ``classes`` classes are computed the
    first time it is shown and kept. The maps, ``M_c(x, y) = sum_k w_k^c f_k(x, y)``
    (:func:`~coursekit.retrieval.cam.class_activation_maps`, the classifier's bias left out: it moves no peak),
    are computed at each draw and upsampled bilinearly to the input
    (:func:`~coursekit.retrieval.cam.upsample_maps`).

    Controls: ``photo`` (a menu of the names); ``target`` ("class", a menu of the photo's top classes with their
    probabilities, "Egyptian cat (37%)"; its value is the ImageNet class index, and its options follow the
    photo, the top class chosen on each change of photo); ``opacity`` of the heat map.

    The picture: the input with the chosen class's upsampled map over it as a heat map (colours from the map's
    minimum to its maximum) and a cross at its peak, the centre of the cell of the ``h x w`` map where
    ``M_c`` is largest (the coarse map holds the values; the upsampling only draws them); beside it the top
    classes' maps as small panels, the chosen one framed (the CAM paper's Figure 4). The status line gives the
    class, its probability and where its map peaks. After each draw, ``map`` is the chosen class's ``(h, w)`` map,
    ``upsampled`` the ``(size, size)`` one drawn, ``peak_cell`` its ``(row, column)`` and ``peak`` its ``(x, y)``.
    """

    DPI = 90
    PANEL_COLUMNS = 3
    CHOSEN = "#1f77b4"  # the frame of the chosen class's panel

    def __init__(self, photos, model, *, classes: int = 5, size: int = 224):
        import ipywidgets as w

        if not isinstance(photos, dict) or not photos:
            raise ValueError(f"photos must be a non-empty dict name -> uint8 (H, W, 3) photo; got "
                             f"{photos if isinstance(photos, dict) else type(photos).__name__!r}")
        self.photos = {str(name): _uint8_image(photo, f"photos[{name!r}]") for name, photo in photos.items()}
        if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= NUM_CLASSES:
            raise ValueError(f"classes must be an integer in [1, {NUM_CLASSES}]; got {classes!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 32:
            raise ValueError(f"size must be an integer of at least 32 (pixels); got {size!r}")
        self.model, self.classes, self.size = model, classes, size
        self._seen: dict[str, dict] = {}  # photo name -> its input, features and top classes
        self._switching = False

        style = {"description_width": "initial"}
        first = next(iter(self.photos))
        self.photo = w.Dropdown(options=list(self.photos), value=first, description="photo", style=style)
        self.target = w.Dropdown(options=self._class_options(first), description="class", style=style,
                                 layout=w.Layout(min_width="320px"))
        self.opacity = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity",
                                     continuous_update=False, style=style)
        self.photo.observe(lambda change: self._on_photo(), names="value")
        self.target.observe(lambda change: None if self._switching else self.update(), names="value")
        super().__init__(self.row(self.photo, self.target, self.opacity), redraw_on=(self.opacity,))
        self.update()

    def seen(self, name: str) -> dict:
        """The photo's ``input`` (uint8 ``(size, size, 3)``), ``features (1, K, h, w)`` on the model's device,
        ``logits (1, 1000)`` and ``top``, its ``classes`` best :func:`~coursekit.nets.pretrained.top_classes`;
        computed once."""
        if name not in self._seen:
            image = square_input(self.photos[name], self.size)
            features = descriptors.feature_maps(self.model, image[None], "head")
            with torch.inference_mode():
                logits = self.model.classifier(self.model.pool(features))
            self._seen[name] = {"input": image, "features": features, "logits": logits,
                                "top": top_classes(logits, self.classes)[0]}
        return self._seen[name]

    def _class_options(self, name: str) -> list[tuple[str, int]]:
        return [(f"{p.name} ({p.probability:.0%})", p.index) for p in self.seen(name)["top"]]

    def _on_photo(self) -> None:
        self._switching = True
        try:
            self.target.options = self._class_options(self.photo.value)
            self.target.value = self.seen(self.photo.value)["top"][0].index
        finally:
            self._switching = False
        self.update()

    def draw(self):
        from matplotlib.figure import Figure

        seen = self.seen(self.photo.value)
        top, chosen = seen["top"], int(self.target.value)
        indices = torch.tensor([[p.index for p in top]], device=seen["features"].device)
        with torch.inference_mode():
            maps = cam.class_activation_maps(seen["features"], self.model.classifier.weight, indices)
            upsampled = cam.upsample_maps(maps, (self.size, self.size))
        maps, upsampled = maps[0].float().cpu().numpy(), upsampled[0].float().cpu().numpy()
        at = [p.index for p in top].index(chosen)
        prediction = top[at]
        coarse = maps[at]
        h, w = coarse.shape
        row, column = np.unravel_index(int(coarse.argmax()), coarse.shape)
        self.peak_cell = (int(row), int(column))
        self.peak = ((column + 0.5) * self.size / w, (row + 0.5) * self.size / h)  # (x, y) in input pixels
        self.map, self.upsampled = coarse, upsampled[at]

        count = len(top)
        rows = -(-count // self.PANEL_COLUMNS)
        fig = Figure(figsize=(9.6, max(4.2, 1.9 * rows)), layout="constrained")
        grid = fig.add_gridspec(1, 2, width_ratios=(4.2, 5.4))
        ax = fig.add_subfigure(grid[0]).add_subplot()
        picture = plots.overlay_map(ax, seen["input"], self.upsampled, alpha=float(self.opacity.value),
                                    title=f"{prediction.name} ({prediction.probability:.0%})")
        ax.plot(*self.peak, marker="+", markersize=14, markeredgewidth=2.5, color="white", label="peak")
        ax.figure.colorbar(picture, ax=ax, shrink=0.8, label="$M_c(x, y)$")
        panels = fig.add_subfigure(grid[1]).subplots(rows, self.PANEL_COLUMNS, squeeze=False)
        for k, (panel, p) in enumerate(zip(panels.flat, top)):
            name = p.name if len(p.name) <= 20 else p.name[:19] + "…"
            plots.overlay_map(panel, seen["input"], upsampled[k], alpha=float(self.opacity.value),
                              title=f"{k + 1}. {name} ({p.probability:.0%})")
            if p.index == chosen:
                for spine in panel.spines.values():
                    spine.set_edgecolor(self.CHOSEN)
                    spine.set_linewidth(3)
                panel.title.set_fontweight("bold")
        for panel in panels.flat[count:]:
            panel.set_axis_off()
        x, y = self.peak
        self.status.value = (f"<b>{prediction.name}</b> (ImageNet class {prediction.index}), probability "
                             f"<b>{prediction.probability:.1%}</b>, ranked {at + 1} of the top {count}. Its map "
                             f"peaks at cell (row {row}, column {column}) of the {h}×{w} map, around pixel "
                             f"(x = {x:.0f}, y = {y:.0f}) of the {self.size}×{self.size} input (the cross).")
        return fig


def _descriptor_pair(pair, name: str, queries: int, database: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``descriptors[name]``, a pair ``(query (Q, D), database (N, D))`` of numpy or torch arrays on one device,
    as float32 tensors there, checked against ``Q = queries`` and ``N = database``."""
    where = f"descriptors[{name!r}]"
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ValueError(f"{where} must be a pair (query descriptors (Q, D), database descriptors (N, D)); got "
                         f"{type(pair).__name__}")
    tensors = []
    for part, array in zip(("query", "database"), pair):
        if isinstance(array, np.ndarray):
            array = torch.from_numpy(array)
        if not isinstance(array, torch.Tensor) or not (array.dtype.is_floating_point and array.ndim == 2):
            got = f"{array.dtype} {tuple(array.shape)}" if isinstance(array, torch.Tensor) else type(array).__name__
            raise ValueError(f"{where}: the {part} descriptors must be a float array (rows, D); got {got}")
        tensors.append(array)
    query, data = tensors
    if len(query) != queries:
        raise ValueError(f"{where}: the query descriptors must have one row per query image, ({queries}, D); got "
                         f"{tuple(query.shape)}")
    if len(data) != database:
        raise ValueError(f"{where}: the database descriptors must have one row per database image, ({database}, D);"
                         f" got {tuple(data.shape)}")
    if query.shape[1] != data.shape[1]:
        raise ValueError(f"{where}: the query and database descriptors must have the same dimension D; got "
                         f"{tuple(query.shape)} and {tuple(data.shape)}")
    if query.device != data.device:
        raise ValueError(f"{where}: the query and database descriptors must be on one device; got {query.device} "
                         f"and {data.device}")
    return query.float(), data.float()


def _labels(gnd, queries: int, database: int) -> np.ndarray:
    """``gnd`` (one dict per query with the database ids of its 'easy', 'hard' and 'junk' images) as a table
    ``(Q, N)`` of :attr:`RetrievalBrowser.LABELS` codes (0 negative, 1 easy, 2 hard, 3 junk)."""
    if not isinstance(gnd, (list, tuple)):
        raise TypeError(f"gnd must be a list of dicts with 'easy', 'hard' and 'junk' ids; got {type(gnd).__name__}")
    if len(gnd) != queries:
        raise ValueError(f"gnd must have one entry per query image ({queries}); got {len(gnd)}")
    table = np.zeros((queries, database), dtype=np.int8)
    for q, entry in enumerate(gnd):
        if not isinstance(entry, dict) or not {"easy", "hard", "junk"} <= set(entry):
            got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(f"gnd[{q}] must be a dict with 'easy', 'hard' and 'junk' database ids; got {got}")
        for code, key in enumerate(("easy", "hard", "junk"), start=1):
            ids = np.asarray(entry[key], dtype=np.int64).reshape(-1)
            outside = ids[(ids < 0) | (ids >= database)]
            if outside.size:
                raise ValueError(f"gnd[{q}][{key!r}] must hold database ids in [0, {database}); got "
                                 f"{outside[:5].tolist()}")
            taken = ids[table[q, ids] != 0]
            if taken.size:
                raise ValueError(f"gnd[{q}]: the ids {taken[:5].tolist()} of {key!r} are in another label too")
            table[q, ids] = code
    return table


class RetrievalBrowser(Explorer):
    """Stage 07: what a query retrieves, descriptor by descriptor, against the Revisited Oxford-style ground truth.

    ``database_images`` ``(N, H, W, 3)`` and ``query_images`` ``(Q, H, W, 3)`` are uint8 stacks or lists of uint8
    ``(H, W, 3)`` images (query crops differ in size); ``descriptors`` maps a name to the pair
    ``(query descriptors (Q, D), database descriptors (N, D))`` (numpy or torch, normalised as the descriptor
    wants: the scores are plain dot products); ``gnd`` has one dict per query with the database ids of its
    ``'easy'``, ``'hard'`` and ``'junk'`` images, every other image a negative (Radenović et al., "Revisiting
    Oxford and Paris", CVPR 2018).

    Controls: ``query`` (a menu of the queries, "query 3", or "3: cat's left eye" with ``query_names``, one
    name per query), ``descriptor`` (a menu of the dict's names), ``k`` (how many
    images are shown, up to ``max(k, 30)``).

    The picture: the query crop, and its ``k`` best database images by descending dot product
    (:func:`~coursekit.retrieval.evaluation.ranking`), each framed by its label for this query (easy green, hard
    orange, junk grey, negative red, written under it too) with its rank and score; a legend for the colours. The
    status line gives this query's average precision under the Medium protocol (positives: easy and hard; junk
    ignored: :func:`~coursekit.retrieval.evaluation.average_precision` over the whole ranking), the descriptor's
    mAP over the queries that have a positive, and the count of each label in the top ``k``. After each draw,
    ``shown`` holds the ids of the ``k`` images shown, ``scores`` their scores, ``shown_labels`` their labels,
    ``counts`` the count of each label and ``average_precision`` the query's AP.
    """

    DPI = 90
    COLUMNS = 5
    LABELS = ("negative", "easy", "hard", "junk")  # by code, as in the (Q, N) label table
    COLOURS = {"negative": "#d62728", "easy": "#2ca02c", "hard": "#ff7f0e", "junk": "#8c8c8c"}
    QUERY = "#1f77b4"  # the query's frame

    def __init__(self, database_images, query_images, descriptors, gnd, *, k: int = 10, query_names=None):
        import ipywidgets as w

        self.database_images = _uint8_images(database_images, "database_images")
        self.query_images = _uint8_images(query_images, "query_images")
        n, q = len(self.database_images), len(self.query_images)
        if n == 0 or q == 0:
            raise ValueError(f"database_images and query_images must each hold at least one image; got {n} and {q}")
        if not isinstance(descriptors, dict) or not descriptors:
            raise ValueError("descriptors must be a non-empty dict name -> (query descriptors (Q, D), database "
                             f"descriptors (N, D)); got {type(descriptors).__name__}")
        self.descriptors = {str(name): _descriptor_pair(pair, str(name), q, n) for name, pair in descriptors.items()}
        self.labels = _labels(gnd, q, n)
        self.medium = evaluation.protocol(gnd, "medium")  # ok: easy and hard; junk: junk
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
            raise ValueError(f"k must be an integer in [1, {n}] (the database size); got {k!r}")
        if query_names is not None and len(query_names) != q:
            raise ValueError(f"query_names must have one name per query image ({q}); got {len(query_names)}")
        self._rankings: dict[str, torch.Tensor] = {}
        self._maps: dict[str, float] = {}

        style = {"description_width": "initial"}
        self.query_titles = [f"query {i}" if query_names is None else f"{i}: {query_names[i]}" for i in range(q)]
        self.query = w.Dropdown(options=list(zip(self.query_titles, range(q))), value=0, description="query",
                                style=style)
        self.descriptor = w.Dropdown(options=list(self.descriptors), description="descriptor", style=style)
        self.k = w.IntSlider(value=k, min=1, max=min(n, max(k, 30)), description="top k", continuous_update=False,
                             style=style)
        controls = (self.query, self.descriptor, self.k)
        super().__init__(self.row(*controls), redraw_on=controls)
        self.update()

    def ranking(self, name: str) -> torch.Tensor:
        """The database ids of every query by descending score under descriptor ``name``, ``(Q, N)`` on the host;
        computed once."""
        if name not in self._rankings:
            queries, database = self.descriptors[name]
            self._rankings[name] = evaluation.ranking(queries, database).cpu()
        return self._rankings[name]

    def mean_average_precision(self, name: str) -> float:
        """Descriptor ``name``'s mAP over the queries with a positive, Medium protocol (NaN if none has one);
        computed once."""
        if name not in self._maps:
            self._maps[name] = evaluation.mean_average_precision(self.ranking(name), self.medium).map
        return self._maps[name]

    def draw(self):
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        q, name, k = int(self.query.value), self.descriptor.value, int(self.k.value)
        queries, database = self.descriptors[name]
        ranked = self.ranking(name)[q].numpy()
        self.shown = ranked[:k]
        index = torch.from_numpy(self.shown).to(database.device)
        self.scores = (database[index] @ queries[q]).cpu().numpy()
        self.shown_labels = [self.LABELS[code] for code in self.labels[q, self.shown]]
        self.average_precision = evaluation.average_precision(ranked, self.medium[q]["ok"], self.medium[q]["junk"])

        rows = -(-k // self.COLUMNS)
        fig = Figure(figsize=(8.8, max(2.8, 0.9 + 1.55 * rows)), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=(2.3, 6.5))
        ax = left.add_subplot()
        plots.framed_image(ax, self.query_images[q], self.QUERY, title=self.query_titles[q], caption="query")
        thumbnails = right.subplots(rows, self.COLUMNS, squeeze=False)
        for rank, (panel, image_id, score, label) in enumerate(
                zip(thumbnails.flat, self.shown, self.scores, self.shown_labels), start=1):
            plots.framed_image(panel, self.database_images[image_id], self.COLOURS[label],
                               title=f"#{rank} · {score:.3f}", caption=f"{label} (image {image_id})")
        for panel in thumbnails.flat[k:]:
            panel.set_axis_off()
        fig.legend(handles=[Patch(facecolor="none", edgecolor=self.COLOURS[label], linewidth=3, label=label)
                            for label in ("easy", "hard", "junk", "negative")],
                   loc="outside lower center", ncols=5, fontsize=8, title="frames: the image's label for this query",
                   title_fontsize=8, frameon=False)

        counts = {label: self.shown_labels.count(label) for label in ("easy", "hard", "junk", "negative")}
        self.counts = counts
        listed = ", ".join(f"<span style='color:{self.COLOURS[label]}'>{count} {label}</span>"
                           for label, count in counts.items())
        with_positives = sum(len(entry["ok"]) > 0 for entry in self.medium)
        mean = (f"{self.mean_average_precision(name):.3f} over the {with_positives} queries with a positive"
                if with_positives else "undefined (no query has a positive)")
        if np.isnan(self.average_precision):
            ap = "this query has no positive: its AP is undefined (left out of the mAP)"
        else:
            ap = f"AP = <b>{self.average_precision:.3f}</b>"
        self.status.value = (f"Query {q}, descriptor <b>{name}</b>: {ap} (Medium protocol: easy and hard images are "
                             f"positive, junk is ignored); mAP {mean}. In the top {k}: {listed}.")
        return fig
