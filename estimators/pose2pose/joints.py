"""Pose2Pose joint sets, heatmap units and truncation masks (reference-spec A.7, A.9, B.1): a re-export
of :mod:`annot.nets.pose2pose_joints`, where this pure geometry lives so that the Pose2Pose-architecture
annotator f can share it (estimators import annot, never the reverse)."""
from __future__ import annotations

from annot.nets.pose2pose_joints import (
    BACKBONE_STRIDE,
    BBOX_3D_SIZE_M,
    DEPTH_BINS,
    POSITION_CONVENTION,
    SUPERVISION_CONVENTION,
    crop_px_to_heatmap,
    depth_to_heatmap,
    heatmap_shape,
    inside_heatmap,
    position_targets,
    reduce_to_position_set,
)

__all__ = [
    "SUPERVISION_CONVENTION",
    "POSITION_CONVENTION",
    "DEPTH_BINS",
    "BBOX_3D_SIZE_M",
    "BACKBONE_STRIDE",
    "heatmap_shape",
    "crop_px_to_heatmap",
    "depth_to_heatmap",
    "inside_heatmap",
    "reduce_to_position_set",
    "position_targets",
]
