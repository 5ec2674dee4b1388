"""Annotation pipeline: train f on the target set, predict on the same set, export pseudo-GTs.

This is NeuralAnnot's train-and-test-on-the-training-set protocol (CVPRW 2022, Sec. 3), in-the-wild
mode. Outputs under ``export.out_dir``:

- ``pseudo_gt.json``: the NeuralAnnot layout keyed by annotation id (:mod:`annot.export`);
- ``skipped.json``: ``{sample_id: reason}`` for every sample the dataset did not annotate;
- ``report.json``: counts, per-sample and mean 2D reprojection error (original-image pixels), the 2D
  error during training, wall time, the resolved config and package versions;
- ``kp2d_error_curve.png``: the training curve; ``overlays/<aid>.png``: mesh over the original image;
- ``annotator.ckpt``: the trained f with its resolved config in ``hyper_parameters["config"]``.
"""
from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, RandomSampler

from annot.callbacks import MetricHistory
from annot.config import to_container
from annot.data import build_dataset
from annot.export import PseudoGT, atomic_write_bytes, atomic_write_json, pseudo_gts_from_predictions, write_pseudo_gt
from annot.module import AnnotatorModule

log = logging.getLogger(__name__)
CURVE_KEYS = ("train/kp2d_err_img_px", "train/loss/total", "train/loss/kp2d")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers (for provenance)."""
    import importlib.metadata as md
    versions = {"python": platform.python_version()}
    for name in ("neural-annot", "torch", "pytorch-lightning", "smplx", "numpy", "roma", "omegaconf"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _dataset(cfg: DictConfig, flip_prob: float):
    d = cfg.data
    return build_dataset(d.dataset, root=d.root, ann_file=d.ann_file, img_dir=d.img_dir,
                         input_hw=tuple(d.input_hw), flip_prob=flip_prob, bbox_scale=d.bbox_scale, seed=cfg.seed)


def build_module(cfg: DictConfig) -> AnnotatorModule:
    """The annotator f with explicit arguments taken from ``cfg`` (and the whole resolved config
    stored for the checkpoint)."""
    return AnnotatorModule(
        body_model_type=cfg.body_model.model_type, body_model_gender=cfg.body_model.gender,
        body_model_path=cfg.body_model.path, backbone_depth=cfg.model.backbone_depth,
        backbone_weights=cfg.model.backbone_weights, hidden_dim=cfg.model.hidden_dim,
        num_betas=cfg.body_model.num_betas, input_hw=tuple(cfg.data.input_hw), w_kp2d=cfg.loss.kp2d,
        w_pose_l2=cfg.loss.pose_l2, w_betas_l2=cfg.loss.betas_l2, lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay, lr_decay_steps=tuple(cfg.optim.lr_decay_steps),
        lr_decay_factor=cfg.optim.lr_decay_factor, config=to_container(cfg))


def _merge_predictions(batches: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in batches[0]:
        values = [b[key] for b in batches]
        merged[key] = sum(values, []) if isinstance(values[0], list) else torch.cat(values)
    return merged


def run_annotate(cfg: DictConfig) -> dict[str, Any]:
    """Train the annotator on the configured dataset, predict on it and write every output.

    Args:
        cfg: an :class:`annot.config.AnnotateConfig` structured config.

    Returns:
        The report written to ``report.json``.

    Raises:
        FileNotFoundError: dataset or body model missing (messages say where it looked and what to set).
    """
    t0 = time.perf_counter()
    out_dir = Path(cfg.export.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    train_set = _dataset(cfg, cfg.data.flip_prob)
    predict_set = _dataset(cfg, 0.0)
    if len(train_set) == 0:
        raise ValueError(f"{cfg.data.root}: no annotatable sample ({train_set.summary()})")
    batch_size = min(cfg.data.batch_size, len(train_set))
    # one epoch = the whole run: a progress bar over optimiser steps, not one "epoch" per step
    steps_sampler = RandomSampler(train_set, num_samples=cfg.trainer.max_steps * batch_size)
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=steps_sampler, drop_last=True,
                              num_workers=cfg.data.num_workers)
    predict_loader = DataLoader(predict_set, batch_size=batch_size, shuffle=False, num_workers=cfg.data.num_workers)

    module = build_module(cfg)
    history = MetricHistory(CURVE_KEYS, every_n_steps=cfg.export.eval_every_n_steps)
    trainer = pl.Trainer(
        max_steps=cfg.trainer.max_steps, accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
        precision=cfg.trainer.precision,
        log_every_n_steps=max(1, min(cfg.trainer.log_every_n_steps, len(train_loader))),
        deterministic=cfg.trainer.deterministic, enable_progress_bar=cfg.trainer.enable_progress_bar,
        logger=CSVLogger(str(out_dir), name="logs", version=""), callbacks=[history],
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=str(out_dir))
    t_train = time.perf_counter()
    trainer.fit(module, train_loader)
    train_s = time.perf_counter() - t_train
    trainer.save_checkpoint(out_dir / "annotator.ckpt")

    t_pred = time.perf_counter()
    preds = _merge_predictions(trainer.predict(module, predict_loader))
    predict_s = time.perf_counter() - t_pred
    entries = pseudo_gts_from_predictions(preds)
    write_pseudo_gt(out_dir / "pseudo_gt.json", entries)
    atomic_write_json(out_dir / "skipped.json", dict(sorted(predict_set.skipped.items())))

    if cfg.export.overlays:
        write_overlays(out_dir / "overlays", entries, preds, module)
    write_curve_png(out_dir / "kp2d_error_curve.png", history.history)

    report = _report(cfg, predict_set, entries, history.history,
                     {"total_s": time.perf_counter() - t0, "train_s": train_s, "predict_s": predict_s,
                      "predict_s_per_sample": predict_s / max(1, len(entries))})
    atomic_write_json(out_dir / "report.json", report)
    return report


def _report(cfg: DictConfig, dataset, entries: dict[str, PseudoGT], curve: list[dict[str, float]],
            timing: dict[str, float]) -> dict[str, Any]:
    errors = {aid: e.quality["kp2d_err_px"] for aid, e in entries.items()}
    finite = [v for v in errors.values() if np.isfinite(v)]
    reasons: dict[str, int] = {}
    for reason in dataset.skipped.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    return {
        "dataset": cfg.data.dataset,
        "counts": {"annotated": len(entries), "skipped": len(dataset.skipped), "skip_reasons": reasons},
        "kp2d_err_px": {"mean": float(np.mean(finite)) if finite else None, "per_sample": errors,
                        "units": "original-image pixels, mean over visible COCO joints"},
        "kp2d_err_px_during_training": curve,
        "wall_time": timing,
        "config": to_container(cfg),
        "versions": package_versions(),
    }


def write_curve_png(path: Path, curve: list[dict[str, float]]) -> None:
    """Plot the 2D reprojection error (original-image px) and the loss against the training step."""
    if not curve:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import io

    steps = [row["step"] for row in curve]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, [row["train/kp2d_err_img_px"] for row in curve], marker="o", ms=3)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean 2D error (px, original image)")
    ax.set_title("Annotator f: 2D reprojection error during training")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_overlays(folder: Path, entries: dict[str, PseudoGT], preds: dict[str, Any], module: AnnotatorModule) -> None:
    """Render every pseudo-GT mesh over its original image, from the *exported* parameters.

    Green dots: GT keypoints; red dots: projected pseudo-GT joints. One PNG per annotation id.
    """
    import cv2
    from tqdm import tqdm

    from annot.render import MeshRenderer, draw_keypoints

    renderer = MeshRenderer()
    body = module.body_model.cpu()
    faces = body.faces
    for i, aid in enumerate(tqdm(preds["sample_id"], desc="overlays", leave=False)):
        entry = entries[str(aid)]
        image = cv2.cvtColor(cv2.imread(preds["image_path"][i], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        kw = entry.smplx_kwargs()
        with torch.no_grad():
            verts = body(kw["global_orient"], kw["body_pose"], kw["betas"], kw["transl"]).vertices_m[0].numpy()
        shown = renderer.overlay(image, verts, faces, entry.focal_px, entry.princpt_px)
        mask = preds["kp2d_mask"][i].numpy() > 0
        shown = draw_keypoints(shown, preds["kp2d_img_px"][i].numpy(), mask, color=(0, 255, 0))
        shown = draw_keypoints(shown, preds["kp2d_pred_img_px"][i].numpy(), mask, color=(255, 0, 0))
        ok, png = cv2.imencode(".png", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode overlay for annotation {aid}")
        atomic_write_bytes(folder / f"{aid}.png", png.tobytes())
