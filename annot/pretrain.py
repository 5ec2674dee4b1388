"""The second recipe with free data: pretrain a SimpleBaseline 2D pose network, keep its backbone.

The Three Recipes' second recipe (Moon et al., CVPRW 2022, "Three Recipes for Better 3D Pseudo-GTs
of 3D Human Mesh Estimation in the Wild") initialises the annotator's backbone from a 2D pose
network (SimpleBaseline ``pose_resnet``, trained on COCO) instead of ImageNet. No free checkpoint
exists, so this module trains one on free data only and writes it with the ``pose_resnet`` key names,
which :func:`annot.nets.resnet.load_backbone_weights` (``model.backbone_weights``) takes unchanged.

Network and training follow Xiao et al., ECCV 2018 and ``microsoft/human-pose-estimation.pytorch``
(``lib/models/pose_resnet.py``, ``lib/dataset/JointsDataset.py::generate_target``,
``lib/core/loss.py::JointsMSELoss``, ``lib/core/inference.py::get_final_preds``; read as a
reference, re-written): :class:`annot.nets.pose_resnet.PoseResNet`, 17 COCO keypoints as Gaussian
heatmaps at stride 4, MSE with per-joint target weights, Adam, step decay x0.1 twice, augmentation
scale ``clip(N 0.3 + 1, 0.7, 1.3)``, rotation ``clip(N 40, +-80)`` deg with probability 0.6, flip 0.5.

Data (free only):

* synthetic renders of :mod:`annot.synthetic` (its public API: ``SyntheticConfig``, ``load_pose_bank``,
  ``make_split``), **only the** ``mocap`` **split kind**: its poses come from the CMU clips that are
  not held out (every third clip, by name, is held out for the benchmark's ``itw`` / ``test``
  splits), and the seeds (:data:`TRAIN_SEED` 1000 for training, :data:`HELDOUT_SEED` 2000 for the
  held-out PCK set) are disjoint from the benchmark's small seeds (0, 1, 2, ...). So the pretraining
  sees **never the ITW or test clips, never a benchmark seed**. The 2D targets are the free body
  model's COCO-17 keypoints (``BodyModel.regress(vertices, "coco17")``) of the GT SMPL the 3DPW
  loader (:class:`annot.data.pw3d.PW3D`) reads, projected with the image camera it reads;
* the real COCO sample people (``../shared/data/coco_samples``, :class:`annot.data.coco.COCOKeypoints`),
  repeated ``coco.repeat`` times per epoch with independent augmentation draws.

Crops, boxes and augmentation are the project's (:class:`annot.data.person.PersonCropDataset`,
:mod:`annot.data.crop`, :mod:`annot.data.augment`): RGB in [0, 1], no mean/std normalisation (as the
annotator feeds its backbone).

Frames and units: keypoints ``kp2d_px`` are in *crop* pixels (x right, y down; the crop of
``input_hw``), heatmap pixel ``(i, j)`` represents the crop point ``(stride * j, stride * i)``
(SimpleBaseline: ``mu = int(x / stride + 0.5)`` when building targets, ``x = u * stride`` when
decoding).

PCK (the standard we report): **PCK@0.5 of the torso diameter**, a keypoint is correct when its
crop-pixel error is at most ``0.5 * ||GT L_Shoulder - GT R_Hip||`` (the torso diameter of DeepPose,
Toshev & Szegedy 2014), averaged over the valid keypoints of the held-out synthetic set; PCK@0.2 is
reported too. A mean-pose baseline (every keypoint at its mean training crop position) gives the
chance level.

Checkpoint (:func:`pretrain_backbone`, written atomically with :mod:`annot.io.atomic`)::

    {"state_dict": PoseResNet state dict (conv1, bn1, layer1..4, deconv_layers.*, final_layer.*),
     "provenance": {data, seeds, steps, config, pck, timing, ...}}   # plain types: weights_only loads it
"""
from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from annot.app.runtime import worker_init_fn
from annot.io.atomic import atomic_write_bytes, atomic_write_json
from annot.data.augment import AugmentConfig
from annot.data.crop import apply_affine, crop_affine
from annot.data.person import PersonCropDataset, PersonRecord
from annot.keypoints import get_convention
from annot.nets.pose_resnet import PoseResNet

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHECKPOINT", "DEFAULT_CONFIG", "HELDOUT_SEED", "TRAIN_SEED", "PretrainConfig",
    "PoseResNetModule", "SyntheticCoco17", "build_datasets", "checkpoint_name", "decode_heatmaps",
    "ensure_pretrained_backbone", "evaluate_pck", "gaussian_heatmaps", "joints_mse_loss",
    "load_pretrain_config", "mean_pose_baseline", "pck", "pretrain_backbone", "render_synthetic",
    "save_keypoint_png", "write_checkpoint",
]

