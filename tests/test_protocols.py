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
    from annot.annotator.losses import eft_kp2d_loss_norm

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


# =========================================================================== estimator evaluation
import pickle  # noqa: E402

import scipy.io  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

from annot.body_models import BodyModel  # noqa: E402
from annot.keypoints import convert  # noqa: E402
from annot.metrics import MuPoTS3DPCK  # noqa: E402
from estimators.base import (  # noqa: E402
    MUPOTS_REGRESSOR_BY_NAME,
    MUPOTS_REGRESSOR_MI,
    EstimatorModule,
    _mupots_images,
    _mupots_people,
)
from tests.conftest import build_tiny_smpl_dict  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"


class _FixedEstimator(EstimatorModule):
    """An estimator whose forward returns preset vertices (tests of the evaluation only)."""

    input_hw = (64, 48)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.next_vertices = None

    def forward(self, img):
        return {"vertices_cam_m": self.next_vertices}


@pytest.fixture
def smpl_tree(tmp_path, monkeypatch):
    """``BODY_MODELS_DIR`` with synthetic neutral + male SMPL files (no female), the H36M regressor and
    the MPI regressor assets."""
    root = tmp_path / "body_models"
    (root / "smpl").mkdir(parents=True)
    for gender, seed in (("NEUTRAL", 0), ("MALE", 7)):
        with open(root / "smpl" / f"SMPL_{gender}.pkl", "wb") as handle:
            pickle.dump(build_tiny_smpl_dict(seed=seed), handle)
    rng = np.random.default_rng(3)
    for name, rows in (("J_regressor_h36m_smpl.npy", 17), ("J_regressor_mi_smpl.npy", 24)):
        reg = np.zeros((rows, 6890))
        for r in range(rows):
            cols = rng.choice(6890, size=6, replace=False)
            reg[r, cols] = rng.dirichlet(np.ones(6))
        np.save(root / name, reg)
    monkeypatch.setenv("BODY_MODELS_DIR", str(root))
    return root


def _smpl_batch(n: int, genders: list[str], dataset: str) -> dict:
    gen = torch.Generator().manual_seed(1)
    pose = torch.randn(n, 24, 3, generator=gen) * 0.2
    return {"smpl_pose_rotvec": pose, "smpl_betas": torch.randn(n, 10, generator=gen),
            "smpl_transl_m": torch.tensor([[0.0, 0.2, 4.0]]).repeat(n, 1), "smpl_valid": torch.ones(n),
            "smpl_gender": genders, "dataset": [dataset] * n,
            "joints_cam_m": torch.randn(n, 17, 3, generator=gen) * 0.3}


