"""Pinhole and weak-perspective cameras, and the crop <-> original-image camera mapping.

Frames: ``points_cam_m`` are in a camera frame with x right, y down, z forward (OpenCV), metres.
Pixel coordinates follow mks0601 ``cam2pixel``: ``u = X/Z*fx + cx`` with no half-pixel shift.

Sources: Hand4Whole (Pose2Pose branch) ``main/config.py`` (virtual focal 5000, crop 256x192),
``main/model.py::get_camera_trans`` (camera depth), ``demo/body/demo_body.py`` (crop -> image camera);
nkolot SPIN ``models/hmr.py`` / ``train/trainer.py`` (weak perspective). See reference-spec A.3, B.2, B.8.

Array types: functions made only of arithmetic accept torch tensors or numpy arrays (broadcasting,
leading batch dims allowed) and return the same type; :func:`camera_depth_from_sigmoid` and
:func:`crop_camera` are torch only.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "VIRTUAL_FOCAL_PX",
    "CAMERA_3D_SIZE_M",
    "DEPTH_EPS_M",
    "perspective_project",
    "crop_camera",
    "camera_depth_constant",
    "camera_depth_from_sigmoid",
    "crop_to_original_camera",
    "original_to_crop_camera",
    "weak_perspective_project",
    "weak_perspective_to_translation",
    "rotation_between_rays",
    "move_to_camera",
    "estimated_image_camera",
]

Array = TypeVar("Array", torch.Tensor, np.ndarray)

#: Virtual focal length of the network-input crop, pixels (Pose2Pose ``cfg.focal``, SPIN ``FOCAL_LENGTH``).
VIRTUAL_FOCAL_PX: float = 5000.0
#: Pose2Pose ``cfg.camera_3d_size`` for the body, metres (spec B.1).
CAMERA_3D_SIZE_M: float = 2.5
#: Smallest depth used as divisor in :func:`perspective_project`, metres.
DEPTH_EPS_M: float = 1e-4


def perspective_project(
    points_cam_m: Array, focal_px: Array, princpt_px: Array, eps_m: float = DEPTH_EPS_M
) -> Array:
    """Pinhole projection ``u = X/Z*fx + cx``, ``v = Y/Z*fy + cy`` (mks0601 ``cam2pixel``).

    Args:
        points_cam_m: ``(B, N, 3)`` (or ``(..., N, 3)``) camera-frame points, metres.
        focal_px: ``(B, 2)`` ``(fx, fy)`` pixels (anything broadcastable to ``(..., 2)``, e.g. ``(2,)``).
        princpt_px: ``(B, 2)`` ``(cx, cy)`` pixels, same broadcasting as ``focal_px``.
        eps_m: depth guard: ``Z`` is clamped to ``>= eps_m`` before dividing, so points at or behind the
            camera give large finite values instead of inf/NaN. Pose2Pose instead adds ``1e-4`` to ``Z``;
            clamping leaves every point in front of the camera exact.

    Returns:
        ``(B, N, 2)`` pixels in the image the camera belongs to. Same type as ``points_cam_m``.

    Raises:
        ValueError: ``points_cam_m`` is not ``(..., N, 3)``.
    """
    if points_cam_m.ndim < 2 or points_cam_m.shape[-1] != 3:
        raise ValueError(
            f"perspective_project: points_cam_m must be (..., N, 3), got {tuple(points_cam_m.shape)}"
        )
    z = points_cam_m[..., 2:3].clip(min=eps_m)
    return points_cam_m[..., :2] / z * focal_px[..., None, :] + princpt_px[..., None, :]


def crop_camera(
    input_hw: tuple[int, int] = (256, 192), focal_px: float = VIRTUAL_FOCAL_PX
) -> tuple[torch.Tensor, torch.Tensor]:
    """The virtual camera of the network-input crop (Pose2Pose ``cfg.focal``/``cfg.princpt``).

    Args:
        input_hw: crop ``(H, W)`` in pixels.
        focal_px: virtual focal length, pixels.

    Returns:
        ``(focal_px (2,), princpt_px (2,))`` float32 tensors: ``(f, f)`` and ``(W/2, H/2)``,
        e.g. ``(5000, 5000)`` and ``(96, 128)`` for 256x192.
    """
    h, w = input_hw
    return (
        torch.tensor([focal_px, focal_px], dtype=torch.float32),
        torch.tensor([w / 2.0, h / 2.0], dtype=torch.float32),
    )


def camera_depth_constant(
    focal_px: Array | tuple[float, float] = (VIRTUAL_FOCAL_PX, VIRTUAL_FOCAL_PX),
    input_hw: tuple[int, int] = (256, 192),
    camera_3d_size_m: float = CAMERA_3D_SIZE_M,
) -> Array | float:
    """Depth scale ``k = sqrt(fx*fy*camera_3d_size^2 / (H*W))`` in metres (Pose2Pose ``get_camera_trans``).

    ``k`` is the depth at which a ``camera_3d_size_m`` object spans the crop area. For focal 5000,
    256x192 and 2.5 m: ``k = 5000*2.5/sqrt(256*192) ~= 56.38`` (spec B.2.5).

    Args:
        focal_px: ``(..., 2)`` ``(fx, fy)`` pixels (tensor, array or pair).
        input_hw: crop ``(H, W)`` pixels.
        camera_3d_size_m: metres.

    Returns:
        ``(...)`` metres; a float for a plain pair.
    """
    h, w = input_hw
    if isinstance(focal_px, (tuple, list)):
        return math.sqrt(focal_px[0] * focal_px[1] * camera_3d_size_m**2 / (h * w))
    return (focal_px[..., 0] * focal_px[..., 1] * camera_3d_size_m**2 / (h * w)) ** 0.5


def camera_depth_from_sigmoid(
    raw: torch.Tensor,
    focal_px: torch.Tensor | tuple[float, float] = (VIRTUAL_FOCAL_PX, VIRTUAL_FOCAL_PX),
    input_hw: tuple[int, int] = (256, 192),
    camera_3d_size_m: float = CAMERA_3D_SIZE_M,
) -> torch.Tensor:
    """Camera depth ``t_z = k * sigmoid(raw)`` in metres (Pose2Pose ``get_camera_trans``, spec B.2.5).

    Args:
        raw: ``(B,)`` unbounded network output (``cam_param[:, 2]``).
        focal_px: ``(2,)``, ``(B, 2)`` or a pair: ``(fx, fy)`` of the crop camera, pixels.
        input_hw: crop ``(H, W)`` pixels.
        camera_3d_size_m: metres (2.5 for the body, 0.4 for the hand).

    Returns:
        ``(B,)`` depth in metres, in ``(0, k)``, k from :func:`camera_depth_constant`.
    """
    return camera_depth_constant(focal_px, input_hw, camera_3d_size_m) * torch.sigmoid(raw)


def _bbox_scale(bbox_xywh_px: Array, input_hw: tuple[int, int]) -> tuple[Array, Array]:
    if bbox_xywh_px.shape[-1] != 4:
        raise ValueError(
            f"bbox_xywh_px must be (..., 4) [x, y, w, h] pixels, got {tuple(bbox_xywh_px.shape)}"
        )
    h, w = input_hw
    # Dividing by two scalars keeps the array type, dtype and device of the box.
    scale_x = bbox_xywh_px[..., 2:3] / w
    scale_y = bbox_xywh_px[..., 3:4] / h
    cat = torch.cat if isinstance(bbox_xywh_px, torch.Tensor) else np.concatenate
    return cat([scale_x, scale_y], -1), bbox_xywh_px[..., 0:2]


def crop_to_original_camera(
    focal_crop_px: Array, princpt_crop_px: Array, bbox_xywh_px: Array, input_hw: tuple[int, int] = (256, 192)
) -> tuple[Array, Array]:
    """Map the crop camera to the equivalent camera of the original image (spec A.3; Pose2Pose demo).

    The crop is the axis-aligned box ``bbox_xywh_px`` resized to ``input_hw`` (no rotation), so crop
    pixel ``u_c`` is image pixel ``u = u_c * bbox_w / W + bbox_x`` (likewise y with ``bbox_h / H``).
    Hence ``focal_img = focal_crop * (bbox_w/W, bbox_h/H)`` and
    ``princpt_img = princpt_crop * (bbox_w/W, bbox_h/H) + (bbox_x, bbox_y)``. The 3D points are unchanged.

    Args:
        focal_crop_px: ``(B, 2)`` crop focal, crop pixels.
        princpt_crop_px: ``(B, 2)`` crop principal point, crop pixels.
        bbox_xywh_px: ``(B, 4)`` the PROCESSED box (aspect-fixed, x1.25) in original-image pixels.
        input_hw: crop ``(H, W)`` pixels.

    Returns:
        ``(focal_img_px (B, 2), princpt_img_px (B, 2))`` in original-image pixels.

    Raises:
        ValueError: ``bbox_xywh_px`` last dim is not 4.
    """
    scale, offset = _bbox_scale(bbox_xywh_px, input_hw)
    return focal_crop_px * scale, princpt_crop_px * scale + offset


def original_to_crop_camera(
    focal_img_px: Array, princpt_img_px: Array, bbox_xywh_px: Array, input_hw: tuple[int, int] = (256, 192)
) -> tuple[Array, Array]:
    """Inverse of :func:`crop_to_original_camera`: the original-image camera seen through the crop.

    ``focal_crop = focal_img / s``, ``princpt_crop = (princpt_img - (bbox_x, bbox_y)) / s`` with
    ``s = (bbox_w/W, bbox_h/H)``. Use it to put annotations given with an image camera (NeuralAnnot
    ``cam_param``) into crop pixels.

    Args:
        focal_img_px, princpt_img_px: ``(B, 2)`` original-image pixels.
        bbox_xywh_px: ``(B, 4)`` processed box, original-image pixels (``w, h > 0``).
        input_hw: crop ``(H, W)`` pixels.

    Returns:
        ``(focal_crop_px (B, 2), princpt_crop_px (B, 2))`` in crop pixels.

    Raises:
        ValueError: ``bbox_xywh_px`` last dim is not 4.
    """
    scale, offset = _bbox_scale(bbox_xywh_px, input_hw)
    return focal_img_px / scale, (princpt_img_px - offset) / scale


def estimated_image_camera(image_hw_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The full-image camera CLIFF assumes when the intrinsics are unknown (Li et al. ECCV 2022, Sec. 3.2):
    focal length ``sqrt(W^2 + H^2)`` pixels (a diagonal field of view of about 53 deg), principal point at the
    image centre ``(W / 2, H / 2)``.

    Args:
        image_hw_px: (B, 2) image (height, width) in pixels.

    Returns:
        ``(focal_px (B, 2), princpt_px (B, 2))`` in image pixels.

    Raises:
        ValueError: a shape other than (B, 2) or a non-positive size.
    """
    if image_hw_px.dim() != 2 or image_hw_px.shape[-1] != 2 or bool((image_hw_px <= 0).any()):
        raise ValueError(f"estimated_image_camera: (B, 2) positive (height, width) pixels, got {image_hw_px.tolist()}")
    height, width = image_hw_px[:, 0], image_hw_px[:, 1]
    focal = (height ** 2 + width ** 2).sqrt()
    return torch.stack([focal, focal], dim=1), torch.stack([width / 2, height / 2], dim=1)


