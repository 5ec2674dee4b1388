"""Box processing and crop affines, following mks0601's preprocessing.

References: mks0601 Hand4Whole (branch Pose2Pose) ``common/utils/preprocessing.py::process_bbox``,
``::gen_trans_from_patch_cv`` and ``::generate_patch_image`` (reference-spec A.0, A.9).
All coordinates are pixels; boxes are ``(x, y, w, h)`` with ``(x, y)`` the top-left corner.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def process_bbox(
    bbox_xywh, img_w: float, img_h: float, aspect_wh: float, scale: float = 1.25
) -> np.ndarray | None:
    """Clip a box to the image, fix its aspect ratio and enlarge it (mks0601 ``process_bbox``).

    Steps (reference-spec A.0): ``x1 = max(0, x)``, ``y1 = max(0, y)``,
    ``x2 = min(img_w - 1, x1 + max(0, w - 1))``, ``y2 = min(img_h - 1, y1 + max(0, h - 1))``;
    the box is kept only if ``w * h > 0`` (input size) **and** ``x2 > x1`` **and** ``y2 > y1``
    (mks0601 ``sanitize_bbox``), so a box of zero width *or* zero height after clipping is rejected
    (e.g. a 1-pixel-wide box, or one clipped to the last image column). The clipped box
    ``(x1, y1, x2 - x1, y2 - y1)`` is then grown around its centre, on its shorter side, to the
    aspect ratio ``aspect_wh = input_w / input_h``, and its width and height are multiplied by
    ``scale``. The result may extend past the image border (only the input box is clipped).

    Args:
        bbox_xywh: ``(4,)`` box in original image pixels.
        img_w, img_h: image width and height in pixels.
        aspect_wh: target width / height ratio (192 / 256 for the body crop).
        scale: enlargement factor (1.25 in mks0601).

    Returns:
        ``(4,)`` float64 processed box in pixels, or ``None`` for a degenerate box (the loaders skip
        the sample with the reason ``"degenerate box"``, counted in their summary).

    Raises:
        ValueError: if the box is not 4 finite numbers or ``aspect_wh``/``scale`` are not positive.
    """
    box = np.asarray(bbox_xywh, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f"process_bbox: bbox_xywh must be 4 finite numbers, got {bbox_xywh!r}")
    if not (aspect_wh > 0 and scale > 0):
        raise ValueError(f"process_bbox: aspect_wh and scale must be > 0, got {aspect_wh}, {scale}")
    x, y, w, h = box
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(img_w - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(img_h - 1.0, y1 + max(0.0, h - 1.0))
    if not (w * h > 0 and x2 > x1 and y2 > y1):
        return None
    bw, bh = x2 - x1, y2 - y1
    cx, cy = x1 + bw / 2.0, y1 + bh / 2.0
    if bw > aspect_wh * bh:
        bh = bw / aspect_wh
    elif bw < aspect_wh * bh:
        bw = bh * aspect_wh
    bw, bh = bw * scale, bh * scale
    return np.array([cx - bw / 2.0, cy - bh / 2.0, bw, bh], dtype=np.float64)


def _rotate_2d(vec_xy: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rotate a 2-vector by ``angle_rad`` (counter-clockwise in x-right/y-up axes)."""
    cos_a, sin_a = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([vec_xy[0] * cos_a - vec_xy[1] * sin_a, vec_xy[0] * sin_a + vec_xy[1] * cos_a])


