"""The Revisited Oxford 5k and Paris 6k benchmarks (Radenović, Iscen, Tolias, Avrithis & Chum, "Revisiting
Oxford and Paris: Large-Scale Image Retrieval Benchmarking", CVPR 2018): the real images and ground truth.

Each dataset is a ground-truth pickle and a folder of JPEG images, in the layout of revisitop's
``download.py`` (under ``root``, by default ``cache_dir() / "revisited"``)::

    root/roxford5k/gnd_roxford5k.pkl     root/rparis6k/gnd_rparis6k.pkl
    root/roxford5k/jpg/<name>.jpg        root/rparis6k/jpg/<name>.jpg

The pickle is a dict: ``imlist``, the database image names (4,993 for ROxford, 6,322 for RParis; the
queries are not among them); ``qimlist``, the 70 query image names; ``gnd``, one dict per query with
``bbx`` (the query's region ``[x0, y0, x1, y1]`` in pixels, which the protocol crops the query to) and
the database indices ``easy``, ``hard`` and ``junk`` ("unclear"). The protocols Easy, Medium and Hard
are made from them by :func:`coursekit.retrieval.evaluation.protocol`.

These are gigabytes and come from the authors' servers, so they are **opt-in**: plain
``coursekit data fetch`` never downloads them, ``coursekit data fetch roxford5k`` (or ``rparis6k``)
does, once, with internet access (:func:`fetch_revisited`). Nothing downloads at import or load time.
The ground truth comes from revisitop's data at cmp.felk.cvut.cz, the images from the Oxford VGG
group's tarballs (the face-blurred ``-v1`` versions that revisitop uses since June 2022). No checksum
is published for any of these files, so they are verified by their counts and format instead
(:func:`load_revisited`, on every load), and the pickle is read by an unpickler that builds nothing
but lists, dicts, strings, numbers and numpy arrays.

    data = load_revisited("roxford5k")
    data.image(0), data.query(0)       # uint8 RGB (H, W, 3): a database image, a query cropped to its bbx
"""

from __future__ import annotations

import codecs
import pickle
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from coursekit.data.registry import DataError, cache_dir
from coursekit.runtime import in_ci, under_grading