#: where the benchmark looks for the ResNet-18 checkpoint (relative to the repository root).
DEFAULT_CHECKPOINT = "outputs/pretrain-backbone/pose_resnet_18_free.pth"
#: the OmegaConf file of ``tools/pretrain_backbone.py`` (values equal to :class:`PretrainConfig`'s defaults).
DEFAULT_CONFIG = "configs/pretrain/backbone.yaml"
#: synthetic seeds: far from the benchmark's (0, 1, 2, ...), and from each other.
TRAIN_SEED = 1000
HELDOUT_SEED = 2000
COCO17 = get_convention("coco17")
L_SHOULDER, R_HIP = COCO17.index("L_Shoulder"), COCO17.index("R_Hip")
#: COCO skeleton (joint index pairs) for the keypoint figure.
COCO17_LIMBS = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))


def checkpoint_name(depth: int) -> str:
    """File name of the checkpoint of ResNet-``depth``: ``pose_resnet_<depth>_free.pth``."""
    return f"pose_resnet_{int(depth)}_free.pth"


# ------------------------------------------------------------------------------------------- config
@dataclass
class SyntheticPart:
    """Synthetic renders (``mocap`` split kind of :mod:`annot.synthetic`).

    ``train_seed`` / ``heldout_seed``: ``SyntheticConfig.seed`` of the training and held-out renders;
    ``train_images`` / ``heldout_images``: images (one person each); ``image_hw``: rendered image
    (H, W) pixels; ``photos_dir``, ``cmu_root``, ``cmu_frames``, ``cmu_fit_iters``: as
    ``SyntheticConfig`` (the pose bank is cached in ``<out_dir>/pose_bank.npz``).
    """

    train_seed: int = TRAIN_SEED
    heldout_seed: int = HELDOUT_SEED
    train_images: int = 256
    heldout_images: int = 64
    image_hw: tuple[int, int] = (320, 256)
    photos_dir: str | None = "../shared/data/photos"
    cmu_root: str = "../shared/data/mocap_cmu"
    cmu_frames: int = 512
    cmu_fit_iters: int = 200


@dataclass
class CocoPart:
    """The real COCO sample people: ``root``, ``ann_file`` (relative to root), ``img_dir``; ``repeat``
    copies per epoch (0 = not used), each with its own augmentation seed."""

    root: str = "../shared/data/coco_samples"
    ann_file: str = "test_coco.json"
    img_dir: str = ""
    repeat: int = 4


@dataclass
class AugmentPart:
    """SimpleBaseline augmentation (reference-spec E) in :class:`annot.data.augment.AugmentConfig` terms."""

    scale_factor: float = 0.3
    rot_factor_deg: float = 40.0
    rot_prob: float = 0.6
    flip_prob: float = 0.5
    color_factor: float = 0.2


@dataclass
class TrainPart:
    """Optimisation: ``steps`` of ``batch_size``; Adam ``lr`` decayed x0.1 at the fractions
    ``lr_decay_at`` of the steps (SimpleBaseline: epochs 90, 120 of 140); ``threads`` torch CPU
    threads (0 = leave as is); Lightning ``accelerator`` / ``devices`` / ``precision``;
    ``num_workers`` of the DataLoader."""

    steps: int = 350
    batch_size: int = 8
    lr: float = 1e-3
    lr_decay_at: tuple[float, ...] = (0.65, 0.85)
    num_workers: int = 0
    threads: int = 2
    accelerator: str = "cpu"
    devices: int = 1
    precision: str = "32-true"


