"""The house's rules (issue #14): lower rooms never import higher ones, no file imports a moved path, no module
of ``annot`` is over ~600 lines.

The import direction is written once, here, as data (:data:`LAYERS`); README.md's "Layout" section describes
the same rooms in words. The test reads every module of ``annot/`` and ``estimators/`` with ``ast`` (imports
inside functions count too) and fails on each upward import with its file and line.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from annot._moved import MOVED

REPO = Path(__file__).resolve().parents[1]

#: Rooms from the bottom up. A module may import its own room and the rooms of *lower* layers; rooms of one layer
#: never import each other. A room is a package or module path; a module belongs to the longest room that
#: prefixes it (``annot.benchmarks.synthetic`` is its own room, below the rest of ``annot.benchmarks``).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("annot._moved",),  # the table of moved paths
    ("annot", "annot.app", "annot.config"),  # the package root; error boundary, errors, threads; config machinery
    ("annot.geometry", "annot.keypoints", "annot.optim"),  # maths, keypoint conventions, the optimiser
    ("annot.io",),  # pseudo-GT files, atomic writes
    ("annot.body_models",),
    ("annot.data", "annot.nets", "annot.priors", "annot.metrics", "annot.render"),
    ("annot.fitting", "annot.training"),  # SMPLify / EFT baselines; Lightning callbacks and loggers
    ("annot.annotator", "annot.benchmarks.synthetic", "estimators"),  # f and Algorithm 1; data generator; g
    ("annot.hands",),  # the hand annotator: f_hand, the free auxiliary hand set, Algorithm 1 for hands
    ("annot.wholebody",),  # SMPL-X pseudo-GTs: the body of Algorithm 1, face and hand fits, integration
    ("annot.pretrain",),  # the free 2D-pose backbone, trained on the synthetic renders
    ("annot.benchmarks",),  # quality, throughput, threads
)
#: (importer, imported) room prefixes forbidden whatever the layers say: estimators import annot, never the reverse...
FORBIDDEN: tuple[tuple[str, str], ...] = (("annot", "estimators"),)
#: ... except the top room, the benchmarks: the two-stage benchmark trains estimators g on each annotator's pseudo-GTs.
EXEMPT: tuple[tuple[str, str], ...] = (("annot.benchmarks", "estimators"),)
#: Line budget of a module of annot/ (issue #14: "no module over ~600 lines except where the README says why").
MAX_LINES = 620
#: path -> why it may be longer (README.md, "Layout", says the same). Empty: none is.
LONG_MODULES: dict[str, str] = {}

LAYER_OF = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of annot/ and estimators/."""
    found = {}
    for top in ("annot", "estimators"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def room_of(module: str) -> str | None:
    """The longest room of :data:`LAYERS` that holds ``module`` (the package root ``annot`` holds only itself)."""
    best = None
    for room in LAYER_OF:
        inside = module == room or (room != "annot" and module.startswith(room + "."))
        if inside and (best is None or len(room) > len(best)):
            best = room
    return best


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every project import in ``path``, at any depth (lazy imports count)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from annot import app` imports the module annot.app
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES or sub in MOVED else target))
    return [(line, name) for line, name in found if name.split(".")[0] in ("annot", "estimators")]


def test_every_module_has_a_room_and_every_room_exists():
    homeless = [m for m in MODULES if room_of(m) is None]
    assert not homeless, f"modules in no room of LAYERS (add them to a room): {homeless}"
    empty = [room for room in LAYER_OF if room not in MODULES]
    assert not empty, f"rooms of LAYERS with no module: {empty}"


def test_lower_rooms_never_import_higher_ones():
    problems = []
    for module, path in MODULES.items():
        room = room_of(module)
        for line, imported in imports_of(module, path):
            target = room_of(imported)
            if target is None or target == room:
                continue
            where = f"{path.relative_to(REPO)}:{line}: {module} ({room}, layer {LAYER_OF[room]}) imports {imported}"
            if LAYER_OF[target] >= LAYER_OF[room]:
                problems.append(f"{where} ({target}, layer {LAYER_OF[target]})")
            elif any(room.startswith(a) and target.startswith(b) for a, b in FORBIDDEN) and not any(
                    room == a and target.startswith(b) for a, b in EXEMPT):
                problems.append(f"{where}: forbidden")
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_rule_catches_an_upward_import(tmp_path):
    """The walk itself: a lazy import of the annotator inside annot.data is reported with its line."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from annot.annotator.module import AnnotatorModule\n    from . import crop\n")
    found = imports_of("annot.data.bad", bad)
    assert found == [(2, "annot.annotator.module"), (3, "annot.data.crop")]
    assert LAYER_OF[room_of(found[0][1])] > LAYER_OF[room_of("annot.data.bad")]


def test_no_file_imports_a_moved_path():
    files = {**{m: p for m, p in MODULES.items()},
             **{f"tools.{p.stem}": p for p in (REPO / "tools").glob("*.py")},
             **{f"tests.{p.stem}": p for p in (REPO / "tests").glob("*.py")}}
    stale = [f"{path.relative_to(REPO)}:{line}: {name} ({MOVED[name]})"
             for module, path in files.items() for line, name in imports_of(module, path) if name in MOVED]
    assert not stale, "imports of moved paths:\n" + "\n".join(stale)


@pytest.mark.parametrize("path", sorted(p for p in MODULES.values() if p.is_relative_to(REPO / "annot")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_module_size(path):
    lines = len(path.read_text().splitlines())
    rel = str(path.relative_to(REPO))
    assert lines <= MAX_LINES or rel in LONG_MODULES, (
        f"{rel}: {lines} lines > {MAX_LINES}: split it by concept (or list it in LONG_MODULES and README.md, with why)")


def _readme_tree() -> set[str]:
    """Paths of the tree in README.md's "Layout" section: ``name/`` opens a folder at its indent, the words after it
    (and on indented continuation lines) are its files; ``fixtures/`` style entries name a folder."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Layout"):]
    block = section[section.index("```\n") + 4:]
    block = block[:block.index("```")]
    paths, stack = set(), []  # stack of (indent, folder)
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        words = line.split()
        if indent >= 16 and stack:  # continuation of the folder above
            folder, entries = stack[-1][1], words
        else:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            head = words[0]
            parent = stack[-1][1] if stack else ""
            if head.endswith("/"):
                folder = parent + head
                stack.append((indent, folder))
                paths.add(folder)
                entries = words[1:]
            else:
                paths.add(parent + head)
                continue
        paths.update(folder + w for w in entries)
    return paths


def test_readme_layout_is_the_tree_on_disk():
    shown = _readme_tree()
    on_disk = {"annot/", "estimators/"}
    for top in ("annot", "estimators"):
        for path in (REPO / top).rglob("*"):
            rel = path.relative_to(REPO)
            if "__pycache__" in rel.parts or path.name == "__init__.py":
                continue
            if rel.parts[:3] == ("annot", "data", "fixtures") and len(rel.parts) > 3:
                continue  # shown as the folder data/fixtures/
            on_disk.add(str(rel) + ("/" if path.is_dir() else ""))
    assert sorted(shown - on_disk) == [], "README.md's Layout shows what is not on disk"
    assert sorted(on_disk - shown) == [], "on disk but not in README.md's Layout"
