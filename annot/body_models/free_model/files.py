"""The baked file: validation of its keys and shapes, reading, checking and atomic writing.
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from annot.body_models.free_model.names import (
    KINTREE_ROOT_PARENT,
    LICENCE_NOTE,
    REQUIRED_KEYS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    SMPLX_VERTEX_ID_NAMES,
)
from annot.io.atomic import atomic_write


def validate_model_dict(model_dict: Mapping[str, Any]) -> list[str]:
    """Problems with a free-model dict (empty list = valid).

    Checks the contract keys, shapes (V vertices, F faces, 24 joints, 10 betas, 207 pose
    coefficients), float32 dtypes, finite values, rows of ``weights`` / ``J_regressor`` /
    ``coco_regressor`` / ``h36m_regressor`` summing to 1 (1e-3), face and vertex-id ranges, and the
    kintree.
    """
    missing = [key for key in REQUIRED_KEYS if key not in model_dict]
    if missing:
        return [f"missing keys {missing}"]
    problems = []
    v_template = np.asarray(model_dict["v_template"])
    num_vertices = v_template.shape[0] if v_template.ndim == 2 else -1
    expected = {
        "v_template": (num_vertices, 3), "J_regressor": (24, num_vertices),
        "weights": (num_vertices, 24), "posedirs": (num_vertices, 3, 207),
        "shapedirs": (num_vertices, 3, 10), "kintree_table": (2, 24),
        "coco_regressor": (23, num_vertices), "h36m_regressor": (17, num_vertices),
    }
    for key, shape in expected.items():
        array = np.asarray(model_dict[key])
        if array.shape != shape:
            problems.append(f"{key} has shape {array.shape}, expected {shape}")
        elif key != "kintree_table":
            if array.dtype != np.float32:
                problems.append(f"{key} is {array.dtype}, expected float32")
            if not np.all(np.isfinite(array)):
                problems.append(f"{key} has non-finite values")
    faces = np.asarray(model_dict["f"])
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        problems.append(f"f has shape {faces.shape} / dtype {faces.dtype}, expected (F, 3) int")
    elif faces.min() < 0 or faces.max() >= num_vertices:
        problems.append("f indexes vertices out of range")
    for key, axis in (("weights", 1), ("J_regressor", 1), ("coco_regressor", 1),
                      ("h36m_regressor", 1)):
        array = np.asarray(model_dict[key], dtype=np.float64)
        if array.ndim == 2 and not np.allclose(array.sum(axis=axis), 1.0, atol=1e-3):
            problems.append(f"rows of {key} do not sum to 1")
    kintree = np.asarray(model_dict["kintree_table"])
    if kintree.shape == (2, 24) and (
        list(kintree[0, 1:]) != list(SMPL_PARENTS[1:]) or int(kintree[0, 0]) != KINTREE_ROOT_PARENT
    ):
        problems.append("kintree_table parents differ from SMPL's")
    ids = model_dict["vertex_ids"]
    if not isinstance(ids, Mapping) or set(ids) != set(SMPLX_VERTEX_ID_NAMES):
        problems.append("vertex_ids must map exactly the smplx extra-joint names")
    elif any(not 0 <= int(i) < num_vertices for i in ids.values()):
        problems.append("vertex_ids out of range")
    if list(model_dict["joint_names"]) != list(SMPL_JOINT_NAMES):
        problems.append("joint_names differ from SMPL-24")
    if LICENCE_NOTE not in str(model_dict["provenance"].get("licence", "")):
        problems.append("provenance lacks the licence note")
    return problems


def load_free_model_file(path: str | Path) -> dict[str, Any]:
    """Read a baked free-model pickle (plain pickle: numpy arrays and builtins only).

    Raises:
        FileNotFoundError: if ``path`` does not exist;
        ValueError: if it cannot be unpickled or is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"free body model file not found: {path}")
    try:
        with path.open("rb") as handle:
            data = pickle.load(handle, encoding="latin1")
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"cannot read free body model {path}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"free body model {path} holds a {type(data).__name__}, not a dict")
    return data


def check_free_model_file(path: str | Path) -> list[str]:
    """Problems with the file at ``path`` (empty list = present and valid)."""
    try:
        return validate_model_dict(load_free_model_file(path))
    except (FileNotFoundError, ValueError) as err:
        return [str(err)]


def save_free_model_file(model_dict: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``model_dict`` as a pickle (protocol 4) atomically (:func:`annot.io.atomic.atomic_write`:
    readers never see a half-written file). Creates the parent folders. Returns the path."""
    return atomic_write(path, lambda handle: pickle.dump(dict(model_dict), handle, protocol=4))
