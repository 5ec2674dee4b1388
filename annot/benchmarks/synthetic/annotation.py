"""COCO-like 2D annotations of rendered people: visibility flags from a depth test and human annotator noise.

Used by :mod:`annot.benchmarks.synthetic` for the realistic in-the-wild split. Everything is a pure function of its
inputs and of the ``numpy.random.Generator`` it is given, so a split is reproducible from its seed.

* **Visibility** (COCO ``v``): a keypoint outside the image is ``v = 0`` and not labelled (position
  ``(0, 0)``), as in COCO. A keypoint inside the image is hidden (``v = 1``: labelled, not visible) when the
  rendered scene depth at its pixel lies more than ``margin_m`` in front of the keypoint itself, i.e. some
  surface, of the same body (self-occlusion) or of another person, covers it. The margin stands for the
  depth of a body part around its joint: a hip seen from the back has ~10 cm of buttock in front of it and
  is still marked visible by COCO annotators, while a hand behind the torso (>= 20 cm) is not. Default
  0.15 m, our choice.
* **Annotator noise**: COCO measured the spread of redundant human annotations of each keypoint as a
  standard deviation ``sigma_i * s`` with ``s = sqrt(segment area)`` (Lin et al. 2014, the keypoint
  evaluation page of cocodataset.org; ``kpt_oks_sigmas`` of pycocotools ``COCOeval``, where the OKS uses
  ``k_i = 2 sigma_i``). We draw that Gaussian per axis for every labelled keypoint. Occluded keypoints are
  guessed, not seen: their standard deviation is ``occluded_factor`` (default 2) times larger. COCO gives no
  separate number for guessed keypoints; a factor 2 matches the hip (the hardest visible keypoint) having
  about 2x the sigma of the shoulders, and is a documented assumption, not a measurement.
  Foot keypoints use the COCO-WholeBody foot sigmas (Jin et al., ECCV 2020, ``xtcocotools`` sigmas).
* **Unlabelled hidden keypoints**: COCO annotators label a hidden keypoint only when they can guess where it
  is; otherwise it stays ``v = 0``. A hidden keypoint is left unlabelled with probability
  ``occluded_unlabelled_prob`` (default 0.4, our assumption: about 40 % of the COCO sample's non-visible keypoints
  inside the image are unlabelled; a documented modelling choice, not a fit to a benchmark number).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

#: COCO-17 per-keypoint sigmas of pycocotools ``COCOeval.Params.kpt_oks_sigmas`` (nose .. right ankle).
COCO17_OKS_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
                              1.07, 1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0
#: COCO-WholeBody foot sigmas (L big toe, L small toe, L heel, R big toe, R small toe, R heel).
WHOLEBODY_FOOT_SIGMAS = np.array([0.068, 0.066, 0.066, 0.092, 0.094, 0.094])
#: sigmas of the ``coco17_feet`` convention (23 keypoints), in its order.
COCO17_FEET_SIGMAS = np.concatenate([COCO17_OKS_SIGMAS, WHOLEBODY_FOOT_SIGMAS])


def inside_image(kp_px: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(J,) bool: keypoints (J, 2) pixels that lie inside an image of ``image_hw`` (H, W) pixels."""
    height, width = image_hw
    return (kp_px[:, 0] >= 0) & (kp_px[:, 1] >= 0) & (kp_px[:, 0] <= width - 1) & (kp_px[:, 1] <= height - 1)


def keypoint_visibility(kp_px: np.ndarray, kp_depth_m: np.ndarray, scene_depth_m: np.ndarray,
                        margin_m: float) -> np.ndarray:
    """COCO visibility flags of projected keypoints from a depth test (module docstring).

    Args:
        kp_px: (J, 2) projected keypoints, pixels of the image.
        kp_depth_m: (J,) camera-frame depth (z) of each keypoint, metres.
        scene_depth_m: (H, W) rendered depth of every person in the image, metres; ``inf`` (or <= 0) where
            no surface is (background).
        margin_m: depth of a body part around its joint (metres).

    Returns:
        (J,) int array: 0 outside the image, 1 inside but covered, 2 visible.

    Raises:
        ValueError: mismatched shapes.
    """
    kp_px, kp_depth_m = np.asarray(kp_px, np.float64), np.asarray(kp_depth_m, np.float64)
    if kp_px.ndim != 2 or kp_px.shape[1] != 2 or kp_depth_m.shape != kp_px.shape[:1] or scene_depth_m.ndim != 2:
        raise ValueError(f"keypoint_visibility: expected kp_px (J, 2), kp_depth_m (J,), scene_depth_m (H, W); got "
                         f"{kp_px.shape}, {kp_depth_m.shape}, {scene_depth_m.shape}")
    inside = inside_image(kp_px, scene_depth_m.shape)
    vis = np.zeros(len(kp_px), dtype=np.int64)
    px = np.rint(kp_px[inside]).astype(int)
    surface = scene_depth_m[px[:, 1], px[:, 0]].astype(np.float64)
    surface = np.where(surface > 0, surface, np.inf)
    vis[inside] = np.where(surface < kp_depth_m[inside] - margin_m, 1, 2)
    return vis


