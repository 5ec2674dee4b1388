"""``HMRModule``: the SPIN-style HMR estimator g as a Lightning system.

Follows nkolot SPIN (Kolotouros et al., ICCV 2019) ``models/hmr.py``, ``train/trainer.py`` and
``utils/train_options.py`` without SPIN's in-the-loop SMPLify (reference-spec B.8):

* input: 224x224 RGB crop in [0, 1] (``annot.data.sample``), ImageNet-normalised here, once;
* network: :class:`estimators.hmr.net.HMRNet` (ResNet -> 2048 -> 3 IEF iterations -> 24 x 6D, betas,
  weak-perspective camera ``[s, tx, ty]``);
* camera: ``t = [tx, ty, 2 f / (224 s + 1e-9)]`` with ``f = 5000`` (SPIN ``pred_cam_t``;
  :func:`annot.geometry.weak_perspective_to_translation`), principal point at the crop centre;
* losses (SPIN ``Trainer.train_step``), each a mean over elements like SPIN's ``MSELoss``:

  - ``kp2d``: ``mean(conf * (x_pred - x_gt)^2)`` in crop coordinates normalised to [-1, 1]
    (divide by 112 about the crop centre), ``conf`` = ``kp2d_mask``; joints regressed from the mesh
    in the batch's keypoint convention (``kp2d_convention``), projected with focal 5000;
  - ``joints3d``: same form on 3D joints re-centred on the mid-hip point (SPIN's pelvis), over samples
    with 3D GT (``joints_cam_mask``, both hips valid);
  - ``pose``: MSE between the 24 predicted and pseudo-GT rotation matrices, ``betas``: MSE, both over
    samples with ``smpl_valid``;
  - ``cam``: ``mean(exp(-10 s)^2)`` keeps the scale positive;
  - ``total = 60 * (5 kp2d + 5 joints3d + 1 pose + 0.001 betas + 1 cam)`` (SPIN defaults).

Differences from SPIN: the body model is posed through axis-angle (``rot6d -> rotmat -> rotvec``,
``annot.body_models.BodyModel`` takes rotvecs) where SPIN hands rotation matrices to SMPL; the 2D / 3D
joints are regressed from the mesh in the batch's convention instead of SPIN's 49-joint set; samples
without both hips are left out of the 3D term (SPIN assumes they exist); any ``input_size`` that is a
multiple of 32 works (global average pooling instead of ``AvgPool2d(7)``), 224 being the default.

Frames: predictions live in the crop camera (OpenCV axes: x right, y down, z forward; metres; virtual
focal length 5000 px for a 224 px crop). Evaluation is inherited from
:class:`estimators.base.EstimatorModule`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from annot.geometry import (
    VIRTUAL_FOCAL_PX,
    perspective_project,
    rot6d_to_rotmat,
    rotmat_to_rotvec,
    rotvec_to_rotmat,
    weak_perspective_to_translation,
)
from annot.keypoints import get_convention
from annot.optim import adam
from estimators.base import EstimatorModule
from estimators.hmr.mean_params import resolve_mean_params
from estimators.hmr.net import HMRNet

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "HMRModule",
    "camera_loss",
    "keypoint_2d_loss",
    "keypoint_3d_loss",
    "smpl_param_losses",
]

#: ImageNet RGB statistics (torchvision; SPIN ``constants.IMG_NORM_MEAN/STD``).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: SPIN's weight on the scale in the camera term ``exp(-10 s)^2``.
CAMERA_SCALE_FACTOR = 10.0


# ----------------------------------------------------------------------------- losses (SPIN trainer.py)
def keypoint_2d_loss(pred_norm: Tensor, gt_norm: Tensor, conf: Tensor) -> Tensor:
    """Confidence-weighted 2D keypoint MSE (SPIN ``keypoint_loss`` with ``gt_train_weight=1``).

    Args:
        pred_norm: (B, J, 2) projected joints, crop coordinates normalised to [-1, 1].
        gt_norm: (B, J, 2) targets, same frame.
        conf: (B, J) confidence / validity (0 = ignored).

    Returns:
        scalar ``mean(conf * (pred - gt)^2)`` over B * J * 2 elements (masked entries count in the
        denominator, as in SPIN, but contribute nothing).
    """
    return (conf[..., None] * (pred_norm - gt_norm) ** 2).mean()


def keypoint_3d_loss(pred_m: Tensor, gt_m: Tensor, conf: Tensor, hip_indices: tuple[int, int]) -> Tensor:
    """3D keypoint MSE after re-centring both sets on their mid-hip point (SPIN ``keypoint_3d_loss``).

    Args:
        pred_m: (B, J, 3) predicted joints, metres (any common translation).
        gt_m: (B, J, 3) GT joints, metres (root-relative or not: re-centred here).
        conf: (B, J) validity; a sample takes part when both hips are valid (SPIN: ``has_pose_3d``).
        hip_indices: the two hip joints of the convention (their mean is SPIN's pelvis).

    Returns:
        scalar ``mean(conf * (pred - gt)^2)`` over the taking-part samples' elements; 0 when none does.
    """
    hips = list(hip_indices)
    take = (conf[:, hips] > 0).all(dim=1)
    if not bool(take.any()):
        return pred_m.new_zeros(())
    pred, gt, weight = pred_m[take], gt_m[take], conf[take]
    pred = pred - pred[:, hips].mean(dim=1, keepdim=True)
    gt = gt - gt[:, hips].mean(dim=1, keepdim=True)
    return (weight[..., None] * (pred - gt) ** 2).mean()


def smpl_param_losses(pred_rotmat: Tensor, pred_betas: Tensor, gt_pose_rotvec: Tensor, gt_betas: Tensor,
                      valid: Tensor) -> tuple[Tensor, Tensor]:
    """MSE on rotation matrices and on betas over samples with (pseudo-)GT SMPL (SPIN ``smpl_losses``).

    Args:
        pred_rotmat: (B, 24, 3, 3) predicted rotations.
        pred_betas: (B, num_betas).
        gt_pose_rotvec: (B, 24, 3) target axis-angle (radians), row 0 = global orientation.
        gt_betas: (B, >= num_betas).
        valid: (B,) 1 where the target exists (``smpl_valid``).

    Returns:
        ``(pose_loss, betas_loss)`` scalars; zeros when no sample is valid.
    """
    take = valid > 0
    if not bool(take.any()):
        zero = pred_betas.new_zeros(())
        return zero, zero
    gt_rotmat = rotvec_to_rotmat(gt_pose_rotvec[take].to(pred_rotmat.dtype))
    pose_loss = ((pred_rotmat[take] - gt_rotmat) ** 2).mean()
    betas_loss = ((pred_betas[take] - gt_betas[take, : pred_betas.shape[1]]) ** 2).mean()
    return pose_loss, betas_loss


def camera_loss(scale: Tensor) -> Tensor:
    """SPIN's camera term ``mean(exp(-10 s)^2)``: (B,) weak-perspective scales -> scalar."""
    return (torch.exp(-CAMERA_SCALE_FACTOR * scale) ** 2).mean()


# ----------------------------------------------------------------------------- the system
class HMRModule(EstimatorModule):
    """HMR trained SPIN-style (module docstring); predicts SMPL and a weak-perspective camera.

    Args:
        body_model_type, body_model_gender, body_model_path: the SMPL-format model (free default).
        backbone_depth: ResNet depth (50 as SPIN; 18 for quick tests).
        backbone_weights: optional ImageNet checkpoint (torchvision keys) for the backbone, loaded with
            :func:`annot.nets.resnet.load_backbone_weights` (which reports unused/missing keys).
        mean_params_path: None (the computed upright mean,
            :func:`estimators.hmr.mean_params.upright_mean_params`), SPIN's ``smpl_mean_params.npz``,
            or an npz of poses (``pose_rotvec``) to average.
        input_size: square crop side in pixels (224); batches must be ``input_size`` x ``input_size``.
        n_iter: IEF iterations (3).
        kp2d_convention: keypoint convention of the batches' ``kp2d_px`` (``annot.keypoints``; the data
            config's ``convention``); model joints are regressed from the mesh in it.
        joints3d_convention: convention of ``joints_cam_m``; None = ``kp2d_convention``. Must have
            ``L_Hip`` and ``R_Hip`` (the 3D loss re-centres on their midpoint).
        focal_px: virtual focal length of the crop (SPIN ``FOCAL_LENGTH`` = 5000).
        w_kp2d, w_joints3d, w_pose, w_betas, w_cam: loss weights (SPIN: 5, 5, 1, 0.001, 1).
        loss_scale: overall factor (SPIN: 60).
        lr, weight_decay: Adam (SPIN: 5e-5, 0).
        val_set_names, config: see :class:`estimators.base.EstimatorModule`.

    Raises:
        ValueError: unknown convention, a 3D convention without hips, ``input_size`` not a multiple of
            32, or bad mean parameters. FileNotFoundError: missing ``mean_params_path`` /
            ``backbone_weights``.
    """

    def __init__(
        self,
        body_model_type: str = "free",
        body_model_gender: str = "neutral",
        body_model_path: str | None = None,
        backbone_depth: int = 50,
        backbone_weights: str | None = None,
        mean_params_path: str | None = None,
        input_size: int = 224,
        n_iter: int = 3,
        kp2d_convention: str = "coco17",
        joints3d_convention: str | None = None,
        focal_px: float = VIRTUAL_FOCAL_PX,
        w_kp2d: float = 5.0,
        w_joints3d: float = 5.0,
        w_pose: float = 1.0,
        w_betas: float = 0.001,
        w_cam: float = 1.0,
        loss_scale: float = 60.0,
        lr: float = 5e-5,
        weight_decay: float = 0.0,
        val_set_names: tuple[str, ...] = (),
        config: dict[str, Any] | None = None,
    ) -> None:
        if input_size <= 0 or input_size % 32:
            raise ValueError(f"HMRModule: input_size must be a positive multiple of 32 (SPIN: 224), "
                             f"got {input_size}")
        joints3d = get_convention(joints3d_convention or kp2d_convention)  # ValueError for unknown names
        try:
            hip_indices = (joints3d.index("L_Hip"), joints3d.index("R_Hip"))
        except KeyError as error:
            raise ValueError(f"HMRModule: joints3d_convention {joints3d.name!r} needs L_Hip and R_Hip "
                             f"(the 3D loss re-centres on their midpoint): {error}") from None
        super().__init__(body_model_type=body_model_type, body_model_gender=body_model_gender,
                         body_model_path=body_model_path, val_set_names=val_set_names, config=config)
        self.save_hyperparameters()
        self.input_size = int(input_size)
        self.kp2d_convention = get_convention(kp2d_convention).name
        self.joints3d_convention = joints3d.name
        self.hip_indices = hip_indices
        mean_params = resolve_mean_params(mean_params_path, self.body_model.num_betas)
        self.net = HMRNet(backbone_depth, mean_params, n_iter=n_iter)
        if backbone_weights:
            from annot.nets.resnet import load_backbone_weights
            load_backbone_weights(self.net.backbone, backbone_weights)
        self.register_buffer("img_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ forward
    def _check_image(self, img: Tensor) -> None:
        size = self.input_size
        if not torch.is_tensor(img) or img.ndim != 4 or img.shape[1] != 3:
            shape = tuple(img.shape) if torch.is_tensor(img) else type(img).__name__
            raise ValueError(f"HMRModule.forward: img must be (B, 3, {size}, {size}), got {shape}")
        if tuple(img.shape[2:]) != (size, size):
            raise ValueError(
                f"HMRModule expects {size}x{size} crops (H x W; SPIN's input), got "
                f"{img.shape[2]}x{img.shape[3]}: set the data module's input_hw=({size}, {size})")

    def normalise(self, img: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> ImageNet-normalised ``(img - mean) / std``."""
        return (img - self.img_mean.to(img.dtype)) / self.img_std.to(img.dtype)

    def forward(self, img: Tensor) -> dict[str, Tensor]:
        """Predict SMPL in the crop camera.

        Args:
            img: (B, 3, input_size, input_size) float RGB in [0, 1], not normalised (``Sample['img']``).

        Returns:
            dict (B = batch):

            - ``pose_rotvec`` (B, 24, 3) axis-angle radians, row 0 = global orientation (crop camera);
            - ``betas`` (B, num_betas);
            - ``cam_trans_m`` (B, 3) SMPL ``transl`` in the crop camera,
              ``[tx, ty, 2 f / (input_size s + 1e-9)]`` metres;
            - ``vertices_cam_m`` (B, V, 3) posed mesh + ``cam_trans_m``, metres;
            - ``pred_cam`` (B, 3) weak-perspective ``[s, tx, ty]``; ``pred_rotmat`` (B, 24, 3, 3);
              ``pose_6d`` (B, 24, 6) the raw regressor output.

        Raises:
            ValueError: ``img`` is not (B, 3, input_size, input_size) (e.g. a 256x192 Pose2Pose crop).
        """
        self._check_image(img)
        out = self.net(self.normalise(img))
        batch = img.shape[0]
        rotmat = rot6d_to_rotmat(out["pose_6d"])
        pose_rotvec = rotmat_to_rotvec(rotmat)
        body = self.body_model(pose_rotvec[:, 0], pose_rotvec[:, 1:].reshape(batch, -1), out["betas"])
        cam = out["cam"]
        cam_trans = weak_perspective_to_translation(cam[:, 0], cam[:, 1:], self.hparams.focal_px,
                                                    float(self.input_size))
        return {"pose_rotvec": pose_rotvec, "betas": out["betas"], "cam_trans_m": cam_trans,
                "vertices_cam_m": body.vertices_m + cam_trans[:, None], "pred_cam": cam,
                "pred_rotmat": rotmat, "pose_6d": out["pose_6d"]}

    def project_normalised(self, points_cam_m: Tensor) -> Tensor:
        """(B, J, 3) crop-camera points -> (B, J, 2) normalised crop coordinates in [-1, 1].

        Pinhole projection with focal ``focal_px`` and principal point 0, divided by ``input_size / 2``
        (SPIN ``perspective_projection`` then ``/ (img_res / 2)``).
        """
        focal = points_cam_m.new_tensor([self.hparams.focal_px, self.hparams.focal_px])
        return perspective_project(points_cam_m, focal, points_cam_m.new_zeros(2)) / (self.input_size / 2.0)

    def crop_px_to_normalised(self, kp2d_px: Tensor) -> Tensor:
        """(..., 2) crop pixels (``Sample['kp2d_px']``) -> ``(x - S/2) / (S/2)`` (SPIN ``2x/S - 1``)."""
        half = self.input_size / 2.0
        return (kp2d_px - half) / half

    # ------------------------------------------------------------------ training
    def _check_joints(self, batch: dict[str, Any], key: str, convention: str) -> None:
        expected = get_convention(convention).num_joints
        if batch[key].shape[1] != expected:
            raise ValueError(f"HMRModule: batch field {key!r} has {batch[key].shape[1]} joints, but "
                             f"convention {convention!r} has {expected} "
                             "(set kp2d_convention / joints3d_convention)")

    def compute_losses(self, pred: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        """SPIN's loss terms (unweighted) and ``total`` (weighted, times ``loss_scale``).

        Args:
            pred: :meth:`forward` output.
            batch: a collated ``Sample`` batch; uses ``kp2d_px``/``kp2d_mask``, ``joints_cam_m``/
                ``joints_cam_mask`` and ``smpl_pose_rotvec``/``smpl_betas``/``smpl_valid`` when present.

        Returns:
            dict of scalars ``kp2d``, ``joints3d``, ``pose``, ``betas``, ``cam``, ``total``.

        Raises:
            ValueError: a keypoint field's joint count does not match its convention.
        """
        hp = self.hparams
        vertices = pred["vertices_cam_m"]
        zero = vertices.new_zeros(())
        terms = {"kp2d": zero, "joints3d": zero, "pose": zero, "betas": zero}
        if "kp2d_px" in batch:
            self._check_joints(batch, "kp2d_px", self.kp2d_convention)
            joints, _ = self.body_model.regress(vertices, self.kp2d_convention)
            terms["kp2d"] = keypoint_2d_loss(self.project_normalised(joints),
                                             self.crop_px_to_normalised(batch["kp2d_px"]), batch["kp2d_mask"])
        if "joints_cam_m" in batch and bool(batch["joints_cam_mask"].any()):
            self._check_joints(batch, "joints_cam_m", self.joints3d_convention)
            joints, _ = self.body_model.regress(vertices, self.joints3d_convention)
            terms["joints3d"] = keypoint_3d_loss(joints, batch["joints_cam_m"], batch["joints_cam_mask"],
                                                 self.hip_indices)
        if "smpl_valid" in batch:
            terms["pose"], terms["betas"] = smpl_param_losses(
                pred["pred_rotmat"], pred["betas"], batch["smpl_pose_rotvec"], batch["smpl_betas"],
                batch["smpl_valid"])
        terms["cam"] = camera_loss(pred["pred_cam"][:, 0])
        weighted = (hp.w_kp2d * terms["kp2d"] + hp.w_joints3d * terms["joints3d"] + hp.w_pose * terms["pose"]
                    + hp.w_betas * terms["betas"] + hp.w_cam * terms["cam"])
        terms["total"] = hp.loss_scale * weighted
        return terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Forward, SPIN losses, ``train/loss/<name>`` logs (unweighted terms, weighted ``total``)."""
        pred = self(batch["img"])
        losses = self.compute_losses(pred, batch)
        bsz = batch["img"].shape[0]
        for name, value in losses.items():
            self.log(f"train/loss/{name}", value, prog_bar=name == "total", batch_size=bsz)
        return losses["total"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the network (SPIN: lr 5e-5, weight decay 0, no schedule)."""
        hp = self.hparams
        return adam(self.net.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
