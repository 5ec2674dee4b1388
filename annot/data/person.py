"""Person-crop datasets: what every image loader shares once its files are parsed into records.

A loader module (``coco.py``, ``h36m.py``, ...) only reads its on-disk layout into
:class:`PersonRecord` objects (original-image pixels, camera-frame metres) and a ``skipped`` map
``{sample_id: reason}``. :class:`PersonCropDataset` turns a record into a :class:`~annot.data.sample.Sample`:
box processing, augmentation (:mod:`annot.data.augment`), crop, the matching 2D / 3D / SMPL targets,
and conversion to the requested keypoint convention. Follows mks0601 Hand4Whole (Pose2Pose branch)
``data/*/__getitem__`` and ``common/utils/preprocessing.py`` (reference-spec A.0, A.9).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from annot.data.augment import (
    AugmentConfig,
    apply_color,
    extreme_crop_box,
    frame_map_from_affine,
    sample_augment,
    transform_smpl,
)
from annot.data.crop import apply_affine, crop_image, invert_affine, process_bbox
from annot.data.sample import Sample
from annot.geometry.cameras import crop_camera
from annot.keypoints import convert, get_convention


@dataclass(frozen=True)
class SmplParams:
    """SMPL parameters in the camera frame of the original image (OpenCV axes).

    ``pose_rotvec`` (24, 3) axis-angle radians (row 0 = global orientation); ``betas`` (10,);
    ``transl_m`` (3,) SMPL ``transl`` in metres; ``gender`` of the fit (``"neutral"``, ``"male"``,
    ``"female"``).
    """

    pose_rotvec: np.ndarray
    betas: np.ndarray
    transl_m: np.ndarray
    gender: str = "neutral"


@dataclass(frozen=True)
class PersonRecord:
    """One person as parsed from a dataset, before any crop.

    Attributes:
        sample_id: dataset-unique id (a string).
        image_path: absolute image path.
        img_hw: original image (height, width) in pixels.
        bbox_xywh_px: (4,) *processed* box (``process_bbox``), original-image pixels.
        kp2d_img_px: (J, 2) 2D keypoints in the dataset's native convention, original-image pixels.
        kp2d_valid: (J,) bool.
        joints_cam_m: (J, 3) absolute 3D joints in the original camera frame (metres), same convention,
            or ``None`` for a dataset without 3D.
        joints_valid: (J,) bool or ``None``.
        smpl: SMPL fit (GT or pseudo-GT) in the original camera frame, or ``None``.
        cam_focal_px, cam_princpt_px: (2,) the real camera intrinsics (pixels), or ``None`` when unknown.
    """

    sample_id: str
    image_path: Path
    img_hw: tuple[int, int]
    bbox_xywh_px: np.ndarray
    kp2d_img_px: np.ndarray
    kp2d_valid: np.ndarray
    joints_cam_m: np.ndarray | None = None
    joints_valid: np.ndarray | None = None
    smpl: SmplParams | None = None
    cam_focal_px: np.ndarray | None = None
    cam_princpt_px: np.ndarray | None = None


#: Shape sanity bound: SMPL targets with any ``|beta| > 3`` get ``betas = 0`` (mks0601 Hand4Whole
#: ``common/utils/preprocessing.py::process_human_model_output``; SPIN ``datasets/base_dataset.py``).
MAX_ABS_BETA = 3.0


def sanitize_betas(betas: np.ndarray, max_abs: float = MAX_ABS_BETA) -> tuple[np.ndarray, bool]:
    """mks0601 / SPIN shape sanity reset: ``(zeros, True)`` when any ``|beta| > max_abs``, else
    ``(betas, False)`` (the first ten coefficients, float64, unchanged)."""
    betas = np.asarray(betas, dtype=np.float64)[:10]
    if np.any(np.abs(betas) > max_abs):
        return np.zeros_like(betas), True
    return betas, False


def count_summary(name: str, loaded: int, skipped: dict[str, str]) -> str:
    """``"<name>: loaded N, skipped M: <reason>: k, ..."`` (reasons by count, then name)."""
    line = f"{name}: loaded {loaded}, skipped {len(skipped)}"
    counts = sorted(Counter(skipped.values()).items(), key=lambda kv: (-kv[1], kv[0]))
    if counts:
        line += ": " + ", ".join(f"{reason}: {count}" for reason, count in counts)
    return line


def _f32(value: Any) -> torch.Tensor:
    """float32 tensor copy of a numpy array / tensor / sequence."""
    if torch.is_tensor(value):
        return value.detach().to(torch.float32).clone()
    return torch.from_numpy(np.array(value, dtype=np.float32))


class PersonCropDataset(Dataset):
    """Base class: records -> Samples with augmentation and target conventions.

    Subclasses set ``name`` and ``native_convention`` and call :meth:`_set_records` from ``__init__``.

    Args:
        input_hw: crop (height, width) in pixels.
        convention: keypoint convention of ``kp2d_*`` and ``joints_cam_*`` in the Sample
            (``annot.keypoints`` name); ``None`` keeps the native one. Joints without a source are 0 / masked.
        augment: :class:`~annot.data.augment.AugmentConfig`; ``None`` = no augmentation.
        bbox_scale: mks0601 box enlargement (1.25).
        seed: seed of the augmentation draws, which are deterministic in ``(seed, epoch, index)``.
        body_model_type, body_model_path: the SMPL-format model whose root joint ``J0(beta)`` corrects
            ``transl`` under flips / rotations (only loaded for datasets with SMPL fits).
    """

    name = "person"
    native_convention = "coco17"
    #: What the estimators' validation scores against (:mod:`estimators.base`): ``"joints"`` = the
    #: dataset's 3D joints (MoCap GT; Human3.6M in the mks0601 protocol, even when SMPL pseudo-GTs are
    #: loaded), ``"smpl_mesh"`` = the mesh of the GT SMPL (3DPW).
    eval_gt = "joints"

    def __init__(self, input_hw: tuple[int, int] = (256, 192), convention: str | None = None,
                 augment: AugmentConfig | None = None, bbox_scale: float = 1.25, seed: int = 0,
                 body_model_type: str = "free", body_model_path: str | None = None) -> None:
        super().__init__()
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.convention = convention or self.native_convention
        get_convention(self.convention)  # fail early on an unknown name
        self.augment = augment or AugmentConfig()
        self.bbox_scale = float(bbox_scale)
        self.seed = int(seed)
        self.epoch = 0
        self.body_model_type = body_model_type
        self.body_model_path = body_model_path
        self._root_joint_models: dict[str, Any] = {}
        self.records: list[PersonRecord] = []
        self.skipped: dict[str, str] = {}
        self.pseudo_gt: dict[str, SmplParams] = {}
        self.cache: Any = None  # an annot.data.cache.PersonCache, see attach_cache
        self.beta_resets: list[str] = []  # sample ids whose SMPL target betas are zeroed (|beta| > 3)

    # ----------------------------------------------------------------- bookkeeping
    def _set_records(self, records: list[PersonRecord], skipped: dict[str, str]) -> None:
        self.records, self.skipped = records, skipped
        self._count_beta_resets()
        logging.getLogger(type(self).__module__).info(self.summary())

    def attach_pseudo_gt(self, params: dict[str, SmplParams]) -> int:
        """Use pseudo-GT fits theta* (original camera frame, keyed by sample id) as the samples' SMPL
        targets, in place of any fit the loader read (Algorithm 1 stage (b); two-stage NeuralAnnot).

        Returns:
            The number of records that got a pseudo-GT.
        """
        self.pseudo_gt = dict(params)
        self._count_beta_resets()
        return sum(r.sample_id in self.pseudo_gt for r in self.records)

    def _count_beta_resets(self) -> None:
        """Record (in ``beta_resets``) the samples whose SMPL target has a ``|beta| > 3`` and is zeroed."""
        self.beta_resets = []
        for record in self.records:
            smpl = self.pseudo_gt.get(record.sample_id, record.smpl)
            if smpl is not None and sanitize_betas(smpl.betas)[1]:
                self.beta_resets.append(record.sample_id)

    def summary(self) -> str:
        """One line: ``"<name>: loaded N, skipped M: <reason>: k, ..."``, plus
        ``"; betas reset (|beta| > 3): K"`` when SMPL targets had their betas zeroed."""
        line = count_summary(self.name, len(self.records), self.skipped)
        if self.beta_resets:
            line += f"; betas reset (|beta| > {MAX_ABS_BETA:g}): {len(self.beta_resets)}"
        return line

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the augmentation draws."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def process_box(self, bbox_xywh: np.ndarray, img_hw: tuple[int, int]) -> np.ndarray | None:
        """mks0601 box processing for this dataset's input aspect ratio (``None`` = degenerate)."""
        aspect_wh = self.input_hw[1] / self.input_hw[0]
        return process_bbox(bbox_xywh, img_hw[1], img_hw[0], aspect_wh, scale=self.bbox_scale)

    def root_joint(self, betas: np.ndarray, gender: str = "neutral") -> np.ndarray:
        """``J0(beta)`` (3,) metres of the configured body model (neutral for the free model)."""
        from annot.body_models import RestRootJoint

        gender = "neutral" if self.body_model_type == "free" else gender
        if gender not in self._root_joint_models:
            self._root_joint_models[gender] = RestRootJoint(self.body_model_type, gender, self.body_model_path)
        return self._root_joint_models[gender](np.asarray(betas)[:10])

    # ----------------------------------------------------------------- items
    def read_image(self, record: PersonRecord) -> np.ndarray:
        """RGB uint8 (H, W, 3). Raises ValueError naming file and sample id when it cannot be decoded."""
        img = cv2.imread(str(record.image_path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if img is None:
            raise ValueError(f"{record.image_path}: cannot decode image ({self.name} sample_id {record.sample_id})")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _box(self, record: PersonRecord, params) -> np.ndarray:
        box = record.bbox_xywh_px
        if params.extreme_crop:
            names = get_convention(self.native_convention).joint_names
            tight = extreme_crop_box(record.kp2d_img_px, record.kp2d_valid, names, params.extreme_crop)
            processed = None if tight is None else self.process_box(tight, record.img_hw)
            box = box if processed is None else processed
        cx, cy = box[0] + box[2] / 2 + params.shift[0] * box[2], box[1] + box[3] / 2 + params.shift[1] * box[3]
        w, h = box[2] * params.scale, box[3] * params.scale
        return np.array([cx - w / 2, cy - h / 2, w, h])

    def attach_cache(self, cache: Any) -> None:
        """Take crops from a pre-cropped person cache (:class:`annot.data.cache.PersonCache`) instead of
        decoding full images; ``None`` detaches. Targets stay identical, the image equal up to interpolation.

        Raises:
            ValueError: the cache was built from other records / dataset / input size (``check_dataset``).
        """
        if cache is not None:
            cache.check_dataset(self)
        self.cache = cache

    def _crop(self, record: PersonRecord, box: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
        """``(crop (H, W, 3) uint8, img_to_crop (2, 3))`` as ``crop_image``: from the cache when attached."""
        if self.cache is not None:
            return self.cache.crop(record, box, self.input_hw, params.flip, params.rot_deg)
        img = self.read_image(record)
        return crop_image(img, box, self.input_hw, flip=params.flip, rot_deg=params.rot_deg)

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        params = sample_augment(self.augment, np.random.default_rng([self.seed, self.epoch, int(index)]))
        box = self._box(record, params)
        crop, img_to_crop = self._crop(record, box, params)
        crop = apply_color(crop, params.color)
        perm = np.asarray(get_convention(self.native_convention).flip_permutation() if params.flip
                          else range(len(record.kp2d_valid)), dtype=np.int64)
        kp_img, kp_valid = record.kp2d_img_px[perm], record.kp2d_valid[perm]
        kp_crop = apply_affine(kp_img, img_to_crop)
        out_h, out_w = self.input_hw
        inside = (kp_crop >= 0).all(axis=1) & (kp_crop[:, 0] < out_w) & (kp_crop[:, 1] < out_h)
        frame_map, scale_xy = frame_map_from_affine(img_to_crop)
        sample = self._2d_targets(kp_crop, kp_valid & inside, kp_img)
        sample.update(self._3d_targets(record, perm, frame_map))
        sample.update(self._smpl_targets(record, frame_map))
        sample.update(self._real_camera(record, img_to_crop, scale_xy))
        focal, princpt = crop_camera(self.input_hw)
        sample.update(
            img=torch.from_numpy(crop).permute(2, 0, 1).float().div_(255.0), bbox_xywh_px=_f32(box),
            crop_to_img=_f32(invert_affine(img_to_crop)), focal_px=_f32(focal), princpt_px=_f32(princpt),
            img_hw=torch.tensor(record.img_hw, dtype=torch.int64), flipped=torch.tensor(params.flip),
            dataset=self.name, sample_id=record.sample_id, image_path=str(record.image_path))
        return sample  # type: ignore[return-value]

    def _convert(self, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, has_src = convert(values, self.native_convention, self.convention)
        mask_out, _ = convert(mask.astype(np.float64)[:, None], self.native_convention, self.convention)
        return out, (mask_out[:, 0] > 0) & has_src

    def _2d_targets(self, kp_crop: np.ndarray, mask: np.ndarray, kp_img: np.ndarray) -> dict[str, torch.Tensor]:
        kp_crop_c, mask_c = self._convert(kp_crop, mask)
        kp_img_c, _ = self._convert(kp_img, mask)
        return {"kp2d_px": _f32(kp_crop_c), "kp2d_mask": _f32(mask_c), "kp2d_img_px": _f32(kp_img_c)}

    def _3d_targets(self, record: PersonRecord, perm: np.ndarray, frame_map: np.ndarray) -> dict[str, torch.Tensor]:
        num = get_convention(self.convention).num_joints
        if record.joints_cam_m is None:
            return {"joints_cam_m": torch.zeros(num, 3), "joints_cam_mask": torch.zeros(num),
                    "root_cam_m": torch.zeros(3)}
        joints = (record.joints_cam_m @ frame_map.T)[perm]
        valid = np.asarray(record.joints_valid, dtype=bool)[perm]
        root_name = get_convention(self.native_convention).root
        root = joints[get_convention(self.native_convention).index(root_name)] if root_name else joints[valid].mean(0)
        rel, mask = self._convert(joints - root, valid)
        return {"joints_cam_m": _f32(rel), "joints_cam_mask": _f32(mask), "root_cam_m": _f32(root)}

    def _smpl_targets(self, record: PersonRecord, frame_map: np.ndarray) -> dict[str, Any]:
        smpl = self.pseudo_gt.get(record.sample_id, record.smpl)
        if smpl is None:
            return {"smpl_pose_rotvec": torch.zeros(24, 3), "smpl_betas": torch.zeros(10),
                    "smpl_transl_m": torch.zeros(3), "smpl_valid": torch.tensor(0.0), "smpl_gender": "neutral"}
        pose, transl = smpl.pose_rotvec, smpl.transl_m
        betas, _ = sanitize_betas(smpl.betas)  # mks0601 / SPIN: any |beta| > 3 -> betas = 0 (counted at load)
        if not np.allclose(frame_map, np.eye(3)):
            pose, transl = transform_smpl(pose, transl, self.root_joint(betas, smpl.gender), frame_map)
        return {"smpl_pose_rotvec": _f32(pose), "smpl_betas": _f32(betas),
                "smpl_transl_m": _f32(transl), "smpl_valid": torch.tensor(1.0), "smpl_gender": smpl.gender}

    @staticmethod
    def _real_camera(record: PersonRecord, img_to_crop: np.ndarray, scale_xy: np.ndarray) -> dict[str, torch.Tensor]:
        """The dataset's real camera in crop pixels: ``focal * s`` and the principal point through the
        affine; exact for the augmented 3D targets when ``fx == fy`` (see :mod:`annot.data.augment`)."""
        if record.cam_focal_px is None or record.cam_princpt_px is None:
            return {"real_focal_crop_px": torch.zeros(2), "real_princpt_crop_px": torch.zeros(2),
                    "real_cam_valid": torch.tensor(0.0)}
        return {"real_focal_crop_px": _f32(np.asarray(record.cam_focal_px) * scale_xy),
                "real_princpt_crop_px": _f32(apply_affine(np.asarray(record.cam_princpt_px), img_to_crop)),
                "real_cam_valid": torch.tensor(1.0)}
