"""``Pose2PoseModule``: the Pose2Pose estimator g as a LightningModule (reference-spec B).

Follows mks0601 ``Hand4Whole_RELEASE`` branch ``Pose2Pose`` (``main/model.py``, ``main/config.py``,
``common/nets/loss.py``, ``common/base.py``): the network of :mod:`estimators.pose2pose.net`, the
virtual crop camera (focal 5000, principal point at the crop centre, depth ``k*sigmoid``), SMPL run
without ``transl`` and the 33-joint set regressed from its mesh, seven L1 losses with all weights 1
and per-element means (pitfall F.5), Adam 1e-4 with x0.1 step decays at epochs 4 and 6.

Frames and units: everything predicted lives in the *crop camera* frame (x right, y down, z forward,
metres) of the ``input_hw`` crop; 2D joint quantities of the losses are in *heatmap units*
(:mod:`estimators.pose2pose.joints`).

Batches are collated :class:`annot.data.sample.Sample` dicts whose keypoints are in
``data_convention``; the targets are converted to ``pose2pose33`` by joint name
(:func:`annot.keypoints.convert`; unmatched joints are masked, as Hand4Whole
``transform_joint_to_other_db``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from annot.geometry.cameras import CAMERA_3D_SIZE_M, VIRTUAL_FOCAL_PX, camera_depth_from_sigmoid
from annot.geometry.rotations import rot6d_to_rotvec
from annot.keypoints import convert, get_convention
from annot.optim import adam
from estimators.base import EstimatorModule
from estimators.pose2pose.joints import (
    SUPERVISION_CONVENTION,
    crop_px_to_heatmap,
    depth_to_heatmap,
    heatmap_shape,
    inside_heatmap,
    reduce_to_position_set,
)
from estimators.pose2pose.net import Pose2PoseNet

__all__ = ["Pose2PoseModule", "pose2pose_losses", "camera_trans_from_raw", "LOSS_NAMES", "PROJECTION_EPS_M"]

#: The seven loss terms of spec B.3, in its order.
LOSS_NAMES = ("joint_img", "smpl_joint_img", "smpl_pose", "smpl_shape", "joint_proj", "joint_cam",
              "smpl_joint_cam")
#: Pose2Pose adds this to the depth before dividing (``get_coord``), metres.
PROJECTION_EPS_M = 1e-4
#: Depth clamp when projecting pseudo-GT joints with the dataset camera (masked samples may have
#: no mesh in front of the camera), metres.
_TARGET_DEPTH_MIN_M = 1e-3


def camera_trans_from_raw(cam_raw: Tensor, input_hw: tuple[int, int] = (256, 192)) -> Tensor:
    """Pose2Pose ``get_camera_trans`` (spec B.2.5): ``(t_x, t_y, k*sigmoid(raw_z))`` in metres.

    ``k = sqrt(fx*fy*2.5^2/(H*W))`` with the virtual focal 5000 (``k = 56.38`` m for 256x192).

    Args:
        cam_raw: (B, 3) RotationNet camera output ``(t_x, t_y, depth logit)``; ``t_x, t_y`` are metres.
        input_hw: crop ``(H, W)`` pixels.

    Returns:
        (B, 3) SMPL translation in the crop camera, metres.
    """
    depth = camera_depth_from_sigmoid(cam_raw[:, 2], (VIRTUAL_FOCAL_PX, VIRTUAL_FOCAL_PX), input_hw, CAMERA_3D_SIZE_M)
    return torch.cat([cam_raw[:, :2], depth[:, None]], dim=1)


def _l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Hand4Whole ``CoordLoss`` / ``ParamLoss``: ``|pred - target| * mask``, averaged over ALL elements
    (masked zeros included, as ``train.py`` calls ``.mean()``; spec B.3)."""
    return ((pred - target).abs() * mask).mean()


