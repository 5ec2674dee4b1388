"""Lightning callbacks shared by the annotator and the estimators: training curves that end up in reports
and images, throughput, memory layout, ``torch.compile`` and checkpoints.

Rendering and bookkeeping live here, never in the LightningModule (style.md §10.14).
:func:`scale_callbacks` picks the run-level ones from ``cfg.trainer``.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class MetricHistory(pl.Callback):
    """Record selected logged metrics every ``every_n_steps`` optimiser steps (rank zero only).

    Args:
        keys: metric names as logged, e.g. ``("train/kp2d_err_img_px", "train/loss/total")``.
        every_n_steps: sampling period in optimiser steps (the first and last step are always kept).

    After training, ``history`` is a list of ``{"step": int, <key>: float, ...}`` rows.
    """

    def __init__(self, keys: tuple[str, ...], every_n_steps: int = 10) -> None:
        super().__init__()
        self.keys = tuple(keys)
        self.every_n_steps = max(1, int(every_n_steps))
        self.history: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        last = trainer.max_steps is not None and trainer.max_steps > 0 and step >= trainer.max_steps
        if not trainer.is_global_zero or not (step == 1 or step % self.every_n_steps == 0 or last):
            return
        row: dict[str, float] = {"step": float(step)}
        for key in self.keys:
            value = trainer.callback_metrics.get(key)
            row[key] = float(value) if value is not None else math.nan
        self.history.append(row)


class MixCounts(pl.Callback):
    """Log the realised per-dataset sample counts of a :class:`annot.data.mixing.MixedBatchSampler` as
    ``train/mix/<name>`` after every training batch (nothing when the loader is not mixed)."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        from annot.data.mixing import MixedBatchSampler, log_mix_counts

        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if isinstance(sampler, MixedBatchSampler):
            log_mix_counts(pl_module, sampler)


