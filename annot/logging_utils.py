"""Loggers and run-level callbacks: CSV always, Weights & Biases offline by default.

Layout of a run (style.md §10.13), ``out`` = ``export.out_dir``::

    out/<stage>/logs/metrics.csv, hparams.yaml    CSVLogger of each pipeline stage (always; no server)
    out/wandb/offline-run-<date>-<id>/              one W&B run per invocation (``trainer.logger=wandb``)

With ``trainer.logger=wandb`` the run is *offline* unless ``WANDB_API_KEY`` is set (then online; an
explicit ``WANDB_MODE`` wins, see :func:`wandb_mode`); offline runs are uploaded later with
``wandb sync out/wandb/offline-run-*``. The W&B run is created lazily on rank zero by the first stage
that trains (its ``config`` = the resolved run config, ``OmegaConf.to_container(cfg, resolve=True)`` as
W&B's OmegaConf integration advises) and shared by the later stages, whose metrics carry the stage
folder name as prefix (``stage_b_round1-train/loss/total``). :func:`log_report` adds the final report
(summary numbers, the overlay grid and the 2D-error curve) and closes the run.

Logged by every training stage: the module's losses and metrics (``train/...``), the learning rate
(``LearningRateMonitor``: ``lr-Adam``) and the throughput ``train/samples_per_s``
(:class:`annot.callbacks.SamplesPerSecond`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger

log = logging.getLogger(__name__)

LOGGER_KINDS = ("csv", "wandb", "none")


def wandb_mode() -> str:
    """The W&B mode of this process: ``WANDB_MODE`` when it says ``disabled`` / ``offline`` / ``online``;
    otherwise ``"online"`` when ``WANDB_API_KEY`` is set (or a ``wandb agent`` started us:
    ``WANDB_SWEEP_ID``), else ``"offline"``. Offline never contacts a server."""
    requested = os.environ.get("WANDB_MODE", "").strip().lower()
    if requested in ("disabled", "offline", "online"):
        return requested
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_SWEEP_ID"):
        return "online"
    return "offline"


def build_loggers(out_dir: str | Path, cfg: DictConfig, run_name: str, *, kind: str | None = None,
                  wandb_dir: str | Path | None = None, prefix: str = "", group: str | None = None) -> list[Logger]:
    """The loggers of one Trainer.

    Args:
        out_dir: folder of the CSV logs (``out_dir/logs/metrics.csv``, ``hparams.yaml``).
        cfg: the run config; ``cfg.trainer.logger`` / ``cfg.trainer.wandb_project`` choose the loggers and
            the resolved ``cfg`` becomes the W&B run config.
        run_name: W&B run name (e.g. the output folder's name or a sweep point).
        kind: ``"csv"``, ``"wandb"`` or ``"none"`` (default ``cfg.trainer.logger``).
        wandb_dir: parent of the ``wandb/`` folder (default ``out_dir``).
        prefix: prefix of the W&B metric names (the stage, so stages sharing a run stay apart).
        group: W&B group (default ``cfg.name``).

    Returns:
        ``[]`` for ``"none"``; ``[CSVLogger]`` for ``"csv"``; ``[CSVLogger, WandbLogger]`` for ``"wandb"``
        (offline unless ``WANDB_API_KEY`` is set; see :func:`wandb_mode`). An active W&B run of the same
        ``wandb_dir`` is reused; any other active run is finished first.

    Raises:
        ValueError: unknown ``kind``.
    """
    kind = kind or cfg.trainer.logger
    if kind not in LOGGER_KINDS:
        raise ValueError(f"trainer.logger must be one of {LOGGER_KINDS}, got {kind!r}")
    if kind == "none":
        return []
    loggers: list[Logger] = [CSVLogger(str(out_dir), name="logs", version="")]
    if kind == "wandb":
        loggers.append(_wandb_logger(Path(wandb_dir or out_dir), cfg, run_name, prefix, group))
    return loggers


def _wandb_logger(wandb_dir: Path, cfg: DictConfig, run_name: str, prefix: str, group: str | None) -> Logger:
    from pytorch_lightning.loggers import WandbLogger

    active = _active_run()
    if active is not None and _run_in(active, wandb_dir):
        return WandbLogger(experiment=active, prefix=prefix)
    finish_wandb()
    return WandbLogger(**_init_kwargs(wandb_dir, cfg, run_name, group), prefix=prefix)


def _init_kwargs(wandb_dir: Path, cfg: DictConfig, run_name: str, group: str | None) -> dict[str, Any]:
    """``wandb.init`` arguments (as ``WandbLogger`` keywords): mode, folder, project, resolved config."""
    wandb_dir.mkdir(parents=True, exist_ok=True)
    mode = wandb_mode()
    return {"name": run_name, "save_dir": str(wandb_dir), "project": cfg.trainer.wandb_project,
            "group": group or cfg.get("name"), "mode": mode, "config": OmegaConf.to_container(cfg, resolve=True)}


def _active_run() -> Any:
    import sys

    if "wandb" not in sys.modules:
        return None
    import wandb

    return wandb.run


def _run_in(run: Any, wandb_dir: Path) -> bool:
    """True when the W&B run writes below ``wandb_dir``."""
    try:
        return Path(run.dir).resolve().is_relative_to(wandb_dir.resolve())
    except (AttributeError, OSError, TypeError):
        return False


def finish_wandb() -> None:
    """Finish the active W&B run, if any (no-op when wandb was never imported)."""
    run = _active_run()
    if run is not None:
        run.finish()


def scale_callbacks(cfg: DictConfig, has_logger: bool) -> list[pl.Callback]:
    """The run-level callbacks chosen by ``cfg.trainer``: throughput, learning rate (with a logger),
    channels-last layout and ``torch.compile`` (see :mod:`annot.callbacks`)."""
    from pytorch_lightning.callbacks import LearningRateMonitor

    from annot.callbacks import ChannelsLast, CompileModule, SamplesPerSecond

    t = cfg.trainer
    callbacks: list[pl.Callback] = [SamplesPerSecond()]
    if has_logger:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if t.channels_last:
        callbacks.append(ChannelsLast())
    if t.compile:
        callbacks.append(CompileModule())
    return callbacks


# --------------------------------------------------------------------------- end of run
def report_metrics(report: dict[str, Any], pseudo_gt_json: str | Path | None = None) -> dict[str, float]:
    """Flat scalars of a ``report.json`` (and of its ``pseudo_gt.json`` per-sample quality).

    Returns ``kp2d_err_px_mean`` (original-image pixels, mean over annotated people), ``annotated``,
    ``skipped``, ``eft_rejected`` (count), ``total_s`` (all stages, from their markers) and, from the
    pseudo-GT file when given:
    ``z_norm_mean`` (|z| of the VPoser code; ``nan`` without VPoser), ``max_abs_beta_mean`` and
    ``body_pose_angle_deg_mean`` (mean over people and the 21 body joints of the rotation angle |rotvec|,
    degrees: how far the pseudo-GT poses are from the rest pose).
    """
    import json

    counts = report.get("counts", {})
    mean = (report.get("kp2d_err_px") or {}).get("mean")
    metrics = {"kp2d_err_px_mean": float(mean) if mean is not None else float("nan"),
               "annotated": float(counts.get("annotated", 0)), "skipped": float(counts.get("skipped", 0)),
               "eft_rejected": float(counts.get("eft_rejected", 0)),
               "total_s": float(report.get("wall_time", {}).get("stages_total_s", float("nan")))}
    if pseudo_gt_json is not None and Path(pseudo_gt_json).is_file():
        entries = json.loads(Path(pseudo_gt_json).read_text()).values()
        quality = [e.get("quality", {}) for e in entries]

        def mean_of(values: list[float]) -> float:
            return float(np.mean(values)) if values else float("nan")

        metrics["z_norm_mean"] = mean_of([q["z_norm"] for q in quality if "z_norm" in q])
        metrics["max_abs_beta_mean"] = mean_of([q["max_abs_beta"] for q in quality if "max_abs_beta" in q])
        angles = [np.linalg.norm(np.asarray(e["smpl_param"]["pose"], float).reshape(-1, 3)[1:22], axis=1).mean()
                  for e in entries]
        metrics["body_pose_angle_deg_mean"] = float(np.degrees(mean_of(angles)))
    return metrics


def overlay_grid(folder: str | Path, max_images: int = 9, tile_height_px: int = 256,
                 columns: int = 3) -> np.ndarray | None:
    """uint8 (H, W, 3) RGB grid of the first ``max_images`` overlay PNGs of ``folder`` (sorted by name),
    each scaled to ``tile_height_px``; ``None`` when there is none."""
    import cv2

    from annot.callbacks import _assemble

    tiles = []
    for path in sorted(Path(folder).glob("*.png"))[:max_images]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        scale = tile_height_px / image.shape[0]
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), tile_height_px), interpolation=cv2.INTER_AREA)
        tiles.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return _assemble(tiles, min(columns, len(tiles))) if tiles else None


def log_report(report: dict[str, Any], cfg: DictConfig, run_name: str | None = None) -> dict[str, float]:
    """Close the run's W&B log with its outputs (no-op unless ``cfg.trainer.logger == "wandb"``).

    Writes :func:`report_metrics` into the run summary (the sweep metric is ``kp2d_err_px_mean``), logs
    the overlay grid (``annotate/overlays``) and the 2D-error curve (``annotate/kp2d_error_curve``) and
    finishes the run. When every stage was already complete (no trainer ran), a run is created for this.
    Returns the metrics (also for ``csv`` / ``none``). Call on rank zero.
    """
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    out = Path(cfg.export.out_dir)
    metrics = report_metrics(report, out / "pseudo_gt.json")
    if cfg.trainer.logger != "wandb" or wandb_mode() == "disabled" or getattr(rank_zero_only, "rank", 0) != 0:
        return metrics
    import wandb

    active = _active_run()
    if active is None or not _run_in(active, out):
        finish_wandb()
        kwargs = _init_kwargs(out, cfg, run_name or out.name, None)
        kwargs["dir"] = kwargs.pop("save_dir")
        active = wandb.init(**kwargs)
    active.summary.update({k: v for k, v in metrics.items() if np.isfinite(v)})
    images: dict[str, Any] = {}
    grid = overlay_grid(out / "overlays")
    if grid is not None:
        images["annotate/overlays"] = wandb.Image(grid, caption="pseudo-GT overlays (green: GT 2D, red: projected)")
    if (out / "kp2d_error_curve.png").is_file():
        images["annotate/kp2d_error_curve"] = wandb.Image(str(out / "kp2d_error_curve.png"))
    if images:
        active.log(images)
    finish_wandb()
    return metrics
