"""Augmentation parameters and their consistent application to 2D, 3D and SMPL targets.

One affine does the geometry (scale, in-plane rotation, translation, flip) for the image and the 2D
keypoints; its linear part, read back from the affine itself, gives the matching orthogonal 3x3 map of
the camera frame, which is applied to 3D joints and to the SMPL global orientation and translation.
A flip also swaps the left/right SMPL joint rotations and negates the y and z components of every
axis-angle (Pose2Pose ``augmentation``/``flip_joint``, SPIN ``flip_pose``; reference-spec A.9, B.5).
Photometric changes go through ``albumentations``.

Sampling follows Pose2Pose ``get_aug_config`` (reference-spec B.5): ``scale = clip(N,-1,1) f_s + 1``,
``rot = clip(N,-2,2) f_r`` with probability ``rot_prob`` (else 0), per-channel colour factor
``U(1-f_c, 1+f_c)``, flip with probability ``flip_prob``. The extreme-crop option follows EFT (Joo et
al., 3DV 2021, Sec. 4): with probability ``extreme_crop_prob`` the box is replaced by the box of the
upper body or of the face.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMPL_FLIP_PERM = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22)

# Joint-name groups of EFT's extreme crops (names of annot.keypoints conventions).
UPPER_BODY_JOINTS = ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "Head", "Head_top", "Neck", "Thorax",
                     "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip",
                     "Pelvis", "Torso", "Spine")
FACE_JOINTS = ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "Head", "Head_top", "Neck", "Thorax",
               "L_Shoulder", "R_Shoulder")


@dataclass
class AugmentConfig:
    """Augmentation switches and magnitudes (defaults: Pose2Pose training, reference-spec B.5).

    ``enabled=False`` turns every random change off (annotation / evaluation).
    ``shift_factor``: box-centre translation, ``clip(N,-1,1) * f`` of the box size.
    """

    enabled: bool = False
    scale_factor: float = 0.25
    rot_factor_deg: float = 30.0
    rot_prob: float = 0.6
    shift_factor: float = 0.0
    flip_prob: float = 0.5
    color_factor: float = 0.2
    extreme_crop_prob: float = 0.0


@dataclass(frozen=True)
class AugmentParams:
    """One draw: ``scale`` (box multiplier), ``rot_deg``, ``shift`` (2,) fraction of box, ``flip``,
    ``color`` (3,) per-channel multipliers, ``extreme_crop`` ("" | "upper" | "face")."""

    scale: float = 1.0
    rot_deg: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    extreme_crop: str = ""


def sample_augment(cfg: AugmentConfig, rng: np.random.Generator) -> AugmentParams:
    """Draw augmentation parameters (identity when ``cfg.enabled`` is False)."""
    if not cfg.enabled:
        return AugmentParams()
    scale = float(np.clip(rng.standard_normal(), -1.0, 1.0) * cfg.scale_factor + 1.0)
    rot = float(np.clip(rng.standard_normal(), -2.0, 2.0) * cfg.rot_factor_deg) if rng.random() < cfg.rot_prob else 0.0
    shift = tuple(float(v) for v in np.clip(rng.standard_normal(2), -1.0, 1.0) * cfg.shift_factor)
    flip = bool(rng.random() < cfg.flip_prob)
    color = tuple(float(v) for v in rng.uniform(1.0 - cfg.color_factor, 1.0 + cfg.color_factor, 3))
    extreme = ""
    if rng.random() < cfg.extreme_crop_prob:
        extreme = "upper" if rng.random() < 0.5 else "face"
    return AugmentParams(scale, rot, shift, flip, color, extreme)  # type: ignore[arg-type]


def apply_color(img_u8: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    """Per-channel multiplicative colour change with albumentations (``MultiplicativeNoise``, fixed
    multipliers so the draw stays in our seeded ``AugmentParams``); clipped to [0, 255] uint8."""
    if all(c == 1.0 for c in color):
        return img_u8
    import albumentations as A

    out = img_u8
    for channel, factor in enumerate(color):
        op = A.MultiplicativeNoise(multiplier=(factor, factor), per_channel=False, elementwise=False, p=1.0)
        out = out.copy()
        out[..., channel] = op(image=np.ascontiguousarray(img_u8[..., channel:channel + 1]))["image"][..., 0]
    return out


def frame_map_from_affine(img_to_crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The camera-frame map matching a crop affine, read from the affine's linear part.

    A crop is ``p_crop = L p_img + a`` with ``L = s R2`` (scale, in-plane rotation) or ``s R2 diag(-1, 1)``
    (with a mirror). Pixel and camera axes agree (x right, y down), so the same in-plane change of a
    camera-frame point is ``G = [[L/s, 0], [0, 1]]`` (orthogonal; det -1 with a mirror).

    Args:
        img_to_crop: (2, 3) affine, original-image pixels -> crop pixels.

    Returns:
        ``(G (3, 3), scale_xy (2,))``: ``scale_xy`` = crop pixels per image pixel along x and y.

    Raises:
        ValueError: the affine is not a similarity (shear or unequal scales beyond 1e-3).
    """
    lin = np.asarray(img_to_crop, dtype=np.float64)[:, :2]
    scale_xy = np.linalg.norm(lin, axis=0)
    if not np.allclose(scale_xy[0], scale_xy[1], rtol=1e-3) or abs(lin[:, 0] @ lin[:, 1]) > 1e-3 * scale_xy.prod():
        raise ValueError(f"frame_map_from_affine: crop affine is not a similarity: {lin.tolist()}")
    g = np.eye(3)
    g[:2, :2] = lin / scale_xy
    return g, scale_xy


