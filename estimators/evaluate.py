"""Evaluate any estimator checkpoint from the file alone (``tools/evaluate.py CKPT``).

A checkpoint written by :func:`estimators.train.run` carries the resolved run config in its
hyper-parameters (``hyper_parameters["config"]``) and the estimator's registry name and class
(``checkpoint["estimator"]``). :func:`load_estimator` rebuilds the module through the registry
:data:`estimators.train.ESTIMATORS` (no string-built imports), with the trained weights; only the body
model file is read besides the checkpoint (backbone-init and mean-parameter files are not: their
values are in the state dict). :func:`evaluate` then runs the validation of
:class:`estimators.base.EstimatorModule` (mks0601 protocol, reference-spec D.1) on the evaluation sets of
that config, optionally changed by a YAML file and dotlist overrides, prints nothing, and returns /
writes ``{set: {metric_mm: value}}``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from annot.app.runtime import worker_init_fn
from annot.config import ConfigError, to_container
from annot.io.atomic import atomic_write_json
from estimators.base import EstimatorModule
from estimators.config import check_config, merge_config
from estimators.train import ESTIMATORS, build_val_datasets, collect_val_metrics, format_metrics_table

__all__ = ["evaluate", "load_estimator", "read_checkpoint_config"]

log = logging.getLogger(__name__)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None


def _estimator_name(raw: dict[str, Any], config: dict[str, Any] | None, path: Path) -> str:
    """Registry name from ``checkpoint["estimator"]`` (written by the training run), else the config's
    ``estimator``, else the hyper-parameter layout; ValueError when none identifies a known estimator."""
    record = raw.get("estimator") or {}
    name = record.get("name") or (config or {}).get("estimator")
    if name is None:
        hparams = raw.get("hyper_parameters", {})
        name = "pose2pose" if "data_convention" in hparams else "hmr" if "kp2d_convention" in hparams else None
    if name not in ESTIMATORS:
        raise ValueError(f"{path}: cannot tell which estimator wrote this checkpoint (recorded {record or name!r}); "
                         f"known: {sorted(ESTIMATORS)}")
    cls = ESTIMATORS[name]
    expected = f"{cls.__module__}.{cls.__qualname__}"
    if record.get("class") not in (None, expected):
        raise ValueError(f"{path}: written by class {record['class']!r}, but estimator {name!r} is {expected!r}")
    return name


def read_checkpoint_config(path: str | Path) -> tuple[str, dict[str, Any] | None]:
    """``(estimator name, stored run config or None)`` of a checkpoint.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, or no known estimator recorded.
    """
    path = Path(path)
    raw = _read(path)
    config = raw.get("hyper_parameters", {}).get("config")
    return _estimator_name(raw, config, path), config


def load_estimator(path: str | Path, val_set_names: tuple[str, ...] | None = None,
                   map_location: str | torch.device = "cpu") -> EstimatorModule:
    """Rebuild the estimator of checkpoint ``path`` with its trained weights, in eval mode.

    Args:
        path: a Lightning checkpoint of a :data:`estimators.train.ESTIMATORS` module.
        val_set_names: evaluation set names to validate on (default: the stored ones).
        map_location: where to put the weights.

    Raises:
        FileNotFoundError: no checkpoint / body model file. ValueError: unknown estimator.
    """
    name, _ = read_checkpoint_config(path)
    kwargs: dict[str, Any] = {"backbone_weights": None}  # the trained backbone is in the state dict
    if name == "hmr":
        kwargs["mean_params_path"] = None  # the IEF start values are persistent buffers of the state dict
    if val_set_names is not None:
        kwargs["val_set_names"] = tuple(val_set_names)
    module = ESTIMATORS[name].load_from_checkpoint(str(path), map_location=map_location, **kwargs)
    return module.eval()


def evaluate(path: str | Path, config_path: str | Path | None = None, overrides: list[str] | None = None,
             sets: list[str] | None = None, out_json: str | Path | None = None) -> dict[str, Any]:
    """Evaluate checkpoint ``path`` on the evaluation sets of its config.

    Args:
        path: checkpoint file.
        config_path: optional YAML merged over the stored config (needed for checkpoints without one).
        overrides: dotlist overrides, e.g. ``["data.val.3dpw.args.root=/data/PW3D/data",
            "trainer.accelerator=gpu"]``.
        sets: evaluate only these names of ``data.val`` (default: all).
        out_json: where to write the result (default ``<checkpoint>.eval.json`` next to it).

    Returns:
        ``{"checkpoint", "estimator", "metrics": {set: {metric_mm: value}}, "table", "wall_time_s",
        "data": {set: loader summary}, "protocol": {"gt_gender_fallbacks", "mupots_regressor"}
        (:meth:`EstimatorModule.protocol_notes`), "config": resolved config}``. Computed with the config's
        ``num_threads`` torch threads (as in the training run, so that the numbers match its final
        validation bit for bit on the same machine); the caller's thread count is restored.

    Raises:
        FileNotFoundError: checkpoint, config, dataset or body-model file missing.
        ConfigError: bad override / file key; a name in ``sets`` that is not in ``data.val``; no stored
            config and no ``config_path``.
        ValueError: unreadable checkpoint or an empty evaluation set.
    """
    start = time.perf_counter()
    path = Path(path)
    name, stored = read_checkpoint_config(path)
    if stored is None and config_path is None:
        raise ConfigError(f"{path} stores no run config (not written by tools/train_estimator.py): pass --config "
                          "with the evaluation sets (data.val) and the estimator settings")
    cfg = merge_config(stored, config_path, overrides, origin=f"{path} (stored config)")
    if cfg.estimator != name:
        raise ConfigError(f"estimator: the checkpoint holds {name!r}, the config says {cfg.estimator!r}")
    cfg = _restrict_sets(cfg, sets)
    check_config(cfg, train=False)
    # the run's thread count: CPU kernels (oneDNN / MKL convolutions) pick their blocking and reduction
    # order by thread count, so validating under another count moves the metrics (measured: relative
    # 1e-8 for 2 vs 1 threads on a 2-core box; issue #12: 2e-5 for the default vs 1 thread on a Xeon)
    threads = torch.get_num_threads()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    try:
        result = _evaluate(cfg, path, name)
    finally:
        torch.set_num_threads(threads)
    result["wall_time_s"] = time.perf_counter() - start
    atomic_write_json(Path(out_json) if out_json else path.with_name(path.name + ".eval.json"), result)
    return result


def _evaluate(cfg: DictConfig, path: Path, name: str) -> dict[str, Any]:
    """Validation of checkpoint ``path`` with the checked config ``cfg`` (see :func:`evaluate`)."""
    names = tuple(cfg.data.val)
    module = load_estimator(path, val_set_names=names)
    datasets, _ = build_val_datasets(cfg, module.crop_hw())
    loaders = [DataLoader(ds, batch_size=cfg.data.val_batch_size, shuffle=False, num_workers=cfg.data.num_workers,
                          worker_init_fn=worker_init_fn)
               for ds in datasets.values()]
    trainer = pl.Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision,
                         limit_val_batches=cfg.trainer.limit_val_batches, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=cfg.trainer.enable_progress_bar,
                         default_root_dir=str(path.parent))
    trainer.validate(module, dataloaders=loaders, verbose=False)
    metrics = collect_val_metrics(trainer.callback_metrics, names)
    result = {"checkpoint": str(path), "estimator": name, "metrics": metrics,
              "table": format_metrics_table(metrics, title=f"{name}: {path}"),
              "data": {n: ds.summary() if hasattr(ds, "summary") else len(ds) for n, ds in datasets.items()},
              "protocol": module.protocol_notes(), "config": to_container(cfg)}
    return result


def _restrict_sets(cfg: DictConfig, sets: list[str] | None) -> DictConfig:
    if not sets:
        return cfg
    unknown = [s for s in sets if s not in cfg.data.val]
    if unknown:
        raise ConfigError(f"--sets: {unknown} not in data.val {list(cfg.data.val)}")
    container = to_container(cfg)
    container["data"]["val"] = {s: container["data"]["val"][s] for s in sets}
    monitor = container["checkpoint"]["monitor"].split("/")
    if len(monitor) != 3 or monitor[1] not in sets:  # the monitor is unused here; keep the config valid
        container["checkpoint"]["monitor"] = f"val/{sets[0]}/pa_mpjpe_mm"
    return merge_config(container, origin="restricted config")
