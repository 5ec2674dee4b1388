"""The 0.1 layout's import paths (annot/_moved.py): each fails naming its new place, and each new place exists."""
from __future__ import annotations

import importlib

import pytest

import annot
from annot import _moved
from annot._moved import MOVED, MovedModuleFinder

#: old paths whose new place is not in this checkout yet (the module arrives with its branch's merge)
PENDING = {"annot.bench_two_stage"}


def _is_name(old: str) -> bool:
    """``module.name`` entries (a name that left a module that stays) vs moved modules."""
    parent, _, _ = old.rpartition(".")
    try:
        importlib.import_module(parent)
    except ImportError:
        return False
    return parent != "annot"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_fails_naming_the_new_one(old):
    new = MOVED[old].split()[0]
    if _is_name(old):
        module, _, name = old.rpartition(".")
        with pytest.raises(ImportError, match=f"{old} moved to {new}"):
            exec(f"from {module} import {name}", {})
    else:
        with pytest.raises(ModuleNotFoundError, match=f"{old} moved to {new}"):
            importlib.import_module(old)
        parent, _, child = old.rpartition(".")
        with pytest.raises(ImportError, match=f"{old} moved to {new}"):
            exec(f"from {parent} import {child}", {})


@pytest.mark.parametrize("old", sorted(set(MOVED) - PENDING))
def test_new_path_exists(old):
    words = [w.strip("(),;:") for w in MOVED[old].split()]
    for new in [w for w in words if w.startswith("annot.")]:
        try:
            importlib.import_module(new)
        except ImportError:
            module, _, name = new.rpartition(".")
            assert hasattr(importlib.import_module(module), name), f"{old} -> {new}: no such module or name"


def test_a_real_module_at_an_old_path_wins(monkeypatch):
    monkeypatch.setitem(MOVED, "annot.render", "somewhere.else")
    assert MovedModuleFinder().find_spec("annot.render", annot.__path__) is None
    with pytest.raises(ModuleNotFoundError, match="annot.not_there moved to somewhere.else"):
        monkeypatch.setitem(MOVED, "annot.not_there", "somewhere.else")
        MovedModuleFinder().find_spec("annot.not_there", annot.__path__)


def test_finder_is_installed_once_before_the_path_finder():
    import importlib.machinery
    import sys

    _moved.install()
    ours = [i for i, f in enumerate(sys.meta_path) if isinstance(f, MovedModuleFinder)]
    assert len(ours) == 1 and ours[0] < sys.meta_path.index(importlib.machinery.PathFinder)


def test_other_missing_names_stay_attribute_errors():
    import annot.config

    assert not hasattr(annot.config, "NoSuchThing")
    assert annot.config.load_config is not None
