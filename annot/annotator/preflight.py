"""Preflight of ``tools/annotate.py``: find every problem of a run before any training, in seconds.

:func:`preflight` checks, in this order, and collects the problems instead of stopping at the first:

1. every config value against its allowed choices and ranges (:func:`check_values`: the registry
   names, conventions, camera models, architectures, ResNet depths, loggers; positive batch sizes,
   step counts, learning rates...), naming the key, the value and the closest allowed choice;
2. the body model file (loaded once, :class:`annot.body_models.BodyModel`) and, when configured, the
   VPoser (``prior.vposer_path``, :func:`annot.priors.load_vposer`) and the backbone weights file;
3. every configured dataset, target (``data``) and auxiliary (``auxiliary.<name>``): opened and
   indexed with the loaders of the run, image files checked (:func:`annot.data.robust.validate_image_records`);
   a dataset with zero samples is an error (with its skip reasons and, for Human3.6M, the frame stride).

All problems are raised together as one :class:`annot.app.errors.PreflightError` (the CLI prints them as a
short block, exit status 2). On success it returns a :class:`PreflightResult` with the per-dataset
summaries and the fingerprint of the target's image files used by the stage provenance.
"""
from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from annot.app.errors import PreflightError, Problem

log = logging.getLogger(__name__)


@dataclass
class PreflightResult:
    """What a successful :func:`preflight` found.

    Attributes:
        datasets: ``{"data" | "auxiliary.<name>": one-line summary}`` (loaded / skipped counts).
        target_images: fingerprint of the target's image files (paths, sizes, modification times).
        image_check: the target's image check counts (:func:`annot.data.robust.validate_image_records`).
        seconds: wall time of the preflight.
    """

    datasets: dict[str, str] = field(default_factory=dict)
    target_images: str = ""
    image_check: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _choices() -> dict[str, tuple[Any, ...]]:
    """Allowed values of the choice keys, from the modules that define them."""
    from annot.annotator.module import POSE_PRIORS
    from annot.body_models.resolver import MODEL_GENDERS
    from annot.data import DATASETS
    from annot.fitting.refine import REFINE_CAMERAS
    from annot.geometry.cameras import CAMERA_MODELS
    from annot.keypoints import CONVENTIONS
    from annot.nets.annotator import ARCHITECTURES
    from annot.nets.resnet import RESNET_SPECS
    from annot.training.loggers import LOGGER_KINDS

    return {
        "body_model.model_type": tuple(MODEL_GENDERS), "data.dataset": tuple(DATASETS),
        "data.convention": tuple(CONVENTIONS), "aux_stage.joints3d_convention": tuple(CONVENTIONS),
        "prior.pose_prior": tuple(POSE_PRIORS), "model.camera_model": tuple(CAMERA_MODELS),
        "model.architecture": tuple(ARCHITECTURES), "model.backbone_depth": tuple(RESNET_SPECS),
        "trainer.logger": tuple(LOGGER_KINDS), "algorithm.refine_camera": REFINE_CAMERAS,
        "trainer.accelerator": ("cpu", "gpu", "cuda", "mps", "tpu", "auto"),
        "_genders": MODEL_GENDERS,
    }


