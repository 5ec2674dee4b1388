"""Per-sample face fit of SMPL-X to the 68 COCO-WholeBody face points: jaw, expression, neck and head rotation.

Expressive NeuralAnnot (Moon et al., section 4.3) fits the face part with SMPLify-X (Pavlakos et al., CVPR 2019,
``smplifyx/fitting.py``): a Geman-McClure 2D keypoint term plus L2 priors on the jaw and the expression.
Here the face is fitted *on the body*: the SMPL-X body (pose, shape, translation) from the body part is held
fixed in the body's camera and only the neck and head rotations (the paper's face global rotation), the jaw
rotation and the 10 expression coefficients move; all people are optimised in one batch (Adam's
per-element updates keep them independent). Stage 1 turns neck and head only, stage 2 frees jaw and
expression. The 51 static SMPL-X landmarks are matched to the 300-W points 17..67; the contour, points 0..16,
is left out, as in SMPLify-X's default (``--use_face_contour`` is False in ``smplifyx/cmd_parser.py``).

Residuals are divided by the face's size in pixels (the diagonal of its visible points' box), so the
weights are the same for a face of 20 or 200 pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from annot.body_models.wholebody import FACE_STATIC_LANDMARKS, SmplxParams, face_landmarks, smplx_forward
from annot.fitting.kp2d import box_size_px, mean_error_px
from annot.fitting.smplify import adam_minimise, gmof
from annot.geometry.cameras import perspective_project

NECK_ROW, HEAD_ROW = 11, 14  # rows of SmplxParams.body_pose (joint index - 1)


@dataclass
class FaceFitConfig:
    """Weights and schedule of :func:`fit_face` (SMPLify-X-style; residuals in face-size units)."""

    iters_head: int = 60
    iters_full: int = 150
    lr: float = 0.02
    sigma: float = 0.1       # Geman-McClure scale, in face sizes
    w_jaw: float = 1e-3      # L2 on the jaw rotation (rad^2)
    w_expr: float = 1e-4     # L2 on the expression coefficients
    w_head: float = 1e-3     # L2 on the change of the neck / head rotations from the body's (rad^2)


@dataclass(frozen=True)
class FaceFit:
    """Result of :func:`fit_face` for B faces: ``params`` (the input with neck, head, jaw and expression
    replaced), ``kp2d_err_px`` (B,) mean pixel error over the visible fitted points before (``init_err_px``)
    and after the fit."""

    params: SmplxParams
    kp2d_err_px: Tensor
    init_err_px: Tensor


def project_landmarks_px(layer, p: SmplxParams, focal_px: Tensor, princpt_px: Tensor) -> Tensor:
    """(B, 51, 2) pixels of the SMPL-X static face landmarks of ``p`` (camera frame) through the camera."""
    _, verts = smplx_forward(layer, p)
    return perspective_project(face_landmarks(layer, verts), focal_px, princpt_px)


def fit_face(layer, init: SmplxParams, kp68_px: Tensor, mask68: Tensor, focal_px: Tensor, princpt_px: Tensor,
             cfg: FaceFitConfig | None = None) -> FaceFit:
    """Fit neck, head, jaw and expression of B people to their 68 face points (module docstring).

    Args:
        layer: ``smplx.SMPLX`` (:func:`annot.body_models.wholebody.load_smplx`).
        init: (B) SMPL-X parameters in the camera frame (the body part; jaw / expression as start).
        kp68_px: (B, 68, 2) COCO-WholeBody ``face_kpts`` (300-W order), original-image pixels.
        mask68: (B, 68) True where a point is annotated.
        focal_px, princpt_px: (B, 2) the body's original-image intrinsics, pixels.
        cfg: weights and iterations (default :class:`FaceFitConfig`).

    Returns:
        :class:`FaceFit`.

    Raises:
        ValueError: wrong shapes, or a face without any of the points 17..67 annotated.
    """
    cfg = cfg or FaceFitConfig()
    batch = kp68_px.shape[0]
    for name, value, shape in (("kp68_px", kp68_px, (batch, 68, 2)), ("mask68", mask68, (batch, 68)),
                               ("focal_px", focal_px, (batch, 2)), ("princpt_px", princpt_px, (batch, 2))):
        if tuple(value.shape) != shape:
            raise ValueError(f"fit_face: {name} must be {shape}, got {tuple(value.shape)}")
    kp = kp68_px[:, list(FACE_STATIC_LANDMARKS)].detach().float()
    mask = mask68[:, list(FACE_STATIC_LANDMARKS)].bool()
    if (mask.sum(1) == 0).any():
        rows = torch.nonzero(mask.sum(1) == 0).flatten().tolist()
        raise ValueError(f"fit_face: faces {rows} have none of the 300-W points 17..67 annotated")
    w = mask.float()
    size = box_size_px(kp, mask)  # (B,) face size, pixels
    neck0, head0 = init.body_pose[:, NECK_ROW].clone(), init.body_pose[:, HEAD_ROW].clone()
    leaves = {"neck": neck0.clone(), "head": head0.clone(), "jaw": init.jaw_pose.clone().float(),
              "expr": init.expr.clone().float()}

    def current() -> SmplxParams:
        body = init.body_pose.clone()
        body[:, NECK_ROW], body[:, HEAD_ROW] = leaves["neck"], leaves["head"]
        return init.replace(body_pose=body, jaw_pose=leaves["jaw"], expr=leaves["expr"])

    def objective() -> Tensor:
        pred = project_landmarks_px(layer, current(), focal_px, princpt_px)
        res = (pred - kp) / size[:, None, None]
        data = (gmof(res, cfg.sigma).sum(-1) * w).sum(1) / w.sum(1)
        prior = (cfg.w_jaw * leaves["jaw"].pow(2).sum(1) + cfg.w_expr * leaves["expr"].pow(2).sum(1)
                 + cfg.w_head * ((leaves["neck"] - neck0).pow(2).sum(1) + (leaves["head"] - head0).pow(2).sum(1)))
        return data + prior

    with torch.no_grad():
        init_err = mean_error_px(project_landmarks_px(layer, init, focal_px, princpt_px), kp, mask)
    for names, iters in ((("neck", "head"), cfg.iters_head), (("neck", "head", "jaw", "expr"), cfg.iters_full)):
        adam_minimise([leaves[n] for n in names], objective, iters, cfg.lr)
    with torch.no_grad():
        final = current().detach()
        err = mean_error_px(project_landmarks_px(layer, final, focal_px, princpt_px), kp, mask)
    return FaceFit(final, err, init_err)


__all__ = ["FaceFit", "FaceFitConfig", "fit_face", "project_landmarks_px"]
