"""Shared pytest fixtures: synthetic SMPL-format body models (no licensed files, no chumpy).

Fixtures
--------
``make_tiny_smpl_dict``  factory ``(num_vertices=6890, num_betas=10, seed=0, posedirs_scale=0.0,
                         vertex_ids=None, free_extras=False, dtype=np.float32) -> dict``.
``tiny_smpl_dict``       one such dict (6890 vertices, so spec A.7's SMPL vertex ids are in range).
``tiny_smpl_file``       that dict pickled at ``tmp_path/body_models/smpl/SMPL_NEUTRAL.pkl``
                         (smplx layout; ``tmp_path/body_models`` works as a ``BODY_MODELS_DIR``).
``write_chumpy_pickle``  ``(model_dict, path, protocol=2) -> path``: pickles like an official SMPL file.
``chumpy_smpl_dict``     float64 reference dict (with small random posedirs) behind ``chumpy_smpl_file``.
``chumpy_smpl_file``     ``tmp_path/chumpy_models/smpl/SMPL_NEUTRAL.pkl`` in the official SMPL style.

The synthetic model is random but valid: 24 joints with the SMPL kinematic tree around a rough
T-pose skeleton (metres, Y up), vertices scattered around the joints, skinning weights a softmax
over joint distance (rows sum to 1), ``J_regressor`` rows convex combinations of nearby vertices
(rows sum to 1), random ``shapedirs``, ``posedirs`` zero unless asked, random triangles.

How the chumpy emulation works (see mattloper/chumpy ``chumpy/ch.py``): ``Ch`` has no
``__reduce__``; default pickling applies, with ``Ch.__getstate__`` returning the instance
``__dict__`` minus ``_parents`` / ``_cache``. A leaf ``Ch(array)`` thus pickles as
``GLOBAL chumpy.ch Ch`` + ``NEWOBJ`` + ``BUILD {'x': float64 array, '_dirty_vars': set(),
'_itr': None, '_make_dense': False, '_make_sparse': False, '_depends_on_deps': {}}``. We pickle
instances of a local class whose ``__module__`` / ``__qualname__`` are ``chumpy.ch`` / ``Ch`` (fake
``chumpy`` modules sit in ``sys.modules`` only while pickling, so pickle can verify the global),
with that state. ``J_regressor`` is a ``scipy.sparse.csc_matrix`` as in the official files, and the
protocol-2 module names are rewritten to their Python 2 era spellings (``numpy.core.multiarray``,
``scipy.sparse.csc``).
"""

from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before numpy / torch load: OpenMP reads its environment once (annot/app/runtime.py)

import contextlib
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
#: Rough SMPL T-pose joint positions (metres, Y up, subject's left = +X), SMPL-24 order.
REST_JOINTS_M = np.array([
    [0.00, 0.00, 0.00], [0.06, -0.09, 0.00], [-0.06, -0.09, 0.00], [0.00, 0.11, -0.02],
    [0.10, -0.47, 0.00], [-0.10, -0.47, 0.00], [0.00, 0.25, 0.00], [0.09, -0.87, -0.04],
    [-0.09, -0.87, -0.04], [0.00, 0.30, 0.02], [0.11, -0.93, 0.08], [-0.11, -0.93, 0.08],
    [0.00, 0.51, -0.01], [0.07, 0.42, 0.00], [-0.07, 0.42, 0.00], [0.00, 0.58, 0.04],
    [0.17, 0.45, -0.01], [-0.17, 0.45, -0.01], [0.43, 0.43, -0.03], [-0.43, 0.43, -0.03],
    [0.68, 0.43, -0.03], [-0.68, 0.43, -0.03], [0.76, 0.42, -0.04], [-0.76, 0.42, -0.04],
])
SMPLX_VERTEX_ID_KEYS = ("nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel",
                        "RBigToe", "RSmallToe", "RHeel", "lthumb", "lindex", "lmiddle", "lring",
                        "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky")
ROOT_PARENT_UINT32 = 4294967295  # how the official files store the root's parent


