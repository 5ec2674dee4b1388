"""SMPL-X pseudo-GTs in the NeuralAnnot whole-body release layout (``MSCOCO_train_SMPLX_all_NeuralAnnot.json``),
with atomic writes and a validating reader.

Layout, keyed by ``str(annotation_id)``, as mks0601 Hand4Whole_RELEASE reads it (``data/MSCOCO/MSCOCO.py``
``smplx_param['smplx_param']`` / ``smplx_param['cam_param']``, ``common/utils/preprocessing.py``
``process_human_model_output``)::

    {"<aid>": {"smplx_param": {"root_pose": [3], "body_pose": [63], "lhand_pose": [45], "rhand_pose": [45],
                               "jaw_pose": [3], "shape": [10], "expr": [10], "trans": [3],
                               "lhand_valid": bool, "rhand_valid": bool, "face_valid": bool},
               "cam_param": {"focal": [fx, fy], "princpt": [cx, cy]},
               "quality": {...}}}

Axis-angle in radians; hand poses relative to SMPL-X's ``hands_mean`` (Hand4Whole's layer:
``use_pca=False``, ``flat_hand_mean=False``); ``trans`` the SMPL-X ``transl`` in metres; all in the camera
frame of the original image (OpenCV axes) whose intrinsics are ``cam_param`` (pixels). Hand4Whole reads
``lhand_pose`` / ``rhand_pose`` only where ``*_valid`` is true and ``jaw_pose`` + ``expr`` only where
``face_valid`` is (zeros otherwise); the flags say which parts were fitted. ``quality`` is our addition
(per-part 2D errors in pixels and flags; readers of the release layout ignore it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annot.io.export import _floats, read_json_object, write_pseudo_gt

#: ``smplx_param`` numeric fields and their lengths (the release keys).
SMPLX_FIELDS: dict[str, int] = {"root_pose": 3, "body_pose": 63, "lhand_pose": 45, "rhand_pose": 45, "jaw_pose": 3,
                                "shape": 10, "expr": 10, "trans": 3}
VALID_FLAGS = ("lhand_valid", "rhand_valid", "face_valid")
CAM_FIELDS: dict[str, int] = {"focal": 2, "princpt": 2}


@dataclass(frozen=True)
class SmplxPseudoGT:
    """One SMPL-X pseudo-GT, original-image camera frame.

    Attributes:
        params: ``{field: (n,) float array}`` for every key of :data:`SMPLX_FIELDS` (radians, metres).
        valid: ``{"lhand_valid" | "rhand_valid" | "face_valid": bool}``.
        focal_px, princpt_px: (2,) original-image intrinsics, pixels.
        quality: per-part quality numbers (may be empty).
    """

    params: dict[str, np.ndarray]
    valid: dict[str, bool]
    focal_px: np.ndarray
    princpt_px: np.ndarray
    quality: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The release per-annotation dict (plus ``quality``)."""
        smplx_param: dict[str, Any] = {k: _floats(self.params[k]) for k in SMPLX_FIELDS}
        smplx_param.update({k: bool(self.valid[k]) for k in VALID_FLAGS})
        return {"smplx_param": smplx_param,
                "cam_param": {"focal": _floats(self.focal_px), "princpt": _floats(self.princpt_px)},
                "quality": {k: float(v) for k, v in self.quality.items()}}


def parse_smplx_entry(path: Path, aid: str, raw: Any) -> SmplxPseudoGT:
    """Validate one release-layout entry ``raw`` of file ``path`` (annotation ``aid``).

    Raises:
        ValueError: a field is missing, not numeric, of the wrong length or non-finite, or a validity flag is
            not a boolean (the message names the file, the annotation id and the field).
    """
    def field(group: str, name: str, want: int) -> np.ndarray:
        try:
            values = np.asarray(raw[group][name], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: annotation {aid}: field {group}.{name} missing or not numeric ({err})") from None
        if values.shape != (want,):
            raise ValueError(f"{path}: annotation {aid}: field {group}.{name} has shape {values.shape}, "
                             f"expected ({want},)")
        if not np.isfinite(values).all():
            raise ValueError(f"{path}: annotation {aid}: field {group}.{name} has non-finite values")
        return values

    params = {k: field("smplx_param", k, n) for k, n in SMPLX_FIELDS.items()}
    valid = {}
    for flag in VALID_FLAGS:
        value = raw["smplx_param"].get(flag)
        if not isinstance(value, bool):
            raise ValueError(f"{path}: annotation {aid}: field smplx_param.{flag} must be true or false, got {value!r}")
        valid[flag] = value
    return SmplxPseudoGT(params, valid, field("cam_param", "focal", 2), field("cam_param", "princpt", 2),
                         {k: float(v) for k, v in (raw.get("quality") or {}).items()})


def write_smplx_pseudo_gt(path: str | Path, entries: dict[str, SmplxPseudoGT]) -> None:
    """Write ``{aid: entry}`` in the release layout, atomically, keys sorted numerically."""
    write_pseudo_gt(path, entries)


def read_smplx_pseudo_gt(path: str | Path) -> dict[str, SmplxPseudoGT]:
    """Read a whole-body release-layout JSON (ours or the official one).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a JSON object, or an entry lacks / malforms a field (names file, annotation id, field).
    """
    path = Path(path)
    return {str(aid): parse_smplx_entry(path, str(aid), e) for aid, e in read_json_object(path).items()}


__all__ = ["CAM_FIELDS", "SMPLX_FIELDS", "SmplxPseudoGT", "VALID_FLAGS", "parse_smplx_entry", "read_smplx_pseudo_gt",
           "write_smplx_pseudo_gt"]
