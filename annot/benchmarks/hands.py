"""Synthetic hand benchmark (issue #16's hand rows), exact 3D GT: the per-sample MANO fit, the hand annotator trained
with Algorithm 1, and the annotator's prediction refined by the fit.

Like the body's synthetic benchmark (:mod:`annot.benchmarks.synthetic`): hands of the MANO-format model (the free
stand-in by default) drawn by :func:`annot.hands.synthetic.draw_hands`: random poses (the model's own pose PCA,
first ``num_comps`` directions with N(0, ``pose_std``) coefficients), random global rotations, 0.5-1.5 m in front of
a pinhole camera; their 21 keypoints are projected (+ Gaussian pixel noise ``noise_px``). Every method gets the
setting of the whole-body pipeline: the wrist anchor = the true wrist + N(0, ``anchor_noise_m``) per axis (the body's
wrist error); the fit starts from the true rotation turned by ``init_error_deg`` about a random axis (the body's
forearm error).

Rows (each: wrist-relative MPJPE and PA-MPJPE over the 21 keypoints in mm, FreiHAND's protocol after wrist
alignment, and the 2D error to the noisy keypoints in px, all with the hand hanging at the anchor):

- ``start``: the mean hand at the fit's start rotation;
- ``fit``: :func:`annot.fitting.hands.fit_hands` (per-sample fit, the baseline);
- ``annotator`` (:func:`bench_hand_annotator`): f_hand trained with Algorithm 1 (:mod:`annot.hands.algorithm`) on the
  free auxiliary set (held-out seed) + these hands as the target split (their rendered crops, noisy 2D keypoints
  only), then predicting them;
- ``annotator_fit``: the fit started from the annotator's rotation, finger pose and shape.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from annot.body_models.wholebody import Hand21
from annot.fitting.hands import HandFit, HandFitConfig, fit_hands
from annot.geometry.cameras import perspective_project
from annot.geometry.rotations import rotmat_to_rotvec
from annot.metrics.mpjpe import mpjpe_per_sample_mm


@dataclass
class HandBenchConfig:
    """Settings of the synthetic hand benchmark (module docstring): ``num_hands`` hands drawn from ``seed``; poses
    from the first ``num_comps`` pose-PCA directions with N(0, ``pose_std``) coefficients; keypoint noise ``noise_px``
    (pixels, per axis); wrist-anchor noise ``anchor_noise_m`` (metres, per axis); start rotation ``init_error_deg``
    (degrees) off the true one; pinhole focal length ``focal_px`` (pixels)."""

    num_hands: int = 64
    seed: int = 0
    num_comps: int = 6
    pose_std: float = 1.0
    noise_px: float = 1.0
    anchor_noise_m: float = 0.02
    init_error_deg: float = 30.0
    focal_px: float = 1000.0


def _draw(layer, cfg: HandBenchConfig):
    from annot.hands.synthetic import draw_hands

    return draw_hands(layer, cfg.num_hands, cfg.seed, cfg.num_comps, cfg.pose_std, cfg.noise_px, cfg.anchor_noise_m,
                      cfg.init_error_deg, cfg.focal_px)


def _anchored(layer, rotmat: torch.Tensor, hand_pose: torch.Tensor, betas: torch.Tensor, anchor: torch.Tensor,
              transl: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 21, 3) keypoints of MANO posed with the parameters, the wrist at ``anchor`` (or at ``transl``'s place)."""
    n = rotmat.shape[0]
    with torch.no_grad():
        out = layer(global_orient=rotmat_to_rotvec(rotmat), hand_pose=hand_pose.reshape(n, 45), betas=betas,
                    transl=transl)
        kps = Hand21(layer)(out.joints, out.vertices)
    return kps if transl is not None else kps - kps[:, :1] + anchor[:, None]


def _scores(kps: torch.Tensor, hands) -> dict[str, float]:
    proj = perspective_project(kps, hands.focal_px, hands.princpt_px)
    return {"mpjpe_mm": float(mpjpe_per_sample_mm(kps, hands.joints_cam_m, root_index=0).mean()),
            "pa_mpjpe_mm": float(mpjpe_per_sample_mm(kps, hands.joints_cam_m, root_index=0, procrustes=True).mean()),
            "kp2d_err_px": float((proj - hands.kp2d_px).norm(dim=-1).mean())}


