"""Structured configuration of estimator training and evaluation (``tools/train_estimator.py``).

The dataclasses are the schema; ``configs/estimator/*.yaml`` supply values; dotlist overrides come
last (``trainer.max_epochs=2 data.batch_size=16``). Load with
``annot.config.load_config(EstimatorConfig, path, overrides)``, then :func:`check_config` for the
checks a schema cannot express (known estimator, monitored set exists, ratio groups, optimiser
settings the chosen estimator supports). Both raise :class:`annot.config.ConfigError` naming the key.
:func:`merge_config` builds a config from a stored dict (a checkpoint's) plus a file and overrides.

Importing this module registers the OmegaConf resolver ``${abspath:path}`` (the path made absolute
against the working directory), for loader arguments that are otherwise relative to a dataset's
``root`` (``smpl_file: ${abspath:outputs/annotate-body/pseudo_gt.json}``).

Layout of a run (style.md §10.13)::

    <out_dir>/config.yaml          the resolved config (also inside every checkpoint's hyper-parameters)
    <out_dir>/checkpoints/         epoch_XXX.ckpt (best by ``checkpoint.monitor``) and last.ckpt
    <out_dir>/logs/metrics.csv     CSVLogger (train/loss/*, val/<set>/*_mm, lr-Adam, train/mix/*)
    <out_dir>/grids/epoch_XXX.png  predicted meshes over fixed validation crops
    <out_dir>/metrics.json         final metrics, best checkpoint, loss curve, data sources, wall time
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from annot.config import BodyModelConfig, ConfigError
from annot.data.augment import AugmentConfig


def _abspath(path: str) -> str:
    """OmegaConf resolver ``${abspath:relative/path}``: the path made absolute against the working
    directory when the config is resolved (loader paths such as ``smpl_file`` are otherwise relative
    to the dataset ``root``)."""
    return str(Path(path).expanduser().absolute())


def _register_abspath() -> None:
    if OmegaConf.has_resolver("abspath"):
        return
    import omegaconf

    major, minor = (int(v) for v in omegaconf.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):  # 2.4 renamed register_new_resolver (now deprecated) to register_resolver
        OmegaConf.register_resolver("abspath", _abspath)
    else:
        OmegaConf.register_new_resolver("abspath", _abspath)


_register_abspath()

#: Names accepted by ``estimator`` (the registry lives in :mod:`estimators.train`).
ESTIMATOR_NAMES: tuple[str, ...] = ("pose2pose", "hmr")
#: Metric keys every validation set logs (``val/<set>/<key>``); ``mpvpe_mm`` / ``pa_mpvpe_mm`` only with GT
#: meshes (3DPW, as Hand4Whole ``PW3D.evaluate``), ``pck3d_*`` only on MuPoTS.
METRIC_KEYS: tuple[str, ...] = ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "pa_mpvpe_mm", "pck3d_all_pct",
                                "pck3d_matched_pct")


@dataclass
class DatasetSpec:
    """One dataset of the training mixture or one evaluation set.

    ``dataset``: registry name (``annot.data.DATASETS``: coco, h36m, mpi_inf_3dhp, 3dpw, mupots, mpii).
    ``config``: optional ``configs/data/*.yaml`` whose location keys (root, split, files...) are the
    defaults of ``args``; its crop size, convention, seed and body-model keys are ignored (the run
    owns them). ``args``: loader arguments (override the file; must not set ``input_hw``,
    ``convention`` or ``augment``). ``ratio``: training share (see :class:`EstimatorDataConfig`).
    ``group``: training ratio group (``data.group_ratios``). ``fallback``: loader arguments used
    *instead of* ``args`` when building with ``args`` raises FileNotFoundError (a warning says so and
    the saved config records what was used); ``fallback_hint``: what to run to get the real files.
    """

    dataset: str = MISSING
    config: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None
    group: str | None = None
    fallback: dict[str, Any] | None = None
    fallback_hint: str = ""


@dataclass
class EstimatorDataConfig:
    """Training mixture and evaluation sets.

    ``train``: ``{name: DatasetSpec}``. Per-batch shares (exact counts, ``annot.data.mixing``):

    * without ``group_ratios``: each dataset's ``ratio`` (required), normalised;
    * with ``group_ratios`` (e.g. ``{3d: 0.5, 2d: 0.5}``, Pose2Pose ``MultipleDatasets``, spec B.4):
      every dataset names its ``group``; a group's share is split over its datasets by their
      ``ratio`` when all of them give one, else proportionally to their lengths (concatenation).

    ``val``: ``{name: DatasetSpec}`` evaluated every validation epoch, logged ``val/<name>/<metric>``,
    loaded in the ``h36m17`` convention without augmentation. ``convention``: keypoint convention of
    the training batches (``pose2pose33`` holds H36M, MPI-INF and COCO(-WholeBody) joints by name).
    ``batch_size``: samples per optimiser step, ``batch_size_scope`` ``"global"`` (over all devices)
    or ``"device"`` (Pose2Pose's 48 per GPU). ``num_batches_per_epoch``: per device; ``None`` = one
    pass of the mixture as ``MultipleDatasets`` counts it (``2 x max`` group length with groups, the
    sum of lengths without) divided by the global batch. ``val_batch_size``: per validation batch.
    """

    train: dict[str, DatasetSpec] = field(default_factory=dict)
    val: dict[str, DatasetSpec] = field(default_factory=dict)
    group_ratios: dict[str, float] = field(default_factory=dict)
    convention: str = "pose2pose33"
    batch_size: int = 8
    batch_size_scope: str = "global"
    num_batches_per_epoch: int | None = None
    val_batch_size: int = 8
    num_workers: int = 0
    bbox_scale: float = 1.25
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(enabled=True))


@dataclass
class Pose2PoseArgs:
    """:class:`estimators.pose2pose.Pose2PoseModule` arguments not owned by other groups.

    ``backbone_weights``: ImageNet / SimpleBaseline checkpoint (torchvision keys, spec B.7) or None.
    ``input_hw``: crop (H, W) pixels (256x192 in Pose2Pose; multiples of 32)."""

    backbone_depth: int = 50
    backbone_weights: str | None = None
    input_hw: list[int] = field(default_factory=lambda: [256, 192])


@dataclass
class HMRArgs:
    """:class:`estimators.hmr.HMRModule` arguments not owned by other groups (SPIN defaults, spec B.8).

    ``input_size``: square crop side (224; a multiple of 32). ``mean_params_path``: None (the upright
    mean of the free model), SPIN's ``smpl_mean_params.npz`` or an npz of poses."""

    backbone_depth: int = 50
    backbone_weights: str | None = None
    mean_params_path: str | None = None
    input_size: int = 224
    n_iter: int = 3
    focal_px: float = 5000.0
    w_kp2d: float = 5.0
    w_joints3d: float = 5.0
    w_pose: float = 1.0
    w_betas: float = 0.001
    w_cam: float = 1.0
    loss_scale: float = 60.0


@dataclass
class EstimatorOptimConfig:
    """Adam. ``lr_dec_epochs`` / ``lr_dec_factor``: step decay (Pose2Pose: 1e-4, /10 at epochs 4 and 6;
    HMR/SPIN has no schedule: leave it empty). ``weight_decay``: HMR only (Pose2Pose uses none)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_dec_epochs: list[int] = field(default_factory=lambda: [4, 6])
    lr_dec_factor: float = 10.0


@dataclass
class EstimatorTrainerConfig:
    """``lightning.Trainer`` arguments that pass straight through (``max_steps=-1``: epochs decide;
    ``limit_val_batches``: fraction of every validation set)."""

    max_epochs: int = 7
    max_steps: int = -1
    accelerator: str = "cpu"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0
    limit_val_batches: float = 1.0
    deterministic: bool = False
    enable_progress_bar: bool = True


@dataclass
class CheckpointConfig:
    """``ModelCheckpoint``: keep the ``save_top_k`` best by ``monitor`` (a ``val/<set>/<metric>`` key of a
    configured set) plus ``last.ckpt``. ``save_weights_only``: leave the optimiser state out (a third
    of the size with Adam; such checkpoints evaluate but cannot resume). ``resume``: continue from
    ``<out_dir>/checkpoints/last.ckpt``."""

    monitor: str = "val/3dpw/pa_mpjpe_mm"
    mode: str = "min"
    save_top_k: int = 1
    save_weights_only: bool = False
    resume: bool = False


@dataclass
class GridConfig:
    """:class:`annot.training.callbacks.PredictionGridCallback`: ``num_images`` fixed validation crops (taken in
    turn from each set), rendered every ``every_n_epochs`` validation epochs, tiles ``tile_height_px`` high."""

    enabled: bool = True
    num_images: int = 6
    every_n_epochs: int = 1
    tile_height_px: int = 256


@dataclass
class EstimatorConfig:
    """Top-level config of ``tools/train_estimator.py`` and ``tools/evaluate.py``.

    ``estimator``: ``pose2pose`` or ``hmr``; its argument group (``pose2pose`` / ``hmr``) is used, the
    other ignored. ``out_dir``: run folder (module docstring). ``num_threads``: torch CPU threads
    (0 = PyTorch's default).
    """

    name: str = "pose2pose"
    estimator: str = "pose2pose"
    seed: int = 0
    num_threads: int = 0
    out_dir: str = "outputs/train-estimator/${name}"
    body_model: BodyModelConfig = field(default_factory=BodyModelConfig)
    pose2pose: Pose2PoseArgs = field(default_factory=Pose2PoseArgs)
    hmr: HMRArgs = field(default_factory=HMRArgs)
    data: EstimatorDataConfig = field(default_factory=EstimatorDataConfig)
    optim: EstimatorOptimConfig = field(default_factory=EstimatorOptimConfig)
    trainer: EstimatorTrainerConfig = field(default_factory=EstimatorTrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    grid: GridConfig = field(default_factory=GridConfig)


def merge_config(values: Mapping[str, Any] | None, path: str | Path | None = None,
                 overrides: list[str] | None = None, origin: str = "checkpoint") -> DictConfig:
    """:class:`EstimatorConfig` defaults, then ``values`` (e.g. the config stored in a checkpoint), the
    YAML file ``path`` and dotlist ``overrides``, in that order; read-only.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: unknown key or wrong type, naming ``origin`` / the file / "command line" and the key.
    """
    cfg = OmegaConf.structured(EstimatorConfig)
    sources: list[tuple[str, Any]] = []
    if values is not None:
        sources.append((origin, lambda: OmegaConf.create(dict(values))))
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        sources.append((str(path), lambda: OmegaConf.load(path)))
    if overrides:
        sources.append(("command line", lambda: OmegaConf.from_dotlist(list(overrides))))
    for name, make in sources:
        try:
            cfg = OmegaConf.merge(cfg, make())
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            raise ConfigError(f"{name}: invalid config key '{key}': {str(err).splitlines()[0]}") from None
    OmegaConf.set_readonly(cfg, True)
    return cfg


def estimator_input_hw(cfg: DictConfig) -> tuple[int, int]:
    """Crop ``(H, W)`` pixels of the configured estimator (the datasets crop to it)."""
    if cfg.estimator == "hmr":
        return int(cfg.hmr.input_size), int(cfg.hmr.input_size)
    height, width = (int(v) for v in cfg.pose2pose.input_hw)
    return height, width


def check_config(cfg: DictConfig, train: bool = True) -> None:
    """Checks beyond the schema's types; ``train=False`` skips those about the training mixture.

    Raises:
        ConfigError: unknown ``estimator``; no validation set; ``checkpoint.monitor`` not a
            ``val/<set>/<metric>`` of a configured set or ``mode`` not min/max; a training dataset
            without ``ratio`` (no groups) or with a ``group`` missing from ``data.group_ratios``;
            ``batch_size_scope`` not global/device; ``optim.weight_decay`` for Pose2Pose or
            ``optim.lr_dec_epochs`` for HMR; a dataset ``args`` key the run owns; ``checkpoint.resume``
            with ``checkpoint.save_weights_only``.
    """
    if cfg.estimator not in ESTIMATOR_NAMES:
        raise ConfigError(f"estimator: unknown {cfg.estimator!r}; choose one of {list(ESTIMATOR_NAMES)}")
    if not cfg.data.val:
        raise ConfigError("data.val: at least one evaluation set is needed (e.g. the 3DPW test split)")
    for section in ("train", "val") if train else ("val",):
        for name, spec in cfg.data[section].items():
            owned = sorted(set(spec.args) & {"input_hw", "convention", "augment"})
            if owned:
                raise ConfigError(f"data.{section}.{name}.args: {owned} are set by the run (model input size, "
                                  f"data.convention, data.augment), not per dataset")
    _check_monitor(cfg)
    if train:
        _check_mixture(cfg)
        _check_optimiser(cfg)


def _check_monitor(cfg: DictConfig) -> None:
    parts = cfg.checkpoint.monitor.split("/")
    if len(parts) != 3 or parts[0] != "val" or parts[1] not in cfg.data.val or parts[2] not in METRIC_KEYS:
        raise ConfigError(f"checkpoint.monitor: {cfg.checkpoint.monitor!r} is not val/<set>/<metric> with <set> in "
                          f"data.val {list(cfg.data.val)} and <metric> in {list(METRIC_KEYS)}")
    if cfg.checkpoint.mode not in ("min", "max"):
        raise ConfigError(f"checkpoint.mode: expected 'min' or 'max', got {cfg.checkpoint.mode!r}")
    if cfg.checkpoint.resume and cfg.checkpoint.save_weights_only:
        raise ConfigError("checkpoint.resume: weights-only checkpoints (checkpoint.save_weights_only) cannot resume")


def _check_mixture(cfg: DictConfig) -> None:
    data = cfg.data
    if not data.train:
        raise ConfigError("data.train: the training mixture is empty")
    if data.batch_size_scope not in ("global", "device"):
        raise ConfigError(f"data.batch_size_scope: expected 'global' or 'device', got {data.batch_size_scope!r}")
    for name, spec in data.train.items():
        if data.group_ratios:
            if spec.group not in data.group_ratios:
                raise ConfigError(f"data.train.{name}.group: {spec.group!r} is not a key of data.group_ratios "
                                  f"{list(data.group_ratios)}")
        elif spec.ratio is None:
            raise ConfigError(f"data.train.{name}.ratio: needed when data.group_ratios is empty")
    empty = [g for g in data.group_ratios if not any(s.group == g for s in data.train.values())]
    if empty:
        raise ConfigError(f"data.group_ratios: group(s) {empty} have no dataset in data.train")


def _check_optimiser(cfg: DictConfig) -> None:
    if cfg.estimator == "pose2pose" and cfg.optim.weight_decay != 0.0:
        raise ConfigError("optim.weight_decay: Pose2Pose uses Adam without weight decay (spec B.4); set it to 0")
    if cfg.estimator == "hmr" and len(cfg.optim.lr_dec_epochs) > 0:
        raise ConfigError("optim.lr_dec_epochs: HMR (SPIN) trains without a schedule; set it to []")
