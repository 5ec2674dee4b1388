"""EFT baseline: exemplar fine-tuning of a trained annotator on each sample's 2D keypoints.

Follows Joo et al., "Exemplar Fine-Tuning for 3D Human Model Fitting" (3DV 2021), Sec. 3 implementation
details: Adam (default PyTorch betas) with learning rate 5e-6 on the network weights, batch normalisation
and dropout switched off, iterate until the average 2D re-projection error is below 3 pixels or at most 50
iterations, the network weights restored before the next sample, and the sanity check that rejects a fit
whose max |beta| > 5 or whose normalised 2D loss > 0.01 (:func:`annot.io.export.quality_scores`).

Loss (``loss="eft"``, default): the annotator's own 2D keypoint term alone (its ``_losses()["kp2d"]``, L1 in
heatmap units), i.e. EFT's eq. (3) with gamma = 0; EFT also ignores the hips (inconsistent annotation),
``ignore_hips=True`` does the same for the loss and the stopping error. ``loss="annotator"`` adds the
annotator's regularisers (``z_l2`` / ``pose_l2``, ``betas_l2``, PositionNet ``joint_img``). EFT's extra
lower-leg orientation term is not implemented. The stopping error is measured in *original-image* pixels
(crop prediction mapped through ``crop_to_img``, as :mod:`annot.io.export` reports ``kp2d_err_img_px``).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import default_collate

from annot.io.export import quality_scores
from annot.keypoints import get_convention
from annot.metrics import kp2d_error_px
from annot.optim import adam

EFT_LR = 5e-6
EFT_MAX_ITERS = 50
EFT_STOP_PX = 3.0
LOSS_KEYS = ("img", "kp2d_px", "kp2d_mask")
REGULARISERS = ("z_l2", "pose_l2", "betas_l2", "joint_img")


@dataclass
class EFTResult:
    """Per-sample EFT output: ``pred`` (a :meth:`AnnotatorModule.predict_step` dict of one sample, CPU),
    ``iterations`` (optimiser steps taken), ``kp2d_err_px`` (final mean 2D error, original pixels, all
    visible keypoints), ``initial_err_px`` (before fine-tuning), ``seconds`` and ``quality``
    (:func:`annot.io.export.quality_scores`, with ``eft_reject``)."""

    pred: dict[str, Any]
    iterations: int
    kp2d_err_px: float
    initial_err_px: float
    seconds: float
    quality: dict[str, float]


def _to_image_px(points_crop_px: torch.Tensor, crop_to_img: torch.Tensor) -> torch.Tensor:
    return points_crop_px @ crop_to_img[:, :, :2].transpose(1, 2) + crop_to_img[:, None, :, 2]


def _loss_mask(module: Any, mask: torch.Tensor, ignore_hips: bool) -> torch.Tensor:
    if not ignore_hips:
        return mask
    conv = get_convention(module.hparams.kp2d_convention)
    hips = [conv.index(n) for n in ("L_Hip", "R_Hip") if n in conv.joint_names]
    mask = mask.clone()
    mask[:, hips] = 0.0
    return mask


def _check_batch(batch: dict[str, Any]) -> None:
    missing = [k for k in (*LOSS_KEYS, "crop_to_img") if k not in batch]
    if missing:
        raise ValueError(f"eft_fit: batch of sample {batch.get('sample_id')} lacks fields {missing}")
    if batch["img"].shape[0] != 1:
        raise ValueError(f"eft_fit: expects one sample (batch size 1), got field 'img' {tuple(batch['img'].shape)}")


def eft_fit(module: Any, batch: dict[str, Any], lr: float = EFT_LR, max_iters: int = EFT_MAX_ITERS,
            stop_px: float = EFT_STOP_PX, loss: str = "eft", ignore_hips: bool = True) -> EFTResult:
    """Fine-tune ``module``'s network on one sample, predict, and restore the weights exactly.

    Args:
        module: a trained image-mode :class:`annot.annotator.module.AnnotatorModule` (any device; the batch must be on
        it). batch: one collated sample (batch size 1) with ``img`` (1,3,H,W), ``kp2d_px`` (1,J,2) crop pixels,
            ``kp2d_mask`` (1,J), ``crop_to_img`` (1,2,3), ``kp2d_img_px`` (1,J,2) and the fields
            ``predict_step`` reads (``sample_id``, ``image_path``).
        lr: Adam learning rate (EFT: 5e-6).
        max_iters: maximum optimiser steps (EFT: 50; 100 for OCHuman).
        stop_px: stop once the mean 2D error over the loss keypoints, in original-image pixels, is below it.
        loss: ``"eft"`` (2D term only) or ``"annotator"`` (2D term + the annotator's regularisers).
        ignore_hips: drop the hips from the loss and the stopping error (EFT).

    Returns:
        :class:`EFTResult`. The module's parameters, buffers (BatchNorm running statistics included) and
        train / eval mode are the same after the call as before.

    Raises:
        ValueError: unknown ``loss``, a batch with more than one sample or without the needed fields.
    """
    if loss not in ("eft", "annotator"):
        raise ValueError(f"eft_fit: loss must be 'eft' or 'annotator', got {loss!r}")
    _check_batch(batch)
    start = time.perf_counter()
    saved = copy.deepcopy(module.state_dict())
    was_training = module.training
    flags = {name: p.requires_grad for name, p in module.named_parameters()}
    params = [p for p in module.net.parameters() if p.requires_grad]
    loss_batch = {k: batch[k] for k in LOSS_KEYS}
    loss_batch["kp2d_mask"] = _loss_mask(module, batch["kp2d_mask"], ignore_hips)
    target_img = (batch["kp2d_img_px"] if "kp2d_img_px" in batch
                  else _to_image_px(batch["kp2d_px"], batch["crop_to_img"]))
    iterations, initial = 0, float("nan")
    try:
        module.eval()  # BN uses (and keeps) its running statistics; dropout off
        opt = adam(params, lr=lr)
        with torch.enable_grad():
            for step in range(max_iters + 1):
                pred = module.predict_batch({**loss_batch, "kp2d_mask": batch["kp2d_mask"]})
                err = kp2d_error_px(_to_image_px(pred["kp2d_pred_px"].detach(), batch["crop_to_img"]),
                                    target_img, loss_batch["kp2d_mask"])[0].item()
                if step == 0:
                    initial = err
                if err < stop_px or step == max_iters:
                    break
                terms = module._losses(pred, loss_batch)
                objective = terms["kp2d"] + (sum(terms[k] for k in REGULARISERS if k in terms)
                                             if loss == "annotator" else 0.0)
                opt.zero_grad(set_to_none=True)
                objective.backward()
                opt.step()
                iterations += 1
        with torch.no_grad():
            out = module.predict_step(batch, 0)
    finally:
        module.load_state_dict(saved)
        for name, p in module.named_parameters():
            p.requires_grad_(flags[name])
            p.grad = None
        module.train(was_training)
    quality = quality_scores(out, 0)
    return EFTResult(pred=out, iterations=iterations, kp2d_err_px=float(out["kp2d_err_img_px"][0]),
                     initial_err_px=initial, seconds=time.perf_counter() - start, quality=quality)


def eft_annotate(module: Any, dataset: Sequence[dict[str, Any]], indices: Sequence[int] | None = None,
                 device: torch.device | str | None = None, **kwargs: Any) -> list[EFTResult]:
    """Run :func:`eft_fit` on every (or the ``indices``) sample of ``dataset``, one at a time.

    Args:
        module: trained :class:`annot.annotator.module.AnnotatorModule`.
        dataset: anything indexable returning :class:`annot.data.sample.Sample` dicts.
        indices: subset of sample indices, default all.
        device: where to move each sample (default: the module's device).
        **kwargs: forwarded to :func:`eft_fit` (``lr``, ``max_iters``, ``stop_px``, ``loss``, ``ignore_hips``).

    Returns:
        One :class:`EFTResult` per sample (predictions, iterations, seconds, EFT rejection flag in
        ``quality["eft_reject"]``).
    """
    device = torch.device(device) if device is not None else next(module.parameters()).device
    results = []
    for i in indices if indices is not None else range(len(dataset)):
        batch = default_collate([dataset[i]])
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        results.append(eft_fit(module, batch, **kwargs))
    return results


__all__ = ["EFTResult", "EFT_LR", "EFT_MAX_ITERS", "EFT_STOP_PX", "eft_annotate", "eft_fit"]