# --------------------------------------------------------------------------- item 1: gendered 3DPW GT
def test_3dpw_gt_mesh_uses_the_subjects_gender_with_counted_fallback(smpl_tree, caplog):
    module = _FixedEstimator(body_model_type="smpl", val_set_names=("3dpw",))
    batch = _smpl_batch(3, ["male", "female", "neutral"], "3dpw")
    joints, vertices = module._gt_eval_joints(batch)
    pose, betas, transl = batch["smpl_pose_rotvec"].reshape(3, 72), batch["smpl_betas"], batch["smpl_transl_m"]
    male = BodyModel("smpl", "male", smpl_tree / "smpl" / "SMPL_MALE.pkl")
    neutral = BodyModel("smpl", "neutral", smpl_tree / "smpl" / "SMPL_NEUTRAL.pkl")
    expect = [male(pose[:1, :3], pose[:1, 3:], betas[:1], transl[:1]).vertices_m[0],
              neutral(pose[1:, :3], pose[1:, 3:], betas[1:], transl[1:]).vertices_m]
    torch.testing.assert_close(vertices[0], expect[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(vertices[1:], expect[1], atol=1e-5, rtol=0)
    # the neutral model (old behaviour) gives a different male mesh
    old = neutral(pose[:1, :3], pose[:1, 3:], betas[:1], transl[:1]).vertices_m[0]
    assert (old - expect[0]).norm(dim=-1).mean() > 1e-2
    h36m = np.load(smpl_tree / "J_regressor_h36m_smpl.npy")
    torch.testing.assert_close(joints, torch.einsum("jv,bvc->bjc", torch.from_numpy(h36m).float(), vertices),
                               atol=1e-5, rtol=0)
    # the female file is missing: neutral, one warning, one counted sample; models are loaded once
    assert dict(module.gender_fallbacks) == {"female": 1}
    assert any("female" in r.message for r in caplog.records if r.levelname == "WARNING")
    assert module.gt_body_model("male") is module.gt_body_model("male")
    module._gt_eval_joints(batch)
    assert dict(module.gender_fallbacks) == {"female": 2}
    assert module.protocol_notes()["gt_gender_fallbacks"] == {"female": 2}


# --------------------------------------------------------------------------- item 8: H36M GT = MoCap
def test_h36m_validation_scores_against_mocap_joints_even_with_smpl(smpl_tree):
    module = _FixedEstimator(body_model_type="smpl", val_set_names=("h36m",))
    batch = _smpl_batch(2, ["neutral", "neutral"], "h36m")   # use_smpl: the loader carries pseudo-GT SMPL
    joints, vertices = module._gt_eval_joints(batch)
    assert vertices is None
    torch.testing.assert_close(joints, batch["joints_cam_m"], atol=0, rtol=0)
    # and the MPJPE of a prediction equal to the MoCap joints' mesh is scored against the MoCap joints
    module.next_vertices = torch.zeros(2, 6890, 3)
    module.validation_step({**batch, "img": torch.zeros(2, 3, 64, 48)}, 0)
    pred = torch.zeros(2, 17, 3)
    gt = batch["joints_cam_m"]
    idx = [1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16]
    ref = ((gt[:, idx] - gt[:, :1]) - (pred[:, idx] - pred[:, :1])).norm(dim=-1).mean() * 1000
    assert float(module.val_metrics["h36m"]["mpjpe_mm"].compute()) == pytest.approx(float(ref), rel=1e-5)
    assert not module.val_metrics["h36m"]["mpvpe_mm"].update_called


# --------------------------------------------------------------------------- item 7: PA-MPVPE for 3DPW
def rigid_align_ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """mks0601 Hand4Whole ``common/utils/transforms.py::rigid_transform_3D`` + ``rigid_align``, written out."""
    n, dim = a.shape
    ca, cb = a.mean(0), b.mean(0)
    h = (a - ca).T @ (b - cb) / n
    u, s, vt = np.linalg.svd(h)
    r = vt.T @ u.T
    if np.linalg.det(r) < 0:
        s[-1] = -s[-1]
        vt[2] = -vt[2]
        r = vt.T @ u.T
    c = s.sum() / np.var(a, axis=0).sum()
    t = cb - c * r @ ca
    return (c * r @ a.T).T + t


def test_3dpw_logs_pa_mpvpe_as_hand4whole(smpl_tree):
    from estimators.config import METRIC_KEYS

    assert "pa_mpvpe_mm" in METRIC_KEYS
    module = _FixedEstimator(body_model_type="smpl", val_set_names=("3dpw",))
    batch = _smpl_batch(2, ["neutral", "neutral"], "3dpw")
    gt_vertices = module.gt_mesh(batch)
    gen = torch.Generator().manual_seed(5)
    angle = 0.3
    rot = torch.tensor([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]).float()
    noise = 0.01 * torch.randn(gt_vertices.shape, generator=gen)
    pred = 1.1 * gt_vertices @ rot.T + torch.tensor([0.1, 0.0, 0.3]) + noise
    module.next_vertices = pred
    module.validation_step({**batch, "img": torch.zeros(2, 3, 64, 48)}, 0)
    h36m = np.load(smpl_tree / "J_regressor_h36m_smpl.npy")
    errors = []
    for p, g in zip(pred.double().numpy(), gt_vertices.double().numpy()):
        p, g = p - (h36m @ p)[0], g - (h36m @ g)[0]   # mks0601: each mesh minus its regressed pelvis
        errors.append(np.linalg.norm(rigid_align_ref(p, g) - g, axis=1).mean() * 1000)
    got = float(module.val_metrics["3dpw"]["pa_mpvpe_mm"].compute())
    assert got == pytest.approx(np.mean(errors), rel=1e-4)
    assert got < float(module.val_metrics["3dpw"]["mpvpe_mm"].compute())


# --------------------------------------------------------------------------- item 2: MuPoTS 3DPCK
def test_mupots_joints_from_the_mpi_regressor_rooted_at_the_mpi_pelvis(smpl_tree):
    module = _FixedEstimator(body_model_type="smpl", val_set_names=("mupots",))
    vertices = module.gt_mesh(_smpl_batch(2, ["neutral", "neutral"], "mupots"))
    h36m_joints, _ = module.body_model.regress(vertices, "h36m17")
    mi = np.load(smpl_tree / "J_regressor_mi_smpl.npy")[:17]
    got = module._mupots_pred_joints(vertices, h36m_joints)
    torch.testing.assert_close(got, torch.einsum("jv,bvc->bjc", torch.from_numpy(mi).float(), vertices),
                               atol=1e-6, rtol=0)
    assert module.mupots_regressor_used == MUPOTS_REGRESSOR_MI
    # the by-name conversion of the H36M joints (the old path) is another skeleton
    by_name = convert(h36m_joints, "h36m17", "mupots17")[0]
    assert (by_name - got).norm(dim=-1).mean() > 1e-3
    # rooted at the MPI pelvis (index 14) + the GT root
    root = torch.tensor([[0.5, 0.1, 5.0], [-0.5, 0.0, 6.0]])
    batch = {"root_cam_m": root, "joints_cam_m": torch.zeros(2, 17, 3), "kp2d_img_px": torch.zeros(2, 17, 2),
             "real_focal_crop_px": torch.full((2, 2), 500.0), "real_princpt_crop_px": torch.full((2, 2), 100.0),
             "crop_to_img": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3),
             "image_path": ["TS2/img_000000.jpg"] * 2, "sample_id": ["a", "b"]}
    people = _mupots_people(batch, got)
    for person, r in zip(people, root):
        torch.testing.assert_close(person["pred3d"][14], r, atol=1e-6, rtol=0)


def test_mupots_regressor_fallback_is_named(smpl_tree):
    (smpl_tree / "J_regressor_mi_smpl.npy").unlink()
    module = _FixedEstimator(body_model_type="smpl", val_set_names=("mupots",))
    vertices = module.gt_mesh(_smpl_batch(1, ["neutral"], "mupots"))
    h36m_joints, _ = module.body_model.regress(vertices, "h36m17")
    got = module._mupots_pred_joints(vertices, h36m_joints)
    torch.testing.assert_close(got, convert(h36m_joints, "h36m17", "mupots17")[0])
    assert module.mupots_regressor_used == MUPOTS_REGRESSOR_BY_NAME


def test_mupots_matching_ignores_gt_visibility_as_the_matlab_script():
    """A GT person whose json marks every joint invisible is still matched (MATLAB: visibility all ones)."""
    gen = torch.Generator().manual_seed(0)
    gt_rel = torch.randn(1, 17, 3, generator=gen) * 0.3
    gt_rel -= gt_rel[:, :1].clone()
    root = torch.tensor([[0.0, 0.0, 5.0]])
    cam = gt_rel + root[:, None]
    kp = cam[..., :2] / cam[..., 2:] * 1000.0 + 500.0
    batch = {"root_cam_m": root, "joints_cam_m": gt_rel, "kp2d_img_px": kp, "kp2d_mask": torch.zeros(1, 17),
             "real_focal_crop_px": torch.full((1, 2), 1000.0), "real_princpt_crop_px": torch.full((1, 2), 500.0),
             "crop_to_img": torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]),
             "image_path": ["TS1/img_000003.jpg"], "sample_id": ["0"]}
    people = _mupots_people(batch, convert(gt_rel, "h36m17", "mupots17")[0])
    args = _mupots_images(people, None)
    assert args[2] is None  # GT visibility: all ones
    metric = MuPoTS3DPCK()
    metric.update(*args)
    assert float(metric.compute()["pck_all"]) == 100.0
    # with the json visibility (old behaviour) nothing is matched
    metric.reset()
    metric.update(args[0], args[1], [torch.zeros(1, 17)], args[3], args[4], args[5])
    assert float(metric.compute()["pck_all"]) == 0.0


