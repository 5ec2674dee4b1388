"""Pose2Pose (Moon et al.; mks0601 ``Hand4Whole_RELEASE`` branch ``Pose2Pose``), reference-spec B.

Public API::

    Pose2PoseModule(body_model_type="free", ..., backbone_depth=50, backbone_weights=None,
                    input_hw=(256, 192), data_convention="pose2pose33", lr=1e-4,
                    lr_dec_epochs=(4, 6), lr_dec_factor=10, val_set_names=(), config=None)
    pose2pose_losses(pred, targets) -> {name: loss}, LOSS_NAMES
    Pose2PoseNet, PositionNet, RotationNet, soft_argmax_3d, sample_joint_features
    joints: SUPERVISION_CONVENTION ("pose2pose33"), POSITION_CONVENTION ("pose2pose25"), heatmap units
"""
from __future__ import annotations

from estimators.pose2pose.joints import POSITION_CONVENTION, SUPERVISION_CONVENTION
from estimators.pose2pose.module import LOSS_NAMES, Pose2PoseModule, pose2pose_losses
from estimators.pose2pose.net import (
    Pose2PoseNet,
    PositionNet,
    RotationNet,
    sample_joint_features,
    soft_argmax_3d,
)

__all__ = [
    "LOSS_NAMES",
    "POSITION_CONVENTION",
    "SUPERVISION_CONVENTION",
    "Pose2PoseModule",
    "Pose2PoseNet",
    "PositionNet",
    "RotationNet",
    "pose2pose_losses",
    "sample_joint_features",
    "soft_argmax_3d",
]