def rotation_between_rays(ray_from: torch.Tensor, ray_to: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) smallest rotation taking the direction of ``ray_from`` onto that of ``ray_to`` (Rodrigues).

    Args:
        ray_from, ray_to: (B, 3) viewing rays in one camera frame (any length > 0; z > 0 for rays in front
            of a camera, so the two are never opposite).

    Raises:
        ValueError: shapes other than (B, 3), or rays 180 deg apart (no unique smallest rotation).
    """
    if ray_from.shape != ray_to.shape or ray_from.shape[-1:] != (3,) or ray_from.dim() != 2:
        raise ValueError(f"rotation_between_rays: two (B, 3) rays, got {tuple(ray_from.shape)}, {tuple(ray_to.shape)}")
    a = ray_from / ray_from.norm(dim=-1, keepdim=True)
    b = ray_to / ray_to.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1)
    if bool((cos <= -1 + 1e-6).any()):
        raise ValueError("rotation_between_rays: rays 180 deg apart")
    v = torch.cross(a, b, dim=-1)
    zero = torch.zeros_like(v[:, 0])
    skew = torch.stack([zero, -v[:, 2], v[:, 1], v[:, 2], zero, -v[:, 0], -v[:, 1], v[:, 0], zero], -1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(skew)
    return eye + skew + skew @ skew / (1 + cos)[:, None, None]


def move_to_camera(global_orient_rotmat: torch.Tensor, root_cam_m: torch.Tensor, focal_src_px: torch.Tensor,
                   princpt_src_px: torch.Tensor, focal_dst_px: torch.Tensor, princpt_dst_px: torch.Tensor,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-express a person fitted through one pinhole camera of an image in another camera of the same image.

    An annotator that sees a crop explains it with a camera whose axis passes through the crop (its principal
    point at the crop centre, a long virtual focal length): it predicts the body's orientation relative to
    the ray through the person, as if that ray were the optical axis. In the image's own camera the ray is
    tilted, so the body must turn with it (CLIFF, Li et al. ECCV 2022, Sec. 3; "perspective crop layers",
    Yu et al. CVPR 2021). Here the whole person turns about the camera centre by the smallest rotation taking
    the source ray through its root pixel onto the destination ray through the same pixel, then moves along
    that ray so that its image size stays the same (distance scaled by ``f_dst / f_src``, the mean of x and
    y). The root keeps its pixel exactly; the limbs move by the second-order change of perspective.

    Args:
        global_orient_rotmat: (B, 3, 3) body-to-camera rotation in the source camera.
        root_cam_m: (B, 3) root joint in the source camera frame, metres (z > 0).
        focal_src_px, princpt_src_px: (B, 2) source intrinsics, original-image pixels.
        focal_dst_px, princpt_dst_px: (B, 2) destination intrinsics, same pixels.

    Returns:
        ``(global_orient_rotmat (B, 3, 3), root_cam_m (B, 3))`` in the destination camera frame (x right,
        y down, z forward, metres).

    Raises:
        ValueError: a root behind the source camera (z <= 0) or shapes that do not match.
    """
    if root_cam_m.dim() != 2 or root_cam_m.shape[-1] != 3 or global_orient_rotmat.shape != (root_cam_m.shape[0], 3, 3):
        raise ValueError(f"move_to_camera: (B, 3, 3) rotations and (B, 3) roots, got "
                         f"{tuple(global_orient_rotmat.shape)}, {tuple(root_cam_m.shape)}")
    if bool((root_cam_m[:, 2] <= 0).any()):
        raise ValueError("move_to_camera: a root behind the source camera (z <= 0)")
    pixel = perspective_project(root_cam_m[:, None], focal_src_px, princpt_src_px)[:, 0]
    ones = root_cam_m.new_ones(root_cam_m.shape[0], 1)
    ray_dst = torch.cat([(pixel - princpt_dst_px) / focal_dst_px, ones], dim=1)
    turn = rotation_between_rays(root_cam_m, ray_dst)
    distance = root_cam_m.norm(dim=-1, keepdim=True) * focal_dst_px.mean(-1, keepdim=True) / focal_src_px.mean(
        -1, keepdim=True)
    return turn @ global_orient_rotmat, distance * ray_dst / ray_dst.norm(dim=-1, keepdim=True)


