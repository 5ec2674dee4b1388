"""The hand annotator f_hand: network and LightningModule, in MoCap and in-the-wild modes (expressive NeuralAnnot,
section 4: "part annotators" trained with Algorithm 1; issue #16 item 3).

Network (:class:`HandAnnotatorNet`): our ResNet (:class:`annot.nets.resnet.ResNetBackbone`, ResNet-18 on a
``crop_size`` square crop for the CPU budget) -> global average pooling [+ the conditioning joints encoded by
NeuralAnnot's two FC layers, :func:`annot.nets.annotator.joint_encoder_layers`] -> FC -> heads:

- MANO global rotation, 6D (Zhou et al.; :func:`annot.geometry.rotations.rot6d_to_rotmat`);
- hand pose: 15 finger rotations in 6D (``pose_repr="rot6d"``) or ``num_pca_comps`` coefficients of the model's
  pose PCA (``pose_repr="pca"``), both relative to MANO's ``hands_mean`` (``smplx.MANO`` with ``flat_hand_mean=False``);
- betas (10);
- a perspective crop camera (t_x, t_y, depth logit): Pose2Pose's camera with Hand4Whole's hand depth range
  ``camera_3d_size = 0.4 m`` (:func:`annot.geometry.cameras.project_camera_model`).

Modes (``mode``):

- ``"mocap"``: crop + the GT 3D hand keypoints (21 ``hand21`` points, wrist-relative, virtual crop frame, metres);
  loss = L1 on the wrist-relative 3D keypoints (metres) [+ the 2D term, ``mocap_kp2d``] + L2 regularisers;
- ``"itw"``: crop [+ its annotated 2D keypoints, ``kp2d_input``: beyond the paper, as the body annotator's
  :func:`annot.annotator.module.kp2d_input_features`]; loss = visibility-masked L1 on the projected 21 keypoints in
  crop-normalised units (half the crop side = 1, SPIN's [-1, 1]) + L2 on the pose (rotation vectors or PCA
  coefficients) and betas; samples with 3D keypoints add the 3D L1, samples with a theta* (the auxiliary set in
  Algorithm 1's stage (b)) add an L1 to theta* (rotation matrices of the global and 15 finger rotations, and betas;
  SPIN's and the body annotator's choice).

Frames and units: predictions live in the crop's *virtual camera* (:mod:`annot.hands.crops`; OpenCV axes, metres;
focal :data:`annot.geometry.cameras.VIRTUAL_FOCAL_PX`, principal point at the crop centre); the model is the right
MANO (left hands come flipped, :mod:`annot.hands.mirror`). The module never touches files.
"""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from annot.annotator.losses import l2_regulariser, masked_l1, masked_l1_kp2d
from annot.annotator.module import kp2d_input_features
from annot.body_models.wholebody import Hand21, load_mano
from annot.geometry.cameras import project_camera_model
from annot.geometry.rotations import rot6d_to_rotmat, rotmat_to_rotvec, rotvec_to_rotmat
from annot.nets.annotator import JOINT_FEATURE_DIM, joint_encoder_layers
from annot.nets.resnet import ResNetBackbone
from annot.optim import adam

MODES = ("itw", "mocap")
POSE_REPRS = ("rot6d", "pca")
NUM_HAND_KEYPOINTS = 21
NUM_FINGER_JOINTS = 15
#: Hand4Whole's ``camera_3d_size`` of the hand branch, metres: the depth logit spans (0, f * 0.4 / S).
HAND_CAMERA_3D_SIZE_M = 0.4
_ROT6D_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


