"""Tests for annot.data.pw3d on the fixture written by annot.data.fixtures.pw3d.

The fixture poses the free body model; the tests re-pose it from ``fixture_truth.json`` with
``BodyModel`` itself and check that the loader puts each named joint where the model put it (crop
pixels and camera metres), that the GT SMPL of every sample reprojects onto its 2D keypoints with the
sample's real camera (also under flip + rotation), and that bad persons are skipped with their reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annot.body_models import BodyModel
from annot.data.augment import AugmentConfig
from annot.data.fixtures.pw3d import BAD_AIDS, TRUTH_FILE, write_3dpw_fixture
from annot.data.pw3d import PW3D
from annot.data.registry import DATASETS
from annot.keypoints import get_convention
from tests.helpers import expected_box, posed_joints

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model missing: {FREE} (make setup)")
SMPL24 = get_convention("smpl24")


@pytest.fixture(scope="module")
def body():
    return BodyModel.from_config("free", path=FREE)


@pytest.fixture(scope="module")
def root(tmp_path_factory, body):
    return write_3dpw_fixture(tmp_path_factory.mktemp("pw3d"), seed=0, body=body)


@pytest.fixture(scope="module")
def truth(root):
    return json.loads((root / TRUTH_FILE).read_text())


@pytest.fixture(scope="module")
def truth_joints(truth, body):
    """{annotation id: (24, 3) smpl24 joints (metres, camera) of the person the fixture posed}."""
    return {aid: posed_joints(body, t["pose"], t["shape"], t["trans"], "smpl24") for aid, t in truth.items()}


def _ds(root, **kw) -> PW3D:
    return PW3D(root, body_model_path=str(FREE), **kw)


def test_counts_and_skip_reasons(root):
    ds = _ds(root)
    assert [r.sample_id for r in ds.records] == ["100", "101", "200", "201"]
    assert ds.skipped == BAD_AIDS
    assert ds.summary() == ("3dpw: loaded 4, skipped 2: invalid joint_cam (wrong length): 1, "
                            "no joint inside the image: 1")
    assert [r.sample_id for r in _ds(root, split="train").records] == ["300"]
    assert [r.sample_id for r in _ds(root, split="validation").records] == ["400"]
    assert DATASETS["3dpw"] is PW3D


@pytest.mark.parametrize("joint", ["L_Wrist", "R_Ankle", "Head"])
def test_named_joint_lands_where_the_model_put_it(root, truth, truth_joints, joint):
    ds = _ds(root)
    data = json.loads((root / "3DPW_test.json").read_text())
    images = {img["id"]: img for img in data["images"]}
    anns = {str(a["id"]): a for a in data["annotations"]}
    j = SMPL24.index(joint)
    for i, record in enumerate(ds.records):
        t = truth[record.sample_id]
        expect_m = truth_joints[record.sample_id][j]
        sample = ds[i]
        got_m = (sample["joints_cam_m"][j] + sample["root_cam_m"]).double().numpy()
        np.testing.assert_allclose(got_m, expect_m, atol=1e-5)
        img = images[anns[record.sample_id]["image_id"]]
        f, c = np.array(img["cam_param"]["focal"]), np.array(img["cam_param"]["princpt"])
        expect_img = expect_m[:2] / expect_m[2] * f + c
        box = expected_box(anns[record.sample_id]["bbox"], img["width"], img["height"])
        np.testing.assert_allclose(sample["bbox_xywh_px"].numpy(), box, atol=1e-3)
        expect_crop = (expect_img - box[:2]) * np.array([192 / box[2], 256 / box[3]])
        np.testing.assert_allclose(sample["kp2d_px"][j].numpy(), expect_crop, atol=2e-3)
        assert sample["smpl_gender"] == t["gender"] and float(sample["real_cam_valid"]) == 1.0


@pytest.mark.parametrize("aug", [
    AugmentConfig(enabled=False),
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=1.0, rot_factor_deg=30.0, color_factor=0.0),
    AugmentConfig(enabled=True, flip_prob=0.0, rot_prob=1.0, rot_factor_deg=30.0, shift_factor=0.1),
])
def test_gt_smpl_reprojects_onto_keypoints(root, body, aug):
    ds = _ds(root, augment=aug, seed=2)
    for i in range(len(ds)):
        s = ds[i]
        assert bool(s["flipped"]) == (aug.flip_prob == 1.0)
        joints = posed_joints(body, s["smpl_pose_rotvec"].double().numpy(), s["smpl_betas"], s["smpl_transl_m"],
                              "smpl24")
        kp = joints[:, :2] / joints[:, 2:] * s["real_focal_crop_px"].double().numpy() \
            + s["real_princpt_crop_px"].double().numpy()
        mask = s["kp2d_mask"].numpy() > 0
        assert mask.sum() >= 12
        err = np.linalg.norm(kp - s["kp2d_px"].double().numpy(), axis=1)[mask]
        assert err.max() < 1.0, (s["sample_id"], err.max())
        np.testing.assert_allclose(joints - joints[0], s["joints_cam_m"].double().numpy(), atol=2e-3)


def test_convention_conversion_keeps_names(root):
    native, coco = _ds(root)[0], _ds(root, convention="coco17")[0]
    coco_names = get_convention("coco17").joint_names
    for name in ("L_Shoulder", "R_Wrist", "L_Ankle"):
        np.testing.assert_allclose(coco["kp2d_px"][coco_names.index(name)],
                                   native["kp2d_px"][SMPL24.index(name)])
    assert coco["kp2d_mask"][coco_names.index("Nose")] == 0  # SMPL-24 has no nose


# --------------------------------------------------------------------------- bad input
def _mutated(root: Path, tmp_path: Path, mutate) -> Path:
    data = json.loads((root / "3DPW_test.json").read_text())
    mutate(data)
    path = tmp_path / "3DPW_test.json"
    path.write_text(json.dumps(data))
    return path


def _ann(data, aid):
    return next(a for a in data["annotations"] if a["id"] == aid)


@pytest.mark.parametrize("mutate, aid, reason", [
    (lambda d: _ann(d, 100)["joint_cam"][3].__setitem__(1, float("nan")), "100", "invalid joint_cam (NaN or inf)"),
    (lambda d: _ann(d, 101)["smpl_param"].update(gender="x"), "101", "invalid smpl_param.gender"),
    (lambda d: _ann(d, 101)["smpl_param"].update(shape=[0.0] * 9), "101", "invalid smpl_param.shape"),
    (lambda d: _ann(d, 200).update(bbox=[5000, 10, 50, 80]), "200", "box outside image"),
    (lambda d: _ann(d, 200).update(bbox=[10, 10, 0, 80]), "200", "degenerate box"),
    (lambda d: _ann(d, 200).update(bbox=[60, 10, -50, 80]), "200", "negative box size"),
    (lambda d: d["images"][1].update(file_name="image_00099.jpg"), "201", "missing image file"),
    (lambda d: d["images"][1]["cam_param"].update(focal=[500.0]), "201", "invalid cam_param.focal"),
])
def test_bad_sample_skipped_with_reason(root, tmp_path, mutate, aid, reason):
    ds = _ds(root, ann_file=str(_mutated(root, tmp_path, mutate)))
    assert ds.skipped[aid] == reason
    assert aid not in [r.sample_id for r in ds.records]
    assert f"{reason}: " in ds.summary()


def test_shape_longer_than_ten_is_cut(root, tmp_path):
    path = _mutated(root, tmp_path, lambda d: _ann(d, 100)["smpl_param"]["shape"].extend([9.0] * 6))
    assert _ds(root, ann_file=str(path)).records[0].smpl.betas.shape == (10,)


@pytest.mark.parametrize("mutate, pattern", [
    (lambda d: d["images"][0].pop("sequence"), r"3DPW_test\.json: image id 1: field 'sequence' is missing"),
    (lambda d: _ann(d, 100).update(image_id=77), r"3DPW_test\.json: annotation id 100: field 'image_id'"),
    (lambda d: _ann(d, 101).update(id=100), r"3DPW_test\.json: annotation id 100: field 'id' appears twice"),
    (lambda d: d.pop("images"), r"3DPW_test\.json: missing or non-list field 'images'"),
])
def test_malformed_file_raises_naming_file_id_field(root, tmp_path, mutate, pattern):
    with pytest.raises(ValueError, match=pattern):
        _ds(root, ann_file=str(_mutated(root, tmp_path, mutate)))


def test_missing_paths_name_config_keys(root, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        _ds(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "data.root" in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        _ds(tmp_path)
    assert str(tmp_path / "3DPW_test.json") in str(err.value) and "data.split" in str(err.value)
    with pytest.raises(ValueError, match="data.split"):
        _ds(root, split="val")


def test_config_file_builds_the_loader(root):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "data" / "3dpw.yaml"))
    assert DATASETS[cfg.pop("dataset")] is PW3D
    cfg.update(root=str(root), body_model_path=str(FREE))
    assert len(PW3D(**cfg)) > 0