class PredictionGridCallback(pl.Callback):
    """Render the predicted meshes over a few fixed validation crops after each validation epoch.

    The crops are the first samples of the validation sets, taken in turn from each set (set 0 item 0,
    set 1 item 0, ..., set 0 item 1, ...), fixed at the first call so every epoch shows the same
    people. The module must follow the :class:`estimators.base.EstimatorModule` contract:
    ``forward(img)["vertices_cam_m"]`` (B, V, 3) metres in the crop camera, ``crop_camera()`` ->
    ``focal_px`` (2,), ``princpt_px`` (2,) in crop pixels, and ``body_model.faces`` (F, 3). Each tile
    is the crop enlarged to ``tile_height_px`` with the shaded mesh blended over it, the GT 2D
    keypoints (green) and a ``<set>:<sample_id>`` label.

    Writes ``<out_dir>/epoch_XXX.png`` (XXX = ``trainer.current_epoch``) and logs the grid to every
    logger that takes images (``log_image``: W&B; ``experiment.add_image``: TensorBoard). Runs on rank
    zero only, during ``fit`` only (not sanity checks, not ``trainer.validate``). The
    :class:`annot.render.MeshRenderer` is created lazily on first use; any failure (no OSMesa, a
    module without ``crop_camera``...) is logged as a warning and training goes on (style.md §10.14).

    Args:
        out_dir: folder of the PNG files (created).
        num_images: number of crops in the grid.
        every_n_epochs: render after every n-th validation epoch (counted by ``current_epoch + 1``).
        tile_height_px: height of each tile in pixels (the crop is scaled, the camera with it).
        columns: tiles per row (default ``min(num_images, 3)``).
        alpha: mesh opacity over the crop.
    """

    def __init__(self, out_dir: str | Path, num_images: int = 6, every_n_epochs: int = 1, tile_height_px: int = 256,
                 columns: int | None = None, alpha: float = 0.8) -> None:
        super().__init__()
        if num_images < 1 or every_n_epochs < 1 or tile_height_px < 8:
            raise ValueError(f"PredictionGridCallback: num_images ({num_images}) and every_n_epochs "
                             f"({every_n_epochs}) must be >= 1, tile_height_px ({tile_height_px}) >= 8")
        self.out_dir = Path(out_dir)
        self.num_images = int(num_images)
        self.every_n_epochs = int(every_n_epochs)
        self.tile_height_px = int(tile_height_px)
        self.columns = int(columns) if columns else min(self.num_images, 3)
        self.alpha = float(alpha)
        self.written: list[Path] = []
        self._renderer: Any = None
        self._batch: dict[str, Any] | None = None
        self._labels: list[str] = []

    # ------------------------------------------------------------------ lightning hooks
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from pytorch_lightning.trainer.states import TrainerFn

        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != TrainerFn.FITTING:
            return
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs:
            return
        try:
            grid = self.render_grid(trainer, pl_module)
            path = self.out_dir / f"epoch_{epoch:03d}.png"
            _write_png(path, grid)
            self.written.append(path)
            self._log_image(trainer, grid)
        except Exception as err:  # noqa: BLE001 - visualisation must never stop training
            log.warning("prediction grid of epoch %d skipped: %s: %s", epoch, type(err).__name__, err)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ rendering
    def fixed_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[dict[str, Any], list[str]]:
        """The collated fixed validation samples and their ``<set>:<sample_id>`` labels (chosen once).

        Raises:
            ValueError: the trainer has no validation data.
        """
        if self._batch is None:
            from torch.utils.data import default_collate

            loaders = trainer.val_dataloaders
            loaders = list(loaders) if isinstance(loaders, (list, tuple)) else [loaders] if loaders is not None else []
            datasets = [loader.dataset for loader in loaders]
            if not datasets or not any(len(ds) for ds in datasets):
                raise ValueError("no validation samples to render")
            names = list(getattr(pl_module, "val_set_names", ())) or [f"val{i}" for i in range(len(datasets))]
            samples, labels = [], []
            for index in range(max(len(ds) for ds in datasets)):
                for name, dataset in zip(names, datasets):
                    if index < len(dataset) and len(samples) < self.num_images:
                        sample = dataset[index]
                        samples.append(sample)
                        labels.append(f"{name}:{sample.get('sample_id', index)}")
            self._batch, self._labels = default_collate(samples), labels
        return self._batch, self._labels

    def render_grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> np.ndarray:
        """uint8 (rows * tile_h, columns * tile_w, 3) RGB grid of the module's predictions on the fixed crops.

        Raises:
            RuntimeError: no headless GL backend (:class:`annot.render.MeshRenderer`).
            AttributeError: the module lacks ``crop_camera`` / ``body_model``.
        """
        import torch

        from annot.render import tile_grid

        batch, labels = self.fixed_batch(trainer, pl_module)
        with torch.no_grad():
            pred = pl_module(batch["img"].to(pl_module.device))
        vertices = pred["vertices_cam_m"].detach().float().cpu().numpy()
        focal, princpt = (t.detach().double().cpu().numpy() for t in pl_module.crop_camera())
        faces = pl_module.body_model.faces
        tiles = [self._tile(batch, i, vertices[i], faces, focal, princpt, labels[i]) for i in range(len(labels))]
        return tile_grid(tiles, self.columns)

    def _tile(self, batch: dict[str, Any], i: int, vertices_cam_m: np.ndarray, faces: np.ndarray, focal_px: np.ndarray,
              princpt_px: np.ndarray, label: str) -> np.ndarray:
        import cv2

        from annot.render import MeshRenderer, draw_keypoints

        crop = (batch["img"][i].permute(1, 2, 0).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
        height, width = crop.shape[:2]
        scale = self.tile_height_px / height
        size = (max(1, round(width * scale)), self.tile_height_px)
        image = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
        # pixel centres: x_tile = (x_crop + 0.5) * scale - 0.5
        if self._renderer is None:
            self._renderer = MeshRenderer()
        shown = self._renderer.overlay(image, vertices_cam_m, faces, focal_px * scale, (princpt_px + 0.5) * scale - 0.5,
                                       alpha=self.alpha)
        if "kp2d_px" in batch:
            kp = (batch["kp2d_px"][i].numpy() + 0.5) * scale - 0.5
            mask = batch["kp2d_mask"][i].numpy() > 0 if "kp2d_mask" in batch else None
            shown = draw_keypoints(shown, kp, mask, color=(0, 255, 0), radius_px=max(2, round(scale * 1.5)))
        cv2.putText(shown, label[:40], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        return shown

    def _log_image(self, trainer: pl.Trainer, grid: np.ndarray) -> None:
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="val/prediction_grid", images=[grid], step=trainer.global_step)
            elif hasattr(getattr(logger, "experiment", None), "add_image"):
                logger.experiment.add_image("val/prediction_grid", grid, trainer.global_step, dataformats="HWC")


def _write_png(path: Path, image_rgb: np.ndarray) -> None:
    """Encode an RGB uint8 image as PNG and write it atomically. RuntimeError if encoding fails."""
    import cv2

    from annot.io.atomic import atomic_write_bytes

    ok, png = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    atomic_write_bytes(path, png.tobytes())


# --------------------------------------------------------------------------- scale (throughput, layout, compile)
def _batch_size(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor (dict / list / tensor batches); 0 if none."""
    import torch

    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for value in values:
        size = _batch_size(value)
        if size:
            return size
    return 0


class SamplesPerSecond(pl.Callback):
    """Log the training throughput ``train/samples_per_s`` (all ranks together) every ``every_n_steps``.

    The rate is measured between the ends of training batches, so it includes data loading, the
    optimiser and Lightning's own overhead: what a run really achieves. On CUDA the device is
    synchronised at the measurement points only (no per-step sync). The first batch (start-up,
    ``torch.compile``) is excluded. Global rate = per-rank samples x ``trainer.world_size`` (the
    per-rank batches are equal under :func:`annot.data.datamodule.split_global_batch`).

    Written for us rather than Lightning's ``ThroughputMonitor`` (which works with Lightning 2.6 here)
    because that one reports only after a full ``window_size`` of batches (100 by default, more than
    short runs have), logs past ``self.log`` (so the value is not in ``callback_metrics`` nor in the
    curves of :class:`MetricHistory`) and names it ``train/samples_per_sec``.

    Args:
        every_n_steps: measurement window in optimiser steps (default: the trainer's ``log_every_n_steps``).

    Attributes:
        last_samples_per_s: the latest global rate (``nan`` before the first window closes).
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self.last_samples_per_s = math.nan
        self._start: float | None = None
        self._samples = 0
        self._batches = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._samples, self._batches = None, 0, 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        import time

        if self._start is None:  # the first batch closes the start-up period
            self._sync(pl_module)
            self._start = time.perf_counter()
            return
        self._samples += _batch_size(batch)
        self._batches += 1
        window = self.every_n_steps or max(1, trainer.log_every_n_steps)
        if self._batches < window:
            return
        self._sync(pl_module)
        now = time.perf_counter()
        rate = self._samples * trainer.world_size / max(now - self._start, 1e-9)
        self.last_samples_per_s = rate
        pl_module.log("train/samples_per_s", rate, on_step=True, on_epoch=False, batch_size=1, rank_zero_only=True)
        self._start, self._samples, self._batches = now, 0, 0

    @staticmethod
    def _sync(pl_module: pl.LightningModule) -> None:
        import torch

        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)


class ChannelsLast(pl.Callback):
    """Run convolutions in NHWC (``torch.channels_last``): faster on tensor cores (anchors §2a).

    At ``setup`` the module's 4D parameters and buffers are converted
    (``module.to(memory_format=torch.channels_last)``; 1D/2D tensors are untouched, state-dict keys and
    values unchanged). Before every train / validation / predict batch, the 4D tensors of a dict batch
    (``img`` (B, 3, H, W)) are made NHWC in place. Inputs that escape this (list batches) still work:
    convolutions follow the weights' layout.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        import torch

        pl_module.to(memory_format=torch.channels_last)

    @staticmethod
    def _convert(batch: Any) -> None:
        import torch

        if isinstance(batch, dict):
            for key, value in batch.items():
                if isinstance(value, torch.Tensor) and value.ndim == 4:
                    batch[key] = value.contiguous(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._convert(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._convert(batch)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._convert(batch)


class CompileModule(pl.Callback):
    """``torch.compile`` the module's network in place at ``setup`` (``nn.Module.compile``).

    Compiles ``pl_module.<attr>`` (default ``net``: backbone + regressor of
    :class:`annot.annotator.module.AnnotatorModule`; the body model and VPoser stay eager) or, without that
    attribute, the whole module's forward. In-place compilation keeps the state-dict keys (no
    ``_orig_mod.`` prefix), so checkpoints load into eager modules. The first steps pay the
    compilation (minutes for ResNet-50 with ``inductor``).

    Args:
        attr: attribute holding the network to compile (``None``: the whole module).
        backend, mode: passed to ``torch.compile`` (``"inductor"``; ``mode`` e.g. ``"max-autotune"``).
    """

    def __init__(self, attr: str | None = "net", backend: str = "inductor", mode: str | None = None) -> None:
        super().__init__()
        self.attr, self.backend, self.mode = attr, backend, mode

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        target = getattr(pl_module, self.attr, None) if self.attr else None
        target = target if target is not None else pl_module
        if getattr(target, "_compiled_call_impl", None) is None:
            target.compile(backend=self.backend, mode=self.mode)
            log.info("torch.compile(%s, backend=%s)", type(target).__name__, self.backend)


class LastEveryEpochCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` holds the weights of the latest epoch, always.

    Lightning 2.6 rewrites ``last.ckpt`` only when a top-k checkpoint was saved at the same step, so after
    an epoch that does not improve the monitored metric ``last.ckpt`` still holds an older epoch (and
    ``ckpt_path="last"`` would resume from it). This subclass saves ``last.ckpt`` at the same moment
    the parent would have considered saving (train-epoch end or validation end) whenever the parent did
    not save anything at this step. Same arguments as ``ModelCheckpoint`` (uses its private helpers
    ``_should_skip_saving_checkpoint``, ``_should_save_on_train_epoch_end``, ``_monitor_candidates``,
    ``_save_last_checkpoint``, present throughout Lightning 2.x).
    """

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._refresh_last(trainer, self._should_save_on_train_epoch_end(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._refresh_last(trainer, not self._should_save_on_train_epoch_end(trainer))

    def _refresh_last(self, trainer: pl.Trainer, this_hook_saves: bool) -> None:
        if self.save_last and this_hook_saves and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def scale_callbacks(cfg: DictConfig, has_logger: bool) -> list[pl.Callback]:
    """The run-level callbacks chosen by ``cfg.trainer``: throughput, learning rate (with a logger),
    channels-last layout and ``torch.compile`` (this module's classes)."""
    from pytorch_lightning.callbacks import LearningRateMonitor

    t = cfg.trainer
    callbacks: list[pl.Callback] = [SamplesPerSecond()]
    if has_logger:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if t.channels_last:
        callbacks.append(ChannelsLast())
    if t.compile:
        callbacks.append(CompileModule())
    return callbacks