def flip_smpl_pose(pose_rotvec: np.ndarray) -> np.ndarray:
    """Mirror an SMPL pose through the x = 0 plane: swap left/right joints, negate axis-angle y and z.

    Args:
        pose_rotvec: (24, 3) axis-angle, radians.

    Returns:
        (24, 3) mirrored pose (SPIN ``flip_pose``; Pose2Pose ``flip_joint`` on ``smpl_pose``).
    """
    flipped = np.asarray(pose_rotvec, dtype=np.float64)[list(SMPL_FLIP_PERM)].copy()
    flipped[:, 1:] *= -1.0
    return flipped


def _rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    import roma
    import torch

    return roma.rotvec_to_rotmat(torch.as_tensor(rotvec, dtype=torch.float64)).numpy()


def _matrix_to_rotvec(rotmat: np.ndarray) -> np.ndarray:
    import roma
    import torch

    return roma.rotmat_to_rotvec(torch.as_tensor(rotmat, dtype=torch.float64)).numpy()


def transform_smpl(pose_rotvec: np.ndarray, transl_m: np.ndarray, root_joint_m: np.ndarray, frame_map: np.ndarray,
                   offset_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply a change of camera frame ``x -> G x + t`` to an SMPL fit (pose and ``transl``).

    With a mirror (det G < 0) the pose is first mirrored (:func:`flip_smpl_pose`) and ``G`` is replaced
    by its rotation part ``G diag(-1, 1, 1)``; the global orientation becomes ``R_G R0`` and
    ``transl' = G (J0 + transl) + t - J0``: SMPL rotates about its root joint ``J0(beta)`` (Hand4Whole
    ``process_human_model_output``, 3DPW conversion of I2L ``3dpw2coco.py``; reference-spec A.5, A.8).
    Exact for a left/right-symmetric model (the mirrored pose reproduces the mirrored mesh).

    Args:
        pose_rotvec: (24, 3) axis-angle (radians); row 0 = global orientation.
        transl_m: (3,) SMPL ``transl`` (metres).
        root_joint_m: (3,) ``J0(beta)`` of the model at zero pose (:class:`annot.body_models.RestRootJoint`).
        frame_map: (3, 3) orthogonal ``G``.
        offset_m: (3,) translation ``t`` of the change of frame (metres); default 0.

    Returns:
        (pose_rotvec (24, 3), transl_m (3,)) in the new frame.
    """
    g = np.asarray(frame_map, dtype=np.float64)
    pose = np.asarray(pose_rotvec, dtype=np.float64).copy()
    rot = g
    if np.linalg.det(g) < 0:
        pose = flip_smpl_pose(pose)
        rot = g @ np.diag([-1.0, 1.0, 1.0])
    pose[0] = _matrix_to_rotvec(rot @ _rotvec_to_matrix(pose[0]))
    j0 = np.asarray(root_joint_m, dtype=np.float64)
    offset = np.zeros(3) if offset_m is None else np.asarray(offset_m, dtype=np.float64)
    transl = g @ (j0 + np.asarray(transl_m, dtype=np.float64)) + offset - j0
    return pose, transl


def extreme_crop_box(kp2d_px: np.ndarray, valid: np.ndarray, joint_names: tuple[str, ...],
                     kind: str) -> np.ndarray | None:
    """EFT extreme crop: the (x, y, w, h) box of the visible joints of the upper body or the face.

    Args:
        kp2d_px: (J, 2) original-image pixels; valid: (J,) bool; joint_names: the convention's names.
        kind: ``"upper"`` or ``"face"``.

    Returns:
        (4,) box in pixels (unprocessed), or ``None`` when fewer than two such joints are visible.
    """
    group = UPPER_BODY_JOINTS if kind == "upper" else FACE_JOINTS
    pick = np.array([valid[i] and name in group for i, name in enumerate(joint_names)], dtype=bool)
    if pick.sum() < 2:
        return None
    pts = kp2d_px[pick]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return np.array([lo[0], lo[1], max(hi[0] - lo[0], 1.0), max(hi[1] - lo[1], 1.0)])

