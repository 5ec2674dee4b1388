"""Losses of the annotator. Every data term takes a mask; regularisers are plain L2.

NeuralAnnot (CVPRW 2022, Sec. 3.2, in-the-wild mode): L1 between projected model joints and GT 2D
keypoints, masked by visibility, plus L2 regularisers on the parameters ("lambda * theta^2").
"""
from __future__ import annotations

import torch


def masked_l1_kp2d(pred_px: torch.Tensor, target_px: torch.Tensor, mask: torch.Tensor,
                   norm_wh: tuple[float, float]) -> torch.Tensor:
    """Visibility-masked L1 between 2D keypoints, in crop pixels normalised by the crop size.

    Args:
        pred_px: (B, J, 2) projected model joints, crop pixels.
        target_px: (B, J, 2) GT keypoints, crop pixels.
        mask: (B, J) 1 for a visible, in-crop keypoint, else 0.
        norm_wh: (width, height) of the crop in pixels; x is divided by width, y by height, so the loss
            does not depend on the input resolution.

    Returns:
        Scalar: sum of |d| over valid coordinates / number of valid coordinates (0 when none is valid).
    """
    if pred_px.shape != target_px.shape or pred_px.shape[:2] != mask.shape:
        raise ValueError(f"kp2d shapes disagree: pred {tuple(pred_px.shape)}, target "
                         f"{tuple(target_px.shape)}, mask {tuple(mask.shape)}")
    scale = pred_px.new_tensor(norm_wh)
    diff = ((pred_px - target_px) / scale).abs() * mask.unsqueeze(-1)
    return diff.sum() / (2.0 * mask.sum()).clamp(min=1.0)


def kp2d_error_px(pred_px: torch.Tensor, target_px: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean Euclidean 2D error over valid joints, in the pixels of the inputs.

    Args:
        pred_px, target_px: (B, J, 2) pixels (crop or original image, both the same).
        mask: (B, J) 0/1.

    Returns:
        (B,) mean error in pixels; NaN for a sample with no valid joint.
    """
    dist = (pred_px - target_px).norm(dim=-1)
    count = mask.sum(dim=-1)
    err = (dist * mask).sum(dim=-1) / count.clamp(min=1.0)
    return torch.where(count > 0, err, torch.full_like(err, float("nan")))


def l2_regulariser(x: torch.Tensor) -> torch.Tensor:
    """Mean of squared entries: the ``lambda * theta^2`` regulariser of NeuralAnnot (per element)."""
    return x.pow(2).mean()
