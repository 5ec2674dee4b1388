"""Left hands as mirrored right hands (Hand4Whole / InterHand2.6M's trick).

A left-hand crop flipped horizontally shows a right hand; the right-hand annotator predicts it, and the
prediction is mirrored back. In a camera frame (OpenCV axes), the horizontal flip of a crop whose principal point
sits at the crop centre ``(W/2, H/2)`` is the 3D mirror ``M = diag(-1, 1, 1)`` (``u -> W - u``). A rotation ``R``
becomes ``M R M``; for an axis-angle ``(a_x, a_y, a_z)`` that is ``(a_x, -a_y, -a_z)``. MANO's left model is the
mirror of its right model (template, joints and ``hands_mean``; the free stand-ins are baked alike, checked in
``tests/test_hand_annotator.py``), so the left MANO posed with the mirrored global rotation and finger rotations is
the mirror image of the right MANO posed with the original ones (``betas`` unchanged).
"""
from __future__ import annotations

from torch import Tensor

#: The sign pattern of a mirrored axis-angle: ``(a_x, a_y, a_z) -> (a_x, -a_y, -a_z)``.
_MIRROR_SIGNS = (1.0, -1.0, -1.0)


def mirror_rotvec(rotvec: Tensor) -> Tensor:
    """(..., 3) axis-angle of ``M R M`` with ``M = diag(-1, 1, 1)`` (the rotation seen in a mirrored frame)."""
    if rotvec.shape[-1] != 3:
        raise ValueError(f"mirror_rotvec: (..., 3) axis-angle, got {tuple(rotvec.shape)}")
    return rotvec * rotvec.new_tensor(_MIRROR_SIGNS)


def mirror_rotmat(rotmat: Tensor) -> Tensor:
    """(..., 3, 3) ``M R M`` with ``M = diag(-1, 1, 1)``."""
    if rotmat.shape[-2:] != (3, 3):
        raise ValueError(f"mirror_rotmat: (..., 3, 3) rotations, got {tuple(rotmat.shape)}")
    m = rotmat.new_tensor([-1.0, 1.0, 1.0])
    return rotmat * m[:, None] * m[None, :]


def mirror_points(points: Tensor) -> Tensor:
    """(..., 3) points with x negated (the 3D mirror of a horizontal crop flip)."""
    return points * points.new_tensor([-1.0, 1.0, 1.0])


def flip_kp2d_px(kp2d_px: Tensor, width_px: float) -> Tensor:
    """(..., 2) crop pixels mirrored about the crop centre: ``u -> W - u`` (the principal point ``W/2`` stays)."""
    out = kp2d_px.clone()
    out[..., 0] = width_px - kp2d_px[..., 0]
    return out


def unflip_mano(global_rotvec: Tensor, hand_pose_rotvec: Tensor) -> tuple[Tensor, Tensor]:
    """A right-MANO prediction on a flipped crop -> the left-MANO parameters of the unflipped hand.

    Args:
        global_rotvec: (B, 3) right-MANO global rotation in the flipped crop's camera frame.
        hand_pose_rotvec: (B, 15, 3) right-MANO finger rotations (relative to ``hands_mean``, as ``smplx.MANO``'s
            ``hand_pose`` with ``flat_hand_mean=False``).

    Returns:
        ``(global_rotvec (B, 3), hand_pose_rotvec (B, 15, 3))`` for the left MANO in the unflipped frame.
    """
    return mirror_rotvec(global_rotvec), mirror_rotvec(hand_pose_rotvec)


__all__ = ["flip_kp2d_px", "mirror_points", "mirror_rotmat", "mirror_rotvec", "unflip_mano"]
