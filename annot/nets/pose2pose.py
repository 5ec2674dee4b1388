"""The Pose2Pose body network: ResNet backbone -> PositionNet (3D heatmap) -> RotationNet (SMPL).

Follows Moon et al., "Accurate 3D Hand Pose Estimation for Whole-Body 3D Human Mesh Estimation"
(Pose2Pose, the body network of NeuralAnnot's "Three Recipes"), as the mks0601
``Hand4Whole_RELEASE`` branch ``Pose2Pose`` builds it: ``main/model.py`` and
``common/nets/{module,layer}.py`` (reference-spec B.2). Shapes for a batch ``B`` of 256x192 crops
and a ResNet-50:

* backbone: ``(B, 3, 256, 192)`` -> ``img_feat`` ``(B, 2048, 8, 6)``;
* PositionNet: 1x1 conv to ``25*8`` channels -> ``heatmap`` ``(B, 25, 8, 8, 6)`` (D, H, W) ->
  soft-argmax-3D -> ``joint_img`` ``(B, 25, 3)`` in heatmap units ``(x, y, z)``;
* RotationNet: global-average-pooled ``img_feat`` -> ``betas`` ``(B, 10)`` and ``cam_raw`` ``(B, 3)``;
  ``Conv1x1(2048->512)+BN+ReLU`` features bilinearly sampled at the (detached) joint ``(x, y)``,
  concatenated with ``joint_img`` -> ``(B, 25, 515)`` -> flattened ``(B, 12875)`` -> ``root_6d``
  ``(B, 6)`` and ``body_6d`` ``(B, 21, 6)`` (SMPL joints 1..21; the hands are not predicted).

Module and parameter names mirror Hand4Whole (``backbone``, ``position_net.conv.0``,
``rotation_net.conv.{0,1}``, ``rotation_net.{root_pose_out,pose_out,shape_out,cam_out}.0``; the
``.0`` because mks0601's ``make_conv_layers`` / ``make_linear_layers`` return ``nn.Sequential``), so a
Hand4Whole ``snapshot_*.pth.tar`` state dict maps onto it by stripping ``module.``. The backbone depth
is configurable (ResNet-18 for fast tests: 512 feature channels instead of 2048).

Two options serve the annotator f of the Three Recipes (supplementary B: "We modified the Pose2Pose
network to predict the latent code of VPoser instead of SMPL pose parameters"; the public analogue is
3DCrowdNet ``common/nets/module.py``, whose RotationNet ``pose_out`` outputs the 32-d VPoser z,
reference-spec C.1), both off by default so the estimator g is Hand4Whole's network unchanged:

* ``pose_output="vposer"``: ``pose_out`` is ``Linear(12875, latent_dim)`` and the output is ``z``
  ``(B, latent_dim)`` instead of ``body_6d`` (the root stays 6D);
* ``cond_dim > 0``: a conditioning vector ``(B, cond_dim)`` (the annotator's encoded GT 3D joints in
  MoCap mode, NeuralAnnot Sec. 3.1) is concatenated to the flattened joint features (root/body heads)
  and to the pooled feature (shape/camera heads).

Used by :mod:`estimators.pose2pose` (re-exported as ``estimators.pose2pose.net``) and by the
annotator (:mod:`annot.nets.annotator`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from annot.keypoints import get_convention
from annot.nets.pose2pose_joints import DEPTH_BINS, POSITION_CONVENTION
from annot.nets.resnet import ResNetBackbone

__all__ = ["soft_argmax_3d", "sample_joint_features", "PositionNet", "RotationNet", "Pose2PoseNet",
           "init_head_weights", "NUM_BODY_JOINTS", "JOINT_FEAT_CHANNELS", "POSE_OUTPUTS"]

#: SMPL body joints whose rotation RotationNet predicts (1..21; 22, 23 = hands are zero).
NUM_BODY_JOINTS = 21
#: Channels of the per-joint image feature of RotationNet.
JOINT_FEAT_CHANNELS = 512
#: Body-pose outputs of RotationNet: 21 x 6D rotations (Pose2Pose) or a VPoser latent (Three Recipes f).
POSE_OUTPUTS = ("rot6d", "vposer")


def soft_argmax_3d(heatmap: Tensor) -> Tensor:
    """Soft-argmax over a 3D heatmap: softmax over all ``D*H*W`` voxels, then expected voxel index.

    Hand4Whole ``common/nets/layer.py``/``module.py`` ``soft_argmax_3d`` (Sun et al., integral
    regression). Coordinates are voxel indices, so a heatmap peaked on voxel ``(d, h, w)`` returns
    ``(w, h, d)``; the range is ``[0, W-1] x [0, H-1] x [0, D-1]``.

    Args:
        heatmap: ``(B, J, D, H, W)`` unnormalised logits.

    Returns:
        ``(B, J, 3)`` ``(x, y, z)`` in heatmap units.

    Raises:
        ValueError: ``heatmap`` is not 5-D.
    """
    if heatmap.ndim != 5:
        raise ValueError(f"soft_argmax_3d: expected (B, J, D, H, W), got {tuple(heatmap.shape)}")
    batch, joints, depth, height, width = heatmap.shape
    prob = F.softmax(heatmap.reshape(batch, joints, -1), dim=2).reshape(heatmap.shape)
    x = (prob.sum(dim=(2, 3)) * torch.arange(width, device=heatmap.device, dtype=prob.dtype)).sum(-1)
    y = (prob.sum(dim=(2, 4)) * torch.arange(height, device=heatmap.device, dtype=prob.dtype)).sum(-1)
    z = (prob.sum(dim=(3, 4)) * torch.arange(depth, device=heatmap.device, dtype=prob.dtype)).sum(-1)
    return torch.stack([x, y, z], dim=-1)


def sample_joint_features(feat: Tensor, joint_xy: Tensor) -> Tensor:
    """Bilinearly sample a feature map at joint positions given in feature-map cells.

    Hand4Whole ``common/nets/module.py::sample_joint_features``: ``x/(W-1)*2-1``, ``y/(H-1)*2-1`` and
    ``grid_sample(align_corners=True)``, so ``x = 0`` and ``x = W-1`` are the centres of the first and
    last cells; outside points read zeros (padding ``"zeros"``).

    Args:
        feat: ``(B, C, H, W)``.
        joint_xy: ``(B, J, 2)`` ``(x, y)`` in cells of ``feat`` (heatmap units).

    Returns:
        ``(B, J, C)``.
    """
    height, width = feat.shape[2:]
    x = joint_xy[..., 0] / (width - 1) * 2 - 1
    y = joint_xy[..., 1] / (height - 1) * 2 - 1
    grid = torch.stack([x, y], dim=-1)[:, :, None, :]                # (B, J, 1, 2)
    sampled = F.grid_sample(feat, grid, align_corners=True)[..., 0]  # (B, C, J)
    return sampled.permute(0, 2, 1).contiguous()


def init_head_weights(module: nn.Module) -> None:
    """Hand4Whole ``init_weights`` for the heads (spec B.2.7): Conv ``N(0, 0.001)``, Linear ``N(0, 0.01)``,
    biases 0, BatchNorm weight 1 and bias 0. Apply with ``head.apply(init_head_weights)``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, std=0.001)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.01)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PositionNet(nn.Module):
    """3D joint localisation by a 1x1 convolution to ``J*D`` channels and soft-argmax (spec B.2.2).

    Args:
        in_channels: backbone channels (2048 for ResNet-50).
        num_joints: PositionNet joints (25, ``pose2pose25``).
        depth_bins: heatmap depth ``D`` (8).

    ``forward(img_feat (B, C, H, W))`` -> ``(joint_img (B, J, 3) heatmap units, heatmap (B, J, D, H, W))``.
    The conv has a bias and no BN/ReLU (``make_conv_layers(..., bnrelu_final=False)``); channel
    ``j*D + d`` is depth slice ``d`` of joint ``j``.
    """

    def __init__(self, in_channels: int = 2048, num_joints: int = 25, depth_bins: int = DEPTH_BINS) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.depth_bins = depth_bins
        self.conv = nn.Sequential(nn.Conv2d(in_channels, num_joints * depth_bins, kernel_size=1))

    def forward(self, img_feat: Tensor) -> tuple[Tensor, Tensor]:
        batch, _, height, width = img_feat.shape
        heatmap = self.conv(img_feat).reshape(batch, self.num_joints, self.depth_bins, height, width)
        return soft_argmax_3d(heatmap), heatmap


