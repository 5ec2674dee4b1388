"""Per-sample MANO fit to the 21 COCO-WholeBody hand keypoints, anchored at the body's wrist.

The baseline of the hand part (expressive NeuralAnnot, Moon et al., section 4.2, outputs MANO global rotation,
hand pose and shape): an SMPLify-style optimisation (SMPLify-X ``smplifyx/fitting.py``: Geman-McClure 2D term,
L2 pose and shape priors), batched over all hands. 2D keypoints alone fix neither the hand's depth nor its
size, so the hand is anchored in 3D at the body's wrist in the body's camera: MANO's wrist is the body's
wrist plus an ``offset`` with an L2 penalty, and the shape has its prior. Hand orientation from 2D is
ambiguous (palm towards or away from the camera), so every hand starts from ``num_rolls`` orientations (the
body's hand orientation turned about the hand's wrist -> middle-finger axis) and keeps, per hand, the fit
with the lower final objective (SMPLify's two-orientation trick, Bogo et al. 2016, generalised).
Stage 1 moves the rotation and the offset only, stage 2 everything.

Residuals are divided by the hand's size in pixels (its visible points' box diagonal).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from annot.body_models.wholebody import Hand21, rest_hand_joints_rel
from annot.fitting.kp2d import box_size_px, mean_error_px
from annot.fitting.smplify import adam_minimise, gmof
from annot.geometry.cameras import perspective_project
from annot.geometry.rotations import rotmat_to_rotvec, rotvec_to_rotmat
from annot.keypoints.wholebody_names import MANO16_NAMES


@dataclass
class HandFitConfig:
    """Weights and schedule of :func:`fit_hands` (residuals in hand-size units, offset in metres)."""

    iters_rigid: int = 60
    iters_full: int = 150
    lr: float = 0.02
    sigma: float = 0.3       # Geman-McClure scale in hand sizes (COCO sample hands: 0.1 -> 3.3 px, 0.3 -> 1.5 px)
    w_pose: float = 1e-3     # L2 on the MANO hand pose (relative to the mean hand), rad^2
    w_betas: float = 1e-3
    # L2 on the wrist's 3D offset from the body's wrist, per m^2. The integration drops the offset (the hand hangs
    # at the SMPL-X wrist), so a loose anchor fits better but exports worse: COCO sample hands, fit / integrated
    # 2D error: 0.5 -> 1.1 / 6.4 px, 5.0 -> 1.5 / 3.2 px.
    w_offset: float = 5.0
    num_rolls: int = 4


@dataclass(frozen=True)
class HandFit:
    """Result of :func:`fit_hands` for N hands, camera frame: ``global_rotmat`` (N, 3, 3), ``hand_pose``
    (N, 15, 3) relative to MANO's mean, ``betas`` (N, 10), ``transl_m`` (N, 3) MANO ``transl``,
    ``kp2d_err_px`` (N,) mean pixel error of the visible keypoints, ``init_err_px`` (N,) that of the best start."""

    global_rotmat: Tensor
    hand_pose: Tensor
    betas: Tensor
    transl_m: Tensor
    kp2d_err_px: Tensor
    init_err_px: Tensor


def _rolls(layer, init_rotmat: Tensor, num: int) -> Tensor:
    """(N * num, 3, 3): each start turned by 2 pi k / num about the MANO wrist -> Middle_1 axis (rest frame)."""
    axis = rest_hand_joints_rel(layer)[MANO16_NAMES.index("Middle_1")]
    axis = axis / axis.norm().clamp(min=1e-9)
    angles = torch.arange(num, dtype=torch.float32) * (2 * math.pi / num)
    turns = rotvec_to_rotmat(angles[:, None] * axis[None])  # (num, 3, 3)
    return (init_rotmat[:, None] @ turns[None]).reshape(-1, 3, 3)


def fit_hands(layer, kp21_px: Tensor, mask21: Tensor, focal_px: Tensor, princpt_px: Tensor, wrist_cam_m: Tensor,
              init_rotmat: Tensor, cfg: HandFitConfig | None = None, init_hand_pose: Tensor | None = None,
              init_betas: Tensor | None = None) -> HandFit:
    """Fit MANO (one side) to N hands' 21 keypoints (module docstring).

    Args:
        layer: ``smplx.MANO`` of the hands' side (:func:`annot.body_models.wholebody.load_mano`).
        kp21_px: (N, 21, 2) keypoints in ``hand21`` order, original-image pixels.
        mask21: (N, 21) True where annotated.
        focal_px, princpt_px: (N, 2) the body's original-image intrinsics, pixels.
        wrist_cam_m: (N, 3) the body's wrist joint, camera frame, metres (the anchor).
        init_rotmat: (N, 3, 3) starting MANO global rotation (the body's hand rotation in the MANO frame).
        cfg: weights and schedule (default :class:`HandFitConfig`).
        init_hand_pose: (N, 15, 3) starting finger rotations relative to MANO's mean (default: the mean hand, zeros),
            e.g. the hand annotator's prediction (``parts.hand_method=annotator_fit``).
        init_betas: (N, 10) starting shape (default zeros).

    Returns:
        :class:`HandFit`.

    Raises:
        ValueError: wrong shapes, or a hand with fewer than 2 annotated keypoints.
    """
    cfg = cfg or HandFitConfig()
    n = kp21_px.shape[0]
    for name, value, shape in (("kp21_px", kp21_px, (n, 21, 2)), ("mask21", mask21, (n, 21)),
                               ("focal_px", focal_px, (n, 2)), ("princpt_px", princpt_px, (n, 2)),
                               ("wrist_cam_m", wrist_cam_m, (n, 3)), ("init_rotmat", init_rotmat, (n, 3, 3))):
        if tuple(value.shape) != shape:
            raise ValueError(f"fit_hands: {name} must be {shape}, got {tuple(value.shape)}")
    if (mask21.sum(1) < 2).any():
        raise ValueError(f"fit_hands: hands {torch.nonzero(mask21.sum(1) < 2).flatten().tolist()} have fewer than "
                         "2 annotated keypoints")
    k = max(1, int(cfg.num_rolls))
    rep = lambda t: t.repeat_interleave(k, dim=0)  # noqa: E731
    kp, mask = rep(kp21_px.detach().float()), rep(mask21.bool())
    focal, princpt, wrist = (rep(t.detach().float()) for t in (focal_px, princpt_px, wrist_cam_m))
    w = mask.float()
    size = box_size_px(kp, mask)
    keypoints = Hand21(layer)
    pose0 = torch.zeros(n, 45) if init_hand_pose is None else init_hand_pose.detach().float().reshape(n, 45)
    betas0 = torch.zeros(n, layer.num_betas) if init_betas is None else init_betas.detach().float().reshape(n, -1)
    leaves = {"orient": rotmat_to_rotvec(_rolls(layer, init_rotmat.float(), k)), "pose": rep(pose0).clone(),
              "betas": rep(betas0).clone(), "offset": torch.zeros(n * k, 3)}

    def posed() -> tuple[Tensor, Tensor]:
        out = layer(global_orient=leaves["orient"], hand_pose=leaves["pose"], betas=leaves["betas"])
        kps = keypoints(out.joints, out.vertices)
        anchor = wrist + leaves["offset"]
        return kps - kps[:, :1] + anchor[:, None], anchor - out.joints[:, 0]

    def errors() -> Tensor:
        return mean_error_px(perspective_project(posed()[0], focal, princpt), kp, mask)

    def objective() -> Tensor:
        pred = perspective_project(posed()[0], focal, princpt)
        data = (gmof((pred - kp) / size[:, None, None], cfg.sigma).sum(-1) * w).sum(1) / w.sum(1)
        return (data + cfg.w_pose * leaves["pose"].pow(2).sum(1) + cfg.w_betas * leaves["betas"].pow(2).sum(1)
                + cfg.w_offset * leaves["offset"].pow(2).sum(1))

    with torch.no_grad():
        init_err = errors().reshape(n, k)
    adam_minimise([leaves["orient"], leaves["offset"]], objective, cfg.iters_rigid, cfg.lr)
    adam_minimise(list(leaves.values()), objective, cfg.iters_full, cfg.lr)
    with torch.no_grad():
        best = objective().reshape(n, k).argmin(1) + torch.arange(n) * k
        err = errors()[best]
        transl = posed()[1][best]
    return HandFit(global_rotmat=rotvec_to_rotmat(leaves["orient"][best]),
                   hand_pose=leaves["pose"][best].reshape(n, 15, 3), betas=leaves["betas"][best], transl_m=transl,
                   kp2d_err_px=err, init_err_px=init_err.min(1).values)


__all__ = ["HandFit", "HandFitConfig", "fit_hands"]