def _write_annot_mat(path: Path, frames: list[list[dict]]) -> None:
    """``annot.mat`` in the MPI layout: a (frames, people) cell array of structs."""
    cells = np.empty((len(frames), max(len(f) for f in frames)), dtype=object)
    for i, people in enumerate(frames):
        for k, p in enumerate(people):
            cells[i, k] = {"annot2": p["annot2"].T, "annot3": p["annot3"].T, "univ_annot3": p["univ"].T,
                           "isValidFrame": np.array([[float(p["valid"])]])}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"annotations": cells})


@pytest.mark.skipif(not FREE.is_file(), reason=f"free body model missing: {FREE}")
def test_mupots_gt_is_univ_annot3_and_every_valid_person_counts(tmp_path):
    from annot.data.fixtures.mupots import write_mupots_fixture
    from annot.data.mupots import MuPoTS, read_annot_mat

    root = write_mupots_fixture(tmp_path / "mupots", seed=0, body=BodyModel.from_config("free", path=FREE))
    data = json.loads((root / "MuPoTS-3D.json").read_text())
    anns = {a["id"]: a for a in data["annotations"]}
    people = []
    for aid in (0, 1, 2):   # TS1 frame 0: the json's three people (2 is not valid)
        annot3 = np.asarray(anns[aid]["keypoints_cam"])
        pelvis = annot3[14]
        people.append({"annot2": np.asarray(anns[aid]["keypoints_img"]), "annot3": annot3,
                       "univ": pelvis + 0.9 * (annot3 - pelvis), "valid": aid != 2})
    outside = people[0]["annot3"] + np.array([9000.0, 0.0, 0.0])   # a valid person far right of the image
    people.append({"annot2": people[0]["annot2"] + 5000.0, "annot3": outside, "univ": outside, "valid": True})
    _write_annot_mat(root / "MultiPersonTestSet" / "TS1" / "annot.mat", [people])

    frames = read_annot_mat(root / "MultiPersonTestSet" / "TS1" / "annot.mat")
    np.testing.assert_allclose(frames[0][1]["univ_annot3_mm"], people[1]["univ"])
    assert [p["valid"] for p in frames[0]] == [True, True, False, True]

    ds = MuPoTS(root, convention="h36m17")
    gt = ds.evaluation_gt()
    ts1 = str((root / "MultiPersonTestSet" / "TS1" / "img_000000.jpg").absolute())
    ts6 = str((root / "MultiPersonTestSet" / "TS6" / "img_000000.jpg").absolute())
    assert gt[ts1]["source"] == "annot.mat" and gt[ts6]["source"] == "json"
    assert dict(ds.gt_source_counts) == {"annot.mat": 1, "json": 1}
    expect = np.stack([people[0]["univ"], people[1]["univ"], people[3]["univ"]]) / 1000.0
    np.testing.assert_allclose(gt[ts1]["gt_joints_m"], expect, atol=1e-9)
    assert gt[ts6]["gt_joints_m"].shape == (1, 17, 3)   # aid 3 (aid 4 has a 16-joint keypoints_cam)
    assert gt[ts1]["sample_ids"] == ["0", "1"]

    # perfect predictions of the loaded people; the prediction keeps annot3 bone directions, which the
    # rescaling to univ_annot3 bone lengths maps exactly onto the GT
    batch = default_collate([ds[i] for i in range(len(ds))])
    pred = convert(batch["joints_cam_m"], "h36m17", "mupots17")[0]
    args = _mupots_images(_mupots_people(batch, pred), gt)
    metric = MuPoTS3DPCK()
    metric.update(*args)
    result = metric.compute()
    # TS1: 3 valid GT people, 2 predicted -> 28 / 42 joints; TS6: 1 / 1 -> 100 %; mean over sequences
    assert float(result["per_sequence"]["TS1"]["pck_all"]) == pytest.approx(200 / 3)
    assert float(result["pck_all"]) == pytest.approx((200 / 3 + 100) / 2)
    assert float(result["pck_matched"]) == pytest.approx(100.0)
    # the old GT (only the loaded people, json joints) scored 100 % in "all"
    old = MuPoTS3DPCK()
    old.update(*_mupots_images(_mupots_people(batch, pred), None))
    assert float(old.compute()["pck_all"]) == pytest.approx(100.0)


