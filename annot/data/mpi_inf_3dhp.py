"""MPI-INF-3DHP (1K images) in the mks0601 layout as ``Sample`` crops, with world-frame NeuralAnnot SMPL.

Reads the files exactly as mks0601 Hand4Whole (branch Pose2Pose) ``data/MPI_INF_3DHP/MPI_INF_3DHP.py``
and NeuralAnnot ``MPI-INF-3DHP/demo_smpl.py`` do (reference-spec A.2, A.8, pitfalls F.1, F.2)::

    <root>/data/MPI-INF-3DHP_1k.json                 COCO json: images (subject_idx, seq_idx, frame_idx,
                                                     cam_idx, ...) + annotations (bbox)
    <root>/data/MPI-INF-3DHP_camera_1k.json          cam[str(subject)][str(seq)][str(cam_idx)]
                                                     = {R, t (mm), focal, princpt}   (not f / c as H36M)
    <root>/data/MPI-INF-3DHP_joint_3d.json           j[str(subject)][str(seq)][str(frame_idx)]
                                                     = 17 x 3 world joints, millimetres
    <root>/data/MPI-INF-3DHP_SMPL_NeuralAnnot.json   p[str(subject)][str(seq)][str(frame_idx)]
                                                     = {pose: 72, shape: 10, trans: 3}, WORLD frame, metres
    <root>/data/images_1k/S{subject_idx}/Seq{seq_idx}/imageSequence/<file_name>

Train only (the mks0601 loader has no test split); every 3rd frame is kept ("25 fps -> 25/3"), with no
subject or camera filter. The world -> camera handling is that of Human3.6M
(:class:`annot.data.world_frame.WorldFrameMocapDataset`).
"""
from __future__ import annotations

from pathlib import Path

from annot.data.augment import AugmentConfig
from annot.data.person import PersonRecord
from annot.data.registry import register
from annot.data.world_frame import (
    WorldFrameMocapDataset,
    annotation_box,
    check_frame_stride,
    index_images,
    load_coco_lists,
    resolve_dir,
    resolve_file,
)

MPI_INF_FRAME_STRIDE = 3
MPI_INF_FILES = {"data": "MPI-INF-3DHP_1k.json", "camera": "MPI-INF-3DHP_camera_1k.json",
                 "joint_3d": "MPI-INF-3DHP_joint_3d.json", "smpl": "MPI-INF-3DHP_SMPL_NeuralAnnot.json"}
MPI_INF_IMAGE_FIELDS = ("file_name", "width", "height", "subject_idx", "seq_idx", "frame_idx", "cam_idx")


def mpi_inf_image_path(image_dir: Path, subject_idx: int, seq_idx: int, file_name: str) -> Path:
    """``<image_dir>/S{subject}/Seq{seq}/imageSequence/<file_name>`` (``image_dir`` = ``data/images_1k``)."""
    return image_dir / f"S{subject_idx}" / f"Seq{seq_idx}" / "imageSequence" / file_name


