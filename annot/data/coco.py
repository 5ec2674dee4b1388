"""MSCOCO person keypoints (and COCO-WholeBody) as a ``torch.utils.data.Dataset`` of ``Sample`` crops.

Follows mks0601's COCO loaders (Hand4Whole branch Pose2Pose ``data/MSCOCO/MSCOCO.py``, 3DCrowdNet
``data/MSCOCO/MSCOCO.py``; reference-spec A.0, A.3, A.9): annotations read with ``pycocotools``,
``iscrowd`` / ``num_keypoints == 0`` / degenerate boxes skipped, boxes processed with
``process_bbox`` (aspect ``input_w / input_h``, x1.25), crop by the mks0601 affine, RGB in [0, 1].
Unlike mks0601, nothing is dropped silently: every skipped annotation is recorded with its reason.

Two annotation variants (spec A.3, pitfall F.3), indexed by the same annotation ids:

* ``"person_keypoints"``: ``person_keypoints_{train,val}2017.json``, 17 keypoints, plus the Pelvis
  that mks0601 appends (hip midpoint, valid when both hips are; ``add_pelvis``): native convention
  ``coco18``;
* ``"wholebody"``: ``coco_wholebody_{train,val}_v1.0.json`` (jin-s13/COCO-WholeBody ``data_format.md``),
  17 body keypoints, the Pelvis, ``foot_kpts`` (6 x (x, y, v): L big toe, L small toe, L heel, R big toe,
  R small toe, R heel) and the hand MCPs ``lefthand_kpts`` / ``righthand_kpts`` indices 5, 9, 13, 17
  (Hand4Whole Pose2Pose ``data/MSCOCO/MSCOCO.py``; a missing hand field = not valid): native convention
  ``coco_wholebody32``. ``v`` may be fractional there; ``v > 0`` is valid. ``*_valid == false`` entries
  are all zero, so their points are simply not valid.

The output convention (``convention``) defaults to ``coco17`` / ``coco17_feet``; with ``pose2pose33`` (the
Pose2Pose supervision set) the Pelvis and the hand MCPs reach it by name, as in the reference.

An optional NeuralAnnot SMPL json (``smpl_file``; :mod:`annot.data.neuralannot`) adds the pseudo-GT
fit of each annotation id and its original-image camera (``record.smpl``, ``record.cam_focal_px`` /
``cam_princpt_px``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from annot.data.augment import AugmentConfig, sample_augment
from annot.data.neuralannot import load_smpl_file, parse_smpl_entry, smpl_summary
from annot.data.parsing import (
    SKIP_BOX_OUTSIDE,
    SKIP_DEGENERATE_BOX,
    SKIP_ISCROWD,
    SKIP_MISSING_IMAGE,
    SKIP_NO_KEYPOINTS,
    SKIP_UNREADABLE_IMAGE,
    array_problem,
    box_problem,
    check_image_size,
    coco_index,
    collect,
    field_error,
    image_of,
    image_problem,
    image_size,
    load_coco_json,
    resolve_dir,
    resolve_file,
    resolve_root,
)
from annot.data.person import PersonCropDataset, PersonRecord
from annot.data.registry import register

KEYPOINT_CONVENTION = "coco17"
WHOLEBODY_CONVENTION = "coco17_feet"
#: What the loader parses (the output convention defaults to the two above, for compatibility).
NATIVE_KEYPOINT_CONVENTION = "coco18"
NATIVE_WHOLEBODY_CONVENTION = "coco_wholebody32"
NUM_COCO_JOINTS = 17
NUM_FOOT_JOINTS = 6
NUM_HAND_JOINTS = 21
#: MCPs (Index_1, Middle_1, Ring_1, Pinky_1) in COCO-WholeBody's 21-point hand order (Hand4Whole ``MSCOCO.py``).
HAND_MCP_INDICES = (5, 9, 13, 17)
L_HIP, R_HIP = 11, 12
VARIANTS = ("person_keypoints", "wholebody")

SKIP_INVALID_BBOX = "invalid bbox"
SKIP_INVALID_KEYPOINTS = "invalid keypoints"
SKIP_NOT_PERSON = "not person"


def _finite_floats(ann_path: Path, ann: dict, field: str, length: int) -> np.ndarray:
    """Field ``field`` of annotation ``ann`` as a float64 array of ``length`` finite numbers;
    ValueError naming the file, annotation id and field otherwise (COCO treats these as file errors)."""
    value = ann.get(field)
    if not isinstance(value, (list, tuple)) or len(value) != length:
        got = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
        raise field_error(ann_path, "annotation", ann.get("id"), field,
                          f"must be {length} numbers, got {got}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise field_error(ann_path, "annotation", ann.get("id"), field, f"is not numeric ({err})") from err
    if not np.all(np.isfinite(arr)):
        raise field_error(ann_path, "annotation", ann.get("id"), field, "contains NaN or inf")
    return arr


def add_pelvis(kps_xyv: np.ndarray) -> np.ndarray:
    """mks0601 ``add_pelvis``: ``(3,)`` ``(x, y, v)`` of the hip midpoint of COCO-17 keypoints ``(17, 3)``
    (pixels); ``v = 1`` when both hips have ``v > 0``, else the point is ``(0, 0, 0)``."""
    if kps_xyv[L_HIP, 2] > 0 and kps_xyv[R_HIP, 2] > 0:
        return np.array([*(kps_xyv[L_HIP, :2] + kps_xyv[R_HIP, :2]) / 2.0, 1.0])
    return np.zeros(3)


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
            (config key ``data.root``; mks0601 layout ``data/MSCOCO``).
        ann_file: COCO json, absolute or relative to ``root`` (``data.ann_file``), e.g.
            ``annotations/person_keypoints_train2017.json`` or ``annotations/coco_wholebody_train_v1.0.json``.
        img_dir: image folder relative to ``root`` (``data.img_dir``; "" = ``root`` itself).
        input_hw: crop ``(H, W)`` in pixels (Pose2Pose body: ``(256, 192)``).
        flip_prob: shorthand for flip-only augmentation when ``augment`` is not given; the decision is
            deterministic in ``(seed, epoch, index)``; 0 never flips.
        bbox_scale: box enlargement of ``process_bbox`` (1.25 in mks0601).
        seed: seed of the augmentation draws.
        convention, augment, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset`.
        variant: ``"person_keypoints"`` (native convention ``coco18``, output default ``coco17``) or
            ``"wholebody"`` (reads ``foot_kpts`` and the hand MCPs too; native ``coco_wholebody32``, output
            default ``coco17_feet``) (``data.variant``).
        smpl_file: optional NeuralAnnot SMPL json keyed by annotation id, absolute or relative to
            ``root`` (``data.smpl_file``; e.g. ``annotations/MSCOCO_train_SMPL_NeuralAnnot.json``).

    Attributes:
        records: kept annotations (:class:`annot.data.person.PersonRecord`), in json order; with
            ``smpl_file``, ``record.smpl`` is the fit (gender "neutral") in the original camera frame
            and ``record.cam_focal_px`` / ``cam_princpt_px`` its camera, or all three ``None`` when the
            file has no entry for the annotation.
        skipped: ``{sample_id: reason}`` for every annotation not kept; reasons are
            "not person", "invalid bbox (<what>)", "invalid keypoints (<what>)" (``<what>``: "missing",
            "not numeric", "wrong length" or "NaN or inf"), "iscrowd", "no keypoints", "negative box size",
            "box outside image", "degenerate box",
            "missing image file", "unreadable image", and with ``smpl_file``
            "invalid smpl_param.<field>" / "invalid cam_param.<field>" (a malformed fit).
        without_smpl: sample ids kept without an SMPL fit (counted in :meth:`summary`).

    Raises:
        FileNotFoundError: missing root, annotation file, image folder or SMPL file (message names
            the path looked at and the config key to set).
        ValueError: unknown ``variant``; a malformed json as a whole (not JSON, no 'images'/'annotations'
            list, a repeated annotation id, an annotation with a missing image); the message names the
            file, the annotation (or image) id and the field. A single annotation whose 'bbox' is not 4
            finite numbers or whose 'keypoints' (wholebody: also 'foot_kpts') are not 3 x J finite
            numbers is skipped with the reason "invalid bbox (...)" / "invalid keypoints (...)".
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
        variant: str = "person_keypoints",
        smpl_file: str | None = None,
    ) -> None:
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"COCOKeypoints: flip_prob must be in [0, 1], got {flip_prob} "
                             "(config key data.flip_prob)")
        if variant not in VARIANTS:
            raise ValueError(f"COCOKeypoints: unknown variant {variant!r} (config key data.variant); "
                             f"known: {VARIANTS}")
        if augment is None and flip_prob > 0.0:
            augment = AugmentConfig(enabled=True, scale_factor=0.0, rot_prob=0.0, flip_prob=flip_prob,
                                    color_factor=0.0)
        self.variant = variant
        self.native_convention, default_convention = self._conventions(variant)
        convention = convention or default_convention
        super().__init__(input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path)
        self.root = resolve_root(root, "COCO")
        self.ann_path = resolve_file(self.root, ann_file, "COCO", "annotation file", "data.ann_file")
        self.image_dir = resolve_dir(self.root, img_dir, "COCO", "image folder", "data.img_dir")
        self._smpl = None if smpl_file is None else load_smpl_file(self.root, smpl_file, "COCO")
        self.without_smpl: list[str] = []
        data = load_coco_json(self.ann_path)
        coco, person_ids, cache = coco_index(data), _person_category_ids(data), {}
        self._set_records(*collect(data["annotations"],
                                   lambda ann: self._parse_annotation(ann, coco, person_ids, cache)))

    @staticmethod
    def _conventions(variant: str) -> tuple[str, str]:
        """``(native, default output)`` keypoint conventions of ``variant`` (subclasses parse other sets)."""
        if variant == "wholebody":
            return NATIVE_WHOLEBODY_CONVENTION, WHOLEBODY_CONVENTION
        return NATIVE_KEYPOINT_CONVENTION, KEYPOINT_CONVENTION

    def summary(self) -> str:
        """``"coco: loaded N, skipped M: <reason>: k, ..."``, plus ``"; without SMPL fit: K"`` with a
        ``smpl_file``."""
        line = super().summary()
        return line if self._smpl is None else smpl_summary(line, len(self.without_smpl))

    def _keypoints(self, ann: dict) -> np.ndarray:
        """(J, 3) ``(x, y, v)`` of the variant's native convention (``coco18``: 18, ``coco_wholebody32``: 32)."""
        kps = _finite_floats(self.ann_path, ann, "keypoints", 3 * NUM_COCO_JOINTS).reshape(NUM_COCO_JOINTS, 3)
        parts = [kps, add_pelvis(kps)[None]]
        if self.variant == "wholebody":
            feet = _finite_floats(self.ann_path, ann, "foot_kpts", 3 * NUM_FOOT_JOINTS)
            parts.append(feet.reshape(NUM_FOOT_JOINTS, 3))
            for field in ("lefthand_kpts", "righthand_kpts"):
                if ann.get(field) is None:
                    parts.append(np.zeros((len(HAND_MCP_INDICES), 3)))
                    continue
                hand = _finite_floats(self.ann_path, ann, field, 3 * NUM_HAND_JOINTS).reshape(NUM_HAND_JOINTS, 3)
                parts.append(hand[list(HAND_MCP_INDICES)])
        return np.concatenate(parts, axis=0)

    def _keypoints_reason(self, ann: dict) -> str:
        """``"invalid keypoints (<what>)"`` for the first keypoint field of the variant that is unusable."""
        fields = [("keypoints", 3 * NUM_COCO_JOINTS)]
        if self.variant == "wholebody":
            fields += [("foot_kpts", 3 * NUM_FOOT_JOINTS)] + [
                (f, 3 * NUM_HAND_JOINTS) for f in ("lefthand_kpts", "righthand_kpts") if ann.get(f) is not None]
        for field, length in fields:
            if (why := array_problem(ann.get(field), (length,))) is not None:
                return f"{SKIP_INVALID_KEYPOINTS} ({why})" if field == "keypoints" else f"invalid {field} ({why})"
        return SKIP_INVALID_KEYPOINTS

    def _parse_annotation(
        self, ann: dict, coco: COCO, person_ids: set[int], image_cache: dict[Path, str | None]
    ) -> PersonRecord | str:
        """A ``PersonRecord`` for a usable annotation, else the skip reason (str)."""
        if ann.get("category_id", next(iter(person_ids))) not in person_ids:
            return SKIP_NOT_PERSON
        img = image_of(self.ann_path, coco, ann)
        img_hw = image_size(self.ann_path, img)
        if (why := array_problem(ann.get("bbox"), (4,))) is not None:
            return f"{SKIP_INVALID_BBOX} ({why})"
        bbox = np.asarray(ann["bbox"], dtype=np.float64).reshape(4)
        try:
            kps = self._keypoints(ann)
        except ValueError:
            return self._keypoints_reason(ann)
        if ann.get("iscrowd", 0):
            return SKIP_ISCROWD
        visible = kps[:, 2] > 0
        if ann.get("num_keypoints", int(visible.sum())) == 0 or not visible.any():
            return SKIP_NO_KEYPOINTS
        if (problem := box_problem(bbox, img_hw)) is not None:
            return problem
        box = self.process_box(bbox, img_hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        fit = self._fit(str(ann["id"]))
        if isinstance(fit, str):
            return fit
        image_path = (self.image_dir / img["file_name"]).absolute()
        problem = image_problem(image_path, image_cache)
        if problem is not None:
            return problem
        smpl, focal, princpt = fit if fit is not None else (None, None, None)
        if fit is None and self._smpl is not None:
            self.without_smpl.append(str(ann["id"]))
        return PersonRecord(str(ann["id"]), image_path, img_hw, box, kps[:, :2].copy(), visible,
                            smpl=smpl, cam_focal_px=focal, cam_princpt_px=princpt)

    def _fit(self, aid: str) -> tuple | str | None:
        """The NeuralAnnot fit of ``aid`` (parsed), a skip reason when malformed, or None (no file /
        no entry)."""
        if self._smpl is None or aid not in self._smpl:
            return None
        return parse_smpl_entry(self._smpl[aid])

    def is_flipped(self, index: int) -> bool:
        """Deterministic flip decision of item ``index`` for ``(seed, epoch)``."""
        return sample_augment(self.augment, np.random.default_rng([self.seed, self.epoch, int(index)])).flip

    def read_image(self, record: PersonRecord) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)``; ValueError naming file and sample id when it cannot be decoded or
        its size differs from the json."""
        return check_image_size(super().read_image(record), record, self.ann_path)


__all__ = [
    "COCOKeypoints", "HAND_MCP_INDICES", "KEYPOINT_CONVENTION", "NATIVE_KEYPOINT_CONVENTION",
    "NATIVE_WHOLEBODY_CONVENTION", "add_pelvis", "SKIP_BOX_OUTSIDE", "SKIP_DEGENERATE_BOX", "SKIP_ISCROWD",
    "SKIP_MISSING_IMAGE", "SKIP_NOT_PERSON", "SKIP_NO_KEYPOINTS", "SKIP_UNREADABLE_IMAGE", "VARIANTS",
    "WHOLEBODY_CONVENTION",
]
