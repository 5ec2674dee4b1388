"""Pose2Pose joint sets, heatmap units and truncation masks (reference-spec A.7, A.9, B.1).

Pose2Pose (Moon et al.; mks0601 ``Hand4Whole_RELEASE`` branch ``Pose2Pose``) supervises 33 joints
(``pose2pose33``: SMPL body joints, hand MCPs, face, feet) and localises 25 of them in a 3D heatmap
(``pose2pose25``, the PositionNet set; Hand4Whole ``human_models.py::reduce_joint_set``). All 2D
quantities of its losses are in *heatmap units*: the crop's ``(W, H)`` pixels scaled to the
``(W_hm, H_hm)`` = ``(6, 8)`` cells of the layer-4 feature map, depth a root-relative coordinate
mapped to ``D = 8`` bins over ``+-bbox_3d_size/2`` metres (Hand4Whole ``common/utils/preprocessing.py``
and ``main/model.py``; spec A.9, pitfall F.4).

Pure geometry shared by the Pose2Pose estimator g (:mod:`estimators.pose2pose`, which re-exports this
module as ``estimators.pose2pose.joints``) and the Pose2Pose-architecture annotator f
(:mod:`annot.annotator.module`, :func:`position_targets`).
"""
from __future__ import annotations

import math

import torch

from annot.keypoints import conversion_index, convert, get_convention

__all__ = [
    "SUPERVISION_CONVENTION",
    "POSITION_CONVENTION",
    "DEPTH_BINS",
    "BBOX_3D_SIZE_M",
    "heatmap_shape",
    "crop_px_to_heatmap",
    "depth_to_heatmap",
    "inside_heatmap",
    "reduce_to_position_set",
    "position_targets",
]

#: The 33-joint supervision set (spec A.7).
SUPERVISION_CONVENTION = "pose2pose33"
#: The 25-joint PositionNet set (spec A.7).
POSITION_CONVENTION = "pose2pose25"
#: Depth bins of the 3D heatmap (``cfg.output_hm_shape[0]``, spec B.1).
DEPTH_BINS = 8
#: Metric depth range covered by the heatmap, metres (``cfg.bbox_3d_size``, spec B.1).
BBOX_3D_SIZE_M = 2.0
#: Backbone output stride (ResNet layer4).
BACKBONE_STRIDE = 32


def heatmap_shape(input_hw: tuple[int, int], depth_bins: int = DEPTH_BINS) -> tuple[int, int, int]:
    """``(D, H_hm, W_hm)`` of the PositionNet heatmap for a crop ``input_hw = (H, W)`` pixels.

    The heatmap lives on the stride-32 layer-4 grid: ``(8, 8, 6)`` for 256x192 (spec B.1
    ``output_hm_shape``). Other crop sizes (used by fast tests) give ``ceil(H/32), ceil(W/32)``.
    """
    height, width = input_hw
    return depth_bins, math.ceil(height / BACKBONE_STRIDE), math.ceil(width / BACKBONE_STRIDE)


def crop_px_to_heatmap(xy_px: torch.Tensor, input_hw: tuple[int, int], hm_shape: tuple[int, int, int]) -> torch.Tensor:
    """Crop pixels -> heatmap units: ``x * W_hm / W``, ``y * H_hm / H`` (spec A.9; ``x*6/192``, ``y*8/256``).

    Args:
        xy_px: ``(..., 2)`` crop pixels.
        input_hw: crop ``(H, W)`` pixels.
        hm_shape: ``(D, H_hm, W_hm)``.

    Returns:
        ``(..., 2)`` heatmap units.
    """
    height, width = input_hw
    scale = xy_px.new_tensor([hm_shape[2] / width, hm_shape[1] / height])
    return xy_px * scale


def depth_to_heatmap(z_rel_m: torch.Tensor, depth_bins: int = DEPTH_BINS,
                     bbox_3d_size_m: float = BBOX_3D_SIZE_M) -> torch.Tensor:
    """Root-relative depth (metres) -> heatmap depth ``(z/(bbox_3d_size/2) + 1)/2 * D`` (spec A.9).

    With ``bbox_3d_size = 2`` m and ``D = 8``, ``[-1, 1)`` m maps to ``[0, 8)`` and the root to 4.

    Args:
        z_rel_m: ``(...)`` depth relative to the root joint, metres (camera z, forward positive).

    Returns:
        ``(...)`` heatmap depth units.
    """
    return (z_rel_m / (bbox_3d_size_m / 2.0) + 1.0) / 2.0 * depth_bins


def inside_heatmap(coords_hm: torch.Tensor, hm_shape: tuple[int, int, int],
                   check_depth: torch.Tensor | None = None) -> torch.Tensor:
    """Hand4Whole ``joint_trunc``: whether each joint lies in ``[0, W_hm) x [0, H_hm) x [0, D)``.

    Args:
        coords_hm: ``(B, J, 3)`` heatmap units ``(x, y, z)``.
        hm_shape: ``(D, H_hm, W_hm)``.
        check_depth: ``(B,)`` bool; where False only ``x, y`` are tested (2D-only samples, whose depth
            target is a placeholder). None tests depth everywhere.

    Returns:
        ``(B, J)`` float 0/1.
    """
    depth, height, width = hm_shape
    x, y, z = coords_hm.unbind(-1)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    z_ok = (z >= 0) & (z < depth)
    if check_depth is not None:
        z_ok = z_ok | ~check_depth.bool()[:, None]
    return (inside & z_ok).to(coords_hm.dtype)


