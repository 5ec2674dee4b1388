"""Train a VPoser-architecture pose prior on body-pose parameters (the free path to a VPoser).

Expressive-NeuralAnnot (Algorithm 1): "the low-dimensional embeddings can be learned from D*_ax if
not available", i.e. a pose prior can be trained on auxiliary (MoCap) pseudo-GT poses when the
licence-gated VPoser is not at hand. This module trains :class:`annot.priors.vposer.VPoser` as a VAE
with the V02_05 optimisation settings (reference-spec C.3: Adam lr 1e-3, weight decay 1e-5, KL
weight 0.005) and writes an experiment folder in the V02_05 layout, readable by
:func:`annot.priors.vposer.load_vposer`::

    <out_dir>/snapshots/vposer_prior_epoch=XX.ckpt   Lightning checkpoint (weights only), keys ``vp_model.*``
    <out_dir>/vposer_prior.yaml                      model_params {latentD, num_neurons}, train_params
    <out_dir>/logs/metrics.csv                       CSVLogger output

Loss (ours; V02_05 also has a mesh-vertex term through a body model, which we leave out so the
prior trains with no body model): ``rec_weight`` x the squared Frobenius distance between decoded and
input rotation matrices, averaged over joints and batch (per joint = 4 (1 - cos theta), theta the
joint's geodesic error), plus ``kl_weight`` x KL(q(z|pose) || N(0, I)) summed over latent dims and
averaged over the batch. The per-joint mean (not sum) keeps the KL strong enough that the posterior
means of training poses stay in the prior's typical set (mean |z|^2 below latent_dim on our synthetic
test). The mean geodesic error in degrees is logged as ``train/rec_geodesic_deg``.
"""
from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from annot.geometry.rotations import rotvec_to_rotmat
from annot.optim import adam
from annot.priors.vposer import VPoser

log = logging.getLogger(__name__)

__all__ = ["VPoserPriorModule", "train_prior", "load_body_poses_npz", "NPZ_POSE_KEYS", "geodesic_deg"]

#: Keys :func:`load_body_poses_npz` accepts, in the order they are tried.
NPZ_POSE_KEYS = ("pose_body", "body_pose", "poses")
NUM_BODY_JOINTS = 21


