"""Tests for annot.data.crop against hand-computed values (mks0601 process_bbox / crop affine)."""
from __future__ import annotations

import numpy as np
import pytest

from annot.data.crop import (
    apply_affine,
    compose_affine,
    crop_affine,
    crop_image,
    flip_bbox_xywh,
    invert_affine,
    process_bbox,
)

ASPECT = 192 / 256


def test_process_bbox_hand_computed():
    # x1=100, y1=50, x2=100+100=200, y2=50+200=250 -> w=100, h=200, centre (150, 150);
    # w < 0.75*h=150 -> w=150; x1.25 -> (187.5, 250); origin (150-93.75, 150-125).
    box = process_bbox([100, 50, 101, 201], 640, 480, ASPECT)
    np.testing.assert_allclose(box, [56.25, 25.0, 187.5, 250.0], atol=1e-9)


def test_process_bbox_wide_box_grows_height():
    # w=300, h=100 (after -1): centre (150, 100); w > 0.75*h -> h = 300/0.75 = 400; x1.25 -> (375, 500).
    box = process_bbox([0, 50, 301, 101], 640, 480, ASPECT)
    np.testing.assert_allclose(box, [150 - 187.5, 100 - 250.0, 375.0, 500.0], atol=1e-9)


def test_process_bbox_clipped_at_border():
    # x1=max(0,-10)=0, y1=400, x2=min(639, 0+59)=59, y2=min(479, 400+99)=479 -> w=59, h=79,
    # centre (29.5, 439.5); 0.75*79=59.25 > 59 -> w=59.25; x1.25 -> (74.0625, 98.75).
    box = process_bbox([-10, 400, 60, 100], 640, 480, ASPECT)
    np.testing.assert_allclose(box, [29.5 - 37.03125, 439.5 - 49.375, 74.0625, 98.75], atol=1e-9)


def test_process_bbox_scale_and_aspect_arguments():
    # square aspect, no enlargement: clipped (10, 20, 40, 60) -> w grows to 60 around x-centre 30.
    box = process_bbox([10, 20, 41, 61], 640, 480, 1.0, scale=1.0)
    np.testing.assert_allclose(box, [0.0, 20.0, 60.0, 60.0], atol=1e-9)


@pytest.mark.parametrize(
    "bbox",
    [
        [10, 10, 0, 50],  # zero width
        [10, 10, 50, -5],  # negative height
        [700, 10, 50, 50],  # right of the image: x2 = 639 < x1 = 700
        [10, 500, 50, 50],  # below the image
        [10, 10, 0.5, 0.5],  # clips to a single point
    ],
)
def test_process_bbox_degenerate_is_none(bbox):
    assert process_bbox(bbox, 640, 480, ASPECT) is None


def test_process_bbox_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        process_bbox([np.nan, 0, 10, 10], 640, 480, ASPECT)


def test_crop_affine_maps_centre_and_corners():
    # the processed box of test_process_bbox_hand_computed: centre (150, 150), size (187.5, 250)
    affine = crop_affine((150.0, 150.0), (187.5, 250.0), (192, 256))
    # hand-computed: scale 192/187.5 = 256/250 = 1.024, translation -(56.25, 25) * 1.024
    np.testing.assert_allclose(affine, [[1.024, 0, -57.6], [0, 1.024, -25.6]], atol=1e-9)
    pts = apply_affine([[150, 150], [56.25, 25], [243.75, 275], [56.25, 275]], affine)
    np.testing.assert_allclose(pts, [[96, 128], [0, 0], [192, 256], [0, 256]], atol=1e-9)


def test_crop_affine_rotation_90_hand_computed():
    # square box centre (100, 100), size 50 -> 100x100 output, scale 2. mks0601 rotates the source
    # axes: down-dir (0, 25) -> (-25, 0), right-dir (25, 0) -> (0, 25). So the source point left of
    # the centre (75, 100) lands below the crop centre (50, 100), and (100, 125) right of it (100, 50).
    affine = crop_affine((100, 100), (50, 50), (100, 100), rot_deg=90.0)
    pts = apply_affine([[100, 100], [75, 100], [100, 125]], affine)
    np.testing.assert_allclose(pts, [[50, 50], [50, 100], [100, 50]], atol=1e-9)
    # general point: crop = (2*dy, -2*dx) + (50, 50)
    np.testing.assert_allclose(apply_affine([[110, 95]], affine), [[50 - 10, 50 - 20]], atol=1e-9)