#: ``key: (test, requirement)`` of the numeric keys of :class:`annot.annotator.config.AnnotateConfig`.
_POSITIVE = (lambda v: v > 0, "> 0")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_threads": _NON_NEGATIVE, "body_model.num_betas": (lambda v: 1 <= v <= 300, "in 1..300"),
    "data.bbox_scale": _POSITIVE, "data.batch_size": _POSITIVE, "data.num_workers": _NON_NEGATIVE,
    "aux_stage.max_steps": _POSITIVE, "aux_stage.batch_size": _POSITIVE, "aux_stage.lr": _POSITIVE,
    "aux_stage.hidden_dim": _POSITIVE, "aux_stage.refine_iters": _NON_NEGATIVE,
    "prior.max_epochs": _POSITIVE, "prior.batch_size": _POSITIVE, "prior.num_neurons": _POSITIVE,
    "prior.latent_dim": _POSITIVE, "algorithm.aux_ratio": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "model.hidden_dim": _POSITIVE, "optim.lr": _POSITIVE, "optim.weight_decay": _NON_NEGATIVE,
    "optim.lr_decay_factor": _POSITIVE, "trainer.max_steps": _POSITIVE, "trainer.devices": _POSITIVE,
    "trainer.num_nodes": _POSITIVE, "trainer.log_every_n_steps": _POSITIVE,
    "trainer.checkpoint_every_n_steps": _NON_NEGATIVE, "export.batches_per_shard": _POSITIVE,
    "export.eval_every_n_steps": _POSITIVE,
    **{f"loss.{k}": _NON_NEGATIVE for k in ("kp2d", "joints3d", "smpl_param", "pose_l2", "z_l2", "betas_l2",
                                             "joint_img")},
}


def _choice_problem(key: str, value: Any, allowed: Iterable[Any]) -> Problem | None:
    allowed = tuple(allowed)
    if value in allowed:
        return None
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    hint = f"did you mean {close[0]!r}?" if close else ""
    return Problem(key, f"{value!r} is not one of {list(allowed)}", hint)


def check_values(cfg: DictConfig) -> list[Problem]:
    """Choices and ranges of ``cfg`` (an :class:`annot.annotator.config.AnnotateConfig`); one Problem per bad key."""
    problems: list[Problem] = []
    choices = _choices()
    genders = choices.pop("_genders")
    for key, allowed in choices.items():
        problem = _choice_problem(key, OmegaConf.select(cfg, key), allowed)
        if problem:
            problems.append(problem)
    model_type = cfg.body_model.model_type
    if model_type in genders and cfg.body_model.gender not in genders[model_type]:
        problems.append(Problem("body_model.gender", f"{cfg.body_model.gender!r} is not available for "
                                                     f"model_type {model_type!r}: {list(genders[model_type])}"))
    for name, aux in cfg.auxiliary.items():
        problem = _choice_problem(f"auxiliary.{name}.dataset", aux.dataset, choices["data.dataset"])
        if problem:
            problems.append(problem)
        if not aux.ratio > 0:
            problems.append(Problem(f"auxiliary.{name}.ratio", f"must be > 0, got {aux.ratio}"))
    for key, (test, requirement) in RANGES.items():
        value = OmegaConf.select(cfg, key)
        if value is None or isinstance(value, str):
            continue  # e.g. trainer.devices=auto
        if not test(value):
            problems.append(Problem(key, f"must be {requirement}, got {value}"))
    hw = list(cfg.data.input_hw)
    if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
        problems.append(Problem("data.input_hw", f"must be two positive integers [height, width], got {hw}"))
    for key in ("optim.lr_decay_steps", "aux_stage.lr_decay_steps"):
        steps = list(OmegaConf.select(cfg, key))
        if any(s <= 0 for s in steps) or steps != sorted(steps):
            problems.append(Problem(key, f"must be increasing positive step numbers, got {steps}"))
    if cfg.prior.pose_prior == "vposer" and cfg.prior.vposer_path is None and not cfg.auxiliary:
        problems.append(Problem("prior.vposer_path", "prior.pose_prior=vposer without a VPoser needs an auxiliary "
                                                     "dataset whose pseudo-GT poses train one",
                                "set prior.vposer_path, add `auxiliary`, or prior.pose_prior=none"))
    return problems


def _guard(problems: list[Problem], where: str, action: Callable[[], Any]) -> Any:
    """``action()``; an input error becomes a Problem at ``where`` (returns None then)."""
    from annot.app.cli import INPUT_ERRORS

    try:
        return action()
    except PreflightError as err:
        problems.extend(err.problems)
    except INPUT_ERRORS as err:
        text = str(err).strip() or type(err).__name__
        if isinstance(err, (EOFError,)) or type(err).__name__ in ("UnpicklingError", "BadZipFile"):
            text = f"{type(err).__name__}: {text} (a truncated or corrupt file)"
        problems.append(Problem(where, text))
    return None


