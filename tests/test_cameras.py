"""Tests for annot.geometry.cameras: hand computations, crop<->image consistency, SPIN formulas."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from annot.geometry import (
    VIRTUAL_FOCAL_PX,
    camera_depth_constant,
    camera_depth_from_sigmoid,
    crop_camera,
    crop_to_original_camera,
    original_to_crop_camera,
    perspective_project,
    weak_perspective_project,
    weak_perspective_to_translation,
)

H, W = 256, 192


def test_perspective_project_hand_value() -> None:
    pts = torch.tensor([[[0.5, -0.2, 4.0], [0.0, 0.0, 2.0]]], dtype=torch.float64)
    focal = torch.tensor([[1000.0, 1100.0]], dtype=torch.float64)
    princpt = torch.tensor([[320.0, 240.0]], dtype=torch.float64)
    uv = perspective_project(pts, focal, princpt)
    # u = 0.5/4*1000 + 320 = 445 ; v = -0.2/4*1100 + 240 = 185 ; the optical-axis point lands on (cx, cy)
    expected = torch.tensor([[[445.0, 185.0], [320.0, 240.0]]], dtype=torch.float64)
    torch.testing.assert_close(uv, expected, atol=1e-12, rtol=0)
    assert uv.shape == (1, 2, 2)


def test_perspective_project_numpy_and_depth_guard() -> None:
    pts = np.array([[[1.0, 2.0, 0.0], [1.0, 2.0, 1e-9]]])
    uv = perspective_project(pts, np.array([[10.0, 10.0]]), np.array([[0.0, 0.0]]))
    assert isinstance(uv, np.ndarray) and np.isfinite(uv).all()
    np.testing.assert_allclose(uv[0, 0], (1.0 / 1e-4 * 10, 2.0 / 1e-4 * 10))


def test_crop_camera_values() -> None:
    focal, princpt = crop_camera((256, 192))
    assert focal.tolist() == [5000.0, 5000.0] and princpt.tolist() == [96.0, 128.0]
    assert VIRTUAL_FOCAL_PX == 5000.0


def test_camera_depth_constant_pose2pose() -> None:
    k = camera_depth_constant((5000.0, 5000.0), (256, 192), 2.5)
    assert k == pytest.approx(56.38, abs=0.005)
    assert k == pytest.approx(5000 * 2.5 / math.sqrt(256 * 192), rel=1e-12)
    focal = torch.tensor([5000.0, 5000.0])
    tz = camera_depth_from_sigmoid(torch.tensor([0.0, 50.0, -50.0]), focal, (256, 192))
    torch.testing.assert_close(tz, torch.tensor([k / 2, k, 0.0]), atol=1e-4, rtol=0)
    # per-sample focal (B, 2)
    focal_b = torch.tensor([[5000.0, 5000.0], [2500.0, 2500.0]])
    tz_b = camera_depth_from_sigmoid(torch.zeros(2), focal_b, (256, 192))
    torch.testing.assert_close(tz_b, torch.tensor([k / 2, k / 4]))


def crop_to_image_affine(bbox_xywh: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Crop px -> image px, built like mks0601 gen_trans_from_patch_cv (inverse): 3 point pairs."""
    x, y, w, h = bbox_xywh
    oh, ow = out_hw
    crop_pts = np.float32([[ow / 2, oh / 2], [ow / 2, oh], [ow, oh / 2]])
    img_pts = np.float32([[x + w / 2, y + h / 2], [x + w / 2, y + h], [x + w, y + h / 2]])
    return cv2.getAffineTransform(crop_pts, img_pts).astype(np.float64)


@pytest.mark.parametrize("bbox", [(37.5, -12.0, 300.0, 400.0), (410.0, 95.0, 120.0, 210.0)])
def test_crop_to_original_camera_same_pixel(bbox: tuple[float, ...]) -> None:
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-0.8, 0.8, (1, 20, 2)), rng.uniform(3.0, 9.0, (1, 20, 1))], axis=-1)
    focal_c, princpt_c = (t.double()[None] for t in crop_camera((H, W)))
    bbox_t = torch.tensor([bbox], dtype=torch.float64)
    focal_i, princpt_i = crop_to_original_camera(focal_c, princpt_c, bbox_t, (H, W))

    uv_crop = perspective_project(torch.from_numpy(pts), focal_c, princpt_c)[0].numpy()
    A = crop_to_image_affine(np.array(bbox), (H, W))
    uv_via_affine = uv_crop @ A[:, :2].T + A[:, 2]
    uv_img = perspective_project(torch.from_numpy(pts), focal_i, princpt_i)[0].numpy()
    np.testing.assert_allclose(uv_img, uv_via_affine, atol=1e-7)

    # inverse mapping recovers the crop camera
    f_back, c_back = original_to_crop_camera(focal_i, princpt_i, bbox_t, (H, W))
    torch.testing.assert_close(f_back, focal_c)
    torch.testing.assert_close(c_back, princpt_c)


