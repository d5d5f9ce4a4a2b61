"""Data made on the spot or shipped with the dependencies (no download): the spiral toy, the photos
of scikit-image. Datasets that are downloaded live in :mod:`coursekit.data.registry`."""

from __future__ import annotations

import numpy as np


def spiral(n_per_class: int = 100, num_classes: int = 3, noise: float = 0.2, seed: int = 0):
    """The classic 2-D spiral toy: ``num_classes`` interleaved arms, not linearly separable.

    Arm ``k`` has radii evenly spaced in [0, 1] and angles running over 4 radians from ``4k``, with
    Gaussian angular noise of standard deviation ``noise``. Returns ``X (N, 2)`` float64 and
    ``labels (N,)`` int64 with ``N = n_per_class * num_classes``, grouped by class.
    """
    if int(n_per_class) != n_per_class or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer; got {n_per_class!r}")
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
    n_per_class, num_classes = int(n_per_class), int(num_classes)
    if not noise >= 0:  # also refuses nan
        raise ValueError(f"noise must be >= 0; got {noise}")
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.0, 1.0, n_per_class), num_classes)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    start = 4.0 * labels
    angle = start + np.tile(np.linspace(0.0, 4.0, n_per_class), num_classes)
    angle = angle + noise * rng.standard_normal(angle.shape)
    X = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    return X, labels.astype(np.int64)


# Photos that scikit-image ships inside its package (no download); the others in skimage.data fetch.
PHOTOS = ("camera", "astronaut", "chelsea", "coffee", "coins", "brick", "grass", "gravel", "rocket", "moon", "text")


def photo(name: str = "camera", *, gray: bool = True, size: int | None = None) -> np.ndarray:
    """A real photo from scikit-image's offline set, as float32 in [0, 1].

    ``gray`` converts colour photos to luminance; ``size`` crops the centre to ``size x size`` pixels.
    """
    if name not in PHOTOS:
        raise ValueError(f"name must be one of {PHOTOS} (shipped offline); got {name!r}")
    import skimage.color
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image.astype(np.float32) / 255.0
    if gray and image.ndim == 3:
        image = skimage.color.rgb2gray(image).astype(np.float32)
    if size is not None:
        h, w = image.shape[:2]
        if not 1 <= size <= min(h, w):
            raise ValueError(f"size must lie in [1, {min(h, w)}] for {name} ({h}x{w}); got {size}")
        top, left = (h - size) // 2, (w - size) // 2
        image = image[top : top + size, left : left + size]
    return np.ascontiguousarray(image)
