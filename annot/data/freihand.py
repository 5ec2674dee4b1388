"""FreiHAND (training set) in its released layout as ``Sample`` hand crops with 3D joints and MANO fits.

FreiHAND v2 (Zimmermann et al., "FreiHAND", ICCV 2019; lmb-freiburg/freihand ``utils/fh_utils.py``
``load_db_annotation`` / ``projectPoints``) ships, under one folder::

    training_xyz.json     N x 21 x 3   3D joints, camera frame, metres, order freihand21 (wrist, thumb 1-4, ...)
    training_K.json       N x 3 x 3    intrinsics (pixels); uv = K @ xyz, divided by z
    training_mano.json    N x 1 x 61   MANO: 48 pose (axis-angle, global first, full, not PCA), 10 shape, 3 trans
    training_scale.json   N            length of the index finger's MCP-PIP bone (metres)
    training/rgb/%08d.jpg 4N images    224 x 224; image v * N + i shows sample i (v = 0 green screen, 1-3
                                       backgrounds composited: 'hom', 'sample', 'auto')

The loader keeps the sample ``i`` of every requested version ``v`` (``versions``); sample id = the image
number ``"%08d" % (v * N + i)``. Per-sample checks skip with a counted reason: "invalid xyz (<what>)",
"invalid K (<what>)" (not a 3 x 3 finite matrix, or ``fx``, ``fy`` <= 0), "invalid mano (<what>)",
"joint behind the camera" (``z <= 0``), "missing image file", "unreadable image (no decodable header)".
Files of different lengths are a file error.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annot.data.augment import AugmentConfig
from annot.data.parsing import (
    SKIP_DEGENERATE_BOX,
    array_problem,
    resolve_dir,
    resolve_file,
    resolve_root,
)
from annot.data.person import PersonCropDataset, PersonRecord
from annot.data.registry import register
from annot.data.robust import image_status

FILES = {"xyz": "training_xyz.json", "K": "training_K.json", "mano": "training_mano.json",
         "scale": "training_scale.json"}
IMAGE_DIR = "training/rgb"
NUM_VERSIONS = 4
NATIVE_CONVENTION = "freihand21"
SKIP_BEHIND_CAMERA = "joint behind the camera"


@dataclass(frozen=True)
class ManoParams:
    """A MANO fit: ``pose_rotvec`` (16, 3) axis-angle radians (row 0 global rotation, then the 15 finger
    joints in MANO order), ``betas`` (10,), ``transl_m`` (3,) metres, in the frame of the camera."""

    pose_rotvec: np.ndarray
    betas: np.ndarray
    transl_m: np.ndarray


def load_json_list(path: Path) -> list:
    """A JSON file whose top level must be a list; ValueError naming the file otherwise."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, list):
        raise ValueError(f"{path}: top level must be a JSON list, got {type(data).__name__}")
    return data


def box_of_points(points_px: np.ndarray, margin: float = 1.2) -> np.ndarray:
    """``(x, y, w, h)`` pixels of the box of ``points_px`` (N, 2), enlarged ``margin`` times about its centre."""
    lo, hi = points_px.min(0), points_px.max(0)
    centre, size = (lo + hi) / 2, (hi - lo) * margin
    return np.array([*(centre - size / 2), *size])