def test_crop_to_original_matches_spec_formula_numpy() -> None:
    # spec A.3: focal = (5000/192*w, 5000/256*h); princpt = (96/192*w + x, 128/256*h + y)
    bbox = np.array([[10.0, 20.0, 150.0, 200.0]])
    f, c = crop_to_original_camera(np.array([[5000.0, 5000.0]]), np.array([[96.0, 128.0]]), bbox, (H, W))
    assert isinstance(f, np.ndarray)
    np.testing.assert_allclose(f, [[5000 / 192 * 150, 5000 / 256 * 200]])
    np.testing.assert_allclose(c, [[96 / 192 * 150 + 10, 128 / 256 * 200 + 20]])


def test_original_to_crop_camera_same_pixel() -> None:
    # an image camera (NeuralAnnot cam_param) seen through the crop: project, then map image px -> crop px
    pts = torch.tensor([[[0.3, -0.4, 5.0], [-0.2, 0.6, 6.5]]], dtype=torch.float64)
    focal_i = torch.tensor([[1500.0, 1480.0]], dtype=torch.float64)
    princpt_i = torch.tensor([[640.0, 360.0]], dtype=torch.float64)
    bbox = np.array([500.0, 100.0, 240.0, 320.0])
    f_c, c_c = original_to_crop_camera(focal_i, princpt_i, torch.from_numpy(bbox[None]), (H, W))
    uv_img = perspective_project(pts, focal_i, princpt_i)[0].numpy()
    A_inv = cv2.invertAffineTransform(crop_to_image_affine(bbox, (H, W)))
    expected_crop = uv_img @ A_inv[:, :2].T + A_inv[:, 2]
    np.testing.assert_allclose(perspective_project(pts, f_c, c_c)[0].numpy(), expected_crop, atol=1e-7)


def spin_project_normalised(
    points: torch.Tensor, cam: torch.Tensor, focal: float, img_res: float
) -> torch.Tensor:
    """Plain SPIN: t = [tx, ty, 2f/(img*s+1e-9)], pinhole with centre 0, then / (img/2)."""
    s, tx, ty = cam[:, 0], cam[:, 1], cam[:, 2]
    t = torch.stack([tx, ty, 2 * focal / (img_res * s + 1e-9)], dim=-1)
    p = points + t[:, None, :]
    return focal * p[..., :2] / p[..., 2:3] / (img_res / 2.0)


def test_weak_perspective_hand_value() -> None:
    pts = torch.tensor([[[0.5, 0.3, 7.0]]])
    out = weak_perspective_project(pts, torch.tensor([0.9]), torch.tensor([[0.1, -0.2]]))
    torch.testing.assert_close(out, torch.tensor([[[0.54, 0.09]]]))


def test_weak_perspective_vs_spin() -> None:
    g = torch.Generator().manual_seed(0)
    cam = torch.stack([torch.rand(4, generator=g, dtype=torch.float64) * 0.5 + 0.7,
                       *(torch.randn(2, 4, generator=g, dtype=torch.float64) * 0.1)], dim=-1)  # fmt: skip
    pts = torch.randn(4, 10, 3, generator=g, dtype=torch.float64) * 0.3
    transl = weak_perspective_to_translation(cam[:, 0], cam[:, 1:], 5000.0, 224.0)
    assert transl.shape == (4, 3)
    torch.testing.assert_close(transl[:, 2], 2 * 5000.0 / (224.0 * cam[:, 0] + 1e-9))
    # our perspective projection with the SPIN translation reproduces SPIN's formula for any depth
    focal = torch.full((4, 2), 5000.0, dtype=torch.float64)
    ours = perspective_project(pts + transl[:, None], focal, torch.zeros(4, 2, dtype=torch.float64))
    torch.testing.assert_close(ours / 112.0, spin_project_normalised(pts, cam, 5000.0, 224.0))
    # at depth 0 weak perspective is exact; at small depth it is close (tz ~ 50 m >> 0.3 m)
    flat = pts.clone()
    flat[..., 2] = 0.0
    weak_flat = weak_perspective_project(flat, cam[:, 0], cam[:, 1:])
    torch.testing.assert_close(weak_flat, spin_project_normalised(flat, cam, 5000.0, 224.0))
    weak = weak_perspective_project(pts, cam[:, 0], cam[:, 1:])
    torch.testing.assert_close(weak, spin_project_normalised(pts, cam, 5000.0, 224.0), atol=0.02, rtol=0)