@dataclass(frozen=True)
class Download:
    """A file to download: its name on disk, URLs to try in turn, its sha256 where one is published."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """Where a revisited dataset comes from and how big it is."""

    description: str
    ground_truth: Download
    archives: tuple[Download, ...]  # tarballs holding the images, in folders or not
    n_images: int
    n_queries: int


_GND = "http://cmp.felk.cvut.cz/revisitop/data/datasets/{0}/gnd_{0}.pkl"
_GND_CIRTORCH = "http://cmp.felk.cvut.cz/cnnimageretrieval/data/test/{0}/gnd_{0}.pkl"  # the same file, for cirtorch
_OXFORD_VGG = "https://www.robots.ox.ac.uk/~vgg/data/"

SOURCES = {
    "roxford5k": Source(
        description="Revisited Oxford 5k: 4,993 database images and 70 queries of Oxford landmarks",
        ground_truth=Download("gnd_roxford5k.pkl", (_GND.format("roxford5k"), _GND_CIRTORCH.format("roxford5k"))),
        archives=(Download("oxbuild_images-v1.tgz", (_OXFORD_VGG + "oxbuildings/oxbuild_images-v1.tgz",)),),
        n_images=4993,
        n_queries=70,
    ),
    "rparis6k": Source(
        description="Revisited Paris 6k: 6,322 database images and 70 queries of Paris landmarks",
        ground_truth=Download("gnd_rparis6k.pkl", (_GND.format("rparis6k"), _GND_CIRTORCH.format("rparis6k"))),
        archives=(Download("paris_1-v1.tgz", (_OXFORD_VGG + "parisbuildings/paris_1-v1.tgz",)),
                  Download("paris_2-v1.tgz", (_OXFORD_VGG + "parisbuildings/paris_2-v1.tgz",))),
        n_images=6322,
        n_queries=70,
    ),
}
NAMES = tuple(SOURCES)
LABELS = ("easy", "hard", "junk")


@dataclass(frozen=True, eq=False)
class Revisited:
    """A loaded revisited dataset: the database ``images`` and the ``queries`` (paths, in the pickle's
    order), the queries' ``boxes (Q, 4)`` (x0, y0, x1, y1 in pixels, float64) and ``gnd``, one dict per
    query with ``easy``, ``hard`` and ``junk`` (int64 database indices into ``images``) and ``bbx``.
    The arrays are read-only."""

    name: str
    root: Path
    images: tuple[Path, ...]
    queries: tuple[Path, ...]
    boxes: np.ndarray
    gnd: tuple[dict, ...]

    def image(self, i: int) -> np.ndarray:
        """Database image ``i`` as uint8 RGB ``(H, W, 3)``."""
        return _read_rgb(self.images[_index(i, len(self.images), "image")])

    def query(self, i: int, crop: bool = True) -> np.ndarray:
        """Query ``i`` as uint8 RGB ``(h, w, 3)``, cropped to its bbx as the protocol asks (PIL's crop,
        which rounds the box to whole pixels, as revisitop's example does); the whole image with
        ``crop=False``."""
        i = _index(i, len(self.queries), "query")
        return _read_rgb(self.queries[i], tuple(self.boxes[i]) if crop else None)


def _index(i, n: int, what: str) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n:
        raise IndexError(f"{what} index must be an integer in [0, {n}); got {i!r}")
    return int(i) % n


def _read_rgb(path: Path, box: tuple[float, ...] | None = None) -> np.ndarray:
    from PIL import Image, ImageFile

    # as revisitop's and cirtorch's loaders do: a truncated JPEG is decoded as far as it goes (the flag
    # is PIL's global; it is put back at once)
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except OSError as err:
        raise DataError(f"{path} cannot be read as an image ({err}): delete it and fetch the dataset again") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before
    if box is not None:
        rgb = rgb.crop(box)
    return np.array(rgb, dtype=np.uint8)


# -- reading and checking the ground truth ------------------------------------------------------------


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"name must be one of {NAMES}; got {name!r}")
    return SOURCES[name]


def _root(root) -> Path:
    return cache_dir() / "revisited" if root is None else Path(root).expanduser()


def _what_to_do(name: str, folder: Path) -> str:
    return (f"What to do: run `coursekit data fetch {name}` once with internet access (gigabytes of images), or put "
            f"gnd_{name}.pkl and the jpg/ folder of revisitop's download.py into {folder}.")


def _numpy_globals() -> dict:
    """The globals a pickle of numpy arrays names, as numpy 1 and numpy 2 write them: (module, name) -> object."""
    reconstruct = np.zeros(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    # protocol 2 writes bytes (an array's data) as _codecs.encode(text, "latin1"), b"" as __builtin__.bytes()
    found = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode,
             ("__builtin__", "bytes"): bytes, ("builtins", "bytes"): bytes}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(module, "_reconstruct")] = reconstruct
        found[(module, "scalar")] = scalar
    from_buffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 rebuilds an array from its buffer
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        found[(module, "_frombuffer")] = from_buffer
    return found


class _GroundTruthUnpickler(pickle.Unpickler):
    """Builds lists, dicts, strings, numbers and numpy arrays, nothing else: a pickle can run any code
    it names, and no checksum vouches for this one."""

    def __init__(self, file):
        super().__init__(file)
        self.allowed = _numpy_globals()

    def find_class(self, module, name):
        found = self.allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a ground-truth file has no use for")
        return found


def _ids(values, where: str, n_images: int) -> np.ndarray:
    ids = np.asarray(values)
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"{where} must be a list of integer database indices; got {ids.dtype} of shape {ids.shape}")
    if ids.min() < 0 or ids.max() >= n_images:
        raise DataError(f"{where} must index the {n_images} database images; it holds indices from {ids.min()} "
                        f"to {ids.max()}")
    if len(np.unique(ids)) != len(ids):
        raise DataError(f"{where} lists a database index more than once")
    return ids.astype(np.int64)


def _box(values, where: str) -> np.ndarray:
    try:
        box = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        box = np.zeros(0)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise DataError(f"{where} must be 4 finite numbers [x0, y0, x1, y1]; got {values!r}")
    if not (box[0] < box[2] and box[1] < box[3]):
        raise DataError(f"{where} must have x0 < x1 and y0 < y1; got {box.tolist()}")
    return box


def _names(values, key: str, count: int, path: Path) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise DataError(f"{path}: '{key}' must be a list of image names (strings)")
    if len(values) != count:
        raise DataError(f"{path}: '{key}' should list {count} images; it lists {len(values)}")
    if len(set(values)) != len(values):
        raise DataError(f"{path}: '{key}' lists an image more than once")
    return tuple(values)


def _read_ground_truth(source: Source, path: Path) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray, tuple]:
    """The image names, query names, boxes and per-query labels of a gnd pickle, after checking them all."""
    try:
        with open(path, "rb") as f:
            data = _GroundTruthUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
            KeyError, MemoryError) as err:
        raise DataError(f"{path} is not a readable ground-truth pickle: {err}") from None
    if not isinstance(data, dict) or not {"imlist", "qimlist", "gnd"} <= set(data):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path} must hold a dict with 'imlist', 'qimlist' and 'gnd'; it holds {keys}")
    images = _names(data["imlist"], "imlist", source.n_images, path)
    queries = _names(data["qimlist"], "qimlist", source.n_queries, path)
    gnd = data["gnd"]
    if not isinstance(gnd, (list, tuple)) or len(gnd) != len(queries):
        raise DataError(f"{path}: 'gnd' must be a list with one dict per query ({len(queries)}); got "
                        f"{len(gnd) if isinstance(gnd, (list, tuple)) else type(gnd).__name__}")
    boxes, labels = [], []
    for i, g in enumerate(gnd):
        where = f"{path}: gnd[{i}]"
        missing = [key for key in ("bbx", *LABELS) if not isinstance(g, dict) or key not in g]
        if missing:
            raise DataError(f"{where} must be a dict with 'bbx', 'easy', 'hard' and 'junk'; {missing} missing")
        ids = {key: _ids(g[key], f"{where}['{key}']", len(images)) for key in LABELS}
        for a, b in (("easy", "hard"), ("easy", "junk"), ("hard", "junk")):
            shared = np.intersect1d(ids[a], ids[b])
            if shared.size:
                raise DataError(f"{where}: '{a}' and '{b}' must be disjoint; both hold {shared[:5].tolist()}")
        box = _box(g["bbx"], f"{where}['bbx']")
        for array in (*ids.values(), box):
            array.setflags(write=False)
        boxes.append(box)
        labels.append({**ids, "bbx": box})
    boxes = np.stack(boxes) if boxes else np.zeros((0, 4))
    boxes.setflags(write=False)
    return images, queries, boxes, tuple(labels)


def _absent(folder: Path, names) -> list[str]:
    return [n for n in names if not (folder / f"{n}.jpg").is_file()]


def load_revisited(name: str, root=None) -> Revisited:
    """The revisited dataset ``name`` (``"roxford5k"`` or ``"rparis6k"``) from ``root`` (default
    ``cache_dir() / "revisited"``), after checking its ground truth (the counts of database images and
    queries, every index in range, easy, hard and junk disjoint for each query, each bbx four numbers
    with x0 < x1 and y0 < y1) and that every image file is present. Images are decoded only when asked
    for (:meth:`Revisited.image`, :meth:`Revisited.query`). Raises :class:`DataError` saying what is
    wrong and what to do."""
    source = _source(name)
    root = _root(root)
    folder = root / name
    path = folder / source.ground_truth.name
    if not path.is_file():
        raise DataError(f"the {name} ground truth {path} is missing.\n" + _what_to_do(name, folder))
    try:
        images, queries, boxes, gnd = _read_ground_truth(source, path)
    except DataError as err:
        raise DataError(f"{err}\nThe file is damaged or not the {name} ground truth: delete it. "
                        + _what_to_do(name, folder)) from None
    jpg = folder / "jpg"
    absent = _absent(jpg, (*images, *queries))
    if absent:
        raise DataError(f"{len(absent)} of the {len(images) + len(queries)} {name} images are missing from {jpg} "
                        f"(e.g. {absent[0]}.jpg).\n" + _what_to_do(name, folder))
    return Revisited(name, root, tuple(jpg / f"{n}.jpg" for n in images), tuple(jpg / f"{n}.jpg" for n in queries),
                     boxes, gnd)


# -- fetching ----------------------------------------------------------------------------------


def _show_progress() -> bool:
    return not (under_grading() or in_ci())


def _download(file: Download, folder: Path, name: str) -> Path:
    import pooch

    pooch.get_logger().setLevel("WARNING")  # its "Downloading ..." lines go to stderr
    failures = []
    for url in file.urls:
        try:
            downloader = pooch.HTTPDownloader(progressbar=_show_progress(), timeout=60)
            known = None if file.sha256 is None else f"sha256:{file.sha256}"
            return Path(pooch.retrieve(url, known_hash=known, fname=file.name, path=folder, downloader=downloader))
        except Exception as err:  # noqa: BLE001 - every failure is reported together below
            failures.append(f"{url}: {type(err).__name__}: {err}")
    raise DataError(f"could not download {file.name} of {name}:\n  " + "\n  ".join(failures) + "\n"
                    + _what_to_do(name, folder))


def _extract_images(archive: Path, jpg: Path, wanted: set[str]) -> int:
    """Write the archive's JPEGs whose names are ``wanted`` into ``jpg`` (flat, whatever folders they sit
    in inside the archive, as revisitop's download.py does); the others are skipped (Paris's tarballs
    hold images that no list uses). Each file appears under its name only once complete."""
    written = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            stem, dot, ext = PurePosixPath(member.name).name.rpartition(".")
            if not member.isfile() or not dot or ext.lower() != "jpg" or stem not in wanted:
                continue
            target = jpg / f"{stem}.jpg"
            partial = jpg / f"{stem}.jpg.part"
            with tar.extractfile(member) as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            partial.replace(target)
            written += 1
    return written


def fetch_revisited(name: str, root=None) -> Revisited:
    """Download the revisited dataset ``name`` into ``root`` (default ``cache_dir() / "revisited"``) and
    return it loaded. Needs internet access and, while an archive is unpacked, room for it and its images.

    The ground-truth pickle comes first (from revisitop's server, or cirtorch's copy), then, unless
    every image is there already, each image tarball, downloaded with pooch (a progress bar), unpacked
    into ``jpg/`` (the listed images only, flat) and deleted. A file with a published sha256 is checked
    against it; as no checksum is published for these datasets, the result is verified by its counts
    and format instead: :func:`load_revisited` checks the ground truth and that every listed image is
    present. A complete dataset is returned without any download; a damaged ground-truth file is
    replaced. Never called at import or test time: ``coursekit data fetch roxford5k`` calls it.
    """
    source = _source(name)
    root = _root(root)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.ground_truth.name
    try:
        images, queries, _, _ = _read_ground_truth(source, path)
    except (DataError, FileNotFoundError):
        path.unlink(missing_ok=True)
        _download(source.ground_truth, folder, name)
        try:
            images, queries, _, _ = _read_ground_truth(source, path)
        except DataError as err:
            path.unlink()
            raise DataError(f"the downloaded {path.name} is not a valid {name} ground truth: {err}") from None
    jpg = folder / "jpg"
    wanted = set(_absent(jpg, (*images, *queries)))
    if wanted:
        jpg.mkdir(exist_ok=True)
        for archive in source.archives:
            downloaded = _download(archive, folder, name)
            if _show_progress():
                print(f"coursekit: unpacking {archive.name} into {jpg} ...", flush=True)
            try:
                _extract_images(downloaded, jpg, wanted)
            except (tarfile.TarError, EOFError, OSError) as err:
                downloaded.unlink(missing_ok=True)
                raise DataError(f"{archive.name} could not be unpacked ({err}); it was deleted: run "
                                f"`coursekit data fetch {name}` again") from None
            downloaded.unlink()
    return load_revisited(name, root)

