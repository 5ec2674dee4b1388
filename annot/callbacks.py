"""Lightning callbacks: training curves that end up in reports and images.

Rendering and bookkeeping live here, never in the LightningModule (style.md §10.14).
"""
from __future__ import annotations

import math

import pytorch_lightning as pl


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
