"""The annotator network f of NeuralAnnot, for both modes.

- **In-the-wild mode**: image crop -> ResNet backbone (torchvision parameter names) -> global average
  pooling -> FC regressor (NeuralAnnot CVPRW 2022, Sec. 3; Three Recipes: "predicting z").
- **MoCap mode**: the image feature concatenated with the GT 3D joints encoded by two FC layers to
  512-d (NeuralAnnot Sec. 3.1); the **3D-joints-only** variant has no image at all (for MoCap sources
  without images, such as the CMU clips).

Outputs: root orientation (6D), body pose as 21 joint rotations in 6D **or** a VPoser latent ``z``
(decoded outside the network by a frozen prior), betas, and the raw camera of the chosen camera
model. The two SMPL hand joints (22, 23) are not predicted and stay zero, as in Pose2Pose
(reference-spec B.2.3). 6D of Zhou et al. (CVPR 2019) with the ``view(-1, 3, 2)`` convention.
"""
from __future__ import annotations

import torch
from torch import nn

from annot.nets.resnet import ResNetBackbone

NUM_BODY_JOINTS = 21  # SMPL joints 1..21; hands 22, 23 are zero-filled
JOINT_FEATURE_DIM = 512
POSE_OUTPUTS = ("rot6d", "vposer")
CAMERA_WIDTHS = {"perspective": 3, "weak_perspective": 3, "d2s": 4}

# 6D (view(3, 2) columns = first two columns of R) of the identity and of a 180-degree rotation
# about X. The latter turns SMPL's Y-up, +Z-facing rest pose upright and facing an OpenCV camera
# (x right, y down, z forward): the natural starting root orientation of a person in a photo.
_ROT6D_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_ROT6D_UPRIGHT_FACING_CAMERA = (1.0, 0.0, 0.0, -1.0, 0.0, 0.0)


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
        self.joint_encoder = None
        feat_dim = self.backbone.out_channels if use_image else 0
        if num_input_joints > 0:
            self.joint_encoder = nn.Sequential(
                nn.Linear(num_input_joints * 3, JOINT_FEATURE_DIM), nn.ReLU(inplace=True),
                nn.Linear(JOINT_FEATURE_DIM, JOINT_FEATURE_DIM), nn.ReLU(inplace=True))
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
        with torch.no_grad():
            root = _ROT6D_UPRIGHT_FACING_CAMERA if upright_init else _ROT6D_IDENTITY
            self.root_head.bias.copy_(torch.tensor(root))
            if self.pose_output == "rot6d":
                self.body_head.bias.copy_(torch.tensor(_ROT6D_IDENTITY).repeat(NUM_BODY_JOINTS))

    def forward(self, img: torch.Tensor | None = None, joints_rel_m: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        feats = []
        if self.backbone is not None:
            if img is None:
                raise ValueError("this annotator encodes images: pass img")
            feats.append(self.backbone(img).mean(dim=(2, 3)))
        if self.joint_encoder is not None:
            if joints_rel_m is None:
                raise ValueError("this annotator encodes GT 3D joints (MoCap mode): pass joints_rel_m")
            feats.append(self.joint_encoder(joints_rel_m.flatten(1)))
        hidden = self.trunk(torch.cat(feats, dim=1))
        body = self.body_head(hidden)
        out = {"root_6d": self.root_head(hidden), "betas": self.betas_head(hidden), "cam_raw": self.cam_head(hidden)}
        if self.pose_output == "rot6d":
            out["body_6d"] = body.view(-1, NUM_BODY_JOINTS, 6)
        else:
            out["z"] = body
        return out
