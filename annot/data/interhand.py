"""InterHand2.6M in mks0601's released layout as per-hand ``Sample`` crops with 3D joints.

Reads the files as facebookresearch/InterHand2.6M ``data/InterHand2.6M/dataset.py`` does (Moon et al.,
ECCV 2020)::

    <root>/annotations/<split>/InterHand2.6M_<split>_data.json      COCO-like: images {id, file_name, width,
        height, capture, seq_name, camera, frame_idx}, annotations {id, image_id, bbox, joint_valid (42 x 1),
        hand_type ("right" | "left" | "interacting"), hand_type_valid}
    <root>/annotations/<split>/InterHand2.6M_<split>_camera.json    {capture: {campos, camrot, focal, princpt:
        {camera: ...}}}: position (3,) mm, rotation (3, 3) world -> camera, focal (2,) px, princpt (2,) px
    <root>/annotations/<split>/InterHand2.6M_<split>_joint_3d.json  {capture: {frame_idx: {world_coord
        (42 x 3) mm, joint_valid, hand_type, hand_type_valid}}}
    <root>/images/<split>/<file_name>

Joints are in the ``interhand42`` order (right hand 0-20, left 21-41, each tip first, wrist last).
Camera frame: ``joint_cam = camrot @ (world_coord - campos)`` (mm, then metres), pixels
``x = X / Z * fx + cx`` (``world2cam`` / ``cam2pixel``). ``joint_valid`` comes from the annotation and, as
in mks0601, a hand whose wrist is not valid has no valid joint.

One record per annotated hand (``hand_type`` right: the right hand; left: the left; interacting: both),
sample id ``"<aid>_right"`` / ``"<aid>_left"``, native convention ``interhand21`` (output default ``hand21``),
box = the x1.2 box of the hand's projected valid joints. Per-hand skip reasons (counted): "invalid hand_type",
"no camera <capture>/<camera>", "no joint_3d entry", "invalid world_coord (<what>)",
"invalid joint_valid (<what>)", "wrist not valid", "joint behind the camera", "missing image file",
"degenerate box".
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from annot.data.augment import AugmentConfig
from annot.data.freihand import box_of_points
from annot.data.parsing import (
    SKIP_DEGENERATE_BOX,
    array_problem,
    coco_index,
    image_of,
    image_problem,
    image_size,
    load_coco_json,
    load_json_object,
    resolve_dir,
    resolve_file,
    resolve_root,
)
from annot.data.person import PersonCropDataset, PersonRecord
from annot.data.registry import register

SPLITS = ("train", "val", "test")
HAND_SLICES: dict[str, slice] = {"right": slice(0, 21), "left": slice(21, 42)}
HANDS_OF_TYPE: dict[str, tuple[str, ...]] = {"right": ("right",), "left": ("left",),
                                              "interacting": ("right", "left")}
WRIST = 20  # within a hand of interhand21
NATIVE_CONVENTION = "interhand21"
IMAGE_FIELDS = ("file_name", "capture", "camera", "frame_idx")


def interhand_files(root: Path, split: str) -> dict[str, Path]:
    """The three annotation paths of ``split`` (``data``, ``camera``, ``joint_3d``) under ``root``."""
    folder = root / "annotations" / split
    return {k: folder / f"InterHand2.6M_{split}_{k}.json" for k in ("data", "camera", "joint_3d")}


@register("interhand26m")
class InterHand26M(PersonCropDataset):
    """InterHand2.6M per-hand crops (module docstring); items are :class:`annot.data.sample.Sample`.

    Args:
        root: the ``InterHand2.6M`` folder holding ``annotations/`` and ``images/`` (config key ``data.root``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        input_hw: crop (H, W) pixels (default 256 x 256, mks0601's ``input_img_shape``).
        bbox_scale, seed, convention, augment: see :class:`annot.data.person.PersonCropDataset`.

    Attributes:
        records, skipped: kept hands and ``{"<aid>_<side>": reason}``.
        sides: ``{sample_id: "right" | "left"}``; hand_types: ``{sample_id: the annotation's hand_type}``.

    Raises:
        FileNotFoundError: missing root, annotation file or image folder.
        ValueError: unknown split; a json that is not an object, or the data json's structure (as
            :func:`annot.data.parsing.load_coco_json`); an image without ``capture`` / ``camera`` /
            ``frame_idx`` (naming the file, image id and field).
    """

    name = "interhand26m"
    native_convention = NATIVE_CONVENTION

    def __init__(self, root: str | Path, split: str = "train", input_hw: tuple[int, int] = (256, 256),
                 bbox_scale: float = 1.25, seed: int = 0, convention: str | None = "hand21",
                 augment: AugmentConfig | None = None) -> None:
        super().__init__(input_hw, convention, augment, bbox_scale, seed)
        if split not in SPLITS:
            raise ValueError(f"InterHand2.6M: unknown split {split!r} (config key data.split); known: {SPLITS}")
        self.root = resolve_root(root, "InterHand2.6M")
        paths = {k: resolve_file(self.root, p.relative_to(self.root), "InterHand2.6M", f"{k} file", "data.root")
                 for k, p in interhand_files(self.root, split).items()}
        self.ann_path = paths["data"]
        self.image_dir = resolve_dir(self.root, f"images/{split}", "InterHand2.6M", "image folder", "data.root")
        data = load_coco_json(paths["data"])
        self.cameras, self.joints = load_json_object(paths["camera"]), load_json_object(paths["joint_3d"])
        coco = coco_index(data)
        self.sides: dict[str, str] = {}
        self.hand_types: dict[str, str] = {}
        records, skipped, cache = [], {}, {}
        for ann in data["annotations"]:
            hand_type = ann.get("hand_type")
            sides = HANDS_OF_TYPE.get(hand_type) if isinstance(hand_type, str) else None
            if sides is None:
                skipped[f"{ann['id']}"] = "invalid hand_type"
                continue
            img = image_of(self.ann_path, coco, ann)
            img_hw = image_size(self.ann_path, img, IMAGE_FIELDS)
            for side in sides:
                sid = f"{ann['id']}_{side}"
                out = self._hand(ann, img, img_hw, side, sid, cache)
                if isinstance(out, str):
                    skipped[sid] = out
                else:
                    records.append(out)
                    self.sides[sid], self.hand_types[sid] = side, hand_type
        self._set_records(records, skipped)

    def camera(self, capture: str, camera: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``(camrot (3, 3), campos_mm (3,), focal_px (2,), princpt_px (2,))`` of one camera, or None when the
        camera json has no usable entry for it."""
        cap = self.cameras.get(capture)
        if not isinstance(cap, dict):
            return None
        shapes = {"camrot": (3, 3), "campos": (3,), "focal": (2,), "princpt": (2,)}
        values = []
        for key, shape in shapes.items():
            entry = cap.get(key)
            value = entry.get(camera) if isinstance(entry, dict) else None
            if array_problem(value, shape) is not None:
                return None
            values.append(np.asarray(value, dtype=np.float64).reshape(shape))
        return tuple(values)  # type: ignore[return-value]

    def _hand(self, ann: dict, img: dict, img_hw: tuple[int, int], side: str, sid: str,
              cache: dict) -> PersonRecord | str:
        """The record of hand ``side`` of annotation ``ann``, or its skip reason."""
        capture, camera, frame = str(img["capture"]), str(img["camera"]), str(img["frame_idx"])
        cam = self.camera(capture, camera)
        if cam is None:
            return f"no camera {capture}/{camera}"
        entry = self.joints.get(capture, {}).get(frame) if isinstance(self.joints.get(capture), dict) else None
        if not isinstance(entry, dict):
            return "no joint_3d entry"
        if (why := array_problem(entry.get("world_coord"), (42, 3))) is not None:
            return f"invalid world_coord ({why})"
        if (why := array_problem(ann.get("joint_valid"), (42,))) is not None:
            return f"invalid joint_valid ({why})"
        camrot, campos_mm, focal, princpt = cam
        world_mm = np.asarray(entry["world_coord"], dtype=np.float64).reshape(42, 3)[HAND_SLICES[side]]
        valid = np.asarray(ann["joint_valid"], dtype=np.float64).reshape(42)[HAND_SLICES[side]] > 0
        if not valid[WRIST]:
            return "wrist not valid"
        joints_cam_m = (world_mm - campos_mm) @ camrot.T / 1000.0
        if (joints_cam_m[valid, 2] <= 0).any():
            return "joint behind the camera"
        uv = joints_cam_m[:, :2] / np.where(joints_cam_m[:, 2:3] > 0, joints_cam_m[:, 2:3], 1.0) * focal + princpt
        image_path = (self.image_dir / img["file_name"]).absolute()
        if (problem := image_problem(image_path, cache)) is not None:
            return problem
        box = self.process_box(box_of_points(uv[valid]), img_hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        return PersonRecord(sid, image_path, img_hw, box, uv, valid, joints_cam_m, valid.copy(),
                            cam_focal_px=focal, cam_princpt_px=princpt)


__all__ = ["HAND_SLICES", "InterHand26M", "SPLITS", "interhand_files"]
