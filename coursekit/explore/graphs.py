"""Explorers of the graph-based methods (stages 08 and 09): EGM stepped through on points, the saliency maps
and regions of a set of images (stage 08), diffusion against Euclidean ranking and fast spectral ranking against
the exact diffusion (stage 09)."""

from __future__ import annotations

import numpy as np

from coursekit.explore.base import Explorer


def _floats(array, name: str, ndim: int) -> np.ndarray:
    out = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array, dtype=np.float64)
    if out.ndim != ndim or not np.isfinite(out).all():
        raise ValueError(f"{name} must be a finite {ndim}-D array; got shape {out.shape}")
    return out


class EGMExplorer(Explorer):
    """EGM (Avrithis & Kalantidis, ECCV 2012) on 2-D ``points (N, 2)`` from one component on each row of
    ``initial_means (M, 2)``, one iteration at a time (:func:`coursekit.graphs.egm.egm` with ``history``).

    Controls: ``iteration`` (a slider from 0, the initial mixture, to ``iterations``), ``step`` (a button:
    one iteration more per click), ``tau`` (the purge threshold) and ``sigma0`` (the initial standard
    deviation); changing ``tau`` or ``sigma0`` re-runs EGM and keeps the iteration shown. The picture: the
    points, and each alive component as a circle of radius ``2 sigma`` around its mean, its line width
    following its weight; the status line gives the iteration and the number of components alive.
    After each draw, ``mixture`` is the mixture shown (numpy) and ``alive`` its number of components."""

    DPI = 80

    def __init__(self, points, initial_means, *, sigma0: float = 0.02, tau: float = 0.75, iterations: int = 10):
        import ipywidgets as w

        self.points = _floats(points, "points", 2)
        self.initial_means = _floats(initial_means, "initial_means", 2)
        if self.points.shape[1] != 2 or self.initial_means.shape[1] != 2 or not len(self.initial_means):
            raise ValueError(f"points and initial_means must be (N, 2) and (M, 2), M >= 1; got {self.points.shape} "
                             f"and {self.initial_means.shape}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive integer; got {iterations!r}")
        style = {"description_width": "initial"}
        self.iteration = w.IntSlider(value=0, min=0, max=iterations, description="iteration",
                                     continuous_update=False, style=style)
        self.step = w.Button(description="one iteration", icon="step-forward")
        self.tau = w.FloatSlider(value=tau, min=0.05, max=0.95, step=0.05, description="tau",
                                 continuous_update=False, style=style)
        self.sigma0 = w.FloatLogSlider(value=sigma0, base=10, min=-2.5, max=-0.5, step=0.1, description="sigma0",
                                       continuous_update=False, style=style)
        self.step.on_click(lambda _: setattr(self.iteration, "value", min(self.iteration.value + 1, self.iteration.max)))
        self.tau.observe(lambda change: self._rerun(), names="value")
        self.sigma0.observe(lambda change: self._rerun(), names="value")
        self._history = None
        super().__init__(self.row(self.iteration, self.step), self.row(self.tau, self.sigma0),
                         redraw_on=(self.iteration,))
        self._rerun()

    def _rerun(self) -> None:
        from coursekit.graphs.egm import egm

        result = egm(self.points, self.initial_means, float(self.sigma0.value), tau=float(self.tau.value),
                     iterations=self.iteration.max, tol=0.0, history=True)
        self._history = result.history
        self.update()

    def draw(self):
        from matplotlib.patches import Circle

        from coursekit.explore import plots

        t = min(self.iteration.value, len(self._history) - 1)
        self.mixture = self._history[t]
        alive = np.flatnonzero(self.mixture.alive)
        self.alive = len(alive)
        fig, (ax,) = plots.new_figure(1, width=4.6, height=4.6)
        ax.scatter(self.points[:, 0], self.points[:, 1], s=4, color="0.55")
        heaviest = float(self.mixture.weights[alive].max()) if len(alive) else 1.0
        for k in alive:
            radius = 2 * float(np.sqrt(self.mixture.variances[k]))
            width = 0.6 + 2.4 * float(self.mixture.weights[k]) / heaviest
            ax.add_patch(Circle(tuple(self.mixture.means[k]), radius, fill=False, color="tab:red", lw=width))
            ax.plot(*self.mixture.means[k], "+", color="tab:red", ms=5)
        low, high = self.points.min(0), self.points.max(0)
        pad = 0.1 * float((high - low).max())
        ax.set(xlim=(low[0] - pad, high[0] + pad), ylim=(low[1] - pad, high[1] + pad), aspect="equal",
               title=f"EGM, iteration {t}")
        self.status.value = (f"iteration {t}: <b>{self.alive}</b> components alive of {len(self.initial_means)} "
                             f"(tau {self.tau.value:.2f}, sigma0 {self.sigma0.value:.3g}); circles at 2 sigma")
        return fig