@dataclass
class PretrainConfig:
    """Everything :func:`pretrain_backbone` needs (``configs/pretrain/backbone.yaml`` holds the same values).

    ``depth``: ResNet depth (18 for CPU, 50 = SimpleBaseline's paper size); ``input_hw``: crop (H, W)
    pixels; ``sigma``: Gaussian std in heatmap pixels; ``seed``: torch / sampler / augmentation seed;
    ``out_dir``: renders, checkpoint, figure and summary; ``pck_alpha``: PCK threshold as a fraction
    of the torso diameter; ``figure_images``: held-out crops in the PNG.
    """

    depth: int = 18
    input_hw: tuple[int, int] = (128, 96)
    sigma: float = 2.0
    seed: int = 0
    out_dir: str = "outputs/pretrain-backbone"
    pck_alpha: float = 0.5
    figure_images: int = 8
    synthetic: SyntheticPart = field(default_factory=SyntheticPart)
    coco: CocoPart = field(default_factory=CocoPart)
    augment: AugmentPart = field(default_factory=AugmentPart)
    train: TrainPart = field(default_factory=TrainPart)


def load_pretrain_config(path: str | Path | None = DEFAULT_CONFIG,
                         overrides: Sequence[str] = ()) -> PretrainConfig:
    """:class:`PretrainConfig` from a yaml (``None``: the defaults) and OmegaConf dotlist overrides.

    Args:
        path: yaml file (keys of :class:`PretrainConfig`), or ``None``.
        overrides: e.g. ``["depth=50", "input_hw=[256,192]", "train.steps=20000"]``.

    Raises:
        FileNotFoundError: ``path`` is missing. ValueError: unknown keys or wrong types (OmegaConf's
            message, which names the key), or invalid values (see :func:`_check`).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = OmegaConf.structured(PretrainConfig)
    try:
        layers = [schema]
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such pretraining config (flag --config)")
            layers.append(OmegaConf.load(path))
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
    except OmegaConfBaseException as err:
        raise ValueError(f"pretraining config: {err}") from err
    cfg = OmegaConf.to_object(merged)
    _check(cfg)
    return cfg  # type: ignore[return-value]


def _check(cfg: PretrainConfig) -> None:
    """Raise ValueError on values that cannot work (names the key)."""
    from annot.nets.resnet import RESNET_SPECS

    if cfg.depth not in RESNET_SPECS:
        raise ValueError(f"pretraining config: depth={cfg.depth}; supported: {sorted(RESNET_SPECS)}")
    if len(cfg.input_hw) != 2 or any(int(v) % 32 for v in cfg.input_hw):
        raise ValueError(f"pretraining config: input_hw={cfg.input_hw} must be two multiples of 32")
    if cfg.sigma <= 0 or not 0 < cfg.pck_alpha:
        raise ValueError(f"pretraining config: sigma={cfg.sigma} and pck_alpha={cfg.pck_alpha} must be > 0")
    if cfg.synthetic.train_images < 1 or cfg.synthetic.heldout_images < 1:
        raise ValueError("pretraining config: synthetic.train_images and synthetic.heldout_images "
                         "must be >= 1")
    if cfg.synthetic.train_seed == cfg.synthetic.heldout_seed:
        raise ValueError("pretraining config: synthetic.train_seed and synthetic.heldout_seed must differ")
    if cfg.train.steps < 1 or cfg.train.batch_size < 1 or cfg.train.lr <= 0:
        raise ValueError("pretraining config: train.steps, train.batch_size >= 1 and train.lr > 0 needed")


# ------------------------------------------------------------------------------------------ heatmaps
def gaussian_heatmaps(kp2d_px: Tensor, kp2d_mask: Tensor, heatmap_hw: tuple[int, int], stride: float,
                      sigma: float) -> tuple[Tensor, Tensor]:
    """SimpleBaseline Gaussian targets (``JointsDataset.generate_target``, ``target_type='gaussian'``).

    For a keypoint at crop pixel ``(x, y)`` the centre is the heatmap pixel
    ``mu = (floor(x / stride + 0.5), floor(y / stride + 0.5))``; the target is
    ``exp(-((u - mu_x)^2 + (v - mu_y)^2) / (2 sigma^2))`` inside the ``(6 sigma + 1)``-wide square
    around ``mu`` (``|u - mu_x| <= 3 sigma`` and ``|v - mu_y| <= 3 sigma``) and 0 outside. The target
    weight is 0 for a masked keypoint and for one whose square lies entirely outside the heatmap
    (``mu - 3 sigma >= size`` or ``mu + 3 sigma + 1 < 0``, the reference's test), else 1.

    Args:
        kp2d_px: (B, J, 2) crop pixels (x, y).
        kp2d_mask: (B, J) 1 / 0 (or bool).
        heatmap_hw: (h, w) heatmap size in heatmap pixels.
        stride: crop pixels per heatmap pixel (4 for SimpleBaseline).
        sigma: std in heatmap pixels (2 for 64 x 48 heatmaps).

    Returns:
        ``(heatmaps (B, J, h, w) float32 in [0, 1], target_weight (B, J) float32)``; masked or
        out-of-range keypoints have all-zero heatmaps.

    Raises:
        ValueError: ``kp2d_px`` not (B, J, 2) or ``kp2d_mask`` not (B, J).
    """
    if kp2d_px.ndim != 3 or kp2d_px.shape[-1] != 2 or tuple(kp2d_mask.shape) != tuple(kp2d_px.shape[:2]):
        raise ValueError(f"gaussian_heatmaps: need kp2d_px (B, J, 2) and kp2d_mask (B, J), got "
                         f"{tuple(kp2d_px.shape)} and {tuple(kp2d_mask.shape)}")
    height, width = int(heatmap_hw[0]), int(heatmap_hw[1])
    mu = torch.floor(kp2d_px.float() / stride + 0.5)  # (B, J, 2)
    radius = 3.0 * sigma
    valid = kp2d_mask.bool() & ~((mu[..., 0] - radius >= width) | (mu[..., 1] - radius >= height)
               | (mu[..., 0] + radius + 1 < 0) | (mu[..., 1] + radius + 1 < 0))
    u = torch.arange(width, dtype=torch.float32, device=kp2d_px.device)
    v = torch.arange(height, dtype=torch.float32, device=kp2d_px.device)
    du = u.view(1, 1, 1, width) - mu[..., 0, None, None]  # (B, J, 1, w)
    dv = v.view(1, 1, height, 1) - mu[..., 1, None, None]  # (B, J, h, 1)
    heatmaps = torch.exp(-(du ** 2 + dv ** 2) / (2.0 * sigma ** 2))
    heatmaps = heatmaps * ((du.abs() <= radius) & (dv.abs() <= radius))
    weight = valid.float()
    return heatmaps * weight[..., None, None], weight


def decode_heatmaps(heatmaps: Tensor, stride: float) -> tuple[Tensor, Tensor]:
    """Heatmaps -> keypoints by argmax with the quarter-pixel shift (``get_max_preds`` + ``get_final_preds``).

    The argmax ``(u, v)`` (first maximum in row-major order) is shifted by ``0.25 * sign(H[v, u+1] -
    H[v, u-1])`` in x when ``1 <= u <= w - 2`` and likewise in y, then scaled to crop pixels:
    ``x = u * stride``, ``y = v * stride``.

    Args:
        heatmaps: (B, J, h, w).
        stride: crop pixels per heatmap pixel.

    Returns:
        ``(kp2d_px (B, J, 2) crop pixels, maxvals (B, J))``.

    Raises:
        ValueError: ``heatmaps`` is not 4-D.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"decode_heatmaps: need heatmaps (B, J, h, w), got {tuple(heatmaps.shape)}")
    batch, joints, height, width = heatmaps.shape
    flat = heatmaps.detach().float().reshape(batch, joints, -1)
    maxvals, idx = flat.max(dim=-1)
    u, v = idx % width, torch.div(idx, width, rounding_mode="floor")
    coords = torch.stack([u, v], dim=-1).float()
    hm = heatmaps.detach().float()
    bj = torch.arange(batch * joints, device=hm.device)
    hm2 = hm.reshape(batch * joints, height, width)
    uf, vf = u.reshape(-1), v.reshape(-1)
    ok_x = (uf >= 1) & (uf <= width - 2)
    ok_y = (vf >= 1) & (vf <= height - 2)
    dx = hm2[bj, vf, (uf + 1).clamp(max=width - 1)] - hm2[bj, vf, (uf - 1).clamp(min=0)]
    dy = hm2[bj, (vf + 1).clamp(max=height - 1), uf] - hm2[bj, (vf - 1).clamp(min=0), uf]
    shift = torch.stack([torch.sign(dx) * ok_x, torch.sign(dy) * ok_y], dim=-1) * 0.25
    coords = (coords.reshape(-1, 2) + shift).reshape(batch, joints, 2)
    return coords * stride, maxvals


