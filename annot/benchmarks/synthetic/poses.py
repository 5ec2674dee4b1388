"""Body poses of the synthetic people: the pose bank (CMU clips retargeted to the free body model by SMPLify3D,
or MoCap-mode pseudo-GTs, or random test poses), the held-out clips, and the global orientation.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from annot.benchmarks.synthetic.config import BODY_JOINTS, HELD_OUT_SPLITS, SyntheticConfig
from annot.body_models import BodyModel
from annot.data.augment import flip_smpl_pose

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- poses
@dataclass(frozen=True)
class PoseBank:
    """Body poses to draw from, grouped by clip.

    Attributes:
        poses: (N, 21, 3) axis-angle radians of SMPL joints 1..21 (no root orientation, no hands).
        clips: (N,) clip name of every pose (``""`` when unknown: then every split draws from all).
        source: a description for the manifest.
        rejected: ``{sample id: reason}`` of frames left out (retargeting error above the threshold).
    """

    poses: np.ndarray
    clips: np.ndarray
    source: str
    rejected: dict[str, str] = field(default_factory=dict)

    def for_split(self, split: str) -> np.ndarray:
        """(M, 21, 3) poses of ``split``: clips sorted by name, every third held out for :data:`HELD_OUT_SPLITS`,
        the rest for the others; all poses when there are fewer than three clips.

        Raises:
            ValueError: the selection is empty (names the split).
        """
        names = sorted(set(self.clips.tolist()))
        if len(names) < 3:
            return self.poses
        held = set(names[::3])
        keep = np.array([(c in held) == (split in HELD_OUT_SPLITS) for c in self.clips])
        if not keep.any():
            raise ValueError(f"pose bank ({self.source}): no pose left for split {split!r}")
        return self.poses[keep]


def retarget_cmu(config: SyntheticConfig, body: BodyModel) -> dict[str, np.ndarray]:
    """Fit the free body model to ``config.cmu_frames`` evenly spaced CMU frames (SMPL-24 joints, 30 fps).

    Returns:
        ``pose_rotvec`` (N, 24, 3) radians and ``transl_m`` (N, 3) in the clips' Y-up world frame, ``betas``
        (N, B), ``sample_id`` (N,) ``"<clip>:<frame>"``, ``joints_err_m`` (N,) mean 3D joint error of the
        fit, metres. Batched :class:`annot.fitting.smplify.SMPLify3D` (prior ``none``: L2 + bending),
        about 20 s for 512 frames on 2 CPU cores.

    Raises:
        FileNotFoundError: ``config.cmu_root`` holds no BVH (from :class:`annot.data.mocap.BVHMocap`).
    """
    from annot.data.mocap import BVHMocap
    from annot.fitting.smplify import SMPLify3D

    mocap = BVHMocap(config.cmu_root, convention="smpl24", fps=30.0)
    index = np.unique(np.linspace(0, len(mocap) - 1, min(config.cmu_frames, len(mocap))).round().astype(int))
    items = [mocap[int(i)] for i in index]
    joints = torch.stack([it["joints_world_m"] for it in items])
    mask = torch.stack([it["joints_mask"] for it in items])
    fit = SMPLify3D(body, prior="none", num_iters_per_stage=config.cmu_fit_iters).fit(joints, mask, "smpl24")
    return {"pose_rotvec": fit.pose_rotvec.double().numpy(), "transl_m": fit.transl_m.double().numpy(),
            "betas": fit.betas.double().numpy(), "sample_id": np.array([it["sample_id"] for it in items]),
            "joints_err_m": fit.joints_err_m.double().numpy()}


def _bank_provenance(config: SyntheticConfig) -> str:
    return json.dumps({"cmu_root": str(Path(config.cmu_root).resolve()), "cmu_frames": config.cmu_frames,
                       "cmu_fit_iters": config.cmu_fit_iters, "version": 1}, sort_keys=True)


def cmu_pose_bank(config: SyntheticConfig, body: BodyModel, cache: Path | None = None) -> PoseBank:
    """The ``cmu_fit`` :class:`PoseBank`: :func:`retarget_cmu`, cached in ``cache`` (an ``.npz`` with its
    fields and ``provenance``, reused while that matches), then frames above ``config.cmu_max_err_m``
    rejected with their error.

    Raises:
        FileNotFoundError: from :func:`retarget_cmu`. ValueError: every frame rejected.
    """
    import io

    from annot.io.atomic import atomic_write_bytes

    provenance = _bank_provenance(config)
    fitted = None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if str(data["provenance"]) == provenance:
                fitted = {k: data[k] for k in data.files}
    if fitted is None:
        fitted = retarget_cmu(config, body)
        if cache is not None:
            buf = io.BytesIO()
            np.savez(buf, provenance=np.array(provenance), **fitted)
            atomic_write_bytes(cache, buf.getvalue())
    ids, err = fitted["sample_id"].astype(str), fitted["joints_err_m"]
    keep = err <= config.cmu_max_err_m
    rejected = {i: f"retargeting error {e * 1e3:.1f} mm > {config.cmu_max_err_m * 1e3:.0f} mm"
                for i, e, k in zip(ids, err, keep) if not k}
    if not keep.any():
        raise ValueError(f"CMU pose bank: all {len(ids)} retargeted frames exceed cmu_max_err_m="
                         f"{config.cmu_max_err_m} m (median {np.median(err) * 1e3:.0f} mm)")
    clips = np.array([i.split(":")[0] for i in ids[keep]])
    source = (f"cmu_fit ({config.cmu_root}: {int(keep.sum())} of {len(ids)} frames retargeted by SMPLify3D, "
              f"mean error {err[keep].mean() * 1e3:.1f} mm)")
    return PoseBank(fitted["pose_rotvec"][keep, 1:BODY_JOINTS], clips, source, rejected)


def load_pose_bank(config: SyntheticConfig, body: BodyModel | None = None, cache: Path | None = None,
                   ) -> PoseBank | None:
    """The poses of ``config.pose_source``: a :class:`PoseBank`, or None for ``"random"`` (a warning is logged).

    Args:
        config: generator values; body: the free body model (``cmu_fit`` only; default ``BodyModel("free")``);
        cache: ``.npz`` path caching the ``cmu_fit`` retargeting (None: no cache).

    Raises:
        FileNotFoundError: ``npz`` without ``poses_npz`` file (says to run ``make annotate-body``), or no CMU
            clips under ``cmu_root`` (``cmu_fit``).
        ValueError: the npz lacks ``pose_rotvec`` of shape (N, 24, 3) with finite values (names file, field).
    """
    if config.pose_source == "random":
        log.warning("synthetic: random body poses (pose_source=random) are implausible; tests only")
        return None
    if config.pose_source == "cmu_fit":
        return cmu_pose_bank(config, body if body is not None else BodyModel.from_config("free"), cache)
    path = Path(config.poses_npz) if config.poses_npz else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{path}: no MoCap-mode pseudo-GT poses (pose_source=npz); run `make annotate-body` "
                                "first, or use pose_source=cmu_fit")
    with np.load(path) as data:
        if "pose_rotvec" not in data.files:
            raise ValueError(f"{path}: field 'pose_rotvec' missing (have {data.files})")
        poses = np.asarray(data["pose_rotvec"], dtype=np.float64)
        ids = np.asarray(data["sample_id"]).astype(str) if "sample_id" in data.files else np.full(len(poses), "")
    if poses.ndim != 3 or poses.shape[1:] != (24, 3) or len(poses) == 0 or not np.all(np.isfinite(poses)):
        raise ValueError(f"{path}: field 'pose_rotvec' must be finite (N, 24, 3), got {poses.shape}")
    clips = np.array([i.split(":")[0] for i in ids])
    return PoseBank(poses[:, 1:BODY_JOINTS], clips, f"npz ({path}, {len(poses)} frames)")


def random_body_pose(rng: np.random.Generator) -> np.ndarray:
    """(21, 3) axis-angle radians for SMPL joints 1..21: N(0, 0.2) per joint, both shoulders lowered
    by U(0.3, 1.3) rad from the T-pose (rotation about the model's z axis) and elbows bent by
    U(0, 1.2) rad (about y), so that arms are not always stretched out."""
    pose = rng.normal(scale=0.2, size=(24, 3))
    pose[16, 2] -= rng.uniform(0.3, 1.3)  # left arm (+x) down: -angle about +z
    pose[17, 2] += rng.uniform(0.3, 1.3)  # right arm (-x) down
    pose[18, 1] -= rng.uniform(0.0, 1.2)  # left elbow bends forward
    pose[19, 1] += rng.uniform(0.0, 1.2)
    return pose[1:BODY_JOINTS]


def global_orientation(yaw_rad: float, elevation_rad: float, roll_rad: float) -> np.ndarray:
    """(3,) axis-angle of ``Rz(roll) Rx(elevation) Rx(pi) Ry(yaw)``: an upright SMPL body (Y up) in the
    OpenCV camera frame (y down), facing the camera at yaw 0, seen from ``elevation`` above (radians)."""
    rot = (Rotation.from_rotvec([0.0, 0.0, roll_rad]) * Rotation.from_rotvec([elevation_rad, 0.0, 0.0])
           * Rotation.from_rotvec([np.pi, 0.0, 0.0]) * Rotation.from_rotvec([0.0, yaw_rad, 0.0]))
    return rot.as_rotvec()


def _uniform_deg(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(np.deg2rad(rng.uniform(*bounds)))


def sample_pose(rng: np.random.Generator, pose_bank: np.ndarray | None,
                config: SyntheticConfig) -> tuple[np.ndarray, bool]:
    """(24, 3) SMPL pose (axis-angle radians, camera frame global orientation) and whether mirrored."""
    pose = np.zeros((24, 3))
    if pose_bank is None:
        pose[1:BODY_JOINTS] = random_body_pose(rng)
    else:
        pose[1:BODY_JOINTS] = pose_bank[rng.integers(len(pose_bank))]
    mirrored = bool(rng.random() < config.mirror_prob)
    if mirrored:
        pose = flip_smpl_pose(pose)
    pose[0] = global_orientation(_uniform_deg(rng, config.yaw_range_deg),
                                 _uniform_deg(rng, config.elevation_range_deg),
                                 _uniform_deg(rng, config.roll_range_deg))
    pose[22:] = 0.0
    return pose, mirrored
