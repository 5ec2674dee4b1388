"""Rotation representation conversions (axis-angle, rotation matrix, 6D), built on ``roma``.

6D convention (Zhou et al., "On the Continuity of Rotation Representations", CVPR 2019, as used by
mks0601 Pose2Pose ``common/utils/transforms.py::rot6d_to_axis_angle``, nkolot SPIN
``utils/geometry.py::rot6d_to_rotmat`` and VPoser's ``ContinousRotReprDecoder``; spec B.2.4): the
6-vector ``x`` is reshaped row-major to a 3x2 matrix (``x.view(-1, 3, 2)``), so its two COLUMNS are
``a1 = x[0::2]`` and ``a2 = x[1::2]``. Gram-Schmidt gives ``b1 = a1/|a1|``,
``b2 = normalize(a2 - <b1, a2> b1)``, ``b3 = b1 x b2`` and ``R = [b1 b2 b3]`` (columns). The inverse
takes the first two columns of ``R`` and flattens them row-major: ``[R00, R01, R10, R11, R20, R21]``.
``roma.special_gramschmidt`` orthonormalises the first two columns of a ``(..., 3, 2)`` matrix, i.e.
exactly this convention once ``x`` is reshaped to ``(..., 3, 2)``.

Axis-angle (``rotvec``): direction = axis, norm = angle in radians (SMPL ``pose`` convention).
Rotation matrices act on column vectors (``p' = R @ p``).

All functions take torch tensors with any leading batch dims and keep dtype and device; they are
differentiable.
"""

from __future__ import annotations

import roma
import torch

__all__ = [
    "rot6d_to_rotmat",
    "rotmat_to_rot6d",
    "rotvec_to_rotmat",
    "rotmat_to_rotvec",
    "rot6d_to_rotvec",
    "rotvec_to_rot6d",
    "global_rotmats",
]

#: Clamp on vector norms in Gram-Schmidt (same role as ``F.normalize``'s eps in SPIN).
_GS_EPS = 1e-12


def _check(x: torch.Tensor, tail: tuple[int, ...], what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim < len(tail) or tuple(x.shape[-len(tail):]) != tail:
        raise ValueError(f"{what}: expected shape (..., {', '.join(map(str, tail))}), got {tuple(x.shape)}")


def rot6d_to_rotmat(pose_6d: torch.Tensor) -> torch.Tensor:
    """6D rotation (Zhou ``view(-1,3,2)`` convention, module docstring) -> rotation matrix.

    Args:
        pose_6d: ``(..., 6)``; need not be normalised.

    Returns:
        ``(..., 3, 3)`` rotation matrices (columns = Gram-Schmidt of ``pose_6d.view(..., 3, 2)``).

    Raises:
        TypeError: not a tensor. ValueError: last dim is not 6.
    """
    _check(pose_6d, (6,), "rot6d_to_rotmat")
    return roma.special_gramschmidt(pose_6d.reshape(*pose_6d.shape[:-1], 3, 2), epsilon=_GS_EPS)


def rotmat_to_rot6d(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrix -> 6D (first two columns, flattened row-major; inverse of :func:`rot6d_to_rotmat`).

    Args:
        rotmat: ``(..., 3, 3)``.

    Returns:
        ``(..., 6)`` = ``[R00, R01, R10, R11, R20, R21]``.

    Raises:
        TypeError: not a tensor. ValueError: trailing dims are not (3, 3).
    """
    _check(rotmat, (3, 3), "rotmat_to_rot6d")
    return rotmat[..., :, :2].reshape(*rotmat.shape[:-2], 6)


def rotvec_to_rotmat(pose_rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (radians) -> rotation matrix, Rodrigues' formula (``roma.rotvec_to_rotmat``).

    Args:
        pose_rotvec: ``(..., 3)``.

    Returns:
        ``(..., 3, 3)``.

    Raises:
        TypeError: not a tensor. ValueError: last dim is not 3.
    """
    _check(pose_rotvec, (3,), "rotvec_to_rotmat")
    return roma.rotvec_to_rotmat(pose_rotvec)


def rotmat_to_rotvec(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrix -> axis-angle with angle in ``[0, pi]`` (``roma.rotmat_to_rotvec``, via quaternion).

    Args:
        rotmat: ``(..., 3, 3)`` (should be a rotation; slightly non-orthonormal input is tolerated).

    Returns:
        ``(..., 3)`` radians. Finite for every input, including the identity (no NaN->0 patch needed,
        unlike torchgeometry's ``rotation_matrix_to_angle_axis`` used by Pose2Pose).

    Raises:
        TypeError: not a tensor. ValueError: trailing dims are not (3, 3).
    """
    _check(rotmat, (3, 3), "rotmat_to_rotvec")
    return roma.rotmat_to_rotvec(rotmat)


def global_rotmats(local_rotmat: torch.Tensor, parents: list[int] | torch.Tensor) -> torch.Tensor:
    """Global (world / camera frame) rotation of every joint of a kinematic tree from its local rotations:
    ``G_j = G_parent(j) @ R_j``, ``G_root = R_root`` (the rotation part of smplx ``batch_rigid_transform``).

    Args:
        local_rotmat: ``(B, J, 3, 3)`` local rotations (row 0 = root).
        parents: ``(J,)`` parent index of each joint, ``parents[0] < 0``, every parent before its child.

    Returns:
        ``(B, J, 3, 3)``.

    Raises:
        ValueError: ``parents`` does not match ``J`` or a parent comes after its child.
    """
    _check(local_rotmat, (3, 3), "global_rotmats")
    parents = [int(p) for p in parents]
    if local_rotmat.ndim != 4 or len(parents) != local_rotmat.shape[1]:
        raise ValueError(f"global_rotmats: {len(parents)} parents for local_rotmat of shape "
                         f"{tuple(local_rotmat.shape)}")
    out = [local_rotmat[:, 0]]
    for j in range(1, len(parents)):
        if not 0 <= parents[j] < j:
            raise ValueError(f"global_rotmats: joint {j} has parent {parents[j]} (must come before it)")
        out.append(out[parents[j]] @ local_rotmat[:, j])
    return torch.stack(out, dim=1)


def rot6d_to_rotvec(pose_6d: torch.Tensor) -> torch.Tensor:
    """6D -> axis-angle: ``(..., 6) -> (..., 3)`` radians (Pose2Pose ``rot6d_to_axis_angle``)."""
    return rotmat_to_rotvec(rot6d_to_rotmat(pose_6d))


def rotvec_to_rot6d(pose_rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (radians) -> 6D: ``(..., 3) -> (..., 6)``."""
    return rotmat_to_rot6d(rotvec_to_rotmat(pose_rotvec))
