"""AnnotatorModule: the LightningModule that trains the annotator f and predicts pseudo-GTs.

NeuralAnnot's protocol (Moon et al., CVPRW 2022): f is trained on a dataset and then run in
``predict`` on that same dataset; its predictions are the pseudo-GTs. One system, three modes:

- ``"itw"`` (in-the-wild): image in; loss = visibility-masked L1 between projected joints and GT 2D
  keypoints (in Pose2Pose heatmap units, :data:`KP2D_UNIT_PX`) + L2 regularisers (on the VPoser code z, or on
  the body pose) and on betas; samples that carry 3D joints or a pseudo-GT theta* (auxiliary MoCap sets,
  3DPW-style sets) add an L1 on 3D joints
  and an L1 to theta* (expressive-NeuralAnnot Algorithm 1, Three Recipes' first recipe);
- ``"mocap"``: image + GT 3D joints (encoded by two FC layers) in; loss = L1 on root-relative 3D joints
  + L2 regularisers (NeuralAnnot Sec. 3.1, Eq. 1), plus, beyond Eq. 1 and each behind a switch
  (``mocap_kp2d``, ``mocap_joint_img``; on by default, measured in README "MoCap-mode losses"), the 2D
  reprojection term and the PositionNet term of the batch's keypoints;
- ``"mocap_joints_only"``: GT 3D joints in, no image (MoCap sources without images, e.g. CMU clips).

Beyond the paper, ``kp2d_input=True`` conditions the in-the-wild f on the annotated 2D keypoints as well as the
image (:func:`kp2d_input_features`, encoded like the MoCap-mode joints): the annotations f is fitted to are
known for every target sample, and on small CPU budgets the image alone does not tell f left from right
(the free 2D-pose backbone collapses left and right joints onto the midline, BENCHMARKS.md), which is what
f's global-orientation error was made of. Lifting annotated 2D keypoints to a mesh is Pose2Mesh's input
(Choi, Moon and Lee, ECCV 2020); here the image stays in. Training batches jitter and drop the input
keypoints (``kp2d_input_jitter``, ``kp2d_input_dropout``) so that f does not copy the clean projections of
the auxiliary renders; the 2D loss still compares with the un-jittered keypoints.

Architectures (``architecture``, :mod:`annot.nets.annotator`): ``"regressor"`` (ResNet -> pooling -> FC)
or ``"pose2pose"``, the Three Recipes f (Pose2Pose with VPoser z; image modes only, the joints-only mode
keeps the regressor). With ``pose2pose`` the loss gains Pose2Pose's PositionNet term ``joint_img``: L1
between the 25 PositionNet joints and the batch's keypoints converted by name to ``pose2pose25`` in
heatmap units (x, y from ``kp2d_px``; z, the root-relative depth, only for samples with 3D joints), masked
by visibility and truncation (:func:`annot.nets.pose2pose_joints.position_targets`). A batch convention
without some PositionNet joints (``coco17`` has no ``Pelvis``, ``Neck`` or feet) simply masks them;
``pose2pose33`` has all 25.

Frames: image modes predict SMPL in the *crop camera* frame (OpenCV axes: x right, y down, z forward;
metres) of the chosen camera model (:func:`annot.geometry.cameras.project_camera_model`); the
joints-only mode predicts in the MoCap source's own world frame. The module never touches files;
:mod:`annot.io.export` maps predictions to the original image camera.
"""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from annot.annotator.losses import eft_kp2d_loss_norm, l2_regulariser, masked_l1, masked_l1_kp2d
from annot.body_models import BodyModel
from annot.geometry.cameras import project_camera_model
from annot.geometry.rotations import rot6d_to_rotmat, rotmat_to_rotvec, rotvec_to_rotmat
from annot.keypoints import get_convention
from annot.metrics import kp2d_error_px
from annot.nets.annotator import ARCHITECTURES, build_annotator_net
from annot.nets.pose2pose_joints import position_targets
from annot.optim import adam

