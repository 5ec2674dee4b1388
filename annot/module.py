"""AnnotatorModule: the LightningModule that trains the annotator f and predicts pseudo-GTs.

NeuralAnnot's protocol (Moon et al., CVPRW 2022): f is trained on a dataset and then run in
``predict`` on that same dataset; its predictions are the pseudo-GTs. This first version is the
in-the-wild mode: loss = visibility-masked L1 between projected COCO joints and GT 2D keypoints
+ L2 regularisers on body pose and betas (weights from config).

Frames: the network predicts SMPL parameters in the *crop camera* frame (OpenCV axes: x right,
y down, z forward; metres), with the Pose2Pose virtual focal length (5000 px) on the crop. The
module never touches files; :mod:`annot.export` maps predictions to the original image camera.
"""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from annot.body_models import BodyModel
from annot.geometry.cameras import camera_depth_from_sigmoid, crop_camera, perspective_project
from annot.geometry.rotations import rot6d_to_rotmat, rotmat_to_rotvec
from annot.losses import kp2d_error_px, l2_regulariser, masked_l1_kp2d
from annot.nets.annotator import AnnotatorNet

KP_CONVENTION = "coco17"


class AnnotatorModule(pl.LightningModule):
    """Annotator f (in-the-wild mode) as a Lightning system.

    Args:
        body_model_type: ``"free"`` or ``"smpl"`` (see :class:`annot.config.BodyModelConfig`).
        body_model_gender: ``"neutral"``, ``"male"`` or ``"female"``.
        body_model_path: explicit model file/folder or ``None`` (resolver order applies).
        backbone_depth: ResNet depth.
        backbone_weights: optional checkpoint for the backbone (torchvision key layout).
        hidden_dim: width of the regressor's hidden layer.
        num_betas: number of shape coefficients.
        input_hw: crop (height, width) in pixels.
        w_kp2d, w_pose_l2, w_betas_l2: loss weights.
        lr, weight_decay, lr_decay_steps, lr_decay_factor: Adam and its step decay (optimiser steps).
        config: the resolved run config, stored in the checkpoint's hyper-parameters so that a
            checkpoint describes itself; not used otherwise.

    Batches are :class:`annot.data.sample.Sample` collations (``img`` (B,3,H,W), ``kp2d_px`` (B,17,2)
    crop pixels, ``kp2d_mask`` (B,17), ``crop_to_img`` (B,2,3), ...).
    """

    def __init__(
        self,
        body_model_type: str = "free",
        body_model_gender: str = "neutral",
        body_model_path: str | None = None,
        backbone_depth: int = 50,
        backbone_weights: str | None = None,
        hidden_dim: int = 1024,
        num_betas: int = 10,
        input_hw: tuple[int, int] = (256, 192),
        w_kp2d: float = 1.0,
        w_pose_l2: float = 1e-3,
        w_betas_l2: float = 1e-2,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        lr_decay_steps: tuple[int, ...] = (),
        lr_decay_factor: float = 0.1,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.net = AnnotatorNet(backbone_depth, hidden_dim, num_betas)
        if backbone_weights:
            from annot.nets.resnet import load_backbone_weights
            load_backbone_weights(self.net.backbone, backbone_weights)
        self.body_model = BodyModel.from_config(
            model_type=body_model_type, gender=body_model_gender, path=body_model_path, num_betas=num_betas)
        focal, princpt = crop_camera(self.input_hw)
        self.register_buffer("focal_crop_px", torch.as_tensor(focal, dtype=torch.float32), persistent=False)
        self.register_buffer("princpt_crop_px", torch.as_tensor(princpt, dtype=torch.float32), persistent=False)

    # ------------------------------------------------------------------ forward
    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predict SMPL parameters, mesh, joints and their projection for a batch of crops.

        Args:
            img: (B, 3, H, W) float RGB in [0, 1].

        Returns:
            dict with ``pose_rotvec`` (B, 24, 3) axis-angle (index 0 = global orient, 22/23 zero),
            ``betas`` (B, num_betas), ``cam_trans_m`` (B, 3) crop-camera translation (metres),
            ``vertices_cam_m`` (B, V, 3) and ``kp2d_joints_cam_m`` (B, 17, 3) in the crop camera
            frame, ``kp2d_pred_px`` (B, 17, 2) projected COCO joints in crop pixels.
        """
        out = self.net(img)
        batch = img.shape[0]
        root_rotvec = rotmat_to_rotvec(rot6d_to_rotmat(out["root_6d"]))
        body_rotvec = rotmat_to_rotvec(rot6d_to_rotmat(out["body_6d"]))
        hands = body_rotvec.new_zeros(batch, 2, 3)
        pose_rotvec = torch.cat([root_rotvec[:, None], body_rotvec, hands], dim=1)
        focal = self.focal_crop_px.expand(batch, 2)
        princpt = self.princpt_crop_px.expand(batch, 2)
        tz = camera_depth_from_sigmoid(out["cam_raw"][:, 2], focal, self.input_hw)
        cam_trans = torch.cat([out["cam_raw"][:, :2], tz[:, None]], dim=1)
        body = self.body_model(pose_rotvec[:, 0], pose_rotvec[:, 1:].reshape(batch, -1), out["betas"])
        vertices = body.vertices_m + cam_trans[:, None]
        joints, _ = self.body_model.regress(vertices, KP_CONVENTION)
        return {
            "pose_rotvec": pose_rotvec,
            "betas": out["betas"],
            "cam_trans_m": cam_trans,
            "vertices_cam_m": vertices,
            "kp2d_joints_cam_m": joints,
            "kp2d_pred_px": perspective_project(joints, focal, princpt),
        }

    # ------------------------------------------------------------------ training
    def _losses(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        height, width = self.input_hw
        kp2d = masked_l1_kp2d(pred["kp2d_pred_px"], batch["kp2d_px"], batch["kp2d_mask"], (width, height))
        pose = l2_regulariser(pred["pose_rotvec"][:, 1:22])
        betas = l2_regulariser(pred["betas"])
        total = hp.w_kp2d * kp2d + hp.w_pose_l2 * pose + hp.w_betas_l2 * betas
        return {"total": total, "kp2d": kp2d, "pose_l2": pose, "betas_l2": betas}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        pred = self(batch["img"])
        losses = self._losses(pred, batch)
        bsz = batch["img"].shape[0]
        for name, value in losses.items():
            self.log(f"train/loss/{name}", value, prog_bar=name == "total", batch_size=bsz)
        err_img = kp2d_error_px(self._to_image_px(pred["kp2d_pred_px"], batch["crop_to_img"]),
                                batch["kp2d_img_px"], batch["kp2d_mask"])
        self.log("train/kp2d_err_img_px", err_img.nanmean(), prog_bar=True, batch_size=bsz)
        return losses["total"]

    @staticmethod
    def _to_image_px(points_crop_px: torch.Tensor, crop_to_img: torch.Tensor) -> torch.Tensor:
        """Map (B, J, 2) crop pixels to original-image pixels with the (B, 2, 3) affine."""
        return points_crop_px @ crop_to_img[:, :, :2].transpose(1, 2) + crop_to_img[:, None, :, 2]

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.net.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(hp.lr_decay_steps),
                                                     gamma=hp.lr_decay_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ prediction
    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Pseudo-GT for every sample of the batch, still in the crop camera (see module docstring).

        Returns a dict of CPU tensors: ``sample_id`` (list[str]), ``pose_rotvec`` (B,24,3), ``betas``,
        ``cam_trans_m`` (B,3), ``focal_crop_px``/``princpt_crop_px`` (B,2), ``crop_to_img`` (B,2,3),
        ``kp2d_pred_img_px`` / ``kp2d_img_px`` (B,17,2) original-image pixels, ``kp2d_mask`` (B,17),
        ``kp2d_err_img_px`` (B,).
        """
        pred = self(batch["img"])
        bsz = batch["img"].shape[0]
        kp_img = self._to_image_px(pred["kp2d_pred_px"], batch["crop_to_img"])
        err = kp2d_error_px(kp_img, batch["kp2d_img_px"], batch["kp2d_mask"])
        return {
            "sample_id": list(batch["sample_id"]),
            "image_path": list(batch["image_path"]),
            "pose_rotvec": pred["pose_rotvec"].detach().cpu(),
            "betas": pred["betas"].detach().cpu(),
            "cam_trans_m": pred["cam_trans_m"].detach().cpu(),
            "focal_crop_px": self.focal_crop_px.expand(bsz, 2).cpu(),
            "princpt_crop_px": self.princpt_crop_px.expand(bsz, 2).cpu(),
            "crop_to_img": batch["crop_to_img"].cpu(),
            "kp2d_pred_img_px": kp_img.detach().cpu(),
            "kp2d_img_px": batch["kp2d_img_px"].cpu(),
            "kp2d_mask": batch["kp2d_mask"].cpu(),
            "kp2d_err_img_px": err.detach().cpu(),
        }
