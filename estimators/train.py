"""Train an estimator g (Pose2Pose or HMR) on a dataset mixture, evaluating every validation epoch.

``run(cfg)`` with an :class:`estimators.config.EstimatorConfig`:

1. builds the training mixture (``data.train``, exact per-batch ratios, :mod:`annot.data.mixing`) and
   the evaluation sets (``data.val``, ``h36m17`` convention, no augmentation) at the model's crop size;
   a dataset whose files are missing uses its ``fallback`` arguments when it has some (warning);
2. builds the module by name from :data:`ESTIMATORS` with explicit arguments and the resolved config
   (stored in every checkpoint, so checkpoints describe themselves, style.md §10.3);
3. fits with a CSVLogger, ``ModelCheckpoint`` (best by ``checkpoint.monitor`` + ``last.ckpt`` of the
   latest epoch, :class:`annot.training.callbacks.LastEveryEpochCheckpoint`),
   ``LearningRateMonitor``, the per-dataset mix counts and :class:`annot.training.callbacks.PredictionGridCallback`;
4. validates the final weights once more and writes ``metrics.json`` (see :func:`run`).

Validation computes MPJPE / PA-MPJPE (and MPVPE / PA-MPVPE where the set has GT meshes) with the mks0601 protocol
of :class:`estimators.base.EstimatorModule` (reference-spec D.1), logged ``val/<set>/<metric>_mm``.
The Pose2Pose optimisation (Adam 1e-4, /10 at epochs 4 and 6) and mixing (3D and 2D groups half and
half) follow mks0601 Hand4Whole ``main/config.py``, ``common/base.py``, ``data/dataset.py`` (spec B.4).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import Dataset

from annot.config import to_container
from annot.data import build_dataset
from annot.data.augment import AugmentConfig
from annot.data.datamodule import MixedTrainValDataModule, split_global_batch
from annot.data.robust import SkippingDataset, load_errors, validate_image_records
from annot.io.atomic import atomic_write_bytes, atomic_write_json
from annot.training.callbacks import LastEveryEpochCheckpoint, MixCounts, PredictionGridCallback
from estimators.base import EVAL_CONVENTION, EstimatorModule
from estimators.config import METRIC_KEYS, EstimatorConfig, check_config, estimator_input_hw
from estimators.hmr import HMRModule
from estimators.pose2pose import Pose2PoseModule

__all__ = [
    "ESTIMATORS",
    "build_datamodule",
    "build_module",
    "build_train_datasets",
    "build_val_datasets",
    "collect_val_metrics",
    "format_metrics_table",
    "mixture_ratios",
    "module_kwargs",
    "run",
]

log = logging.getLogger(__name__)

#: Estimator name (config key ``estimator``) -> LightningModule class.
ESTIMATORS: dict[str, type[EstimatorModule]] = {"pose2pose": Pose2PoseModule, "hmr": HMRModule}
#: Keys of a ``configs/data`` file that the run owns (crop size, convention, augmentation, seed, body model).
RUN_OWNED_FILE_KEYS = ("dataset", "input_hw", "convention", "augment", "flip_prob", "seed", "bbox_scale",
                       "body_model_type", "body_model_path")


# --------------------------------------------------------------------------------------- module
def module_kwargs(cfg: DictConfig, val_set_names: tuple[str, ...], config: dict[str, Any] | None) -> dict[str, Any]:
    """Explicit constructor arguments of the configured estimator (no ``cfg`` passed down).

    Pose2Pose gets ``data.convention`` as ``data_convention`` and ``optim.lr / lr_dec_epochs /
    lr_dec_factor``; HMR gets it as ``kp2d_convention`` (and its 3D convention) and
    ``optim.lr / weight_decay``; both get the body model, ``val_set_names`` and ``config``.
    """
    body = {"body_model_type": cfg.body_model.model_type, "body_model_gender": cfg.body_model.gender,
            "body_model_path": cfg.body_model.path, "val_set_names": tuple(val_set_names), "config": config}
    if cfg.estimator == "pose2pose":
        p = cfg.pose2pose
        return {**body, "backbone_depth": p.backbone_depth, "backbone_weights": p.backbone_weights,
                "input_hw": tuple(int(v) for v in p.input_hw), "data_convention": cfg.data.convention,
                "lr": cfg.optim.lr, "lr_dec_epochs": tuple(cfg.optim.lr_dec_epochs),
                "lr_dec_factor": cfg.optim.lr_dec_factor}
    h = cfg.hmr
    return {**body, "backbone_depth": h.backbone_depth, "backbone_weights": h.backbone_weights,
            "mean_params_path": h.mean_params_path, "input_size": h.input_size, "n_iter": h.n_iter,
            "kp2d_convention": cfg.data.convention, "joints3d_convention": None, "focal_px": h.focal_px,
            "w_kp2d": h.w_kp2d, "w_joints3d": h.w_joints3d, "w_pose": h.w_pose, "w_betas": h.w_betas,
            "w_cam": h.w_cam, "loss_scale": h.loss_scale, "lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay}


def build_module(cfg: DictConfig, config: dict[str, Any] | None = None) -> EstimatorModule:
    """The configured estimator, validating on the sets of ``data.val`` (in that order).

    Args:
        cfg: an :class:`EstimatorConfig`.
        config: the resolved config to store in the hyper-parameters (default: ``to_container(cfg)``).
    """
    cls = ESTIMATORS[cfg.estimator]
    return cls(**module_kwargs(cfg, tuple(cfg.data.val), to_container(cfg) if config is None else config))


# --------------------------------------------------------------------------------------- data
def loader_args(spec: DictConfig, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Loader arguments of a :class:`DatasetSpec`: its ``config`` file's keys (minus
    :data:`RUN_OWNED_FILE_KEYS`), then ``args`` (default ``spec.args``).

    Raises:
        FileNotFoundError: ``spec.config`` does not exist.
    """
    merged: dict[str, Any] = {}
    if spec.config:
        if not Path(spec.config).is_file():
            raise FileNotFoundError(f"data config file not found: {spec.config} (key `config` of the dataset)")
        file_args = OmegaConf.to_container(OmegaConf.load(spec.config))
        merged = {k: v for k, v in file_args.items() if k not in RUN_OWNED_FILE_KEYS}
    merged.update(to_container(spec.args) if args is None else dict(args))
    return merged


