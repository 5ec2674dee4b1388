"""Network building blocks (plain ``nn.Module``s, no Lightning): the ResNet backbone, SimpleBaseline
``PoseResNet`` (2D pose pretraining), the Pose2Pose network (shared by the annotator f and the
estimator g) and the annotator networks."""
from __future__ import annotations

from annot.nets.annotator import ARCHITECTURES, AnnotatorNet, Pose2PoseAnnotatorNet, build_annotator_net
from annot.nets.pose2pose import Pose2PoseNet, PositionNet, RotationNet, sample_joint_features, soft_argmax_3d
from annot.nets.pose_resnet import PoseResNet
from annot.nets.resnet import (
    DEFAULT_PREFIXES,
    RESNET_SPECS,
    BackboneLoadReport,
    BasicBlock,
    Bottleneck,
    ResNetBackbone,
    load_backbone_weights,
)

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_PREFIXES",
    "RESNET_SPECS",
    "AnnotatorNet",
    "BackboneLoadReport",
    "BasicBlock",
    "Bottleneck",
    "Pose2PoseAnnotatorNet",
    "Pose2PoseNet",
    "PoseResNet",
    "PositionNet",
    "ResNetBackbone",
    "RotationNet",
    "build_annotator_net",
    "load_backbone_weights",
    "sample_joint_features",
    "soft_argmax_3d",
]