class SaliencyExplorer(Explorer):
    """A database's saliency maps and the regions EGM detects on them (Siméoni et al., WACV 2018).

    ``images`` uint8 ``(B, H, W, 3)``; ``maps`` a dict name -> ``(B, h, w)`` non-negative maps (e.g. "FS",
    "OS"), each shown upsampled over its image; ``truth`` optional, one int ``(k, 4)`` array of ground-truth
    boxes ``(x0, y0, x1, y1)`` in pixels per image. Controls: ``photo`` (a slider over the database),
    ``map`` (a menu of the names), ``tau`` (EGM's purge threshold) and ``extent`` (boxes ``mu +- extent
    sigma``). Regions are re-detected on each draw (:func:`coursekit.graphs.discovery.detect_regions`), drawn
    as boxes in the image's pixels, the ground truth dashed. After each draw, ``regions`` holds the shown
    image's boxes in map cells and ``precision`` the map's saliency precision (NaN without ``truth``)."""

    DPI = 80

    def __init__(self, images, maps: dict, truth=None, *, tau: float = 0.75, extent: float = 1.0):
        import ipywidgets as w
        import torch

        self.images = np.asarray(images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (B, H, W, 3); got {self.images.dtype} {self.images.shape}")
        if not isinstance(maps, dict) or not maps:
            raise ValueError("maps must be a non-empty dict name -> (B, h, w) maps")
        self.maps = {}
        for name, value in maps.items():
            tensor = torch.as_tensor(value).detach().float().cpu()
            if tensor.ndim != 3 or len(tensor) != len(self.images):
                raise ValueError(f"maps[{name!r}] must be ({len(self.images)}, h, w), one per image; got "
                                 f"{tuple(tensor.shape)}")
            self.maps[str(name)] = tensor
        if truth is not None and len(truth) != len(self.images):
            raise ValueError(f"truth must hold one (k, 4) array per image ({len(self.images)}); got {len(truth)}")
        self.truth = truth
        style = {"description_width": "initial"}
        self.photo = w.IntSlider(value=0, min=0, max=len(self.images) - 1, description="image",
                                 continuous_update=False, style=style)
        self.map = w.Dropdown(options=list(self.maps), value=next(iter(self.maps)), description="map", style=style)
        self.tau = w.FloatSlider(value=tau, min=0.05, max=0.95, step=0.05, description="tau",
                                 continuous_update=False, style=style)
        self.extent = w.FloatSlider(value=extent, min=0.5, max=3.0, step=0.25, description="extent",
                                    continuous_update=False, style=style)
        controls = (self.photo, self.map, self.tau, self.extent)
        super().__init__(self.row(self.photo, self.map), self.row(self.tau, self.extent), redraw_on=controls)
        self.update()

    def draw(self):
        from matplotlib.patches import Rectangle

        from coursekit.explore import plots
        from coursekit.graphs import discovery

        n, name = self.photo.value, self.map.value
        heat = self.maps[name][n]
        h, w = heat.shape
        found = discovery.detect_regions(heat[None], tau=float(self.tau.value), extent=float(self.extent.value))
        self.regions = found.boxes.numpy()
        photo = self.images[n]
        sy, sx = photo.shape[0] / h, photo.shape[1] / w
        if self.truth is not None:
            cover = discovery.box_coverage([self.truth[n]], photo.shape[0], photo.shape[1], h, w)
            self.precision = float(discovery.saliency_precision(heat[None], cover)[0])
        else:
            self.precision = float("nan")
        fig, (ax,) = plots.new_figure(1, width=5.4, height=4.2)
        plots.overlay_map(ax, photo, np.kron(heat.numpy(), np.ones((int(round(sy)), int(round(sx)))))
                          [:photo.shape[0], :photo.shape[1]], alpha=0.45, title=f"{name}, image {n}")
        for x0, y0, x1, y1 in self.regions:
            ax.add_patch(Rectangle((x0 * sx, y0 * sy), (x1 - x0) * sx, (y1 - y0) * sy, fill=False, color="white", lw=2))
        if self.truth is not None:
            for x0, y0, x1, y1 in np.asarray(self.truth[n]).reshape(-1, 4):
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1.5, ls="--"))
        precision = "" if np.isnan(self.precision) else f"; saliency precision {self.precision:.2f}"
        self.status.value = (f"image {n}, {name}: <b>{len(self.regions)}</b> regions (tau {self.tau.value:.2f}, "
                             f"boxes mu +- {self.extent.value:g} sigma; ground truth dashed){precision}")
        return fig


