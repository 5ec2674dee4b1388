"""Tests for annot.data.mupots on the fixture written by annot.data.fixtures.mupots.

The fixture poses the free body model; the tests re-pose it from ``fixture_truth.json`` with
``BodyModel`` and its H36M regressor and check each named joint in crop pixels and in metres (the file
stores millimetres), the occlusion mask, the real camera under augmentation, and the skip reasons.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annot.body_models import BodyModel
from annot.data.augment import AugmentConfig
from annot.data.fixtures.mupots import BAD_AIDS, FRAMES, OCCLUDED, TRUTH_FILE, write_mupots_fixture
from annot.data.mupots import MuPoTS
from annot.data.registry import DATASETS
from annot.keypoints import get_convention
from tests.helpers import expected_box, posed_joints

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model missing: {FREE} (make setup)")
MUPOTS, H36M = get_convention("mupots17"), get_convention("h36m17")


@pytest.fixture(scope="module")
def body():
    return BodyModel.from_config("free", path=FREE)


@pytest.fixture(scope="module")
def root(tmp_path_factory, body):
    return write_mupots_fixture(tmp_path_factory.mktemp("mupots"), seed=0, body=body)


@pytest.fixture(scope="module")
def truth_joints(root, body):
    """{annotation id: (17, 3) H36M joints (metres, camera) of the person the fixture posed}."""
    return {aid: _h36m(body, t) for aid, t in json.loads((root / TRUTH_FILE).read_text()).items()}


@pytest.fixture(scope="module")
def ds(root):
    return MuPoTS(root)


def _h36m(body, t) -> np.ndarray:
    """(17, 3) H36M joints (metres, camera frame) of the fixture person ``t``, regressed by the model."""
    return posed_joints(body, t["pose"], t["shape"], t["trans"], "h36m17")


def test_counts_skips_and_defaults(ds):
    assert [r.sample_id for r in ds.records] == ["0", "1", "3"]
    assert ds.skipped == BAD_AIDS
    assert ds.summary() == "mupots: loaded 3, skipped 2: invalid keypoints_cam (wrong length): 1, is_valid == 0: 1"
    assert DATASETS["mupots"] is MuPoTS
    assert not ds.augment.enabled and not any(bool(ds[i]["flipped"]) for i in range(len(ds)))


# MuPoTS spells H36M's Neck "Thorax" (spec A.6)
@pytest.mark.parametrize("joint, h36m_joint", [("L_Wrist", "L_Wrist"), ("R_Ankle", "R_Ankle"),
                                               ("Head_top", "Head_top"), ("Thorax", "Neck")])
def test_named_joint_lands_where_the_model_put_it(root, ds, truth_joints, joint, h36m_joint):
    data = json.loads((root / "MuPoTS-3D.json").read_text())
    anns = {str(a["id"]): a for a in data["annotations"]}
    j = MUPOTS.index(joint)
    for i, record in enumerate(ds.records):
        expect_m = truth_joints[record.sample_id][H36M.index(h36m_joint)]
        sample = ds[i]
        got_m = (sample["joints_cam_m"][j] + sample["root_cam_m"]).double().numpy()
        np.testing.assert_allclose(got_m, expect_m, atol=1e-5)
        _, _, (h, w), intrinsic, _ = FRAMES[anns[record.sample_id]["image_id"]]
        expect_img = expect_m[:2] / expect_m[2] * np.array(intrinsic[:2]) + np.array(intrinsic[2:])
        box = expected_box(anns[record.sample_id]["bbox"], w, h)
        np.testing.assert_allclose(sample["bbox_xywh_px"].numpy(), box, atol=1e-3)
        expect_crop = (expect_img - box[:2]) * np.array([192 / box[2], 256 / box[3]])
        np.testing.assert_allclose(sample["kp2d_px"][j].numpy(), expect_crop, atol=2e-3)


def test_visibility_is_the_kp2d_mask(ds):
    sample = ds[[r.sample_id for r in ds.records].index(OCCLUDED[0])]
    mask = sample["kp2d_mask"].numpy()
    assert mask[MUPOTS.index(OCCLUDED[1])] == 0 and mask.sum() == 16
    assert sample["joints_cam_mask"].sum() == 17  # 3D GT is complete


@pytest.mark.parametrize("aug", [
    AugmentConfig(enabled=False),
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=0.0, scale_factor=0.25, color_factor=0.0),
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=1.0, rot_factor_deg=30.0, color_factor=0.0),
])
def test_3d_joints_project_onto_keypoints_with_real_camera(root, aug):
    """Exact without rotation; with an in-plane rotation only for ``fx == fy`` (TS1), since a rotated
    anisotropic camera is not a pinhole camera of the crop (see annot.data.person._real_camera)."""
    ds = MuPoTS(root, augment=aug, seed=4)
    anns = {str(a["id"]): a for a in json.loads((root / "MuPoTS-3D.json").read_text())["annotations"]}
    checked = 0
    for i in range(len(ds)):
        s = ds[i]
        intrinsic = FRAMES[anns[s["sample_id"]]["image_id"]][3]
        if aug.enabled and aug.rot_prob > 0 and intrinsic[0] != intrinsic[1]:
            continue
        joints = (s["joints_cam_m"] + s["root_cam_m"]).double().numpy()
        kp = joints[:, :2] / joints[:, 2:] * s["real_focal_crop_px"].double().numpy() \
            + s["real_princpt_crop_px"].double().numpy()
        mask = s["kp2d_mask"].numpy() > 0
        err = np.linalg.norm(kp - s["kp2d_px"].double().numpy(), axis=1)[mask]
        assert mask.sum() >= 10 and err.max() < 0.05, (s["sample_id"], err.max())
        checked += 1
    assert checked >= 2


def _mutated(root: Path, tmp_path: Path, mutate) -> Path:
    data = json.loads((root / "MuPoTS-3D.json").read_text())
    mutate(data)
    path = tmp_path / "MuPoTS-3D.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("mutate, aid, reason", [
    (lambda d: d["annotations"][0]["keypoints_img"][5].__setitem__(0, float("nan")), "0",
     "invalid keypoints_img (NaN or inf)"),
    (lambda d: d["annotations"][1].update(keypoints_vis=[1] * 15), "1", "invalid keypoints_vis (wrong length)"),
    (lambda d: d["annotations"][1].update(bbox=[-900, 10, 50, 80]), "1", "box outside image"),
    (lambda d: d["annotations"][1].update(bbox=[100, 10, -50, 80]), "1", "negative box size"),
    (lambda d: d["images"][1].update(intrinsic=[450.0, 450.0, 238.0]), "3", "invalid intrinsic"),
    (lambda d: d["images"][1].update(file_name="TS6/img_000099.jpg"), "3", "missing image file"),
])
def test_bad_sample_skipped_with_reason(root, tmp_path, mutate, aid, reason):
    ds = MuPoTS(root, ann_file=str(_mutated(root, tmp_path, mutate)))
    assert ds.skipped[aid] == reason and f"{reason}: " in ds.summary()
    assert aid not in [r.sample_id for r in ds.records]


@pytest.mark.parametrize("mutate, pattern", [
    (lambda d: d["images"][0].pop("height"), r"MuPoTS-3D\.json: image id 0: field 'height' is missing"),
    (lambda d: d["annotations"][3].update(image_id=5), r"MuPoTS-3D\.json: annotation id 3: field 'image_id'"),
    (lambda d: d["annotations"][1].pop("image_id"),
     r"MuPoTS-3D\.json: annotation id 1: field 'image_id' is missing"),
])
def test_malformed_file_raises_naming_file_id_field(root, tmp_path, mutate, pattern):
    with pytest.raises(ValueError, match=pattern):
        MuPoTS(root, ann_file=str(_mutated(root, tmp_path, mutate)))


def test_missing_paths_name_config_keys(root, tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        MuPoTS(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as err:
        MuPoTS(tmp_path)
    assert str(tmp_path / "MuPoTS-3D.json") in str(err.value) and "data.ann_file" in str(err.value)
    with pytest.raises(FileNotFoundError, match="data.img_dir"):
        MuPoTS(root, img_dir="images")


def test_config_file_builds_the_loader(root):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "data" / "mupots.yaml"))
    assert DATASETS[cfg.pop("dataset")] is MuPoTS
    cfg.update(root=str(root), body_model_path=str(FREE))
    assert len(MuPoTS(**cfg)) > 0
