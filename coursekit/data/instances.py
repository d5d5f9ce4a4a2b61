"""An offline instance-retrieval benchmark built from the photos that ship inside scikit-image.

Revisited Oxford and Paris (Radenovic et al., CVPR 2018) cannot be downloaded here. This module
builds, deterministically from a seed, a small stand-in in the spirit of INSTRE (Wang & Jiang
2015): 41 object *instances* picked by hand as boxes in eleven real photos (:data:`INSTANCES`:
the cat's left eye, single coins, the cameraman's camera, the motorcycle's front wheel...), two
different coins being two different objects. It is NOT Oxford: there are no buildings, each object
comes from a single photo (its views differ by scale, rotation, colour and occlusion, never by
viewpoint), and its mAP cannot be compared with published numbers.

Conventions (image size ``HEIGHT x WIDTH = 240 x 320``; boxes ``(x0, y0, x1, y1)`` in pixels, x1
and y1 exclusive, as Oxford's ``bbx``):

- **database image**: a random crop of a real photo or texture (rescaled), a few small crops of
  other photos pasted as clutter, fragments of other instances (cluttered-MNIST style), one or two
  instances pasted small (scale ``s`` in [0.1, 0.5]), rotated by up to 30 degrees, jittered in
  brightness, contrast and colour, and partly hidden by occluders (patches of other photos) or by
  the image border;
- the **scale** ``s`` of a pasted object is the longer side of its (unrotated) box after rescaling,
  divided by the image's short side; its **visible fraction** ``v`` is the number of its mask's
  pixels still visible in the final image over the number of pixels of its whole mask at that
  scale and rotation (so occlusion and the image border both lower it; a fragment of an instance
  has ``v`` < 0.4 by construction);
- **query**: a clean, fully visible, larger view (``s`` in [0.5, 0.8], up to 10 degrees of
  rotation) of one instance on a background, with its box; retrieval uses the crop
  (:meth:`InstanceSet.query_crops`). Queries are not in the database;
- **ground truth**, Revisited style (:func:`visibility_label`): for a query of instance ``i``, a
  database image showing ``i`` is *easy* if ``v >= 0.8`` and ``s >= 0.2``, *hard* if
  ``0.4 <= v < 0.8`` or ``s < 0.2`` (small) with ``v >= 0.4``, *junk* if ``v < 0.4``; images without
  ``i`` are negatives. ``gnd`` is the list of dicts of the Revisited files (``'easy'``, ``'hard'``,
  ``'junk'``: int64 database indices; ``'bbx'``: the query box), so the Easy / Medium / Hard
  protocols apply unchanged. Every query has at least one easy and one hard positive;
- **splits**: ``"test"`` (22 instances) and ``"train"`` (19 other instances, for learning
  whitening and fine-tuning on matching pairs: :meth:`InstanceSet.pairs`);
- ``distractors=N`` appends N images of background and clutter only (the "105k" idea); the other
  images and the ground truth do not change.

Every image is drawn from its own generator ``numpy.random.default_rng((seed, split, role,
index))``; images are stored as JPEG (quality 90) and the arrays returned are always the decoded
JPEGs, so a fresh set and a cached one are identical. Sets are cached under
``cache_dir() / "instance-sets"``, with their sha256 beside them, checked on every load.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from coursekit.data.registry import cache_dir, sha256_of
from coursekit.data.samples import COLOUR_PHOTOS, colour_photo

FORMAT_VERSION = 1  # bump when the stored layout or the way images are drawn changes
HEIGHT, WIDTH = 240, 320  # landscape; a stride-32 network sees an 8 x 10 map

EASY_VISIBLE = 0.8  # v >= this and s >= SMALL_SCALE: easy
JUNK_VISIBLE = 0.4  # v < this: junk (Oxford: "less than 25% visible"; stricter here)
SMALL_SCALE = 0.2  # s < this: hard however visible (about 1.5 cells of a stride-32 map)
DATABASE_SCALES = (0.1, 0.5)
QUERY_SCALES = (0.5, 0.8)
MAX_ANGLE, QUERY_MAX_ANGLE = 30.0, 10.0
JPEG_QUALITY = 90

SPLITS = ("test", "train")
# (instances, queries per instance, database images); None: every instance of the split
SIZES = {"tiny": (3, 1, 12), "fast": (12, 1, 150), "full": (None, 3, 2400)}


class Instance(NamedTuple):
    """One object: its name, the photo it is cut from, its box there, its mask's shape and its split.

    ``shape`` is ``"rect"`` (the whole box), ``"ellipse"`` (inscribed in the box), ``"alpha"`` (the
    photo's alpha channel) or ``"silhouette"`` (the photo is a binary silhouette).
    """

    name: str
    photo: str
    box: tuple[int, int, int, int]
    shape: str
    split: str


# Picked by hand on the photos (boxes in each photo's own pixels; no two boxes of a photo overlap).
INSTANCES = (
    Instance("astronaut's face", "astronaut", (170, 20, 300, 190), "rect", "test"),
    Instance("mission patch", "astronaut", (130, 348, 208, 426), "ellipse", "test"),
    Instance("space shuttle model", "astronaut", (355, 0, 475, 275), "rect", "test"),
    Instance("stars of the flag", "astronaut", (0, 10, 60, 200), "rect", "train"),
    Instance("pilot's wings badge", "astronaut", (275, 335, 335, 375), "rect", "train"),
    Instance("astronaut's helmet", "astronaut", (340, 342, 512, 512), "rect", "train"),
    Instance("cat's left eye", "chelsea", (135, 80, 210, 150), "rect", "test"),
    Instance("cat's nose", "chelsea", (220, 205, 305, 270), "rect", "test"),
    Instance("cat's right eye", "chelsea", (290, 100, 348, 168), "rect", "train"),
    Instance("espresso cup on its saucer", "coffee", (85, 15, 485, 390), "rect", "test"),
    Instance("coin, row 1, column 1", "coins", (19, 31, 69, 77), "ellipse", "test"),
    Instance("coin, row 1, column 4", "coins", (190, 28, 242, 75), "ellipse", "test"),
    Instance("coin, row 2, column 5", "coins", (243, 94, 298, 146), "ellipse", "test"),
    Instance("coin, row 3, column 6", "coins", (313, 154, 382, 220), "ellipse", "test"),
    Instance("coin, row 4, column 1", "coins", (16, 231, 77, 290), "ellipse", "test"),
    Instance("coin, row 4, column 4", "coins", (218, 239, 271, 290), "ellipse", "test"),
    Instance("coin, row 1, column 3", "coins", (129, 26, 181, 76), "ellipse", "train"),
    Instance("coin, row 1, column 6", "coins", (303, 14, 367, 74), "ellipse", "train"),
    Instance("coin, row 3, column 2", "coins", (78, 173, 126, 219), "ellipse", "train"),
    Instance("coin, row 3, column 4", "coins", (187, 168, 239, 218), "ellipse", "train"),
    Instance("coin, row 4, column 3", "coins", (142, 234, 201, 290), "ellipse", "train"),
    Instance("coin, row 4, column 5", "coins", (274, 238, 328, 290), "ellipse", "train"),
    Instance("rocket's nose cone", "rocket", (298, 125, 345, 245), "rect", "test"),
    Instance("launch tower", "rocket", (0, 0, 95, 200), "rect", "train"),
    Instance("cameraman's camera", "camera", (248, 135, 330, 195), "rect", "test"),
    Instance("cameraman's head", "camera", (150, 62, 248, 200), "rect", "test"),
    Instance("tower block", "camera", (405, 112, 448, 195), "rect", "train"),
    Instance("domed building", "camera", (335, 160, 405, 205), "rect", "train"),
    Instance("motorcycle's front wheel", "motorcycle_left", (500, 260, 690, 455), "rect", "test"),
    Instance("motorcycle's engine", "motorcycle_left", (355, 240, 470, 375), "rect", "test"),
    Instance("motorcycle's headlight", "motorcycle_left", (505, 118, 565, 192), "rect", "test"),
    Instance("cardboard boxes on the shelf", "motorcycle_left", (595, 55, 690, 100), "rect", "test"),
    Instance("motorcycle's rear wheel", "motorcycle_left", (118, 230, 285, 400), "rect", "train"),
    Instance("motorcycle's fuel tank", "motorcycle_left", (365, 150, 480, 235), "rect", "train"),
    Instance("motorcycle's seat", "motorcycle_left", (150, 155, 345, 210), "rect", "train"),
    Instance("red crate", "motorcycle_left", (548, 193, 615, 250), "rect", "train"),
    Instance("scikit-image logo", "logo", (0, 0, 500, 500), "alpha", "test"),
    Instance("clock", "clock", (145, 95, 275, 218), "ellipse", "test"),
    Instance("spiral galaxy", "hubble_deep_field", (95, 370, 150, 430), "ellipse", "test"),
    Instance("horse silhouette", "horse", (0, 0, 400, 328), "silhouette", "train"),
    Instance("elliptical galaxy", "hubble_deep_field", (690, 440, 770, 510), "ellipse", "train"),
)

# Backgrounds, clutter and occluders are crops of these, away from every instance box; a region
# (x0, y0, x1, y1) keeps crops inside the retina's disc.
BACKGROUNDS = ("brick", "grass", "gravel", "moon", "page", "text", "cell", "hubble_deep_field", "retina",
               "immunohistochemistry", "astronaut", "chelsea", "coffee", "coins", "rocket", "camera",
               "motorcycle_left")
_REGIONS = {"retina": (250, 250, 1160, 1160)}
# the rest of the launch tower and of the flag look like those instances: no crop takes them either
_KEEP_OUT = {"rocket": ((0, 0, 100, 427),), "astronaut": ((0, 0, 70, 360),)}
_MARGIN = 4  # pixels kept clear around an instance box by every crop of its photo
_CATEGORIES = ("easy", "hard", "junk")
_ROUNDS = ("easy", "hard", "junk", "easy", "hard")  # the primary object's label, round by round
_ATTEMPTS = 40  # draws of one database image until its primary object gets its planned label


class Object(NamedTuple):
    """An instance pasted into a database image: its id in :data:`INSTANCES`, its box ``(x0, y0,
    x1, y1)`` (the extent of its whole mask, occluded parts included, clipped to the image), its
    visible fraction ``v`` and its scale ``s`` (see the module's docstring)."""

    instance: int
    box: tuple[int, int, int, int]
    visible: float
    scale: float


def visibility_label(visible: float, scale: float) -> str:
    """``"easy"`` (v >= 0.8 and s >= 0.2), ``"hard"`` (0.4 <= v < 0.8, or s < 0.2 with v >= 0.4) or
    ``"junk"`` (v < 0.4): the Revisited label of a database image for a query of that instance."""
    if visible < JUNK_VISIBLE:
        return "junk"
    if visible >= EASY_VISIBLE and scale >= SMALL_SCALE:
        return "easy"
    return "hard"


@dataclass(frozen=True, eq=False)
class InstanceSet:
    """A generated benchmark: the database, the queries with their boxes, and the ground truth.

    ``images`` (N, H, W, 3) and ``queries`` (Q, H, W, 3) are uint8; ``query_boxes`` (Q, 4) int64
    ``(x0, y0, x1, y1)``; ``query_instances`` (Q,) int64 ids in :data:`INSTANCES`; ``gnd`` the
    Revisited list of dicts, one per query; ``objects[i]`` the instances pasted into image ``i``;
    ``masks`` (N, H, W) uint8 where ``k + 1`` marks the visible pixels of ``objects[i][k]`` (0:
    none); ``instances`` the ids of the split's instances in this set; ``instance_names[j]`` the
    name of instance ``j`` of :data:`INSTANCES`.
    """

    name: str
    split: str
    description: str
    images: np.ndarray
    queries: np.ndarray
    query_boxes: np.ndarray
    query_instances: np.ndarray
    gnd: list[dict]
    objects: list[list[Object]]
    masks: np.ndarray
    instances: np.ndarray
    instance_names: tuple[str, ...]

    def query_crops(self) -> list[np.ndarray]:
        """Each query cropped to its box, ``(y1 - y0, x1 - x0, 3)`` uint8: what retrieval describes."""
        return [q[y0:y1, x0:x1] for q, (x0, y0, x1, y1) in zip(self.queries, self.query_boxes)]

    def image_instances(self, min_visible: float = JUNK_VISIBLE) -> list[np.ndarray]:
        """Per database image, the int64 ids of the instances it shows with ``v >= min_visible``."""
        return [np.array([o.instance for o in objs if o.visible >= min_visible], dtype=np.int64)
                for objs in self.objects]

    def object_boxes(self, min_visible: float = JUNK_VISIBLE) -> list[np.ndarray]:
        """Per database image, the int64 ``(k, 4)`` boxes ``(x0, y0, x1, y1)`` of its objects with
        ``v >= min_visible`` (pass 0 for every pasted piece, fragments included)."""
        return [np.array([o.box for o in objs if o.visible >= min_visible], dtype=np.int64).reshape(-1, 4)
                for objs in self.objects]

    def clusters(self, min_visible: float = JUNK_VISIBLE) -> np.ndarray:
        """Per database image, the int64 id of the instance it shows most (the largest visible area,
        ``v s^2``, among its objects with ``v >= min_visible``), or -1 where it shows none: the image's
        cluster, for mining negatives from other clusters."""
        def main(objs):
            shown = [o for o in objs if o.visible >= min_visible]
            return max(shown, key=lambda o: o.visible * o.scale ** 2).instance if shown else -1
        return np.array([main(objs) for objs in self.objects], dtype=np.int64)

    def pairs(self, min_visible: float = JUNK_VISIBLE) -> np.ndarray:
        """int64 ``(P, 2)`` pairs ``(i, j)``, ``i < j``, of database images that share an instance
        visible with ``v >= min_visible`` in both (matching pairs for fine-tuning), sorted."""
        shown: dict[int, list[int]] = {}
        for i, ids in enumerate(self.image_instances(min_visible)):
            for instance in ids:
                shown.setdefault(int(instance), []).append(i)
        found = set()
        for images in shown.values():
            members = np.array(images)
            i, j = np.triu_indices(len(members), k=1)
            found.update(zip(members[i].tolist(), members[j].tolist()))
        return np.array(sorted(found), dtype=np.int64).reshape(-1, 2)


# -- compositing --------------------------------------------------------------------------------


class Canvas:
    """Layers pasted in order onto a background, each hiding what lies under its mask.

    ``background`` is float ``(H, W, 3)`` in [0, 255]. A pasted patch is blended with its alpha; the
    pixels where alpha >= 0.5 form its mask. Objects are the pastes given an instance id; the
    canvas counts each one's visible mask pixels against its whole mask, parts outside the image
    included.
    """

    def __init__(self, background: np.ndarray):
        self.image = np.array(background, dtype=np.float32)
        self.owner = np.full(self.image.shape[:2], -1, dtype=np.int16)  # the object seen at each pixel
        self._placed: list[tuple[int, tuple[int, int, int, int], float, int]] = []

    def paste(self, patch: np.ndarray, alpha: np.ndarray, top: int, left: int, instance: int | None = None,
              scale: float = 0.0, full_pixels: int | None = None) -> int | None:
        """Paste ``patch`` (h, w, 3) with ``alpha`` (h, w) in [0, 1] at ``(top, left)`` (it may stick
        out of the image). With an ``instance``, it is an object: its index among the objects is
        returned. ``full_pixels`` is the size of the whole object's mask when ``alpha`` is only
        part of it (a fragment); by default the mask of ``alpha``. An object none of whose mask
        falls in the image gets an empty box."""
        h, w = alpha.shape
        height, width = self.owner.shape
        y0, y1 = max(top, 0), min(top + h, height)
        x0, x1 = max(left, 0), min(left + w, width)
        mask = alpha >= 0.5
        index = None
        if instance is not None:
            index = len(self._placed)
            rows, cols = np.nonzero(mask)
            if len(rows):
                box = (int(np.clip(cols.min() + left, 0, width)), int(np.clip(rows.min() + top, 0, height)),
                       int(np.clip(cols.max() + 1 + left, 0, width)), int(np.clip(rows.max() + 1 + top, 0, height)))
            else:
                box = (0, 0, 0, 0)
            full = int(mask.sum()) if full_pixels is None else int(full_pixels)
            self._placed.append((int(instance), box, float(scale), full))
        if y0 >= y1 or x0 >= x1:
            return index
        inside = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        a = alpha[inside][..., None].astype(np.float32)
        region = self.image[y0:y1, x0:x1]
        region[...] = a * patch[inside] + (1 - a) * region
        self.owner[y0:y1, x0:x1][mask[inside]] = -1 if index is None else index
        return index

    def objects(self) -> list[Object]:
        """The objects so far, with their visible fractions measured on the masks."""
        seen = np.bincount(self.owner[self.owner >= 0].ravel(), minlength=len(self._placed))
        return [Object(instance, box, float(seen[k] / full) if full else 0.0, scale)
                for k, (instance, box, scale, full) in enumerate(self._placed)]

    def label_map(self) -> np.ndarray:
        """(H, W) uint8: ``k + 1`` where object ``k`` is visible, 0 elsewhere."""
        return (self.owner + 1).astype(np.uint8)

    def picture(self) -> np.ndarray:
        """The image as (H, W, 3) uint8."""
        return np.clip(np.rint(self.image), 0, 255).astype(np.uint8)


# -- the photos -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A photo shipped with scikit-image as read-only uint8 (H, W, 3)."""
    import skimage.data

    if name in COLOUR_PHOTOS:
        image = colour_photo(name)
    elif name == "horse":
        image = np.where(skimage.data.horse(), 255, 0).astype(np.uint8)  # True is the white ground
    else:
        image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3])
    image.flags.writeable = False
    return image


