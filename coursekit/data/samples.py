"""Data made on the spot or shipped with the dependencies (no download): the spiral toy, the photos
of scikit-image. Datasets that are downloaded live in :mod:`coursekit.data.registry`."""

from __future__ import annotations

import functools

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


def moons(n_per_moon: int = 100, num_moons: int = 3, noise: float = 0.05, seed: int = 0):
    """Interleaved half-moons, the toy of the diffusion papers (after the authors' ``banana3.m``; the exact
    geometry is redrawn here): moon ``k`` is a half circle of radius 0.8 centred at ``(k, 0.5 (k % 2))``,
    its arc up for even ``k`` and down for odd ``k`` (angles evenly spaced), with Gaussian noise of standard
    deviation ``noise`` on both coordinates. The tips of moons 0 and 2 are 0.4 apart and moon 1 passes about 0.3
    under them: a Euclidean ball around a tip spills onto the other moons, a walk along a moon does not.
    Returns ``X (N, 2)`` float64 and ``labels (N,)`` int64, grouped by moon."""
    if int(n_per_moon) != n_per_moon or n_per_moon < 2:
        raise ValueError(f"n_per_moon must be an integer >= 2; got {n_per_moon!r}")
    if int(num_moons) != num_moons or num_moons < 1:
        raise ValueError(f"num_moons must be a positive integer; got {num_moons!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0; got {noise}")
    n_per_moon, num_moons = int(n_per_moon), int(num_moons)
    rng = np.random.default_rng(seed)
    angle = np.linspace(0.0, np.pi, n_per_moon)
    parts = []
    for k in range(num_moons):
        up = 1.0 if k % 2 == 0 else -1.0
        parts.append(np.column_stack([k + 0.8 * np.cos(angle), 0.5 * (k % 2) + up * 0.8 * np.sin(angle)]))
    X = np.concatenate(parts) + noise * rng.standard_normal((n_per_moon * num_moons, 2))
    return X, np.repeat(np.arange(num_moons), n_per_moon).astype(np.int64)


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


# Colour photographs that scikit-image ships inside its package (no download).
COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                 "motorcycle_left", "motorcycle_right", "retina")


def colour_photo(name: str) -> np.ndarray:
    """A colour photo of :data:`COLOUR_PHOTOS` as uint8 ``(H, W, 3)``."""
    if name not in COLOUR_PHOTOS:
        raise ValueError(f"name must be one of {COLOUR_PHOTOS} (shipped offline); got {name!r}")
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name.endswith("left") else right
    else:
        image = getattr(skimage.data, name)()
    return np.ascontiguousarray(image[..., :3])


def _resized(name: str, short_side: int) -> np.ndarray:
    """The colour photo ``name`` rescaled so that its short side is ``short_side`` (a read-only array)."""
    return _resized_cached(name, int(short_side))


@functools.lru_cache(maxsize=32)
def _resized_cached(name: str, short_side: int) -> np.ndarray:
    import skimage.transform

    image = colour_photo(name)
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    out = skimage.transform.resize(image, (round(h * scale), round(w * scale)), anti_aliasing=True,
                                   preserve_range=True)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    out.flags.writeable = False  # shared by every caller
    return out


def exemplar_patches(num_classes: int, size: int = 64, short_side: int = 256, seed: int = 0,
                     photos: tuple[str, ...] = COLOUR_PHOTOS, candidates: int = 8):
    """Seed patches for exemplar training (Dosovitskiy et al. 2014): each is one surrogate class.

    Each photo is rescaled so that its short side is ``short_side`` pixels (as ImageNet images are to
    256); a patch is the ``size x size`` window, among ``candidates`` random ones from a random
    photo, with the most gradient energy (flat sky teaches nothing). Returns uint8
    ``(num_classes, 3, size, size)`` and, per patch, ``(photo, top, left)`` in the rescaled photo.
    """
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    if not 8 <= size <= short_side:
        raise ValueError(f"size must lie in [8, short_side={short_side}]; got {size}")
    rng = np.random.default_rng(seed)
    images = {name: _resized(name, short_side) for name in photos}
    patches, where = [], []
    for _ in range(int(num_classes)):
        name = photos[int(rng.integers(len(photos)))]
        image = images[name]
        h, w = image.shape[:2]
        best, best_energy = None, -1.0
        for _ in range(candidates):
            top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            window = image[top:top + size, left:left + size].astype(np.float32).mean(-1)
            energy = float(np.abs(np.diff(window, axis=0)).mean() + np.abs(np.diff(window, axis=1)).mean())
            if energy > best_energy:
                best, best_energy = (top, left), energy
        top, left = best
        patches.append(image[top:top + size, left:left + size].transpose(2, 0, 1))
        where.append((name, top, left))
    return np.stack(patches), where


def photo_crops(size: int = 224, per_photo: int = 8, short_side: int = 256, seed: int = 0,
                photos: tuple[str, ...] = COLOUR_PHOTOS):
    """Random ``size x size`` crops of the colour photos rescaled to a ``short_side``: uint8
    ``(len(photos) * per_photo, 3, size, size)`` and, per crop, ``(photo, top, left)``."""
    rng = np.random.default_rng(seed)
    crops, where = [], []
    for name in photos:
        image = _resized(name, short_side)
        h, w = image.shape[:2]
        if size > min(h, w):
            raise ValueError(f"a {size} crop does not fit in {name} rescaled to {h}x{w}")
        for _ in range(per_photo):
            top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            crops.append(image[top:top + size, left:left + size].transpose(2, 0, 1))
            where.append((name, top, left))
    return np.stack(crops), where


def exemplar_views(where, size: int = 64, shift: int = 8, short_side: int = 256, seed: int = 1) -> np.ndarray:
    """Held-out views of the patches of :func:`exemplar_patches` (its ``where``): each window moved by
    up to ``shift`` pixels in each direction in its rescaled photo (new pixels come in at the borders),
    uint8 ``(len(where), 3, size, size)``."""
    rng = np.random.default_rng(seed)
    images = {name: _resized(name, short_side) for name in {w[0] for w in where}}
    views = []
    for name, top, left in where:
        image = images[name]
        h, w = image.shape[:2]
        t = int(np.clip(top + rng.integers(-shift, shift + 1), 0, h - size))
        l = int(np.clip(left + rng.integers(-shift, shift + 1), 0, w - size))
        views.append(image[t:t + size, l:l + size].transpose(2, 0, 1))
    return np.stack(views)
