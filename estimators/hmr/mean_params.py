"""Mean SMPL parameters that start HMR's iterative regressor (``init_pose/init_shape/init_cam``).

SPIN (nkolot SPIN ``models/hmr.py``, reference-spec B.8) reads them from ``data/smpl_mean_params.npz``:
keys ``pose`` (144,) = 24 rotations in 6D (``view(-1, 3, 2)`` convention, spec B.2.4, not
normalised: averages of 6D vectors), ``shape`` (10,) and ``cam`` (3,) = weak perspective
``[s, tx, ty]`` = ``[0.9, 0, 0]``. That file belongs to SPIN's data bundle and was computed for real
SMPL, so it is only used when a user points to it.

Without it, three sources are available (:func:`resolve_mean_params` picks by the file's keys):

* **upright default** (:func:`upright_mean_params`, no file): what we use for the free body model.
  - root: 180 degrees about x, 6D ``(1, 0, 0, -1, 0, 0)``. SMPL-format models are Y up and face +Z;
    the crop camera is OpenCV (y down, z forward), so this turns the body upright and facing the
    camera (the same start as ``annot.nets.annotator``'s upright initialisation and
    ``annot.data.fixtures.common.random_people``);
  - body: identity rotations (6D ``(1, 0, 0, 1, 0, 0)``), i.e. the model's zero pose (a T-pose for the
    free model; its ``provenance['zero_pose']`` says so);
  - shape: zeros. For the free model this *is* the statistical mean: its betas are in units of the
    population standard deviation and ``v_template`` is the population mean (``shape_space`` in the
    model file), so ``betas ~ N(0, I)``;
  - camera: ``[0.9, 0, 0]`` as SPIN (a 1.7 m person spans ~0.9 * 1.7 / 2 = 77 % of the crop height).
* **pose statistics** (:func:`mean_params_from_poses`): the mean of the 6D representations of a set of
  (pseudo-GT) poses, as SPIN's file was made, plus the mean of their betas when given.
* **SPIN's file** (:func:`load_spin_mean_params`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from annot.geometry import rotvec_to_rot6d

__all__ = [
    "NUM_POSE_JOINTS",
    "ROT6D_IDENTITY",
    "ROT6D_UPRIGHT_FACING_CAMERA",
    "SPIN_MEAN_CAM",
    "SPIN_MEAN_PARAMS_FILE",
    "MeanParams",
    "load_pose_statistics",
    "load_spin_mean_params",
    "mean_params_from_poses",
    "resolve_mean_params",
    "upright_mean_params",
]

NUM_POSE_JOINTS = 24
#: 6D of the identity rotation: ``[R00, R01, R10, R11, R20, R21]``.
ROT6D_IDENTITY: tuple[float, ...] = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
#: 6D of ``diag(1, -1, -1)`` (180 degrees about x): Y-up model upright in a y-down camera, facing it.
ROT6D_UPRIGHT_FACING_CAMERA: tuple[float, ...] = (1.0, 0.0, 0.0, -1.0, 0.0, 0.0)
#: SPIN's mean weak-perspective camera ``[s, tx, ty]``.
SPIN_MEAN_CAM: tuple[float, float, float] = (0.9, 0.0, 0.0)
SPIN_MEAN_PARAMS_FILE = "smpl_mean_params.npz"

_SPIN_HINT = (
    "smpl_mean_params.npz ships with SPIN's data bundle (nkolot/SPIN, `fetch_data.sh` -> data/); it was "
    "computed for real SMPL. Pass mean_params_path=None to use the computed upright mean parameters "
    "(estimators.hmr.mean_params.upright_mean_params), or an npz of poses (key 'pose_rotvec' (N, 24, 3) "
    "or (N, 72), optional 'betas' (N, >=10)) to use their mean."
)


@dataclass(frozen=True)
class MeanParams:
    """Mean parameters of HMR's regressor.

    Attributes:
        pose_6d: (24, 6) float32 rotations in 6D (``view(-1, 3, 2)`` convention), row 0 = global
            orientation in the crop camera (OpenCV axes); need not be orthonormal.
        betas: (num_betas,) float32 shape coefficients.
        cam: (3,) float32 weak-perspective camera ``[s, tx, ty]`` (normalised crop units per metre, metres).
        source: where they come from (file path or ``"upright default"``), for logs.
    """

    pose_6d: np.ndarray
    betas: np.ndarray
    cam: np.ndarray
    source: str

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(init_pose (1, 144), init_shape (1, num_betas), init_cam (1, 3))`` float32 (SPIN's buffers)."""
        return (torch.as_tensor(self.pose_6d, dtype=torch.float32).reshape(1, -1),
                torch.as_tensor(self.betas, dtype=torch.float32).reshape(1, -1),
                torch.as_tensor(self.cam, dtype=torch.float32).reshape(1, 3))


