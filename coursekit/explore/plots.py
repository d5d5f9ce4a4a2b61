"""Matplotlib figures shared by the stage notebooks and the widgets."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionStyle, FancyArrowPatch
from matplotlib.text import Text

CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def decision_grid(X: np.ndarray, resolution: int = 200, margin: float = 0.1):
    """A ``resolution x resolution`` grid covering the 2-D points ``X`` with a relative margin."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (N, 2) to draw decision regions; got {X.shape}")
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = margin * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    return gx, gy, np.column_stack([gx.ravel(), gy.ravel()])


def plot_decision_regions(
    ax: Axes,
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    labels: np.ndarray,
    *,
    resolution: int = 200,
    title: str | None = None,
) -> None:
    """Colour the plane by ``predict`` (class per row) and scatter the labelled points on top; the
    axes are the two input coordinates, x₁ and x₂."""
    from matplotlib.colors import ListedColormap

    labels = np.asarray(labels)
    K = int(labels.max()) + 1
    if K > len(CLASS_COLOURS):
        raise ValueError(f"at most {len(CLASS_COLOURS)} classes can be drawn; got {K}")
    cmap = ListedColormap(CLASS_COLOURS[:K])
    gx, gy, grid = decision_grid(X, resolution)
    regions = np.asarray(predict(grid)).reshape(gx.shape)
    ax.contourf(gx, gy, regions, levels=np.arange(K + 1) - 0.5, cmap=cmap, alpha=0.3)
    ax.scatter(X[:, 0], X[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=K - 0.5, s=12, edgecolors="k", linewidths=0.3)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(r"$x_1$")
    ax.set_ylabel(r"$x_2$")
    if title:
        ax.set_title(title)


def plot_loss(ax: Axes, losses, record_every: int = 1, title: str = "training loss") -> None:
    steps = np.arange(len(losses)) * record_every
    ax.plot(steps, losses)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)


def new_figure(ncols: int = 1, width: float = 4.5, height: float = 4.0) -> tuple[Figure, list[Axes]]:
    """A figure not registered with pyplot, so it is drawn only where it is explicitly shown."""
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def show(fig: Figure, dpi: int = 100) -> None:
    """Display a figure made by :func:`new_figure` in the notebook, as a PNG image.

    (A figure not registered with pyplot has no inline display of its own: left as a cell's last
    expression, Jupyter would print ``<Figure size ...>``.)
    """
    from IPython.display import Image, display

    display(Image(figure_png(fig, dpi=dpi)))


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def graph_layout(values, parents_of) -> dict[int, tuple[float, float]]:
    """Positions for a computation graph: column = longest path from a leaf, row = order in the column."""
    depth: dict[int, int] = {}
    for v in values:  # values come in creation order, so parents are placed first
        ps = [depth[id(p)] for p in parents_of(v) if id(p) in depth]
        depth[id(v)] = 1 + max(ps) if ps else 0
    rows: dict[int, int] = {}
    position = {}
    for v in values:
        column = depth[id(v)]
        rows[column] = rows.get(column, 0) + 1
        position[id(v)] = (float(column), -float(rows[column] - 1))
    return position


def _summary(array) -> str:
    if array is None:
        return "—"
    array = np.asarray(array)
    if array.shape == ():
        return f"{float(array):.3g}"
    return f"‖·‖={np.linalg.norm(array):.3g}"


class _Edge(FancyArrowPatch):
    """An arrow from one label's box to another's that bends around the other boxes in its way.

    The boxes' places are known only once the figure is laid out, so at each draw the edge updates
    them and takes the first of :attr:`BENDS` (a straight line, then arcs ever more curved, to either
    side) whose path, clipped at its two boxes, crosses no other box (or the fewest, if each crosses one).
    """

    BENDS = (0.0, 0.12, -0.12, 0.25, -0.25, 0.4, -0.4, 0.6, -0.6)

    def __init__(self, start: Text, stop: Text, labels: list[Text], **kwargs):
        super().__init__(start.get_position(), stop.get_position(), patchA=start.get_bbox_patch(),
                         patchB=stop.get_bbox_patch(), **kwargs)
        self.start, self.stop, self.labels = start, stop, labels

    def draw(self, renderer):
        for label in self.labels:
            label.update_bbox_position_size(renderer)
        ends = self.get_transform().transform([self.start.get_position(), self.stop.get_position()])
        others = [label.get_bbox_patch().get_window_extent(renderer) for label in self.labels
                  if label is not self.start and label is not self.stop]

        def crossings(bend):
            path = ConnectionStyle.Arc3(rad=bend)(*ends, patchA=self.patchA, patchB=self.patchB,
                                                  shrinkA=0.0, shrinkB=0.0)
            points = np.vstack([segment(np.linspace(0.0, 1.0, 50)) for segment, _ in path.iter_bezier()])
            return sum(box.padded(2.0).count_contains(points) > 0 for box in others)

        best = min(self.BENDS, key=crossings)  # the first of those that cross fewest
        self.set_connectionstyle(ConnectionStyle.Arc3(rad=best))
        super().draw(renderer)