def weak_perspective_project(points: Array, scale: Array, trans_xy: Array) -> Array:
    """Weak-perspective (scaled orthographic) projection ``s * (X_xy + t_xy)`` (HMR / SPIN camera).

    The result is in normalised crop coordinates, ``[-1, 1]`` across the crop (SPIN: pixels of a
    ``img_size`` crop = ``(out + 1) * img_size / 2``). Depth is ignored.

    Args:
        points: ``(B, N, 3)`` camera-frame points, metres.
        scale: ``(B,)`` weak-perspective scale ``s`` (SPIN ``pred_cam[:, 0]``).
        trans_xy: ``(B, 2)`` ``(tx, ty)`` metres (SPIN ``pred_cam[:, 1:]``).

    Returns:
        ``(B, N, 2)`` normalised coordinates.

    Raises:
        ValueError: ``points`` is not ``(..., N, 3)`` or ``trans_xy`` is not ``(..., 2)``.
    """
    if points.ndim < 2 or points.shape[-1] != 3 or trans_xy.shape[-1] != 2:
        raise ValueError(
            f"weak_perspective_project: need points (..., N, 3) and trans_xy (..., 2), got "
            f"{tuple(points.shape)} and {tuple(trans_xy.shape)}"
        )
    return scale[..., None, None] * (points[..., :2] + trans_xy[..., None, :])


