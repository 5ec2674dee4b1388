"""Algorithm 1 of expressive NeuralAnnot for the hands (section 4; issue #16 item 3), on CPU-sized budgets.

(a) MoCap mode on the auxiliary 3D set (:func:`annot.hands.synthetic.make_hand_set`: the free stand-in, or the
    real FreiHAND / InterHand2.6M hands, :mod:`annot.hands.aux_real`): f_hand sees the crop and the GT 3D keypoints;
    its predictions are theta*.
(b) In-the-wild mode, a fresh f_hand, on mixed batches: ``aux_ratio`` of auxiliary samples (2D + 3D keypoints +
    L1 to theta*) and the rest target crops (2D keypoints only; left hands flipped, :mod:`annot.hands.mirror`).
(c) Predict the targets with the stage-(b) f_hand and take the predictions back to the image camera
    (:func:`to_image_camera`: unflip left hands, turn the virtual crop frame onto the image camera).

Deterministic on CPU: every stage seeds torch's generators (``seed``), batches are drawn by a seeded
``WeightedRandomSampler``, no data-loader workers.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader, Dataset, WeightedRandomSampler

from annot.geometry.rotations import rotvec_to_rotmat
from annot.hands.annotator import HandAnnotatorModule
from annot.hands.crops import HandCrops
from annot.hands.mirror import mirror_rotmat, mirror_rotvec
from annot.hands.synthetic import AuxHandSetConfig

log = logging.getLogger(__name__)
METHODS = ("fit", "annotator", "annotator_fit")


@dataclass
class HandAnnotatorConfig:
    """Settings of the hand annotator and its Algorithm 1 (module docstring; weights as
    :class:`annot.hands.annotator.HandAnnotatorModule`). ``pose_repr_mocap`` / ``pose_repr_itw``: the hand pose of
    stages (a) / (b), ``"rot6d"`` or ``"pca"`` (``num_pca_comps`` coefficients); the paper's section 4.2 trains the
    full rotations on the auxiliary loss and the PCA coefficients on the target loss. ``steps_mocap`` /
    ``steps_itw``: optimiser steps of stages (a) / (b), ``batch_size`` samples each; ``aux_ratio``: share of
    auxiliary samples in stage (b)'s batches; ``crop_scale``: box side / keypoints' box side; ``aux``: the free
    auxiliary set; ``cache_dir``: where the rendered auxiliary set is kept. ``kp2d_input``: beyond the paper, the
    in-the-wild f_hand also sees the annotated 2D keypoints (as the body annotator's default)."""

    pose_repr_mocap: str = "rot6d"
    pose_repr_itw: str = "pca"
    num_pca_comps: int = 6
    backbone_depth: int = 18
    hidden_dim: int = 512
    crop_size: int = 64
    crop_scale: float = 1.5
    kp2d_input: bool = True
    kp2d_input_jitter: float = 0.01
    kp2d_input_dropout: float = 0.1
    w_kp2d: float = 1.0
    w_joints3d: float = 10.0
    w_theta: float = 1.0
    w_pose_l2: float = 1e-3
    w_betas_l2: float = 1e-3
    lr: float = 1e-3
    batch_size: int = 16
    steps_mocap: int = 200
    steps_itw: int = 200
    aux_ratio: float = 0.5
    seed: int = 0
    cache_dir: str = "outputs/cache/hands"
    aux: AuxHandSetConfig = field(default_factory=AuxHandSetConfig)


class HandCropDataset(Dataset):
    """Items of :class:`~annot.hands.crops.HandCrops` as :class:`~annot.hands.annotator.HandAnnotatorModule` batches
    take them; 3D keypoints only with ``use_3d``, theta* (``global_rotvec`` (N, 3), ``hand_pose`` (N, 15, 3), ``betas``
    (N, 10), virtual crop frame) when given."""

    def __init__(self, crops: HandCrops, use_3d: bool = False, theta: dict[str, Tensor] | None = None) -> None:
        if use_3d and crops.joints_rel_m is None:
            raise ValueError(f"HandCropDataset: 3D keypoints asked for, but the set ({crops.sample_ids[:1]}...) has "
                             "none")
        self.crops, self.use_3d, self.theta = crops, use_3d, theta

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict[str, Any]:
        c = self.crops
        item: dict[str, Any] = {"img": c.img[i], "kp2d_px": c.kp2d_px[i], "kp2d_mask": c.kp2d_mask[i]}
        has3d = self.use_3d
        item["joints_rel_m"] = c.joints_rel_m[i] if has3d else torch.zeros(21, 3)
        item["joints_mask"] = c.kp2d_mask[i].clone() if has3d else torch.zeros(21, dtype=torch.bool)  # annotated ones
        t = self.theta
        item["theta_valid"] = torch.tensor(t is not None)
        item["theta_global_rotvec"] = t["global_rotvec"][i] if t is not None else torch.zeros(3)
        item["theta_hand_pose"] = t["hand_pose"][i] if t is not None else torch.zeros(15, 3)
        item["theta_betas"] = t["betas"][i] if t is not None else torch.zeros(10)
        return item


def module_args(cfg: HandAnnotatorConfig, mano_path: str, mode: str = "mocap") -> dict[str, Any]:
    """The :class:`HandAnnotatorModule` arguments of ``mode`` but the keypoint-input ones."""
    pose_repr = cfg.pose_repr_mocap if mode == "mocap" else cfg.pose_repr_itw
    return {"mode": mode, "mano_path": str(mano_path), "pose_repr": pose_repr, "num_pca_comps": cfg.num_pca_comps,
            "backbone_depth": cfg.backbone_depth, "hidden_dim": cfg.hidden_dim, "crop_size": cfg.crop_size,
            "w_kp2d": cfg.w_kp2d, "w_joints3d": cfg.w_joints3d, "w_theta": cfg.w_theta, "w_pose_l2": cfg.w_pose_l2,
            "w_betas_l2": cfg.w_betas_l2, "lr": cfg.lr, "seed": cfg.seed}


def train(module: HandAnnotatorModule, datasets: list[Dataset], shares: list[float], steps: int, batch_size: int,
          seed: int) -> list[float]:
    """Train ``module`` for ``steps`` Adam steps on batches drawn with replacement from ``datasets``, each dataset
    ``shares[k]`` of the samples in expectation (a seeded ``WeightedRandomSampler``).

    Returns:
        the total loss of every step.
    """
    pl.seed_everything(seed, workers=False, verbose=False)
    weights = torch.cat([torch.full((len(d),), s / len(d), dtype=torch.float64) for d, s in zip(datasets, shares)])
    sampler = WeightedRandomSampler(weights, num_samples=steps * batch_size, replacement=True,
                                    generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(ConcatDataset(datasets), batch_size=batch_size, sampler=sampler, num_workers=0)
    history: list[float] = []

    class _Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            history.append(float(outputs["loss"]))

    trainer = pl.Trainer(max_steps=steps, max_epochs=1, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, callbacks=[_Record()], deterministic=True)
    trainer.fit(module, loader)
    return history


@torch.no_grad()
def predict(module: HandAnnotatorModule, dataset: Dataset, batch_size: int = 64) -> dict[str, Tensor]:
    """Run ``module`` (eval mode) over ``dataset`` in order: ``global_rotvec`` (N, 3), ``hand_pose`` (N, 15, 3),
    ``betas`` (N, 10), ``joints_rel_m`` (N, 21, 3), ``kp2d_pred_px`` (N, 21, 2), all in the crops' virtual frames."""
    module.eval()
    keys = {"global_rotvec": "global_rotvec", "hand_pose": "hand_pose_rotvec", "betas": "betas",
            "joints_rel_m": "joints_rel_m", "kp2d_pred_px": "kp2d_pred_px"}
    parts: dict[str, list[Tensor]] = {k: [] for k in keys}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        pred = module.predict_batch(batch)
        for k, src in keys.items():
            parts[k].append(pred[src].detach())
    return {k: torch.cat(v) for k, v in parts.items()}


def to_image_camera(pred: dict[str, Tensor], crops: HandCrops) -> dict[str, Tensor]:
    """Predictions in the crops' virtual frames -> the image camera, in the hand's own MANO side.

    Left hands (``crops.flipped``) are mirrored back (:func:`annot.hands.mirror.mirror_rotvec`: their parameters
    are then the left MANO's); every global rotation is turned by ``crops.ray_rotmat``.

    Returns:
        ``global_rotmat`` (N, 3, 3) MANO global rotation in the image camera, ``hand_pose`` (N, 15, 3) relative to the
        side's ``hands_mean``, ``betas`` (N, 10), ``kp2d_img_px`` (N, 21, 2) the projected keypoints in image pixels.
    """
    flip = crops.flipped
    rot = rotvec_to_rotmat(pred["global_rotvec"])
    rot = torch.where(flip[:, None, None], mirror_rotmat(rot), rot)
    pose = torch.where(flip[:, None, None], mirror_rotvec(pred["hand_pose"]), pred["hand_pose"])
    return {"global_rotmat": crops.ray_rotmat @ rot, "hand_pose": pose, "betas": pred["betas"],
            "kp2d_img_px": crops.to_image_px(pred["kp2d_pred_px"])}


def run_algorithm1(mano_path: str, aux: HandCrops, target: HandCrops, cfg: HandAnnotatorConfig
                   ) -> dict[str, Any]:
    """Stages (a), (b), (c) (module docstring) on an auxiliary set with 3D keypoints and a 2D-only target set.

    Returns:
        ``{"target": to_image_camera(...) of the target, "target_crop": the raw stage-(c) predictions,
        "theta_star": the stage-(a) predictions on the auxiliary set, "history": {"mocap": [...], "itw": [...]} losses,
        "aux_mpjpe_mm": stage (a)'s wrist-relative 3D error on the auxiliary set, "seconds": {...}}``.
    """
    if aux.joints_rel_m is None:
        raise ValueError("run_algorithm1: the auxiliary set needs 3D keypoints (joints_rel_m)")
    if aux.crop_size != cfg.crop_size or target.crop_size != cfg.crop_size:
        raise ValueError(f"run_algorithm1: crops of {aux.crop_size} / {target.crop_size} px, config crop_size "
                         f"{cfg.crop_size}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    pl.seed_everything(cfg.seed, verbose=False)
    mocap = HandAnnotatorModule(**module_args(cfg, mano_path, "mocap"))
    aux3d = HandCropDataset(aux, use_3d=True)
    hist_a = train(mocap, [aux3d], [1.0], cfg.steps_mocap, cfg.batch_size, cfg.seed)
    theta = predict(mocap, aux3d)
    err = (theta["joints_rel_m"] - aux.joints_rel_m).norm(dim=-1)[aux.kp2d_mask].mean()  # annotated joints only
    seconds["mocap"] = time.perf_counter() - t0
    log.info("hand annotator (a) MoCap mode: %d steps, loss %.4f -> %.4f, aux 3D error %.1f mm (%.0f s)",
             cfg.steps_mocap, hist_a[0], hist_a[-1], 1000 * float(err), seconds["mocap"])
    t0 = time.perf_counter()
    pl.seed_everything(cfg.seed + 1, verbose=False)
    itw = HandAnnotatorModule(kp2d_input=cfg.kp2d_input, kp2d_input_jitter=cfg.kp2d_input_jitter,
                              kp2d_input_dropout=cfg.kp2d_input_dropout, **module_args(cfg, mano_path, "itw"))
    theta_star = {k: theta[k] for k in ("global_rotvec", "hand_pose", "betas")}
    hist_b = train(itw, [HandCropDataset(aux, use_3d=True, theta=theta_star), HandCropDataset(target)],
                   [cfg.aux_ratio, 1.0 - cfg.aux_ratio], cfg.steps_itw, cfg.batch_size, cfg.seed + 1)
    seconds["itw"] = time.perf_counter() - t0
    pred = predict(itw, HandCropDataset(target))
    log.info("hand annotator (b) in-the-wild mode: %d steps, loss %.4f -> %.4f (%.0f s)", cfg.steps_itw, hist_b[0],
             hist_b[-1], seconds["itw"])
    return {"target": to_image_camera(pred, target), "target_crop": pred, "theta_star": theta_star,
            "history": {"mocap": hist_a, "itw": hist_b}, "aux_mpjpe_mm": 1000 * float(err), "seconds": seconds,
            "module": itw}


__all__ = ["HandAnnotatorConfig", "HandCropDataset", "METHODS", "module_args", "predict", "run_algorithm1",
           "to_image_camera", "train"]
