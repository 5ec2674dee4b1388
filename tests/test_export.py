"""NeuralAnnot-layout export: round trip, the crop -> original camera mapping, atomic writes, errors."""
import json

import numpy as np
import pytest
import torch

from annot.body_models import BodyModel
from annot.io.atomic import atomic_write_json
from annot.io.export import PseudoGT, crop_to_image_camera, read_pseudo_gt, write_pseudo_gt


def _entry(rng: np.random.Generator) -> PseudoGT:
    return PseudoGT(pose_rotvec=rng.normal(scale=0.3, size=(24, 3)), betas=rng.normal(size=10),
                    transl_m=np.array([0.1, -0.2, 8.0]) + rng.normal(scale=0.1, size=3),
                    focal_px=np.array([1200.0, 1200.0]), princpt_px=np.array([320.0, 240.0]),
                    quality={"kp2d_err_px": 3.5})


def test_written_and_read_back_gives_the_same_mesh(tmp_path, tiny_smpl_file):
    rng = np.random.default_rng(0)
    entries = {"442619": _entry(rng), "17": _entry(rng)}
    write_pseudo_gt(tmp_path / "pgt.json", entries)
    raw = json.loads((tmp_path / "pgt.json").read_text())
    assert list(raw) == ["17", "442619"]  # numeric order
    assert set(raw["17"]) >= {"smpl_param", "cam_param"}
    assert len(raw["17"]["smpl_param"]["pose"]) == 72
    back = read_pseudo_gt(tmp_path / "pgt.json")
    body = BodyModel.from_config(model_type="smpl", path=tiny_smpl_file)
    for aid, entry in entries.items():
        a, b = entry.smplx_kwargs(), back[aid].smplx_kwargs()
        va = body(a["global_orient"], a["body_pose"], a["betas"], a["transl"]).vertices_m
        vb = body(b["global_orient"], b["body_pose"], b["betas"], b["transl"]).vertices_m
        torch.testing.assert_close(va, vb, atol=1e-6, rtol=0)
        assert back[aid].quality == {"kp2d_err_px": 3.5}


def test_crop_to_image_camera_projects_to_the_same_pixel():
    # A crop of a box at (x=100, y=50) with size 96 x 128 px to a 192 x 256 input: s = 0.5 image px per crop px.
    crop_to_img = torch.tensor([[[0.5, 0.0, 100.0], [0.0, 0.5, 50.0]]])
    focal_crop, princpt_crop = torch.tensor([[5000.0, 5000.0]]), torch.tensor([[96.0, 128.0]])
    focal_img, princpt_img = crop_to_image_camera(focal_crop, princpt_crop, crop_to_img)
    torch.testing.assert_close(focal_img, torch.tensor([[2500.0, 2500.0]]))
    torch.testing.assert_close(princpt_img, torch.tensor([[148.0, 114.0]]))
    point = torch.tensor([0.3, -0.4, 25.0])
    crop_px = focal_crop[0] * point[:2] / point[2] + princpt_crop[0]   # (156, 48)
    via_affine = crop_to_img[0, :, :2] @ crop_px + crop_to_img[0, :, 2]
    direct = focal_img[0] * point[:2] / point[2] + princpt_img[0]
    torch.testing.assert_close(via_affine, direct)
    torch.testing.assert_close(direct, torch.tensor([178.0, 74.0]))


def test_rotated_crop_is_rejected():
    c, s = np.cos(0.3), np.sin(0.3)
    rot = torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]], dtype=torch.float32)
    with pytest.raises(ValueError, match="rotation"):
        crop_to_image_camera(torch.ones(1, 2), torch.ones(1, 2), rot)


def test_read_errors_name_file_annotation_and_field(tmp_path):
    path = tmp_path / "bad.json"
    good = _entry(np.random.default_rng(1)).to_json()
    good["smpl_param"]["pose"] = good["smpl_param"]["pose"][:70]
    path.write_text(json.dumps({"123": good}))
    with pytest.raises(ValueError) as err:
        read_pseudo_gt(path)
    assert "bad.json" in str(err.value) and "123" in str(err.value) and "smpl_param.pose" in str(err.value)
    path.write_text(json.dumps({"5": {"smpl_param": {}}}))
    with pytest.raises(ValueError, match="5.*smpl_param.pose"):
        read_pseudo_gt(path)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_quality_scores_and_eft_rule():
    from annot.io.export import quality_scores

    pred = {"betas": torch.tensor([[0.1, -6.0], [0.5, 0.2], [0.5, 0.2]]),
            "kp2d_err_img_px": torch.tensor([2.0, 3.0, 40.0]), "kp2d_loss_norm": torch.tensor([0.001, 0.002, 0.02]),
            "z": torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])}
    first, ok, bad_fit = (quality_scores(pred, i) for i in range(3))
    assert first["max_abs_beta"] == pytest.approx(6.0) and first["eft_reject"] == 1.0   # |beta| > 5
    assert first["z_norm"] == pytest.approx(5.0)
    assert ok["eft_reject"] == 0.0 and ok["kp2d_err_px"] == pytest.approx(3.0)
    assert bad_fit["eft_reject"] == 1.0                                                    # 2D loss > 0.01