def weak_perspective_to_translation(
    scale: Array, trans_xy: Array, focal_px: float | Array = VIRTUAL_FOCAL_PX, img_size_px: float = 224.0
) -> Array:
    """Weak-perspective camera ``[s, tx, ty]`` -> perspective translation ``[tx, ty, 2f/(img*s)]`` (SPIN).

    Follows nkolot SPIN ``train/trainer.py`` (``pred_cam_t``, with ``+1e-9`` in the denominator). A point
    at depth 0 then projects (focal ``f``, principal point at the crop centre, divided by ``img/2``) to
    the same normalised coordinates as :func:`weak_perspective_project`.

    Args:
        scale: ``(B,)`` weak-perspective scale.
        trans_xy: ``(B, 2)`` metres.
        focal_px: focal length in pixels of the ``img_size_px`` crop (SPIN: 5000).
        img_size_px: square crop side in pixels (SPIN: 224).

    Returns:
        ``(B, 3)`` camera translation ``transl_m``, metres.
    """
    tz = 2.0 * focal_px / (img_size_px * scale + 1e-9)
    if isinstance(trans_xy, torch.Tensor):
        return torch.cat([trans_xy, tz[..., None]], dim=-1)
    return np.concatenate([trans_xy, np.asarray(tz)[..., None]], axis=-1)