def test_crop_affine_inverse_inverts_forward():
    fwd = crop_affine((321.5, 210.25), (150.0, 200.0), (192, 256), rot_deg=17.0)
    inv = crop_affine((321.5, 210.25), (150.0, 200.0), (192, 256), rot_deg=17.0, inverse=True)
    pts = np.random.default_rng(0).uniform(-50, 600, size=(20, 2))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, fwd), inv), pts, atol=1e-9)
    np.testing.assert_allclose(invert_affine(fwd), inv, atol=1e-9)
    np.testing.assert_allclose(compose_affine(inv, fwd), [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_crop_affine_rejects_zero_size():
    with pytest.raises(ValueError, match="size"):
        crop_affine((0, 0), (0, 10), (192, 256))


def _coordinate_image(h: int, w: int) -> np.ndarray:
    """float32 image whose channels hold (x, y, 1) of each pixel centre: bilinear is exact on it."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs, ys, np.ones_like(xs)], axis=-1)


@pytest.mark.parametrize("flip", [False, True])
def test_crop_image_samples_where_the_inverse_affine_points(flip):
    img = _coordinate_image(120, 160)
    bbox = process_bbox([40, 20, 60, 70], 160, 120, ASPECT)
    crop, img_to_crop = crop_image(img, bbox, (64, 48), flip=flip)
    assert crop.shape == (64, 48, 3) and crop.dtype == np.float32
    vs, us = np.mgrid[0:64, 0:48]
    src = apply_affine(np.stack([us, vs], -1).astype(np.float64), invert_affine(img_to_crop))
    inside = (src[..., 0] >= 0) & (src[..., 0] <= 159) & (src[..., 1] >= 0) & (src[..., 1] <= 119)
    assert inside.sum() > 1000
    # cv2 quantises sample positions to 1/32 px
    np.testing.assert_allclose(crop[inside][:, :2], src[inside], atol=1 / 32 + 1e-4)
    # the box centre (in unmirrored pixels) lands at the crop centre, mirror or not
    centre = bbox[:2] + bbox[2:] / 2
    np.testing.assert_allclose(apply_affine(centre, img_to_crop), [24, 32], atol=1e-9)


def test_crop_image_flip_mirrors_the_crop():
    img = (np.random.default_rng(1).uniform(0, 255, size=(90, 130, 3))).astype(np.uint8)
    bbox = process_bbox([30, 10, 50, 60], 130, 90, ASPECT)
    plain, a_plain = crop_image(img, bbox, (64, 48))
    mirrored, a_flip = crop_image(img, bbox, (64, 48), flip=True)
    # derivation: unflipped u = s*(x - c_x) + 24; flipped u' = s*((W-1-x) - (W-1-c_x)) + 24 = 48 - u.
    np.testing.assert_allclose(a_flip[0], [-a_plain[0, 0], 0, 48 - a_plain[0, 2]], atol=1e-9)
    np.testing.assert_allclose(a_flip[1], a_plain[1], atol=1e-9)
    # hence crop column u' of the mirrored crop shows column 48 - u' of the plain one
    diff = np.abs(mirrored[:, 1:].astype(int) - plain[:, 47:0:-1].astype(int))
    assert diff.max() <= 2


def test_flip_bbox_xywh():
    # centre x 30 + 20 = 50 -> 100 - 1 - 50 = 49, width 40 -> x = 29
    np.testing.assert_allclose(flip_bbox_xywh([30, 5, 40, 10], 100), [29, 5, 40, 10])


def test_apply_affine_shapes_and_errors():
    affine = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    out = apply_affine(np.ones((4, 5, 2)), affine)
    assert out.shape == (4, 5, 2)
    np.testing.assert_allclose(out[0, 0], [3.0, 2.0])
    with pytest.raises(ValueError, match="apply_affine"):
        apply_affine(np.ones((4, 3)), affine)