def _checked(pose_6d: np.ndarray, betas: np.ndarray, cam: np.ndarray, source: str,
             num_betas: int) -> MeanParams:
    pose_6d = np.asarray(pose_6d, np.float32).reshape(-1)
    betas = np.asarray(betas, np.float32).reshape(-1)
    cam = np.asarray(cam, np.float32).reshape(-1)
    if pose_6d.shape != (NUM_POSE_JOINTS * 6,):
        raise ValueError(f"{source}: field 'pose' has {pose_6d.size} values, "
                         f"expected {NUM_POSE_JOINTS * 6} (24 x 6D)")
    if betas.size < num_betas:
        raise ValueError(f"{source}: field 'shape' has {betas.size} values, expected at least {num_betas}")
    if cam.shape != (3,):
        raise ValueError(f"{source}: field 'cam' has {cam.size} values, expected 3 ([s, tx, ty])")
    for name, value in (("pose", pose_6d), ("shape", betas), ("cam", cam)):
        if not np.isfinite(value).all():
            raise ValueError(f"{source}: field {name!r} has non-finite values")
    return MeanParams(pose_6d.reshape(NUM_POSE_JOINTS, 6), betas[:num_betas].copy(), cam, source)


def upright_mean_params(num_betas: int = 10) -> MeanParams:
    """The computed default (module docstring): upright zero pose facing the camera, betas 0, cam [0.9, 0, 0].

    Args:
        num_betas: number of shape coefficients.

    Returns:
        :class:`MeanParams` with ``source="upright default"``.
    """
    pose = np.tile(np.asarray(ROT6D_IDENTITY, np.float32), (NUM_POSE_JOINTS, 1))
    pose[0] = ROT6D_UPRIGHT_FACING_CAMERA
    return _checked(pose, np.zeros(num_betas), np.asarray(SPIN_MEAN_CAM), "upright default", num_betas)


def mean_params_from_poses(pose_rotvec: np.ndarray | torch.Tensor,
                           betas: np.ndarray | torch.Tensor | None = None, num_betas: int = 10,
                           cam: tuple[float, float, float] = SPIN_MEAN_CAM,
                           source: str = "pose statistics") -> MeanParams:
    """Mean of the 6D representations of a set of poses (how SPIN's ``pose`` mean was made).

    Args:
        pose_rotvec: (N, 24, 3) or (N, 72) axis-angle poses in radians (row 0 = global orientation in
            the crop camera frame, e.g. pseudo-GTs), N >= 1.
        betas: optional (N, >= num_betas) shape coefficients; their mean is used, else zeros.
        num_betas: number of shape coefficients.
        cam: mean weak-perspective camera (SPIN's ``[0.9, 0, 0]``; the poses do not determine it).
        source: label for logs and error messages.

    Returns:
        :class:`MeanParams`; ``pose_6d`` is the plain average of the 6D vectors (not re-orthonormalised;
        the regressor's ``rot6d_to_rotmat`` does that).

    Raises:
        ValueError: wrong shapes, no poses, or non-finite values (message names ``source``).
    """
    poses = torch.as_tensor(np.asarray(pose_rotvec), dtype=torch.float64)
    if poses.ndim == 2 and poses.shape[1] == NUM_POSE_JOINTS * 3:
        poses = poses.reshape(-1, NUM_POSE_JOINTS, 3)
    if poses.ndim != 3 or poses.shape[1:] != (NUM_POSE_JOINTS, 3) or poses.shape[0] == 0:
        raise ValueError(f"{source}: poses have shape {tuple(poses.shape)}, "
                         "expected (N, 24, 3) or (N, 72) with N >= 1")
    if not torch.isfinite(poses).all():
        raise ValueError(f"{source}: poses contain non-finite values")
    pose_6d = rotvec_to_rot6d(poses).mean(dim=0).numpy()
    if betas is None:
        mean_betas = np.zeros(num_betas)
    else:
        betas_arr = np.asarray(betas, np.float64)
        if betas_arr.ndim != 2 or betas_arr.shape[0] != poses.shape[0] or betas_arr.shape[1] < num_betas:
            raise ValueError(f"{source}: betas have shape {betas_arr.shape}, "
                             f"expected ({poses.shape[0]}, >= {num_betas})")
        mean_betas = betas_arr[:, :num_betas].mean(axis=0)
    return _checked(pose_6d, mean_betas, np.asarray(cam), source, num_betas)


