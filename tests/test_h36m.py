"""Human3.6M loader on the tiny fixture written in the exact mks0601 layout.

Expected values come from outside the loader: the fixture's camera-1 people posed directly with the
body model (they never went through a world frame), and the spec formulas re-done with numpy on the
json files (``R @ X + t``, ``x = X / Z * f + c``, the mks0601 box).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import default_collate

from annot.body_models import BodyModel
from annot.data.augment import AugmentConfig
from annot.data.fixtures.common import joints_in, write_image
from annot.data.fixtures.h36m import H36M_CAMERAS, h36m_fixture_people, write_h36m_fixture
from annot.data.h36m import Human36M
from annot.data.registry import DATASETS, build_dataset
from annot.data.sample import SAMPLE_KEYS
from tests.helpers import expected_box

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = pytest.mark.skipif(not FREE.is_file(),
                                reason=f"free body model not baked at {FREE} (make setup)")
# Spec A.1 order, written out here on purpose (not read from annot.keypoints).
H36M_NAMES = ("Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck", "Head",
              "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist")
R_WRIST, L_WRIST = H36M_NAMES.index("R_Wrist"), H36M_NAMES.index("L_Wrist")
ANN = "annotations"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_h36m_fixture(tmp_path_factory.mktemp("h36m") / "Human36M", seed=0, body_model_path=FREE)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.from_config("free", path=FREE)


@pytest.fixture(scope="module")
def train(root) -> Human36M:
    return Human36M(root, subjects=[1], body_model_path=str(FREE))


def _frame_cam(root: Path, subject: int) -> dict[str, tuple[int, int]]:
    """sample_id -> (frame_idx, cam_idx), read straight from the data json."""
    data = json.loads((root / ANN / f"Human36M_subject{subject}_data.json").read_text())
    images = {img["id"]: img for img in data["images"]}
    return {str(a["id"]): (images[a["image_id"]]["frame_idx"], images[a["image_id"]]["cam_idx"])
            for a in data["annotations"]}


def _mutable_copy(root: Path, dst: Path) -> Path:
    """Copy of the annotations (editable) with the images folder linked."""
    shutil.copytree(root / ANN, dst / ANN)
    (dst / "images").symlink_to(root / "images", target_is_directory=True)
    return dst


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# ------------------------------------------------------------------------------------ counts
def test_train_counts_and_skip_reasons(root, train):
    ids = _frame_cam(root, 1)
    kept = {ids[r.sample_id] for r in train.records}
    assert kept == {(0, 1), (0, 4), (5, 1), (15, 4)}
    assert {ids[k]: v for k, v in train.skipped.items()} == {
        (5, 4): "missing image file", (10, 1): "non-finite 3D joints", (10, 4): "non-finite 3D joints",
        (15, 1): "degenerate box", (20, 1): "missing 3D joints", (20, 4): "missing 3D joints"}
    assert {ids[k]: v for k, v in train.smpl_missing.items()} == {(15, 4): "no SMPL entry"}
    assert train.summary() == ("h36m: loaded 4, skipped 6: missing 3D joints: 2, non-finite 3D joints: 2, "
                               "degenerate box: 1, missing image file: 1; smpl missing 1: no SMPL entry: 1")
    assert len(train) == 4 and train.frame_keys[train.records[0].sample_id] == (1, 2, 1, 0, 1)


def test_test_split_keeps_every_64th_frame_of_camera_4(root):
    ids = _frame_cam(root, 9)
    test = Human36M(root, split="test", subjects=[9], body_model_path=str(FREE))
    assert sorted(ids[r.sample_id] for r in test.records) == [(0, 4), (64, 4), (128, 4)]
    assert test.skipped == {}
    stride5 = Human36M(root, split="test", subjects=[9], frame_stride=5, use_smpl=False)
    assert sorted(ids[r.sample_id] for r in stride5.records) == [(0, 4), (5, 4)]


def test_frame_stride_override(root):
    every = Human36M(root, subjects=[1], frame_stride=1, use_smpl=False)
    assert len(every) == 8 and len(every.skipped) == 6      # + frames 3 and 64 on both cameras
    assert every.summary().endswith("missing image file: 1")  # no SMPL part without use_smpl


# ------------------------------------------------------------------------------------ geometry
def test_world_to_camera_follows_the_spec_formulas(root, train):
    cams = json.loads((root / ANN / "Human36M_subject1_camera.json").read_text())
    joints = json.loads((root / ANN / "Human36M_subject1_joint_3d.json").read_text())
    data = json.loads((root / ANN / "Human36M_subject1_data.json").read_text())
    anns = {str(a["id"]): a for a in data["annotations"]}
    images = {img["id"]: img for img in data["images"]}
    for index, record in enumerate(train.records):
        img = images[anns[record.sample_id]["image_id"]]
        cam = cams[str(img["cam_idx"])]
        world = np.array(joints[str(img["action_idx"])][str(img["subaction_idx"])][str(img["frame_idx"])])
        cam_mm = (np.array(cam["R"]) @ world.T).T + np.array(cam["t"])
        pix = cam_mm[:, :2] / cam_mm[:, 2:] * np.array(cam["f"]) + np.array(cam["c"])
        np.testing.assert_allclose(record.joints_cam_m, cam_mm / 1000.0, atol=1e-9)
        np.testing.assert_allclose(record.kp2d_img_px, pix, atol=1e-6)
        box = expected_box(anns[record.sample_id]["bbox"], 1000, 1002)
        np.testing.assert_allclose(record.bbox_xywh_px, box, atol=1e-6)
        sample = train[index]
        np.testing.assert_allclose(sample["root_cam_m"].numpy(), cam_mm[0] / 1000.0, atol=1e-5)
        np.testing.assert_allclose(sample["joints_cam_m"].numpy(), (cam_mm - cam_mm[0]) / 1000.0, atol=1e-5)
        np.testing.assert_allclose(sample["kp2d_img_px"].numpy(), pix, atol=1e-3)
        assert sample["real_cam_valid"] == 1.0 and sample["dataset"] == "h36m"


def test_right_wrist_lands_where_the_fixture_put_it(root, train, body):
    """Camera-1 samples against the fixture people posed directly in camera 1 (no world frame)."""
    people, ids = h36m_fixture_people(seed=0), _frame_cam(root, 1)
    _, _, focal, princpt = H36M_CAMERAS[1]
    checked = 0
    for index, record in enumerate(train.records):
        frame, cam = ids[record.sample_id]
        if cam != 1:
            continue
        joints = joints_in(body, people[1, frame], "h36m17")[0]
        wrist_img = joints[R_WRIST, :2] / joints[R_WRIST, 2] * np.array(focal) + np.array(princpt)
        box = record.bbox_xywh_px
        wrist_crop = (wrist_img - box[:2]) * np.array([192.0, 256.0]) / box[2:]
        sample = train[index]
        np.testing.assert_allclose(sample["kp2d_px"][R_WRIST].numpy(), wrist_crop, atol=0.05)
        np.testing.assert_allclose(sample["joints_cam_m"][R_WRIST].numpy(), joints[R_WRIST] - joints[0],
                                   atol=1e-4)
        np.testing.assert_allclose(sample["root_cam_m"].numpy(), joints[0], atol=1e-4)
        # the person faces camera 1, so the right wrist is on the image's left
        assert sample["joints_cam_m"][R_WRIST, 0] < 0 < sample["joints_cam_m"][L_WRIST, 0]
        checked += 1
    assert checked == 2


@pytest.mark.parametrize("augment", [
    None,
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=1.0, rot_factor_deg=30.0, scale_factor=0.2,
                  color_factor=0.0),
])
def test_smpl_in_camera_matches_gt_joints_and_pixels(root, body, augment):
    ds = Human36M(root, subjects=[1], augment=augment, seed=3, body_model_path=str(FREE))
    with_smpl = 0
    for index in range(len(ds)):
        s = ds[index]
        if augment is not None:
            assert bool(s["flipped"])
        if not s["smpl_valid"]:
            continue
        pose = s["smpl_pose_rotvec"].reshape(1, 72)
        with torch.no_grad():
            out = body(pose[:, :3], pose[:, 3:], s["smpl_betas"][None], s["smpl_transl_m"][None])
            joints = body.regress(out.vertices_m, "h36m17")[0][0].double().numpy()
        gt = (s["joints_cam_m"] + s["root_cam_m"]).double().numpy()
        np.testing.assert_allclose(joints, gt, atol=2e-3)  # metres: within 2 mm
        pix = joints[:, :2] / joints[:, 2:] * s["real_focal_crop_px"].double().numpy() \
            + s["real_princpt_crop_px"].double().numpy()
        assert np.abs(pix - s["kp2d_px"].double().numpy()).max() < 1.0
        with_smpl += 1
    assert with_smpl == 3  # 4 kept, frame 15 has no fit


def test_without_smpl(root):
    ds = Human36M(root, subjects=[1], use_smpl=False)
    assert ds.smpl_missing == {} and all(r.smpl is None for r in ds.records)
    assert float(ds[0]["smpl_valid"]) == 0.0


def test_missing_smpl_file_counts_every_sample(root, tmp_path):
    copy = _mutable_copy(root, tmp_path / "h36m")
    (copy / ANN / "Human36M_subject1_SMPL_NeuralAnnot.json").unlink()
    ds = Human36M(copy, subjects=[1], body_model_path=str(FREE))
    assert len(ds) == 4 and set(ds.smpl_missing.values()) == {"no SMPL file"} and len(ds.smpl_missing) == 4
    assert ds.summary().endswith("; smpl missing 4: no SMPL file: 4")


# ------------------------------------------------------------------------------------ errors
def test_missing_root_names_path_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*data\.root"):
        Human36M(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"annotation folder.*empty/annotations.*data\.root"):
        Human36M(tmp_path / "empty")


def test_missing_subject_file_names_file_and_subjects_key(root):
    with pytest.raises(FileNotFoundError, match=r"Human36M_subject5_data\.json.*data\.subjects"):
        Human36M(root, split="train")  # default subjects 1, 5, 6, 7, 8; the fixture has 1 only


def _drop_camera_4(d):
    del d["4"]


def _short_joints(d):
    d["2"]["1"]["0"] = d["2"]["1"]["0"][:16]


def _drop_focal(d):
    del d["1"]["f"]


def _drop_bbox(d):
    del d["annotations"][0]["bbox"]


def _drop_frame_idx(d):
    del d["images"][1]["frame_idx"]


def _short_pose(d):
    d["2"]["1"]["0"]["pose"] = d["2"]["1"]["0"]["pose"][:69]


@pytest.mark.parametrize("file, edit, pattern", [
    ("camera", _drop_camera_4, r"subject1_camera\.json: sample_id 2: field '\['4'\]' is missing"),
    ("joint_3d", _short_joints,
     r"subject1_joint_3d\.json: sample_id 1: field '\['2'\]\['1'\]\['0'\]'.*\(17, 3\)"),
    ("camera", _drop_focal, r"subject1_camera\.json: camera \['1'\]: field 'f' is missing"),
    ("data", _drop_bbox, r"subject1_data\.json: sample_id 1: field 'bbox' is missing"),
    ("data", _drop_frame_idx, r"subject1_data\.json: image id 2: field 'frame_idx' is missing"),
    ("SMPL_NeuralAnnot", _short_pose, r"subject1_SMPL_NeuralAnnot\.json: sample_id 1: field 'pose'.*\(72,\)"),
])
def test_malformed_files_name_file_sample_and_field(root, tmp_path, file, edit, pattern):
    copy = _mutable_copy(root, tmp_path / "h36m")
    _edit_json(copy / ANN / f"Human36M_subject1_{file}.json", edit)
    with pytest.raises(ValueError, match=pattern):
        Human36M(copy, subjects=[1], body_model_path=str(FREE))


def test_bad_arguments(root):
    with pytest.raises(ValueError, match="data.split"):
        Human36M(root, split="val")
    with pytest.raises(ValueError, match="data.frame_stride"):
        Human36M(root, subjects=[1], frame_stride=0)


# ------------------------------------------------------------------------------------ wiring
def test_config_builds_through_the_registry(root):
    assert DATASETS["h36m"] is Human36M
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "data" / "h36m.yaml"))
    name = cfg.pop("dataset")
    cfg.update(root=str(root), subjects=[1], body_model_path=str(FREE))
    ds = build_dataset(name, **cfg)
    assert isinstance(ds, Human36M) and len(ds) == 4 and ds.input_hw == (256, 192)


def test_default_collate_and_schema(train):
    batch = default_collate([train[0], train[1]])
    assert set(batch) == set(SAMPLE_KEYS)
    assert batch["img"].shape == (2, 3, 256, 192) and batch["joints_cam_m"].shape == (2, 17, 3)


def test_image_of_the_wrong_size_raises_at_getitem(root, tmp_path):
    copy = _mutable_copy(root, tmp_path / "h36m")
    (copy / "images").unlink()
    shutil.copytree(root / "images", copy / "images")
    ds = Human36M(copy, subjects=[1], use_smpl=False)
    path = ds.records[0].image_path
    write_image(path, (500, 400), [])
    with pytest.raises(ValueError, match=rf"{path.name}: decoded size \(500, 400\) != json .*sample_id 1"):
        ds[0]
