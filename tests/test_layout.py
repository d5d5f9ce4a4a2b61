"""The library's layout and the directions of its imports (README, "Layout").

- the lecture's parts, in lecture order: nets, convolution, retrieval, graphs; each imports only
  earlier parts, runtime and data;
- runtime imports no other coursekit module; data imports only runtime;
- grading, explore and course sit above the library: no library piece imports them;
- nothing imports course but its own CLI, the package's ``__main__`` and the tests.

Imports are read from the source with ``ast`` (those inside functions too), so a lazy import counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "coursekit"
PARTS = ("nets", "convolution", "retrieval", "graphs")  # the lecture's overview slide, in order
LAYERS = {"runtime": set(), "data": {"runtime"}}
for rank, part in enumerate(PARTS):
    LAYERS[part] = {"runtime", "data", *PARTS[: rank + 1]}
LAYERS["grading"] = {"runtime", "data", "grading", *PARTS}
LAYERS["explore"] = {"runtime", "data", "explore", *PARTS}
LAYERS["course"] = {"runtime", "data", "course", "grading", *PARTS}
LAYERS["__init__"] = {"runtime"}
LAYERS["__main__"] = {"course"}


def top_level(path: Path) -> str:
    """The part of coursekit a file belongs to: its first folder, or the module's name at the top."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "coursekit" else [f"coursekit.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "coursekit" and len(parts) > 1:
                found.add(parts[1])
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_known_part():
    unknown = {str(p.relative_to(PACKAGE)) for p in SOURCES if top_level(p) not in LAYERS}
    assert not unknown, f"place these in a part of the layout (README, 'Layout'): {sorted(unknown)}"
    assert set(LAYERS) <= {top_level(p) for p in SOURCES}, "every part of the layout has its package"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    part = top_level(path)
    wrong = imported_parts(path) - LAYERS[part] - {part}
    assert not wrong, f"{path.relative_to(PACKAGE)} ({part}) must not import coursekit.{', coursekit.'.join(sorted(wrong))}"


def test_coursekit_imports_itself_by_absolute_names_only():
    # a relative import would slip past the layer checks, which read absolute names
    relative = [f"{p.relative_to(PACKAGE)}:{node.lineno}" for p in SOURCES for node in ast.walk(ast.parse(p.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert not relative, f"use absolute imports (from coursekit.x import y): {relative}"


def test_no_library_piece_imports_grading_explore_or_course():
    for path in SOURCES:
        if top_level(path) in (*PARTS, "runtime", "data"):
            assert not imported_parts(path) & {"grading", "explore", "course"}, path


def test_only_the_cli_and_the_tests_import_course():
    importers = {str(p.relative_to(PACKAGE)) for p in SOURCES
                 if "course" in imported_parts(p) and top_level(p) != "course"}
    assert importers == {"__main__.py"}
    benchmarks = [p.name for p in PACKAGE.parent.joinpath("benchmarks").glob("*.py") if "course" in imported_parts(p)]
    assert not benchmarks, f"only the CLI and the tests may import coursekit.course: {benchmarks}"


def test_a_violation_is_caught(tmp_path):
    # the checks above can fail: a convolution module that imports a later part is refused
    bad = PACKAGE / "convolution" / "_probe.py"
    assert not bad.exists()
    source = "def f():\n    from coursekit.retrieval import mean_average_precision\n"
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert imported_parts(probe) == {"retrieval"}
    assert "retrieval" not in LAYERS["convolution"]
    assert "graphs" not in LAYERS["retrieval"] and "nets" in LAYERS["graphs"]