@functools.lru_cache(maxsize=None)
def _instance_pixels(instance: int) -> np.ndarray:
    """The instance cut out of its photo: float32 (h, w, 4), RGB in [0, 255] and alpha in [0, 1]."""
    import skimage.data

    spec = INSTANCES[instance]
    x0, y0, x1, y1 = spec.box
    rgb = _photo(spec.photo)[y0:y1, x0:x1].astype(np.float32)
    h, w = rgb.shape[:2]
    if spec.shape == "rect":
        alpha = np.ones((h, w), np.float32)
    elif spec.shape == "ellipse":
        yy, xx = np.mgrid[0:h, 0:w]
        alpha = ((((yy + 0.5) / h - 0.5) ** 2 + ((xx + 0.5) / w - 0.5) ** 2) <= 0.25).astype(np.float32)
    elif spec.shape == "alpha":
        alpha = skimage.data.logo()[y0:y1, x0:x1, 3].astype(np.float32) / 255
    else:  # silhouette: the photo's dark pixels
        alpha = (rgb.mean(2) < 128).astype(np.float32)
    pixels = np.concatenate([rgb, alpha[..., None]], axis=2)
    pixels.flags.writeable = False
    return pixels


def _forbidden(photo: str) -> list[tuple[int, int, int, int]]:
    return [spec.box for spec in INSTANCES if spec.photo == photo] + list(_KEEP_OUT.get(photo, ()))


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (h, w, C), uint8 RGB or float, resized to ``shape`` as float32 (h', w', C).

    Pillow's bilinear filter, whose support widens when shrinking (so it is anti-aliased): as
    deterministic as skimage's resize and ten times faster on these sizes, which keeps the full set
    under a minute. Float channels go one at a time in Pillow's 32-bit float mode.
    """
    from PIL import Image

    size = (int(shape[1]), int(shape[0]))
    if image.dtype == np.uint8 and image.shape[2] == 3:
        return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BILINEAR), dtype=np.float32)
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32)).resize(
        size, Image.BILINEAR)) for c in range(image.shape[2])]
    return np.stack(channels, axis=2)


def _free_crop(rng: np.random.Generator, height: int, width: int, zoom: tuple[float, float],
               max_side: int | None = None) -> np.ndarray:
    """A ``height x width`` float32 RGB crop of a random background photo, cut ``zoom`` times larger
    (at most ``max_side`` pixels high) and rescaled, clear of every instance box (never mirrored:
    mirrored text would give it away)."""
    while True:
        photo = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        image = _photo(photo)
        rx0, ry0, rx1, ry1 = _REGIONS.get(photo, (0, 0, image.shape[1], image.shape[0]))
        factor = rng.uniform(*zoom)
        ch, cw = round(height * factor), round(width * factor)
        fit = min(1.0, (ry1 - ry0) / ch, (rx1 - rx0) / cw, (max_side or ch) / ch)
        ch, cw = max(1, int(ch * fit)), max(1, int(cw * fit))
        for _ in range(10):
            top, left = int(rng.integers(ry0, ry1 - ch + 1)), int(rng.integers(rx0, rx1 - cw + 1))
            clear = all(left + cw + _MARGIN <= bx0 or bx1 + _MARGIN <= left or top + ch + _MARGIN <= by0
                        or by1 + _MARGIN <= top for bx0, by0, bx1, by1 in _forbidden(photo))
            if clear:
                return _resize(image[top:top + ch, left:left + cw], (height, width))


def _background(rng: np.random.Generator) -> np.ndarray:
    """A random crop of a real photo or texture, rescaled to (HEIGHT, WIDTH) float32, lightly jittered."""
    image = _free_crop(rng, HEIGHT, WIDTH, zoom=(0.6, 2.0), max_side=2 * HEIGHT)
    return np.clip(image * rng.uniform(0.8, 1.15) + rng.uniform(-15, 15), 0, 255)


def _render(instance: int, scale: float, angle: float, rng: np.random.Generator, jitter: float = 1.0) -> np.ndarray:
    """The instance with its longer side ``scale * HEIGHT``, rotated by ``angle`` degrees
    (counter-clockwise, the canvas growing to hold it), jittered: float32 (h, w, 4), RGB + alpha."""
    import skimage.transform

    pixels = _instance_pixels(instance)
    h, w = pixels.shape[:2]
    factor = scale * HEIGHT / max(h, w)
    patch = _resize(pixels, (max(1, round(h * factor)), max(1, round(w * factor))))
    if angle:
        patch = skimage.transform.rotate(patch, angle, resize=True, order=1, mode="constant", cval=0,
                                         preserve_range=True).astype(np.float32)
    rgb = patch[..., :3]
    mean = rgb.mean(axis=(0, 1))
    contrast = 1 + jitter * rng.uniform(-0.25, 0.25)
    brightness = jitter * rng.uniform(-25, 25)
    gain = 1 + jitter * rng.uniform(-0.1, 0.1, size=3)
    patch[..., :3] = np.clip(((rgb - mean) * contrast + mean + brightness) * gain, 0, 255)
    patch[..., 3] = np.clip(patch[..., 3], 0, 1)
    return patch


def _lines_hiding(mask: np.ndarray, fraction: float, side: str) -> int:
    """How many columns (or rows) from ``side`` hold ``fraction`` of the mask's pixels."""
    axis_sums = mask.sum(0) if side in ("left", "right") else mask.sum(1)
    if side in ("right", "bottom"):
        axis_sums = axis_sums[::-1]
    return int(np.searchsorted(np.cumsum(axis_sums), fraction * mask.sum()) + 1)


