"""Auxiliary 3D hand sets from real datasets: FreiHAND or InterHand2.6M hands as Algorithm 1's hand crops.

Expressive NeuralAnnot trains the hand annotator's MoCap mode on FreiHAND and InterHand2.6M (section 4.2,
"auxiliary" sets with 3D GT); without them the project uses the free rendered set
(:func:`annot.hands.synthetic.make_hand_set`). Any registered hand dataset whose records carry 3D joints in the
camera frame and the camera intrinsics (:class:`annot.data.freihand.FreiHAND`,
:class:`annot.data.interhand.InterHand26M`) becomes :class:`annot.hands.crops.HandCrops`: the 21 keypoints in the
``hand21`` order (the single converter, :func:`annot.keypoints.convert`), square crops around them with left hands
flipped (:func:`annot.hands.crops.crop_image_hands`, the sides from the dataset's ``sides`` when it has them, else
right), and the wrist-relative 3D keypoints turned from the image camera into each crop's virtual frame
(``X_virtual = ray_rotmat^T X_cam``, mirrored by ``diag(-1, 1, 1)`` for a flipped crop). Units: metres and pixels.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from annot.hands.crops import HandCrops, crop_image_hands
from annot.hands.mirror import mirror_points
from annot.keypoints import convert


def virtual_joints_rel_m(joints_cam_m: Tensor, ray_rotmat: Tensor, flipped: Tensor) -> Tensor:
    """(N, 21, 3) wrist-relative keypoints in the crops' virtual frames (metres) from (N, 21, 3) camera-frame
    keypoints, wrist first: ``ray_rotmat^T (X - X_wrist)``, mirrored in x for ``flipped`` (N,) crops."""
    rel = (joints_cam_m - joints_cam_m[:, :1]) @ ray_rotmat  # row vectors: (R^T x)^T = x^T R
    return torch.where(flipped[:, None, None], mirror_points(rel), rel)


def hand_set_from_dataset(dataset, crop_size: int = 64, crop_scale: float = 1.5, max_hands: int = 0) -> HandCrops:
    """Auxiliary hand crops with 3D keypoints from a loaded hand dataset (module docstring).

    Args:
        dataset: a :class:`annot.data.person.PersonCropDataset` of single hands (``records`` with ``joints_cam_m``,
            ``cam_focal_px`` and ``cam_princpt_px``; optional ``sides`` ``{sample_id: "left" | "right"}``).
        crop_size: crop side, pixels. crop_scale: box side / the keypoints' box side.
        max_hands: keep the first ``max_hands`` usable records (0: all).

    Returns:
        :class:`HandCrops` with ``joints_rel_m`` set; joints the dataset marks invalid are masked in ``kp2d_mask``
        and zero in ``joints_rel_m``.

    Raises:
        ValueError: a dataset without usable hands (every record lacks 3D joints or intrinsics), naming it.
    """
    usable = [r for r in dataset.records if r.joints_cam_m is not None and r.cam_focal_px is not None
              and r.cam_princpt_px is not None]
    if max_hands > 0:
        usable = usable[:max_hands]
    if not usable:
        raise ValueError(f"{dataset.name}: no hand with 3D joints and camera intrinsics to use as the auxiliary set")
    native = dataset.native_convention
    sides = getattr(dataset, "sides", {})
    kp2d, mask, joints = [], [], []
    for r in usable:
        xy, has = convert(np.asarray(r.kp2d_img_px, dtype=np.float64), native, "hand21")
        xyz, _ = convert(np.asarray(r.joints_cam_m, dtype=np.float64), native, "hand21")
        valid, _ = convert(np.asarray(r.kp2d_valid, dtype=np.float64)[:, None], native, "hand21")
        kp2d.append(xy)
        joints.append(xyz)
        mask.append(has & (valid[:, 0] > 0))
    kp2d_t = torch.tensor(np.stack(kp2d), dtype=torch.float32)
    mask_t = torch.tensor(np.stack(mask))
    left = torch.tensor([sides.get(r.sample_id, "right") == "left" for r in usable])
    focal = torch.tensor(np.stack([r.cam_focal_px for r in usable]), dtype=torch.float32)
    princpt = torch.tensor(np.stack([r.cam_princpt_px for r in usable]), dtype=torch.float32)
    images = [dataset.read_image(r) for r in usable]
    crops = crop_image_hands(images, kp2d_t, mask_t, left, focal, princpt, [r.sample_id for r in usable],
                             crop_size, crop_scale)
    rel = virtual_joints_rel_m(torch.tensor(np.stack(joints), dtype=torch.float32), crops.ray_rotmat, crops.flipped)
    crops.joints_rel_m = rel * mask_t[..., None]
    return crops


__all__ = ["hand_set_from_dataset", "virtual_joints_rel_m"]
