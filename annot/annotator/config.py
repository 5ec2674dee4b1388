"""The annotator's config schema: :class:`AnnotateConfig`, the top level of ``tools/annotate.py``
(``make annotate-body``, ``configs/annotate/*.yaml``), and the trainer profiles of ``configs/trainer/``.

Loaded with :func:`annot.config.load_config` (schema defaults < YAML file < trainer profile < command line).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from annot.config import BodyModelConfig, ConfigError
from annot.data.augment import AugmentConfig


@dataclass
class DataConfig:
    """The target in-the-wild dataset (COCO person-keypoints layout by default).

    ``root``: dataset folder; ``ann_file`` relative to ``root``; ``img_dir`` image folder relative
    to ``root``. ``input_hw``: network input (height, width) in pixels; the processed box keeps its
    aspect ratio (width / height). ``bbox_scale``: mks0601 box enlargement (1.25). ``convention``: the
    keypoint convention of the batches (``coco17``; ``pose2pose33`` when MoCap sets are mixed in).
    ``augment``: training augmentation (prediction never augments). ``batch_size``: global batch.
    ``extra``: further loader arguments (e.g. ``smpl_file``, ``variant``).
    """

    dataset: str = "coco"
    root: str = "../shared/data/coco_samples"
    ann_file: str = "test_coco.json"
    img_dir: str = ""
    input_hw: list[int] = field(default_factory=lambda: [256, 192])
    bbox_scale: float = 1.25
    convention: str = "coco17"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 12
    num_workers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuxDatasetConfig:
    """An auxiliary MoCap dataset of Algorithm 1.

    ``dataset``: registry name; ``config``: a ``configs/data/*.yaml`` file whose location keys (root,
    split, files...) are the defaults of ``args``; ``args``: loader arguments (override the file);
    ``ratio``: its share of the auxiliary part of the stage-(b) batches. Crop size, convention,
    augmentation, seed and body model always come from the pipeline.
    """

    dataset: str = "cmu_mocap"
    config: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    ratio: float = 1.0


@dataclass
class AuxStageConfig:
    """Stage (a): one MoCap-mode annotator per auxiliary dataset (image + 3D joints, or 3D joints only).

    ``refine_iters``: 0 (the paper) keeps the annotator's pseudo-GTs as they are; > 0 refines them with
    :class:`annot.fitting.smplify.SMPLify3D` (Adam steps per stage) started from the prediction and fitted to
    the GT 3D joints, as SPIN / EFT-era pipelines fit MoCap sets. Worth it when stage (a) is short (CPU runs):
    ``make bench-annot`` measured image MoCap-mode pseudo-GTs at 160-205 mm joint error after 300 steps.

    ``kp2d_loss`` / ``joint_img_loss``: add the 2D reprojection and the PositionNet terms to NeuralAnnot's Eq. 1
    (3D joints + regularisers) in image MoCap mode. Default ``false`` (Eq. 1 alone, as the paper): measured with
    ``tools/measure_mocap_losses.py`` (README "Evaluation"), Eq. 1 alone gave 166 mm 3D joint error against
    233 mm with both terms (2D error 38 px against 14 px). Before #13 both were always on.
    """

    max_steps: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    lr_decay_steps: list[int] = field(default_factory=list)
    hidden_dim: int = 1024
    joints3d_convention: str = "smpl24"
    refine_iters: int = 0
    kp2d_loss: bool = False
    joint_img_loss: bool = False


@dataclass
class PriorConfig:
    """Pose prior of the in-the-wild annotator (third recipe).

    ``pose_prior``: ``"vposer"`` (predict z, decode with a frozen VPoser) or ``"none"`` (21 x 6D).
    ``vposer_path``: official V02_05 folder/checkpoint; ``None`` trains a VPoser-architecture prior on
    the auxiliary pseudo-GT poses D*_ax ("the low-dimensional embeddings can be learned from D*_ax").
    """

    pose_prior: str = "vposer"
    vposer_path: str | None = None
    max_epochs: int = 10
    batch_size: int = 128
    num_neurons: int = 512
    latent_dim: int = 32


@dataclass
class AlgorithmConfig:
    """Algorithm 1 of expressive NeuralAnnot. ``aux_ratio``: share of auxiliary (image) samples in each
    stage-(b) batch (0.5 = half auxiliary, half target); ``second_round``: two-stage NeuralAnnot (retrain
    on the first round's pseudo-GTs, CVPRW Table 7); ``refine``: NeuralAnnot + fit, a warm-started batched
    SMPLify on f's pseudo-GTs after the last stage (c), kept per sample only when it lowers the 2D error
    inside the prior's typical set (:mod:`annot.fitting.refine`; beyond the paper, which is ``refine=false``);
    ``refine_iters`` Adam steps per stage, ``refine_stages`` last SMPLify-X body stages run; ``refine_camera``
    the camera the fit works in: ``estimated`` (CLIFF's full-image camera, focal ``sqrt(W^2 + H^2)`` at the image
    centre, f's prediction moved into it first) or ``crop`` (f's own crop camera, long virtual focal length);
    ``refine_cold_start``: SMPLify's own start runs beside f's and the lower final objective wins per sample."""

    aux_ratio: float = 0.5
    second_round: bool = False
    refine: bool = False
    refine_iters: int = 60
    refine_stages: int = 2
    refine_camera: str = "estimated"
    refine_cold_start: bool = True


@dataclass
class ModelConfig:
    """Annotator network f.

    ``architecture``: ``regressor`` (ResNet backbone with torchvision names + global pooling + FC
    regressor; ``hidden_dim`` is its hidden width) or ``pose2pose`` (the Three Recipes f: Pose2Pose's
    PositionNet + RotationNet predicting the VPoser z with ``prior.pose_prior=vposer``; image modes only,
    the 3D-joints-only MoCap annotators keep the regressor). ``backbone_weights``: optional ImageNet /
    SimpleBaseline checkpoint (torchvision key layout; second recipe); ``None`` keeps the random
    torchvision-style initialisation. ``camera_model``: ``perspective`` (Pose2Pose virtual focal),
    ``weak_perspective`` or ``d2s``. ``kp2d_input`` (beyond the paper; False = the paper's image-only f): the
    stage-(b) annotator also sees the annotated 2D keypoints (:func:`annot.annotator.module.kp2d_input_features`),
    jittered by ``kp2d_input_jitter`` (fraction of the crop height) and hidden with probability
    ``kp2d_input_dropout`` in training.
    """

    backbone_depth: int = 50
    backbone_weights: str | None = None
    hidden_dim: int = 1024
    camera_model: str = "perspective"
    architecture: str = "regressor"
    kp2d_input: bool = False
    kp2d_input_jitter: float = 0.02
    kp2d_input_dropout: float = 0.1


@dataclass
class LossConfig:
    """Loss weights. ``kp2d``: masked L1 on 2D joints in Pose2Pose heatmap units (32 crop pixels);
    ``joints3d``: L1 on root-relative 3D joints (m); ``smpl_param``: L1 to theta* of auxiliary samples;
    ``root_orient``: an extra L1 on theta*'s root rotation alone (0 = off, as the paper; beyond the paper);
    ``pose_l2`` / ``z_l2`` / ``betas_l2``: regularisers (per-sample squared norms); ``joint_img``: L1 of
    the PositionNet joints in heatmap units (``model.architecture=pose2pose`` only)."""

    kp2d: float = 1.0
    joints3d: float = 1.0
    smpl_param: float = 1.0
    root_orient: float = 0.0
    pose_l2: float = 1e-4
    z_l2: float = 1e-2
    betas_l2: float = 1e-2
    joint_img: float = 1.0


@dataclass
class OptimConfig:
    """Adam with a step decay (``lr_decay_steps`` in optimiser steps, factor ``lr_decay_factor``)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_decay_steps: list[int] = field(default_factory=list)
    lr_decay_factor: float = 0.1


@dataclass
class TrainerConfig:
    """Subset of ``lightning.Trainer`` arguments plus the run-time switches of the scale issue.

    Passed straight through: ``max_steps``, ``accelerator`` (``cpu`` / ``gpu``), ``devices`` (per node),
    ``num_nodes``, ``strategy`` (``auto`` / ``ddp``; on SLURM Lightning picks its ``SLURMEnvironment``
    from the ``srun`` variables), ``precision`` (``32-true`` / ``bf16-mixed``), ``log_every_n_steps``,
    ``deterministic``, ``enable_progress_bar``. Profiles live in ``configs/trainer/*.yaml``
    (``tools/annotate.py --trainer FILE``).

    Ours: ``channels_last`` (module and 4D batch tensors in NHWC, :class:`annot.training.callbacks.ChannelsLast`),
    ``compile`` (``torch.compile`` of the module's network, :class:`annot.training.callbacks.CompileModule`),
    ``logger``: ``"csv"`` (CSV only), ``"wandb"`` (CSV + Weights & Biases, offline unless
    ``WANDB_API_KEY`` is set) or ``"none"``; ``wandb_project``: the W&B project
    (:func:`annot.training.loggers.build_loggers`). ``checkpoint_every_n_steps``: stage (b) writes
    ``resume.ckpt`` this often (optimiser steps; 0 = never); a rerun after a kill continues from it with
    the same result as an uninterrupted run (:mod:`annot.annotator.resume`).
    """

    max_steps: int = 300
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    deterministic: bool = False
    enable_progress_bar: bool = True
    channels_last: bool = False
    compile: bool = False
    logger: str = "csv"
    wandb_project: str = "neural-annot"
    checkpoint_every_n_steps: int = 50


@dataclass
class ExportConfig:
    """Where and what to write. ``out_dir``: NeuralAnnot JSON, skipped.json, report.json, overlays;
    ``review_html``: the review page ``review.html`` (needs ``overlays``; :mod:`annot.annotator.review`);
    ``batches_per_shard``: prediction batches per rank between two shard files (resume granularity)."""

    out_dir: str = "outputs/annotate-body"
    overlays: bool = True
    review_html: bool = True
    eval_every_n_steps: int = 25
    batches_per_shard: int = 64


@dataclass
class AnnotateConfig:
    """Top-level config of ``tools/annotate.py`` (``make annotate-body``): Algorithm 1."""

    name: str = "annotate-body"
    seed: int = 0
    num_threads: int = 0
    body_model: BodyModelConfig = field(default_factory=BodyModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    auxiliary: dict[str, AuxDatasetConfig] = field(default_factory=dict)
    aux_stage: AuxStageConfig = field(default_factory=AuxStageConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


def trainer_profile_overrides(path: str | Path) -> list[str]:
    """Dotlist ``trainer.<key>=<value>`` entries of a trainer profile (``configs/trainer/*.yaml``).

    The profile holds :class:`TrainerConfig` fields at its top level (no ``trainer:`` key). Put the
    result before the command-line overrides: ``annot.config.load_config(AnnotateConfig, cfg_file,
    trainer_profile_overrides(profile) + overrides)`` (config file < profile < command line).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: the profile is not a mapping, or has an unknown key / a wrong type (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trainer profile not found: {path} (see configs/trainer/)")
    values = OmegaConf.load(path)
    if not isinstance(values, DictConfig):
        raise ConfigError(f"{path}: a trainer profile must be a mapping of trainer fields")
    try:
        OmegaConf.merge(OmegaConf.structured(TrainerConfig), values)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{path}: invalid trainer key '{key}': {str(err).splitlines()[0]}") from None
    container = OmegaConf.to_container(values, resolve=True)
    return [f"trainer.{key}={_dotlist_value(value)}" for key, value in container.items()]


def _dotlist_value(value: Any) -> str:
    """A scalar as dotlist text that OmegaConf parses back to the same value (strings quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)