def _build_one(section: str, name: str, spec: DictConfig, common: dict[str, Any]) -> tuple[Dataset, dict | None]:
    """Build one dataset; on FileNotFoundError use ``spec.fallback`` when given.

    Returns:
        ``(dataset, fallback_args_used_or_None)``.
    """
    try:
        return build_dataset(spec.dataset, **{**common, **loader_args(spec)}), None
    except FileNotFoundError as err:
        if spec.fallback is None:
            raise FileNotFoundError(f"data.{section}.{name}: {err}"
                                    + (f" ({spec.fallback_hint})" if spec.fallback_hint else "")) from None
        fallback = to_container(spec.fallback)
        log.warning("data.%s.%s: %s -> using its fallback %s%s", section, name, err, fallback,
                    f"; {spec.fallback_hint}" if spec.fallback_hint else "")
        return build_dataset(spec.dataset, **{**common, **loader_args(spec, fallback)}), fallback


def _common_args(cfg: DictConfig, input_hw: tuple[int, int], train: bool) -> dict[str, Any]:
    augment = AugmentConfig(**to_container(cfg.data.augment)) if train else AugmentConfig(enabled=False)
    return {"input_hw": tuple(input_hw), "convention": cfg.data.convention if train else EVAL_CONVENTION,
            "augment": augment, "bbox_scale": cfg.data.bbox_scale, "seed": cfg.seed,
            "body_model_type": cfg.body_model.model_type, "body_model_path": cfg.body_model.path}