def crop_affine(
    center_xy, size_wh, out_wh, rot_deg: float = 0.0, inverse: bool = False
) -> np.ndarray:
    """Affine between a (rotated) source box and an output patch (mks0601 ``gen_trans_from_patch_cv``).

    The source box has centre ``center_xy`` and size ``size_wh`` (pixels of the source image); the
    output patch has size ``out_wh = (W, H)``. Three point pairs define the map: the box centre goes
    to ``(W/2, H/2)``, ``centre + R(rot) (0, h/2)`` to ``(W/2, H)`` and ``centre + R(rot) (w/2, 0)``
    to ``(W, H/2)``, with ``R`` a rotation by ``rot_deg`` degrees. So, without rotation, the box
    corners ``(x, y)`` and ``(x + w, y + h)`` go to ``(0, 0)`` and ``(W, H)``.

    Args:
        center_xy: ``(2,)`` box centre in source pixels.
        size_wh: ``(2,)`` box width and height in source pixels (must be > 0).
        out_wh: ``(2,)`` output width and height in pixels.
        rot_deg: rotation in degrees (mks0601 augmentation convention).
        inverse: if True return the output -> source map instead.

    Returns:
        ``(2, 3)`` float64 affine ``A``; ``p_out = A[:, :2] @ p_src + A[:, 2]`` (or the reverse).

    Raises:
        ValueError: if a size is not strictly positive or an input is not finite.
    """
    center = np.asarray(center_xy, dtype=np.float64).reshape(2)
    src_w, src_h = np.asarray(size_wh, dtype=np.float64).reshape(2)
    dst_w, dst_h = np.asarray(out_wh, dtype=np.float64).reshape(2)
    values = np.array([*center, src_w, src_h, dst_w, dst_h, rot_deg])
    if not np.all(np.isfinite(values)) or min(src_w, src_h, dst_w, dst_h) <= 0:
        raise ValueError(
            f"crop_affine: need finite centre and sizes > 0, got center={center_xy!r}, "
            f"size_wh={size_wh!r}, out_wh={out_wh!r}, rot_deg={rot_deg!r}"
        )
    rot_rad = math.radians(rot_deg)
    src = np.stack(
        [
            center,
            center + _rotate_2d(np.array([0.0, src_h / 2.0]), rot_rad),
            center + _rotate_2d(np.array([src_w / 2.0, 0.0]), rot_rad),
        ]
    )
    dst_center = np.array([dst_w / 2.0, dst_h / 2.0])
    dst = np.stack(
        [dst_center, dst_center + [0.0, dst_h / 2.0], dst_center + [dst_w / 2.0, 0.0]]
    )
    if inverse:
        src, dst = dst, src
    return _affine_from_points(src, dst)


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Solve the exact (2, 3) affine taking 3 points ``src`` (3, 2) to ``dst`` (3, 2), float64."""
    lhs = np.concatenate([src, np.ones((3, 1))], axis=1)  # (3, 3)
    return np.linalg.solve(lhs, dst).T  # (2, 3)


def apply_affine(points_xy, affine: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to points.

    Args:
        points_xy: ``(..., 2)`` pixel coordinates (numpy or array-like).
        affine: ``(2, 3)`` matrix, ``p' = A[:, :2] @ p + A[:, 2]``.

    Returns:
        ``(..., 2)`` float64 numpy array.

    Raises:
        ValueError: on wrong shapes.
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    mat = np.asarray(affine, dtype=np.float64)
    if pts.shape[-1:] != (2,) or mat.shape != (2, 3):
        raise ValueError(
            f"apply_affine: need points (..., 2) and affine (2, 3), got {pts.shape}, {mat.shape}"
        )
    return pts @ mat[:, :2].T + mat[:, 2]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of an invertible ``(2, 3)`` affine, as a ``(2, 3)`` float64 matrix."""
    full = np.eye(3)
    full[:2] = np.asarray(affine, dtype=np.float64)
    return np.linalg.inv(full)[:2]


def flip_affine(img_w: int) -> np.ndarray:
    """``(2, 3)`` affine of a horizontal image mirror in pixels: ``x -> img_w - 1 - x``, ``y -> y``."""
    return np.array([[-1.0, 0.0, img_w - 1.0], [0.0, 1.0, 0.0]])


def flip_bbox_xywh(bbox_xywh, img_w: int) -> np.ndarray:
    """Box ``(4,)`` of the horizontally mirrored image (centre ``c_x -> img_w - 1 - c_x``), pixels."""
    x, y, w, h = np.asarray(bbox_xywh, dtype=np.float64).reshape(4)
    return np.array([img_w - 1.0 - x - w, y, w, h])


def crop_image(
    img: np.ndarray, bbox_xywh, out_hw: tuple[int, int], flip: bool = False, rot_deg: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Crop (and optionally mirror) a box of an image to ``out_hw`` (mks0601 ``generate_patch_image``).

    With ``flip`` the image is mirrored first and the box centre becomes ``W_img - 1 - c_x``; the
    patch is sampled with ``cv2.warpAffine`` (bilinear, constant-0 border).

    Args:
        img: ``(H_img, W_img, 3)`` uint8 (or float) image, original image pixels.
        bbox_xywh: ``(4,)`` processed box in original image pixels (``process_bbox`` output).
        out_hw: output ``(H, W)`` in pixels.
        flip: mirror horizontally.
        rot_deg: rotation augmentation in degrees (0 = none).

    Returns:
        ``(crop (H, W, 3) same dtype as img, img_to_crop (2, 3) float64)``; ``img_to_crop`` maps
        *unmirrored* original image pixels to crop pixels (it includes the mirror when ``flip``).

    Raises:
        ValueError: on a non-image input or a box with non-positive size.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"crop_image: img must be (H, W, 3), got shape {img.shape}")
    x, y, w, h = np.asarray(bbox_xywh, dtype=np.float64).reshape(4)
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    img_w = img.shape[1]
    center = np.array([x + w / 2.0, y + h / 2.0])
    if flip:
        img = np.ascontiguousarray(img[:, ::-1])
        center[0] = img_w - center[0] - 1.0
    trans = crop_affine(center, (w, h), (out_w, out_h), rot_deg=rot_deg)
    crop = cv2.warpAffine(img, trans, (out_w, out_h), flags=cv2.INTER_LINEAR)
    if flip:
        trans = compose_affine(trans, flip_affine(img_w))
    return crop, trans


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine of ``outer(inner(p))`` for two ``(2, 3)`` affines, float64."""
    a = np.asarray(outer, dtype=np.float64)
    b = np.asarray(inner, dtype=np.float64)
    return np.concatenate([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2] + a[:, 2])[:, None]], axis=1)