def pose2pose_losses(pred: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """The seven Pose2Pose L1 losses (spec B.3), each a per-element mean with its mask; weights 1.

    Args:
        pred: :meth:`Pose2PoseModule.forward` outputs: ``joint_img`` (B, 25, 3), ``pose_rotvec``
            (B, 24, 3), ``betas`` (B, 10), ``joint_proj`` (B, 33, 2), ``joint_cam`` (B, 33, 3).
        targets: :meth:`Pose2PoseModule.build_targets` outputs (33-joint targets, heatmap units for
            2D/depth, metres for 3D; masks 0/1 floats): ``joint_img`` (B, 33, 3), ``joint_trunc``
            (B, 33), ``joint_depth_valid`` (B, 33), ``joint_cam`` (B, 33, 3), ``joint_cam_valid``
            (B, 33), ``smpl_joint_img`` (B, 33, 3), ``smpl_joint_trunc`` (B, 33), ``smpl_pose``
            (B, 72), ``smpl_shape`` (B, 10), ``smpl_valid`` (B,), ``smpl_joint_cam`` (B, 33, 3),
            ``smpl_joint_valid`` (B, 33), ``model_joint_valid`` (B, 33) (joints the body model can
            regress; the hand MCPs are 0 on the free model).

    Returns:
        ``{name: scalar}`` for the names of :data:`LOSS_NAMES`:

        * ``joint_img``: PositionNet vs dataset joints reduced to 25; mask ``joint_trunc``, depth
          additionally ``joint_depth_valid`` (= ``is_3D`` x 3D validity);
        * ``smpl_joint_img``: PositionNet vs pseudo-GT joints projected with the dataset camera;
          mask ``smpl_joint_trunc``;
        * ``smpl_pose``: 72 axis-angle values (hands predicted as zero) vs pseudo-GT; mask ``smpl_valid``;
        * ``smpl_shape``: betas vs pseudo-GT; mask ``smpl_valid``;
        * ``joint_proj``: projected 33 joints vs dataset 2D; mask ``joint_trunc`` x ``model_joint_valid``;
        * ``joint_cam``: root-relative 33 joints vs dataset 3D; mask ``joint_cam_valid`` x ``model_joint_valid``;
        * ``smpl_joint_cam``: root-relative 33 joints vs pseudo-GT; mask ``smpl_joint_valid``.
    """
    batch = pred["betas"].shape[0]
    model_valid = targets["model_joint_valid"]
    trunc25 = reduce_to_position_set(targets["joint_trunc"])
    depth25 = reduce_to_position_set(targets["joint_depth_valid"])
    img_mask = torch.stack([trunc25, trunc25, trunc25 * depth25], dim=-1)
    smpl_valid = targets["smpl_valid"][:, None]
    return {
        "joint_img": _l1(pred["joint_img"], reduce_to_position_set(targets["joint_img"]), img_mask),
        "smpl_joint_img": _l1(pred["joint_img"], reduce_to_position_set(targets["smpl_joint_img"]),
                              reduce_to_position_set(targets["smpl_joint_trunc"])[..., None]),
        "smpl_pose": _l1(pred["pose_rotvec"].reshape(batch, -1), targets["smpl_pose"], smpl_valid),
        "smpl_shape": _l1(pred["betas"], targets["smpl_shape"], smpl_valid),
        "joint_proj": _l1(pred["joint_proj"], targets["joint_img"][..., :2],
                          (targets["joint_trunc"] * model_valid)[..., None]),
        "joint_cam": _l1(pred["joint_cam"], targets["joint_cam"],
                         (targets["joint_cam_valid"] * model_valid)[..., None]),
        "smpl_joint_cam": _l1(pred["joint_cam"], targets["smpl_joint_cam"], targets["smpl_joint_valid"][..., None]),
    }


class Pose2PoseModule(EstimatorModule):
    """Pose2Pose (Moon et al.; Hand4Whole ``Pose2Pose`` branch) trained on (pseudo-)GT batches.

    Args:
        body_model_type, body_model_gender, body_model_path: the SMPL-format model
            (:class:`annot.config.BodyModelConfig`); SMPL runs without ``transl`` (spec B.2.6).
        backbone_depth: ResNet depth (50 in Pose2Pose).
        backbone_weights: optional ImageNet / SimpleBaseline / Pose2Pose checkpoint for the backbone
            (:func:`annot.nets.resnet.load_backbone_weights` reports unused keys such as the
            SimpleBaseline ``deconv_layers``/``final_layer``, spec B.7). Read at construction only: the
            saved checkpoint carries the trained weights and records ``backbone_weights=None``.
        input_hw: crop ``(H, W)`` pixels (256x192; heatmap ``(8, H/32, W/32)``).
        data_convention: keypoint convention of the batches' ``kp2d_px`` / ``joints_cam_m``
            (``annot.keypoints`` name, e.g. ``coco17``, ``h36m17``, ``pose2pose33``).
        lr: Adam learning rate (1e-4).
        lr_dec_epochs: epochs at which the learning rate is divided by ``lr_dec_factor`` ((4, 6)).
        lr_dec_factor: divisor at each decay epoch (10).
        val_set_names: validation set names (``val/<name>/...``, :class:`EstimatorModule`).
        config: resolved run config stored in the hyper-parameters.

    Raises:
        ValueError: unknown ``data_convention`` or a non-positive ``input_hw``.
    """

    def __init__(
        self,
        body_model_type: str = "free",
        body_model_gender: str = "neutral",
        body_model_path: str | None = None,
        backbone_depth: int = 50,
        backbone_weights: str | None = None,
        input_hw: tuple[int, int] = (256, 192),
        data_convention: str = "pose2pose33",
        lr: float = 1e-4,
        lr_dec_epochs: tuple[int, ...] = (4, 6),
        lr_dec_factor: float = 10.0,
        val_set_names: tuple[str, ...] = (),
        config: dict[str, Any] | None = None,
    ) -> None:
        get_convention(data_convention)  # ValueError listing the known names, before loading anything
        if len(input_hw) != 2 or min(input_hw) <= 0:
            raise ValueError(f"Pose2PoseModule: input_hw must be a positive (H, W), got {input_hw}")
        super().__init__(body_model_type=body_model_type, body_model_gender=body_model_gender,
                         body_model_path=body_model_path, val_set_names=val_set_names, config=config)
        self.save_hyperparameters()
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.hm_shape = heatmap_shape(self.input_hw)
        self.root_index = get_convention(SUPERVISION_CONVENTION).index("Pelvis")
        self.net = Pose2PoseNet(backbone_depth, num_betas=self.body_model.num_betas)
        if backbone_weights:
            from annot.nets.resnet import load_backbone_weights

            load_backbone_weights(self.net.backbone, backbone_weights)

    # ------------------------------------------------------------------ forward
    def get_camera_trans(self, cam_raw: Tensor) -> Tensor:
        """(B, 3) camera raw output -> (B, 3) translation, metres (:func:`camera_trans_from_raw`)."""
        return camera_trans_from_raw(cam_raw, self.input_hw)

    def project_to_heatmap(self, joints_m: Tensor, cam_trans_m: Tensor) -> Tensor:
        """Pose2Pose ``get_coord`` projection (spec B.2.6) of SMPL-frame joints to heatmap units.

        ``x = (X+t_x)/(Z+t_z+1e-4)*5000 + W/2`` (likewise y with ``H/2``), then ``x*W_hm/W``, ``y*H_hm/H``.

        Args:
            joints_m: (B, J, 3) joints of the mesh without translation, metres.
            cam_trans_m: (B, 3) translation, metres.

        Returns:
            (B, J, 2) heatmap units.
        """
        height, width = self.input_hw
        cam = joints_m + cam_trans_m[:, None]
        xy_px = cam[..., :2] / (cam[..., 2:] + PROJECTION_EPS_M) * VIRTUAL_FOCAL_PX
        xy_px = xy_px + cam.new_tensor([width / 2.0, height / 2.0])
        return crop_px_to_heatmap(xy_px, self.input_hw, self.hm_shape)

    def forward(self, img: Tensor) -> dict[str, Tensor]:
        """Predict SMPL in the crop camera (the :class:`EstimatorModule` contract) plus Pose2Pose extras.

        Args:
            img: (B, 3, H, W) RGB in [0, 1] with ``(H, W) == input_hw`` (no mean/std normalisation, F.7).

        Returns:
            dict with ``pose_rotvec`` (B, 24, 3) axis-angle (row 0 global orientation, rows 22/23 zero),
            ``betas`` (B, 10), ``cam_trans_m`` (B, 3), ``vertices_cam_m`` (B, V, 3) = mesh + cam_trans
            (crop camera, metres), ``joint_img`` (B, 25, 3) PositionNet heatmap units, ``joint_proj``
            (B, 33, 2) projected ``pose2pose33`` joints (heatmap units), ``joint_cam`` (B, 33, 3)
            ``pose2pose33`` joints relative to the Pelvis (metres; joints the body model cannot
            regress are meaningless, see :meth:`model_joint_valid`).

        Raises:
            ValueError: ``img`` is not (B, 3, H, W) with ``(H, W) == input_hw``.
        """
        if img.ndim != 4 or img.shape[1] != 3 or tuple(img.shape[2:]) != self.input_hw:
            raise ValueError(f"Pose2PoseModule.forward: img must be (B, 3, {self.input_hw[0]}, "
                             f"{self.input_hw[1]}), got {tuple(img.shape)}")
        out = self.net(img)
        batch = img.shape[0]
        pose_rotvec = torch.cat([rot6d_to_rotvec(out["root_6d"])[:, None], rot6d_to_rotvec(out["body_6d"]),
                                 out["body_6d"].new_zeros(batch, 2, 3)], dim=1)
        cam_trans = self.get_camera_trans(out["cam_raw"])
        body = self.body_model(pose_rotvec[:, 0], pose_rotvec[:, 1:].reshape(batch, -1), out["betas"])
        joints, _ = self.body_model.regress(body.vertices_m, SUPERVISION_CONVENTION)
        return {
            "pose_rotvec": pose_rotvec,
            "betas": out["betas"],
            "cam_trans_m": cam_trans,
            "vertices_cam_m": body.vertices_m + cam_trans[:, None],
            "joint_img": out["joint_img"],
            "joint_proj": self.project_to_heatmap(joints, cam_trans),
            "joint_cam": joints - joints[:, self.root_index: self.root_index + 1],
        }

    def model_joint_valid(self, like: Tensor) -> Tensor:
        """(33,) float: 1 for the ``pose2pose33`` joints the body model regresses (all on SMPL; the free
        model lacks the 8 hand MCPs)."""
        _, mask = self.body_model.regress(like.new_zeros(1, self.body_model.num_vertices, 3),
                                          SUPERVISION_CONVENTION)
        return mask.to(like.dtype)

    # ------------------------------------------------------------------ targets
    def _to_33(self, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(B, J, C) values and (B, J) mask in ``data_convention`` -> (B, 33, C), (B, 33) by joint name;
        masked values are set to 0."""
        src = self.hparams.data_convention
        num = get_convention(src).num_joints
        if values.ndim != 3 or values.shape[1] != num or mask.shape != values.shape[:2]:
            raise ValueError(f"Pose2Pose: batch keypoints have shape {tuple(values.shape)} / mask "
                             f"{tuple(mask.shape)}, expected (B, {num}, C) / (B, {num}) for data_convention {src!r}")
        out, has = convert(values, src, SUPERVISION_CONVENTION)
        mask33, _ = convert(mask[..., None].to(values.dtype), src, SUPERVISION_CONVENTION)
        mask33 = mask33[..., 0] * has.to(values.dtype)
        # values under a zero mask are meaningless (Sample contract), possibly non-finite: zero them
        return torch.where(mask33[..., None] > 0, out, torch.zeros_like(out)), mask33

    def _dataset_targets(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Dataset 2D (+3D) targets: ``joint_img``, ``joint_trunc``, ``joint_depth_valid``, ``joint_cam``,
        ``joint_cam_valid`` (spec A.9: heatmap units, ``is_3D`` = the sample has any valid 3D joint)."""
        kp, kp_valid = self._to_33(batch["kp2d_px"], batch["kp2d_mask"])
        if "joints_cam_m" in batch and "joints_cam_mask" in batch:
            joints3d, valid3d = self._to_33(batch["joints_cam_m"], batch["joints_cam_mask"])
        else:
            joints3d, valid3d = kp.new_zeros(*kp.shape[:2], 3), kp.new_zeros(kp.shape[:2])
        is_3d = (valid3d.sum(dim=1) > 0).to(kp.dtype)
        depth = depth_to_heatmap(joints3d[..., 2] * valid3d)
        joint_img = torch.cat([crop_px_to_heatmap(kp, self.input_hw, self.hm_shape), depth[..., None]], dim=-1)
        trunc = kp_valid * inside_heatmap(joint_img, self.hm_shape, check_depth=is_3d > 0)
        return {"joint_img": joint_img * kp_valid[..., None], "joint_trunc": trunc,
                "joint_depth_valid": valid3d * is_3d[:, None], "joint_cam": joints3d * valid3d[..., None],
                "joint_cam_valid": valid3d * is_3d[:, None]}

    @torch.no_grad()
    def _pseudo_gt_targets(self, batch: dict[str, Any], like: Tensor) -> dict[str, Tensor]:
        """Pseudo-GT SMPL targets: ``smpl_pose`` (B, 72), ``smpl_shape``, ``smpl_valid``, and the 33
        joints of its mesh: root-relative ``smpl_joint_cam`` and ``smpl_joint_img`` (projected with the
        dataset camera in crop pixels, ``real_*_crop_px``; depth relative to the Pelvis)."""
        batch_size = like.shape[0]
        if "smpl_pose_rotvec" not in batch or "smpl_valid" not in batch:
            valid = like.new_zeros(batch_size)
            pose, betas = like.new_zeros(batch_size, 72), like.new_zeros(batch_size, self.body_model.num_betas)
            transl = like.new_zeros(batch_size, 3)
        else:
            valid = batch["smpl_valid"].to(like.dtype).reshape(batch_size)
            pose = batch["smpl_pose_rotvec"].to(like.dtype).reshape(batch_size, 72)
            betas, transl = batch["smpl_betas"].to(like.dtype), batch["smpl_transl_m"].to(like.dtype)
        body = self.body_model(pose[:, :3], pose[:, 3:], betas, transl)
        joints, mask = self.body_model.regress(body.vertices_m, SUPERVISION_CONVENTION)
        joint_valid = valid[:, None] * mask.to(like.dtype)[None]
        rel = joints - joints[:, self.root_index: self.root_index + 1]
        if "real_focal_crop_px" in batch and "real_cam_valid" in batch:
            focal, princpt = batch["real_focal_crop_px"].to(like.dtype), batch["real_princpt_crop_px"].to(like.dtype)
            cam_valid = batch["real_cam_valid"].to(like.dtype).reshape(batch_size)
        else:
            focal, princpt = like.new_zeros(batch_size, 2), like.new_zeros(batch_size, 2)
            cam_valid = like.new_zeros(batch_size)
        xy_px = joints[..., :2] / joints[..., 2:].clamp(min=_TARGET_DEPTH_MIN_M) * focal[:, None] + princpt[:, None]
        joint_img = torch.cat([crop_px_to_heatmap(xy_px, self.input_hw, self.hm_shape),
                               depth_to_heatmap(rel[..., 2])[..., None]], dim=-1)
        trunc = inside_heatmap(joint_img, self.hm_shape) * joint_valid * cam_valid[:, None]
        return {"smpl_pose": pose * valid[:, None], "smpl_shape": betas * valid[:, None], "smpl_valid": valid,
                "smpl_joint_cam": rel * joint_valid[..., None], "smpl_joint_valid": joint_valid,
                "smpl_joint_img": torch.where(trunc[..., None] > 0, joint_img, torch.zeros_like(joint_img)),
                "smpl_joint_trunc": trunc}

    def build_targets(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """All targets and masks of :func:`pose2pose_losses` from a collated Sample batch.

        Uses ``kp2d_px`` / ``kp2d_mask`` (crop pixels), optional ``joints_cam_m`` / ``joints_cam_mask``
        (root-relative metres; ``is_3D`` where any joint is valid), optional pseudo-GT ``smpl_*``
        (masked by ``smpl_valid``) and the dataset camera ``real_focal_crop_px`` /
        ``real_princpt_crop_px`` / ``real_cam_valid`` for ``smpl_joint_img``. Keypoints are converted
        from ``data_convention`` to ``pose2pose33`` by name. Masked targets are zero.

        Raises:
            ValueError: keypoint arrays do not match ``data_convention``.
        """
        like = batch["kp2d_px"]
        targets = self._dataset_targets(batch)
        targets.update(self._pseudo_gt_targets(batch, like))
        targets["model_joint_valid"] = self.model_joint_valid(like)[None].expand(like.shape[0], -1)
        return targets

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Sum of the seven losses (all weights 1, spec B.3); logs ``train/loss/<name>`` and ``.../total``."""
        pred = self(batch["img"])
        losses = pose2pose_losses(pred, self.build_targets(batch))
        total = sum(losses.values())
        batch_size = batch["img"].shape[0]
        for name, value in losses.items():
            self.log(f"train/loss/{name}", value, batch_size=batch_size)
        self.log("train/loss/total", total, prog_bar=True, batch_size=batch_size)
        return total

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam (default betas, no weight decay) over the network; the learning rate is divided by
        ``lr_dec_factor`` at each epoch of ``lr_dec_epochs`` (spec B.4: 1e-4 for epochs 0-3, 1e-5 for 4-5,
        1e-6 from 6; Hand4Whole ``base.py::set_lr``)."""
        hp = self.hparams
        optimizer = adam(self.net.parameters(), lr=hp.lr)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=sorted(int(e) for e in hp.lr_dec_epochs),
                                                         gamma=1.0 / float(hp.lr_dec_factor))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the body model's buffers (a fixed asset re-read from ``body_model_*``; Hand4Whole also
        strips the SMPL layer) and record ``backbone_weights=None`` (the weights are in the state dict),
        so ``load_from_checkpoint(path)`` needs only the checkpoint and the body model file."""
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith("body_model.")]:
            del state[key]
        hparams = checkpoint.get(self.CHECKPOINT_HYPER_PARAMS_KEY)
        if hparams is not None:
            checkpoint["pose2pose_backbone_init"] = hparams.get("backbone_weights")
            checkpoint[self.CHECKPOINT_HYPER_PARAMS_KEY] = {**hparams, "backbone_weights": None}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put this instance's body-model buffers back into the state dict (see :meth:`on_save_checkpoint`)."""
        state = checkpoint.setdefault("state_dict", {})
        for key, value in self.body_model.state_dict().items():
            state.setdefault(f"body_model.{key}", value)