@register("mpi_inf_3dhp")
class MPIINF3DHP(WorldFrameMocapDataset):
    """MPI-INF-3DHP training crops with 3D joints and (optionally) NeuralAnnot SMPL fits (spec A.2).

    Args:
        root: the ``MPI_INF_3DHP`` folder holding ``data/`` (jsons and ``images_1k/``; config key
            ``data.root``).
        split: ``"train"`` only (as mks0601).
        subjects: keep only these ``subject_idx`` values (``data.subjects``); default all.
        frame_stride: override of the frame stride 3 (keep ``frame_idx % frame_stride == 0``).
        use_smpl: read ``MPI-INF-3DHP_SMPL_NeuralAnnot.json`` when present and convert each fit from
            world to camera (spec A.8); a missing file / entry leaves ``smpl=None``, counted in
            ``smpl_missing``.
        input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset`.

    Items are :class:`annot.data.sample.Sample` in convention ``mpi_inf_3dhp17`` by default (root
    Pelvis, index 14). Skip reasons and ``smpl_missing`` as :class:`annot.data.world_frame.WorldFrameMocapDataset`.

    Raises:
        FileNotFoundError: missing root, ``data/`` or ``data/images_1k/`` folder, or the data / camera /
            joint_3d json (the message names the path and the config key to set).
        ValueError: bad ``split`` / ``frame_stride``; malformed files (invalid JSON, a missing image or
            annotation field, a repeated id, a bbox that is not 4 numbers, a (subject, seq, cam) absent
            from the camera json, a camera without ``R/t/focal/princpt``, 3D joints that are not 17 x 3,
            an SMPL entry without ``pose/shape/trans`` of lengths 72/10/3); messages name the file, the
            sample id (annotation id) or camera, and the field.
    """

    name = "mpi_inf_3dhp"
    native_convention = "mpi_inf_3dhp17"

    def __init__(self, root: str | Path, split: str = "train", subjects: list[int] | None = None,
                 frame_stride: int | None = None, use_smpl: bool = True,
                 input_hw: tuple[int, int] = (256, 192), convention: str | None = None,
                 augment: AugmentConfig | None = None, bbox_scale: float = 1.25, seed: int = 0,
                 body_model_type: str = "free", body_model_path: str | None = None) -> None:
        if split != "train":
            raise ValueError(f"mpi_inf_3dhp: only split 'train' exists (config key `data.split`), "
                             f"got {split!r}")
        super().__init__(use_smpl, input_hw, convention, augment, bbox_scale, seed, body_model_type,
                         body_model_path)
        self.split = split
        self.subjects = None if subjects is None else tuple(int(s) for s in subjects)
        self.frame_stride = check_frame_stride("mpi_inf_3dhp", frame_stride, MPI_INF_FRAME_STRIDE)
        self.root = resolve_dir(Path(root).expanduser(), "MPI-INF-3DHP root folder",
                                "Set the config key `data.root` to the MPI_INF_3DHP folder "
                                "(which holds data/).")
        self.ann_dir = resolve_dir(self.root / "data", "MPI-INF-3DHP annotation folder",
                                   "Set the config key `data.root` to the folder that contains data/.")
        self.image_dir = resolve_dir(self.ann_dir / "images_1k", "MPI-INF-3DHP image folder",
                                     "Set the config key `data.root` to the folder whose data/ holds "
                                     "images_1k/.")
        self.files = {key: self.ann_dir / name for key, name in MPI_INF_FILES.items()}
        for key in ("data", "camera", "joint_3d"):
            resolve_file(self.files[key], f"MPI-INF-3DHP {key} json",
                         "Set the config key `data.root` to the MPI_INF_3DHP folder.")
        records: list[PersonRecord] = []
        skipped: dict[str, str] = {}
        self._load(records, skipped)
        self.finish_loading(records, skipped)

    def reference_entry(self, sample_id: str) -> tuple[str, tuple[int, ...]]:
        """``("MPI-INF-3DHP_SMPL_NeuralAnnot.json", (subject_idx, seq_idx, frame_idx))``."""
        subject, seq, frame, _ = self.frame_keys[sample_id]
        return self.files["smpl"].name, (subject, seq, frame)

    def _load(self, records: list[PersonRecord], skipped: dict[str, str]) -> None:
        """Parse the four files and fill ``records`` / ``skipped`` (annotation order)."""
        files = self.load_files(self.files, "focal", "princpt")
        images, annotations = load_coco_lists(self.files["data"])
        image_index = index_images(self.files["data"], images, MPI_INF_IMAGE_FIELDS)
        for ann in annotations:
            sample_id, img, bbox = annotation_box(self.files["data"], ann, image_index)
            subject, seq, frame, cam = img["subject_idx"], img["seq_idx"], img["frame_idx"], img["cam_idx"]
            if frame % self.frame_stride or (self.subjects is not None and subject not in self.subjects):
                continue
            image_path = mpi_inf_image_path(self.image_dir, subject, seq, img["file_name"]).absolute()
            self.add_annotation(files, sample_id, img, bbox, (subject, seq, cam), (subject, seq, frame),
                                (subject, seq, frame, cam), image_path, records, skipped)


__all__ = ["MPIINF3DHP", "MPI_INF_FILES", "MPI_INF_FRAME_STRIDE", "mpi_inf_image_path"]
