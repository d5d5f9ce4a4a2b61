"""Explorers of the lecture part "image retrieval": DrLIM's 2-D map trained step by step, with the springs
that pull and push one digit (stage 06)."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import torch

from coursekit.explore import plots
from coursekit.explore.base import Explorer
from coursekit.retrieval import losses, siamese


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
