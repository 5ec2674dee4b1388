"""MSCOCO person keypoints as a ``torch.utils.data.Dataset`` of ``Sample`` crops.

Follows mks0601's COCO loaders (Hand4Whole branch Pose2Pose ``data/MSCOCO/MSCOCO.py``, 3DCrowdNet
``data/MSCOCO/MSCOCO.py``; reference-spec A.0, A.3, A.9): annotations read with ``pycocotools``,
``iscrowd`` / ``num_keypoints == 0`` / degenerate boxes skipped, boxes processed with
``process_bbox`` (aspect ``input_w / input_h``, x1.25), crop by the mks0601 affine, RGB in [0, 1].
Unlike mks0601, nothing is dropped silently: every skipped annotation is recorded with its reason.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools.coco import COCO

from annot.data.augment import AugmentConfig, sample_augment
from annot.data.person import PersonCropDataset, PersonRecord
from annot.data.registry import register

logger = logging.getLogger(__name__)

KEYPOINT_CONVENTION = "coco17"
NUM_COCO_JOINTS = 17

SKIP_NOT_PERSON = "not person"
SKIP_ISCROWD = "iscrowd"
SKIP_NO_KEYPOINTS = "no keypoints"
SKIP_DEGENERATE_BOX = "degenerate box"
SKIP_MISSING_IMAGE = "missing image file"
SKIP_UNREADABLE_IMAGE = "unreadable image"


def _resolve_paths(root: str | Path, ann_file: str | Path, img_dir: str | Path) -> tuple[Path, Path, Path]:
    """Return ``(root, ann_path, image_dir)``; FileNotFoundError naming the path and config key."""
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(
            f"COCO root folder not found: looked at '{root_path}' (absolute: '{root_path.absolute()}'). "
            "Set the config key `data.root` to the folder holding the images and annotations."
        )
    ann_path = Path(ann_file).expanduser()
    if not ann_path.is_absolute():
        ann_path = root_path / ann_path
    if not ann_path.is_file():
        raise FileNotFoundError(
            f"COCO annotation file not found: looked at '{ann_path}'. Set the config key "
            "`data.ann_file` (absolute, or relative to `data.root`)."
        )
    image_dir = root_path / Path(img_dir).expanduser() if str(img_dir) else root_path
    if not image_dir.is_dir():
        raise FileNotFoundError(
            f"COCO image folder not found: looked at '{image_dir}'. Set the config key `data.img_dir` "
            "(relative to `data.root`)."
        )
    return root_path, ann_path, image_dir


def _load_json(ann_path: Path) -> dict[str, Any]:
    """Read and structurally validate a COCO keypoint json; ValueError naming file and field."""
    try:
        with open(ann_path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{ann_path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{ann_path}: top level must be an object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{ann_path}: missing or non-list field '{key}'")
    return data


def _field_error(ann_path: Path, kind: str, item_id: Any, field: str, what: str) -> ValueError:
    return ValueError(f"{ann_path}: {kind} id {item_id}: field '{field}' {what}")


def _finite_floats(ann_path: Path, ann: dict, field: str, length: int) -> np.ndarray:
    """Field ``field`` of annotation ``ann`` as a float64 array of ``length`` finite numbers."""
    value = ann.get(field)
    if not isinstance(value, (list, tuple)) or len(value) != length:
        got = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
        raise _field_error(
            ann_path, "annotation", ann.get("id"), field, f"must be {length} numbers, got {got}"
        )
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise _field_error(ann_path, "annotation", ann.get("id"), field, f"is not numeric ({err})") from err
    if not np.all(np.isfinite(arr)):
        raise _field_error(ann_path, "annotation", ann.get("id"), field, "contains NaN or inf")
    return arr


def _image_size(ann_path: Path, img: dict) -> tuple[int, int]:
    """``(height, width)`` of a COCO image entry; ValueError naming the image id and field."""
    for field in ("file_name", "height", "width"):
        if field not in img:
            raise _field_error(ann_path, "image", img.get("id"), field, "is missing")
    height, width = img["height"], img["width"]
    numeric = isinstance(height, (int, float)) and isinstance(width, (int, float))
    if not (numeric and height > 0 and width > 0):
        raise _field_error(
            ann_path, "image", img.get("id"), "height/width", f"must be > 0, got {height}x{width}"
        )
    return int(height), int(width)


def _image_problem(path: Path, cache: dict[Path, str | None]) -> str | None:
    """Skip reason for an image file (missing / unreadable header), or None; cached per path."""
    if path not in cache:
        if not path.is_file():
            cache[path] = SKIP_MISSING_IMAGE
        elif path.stat().st_size == 0 or not cv2.haveImageReader(str(path)):
            cache[path] = SKIP_UNREADABLE_IMAGE
        else:
            cache[path] = None
    return cache[path]


def _person_category_ids(data: dict[str, Any]) -> set[int]:
    """Ids of categories named 'person' (COCO id 1 when the json has no categories)."""
    cats = data.get("categories") or []
    ids = {c["id"] for c in cats if isinstance(c, dict) and c.get("name") == "person" and "id" in c}
    return ids or {1}


@register("coco")
class COCOKeypoints(PersonCropDataset):
    """MSCOCO person-keypoint crops (mks0601 preprocessing); items are ``annot.data.sample.Sample``.

    Args:
        root: folder with the images (under ``img_dir``) and, for a relative ``ann_file``, the json
            (config key ``data.root``).
        ann_file: COCO person-keypoints json, absolute or relative to ``root`` (``data.ann_file``).
        img_dir: image folder relative to ``root`` (``data.img_dir``; "" = ``root`` itself).
        input_hw: crop ``(H, W)`` in pixels (Pose2Pose body: ``(256, 192)``).
        flip_prob: shorthand for flip-only augmentation when ``augment`` is not given; the decision is
            deterministic in ``(seed, epoch, index)``; 0 never flips.
        bbox_scale: box enlargement of ``process_bbox`` (1.25 in mks0601).
        seed: seed of the augmentation draws.
        convention, augment, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset`.

    Attributes:
        records: kept annotations (:class:`annot.data.person.PersonRecord`), in json order.
        skipped: ``{sample_id: reason}`` for every annotation not kept; reasons are
            "not person", "iscrowd", "no keypoints", "degenerate box", "missing image file",
            "unreadable image".

    Raises:
        FileNotFoundError: missing root, annotation file or image folder (message names the path
            looked at and the config key to set).
        ValueError: malformed json (not JSON, no 'images'/'annotations' list, a repeated annotation
            id, an annotation with a missing image, a 'bbox' that is not 4 finite numbers,
            'keypoints' not 51 finite numbers); the message names the file, the annotation (or
            image) id and the field.
    """

    name = "coco"
    native_convention = KEYPOINT_CONVENTION

    def __init__(
        self,
        root: str | Path,
        ann_file: str,
        img_dir: str = "",
        input_hw: tuple[int, int] = (256, 192),
        flip_prob: float = 0.0,
        bbox_scale: float = 1.25,
        seed: int = 0,
        convention: str | None = None,
        augment: AugmentConfig | None = None,
        body_model_type: str = "free",
        body_model_path: str | None = None,
    ) -> None:
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"COCOKeypoints: flip_prob must be in [0, 1], got {flip_prob}")
        if augment is None and flip_prob > 0.0:
            augment = AugmentConfig(enabled=True, scale_factor=0.0, rot_prob=0.0, flip_prob=flip_prob,
                                    color_factor=0.0)
        super().__init__(input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path)
        self.root, self.ann_path, self.image_dir = _resolve_paths(root, ann_file, img_dir)
        records: list[PersonRecord] = []
        skipped: dict[str, str] = {}
        self._index(_load_json(self.ann_path), records, skipped)
        self._set_records(records, skipped)

    def _index(self, data: dict[str, Any], records: list[PersonRecord], skipped: dict[str, str]) -> None:
        """Fill ``records`` and ``skipped`` from the parsed json (pycocotools index)."""
        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco.createIndex()
        person_ids = _person_category_ids(data)
        image_cache: dict[Path, str | None] = {}
        seen: set[str] = set()
        for ann in data["annotations"]:
            if not isinstance(ann, dict) or "id" not in ann:
                raise ValueError(f"{self.ann_path}: an annotation has no 'id' field: {str(ann)[:80]}")
            if str(ann["id"]) in seen:
                raise _field_error(self.ann_path, "annotation", ann["id"], "id", "appears twice")
            seen.add(str(ann["id"]))
            record_or_reason = self._parse_annotation(ann, coco, person_ids, image_cache)
            if isinstance(record_or_reason, str):
                skipped[str(ann["id"])] = record_or_reason
            else:
                records.append(record_or_reason)

    def _parse_annotation(
        self, ann: dict, coco: COCO, person_ids: set[int], image_cache: dict[Path, str | None]
    ) -> PersonRecord | str:
        """A ``PersonRecord`` for a usable annotation, else the skip reason (str)."""
        ann_id = ann["id"]
        if ann.get("category_id", next(iter(person_ids))) not in person_ids:
            return SKIP_NOT_PERSON
        if ann.get("image_id") not in coco.imgs:
            raise _field_error(
                self.ann_path, "annotation", ann_id, "image_id", f"{ann.get('image_id')!r} not in 'images'"
            )
        img_hw = _image_size(self.ann_path, coco.imgs[ann["image_id"]])
        bbox = _finite_floats(self.ann_path, ann, "bbox", 4)
        kps = _finite_floats(self.ann_path, ann, "keypoints", 3 * NUM_COCO_JOINTS).reshape(NUM_COCO_JOINTS, 3)
        if ann.get("iscrowd", 0):
            return SKIP_ISCROWD
        visible = kps[:, 2] > 0
        if ann.get("num_keypoints", int(visible.sum())) == 0 or not visible.any():
            return SKIP_NO_KEYPOINTS
        box = self.process_box(bbox, img_hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        image_path = (self.image_dir / coco.imgs[ann["image_id"]]["file_name"]).absolute()
        problem = _image_problem(image_path, image_cache)
        if problem is not None:
            return problem
        return PersonRecord(str(ann_id), image_path, img_hw, box, kps[:, :2].copy(), visible)

    def is_flipped(self, index: int) -> bool:
        """Deterministic flip decision of item ``index`` for ``(seed, epoch)``."""
        return sample_augment(self.augment, np.random.default_rng([self.seed, self.epoch, int(index)])).flip

    def read_image(self, record: PersonRecord) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)``; ValueError naming file and sample id when it cannot be decoded or
        its size differs from the json."""
        img = super().read_image(record)
        if img.shape[:2] != record.img_hw:
            raise ValueError(
                f"{record.image_path}: decoded size {img.shape[:2]} != json height/width {record.img_hw} "
                f"(sample_id {record.sample_id}, file {self.ann_path})"
            )
        return img


__all__ = ["COCOKeypoints", "KEYPOINT_CONVENTION"]
