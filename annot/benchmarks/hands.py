"""Synthetic hand benchmark of the per-sample MANO fit (issue #16's hand baseline row), exact 3D GT.

Like the body's synthetic benchmark (:mod:`annot.benchmarks.synthetic`): hands of the MANO-format model (the free
stand-in by default) in random poses (the model's own pose PCA, ``hands_components``, first ``num_comps``
directions with N(0, ``pose_std``) coefficients) and random global rotations, placed 0.5-1.5 m in front of a
pinhole camera; their 21 keypoints are projected (+ Gaussian pixel noise) and handed to
:func:`annot.fitting.hands.fit_hands` with the setting of the whole-body pipeline: the wrist anchor = the true
wrist + N(0, ``anchor_noise_m``) per axis (the body's wrist error), the start rotation = the true one turned by
``init_error_deg`` about a random axis (the body's forearm error). Reported per method ("mean hand at the start"
and "fit"): wrist-relative MPJPE and PA-MPJPE over the 21 keypoints (mm) and the 2D error (px).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from annot.body_models.wholebody import Hand21
from annot.fitting.hands import HandFitConfig, fit_hands
from annot.geometry.cameras import perspective_project
from annot.geometry.rotations import rotmat_to_rotvec, rotvec_to_rotmat
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


def _random_rotations(n: int, g: torch.Generator) -> torch.Tensor:
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1).reshape(n, 3, 3)


def bench_hand_fit(layer, cfg: HandBenchConfig, fit_cfg: HandFitConfig | None = None) -> dict[str, dict[str, float]]:
    """Run the benchmark on the MANO ``layer`` (module docstring).

    Returns:
        ``{"start": {...}, "fit": {...}}`` with ``mpjpe_mm``, ``pa_mpjpe_mm``, ``kp2d_err_px`` (means over the
        hands) and ``fit.seconds``.
    """
    import time

    g = torch.Generator().manual_seed(cfg.seed)
    n = cfg.num_hands
    comps = layer.hand_components.detach()[: cfg.num_comps] if hasattr(layer, "hand_components") else torch.eye(45)
    pose = (cfg.pose_std * torch.randn(n, cfg.num_comps, generator=g)) @ comps[: cfg.num_comps]
    rot = _random_rotations(n, g)
    lo, hi = torch.tensor([-0.2, -0.2, 0.5]), torch.tensor([0.2, 0.2, 1.5])
    wrist = lo + (hi - lo) * torch.rand(n, 3, generator=g)
    keypoints = Hand21(layer)
    with torch.no_grad():
        out = layer(global_orient=rotmat_to_rotvec(rot), hand_pose=pose, betas=torch.zeros(n, layer.num_betas))
        gt = keypoints(out.joints, out.vertices)
        gt = gt - gt[:, :1] + wrist[:, None]
    focal = torch.full((n, 2), cfg.focal_px)
    princpt = torch.tensor([[320.0, 240.0]]).repeat(n, 1)
    kp2d = perspective_project(gt, focal, princpt) + cfg.noise_px * torch.randn(n, 21, 2, generator=g)
    axis = torch.randn(n, 3, generator=g)
    turn = rotvec_to_rotmat(axis / axis.norm(dim=1, keepdim=True) * math.radians(cfg.init_error_deg))
    init = turn @ rot
    anchor = wrist + cfg.anchor_noise_m * torch.randn(n, 3, generator=g)
    with torch.no_grad():
        start = layer(global_orient=rotmat_to_rotvec(init), hand_pose=torch.zeros(n, 45),
                      betas=torch.zeros(n, layer.num_betas))
        start_kps = keypoints(start.joints, start.vertices)
        start_kps = start_kps - start_kps[:, :1] + anchor[:, None]
    t0 = time.perf_counter()
    fit = fit_hands(layer, kp2d, torch.ones(n, 21, dtype=torch.bool), focal, princpt, anchor, init, fit_cfg)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        res = layer(global_orient=rotmat_to_rotvec(fit.global_rotmat), hand_pose=fit.hand_pose.reshape(n, 45),
                    betas=fit.betas, transl=fit.transl_m)
        fit_kps = keypoints(res.joints, res.vertices)

    def scores(kps: torch.Tensor) -> dict[str, float]:
        proj = perspective_project(kps, focal, princpt)
        return {"mpjpe_mm": float(mpjpe_per_sample_mm(kps, gt, root_index=0).mean()),
                "pa_mpjpe_mm": float(mpjpe_per_sample_mm(kps, gt, root_index=0, procrustes=True).mean()),
                "kp2d_err_px": float((proj - kp2d).norm(dim=-1).mean())}

    return {"start": scores(start_kps), "fit": {**scores(fit_kps), "seconds": seconds}}


__all__ = ["HandBenchConfig", "bench_hand_fit"]
