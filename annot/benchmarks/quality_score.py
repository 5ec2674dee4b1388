"""Scoring of ``make bench-annot`` (:mod:`annot.benchmarks.quality`): pseudo-GTs against the hidden GT of the
synthetic ITW split, per sample.

mks0601's 3DPW protocol: direct MPJPE / PA-MPJPE on the 14 H36M eval joints regressed from the mesh with the
regressed pelvis as root, MPVPE with the same root; the global-orientation error (geodesic angle between the
camera-frame root rotations, degrees); the 2D error (original pixels) of the projected COCO-17 joints to the
labelled annotations.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from annot.io.export import PseudoGT
from annot.keypoints import H36M_EVAL_JOINTS

METRICS = ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "orient_err_deg", "kp2d_err_px")


def mesh_vertices(body: Any, entries: list[PseudoGT]) -> torch.Tensor:
    """(N, V, 3) camera-frame vertices (m) of ``entries`` posed by ``body`` (:class:`annot.body_models.BodyModel`)."""
    pose = torch.tensor(np.stack([e.pose_rotvec.reshape(72) for e in entries]), dtype=torch.float32)
    betas = torch.tensor(np.stack([e.betas for e in entries]), dtype=torch.float32)
    transl = torch.tensor(np.stack([e.transl_m for e in entries]), dtype=torch.float32)
    with torch.no_grad():
        return body(pose[:, :3], pose[:, 3:], betas, transl).vertices_m


def orientation_error_deg(pred_rotvec: np.ndarray, gt_rotvec: np.ndarray) -> np.ndarray:
    """(N,) geodesic angle in degrees between (N, 3) axis-angle rotations (camera-frame global orientations):
    ``angle(R_gt^T R_pred)``, in [0, 180]."""
    from scipy.spatial.transform import Rotation

    rel = Rotation.from_rotvec(np.asarray(gt_rotvec, np.float64)).inv() * Rotation.from_rotvec(
        np.asarray(pred_rotvec, np.float64))
    return np.degrees(rel.magnitude())


def score(body: Any, itw: dict[str, dict[str, Any]], entries: dict[str, PseudoGT]) -> dict[str, np.ndarray]:
    """Per-sample errors of ``entries`` vs the hidden GT (samples a method skipped get NaN).

    Returns ``{metric: (N,) array}`` for :data:`METRICS` (mm, mm, mm, degrees, px) in ``itw`` order.
    """
    from annot.metrics import mpjpe_per_sample_mm, mpvpe_per_sample_mm

    aids = list(itw)
    out = {m: np.full(len(aids), np.nan) for m in METRICS}
    have = [i for i, a in enumerate(aids) if a in entries]
    if not have:
        return out
    pred_v = mesh_vertices(body, [entries[aids[i]] for i in have])
    gt_v = mesh_vertices(body, [itw[aids[i]]["gt"] for i in have])
    pred_j, gt_j = body.regress(pred_v, "h36m17")[0], body.regress(gt_v, "h36m17")[0]
    ev = list(H36M_EVAL_JOINTS)
    out["mpjpe_mm"][have] = mpjpe_per_sample_mm(pred_j, gt_j, 0, ev).numpy()
    out["pa_mpjpe_mm"][have] = mpjpe_per_sample_mm(pred_j, gt_j, 0, ev, procrustes=True).numpy()
    out["mpvpe_mm"][have] = mpvpe_per_sample_mm(pred_v, gt_v, pred_j[:, 0], gt_j[:, 0]).numpy()
    out["orient_err_deg"][have] = orientation_error_deg(
        np.stack([entries[aids[i]].pose_rotvec.reshape(24, 3)[0] for i in have]),
        np.stack([itw[aids[i]]["gt"].pose_rotvec.reshape(24, 3)[0] for i in have]))
    coco = body.regress(pred_v, "coco17")[0].double()
    for k, i in enumerate(have):
        e, rec = entries[aids[i]], itw[aids[i]]
        xy = coco[k, :, :2] / coco[k, :, 2:].clamp(min=1e-6) * torch.as_tensor(e.focal_px, dtype=torch.float64) \
            + torch.as_tensor(e.princpt_px, dtype=torch.float64)
        d = np.linalg.norm(xy.numpy() - rec["kp2d_px"], axis=1)[rec["vis"]]
        out["kp2d_err_px"][i] = float(d.mean()) if d.size else np.nan
    return out