MODES = ("itw", "mocap", "mocap_joints_only")

#: The 2D loss is measured in Pose2Pose's output heatmap units: one unit = one layer4 cell = 32 crop pixels
#: (x * 6 / 192, y * 8 / 256 at 256x192; reference-spec B.2.6), so the regulariser weights of the paper
#: (1e-2) keep their balance against the 2D term.
KP2D_UNIT_PX = 32.0
POSE_PRIORS = ("none", "vposer")


def kp2d_input_features(kp2d_px: torch.Tensor, kp2d_mask: torch.Tensor, input_hw: tuple[int, int],
                        jitter: float = 0.0, dropout: float = 0.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """The 2D keypoints as f's conditioning input (``kp2d_input``): (B, J, 3) = (x, y) in [-1, 1] over the crop
    (x / W * 2 - 1, y / H * 2 - 1) and the label flag, all three zero for unlabelled keypoints.

    Args:
        kp2d_px: (B, J, 2) keypoints in crop pixels.
        kp2d_mask: (B, J) labelled keypoints (bool or 0/1).
        input_hw: crop (height, width) in pixels.
        jitter: standard deviation of Gaussian noise on (x, y), in fractions of the crop height (0: none).
        dropout: probability that a labelled keypoint is zeroed as if unlabelled (0: none).
        generator: a CPU generator for the draws (torch's global one when None).
    """
    height, width = input_hw
    mask = kp2d_mask.to(kp2d_px.dtype)
    if dropout > 0:
        keep = torch.rand(mask.shape, generator=generator) >= dropout
        mask = mask * keep.to(mask)
    xy = kp2d_px
    if jitter > 0:
        xy = xy + torch.randn(xy.shape, generator=generator).to(xy) * (jitter * height)
    norm = torch.stack([xy[..., 0] / width * 2.0 - 1.0, xy[..., 1] / height * 2.0 - 1.0], dim=-1)
    return torch.cat([norm, torch.ones_like(norm[..., :1])], dim=-1) * mask[..., None]


def _root_index(convention: str) -> int:
    """Index of the root joint of ``convention`` (its declared root, else ``Pelvis``).

    Raises:
        ValueError: the convention has neither, so 3D joints cannot be made root-relative.
    """
    conv = get_convention(convention)
    name = conv.root or "Pelvis"
    if name not in conv.joint_names:
        raise ValueError(f"keypoint convention {convention!r} has no root joint for root-relative 3D joints; "
                         f"use one with a Pelvis (e.g. pose2pose33 or pose2pose25 for data.convention, "
                         f"smpl24 / h36m17 for aux_stage.joints3d_convention)")
    return conv.index(name)


class AnnotatorModule(pl.LightningModule):
    """Annotator f as a Lightning system (NeuralAnnot, Three Recipes).

    Args:
        mode: ``"itw"``, ``"mocap"`` or ``"mocap_joints_only"`` (module docstring).
        body_model_type, body_model_gender, body_model_path: the SMPL-format model
            (:class:`annot.config.BodyModelConfig`).
        backbone_depth, backbone_weights: ResNet depth and an optional ImageNet / SimpleBaseline
            checkpoint (torchvision key layout; unused keys are reported, not dropped silently).
        hidden_dim: width of the regressor's hidden layer.
        num_betas: number of shape coefficients.
        input_hw: crop (height, width) in pixels.
        kp2d_convention: keypoint convention of the batches' 2D keypoints (``annot.keypoints``).
        joints3d_convention: convention of the batches' 3D joints (and of the MoCap-mode input).
        pose_prior: ``"none"`` (21 x 6D body rotations) or ``"vposer"`` (a latent z decoded by a frozen
            VPoser; the third recipe).
        vposer_path: VPoser checkpoint / folder (official V02_05 or ``make train-prior`` output).
        camera_model: ``"perspective"``, ``"weak_perspective"`` or ``"d2s"`` (the Pose2Pose camera is
            ``"perspective"``).
        architecture: ``"regressor"`` or ``"pose2pose"`` (module docstring; ``hidden_dim`` is the
            regressor's only). Ignored (regressor) in ``"mocap_joints_only"`` mode.
        w_joint_img: weight of the PositionNet L1 (``pose2pose`` only; Pose2Pose uses 1).
        w_root_orient: weight of an extra L1 on theta*'s root rotation matrix alone (0: off, the paper's loss;
            inside ``w_smpl_param``'s term the root is 9 of 208 averaged entries).
        w_kp2d, w_joints3d, w_smpl_param: weights of the 2D L1, 3D-joint L1 and L1-to-theta* terms (theta* as
            the rotation matrices of joints 0..21 plus betas; NeuralAnnot writes an L1 on the parameters,
            SPIN compares rotation matrices, which stays continuous where axis-angle wraps at pi).
        mocap_kp2d, mocap_joint_img: in ``"mocap"`` mode, whether the 2D reprojection L1 and the PositionNet
            L1 are added to NeuralAnnot's Eq. 1 (3D joints + regularisers); other modes ignore them.
        w_pose_l2, w_z_l2, w_betas_l2: regulariser weights (per-sample squared norms; Three Recipes
            uses 1e-2 on ``|z|^2`` and ``|beta|^2``, supplementary Table A).
        lr, weight_decay, lr_decay_steps, lr_decay_factor: Adam with a step decay (optimiser steps).
        kp2d_input: ``"itw"`` mode only: feed the batch's 2D keypoints (:func:`kp2d_input_features`) to f beside
            the image (module docstring; False = the paper's image-only f).
        kp2d_input_jitter: training only: standard deviation of Gaussian noise added to the input keypoints, in
            fractions of the crop height (the loss targets are not jittered).
        kp2d_input_dropout: training only: probability that a labelled input keypoint is hidden from f.
        seed: seeds the keypoint-input noise together with the global step (reproducible across a resume).
        config: the resolved run config, stored in the checkpoint's hyper-parameters.

    Batches: image :class:`annot.data.sample.Sample` collations, or MoCap batches with
    ``joints_world_m`` (B, J, 3) + ``joints_mask`` (B, J) (:class:`annot.data.mocap.BVHMocap`).

    Raises:
        ValueError: unknown mode / prior / camera model / architecture, or a VPoser prior without
            ``vposer_path``.
    """

    def __init__(
        self,
        mode: str = "itw",
        body_model_type: str = "free",
        body_model_gender: str = "neutral",
        body_model_path: str | None = None,
        backbone_depth: int = 50,
        backbone_weights: str | None = None,
        hidden_dim: int = 1024,
        num_betas: int = 10,
        input_hw: tuple[int, int] = (256, 192),
        kp2d_convention: str = "coco17",
        joints3d_convention: str = "smpl24",
        pose_prior: str = "none",
        vposer_path: str | None = None,
        camera_model: str = "perspective",
        architecture: str = "regressor",
        w_kp2d: float = 1.0,
        w_joints3d: float = 1.0,
        w_smpl_param: float = 1.0,
        w_root_orient: float = 0.0,
        w_pose_l2: float = 1e-4,
        w_z_l2: float = 1e-2,
        w_betas_l2: float = 1e-2,
        w_joint_img: float = 1.0,
        mocap_kp2d: bool = True,
        mocap_joint_img: bool = True,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        lr_decay_steps: tuple[int, ...] = (),
        lr_decay_factor: float = 0.1,
        kp2d_input: bool = False,
        kp2d_input_jitter: float = 0.0,
        kp2d_input_dropout: float = 0.0,
        seed: int = 0,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"annotator mode must be one of {MODES}, got {mode!r}")
        if pose_prior not in POSE_PRIORS:
            raise ValueError(f"pose_prior must be one of {POSE_PRIORS}, got {pose_prior!r}")
        if pose_prior == "vposer" and not vposer_path:
            raise ValueError("pose_prior 'vposer' needs vposer_path (official V02_05 or `make train-prior` output)")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if kp2d_input and mode != "itw":
            raise ValueError(f"kp2d_input is an in-the-wild-mode input; mode {mode!r} encodes GT 3D joints instead")
        self.save_hyperparameters()
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.uses_image = mode != "mocap_joints_only"
        self.joints3d_root = _root_index(joints3d_convention)
        self.architecture = architecture if self.uses_image else "regressor"
        self.vposer = None
        if pose_prior == "vposer":
            from annot.priors import load_vposer
            self.vposer = load_vposer(vposer_path)  # frozen: eval(), requires_grad False
        self.net = build_annotator_net(
            self.architecture, backbone_depth, hidden_dim, num_betas, use_image=self.uses_image,
            num_input_joints=self._num_input_joints(),
            pose_output="vposer" if pose_prior == "vposer" else "rot6d",
            latent_dim=self.vposer.latent_dim if self.vposer is not None else 32, camera_model=camera_model,
            upright_init=self.uses_image)
        if backbone_weights and self.uses_image:
            from annot.nets.resnet import load_backbone_weights
            load_backbone_weights(self.net.backbone, backbone_weights)
        self.body_model = BodyModel.from_config(
            model_type=body_model_type, gender=body_model_gender, path=body_model_path, num_betas=num_betas)

    def _num_input_joints(self) -> int:
        """Joints of the network's conditioning input: GT 3D joints (MoCap modes), 2D keypoints (``kp2d_input``)
        or none (the paper's in-the-wild f)."""
        hp = self.hparams
        if hp.mode != "itw":
            return get_convention(hp.joints3d_convention).num_joints
        return get_convention(hp.kp2d_convention).num_joints if hp.get("kp2d_input", False) else 0

    def train(self, mode: bool = True) -> AnnotatorModule:
        """Lightning's train/eval switch, keeping the frozen VPoser in eval mode (no dropout) always."""
        super().train(mode)
        if self.vposer is not None:
            self.vposer.eval()  # the prior stays frozen (dropout off) while f trains
        return self

    # ------------------------------------------------------------------ forward
    def _gt_joints(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """GT 3D joints relative to the convention's root (B, J, 3) metres and their mask (B, J)."""
        if "joints_world_m" in batch:
            joints, mask = batch["joints_world_m"], batch["joints_mask"]
            return joints - joints[:, self.joints3d_root: self.joints3d_root + 1], mask
        return batch["joints_cam_m"], batch["joints_cam_mask"]

    def forward(self, img: torch.Tensor | None = None, joints_rel_m: torch.Tensor | None = None,
                joints_mask: torch.Tensor | None = None,
                kp2d_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Predict SMPL parameters, the mesh and its joints.

        Args:
            img: (B, 3, H, W) float RGB in [0, 1] (image modes).
            joints_rel_m: (B, J, 3) root-relative GT joints in ``joints3d_convention`` (MoCap modes).
            joints_mask: (B, J) validity of ``joints_rel_m`` (invalid joints are zeroed at the input).
            kp2d_features: (B, J2, 3) :func:`kp2d_input_features` of the ``kp2d_convention`` keypoints
                (``kp2d_input`` only; ValueError from the network when it is missing).

        Returns:
            dict with ``pose_rotvec`` (B, 24, 3) axis-angle (row 0 = global orientation, 22/23 zero),
            ``betas`` (B, num_betas), ``z`` (B, 32) with a VPoser prior, ``joints3d_rel_m`` (B, J, 3)
            model joints in ``joints3d_convention`` relative to that convention's root; image modes
            also give ``transl_m`` (B, 3) the SMPL ``transl`` in the crop camera, ``vertices_cam_m``
            (B, V, 3), ``focal_px`` (B, 2) the equivalent pinhole focal length in crop pixels (principal
            point at the crop centre) and ``kp2d_pred_px`` (B, J2, 2) projected ``kp2d_convention`` joints;
            the ``pose2pose`` architecture adds ``joint_img`` (B, 25, 3) PositionNet joints
            (``pose2pose25``) in heatmap units.
        """
        if joints_rel_m is not None and joints_mask is not None:
            joints_rel_m = joints_rel_m * joints_mask[..., None]
        cond = joints_rel_m if self.hparams.mode != "itw" else kp2d_features
        out = self.net(img, cond)
        batch = out["betas"].shape[0]
        root_rotvec = rotmat_to_rotvec(rot6d_to_rotmat(out["root_6d"]))
        if self.vposer is not None:
            body_rotvec = self.vposer.decode(out["z"])["pose_body"]
        else:
            body_rotvec = rotmat_to_rotvec(rot6d_to_rotmat(out["body_6d"]))
        pose_rotvec = torch.cat([root_rotvec[:, None], body_rotvec, body_rotvec.new_zeros(batch, 2, 3)], dim=1)
        body = self.body_model(pose_rotvec[:, 0], pose_rotvec[:, 1:].reshape(batch, -1), out["betas"])
        root = body.joints_smpl24_m[:, 0]
        vertices_rel = body.vertices_m - root[:, None]
        joints3d, _ = self.body_model.regress(vertices_rel, self.hparams.joints3d_convention)
        pred = {"pose_rotvec": pose_rotvec, "betas": out["betas"],
                "joints3d_rel_m": joints3d - joints3d[:, self.joints3d_root: self.joints3d_root + 1]}
        if "z" in out:
            pred["z"] = out["z"]
        if "joint_img" in out:
            pred["joint_img"] = out["joint_img"]
        if self.uses_image:
            kp_joints, _ = self.body_model.regress(vertices_rel, self.hparams.kp2d_convention)
            kp2d, focal, root_cam = project_camera_model(kp_joints, out["cam_raw"], self.hparams.camera_model,
                                                         self.input_hw)
            pred.update(kp2d_pred_px=kp2d, focal_px=focal, transl_m=root_cam - root,
                        vertices_cam_m=vertices_rel + root_cam[:, None])
        return pred

    def predict_batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """:meth:`forward` on a batch: the image, plus the GT 3D joints (MoCap modes) or the 2D keypoints
        (``kp2d_input``; jittered and dropped in training, :func:`kp2d_input_features`)."""
        hp = self.hparams
        joints, mask = (None, None) if hp.mode == "itw" else self._gt_joints(batch)
        kp_in = None
        if hp.get("kp2d_input", False):
            jitter, dropout = (hp.kp2d_input_jitter, hp.kp2d_input_dropout) if self.training else (0.0, 0.0)
            # draws from (seed, step), not the global generator: a run resumed from a checkpoint sees the same noise
            gen = torch.Generator().manual_seed(int(hp.get("seed", 0)) * 1_000_003 + int(self.global_step))
            kp_in = kp2d_input_features(batch["kp2d_px"], batch["kp2d_mask"], self.input_hw, jitter, dropout, gen)
        return self(batch.get("img") if self.uses_image else None, joints, mask, kp_in)

    # ------------------------------------------------------------------ training
    def _losses(self, pred: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        terms: dict[str, torch.Tensor] = {}
        mocap = hp.mode == "mocap"
        if self.uses_image and "kp2d_mask" in batch and (hp.get("mocap_kp2d", True) or not mocap):
            terms["kp2d"] = hp.w_kp2d * masked_l1_kp2d(pred["kp2d_pred_px"], batch["kp2d_px"], batch["kp2d_mask"],
                                                        (KP2D_UNIT_PX, KP2D_UNIT_PX))
        if "joint_img" in pred and "kp2d_mask" in batch and (hp.get("mocap_joint_img", True) or not mocap):
            terms["joint_img"] = hp.w_joint_img * self._joint_img_loss(pred["joint_img"], batch)
        gt_joints, joints_mask = self._gt_joints(batch) if ("joints_world_m" in batch or "joints_cam_m" in batch) \
            else (None, None)
        if gt_joints is not None and bool(joints_mask.any()):
            terms["joints3d"] = hp.w_joints3d * masked_l1(pred["joints3d_rel_m"], gt_joints, joints_mask)
        if "smpl_valid" in batch and bool(batch["smpl_valid"].any()):
            valid = batch["smpl_valid"].float()
            # rotation matrices, not axis-angle (SPIN's pose term): axis-angle L1 is discontinuous at pi, where
            # the camera-frame global orientation of an upright person sits (about Rx(pi))
            target = torch.cat([rotvec_to_rotmat(batch["smpl_pose_rotvec"][:, :22]).flatten(1),
                                batch["smpl_betas"]], dim=1)
            pred_theta = torch.cat([rotvec_to_rotmat(pred["pose_rotvec"][:, :22]).flatten(1), pred["betas"]],
                                   dim=1)
            terms["smpl_param"] = hp.w_smpl_param * masked_l1(pred_theta, target, valid[:, None].expand_as(target))
            if hp.get("w_root_orient", 0.0) > 0:  # the root's 9 of theta*'s 208 entries, weighted on their own
                root_target, root_pred = target[:, :9], pred_theta[:, :9]
                terms["root_orient"] = hp.w_root_orient * masked_l1(root_pred, root_target,
                                                                    valid[:, None].expand_as(root_target))
        if "z" in pred:
            terms["z_l2"] = hp.w_z_l2 * l2_regulariser(pred["z"])
        else:
            terms["pose_l2"] = hp.w_pose_l2 * l2_regulariser(pred["pose_rotvec"][:, 1:22])
        terms["betas_l2"] = hp.w_betas_l2 * l2_regulariser(pred["betas"])
        terms["total"] = sum(terms.values())
        return terms

    def _joint_img_loss(self, joint_img: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """PositionNet L1 (Pose2Pose ``joint_img``, reference-spec B.3) in heatmap units, averaged over the
        valid coordinates: (x, y) of visible, in-heatmap keypoints; z for samples with camera-frame 3D
        joints (``joints_cam_m``; depth root-relative, :func:`annot.nets.pose2pose_joints.position_targets`)."""
        joints = mask3d = None
        if "joints_cam_m" in batch and "joints_cam_mask" in batch and bool(batch["joints_cam_mask"].any()):
            joints, mask3d = batch["joints_cam_m"], batch["joints_cam_mask"]  # in joints3d_convention
        target, mask = position_targets(batch["kp2d_px"], batch["kp2d_mask"], self.hparams.kp2d_convention,
                                        self.input_hw, joints, mask3d,
                                        self.hparams.joints3d_convention if joints is not None else None)
        return masked_l1(joint_img, target, mask)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        pred = self.predict_batch(batch)
        losses = self._losses(pred, batch)
        bsz = pred["betas"].shape[0]
        for name, value in losses.items():
            self.log(f"train/loss/{name}", value, prog_bar=name == "total", batch_size=bsz)
        if self.uses_image and "kp2d_img_px" in batch:
            err_img = kp2d_error_px(self._to_image_px(pred["kp2d_pred_px"], batch["crop_to_img"]),
                                    batch["kp2d_img_px"], batch["kp2d_mask"])
            self.log("train/kp2d_err_img_px", err_img.nanmean(), prog_bar=True, batch_size=bsz)
        if "joints3d" in losses:
            gt, mask = self._gt_joints(batch)
            err = ((pred["joints3d_rel_m"] - gt).norm(dim=-1) * mask).sum() / mask.sum().clamp(min=1)
            self.log("train/mpjpe_mm", 1000.0 * err, prog_bar=not self.uses_image, batch_size=bsz)
        return losses["total"]

    @staticmethod
    def _to_image_px(points_crop_px: torch.Tensor, crop_to_img: torch.Tensor) -> torch.Tensor:
        """Map (B, J, 2) crop pixels to original-image pixels with the (B, 2, 3) affine."""
        return points_crop_px @ crop_to_img[:, :, :2].transpose(1, 2) + crop_to_img[:, None, :, 2]

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.net.parameters() if p.requires_grad]
        opt = adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(hp.lr_decay_steps),
                                                     gamma=hp.lr_decay_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ prediction
    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Pseudo-GT for every sample of the batch, in the prediction frame (module docstring).

        Returns a dict of CPU tensors / lists: ``sample_id``, ``pose_rotvec`` (B,24,3), ``betas``,
        ``z`` (VPoser), per-sample quality (``joints3d_err_mm`` for MoCap batches, with the GT they were
        measured against: ``joints3d_gt_rel_m`` (B, J, 3) root-relative metres, ``joints3d_mask`` (B, J));
        image modes add
        ``image_path``, ``transl_m`` (B,3), ``focal_crop_px`` / ``princpt_crop_px`` (B,2),
        ``crop_to_img`` (B,2,3), ``kp2d_pred_img_px`` / ``kp2d_img_px`` (B,J,2) original-image pixels,
        ``kp2d_mask`` (B,J), ``kp2d_err_img_px`` (B,) and ``kp2d_loss_norm`` (B,) EFT's normalised 2D
        loss (:func:`annot.annotator.losses.eft_kp2d_loss_norm`: SPIN/EFT ``keypoint_loss`` of each sample alone).
        """
        pred = self.predict_batch(batch)
        bsz = pred["betas"].shape[0]
        out: dict[str, Any] = {"sample_id": list(batch["sample_id"]),
                               "pose_rotvec": pred["pose_rotvec"].detach().cpu(), "betas": pred["betas"].detach().cpu()}
        if "z" in pred:
            out["z"] = pred["z"].detach().cpu()
        if "joints_world_m" in batch or bool(batch.get("joints_cam_mask", torch.zeros(1)).any()):
            gt, mask = self._gt_joints(batch)
            err = ((pred["joints3d_rel_m"] - gt).norm(dim=-1) * mask).sum(1) / mask.sum(1).clamp(min=1)
            out["joints3d_err_mm"] = (1000.0 * err).detach().cpu()
            out["joints3d_gt_rel_m"], out["joints3d_mask"] = gt.detach().cpu(), mask.detach().cpu()
        if self.uses_image:
            height, width = self.input_hw
            kp_img = self._to_image_px(pred["kp2d_pred_px"], batch["crop_to_img"])
            half = pred["kp2d_pred_px"].new_tensor([width / 2.0, height / 2.0])
            out.update(
                image_path=list(batch["image_path"]), transl_m=pred["transl_m"].detach().cpu(),
                focal_crop_px=pred["focal_px"].detach().cpu(), princpt_crop_px=half.expand(bsz, 2).cpu(),
                crop_to_img=batch["crop_to_img"].cpu(), kp2d_pred_img_px=kp_img.detach().cpu(),
                kp2d_img_px=batch["kp2d_img_px"].cpu(), kp2d_mask=batch["kp2d_mask"].cpu(),
                kp2d_err_img_px=kp2d_error_px(kp_img, batch["kp2d_img_px"], batch["kp2d_mask"]).detach().cpu(),
                kp2d_loss_norm=eft_kp2d_loss_norm(pred["kp2d_pred_px"], batch["kp2d_px"], batch["kp2d_mask"],
                                                  self.input_hw).detach().cpu())
        return out