def reduce_to_position_set(values: torch.Tensor) -> torch.Tensor:
    """Pick the 25 PositionNet joints from 33-set values by name (Hand4Whole ``reduce_joint_set``).

    Args:
        values: ``(B, 33, ...)`` anything per supervision joint (coordinates, masks).

    Returns:
        ``(B, 25, ...)`` in ``pose2pose25`` order.
    """
    index = conversion_index(SUPERVISION_CONVENTION, POSITION_CONVENTION)
    if values.shape[1] != get_convention(SUPERVISION_CONVENTION).num_joints:
        raise ValueError(f"reduce_to_position_set: expected (B, 33, ...), got {tuple(values.shape)}")
    return values[:, torch.as_tensor(index, device=values.device)]


def _to_position_set(values: torch.Tensor, mask: torch.Tensor, src: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, J, C) values + (B, J) mask in convention ``src`` -> (B, 25, C), (B, 25) ``pose2pose25`` by joint
    name; joints without a source, or masked, get mask 0 and value 0 (masked inputs may be non-finite)."""
    num = get_convention(src).num_joints
    if values.ndim != 3 or values.shape[1] != num or tuple(mask.shape) != tuple(values.shape[:2]):
        raise ValueError(f"position_targets: keypoints {tuple(values.shape)} / mask {tuple(mask.shape)} do not "
                         f"match convention {src!r} ((B, {num}, C) / (B, {num}))")
    out, has = convert(values, src, POSITION_CONVENTION)
    mask25, _ = convert(mask[..., None].to(values.dtype), src, POSITION_CONVENTION)
    mask25 = mask25[..., 0] * has.to(values.dtype)
    return torch.where(mask25[..., None] > 0, out, torch.zeros_like(out)), mask25


def position_targets(kp2d_px: torch.Tensor, kp2d_mask: torch.Tensor, kp2d_convention: str,
                     input_hw: tuple[int, int], joints_rel_m: torch.Tensor | None = None,
                     joints_mask: torch.Tensor | None = None,
                     joints_convention: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PositionNet targets in heatmap units and their (x, y, z) mask, for the annotator f.

    The ``joint_img`` target of Pose2Pose (Hand4Whole ``main/model.py``, spec A.9/B.3) built directly in
    the 25-joint PositionNet set: 2D keypoints (crop pixels) -> heatmap ``(x, y)``; root-relative camera
    depth (metres) -> heatmap ``z`` for samples with 3D joints (``is_3D``). Joints are matched by name
    (:func:`annot.keypoints.convert`): a convention without a PositionNet joint (``coco17`` has no
    ``Pelvis``, ``Neck``, feet) gets mask 0 there. The mask is Hand4Whole's ``joint_trunc``: valid and
    inside ``[0, W_hm) x [0, H_hm)`` (and ``[0, D)`` in depth for 3D samples, as
    :func:`inside_heatmap` with ``check_depth=is_3D``); the ``z`` column is further multiplied by the
    3D validity of the joint and ``is_3D``.

    Args:
        kp2d_px: (B, J2, 2) crop pixels in ``kp2d_convention``.
        kp2d_mask: (B, J2) 0/1 visibility.
        kp2d_convention: :mod:`annot.keypoints` name of ``kp2d_px``.
        input_hw: crop ``(H, W)`` pixels (heatmap :func:`heatmap_shape`).
        joints_rel_m: optional (B, J3, 3) root-relative 3D joints in the crop camera, metres.
        joints_mask: (B, J3) 0/1 validity of ``joints_rel_m`` (required with it).
        joints_convention: :mod:`annot.keypoints` name of ``joints_rel_m`` (required with it).

    Returns:
        ``(target (B, 25, 3), mask (B, 25, 3))``: heatmap-unit ``(x, y, z)`` (0 where masked) and 0/1 floats.

    Raises:
        ValueError: arrays whose joint count does not match their convention, or ``joints_rel_m``
            without its mask / convention.
    """
    hm_shape = heatmap_shape(input_hw)
    kp, kp_valid = _to_position_set(kp2d_px, kp2d_mask, kp2d_convention)
    if joints_rel_m is not None:
        if joints_mask is None or joints_convention is None:
            raise ValueError("position_targets: joints_rel_m needs joints_mask and joints_convention")
        joints, valid3d = _to_position_set(joints_rel_m, joints_mask, joints_convention)
    else:
        joints, valid3d = kp.new_zeros(*kp.shape[:2], 3), kp.new_zeros(kp.shape[:2])
    is_3d = valid3d.sum(dim=1) > 0
    depth = depth_to_heatmap(joints[..., 2]) * valid3d
    target = torch.cat([crop_px_to_heatmap(kp, input_hw, hm_shape), depth[..., None]], dim=-1)
    trunc = kp_valid * inside_heatmap(target, hm_shape, check_depth=is_3d)
    z_mask = trunc * valid3d * is_3d[:, None].to(trunc.dtype)
    mask = torch.stack([trunc, trunc, z_mask], dim=-1)
    return target * mask, mask