def _moons_graph(points, k: int, gamma: float, bandwidth: float):
    """The reciprocal k-NN graph of 2-D points with a Gaussian-kernel similarity, ``s^gamma`` as affinity,
    normalised symmetrically: ``W (N, N)`` dense float64 torch."""
    import torch

    from coursekit.graphs.knn import symmetric_normalise

    x = torch.as_tensor(points, dtype=torch.float64)
    similarity = torch.exp(-torch.cdist(x, x).square() / (2 * bandwidth**2))
    _, idx = torch.topk(similarity - 2 * torch.eye(len(x), dtype=torch.float64), k, dim=1)
    chosen = torch.zeros_like(similarity, dtype=torch.bool).scatter_(1, idx, True)
    return symmetric_normalise(torch.where(chosen & chosen.T, similarity.pow(gamma), 0))


class DiffusionExplorer(Explorer):
    """Diffusion against Euclidean ranking on 2-D ``points (N, 2)`` (the moons), each point coloured by its
    rank for one query: the reciprocal ``k``-NN graph of a Gaussian-kernel similarity (``bandwidth``), the
    affinity ``s^gamma``, ``W = D^-1/2 A D^-1/2``, and ``L_alpha x = y`` for the query's indicator ``y``
    (:func:`coursekit.graphs.diffusion.diffusion`, solved to 1e-10).

    Controls: ``query`` (a menu of point indices, ``queries`` of them, labelled by their coordinates),
    ``alpha``, ``k`` and ``gamma``. The picture: two panels, Euclidean and diffusion, the top ``top`` points
    of each ranking drawn large, all coloured by rank. The status line gives, for each ranking, the share
    of its top ``top`` that lies on the query's own group (``labels``). After each draw, ``scores`` holds the
    diffusion scores and ``on_group`` the two shares (Euclidean, diffusion)."""

    DPI = 80

    def __init__(self, points, labels, queries=None, *, k: int = 10, gamma: float = 3.0, alpha: float = 0.99,
                 bandwidth: float = 0.1, top: int = 100):
        import ipywidgets as w

        self.points = _floats(points, "points", 2)
        self.labels = np.asarray(labels)
        if self.points.shape[1] != 2 or self.labels.shape != (len(self.points),):
            raise ValueError(f"points must be (N, 2) and labels (N,); got {self.points.shape} and {self.labels.shape}")
        queries = [int(np.argmax(self.points[:, 0] * (self.labels == self.labels[0])))] if queries is None else list(queries)
        self.bandwidth, self.top = float(bandwidth), int(top)
        style = {"description_width": "initial"}
        self.query = w.Dropdown(options=[(f"{q}: ({self.points[q, 0]:.2f}, {self.points[q, 1]:.2f})", q) for q in queries],
                                value=queries[0], description="query", style=style)
        self.alpha = w.FloatSlider(value=alpha, min=0.5, max=0.999, step=0.005, readout_format=".3f", description="alpha",
                                   continuous_update=False, style=style)
        self.k = w.IntSlider(value=k, min=2, max=50, description="k", continuous_update=False, style=style)
        self.gamma = w.FloatSlider(value=gamma, min=1.0, max=6.0, step=0.5, description="gamma", continuous_update=False,
                                   style=style)
        super().__init__(self.row(self.query, self.alpha), self.row(self.k, self.gamma),
                         redraw_on=(self.query, self.alpha, self.k, self.gamma))
        self.update()

    def draw(self):
        import torch

        from coursekit.explore import plots
        from coursekit.graphs.diffusion import diffusion

        q = self.query.value
        W = _moons_graph(self.points, self.k.value, self.gamma.value, self.bandwidth)
        y = torch.zeros(len(self.points), dtype=torch.float64)
        y[q] = 1.0
        self.scores = diffusion(W, y, self.alpha.value, tol=1e-10, max_iterations=1000).numpy()
        euclidean = -np.linalg.norm(self.points - self.points[q], axis=1)
        fig, axes = plots.new_figure(2, width=4.4, height=3.0)
        shares = []
        for ax, (name, score) in zip(axes, (("Euclidean", euclidean), ("diffusion", self.scores))):
            order = np.argsort(-score, kind="stable")
            rank = np.empty(len(order))
            rank[order] = np.arange(len(order))
            top = order[:self.top]
            shares.append(float((self.labels[top] == self.labels[q]).mean()))
            ax.scatter(self.points[:, 0], self.points[:, 1], c=rank, cmap="viridis_r", s=6)
            ax.scatter(self.points[top, 0], self.points[top, 1], c=rank[top], cmap="viridis_r", s=22,
                       vmin=0, vmax=len(order))
            ax.plot(*self.points[q], "r*", ms=14)
            ax.set(aspect="equal", xticks=[], yticks=[], title=f"{name}: {100 * shares[-1]:.0f}% of the top {self.top} on the query's moon")
        self.on_group = tuple(shares)
        self.status.value = (f"query {q}, alpha {self.alpha.value:.3f}, k {self.k.value}, gamma {self.gamma.value:g}: of the "
                             f"top {self.top}, <b>{100 * shares[0]:.0f}%</b> (Euclidean) and <b>{100 * shares[1]:.0f}%</b> "
                             f"(diffusion) lie on the query's moon")
        return fig


