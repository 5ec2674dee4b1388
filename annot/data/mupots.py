"""MuPoTS-3D in the mks0601 COCO-style layout as a ``torch.utils.data.Dataset`` of ``Sample`` crops.

Layout (3DCrowdNet ``data/MuPoTs/MuPoTs.py``, 3DMPPE PoseNet ``data/MuPoTS/``; reference-spec A.6)::

    <root>/MuPoTS-3D.json                              (root = data/MuPoTs/data)
    <root>/MultiPersonTestSet/TS<n>/img_%06d.jpg

``images[i]``: ``id, file_name ('TS<n>/img_<frame>.jpg'), width, height, intrinsic [fx, fy, cx, cy]``
(pixels). ``annotations[j]``: ``id, image_id, is_valid, bbox`` (x, y, w, h), ``keypoints_cam`` (17 x 3,
camera frame, **millimetres**), ``keypoints_img`` (17 x 2, pixels), ``keypoints_vis`` (17).

What the loader takes: native convention ``mupots17`` (root Pelvis); 3D joints = ``keypoints_cam``
/ 1000 (metres); 2D keypoints = ``keypoints_img`` with validity ``keypoints_vis > 0``; all 17 3D joints
valid; the real camera = ``intrinsic``. No SMPL. An evaluation set: no augmentation by default.
Annotations with ``is_valid == 0`` are skipped (as 3DCrowdNet does), with every other unusable one,
each with its reason. The official MATLAB evaluation reads ``TS<n>/annot.mat``, not this json.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from annot.data.augment import AugmentConfig
from annot.data.parsing import (
    SKIP_BOX_OUTSIDE,
    SKIP_DEGENERATE_BOX,
    box_outside,
    check_image_size,
    coco_index,
    collect,
    float_array,
    image_of,
    image_problem,
    image_size,
    invalid,
    load_coco_json,
    resolve_dir,
    resolve_file,
    resolve_root,
)
from annot.data.person import PersonCropDataset, PersonRecord
from annot.data.registry import register

NUM_JOINTS = 17
MM_PER_M = 1000.0
SKIP_NOT_VALID = "is_valid == 0"


def _intrinsic(img: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | str:
    """``(focal_px (2,), princpt_px (2,))`` from ``intrinsic [fx, fy, cx, cy]``, or the skip reason."""
    values = float_array(img.get("intrinsic"), (4,))
    if values is None or not np.all(values[:2] > 0):
        return invalid("intrinsic")
    return values[:2], values[2:]


@register("mupots")
class MuPoTS(PersonCropDataset):
    """MuPoTS-3D person crops with 3D joints (mm in the file, metres here) and the real camera.

    Args:
        root: folder holding ``MuPoTS-3D.json`` and ``MultiPersonTestSet/`` (config key ``data.root``;
            mks0601 layout ``data/MuPoTs/data``).
        ann_file: the json, absolute or relative to ``root`` (``data.ann_file``).
        img_dir: image folder relative to ``root`` (``data.img_dir``).
        input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset` (``augment=None``: no augmentation).

    Attributes:
        records: kept persons; ``kp2d_img_px`` (17, 2) = ``keypoints_img``, ``kp2d_valid`` =
            ``keypoints_vis > 0``, ``joints_cam_m`` (17, 3) metres, camera = ``intrinsic``.
        skipped: ``{annotation id: reason}``: "is_valid == 0", "invalid intrinsic", "invalid bbox",
            "invalid keypoints_cam" / "invalid keypoints_img" / "invalid keypoints_vis" (missing,
            non-finite or not 17 joints), "box outside image", "degenerate box", "missing image file",
            "unreadable image".

    Raises:
        FileNotFoundError: missing root, json or image folder (names the path and the config key).
        ValueError: malformed json as a whole (not JSON, no 'images' / 'annotations' list, an entry
            without 'id', a repeated id, an 'image_id' with no image, an image without 'file_name' /
            'height' / 'width'); the message names file, id and field.
    """

    name = "mupots"
    native_convention = "mupots17"

    def __init__(
        self,
        root: str | Path,
        ann_file: str = "MuPoTS-3D.json",
        img_dir: str = "MultiPersonTestSet",
        input_hw: tuple[int, int] = (256, 192),
        convention: str | None = None,
        augment: AugmentConfig | None = None,
        bbox_scale: float = 1.25,
        seed: int = 0,
        body_model_type: str = "free",
        body_model_path: str | None = None,
    ) -> None:
        super().__init__(input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path)
        self.root = resolve_root(root, "MuPoTS-3D")
        self.ann_path = resolve_file(self.root, ann_file, "MuPoTS-3D", "annotation file", "data.ann_file")
        self.image_dir = resolve_dir(self.root, img_dir, "MuPoTS-3D", "image folder", "data.img_dir")
        data = load_coco_json(self.ann_path)
        coco, cache = coco_index(data), {}
        self._set_records(*collect(data["annotations"], lambda ann: self._parse(ann, coco, cache)))

    def _joints(self, ann: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
        """``(joints_cam_m (17, 3), kp_img_px (17, 2), vis (17,) bool)`` or the skip reason."""
        joints_mm = float_array(ann.get("keypoints_cam"), (NUM_JOINTS, 3))
        if joints_mm is None:
            return invalid("keypoints_cam")
        kp = float_array(ann.get("keypoints_img"), (NUM_JOINTS, 2))
        if kp is None:
            return invalid("keypoints_img")
        vis = float_array(ann.get("keypoints_vis"), (NUM_JOINTS,))
        if vis is None:
            return invalid("keypoints_vis")
        return joints_mm / MM_PER_M, kp, vis > 0

    def _parse(self, ann: dict[str, Any], coco: COCO, cache: dict[Path, str | None]) -> PersonRecord | str:
        """A record for a usable annotation, else its skip reason."""
        img = image_of(self.ann_path, coco, ann)
        img_hw = image_size(self.ann_path, img)
        if not ann.get("is_valid", 1):
            return SKIP_NOT_VALID
        camera = _intrinsic(img)
        if isinstance(camera, str):
            return camera
        bbox = float_array(ann.get("bbox"), (4,))
        if bbox is None:
            return invalid("bbox")
        joints = self._joints(ann)
        if isinstance(joints, str):
            return joints
        if box_outside(bbox, img_hw):
            return SKIP_BOX_OUTSIDE
        box = self.process_box(bbox, img_hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        image_path = (self.image_dir / img["file_name"]).absolute()
        problem = image_problem(image_path, cache)
        if problem is not None:
            return problem
        joints_m, kp, vis = joints
        return PersonRecord(str(ann["id"]), image_path, img_hw, box, kp, vis, joints_m,
                            np.ones(NUM_JOINTS, bool), None, camera[0], camera[1])

    def read_image(self, record: PersonRecord) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)``; ValueError naming file and sample id when undecodable or its size
        differs from the json."""
        return check_image_size(super().read_image(record), record, self.ann_path)


__all__ = ["MM_PER_M", "MuPoTS"]
