"""SimpleBaseline's heatmaps: Gaussian targets at stride 4, arg-max decoding with the quarter-pixel shift, the
joints MSE with target weights, and PCK of the torso diameter.
"""
from __future__ import annotations

import torch
from torch import Tensor

from annot.keypoints import get_convention

COCO17 = get_convention("coco17")
L_SHOULDER, R_HIP = COCO17.index("L_Shoulder"), COCO17.index("R_Hip")


# ------------------------------------------------------------------------------------------ heatmaps
def gaussian_heatmaps(kp2d_px: Tensor, kp2d_mask: Tensor, heatmap_hw: tuple[int, int], stride: float,
                      sigma: float) -> tuple[Tensor, Tensor]:
    """SimpleBaseline Gaussian targets (``JointsDataset.generate_target``, ``target_type='gaussian'``).

    For a keypoint at crop pixel ``(x, y)`` the centre is the heatmap pixel
    ``mu = (floor(x / stride + 0.5), floor(y / stride + 0.5))``; the target is
    ``exp(-((u - mu_x)^2 + (v - mu_y)^2) / (2 sigma^2))`` inside the ``(6 sigma + 1)``-wide square
    around ``mu`` (``|u - mu_x| <= 3 sigma`` and ``|v - mu_y| <= 3 sigma``) and 0 outside. The target
    weight is 0 for a masked keypoint and for one whose square lies entirely outside the heatmap
    (``mu - 3 sigma >= size`` or ``mu + 3 sigma + 1 < 0``, the reference's test), else 1.

    Args:
        kp2d_px: (B, J, 2) crop pixels (x, y).
        kp2d_mask: (B, J) 1 / 0 (or bool).
        heatmap_hw: (h, w) heatmap size in heatmap pixels.
        stride: crop pixels per heatmap pixel (4 for SimpleBaseline).
        sigma: std in heatmap pixels (2 for 64 x 48 heatmaps).

    Returns:
        ``(heatmaps (B, J, h, w) float32 in [0, 1], target_weight (B, J) float32)``; masked or
        out-of-range keypoints have all-zero heatmaps.

    Raises:
        ValueError: ``kp2d_px`` not (B, J, 2) or ``kp2d_mask`` not (B, J).
    """
    if kp2d_px.ndim != 3 or kp2d_px.shape[-1] != 2 or tuple(kp2d_mask.shape) != tuple(kp2d_px.shape[:2]):
        raise ValueError(f"gaussian_heatmaps: need kp2d_px (B, J, 2) and kp2d_mask (B, J), got "
                         f"{tuple(kp2d_px.shape)} and {tuple(kp2d_mask.shape)}")
    height, width = int(heatmap_hw[0]), int(heatmap_hw[1])
    mu = torch.floor(kp2d_px.float() / stride + 0.5)  # (B, J, 2)
    radius = 3.0 * sigma
    valid = kp2d_mask.bool() & ~((mu[..., 0] - radius >= width) | (mu[..., 1] - radius >= height)
               | (mu[..., 0] + radius + 1 < 0) | (mu[..., 1] + radius + 1 < 0))
    u = torch.arange(width, dtype=torch.float32, device=kp2d_px.device)
    v = torch.arange(height, dtype=torch.float32, device=kp2d_px.device)
    du = u.view(1, 1, 1, width) - mu[..., 0, None, None]  # (B, J, 1, w)
    dv = v.view(1, 1, height, 1) - mu[..., 1, None, None]  # (B, J, h, 1)
    heatmaps = torch.exp(-(du ** 2 + dv ** 2) / (2.0 * sigma ** 2))
    heatmaps = heatmaps * ((du.abs() <= radius) & (dv.abs() <= radius))
    weight = valid.float()
    return heatmaps * weight[..., None, None], weight


def decode_heatmaps(heatmaps: Tensor, stride: float) -> tuple[Tensor, Tensor]:
    """Heatmaps -> keypoints by argmax with the quarter-pixel shift (``get_max_preds`` + ``get_final_preds``).

    The argmax ``(u, v)`` (first maximum in row-major order) is shifted by ``0.25 * sign(H[v, u+1] -
    H[v, u-1])`` in x when ``1 <= u <= w - 2`` and likewise in y, then scaled to crop pixels:
    ``x = u * stride``, ``y = v * stride``.

    Args:
        heatmaps: (B, J, h, w).
        stride: crop pixels per heatmap pixel.

    Returns:
        ``(kp2d_px (B, J, 2) crop pixels, maxvals (B, J))``.

    Raises:
        ValueError: ``heatmaps`` is not 4-D.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"decode_heatmaps: need heatmaps (B, J, h, w), got {tuple(heatmaps.shape)}")
    batch, joints, height, width = heatmaps.shape
    flat = heatmaps.detach().float().reshape(batch, joints, -1)
    maxvals, idx = flat.max(dim=-1)
    u, v = idx % width, torch.div(idx, width, rounding_mode="floor")
    coords = torch.stack([u, v], dim=-1).float()
    hm = heatmaps.detach().float()
    bj = torch.arange(batch * joints, device=hm.device)
    hm2 = hm.reshape(batch * joints, height, width)
    uf, vf = u.reshape(-1), v.reshape(-1)
    ok_x = (uf >= 1) & (uf <= width - 2)
    ok_y = (vf >= 1) & (vf <= height - 2)
    dx = hm2[bj, vf, (uf + 1).clamp(max=width - 1)] - hm2[bj, vf, (uf - 1).clamp(min=0)]
    dy = hm2[bj, (vf + 1).clamp(max=height - 1), uf] - hm2[bj, (vf - 1).clamp(min=0), uf]
    shift = torch.stack([torch.sign(dx) * ok_x, torch.sign(dy) * ok_y], dim=-1) * 0.25
    coords = (coords.reshape(-1, 2) + shift).reshape(batch, joints, 2)
    return coords * stride, maxvals


def joints_mse_loss(heatmaps_pred: Tensor, heatmaps_gt: Tensor, target_weight: Tensor) -> Tensor:
    """SimpleBaseline ``JointsMSELoss(use_target_weight=True)``: ``0.5 * mean((w * (pred - gt))^2)``
    over batch, joints and heatmap pixels. Shapes (B, J, h, w), (B, J, h, w), (B, J) -> scalar."""
    diff = (heatmaps_pred - heatmaps_gt) * target_weight[..., None, None]
    return 0.5 * diff.pow(2).mean()


def pck(pred_px: Tensor, gt_px: Tensor, mask: Tensor, alpha: float = 0.5) -> tuple[Tensor, Tensor]:
    """PCK@alpha of the torso diameter (module docstring): per-keypoint correctness and its count mask.

    Args:
        pred_px, gt_px: (N, 17, 2) COCO-17 keypoints in the same pixel frame.
        mask: (N, 17) GT validity.
        alpha: threshold as a fraction of ``||gt[L_Shoulder] - gt[R_Hip]||``.

    Returns:
        ``(correct (N, 17) bool, counted (N, 17) bool)``; a person without both torso keypoints (or
        with a zero torso) is not counted. ``correct[counted].float().mean()`` is the PCK.
    """
    torso = (gt_px[:, L_SHOULDER] - gt_px[:, R_HIP]).norm(dim=-1)  # (N,)
    has_torso = mask[:, L_SHOULDER].bool() & mask[:, R_HIP].bool() & (torso > 0)
    counted = mask.bool() & has_torso[:, None]
    err = (pred_px - gt_px).norm(dim=-1)
    return (err <= alpha * torso[:, None]) & counted, counted
