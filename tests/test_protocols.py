"""Issue #13: evaluation and data protocols that match the published ones, number for number.

One test (or a few) per item, each against an independent reference (a hand-computed case or a port of
the reference function written out here), on a case where the pre-#13 behaviour gives another number.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from annot.data import COCOKeypoints
from annot.data.crop import process_bbox

ASPECT = 192 / 256


# --------------------------------------------------------------------------- references (ported here)
def sanitize_bbox_ref(bbox, img_width, img_height):
    """mks0601 Hand4Whole ``common/utils/preprocessing.py::sanitize_bbox``, written out."""
    x, y, w, h = bbox
    x1, y1 = max(0, x), max(0, y)
    x2 = min(img_width - 1, x1 + max(0, w - 1))
    y2 = min(img_height - 1, y1 + max(0, h - 1))
    if w * h > 0 and x2 > x1 and y2 > y1:
        return np.array([x1, y1, x2 - x1, y2 - y1])
    return None


def spin_keypoint_loss_ref(pred_norm, gt_norm_conf):
    """SPIN ``train/trainer.py::keypoint_loss`` (openpose weight 0, gt weight 1): ``(conf * MSE).mean()``."""
    conf = gt_norm_conf[:, :, -1:].clone()
    mse = torch.nn.MSELoss(reduction="none")
    return (conf * mse(pred_norm, gt_norm_conf[:, :, :-1])).mean()


# --------------------------------------------------------------------------- small COCO writer
def _write_coco(root: Path, annotations: list[dict], smpl: dict | None = None, img_hw=(200, 240)) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / "a.jpg"), np.full((*img_hw, 3), 90, np.uint8))
    images = [{"id": 1, "file_name": "a.jpg", "height": img_hw[0], "width": img_hw[1]}]
    full = [{"image_id": 1, "category_id": 1, "iscrowd": 0, **a} for a in annotations]
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": full}))
    if smpl is not None:
        (root / "smpl.json").write_text(json.dumps(smpl))


def _kps17(points: dict[int, tuple[float, float]]) -> list[float]:
    kps = np.zeros((17, 3))
    for j, (x, y) in points.items():
        kps[j] = (x, y, 2)
    return kps.reshape(-1).tolist()


# --------------------------------------------------------------------------- item 5: boxes
@pytest.mark.parametrize("bbox", [
    [10, 10, 1, 50],      # 1 px wide: x2 = x1 (the old code kept it, its height being > 0)
    [239, 10, 30, 50],    # clipped to the last column of a 240-wide image: x2 = x1 = 239
    [10, 199, 40, 30],    # clipped to the last row: y2 = y1
])
def test_process_bbox_drops_zero_width_or_height_after_clipping(bbox):
    assert sanitize_bbox_ref(bbox, 240, 200) is None
    assert process_bbox(bbox, 240, 200, ASPECT) is None


def test_process_bbox_keeps_what_sanitize_bbox_keeps():
    for bbox in ([10, 10, 2, 50], [230, 5, 30, 30], [-5, -5, 20, 20]):
        ref = sanitize_bbox_ref(bbox, 240, 200)
        x1, y1, bw, bh = ref
        cx, cy = x1 + bw / 2, y1 + bh / 2
        bw, bh = max(bw, ASPECT * bh), max(bh, bw / ASPECT)
        expected = [cx - 0.625 * bw, cy - 0.625 * bh, 1.25 * bw, 1.25 * bh]
        np.testing.assert_allclose(process_bbox(bbox, 240, 200, ASPECT), expected, atol=1e-9)


def test_zero_width_box_is_skipped_and_counted(tmp_path):
    kps = _kps17({5: (60, 60), 6: (80, 60), 11: (62, 120), 12: (78, 120)})
    _write_coco(tmp_path, [{"id": 1, "bbox": [40, 40, 60, 120], "keypoints": kps, "num_keypoints": 4},
                           {"id": 2, "bbox": [40, 40, 1, 120], "keypoints": kps, "num_keypoints": 4}])
    ds = COCOKeypoints(tmp_path, "ann.json", img_dir="images")
    assert [r.sample_id for r in ds.records] == ["1"]
    assert ds.skipped == {"2": "degenerate box"}
    assert "degenerate box: 1" in ds.summary()


# --------------------------------------------------------------------------- item 3: COCO Pelvis, hand MCPs
def test_coco_pelvis_reaches_pose2pose33(tmp_path):
    kps = _kps17({5: (60, 60), 6: (80, 60), 11: (63, 121), 12: (77, 117)})
    half = _kps17({5: (60, 60), 6: (80, 60), 11: (63, 121)})  # R_Hip missing: no Pelvis
    _write_coco(tmp_path, [{"id": 1, "bbox": [40, 40, 60, 120], "keypoints": kps, "num_keypoints": 4},
                           {"id": 2, "bbox": [40, 40, 60, 120], "keypoints": half, "num_keypoints": 3}])
    ds = COCOKeypoints(tmp_path, "ann.json", img_dir="images", convention="pose2pose33")
    pelvis = 0  # pose2pose33 index of Pelvis
    both, one = ds[0], ds[1]
    np.testing.assert_allclose(both["kp2d_img_px"][pelvis].numpy(), [70.0, 119.0])  # (63+77)/2, (121+117)/2
    assert both["kp2d_mask"][pelvis] == 1
    assert one["kp2d_mask"][pelvis] == 0
    # the default output convention stays COCO-17 (no Pelvis)
    assert COCOKeypoints(tmp_path, "ann.json", img_dir="images")[0]["kp2d_px"].shape == (17, 2)


def test_coco_wholebody_hand_mcps_reach_pose2pose33(tmp_path):
    kps = _kps17({5: (60, 60), 6: (80, 60), 11: (63, 121), 12: (77, 117)})
    left, right = np.zeros((21, 3)), np.zeros((21, 3))
    for k, idx in enumerate((5, 9, 13, 17)):
        left[idx] = (50 + k, 100 + k, 0.7)
        right[idx] = (90 + k, 100 - k, 0.9)
    left[4] = (1, 1, 1)  # a thumb point: not part of the set
    right[17, 2] = 0.0   # R_Pinky_1 not visible
    ann = {"id": 1, "bbox": [40, 40, 60, 120], "keypoints": kps, "num_keypoints": 4,
           "foot_kpts": [0.0] * 18, "lefthand_kpts": left.reshape(-1).tolist(),
           "righthand_kpts": right.reshape(-1).tolist()}
    _write_coco(tmp_path, [ann])
    ds = COCOKeypoints(tmp_path, "ann.json", img_dir="images", convention="pose2pose33", variant="wholebody")
    sample = ds[0]
    names = ("L_Index_1", "L_Middle_1", "L_Ring_1", "L_Pinky_1", "R_Index_1", "R_Middle_1", "R_Ring_1", "R_Pinky_1")
    from annot.keypoints import get_convention
    conv = get_convention("pose2pose33")
    idx = [conv.index(n) for n in names]
    expected = np.concatenate([left[[5, 9, 13, 17], :2], right[[5, 9, 13, 17], :2]])
    np.testing.assert_allclose(sample["kp2d_img_px"][idx].numpy(), expected, atol=1e-4)
    np.testing.assert_array_equal(sample["kp2d_mask"][idx].numpy(), [1, 1, 1, 1, 1, 1, 1, 0])
    assert sample["kp2d_mask"][conv.index("Pelvis")] == 1


# --------------------------------------------------------------------------- item 4: beta sanity reset
def _smpl_entry(betas) -> dict:
    return {"smpl_param": {"pose": [0.0] * 72, "shape": list(betas), "trans": [0.0, 0.0, 5.0]},
            "cam_param": {"focal": [1000.0, 1000.0], "princpt": [120.0, 100.0]}}


def test_pseudo_gt_betas_zeroed_above_three_and_counted(tmp_path):
    kps = _kps17({5: (60, 60), 6: (80, 60), 11: (63, 121), 12: (77, 117)})
    wild = [0.1, -3.2, 0.0, 0.5, 0, 0, 0, 0, 0, 0]   # |beta_1| = 3.2 > 3: reset (mks0601, SPIN)
    edge = [3.0, -3.0, 0.2, 0, 0, 0, 0, 0, 0, 0.4]   # |beta| = 3 exactly: kept (strict >)
    anns = [{"id": i, "bbox": [40, 40, 60, 120], "keypoints": kps, "num_keypoints": 4} for i in (1, 2)]
    _write_coco(tmp_path, anns, smpl={"1": _smpl_entry(wild), "2": _smpl_entry(edge)})
    ds = COCOKeypoints(tmp_path, "ann.json", img_dir="images", smpl_file="smpl.json")
    assert ds.beta_resets == ["1"]
    assert "betas reset (|beta| > 3): 1" in ds.summary()
    np.testing.assert_array_equal(ds[0]["smpl_betas"].numpy(), np.zeros(10))
    np.testing.assert_allclose(ds[1]["smpl_betas"].numpy(), edge, atol=1e-6)


# --------------------------------------------------------------------------- item 6: EFT normalised loss
def test_eft_normalised_loss_is_spin_keypoint_loss():
    from annot.losses import eft_kp2d_loss_norm

    crop_hw = (256, 192)
    gt_px = torch.tensor([[[96.0, 128.0], [50.0, 40.0], [150.0, 200.0], [10.0, 10.0]]])
    pred_px = gt_px.clone()
    pred_px[0, 0, 0] += 24.0   # 24 px in x on a 192-wide crop: 1/4 in [-1, 1] coordinates
    pred_px[0, 3] += 40.0      # a large error on an invisible joint: must not count
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    norm = pred_px.new_tensor([96.0, 128.0])
    gt_conf = torch.cat([gt_px / norm - 1.0, mask[..., None]], dim=-1)
    ref = spin_keypoint_loss_ref(pred_px / norm - 1.0, gt_conf)
    got = eft_kp2d_loss_norm(pred_px, gt_px, mask, crop_hw)
    assert float(ref) == pytest.approx((1 / 4) ** 2 / 8, rel=1e-6)  # hand: one squared entry over 4 x 2
    torch.testing.assert_close(got[0], ref, atol=1e-9, rtol=1e-6)
    # the old number (sum over x, y / visible joints, 1/16 / 3) was 8/3 x larger: a rejection at 0.01
    assert float(got[0]) < 0.01 < (1 / 4) ** 2 / 3