def _place(canvas: Canvas, rng: np.random.Generator, instance: int, category: str) -> int:
    """Paste ``instance`` aiming at the label ``category``: easy (large, inside, unhidden), hard
    (small, or 25-55% hidden by an occluder or the border) or junk (65-92% hidden). Returns its
    object index."""
    mode = {"easy": "clean", "junk": rng.choice(["occluded", "border"]),
            "hard": rng.choice(["small", "occluded", "border"])}[category]
    low, high = DATABASE_SCALES
    if mode == "small":
        scale = float(np.exp(rng.uniform(np.log(low), np.log(SMALL_SCALE))))
    elif category == "junk":
        scale = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    else:
        scale = float(np.exp(rng.uniform(np.log(SMALL_SCALE), np.log(high))))
    patch = _render(instance, scale, rng.uniform(-MAX_ANGLE, MAX_ANGLE), rng)
    alpha = patch[..., 3]
    h, w = alpha.shape
    top, left = int(rng.integers(0, HEIGHT - h + 1)), int(rng.integers(0, WIDTH - w + 1))
    hidden = rng.uniform(0.25, 0.55) if category == "hard" else rng.uniform(0.65, 0.92)
    side = str(rng.choice(["left", "right", "top", "bottom"]))
    if mode == "border":
        lines = _lines_hiding(alpha >= 0.5, hidden, side)
        top, left = {"left": (top, -lines), "right": (top, WIDTH - w + lines),
                     "top": (-lines, left), "bottom": (HEIGHT - h + lines, left)}[side]
    index = canvas.paste(patch[..., :3], alpha, top, left, instance, scale)
    if mode == "occluded":
        lines = _lines_hiding(alpha >= 0.5, hidden, side)
        pad_y, pad_x = (int(p) for p in rng.integers(2, 12, size=2))
        if side in ("left", "right"):
            oh, ow = h + 2 * pad_y, lines + pad_x
            otop, oleft = top - pad_y, (left - pad_x if side == "left" else left + w - lines)
        else:
            oh, ow = lines + pad_y, w + 2 * pad_x
            otop, oleft = (top - pad_y if side == "top" else top + h - lines), left - pad_x
        canvas.paste(_free_crop(rng, oh, ow, zoom=(1.0, 2.0)), np.ones((oh, ow), np.float32), otop, oleft)
    return index


