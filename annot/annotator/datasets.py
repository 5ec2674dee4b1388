"""The annotator's datasets, built from its config: the target set (``data``) and every auxiliary MoCap set
(``auxiliary.<name>``), with the loader arguments checked against the registry (:mod:`annot.data`).

Used by the pipeline's stages, by the preflight (which builds each set once to report every problem) and by
the quality benchmark.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from annot.config import ConfigError, to_container
from annot.data import DATASETS, build_dataset
from annot.data.augment import AugmentConfig
from annot.data.person import PersonCropDataset
from annot.data.robust import validate_image_records


def target_dataset(cfg: DictConfig, train: bool) -> PersonCropDataset:
    """The target set, its images checked (:func:`annot.data.robust.validate_image_records`: truncated /
    undecodable files skipped, the file's size over the json's)."""
    d = cfg.data
    augment = AugmentConfig(**to_container(d.augment)) if train else AugmentConfig(enabled=False)
    args = dict(root=d.root, ann_file=d.ann_file, img_dir=d.img_dir, input_hw=tuple(d.input_hw),
                bbox_scale=d.bbox_scale, convention=d.convention, augment=augment, seed=cfg.seed,
                body_model_type=cfg.body_model.model_type, body_model_path=cfg.body_model.path)
    accepted = loader_parameters(d.dataset)
    if accepted is not None:  # ann_file / img_dir are COCO-layout keys: other loaders find their own files
        args = {k: v for k, v in args.items() if k in accepted or k not in ("ann_file", "img_dir")}
    dataset = build_dataset(d.dataset, **checked_args(d.dataset, {**args, **to_container(d.extra)}, "data.extra"))
    validate_image_records(dataset)
    return dataset


def loader_parameters(registry_name: str) -> set[str] | None:
    """Keyword arguments the loader's constructor accepts (None: it takes ``**kwargs``)."""
    params = inspect.signature(DATASETS[registry_name].__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {name for name in params if name != "self"}


def checked_args(registry_name: str, args: dict[str, Any], key: str) -> dict[str, Any]:
    """``args`` unchanged; ConfigError naming ``key.<name>`` for an argument the loader does not take."""
    accepted = loader_parameters(registry_name)
    unknown = sorted(set(args) - accepted) if accepted is not None else []
    if unknown:
        raise ConfigError(f"{', '.join(f'{key}.{u}' for u in unknown)}: not an argument of the {registry_name!r} "
                          f"loader (it takes: {', '.join(sorted(accepted))})")
    return args


PIPELINE_KEYS = ("dataset", "input_hw", "convention", "augment", "flip_prob", "seed", "body_model_type",
                 "body_model_path")


def aux_loader_args(cfg: DictConfig, name: str) -> dict[str, Any]:
    """Loader arguments of auxiliary dataset ``name``: its ``configs/data`` file's location keys, then
    ``args`` (pipeline-owned keys such as the crop size or the convention are dropped from the file)."""
    aux = cfg.auxiliary[name]
    args: dict[str, Any] = {}
    if aux.config:
        if not Path(aux.config).is_file():
            raise FileNotFoundError(f"auxiliary dataset {name}: data config not found: {aux.config} "
                                    f"(config key auxiliary.{name}.config)")
        args = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(aux.config)).items() if k not in PIPELINE_KEYS}
    args.update(to_container(aux.args))
    return args


def aux_dataset(cfg: DictConfig, name: str, train: bool, convention: str) -> Dataset:
    aux = cfg.auxiliary[name]
    args = aux_loader_args(cfg, name)
    args["convention"] = convention
    if has_images(aux.dataset):
        d = cfg.data
        args.update(input_hw=tuple(d.input_hw), seed=cfg.seed, body_model_type=cfg.body_model.model_type,
                    body_model_path=cfg.body_model.path,
                    augment=AugmentConfig(**to_container(d.augment)) if train else AugmentConfig(enabled=False))
        dataset = build_dataset(aux.dataset, **checked_args(aux.dataset, args, f"auxiliary.{name}.args"))
        validate_image_records(dataset)
        return dataset
    return build_dataset(aux.dataset, **checked_args(aux.dataset, args, f"auxiliary.{name}.args"))


def has_images(registry_name: str) -> bool:
    """True when the registered loader yields image crops (a :class:`PersonCropDataset`)."""
    return issubclass(DATASETS[registry_name], PersonCropDataset)