def _convex_rows(rng: np.random.Generator, num_rows: int, num_verts: int, k: int = 8) -> np.ndarray:
    """(num_rows, num_verts) non-negative rows with k random non-zeros each, rows summing to 1."""
    rows = np.zeros((num_rows, num_verts))
    for r in range(num_rows):
        cols = rng.choice(num_verts, size=k, replace=False)
        rows[r, cols] = rng.dirichlet(np.ones(k))
    return rows


def build_tiny_smpl_dict(
    num_vertices: int = 6890,
    num_betas: int = 10,
    seed: int = 0,
    posedirs_scale: float = 0.0,
    vertex_ids: bool | None = None,
    free_extras: bool = False,
    dtype: Any = np.float32,
) -> dict[str, Any]:
    """Random-but-valid SMPL-format model dict (see the module docstring).

    ``vertex_ids`` (smplx extra-joint vertices) are added when asked, or by default when
    ``num_vertices != 6890``; ``free_extras`` adds the free model's extra fields
    (``coco_regressor`` (23, V), ``h36m_regressor`` (17, V), ``vertex_ids``, ``joint_names``,
    ``provenance``).
    """
    rng = np.random.default_rng(seed)
    owner = np.arange(num_vertices) % 24
    v_template = REST_JOINTS_M[owner] + rng.normal(0.0, 0.04, (num_vertices, 3))
    sq_dist = ((v_template[:, None, :] - REST_JOINTS_M[None]) ** 2).sum(-1)
    logits = -sq_dist / (2 * 0.05**2)
    weights = np.exp(logits - logits.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    j_regressor = np.zeros((24, num_vertices))
    for joint in range(24):
        cols = rng.choice(np.flatnonzero(owner == joint), size=8, replace=False)
        j_regressor[joint, cols] = rng.dirichlet(np.ones(8))
    kintree = np.array([SMPL_PARENTS, list(range(24))], dtype=np.int64)
    kintree[0, 0] = ROOT_PARENT_UINT32
    model = {
        "v_template": v_template.astype(dtype),
        "f": rng.integers(0, num_vertices, (2 * num_vertices, 3)).astype(np.uint32),
        "J_regressor": j_regressor.astype(dtype),
        "weights": weights.astype(dtype),
        "posedirs": (posedirs_scale * rng.normal(size=(num_vertices, 3, 207))).astype(dtype),
        "shapedirs": rng.normal(0.0, 0.01, (num_vertices, 3, num_betas)).astype(dtype),
        "kintree_table": kintree,
    }
    if vertex_ids or free_extras or (vertex_ids is None and num_vertices != 6890):
        picks = rng.choice(num_vertices, size=len(SMPLX_VERTEX_ID_KEYS), replace=False)
        model["vertex_ids"] = {key: int(v) for key, v in zip(SMPLX_VERTEX_ID_KEYS, picks)}
    if free_extras:
        model["coco_regressor"] = _convex_rows(rng, 23, num_vertices).astype(np.float32)
        model["h36m_regressor"] = _convex_rows(rng, 17, num_vertices).astype(np.float32)
        model["joint_names"] = [f"joint_{i}" for i in range(24)]
        model["provenance"] = {"source": "tests/conftest.py synthetic model", "seed": seed}
    return model


@pytest.fixture
def make_tiny_smpl_dict() -> Callable[..., dict[str, Any]]:
    """Factory building synthetic SMPL-format dicts (see :func:`build_tiny_smpl_dict`)."""
    return build_tiny_smpl_dict


@pytest.fixture
def tiny_smpl_dict() -> dict[str, Any]:
    """A 6890-vertex synthetic SMPL-format dict, float32, zero posedirs, no vertex_ids."""
    return build_tiny_smpl_dict()


@pytest.fixture
def tiny_smpl_file(tmp_path: Path, tiny_smpl_dict: dict[str, Any]) -> Path:
    """``tiny_smpl_dict`` pickled (plain Python 3 pickle) at tmp_path/body_models/smpl/SMPL_NEUTRAL.pkl."""
    path = tmp_path / "body_models" / "smpl" / "SMPL_NEUTRAL.pkl"
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        pickle.dump(tiny_smpl_dict, handle)
    return path


class FakeCh:
    """Pickles exactly like a leaf ``chumpy.ch.Ch`` (default reduce + chumpy's ``__getstate__``)."""

    def __init__(self, x: Any) -> None:
        self.__dict__.update({"_dirty_vars": set(), "_itr": None, "_make_dense": False,
                              "_make_sparse": False, "_depends_on_deps": {},
                              "x": np.asarray(x, np.float64)})

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)


