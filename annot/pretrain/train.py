"""Training the SimpleBaseline ``pose_resnet``: the LightningModule, held-out PCK, the keypoint figure, the
checkpoint with its provenance, and :func:`ensure_pretrained_backbone`.
"""
from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from annot.app.runtime import worker_init_fn
from annot.io.atomic import atomic_write_bytes, atomic_write_json
from annot.nets.pose_resnet import PoseResNet
from annot.optim import adam
from annot.pretrain.config import PretrainConfig, _check, checkpoint_name
from annot.pretrain.data import build_datasets, mean_pose_baseline, render_synthetic
from annot.pretrain.heatmaps import COCO17, decode_heatmaps, gaussian_heatmaps, joints_mse_loss, pck

log = logging.getLogger(__name__)

#: COCO skeleton (joint index pairs) for the keypoint figure.
COCO17_LIMBS = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))


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
        opt = adam(self.net.parameters(), lr=self.lr)
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
        "data": {"synthetic": {"generator": "annot.benchmarks.synthetic (make_split, split kind 'mocap' only: CMU "
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