def draw_graph(ax: Axes, values, blocks, *, parents_of, current=None, title: str | None = None) -> None:
    """Draw a computation graph: parameters green, operation nodes blue, the current step orange;
    each box shows the value and the gradient (— before it arrives), and [the block] it belongs to.

    An edge runs from its parent's box to its child's, ending in an arrow head at the box, and bends
    around the boxes between them; the opaque boxes lie above every edge."""
    pos = graph_layout(values, parents_of)
    member = {id(n): b.op for b in blocks for n in b.inner}  # innermost block last wins
    labels = {}
    for v in values:
        x, y = pos[id(v)]
        is_node = hasattr(v, "op")
        colour = "#ffbb78" if v is current else ("#aec7e8" if is_node else "#98df8a")
        head = v.op if is_node else v.name
        if id(v) in member:
            head += f" [{member[id(v)]}]"
        label = f"{head}\n{'x'.join(map(str, v.shape)) or 'scalar'}\n" \
                f"v {_summary(v.value)}\n∂ {_summary(v.grad)}"
        labels[id(v)] = ax.text(x, y, label, ha="center", va="center", fontsize=9, zorder=3,
                                bbox=dict(boxstyle="round", fc=colour, ec="k" if v.grad is not None else "0.6",
                                          lw=1.2 if v.grad is not None else 0.6))
    boxes = list(labels.values())
    for v in values:
        for p in parents_of(v):
            if id(p) in labels:
                ax.add_patch(_Edge(labels[id(p)], labels[id(v)], boxes, arrowstyle="->", mutation_scale=10,
                                   color="0.5", lw=0.8, shrinkA=0.0, shrinkB=1.0, zorder=2))
    columns = [p[0] for p in pos.values()] or [0.0]
    rows = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(columns) - 0.6, max(columns) + 0.6)
    ax.set_ylim(min(rows) - 0.6, max(rows) + 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)


