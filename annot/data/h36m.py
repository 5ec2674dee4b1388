"""Human3.6M in the mks0601 layout as ``Sample`` crops, with world-frame NeuralAnnot SMPL fits.

Reads the files exactly as mks0601 Hand4Whole (branch Pose2Pose) ``data/Human36M/Human36M.py`` and
NeuralAnnot ``Human3.6M/demo_smpl.py`` do (reference-spec A.1, A.8, pitfalls F.1, F.2, F.6)::

    <root>/annotations/Human36M_subject{S}_data.json          COCO json: images + annotations (bbox)
    <root>/annotations/Human36M_subject{S}_camera.json        cam[str(cam_idx)] = {R, t (mm), f, c}
    <root>/annotations/Human36M_subject{S}_joint_3d.json      j[str(action)][str(subaction)][str(frame)]
                                                              = 17 x 3 world joints, millimetres
    <root>/annotations/Human36M_subject{S}_SMPL_NeuralAnnot.json
                                                              p[...same keys...] = {pose: 72, shape: 10,
                                                              trans: 3}, WORLD frame, metres
    <root>/images/<file_name>

Splits: train subjects 1, 5, 6, 7, 8 with every 5th frame; test subjects 9, 11 with every 64th frame of
camera 4 only. Joints: ``joint_cam = R @ joint_world + t`` (mm) then ``/1000``; 2D keypoints are their
projection with the real camera (``x = X / Z * fx + cx``, mks0601 ``cam2pixel``). The SMPL fit is moved
from world to camera with the root compensation of A.8 (:func:`smpl_world_to_camera`).

The part shared with MPI-INF-3DHP (per-sample checks, world -> camera conversion, skip bookkeeping) is
:class:`annot.data.world_frame.WorldFrameMocapDataset`.
"""
from __future__ import annotations

import logging
from pathlib import Path

from annot.data.augment import AugmentConfig
from annot.data.person import PersonRecord
from annot.data.registry import register
from annot.data.world_frame import (
    WorldCamera,
    WorldFrameMocapDataset,
    annotation_box,
    check_frame_stride,
    field_error,
    index_images,
    load_coco_lists,
    resolve_dir,
    resolve_file,
    smpl_world_to_camera,
)

logger = logging.getLogger(__name__)

H36M_SPLIT_SUBJECTS: dict[str, tuple[int, ...]] = {"train": (1, 5, 6, 7, 8), "test": (9, 11)}
H36M_SPLIT_FRAME_STRIDE: dict[str, int] = {"train": 5, "test": 64}
H36M_TEST_CAMERA = 4  # "frontal camera, following HMR/SPIN" (reference-spec A.1)


# --------------------------------------------------------------------------------------------- H36M
H36M_IMAGE_FIELDS = ("file_name", "width", "height", "subject", "action_idx", "subaction_idx", "frame_idx",
                     "cam_idx")


def h36m_files(ann_dir: Path, subject: int) -> dict[str, Path]:
    """The four per-subject annotation paths (``data``, ``camera``, ``joint_3d``, ``smpl``)."""
    stem = ann_dir / f"Human36M_subject{subject}"
    return {"data": Path(f"{stem}_data.json"), "camera": Path(f"{stem}_camera.json"),
            "joint_3d": Path(f"{stem}_joint_3d.json"), "smpl": Path(f"{stem}_SMPL_NeuralAnnot.json")}


