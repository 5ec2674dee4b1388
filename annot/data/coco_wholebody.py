"""COCO-WholeBody with all 133 keypoints, the hand and face boxes and their validity flags; hand crops.

Reads ``coco_wholebody_{train,val}_v1.0.json`` as released (Jin et al., ECCV 2020; jin-s13/COCO-WholeBody
``data_format.md``): per annotation ``keypoints`` (17 x 3), ``foot_kpts`` (6 x 3), ``face_kpts`` (68 x 3),
``lefthand_kpts`` / ``righthand_kpts`` (21 x 3), ``(x, y, v)`` in original-image pixels (``v`` may be
fractional; ``v > 0`` = annotated), and ``face_box`` / ``lefthand_box`` / ``righthand_box`` (``[x, y, w, h]``
pixels) with ``face_valid`` / ``lefthand_valid`` / ``righthand_valid`` (a part that is not valid has all-zero
points and box). Hand4Whole (``data/MSCOCO/MSCOCO.py``) reads the same fields; unlike it, nothing is dropped
silently.

* :class:`COCOWholeBody` (registered ``"coco_wholebody"``): the person crops of :class:`annot.data.coco.COCOKeypoints`
  (same per-person checks and skip reasons) in the native convention ``coco_wholebody133``, plus
  ``parts[sample_id]``: the person's valid part boxes (:class:`PartBox`). A part whose flag says valid but
  whose box is unusable (not 4 finite numbers, ``w`` or ``h`` <= 0) is dropped from ``parts`` and counted in
  ``part_problems`` (``{"<aid>/<part>": reason}``); the person is kept.
* :class:`WholeBodyHands` (registered ``"coco_wholebody_hands"``): one square crop per valid hand, cut from the
  released hand box (``process_bbox``, aspect 1, x ``bbox_scale``), keypoints in ``hand21``; sample ids
  ``"<aid>_left"`` / ``"<aid>_right"``; ``sides[sample_id]`` is ``"left"`` / ``"right"``. Left hands are *not*
  mirrored (a hand annotator that wants right hands only flips them itself).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from annot.data.augment import AugmentConfig
from annot.data.coco import NUM_COCO_JOINTS, NUM_FOOT_JOINTS, NUM_HAND_JOINTS, COCOKeypoints, _finite_floats
from annot.data.parsing import SKIP_DEGENERATE_BOX, SKIP_NO_KEYPOINTS, array_problem
from annot.data.person import PersonCropDataset, PersonRecord
from annot.data.registry import register
from annot.keypoints import COCO_WHOLEBODY133_PARTS

NATIVE_CONVENTION = "coco_wholebody133"
HAND_CONVENTION = "hand21"
NUM_FACE_JOINTS = 68
#: part name -> (keypoint field, number of points); the parts with a box and a validity flag.
PART_FIELDS: dict[str, tuple[str, int]] = {
    "face": ("face_kpts", NUM_FACE_JOINTS), "lefthand": ("lefthand_kpts", NUM_HAND_JOINTS),
    "righthand": ("righthand_kpts", NUM_HAND_JOINTS),
}
HAND_SIDES: dict[str, str] = {"left": "lefthand", "right": "righthand"}
SKIP_HAND_NOT_VALID = "hand not annotated (<side>hand_valid false)"
SKIP_PERSON = "person skipped"
SKIP_HAND_BOX = "unusable hand box"


@dataclass(frozen=True)
class PartBox:
    """A valid part of one person: ``bbox_xywh_px`` (4,) the released box in original-image pixels and
    ``kps_xyv`` (J, 3) its points ``(x, y, v)`` (pixels; J = 68 face, 21 hand in ``hand21`` order)."""

    bbox_xywh_px: np.ndarray
    kps_xyv: np.ndarray


def part_box_problem(ann: dict, part: str) -> str | None:
    """Why the ``<part>_box`` of a valid part is unusable (``"invalid <part>_box (<what>)"``,
    ``"degenerate <part>_box"``), or None."""
    value = ann.get(f"{part}_box")
    if (why := array_problem(value, (4,))) is not None:
        return f"invalid {part}_box ({why})"
    box = np.asarray(value, dtype=np.float64).reshape(4)
    return None if box[2] > 0 and box[3] > 0 else f"degenerate {part}_box"


@register("coco_wholebody")
class COCOWholeBody(COCOKeypoints):
    """COCO-WholeBody person crops with all 133 keypoints and the part boxes (module docstring).

    Args:
        root, ann_file, img_dir, input_hw, flip_prob, bbox_scale, seed, augment, body_model_type,
            body_model_path, smpl_file: as :class:`annot.data.coco.COCOKeypoints` (``ann_file`` e.g.
            ``annotations/coco_wholebody_train_v1.0.json``).
        convention: output convention (default ``coco_wholebody133``; ``coco17_feet``, ``pose2pose33``,
            ``smplx55`` ... take the points they name).

    Attributes:
        records, skipped, without_smpl: as :class:`~annot.data.coco.COCOKeypoints`; a person is skipped with
            "invalid face_kpts (<what>)" / "invalid lefthand_kpts (<what>)" ... when a present part field is
            not 3 x J finite numbers.
        parts: ``{sample_id: {part: PartBox}}`` of the kept people, only the valid parts with a usable box
            (parts ``"face"``, ``"lefthand"``, ``"righthand"``).
        part_problems: ``{"<sample_id>/<part>": reason}`` of parts flagged valid whose box is unusable.

    Raises:
        FileNotFoundError, ValueError: as :class:`~annot.data.coco.COCOKeypoints`.
    """

    name = "coco_wholebody"

    def __init__(self, root: str | Path, ann_file: str, img_dir: str = "", input_hw: tuple[int, int] = (256, 192),
                 flip_prob: float = 0.0, bbox_scale: float = 1.25, seed: int = 0, convention: str | None = None,
                 augment: AugmentConfig | None = None, body_model_type: str = "free",
                 body_model_path: str | None = None, smpl_file: str | None = None) -> None:
        self.parts: dict[str, dict[str, PartBox]] = {}
        self.part_problems: dict[str, str] = {}
        super().__init__(root, ann_file, img_dir, input_hw, flip_prob, bbox_scale, seed, convention, augment,
                         body_model_type, body_model_path, variant="wholebody", smpl_file=smpl_file)

    @staticmethod
    def _conventions(variant: str) -> tuple[str, str]:
        return NATIVE_CONVENTION, NATIVE_CONVENTION

    def num_valid(self, part: str) -> int:
        """Number of kept people whose ``part`` (``"face"``, ``"lefthand"``, ``"righthand"``) is valid with a box."""
        return sum(part in p for p in self.parts.values())

    def num_with_valid_hand(self) -> int:
        """Number of kept people with at least one valid hand."""
        return sum(("lefthand" in p) or ("righthand" in p) for p in self.parts.values())

    def summary(self) -> str:
        """The COCO line, plus ``"; valid parts: face F, lefthand L, righthand R"`` and the part problems."""
        line = super().summary() + "; valid parts: " + ", ".join(f"{p} {self.num_valid(p)}" for p in PART_FIELDS)
        if self.part_problems:
            counts = Counter(self.part_problems.values())
            line += "; part problems: " + ", ".join(f"{why}: {k}" for why, k in sorted(counts.items()))
        return line

    def _keypoints(self, ann: dict) -> np.ndarray:
        """(133, 3) ``(x, y, v)`` in ``coco_wholebody133``; a missing part field counts as not annotated (zeros)."""
        parts = [_finite_floats(self.ann_path, ann, "keypoints", 3 * NUM_COCO_JOINTS).reshape(-1, 3),
                 _finite_floats(self.ann_path, ann, "foot_kpts", 3 * NUM_FOOT_JOINTS).reshape(-1, 3)]
        for field, num in PART_FIELDS.values():
            if ann.get(field) is None:
                parts.append(np.zeros((num, 3)))
            else:
                parts.append(_finite_floats(self.ann_path, ann, field, 3 * num).reshape(num, 3))
        return np.concatenate(parts, axis=0)

    def _keypoints_reason(self, ann: dict) -> str:
        for field, num in PART_FIELDS.values():
            if ann.get(field) is not None and (why := array_problem(ann[field], (3 * num,))) is not None:
                return f"invalid {field} ({why})"
        return super()._keypoints_reason(ann)

    def _parse_annotation(self, ann: dict, coco: COCO, person_ids: set[int],
                          image_cache: dict[Path, str | None]) -> PersonRecord | str:
        out = super()._parse_annotation(ann, coco, person_ids, image_cache)
        if isinstance(out, str):
            return out
        kps = self._keypoints(ann)
        found: dict[str, PartBox] = {}
        for part in PART_FIELDS:
            if not ann.get(f"{part}_valid", False):
                continue
            if (problem := part_box_problem(ann, part)) is not None:
                self.part_problems[f"{out.sample_id}/{part}"] = problem
                continue
            box = np.asarray(ann[f"{part}_box"], dtype=np.float64).reshape(4)
            found[part] = PartBox(box, kps[list(COCO_WHOLEBODY133_PARTS[part])].copy())
        self.parts[out.sample_id] = found
        return out


@register("coco_wholebody_hands")
class WholeBodyHands(PersonCropDataset):
    """Square hand crops from COCO-WholeBody's released hand boxes (module docstring); items are
    :class:`annot.data.sample.Sample` with ``kp2d_*`` in ``convention`` (default ``hand21``, root ``Wrist``).

    Args:
        root, ann_file, img_dir: as :class:`COCOWholeBody`.
        input_hw: crop (H, W) pixels (default ``(256, 256)``, Hand4Whole's hand input).
        bbox_scale: enlargement of the hand box by ``process_bbox`` (default 1.25).
        seed, convention, augment: see :class:`annot.data.person.PersonCropDataset`.

    Attributes:
        records: one per kept hand (sample id ``"<aid>_<side>"``), in json order, left before right.
        skipped: ``{"<aid>_<side>": reason}``: "hand not annotated (<side>hand_valid false)",
            "person skipped (<reason>)", "unusable hand box (<reason>)", "no keypoints", "degenerate box".
        sides: ``{sample_id: "left" | "right"}``.

    Raises:
        FileNotFoundError, ValueError: as :class:`COCOWholeBody`.
    """

    name = "coco_wholebody_hands"
    native_convention = HAND_CONVENTION

    def __init__(self, root: str | Path, ann_file: str, img_dir: str = "", input_hw: tuple[int, int] = (256, 256),
                 bbox_scale: float = 1.25, seed: int = 0, convention: str | None = None,
                 augment: AugmentConfig | None = None) -> None:
        super().__init__(input_hw, convention, augment, bbox_scale, seed)
        self.people = COCOWholeBody(root, ann_file, img_dir)
        self.sides: dict[str, str] = {}
        records, skipped = [], {}
        kept = {r.sample_id: r for r in self.people.records}
        for aid, reason in self.people.skipped.items():
            for side in HAND_SIDES:
                skipped[f"{aid}_{side}"] = f"{SKIP_PERSON} ({reason})"
        for aid, person in kept.items():
            for side, part in HAND_SIDES.items():
                sid = f"{aid}_{side}"
                out = self._hand(person, part, sid)
                if isinstance(out, str):
                    skipped[sid] = out
                else:
                    records.append(out)
                    self.sides[sid] = side
        self._set_records(records, skipped)

    def _hand(self, person: PersonRecord, part: str, sid: str) -> PersonRecord | str:
        """The hand record of ``person`` (``part`` = ``"lefthand"`` / ``"righthand"``), else the skip reason."""
        hand = self.people.parts[person.sample_id].get(part)
        if hand is None:
            problem = self.people.part_problems.get(f"{person.sample_id}/{part}")
            return f"{SKIP_HAND_BOX} ({problem})" if problem else SKIP_HAND_NOT_VALID.replace("<side>", part[:-4])
        visible = hand.kps_xyv[:, 2] > 0
        if not visible.any():
            return SKIP_NO_KEYPOINTS
        box = self.process_box(hand.bbox_xywh_px, person.img_hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        return PersonRecord(sid, person.image_path, person.img_hw, box, hand.kps_xyv[:, :2].copy(), visible)


__all__ = ["COCOWholeBody", "HAND_SIDES", "NATIVE_CONVENTION", "PART_FIELDS", "PartBox", "WholeBodyHands",
           "part_box_problem"]