def build_train_datasets(cfg: DictConfig, input_hw: tuple[int, int]) -> tuple[dict[str, Dataset], dict[str, dict]]:
    """The training datasets in ``data.convention`` with ``data.augment``, cropped to ``input_hw``.

    Returns:
        ``({name: dataset}, {name: fallback args}`` for those that fell back).

    Raises:
        FileNotFoundError: a dataset's files are missing and it has no fallback (names the config key).
        ValueError: a dataset is empty after its skips.
    """
    common = _common_args(cfg, input_hw, train=True)
    datasets, fallbacks = {}, {}
    for name, spec in cfg.data.train.items():
        dataset, used = _build_one("train", name, spec, common)
        if used is not None:
            fallbacks[name] = used
        _check_images(dataset)
        _check_not_empty("train", name, dataset)
        # a sample that still fails to load mid-training is replaced and counted, not fatal (annot.data.robust)
        datasets[name] = SkippingDataset(dataset, "train")
    return datasets, fallbacks


def build_val_datasets(cfg: DictConfig, input_hw: tuple[int, int]) -> tuple[dict[str, Dataset], dict[str, dict]]:
    """The evaluation sets of ``data.val`` in the ``h36m17`` convention, unaugmented (same return as
    :func:`build_train_datasets`)."""
    common = _common_args(cfg, input_hw, train=False)
    datasets, fallbacks = {}, {}
    for name, spec in cfg.data.val.items():
        datasets[name], used = _build_one("val", name, spec, common)
        if used is not None:
            fallbacks[name] = used
        _check_images(datasets[name])
        _check_not_empty("val", name, datasets[name])
    return datasets, fallbacks


def _check_images(dataset: Dataset) -> None:
    """Truncated or undecodable images become counted skips before training (the file's size wins over the
    json's), as in the annotator's stages (:func:`annot.data.robust.validate_image_records`)."""
    if getattr(dataset, "records", None) and hasattr(dataset, "skipped"):
        validate_image_records(dataset)


def _check_not_empty(section: str, name: str, dataset: Dataset) -> None:
    if len(dataset) == 0:
        summary = dataset.summary() if hasattr(dataset, "summary") else ""
        raise ValueError(f"data.{section}.{name}: no usable sample ({summary})")


def mixture_ratios(cfg: DictConfig, datasets: Mapping[str, Dataset]) -> dict[str, float]:
    """Per-batch shares of the training datasets (:class:`estimators.config.EstimatorDataConfig`).

    With ``data.group_ratios`` a group's share is split by its datasets' ``ratio`` when all give one,
    else by their lengths (Hand4Whole ``MultipleDatasets`` concatenates the 3D sets and the 2D sets).
    """
    data = cfg.data
    if not data.group_ratios:
        return {name: float(data.train[name].ratio) for name in datasets}
    total = sum(float(v) for v in data.group_ratios.values())
    ratios: dict[str, float] = {}
    for group, share in data.group_ratios.items():
        members = [n for n in datasets if data.train[n].group == group]
        explicit = all(data.train[n].ratio is not None for n in members)
        weights = {n: float(data.train[n].ratio) if explicit else float(len(datasets[n])) for n in members}
        norm = sum(weights.values())
        for n in members:
            ratios[n] = float(share) / total * weights[n] / norm
    return ratios


def global_batch_size(cfg: DictConfig) -> int:
    """Samples per optimiser step over all devices (``data.batch_size`` x devices for scope ``device``)."""
    devices = max(1, int(cfg.trainer.devices))
    return cfg.data.batch_size * (devices if cfg.data.batch_size_scope == "device" else 1)