# --------------------------------------------------------------------------- annotator camera models
CAMERA_MODELS = ("perspective", "weak_perspective", "d2s")


def project_camera_model(joints_rel_m: torch.Tensor, cam_raw: torch.Tensor, camera_model: str,
                         input_hw: tuple[int, int], focal_px: float = VIRTUAL_FOCAL_PX,
                         camera_3d_size_m: float = CAMERA_3D_SIZE_M) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project root-relative joints with one of the annotator's camera models, to crop pixels.

    Args:
        joints_rel_m: (B, J, 3) joints relative to the model root, camera axes (x right, y down, z
            forward), metres.
        cam_raw: (B, C) raw camera output of the network: perspective (t_x, t_y, depth logit); weak
            perspective (scale logit, t_x, t_y); D2S (scale logit, t_x, t_y, depth logit).
        camera_model: ``"perspective"`` (Pose2Pose virtual focal, reference-spec B.2.5),
            ``"weak_perspective"`` (HMR/SPIN: ``u = s (X + t)`` in crop coordinates normalised by
            half the crop width, isotropically) or
            ``"d2s"`` (Synthetic-training paper: weak perspective with a per-joint scale
            ``s_i = s d / (d + z_i)``, ``d`` predicted with the camera).
        input_hw: crop (H, W) in pixels.
        focal_px: virtual focal length of the perspective model.
        camera_3d_size_m: Pose2Pose depth range constant.

    Returns:
        ``(kp2d_px (B, J, 2), focal_eff_px (B, 2), transl_m (B, 3))``: crop-pixel projections, and the
        equivalent pinhole camera (focal in crop pixels, principal point at the crop centre) with the
        translation of the root, so that ``perspective_project(joints_rel + transl, focal_eff, centre)``
        reproduces the projection (exactly for perspective and D2S; for weak perspective the depth is
        set from a virtual focal length, as SPIN does).

    Raises:
        ValueError: unknown ``camera_model`` or a ``cam_raw`` of the wrong width.
    """
    height, width = input_hw
    batch = joints_rel_m.shape[0]
    half = joints_rel_m.new_tensor([width / 2.0, height / 2.0])
    widths = {"perspective": 3, "weak_perspective": 3, "d2s": 4}
    if camera_model not in widths:
        raise ValueError(f"unknown camera model {camera_model!r}; choose one of {CAMERA_MODELS}")
    if cam_raw.shape[-1] != widths[camera_model]:
        raise ValueError(f"camera model {camera_model!r} needs {widths[camera_model]} raw values, "
                         f"got {cam_raw.shape[-1]}")
    if camera_model == "perspective":
        focal = joints_rel_m.new_tensor([focal_px, focal_px]).expand(batch, 2)
        depth = camera_depth_from_sigmoid(cam_raw[:, 2], focal, input_hw, camera_3d_size_m)
        transl = torch.cat([cam_raw[:, :2], depth[:, None]], dim=1)
        return perspective_project(joints_rel_m + transl[:, None], focal, half.expand(batch, 2)), focal, transl
    # weak perspective family: scale (normalised units per metre) through softplus to stay positive
    scale = torch.nn.functional.softplus(cam_raw[:, 0]) + 1e-3
    trans_xy = cam_raw[:, 1:3]
    if camera_model == "weak_perspective":
        norm = scale[:, None, None] * (joints_rel_m[..., :2] + trans_xy[:, None])
        depth = focal_px / (half[0] * scale)            # SPIN: t_z = 2 f / (W s)
        focal = joints_rel_m.new_tensor([focal_px, focal_px]).expand(batch, 2)
        return norm * half[0] + half, focal, torch.cat([trans_xy, depth[:, None]], dim=1)
    else:
        depth = camera_depth_from_sigmoid(cam_raw[:, 3], joints_rel_m.new_tensor([focal_px, focal_px]).expand(batch, 2),
                                          input_hw, camera_3d_size_m)
        per_joint = depth[:, None] / (depth[:, None] + joints_rel_m[..., 2]).clamp(min=DEPTH_EPS_M)
        norm = (scale[:, None] * per_joint)[..., None] * (joints_rel_m[..., :2] + trans_xy[:, None])
        focal = (scale * depth * half[0])[:, None].expand(batch, 2)   # f = s d W/2: a pinhole camera
    return norm * half[0] + half, focal, torch.cat([trans_xy, depth[:, None]], dim=1)
