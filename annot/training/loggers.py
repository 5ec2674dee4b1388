"""The loggers of every Trainer: CSV always, Weights & Biases offline by default.

Layout of a run (style.md §10.13), ``out`` = ``export.out_dir``::

    out/<stage>/logs/metrics.csv, hparams.yaml    CSVLogger of each pipeline stage (always; no server)
    out/wandb/offline-run-<date>-<id>/              one W&B run per invocation (``trainer.logger=wandb``)

With ``trainer.logger=wandb`` the run is *offline* unless ``WANDB_API_KEY`` is set (then online; an
explicit ``WANDB_MODE`` wins, see :func:`wandb_mode`); offline runs are uploaded later with
``wandb sync out/wandb/offline-run-*``. The W&B run is created lazily on rank zero by the first stage
that trains (its ``config`` = the resolved run config, ``OmegaConf.to_container(cfg, resolve=True)`` as
W&B's OmegaConf integration advises) and shared by the later stages, whose metrics carry the stage
folder name as prefix (``stage_b_round1-train/loss/total``). The annotator's
:func:`annot.annotator.report.log_report` adds the final report (summary numbers, the overlay grid and the
2D-error curve) and closes the run.

Logged by every training stage: the module's losses and metrics (``train/...``), the learning rate
(``LearningRateMonitor``: ``lr-Adam``) and the throughput ``train/samples_per_s``
(:class:`annot.training.callbacks.SamplesPerSecond`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

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

    active = active_wandb_run()
    if active is not None and wandb_run_in(active, wandb_dir):
        return WandbLogger(experiment=active, prefix=prefix)
    finish_wandb()
    return WandbLogger(**wandb_init_kwargs(wandb_dir, cfg, run_name, group), prefix=prefix)


def wandb_init_kwargs(wandb_dir: Path, cfg: DictConfig, run_name: str, group: str | None) -> dict[str, Any]:
    """``wandb.init`` arguments (as ``WandbLogger`` keywords): mode, folder, project, resolved config."""
    wandb_dir.mkdir(parents=True, exist_ok=True)
    mode = wandb_mode()
    return {"name": run_name, "save_dir": str(wandb_dir), "project": cfg.trainer.wandb_project,
            "group": group or cfg.get("name"), "mode": mode, "config": OmegaConf.to_container(cfg, resolve=True)}


def active_wandb_run() -> Any:
    import sys

    if "wandb" not in sys.modules:
        return None
    import wandb

    return wandb.run


def wandb_run_in(run: Any, wandb_dir: Path) -> bool:
    """True when the W&B run writes below ``wandb_dir``."""
    try:
        return Path(run.dir).resolve().is_relative_to(wandb_dir.resolve())
    except (AttributeError, OSError, TypeError):
        return False


def finish_wandb() -> None:
    """Finish the active W&B run, if any (no-op when wandb was never imported)."""
    run = active_wandb_run()
    if run is not None:
        run.finish()
