"""The pretraining's config (``configs/pretrain/backbone.yaml``, :class:`PretrainConfig`), its default paths and seeds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: where the benchmark looks for the ResNet-18 checkpoint (relative to the repository root).
DEFAULT_CHECKPOINT = "outputs/pretrain-backbone/pose_resnet_18_free.pth"

#: the OmegaConf file of ``tools/pretrain_backbone.py`` (values equal to :class:`PretrainConfig`'s defaults).
DEFAULT_CONFIG = "configs/pretrain/backbone.yaml"

#: synthetic seeds: far from the benchmark's (0, 1, 2, ...), and from each other.
TRAIN_SEED = 1000
HELDOUT_SEED = 2000


def checkpoint_name(depth: int) -> str:
    """File name of the checkpoint of ResNet-``depth``: ``pose_resnet_<depth>_free.pth``."""
    return f"pose_resnet_{int(depth)}_free.pth"


# ------------------------------------------------------------------------------------------- config
@dataclass
class SyntheticPart:
    """Synthetic renders (``mocap`` split kind of :mod:`annot.benchmarks.synthetic`).

    ``train_seed`` / ``heldout_seed``: ``SyntheticConfig.seed`` of the training and held-out renders;
    ``train_images`` / ``heldout_images``: images (one person each); ``image_hw``: rendered image
    (H, W) pixels; ``photos_dir``, ``cmu_root``, ``cmu_frames``, ``cmu_fit_iters``: as
    ``SyntheticConfig`` (the pose bank is cached in ``<out_dir>/pose_bank.npz``).
    """

    train_seed: int = TRAIN_SEED
    heldout_seed: int = HELDOUT_SEED
    train_images: int = 256
    heldout_images: int = 64
    image_hw: tuple[int, int] = (320, 256)
    photos_dir: str | None = "../shared/data/photos"
    cmu_root: str = "../shared/data/mocap_cmu"
    cmu_frames: int = 512
    cmu_fit_iters: int = 200


@dataclass
class CocoPart:
    """The real COCO sample people: ``root``, ``ann_file`` (relative to root), ``img_dir``; ``repeat``
    copies per epoch (0 = not used), each with its own augmentation seed."""

    root: str = "../shared/data/coco_samples"
    ann_file: str = "test_coco.json"
    img_dir: str = ""
    repeat: int = 4


@dataclass
class AugmentPart:
    """SimpleBaseline augmentation (reference-spec E) in :class:`annot.data.augment.AugmentConfig` terms."""

    scale_factor: float = 0.3
    rot_factor_deg: float = 40.0
    rot_prob: float = 0.6
    flip_prob: float = 0.5
    color_factor: float = 0.2


@dataclass
class TrainPart:
    """Optimisation: ``steps`` of ``batch_size``; Adam ``lr`` decayed x0.1 at the fractions
    ``lr_decay_at`` of the steps (SimpleBaseline: epochs 90, 120 of 140); ``threads`` torch CPU
    threads (0 = leave as is); Lightning ``accelerator`` / ``devices`` / ``precision``;
    ``num_workers`` of the DataLoader."""

    steps: int = 350
    batch_size: int = 8
    lr: float = 1e-3
    lr_decay_at: tuple[float, ...] = (0.65, 0.85)
    num_workers: int = 0
    threads: int = 2
    accelerator: str = "cpu"
    devices: int = 1
    precision: str = "32-true"


@dataclass
class PretrainConfig:
    """Everything :func:`pretrain_backbone` needs (``configs/pretrain/backbone.yaml`` holds the same values).

    ``depth``: ResNet depth (18 for CPU, 50 = SimpleBaseline's paper size); ``input_hw``: crop (H, W)
    pixels; ``sigma``: Gaussian std in heatmap pixels; ``seed``: torch / sampler / augmentation seed;
    ``out_dir``: renders, checkpoint, figure and summary; ``pck_alpha``: PCK threshold as a fraction
    of the torso diameter; ``figure_images``: held-out crops in the PNG.
    """

    depth: int = 18
    input_hw: tuple[int, int] = (128, 96)
    sigma: float = 2.0
    seed: int = 0
    out_dir: str = "outputs/pretrain-backbone"
    pck_alpha: float = 0.5
    figure_images: int = 8
    synthetic: SyntheticPart = field(default_factory=SyntheticPart)
    coco: CocoPart = field(default_factory=CocoPart)
    augment: AugmentPart = field(default_factory=AugmentPart)
    train: TrainPart = field(default_factory=TrainPart)


def load_pretrain_config(path: str | Path | None = DEFAULT_CONFIG,
                         overrides: Sequence[str] = ()) -> PretrainConfig:
    """:class:`PretrainConfig` from a yaml (``None``: the defaults) and OmegaConf dotlist overrides.

    Args:
        path: yaml file (keys of :class:`PretrainConfig`), or ``None``.
        overrides: e.g. ``["depth=50", "input_hw=[256,192]", "train.steps=20000"]``.

    Raises:
        FileNotFoundError: ``path`` is missing. ValueError: unknown keys or wrong types (OmegaConf's
            message, which names the key), or invalid values (see :func:`_check`).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = OmegaConf.structured(PretrainConfig)
    try:
        layers = [schema]
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such pretraining config (flag --config)")
            layers.append(OmegaConf.load(path))
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
    except OmegaConfBaseException as err:
        raise ValueError(f"pretraining config: {err}") from err
    cfg = OmegaConf.to_object(merged)
    _check(cfg)
    return cfg  # type: ignore[return-value]


def _check(cfg: PretrainConfig) -> None:
    """Raise ValueError on values that cannot work (names the key)."""
    from annot.nets.resnet import RESNET_SPECS

    if cfg.depth not in RESNET_SPECS:
        raise ValueError(f"pretraining config: depth={cfg.depth}; supported: {sorted(RESNET_SPECS)}")
    if len(cfg.input_hw) != 2 or any(int(v) % 32 for v in cfg.input_hw):
        raise ValueError(f"pretraining config: input_hw={cfg.input_hw} must be two multiples of 32")
    if cfg.sigma <= 0 or not 0 < cfg.pck_alpha:
        raise ValueError(f"pretraining config: sigma={cfg.sigma} and pck_alpha={cfg.pck_alpha} must be > 0")
    if cfg.synthetic.train_images < 1 or cfg.synthetic.heldout_images < 1:
        raise ValueError("pretraining config: synthetic.train_images and synthetic.heldout_images "
                         "must be >= 1")
    if cfg.synthetic.train_seed == cfg.synthetic.heldout_seed:
        raise ValueError("pretraining config: synthetic.train_seed and synthetic.heldout_seed must differ")
    if cfg.train.steps < 1 or cfg.train.batch_size < 1 or cfg.train.lr <= 0:
        raise ValueError("pretraining config: train.steps, train.batch_size >= 1 and train.lr > 0 needed")