def joints_mse_loss(heatmaps_pred: Tensor, heatmaps_gt: Tensor, target_weight: Tensor) -> Tensor:
    """SimpleBaseline ``JointsMSELoss(use_target_weight=True)``: ``0.5 * mean((w * (pred - gt))^2)``
    over batch, joints and heatmap pixels. Shapes (B, J, h, w), (B, J, h, w), (B, J) -> scalar."""
    diff = (heatmaps_pred - heatmaps_gt) * target_weight[..., None, None]
    return 0.5 * diff.pow(2).mean()


def pck(pred_px: Tensor, gt_px: Tensor, mask: Tensor, alpha: float = 0.5) -> tuple[Tensor, Tensor]:
    """PCK@alpha of the torso diameter (module docstring): per-keypoint correctness and its count mask.

    Args:
        pred_px, gt_px: (N, 17, 2) COCO-17 keypoints in the same pixel frame.
        mask: (N, 17) GT validity.
        alpha: threshold as a fraction of ``||gt[L_Shoulder] - gt[R_Hip]||``.

    Returns:
        ``(correct (N, 17) bool, counted (N, 17) bool)``; a person without both torso keypoints (or
        with a zero torso) is not counted. ``correct[counted].float().mean()`` is the PCK.
    """
    torso = (gt_px[:, L_SHOULDER] - gt_px[:, R_HIP]).norm(dim=-1)  # (N,)
    has_torso = mask[:, L_SHOULDER].bool() & mask[:, R_HIP].bool() & (torso > 0)
    counted = mask.bool() & has_torso[:, None]
    err = (pred_px - gt_px).norm(dim=-1)
    return (err <= alpha * torso[:, None]) & counted, counted


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
        root: the split root written by ``annot.synthetic.make_split("mocap", ...)``.
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

    Uses :mod:`annot.synthetic`'s public API: ``load_pose_bank`` (cached in ``<out_dir>/pose_bank.npz``),
    ``Backgrounds`` and ``make_split("mocap", ...)`` with ``SyntheticConfig(seed=train_seed)`` and
    ``SyntheticConfig(seed=heldout_seed)``. A set is reused when ``<set>/pretrain_render.json``
    records the same values (seed, size, image size, sources).

    Returns:
        ``{"train": root, "heldout": root}`` (3DPW-layout roots, ``3DPW_train.json``).

    Raises:
        FileNotFoundError: missing CMU clips or background photos (from :mod:`annot.synthetic`).
        RuntimeError: from the renderer or the sampler.
    """
    from tqdm import tqdm

    from annot import synthetic as syn
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


# -------------------------------------------------------------------------------------------- system
class PoseResNetModule(pl.LightningModule):
    """LightningModule training :class:`PoseResNet` on Gaussian heatmaps (SimpleBaseline recipe).

    Args:
        depth: ResNet depth; num_joints: 17; sigma: Gaussian std (heatmap pixels);
        lr: Adam learning rate (1e-3); max_steps: total steps; lr_decay_at: fractions of
        ``max_steps`` where the lr is multiplied by 0.1.

    Batches: :class:`annot.data.sample.Sample` dicts (``img`` (B, 3, H, W) RGB [0, 1], ``kp2d_px``
    (B, 17, 2) crop pixels, ``kp2d_mask`` (B, 17)). Logs ``train/loss/heatmap_mse`` (progress bar).
    The network is ``self.net``; ``self.net.state_dict()`` carries the ``pose_resnet`` names.
    """

    def __init__(self, depth: int = 18, num_joints: int = 17, sigma: float = 2.0, lr: float = 1e-3,
                 max_steps: int = 1000, lr_decay_at: Sequence[float] = (0.65, 0.85)) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = PoseResNet(depth, num_joints)
        self.sigma = float(sigma)
        self.lr = float(lr)
        self.milestones = sorted(int(round(f * max_steps)) for f in lr_decay_at)

    def forward(self, img: Tensor) -> Tensor:
        """``img`` (B, 3, H, W) -> heatmaps (B, J, H/4, W/4)."""
        return self.net(img)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        img = batch["img"]
        heatmaps_pred = self.net(img)
        hm_hw = tuple(heatmaps_pred.shape[-2:])
        heatmaps_gt, weight = gaussian_heatmaps(batch["kp2d_px"], batch["kp2d_mask"], hm_hw, self.net.stride,
                                                self.sigma)
        loss = joints_mse_loss(heatmaps_pred, heatmaps_gt, weight)
        self.log("train/loss/heatmap_mse", loss, prog_bar=True, batch_size=img.shape[0])
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        milestones = self.milestones
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.1 ** sum(step >= m for m in milestones))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _EpochSeeds(pl.Callback):
    """Calls ``set_epoch`` on the training parts so every epoch draws new augmentations."""

    def __init__(self, parts: list) -> None:
        self.parts = parts

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for part in self.parts:
            part.set_epoch(trainer.current_epoch)


@torch.no_grad()
def evaluate_pck(net: PoseResNet, dataset: Dataset, alpha: float = 0.5,
                 batch_size: int = 16) -> dict[str, Any]:
    """Held-out PCK of ``net`` (eval mode, no flip test) on ``dataset`` (COCO-17 Samples).

    Returns:
        ``{"pck": PCK@alpha, "pck@0.2": ..., "per_joint": {name: PCK@alpha}, "keypoints": N counted,
        "pred_px": (N, 17, 2), "gt_px": (N, 17, 2), "mask": (N, 17), "img": (min(N, 16), 3, H, W)}``;
        keypoints in crop pixels.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    preds, gts, masks, imgs = [], [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        heatmaps = net(batch["img"].to(device))
        kp, _ = decode_heatmaps(heatmaps, net.stride)
        preds.append(kp.cpu())
        gts.append(batch["kp2d_px"])
        masks.append(batch["kp2d_mask"])
        if sum(len(i) for i in imgs) < 16:
            imgs.append(batch["img"])
    net.train(was_training)
    pred, gt, mask = torch.cat(preds), torch.cat(gts), torch.cat(masks)
    correct, counted = pck(pred, gt, mask, alpha)
    correct02, _ = pck(pred, gt, mask, 0.2)
    per_joint = correct.sum(0).float() / counted.sum(0).clamp(min=1)
    n = counted.sum().clamp(min=1)
    return {"pck": float(correct.sum() / n), "pck@0.2": float(correct02.sum() / n),
            "per_joint": {name: round(float(v), 4) for name, v in zip(COCO17.joint_names, per_joint)},
            "keypoints": int(counted.sum()), "pred_px": pred, "gt_px": gt, "mask": mask,
            "img": torch.cat(imgs)[:16]}


def save_keypoint_png(path: str | Path, img: Tensor, pred_px: Tensor, gt_px: Tensor, mask: Tensor,
                      scale: int = 2) -> Path:
    """Write a PNG grid of crops with GT (green) and predicted (red) COCO-17 skeletons, atomically.

    Args:
        img: (N, 3, H, W) RGB in [0, 1]; pred_px, gt_px: (N, 17, 2) crop pixels; mask: (N, 17) GT validity.
        scale: the crops are enlarged by this factor for legibility.

    Raises:
        OSError: PNG encoding failed.
    """
    tiles = []
    for k in range(img.shape[0]):
        rgb = (img[k].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
        tile = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_NEAREST)
        for kp, color, use_mask in ((gt_px[k], (0, 200, 0), True), (pred_px[k], (0, 0, 255), False)):
            pts = (kp.numpy() * scale).round().astype(int)
            ok = mask[k].bool().numpy() if use_mask else np.ones(17, bool)
            for a, b in COCO17_LIMBS:
                if ok[a] and ok[b]:
                    cv2.line(tile, tuple(pts[a]), tuple(pts[b]), color, 2, cv2.LINE_AA)
            for j in np.flatnonzero(ok):
                cv2.circle(tile, tuple(pts[j]), 3, color, -1, cv2.LINE_AA)
        tiles.append(tile)
    cols = min(4, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    h, w = tiles[0].shape[:2]
    grid = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    cv2.putText(grid, "green: GT  red: predicted", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", grid)
    if not ok:
        raise OSError(f"could not encode {path}")
    return atomic_write_bytes(path, buf.tobytes())


# ------------------------------------------------------------------------------------------ pipeline
def write_checkpoint(path: str | Path, net: PoseResNet, provenance: dict[str, Any]) -> Path:
    """Write ``{"state_dict": net.state_dict() (CPU, pose_resnet names), "provenance": provenance}``
    atomically with ``torch.save``; ``provenance`` must hold plain types only (str, numbers, lists,
    dicts, None) so that ``torch.load(weights_only=True)`` (the backbone loader) reads the file.

    Raises:
        TypeError: ``provenance`` holds a value JSON cannot write (checked before writing).
    """
    # The JSON round trip raises TypeError for anything JSON cannot write, and turns str / int / float
    # subclasses (e.g. torch.__version__, a TorchVersion) into the plain types weights_only accepts.
    provenance = json.loads(json.dumps(provenance))
    buf = io.BytesIO()
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "provenance": provenance}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def pretrain_backbone(cfg: PretrainConfig, progress: bool = True) -> dict[str, Any]:
    """Render the data, train :class:`PoseResNet`, evaluate PCK, write checkpoint + figure + summary.

    Deterministic from ``cfg.seed`` (and the synthetic seeds) on a given machine and thread count:
    renders are seeded per sample, training runs with ``pl.seed_everything(cfg.seed)`` and
    ``deterministic=True``.

    Writes (under ``cfg.out_dir``): ``pose_resnet_<depth>_free.pth`` (atomic; ``state_dict`` +
    ``provenance``), ``pose_resnet_<depth>_free_keypoints.png`` (held-out GT vs predicted),
    ``pose_resnet_<depth>_free.json`` (the provenance), the renders and the pose bank cache.

    Returns:
        the provenance dict plus ``"checkpoint"`` and ``"figure"`` paths (str).

    Raises:
        FileNotFoundError: missing CMU clips, photos or COCO samples. ValueError: invalid config.
        RuntimeError: renderer / sampler failures.
    """
    _check(cfg)
    out = Path(cfg.out_dir)
    if cfg.train.threads > 0:
        torch.set_num_threads(int(cfg.train.threads))
    from annot.body_models import BodyModel

    start = time.perf_counter()
    body = BodyModel.from_config("free")
    roots = render_synthetic(cfg, body, progress)
    render_s = time.perf_counter() - start
    train_set, heldout, parts = build_datasets(cfg, roots, body)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = PoseResNetModule(cfg.depth, 17, cfg.sigma, cfg.train.lr, cfg.train.steps, cfg.train.lr_decay_at)
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(train_set, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                        num_workers=cfg.train.num_workers, generator=generator,
                        persistent_workers=False, worker_init_fn=worker_init_fn)
    if len(loader) == 0:
        raise ValueError(f"pretraining: {len(train_set)} training crops < "
                         f"train.batch_size={cfg.train.batch_size}")
    trainer = pl.Trainer(max_steps=cfg.train.steps, max_epochs=-1, accelerator=cfg.train.accelerator,
                         devices=cfg.train.devices, precision=cfg.train.precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                         deterministic=True, callbacks=[_EpochSeeds(parts)], log_every_n_steps=10,
                         num_sanity_val_steps=0)
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    train_s = time.perf_counter() - t0
    net = module.net.cpu()
    result = evaluate_pck(net, heldout, cfg.pck_alpha)
    chance = mean_pose_baseline(parts[0], result["gt_px"], result["mask"], cfg.pck_alpha)
    chance02 = mean_pose_baseline(parts[0], result["gt_px"], result["mask"], 0.2)
    stem = checkpoint_name(cfg.depth).removesuffix(".pth")
    figure = save_keypoint_png(out / f"{stem}_keypoints.png", result["img"][:cfg.figure_images],
                               result["pred_px"][:cfg.figure_images], result["gt_px"][:cfg.figure_images],
                               result["mask"][:cfg.figure_images])
    cfg_dict = json.loads(json.dumps(asdict(cfg)))
    provenance = {
        "format": "SimpleBaseline pose_resnet state_dict (Xiao et al. 2018; "
                  "microsoft/human-pose-estimation.pytorch key names); load the backbone with "
                  "annot.nets.resnet.load_backbone_weights",
        "depth": cfg.depth, "num_joints": 17, "convention": "coco17", "input_hw": list(cfg.input_hw),
        "heatmap_stride": net.stride, "sigma_heatmap_px": cfg.sigma,
        "input": "RGB in [0, 1], no mean/std normalisation",
        "data": {"synthetic": {"generator": "annot.synthetic (make_split, split kind 'mocap' only: CMU "
                                            "clips not held out for itw/test)",
                               "note": "never the ITW or test clips, never a benchmark seed",
                               "train_seed": cfg.synthetic.train_seed, "train_images": len(parts[0]),
                               "heldout_seed": cfg.synthetic.heldout_seed, "heldout_images": len(heldout),
                               "image_hw": list(cfg.synthetic.image_hw)},
                 "coco_samples": {"root": cfg.coco.root, "ann_file": cfg.coco.ann_file,
                                  "people": len(parts[1]) if len(parts) > 1 else 0,
                                  "repeat": cfg.coco.repeat}},
        "seed": cfg.seed, "steps": int(trainer.global_step), "batch_size": cfg.train.batch_size,
        "pck": {"standard": f"PCK@{cfg.pck_alpha} of the torso diameter ||L_Shoulder - R_Hip|| (GT), "
                            "crop pixels, held-out synthetic set (heldout_seed), no flip test",
                "alpha": cfg.pck_alpha, "value": round(result["pck"], 4),
                "pck@0.2": round(result["pck@0.2"], 4),
                "mean_pose_baseline": round(chance, 4), "mean_pose_baseline@0.2": round(chance02, 4),
                "keypoints": result["keypoints"],
                "per_joint": result["per_joint"]},
        "timing_s": {"render": round(render_s, 1), "train": round(train_s, 1),
                     "total": round(time.perf_counter() - start, 1)},
        "config": cfg_dict, "torch": str(torch.__version__),
    }
    path = write_checkpoint(out / checkpoint_name(cfg.depth), net, provenance)
    atomic_write_json(out / f"{stem}.json", provenance)
    log.info("pretrain: %s written; PCK@%s %.3f (mean-pose baseline %.3f)", path, cfg.pck_alpha,
             result["pck"], chance)
    return {**provenance, "checkpoint": str(path), "figure": str(figure)}


def ensure_pretrained_backbone(depth: int, out_dir: str | Path) -> Path:
    """The free SimpleBaseline checkpoint of ResNet-``depth`` in ``out_dir``, trained first when missing.

    Path: ``<out_dir>/pose_resnet_<depth>_free.pth`` (``DEFAULT_CHECKPOINT`` for depth 18 and
    ``out_dir="outputs/pretrain-backbone"``). When the file is missing it is built with
    :func:`pretrain_backbone` from :class:`PretrainConfig`'s defaults (= ``configs/pretrain/backbone.yaml``)
    with ``depth`` and ``out_dir`` replaced: deterministic from the config's seeds (``seed=0``,
    synthetic seeds 1000 / 2000); about 10 minutes on 2 idle CPU cores for depth 18. An existing file
    is returned as is (not checked or retrained). Load it with ``model.backbone_weights=<path>``
    (:func:`annot.nets.resnet.load_backbone_weights`).

    Args:
        depth: ResNet depth (18, 34, 50, 101, 152).
        out_dir: output folder. Relative paths here and in the config (``../shared/data/...``) resolve
            against the working directory: call it from the repository root, as every tool does.

    Returns:
        the checkpoint path.

    Raises:
        ValueError: unsupported depth. FileNotFoundError: free data missing (CMU clips, photos, COCO
            samples under ``../shared/data``). RuntimeError: renderer failures.
    """
    path = Path(out_dir) / checkpoint_name(depth)
    if path.is_file():
        return path
    cfg = PretrainConfig(depth=int(depth), out_dir=str(out_dir))
    pretrain_backbone(cfg)
    return path