def _read_npz(path: str | Path, what: str) -> tuple[dict[str, np.ndarray], str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HMR mean parameters ({what}): file not found: {path}\n{_SPIN_HINT}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in data.files}, str(path)
    except Exception as error:  # not an npz, a pickle inside, a truncated file ...
        raise ValueError(f"{path}: could not read as npz ({type(error).__name__}: {error})") from error


def load_spin_mean_params(path: str | Path, num_betas: int = 10) -> MeanParams:
    """Read SPIN's ``smpl_mean_params.npz`` (keys ``pose`` (144,), ``shape`` (10,), ``cam`` (3,)).

    Raises:
        FileNotFoundError: the file is missing (the message says where SPIN's file comes from and
            what to use instead).
        ValueError: unreadable file, a missing key or a wrong shape (names the file and field).
    """
    data, source = _read_npz(path, "SPIN smpl_mean_params.npz")
    for key in ("pose", "shape", "cam"):
        if key not in data:
            raise ValueError(f"{source}: missing field {key!r} "
                             "(SPIN smpl_mean_params.npz has pose, shape, cam)")
    return _checked(data["pose"], data["shape"], data["cam"], source, num_betas)


def load_pose_statistics(path: str | Path, num_betas: int = 10) -> MeanParams:
    """Mean parameters from an npz of poses: key ``pose_rotvec`` (N, 24, 3) / (N, 72), optional ``betas``.

    Raises:
        FileNotFoundError: missing file. ValueError: see :func:`mean_params_from_poses`.
    """
    data, source = _read_npz(path, "pose statistics")
    if "pose_rotvec" not in data:
        raise ValueError(f"{source}: missing field 'pose_rotvec' (N, 24, 3) axis-angle poses")
    return mean_params_from_poses(data["pose_rotvec"], data.get("betas"), num_betas, source=source)


def resolve_mean_params(path: str | Path | None, num_betas: int = 10) -> MeanParams:
    """Pick the mean parameters: ``None`` -> :func:`upright_mean_params`; an npz with ``pose`` ->
    SPIN's file; an npz with ``pose_rotvec`` -> :func:`load_pose_statistics`.

    Raises:
        FileNotFoundError: ``path`` does not exist (with guidance).
        ValueError: the npz has neither ``pose`` nor ``pose_rotvec``, or bad contents.
    """
    if path is None:
        return upright_mean_params(num_betas)
    data, source = _read_npz(path, "mean_params_path")
    if "pose" in data:
        return load_spin_mean_params(path, num_betas)
    if "pose_rotvec" in data:
        return load_pose_statistics(path, num_betas)
    raise ValueError(f"{source}: neither field 'pose' (SPIN smpl_mean_params.npz) nor 'pose_rotvec' "
                     f"(poses to average); fields found: {sorted(data)}")
