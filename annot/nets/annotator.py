"""The annotator network f of NeuralAnnot, for both modes, in two architectures.

Architectures (``model.architecture``, :func:`build_annotator_net`):

- ``"regressor"`` (:class:`AnnotatorNet`): ResNet -> global average pooling -> FC regressor;
- ``"pose2pose"`` (:class:`Pose2PoseAnnotatorNet`): the Pose2Pose network of :mod:`annot.nets.pose2pose`
  (PositionNet 3D heatmap + RotationNet on joint-sampled features), whose ``pose_out`` predicts the
  VPoser latent z with a VPoser prior: the annotator f of the Three Recipes (supplementary B, "We
  modified the Pose2Pose network to predict the latent code of VPoser instead of SMPL pose
  parameters"). Image modes only; the 3D-joints-only MoCap variant always uses the regressor.

Modes:

- **In-the-wild mode**: image crop in (NeuralAnnot CVPRW 2022, Sec. 3; Three Recipes: "predicting z").
- **MoCap mode**: the image feature concatenated with the GT 3D joints encoded by two FC layers to
  512-d (NeuralAnnot Sec. 3.1; for ``pose2pose`` see :class:`Pose2PoseAnnotatorNet` for where). The same
  conditioning input carries the 2D keypoint features of an in-the-wild f with ``kp2d_input`` (beyond the
  paper, :func:`annot.annotator.module.kp2d_input_features`: (x, y, label) a joint instead of (x, y, z)); the
  **3D-joints-only** variant has no image at all (for MoCap sources without images, such as the CMU
  clips).

Outputs: root orientation (6D), body pose as 21 joint rotations in 6D **or** a VPoser latent ``z``
(decoded outside the network by a frozen prior), betas, and the raw camera of the chosen camera
model. The two SMPL hand joints (22, 23) are not predicted and stay zero, as in Pose2Pose
(reference-spec B.2.3). 6D of Zhou et al. (CVPR 2019) with the ``view(-1, 3, 2)`` convention.
"""
from __future__ import annotations

import torch
from torch import nn

from annot.nets.pose2pose import NUM_BODY_JOINTS, POSE_OUTPUTS, Pose2PoseNet
from annot.nets.resnet import ResNetBackbone

__all__ = ["ARCHITECTURES", "AnnotatorNet", "Pose2PoseAnnotatorNet", "build_annotator_net", "joint_encoder_layers"]

ARCHITECTURES = ("regressor", "pose2pose")
JOINT_FEATURE_DIM = 512
CAMERA_WIDTHS = {"perspective": 3, "weak_perspective": 3, "d2s": 4}

# 6D (view(3, 2) columns = first two columns of R) of the identity and of a 180-degree rotation
# about X. The latter turns SMPL's Y-up, +Z-facing rest pose upright and facing an OpenCV camera
# (x right, y down, z forward): the natural starting root orientation of a person in a photo.
_ROT6D_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_ROT6D_UPRIGHT_FACING_CAMERA = (1.0, 0.0, 0.0, -1.0, 0.0, 0.0)


def joint_encoder_layers(num_input_joints: int) -> nn.Sequential:
    """NeuralAnnot MoCap-mode encoder (Sec. 3.1): (B, J*3) root-relative GT joints (m) -> two FC layers
    with ReLU -> (B, 512)."""
    return nn.Sequential(
        nn.Linear(num_input_joints * 3, JOINT_FEATURE_DIM), nn.ReLU(inplace=True),
        nn.Linear(JOINT_FEATURE_DIM, JOINT_FEATURE_DIM), nn.ReLU(inplace=True))


def _init_pose_biases(root_layer: nn.Linear, body_layer: nn.Linear, pose_output: str, upright_init: bool) -> None:
    """Start at a plausible pose: root bias upright facing the camera (or identity), body bias the
    identity 6D of every joint (``rot6d``; a VPoser z stays at bias 0 = the prior's mean)."""
    with torch.no_grad():
        root = _ROT6D_UPRIGHT_FACING_CAMERA if upright_init else _ROT6D_IDENTITY
        root_layer.bias.copy_(torch.tensor(root))
        if pose_output == "rot6d":
            body_layer.bias.copy_(torch.tensor(_ROT6D_IDENTITY).repeat(NUM_BODY_JOINTS))


