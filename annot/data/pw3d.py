"""3DPW in the mks0601 COCO-style layout as a ``torch.utils.data.Dataset`` of ``Sample`` crops.

Layout (Hand4Whole branch Pose2Pose ``data/PW3D/PW3D.py``, generator I2L-MeshNet
``tool/3DPW/3dpw2coco.py``; reference-spec A.5)::

    <root>/3DPW_{train,validation,test}.json          (root = data/PW3D/data)
    <root>/imageFiles/<sequence>/<file_name>           (file_name = image_%05d.jpg)

``images[i]``: ``id, file_name, sequence, frame_idx, width, height, cam_param {focal [fx, fy],
princpt [cx, cy]}`` (pixels). ``annotations[j]``: ``id, image_id, person_id, bbox`` (x, y, w, h of the
projected joints x1.2), ``joint_cam`` (24 x 3 SMPL joints, camera frame, metres), ``joint_img``
(24 x 2), ``fitted_joint_cam``, ``openpose_result`` (18 x 3, OpenPose-18) and ``smpl_param {pose 72,
shape, trans 3, gender}``, already in the camera frame (the generator merged the camera pose).

What the loader takes: native convention ``smpl24``; 3D joints = ``joint_cam``; 2D keypoints =
``joint_cam`` projected with the image's ``cam_param`` (``x = X / Z * f + c``), so 2D, 3D and camera
agree exactly; ``joint_img``, ``fitted_joint_cam`` and ``openpose_result`` are not read.
``record.smpl`` is the gendered GT fit (betas cut to 10) and the record carries the real camera.
Persons with no projected joint inside the image are skipped (spec A.5), with every other unusable
annotation, each with its reason. All annotations of the json are used (no frame sampling).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from annot.data.augment import AugmentConfig
from annot.data.neuralannot import parse_smpl_param
from annot.data.parsing import (
    SKIP_DEGENERATE_BOX,
    SKIP_NO_JOINT_INSIDE,
    box_problem,
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

SPLITS = ("train", "validation", "test")
NUM_JOINTS = 24
GENDERS = ("male", "female", "neutral")
MIN_DEPTH_M = 1e-3


def _camera(img: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | str:
    """``(focal_px (2,), princpt_px (2,))`` of a 3DPW image entry, or the skip reason."""
    cam = img.get("cam_param")
    cam = cam if isinstance(cam, dict) else {}
    focal, princpt = float_array(cam.get("focal"), (2,)), float_array(cam.get("princpt"), (2,))
    if focal is None or not np.all(focal > 0):
        return invalid("cam_param.focal")
    if princpt is None:
        return invalid("cam_param.princpt")
    return focal, princpt


def project_joints(
    joints_cam_m: np.ndarray, focal_px: np.ndarray, princpt_px: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection ``(J, 3)`` camera metres -> ``(J, 2)`` pixels and a ``(J,)`` bool mask of the
    joints in front of the camera (``Z > 1 mm``); joints behind it get pixel coordinates 0."""
    front = joints_cam_m[:, 2] > MIN_DEPTH_M
    kp = np.zeros((len(joints_cam_m), 2))
    kp[front] = joints_cam_m[front, :2] / joints_cam_m[front, 2:3] * focal_px + princpt_px
    return kp, front


def inside_image(kp_px: np.ndarray, valid: np.ndarray, img_hw: tuple[int, int]) -> np.ndarray:
    """(J,) bool: valid keypoints with ``0 <= x < W`` and ``0 <= y < H`` (pixels)."""
    in_x = (kp_px[:, 0] >= 0) & (kp_px[:, 0] < img_hw[1])
    return valid & in_x & (kp_px[:, 1] >= 0) & (kp_px[:, 1] < img_hw[0])