class RotationNet(nn.Module):
    """SMPL parameters from pooled and joint-sampled image features (spec B.2.3).

    Args:
        in_channels: backbone channels (2048 for ResNet-50).
        num_joints: PositionNet joints (25).
        num_betas: shape coefficients (10).
        feat_channels: channels of the per-joint feature (512).
        pose_output: ``"rot6d"`` (Pose2Pose: ``pose_out`` gives 21 x 6D) or ``"vposer"`` (Three Recipes
            f / 3DCrowdNet: ``pose_out`` gives a VPoser latent of ``latent_dim``).
        latent_dim: VPoser latent size (32; used with ``pose_output="vposer"``).
        cond_dim: width of an optional conditioning vector concatenated to the flattened joint
            features and to the pooled feature (0 = none, Pose2Pose).
        cam_dim: width of ``cam_out`` (3 = Pose2Pose ``(t_x, t_y, depth logit)``, the ``perspective``
            model of :func:`annot.geometry.cameras.project_camera_model`; 4 for its ``d2s`` model).

    ``forward(img_feat (B, C, H, W), joint_img (B, J, 3), cond (B, cond_dim) or None)`` returns a dict:
    ``betas`` (B, num_betas); ``cam_raw`` (B, cam_dim), for 3 ``(t_x, t_y, depth logit)`` (see
    :func:`annot.geometry.cameras.camera_depth_from_sigmoid`); ``root_6d`` (B, 6); ``body_6d``
    (B, 21, 6) in the Zhou ``view(-1, 3, 2)`` 6D convention, or ``z`` (B, latent_dim) with
    ``pose_output="vposer"``; ``rotation_input`` (B, J*(feat_channels+3) + cond_dim) = 12875 for J = 25
    and no conditioning (per joint: 512 sampled features, then ``(x, y, z)``; the conditioning last).
    Pass ``joint_img`` detached, as Pose2Pose does, so the rotation losses do not move PositionNet
    through the sampling.

    Raises:
        ValueError: unknown ``pose_output``; at run time, ``cond`` missing (or given) against ``cond_dim``.
    """

    def __init__(self, in_channels: int = 2048, num_joints: int = 25, num_betas: int = 10,
                 feat_channels: int = JOINT_FEAT_CHANNELS, pose_output: str = "rot6d", latent_dim: int = 32,
                 cond_dim: int = 0, cam_dim: int = 3) -> None:
        super().__init__()
        if pose_output not in POSE_OUTPUTS:
            raise ValueError(f"RotationNet: pose_output must be one of {POSE_OUTPUTS}, got {pose_output!r}")
        self.pose_output = pose_output
        self.cond_dim = int(cond_dim)
        rot_in = num_joints * (feat_channels + 3) + self.cond_dim
        self.shape_out = nn.Sequential(nn.Linear(in_channels + self.cond_dim, num_betas))
        self.cam_out = nn.Sequential(nn.Linear(in_channels + self.cond_dim, cam_dim))
        self.conv = nn.Sequential(nn.Conv2d(in_channels, feat_channels, kernel_size=1),
                                  nn.BatchNorm2d(feat_channels), nn.ReLU(inplace=True))
        self.root_pose_out = nn.Sequential(nn.Linear(rot_in, 6))
        self.pose_out = nn.Sequential(nn.Linear(rot_in, NUM_BODY_JOINTS * 6 if pose_output == "rot6d" else latent_dim))

    def forward(self, img_feat: Tensor, joint_img: Tensor, cond: Tensor | None = None) -> dict[str, Tensor]:
        if (cond is None) != (self.cond_dim == 0):
            raise ValueError(f"RotationNet: built with cond_dim={self.cond_dim}, "
                             f"got cond={'None' if cond is None else tuple(cond.shape)}")
        batch = img_feat.shape[0]
        pooled = img_feat.mean(dim=(2, 3))
        joint_feat = sample_joint_features(self.conv(img_feat), joint_img[..., :2])
        rotation_input = torch.cat([joint_feat, joint_img], dim=2).reshape(batch, -1)
        if cond is not None:
            pooled = torch.cat([pooled, cond], dim=1)
            rotation_input = torch.cat([rotation_input, cond], dim=1)
        pose = self.pose_out(rotation_input)
        out = {
            "betas": self.shape_out(pooled),
            "cam_raw": self.cam_out(pooled),
            "root_6d": self.root_pose_out(rotation_input),
            "rotation_input": rotation_input,
        }
        if self.pose_output == "rot6d":
            out["body_6d"] = pose.reshape(batch, NUM_BODY_JOINTS, 6)
        else:
            out["z"] = pose
        return out


