"""``coursekit explore`` and its apps without a browser: the command line, the apps' coverage of the explorers,
what the apps may and may not do, and the stand-ins they build. (The browser test, tests/course/test_explore_apps.py,
serves every app with Voilà, which executes it, and changes a control of every explorer.)"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from coursekit.course import apps, cli

APPS = apps.apps()


def explorer_classes() -> dict[str, list[type]]:
    """Every explorer of coursekit.explore, by the module (the lecture part) that defines it (the apps are a package
    of notebooks, never imported)."""
    import coursekit.explore
    from coursekit.explore.base import Explorer

    found: dict[str, list[type]] = {}
    for info in pkgutil.iter_modules(coursekit.explore.__path__):
        if info.ispkg:
            continue
        module = importlib.import_module(f"coursekit.explore.{info.name}")
        defined = [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, Explorer) and c is not Explorer and c.__module__ == module.__name__]
        if defined:
            found[info.name] = defined
    return found


def test_every_part_has_an_app_and_every_explorer_is_built_in_its_parts_app():
    classes = explorer_classes()
    assert set(APPS) == set(classes), "one app per module of coursekit.explore (coursekit/explore/apps/<part>.py)"
    for part, app in APPS.items():
        built = apps.explorers(app)
        missing = sorted(c.__name__ for c in classes[part] if c.__name__ not in built)
        assert not missing, f"add {missing} to the app of its part, coursekit/explore/apps/{part}.py"
        strangers = sorted(set(built) - {c.__name__ for c in classes[part]})
        assert not strangers, f"the {part} app builds {strangers}, which are not explorers of coursekit.explore.{part}"


def test_the_explorers_found_in_an_app_are_its_calls_of_explore_classes(tmp_path):
    # the coverage test above can fail: an app that only imports an explorer, or builds another part's, is caught
    source = tmp_path / "nets.py"
    source.write_text(textwrap.dedent("""\
        from coursekit.explore.nets import BackpropExplorer, GraphViewer as Viewer
        from coursekit.explore.stand_ins import digit_nets
        display(Viewer(out))
        nets = digit_nets(images, labels, permutation)
        """))
    app = apps.App("nets", "t", ("01-backprop",), source)
    assert apps.explorers(app) == ["GraphViewer"]


def test_the_apps_come_in_lecture_order_and_each_lists_the_stages_whose_explorers_it_builds():
    from coursekit import course

    assert list(APPS) == ["nets", "convolution", "retrieval", "graphs"]
    listed = [stage for app in APPS.values() for stage in app.stages]
    assert len(set(listed)) == len(listed), "a stage belongs to one part"
    classes = {c.__name__: part for part, found in explorer_classes().items() for c in found}
    root = Path(__file__).resolve().parents[1]
    for stage in course.stages(root):
        tree = ast.parse(course.source_path(root, stage).read_text())
        parts = {classes[a.name] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and (node.module or "").startswith("coursekit.explore.") for a in node.names if a.name in classes}
        for part in parts:  # a new stage's explorers: its part's app shows them, and says so in its header
            assert stage in APPS[part].stages, f"add {stage} to the stages of coursekit/explore/apps/{part}.py"
    assert all(app.title.endswith("the explorers") for app in APPS.values())


def test_an_unknown_part_exits_2_naming_the_parts(capsys):
    assert cli.main(["explore", "optics", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert "no lecture part 'optics'" in err
    for part in APPS:
        assert part in err


def test_a_part_or_a_stage_picks_its_app(capsys):
    assert [a.part for a in apps.chosen("04-mnist")] == ["convolution"]
    assert [a.part for a in apps.chosen("09")] == ["graphs"]
    assert [a.part for a in apps.chosen("retrieval")] == ["retrieval"]
    assert [a.part for a in apps.chosen(None)] == list(APPS)
    with pytest.raises(ValueError, match="no lecture part '10'"):
        apps.chosen("10")
    assert cli.main(["explore", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(APPS)
    assert "DigitBrowser" in lines[1] and "04-mnist" in lines[1]


def test_voila_gets_the_courses_settings_on_loopback_and_the_options_after_them(tmp_path):
    line = apps.command(tmp_path / "nets.ipynb", ["--port=8870", "--no-browser"])
    assert line[:4] == [sys.executable, "-m", "voila", str(tmp_path / "nets.ipynb")]
    assert "--strip_sources=True" in line and "--Voila.ip=127.0.0.1" in line
    assert line[-2:] == ["--port=8870", "--no-browser"]  # after the course's: an option given wins
    assert "--Voila.ip=127.0.0.1" not in apps.command(tmp_path, ["--Voila.ip=0.0.0.0"])
    assert apps.url(["--port=8870"]) == "http://127.0.0.1:8870/"
    assert apps.url([], "voila/render/nets.ipynb") == "http://127.0.0.1:8866/voila/render/nets.ipynb"
    assert apps.url(["--Voila.ip=0.0.0.0", "--port", "9000", "--base_url=/class/"]) == "http://localhost:9000/class/"


def test_the_app_notebooks_are_valid_and_show_nothing_but_markdown_and_explorers(tmp_path):
    written = apps.write_notebooks(list(APPS.values()), tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{part}.ipynb" for part in APPS)
    from coursekit.course import read_notebook

    for path, app in zip(written, APPS.values()):
        nb = read_notebook(path)
        assert nb.metadata.kernelspec.name == "python3"
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {app.title}")
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            body = ast.parse(cell.source).body
            last = body[-1]
            shows = isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and getattr(
                last.value.func, "id", None) == "display"
            # a bare expression at the end would print its value into the page
            assert shows or not isinstance(last, ast.Expr), f"{app.part}, cell {i}: ends with an expression"
            if shows:
                assert nb.cells[i - 1].cell_type == "markdown", f"{app.part}, cell {i}: an explorer without its words"
        assert sum("display(" in cell.source for cell in code) == len(apps.explorers(app))


DATA_LOADERS = ("load_mnist", "load_images", "load_efficientnet_lite0", "fetch", "imagenet_classes")


@pytest.mark.parametrize("part", list(APPS))
def test_an_app_reads_its_data_from_the_cache_and_never_downloads(part):
    tree = ast.parse(APPS[part].source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in DATA_LOADERS:
                download = {k.arg: k.value for k in node.keywords}.get("download")
                assert isinstance(download, ast.Constant) and download.value is False, (
                    f"{part}, line {node.lineno}: {name} must be called with download=False (the data cache only)")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(m.split(".")[0] in ("urllib", "requests", "pooch", "httpx") for m in modules), part


def test_ctrl_c_stops_voila(tmp_path):
    # _run in a process of its own, with a stand-in for Voila that records the signal it gets: a Ctrl+C (or a
    # terminate, or a hang-up) reaches it as one SIGTERM, on which Voila shuts its kernels down
    marker = tmp_path / "got"
    child = (f"import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'a').write('TERM'), "
             f"sys.exit(3))); print('up', flush=True); time.sleep(60)")
    runner = subprocess.Popen([sys.executable, "-c", f"import sys; from coursekit.course import apps; "
                               f"sys.exit(apps._run([sys.executable, '-c', {child!r}]))"],
                              stdout=subprocess.PIPE, text=True)
    assert runner.stdout.readline().strip() == "up"
    runner.send_signal(signal.SIGINT)
    assert runner.wait(timeout=20) == 3  # Voila's exit status
    assert marker.read_text() == "TERM"


def test_a_serve_writes_its_notebooks_into_a_temporary_folder_and_removes_it(monkeypatch, capsys):
    seen = {}

    def fake_run(line):
        seen["line"] = line
        seen["notebook"] = apps.Path(line[3])
        seen["existed"] = seen["notebook"].is_file()
        return 0

    monkeypatch.setattr(apps, "_run", fake_run)
    assert apps.explore("08-egm", ["--port=8899", "--no-browser"]) == 0
    assert seen["existed"] and seen["notebook"].name == "graphs.ipynb"
    assert not seen["notebook"].parent.exists()
    assert "http://127.0.0.1:8899/" in capsys.readouterr().out


# -- the stand-ins -----------------------------------------------------------------------------------


def test_digit_nets_trains_fc_and_cnn_on_each_kind_of_pixels(monkeypatch):
    import torch

    from coursekit.data import transforms
    from coursekit.explore import stand_ins
    from coursekit.nets import training

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 28, 28), generator=g).to(torch.uint8)
    labels = torch.randint(0, 10, (96,), generator=g)
    permutation = transforms.pixel_permutation(784, seed=3)
    calls, real_fit = [], training.fit

    def recording_fit(net, pixels, targets, **kwargs):
        calls.append((type(net[0]).__name__, pixels.clone(), kwargs))
        return real_fit(net, pixels, targets, **kwargs)

    monkeypatch.setattr(training, "fit", recording_fit)
    original, shuffled = stand_ins.digit_nets(images, labels, permutation, epochs=1, width=4)
    assert set(original) == set(shuffled) == {"FC", "CNN"}
    assert [name for name, _, _ in calls] == ["Flatten", "Conv2d", "Flatten", "Conv2d"]  # FC, CNN; then on shuffled pixels
    shuffled_images = transforms.permute_pixels(images, permutation)
    for (_, pixels, kwargs), expected in zip(calls, (images, images, shuffled_images, shuffled_images)):
        assert torch.equal(pixels, expected) and kwargs["quiet"] and kwargs["epochs"] == 1
    assert not any(net.training for nets in (original, shuffled) for net in nets.values())
    torch.manual_seed(123)  # the starts are seeded by digit_nets itself: the same nets again
    again, _ = stand_ins.digit_nets(images, labels, permutation, epochs=1, width=4)
    assert torch.equal(again["FC"][1].weight, original["FC"][1].weight)
    with pytest.raises(ValueError, match=r"uint8 \(N, 28, 28\)"):
        stand_ins.digit_nets(images.float(), labels, permutation)


def test_gaussian_modes_are_figure_1s_circle_of_modes_with_starts_among_the_points():
    from coursekit.explore import stand_ins

    points, starts, centres = stand_ins.gaussian_modes()
    assert points.shape == (800, 2) and starts.shape == (50, 2) and centres.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(centres - 0.5, axis=1), 0.35)
    by_mode = points.reshape(8, 100, 2)
    assert np.abs(by_mode.mean(axis=1) - centres).max() < 0.02  # 100 draws of spread 0.04: within 5 standard errors
    assert 0.03 < by_mode.std(axis=1).mean() < 0.05
    assert all((points == s).all(axis=1).any() for s in starts) and len(np.unique(starts, axis=0)) == 50
    again = stand_ins.gaussian_modes()
    assert all(np.array_equal(a, b) for a, b in zip(again, (points, starts, centres)))
    with pytest.raises(ValueError, match="starts"):
        stand_ins.gaussian_modes(modes=2, per_mode=3, starts=7)