def _fit(layer, hands, init_rotmat, fit_cfg, **init) -> tuple[HandFit, float]:
    n = hands.kp2d_px.shape[0]
    t0 = time.perf_counter()
    fit = fit_hands(layer, hands.kp2d_px, torch.ones(n, 21, dtype=torch.bool), hands.focal_px, hands.princpt_px,
                    hands.anchor_m, init_rotmat, fit_cfg, **init)
    return fit, time.perf_counter() - t0


def bench_hand_fit(layer, cfg: HandBenchConfig, fit_cfg: HandFitConfig | None = None) -> dict[str, dict[str, float]]:
    """The ``start`` and ``fit`` rows on the MANO ``layer`` (module docstring).

    Returns:
        ``{"start": {...}, "fit": {...}}`` with ``mpjpe_mm``, ``pa_mpjpe_mm``, ``kp2d_err_px`` (means over the
        hands) and ``fit.seconds``.
    """
    hands = _draw(layer, cfg)
    n = cfg.num_hands
    start = _anchored(layer, hands.init_rotmat, torch.zeros(n, 45), torch.zeros(n, layer.num_betas), hands.anchor_m)
    fit, seconds = _fit(layer, hands, hands.init_rotmat, fit_cfg)
    fitted = _anchored(layer, fit.global_rotmat, fit.hand_pose, fit.betas, hands.anchor_m, fit.transl_m)
    return {"start": _scores(start, hands), "fit": {**_scores(fitted, hands), "seconds": seconds}}


def bench_hand_annotator(layer, mano_path: str, cfg: HandBenchConfig, annot_cfg, fit_cfg: HandFitConfig | None = None
                         ) -> dict[str, dict[str, float]]:
    """The ``annotator`` and ``annotator_fit`` rows (module docstring) on the same hands as :func:`bench_hand_fit`.

    Args:
        layer: the right MANO of ``mano_path``.
        annot_cfg: :class:`annot.hands.algorithm.HandAnnotatorConfig` (training budget, auxiliary set, cache).

    Returns:
        ``{"annotator": {..., "seconds", "aux_mpjpe_mm"}, "annotator_fit": {..., "seconds"}}``.
    """
    from annot.hands.algorithm import run_algorithm1
    from annot.hands.synthetic import make_hand_set, render_crops

    hands = _draw(layer, cfg)
    t0 = time.perf_counter()
    aux = make_hand_set(layer, annot_cfg.aux, annot_cfg.crop_size, annot_cfg.crop_scale, mano_path,
                        annot_cfg.cache_dir)
    target = render_crops(hands, layer.faces.astype(np.int64), annot_cfg.crop_size, annot_cfg.crop_scale,
                          seed=cfg.seed + 7, sample_prefix="bench")
    target.joints_rel_m = None  # the target split is 2D-only
    render_s = time.perf_counter() - t0
    out = run_algorithm1(mano_path, aux, target, annot_cfg)
    pred = out["target"]
    kps = _anchored(layer, pred["global_rotmat"], pred["hand_pose"], pred["betas"], hands.anchor_m)
    fit, seconds = _fit(layer, hands, pred["global_rotmat"], fit_cfg, init_hand_pose=pred["hand_pose"],
                        init_betas=pred["betas"])
    fitted = _anchored(layer, fit.global_rotmat, fit.hand_pose, fit.betas, hands.anchor_m, fit.transl_m)
    train_s = sum(out["seconds"].values())
    return {"annotator": {**_scores(kps, hands), "seconds": render_s + train_s, "aux_mpjpe_mm": out["aux_mpjpe_mm"],
                          "loss_mocap_first_last": [out["history"]["mocap"][0], out["history"]["mocap"][-1]],
                          "loss_itw_first_last": [out["history"]["itw"][0], out["history"]["itw"][-1]]},
            "annotator_fit": {**_scores(fitted, hands), "seconds": seconds}}


__all__ = ["HandBenchConfig", "bench_hand_annotator", "bench_hand_fit"]