class Pose2PoseNet(nn.Module):
    """Backbone + PositionNet + RotationNet (Hand4Whole ``Model`` for ``parts='body'``, spec B.2).

    Args:
        backbone_depth: ResNet depth (50 in Pose2Pose; 18 for fast tests).
        num_betas: shape coefficients (10).
        pose_output, latent_dim, cond_dim, cam_dim: the :class:`RotationNet` options (defaults =
            Pose2Pose: 21 x 6D, no conditioning, 3 camera values).

    ``forward(img (B, 3, H, W) RGB in [0, 1], cond (B, cond_dim) or None)`` returns ``img_feat``
    (B, C, H/32, W/32), ``heatmap`` (B, 25, 8, H/32, W/32), ``joint_img`` (B, 25, 3) heatmap units and
    the :class:`RotationNet` outputs. The heads are initialised as :func:`init_head_weights`; the
    backbone as torchvision (load ImageNet or SimpleBaseline weights with
    :func:`annot.nets.resnet.load_backbone_weights`).
    """

    def __init__(self, backbone_depth: int = 50, num_betas: int = 10, pose_output: str = "rot6d",
                 latent_dim: int = 32, cond_dim: int = 0, cam_dim: int = 3) -> None:
        super().__init__()
        num_joints = get_convention(POSITION_CONVENTION).num_joints
        self.backbone = ResNetBackbone(backbone_depth)
        channels = self.backbone.out_channels
        self.position_net = PositionNet(channels, num_joints)
        self.rotation_net = RotationNet(channels, num_joints, num_betas, pose_output=pose_output,
                                        latent_dim=latent_dim, cond_dim=cond_dim, cam_dim=cam_dim)
        self.position_net.apply(init_head_weights)
        self.rotation_net.apply(init_head_weights)

    def forward(self, img: Tensor, cond: Tensor | None = None) -> dict[str, Tensor]:
        img_feat = self.backbone(img)
        joint_img, heatmap = self.position_net(img_feat)
        out = self.rotation_net(img_feat, joint_img.detach(), cond)
        out.update(img_feat=img_feat, heatmap=heatmap, joint_img=joint_img)
        return out