class HandAnnotatorNet(nn.Module):
    """ResNet + [joint encoder] + FC heads (module docstring).

    Args:
        backbone_depth: ResNet depth (18 by default).
        hidden_dim: width of the FC layer.
        num_betas: shape coefficients.
        pose_dim: width of the pose head: 15 x 6 (``rot6d``) or the number of PCA coefficients.
        num_input_joints: joints of the conditioning input (21, or 0 for none).

    Inputs: ``img`` (B, 3, S, S) float RGB in [0, 1]; ``cond`` (B, J, 3) or None.
    Outputs: ``root_6d`` (B, 6), ``pose_raw`` (B, pose_dim), ``betas`` (B, num_betas), ``cam_raw`` (B, 3).
    """

    def __init__(self, backbone_depth: int = 18, hidden_dim: int = 512, num_betas: int = 10,
                 pose_dim: int = NUM_FINGER_JOINTS * 6, num_input_joints: int = 0, rot6d_pose: bool = True) -> None:
        super().__init__()
        self.backbone = ResNetBackbone(backbone_depth)
        self.joint_encoder = joint_encoder_layers(num_input_joints) if num_input_joints > 0 else None
        feat = self.backbone.out_channels + (JOINT_FEATURE_DIM if num_input_joints > 0 else 0)
        self.trunk = nn.Sequential(nn.Linear(feat, hidden_dim), nn.ReLU(inplace=True))
        self.root_head = nn.Linear(hidden_dim, 6)
        self.pose_head = nn.Linear(hidden_dim, pose_dim)
        self.betas_head = nn.Linear(hidden_dim, num_betas)
        self.cam_head = nn.Linear(hidden_dim, 3)
        for layer in (self.trunk[0], self.root_head, self.pose_head, self.betas_head, self.cam_head):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():  # start at the identity rotation and the mean hand
            self.root_head.bias.copy_(torch.tensor(_ROT6D_IDENTITY))
            if rot6d_pose:
                self.pose_head.bias.copy_(torch.tensor(_ROT6D_IDENTITY).repeat(pose_dim // 6))

    def forward(self, img: Tensor, cond: Tensor | None = None) -> dict[str, Tensor]:
        feats = [self.backbone(img).mean(dim=(2, 3))]
        if self.joint_encoder is not None:
            if cond is None:
                raise ValueError("this hand annotator is conditioned on joints (GT 3D keypoints in MoCap mode, 2D "
                                 "keypoint features with kp2d_input): pass cond")
            feats.append(self.joint_encoder(cond.flatten(1)))
        hidden = self.trunk(torch.cat(feats, dim=1))
        return {"root_6d": self.root_head(hidden), "pose_raw": self.pose_head(hidden),
                "betas": self.betas_head(hidden), "cam_raw": self.cam_head(hidden)}


class HandAnnotatorModule(pl.LightningModule):
    """The hand annotator as a Lightning system (module docstring).

    Args:
        mode: ``"itw"`` or ``"mocap"``.
        mano_path: right-hand MANO file (stock ``smplx.MANO``; the free stand-in by default).
        pose_repr: ``"rot6d"`` (15 x 6D) or ``"pca"`` (``num_pca_comps`` coefficients of the model's pose PCA;
            at most what the file holds, 6 for the free stand-in).
        backbone_depth, hidden_dim, num_betas, crop_size: network and input (S x S crops).
        kp2d_input, kp2d_input_jitter, kp2d_input_dropout: in-the-wild mode only: condition on the annotated 2D
            keypoints (jittered by ``jitter`` x S pixels and dropped with probability ``dropout`` in training).
        w_kp2d, w_joints3d, w_theta: weights of the 2D L1 (half-crop units), 3D L1 (metres) and L1-to-theta* terms.
        w_pose_l2, w_betas_l2: regulariser weights (per-sample squared norms).
        mocap_kp2d: add the 2D term in MoCap mode (it trains the camera head).
        lr: Adam learning rate.
        seed: seeds the keypoint-input noise (with the global step).

    Batches (dicts, :class:`annot.hands.algorithm.HandCropDataset`): ``img`` (B, S, S, 3) uint8, ``kp2d_px``
    (B, 21, 2) crop pixels, ``kp2d_mask`` (B, 21), ``joints_rel_m`` (B, 21, 3) + ``joints_mask`` (B, 21),
    ``theta_valid`` (B,) + ``theta_global_rotvec`` (B, 3), ``theta_hand_pose`` (B, 15, 3), ``theta_betas`` (B, 10).

    Raises:
        ValueError: unknown mode / pose representation, ``kp2d_input`` outside the in-the-wild mode, or more PCA
            coefficients than the model file holds.
    """

    def __init__(self, mode: str = "itw", mano_path: str = "body_models/free/FREE_ANNY_MANO_RIGHT.pkl",
                 pose_repr: str = "rot6d", num_pca_comps: int = 6, backbone_depth: int = 18, hidden_dim: int = 512,
                 num_betas: int = 10, crop_size: int = 128, kp2d_input: bool = False, kp2d_input_jitter: float = 0.0,
                 kp2d_input_dropout: float = 0.0, w_kp2d: float = 1.0, w_joints3d: float = 10.0,
                 w_theta: float = 1.0, w_pose_l2: float = 1e-3, w_betas_l2: float = 1e-3, mocap_kp2d: bool = True,
                 lr: float = 1e-3, seed: int = 0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"hand annotator mode must be one of {MODES}, got {mode!r}")
        if pose_repr not in POSE_REPRS:
            raise ValueError(f"hand annotator pose_repr must be one of {POSE_REPRS}, got {pose_repr!r}")
        if kp2d_input and mode != "itw":
            raise ValueError(f"kp2d_input is an in-the-wild-mode input; mode {mode!r} encodes GT 3D keypoints")
        self.save_hyperparameters()
        self.mano = load_mano(mano_path, is_rhand=True, num_betas=num_betas)
        for p in self.mano.parameters():
            p.requires_grad_(False)
        self.hand21 = Hand21(self.mano)
        if pose_repr == "pca":
            from annot.hands.synthetic import hand_pose_components

            comps = hand_pose_components(self.mano)
            if num_pca_comps > comps.shape[0]:
                raise ValueError(f"{mano_path}: holds {comps.shape[0]} pose PCA directions, num_pca_comps="
                                 f"{num_pca_comps}")
            self.register_buffer("pca_components", comps[:num_pca_comps].clone())
        pose_dim = NUM_FINGER_JOINTS * 6 if pose_repr == "rot6d" else num_pca_comps
        conditioned = mode == "mocap" or kp2d_input
        self.net = HandAnnotatorNet(backbone_depth, hidden_dim, num_betas, pose_dim,
                                    NUM_HAND_KEYPOINTS if conditioned else 0, rot6d_pose=pose_repr == "rot6d")

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.hparams.crop_size), int(self.hparams.crop_size)

    # ------------------------------------------------------------------ forward
    def forward(self, img: Tensor, cond: Tensor | None = None) -> dict[str, Tensor]:
        """Predict MANO (right hand) in the crop's virtual camera.

        Args:
            img: (B, 3, S, S) float RGB in [0, 1].
            cond: (B, 21, 3) wrist-relative GT 3D keypoints, metres (MoCap mode) or :func:`kp2d_input_features`
                (``kp2d_input``), else None.

        Returns:
            ``global_rotvec`` (B, 3) and ``hand_pose_rotvec`` (B, 15, 3) axis-angle (radians; the pose relative to
            ``hands_mean``), ``pose_coeffs`` (B, C) with ``pose_repr="pca"``, ``betas`` (B, 10), ``joints_rel_m``
            (B, 21, 3) wrist-relative ``hand21`` keypoints (metres, virtual frame), ``wrist_cam_m`` (B, 3), ``transl_m``
            (B, 3) MANO ``transl`` in the virtual camera, ``kp2d_pred_px`` (B, 21, 2) crop pixels.
        """
        out = self.net(img, cond)
        batch = img.shape[0]
        global_rotvec = rotmat_to_rotvec(rot6d_to_rotmat(out["root_6d"]))
        pred: dict[str, Tensor] = {}
        if self.hparams.pose_repr == "rot6d":
            hand_pose = rotmat_to_rotvec(rot6d_to_rotmat(out["pose_raw"].reshape(batch, NUM_FINGER_JOINTS, 6)))
        else:
            pred["pose_coeffs"] = out["pose_raw"]
            hand_pose = (out["pose_raw"] @ self.pca_components).reshape(batch, NUM_FINGER_JOINTS, 3)
        mano = self.mano(global_orient=global_rotvec, hand_pose=hand_pose.reshape(batch, -1), betas=out["betas"])
        kps = self.hand21(mano.joints, mano.vertices)
        rel = kps - kps[:, :1]
        kp2d, _, wrist_cam = project_camera_model(rel, out["cam_raw"], "perspective", self.input_hw,
                                                  camera_3d_size_m=HAND_CAMERA_3D_SIZE_M)
        pred.update(global_rotvec=global_rotvec, hand_pose_rotvec=hand_pose, betas=out["betas"], joints_rel_m=rel,
                    wrist_cam_m=wrist_cam, transl_m=wrist_cam - kps[:, 0], kp2d_pred_px=kp2d)
        return pred

    def predict_batch(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """:meth:`forward` on a batch: the crop plus the mode's conditioning input (no noise in eval)."""
        hp = self.hparams
        img = batch["img"].permute(0, 3, 1, 2).float() / 255.0
        cond = None
        if hp.mode == "mocap":
            cond = batch["joints_rel_m"] * batch["joints_mask"][..., None]
        elif hp.kp2d_input:
            jitter, dropout = (hp.kp2d_input_jitter, hp.kp2d_input_dropout) if self.training else (0.0, 0.0)
            gen = torch.Generator().manual_seed(int(hp.seed) * 1_000_003 + int(self.global_step))
            cond = kp2d_input_features(batch["kp2d_px"], batch["kp2d_mask"], self.input_hw, jitter, dropout, gen)
        return self(img, cond)

    # ------------------------------------------------------------------ training
    def losses(self, pred: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        """The loss terms of the mode (module docstring) and their weighted sum ``total``."""
        hp = self.hparams
        terms: dict[str, Tensor] = {}
        if hp.mode == "itw" or hp.mocap_kp2d:
            half = hp.crop_size / 2.0
            terms["kp2d"] = hp.w_kp2d * masked_l1_kp2d(pred["kp2d_pred_px"], batch["kp2d_px"],
                                                       batch["kp2d_mask"].float(), (half, half))
        if "joints_mask" in batch and bool(batch["joints_mask"].any()):
            terms["joints3d"] = hp.w_joints3d * masked_l1(pred["joints_rel_m"], batch["joints_rel_m"],
                                                          batch["joints_mask"].float())
        if hp.mode == "itw" and "theta_valid" in batch and bool(batch["theta_valid"].any()):
            target = torch.cat([rotvec_to_rotmat(torch.cat([batch["theta_global_rotvec"][:, None],
                                                            batch["theta_hand_pose"]], 1)).flatten(1),
                                batch["theta_betas"]], dim=1)
            mine = torch.cat([rotvec_to_rotmat(torch.cat([pred["global_rotvec"][:, None], pred["hand_pose_rotvec"]],
                                                         1)).flatten(1), pred["betas"]], dim=1)
            valid = batch["theta_valid"].float()[:, None].expand_as(target)
            terms["theta"] = hp.w_theta * masked_l1(mine, target, valid)
        pose = pred["pose_coeffs"] if "pose_coeffs" in pred else pred["hand_pose_rotvec"]
        terms["pose_l2"] = hp.w_pose_l2 * l2_regulariser(pose)
        terms["betas_l2"] = hp.w_betas_l2 * l2_regulariser(pred["betas"])
        terms["total"] = sum(terms.values())
        return terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        terms = self.losses(self.predict_batch(batch), batch)
        bsz = batch["img"].shape[0]
        for name, value in terms.items():
            self.log(f"train/loss/{name}", value, prog_bar=name == "total", batch_size=bsz)
        return terms["total"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.net.parameters(), lr=self.hparams.lr)


__all__ = ["HAND_CAMERA_3D_SIZE_M", "HandAnnotatorModule", "HandAnnotatorNet", "MODES", "POSE_REPRS"]
