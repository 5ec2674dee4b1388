"""NeuralAnnot + fit: refine the annotator's pseudo-GTs with a warm-started, batched SMPLify (beyond the paper).

The annotator f's prediction initialises :class:`annot.fitting.smplify.SMPLify2D` with the same VPoser
prior: its body pose is encoded to the prior's latent mean, and only the last, low-regularisation body
stages run (SMPLify-X's weights 57.4 / 4.78 for the pose and 10 / 5 for the shape), because the warm start
already sits near the answer; SMPLify-X's authors give the same advice for a good initialisation. Every
sample is refined at once in one batch. With ``try_flipped`` (default) a second fit starts from f's orientation
turned 180 deg about the body's own vertical axis and the lower final objective wins per sample: the same
two-facing trial that the SMPLify baseline (:class:`annot.fitting.smplify.SMPLify2D`, ``try_flipped``) makes,
so the warm start is not the only one of the two to be held to one facing.

A refined fit is **kept** only when both hold:

* it lowers the mean 2D error over the labelled keypoints (original-image pixels) by at least
  ``min_gain_px``; and
* it stays in the prior's typical set: ``|z| <= max_z_norm``, where the default is the 99 % quantile of the
  norm of a D-dimensional standard normal (VPoser's latent prior N(0, I); ``sqrt(chi2.ppf(0.99, D))``, 7.31
  for D = 32), and ``max |beta| <= max_abs_beta`` (3, the shape sanity bound of mks0601 / SPIN).
  A fit that lowers the 2D error by leaving the prior's typical set is chasing annotation noise.

Otherwise f's prediction is kept unchanged. Every entry gets the quality fields ``refine_kept`` (0 / 1),
``refine_from_f`` (1: the candidate started from f, 0: from SMPLify's own start),
``kp2d_err_px_f`` (f's own 2D error), ``kp2d_err_px_fit`` and ``z_norm_fit`` (the candidate's), and
``kp2d_err_px`` (of the kept parameters).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from annot.fitting.smplify import POSE_PRIOR_WEIGHTS, SHAPE_PRIOR_WEIGHTS, SMPLify2D
from annot.geometry.rotations import rotmat_to_rotvec, rotvec_to_rotmat

#: cameras NeuralAnnot + fit can work in (``algorithm.refine_camera``): CLIFF's estimated full-image camera
#: (:func:`annot.geometry.cameras.estimated_image_camera`, for images without intrinsics) or f's own crop camera.
REFINE_CAMERAS = ("estimated", "crop")

#: the export's pseudo-GT record (kept a plain Any here so that fitting does not import the export room).
PseudoGTLike = Any


def typical_z_norm(latent_dim: int, quantile: float = 0.99) -> float:
    """``quantile`` of the norm of a ``latent_dim``-dimensional standard normal vector (chi distribution).

    Raises:
        ValueError: ``latent_dim < 1`` or ``quantile`` outside (0, 1).
    """
    from scipy.stats import chi2

    if latent_dim < 1 or not 0 < quantile < 1:
        raise ValueError(f"typical_z_norm: latent_dim >= 1 and 0 < quantile < 1, got {latent_dim}, {quantile}")
    return float(math.sqrt(chi2.ppf(quantile, latent_dim)))


@dataclass(frozen=True)
class RefineConfig:
    """Settings of :func:`refine_pseudo_gts` (config group ``algorithm.refine_*``).

    ``iters``: Adam steps per stage; ``stages``: how many of SMPLify-X's last body stages run (1-4);
    ``min_gain_px``: least 2D improvement to keep a fit (pixels); ``max_z_norm``: typical-set bound on |z|
    (None: :func:`typical_z_norm` of the prior); ``max_abs_beta``: shape bound; ``facings``: how many starts
    turned about the body's vertical axis by multiples of ``360 / facings`` deg from f's orientation (1: f's
    alone; 2: also turned 180 deg, SMPLify's two-facing trial; 4: every 90 deg); the lowest final objective wins;
    ``cold_start``: also run SMPLify's own fit (all stages, its two standard starts) and keep, per sample, whichever
    of the warm and cold fits ends with the lower objective (f then adds starts to SMPLify rather than replacing its).
    """

    iters: int = 60
    stages: int = 2
    min_gain_px: float = 0.0
    max_z_norm: float | None = None
    max_abs_beta: float = 3.0
    facings: int = 2
    cold_start: bool = True

    def __post_init__(self) -> None:
        if self.iters < 1 or not 1 <= self.stages <= len(POSE_PRIOR_WEIGHTS) or self.min_gain_px < 0 \
                or self.facings < 1:
            raise ValueError(f"RefineConfig: iters >= 1, 1 <= stages <= {len(POSE_PRIOR_WEIGHTS)}, min_gain_px >= 0, "
                             f"facings >= 1; got {self.iters}, {self.stages}, {self.min_gain_px}, {self.facings}")


def _stack(entries: Sequence[PseudoGTLike], name: str) -> Tensor:
    return torch.as_tensor(np.stack([np.asarray(getattr(e, name), np.float64) for e in entries]), dtype=torch.float32)


def project_keypoints_px(body_model: Any, entries: Sequence[PseudoGTLike], convention: str) -> Tensor:
    """(N, J, 2) pixels: the ``convention`` keypoints of ``entries`` regressed from their meshes and projected
    with their own cameras (``focal_px``, ``princpt_px``)."""
    from annot.geometry.cameras import perspective_project

    pose = _stack(entries, "pose_rotvec").reshape(len(entries), 72)
    with torch.no_grad():
        out = body_model(pose[:, :3], pose[:, 3:], _stack(entries, "betas"), _stack(entries, "transl_m"))
        joints, _ = body_model.regress(out.vertices_m, convention)
        return perspective_project(joints, _stack(entries, "focal_px"), _stack(entries, "princpt_px"))


def kp2d_error_px(body_model: Any, entries: Sequence[PseudoGTLike], kp2d_px: Tensor, conf: Tensor,
                  convention: str) -> Tensor:
    """(N,) mean distance in pixels between :func:`project_keypoints_px` of ``entries`` and ``kp2d_px``
    (N, J, 2) over ``conf > 0`` (NaN where none)."""
    proj = project_keypoints_px(body_model, entries, convention)
    mask = (conf > 0).to(proj.dtype)
    dist = (proj - kp2d_px.to(proj.dtype)).norm(dim=-1)
    count = mask.sum(1)
    return torch.where(count > 0, (dist * mask).sum(1) / count.clamp(min=1), torch.full_like(count, float("nan")))


def turned_about_body_vertical(global_orient_rotvec: Tensor, angle_rad: float = math.pi) -> Tensor:
    """(B, 3) axis-angle global orientations turned by ``angle_rad`` (default 180 deg) about the body's own vertical
    (SMPL y) axis: ``R' = R Ry(angle)``, the person turned in place (camera frame, radians)."""
    turn = global_orient_rotvec.new_tensor([0.0, angle_rad, 0.0]).expand_as(global_orient_rotvec)
    return rotmat_to_rotvec(rotvec_to_rotmat(global_orient_rotvec) @ rotvec_to_rotmat(turn))


def _fit_facings(fitter: SMPLify2D, kp2d_px: Tensor, conf: Tensor, focal_px: Tensor, princpt_px: Tensor,
                 convention: str, init: dict[str, Tensor], facings: int) -> Any:
    """Warm-started fits from f's orientation turned by ``k * 360 / facings`` deg about the body's vertical axis,
    ``k = 0 .. facings - 1``, run as one batch of ``facings * N``; per sample the lowest final objective wins."""
    if facings == 1:
        return fitter.fit(kp2d_px, conf, focal_px, princpt_px, convention, init)
    n = kp2d_px.shape[0]
    starts = {k: torch.cat([v] * facings) for k, v in init.items()}
    starts["global_orient"] = torch.cat([turned_about_body_vertical(init["global_orient"], 2 * math.pi * k / facings)
                                         if k else init["global_orient"] for k in range(facings)])
    fit = fitter.fit(*(torch.cat([t] * facings) for t in (kp2d_px, conf, focal_px, princpt_px)), convention, starts)
    pick = torch.arange(n, device=fit.loss.device) + n * fit.loss.view(facings, n).argmin(dim=0)
    return replace(fit, pose_rotvec=fit.pose_rotvec[pick], betas=fit.betas[pick], transl_m=fit.transl_m[pick],
                   loss=fit.loss[pick], z=fit.z[pick] if fit.z is not None else None,
                   kp2d_err_px=fit.kp2d_err_px[pick])


def move_entries_to_camera(entries: Sequence[PseudoGTLike], body_model: Any, focal_px: Tensor,
                           princpt_px: Tensor) -> list[PseudoGTLike]:
    """``entries`` re-expressed in the image cameras ``focal_px`` / ``princpt_px`` (N, 2) pixels: each body turns
    with the ray through its root and keeps its root pixel and image size
    (:func:`annot.geometry.cameras.move_to_camera`, CLIFF's correction of crop-camera orientations). Returns new
    records (``dataclasses.replace``) with ``pose_rotvec[0]``, ``transl_m``, ``focal_px`` and ``princpt_px`` changed.

    Raises:
        ValueError: a camera array that is not (N, 2), or a root behind its camera.
    """
    from annot.geometry.cameras import move_to_camera

    n = len(entries)
    if focal_px.shape != (n, 2) or princpt_px.shape != (n, 2):
        raise ValueError(f"move_entries_to_camera: {n} entries need (N, 2) focal_px and princpt_px, got "
                         f"{tuple(focal_px.shape)}, {tuple(princpt_px.shape)}")
    if n == 0:
        return []
    pose = _stack(entries, "pose_rotvec").reshape(n, 72)
    transl = _stack(entries, "transl_m")
    with torch.no_grad():
        root = body_model(pose[:, :3], pose[:, 3:], _stack(entries, "betas"), transl).joints_smpl24_m[:, 0]
    orient, root_new = move_to_camera(rotvec_to_rotmat(pose[:, :3]), root, _stack(entries, "focal_px"),
                                      _stack(entries, "princpt_px"), focal_px.float(), princpt_px.float())
    orient_rotvec = rotmat_to_rotvec(orient).numpy().astype(np.float64)
    shift = (root_new - root).numpy().astype(np.float64)
    out = []
    for i, e in enumerate(entries):
        pose_i = np.array(e.pose_rotvec, np.float64).reshape(24, 3)
        pose_i[0] = orient_rotvec[i]
        out.append(replace(e, pose_rotvec=pose_i, transl_m=np.asarray(e.transl_m, np.float64) + shift[i],
                           focal_px=focal_px[i].numpy().astype(np.float64),
                           princpt_px=princpt_px[i].numpy().astype(np.float64)))
    return out


def _cold_fit(body_model: Any, vposer: Any, config: RefineConfig, kp2d_px: Tensor, conf: Tensor, focal_px: Tensor,
              princpt_px: Tensor, convention: str) -> Any:
    """SMPLify's own fit (every stage, from upright facing the camera and facing away), with the same prior,
    steps and camera as the warm-started one: the start ``cold_start`` adds."""
    fitter = SMPLify2D(body_model, prior="vposer", vposer=vposer, num_iters_per_stage=config.iters, try_flipped=True)
    return fitter.fit(kp2d_px, conf, focal_px, princpt_px, convention)


def _better_of(warm: Any, cold: Any) -> tuple[Any, Tensor]:
    """Per sample the fit with the lower final objective (both end at SMPLify-X's last stage weights, so their
    objectives compare); returns it and the (N,) mask of samples won by the warm start (ties go to it)."""
    from_warm = warm.loss <= cold.loss

    def pick(a: Tensor, b: Tensor) -> Tensor:
        return torch.where(from_warm.view(-1, *([1] * (a.dim() - 1))), a, b)

    chosen = replace(warm, pose_rotvec=pick(warm.pose_rotvec, cold.pose_rotvec), betas=pick(warm.betas, cold.betas),
                     transl_m=pick(warm.transl_m, cold.transl_m), loss=pick(warm.loss, cold.loss),
                     z=pick(warm.z, cold.z), kp2d_err_px=pick(warm.kp2d_err_px, cold.kp2d_err_px))
    return chosen, from_warm.cpu()


def refine_pseudo_gts(entries: Sequence[PseudoGTLike], kp2d_px: Tensor, conf: Tensor, body_model: Any,
                      vposer: Any, convention: str = "coco17", config: RefineConfig = RefineConfig(),
                      camera: tuple[Tensor, Tensor] | None = None) -> tuple[list[PseudoGTLike], dict[str, Any]]:
    """Refine N pseudo-GTs at once (module docstring).

    Args:
        entries: N records with ``pose_rotvec`` (24, 3) radians, ``betas`` (B,), ``transl_m`` (3,) metres in the
            camera frame of the original image, ``focal_px`` / ``princpt_px`` (2,) pixels and a ``quality`` dict
            (:class:`annot.io.export.PseudoGT`); the camera is kept fixed.
        kp2d_px: (N, J, 2) annotated keypoints of ``convention`` in original-image pixels.
        conf: (N, J) visibility / confidence, 0 = not labelled.
        body_model: :class:`annot.body_models.BodyModel`; vposer: the frozen prior f was trained with.
        convention: keypoint convention of ``kp2d_px``.
        config: :class:`RefineConfig`.
        camera: optional ``(focal_px, princpt_px)``, each (N, 2) original-image pixels: the image's own
            camera (known intrinsics, or an estimate such as CLIFF's ``sqrt(W^2 + H^2)`` focal at the image
            centre). f's predictions are first moved into it (:func:`move_entries_to_camera`) and the fit
            runs there; the moved prediction is what a rejected fit falls back to. None: each entry's own
            camera (f's crop camera) is kept.

    Returns:
        ``(entries, summary)``: new records (``dataclasses.replace``; kept or f's) with the quality fields of
        the module docstring, and ``{"kept": k, "total": N, "seconds": s, "max_z_norm": bound}``.

    Raises:
        ValueError: shapes that do not match, or no prior.
    """
    if vposer is None:
        raise ValueError("refine_pseudo_gts: needs the VPoser prior the annotator used (prior.pose_prior=vposer)")
    n = len(entries)
    if kp2d_px.shape[:1] != (n,) or conf.shape != kp2d_px.shape[:2]:
        raise ValueError(f"refine_pseudo_gts: {n} entries need kp2d_px (N, J, 2) and conf (N, J), got "
                         f"{tuple(kp2d_px.shape)}, {tuple(conf.shape)}")
    if n == 0:
        return [], {"kept": 0, "total": 0, "seconds": 0.0}
    start = time.perf_counter()
    bound = config.max_z_norm if config.max_z_norm is not None else typical_z_norm(vposer.latent_dim)
    if camera is not None:
        entries = move_entries_to_camera(entries, body_model, *camera)
    kp2d_px, conf = kp2d_px.float(), conf.float()
    pose = _stack(entries, "pose_rotvec").reshape(n, 24, 3)
    with torch.no_grad():
        z0 = vposer.encode(pose[:, 1:22].reshape(n, 63)).mean
    init = {"global_orient": pose[:, 0], "z": z0, "betas": _stack(entries, "betas"),
            "transl": _stack(entries, "transl_m")}
    fitter = SMPLify2D(body_model, prior="vposer", vposer=vposer, num_iters_per_stage=config.iters,
                       pose_prior_weights=POSE_PRIOR_WEIGHTS[-config.stages:],
                       shape_prior_weights=SHAPE_PRIOR_WEIGHTS[-config.stages:])
    focal, princpt = _stack(entries, "focal_px"), _stack(entries, "princpt_px")
    fit = _fit_facings(fitter, kp2d_px, conf, focal, princpt, convention, init, config.facings)
    from_f = torch.ones(n, dtype=torch.bool)
    if config.cold_start:
        fit, from_f = _better_of(fit, _cold_fit(body_model, vposer, config, kp2d_px, conf, focal, princpt, convention))
    candidates = [replace(e, pose_rotvec=fit.pose_rotvec[i].detach().numpy().astype(np.float64),
                          betas=fit.betas[i].detach().numpy().astype(np.float64),
                          transl_m=fit.transl_m[i].detach().numpy().astype(np.float64)) for i, e in enumerate(entries)]
    err_f = kp2d_error_px(body_model, entries, kp2d_px, conf, convention)
    err_fit = kp2d_error_px(body_model, candidates, kp2d_px, conf, convention)
    z_norm = fit.z.norm(dim=1)
    beta_ok = fit.betas.abs().amax(dim=1) <= config.max_abs_beta
    keep = (err_fit <= err_f - config.min_gain_px) & (z_norm <= bound) & beta_ok
    out = []
    for i, (old, new) in enumerate(zip(entries, candidates)):
        chosen = new if bool(keep[i]) else old
        quality = dict(old.quality, refine_kept=float(keep[i]), refine_from_f=float(from_f[i]),
                       kp2d_err_px_f=float(err_f[i]),
                       kp2d_err_px_fit=float(err_fit[i]), z_norm_fit=float(z_norm[i]),
                       kp2d_err_px=float(err_fit[i] if keep[i] else err_f[i]))
        out.append(replace(chosen, quality=quality))
    return out, {"kept": int(keep.sum()), "kept_from_f": int((keep & from_f).sum()), "total": n,
                 "seconds": float(time.perf_counter() - start), "max_z_norm": bound}


__all__ = ["REFINE_CAMERAS", "RefineConfig", "kp2d_error_px", "move_entries_to_camera", "project_keypoints_px",
           "refine_pseudo_gts", "turned_about_body_vertical",
           "typical_z_norm"]