def image_grid(images, titles=None, *, ncols: int = 10, size: float = 1.1, cmap: str = "gray",
               symmetric: bool = False, suptitle: str | None = None) -> Figure:
    """A grid of small images ``(N, H, W)`` (numpy or torch), each with an optional title.

    ``symmetric`` centres a diverging colour map on zero for each image (for learned filters)."""
    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=float)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images must have shape (N, H, W) with N >= 1; got {images.shape}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer; got {ncols!r}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles must have one entry per image ({len(images)}); got {len(titles)}")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig = Figure(figsize=(size * ncols, (size + (0.25 if titles is not None else 0)) * nrows + (0.3 if suptitle else 0)),
                 layout="constrained")
    for k, image in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        if symmetric:
            limit = float(np.abs(image).max()) or 1.0
            ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            ax.imshow(image, cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def colour_grid(images, titles=None, *, ncols: int = 10, size: float = 1.1, normalise: bool = False,
                suptitle: str | None = None) -> Figure:
    """A grid of colour images, each ``(3, H, W)`` (uint8 in 0..255 or floats in [0, 1]; sizes may differ:
    a sequence of them, or a tensor ``(N, 3, H, W)``).

    ``normalise`` stretches each image to [0, 1] on its own (for learned filters: 0 is mid-grey only
    if the filter is symmetric, so this shows each filter's colours and structure, not its scale)."""
    items = [np.asarray(im.detach().cpu() if hasattr(im, "detach") else im, dtype=float) for im in images]
    if not items or any(im.ndim != 3 or im.shape[0] != 3 for im in items):
        raise ValueError(f"images must be a non-empty sequence of (3, H, W) arrays; got {[im.shape for im in items][:3]}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer; got {ncols!r}")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"titles must have one entry per image ({len(items)}); got {len(titles)}")
    ncols = min(ncols, len(items))
    nrows = -(-len(items) // ncols)
    fig = Figure(figsize=(size * ncols, (size + (0.25 if titles is not None else 0)) * nrows + (0.3 if suptitle else 0)),
                 layout="constrained")
    for k, image in enumerate(items):
        if normalise:
            low, high = image.min(), image.max()
            image = (image - low) / (high - low) if high > low else np.full_like(image, 0.5)
        elif image.max() > 1.0:
            image = image / 255.0
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_confusion(ax: Axes, matrix, *, title: str = "confusion matrix") -> None:
    """Draw a confusion matrix (rows: true class, columns: predicted) with its counts written in.

    Only the errors are coloured (the diagonal would swamp the scale); a colour bar gives their scale.
    """
    matrix = np.asarray(matrix.cpu() if hasattr(matrix, "cpu") else matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (K, K); got shape {matrix.shape}")
    k = matrix.shape[0]
    errors = matrix.astype(float).copy()
    np.fill_diagonal(errors, np.nan)
    largest = np.nanmax(errors) if k > 1 else 0.0
    picture = ax.imshow(errors, cmap="Reds", vmin=0, vmax=max(largest, 1.0))
    ax.figure.colorbar(picture, ax=ax, shrink=0.8, label="errors")
    for i in range(k):
        for j in range(k):
            dark = i != j and matrix[i, j] > 0.6 * max(largest, 1.0)
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black", fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)


def embedding_map(ax: Axes, points, labels, images=None, *, names=None, thumbnails: int = 40, zoom: float = 0.6,
                  title: str | None = None, seed: int = 0) -> None:
    """A 2-D embedding ``points (N, 2)`` as dots coloured by ``labels`` (``names`` maps a label to its legend
    entry), with ``thumbnails`` of the ``images (N, H, W)`` drawn at their points: a spread-out subset
    (greedy farthest points from a seeded start), so that the thumbnails show how the map is organised."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    points, labels = np.asarray(points, dtype=float), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or len(labels) != len(points):
        raise ValueError(f"points must have shape (N, 2) and labels (N,); got {points.shape} and {labels.shape}")
    for i, label in enumerate(np.unique(labels)):
        at = labels == label
        ax.scatter(points[at, 0], points[at, 1], s=4, alpha=0.5, color=CLASS_COLOURS[i % len(CLASS_COLOURS)],
                   label=str(names.get(label, label) if names else label))
    if images is not None and thumbnails and len(points):
        images = np.asarray(images)
        chosen = [int(np.random.default_rng(seed).integers(len(points)))]
        nearest = np.linalg.norm(points - points[chosen[0]], axis=1)
        while len(chosen) < min(thumbnails, len(points)):
            chosen.append(int(nearest.argmax()))
            nearest = np.minimum(nearest, np.linalg.norm(points - points[chosen[-1]], axis=1))
        for i in chosen:
            box = OffsetImage(images[i], cmap="gray_r", zoom=zoom)
            ax.add_artist(AnnotationBbox(box, points[i], frameon=False, pad=0))
    ax.legend(loc="best", markerscale=3, fontsize=8)
    ax.set(xticks=[], yticks=[], title=title)


def overlay_map(ax: Axes, image, heat, *, alpha: float = 0.5, cmap: str = "jet", title: str | None = None):
    """A colour photo ``image (H, W, 3)`` (uint8) with ``heat (H, W)`` (a class activation map upsampled to the
    photo) drawn over it at opacity ``alpha``, its colours spanning the map's own minimum to maximum, as in the
    CAM paper's figures. Returns the heat map's ``AxesImage`` (for a colour bar)."""
    image, heat = np.asarray(image), np.asarray(heat, dtype=float)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3); got {image.shape}")
    if heat.shape != image.shape[:2]:
        raise ValueError(f"heat must have the image's size {image.shape[:2]}; got {heat.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
    ax.imshow(image)
    low, high = float(heat.min()), float(heat.max())
    picture = ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=low, vmax=high if high > low else low + 1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return picture


def framed_image(ax: Axes, image, colour, *, width: float = 4.0, title: str | None = None,
                 caption: str | None = None) -> None:
    """A colour image ``(H, W, 3)`` framed in ``colour`` (the axes' four spines, ``width`` points wide), with an
    optional ``title`` above and a ``caption`` below in the frame's colour (a retrieved image and its label)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3); got {image.shape}")
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)
    if title:
        ax.set_title(title, fontsize=8)
    if caption:
        ax.set_xlabel(caption, fontsize=7, color=colour, labelpad=2)
