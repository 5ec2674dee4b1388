"""MPI-INF-3DHP loader on the tiny fixture written in the exact mks0601 layout (Y-up world frame).

Expected values come from outside the loader: the fixture people posed directly in their reference
camera (no world frame), and the spec formulas re-done with numpy on the json files.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from torch.utils.data import default_collate

from annot.body_models import BodyModel
from annot.data.augment import AugmentConfig
from annot.data.fixtures.common import joints_in
from annot.data.fixtures.mpi_inf_3dhp import (
    mpi_inf_fixture_cameras,
    mpi_inf_fixture_people,
    write_mpi_inf_3dhp_fixture,
)
from annot.data.mpi_inf_3dhp import MPIINF3DHP
from annot.data.person import SmplParams
from annot.data.registry import DATASETS, build_dataset
from annot.data.sample import SAMPLE_KEYS

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = pytest.mark.skipif(not FREE.is_file(),
                                reason=f"free body model not baked at {FREE} (make setup)")
# Spec A.2 order, written out here on purpose (not read from annot.keypoints).
MPI_NAMES = ("Head_top", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
             "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Torso", "Head")
R_WRIST, L_WRIST, PELVIS = MPI_NAMES.index("R_Wrist"), MPI_NAMES.index("L_Wrist"), MPI_NAMES.index("Pelvis")
DATA = "data"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_mpi_inf_3dhp_fixture(tmp_path_factory.mktemp("mpi") / "MPI_INF_3DHP", seed=0,
                                      body_model_path=FREE)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.from_config("free", path=FREE)


@pytest.fixture(scope="module")
def train(root) -> MPIINF3DHP:
    return MPIINF3DHP(root, body_model_path=str(FREE))


def _keys(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """sample_id -> (subject, seq, frame, cam), read straight from the data json."""
    data = json.loads((root / DATA / "MPI-INF-3DHP_1k.json").read_text())
    images = {img["id"]: img for img in data["images"]}
    out = {}
    for ann in data["annotations"]:
        img = images[ann["image_id"]]
        out[str(ann["id"])] = (img["subject_idx"], img["seq_idx"], img["frame_idx"], img["cam_idx"])
    return out


def _mutable_copy(root: Path, dst: Path) -> Path:
    """Copy of the jsons (editable) with the image folder linked."""
    (dst / DATA).mkdir(parents=True)
    for path in (root / DATA).glob("*.json"):
        shutil.copy(path, dst / DATA / path.name)
    (dst / DATA / "images_1k").symlink_to(root / DATA / "images_1k", target_is_directory=True)
    return dst


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# ------------------------------------------------------------------------------------ counts
def test_counts_and_skip_reasons(root, train):
    keys = _keys(root)
    assert sorted(keys[r.sample_id] for r in train.records) == [
        (1, 1, 0, 0), (1, 1, 0, 2), (1, 1, 3, 0), (1, 1, 3, 2), (1, 1, 9, 0), (2, 2, 0, 0)]
    assert {keys[k]: v for k, v in train.skipped.items()} == {
        (1, 1, 6, 0): "non-finite 3D joints", (1, 1, 6, 2): "non-finite 3D joints",
        (1, 1, 9, 2): "missing image file", (1, 1, 12, 0): "missing 3D joints",
        (1, 1, 12, 2): "missing 3D joints",
        (2, 2, 3, 0): "degenerate box"}
    assert {keys[k]: v for k, v in train.smpl_missing.items()} == {
        (1, 1, 3, 0): "no SMPL entry", (1, 1, 3, 2): "no SMPL entry"}
    assert train.summary() == ("mpi_inf_3dhp: loaded 6, skipped 6: missing 3D joints: 2, "
                               "non-finite 3D joints: 2, degenerate box: 1, missing image file: 1; "
                               "smpl missing 2: no SMPL entry: 2")
    assert all(train.frame_keys[r.sample_id] == keys[r.sample_id] for r in train.records)


def test_frame_stride_and_subject_overrides(root):
    keys = _keys(root)
    every = MPIINF3DHP(root, frame_stride=1, use_smpl=False)
    assert len(every) == 8 and sorted(keys[r.sample_id][2] for r in every.records).count(1) == 2
    only2 = MPIINF3DHP(root, subjects=[2], use_smpl=False)
    assert [keys[r.sample_id] for r in only2.records] == [(2, 2, 0, 0)]
    assert only2.summary() == "mpi_inf_3dhp: loaded 1, skipped 1: degenerate box: 1"


# ------------------------------------------------------------------------------------ geometry
def test_world_to_camera_follows_the_spec_formulas(root, train):
    cams = json.loads((root / DATA / "MPI-INF-3DHP_camera_1k.json").read_text())
    joints = json.loads((root / DATA / "MPI-INF-3DHP_joint_3d.json").read_text())
    keys = _keys(root)
    for index, record in enumerate(train.records):
        subject, seq, frame, cam_idx = (str(k) for k in keys[record.sample_id])
        cam = cams[subject][seq][cam_idx]
        world = np.array(joints[subject][seq][frame])
        cam_mm = (np.array(cam["R"]) @ world.T).T + np.array(cam["t"])
        pix = cam_mm[:, :2] / cam_mm[:, 2:] * np.array(cam["focal"]) + np.array(cam["princpt"])
        np.testing.assert_allclose(record.joints_cam_m, cam_mm / 1000.0, atol=1e-9)
        np.testing.assert_allclose(record.kp2d_img_px, pix, atol=1e-6)
        np.testing.assert_allclose(record.cam_focal_px, cam["focal"])
        sample = train[index]
        np.testing.assert_allclose(sample["root_cam_m"].numpy(), cam_mm[PELVIS] / 1000.0, atol=1e-5)
        rel_m = (cam_mm - cam_mm[PELVIS]) / 1000.0
        np.testing.assert_allclose(sample["joints_cam_m"].numpy(), rel_m, atol=1e-5)
        assert sample["image_path"].endswith(f"images_1k/S{subject}/Seq{seq}/imageSequence/img_{cam_idx}_"
                                             f"{int(frame) + 1:06d}.jpg")


def test_right_wrist_lands_where_the_fixture_put_it(root, train, body):
    """Reference-camera (cam 0) samples against the fixture people posed directly in that camera."""
    people, keys, cams = mpi_inf_fixture_people(seed=0), _keys(root), mpi_inf_fixture_cameras()
    checked = 0
    for index, record in enumerate(train.records):
        subject, seq, frame, cam = keys[record.sample_id]
        if cam != 0:
            continue
        _, _, focal, princpt = cams[subject, seq, cam]
        joints = joints_in(body, people[subject, seq, frame], "mpi_inf_3dhp17")[0]
        wrist_img = joints[R_WRIST, :2] / joints[R_WRIST, 2] * focal + princpt
        box = record.bbox_xywh_px
        wrist_crop = (wrist_img - box[:2]) * np.array([192.0, 256.0]) / box[2:]
        sample = train[index]
        np.testing.assert_allclose(sample["kp2d_px"][R_WRIST].numpy(), wrist_crop, atol=0.05)
        np.testing.assert_allclose(sample["joints_cam_m"][R_WRIST].numpy(), joints[R_WRIST] - joints[PELVIS],
                                   atol=1e-4)
        assert sample["joints_cam_m"][R_WRIST, 0] < 0 < sample["joints_cam_m"][L_WRIST, 0]  # faces the camera
        checked += 1
    assert checked == 4


@pytest.mark.parametrize("augment", [
    None,
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=1.0, rot_factor_deg=30.0, scale_factor=0.2,
                  color_factor=0.0),
])
def test_smpl_in_camera_matches_gt_joints_and_pixels(root, body, augment):
    ds = MPIINF3DHP(root, augment=augment, seed=5, body_model_path=str(FREE))
    with_smpl = 0
    for index in range(len(ds)):
        s = ds[index]
        if augment is not None:
            assert bool(s["flipped"])
        if not s["smpl_valid"]:
            continue
        fit = SmplParams(s["smpl_pose_rotvec"].double().numpy(), s["smpl_betas"].double().numpy(),
                         s["smpl_transl_m"].double().numpy())
        joints = joints_in(body, fit, "mpi_inf_3dhp17")[0]
        gt = (s["joints_cam_m"] + s["root_cam_m"]).double().numpy()
        np.testing.assert_allclose(joints, gt, atol=2e-3)  # metres: within 2 mm
        pix = joints[:, :2] / joints[:, 2:] * s["real_focal_crop_px"].double().numpy() \
            + s["real_princpt_crop_px"].double().numpy()
        assert np.abs(pix - s["kp2d_px"].double().numpy()).max() < 1.0
        with_smpl += 1
    assert with_smpl == 4  # 6 kept, S1 frame 3 (two cameras) has no fit


def test_missing_smpl_file_counts_every_sample(root, tmp_path):
    copy = _mutable_copy(root, tmp_path / "mpi")
    (copy / DATA / "MPI-INF-3DHP_SMPL_NeuralAnnot.json").unlink()
    ds = MPIINF3DHP(copy, body_model_path=str(FREE))
    assert len(ds) == 6 and ds.summary().endswith("; smpl missing 6: no SMPL file: 6")


# ------------------------------------------------------------------------------------ errors
def test_missing_root_and_folders_name_path_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*data\.root"):
        MPIINF3DHP(tmp_path / "nowhere")
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match=r"bare/data.*data\.root"):
        MPIINF3DHP(tmp_path / "bare")
    (tmp_path / "bare" / "data" / "images_1k").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"MPI-INF-3DHP_1k\.json.*data\.root"):
        MPIINF3DHP(tmp_path / "bare")


def _h36m_style_camera(d):
    cam = d["1"]["1"]["0"]
    cam["f"], cam["c"] = cam.pop("focal"), cam.pop("princpt")


def _drop_camera_2(d):
    del d["1"]["1"]["2"]


def _short_joints(d):
    d["1"]["1"]["0"] = d["1"]["1"]["0"][:14]


def _drop_seq_idx(d):
    del d["images"][0]["seq_idx"]


def _shape_11(d):
    d["1"]["1"]["0"]["shape"] = d["1"]["1"]["0"]["shape"] + [0.0]


@pytest.mark.parametrize("file, edit, pattern", [
    ("camera_1k", _h36m_style_camera,
     r"camera_1k\.json: camera \['1'\]\['1'\]\['0'\]: field 'focal' is missing"),
    ("camera_1k", _drop_camera_2, r"camera_1k\.json: sample_id 2: field '\['1'\]\['1'\]\['2'\]' is missing"),
    ("joint_3d", _short_joints, r"joint_3d\.json: sample_id 1: field '\['1'\]\['1'\]\['0'\]'.*\(17, 3\)"),
    ("1k", _drop_seq_idx, r"MPI-INF-3DHP_1k\.json: image id 1: field 'seq_idx' is missing"),
    ("SMPL_NeuralAnnot", _shape_11, r"SMPL_NeuralAnnot\.json: sample_id 1: field 'shape'.*\(10,\)"),
])
def test_malformed_files_name_file_sample_and_field(root, tmp_path, file, edit, pattern):
    copy = _mutable_copy(root, tmp_path / "mpi")
    _edit_json(copy / DATA / f"MPI-INF-3DHP_{file}.json", edit)
    with pytest.raises(ValueError, match=pattern):
        MPIINF3DHP(copy, body_model_path=str(FREE))


def test_only_train_split(root):
    with pytest.raises(ValueError, match="only split 'train'"):
        MPIINF3DHP(root, split="test")


# ------------------------------------------------------------------------------------ wiring
def test_config_builds_through_the_registry(root):
    assert DATASETS["mpi_inf_3dhp"] is MPIINF3DHP
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "data" / "mpi_inf_3dhp.yaml"))
    name = cfg.pop("dataset")
    cfg.update(root=str(root), body_model_path=str(FREE))
    ds = build_dataset(name, **cfg)
    assert isinstance(ds, MPIINF3DHP) and len(ds) == 6


def test_default_collate_and_schema(train):
    batch = default_collate([train[0], train[1]])
    assert set(batch) == set(SAMPLE_KEYS)
    assert batch["img"].shape == (2, 3, 256, 192) and batch["kp2d_px"].shape == (2, 17, 2)
