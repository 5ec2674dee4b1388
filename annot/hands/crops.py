"""Hand crops: square boxes around the 2D keypoints, the virtual crop camera, left hands flipped.

A crop is the axis-aligned square ``box_origin_px + [0, box_side_px]^2`` of the image resized to ``S x S`` pixels
(``s = S / box_side_px``); a left hand's crop is also flipped horizontally about its centre (``u -> S - u``,
:mod:`annot.hands.mirror`), so that the right-hand annotator sees a right hand.

The annotator explains a crop with a virtual camera whose principal point is the crop centre and whose optical
axis is the image camera's ray through the crop centre (CLIFF's observation, as
:func:`annot.geometry.cameras.move_to_camera` for the body): ``ray_rotmat`` (N, 3, 3) =
:func:`annot.geometry.cameras.rotation_between_rays` from the z axis onto that ray, so that
``X_cam = ray_rotmat @ X_virtual``. For a flipped crop the virtual frame is in addition mirrored
(``X_virtual_flipped = M X_virtual``, ``M = diag(-1, 1, 1)``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from annot.geometry.cameras import rotation_between_rays


def crop_boxes(kp2d_px: Tensor, mask: Tensor, crop_scale: float = 1.5, min_side_px: float = 16.0
               ) -> tuple[Tensor, Tensor]:
    """Square boxes around the visible keypoints: ``(origin_px (N, 2), side_px (N,))``, the side ``crop_scale``
    times the longer side of the keypoints' box (at least ``min_side_px``), centred on that box.

    Raises:
        ValueError: a hand without any visible keypoint (its row index is named).
    """
    if bool((mask.sum(1) == 0).any()):
        raise ValueError(f"crop_boxes: hands {torch.nonzero(mask.sum(1) == 0).flatten().tolist()} have no visible "
                         "keypoint")
    inf = torch.full_like(kp2d_px, float("inf"))
    lo = torch.where(mask[..., None], kp2d_px, inf).amin(1)
    hi = torch.where(mask[..., None], kp2d_px, -inf).amax(1)
    side = ((hi - lo).amax(1) * crop_scale).clamp(min=min_side_px)
    return (lo + hi) / 2 - side[:, None] / 2, side


def virtual_ray_rotmat(centre_px: Tensor, focal_px: Tensor, princpt_px: Tensor) -> Tensor:
    """(N, 3, 3) rotation from the virtual crop frame (optical axis = z) to the image camera frame, whose z axis it
    turns onto the ray through ``centre_px`` (N, 2) image pixels (intrinsics ``focal_px``, ``princpt_px`` (N, 2))."""
    ray = torch.cat([(centre_px - princpt_px) / focal_px, torch.ones_like(centre_px[:, :1])], dim=1)
    return rotation_between_rays(torch.tensor([[0.0, 0.0, 1.0]]).expand_as(ray), ray)


@dataclass
class HandCrops:
    """N hand crops (module docstring) and what the annotator needs of them.

    Attributes:
        img: (N, S, S, 3) uint8 RGB crops (left hands flipped).
        kp2d_px: (N, 21, 2) ``hand21`` keypoints in crop pixels (of the flipped crop for left hands).
        kp2d_mask: (N, 21) bool, annotated keypoints.
        box_origin_px: (N, 2) top-left corner of the square box, image pixels. box_side_px: (N,) its side.
        ray_rotmat: (N, 3, 3) virtual crop frame (unflipped) -> image camera frame.
        flipped: (N,) bool, a left hand shown flipped as a right hand.
        joints_rel_m: (N, 21, 3) wrist-relative 3D keypoints in the crop's virtual frame (mirrored for flipped crops),
            metres; None for 2D-only sets.
        sample_ids: N ids (``"<aid>_<side>"`` for real hands).
    """

    img: Tensor
    kp2d_px: Tensor
    kp2d_mask: Tensor
    box_origin_px: Tensor
    box_side_px: Tensor
    ray_rotmat: Tensor
    flipped: Tensor
    joints_rel_m: Tensor | None
    sample_ids: list[str]

    def __post_init__(self) -> None:
        n = len(self.sample_ids)
        shapes = {"img": (n, None, None, 3), "kp2d_px": (n, 21, 2), "kp2d_mask": (n, 21), "box_origin_px": (n, 2),
                  "box_side_px": (n,), "ray_rotmat": (n, 3, 3), "flipped": (n,)}
        if self.joints_rel_m is not None:
            shapes["joints_rel_m"] = (n, 21, 3)
        for name, shape in shapes.items():
            got = tuple(getattr(self, name).shape)
            if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
                raise ValueError(f"HandCrops.{name}: expected shape {shape} for {n} samples, got {got}")

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def crop_size(self) -> int:
        return int(self.img.shape[1])

    def to_image_px(self, kp_crop_px: Tensor) -> Tensor:
        """(N, J, 2) crop pixels of these crops -> image pixels (undoing the flip of left hands)."""
        x = torch.where(self.flipped[:, None], self.crop_size - kp_crop_px[..., 0], kp_crop_px[..., 0])
        crop = torch.stack([x, kp_crop_px[..., 1]], dim=-1)
        return crop * (self.box_side_px / self.crop_size)[:, None, None] + self.box_origin_px[:, None]

    def save(self, path: str | Path) -> None:
        from annot.io.atomic import atomic_write_bytes

        buf = __import__("io").BytesIO()
        torch.save({f.name: getattr(self, f.name) for f in fields(self)}, buf)
        atomic_write_bytes(Path(path), buf.getvalue())

    @staticmethod
    def load(path: str | Path) -> HandCrops:
        return HandCrops(**torch.load(path, map_location="cpu", weights_only=False))


def crop_image_hands(images: list[np.ndarray], kp2d_img_px: Tensor, mask: Tensor, left: Tensor, focal_px: Tensor,
                     princpt_px: Tensor, sample_ids: list[str], crop_size: int = 128, crop_scale: float = 1.5
                     ) -> HandCrops:
    """Crops of N hands of real images (module docstring); left hands flipped.

    Args:
        images: N (H, W, 3) uint8 RGB images (the same array may repeat for hands of one image).
        kp2d_img_px: (N, 21, 2) ``hand21`` keypoints, image pixels. mask: (N, 21) bool, annotated ones.
        left: (N,) bool, left hands.
        focal_px, princpt_px: (N, 2) the image camera (the body pseudo-GT's), pixels.
        sample_ids: N ids for messages and outputs.
    """
    import cv2

    n = len(sample_ids)
    origin, side = crop_boxes(kp2d_img_px, mask, crop_scale)
    s = crop_size / side
    crops = np.zeros((n, crop_size, crop_size, 3), dtype=np.uint8)
    kp_crop = (kp2d_img_px - origin[:, None]) * s[:, None, None]
    for i in range(n):
        a = np.array([[s[i], 0.0, -s[i] * origin[i, 0]], [0.0, s[i], -s[i] * origin[i, 1]]], dtype=np.float64)
        if bool(left[i]):
            a[0] = [-s[i], 0.0, crop_size + s[i] * origin[i, 0]]
        crops[i] = cv2.warpAffine(images[i], a, (crop_size, crop_size), flags=cv2.INTER_LINEAR)
    kp_crop[..., 0] = torch.where(left[:, None], crop_size - kp_crop[..., 0], kp_crop[..., 0])
    ray = virtual_ray_rotmat(origin + side[:, None] / 2, focal_px, princpt_px)
    return HandCrops(torch.from_numpy(crops), kp_crop.float(), mask.bool(), origin.float(), side.float(), ray.float(),
                     left.bool(), None, list(sample_ids))


__all__ = ["HandCrops", "crop_boxes", "crop_image_hands", "virtual_ray_rotmat"]