def geodesic_deg(rotmat_a: torch.Tensor, rotmat_b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle between rotations, degrees: ``(..., 3, 3), (..., 3, 3) -> (...)``.

    ``acos((trace(A^T B) - 1) / 2)`` with the cosine clamped to [-1, 1]; not meant for gradients.
    """
    cos = ((rotmat_a * rotmat_b).sum(dim=(-2, -1)) - 1.0) / 2.0
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


class VPoserPriorModule(pl.LightningModule):
    """LightningModule training a :class:`VPoser` VAE on SMPL body poses (module docstring: loss).

    Args:
        num_neurons, latent_dim, num_joints: VPoser sizes (V02_05: 512, 32, 21).
        lr, weight_decay: Adam settings (V02_05: 1e-3, 1e-5).
        kl_weight: weight of the KL term (V02_05: 0.005).
        rec_weight: weight of the per-joint mean squared Frobenius reconstruction term.

    Batches: a 1-tuple ``(pose_body_rotvec,)`` with ``(B, J, 3)`` axis-angle radians (SMPL joints 1..J).
    The network is the attribute ``vp_model``, so checkpoint keys are ``vp_model.encoder_net.*`` as in
    the official V02_05 checkpoints.
    """

    def __init__(self, num_neurons: int = 512, latent_dim: int = 32, num_joints: int = NUM_BODY_JOINTS,
                 lr: float = 1e-3, weight_decay: float = 1e-5, kl_weight: float = 0.005,
                 rec_weight: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.vp_model = VPoser(num_neurons=num_neurons, latent_dim=latent_dim, num_joints=num_joints)

    def losses(self, pose_body_rotvec: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "loss/rec", "loss/kl", "rec_geodesic_deg"}`` (scalars) for a ``(B, J, 3)`` batch."""
        out = self.vp_model(pose_body_rotvec)
        rotmat_gt = rotvec_to_rotmat(pose_body_rotvec.reshape(pose_body_rotvec.shape[0], -1, 3))
        rotmat_pred = out["pose_body_matrot"].reshape(rotmat_gt.shape)
        rec = (rotmat_pred - rotmat_gt).square().sum(dim=(2, 3)).mean()
        prior = torch.distributions.Normal(torch.zeros_like(out["z"]), torch.ones_like(out["z"]))
        kl = torch.distributions.kl_divergence(out["q_z"], prior).sum(dim=1).mean()
        with torch.no_grad():
            geo = geodesic_deg(rotmat_pred, rotmat_gt).mean()
        loss = self.hparams.rec_weight * rec + self.hparams.kl_weight * kl
        return {"loss": loss, "loss/rec": rec, "loss/kl": kl, "rec_geodesic_deg": geo}

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        terms = self.losses(batch[0])
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, on_step=True, on_epoch=True,
                      prog_bar=False, batch_size=batch[0].shape[0])
        return terms["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def _check_poses(poses_body_rotvec: np.ndarray) -> np.ndarray:
    arr = np.asarray(poses_body_rotvec, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[1] == 3 * NUM_BODY_JOINTS:
        arr = arr.reshape(-1, NUM_BODY_JOINTS, 3)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_BODY_JOINTS, 3):
        raise ValueError(f"train_prior: poses_body_rotvec must be (N, 21, 3) or (N, 63), got {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"train_prior: need at least 2 poses (BatchNorm), got {arr.shape[0]}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=(1, 2)))
    if bad.size:
        raise ValueError(f"train_prior: {bad.size} poses are not finite, e.g. rows {bad[:5].tolist()}")
    return arr


def train_prior(
    poses_body_rotvec: np.ndarray,
    out_dir: str | Path,
    max_epochs: int = 20,
    batch_size: int = 128,
    seed: int = 0,
    num_neurons: int = 512,
    latent_dim: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    kl_weight: float = 0.005,
    rec_weight: float = 1.0,
    accelerator: str = "auto",
    enable_progress_bar: bool = False,
) -> Path:
    """Train a VPoser-architecture prior on body poses and write a V02_05-layout experiment folder.

    Args:
        poses_body_rotvec: ``(N, 21, 3)`` (or ``(N, 63)``) axis-angle radians, SMPL body joints 1..21
            (no root orientation, no hands), e.g. from :func:`load_body_poses_npz`.
        out_dir: experiment folder to create (see the module docstring for its layout).
        max_epochs, batch_size, seed: training length, batch size (V02_05: 128; clipped to N; the last
            incomplete batch is dropped so BatchNorm never sees a batch of one), seed for weights and
            shuffling.
        num_neurons, latent_dim: VPoser sizes. lr, weight_decay, kl_weight, rec_weight: see
            :class:`VPoserPriorModule`.
        accelerator: Lightning accelerator (``"auto"``, ``"cpu"``, ``"gpu"``).
        enable_progress_bar: show Lightning's progress bar.

    Returns:
        Path of the written checkpoint ``<out_dir>/snapshots/vposer_prior_epoch=XX.ckpt``; pass it, or
        ``out_dir``, to :func:`annot.priors.vposer.load_vposer`.

    Raises:
        ValueError: poses of the wrong shape, fewer than 2 poses, or non-finite values.
    """
    from omegaconf import OmegaConf
    from pytorch_lightning.loggers import CSVLogger

    poses = _check_poses(poses_body_rotvec)
    out_dir = Path(out_dir)
    (out_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    pl.seed_everything(seed, verbose=False)
    batch_size = max(2, min(int(batch_size), poses.shape[0]))
    loader = DataLoader(TensorDataset(torch.from_numpy(poses)), batch_size=batch_size, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(seed))
    module = VPoserPriorModule(num_neurons=num_neurons, latent_dim=latent_dim, lr=lr,
                               weight_decay=weight_decay, kl_weight=kl_weight, rec_weight=rec_weight)
    trainer = pl.Trainer(
        max_epochs=max_epochs, accelerator=accelerator, devices=1, logger=CSVLogger(str(out_dir), name="logs",
                                                                                      version=""),
        log_every_n_steps=max(1, min(50, len(loader))), enable_checkpointing=False,
        enable_model_summary=False, enable_progress_bar=enable_progress_bar, default_root_dir=str(out_dir))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, loader)
    ckpt = out_dir / "snapshots" / f"vposer_prior_epoch={max_epochs - 1:02d}.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=True)  # inference checkpoint: no optimizer state
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("_epoch")}
    OmegaConf.save(OmegaConf.create({
        "model_params": {"latentD": latent_dim, "num_neurons": num_neurons},
        "train_params": {"batch_size": batch_size, "max_epochs": max_epochs, "seed": seed, "lr": lr,
                         "weight_decay": weight_decay, "kl_weight": kl_weight,
                         "rec_weight": rec_weight, "num_poses": int(poses.shape[0])},
        "final_metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()},
    }), out_dir / "vposer_prior.yaml")
    log.info("VPoser prior trained on %d poses, %d epochs -> %s (%s)",
             poses.shape[0], max_epochs, ckpt, metrics)
    return ckpt


