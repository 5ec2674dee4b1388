"""The Pose2Pose body network (reference-spec B.2): a re-export of :mod:`annot.nets.pose2pose`.

The network code lives in ``annot.nets`` so the annotator f of the Three Recipes (a Pose2Pose that
predicts the VPoser latent, supplementary B) can use it without importing the estimators (estimators
import annot, never the reverse). The estimator g uses the defaults (21 x 6D body pose, no
conditioning), i.e. mks0601 ``Hand4Whole_RELEASE`` branch ``Pose2Pose`` unchanged.
"""
from __future__ import annotations

from annot.nets.pose2pose import (
    JOINT_FEAT_CHANNELS,
    NUM_BODY_JOINTS,
    POSE_OUTPUTS,
    Pose2PoseNet,
    PositionNet,
    RotationNet,
    init_head_weights,
    sample_joint_features,
    soft_argmax_3d,
)

__all__ = ["soft_argmax_3d", "sample_joint_features", "PositionNet", "RotationNet", "Pose2PoseNet",
           "init_head_weights", "NUM_BODY_JOINTS", "JOINT_FEAT_CHANNELS", "POSE_OUTPUTS"]