def drop_unlabelled(rng: np.random.Generator, vis: np.ndarray, prob: float) -> np.ndarray:
    """(J,) flags with each hidden (``v = 1``) keypoint turned into ``v = 0`` with probability ``prob``.

    Raises:
        ValueError: ``prob`` outside [0, 1].
    """
    if not 0 <= prob <= 1:
        raise ValueError(f"drop_unlabelled: prob must be in [0, 1], got {prob}")
    vis = np.asarray(vis).copy()
    draw = rng.random(len(vis))
    vis[(vis == 1) & (draw < prob)] = 0
    return vis


def annotator_noise(rng: np.random.Generator, kp_px: np.ndarray, vis: np.ndarray, sigmas: np.ndarray,
                    area_px: float, image_hw: tuple[int, int], occluded_factor: float) -> np.ndarray:
    """Keypoints as a human would place them: ``kp + N(0, (k sigma_i sqrt(area))^2)`` per axis.

    Args:
        rng: the sample's generator (the draws are part of the split).
        kp_px: (J, 2) exact projections, pixels.
        vis: (J,) COCO flags (:func:`keypoint_visibility`): 0 left at ``(0, 0)``, 1 with ``k = occluded_factor``,
            2 with ``k = 1``.
        sigmas: (J,) per-keypoint sigmas (:data:`COCO17_OKS_SIGMAS` and friends), fractions of ``sqrt(area)``.
        area_px: the person's segment area, pixels^2 (COCO ``area``).
        image_hw: (H, W); noisy keypoints are clipped into the image (annotators click inside it).
        occluded_factor: noise standard deviation of hidden (``v = 1``) keypoints relative to visible ones.

    Returns:
        (J, 2) pixels; rows with ``vis == 0`` are zero.

    Raises:
        ValueError: mismatched lengths or a negative area.
    """
    kp_px = np.asarray(kp_px, np.float64)
    if not (len(kp_px) == len(vis) == len(sigmas)) or area_px < 0:
        raise ValueError(f"annotator_noise: kp_px, vis and sigmas need one row per keypoint and area >= 0; got "
                         f"{len(kp_px)}, {len(vis)}, {len(sigmas)}, area {area_px}")
    scale = np.asarray(sigmas, np.float64) * np.sqrt(area_px) * np.where(np.asarray(vis) == 1, occluded_factor, 1.0)
    noisy = kp_px + rng.normal(size=kp_px.shape) * scale[:, None]
    height, width = image_hw
    noisy = np.clip(noisy, [0.0, 0.0], [width - 1.0, height - 1.0])
    return np.where((np.asarray(vis) > 0)[:, None], noisy, 0.0)


def coco_annotation_stats(annotations: Iterable[dict[str, Any]], num_images: int | None = None) -> dict[str, Any]:
    """Statistics of COCO person-keypoint annotations (people with at least one labelled keypoint).

    Args:
        annotations: COCO annotation dicts with ``keypoints`` (17 x (x, y, v)) and ``image_id``; ours may also
            carry ``truncated`` (bool, not a COCO field).
        num_images: images of the split (default: distinct ``image_id`` values).

    Returns:
        ``people``; fractions ``v0`` / ``v1`` / ``v2`` of all their keypoints; ``with_unlabelled``: fraction of
        people with a ``v = 0`` keypoint (cut by the border, or left unlabelled by the annotator); ``truncated``:
        fraction with ``truncated`` true (None when no annotation has the field); ``people_per_image``.
    """
    flags, truncated, has_field, images = [], 0, False, set()
    for ann in annotations:
        v = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)[:, 2].astype(int)
        if (v > 0).sum() == 0:
            continue
        flags.append(v)
        images.add(ann["image_id"])
        has_field |= "truncated" in ann
        truncated += int(bool(ann.get("truncated", False)))
    if not flags:
        return {"people": 0}
    allv = np.concatenate(flags)
    return {"people": len(flags), **{f"v{k}": float((allv == k).mean()) for k in range(3)},
            "with_unlabelled": float(np.mean([(v == 0).any() for v in flags])),
            "truncated": truncated / len(flags) if has_field else None,
            "people_per_image": len(flags) / float(num_images or len(images))}


__all__ = ["COCO17_FEET_SIGMAS", "COCO17_OKS_SIGMAS", "WHOLEBODY_FOOT_SIGMAS",
           "annotator_noise", "drop_unlabelled", "coco_annotation_stats", "inside_image", "keypoint_visibility"]
