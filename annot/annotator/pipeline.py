"""Algorithm 1 of expressive NeuralAnnot (Moon et al.), as one resumable command.

(a) For each auxiliary MoCap dataset, train an annotator in MoCap mode (image + 3D joints, or 3D
    joints only for sources without images) and predict its pseudo-GTs D*_ax.
(prior) Without an official VPoser, train a VPoser-architecture prior on the D*_ax body poses ("the
    low-dimensional embeddings can be learned from D*_ax if not available").
(b) Train the target annotator (in-the-wild mode, VPoser z + L2) on mixed batches: ``aux_ratio`` of
    auxiliary image samples (3D-joint L1 + L1 to theta*) and the rest target samples (2D L1 +
    regulariser). Auxiliary sets without images contribute through the prior only.
(c) Predict the target's pseudo-GTs on the same set (NeuralAnnot's train-and-test protocol) and export.
(d) Optionally a second round trained on its own first-round pseudo-GTs (two-stage NeuralAnnot).

Each stage writes its artefacts in its own folder under ``export.out_dir`` with a ``stage.json``
marker (:mod:`annot.annotator.stages`); a second invocation skips complete stages. The final outputs at the top
of ``export.out_dir``: ``pseudo_gt.json`` (NeuralAnnot layout, :mod:`annot.io.export`), ``skipped.json``,
``report.json``, ``kp2d_error_curve.png``, ``overlays/<aid>.png``, and the stage folders.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, RandomSampler

from annot.annotator.datasets import aux_dataset, aux_loader_args, has_images, target_dataset
from annot.annotator.module import AnnotatorModule
from annot.annotator.report import finalise, write_overlays
from annot.annotator.resume import RESUME_FILE, StepCheckpoint, StepSampler, resume_step, stage_seed
from annot.annotator.stages import provenance, run_stage
from annot.app.runtime import worker_init_fn
from annot.config import to_container
from annot.data.datamodule import MixedDataModule
from annot.data.person import PersonCropDataset, SmplParams
from annot.data.robust import LoadErrorsToPredictions, SkippingDataset, drop_failed_predictions
from annot.io.atomic import atomic_write_bytes, atomic_write_json
from annot.io.export import PseudoGT, pseudo_gts_from_predictions, read_pseudo_gt, write_pseudo_gt
from annot.io.export_mocap import write_reference_layout
from annot.training.callbacks import MetricHistory, MixCounts

log = logging.getLogger(__name__)
CURVE_KEYS = ("train/kp2d_err_img_px", "train/loss/total", "train/loss/kp2d")


# --------------------------------------------------------------------------- building blocks
def _body_args(cfg: DictConfig) -> dict[str, Any]:
    b = cfg.body_model
    return {"body_model_type": b.model_type, "body_model_gender": b.gender, "body_model_path": b.path,
            "num_betas": b.num_betas}


def _trainer(cfg: DictConfig, folder: Path, max_steps: int, callbacks: list[pl.Callback], steps_per_epoch: int,
             **kwargs: Any) -> pl.Trainer:
    """Trainer of one stage: ``cfg.trainer`` (devices, nodes, strategy, precision), the loggers of
    :func:`annot.training.loggers.build_loggers` and the run-level callbacks (throughput, learning rate,
    channels-last, compile). ValueError when a global batch does not divide over the ranks."""
    from annot.data.datamodule import split_global_batch
    from annot.training.callbacks import scale_callbacks
    from annot.training.loggers import build_loggers

    t = cfg.trainer
    loggers = build_loggers(folder, cfg, Path(cfg.export.out_dir).name, wandb_dir=cfg.export.out_dir,
                            prefix=folder.name)
    trainer = pl.Trainer(
        max_steps=max_steps, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, log_every_n_steps=max(1, min(t.log_every_n_steps, steps_per_epoch)),
        deterministic=t.deterministic, enable_progress_bar=t.enable_progress_bar, logger=loggers or False,
        callbacks=[*callbacks, *scale_callbacks(cfg, bool(loggers))], enable_checkpointing=False,
        enable_model_summary=False, default_root_dir=str(folder), **kwargs)
    for key in ("data.batch_size", "aux_stage.batch_size"):
        try:
            split_global_batch(int(OmegaConf.select(cfg, key)), trainer.world_size)
        except ValueError:
            raise ValueError(f"global batch {key}={OmegaConf.select(cfg, key)} does not divide over "
                             f"{trainer.world_size} ranks (trainer.devices={t.devices} x trainer.num_nodes="
                             f"{t.num_nodes}); choose a multiple of {trainer.world_size}") from None
    return trainer


def _steps_loader(dataset: Dataset, batch_size: int, max_steps: int, num_workers: int,
                  world_size: int = 1, seed: int | None = None, start_step: int = 0) -> DataLoader:
    """One epoch = the whole run (a progress bar over optimiser steps), random order with reshuffles.

    ``batch_size`` is global: each of ``world_size`` ranks loads ``batch_size / world_size`` samples per
    step (Lightning splits the sampler across ranks), so the optimiser sees the same global batch.
    With a ``seed`` on one rank the batches come from :class:`annot.annotator.resume.StepSampler` (step ``i``'s
    batch depends on ``(seed, i)`` only; a resumed run starts at ``start_step``).
    """
    from annot.data.datamodule import split_global_batch

    global_batch = min(batch_size, len(dataset))
    global_batch -= global_batch % world_size
    per_rank = split_global_batch(max(global_batch, world_size), world_size)
    if seed is not None and world_size == 1:
        sampler = StepSampler(len(dataset), per_rank, max_steps, seed, start_step)
        return DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=num_workers,
                          worker_init_fn=worker_init_fn)
    sampler = RandomSampler(dataset, num_samples=max_steps * per_rank * world_size)
    return DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=num_workers,
                      worker_init_fn=worker_init_fn)


def _world_size(cfg: DictConfig) -> int:
    """Ranks of the configured Trainer (``devices`` x ``num_nodes``; 1 for an ``auto`` device count)."""
    devices = cfg.trainer.devices
    return (devices if isinstance(devices, int) and devices > 0 else 1) * max(1, cfg.trainer.num_nodes)


def _predict(trainer: pl.Trainer, module: pl.LightningModule, dataset: Dataset, batch_size: int,
             num_workers: int) -> dict[str, Any]:
    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=False, num_workers=num_workers,
                        worker_init_fn=worker_init_fn)
    batches = trainer.predict(module, loader)
    merged: dict[str, Any] = {}
    for key in batches[0]:
        values = [b[key] for b in batches]
        merged[key] = sum(values, []) if isinstance(values[0], list) else torch.cat(values)
    failed = drop_failed_predictions(merged)  # stand-ins of samples that failed to load (SkippingDataset)
    if failed:
        log.warning("prediction: %d samples failed to load and are left out: %s", len(failed),
                    "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:5]))
    return merged


def _save_poses_npz(path: Path, pred: dict[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, sample_id=np.asarray(pred["sample_id"]), pose_rotvec=pred["pose_rotvec"].numpy(),
             poses=pred["pose_rotvec"].reshape(len(pred["sample_id"]), -1).numpy(),  # (N, 72) for train_prior
             betas=pred["betas"].numpy(),
             joints3d_err_mm=pred.get("joints3d_err_mm", torch.full((len(pred["sample_id"]),), np.nan)).numpy())
    atomic_write_bytes(path, buf.getvalue())


def _pseudo_gt_params(entries: dict[str, PseudoGT]) -> dict[str, SmplParams]:
    return {aid: SmplParams(e.pose_rotvec, e.betas, e.transl_m) for aid, e in entries.items()}


# --------------------------------------------------------------------------- stage (a)
def _stage_a(cfg: DictConfig, name: str, folder: Path) -> list[str]:
    a = cfg.aux_stage
    image_mode = has_images(cfg.auxiliary[name].dataset)
    train_set = aux_dataset(cfg, name, train=True, convention=a.joints3d_convention)
    module = AnnotatorModule(
        mode="mocap" if image_mode else "mocap_joints_only", backbone_depth=cfg.model.backbone_depth,
        backbone_weights=cfg.model.backbone_weights if image_mode else None, hidden_dim=a.hidden_dim,
        input_hw=tuple(cfg.data.input_hw), kp2d_convention=a.joints3d_convention,
        joints3d_convention=a.joints3d_convention, pose_prior="none", camera_model=cfg.model.camera_model,
        architecture=cfg.model.architecture if image_mode else "regressor", w_joint_img=cfg.loss.joint_img,
        w_joints3d=cfg.loss.joints3d, w_pose_l2=cfg.loss.pose_l2, w_betas_l2=cfg.loss.betas_l2, lr=a.lr,
        mocap_kp2d=a.kp2d_loss, mocap_joint_img=a.joint_img_loss,
        lr_decay_steps=tuple(a.lr_decay_steps), config=to_container(cfg), **_body_args(cfg))
    if image_mode:
        train_set = SkippingDataset(train_set, "train")
    loader = _steps_loader(train_set, a.batch_size, a.max_steps, cfg.data.num_workers, _world_size(cfg))
    trainer = _trainer(cfg, folder, a.max_steps, [LoadErrorsToPredictions()], len(loader))
    trainer.fit(module, loader)
    trainer.save_checkpoint(folder / "annotator.ckpt")
    pred_set = aux_dataset(cfg, name, train=False, convention=a.joints3d_convention)
    predict_set = SkippingDataset(pred_set, "predict") if image_mode else pred_set
    pred = _predict(trainer, module, predict_set, a.batch_size, cfg.data.num_workers)
    if a.refine_iters > 0:
        _refine_with_3d_fit(pred, module.body_model, a.joints3d_convention, a.refine_iters, name)
    _save_poses_npz(folder / "pseudo_gt.npz", pred)
    outputs = ["annotator.ckpt", "pseudo_gt.npz"]
    if image_mode:
        entries = pseudo_gts_from_predictions(pred)
        write_pseudo_gt(folder / "pseudo_gt.json", entries)
        outputs.append("pseudo_gt.json")
        outputs += write_reference_layout(folder, pred_set, entries, module.body_model)  # mks0601 world layout
    err = pred.get("joints3d_err_mm")
    if err is not None:
        log.info("stage (a) %s: %d pseudo-GTs, 3D joint error %.1f mm (mean)", name, len(err), float(err.nanmean()))
    return outputs


def _root_relative_error_mm(body_model: Any, pose_rotvec: torch.Tensor, betas: torch.Tensor,
                            pred: dict[str, Any], convention: str, chunk: int = 512) -> torch.Tensor:
    """(N,) mean root-relative joint error (mm) of ``pose_rotvec`` / ``betas`` against ``joints3d_gt_rel_m``,
    measured as stage (a) measures its own (the convention's root joint subtracted)."""
    from annot.annotator.module import _root_index

    root, errors = _root_index(convention), []
    with torch.no_grad():
        for start in range(0, len(betas), chunk):
            sl = slice(start, start + chunk)
            pose = pose_rotvec[sl]
            out = body_model(pose[:, 0], pose[:, 1:].reshape(len(pose), -1), betas[sl])
            joints, _ = body_model.regress(out.vertices_m, convention)
            rel = joints - joints[:, root:root + 1]
            gt, mask = pred["joints3d_gt_rel_m"][sl], pred["joints3d_mask"][sl]
            errors.append(((rel - gt).norm(dim=-1) * mask).sum(1) / mask.sum(1).clamp(min=1))
    return 1000.0 * torch.cat(errors)


def _refine_with_3d_fit(pred: dict[str, Any], body_model: Any, convention: str, iters: int, name: str) -> None:
    """Refine stage-(a) pseudo-GTs in place (``aux_stage.refine_iters``): SMPLify3D fitted to the GT joints
    (``joints3d_gt_rel_m``, root-relative, the prediction's frame) from the predicted body pose and shape;
    ``pose_rotvec``, ``betas``, ``joints3d_err_mm`` and, for image sets, ``transl_m`` (so that the root joint
    stays where the annotator put it) are replaced."""
    from annot.body_models import RestRootJoint
    from annot.fitting.smplify import SMPLify3D

    if "joints3d_gt_rel_m" not in pred:
        log.warning("stage (a) %s: no GT 3D joints in the predictions; refinement skipped", name)
        return
    before = float(pred["joints3d_err_mm"].nanmean())
    init = {"body_pose": pred["pose_rotvec"][:, 1:].reshape(-1, 69), "betas": pred["betas"]}
    fit = SMPLify3D(body_model, prior="none", num_iters_per_stage=iters).fit(
        pred["joints3d_gt_rel_m"], pred["joints3d_mask"], convention, init=init)
    if "transl_m" in pred:
        root = RestRootJoint(body_model.model_type, body_model.gender, body_model.model_file)
        shift = root(pred["betas"].double().numpy()) - root(fit.betas.double().numpy())
        pred["transl_m"] = pred["transl_m"] + torch.as_tensor(shift, dtype=pred["transl_m"].dtype)
    pred.update(pose_rotvec=fit.pose_rotvec.detach(), betas=fit.betas.detach(),
                joints3d_err_mm=_root_relative_error_mm(body_model, fit.pose_rotvec, fit.betas, pred,
                                                        convention))
    log.info("stage (a) %s: SMPLify3D refinement (%d steps per stage): 3D joint error %.1f -> %.1f mm",
             name, iters, before, float(pred["joints3d_err_mm"].nanmean()))


# --------------------------------------------------------------------------- prior
def _stage_prior(cfg: DictConfig, aux_folders: dict[str, Path], folder: Path) -> list[str]:
    from annot.priors.train import train_prior

    poses = [np.load(f / "pseudo_gt.npz")["pose_rotvec"][:, 1:22] for f in aux_folders.values()]
    if not poses:
        raise ValueError("prior.pose_prior=vposer without prior.vposer_path needs at least one auxiliary dataset "
                         "(config key `auxiliary`) whose pseudo-GT poses train the prior")
    p = cfg.prior
    train_prior(np.concatenate(poses), folder, max_epochs=p.max_epochs, batch_size=p.batch_size, seed=cfg.seed,
                num_neurons=p.num_neurons, latent_dim=p.latent_dim)
    return ["vposer_prior.yaml"]


# --------------------------------------------------------------------------- stages (b) + (c)
def _target_module(cfg: DictConfig, vposer_path: str | None) -> AnnotatorModule:
    """The in-the-wild annotator of stage (b). With auxiliary image sets the batches' 3D joints come in
    ``data.convention``, which then needs a root joint (ValueError otherwise, naming the key)."""
    return AnnotatorModule(
        mode="itw", backbone_depth=cfg.model.backbone_depth, backbone_weights=cfg.model.backbone_weights,
        hidden_dim=cfg.model.hidden_dim, input_hw=tuple(cfg.data.input_hw), kp2d_convention=cfg.data.convention,
        joints3d_convention=cfg.data.convention if cfg.auxiliary and any(
            has_images(a.dataset) for a in cfg.auxiliary.values()) else "smpl24",
        pose_prior=cfg.prior.pose_prior, vposer_path=vposer_path, camera_model=cfg.model.camera_model,
        architecture=cfg.model.architecture, w_joint_img=cfg.loss.joint_img, w_kp2d=cfg.loss.kp2d,
        w_joints3d=cfg.loss.joints3d, w_smpl_param=cfg.loss.smpl_param, w_root_orient=cfg.loss.root_orient,
        w_pose_l2=cfg.loss.pose_l2, w_z_l2=cfg.loss.z_l2, w_betas_l2=cfg.loss.betas_l2, lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay, lr_decay_steps=tuple(cfg.optim.lr_decay_steps),
        lr_decay_factor=cfg.optim.lr_decay_factor, kp2d_input=cfg.model.kp2d_input,
        kp2d_input_jitter=cfg.model.kp2d_input_jitter, kp2d_input_dropout=cfg.model.kp2d_input_dropout,
        seed=cfg.seed, config=to_container(cfg), **_body_args(cfg))


def _train_loader(cfg: DictConfig, target: PersonCropDataset, aux_entries: dict[str, dict[str, SmplParams]],
                  start_step: int = 0, seed: int | None = None):
    """The target alone (batches from ``start_step`` on, see :func:`_steps_loader`), or a MixedDataModule of
    target + auxiliary image sets with exact ratios, whose batches also start at ``start_step`` (seeded by
    ``seed``, else ``cfg.seed``; :class:`annot.data.mixing.MixedBatchSampler`). Every dataset skips samples
    that fail to load (:class:`annot.data.robust.SkippingDataset`)."""
    image_aux = {n: a for n, a in cfg.auxiliary.items() if has_images(a.dataset)}
    if not image_aux:
        return _steps_loader(SkippingDataset(target, "train"), cfg.data.batch_size, cfg.trainer.max_steps,
                             cfg.data.num_workers, _world_size(cfg), seed=seed, start_step=start_step), None
    datasets: dict[str, Dataset] = {"target": SkippingDataset(target, "train")}
    total = sum(a.ratio for a in image_aux.values())
    ratios = {"target": 1.0 - cfg.algorithm.aux_ratio}
    for name, aux in image_aux.items():
        ds = aux_dataset(cfg, name, train=True, convention=cfg.data.convention)
        ds.attach_pseudo_gt(aux_entries[name])
        datasets[name], ratios[name] = SkippingDataset(ds, "train"), cfg.algorithm.aux_ratio * aux.ratio / total
    return None, MixedDataModule(datasets, ratios, cfg.data.batch_size, num_batches_per_epoch=cfg.trainer.max_steps,
                                 num_workers=cfg.data.num_workers, seed=cfg.seed if seed is None else seed,
                                 start_step=start_step)


def _stage_b(cfg: DictConfig, folder: Path, vposer_path: str | None, aux_folders: dict[str, Path],
             own_pseudo_gt: Path | None, history: MetricHistory, resume_key: str = "",
             seed: int | None = None) -> list[str]:
    """Train the target annotator; ``folder/resume.ckpt`` every ``trainer.checkpoint_every_n_steps`` steps
    (:class:`annot.annotator.resume.StepCheckpoint`), from which a rerun with the same ``resume_key`` continues.
    ``seed``: the stage seed of the step-indexed batches (:class:`annot.annotator.resume.StepSampler`)."""
    target = target_dataset(cfg, train=True)
    if len(target) == 0:
        raise ValueError(f"{cfg.data.root}: no annotatable sample ({target.summary()})")
    if own_pseudo_gt is not None:
        target.attach_pseudo_gt(_pseudo_gt_params(read_pseudo_gt(own_pseudo_gt)))
    aux_entries = {n: _pseudo_gt_params(read_pseudo_gt(f / "pseudo_gt.json"))
                   for n, f in aux_folders.items() if (f / "pseudo_gt.json").exists()}
    resume = folder / RESUME_FILE
    start = resume_step(resume, resume_key)
    loader, datamodule = _train_loader(cfg, target, aux_entries, start_step=start, seed=seed)
    module = _target_module(cfg, vposer_path)
    steps_per_epoch = len(loader) if loader is not None else cfg.trainer.max_steps
    saver = StepCheckpoint(resume, cfg.trainer.checkpoint_every_n_steps, resume_key)
    trainer = _trainer(cfg, folder, cfg.trainer.max_steps, [history, MixCounts(), saver], steps_per_epoch,
                       use_distributed_sampler=datamodule is None)
    ckpt_path = str(resume) if start else None
    if datamodule is not None:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    else:
        trainer.fit(module, loader, ckpt_path=ckpt_path)
    trainer.save_checkpoint(folder / "annotator.ckpt")
    resume.unlink(missing_ok=True)
    atomic_write_json(folder / "history.json", history.history)
    return ["annotator.ckpt", "history.json"]


def _stage_c(cfg: DictConfig, folder: Path, ckpt: Path) -> tuple[list[str], dict[str, Any]]:
    """Sharded, resumable prediction on the target set (every rank writes its own shards), then the merge
    that checks every sample id appears exactly once (:mod:`annot.annotator.sharding`)."""
    from annot.annotator.sharding import annotate_sharded, load_overlay_inputs
    from annot.annotator.stages import config_hash, file_checksum

    module = AnnotatorModule.load_from_checkpoint(ckpt, map_location="cpu")
    dataset = SkippingDataset(target_dataset(cfg, train=False), "predict")
    t = cfg.trainer
    # the images' identity too: shards predicted from images since repaired in place are stale
    run_key = config_hash({"annotator": file_checksum(ckpt), "data": to_container(cfg.data),
                           "images": getattr(dataset, "image_fingerprint", "")})
    trainer_kwargs = {"accelerator": t.accelerator, "devices": t.devices, "num_nodes": t.num_nodes,
                      "strategy": t.strategy, "precision": t.precision, "default_root_dir": str(folder)}
    start = time.perf_counter()
    report = annotate_sharded(module, dataset, folder, trainer_kwargs, batch_size=cfg.data.batch_size,
                              batches_per_shard=cfg.export.batches_per_shard, num_workers=cfg.data.num_workers,
                              run_key=run_key, discard_stale=True)
    predict_s = time.perf_counter() - start
    if report is None:  # a non-zero rank under strategy="ddp": rank 0 writes the outputs
        return [], {"dataset": dataset, "entries": {}, "predict_s": predict_s}
    atomic_write_json(folder / "skipped.json", report.skipped)
    entries = read_pseudo_gt(folder / "pseudo_gt.json")
    outputs = ["pseudo_gt.json", "skipped.json", "shards"]
    if cfg.export.overlays:
        write_overlays(folder / "overlays", entries, load_overlay_inputs(folder / "shards", run_key), module)
        outputs.append("overlays")
    return outputs, {"dataset": dataset, "entries": entries, "predict_s": predict_s, "merge": report.as_dict()}


# --------------------------------------------------------------------------- the command
def run_annotate(cfg: DictConfig) -> dict[str, Any]:
    """Run Algorithm 1 (stages skipped when complete) and write the final outputs and report.

    Args:
        cfg: an :class:`annot.annotator.config.AnnotateConfig` structured config.

    Returns:
        The report written to ``report.json``.

    Raises:
        annot.app.errors.PreflightError: every problem :func:`annot.annotator.preflight.preflight` found in the config,
            the datasets (target and auxiliary, zero samples included), the VPoser and the body model,
            before any training.
        FileNotFoundError / ValueError: a problem found later (a file removed during the run).
    """
    from annot.annotator.preflight import preflight

    t0 = time.perf_counter()
    check = preflight(cfg)
    out = Path(cfg.export.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    common = {"seed": cfg.seed, "body_model": to_container(cfg.body_model)}
    # what stage (a) reads of `data`: the crop and augmentation of image MoCap sets (not the target)
    data_for_aux = {k: to_container(cfg.data)[k] for k in ("input_hw", "bbox_scale", "augment")}
    loss_for_aux = {k: cfg.loss[k] for k in ("joint_img", "joints3d", "pose_l2", "betas_l2")}

    aux_folders: dict[str, Path] = {}
    for name, aux in cfg.auxiliary.items():
        folder = out / f"stage_a_{name}"
        args = aux_loader_args(cfg, name)
        # a 3D-joints-only set (no images) reads neither the image backbone nor the crop settings
        image_mode = has_images(aux.dataset)
        # the MoCap-mode annotator reads the model settings except the in-the-wild f's keypoint input
        model_read = ({k: v for k, v in to_container(cfg.model).items() if not k.startswith("kp2d_input")}
                      if image_mode else {"camera_model": cfg.model.camera_model})
        prov = provenance({**common, "aux": to_container(aux), "args": args, "aux_stage": to_container(cfg.aux_stage),
                           "model": model_read, "data": data_for_aux if image_mode else {}, "loss": loss_for_aux},
                          {"root": args["root"]} if "root" in args else {})
        run_stage(f"a:{name}", folder, prov, lambda d, n=name: _stage_a(cfg, n, d), log.info, seed=cfg.seed)
        aux_folders[name] = folder

    vposer_path = cfg.prior.vposer_path
    if cfg.prior.pose_prior == "vposer" and vposer_path is None:
        folder = out / "prior"
        prov = provenance({**common, "prior": to_container(cfg.prior)},
                          {n: f / "pseudo_gt.npz" for n, f in aux_folders.items()})
        run_stage("prior", folder, prov, lambda d: _stage_prior(cfg, aux_folders, d), log.info, seed=cfg.seed)
        vposer_path = str(folder)

    rounds = 2 if cfg.algorithm.second_round else 1
    own_pseudo_gt: Path | None = None
    history = MetricHistory(CURVE_KEYS, every_n_steps=cfg.export.eval_every_n_steps)
    inputs = {"target_ann": Path(cfg.data.root) / cfg.data.ann_file, "prior": vposer_path} if vposer_path else \
        {"target_ann": Path(cfg.data.root) / cfg.data.ann_file}
    images = {"target_images": check.target_images}  # sizes + mtimes of the target's image files
    result: dict[str, Any] = {}
    for rnd in range(1, rounds + 1):
        b_dir, c_dir = out / f"stage_b_round{rnd}", out / f"stage_c_round{rnd}"
        stage_cfg = {k: to_container(cfg[k]) for k in ("data", "model", "loss", "optim", "trainer", "prior",
                                                         "algorithm", "auxiliary", "aux_stage")}
        for key in ("enable_progress_bar", "checkpoint_every_n_steps", "logger", "wandb_project"):
            stage_cfg["trainer"].pop(key)  # run-time switches that do not change the result
        for key in ("refine", "refine_iters", "refine_stages", "refine_camera", "refine_cold_start"):
            stage_cfg["algorithm"].pop(key)  # the refine stage's own provenance holds these
        prov_b = provenance({**common, **stage_cfg, "round": rnd, "images": images},
                            {**inputs, **({"own_pseudo_gt": own_pseudo_gt} if own_pseudo_gt else {}),
                             **{f"aux_{n}": f / "pseudo_gt.npz" for n, f in aux_folders.items()}})
        b_seed = stage_seed(cfg.seed, f"b:round{rnd}")
        # run_stage calls each stage function before the loop moves on, so the lambdas see this round's values
        run_stage(f"b:round{rnd}", b_dir, prov_b,
                  lambda d: _stage_b(cfg, d, vposer_path, aux_folders, own_pseudo_gt, history,  # noqa: B023
                                     resume_key=prov_b["config_hash"], seed=b_seed),  # noqa: B023
                  log.info, seed=cfg.seed)
        prov_c = provenance({**common, "data": stage_cfg["data"], "export": to_container(cfg.export),
                             "images": images}, {"annotator": b_dir / "annotator.ckpt"})
        result = {}
        run_stage(f"c:round{rnd}", c_dir, prov_c,
                  lambda d: _collect(result, _stage_c(cfg, d, b_dir / "annotator.ckpt")),  # noqa: B023
                  log.info, seed=cfg.seed)
        own_pseudo_gt = c_dir / "pseudo_gt.json"

    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:  # under strategy="ddp" every rank runs this script; rank 0 reports
        return {}
    result["image_check"] = check.image_check
    final_dir = c_dir
    if cfg.algorithm.refine:
        final_dir = out / "stage_refine"
        prov_r = provenance({**common, "refine": {k: cfg.algorithm[k] for k in ("refine_iters", "refine_stages",
                                                                                "refine_camera", "refine_cold_start")},
                             "convention": cfg.data.convention, "export": to_container(cfg.export)},
                            {"pseudo_gt": c_dir / "pseudo_gt.json", **({"prior": vposer_path} if vposer_path else {})})
        run_stage("refine", final_dir, prov_r, lambda d: _stage_refine(cfg, d, c_dir, b_dir, vposer_path), log.info,
                  seed=cfg.seed)
    return finalise(cfg, out, c_dir, b_dir, result, time.perf_counter() - t0, final_dir)


def _stage_refine(cfg: DictConfig, folder: Path, c_dir: Path, b_dir: Path, vposer_path: str | None) -> list[str]:
    """NeuralAnnot + fit (:func:`annot.fitting.refine.refine_pseudo_gts`) on the last stage (c)'s pseudo-GTs,
    with the annotated keypoints kept in its shards; writes ``pseudo_gt.json``, ``refine.json`` (counts) and,
    with ``export.overlays``, the overlays of the kept parameters.

    Raises:
        ValueError: no VPoser prior (``prior.pose_prior=none``), or the shards lack the keypoints.
    """
    from annot.annotator.sharding import load_overlay_inputs
    from annot.fitting.refine import RefineConfig, project_keypoints_px, refine_pseudo_gts
    from annot.geometry import estimated_image_camera
    from annot.priors import load_vposer

    if vposer_path is None:
        raise ValueError("algorithm.refine=true needs the VPoser prior (prior.pose_prior=vposer)")
    entries = read_pseudo_gt(c_dir / "pseudo_gt.json")
    inputs = load_overlay_inputs(c_dir / "shards")
    if "kp2d_img_px" not in inputs or "kp2d_mask" not in inputs:
        raise ValueError(f"{c_dir / 'shards'}: no annotated keypoints kept (kp2d_img_px, kp2d_mask) to refine against")
    ids = [str(a) for a in inputs["sample_id"] if str(a) in entries]
    rows = [i for i, a in enumerate(inputs["sample_id"]) if str(a) in entries]
    module = AnnotatorModule.load_from_checkpoint(b_dir / "annotator.ckpt", map_location="cpu")
    camera = None
    if cfg.algorithm.refine_camera == "estimated":
        camera = estimated_image_camera(_image_hw_px([inputs["image_path"][i] for i in rows]))
    refined, summary = refine_pseudo_gts(
        [entries[a] for a in ids], inputs["kp2d_img_px"][rows], inputs["kp2d_mask"][rows], module.body_model.cpu(),
        load_vposer(vposer_path), cfg.data.convention,
        RefineConfig(iters=cfg.algorithm.refine_iters, stages=cfg.algorithm.refine_stages,
                     cold_start=cfg.algorithm.refine_cold_start), camera)
    write_pseudo_gt(folder / "pseudo_gt.json", {**entries, **dict(zip(ids, refined))})
    atomic_write_json(folder / "refine.json", summary)
    log.info("refine: kept the fit for %d of %d samples", summary["kept"], summary["total"])
    outputs = ["pseudo_gt.json", "refine.json"]
    if cfg.export.overlays:
        final = read_pseudo_gt(folder / "pseudo_gt.json")
        shown = {**inputs, "sample_id": ids, "image_path": [inputs["image_path"][i] for i in rows],
                 "kp2d_img_px": inputs["kp2d_img_px"][rows], "kp2d_mask": inputs["kp2d_mask"][rows],
                 "kp2d_pred_img_px": project_keypoints_px(module.body_model.cpu(), [final[a] for a in ids],
                                                          cfg.data.convention)}
        write_overlays(folder / "overlays", final, shown, module)
        outputs.append("overlays")
    return outputs


def _image_hw_px(paths: list[str]) -> torch.Tensor:
    """(N, 2) (height, width) pixels of the images at ``paths``, from their headers (PIL reads no pixels)."""
    from PIL import Image

    sizes = []
    for path in paths:
        with Image.open(path) as img:
            sizes.append((img.height, img.width))
    return torch.tensor(sizes, dtype=torch.float32)


def _collect(store: dict[str, Any], outputs_and_result: tuple[list[str], dict[str, Any]]) -> list[str]:
    outputs, result = outputs_and_result
    store.update(result)
    return outputs


