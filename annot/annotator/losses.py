"""Losses of the annotator. Every data term takes a mask; regularisers are plain L2.

NeuralAnnot (CVPRW 2022, Sec. 3.2, in-the-wild mode): L1 between projected model joints and GT 2D
keypoints, masked by visibility, plus L2 regularisers on the parameters ("lambda * theta^2").
"""
from __future__ import annotations

import torch


def masked_l1_kp2d(pred_px: torch.Tensor, target_px: torch.Tensor, mask: torch.Tensor,
                   norm_wh: tuple[float, float]) -> torch.Tensor:
    """Visibility-masked L1 between 2D keypoints, in crop pixels divided by a unit per axis.

    Args:
        pred_px: (B, J, 2) projected model joints, crop pixels.
        target_px: (B, J, 2) GT keypoints, crop pixels.
        mask: (B, J) 1 for a visible, in-crop keypoint, else 0.
        norm_wh: pixels per loss unit along x and y (the annotator uses Pose2Pose heatmap units,
            32 crop pixels; the crop size would make the loss resolution-independent).

    Returns:
        Scalar: sum of |d| over valid coordinates / number of valid coordinates (0 when none is valid).
    """
    if pred_px.shape != target_px.shape or pred_px.shape[:2] != mask.shape:
        raise ValueError(f"kp2d shapes disagree: pred {tuple(pred_px.shape)}, target "
                         f"{tuple(target_px.shape)}, mask {tuple(mask.shape)}")
    scale = pred_px.new_tensor(norm_wh)
    diff = ((pred_px - target_px) / scale).abs() * mask.unsqueeze(-1)
    return diff.sum() / (2.0 * mask.sum()).clamp(min=1.0)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 over valid entries: ``sum |pred - target| * mask / (number of valid entries)``.

    Args:
        pred, target: (B, J, C) or (B, D) in any unit (3D joints: metres; parameters: radians / betas).
        mask: (B, J) or (B, D) 0/1; broadcast over the last dimension for (B, J, C) inputs.

    Returns:
        Scalar mean absolute error over valid entries (0 when none is valid).
    """
    if pred.shape != target.shape:
        raise ValueError(f"masked_l1: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    weights = mask[..., None].expand_as(pred) if mask.dim() == pred.dim() - 1 else mask.expand_as(pred)
    weights = weights.to(pred.dtype)
    return ((pred - target).abs() * weights).sum() / weights.sum().clamp(min=1.0)


def l2_regulariser(x: torch.Tensor) -> torch.Tensor:
    """Per-sample squared norm, averaged over the batch: ``mean_b |x_b|^2`` for x (B, ...).

    The ``lambda * (|z|^2 + |beta|^2)`` regulariser of NeuralAnnot / Three Recipes (supp. Table A).
    """
    return x.pow(2).flatten(1).sum(dim=1).mean()


def eft_kp2d_loss_norm(pred_px: torch.Tensor, target_px: torch.Tensor, mask: torch.Tensor,
                       crop_hw: tuple[int, int]) -> torch.Tensor:
    """EFT's normalised 2D loss of each sample, on the scale of its 0.01 rejection threshold.

    SPIN ``train/trainer.py::keypoint_loss`` (which EFT fine-tunes with and thresholds): keypoints in
    crop coordinates normalised to ``[-1, 1]`` (``2 x / size - 1``; here per axis, ``x / (W/2)`` and
    ``y / (H/2)``), ``loss = (conf * MSE(pred, gt)).mean()`` with ``MSELoss(reduction='none')``, i.e. the
    mean over **all** ``J x 2`` coordinates, invisible ones counting as zeros (EFT runs one sample at a
    time, B = 1; here each sample of a batch gets its own value).

    Args:
        pred_px, target_px: (B, J, 2) crop pixels.
        mask: (B, J) visibility / confidence (0-1).
        crop_hw: crop (H, W) in pixels.

    Returns:
        (B,) unitless.
    """
    height, width = crop_hw
    half = pred_px.new_tensor([width / 2.0, height / 2.0])
    sq = ((pred_px - target_px) / half).pow(2) * mask[..., None]
    return sq.flatten(1).mean(dim=1)