@register("freihand")
class FreiHAND(PersonCropDataset):
    """FreiHAND training crops (module docstring); items are :class:`annot.data.sample.Sample`.

    Args:
        root: the folder with the four ``training_*.json`` and ``training/rgb/`` (config key ``data.root``).
        versions: which of the 4 image versions to use (default ``(0,)``, the green-screen originals).
        input_hw: crop (H, W) pixels (default 256 x 256).
        bbox_scale: enlargement of the x1.2 box of the projected joints by ``process_bbox``.
        seed, convention, augment: see :class:`annot.data.person.PersonCropDataset`; the output convention
            defaults to ``hand21`` (FreiHAND's own order under another name).

    Attributes:
        records, skipped: kept samples and ``{sample_id: reason}``.
        mano: ``{sample_id: ManoParams}``; bone_scale_m: ``{sample_id: index MCP-PIP length (m)}``.

    Raises:
        FileNotFoundError: missing root, json or image folder (naming the path and ``data.root``).
        ValueError: a json that is not a list, or files of different lengths (naming the files).
    """

    name = "freihand"
    native_convention = NATIVE_CONVENTION

    def __init__(self, root: str | Path, versions: tuple[int, ...] = (0,), input_hw: tuple[int, int] = (256, 256),
                 bbox_scale: float = 1.25, seed: int = 0, convention: str | None = "hand21",
                 augment: AugmentConfig | None = None) -> None:
        super().__init__(input_hw, convention, augment, bbox_scale, seed)
        bad = [v for v in versions if v not in range(NUM_VERSIONS)]
        if bad:
            raise ValueError(f"FreiHAND: versions must be in 0..{NUM_VERSIONS - 1}, got {bad} "
                             "(config key data.versions)")
        self.root = resolve_root(root, "FreiHAND")
        paths = {k: resolve_file(self.root, f, "FreiHAND", f"file {f}", "data.root") for k, f in FILES.items()}
        self.image_dir = resolve_dir(self.root, IMAGE_DIR, "FreiHAND", "image folder", "data.root")
        data = {k: load_json_list(p) for k, p in paths.items()}
        lengths = {FILES[k]: len(v) for k, v in data.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"FreiHAND {self.root}: files of different lengths {lengths}")
        self.num_samples = len(data["xyz"])
        self.mano: dict[str, ManoParams] = {}
        self.bone_scale_m: dict[str, float] = {}
        records, skipped = [], {}
        for version in versions:
            for i in range(self.num_samples):
                sid = f"{version * self.num_samples + i:08d}"
                out = self._parse(sid, *(data[k][i] for k in ("xyz", "K", "mano", "scale")))
                if isinstance(out, str):
                    skipped[sid] = out
                else:
                    records.append(out)
        self._set_records(records, skipped)

    def _parse(self, sid: str, xyz, k_matrix, mano, scale) -> PersonRecord | str:
        """The record of one sample, or its skip reason."""
        for field, value, shape in (("xyz", xyz, (21, 3)), ("K", k_matrix, (3, 3)), ("mano", mano, (61,)),
                                    ("scale", scale, (1,))):
            if (why := array_problem(value, shape)) is not None:
                return f"invalid {field} ({why})"
        joints = np.asarray(xyz, dtype=np.float64).reshape(21, 3)
        k_mat = np.asarray(k_matrix, dtype=np.float64).reshape(3, 3)
        if k_mat[0, 0] <= 0 or k_mat[1, 1] <= 0:
            return "invalid K (focal <= 0)"
        if (joints[:, 2] <= 0).any():
            return SKIP_BEHIND_CAMERA
        uv = (joints @ k_mat.T)[:, :2] / joints[:, 2:3]
        image_path = (self.image_dir / f"{sid}.jpg").absolute()
        status = image_status(image_path)
        if status.problem is not None or status.hw is None:
            return status.problem or "missing image file"
        box = self.process_box(box_of_points(uv), status.hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        params = np.asarray(mano, dtype=np.float64).reshape(61)
        self.mano[sid] = ManoParams(params[:48].reshape(16, 3), params[48:58], params[58:61])
        self.bone_scale_m[sid] = float(np.asarray(scale, dtype=np.float64).reshape(-1)[0])
        return PersonRecord(sid, image_path, status.hw, box, uv, np.ones(21, dtype=bool), joints,
                            np.ones(21, dtype=bool), cam_focal_px=np.array([k_mat[0, 0], k_mat[1, 1]]),
                            cam_princpt_px=np.array([k_mat[0, 2], k_mat[1, 2]]))


__all__ = ["FILES", "FreiHAND", "IMAGE_DIR", "ManoParams", "box_of_points", "load_json_list"]
