"""NeuralAnnot SMPL pseudo-GT files (``MSCOCO_train_SMPL_NeuralAnnot.json``, ``MPII_train_...``).

Layout (NeuralAnnot_RELEASE ``MSCOCO/demo_smpl.py``, 3DCrowdNet ``data/MSCOCO/MSCOCO.py``;
reference-spec A.3, A.4, pitfall F.2): one JSON object keyed by ``str(annotation_id)``::

    {"<aid>": {"smpl_param": {"pose": [72], "shape": [10], "trans": [3]},
               "cam_param": {"focal": [fx, fy], "princpt": [cx, cy]}}}

The parameters are already in the camera frame of the original image (no R, t): mesh =
``SMPL(global_orient=pose[:3], body_pose=pose[3:], betas=shape, transl=trans)`` in metres, projected
with ``focal`` / ``princpt`` in original-image pixels. Not every annotation has a fit (3DCrowdNet
checks ``str(aid) in smpl_params``); a missing id is therefore not an error. Entries are parsed one by
one so that a single malformed fit skips its sample (reason naming the field) instead of the file.
``annot.io.export.read_pseudo_gt`` reads the same layout but raises on the first bad entry, and ``data``
does not import ``export``; hence this per-entry parser.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from annot.data.parsing import float_array, invalid, load_json_object, resolve_file
from annot.data.person import SmplParams

NUM_BETAS = 10


def load_smpl_file(root_path: Path, smpl_file: str | Path, dataset: str) -> dict[str, Any]:
    """Read a NeuralAnnot SMPL json (path absolute or relative to ``root_path``) into raw entries.

    Returns:
        ``{str(aid): raw entry}`` (entries are validated later by :func:`parse_smpl_entry`).

    Raises:
        FileNotFoundError: no such file (names the path and the config key ``data.smpl_file``).
        ValueError: not JSON, or the top level is not an object keyed by annotation id.
    """
    path = resolve_file(root_path, smpl_file, dataset, "NeuralAnnot SMPL file", "data.smpl_file")
    return {str(aid): entry for aid, entry in load_json_object(path).items()}


def _floats_of(section: Any, name: str, size: int) -> np.ndarray | None:
    """``section[name]`` as ``size`` finite floats, or None (missing section / field, bad values)."""
    return float_array(section.get(name) if isinstance(section, dict) else None, (size,))


def parse_smpl_param(section: Any, gender: str = "neutral") -> SmplParams | str:
    """An mks0601 ``smpl_param`` object (``pose`` 72, ``shape`` >= 10, ``trans`` 3) as :class:`SmplParams`.

    ``pose`` -> ``pose_rotvec`` (24, 3) axis-angle radians (row 0 = global orientation); ``shape`` ->
    its first 10 values as ``betas`` (3DPW stores more; mks0601 cuts them to 10, spec A.5);
    ``trans`` -> ``transl_m`` (3,) metres. Returns the skip reason ``"invalid smpl_param.<field>"``
    naming the first missing / non-finite / mis-sized field instead.
    """
    pose = _floats_of(section, "pose", 72)
    if pose is None:
        return invalid("smpl_param.pose")
    shape = section.get("shape")
    betas = float_array(shape, (len(shape),)) if isinstance(shape, list) and len(shape) >= NUM_BETAS else None
    if betas is None:
        return invalid("smpl_param.shape")
    trans = _floats_of(section, "trans", 3)
    if trans is None:
        return invalid("smpl_param.trans")
    return SmplParams(pose.reshape(24, 3), betas[:NUM_BETAS], trans, gender)


def parse_smpl_entry(raw: Any) -> tuple[SmplParams, np.ndarray, np.ndarray] | str:
    """One NeuralAnnot entry as ``(SmplParams (neutral), focal_px (2,), princpt_px (2,))``.

    ``smpl_param`` as :func:`parse_smpl_param`; ``cam_param.focal`` (positive) / ``cam_param.princpt``
    are the original-image intrinsics in pixels.

    Returns:
        the parsed tuple, or the skip reason ``"invalid smpl_param.<field>"`` /
        ``"invalid cam_param.<field>"`` naming the first bad field.
    """
    smpl = parse_smpl_param(raw.get("smpl_param") if isinstance(raw, dict) else None)
    if isinstance(smpl, str):
        return smpl
    cam = raw.get("cam_param")
    focal, princpt = _floats_of(cam, "focal", 2), _floats_of(cam, "princpt", 2)
    if focal is None or not np.all(focal > 0):
        return invalid("cam_param.focal")
    if princpt is None:
        return invalid("cam_param.princpt")
    return smpl, focal, princpt


def smpl_summary(line: str, num_without: int) -> str:
    """Append ``"; without SMPL fit: N"`` to a loader's summary line (annotations kept without a fit)."""
    return f"{line}; without SMPL fit: {num_without}"


__all__ = ["NUM_BETAS", "load_smpl_file", "parse_smpl_entry", "parse_smpl_param", "smpl_summary"]
