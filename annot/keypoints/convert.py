"""Convert keypoints between conventions by joint name, and flip them left/right.

Matching is by joint name, as mks0601 ``transform_joint_to_other_db`` does (Hand4Whole
``common/utils/transforms.py``; spec A.7): a destination joint takes the source joint of the same name,
and destination joints without a source are zero with ``mask = False``. Name matching is semantic,
not anatomically exact: e.g. COCO ``L_Hip`` (a skin point) fills SMPL ``L_Hip`` (a kinematic joint),
H36M ``Neck`` fills SMPL ``Neck``, as in mks0601.

Aliases (deliberately few): ``blazepose33``'s foot tip reads as the big toe, ``mediapipe_hand21``'s
anatomical names (``Index_MCP``) as the ``hand21`` names (``Index_1``); ``mupots17`` is ``mpi_inf_3dhp17`` with
two joints spelled differently (spec A.6), so for matching only, its ``Thorax`` reads as ``Neck`` and its
``Spine`` as ``Torso``. The alias is tied to the convention, not global, because ``mpii16`` has both ``Thorax``
and ``Neck`` and ``smpl24`` has both ``Spine`` and ``Torso`` as distinct joints.
"""

from __future__ import annotations

from functools import cache
from typing import TypeVar

import numpy as np
import torch

from annot.keypoints.conventions import KeypointConvention, get_convention

__all__ = ["JOINT_NAME_ALIASES", "conversion_index", "convert", "flip_keypoints"]

Array = TypeVar("Array", torch.Tensor, np.ndarray)

#: Per-convention spelling -> canonical name used for matching. Conventions not listed match by
#: their own names.
JOINT_NAME_ALIASES: dict[str, dict[str, str]] = {
    "mupots17": {"Thorax": "Neck", "Spine": "Torso"},
    # BlazePose's foot tip ("foot index") is the nearest of its points to COCO-WholeBody's big toe
    "blazepose33": {"L_Foot_index": "L_Big_toe", "R_Foot_index": "R_Big_toe"},
    # MediaPipe Hands' anatomical names -> the hand21 order (joint k of a finger counted from its base)
    "mediapipe_hand21": {
        **{f"Thumb_{p}": f"Thumb_{k}" for k, p in enumerate(("CMC", "MCP", "IP", "Tip"), start=1)},
        **{f"{f}_{p}": f"{f}_{k}" for f in ("Index", "Middle", "Ring", "Pinky")
           for k, p in enumerate(("MCP", "PIP", "DIP", "Tip"), start=1)},
    },
}


def _match_names(conv: KeypointConvention) -> tuple[str, ...]:
    aliases = JOINT_NAME_ALIASES.get(conv.name, {})
    return tuple(aliases.get(n, n) for n in conv.joint_names)


@cache
def _conversion_index_cached(src: KeypointConvention, dst: KeypointConvention) -> tuple[int, ...]:
    src_pos = {n: i for i, n in enumerate(_match_names(src))}
    return tuple(src_pos.get(n, -1) for n in _match_names(dst))


def conversion_index(src: str | KeypointConvention, dst: str | KeypointConvention) -> tuple[int, ...]:
    """For each ``dst`` joint, the index of the matching ``src`` joint, or -1 when there is none.

    Returns:
        tuple of length ``J_dst``.

    Raises:
        ValueError: for an unknown convention name.
    """
    return _conversion_index_cached(get_convention(src), get_convention(dst))


def convert(
    kps: Array, src: str | KeypointConvention, dst: str | KeypointConvention
) -> tuple[Array, Array]:
    """Re-order keypoints from convention ``src`` to convention ``dst`` by joint name.

    Args:
        kps: ``(..., J_src, C)`` torch tensor or numpy array (any leading batch dims, any channels,
            e.g. ``(x, y)`` px, ``(x, y, conf)`` or ``(X, Y, Z)`` m); the unit is kept as it is.
        src, dst: convention names (see :mod:`annot.keypoints.conventions`) or objects.

    Returns:
        ``(kps_dst, mask)``: ``kps_dst`` is ``(..., J_dst, C)`` of the same type, dtype and device as
        ``kps``, zeros where the ``dst`` joint has no source; ``mask`` is ``(J_dst,)`` bool (torch
        bool tensor on the same device, or numpy bool array), True where the joint was filled.
        Differentiable with respect to ``kps`` for torch inputs.

    Raises:
        ValueError: unknown convention, or ``kps`` is not ``(..., J_src, C)``.
    """
    src_conv, dst_conv = get_convention(src), get_convention(dst)
    if kps.ndim < 2 or kps.shape[-2] != src_conv.num_joints:
        raise ValueError(
            f"convert {src_conv.name}->{dst_conv.name}: expected kps of shape "
            f"(..., {src_conv.num_joints}, C), got {tuple(kps.shape)}"
        )
    index = conversion_index(src_conv, dst_conv)
    # Append one zero joint at position J_src; unmatched dst joints (-1) gather from it.
    gather = [i if i >= 0 else src_conv.num_joints for i in index]
    matched = [i >= 0 for i in index]
    if isinstance(kps, torch.Tensor):
        padded = torch.cat([kps, kps.new_zeros(*kps.shape[:-2], 1, kps.shape[-1])], dim=-2)
        out = padded[..., torch.as_tensor(gather, device=kps.device), :]
        return out, torch.as_tensor(matched, dtype=torch.bool, device=kps.device)
    if isinstance(kps, np.ndarray):
        padded = np.concatenate([kps, np.zeros((*kps.shape[:-2], 1, kps.shape[-1]), kps.dtype)], axis=-2)
        return padded[..., gather, :], np.asarray(matched, dtype=bool)
    raise TypeError(f"convert: kps must be a torch.Tensor or np.ndarray, got {type(kps).__name__}")


def flip_keypoints(
    kps: Array, convention: str | KeypointConvention, image_width: float | None = None
) -> Array:
    """Mirror keypoints horizontally: swap left/right joints and, optionally, mirror x in pixels.

    Follows mks0601 ``preprocessing.py`` (spec A.9): ``x_img = W - 1 - x_img`` and the flip pairs
    are swapped. For camera-frame 3D joints negate x yourself (``x_cam = -x_cam``) and leave
    ``image_width`` None.

    Args:
        kps: ``(..., J, C)`` torch tensor or numpy array; channel 0 is x when ``image_width`` is given.
        convention: convention name or object of ``kps``.
        image_width: original image width ``W`` in pixels; if given, x -> ``W - 1 - x``.

    Returns:
        A new ``(..., J, C)`` array/tensor of the same type; the input is not modified.

    Raises:
        ValueError: unknown convention, or ``kps`` is not ``(..., J, C)``.
    """
    conv = get_convention(convention)
    if kps.ndim < 2 or kps.shape[-2] != conv.num_joints:
        raise ValueError(
            f"flip_keypoints {conv.name}: expected kps of shape (..., {conv.num_joints}, C), "
            f"got {tuple(kps.shape)}"
        )
    perm = conv.flip_permutation()
    if isinstance(kps, torch.Tensor):
        out = kps[..., torch.as_tensor(perm, device=kps.device), :].clone()
    elif isinstance(kps, np.ndarray):
        out = kps[..., perm, :].copy()
    else:
        raise TypeError(f"flip_keypoints: kps must be a torch.Tensor or np.ndarray, got {type(kps).__name__}")
    if image_width is not None:
        out[..., 0] = image_width - 1 - out[..., 0]
    return out