def batches_per_epoch(cfg: DictConfig, datasets: Mapping[str, Dataset]) -> int:
    """``data.num_batches_per_epoch`` or one ``MultipleDatasets`` pass: ``2 x max(group lengths)``
    samples with groups (``make_same_len=True``), the sum of the lengths without, over the global batch
    (``drop_last``), at least 1."""
    if cfg.data.num_batches_per_epoch is not None:
        return int(cfg.data.num_batches_per_epoch)
    lengths = {n: len(ds) for n, ds in datasets.items()}
    if cfg.data.group_ratios:
        groups = [sum(v for n, v in lengths.items() if cfg.data.train[n].group == g) for g in cfg.data.group_ratios]
        samples = len(groups) * max(groups)
    else:
        samples = sum(lengths.values())
    return max(1, samples // global_batch_size(cfg))


def build_datamodule(cfg: DictConfig, train_datasets: Mapping[str, Dataset],
                     val_datasets: Mapping[str, Dataset]) -> MixedTrainValDataModule:
    """A :class:`MixedTrainValDataModule`: the mixture (global batch, exact ratios) and the evaluation sets.

    Raises:
        ValueError: the global batch does not divide over ``trainer.devices``.
    """
    global_batch = global_batch_size(cfg)
    split_global_batch(global_batch, max(1, int(cfg.trainer.devices)))  # fail before any training
    return MixedTrainValDataModule(train_datasets, mixture_ratios(cfg, train_datasets), global_batch,
                                   num_batches_per_epoch=batches_per_epoch(cfg, train_datasets),
                                   num_workers=cfg.data.num_workers, seed=cfg.seed, val_datasets=val_datasets,
                                   val_batch_size=cfg.data.val_batch_size)


# --------------------------------------------------------------------------------------- metrics
def collect_val_metrics(callback_metrics: Mapping[str, Any], set_names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{set: {metric: value}}`` from logged ``val/<set>/<metric>`` keys (metrics a set lacks are absent)."""
    out: dict[str, dict[str, float]] = {}
    for name in set_names:
        row = {key: float(callback_metrics[f"val/{name}/{key}"]) for key in METRIC_KEYS
               if f"val/{name}/{key}" in callback_metrics}
        out[name] = row
    return out


def format_metrics_table(metrics: Mapping[str, Mapping[str, float]], title: str = "") -> str:
    """Fixed-width text table: one row per evaluation set, columns MPJPE / PA-MPJPE / MPVPE / PA-MPVPE (mm) and
    MuPoTS 3DPCK (%, all / matched)."""
    widths = {key: max(14, len(key) + 2) for key in METRIC_KEYS}
    header = f"{'set':<12s}" + "".join(f"{key:>{widths[key]}s}" for key in METRIC_KEYS)
    lines = ([title] if title else []) + [header, "-" * len(header)]
    for name, row in metrics.items():
        cells = "".join(f"{row[key]:>{widths[key]}.1f}" if key in row and math.isfinite(row[key])
                        else f"{'-':>{widths[key]}s}" for key in METRIC_KEYS)
        lines.append(f"{name:<12s}{cells}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- trainer
class _LossCurve(pl.Callback):
    """``rows = [{"step", "epoch", "loss"}]``: the training loss of every optimiser step (rank zero)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        if trainer.is_global_zero and loss is not None:
            self.rows.append({"step": trainer.global_step, "epoch": trainer.current_epoch, "loss": float(loss)})


class _LoadFailures(pl.Callback):
    """``failures = {sample_id: reason}``: training samples that failed to load and were replaced by the next
    loadable one (:class:`annot.data.robust.SkippingDataset`, read from the batches: workers have their own
    copies of the dataset)."""

    def __init__(self) -> None:
        self.failures: dict[str, str] = {}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.failures.update(load_errors(batch))


class _EstimatorRecord(pl.Callback):
    """Write the estimator's registry name and class into every checkpoint (``checkpoint["estimator"]``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        cls = type(pl_module)
        checkpoint["estimator"] = {"name": self.name, "class": f"{cls.__module__}.{cls.__qualname__}"}


def build_trainer(cfg: DictConfig, out: Path, callbacks: list[pl.Callback], steps_per_epoch: int) -> pl.Trainer:
    """Lightning Trainer of a run: CSVLogger in ``<out>/logs``, the given callbacks, the mixed batch
    sampler kept as is (``use_distributed_sampler=False``), loaders rebuilt every epoch (fresh
    augmentation draws, :class:`annot.data.datamodule.MixedDataModule`)."""
    t = cfg.trainer
    return pl.Trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, precision=t.precision, log_every_n_steps=max(1, min(t.log_every_n_steps, steps_per_epoch)),
        check_val_every_n_epoch=t.check_val_every_n_epoch, num_sanity_val_steps=t.num_sanity_val_steps,
        limit_val_batches=t.limit_val_batches, deterministic=t.deterministic, enable_progress_bar=t.enable_progress_bar,
        logger=CSVLogger(str(out), name="logs", version=""), callbacks=callbacks, enable_model_summary=False,
        default_root_dir=str(out), use_distributed_sampler=False, reload_dataloaders_every_n_epochs=1)


def _callbacks(cfg: DictConfig, out: Path) -> tuple[list[pl.Callback], LastEveryEpochCheckpoint, _LossCurve]:
    """The run's callbacks (checkpoints, LR monitor, mixture counts, loss curve, estimator record, load-failure
    counter, prediction grids); returns them with the checkpoint callback and the loss curve."""
    checkpoint = LastEveryEpochCheckpoint(dirpath=str(out / "checkpoints"), filename="epoch_{epoch:03d}",
                                         save_last=True, monitor=cfg.checkpoint.monitor, mode=cfg.checkpoint.mode,
                                         save_top_k=cfg.checkpoint.save_top_k,
                                         save_weights_only=cfg.checkpoint.save_weights_only,
                                         auto_insert_metric_name=False)
    curve = _LossCurve()
    callbacks: list[pl.Callback] = [checkpoint, LearningRateMonitor(logging_interval="epoch"), MixCounts(), curve,
                                    _EstimatorRecord(cfg.estimator), _LoadFailures()]
    if cfg.grid.enabled:
        callbacks.append(PredictionGridCallback(out / "grids", num_images=cfg.grid.num_images,
                                                every_n_epochs=cfg.grid.every_n_epochs,
                                                tile_height_px=cfg.grid.tile_height_px))
    return callbacks, checkpoint, curve


def _clear_previous_run(out: Path) -> None:
    """Remove the checkpoints and grids a previous run wrote in ``out`` (not resuming): ModelCheckpoint
    would otherwise keep a stale ``epoch_XXX.ckpt`` it does not know about."""
    stale = [*(out / "checkpoints").glob("epoch_*.ckpt"), *(out / "checkpoints").glob("last*.ckpt"),
             *(out / "grids").glob("epoch_*.png")]
    if stale:
        log.info("removing %d checkpoint / grid file(s) of a previous run in %s", len(stale), out)
    for path in stale:
        path.unlink()


def _write_skipped(out: Path, train_sets: Mapping[str, Dataset], val_sets: Mapping[str, Dataset],
                   callbacks: list[pl.Callback]) -> dict[str, int]:
    """``<out>/skipped.json``: ``{"train" | "val": {set: {sample_id: reason}}, "load_failed_in_training":
    {sample_id: reason}}``, every sample a loader or the image check dropped, and every sample replaced during
    training; returns the counts (also in ``metrics.json``)."""
    failures = next(c.failures for c in callbacks if isinstance(c, _LoadFailures))
    record = {section: {name: dict(getattr(ds, "skipped", {}) or {}) for name, ds in sets.items()}
              for section, sets in (("train", train_sets), ("val", val_sets))}
    record["load_failed_in_training"] = failures
    atomic_write_json(out / "skipped.json", record)
    counts = {f"{section}.{name}": len(v) for section in ("train", "val") for name, v in record[section].items()}
    counts["load_failed_in_training"] = len(failures)
    return counts


def _resolved_config(cfg: DictConfig, fallbacks: Mapping[str, Mapping[str, dict]]) -> DictConfig:
    """``cfg`` with the fallback arguments that were used written in place of ``args`` (read-only)."""
    container = to_container(cfg)
    for section, used in fallbacks.items():
        for name, args in used.items():
            container["data"][section][name].update(args=dict(args), fallback=None)
    resolved = OmegaConf.merge(OmegaConf.structured(EstimatorConfig), container)
    OmegaConf.set_readonly(resolved, True)
    return resolved


def _loss_summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    if not rows:
        return {}
    window = max(1, len(rows) // 10)
    epochs: dict[int, list[float]] = {}
    for row in rows:
        epochs.setdefault(int(row["epoch"]), []).append(row["loss"])
    return {"steps": len(rows), "first": rows[0]["loss"], "last": rows[-1]["loss"],
            "first_steps_mean": sum(r["loss"] for r in rows[:window]) / window,
            "last_steps_mean": sum(r["loss"] for r in rows[-window:]) / window,
            "window_steps": window, "epoch_means": {str(e): sum(v) / len(v) for e, v in sorted(epochs.items())}}


# --------------------------------------------------------------------------------------- the command
def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, validate every epoch, validate the final weights, write ``<out_dir>/metrics.json``.

    Args:
        cfg: an :class:`estimators.config.EstimatorConfig` (``annot.config.load_config``).

    Returns:
        The ``metrics.json`` content: ``final`` ``{set: {metric_mm: value}}`` of the final weights,
        ``best`` (monitor, mode, score, checkpoint path), ``last_checkpoint``, ``train_loss`` (first /
        last step, means of the first and last 10 % of steps, per-epoch means), ``data`` (per set: size,
        loader summary, fallback used), ``params`` (counts), ``steps``, ``epochs``, ``wall_time_s`` and
        ``table`` (the printed metrics table).

    Raises:
        ConfigError: :func:`estimators.config.check_config`.
        FileNotFoundError: data, body model or backbone weights missing (messages name the key).
        ValueError: an empty dataset or a global batch that does not divide over the devices.
    """
    check_config(cfg)
    threads = torch.get_num_threads()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _run(cfg)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: DictConfig) -> dict[str, Any]:
    start = time.perf_counter()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    input_hw = estimator_input_hw(cfg)
    train_sets, train_fallbacks = build_train_datasets(cfg, input_hw)
    val_sets, val_fallbacks = build_val_datasets(cfg, input_hw)
    cfg = _resolved_config(cfg, {"train": train_fallbacks, "val": val_fallbacks})
    atomic_write_bytes(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode("utf-8"))
    module = build_module(cfg)
    datamodule = build_datamodule(cfg, train_sets, val_sets)
    callbacks, checkpoint, curve = _callbacks(cfg, out)
    trainer = build_trainer(cfg, out, callbacks, datamodule.num_batches_per_epoch)
    params = {"total": sum(p.numel() for p in module.parameters()),
              "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad)}
    trainer.logger.log_hyperparams({"params_total": params["total"], "params_trainable": params["trainable"]})
    ckpt_path = None
    last = out / "checkpoints" / "last.ckpt"
    if cfg.checkpoint.resume and last.is_file():
        ckpt_path = str(last)
    else:
        _clear_previous_run(out)
    log.info("training %s (%.1f M parameters) for %s epochs x %d batches of %d; mixture %s", cfg.estimator,
             params["total"] / 1e6, cfg.trainer.max_epochs, datamodule.num_batches_per_epoch,
             datamodule.global_batch_size, {n: round(r, 3) for n, r in datamodule.ratios.items()})
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    trainer.validate(module, datamodule=datamodule, verbose=False)
    final = collect_val_metrics(trainer.callback_metrics, tuple(cfg.data.val))
    best_score = checkpoint.best_model_score
    result = {
        "estimator": cfg.estimator,
        "final": final,
        "best": {"monitor": cfg.checkpoint.monitor, "mode": cfg.checkpoint.mode,
                 "score": None if best_score is None else float(best_score), "path": checkpoint.best_model_path},
        "last_checkpoint": checkpoint.last_model_path,
        "train_loss": _loss_summary(curve.rows),
        "data": {section: {name: {"size": len(ds), "summary": ds.summary() if hasattr(ds, "summary") else "",
                                  "fallback": name in fallbacks}
                           for name, ds in sets.items()}
                 for section, sets, fallbacks in (("train", train_sets, train_fallbacks),
                                                  ("val", val_sets, val_fallbacks))},
        "mixture": {"ratios": datamodule.ratios, "global_batch_size": datamodule.global_batch_size,
                    "batches_per_epoch": datamodule.num_batches_per_epoch},
        "params": params,
        "steps": trainer.global_step,
        "epochs": trainer.current_epoch,
        "grids": [str(p) for c in callbacks if isinstance(c, PredictionGridCallback) for p in c.written],
        "wall_time_s": time.perf_counter() - start,
    }
    result["skipped"] = _write_skipped(out, train_sets, val_sets, callbacks)
    result["table"] = format_metrics_table(final, title=f"{cfg.estimator}: final weights after {trainer.global_step} "
                                                        f"steps (best {cfg.checkpoint.monitor} = "
                                                        f"{result['best']['score']})")
    atomic_write_json(out / "metrics.json", result)
    return result