def _clutter(canvas: Canvas, rng: np.random.Generator, count: int) -> None:
    """``count`` small crops of other photos (14 to 48 pixels a side) at random places."""
    for _ in range(count):
        ph, pw = (int(v) for v in rng.integers(14, 49, size=2))
        canvas.paste(_free_crop(rng, ph, pw, zoom=(1.0, 3.0)), np.ones((ph, pw), np.float32),
                     int(rng.integers(-ph // 2, HEIGHT - ph // 2)), int(rng.integers(-pw // 2, WIDTH - pw // 2)))


def _fragment(canvas: Canvas, rng: np.random.Generator, instance: int) -> None:
    """A piece of ``instance`` holding 10-30% of its mask, pasted as clutter (a junk object)."""
    scale = rng.uniform(0.15, 0.4)
    patch = _render(instance, scale, rng.uniform(-MAX_ANGLE, MAX_ANGLE), rng)
    alpha = patch[..., 3]
    h, w = alpha.shape
    mask = alpha >= 0.5
    total = int(mask.sum())
    for _ in range(20):
        fh, fw = max(1, int(h * rng.uniform(0.3, 0.6))), max(1, int(w * rng.uniform(0.3, 0.6)))
        y, x = int(rng.integers(0, h - fh + 1)), int(rng.integers(0, w - fw + 1))
        share = mask[y:y + fh, x:x + fw].sum() / max(total, 1)
        if 0.1 <= share <= 0.3:
            piece = alpha[y:y + fh, x:x + fw]
            canvas.paste(patch[y:y + fh, x:x + fw, :3], piece, int(rng.integers(0, HEIGHT - fh + 1)),
                         int(rng.integers(0, WIDTH - fw + 1)), instance, scale, full_pixels=total)
            return


def _database_image(rng: np.random.Generator, primary: int, category: str, instances: np.ndarray) -> Canvas:
    """Background, clutter, fragments, maybe a second instance, the primary one (labelled
    ``category`` for its own queries) and a little clutter on top; drawn again until the primary
    object's measured label is ``category`` (the last draws put no clutter on top)."""
    others = instances[instances != primary]
    for attempt in range(_ATTEMPTS):
        canvas = Canvas(_background(rng))
        _clutter(canvas, rng, int(rng.integers(2, 6)))
        chosen = rng.permutation(others)[: int(rng.integers(0, 4))] if len(others) else others
        for instance in chosen[1:]:
            _fragment(canvas, rng, int(instance))
        if len(chosen) and rng.random() < 0.6:
            _place(canvas, rng, int(chosen[0]), str(rng.choice(_CATEGORIES, p=[0.4, 0.4, 0.2])))
        index = _place(canvas, rng, primary, category)
        if attempt < _ATTEMPTS // 2:
            _clutter(canvas, rng, int(rng.integers(0, 3)))
        obj = canvas.objects()[index]
        if visibility_label(obj.visible, obj.scale) == category:
            return canvas
    raise RuntimeError(f"could not draw a database image where {INSTANCES[primary].name!r} is {category}")


def _query_image(rng: np.random.Generator, instance: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A clean, fully visible view of ``instance`` on a background: uint8 (H, W, 3) and its box."""
    canvas = Canvas(_background(rng))
    patch = _render(instance, rng.uniform(*QUERY_SCALES), rng.uniform(-QUERY_MAX_ANGLE, QUERY_MAX_ANGLE), rng,
                    jitter=0.5)
    h, w = patch.shape[:2]
    canvas.paste(patch[..., :3], patch[..., 3], int(rng.integers(0, HEIGHT - h + 1)),
                 int(rng.integers(0, WIDTH - w + 1)), instance, 1.0)
    return canvas.picture(), canvas.objects()[0].box


def _distractor_image(rng: np.random.Generator) -> Canvas:
    canvas = Canvas(_background(rng))
    _clutter(canvas, rng, int(rng.integers(3, 9)))
    return canvas


# -- the set --------------------------------------------------------------------------------------


def _jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _decode(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image

    images = np.empty((len(offsets) - 1, HEIGHT, WIDTH, 3), dtype=np.uint8)
    data = memoryview(blob)
    for k, (a, b) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
        images[k] = Image.open(io.BytesIO(data[a:b])).convert("RGB")
    return images


def _pack(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    blobs = [_jpeg(image) for image in images]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets


_SPLIT_CODES = {"test": 0, "train": 1}
_DATABASE, _QUERY, _DISTRACTOR, _PLAN = range(4)


def _generate(split: str, num_instances: int, queries_per_instance: int, num_images: int, seed: int,
              distractors: int) -> dict[str, np.ndarray]:
    """Draw the set; the stored arrays (images as JPEG bytes with their offsets)."""
    code = _SPLIT_CODES[split]
    plan = np.random.default_rng((seed, code, _PLAN))
    pool = np.array([k for k, spec in enumerate(INSTANCES) if spec.split == split])
    instances = np.sort(plan.permutation(pool)[:num_instances])
    rounds = [(int(i), _ROUNDS[r % len(_ROUNDS)]) for r in range(-(-num_images // num_instances))
              for i in plan.permutation(instances)]
    order = [rounds[k] for k in plan.permutation(num_images)]  # complete rounds 0 and 1: an easy and a hard each
    pictures, masks, table = [], [], []
    for k, (primary, category) in enumerate(order):
        canvas = _database_image(np.random.default_rng((seed, code, _DATABASE, k)), primary, category, instances)
        pictures.append(canvas.picture())
        masks.append(canvas.label_map())
        table += [(k, o.instance, *o.box, o.visible, o.scale) for o in canvas.objects()]
    for k in range(distractors):
        canvas = _distractor_image(np.random.default_rng((seed, code, _DISTRACTOR, k)))
        pictures.append(canvas.picture())
        masks.append(canvas.label_map())
    queries, boxes, query_instances = [], [], []
    for k, instance in enumerate(np.repeat(instances, queries_per_instance)):
        image, box = _query_image(np.random.default_rng((seed, code, _QUERY, k)), int(instance))
        queries.append(image)
        boxes.append(box)
        query_instances.append(instance)
    image_blob, image_offsets = _pack(pictures)
    query_blob, query_offsets = _pack(queries)
    table = np.array(table, dtype=np.float64).reshape(-1, 8)
    return {"image_blob": image_blob, "image_offsets": image_offsets, "query_blob": query_blob,
            "query_offsets": query_offsets, "query_boxes": np.array(boxes, dtype=np.int64).reshape(-1, 4),
            "query_instances": np.array(query_instances, dtype=np.int64), "instances": instances.astype(np.int64),
            "object_ids": table[:, :6].astype(np.int64), "object_values": table[:, 6:],
            "masks": np.stack(masks)}


def _recipe() -> str:
    """A digest of everything that decides the images, so that an edited table never meets an old cache."""
    recipe = repr((FORMAT_VERSION, HEIGHT, WIDTH, INSTANCES, BACKGROUNDS, _REGIONS, _KEEP_OUT, _MARGIN,
                   DATABASE_SCALES, QUERY_SCALES, MAX_ANGLE, QUERY_MAX_ANGLE, JPEG_QUALITY, _ROUNDS, _ATTEMPTS))
    return hashlib.sha256(recipe.encode()).hexdigest()[:10]


def _cached(path, make) -> dict[str, np.ndarray]:
    """The arrays stored at ``path`` if its sha256 matches the one beside it; else ``make()``, stored."""
    stamp = path.with_name(path.name + ".sha256")
    if path.is_file() and stamp.is_file() and sha256_of(path) == stamp.read_text().strip():
        with np.load(path) as stored:
            return {key: stored[key] for key in stored.files}
    arrays = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".part.npz")
    np.savez_compressed(partial, **arrays)
    digest = sha256_of(partial)
    partial.replace(path)  # atomic: a crash never leaves a half-written file under the real name
    stamp.write_text(digest + "\n")
    return arrays


def cache_path(split: str, num_instances: int, queries_per_instance: int, num_images: int, seed: int,
               distractors: int):
    """Where the set with these parameters is cached (its sha256 lies beside it, ``.sha256`` added)."""
    name = (f"{split}-i{num_instances}-q{queries_per_instance}-n{num_images}-d{distractors}-seed{seed}"
            f"-v{FORMAT_VERSION}-{_recipe()}.npz")
    return cache_dir() / "instance-sets" / name


def _count(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r} of type {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}; got {value}")
    return int(value)


def instance_set(split: str = "test", size: str = "fast", *, seed: int = 0, distractors: int = 0,
                 cache: bool = True, num_instances: int | None = None, queries_per_instance: int | None = None,
                 num_images: int | None = None) -> InstanceSet:
    """The instance-retrieval set (see the module's docstring), generated once and cached.

    ``size`` picks (instances, queries per instance, database images): ``"tiny"`` (3, 1, 12) for
    tests, ``"fast"`` (12, 1, 150), ``"full"`` (every instance of the split: 22 test or 19 train, 3,
    2400); ``num_instances``, ``queries_per_instance`` and ``num_images`` override it (``num_images``
    at least twice ``num_instances``: every query gets an easy and a hard positive). The instances
    are a seeded choice among the split's. ``distractors`` images without any instance are appended
    to the database. ``cache=False`` generates without reading or writing the cache.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}; got {size!r}")
    available = sum(spec.split == split for spec in INSTANCES)
    preset_instances, preset_queries, preset_images = SIZES[size]
    num_instances = _count(available if num_instances is None and preset_instances is None
                           else min(preset_instances, available) if num_instances is None else num_instances,
                           "num_instances", 1, available)
    queries_per_instance = _count(preset_queries if queries_per_instance is None else queries_per_instance,
                                  "queries_per_instance", 1)
    num_images = _count(preset_images if num_images is None else num_images, "num_images", 2 * num_instances)
    seed = _count(seed, "seed", 0)
    distractors = _count(distractors, "distractors", 0)

    def make():
        return _generate(split, num_instances, queries_per_instance, num_images, seed, distractors)

    parameters = (split, num_instances, queries_per_instance, num_images, seed, distractors)
    arrays = _cached(cache_path(*parameters), make) if cache else make()
    ids, values = arrays["object_ids"], arrays["object_values"]
    objects: list[list[Object]] = [[] for _ in range(num_images + distractors)]
    for (image, instance, x0, y0, x1, y1), (visible, scale) in zip(ids.tolist(), values.tolist()):
        objects[image].append(Object(instance, (x0, y0, x1, y1), visible, scale))
    query_instances = arrays["query_instances"]
    labels = np.array([visibility_label(v, s) for v, s in values.tolist()], dtype=object)
    gnd = []
    for instance, box in zip(query_instances.tolist(), arrays["query_boxes"]):
        shows = ids[:, 1] == instance  # an image holds each instance at most once
        gnd.append({**{c: np.sort(ids[shows & (labels == c), 0]) for c in _CATEGORIES}, "bbx": box.copy()})
    examples = "; ".join(INSTANCES[int(i)].name for i in arrays["instances"][:3])
    description = (
        f"The {split} split of an instance-retrieval stand-in built offline from scikit-image's photos: "
        f"{num_instances} objects picked by hand in real photos ({examples}; ...), pasted small, rotated, "
        f"colour-jittered and partly hidden onto crops of real photos and textures with clutter; "
        f"{num_images} database images (+{distractors} distractors) and {len(query_instances)} query views "
        f"with boxes; Revisited-style easy/hard/junk ground truth from each object's measured visible fraction "
        f"and scale. It is NOT Revisited Oxford or Paris (no buildings, one photo per object, synthetic "
        f"pastes): its mAP cannot be compared with published numbers.")
    return InstanceSet(
        name=f"skimage-instances-{split}-{size}", split=split, description=description,
        images=_decode(arrays["image_blob"], arrays["image_offsets"]),
        queries=_decode(arrays["query_blob"], arrays["query_offsets"]),
        query_boxes=arrays["query_boxes"], query_instances=query_instances, gnd=gnd, objects=objects,
        masks=arrays["masks"], instances=arrays["instances"],
        instance_names=tuple(spec.name for spec in INSTANCES))
