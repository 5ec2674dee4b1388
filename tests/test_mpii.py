"""Tests for annot.data.mpii on the fixture written by annot.data.fixtures.mpii.

The fixture poses the free body model in a per-annotation NeuralAnnot camera; the tests re-pose it from
``fixture_truth.json`` with ``BodyModel`` and its H36M regressor (MPII joints matched by name) and check
each named joint in crop pixels, the NeuralAnnot SMPL reprojection (also under flip + rotation), the
SMPL bookkeeping (missing fit counted, malformed fit skipped) and the errors.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annot.body_models import BodyModel
from annot.data.augment import AugmentConfig
from annot.data.fixtures.mpii import (
    ANN_FILE,
    BAD_AIDS,
    IMG_HW,
    NEURALANNOT,
    NO_FIT_AIDS,
    TRUTH_FILE,
    write_mpii_fixture,
)
from annot.data.mpii import MPII
from annot.data.registry import DATASETS
from annot.keypoints import get_convention
from tests.helpers import expected_box, posed_joints

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model missing: {FREE} (make setup)")
MPII16, H36M = get_convention("mpii16"), get_convention("h36m17")
SHARED = [n for n in MPII16.joint_names if n in H36M.joint_names]  # all but Thorax


@pytest.fixture(scope="module")
def body():
    return BodyModel.from_config("free", path=FREE)


@pytest.fixture(scope="module")
def root(tmp_path_factory, body):
    return write_mpii_fixture(tmp_path_factory.mktemp("mpii"), seed=0, body=body)


@pytest.fixture(scope="module")
def truth(root):
    return json.loads((root / TRUTH_FILE).read_text())


def _ds(root, **kw) -> MPII:
    return MPII(root, body_model_path=str(FREE), **kw)


@pytest.fixture(scope="module")
def truth_joints(truth, body):
    """{annotation id: (17, 3) H36M joints (metres, camera) of the person the fixture posed}."""
    return {aid: posed_joints(body, t["pose"], t["shape"], t["trans"], "h36m17") for aid, t in truth.items()}


def test_counts_with_and_without_smpl(root):
    plain = _ds(root)
    assert [r.sample_id for r in plain.records] == ["1", "2", "3", "4"]
    assert plain.skipped == {"5": "box outside image"} and all(r.smpl is None for r in plain.records)
    assert plain.summary() == "mpii: loaded 4, skipped 1: box outside image: 1"
    fitted = _ds(root, smpl_file=NEURALANNOT)
    assert [r.sample_id for r in fitted.records] == ["1", "2", "3"]
    assert fitted.skipped == BAD_AIDS and fitted.without_smpl == list(NO_FIT_AIDS)
    assert fitted.summary() == ("mpii: loaded 3, skipped 2: box outside image: 1, "
                                "invalid smpl_param.pose: 1; without SMPL fit: 1")
    assert DATASETS["mpii"] is MPII


@pytest.mark.parametrize("joint", ["R_Ankle", "L_Wrist", "Head_top", "Pelvis"])
def test_named_joint_lands_where_the_model_put_it(root, truth, truth_joints, joint):
    ds = _ds(root)
    anns = {str(a["id"]): a for a in json.loads((root / ANN_FILE).read_text())["annotations"]}
    for i, record in enumerate(ds.records):
        t = truth[record.sample_id]
        point = truth_joints[record.sample_id][H36M.index(joint)]
        expect_img = point[:2] / point[2] * np.array(t["focal"]) + np.array(t["princpt"])
        sample = ds[i]
        assert sample["kp2d_px"].shape == (16, 2)
        box = expected_box(anns[record.sample_id]["bbox"], IMG_HW[1], IMG_HW[0])
        np.testing.assert_allclose(sample["bbox_xywh_px"].numpy(), box, atol=1e-3)
        expect_crop = (expect_img - box[:2]) * np.array([192 / box[2], 256 / box[3]])
        np.testing.assert_allclose(sample["kp2d_px"][MPII16.index(joint)].numpy(), expect_crop, atol=2e-3)
        assert sample["kp2d_mask"][MPII16.index("Thorax")] == 0  # unlabelled in the fixture
        assert sample["joints_cam_mask"].sum() == 0  # MPII has no 3D


@pytest.mark.parametrize("aug", [
    AugmentConfig(enabled=False),
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=1.0, rot_factor_deg=30.0, color_factor=0.0),
])
def test_neuralannot_smpl_reprojects_onto_keypoints(root, body, aug):
    ds = _ds(root, smpl_file=NEURALANNOT, augment=aug, seed=5)
    idx = [MPII16.index(n) for n in SHARED]
    for i in range(len(ds)):
        s = ds[i]
        if s["sample_id"] in NO_FIT_AIDS:
            assert s["smpl_valid"] == 0 and s["real_cam_valid"] == 0
            continue
        joints = posed_joints(body, s["smpl_pose_rotvec"].double().numpy(), s["smpl_betas"], s["smpl_transl_m"],
                              "h36m17")
        joints = joints[[H36M.index(n) for n in SHARED]]
        kp = joints[:, :2] / joints[:, 2:] * s["real_focal_crop_px"].double().numpy() \
            + s["real_princpt_crop_px"].double().numpy()
        mask = s["kp2d_mask"].numpy()[idx] > 0
        err = np.linalg.norm(kp - s["kp2d_px"].double().numpy()[idx], axis=1)[mask]
        assert mask.sum() >= 10 and err.max() < 1.0, (s["sample_id"], err.max())


def _mutated(root: Path, tmp_path: Path, name: str, mutate) -> Path:
    data = json.loads((root / name).read_text())
    mutate(data)
    path = tmp_path / Path(name).name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("mutate, aid, reason", [
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(4, float("nan")), "1", "invalid keypoints (NaN or inf)"),
    (lambda d: d["annotations"][0].update(keypoints=[1.0] * 45), "1", "invalid keypoints (wrong length)"),
    (lambda d: d["annotations"][1].update(iscrowd=1), "2", "iscrowd"),
    (lambda d: d["annotations"][1].update(num_keypoints=0), "2", "no keypoints"),
    (lambda d: d["annotations"][2].update(bbox=[20, 20, 30]), "3", "invalid bbox (wrong length)"),
    (lambda d: d["images"][0].update(file_name="images/nothere.jpg"), "1", "missing image file"),
])
def test_bad_sample_skipped_with_reason(root, tmp_path, mutate, aid, reason):
    ds = _ds(root, ann_file=str(_mutated(root, tmp_path, ANN_FILE, mutate)))
    assert ds.skipped[aid] == reason and aid not in [r.sample_id for r in ds.records]


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d["1"]["smpl_param"].update(shape=[float("nan")] * 10), "invalid smpl_param.shape"),
    (lambda d: d["1"]["smpl_param"].pop("trans"), "invalid smpl_param.trans"),
    (lambda d: d["1"]["cam_param"].update(princpt=[1.0, 2.0, 3.0]), "invalid cam_param.princpt"),
    (lambda d: d["1"]["cam_param"].update(focal=[-5.0, 5.0]), "invalid cam_param.focal"),
    (lambda d: d.update({"1": "not an entry"}), "invalid smpl_param.pose"),
])
def test_malformed_fit_skipped_naming_field(root, tmp_path, mutate, reason):
    ds = _ds(root, smpl_file=str(_mutated(root, tmp_path, NEURALANNOT, mutate)))
    assert ds.skipped["1"] == reason


def test_errors_name_file_id_field_and_config_key(root, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        _ds(root, smpl_file="annotations/absent.json")
    assert str(root / "annotations/absent.json") in str(err.value) and "data.smpl_file" in str(err.value)
    with pytest.raises(FileNotFoundError, match="data.root"):
        _ds(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="data.ann_file"):
        _ds(tmp_path)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"list\.json: top level must be a JSON object"):
        _ds(root, smpl_file=str(tmp_path / "list.json"))
    path = _mutated(root, tmp_path, ANN_FILE, lambda d: d["annotations"][2].update(image_id=9))
    with pytest.raises(ValueError, match=r"train\.json: annotation id 3: field 'image_id'"):
        _ds(root, ann_file=str(path))


def test_config_file_builds_the_loader(root):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "data" / "mpii.yaml"))
    assert DATASETS[cfg.pop("dataset")] is MPII
    cfg.update(root=str(root), body_model_path=str(FREE))
    assert len(MPII(**cfg)) > 0
