"""The annotator network f of NeuralAnnot, in-the-wild mode (first version).

Image crop -> ResNet backbone (torchvision parameter names) -> global average pooling -> FC regressor
-> root orientation (6D), 21 body joint rotations (6D), betas (10) and a camera (3 values). The two
SMPL hand joints (22, 23) are not predicted and stay zero, as in Pose2Pose (reference-spec B.2.3).

Follows NeuralAnnot (Moon et al., CVPRW 2022, Sec. 3: "ResNet-50 ... global average pooling ...
fully connected layers"); the 6D output of Zhou et al. (CVPR 2019) with the ``view(-1, 3, 2)``
convention; the camera of Pose2Pose (``get_camera_trans``, reference-spec B.2.5).
"""
from __future__ import annotations

import torch
from torch import nn

from annot.nets.resnet import ResNetBackbone

NUM_BODY_JOINTS = 21  # SMPL joints 1..21; hands 22, 23 are zero-filled

# 6D (view(3, 2) columns = first two columns of R) of the identity and of a 180-degree rotation
# about X. The latter turns SMPL's Y-up, +Z-facing rest pose upright and facing an OpenCV camera
# (x right, y down, z forward): the natural starting root orientation of a person in a photo.
_ROT6D_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_ROT6D_UPRIGHT_FACING_CAMERA = (1.0, 0.0, 0.0, -1.0, 0.0, 0.0)


class AnnotatorNet(nn.Module):
    """Backbone + global pooling + FC regressor for SMPL parameters and camera.

    Args:
        backbone_depth: ResNet depth (18, 34, 50, 101, 152).
        hidden_dim: width of the hidden FC layer of the regressor.
        num_betas: number of shape coefficients (10).

    Inputs: ``img`` (B, 3, H, W) float RGB in [0, 1] (mks0601 convention, no mean/std).
    Outputs (dict):
        ``root_6d`` (B, 6), ``body_6d`` (B, 21, 6): rotations in 6D (Zhou et al.), camera frame;
        ``betas`` (B, num_betas); ``cam_raw`` (B, 3): (t_x, t_y) in metres and the pre-sigmoid depth
        logit (see :func:`annot.geometry.cameras.camera_depth_from_sigmoid`).
    """

    def __init__(self, backbone_depth: int = 50, hidden_dim: int = 1024, num_betas: int = 10) -> None:
        super().__init__()
        self.backbone = ResNetBackbone(backbone_depth)
        feat_dim = self.backbone.out_channels
        self.num_betas = num_betas
        self.trunk = nn.Sequential(nn.Linear(feat_dim, hidden_dim), nn.ReLU(inplace=True))
        self.root_head = nn.Linear(hidden_dim, 6)
        self.body_head = nn.Linear(hidden_dim, NUM_BODY_JOINTS * 6)
        self.betas_head = nn.Linear(hidden_dim, num_betas)
        self.cam_head = nn.Linear(hidden_dim, 3)
        self._init_heads()

    def _init_heads(self) -> None:
        """Pose2Pose-style small init (N(0, 0.01)) with biases at a plausible starting point:
        upright root facing the camera, identity body rotations, mean shape, centred camera."""
        for layer in (self.trunk[0], self.root_head, self.body_head, self.betas_head, self.cam_head):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.root_head.bias.copy_(torch.tensor(_ROT6D_UPRIGHT_FACING_CAMERA))
            self.body_head.bias.copy_(torch.tensor(_ROT6D_IDENTITY).repeat(NUM_BODY_JOINTS))

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.backbone(img).mean(dim=(2, 3))
        hidden = self.trunk(feat)
        return {
            "root_6d": self.root_head(hidden),
            "body_6d": self.body_head(hidden).view(-1, NUM_BODY_JOINTS, 6),
            "betas": self.betas_head(hidden),
            "cam_raw": self.cam_head(hidden),
        }
