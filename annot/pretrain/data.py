"""The pretraining data (free only): synthetic renders of the ``mocap`` split kind with their COCO-17 targets, and
the real COCO sample people; the mean-pose baseline.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from annot.data.augment import AugmentConfig
from annot.data.crop import apply_affine, crop_affine
from annot.data.person import PersonCropDataset, PersonRecord
from annot.io.atomic import atomic_write_json
from annot.pretrain.config import PretrainConfig
from annot.pretrain.heatmaps import pck

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- data
class SyntheticCoco17(PersonCropDataset):
    """COCO-17 crops of a synthetic ``mocap`` render (3DPW layout), targets from the GT SMPL.

    The 3DPW loader (:class:`annot.data.pw3d.PW3D`) reads the records (box, GT SMPL in the camera
    frame, image camera); the free body model's COCO-17 regressor gives the 3D keypoints, projected
    with ``x = X / Z f + c`` to original-image pixels; a keypoint is valid when in front of the camera
    and inside the image. Everything else (box, augmentation, crop, ``kp2d_px`` in crop pixels) is
    :class:`annot.data.person.PersonCropDataset`'s; the SMPL and 3D fields of the Samples are left
    empty (2D pretraining needs none).

    Args:
        root: the split root written by ``annot.benchmarks.synthetic.make_split("mocap", ...)``.
        body: the free :class:`annot.body_models.BodyModel` (default: a new one).
        input_hw, augment, seed: see :class:`PersonCropDataset`.

    Raises:
        FileNotFoundError / ValueError: from :class:`annot.data.pw3d.PW3D`.
    """

    name = "synthetic_mocap"
    native_convention = "coco17"

    def __init__(self, root: str | Path, body: Any = None, input_hw: tuple[int, int] = (256, 192),
                 augment: AugmentConfig | None = None, seed: int = 0) -> None:
        from annot.body_models import BodyModel
        from annot.data.pw3d import PW3D, inside_image, project_joints

        super().__init__(input_hw, None, augment, 1.25, seed)
        source = PW3D(root, split="train", input_hw=input_hw)
        body = body if body is not None else BodyModel.from_config("free")
        records: list[PersonRecord] = []
        for rec in source.records:
            smpl = rec.smpl
            pose = torch.as_tensor(np.asarray(smpl.pose_rotvec), dtype=torch.float32).reshape(1, 72)
            with torch.no_grad():
                betas = torch.as_tensor(np.asarray(smpl.betas)[None], dtype=torch.float32)
                transl = torch.as_tensor(np.asarray(smpl.transl_m)[None], dtype=torch.float32)
                out = body(pose[:, :3], pose[:, 3:], betas, transl)
                joints, has = body.regress(out.vertices_m, "coco17")
            kp, front = project_joints(joints[0].double().numpy(), rec.cam_focal_px, rec.cam_princpt_px)
            valid = inside_image(kp, front & has.numpy().astype(bool), rec.img_hw)
            records.append(PersonRecord(rec.sample_id, rec.image_path, rec.img_hw, rec.bbox_xywh_px, kp,
                                        valid))
        self.root = source.root
        self._set_records(records, dict(source.skipped))


def _augment(cfg: PretrainConfig) -> AugmentConfig:
    a = cfg.augment
    return AugmentConfig(enabled=True, scale_factor=a.scale_factor, rot_factor_deg=a.rot_factor_deg,
                         rot_prob=a.rot_prob, flip_prob=a.flip_prob, color_factor=a.color_factor)


def _render_provenance(cfg: PretrainConfig, seed: int, images: int) -> dict:
    s = cfg.synthetic
    return {"split_kind": "mocap", "seed": seed, "images": images, "image_hw": list(s.image_hw),
            "photos_dir": s.photos_dir, "cmu_root": s.cmu_root, "cmu_frames": s.cmu_frames,
            "cmu_fit_iters": s.cmu_fit_iters, "version": 1}


def render_synthetic(cfg: PretrainConfig, body: Any = None, progress: bool = True) -> dict[str, Path]:
    """Render (or reuse) the training and held-out synthetic sets under ``cfg.out_dir``.

    Uses :mod:`annot.benchmarks.synthetic`'s public API: ``load_pose_bank`` (cached in ``<out_dir>/pose_bank.npz``),
    ``Backgrounds`` and ``make_split("mocap", ...)`` with ``SyntheticConfig(seed=train_seed)`` and
    ``SyntheticConfig(seed=heldout_seed)``. A set is reused when ``<set>/pretrain_render.json``
    records the same values (seed, size, image size, sources).

    Returns:
        ``{"train": root, "heldout": root}`` (3DPW-layout roots, ``3DPW_train.json``).

    Raises:
        FileNotFoundError: missing CMU clips or background photos (from :mod:`annot.benchmarks.synthetic`).
        RuntimeError: from the renderer or the sampler.
    """
    from tqdm import tqdm

    from annot.benchmarks import synthetic as syn
    from annot.body_models import BodyModel

    out = Path(cfg.out_dir)
    s = cfg.synthetic
    wanted = {"train": (s.train_seed, s.train_images), "heldout": (s.heldout_seed, s.heldout_images)}
    roots: dict[str, Path] = {}
    todo = []
    for name, (seed, images) in wanted.items():
        folder = out / f"synthetic_{name}_seed{seed}"
        stamp = folder / "pretrain_render.json"
        roots[name] = folder / "mocap"
        ok = stamp.is_file() and json.loads(stamp.read_text()) == _render_provenance(cfg, seed, images)
        if not ok:
            todo.append((name, seed, images, folder))
    if not todo:
        return roots
    body = body if body is not None else BodyModel.from_config("free")
    base = syn.SyntheticConfig(seed=s.train_seed, sizes={"mocap": 1, "itw": 0, "test": 0},
                               image_hw=tuple(s.image_hw), photos_dir=s.photos_dir, pose_source="cmu_fit",
                               cmu_root=s.cmu_root, cmu_frames=s.cmu_frames,
                               cmu_fit_iters=s.cmu_fit_iters, save_masks=False)
    log.info("pretrain: CMU pose bank (cached in %s)", out / syn.POSE_BANK)
    out.mkdir(parents=True, exist_ok=True)
    bank = syn.load_pose_bank(base, body, out / syn.POSE_BANK)
    backgrounds = syn.Backgrounds(s.photos_dir, base.color_noise_std)
    from annot.render import MeshRenderer

    renderer = MeshRenderer()
    try:
        for name, seed, images, folder in todo:
            config = syn.SyntheticConfig(**{**{k: getattr(base, k) for k in base.__dataclass_fields__},
                                            "seed": seed, "sizes": {"mocap": images, "itw": 0, "test": 0}})
            desc = f"render {name} (seed {seed})"
            with tqdm(total=images, desc=desc, unit="img", disable=not progress) as bar:
                syn.make_split("mocap", folder, config, body, renderer, bank, backgrounds, bar.update)
            atomic_write_json(folder / "pretrain_render.json", _render_provenance(cfg, seed, images))
    finally:
        renderer.close()
    return roots


def build_datasets(cfg: PretrainConfig, roots: dict[str, Path],
                   body: Any = None) -> tuple[Dataset, SyntheticCoco17, list]:
    """``(train, heldout, parts)``: the training mix (synthetic train + ``coco.repeat`` COCO copies, all
    augmented), the un-augmented held-out synthetic set, and the list of training parts (for
    ``set_epoch``).

    Raises:
        FileNotFoundError: missing renders or COCO samples (names the path and config key).
    """
    from annot.data.coco import COCOKeypoints

    hw = tuple(int(v) for v in cfg.input_hw)
    aug = _augment(cfg)
    parts: list[PersonCropDataset] = [SyntheticCoco17(roots["train"], body, hw, aug, seed=cfg.seed)]
    for k in range(cfg.coco.repeat):
        parts.append(COCOKeypoints(cfg.coco.root, cfg.coco.ann_file, cfg.coco.img_dir, input_hw=hw,
                                   augment=aug, seed=cfg.seed + 1 + k))
    heldout = SyntheticCoco17(roots["heldout"], body, hw, None, seed=0)
    return ConcatDataset(parts), heldout, parts


def mean_pose_baseline(train: SyntheticCoco17, heldout_gt_px: Tensor, heldout_mask: Tensor,
                       alpha: float) -> float:
    """PCK of the mean-pose guess: every held-out keypoint at its mean un-augmented training crop
    position (crop pixels, from the records' boxes through :func:`annot.data.crop.crop_affine`)."""
    out_h, out_w = train.input_hw
    total, count = np.zeros((17, 2)), np.zeros(17)
    for rec in train.records:
        x, y, w, h = rec.bbox_xywh_px
        kp = apply_affine(rec.kp2d_img_px, crop_affine((x + w / 2, y + h / 2), (w, h), (out_w, out_h)))
        total[rec.kp2d_valid] += kp[rec.kp2d_valid]
        count += rec.kp2d_valid
    mean = torch.as_tensor(total / np.maximum(count, 1)[:, None], dtype=torch.float32)
    correct, counted = pck(mean.expand_as(heldout_gt_px), heldout_gt_px, heldout_mask, alpha)
    return float(correct.sum() / counted.sum().clamp(min=1))