@register("h36m")
class Human36M(WorldFrameMocapDataset):
    """Human3.6M crops with 3D joints and (optionally) NeuralAnnot SMPL fits, mks0601 layout (spec A.1).

    Args:
        root: the ``Human36M`` folder holding ``annotations/`` and ``images/`` (config key ``data.root``).
        split: ``"train"`` (subjects 1, 5, 6, 7, 8; every 5th frame) or ``"test"`` (subjects 9, 11;
            every 64th frame of camera 4 only, pitfall F.6).
        subjects: override of the split's subjects (``data.subjects``), e.g. ``[1]``.
        frame_stride: override of the split's frame stride (keep ``frame_idx % frame_stride == 0``).
        use_smpl: read ``Human36M_subject{S}_SMPL_NeuralAnnot.json`` when present and convert each fit
            from world to camera (spec A.8); a missing file / entry leaves ``smpl=None``, counted in
            ``smpl_missing``.
        input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset`.

    Items are :class:`annot.data.sample.Sample` in convention ``h36m17`` by default (root Pelvis);
    ``real_focal_crop_px`` / ``real_princpt_crop_px`` carry the real camera.

    Raises:
        FileNotFoundError: missing root, ``annotations/`` or ``images/`` folder, or a subject's data /
            camera / joint_3d json (the message names the path and the config key to set).
        ValueError: bad ``split`` / ``frame_stride``; malformed files: invalid JSON, a missing image or
            annotation field, a repeated id, a bbox that is not 4 numbers, a camera index absent from the
            camera json, a camera without ``R/t/f/c`` or with wrong shapes, 3D joints that are not
            17 x 3, an SMPL entry without ``pose/shape/trans`` of lengths 72/10/3. Messages name the
            file, the sample id (annotation id) or camera, and the field.
    """

    name = "h36m"
    native_convention = "h36m17"

    def __init__(self, root: str | Path, split: str = "train", subjects: list[int] | None = None,
                 frame_stride: int | None = None, use_smpl: bool = True,
                 input_hw: tuple[int, int] = (256, 192), convention: str | None = None,
                 augment: AugmentConfig | None = None, bbox_scale: float = 1.25, seed: int = 0,
                 body_model_type: str = "free", body_model_path: str | None = None) -> None:
        if split not in H36M_SPLIT_SUBJECTS:
            raise ValueError(f"h36m: split (config key `data.split`) must be 'train' or 'test', "
                             f"got {split!r}")
        super().__init__(use_smpl, input_hw, convention, augment, bbox_scale, seed, body_model_type,
                         body_model_path)
        self.split = split
        self.subjects = tuple(int(s) for s in (H36M_SPLIT_SUBJECTS[split] if subjects is None else subjects))
        self.frame_stride = check_frame_stride("h36m", frame_stride, H36M_SPLIT_FRAME_STRIDE[split])
        self.camera_filter = H36M_TEST_CAMERA if split == "test" else None
        self.root = resolve_dir(Path(root).expanduser(), "Human3.6M root folder",
                                "Set the config key `data.root` to the Human36M folder "
                                "(with annotations/, images/).")
        self.ann_dir = resolve_dir(self.root / "annotations", "Human3.6M annotation folder",
                                   "Set the config key `data.root` to the folder that contains annotations/.")
        self.image_dir = resolve_dir(self.root / "images", "Human3.6M image folder",
                                     "Set the config key `data.root` to the folder that contains images/.")
        records: list[PersonRecord] = []
        skipped: dict[str, str] = {}
        for subject in self.subjects:
            self._load_subject(subject, records, skipped)
        self.finish_loading(records, skipped)

    def reference_entry(self, sample_id: str) -> tuple[str, tuple[int, ...]]:
        """``("Human36M_subject{S}_SMPL_NeuralAnnot.json", (action_idx, subaction_idx, frame_idx))``."""
        subject, action, subaction, frame, _ = self.frame_keys[sample_id]
        return h36m_files(self.ann_dir, subject)["smpl"].name, (action, subaction, frame)

    def _subject_files(self, subject: int) -> dict[str, Path]:
        files = h36m_files(self.ann_dir, subject)
        hint = ("Set the config key `data.root` to the Human36M folder, or restrict `data.subjects` to the "
                "subjects you have.")
        for key in ("data", "camera", "joint_3d"):
            resolve_file(files[key], f"Human3.6M subject {subject} {key} json", hint)
        return files

    def _load_subject(self, subject: int, records: list[PersonRecord], skipped: dict[str, str]) -> None:
        """Parse one subject's four files and append its kept records / skip reasons."""
        files = self.load_files(self._subject_files(subject), "f", "c")
        data_path = files.paths["data"]
        images, annotations = load_coco_lists(data_path)
        image_index = index_images(data_path, images, H36M_IMAGE_FIELDS)
        for ann in annotations:
            sample_id, img, bbox = annotation_box(data_path, ann, image_index)
            if img["subject"] != subject:
                raise field_error(data_path, f"sample_id {sample_id}", "subject",
                                  f"is {img['subject']} in the file of subject {subject}")
            frame, cam = img["frame_idx"], img["cam_idx"]
            if frame % self.frame_stride or (self.camera_filter is not None and cam != self.camera_filter):
                continue
            action, subaction = img["action_idx"], img["subaction_idx"]
            self.add_annotation(files, sample_id, img, bbox, (cam,), (action, subaction, frame),
                                (subject, action, subaction, frame, cam),
                                (self.image_dir / img["file_name"]).absolute(), records, skipped)


__all__ = [
    "H36M_SPLIT_FRAME_STRIDE",
    "H36M_SPLIT_SUBJECTS",
    "H36M_TEST_CAMERA",
    "Human36M",
    "WorldCamera",
    "WorldFrameMocapDataset",
    "h36m_files",
    "smpl_world_to_camera",
]