class AnnotatorNet(nn.Module):
    """Encoders (image and/or GT 3D joints) + FC regressor for SMPL parameters and camera.

    Args:
        backbone_depth: ResNet depth (18, 34, 50, 101, 152); ignored when ``use_image`` is False.
        hidden_dim: width of the hidden FC layer of the regressor.
        num_betas: number of shape coefficients (10).
        use_image: encode the image crop (False = the 3D-joints-only MoCap variant).
        num_input_joints: number of GT 3D joints fed to the MoCap-mode encoder (0 = none, in-the-wild).
        pose_output: ``"rot6d"`` (21 x 6D) or ``"vposer"`` (a ``latent_dim`` code).
        latent_dim: VPoser latent size (32).
        camera_model: ``"perspective"``, ``"weak_perspective"`` or ``"d2s"`` (sets the camera width).
        upright_init: start the root orientation upright facing the camera (images); False starts at
            identity (Y-up world frames such as the CMU clips).

    Inputs: ``img`` (B, 3, H, W) float RGB in [0, 1] or None; ``joints_rel_m`` (B, J, 3) root-relative
    GT joints in metres (masked joints set to 0) or None.
    Outputs (dict): ``root_6d`` (B, 6); ``body_6d`` (B, 21, 6) or ``z`` (B, latent_dim); ``betas``
    (B, num_betas); ``cam_raw`` (B, C).

    Raises:
        ValueError: neither image nor joints as input, an unknown ``pose_output`` / ``camera_model``,
            or a missing input at run time.
    """

    def __init__(self, backbone_depth: int = 50, hidden_dim: int = 1024, num_betas: int = 10,
                 use_image: bool = True, num_input_joints: int = 0, pose_output: str = "rot6d",
                 latent_dim: int = 32, camera_model: str = "perspective", upright_init: bool = True) -> None:
        super().__init__()
        if not use_image and num_input_joints <= 0:
            raise ValueError("AnnotatorNet needs an image, GT 3D joints, or both as input")
        if pose_output not in POSE_OUTPUTS:
            raise ValueError(f"pose_output must be one of {POSE_OUTPUTS}, got {pose_output!r}")
        if camera_model not in CAMERA_WIDTHS:
            raise ValueError(f"camera_model must be one of {tuple(CAMERA_WIDTHS)}, got {camera_model!r}")
        self.backbone = ResNetBackbone(backbone_depth) if use_image else None
        self.joint_encoder = joint_encoder_layers(num_input_joints) if num_input_joints > 0 else None
        feat_dim = self.backbone.out_channels if use_image else 0
        if num_input_joints > 0:
            feat_dim += JOINT_FEATURE_DIM
        self.pose_output = pose_output
        self.trunk = nn.Sequential(nn.Linear(feat_dim, hidden_dim), nn.ReLU(inplace=True))
        self.root_head = nn.Linear(hidden_dim, 6)
        self.body_head = nn.Linear(hidden_dim, NUM_BODY_JOINTS * 6 if pose_output == "rot6d" else latent_dim)
        self.betas_head = nn.Linear(hidden_dim, num_betas)
        self.cam_head = nn.Linear(hidden_dim, CAMERA_WIDTHS[camera_model])
        self._init_heads(upright_init)

    def _init_heads(self, upright_init: bool) -> None:
        """Pose2Pose-style small init (N(0, 0.01)) with biases at a plausible starting point: root
        upright and facing the camera (or identity), identity body rotations / z = 0, mean shape."""
        for layer in (self.trunk[0], self.root_head, self.body_head, self.betas_head, self.cam_head):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        _init_pose_biases(self.root_head, self.body_head, self.pose_output, upright_init)

    def forward(self, img: torch.Tensor | None = None,
                joints_rel_m: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        feats = []
        if self.backbone is not None:
            if img is None:
                raise ValueError("this annotator encodes images: pass img")
            feats.append(self.backbone(img).mean(dim=(2, 3)))
        if self.joint_encoder is not None:
            if joints_rel_m is None:
                raise ValueError("this annotator is conditioned on joints (GT 3D joints in MoCap mode, the 2D "
                                 "keypoint features with kp2d_input): pass joints_rel_m")
            feats.append(self.joint_encoder(joints_rel_m.flatten(1)))
        hidden = self.trunk(torch.cat(feats, dim=1))
        body = self.body_head(hidden)
        out = {"root_6d": self.root_head(hidden), "betas": self.betas_head(hidden), "cam_raw": self.cam_head(hidden)}
        if self.pose_output == "rot6d":
            out["body_6d"] = body.view(-1, NUM_BODY_JOINTS, 6)
        else:
            out["z"] = body
        return out


class Pose2PoseAnnotatorNet(Pose2PoseNet):
    """The Three Recipes annotator f: Pose2Pose (:class:`annot.nets.pose2pose.Pose2PoseNet`) predicting
    root 6D + VPoser z (or 21 x 6D) + betas + camera, optionally conditioned on GT 3D joints.

    Parameter names are the Pose2Pose / Hand4Whole ones (``backbone.*``, ``position_net.conv.0.*``,
    ``rotation_net.{conv,root_pose_out,pose_out,shape_out,cam_out}.*``), identical to the estimator's
    :class:`estimators.pose2pose.Pose2PoseModule` ``net``, plus ``joint_encoder.*`` in MoCap mode.

    MoCap mode (``num_input_joints > 0``): the GT joints are encoded by NeuralAnnot's two FC layers to
    512-d and that vector is concatenated both to RotationNet's flattened joint features (root and body
    heads: GT joints determine the articulation) and to the pooled image feature (shape and camera
    heads: bone lengths inform the shape); PositionNet still sees the image only.

    Initialisation: Hand4Whole's (:func:`annot.nets.pose2pose.init_head_weights`), except the biases of
    ``root_pose_out`` / ``pose_out``, which start at the regressor's plausible pose (upright facing the
    camera, identity body rotations or z = 0) instead of 0.

    Args:
        backbone_depth: ResNet depth (50 in Pose2Pose).
        num_betas: shape coefficients (10).
        num_input_joints: GT 3D joints of the MoCap-mode input (0 = in-the-wild).
        pose_output: ``"rot6d"`` or ``"vposer"`` (a ``latent_dim`` code from ``pose_out``).
        latent_dim: VPoser latent size (32).
        camera_model: sets the width of ``cam_out``: 3 for ``perspective`` (the Pose2Pose camera) and
            ``weak_perspective``, 4 for ``d2s``.
        upright_init: root bias upright facing the camera (True) or identity.

    Inputs: ``img`` (B, 3, H, W) float RGB in [0, 1]; ``joints_rel_m`` (B, J, 3) root-relative GT joints
    in metres (MoCap mode) or None. Outputs (dict): ``root_6d`` (B, 6); ``body_6d`` (B, 21, 6) or ``z``
    (B, latent_dim); ``betas`` (B, num_betas); ``cam_raw`` (B, C); ``joint_img`` (B, 25, 3) PositionNet
    joints (``pose2pose25``) in heatmap units; ``heatmap`` (B, 25, D, H/32, W/32); ``img_feat``;
    ``rotation_input``.

    Raises:
        ValueError: an unknown ``pose_output`` / ``camera_model``, or a missing input at run time.
    """

    def __init__(self, backbone_depth: int = 50, num_betas: int = 10, num_input_joints: int = 0,
                 pose_output: str = "rot6d", latent_dim: int = 32, camera_model: str = "perspective",
                 upright_init: bool = True) -> None:
        if camera_model not in CAMERA_WIDTHS:
            raise ValueError(f"camera_model must be one of {tuple(CAMERA_WIDTHS)}, got {camera_model!r}")
        super().__init__(backbone_depth, num_betas, pose_output=pose_output, latent_dim=latent_dim,
                         cond_dim=JOINT_FEATURE_DIM if num_input_joints > 0 else 0,
                         cam_dim=CAMERA_WIDTHS[camera_model])
        self.pose_output = pose_output
        self.joint_encoder = joint_encoder_layers(num_input_joints) if num_input_joints > 0 else None
        _init_pose_biases(self.rotation_net.root_pose_out[0], self.rotation_net.pose_out[0], pose_output, upright_init)

    def forward(self, img: torch.Tensor | None = None,
                joints_rel_m: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if img is None:
            raise ValueError("the pose2pose annotator encodes images: pass img")
        cond = None
        if self.joint_encoder is not None:
            if joints_rel_m is None:
                raise ValueError("this annotator is conditioned on joints (GT 3D joints in MoCap mode, the 2D "
                                 "keypoint features with kp2d_input): pass joints_rel_m")
            cond = self.joint_encoder(joints_rel_m.flatten(1))
        return super().forward(img, cond)


def build_annotator_net(architecture: str = "regressor", backbone_depth: int = 50, hidden_dim: int = 1024,
                        num_betas: int = 10, use_image: bool = True, num_input_joints: int = 0,
                        pose_output: str = "rot6d", latent_dim: int = 32, camera_model: str = "perspective",
                        upright_init: bool = True) -> nn.Module:
    """The annotator network of ``architecture`` (module docstring); arguments as :class:`AnnotatorNet`
    (``hidden_dim`` is the regressor's only; ``pose2pose`` needs ``use_image``).

    Raises:
        ValueError: unknown ``architecture``, or ``pose2pose`` without images (the 3D-joints-only MoCap
            variant uses the regressor).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"model.architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if architecture == "regressor":
        return AnnotatorNet(backbone_depth, hidden_dim, num_betas, use_image=use_image,
                            num_input_joints=num_input_joints, pose_output=pose_output, latent_dim=latent_dim,
                            camera_model=camera_model, upright_init=upright_init)
    if not use_image:
        raise ValueError("architecture 'pose2pose' needs image input; the 3D-joints-only MoCap mode uses 'regressor'")
    return Pose2PoseAnnotatorNet(backbone_depth, num_betas, num_input_joints=num_input_joints,
                                 pose_output=pose_output, latent_dim=latent_dim, camera_model=camera_model,
                                 upright_init=upright_init)