# --------------------------------------------------------------------------- item 9: MoCap reference layouts
def _mesh(body, pose, betas, trans) -> torch.Tensor:
    pose = torch.as_tensor(np.asarray(pose), dtype=torch.float32).reshape(1, 72)
    with torch.no_grad():
        return body(pose[:, :3], pose[:, 3:], torch.as_tensor(np.asarray(betas)[:10], dtype=torch.float32)[None],
                    torch.as_tensor(np.asarray(trans), dtype=torch.float32)[None]).vertices_m[0]


def _camera_pseudo_gts(ds) -> dict:
    """Pseudo-GTs as stage (a) writes them: the camera-frame fit, with the depth of a virtual camera
    (transl scaled, as a 5000 px focal length would), one 3D error per view."""
    from annot.io.export import PseudoGT

    out = {}
    for i, r in enumerate(ds.records):
        if r.smpl is not None:
            out[r.sample_id] = PseudoGT(r.smpl.pose_rotvec, r.smpl.betas, r.smpl.transl_m * np.array([1.0, 1.0, 1.7]),
                                        np.array([5000.0, 5000.0]), np.array([500.0, 500.0]),
                                        {"joints3d_err_mm": float(10 + i)})
    return out


@pytest.mark.skipif(not FREE.is_file(), reason=f"free body model missing: {FREE}")
@pytest.mark.parametrize("dataset", ["h36m", "mpi_inf_3dhp"])
def test_mocap_pseudo_gts_written_in_the_mks0601_world_layout(tmp_path, dataset):
    from annot.data.fixtures.h36m import write_h36m_fixture
    from annot.data.fixtures.mpi_inf_3dhp import write_mpi_inf_3dhp_fixture
    from annot.data.h36m import Human36M
    from annot.data.mpi_inf_3dhp import MPIINF3DHP
    from annot.io.export_mocap import write_reference_layout

    body = BodyModel.from_config("free", path=FREE)
    if dataset == "h36m":
        root = write_h36m_fixture(tmp_path / "Human36M", seed=0, body_model_path=FREE)
        ds = Human36M(root, subjects=[1], body_model_path=str(FREE))
        name = "Human36M_subject1_SMPL_NeuralAnnot.json"
        ref_file = root / "annotations" / name
    else:
        root = write_mpi_inf_3dhp_fixture(tmp_path / "MPI_INF_3DHP", seed=0, body_model_path=FREE)
        ds = MPIINF3DHP(root, body_model_path=str(FREE))
        name = "MPI-INF-3DHP_SMPL_NeuralAnnot.json"
        ref_file = root / "data" / name
    entries = _camera_pseudo_gts(ds)
    entries["no-such-id"] = next(iter(entries.values()))
    written = write_reference_layout(tmp_path / "stage_a", ds, entries, body)
    assert f"reference_layout/{name}" in written
    ours = json.loads((tmp_path / "stage_a" / "reference_layout" / name).read_text())
    report = json.loads((tmp_path / "stage_a" / "reference_layout" / "report.json").read_text())
    assert report["skipped"] == {"no-such-id": "not a loaded sample of the dataset"}
    assert report["merged_views"] > 0    # frames seen by two cameras: one world fit each
    reference = json.loads(ref_file.read_text())   # the fixture's NeuralAnnot-layout world fits
    checked = 0
    for k1, level1 in ours.items():
        for k2, level2 in level1.items():
            for k3, fit in level2.items():
                ref = reference[k1][k2][k3]
                err = (_mesh(body, fit["pose"], fit["shape"], fit["trans"])
                       - _mesh(body, ref["pose"], ref["shape"], ref["trans"])).norm(dim=-1).max()
                assert float(err) < 1e-4, (k1, k2, k3, float(err))
                checked += 1
    assert checked == report["written"] > 0
    # the file drops into the loader that reads the reference layout: same camera-frame fits back
    ref_file.write_text((tmp_path / "stage_a" / "reference_layout" / name).read_text())
    again = (Human36M(root, subjects=[1], body_model_path=str(FREE)) if dataset == "h36m"
             else MPIINF3DHP(root, body_model_path=str(FREE)))
    before = {r.sample_id: r.smpl for r in ds.records}
    for r in again.records:
        if r.smpl is not None:
            b = before[r.sample_id]
            err = (_mesh(body, r.smpl.pose_rotvec, r.smpl.betas, r.smpl.transl_m)
                   - _mesh(body, b.pose_rotvec, b.betas, b.transl_m)).norm(dim=-1).max()
            assert float(err) < 1e-4