class FakeSelect(FakeCh):
    """Pickles like a derived ``chumpy.reordering.Select`` expression (operands, no ``x``)."""

    def __init__(self, a: FakeCh, idxs: np.ndarray) -> None:
        self.__dict__.update({"_dirty_vars": set(), "_itr": None, "_make_dense": False,
                              "_make_sparse": False, "_depends_on_deps": {}, "a": a,
                              "idxs": np.asarray(idxs), "preferred_shape": np.asarray(idxs).shape})


FakeCh.__module__, FakeCh.__qualname__, FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
FakeSelect.__module__ = "chumpy.reordering"
FakeSelect.__qualname__ = FakeSelect.__name__ = "Select"


@contextlib.contextmanager
def _fake_chumpy_modules() -> Iterator[None]:
    """Register fake ``chumpy`` modules only while pickling, so pickle can look the classes up."""
    names = {"chumpy": {}, "chumpy.ch": {"Ch": FakeCh}, "chumpy.reordering": {"Select": FakeSelect}}
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name, attrs in names.items():
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


PY2_MODULE_NAMES = {b"cnumpy._core.multiarray\n": b"cnumpy.core.multiarray\n",
                    b"cscipy.sparse._csc\n": b"cscipy.sparse.csc\n"}


def write_chumpy_pickle_file(model_dict: dict[str, Any], path: Path, protocol: int = 2) -> Path:
    """Write ``model_dict`` the way the official SMPL pkl stores it.

    ``v_template``, ``shapedirs``, ``posedirs``, ``weights`` become leaf ``chumpy.ch.Ch`` objects,
    ``J_regressor`` a ``scipy.sparse.csc_matrix``; ``J`` (24, 3) is added as a ``Ch``; any value that
    is already a Fake chumpy object is kept (to test derived expressions). Protocol 0 or 2.
    """
    official = dict(model_dict)
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        if not isinstance(official[key], FakeCh):
            official[key] = FakeCh(official[key])
    regressor = np.asarray(model_dict["J_regressor"], np.float64)
    official["J_regressor"] = scipy.sparse.csc_matrix(regressor)
    official["J"] = FakeCh(regressor @ np.asarray(model_dict["v_template"], np.float64))
    official.update({"bs_style": "lbs", "bs_type": "lrotmin"})
    with _fake_chumpy_modules():
        data = pickle.dumps(official, protocol=protocol)
    if protocol == 2:  # GLOBAL opcodes are newline-terminated text: safe to rename in place
        for new, old in PY2_MODULE_NAMES.items():
            data = data.replace(new, old)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def write_chumpy_pickle() -> Callable[..., Path]:
    """``write_chumpy_pickle(model_dict, path, protocol=2) -> path`` (official SMPL pickle style)."""
    return write_chumpy_pickle_file


@pytest.fixture
def chumpy_smpl_dict() -> dict[str, Any]:
    """float64 reference dict behind ``chumpy_smpl_file`` (small random posedirs, as real SMPL)."""
    return build_tiny_smpl_dict(seed=1, posedirs_scale=1e-3, dtype=np.float64)


@pytest.fixture
def chumpy_smpl_file(tmp_path: Path, chumpy_smpl_dict: dict[str, Any]) -> Path:
    """An official-style chumpy SMPL pickle at tmp_path/chumpy_models/smpl/SMPL_NEUTRAL.pkl."""
    return write_chumpy_pickle_file(
        chumpy_smpl_dict, tmp_path / "chumpy_models" / "smpl" / "SMPL_NEUTRAL.pkl"
    )
