"""MPII Human Pose in the mks0601 COCO-style layout as a ``torch.utils.data.Dataset`` of ``Sample`` crops.

Layout (Hand4Whole branch Pose2Pose ``data/MPII/MPII.py``, I2L-MeshNet ``data/MPII/MPII.py``,
NeuralAnnot_RELEASE ``MPII/demo_smpl.py``; reference-spec A.4)::

    <root>/annotations/train.json                           (root = data/MPII/data)
    <root>/annotations/MPII_train_SMPL_NeuralAnnot.json     (optional)
    <root>/<file_name>                                      (file_name = images/<name>.jpg)

``train.json`` is COCO format with ``keypoints`` = 16 x (x, y, v) in the MPII order (convention
``mpii16``), ``joint_valid = v``. The image path is the data folder joined with the image's
``file_name`` (mks0601 ``osp.join(img_path, img['file_name'])``). The NeuralAnnot file has the COCO
schema ``{aid: {smpl_param, cam_param}}`` (:mod:`annot.data.neuralannot`).

Filters: ``iscrowd`` and ``num_keypoints == 0`` (I2L-MeshNet), boxes outside the image or degenerate
(``process_bbox``), missing image files; per-annotation field problems skip the sample with a reason.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from annot.data.augment import AugmentConfig
from annot.data.neuralannot import load_smpl_file, parse_smpl_entry, smpl_summary
from annot.data.parsing import (
    SKIP_DEGENERATE_BOX,
    SKIP_ISCROWD,
    SKIP_NO_KEYPOINTS,
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

NUM_JOINTS = 16
SKIP_NO_SMPL_ENTRY = "no SMPL entry"


@register("mpii")
class MPII(PersonCropDataset):
    """MPII person crops (2D keypoints, optional NeuralAnnot SMPL pseudo-GT); items are ``Sample`` dicts.

    Args:
        root: the MPII data folder (config key ``data.root``; mks0601 layout ``data/MPII/data``).
        ann_file: COCO-format json, absolute or relative to ``root`` (``data.ann_file``).
        img_dir: folder that the images' ``file_name`` is relative to, relative to ``root``
            (``data.img_dir``; "" = ``root``, as mks0601).
        smpl_file: optional NeuralAnnot SMPL json, absolute or relative to ``root`` (``data.smpl_file``;
            e.g. ``annotations/MPII_train_SMPL_NeuralAnnot.json``). Annotation ids the file does not have
            are never an error (not every MPII annotation has a NeuralAnnot fit).
        require_smpl: with ``smpl_file``, skip annotations without a fit (reason "no SMPL entry",
            counted) instead of keeping them without SMPL (``data.require_smpl``; default False).
        input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset`.

    Attributes:
        records: kept persons (``kp2d_img_px`` (16, 2) pixels, ``kp2d_valid`` = ``v > 0``; with
            ``smpl_file`` the fit and its camera, or ``None`` when the file has no entry).
        skipped: ``{annotation id: reason}``: "iscrowd", "invalid keypoints" (not 16 x 3 finite
            numbers), "no keypoints", "invalid bbox", "box outside image", "degenerate box",
            "no SMPL entry" (``require_smpl``),
            "invalid smpl_param.<field>" / "invalid cam_param.<field>", "missing image file",
            "unreadable image".
        without_smpl: ids kept without an SMPL fit (counted in :meth:`summary`).

    Raises:
        FileNotFoundError: missing root, json, image folder or SMPL file (names path and config key).
        ValueError: malformed json as a whole (not JSON, no 'images' / 'annotations' list, an entry
            without 'id', a repeated id, an 'image_id' with no image, an image without 'file_name' /
            'height' / 'width'); the message names file, id and field.
    """

    name = "mpii"
    native_convention = "mpii16"

    def __init__(
        self,
        root: str | Path,
        ann_file: str = "annotations/train.json",
        img_dir: str = "",
        smpl_file: str | None = None,
        require_smpl: bool = False,
        input_hw: tuple[int, int] = (256, 192),
        convention: str | None = None,
        augment: AugmentConfig | None = None,
        bbox_scale: float = 1.25,
        seed: int = 0,
        body_model_type: str = "free",
        body_model_path: str | None = None,
    ) -> None:
        super().__init__(input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path)
        self.root = resolve_root(root, "MPII")
        self.ann_path = resolve_file(self.root, ann_file, "MPII", "annotation file", "data.ann_file")
        self.image_dir = resolve_dir(self.root, img_dir, "MPII", "image folder", "data.img_dir")
        self._smpl = None if smpl_file is None else load_smpl_file(self.root, smpl_file, "MPII")
        self.require_smpl = bool(require_smpl)
        self.without_smpl: list[str] = []
        data = load_coco_json(self.ann_path)
        coco, cache = coco_index(data), {}
        self._set_records(*collect(data["annotations"], lambda ann: self._parse(ann, coco, cache)))

    def summary(self) -> str:
        """``"mpii: loaded N, skipped M: ..."``, plus ``"; without SMPL fit: K"`` with a ``smpl_file``."""
        line = super().summary()
        return line if self._smpl is None else smpl_summary(line, len(self.without_smpl))

    def _parse(self, ann: dict[str, Any], coco: COCO, cache: dict[Path, str | None]) -> PersonRecord | str:
        """A record for a usable annotation, else its skip reason."""
        img = image_of(self.ann_path, coco, ann)
        img_hw = image_size(self.ann_path, img)
        if ann.get("iscrowd", 0):
            return SKIP_ISCROWD
        kps = float_array(ann.get("keypoints"), (NUM_JOINTS, 3))
        if kps is None:
            return invalid("keypoints", ann.get("keypoints"), (NUM_JOINTS, 3))
        visible = kps[:, 2] > 0
        if ann.get("num_keypoints", int(visible.sum())) == 0 or not visible.any():
            return SKIP_NO_KEYPOINTS
        bbox = float_array(ann.get("bbox"), (4,))
        if bbox is None:
            return invalid("bbox", ann.get("bbox"), (4,))
        if (problem := box_problem(bbox, img_hw)) is not None:
            return problem
        box = self.process_box(bbox, img_hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        aid = str(ann["id"])
        if self._smpl is not None and aid not in self._smpl and self.require_smpl:
            return SKIP_NO_SMPL_ENTRY
        fit = None if self._smpl is None or aid not in self._smpl else parse_smpl_entry(self._smpl[aid])
        if isinstance(fit, str):
            return fit
        image_path = (self.image_dir / img["file_name"]).absolute()
        problem = image_problem(image_path, cache)
        if problem is not None:
            return problem
        if fit is None and self._smpl is not None:
            self.without_smpl.append(aid)
        smpl, focal, princpt = fit if fit is not None else (None, None, None)
        return PersonRecord(aid, image_path, img_hw, box, kps[:, :2].copy(), visible,
                            smpl=smpl, cam_focal_px=focal, cam_princpt_px=princpt)

    def read_image(self, record: PersonRecord) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)``; ValueError naming file and sample id when undecodable or its size
        differs from the json."""
        return check_image_size(super().read_image(record), record, self.ann_path)


__all__ = ["MPII", "SKIP_NO_SMPL_ENTRY"]
