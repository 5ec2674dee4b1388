"""Small 2D-keypoint helpers shared by the part fits (:mod:`annot.fitting.face`, :mod:`annot.fitting.hands`) and
the whole-body quality fields."""
from __future__ import annotations

import torch
from torch import Tensor


def box_size_px(kp_px: Tensor, mask: Tensor, floor_px: float = 8.0) -> Tensor:
    """(B,) diagonal (pixels) of the box around the visible points ``kp_px`` (B, J, 2) where ``mask`` (B, J) is
    True, at least ``floor_px`` (a part with one visible point still gets a scale)."""
    inf = torch.full_like(kp_px, float("inf"))
    lo = torch.where(mask[..., None], kp_px, inf).amin(1)
    hi = torch.where(mask[..., None], kp_px, -inf).amax(1)
    return torch.nan_to_num((hi - lo).norm(dim=-1), nan=0.0, posinf=0.0).clamp(min=floor_px)


def mean_error_px(pred_px: Tensor, kp_px: Tensor, mask: Tensor) -> Tensor:
    """(B,) mean pixel distance between ``pred_px`` and ``kp_px`` (B, J, 2) over the points where ``mask`` (B, J)
    is True; nan for a row without any."""
    w = mask.to(pred_px.dtype)
    err = ((pred_px - kp_px).norm(dim=-1) * w).sum(1) / w.sum(1)
    return torch.where(w.sum(1) > 0, err, torch.full_like(err, float("nan")))


__all__ = ["box_size_px", "mean_error_px"]