def test_weak_perspective_to_translation_numpy() -> None:
    t = weak_perspective_to_translation(np.array([1.0]), np.array([[0.1, 0.2]]), 5000.0, 224.0)
    np.testing.assert_allclose(t, [[0.1, 0.2, 10000.0 / 224.0]], rtol=1e-9)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError):
        perspective_project(torch.zeros(1, 4, 2), torch.ones(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError):
        crop_to_original_camera(torch.ones(1, 2), torch.ones(1, 2), torch.ones(1, 3))


# --------------------------------------------------------------------------- a person moved between cameras
def test_rotation_between_rays_hand_value() -> None:
    """The optical axis onto the ray 45 deg to the right is Ry(45 deg) (scipy's rotation as the reference)."""
    from scipy.spatial.transform import Rotation

    from annot.geometry import rotation_between_rays

    rot = rotation_between_rays(torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64),
                                torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64))
    np.testing.assert_allclose(rot[0].numpy(), Rotation.from_euler("y", 45, degrees=True).as_matrix(), atol=1e-12)
    assert torch.allclose(rot @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
                          torch.tensor([[2 ** -0.5, 0.0, 2 ** -0.5]], dtype=torch.float64))


def test_move_to_camera_keeps_the_root_pixel_and_turns_with_the_ray() -> None:
    """A person on the axis of a crop-like camera (principal point at its root pixel) moved into an image camera
    whose principal point is ``f`` pixels to the left: its ray there is 45 deg to the right, so the body turns by
    Ry(45 deg); the root keeps its pixel; its distance scales with the focal ratio (same image size)."""
    from scipy.spatial.transform import Rotation

    from annot.geometry import move_to_camera

    f64 = dict(dtype=torch.float64)
    orient = torch.tensor(Rotation.from_euler("x", 180, degrees=True).as_matrix(), **f64)[None]
    root = torch.tensor([[0.0, 0.0, 40.0]], **f64)
    src = (torch.tensor([[5000.0, 5000.0]], **f64), torch.tensor([[300.0, 100.0]], **f64))
    dst = (torch.tensor([[500.0, 500.0]], **f64), torch.tensor([[-200.0, 100.0]], **f64))
    new_orient, new_root = move_to_camera(orient, root, *src, *dst)
    expect = Rotation.from_euler("y", 45, degrees=True).as_matrix() @ orient[0].numpy()
    np.testing.assert_allclose(new_orient[0].numpy(), expect, atol=1e-12)
    np.testing.assert_allclose(perspective_project(new_root[:, None], *dst)[0, 0].numpy(), [300.0, 100.0], atol=1e-9)
    assert float(new_root.norm()) == pytest.approx(4.0, abs=1e-12)


def test_turning_with_the_ray_explains_an_off_axis_person_better_than_moving_alone() -> None:
    """Points of a body 0.8 m across, 35 deg off the axis of a wide camera, seen through a crop-like camera
    (long focal, principal point at the root pixel): re-expressed in the crop camera with the turn, their
    projection reproduces the original image much better than the same move without the turn (independent
    reference: the original projection)."""
    from annot.geometry import move_to_camera

    f64 = dict(dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    body = (torch.rand(1, 40, 3, generator=gen, **f64) - 0.5) * 0.8
    root = torch.tensor([[3.5, 0.3, 5.0]], **f64)  # atan(3.5 / 5) = 35 deg off the axis
    wide = (torch.tensor([[400.0, 400.0]], **f64), torch.tensor([[160.0, 120.0]], **f64))
    image = perspective_project(body + root[:, None], *wide)
    root_px = perspective_project(root[:, None], *wide)[:, 0]
    crop = (torch.tensor([[8000.0, 8000.0]], **f64), root_px)
    turn, moved_root = move_to_camera(torch.eye(3, **f64)[None], root, *wide, *crop)
    with_turn = perspective_project(body @ turn.transpose(1, 2) + moved_root[:, None], *crop)
    without_turn = perspective_project(body + moved_root[:, None], *crop)
    err_turn = float((with_turn - image).norm(dim=-1).mean())
    err_plain = float((without_turn - image).norm(dim=-1).mean())
    # measured 6.5 vs 12.5 px: what the turn cannot remove is the off-axis stretch (1 / cos) and the depth spread
    assert err_turn < 0.6 * err_plain, (err_turn, err_plain)


def test_estimated_image_camera_is_cliffs_diagonal_focal_at_the_centre() -> None:
    from annot.geometry import estimated_image_camera

    focal, princpt = estimated_image_camera(torch.tensor([[480.0, 640.0]]))
    assert focal.tolist() == [[800.0, 800.0]]  # sqrt(640^2 + 480^2) = 800 (3-4-5)
    assert princpt.tolist() == [[320.0, 240.0]]
    with pytest.raises(ValueError, match="positive"):
        estimated_image_camera(torch.tensor([[0.0, 640.0]]))
