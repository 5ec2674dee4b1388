"""VPoser v2 (V02_05) body-pose prior: the network and a checkpoint loader.

Our own implementation of the architecture described in reference-spec.md C.3 (nghorbani
human_body_prior ``main`` branch, ``human_body_prior/models/vposer_model.py``; Pavlakos et al.,
"Expressive Body Capture: 3D Hands, Face, and Body from a Single Image", CVPR 2019). The module
layout is kept *identical* to V02_05, so ``state_dict()`` keys match the official checkpoints once
their ``vp_model.`` prefix is removed::

    encoder_net  0 BatchFlatten   1 BatchNorm1d(63)   2 Linear(63, N)   3 LeakyReLU(0.01)
                 4 BatchNorm1d(N) 5 Dropout(0.1)      6 Linear(N, N)    7 Linear(N, N)  (no activation
                 between 6 and 7)  8 NormalDistDecoder{mu: Linear(N, D), logvar: Linear(N, D)}
    decoder_net  0 Linear(D, N)   1 LeakyReLU(0.01)   2 Dropout(0.1)    3 Linear(N, N)
                 4 LeakyReLU(0.01) 5 Linear(N, 6*J)   6 ContinousRotReprDecoder (no parameters)

with N = ``num_neurons`` (512), D = ``latent_dim`` (32), J = ``num_joints`` (21, SMPL body joints
1..21; the SMPL hand joints 22, 23 are not modelled and must be zero-filled by the caller).
The q distribution is ``Normal(mu, softplus(logvar))`` (V02_05 uses the softplus of the "logvar"
head as the *standard deviation*; the name is historical).

VPoser v1 (reference-spec C.2, used by 3DCrowdNet) has other key names and a LeakyReLU slope of 0.2;
its ``.pt`` snapshots are recognised and rejected with an explanation (pitfall F.9).

The official files are licence-gated (https://smpl-x.is.tue.mpg.de, "VPoser v2.0"); the free path is
:func:`annot.priors.train.train_prior` (``make train-prior``), whose checkpoints this loader reads too.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from annot.geometry.rotations import rot6d_to_rotmat, rotmat_to_rotvec

log = logging.getLogger(__name__)

__all__ = [
    "BatchFlatten",
    "ContinousRotReprDecoder",
    "NormalDistDecoder",
    "VPoser",
    "VPoserLoadReport",
    "load_vposer",
    "VPOSER_URL",
]

VPOSER_URL = "https://smpl-x.is.tue.mpg.de"
#: Prefix of the VPoser weights inside an official (and our own) Lightning checkpoint.
CKPT_PREFIX = "vp_model."
#: V02_05 ``nn.LeakyReLU()`` default slope (VPoser v1 used 0.2).
LEAKY_SLOPE = 0.01
DROPOUT_P = 0.1
_V1_MARKER = "bodyprior_enc_fc1.weight"


class BatchFlatten(nn.Module):
    """``(B, ...) -> (B, prod(...))``; V02_05 ``encoder_net[0]`` (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class NormalDistDecoder(nn.Module):
    """Two linear heads giving ``Normal(mu, softplus(logvar))`` over the latent (V02_05 ``encoder_net[8]``).

    Args:
        num_feat_in: input width N.
        latent_dim: D.

    ``forward(h (B, N)) -> torch.distributions.Normal`` with ``loc`` and ``scale`` of shape ``(B, D)``.
    """

    def __init__(self, num_feat_in: int, latent_dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(num_feat_in, latent_dim)
        self.logvar = nn.Linear(num_feat_in, latent_dim)

    def forward(self, h: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mu(h), nn.functional.softplus(self.logvar(h)))


class ContinousRotReprDecoder(nn.Module):
    """``(B, 6*J) -> (B, J, 3, 3)`` rotation matrices from Zhou et al. 6D (``view(-1, 3, 2)`` convention).

    V02_05 ``decoder_net[6]`` (spelling kept from the original); no parameters. Uses
    :func:`annot.geometry.rotations.rot6d_to_rotmat` (columns = Gram-Schmidt of the two columns of
    each 6-vector reshaped row-major to 3x2).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rot6d_to_rotmat(x.reshape(x.shape[0], -1, 6))


class VPoser(nn.Module):
    """VPoser v2 VAE over body pose (reference-spec C.3), state-dict compatible with V02_05.

    Args:
        num_neurons: hidden width N (V02_05: 512).
        latent_dim: latent size D (V02_05 ``latentD``: 32).
        num_joints: J body joints (21 = SMPL joints 1..21, root and hands excluded).

    Methods:
        ``encode(pose_body_rotvec)``: ``(B, J, 3)`` or ``(B, 3*J)`` axis-angle in radians (SMPL body
        joints 1..J, parent-relative) -> ``Normal`` with ``loc``/``scale`` ``(B, D)``.
        ``decode(z)``: ``(B, D)`` -> ``{"pose_body": (B, J, 3) axis-angle radians (angles in [0, pi]),
        "pose_body_matrot": (B, J, 9) row-major rotation matrices}``.
        ``forward(pose_body_rotvec)``: encode, reparameterised sample, decode; adds ``"q_z"`` and ``"z"``.

    ``decode`` is differentiable w.r.t. ``z`` (use it frozen inside the annotator, z predicted).
    """

    def __init__(self, num_neurons: int = 512, latent_dim: int = 32, num_joints: int = 21) -> None:
        super().__init__()
        self.num_neurons, self.latent_dim = int(num_neurons), int(latent_dim)
        self.num_joints = int(num_joints)
        n_in, n_hid = 3 * self.num_joints, self.num_neurons
        self.encoder_net = nn.Sequential(
            BatchFlatten(),
            nn.BatchNorm1d(n_in),
            nn.Linear(n_in, n_hid),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.BatchNorm1d(n_hid),
            nn.Dropout(DROPOUT_P),
            nn.Linear(n_hid, n_hid),
            nn.Linear(n_hid, n_hid),
            NormalDistDecoder(n_hid, self.latent_dim),
        )
        self.decoder_net = nn.Sequential(
            nn.Linear(self.latent_dim, n_hid),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Dropout(DROPOUT_P),
            nn.Linear(n_hid, n_hid),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(n_hid, 6 * self.num_joints),
            ContinousRotReprDecoder(),
        )
        self.load_report: VPoserLoadReport | None = None

    def encode(self, pose_body_rotvec: torch.Tensor) -> torch.distributions.Normal:
        """Posterior ``q(z | pose)``; see the class docstring. Raises ValueError on a wrong shape."""
        n_in = 3 * self.num_joints
        if pose_body_rotvec.ndim < 2 or pose_body_rotvec[0].numel() != n_in:
            raise ValueError(f"VPoser.encode: expected pose_body_rotvec of shape (B, {self.num_joints}, 3) "
                             f"or (B, {n_in}), got {tuple(pose_body_rotvec.shape)}")
        return self.encoder_net(pose_body_rotvec)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latent ``(B, D)`` -> body pose; see the class docstring. Raises ValueError on a wrong shape."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"VPoser.decode: expected z of shape (B, {self.latent_dim}), "
                             f"got {tuple(z.shape)}")
        rotmat = self.decoder_net(z)  # (B, J, 3, 3)
        return {"pose_body": rotmat_to_rotvec(rotmat),
                "pose_body_matrot": rotmat.reshape(z.shape[0], self.num_joints, 9)}

    def forward(self, pose_body_rotvec: torch.Tensor) -> dict[str, Any]:
        """Encode, ``rsample`` and decode (training path): decode's dict plus ``q_z`` and ``z`` (B, D)."""
        q_z = self.encode(pose_body_rotvec)
        z = q_z.rsample()
        return {**self.decode(z), "q_z": q_z, "z": z}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

@dataclass
class VPoserLoadReport:
    """What :func:`load_vposer` read.

    Attributes:
        checkpoint: the weights file. config: the YAML used for the sizes, or ``None``.
        num_neurons, latent_dim: the sizes the model was built with, and ``sizes_from`` their source
            (``"yaml"``, ``"hyper_parameters"`` or ``"defaults"``).
        ignored: checkpoint keys (prefix stripped) that are not VPoser keys, e.g. body-model buffers
            ``bm.*``; they are dropped.
    """

    checkpoint: str
    config: str | None
    num_neurons: int
    latent_dim: int
    sizes_from: str
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs."""
        heads = sorted({k.split(".")[0] for k in self.ignored})
        return (f"VPoser from {self.checkpoint} (N={self.num_neurons}, D={self.latent_dim} from "
                f"{self.sizes_from}); ignored {len(self.ignored)} keys {heads}")


def _not_found(what: str, where: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"VPoser: looked for {what} at {where}: not found.\n"
        f"  Expected an experiment folder <dir>/snapshots/*.ckpt (+ <dir>/*.yaml), or a .ckpt file.\n"
        f"  Official weights: register at {VPOSER_URL}, download 'VPoser v2.0' (V02_05) and unpack it,\n"
        f"  e.g. to body_models/vposer/V02_05/ (licence-gated).\n"
        f"  Free path: train a prior on pose parameters you have with `make train-prior` "
        f"(tools/train_prior.py --poses poses.npz --out <dir>) and pass that <dir>.")


def _resolve_files(path: Path) -> tuple[Path, Path | None]:
    """(checkpoint, yaml or None) for an experiment folder or a checkpoint file."""
    if not path.exists():
        raise _not_found("a VPoser experiment folder or checkpoint file", path)
    if path.is_dir():
        snapshots = sorted((path / "snapshots").glob("*.ckpt")) or sorted(path.glob("*.ckpt"))
        if not snapshots:
            raise _not_found("snapshots/*.ckpt or *.ckpt", path)
        ckpt = max(snapshots, key=lambda p: (os.stat(p).st_mtime_ns, p.name))
        exp_dir = path
    else:
        ckpt = path
        exp_dir = path.parent.parent if path.parent.name == "snapshots" else path.parent
    yamls = sorted(exp_dir.glob("*.yaml"))
    return ckpt, (yamls[0] if yamls else None)


def _torch_load(ckpt: Path, map_location: Any) -> Any:
    """``torch.load`` with ``weights_only=True`` first; Lightning files that pickle objects in their
    hyper-parameters fall back to a full unpickle (only do this with files you trust)."""
    try:
        return torch.load(ckpt, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError for non-allow-listed globals
        if "weights_only" not in str(err) and "Unsupported global" not in str(err):
            raise ValueError(f"VPoser: cannot read checkpoint {ckpt}: {err}") from err
        log.warning("VPoser: %s holds pickled objects besides tensors; loading it with weights_only=False "
                    "(trust the file)", ckpt)
        return torch.load(ckpt, map_location=map_location, weights_only=False)


def _sizes(cfg_file: Path | None, blob: Mapping[str, Any]) -> tuple[int, int, str]:
    """(num_neurons, latent_dim, source): yaml ``model_params`` > checkpoint hyper-parameters > defaults."""
    if cfg_file is not None:
        from omegaconf import OmegaConf
        try:
            cfg = OmegaConf.to_container(OmegaConf.load(cfg_file), resolve=True)
        except Exception as err:
            raise ValueError(f"VPoser: cannot parse config {cfg_file}: {err}") from err
        params = cfg.get("model_params", {}) if isinstance(cfg, dict) else {}
        if isinstance(params, dict) and ("latentD" in params or "num_neurons" in params):
            return int(params.get("num_neurons", 512)), int(params.get("latentD", 32)), "yaml"
    hparams = blob.get("hyper_parameters") if isinstance(blob, Mapping) else None
    if isinstance(hparams, Mapping) and ("latent_dim" in hparams or "num_neurons" in hparams):
        return int(hparams.get("num_neurons", 512)), int(hparams.get("latent_dim", 32)), "hyper_parameters"
    return 512, 32, "defaults"


def _vposer_state(blob: Any, ckpt: Path) -> dict[str, torch.Tensor]:
    """The tensor dict of a checkpoint, ``vp_model.`` prefix stripped."""
    state = blob.get("state_dict", blob) if isinstance(blob, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"VPoser: {ckpt} holds neither a 'state_dict' nor a plain tensor dict")
    if _V1_MARKER in state:
        raise ValueError(f"VPoser: {ckpt} is a VPoser v1 snapshot (keys 'bodyprior_*'); only V02_05 "
                         f"(v2.0, keys 'vp_model.encoder_net.*') is supported (reference-spec F.9)")
    return {(k[len(CKPT_PREFIX):] if k.startswith(CKPT_PREFIX) else k): v for k, v in state.items()}


def _check_keys(model: VPoser, state: Mapping[str, torch.Tensor], ckpt: Path) -> list[str]:
    """Strict check of VPoser keys and shapes; returns the ignored (non-VPoser) keys.

    ``num_batches_tracked`` counters may be absent (they do not affect outputs).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or wrong:
        raise ValueError(
            f"VPoser: checkpoint {ckpt} does not match the V02_05 layout "
            f"(N={model.num_neurons}, D={model.latent_dim}, J={model.num_joints}); "
            f"missing keys: {missing or 'none'}; mismatched shapes: {wrong or 'none'}")
    return sorted(k for k in state if k not in expected)


def load_vposer(path_or_dir: str | os.PathLike[str], map_location: Any = "cpu") -> VPoser:
    """Load a frozen VPoser (``eval()``, ``requires_grad=False``) from a V02_05-style checkpoint.

    Follows the behaviour of nghorbani human_body_prior ``tools/model_loader.py::load_model`` (newest
    ``*.ckpt`` by mtime, first ``*.yaml``, ``vp_model.`` prefix removed), but is *strict* on the VPoser
    keys.

    Args:
        path_or_dir: one of
            - an official experiment folder ``V02_05/`` with ``snapshots/*.ckpt`` (the newest by
              modification time is used) and optionally ``V02_05.yaml`` (``model_params.latentD``,
              ``model_params.num_neurons``; defaults 32 / 512 when absent);
            - a Lightning ``.ckpt`` whose ``state_dict`` keys start with ``vp_model.`` (other keys,
              e.g. body-model buffers ``bm.*``, are ignored and listed in ``model.load_report``);
            - the output folder or ``.ckpt`` of :func:`annot.priors.train.train_prior` (same layout;
              sizes from its yaml or the checkpoint's ``hyper_parameters``);
            - a plain state dict of un-prefixed VPoser keys.
        map_location: passed to ``torch.load``.

    Returns:
        :class:`VPoser` with ``load_report`` (:class:`VPoserLoadReport`) set.

    Raises:
        FileNotFoundError: the path, or a checkpoint inside the folder, does not exist (the message
            says where to get VPoser and how to train a free one).
        ValueError: a VPoser key is missing or has the wrong shape (the keys and the file are named),
            the file is a VPoser v1 snapshot, or it cannot be parsed.
    """
    ckpt, cfg_file = _resolve_files(Path(path_or_dir))
    blob = _torch_load(ckpt, map_location)
    num_neurons, latent_dim, source = _sizes(cfg_file, blob if isinstance(blob, Mapping) else {})
    state = _vposer_state(blob, ckpt)
    model = VPoser(num_neurons=num_neurons, latent_dim=latent_dim)
    ignored = _check_keys(model, state, ckpt)
    model.load_state_dict({k: v for k, v in state.items() if k not in ignored}, strict=False)
    model.eval()
    model.requires_grad_(False)
    model.load_report = VPoserLoadReport(str(ckpt), str(cfg_file) if cfg_file else None,
                                         num_neurons, latent_dim, source, ignored)
    log.info(model.load_report.summary())
    return model