class SpectralExplorer(Explorer):
    """Fast spectral ranking: the rank-``r`` approximation ``U_r h_alpha(Lambda_r) U_r^T y`` of the diffusion
    ``L_alpha^-1 y`` on a graph ``W (n, n)``, for one of the query vectors ``y (n, Q)``, against the exact
    solve. The ``max_rank`` largest eigenpairs are computed once
    (:func:`coursekit.graphs.diffusion.spectral_basis`); ``exact (n, Q)`` is given or solved densely.

    Controls: ``rank`` (a slider up to ``max_rank``) and ``query`` (a menu of the columns). The picture: the
    spectrum with ``h_alpha`` (the low-pass filter, the kept eigenvalues marked) and the exact scores
    against the approximated ones. The status line gives the relative error and the share of the exact top
    ``top`` found in the approximated top ``top``; after each draw ``error`` and ``overlap`` hold them."""

    DPI = 80

    def __init__(self, W, y, *, alpha: float = 0.99, max_rank: int = 100, exact=None, top: int = 20):
        import ipywidgets as w
        import torch

        from coursekit.graphs.diffusion import spectral_basis

        self.y = torch.as_tensor(y, dtype=torch.float64).cpu()
        if self.y.ndim == 1:
            self.y = self.y[:, None]
        if self.y.shape[0] != W.shape[0]:
            raise ValueError(f"y must be (n, Q) with n = {W.shape[0]} rows, one per node of W; got {tuple(self.y.shape)}")
        self.alpha_value, self.top = float(alpha), int(top)
        max_rank = min(int(max_rank), W.shape[0])
        self.values, self.vectors = (t.cpu() for t in spectral_basis(W, max_rank))
        if exact is None:
            dense = W.to_dense() if W.layout != torch.strided else W
            system = torch.eye(W.shape[0], dtype=torch.float64) - alpha * dense.double().cpu()
            exact = (1 - alpha) * torch.linalg.solve(system, self.y)
        self.exact = torch.as_tensor(exact, dtype=torch.float64).cpu().reshape(self.y.shape)
        style = {"description_width": "initial"}
        self.rank = w.IntSlider(value=min(10, max_rank), min=1, max=max_rank, description="rank", continuous_update=False,
                                style=style)
        self.query = w.Dropdown(options=list(range(self.y.shape[1])), value=0, description="query", style=style)
        super().__init__(self.row(self.rank, self.query), redraw_on=(self.rank, self.query))
        self.update()

    def draw(self):
        from coursekit.explore import plots
        from coursekit.graphs.diffusion import spectral_ranking, transfer

        r, q = self.rank.value, self.query.value
        approx = spectral_ranking(self.values[:r], self.vectors[:, :r], self.y[:, q], self.alpha_value).numpy()
        exact = self.exact[:, q].numpy()
        self.error = float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))
        top_exact = set(np.argsort(-exact)[:self.top].tolist())
        self.overlap = len(top_exact & set(np.argsort(-approx)[:self.top].tolist())) / self.top
        fig, (ax_h, ax_x) = plots.new_figure(2, width=4.2, height=3.0)
        grid = np.linspace(float(self.values.min()), 1.0, 200)
        ax_h.plot(grid, transfer(grid, self.alpha_value), color="0.4", label="h(lambda)")
        ax_h.plot(self.values.numpy(), transfer(self.values.numpy(), self.alpha_value), ".", color="0.7", ms=4)
        ax_h.plot(self.values[:r].numpy(), transfer(self.values[:r].numpy(), self.alpha_value), "o", color="tab:red", ms=4,
                  label=f"the {r} kept")
        ax_h.set(xlabel="eigenvalue of W", ylabel="h_alpha", yscale="log", title="the filter on the spectrum")
        ax_h.legend(fontsize=8)
        ax_x.plot(exact, approx, ".", ms=4)
        low, high = float(min(exact.min(), approx.min())), float(max(exact.max(), approx.max()))
        ax_x.plot([low, high], [low, high], color="0.6", lw=1)
        ax_x.set(xlabel="exact L^-1 y", ylabel=f"rank {r}", title="scores")
        self.status.value = (f"rank {r}, query {q}: relative error <b>{self.error:.3f}</b>; the exact top {self.top} found in "
                             f"the approximated top {self.top}: <b>{100 * self.overlap:.0f}%</b>")
        return fig