def _check_files(cfg: DictConfig, problems: list[Problem]) -> None:
    from annot.body_models import BodyModel

    b = cfg.body_model
    _guard(problems, "body_model", lambda: BodyModel.from_config(model_type=b.model_type, gender=b.gender,
                                                                 path=b.path, num_betas=b.num_betas))
    if cfg.prior.pose_prior == "vposer" and cfg.prior.vposer_path is not None:
        from annot.priors import load_vposer

        _guard(problems, "prior.vposer_path", lambda: load_vposer(cfg.prior.vposer_path))
    weights = cfg.model.backbone_weights
    if weights is not None and not Path(weights).is_file():
        problems.append(Problem("model.backbone_weights", f"file not found: {weights}"))


def _empty_hint(dataset: Any) -> str:
    if getattr(dataset, "name", "") == "h36m":
        stride = getattr(dataset, "frame_stride", None)
        return (f"frame_stride={stride} keeps only frames with frame_idx % {stride} == 0: "
                f"set data.extra.frame_stride=1 for short sequences")
    return "check the annotation file and the skip reasons"


def _check_datasets(cfg: DictConfig, problems: list[Problem], result: PreflightResult) -> None:
    from annot.annotator.datasets import aux_dataset, has_images, target_dataset

    target = _guard(problems, "data", lambda: target_dataset(cfg, train=False))
    if target is not None:
        result.datasets["data"] = target.summary()
        result.target_images = getattr(target, "image_fingerprint", "")
        result.image_check = dict(getattr(target, "image_check", {}))
        if len(target) == 0:
            problems.append(Problem("data", f"zero samples to annotate ({target.summary()})", _empty_hint(target)))
    for name, aux in cfg.auxiliary.items():
        where = f"auxiliary.{name}"
        if aux.dataset not in _choices()["data.dataset"]:
            continue  # already reported by check_values
        dataset = _guard(problems, where, lambda n=name: aux_dataset(
            cfg, n, train=False, convention=cfg.aux_stage.joints3d_convention))
        if dataset is None:
            continue
        summary = dataset.summary() if hasattr(dataset, "summary") else f"{len(dataset)} samples"
        result.datasets[where] = summary
        if len(dataset) == 0:
            hint = _empty_hint(dataset) if has_images(aux.dataset) else "check the file pattern and root"
            problems.append(Problem(where, f"zero samples ({summary})", hint))


def preflight(cfg: DictConfig) -> PreflightResult:
    """Check ``cfg`` and every file and dataset it names (module docstring) before any training.

    Args:
        cfg: an :class:`annot.annotator.config.AnnotateConfig`.

    Returns:
        :class:`PreflightResult`.

    Raises:
        PreflightError: one or more problems, all listed (config key or file, what, hint).
    """
    start = time.perf_counter()
    result = PreflightResult()
    problems = check_values(cfg)
    bad_keys = {p.where for p in problems}
    if not bad_keys & {"body_model.model_type", "body_model.gender", "body_model.num_betas"}:
        _check_files(cfg, problems)
    if not bad_keys & {"data.dataset", "data.convention", "data.input_hw", "aux_stage.joints3d_convention"}:
        _check_datasets(cfg, problems, result)
    result.seconds = time.perf_counter() - start
    if problems:
        raise PreflightError(problems, title=f"preflight of {cfg.name} failed ({result.seconds:.1f} s, "
                                             f"nothing trained)")
    log.info("preflight: OK in %.1f s: %s", result.seconds, "; ".join(result.datasets.values()))
    return result


__all__ = ["PreflightResult", "RANGES", "check_values", "preflight"]