def load_body_poses_npz(path: str | Path) -> np.ndarray:
    """Read SMPL body poses from an ``.npz`` file -> ``(N, 21, 3)`` float32 axis-angle radians.

    Accepted keys, tried in this order (the first present is used):
        - ``pose_body``: ``(N, 63)`` or ``(N, 21, 3)``, SMPL body joints 1..21 (VPoser / AMASS naming);
        - ``body_pose``: ``(N, 69)`` SMPL joints 1..23 (the hands 22, 23 are dropped) or ``(N, 63)``;
        - ``poses``: ``(N, 3K)`` full pose with the root first and K >= 22, e.g. SMPL ``(N, 72)``,
          AMASS SMPL+H ``(N, 156)``, SMPL-X ``(N, 165)``: columns 3..65 (joints 1..21) are used.

    Raises:
        FileNotFoundError: no such file. ValueError: not a readable .npz, none of the keys, or a shape that
            does not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_body_poses_npz: no file {path} (expected an .npz with one of "
                                f"the keys {list(NPZ_POSE_KEYS)})")
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            key = next((k for k in NPZ_POSE_KEYS if k in data.files), None)
            if key is None:
                raise ValueError(f"load_body_poses_npz: {path} has keys {data.files}, "
                                 f"none of {list(NPZ_POSE_KEYS)}")
            arr = np.asarray(data[key], dtype=np.float32)
    except (zipfile.BadZipFile, EOFError, OSError) as err:  # not an npz, or a truncated one
        raise ValueError(f"load_body_poses_npz: {path} is not a readable .npz ({type(err).__name__}: {err})") from None
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim >= 2 else arr
    n_cols = flat.shape[1] if flat.ndim == 2 else -1
    if key == "pose_body" and n_cols == 63:
        body = flat
    elif key == "body_pose" and n_cols in (63, 69):
        body = flat[:, :63]
    elif key == "poses" and n_cols % 3 == 0 and n_cols >= 66:
        body = flat[:, 3:66]
    else:
        raise ValueError(f"load_body_poses_npz: {path} field '{key}' has shape {arr.shape}; expected "
                         f"pose_body (N,63), body_pose (N,69)/(N,63) or poses (N,3K) with K >= 22")
    return np.ascontiguousarray(body.reshape(-1, NUM_BODY_JOINTS, 3))
