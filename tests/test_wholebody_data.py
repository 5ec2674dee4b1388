"""Whole-body and hand loaders (issue #16): COCO-WholeBody (parts, boxes, validity, hand crops), FreiHAND and
InterHand2.6M in their released layouts, on fixtures written by annot.data.fixtures.hands, and the real
COCO-WholeBody annotations of the four COCO sample images (``../shared/data/coco_samples``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from annot.data import DATASETS, COCOWholeBody, FreiHAND, InterHand26M, WholeBodyHands, build_dataset
from annot.data.fixtures import coco as coco_fx
from annot.data.fixtures import fixture_writer
from annot.data.fixtures import hands as fx
from annot.keypoints import convert

COCO_DIR = Path(os.environ.get("ANNOT_COCO_SAMPLES", Path(__file__).resolve().parents[2] / "shared/data/coco_samples"))
WB_FILE = "test_coco_wholebody.json"
needs_coco = pytest.mark.skipif(not (COCO_DIR / WB_FILE).is_file(),
                                reason=f"COCO-WholeBody samples not found at {COCO_DIR / WB_FILE}")


@pytest.fixture(scope="module")
def freihand_root(tmp_path_factory) -> Path:
    return fx.write_freihand_fixture(tmp_path_factory.mktemp("freihand"))


@pytest.fixture(scope="module")
def interhand_root(tmp_path_factory) -> Path:
    return fx.write_interhand_fixture(tmp_path_factory.mktemp("interhand"))


@pytest.fixture(scope="module")
def wholebody_root(tmp_path_factory) -> Path:
    return fx.write_coco_wholebody_fixture(tmp_path_factory.mktemp("wholebody"))


def test_registered_and_fixture_writers():
    for name in ("coco_wholebody", "coco_wholebody_hands", "freihand", "interhand26m"):
        assert name in DATASETS
    for name in ("coco_wholebody", "freihand", "interhand26m"):
        assert callable(fixture_writer(name))


@needs_coco
def test_real_wholebody_samples_hands_and_faces():
    ds = COCOWholeBody(COCO_DIR, WB_FILE)
    assert ds.num_with_valid_hand() == 7 and ds.num_valid("face") == 4
    assert ds.skipped == {"1202706": "no keypoints", "508900": "no keypoints"} and not ds.part_problems
    sample = ds[[r.sample_id for r in ds.records].index("442619")]
    assert sample["kp2d_px"].shape == (133, 2) and sample["dataset"] == "coco_wholebody"
    raw = next(a for a in json.loads((COCO_DIR / WB_FILE).read_text())["annotations"] if a["id"] == 442619)
    right = ds.parts["442619"]["righthand"]
    np.testing.assert_allclose(right.bbox_xywh_px, raw["righthand_box"])
    np.testing.assert_allclose(right.kps_xyv.reshape(-1), raw["righthand_kpts"])
    assert "lefthand" not in ds.parts["442619"]  # lefthand_valid is false there
    hands = WholeBodyHands(COCO_DIR, WB_FILE)
    assert len(hands) == 10 and set(hands.sides.values()) == {"left", "right"}
    item = hands[[r.sample_id for r in hands.records].index("442619_right")]
    assert item["img"].shape == (3, 256, 256) and item["kp2d_px"].shape == (21, 2)


def test_wholebody_fixture_parts_and_skips(wholebody_root):
    ds = build_dataset("coco_wholebody", root=wholebody_root, ann_file=coco_fx.WHOLEBODY, img_dir=coco_fx.IMG_DIR)
    assert ds.skipped == {"1002": "invalid righthand_kpts (wrong length)", "1003": "iscrowd"}
    assert ds.part_problems == {"1001/lefthand": "invalid lefthand_box (NaN or inf)"}
    assert set(ds.parts["1000"]) == {"face", "lefthand", "righthand"} and set(ds.parts["1004"]) == {"face"}
    assert "part problems: invalid lefthand_box (NaN or inf): 1" in ds.summary()
    # the hand points reach the item by name: the left wrist of the hand = whole-body index 91
    raw = next(a for a in json.loads((wholebody_root / coco_fx.WHOLEBODY).read_text())["annotations"]
               if a["id"] == 1000)
    item = ds[[r.sample_id for r in ds.records].index("1000")]
    np.testing.assert_allclose(item["kp2d_img_px"][91].numpy(), raw["lefthand_kpts"][:2], atol=1e-3)
    smplx = COCOWholeBody(wholebody_root, coco_fx.WHOLEBODY, coco_fx.IMG_DIR, convention="smplx55")[0]
    assert smplx["kp2d_px"].shape == (55, 2)


def test_wholebody_hand_crops(wholebody_root):
    hands = WholeBodyHands(wholebody_root, coco_fx.WHOLEBODY, coco_fx.IMG_DIR)
    assert [r.sample_id for r in hands.records] == ["1000_left", "1000_right"]
    assert hands.skipped["1001_left"] == "unusable hand box (invalid lefthand_box (NaN or inf))"
    assert hands.skipped["1002_right"] == "person skipped (invalid righthand_kpts (wrong length))"
    assert hands.skipped["1004_left"] == "hand not annotated (lefthand_valid false)"
    item = hands[0]
    assert item["img"].shape == (3, 256, 256) and item["kp2d_mask"].sum() > 0
    box = hands.records[0].bbox_xywh_px
    assert box[2] == pytest.approx(box[3])  # square crops


def test_freihand_fixture(freihand_root):
    ds = FreiHAND(freihand_root, versions=(0, 1))
    assert ds.skipped == fx.FREIHAND_BAD
    assert [r.sample_id for r in ds.records] == ["00000000", "00000001", "00000004"]
    xyz = json.loads((freihand_root / "training_xyz.json").read_text())
    k_mat = np.asarray(json.loads((freihand_root / "training_K.json").read_text())[1])
    item = ds[1]
    assert item["kp2d_px"].shape == (21, 2) and item["kp2d_mask"].sum() == 21
    joints = np.asarray(xyz[1])
    np.testing.assert_allclose(item["joints_cam_m"].numpy(), joints - joints[0], atol=1e-5)  # wrist-relative
    uv = (joints @ k_mat.T)[:, :2] / joints[:, 2:3]
    np.testing.assert_allclose(item["kp2d_img_px"].numpy(), uv, atol=1e-3)
    assert ds.mano["00000004"].pose_rotvec.shape == (16, 3) and ds.records[2].sample_id == "00000004"
    with pytest.raises(ValueError, match="versions"):
        FreiHAND(freihand_root, versions=(4,))


def test_freihand_files_of_different_lengths(freihand_root, tmp_path):
    import shutil

    root = tmp_path / "fh"
    shutil.copytree(freihand_root, root)
    scales = json.loads((root / "training_scale.json").read_text())
    (root / "training_scale.json").write_text(json.dumps(scales[:-1]))
    with pytest.raises(ValueError, match="different lengths"):
        FreiHAND(root)


def test_interhand_fixture(interhand_root):
    ds = InterHand26M(interhand_root, split="train")
    assert ds.skipped == fx.INTERHAND_BAD
    assert [r.sample_id for r in ds.records] == ["1_right", "1_left", "2_right", "3_left"]
    truth = {f: np.asarray(w) for f, w in json.loads((interhand_root / "fixture_truth.json").read_text()).items()}
    cams = json.loads((interhand_root / "annotations/train/InterHand2.6M_train_camera.json").read_text())["0"]
    rot, pos = np.asarray(cams["camrot"]["400004"]), np.asarray(cams["campos"]["400004"])
    item = ds[2]  # 2_right, camera 400004, frame 0
    right_cam_m = (truth["0"][:21] - pos) @ rot.T / 1000.0
    expected, _ = convert(right_cam_m - right_cam_m[20], "interhand21", "hand21")
    np.testing.assert_allclose(item["joints_cam_m"].numpy(), expected, atol=1e-5)
    assert item["kp2d_mask"].sum() == 21 and item["real_cam_valid"] == 1
    np.testing.assert_allclose(ds.records[2].cam_focal_px, [1200.0, 1210.0])
    assert ds.sides == {"1_right": "right", "1_left": "left", "2_right": "right", "3_left": "left"}
    with pytest.raises(ValueError, match="split"):
        InterHand26M(interhand_root, split="dev")
    with pytest.raises(FileNotFoundError, match="InterHand2.6M_val_data.json"):
        InterHand26M(interhand_root, split="val")