def test_mpii_ids_without_pseudo_gt_are_kept_or_skipped_with_a_reason_never_a_key_error(tmp_path):
    from annot.data.mpii import MPII

    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.full((200, 240, 3), 90, np.uint8))
    kps = np.zeros((16, 3))
    kps[[2, 3, 12, 13]] = [[70, 120, 1], [90, 120, 1], [70, 60, 1], [90, 60, 1]]
    anns = [{"id": aid, "image_id": 1, "bbox": [50, 40, 60, 120], "keypoints": kps.reshape(-1).tolist(),
             "num_keypoints": 4, "iscrowd": 0} for aid in (7, 8, 9)]
    (tmp_path / "train.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "images/a.jpg", "height": 200, "width": 240}], "annotations": anns}))
    (tmp_path / "smpl.json").write_text(json.dumps({"8": _smpl_entry([0.1] * 10)}))   # only 8 has a fit
    kept = MPII(tmp_path, ann_file="train.json", smpl_file="smpl.json")
    assert [r.sample_id for r in kept.records] == ["7", "8", "9"] and kept.without_smpl == ["7", "9"]
    assert [float(kept[i]["smpl_valid"]) for i in range(3)] == [0.0, 1.0, 0.0]
    strict = MPII(tmp_path, ann_file="train.json", smpl_file="smpl.json", require_smpl=True)
    assert [r.sample_id for r in strict.records] == ["8"]
    assert strict.skipped == {"7": "no SMPL entry", "9": "no SMPL entry"}
    assert "no SMPL entry: 2" in strict.summary()


# --------------------------------------------------------------------------- item 10: MoCap-mode switches
def test_mocap_mode_2d_and_positionnet_terms_are_switches(smpl_tree):
    from annot.annotator.config import AuxStageConfig
    from annot.annotator.module import AnnotatorModule

    # default: NeuralAnnot Eq. 1 alone (measured better in 3D, README "Evaluation")
    assert not AuxStageConfig().kp2d_loss and not AuxStageConfig().joint_img_loss
    gen = torch.Generator().manual_seed(0)
    batch = {"img": torch.rand(2, 3, 256, 192, generator=gen),
             "joints_cam_m": torch.randn(2, 24, 3, generator=gen) * 0.3, "joints_cam_mask": torch.ones(2, 24),
             "kp2d_px": torch.rand(2, 24, 2, generator=gen) * 150, "kp2d_mask": torch.ones(2, 24)}
    batch["joints_cam_m"] -= batch["joints_cam_m"][:, :1].clone()
    torch.manual_seed(0)
    module = AnnotatorModule(mode="mocap", body_model_type="smpl", backbone_depth=18, architecture="pose2pose",
                             kp2d_convention="smpl24", joints3d_convention="smpl24", input_hw=(256, 192),
                             mocap_kp2d=False, mocap_joint_img=False)
    with torch.no_grad():
        pred = module.predict_batch(batch)
    for kp2d, joint_img in ((False, False), (True, False), (True, True)):
        module.hparams.mocap_kp2d, module.hparams.mocap_joint_img = kp2d, joint_img
        with torch.no_grad():
            terms = module._losses(pred, batch)
        assert ("kp2d" in terms) == kp2d and ("joint_img" in terms) == joint_img
        eq1 = terms["joints3d"] + terms["pose_l2"] + terms["betas_l2"]   # NeuralAnnot Eq. 1
        extra = sum(terms[k] for k in ("kp2d", "joint_img") if k in terms)
        torch.testing.assert_close(terms["total"], eq1 + extra)
    # the in-the-wild mode keeps its 2D term whatever the MoCap switches say
    module.hparams.mode, module.hparams.mocap_kp2d = "itw", False
    with torch.no_grad():
        assert "kp2d" in module._losses(pred, batch)