@register("3dpw")
class PW3D(PersonCropDataset):
    """3DPW person crops with GT SMPL, 3D joints and the real camera; items are ``Sample`` dicts.

    Args:
        root: the folder holding ``3DPW_<split>.json`` and ``imageFiles/`` (config key ``data.root``;
            mks0601 layout ``data/PW3D/data``).
        split: ``"train"``, ``"validation"`` or ``"test"`` (``data.split``); selects ``3DPW_<split>.json``.
        ann_file: explicit json instead of the split's (absolute or relative to ``root``; ``data.ann_file``).
        img_dir: image folder relative to ``root`` (``data.img_dir``), holding ``<sequence>/<file_name>``.
        input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset` (no augmentation by default).

    Attributes:
        records: kept persons; ``kp2d_img_px`` (24, 2) projected ``joint_cam``, ``joints_cam_m``
            (24, 3) metres, ``smpl`` gendered, ``cam_focal_px`` / ``cam_princpt_px`` the image camera.
        skipped: ``{annotation id: reason}``: "invalid cam_param.focal" / "invalid cam_param.princpt",
            "invalid bbox", "invalid joint_cam" (not 24 x 3 finite numbers), "invalid smpl_param.<field>",
            "invalid smpl_param.gender", "no joint inside the image", "box outside image",
            "degenerate box", "missing image file", "unreadable image".

    Raises:
        FileNotFoundError: missing root, json or image folder (names the path and the config key).
        ValueError: unknown split; malformed json as a whole (not JSON, no 'images' / 'annotations'
            list, an entry without 'id', a repeated id, an 'image_id' with no image, an image without
            'file_name' / 'sequence' / 'height' / 'width'); the message names file, id and field.
    """

    name = "3dpw"
    native_convention = "smpl24"
    eval_gt = "smpl_mesh"  # mks0601 PW3D.evaluate: GT = the gendered SMPL mesh

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        ann_file: str | None = None,
        img_dir: str = "imageFiles",
        input_hw: tuple[int, int] = (256, 192),
        convention: str | None = None,
        augment: AugmentConfig | None = None,
        bbox_scale: float = 1.25,
        seed: int = 0,
        body_model_type: str = "free",
        body_model_path: str | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"3DPW: unknown split {split!r} (config key data.split); known: {SPLITS}")
        super().__init__(input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path)
        self.split = split
        self.root = resolve_root(root, "3DPW")
        self.ann_path = resolve_file(self.root, ann_file or f"3DPW_{split}.json", "3DPW", "annotation file",
                                     "data.ann_file" if ann_file else "data.split")
        self.image_dir = resolve_dir(self.root, img_dir, "3DPW", "image folder", "data.img_dir")
        data = load_coco_json(self.ann_path)
        coco, cache = coco_index(data), {}
        self._set_records(*collect(data["annotations"], lambda ann: self._parse(ann, coco, cache)))

    def _parse(self, ann: dict[str, Any], coco: COCO, cache: dict[Path, str | None]) -> PersonRecord | str:
        """A record for a usable annotation, else its skip reason."""
        img = image_of(self.ann_path, coco, ann)
        img_hw = image_size(self.ann_path, img, ("file_name", "sequence"))
        camera = _camera(img)
        if isinstance(camera, str):
            return camera
        bbox = float_array(ann.get("bbox"), (4,))
        if bbox is None:
            return invalid("bbox", ann.get("bbox"), (4,))
        joints = float_array(ann.get("joint_cam"), (NUM_JOINTS, 3))
        if joints is None:
            return invalid("joint_cam", ann.get("joint_cam"), (NUM_JOINTS, 3))
        smpl_raw = ann.get("smpl_param")
        gender = smpl_raw.get("gender") if isinstance(smpl_raw, dict) else None
        smpl = parse_smpl_param(smpl_raw, gender if gender in GENDERS else "neutral")
        if isinstance(smpl, str):
            return smpl
        if gender not in GENDERS:
            return invalid("smpl_param.gender")
        kp, front = project_joints(joints, *camera)
        if not inside_image(kp, front, img_hw).any():
            return SKIP_NO_JOINT_INSIDE
        if (problem := box_problem(bbox, img_hw)) is not None:
            return problem
        box = self.process_box(bbox, img_hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        image_path = (self.image_dir / str(img["sequence"]) / img["file_name"]).absolute()
        problem = image_problem(image_path, cache)
        if problem is not None:
            return problem
        return PersonRecord(str(ann["id"]), image_path, img_hw, box, kp, front, joints,
                            np.ones(NUM_JOINTS, bool), smpl, camera[0], camera[1])

    def read_image(self, record: PersonRecord) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)``; ValueError naming file and sample id when undecodable or its size
        differs from the json."""
        return check_image_size(super().read_image(record), record, self.ann_path)


__all__ = ["PW3D", "SPLITS", "inside_image", "project_joints"]
