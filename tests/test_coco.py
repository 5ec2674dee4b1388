"""Tests for annot.data.coco on the real COCO samples, on small synthetic jsons, and on the posed
fixture of annot.data.fixtures.coco (person keypoints, COCO-WholeBody, NeuralAnnot SMPL json).

The real samples are read from ``$ANNOT_COCO_SAMPLES`` or ``<repo>/../shared/data/coco_samples``.
The posed fixture needs the free body model (``make setup``).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from annot.body_models import BodyModel
from annot.data import DATASETS, COCOKeypoints, build_dataset
from annot.data.augment import AugmentConfig
from annot.data.crop import apply_affine
from annot.data.fixtures import coco as fx
from annot.data.sample import SAMPLE_KEYS
from annot.keypoints import get_convention
from tests.helpers import expected_box

DEFAULT_COCO_DIR = Path(__file__).resolve().parents[2] / "shared/data/coco_samples"
COCO_DIR = Path(os.environ.get("ANNOT_COCO_SAMPLES", DEFAULT_COCO_DIR))
ANN_FILE = "test_coco.json"
L_SHOULDER, R_SHOULDER = 5, 6

needs_coco = pytest.mark.skipif(
    not (COCO_DIR / ANN_FILE).is_file(),
    reason=f"COCO samples not found at {COCO_DIR} (set ANNOT_COCO_SAMPLES to the coco_samples folder)",
)


@pytest.fixture(scope="module")
def coco_json() -> dict:
    return json.loads((COCO_DIR / ANN_FILE).read_text())


@pytest.fixture(scope="module")
def coco_ds() -> COCOKeypoints:
    return COCOKeypoints(COCO_DIR, ANN_FILE)


def _index_of(ds: COCOKeypoints, sample_id: str) -> int:
    return [r.sample_id for r in ds.records].index(sample_id)


@needs_coco
def test_real_samples_loaded_and_skipped(coco_ds):
    assert len(coco_ds) == 12
    assert coco_ds.skipped == {"1202706": "no keypoints", "508900": "no keypoints"}
    assert coco_ds.summary() == "coco: loaded 12, skipped 2: no keypoints: 2"


@needs_coco
def test_summary_logged_once_at_construction(caplog):
    with caplog.at_level(logging.INFO, logger="annot.data.coco"):
        COCOKeypoints(COCO_DIR, ANN_FILE)
    lines = [r.getMessage() for r in caplog.records if r.name == "annot.data.coco"]
    assert lines == ["coco: loaded 12, skipped 2: no keypoints: 2"]


@needs_coco
def test_known_keypoint_through_the_crop_and_back(coco_ds, coco_json):
    ann = next(a for a in coco_json["annotations"] if a["id"] == 442619)
    img = next(i for i in coco_json["images"] if i["id"] == ann["image_id"])
    nose_img = np.array(ann["keypoints"][:2], dtype=np.float64)
    box = expected_box(ann["bbox"], img["width"], img["height"])
    # no rotation: crop = (p - box origin) * (192 / box w, 256 / box h)
    nose_crop = (nose_img - box[:2]) * np.array([192 / box[2], 256 / box[3]])

    sample = coco_ds[_index_of(coco_ds, "442619")]
    assert sample["sample_id"] == "442619" and sample["dataset"] == "coco"
    assert not sample["flipped"]
    np.testing.assert_allclose(sample["bbox_xywh_px"].numpy(), box, atol=1e-3)
    np.testing.assert_allclose(sample["kp2d_px"][0].numpy(), nose_crop, atol=1e-3)
    back = apply_affine(sample["kp2d_px"].numpy(), sample["crop_to_img"].numpy())
    np.testing.assert_allclose(back[0], nose_img, atol=1e-3)
    np.testing.assert_allclose(sample["kp2d_img_px"][0].numpy(), nose_img, atol=1e-4)
    assert sample["img_hw"].tolist() == [img["height"], img["width"]]
    np.testing.assert_allclose(sample["focal_px"].numpy(), [5000, 5000])
    np.testing.assert_allclose(sample["princpt_px"].numpy(), [96, 128])


@needs_coco
def test_image_crop_values(coco_ds):
    sample = coco_ds[_index_of(coco_ds, "442619")]
    img = sample["img"]
    assert img.shape == (3, 256, 192) and img.dtype == torch.float32
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05
    # independent bilinear lookup in the original RGB image at crop_to_img(u, v)
    bgr = cv2.imread(sample["image_path"], cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    original = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float64)
    for u, v in [(96, 128), (10, 30), (150, 200), (60, 240)]:
        x, y = apply_affine([u, v], sample["crop_to_img"].numpy())
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        patch = original[y0 : y0 + 2, x0 : x0 + 2]
        ref = (patch[0, 0] * (1 - fx) * (1 - fy) + patch[0, 1] * fx * (1 - fy)
               + patch[1, 0] * (1 - fx) * fy + patch[1, 1] * fx * fy)  # fmt: skip
        np.testing.assert_allclose(img[:, v, u].numpy() * 255, ref, atol=3.0)


@needs_coco
def test_mask_is_visibility(coco_ds, coco_json):
    anns = {str(a["id"]): a for a in coco_json["annotations"]}
    for i in range(len(coco_ds)):
        sample = coco_ds[i]
        vis = np.array(anns[sample["sample_id"]]["keypoints"][2::3]) > 0
        kp = sample["kp2d_px"].numpy()
        inside = (kp[:, 0] >= 0) & (kp[:, 0] < 192) & (kp[:, 1] >= 0) & (kp[:, 1] < 256)
        np.testing.assert_array_equal(sample["kp2d_mask"].numpy(), (vis & inside).astype(np.float32))
    # at least one real sample has unlabelled joints (198196 has 14 of 17)
    assert coco_ds[_index_of(coco_ds, "198196")]["kp2d_mask"].sum() == 14


@needs_coco
def test_flip_swaps_and_mirrors(coco_ds, coco_json):
    flipped_ds = COCOKeypoints(COCO_DIR, ANN_FILE, flip_prob=1.0)
    idx = _index_of(coco_ds, "442619")
    plain, flipped = coco_ds[idx], flipped_ds[idx]
    assert bool(flipped["flipped"]) and not bool(plain["flipped"])
    # Mirror x -> W-1-x and centre c -> W-1-c: u_flip = s*(c - x) + 96 = 192 - u_plain (mks0601
    # maps the box centre to W/2, so the crop mirror is u -> 192 - u, not 191 - u).
    kp_f, kp_p = flipped["kp2d_px"].numpy(), plain["kp2d_px"].numpy()
    np.testing.assert_allclose(kp_f[L_SHOULDER, 0], 192 - kp_p[R_SHOULDER, 0], atol=1e-3)
    np.testing.assert_allclose(kp_f[L_SHOULDER, 1], kp_p[R_SHOULDER, 1], atol=1e-3)
    np.testing.assert_allclose(kp_f[0, 0], 192 - kp_p[0, 0], atol=1e-3)  # nose stays the nose
    # kp2d_img_px stays in the unmirrored image: the new L_Shoulder is the original right shoulder
    ann = next(a for a in coco_json["annotations"] if a["id"] == 442619)
    r_shoulder = np.array(ann["keypoints"][3 * R_SHOULDER : 3 * R_SHOULDER + 2])
    np.testing.assert_allclose(flipped["kp2d_img_px"][L_SHOULDER].numpy(), r_shoulder, atol=1e-4)
    back = apply_affine(kp_f, flipped["crop_to_img"].numpy())
    np.testing.assert_allclose(back, flipped["kp2d_img_px"].numpy(), atol=1e-3)
    # the picture is mirrored too: column u of the flipped crop = column 192 - u of the plain one
    diff = (flipped["img"][:, :, 1:] - plain["img"].flip(-1)[:, :, :-1]).abs()
    assert diff.max() <= 2 / 255 + 1e-6


@needs_coco
def test_flip_decisions_deterministic(coco_ds):
    a = COCOKeypoints(COCO_DIR, ANN_FILE, flip_prob=0.5, seed=3)
    b = COCOKeypoints(COCO_DIR, ANN_FILE, flip_prob=0.5, seed=3)
    flips = [a.is_flipped(i) for i in range(len(a))]
    assert flips == [b.is_flipped(i) for i in range(len(b))]
    assert 0 < sum(flips) < len(flips)
    assert [bool(a[i]["flipped"]) for i in range(3)] == flips[:3]
    draws = set()
    for epoch in range(5):
        a.set_epoch(epoch)
        draws.add(tuple(a.is_flipped(i) for i in range(len(a))))
    assert len(draws) > 1  # set_epoch changes the draw
    assert not any(coco_ds.is_flipped(i) for i in range(len(coco_ds)))


@needs_coco
def test_default_collate_and_schema(coco_ds):
    batch = default_collate([coco_ds[i] for i in range(3)])
    assert set(batch) == set(SAMPLE_KEYS)
    assert batch["img"].shape == (3, 3, 256, 192)
    assert batch["kp2d_px"].shape == (3, 17, 2) and batch["kp2d_mask"].shape == (3, 17)
    assert batch["crop_to_img"].shape == (3, 2, 3) and batch["flipped"].dtype == torch.bool
    assert batch["sample_id"] == [r.sample_id for r in coco_ds.records[:3]]


@needs_coco
def test_registry_builds_coco():
    assert DATASETS["coco"] is COCOKeypoints
    ds = build_dataset("coco", root=COCO_DIR, ann_file=ANN_FILE)
    assert isinstance(ds, COCOKeypoints) and len(ds) == 12
    with pytest.raises(ValueError, match="coco"):
        build_dataset("no_such_dataset")


# --------------------------------------------------------------------------- synthetic jsons


def _kps(points):
    """17x3 COCO keypoint list with the given {index: (x, y)} visible (v=2), others (0, 0, 0)."""
    out = [0.0] * 51
    for j, (x, y) in points.items():
        out[3 * j : 3 * j + 3] = [x, y, 2]
    return out


def _write_synthetic(tmp_path: Path) -> Path:
    img = np.full((80, 100, 3), 127, np.uint8)
    assert cv2.imwrite(str(tmp_path / "ok.jpg"), img)
    (tmp_path / "bad.jpg").write_bytes(b"this is not an image")
    (tmp_path / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    images = [
        {"id": 1, "file_name": "ok.jpg", "width": 100, "height": 80},
        {"id": 2, "file_name": "missing.jpg", "width": 100, "height": 80},
        {"id": 3, "file_name": "bad.jpg", "width": 100, "height": 80},
        {"id": 4, "file_name": "truncated.jpg", "width": 100, "height": 80},
    ]
    kps = _kps({0: (40, 30), 5: (45, 40), 16: (99, 5)})  # joint 16 is visible but outside the crop

    def ann(aid, image_id=1, bbox=(30, 20, 20, 30), **kw):
        return {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 3,
                "bbox": list(bbox), "keypoints": kps, **kw}  # fmt: skip

    annotations = [
        ann(11),
        ann(12, iscrowd=1),
        ann(13, bbox=(30, 20, 0, 30)),
        ann(14, image_id=2),
        ann(15, image_id=3),
        ann(16, num_keypoints=0, keypoints=[0.0] * 51),
        ann(17, category_id=2),
        ann(18, image_id=4),
    ]
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}]}  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json"


def test_synthetic_skips_counted(tmp_path):
    _write_synthetic(tmp_path)
    ds = COCOKeypoints(tmp_path, "ann.json")
    assert [r.sample_id for r in ds.records] == ["11", "18"]
    assert ds.skipped == {
        "12": "iscrowd",
        "13": "degenerate box",
        "14": "missing image file",
        "15": "unreadable image",
        "16": "no keypoints",
        "17": "not person",
    }
    assert ds.summary() == (
        "coco: loaded 2, skipped 6: degenerate box: 1, iscrowd: 1, missing image file: 1, "
        "no keypoints: 1, not person: 1, unreadable image: 1"
    )
    sample = ds[0]
    mask = sample["kp2d_mask"].numpy()
    assert mask[0] == 1 and mask[5] == 1 and mask[16] == 0 and mask.sum() == 2
    # box (30,20,20,30) -> clipped w=19, h=29, centre (39.5, 34.5); w -> 21.75; x1.25 -> (27.1875, 36.25)
    np.testing.assert_allclose(sample["bbox_xywh_px"].numpy(), [25.90625, 16.375, 27.1875, 36.25], atol=1e-4)
    nose_crop = [(40 - 25.90625) * 192 / 27.1875, (30 - 16.375) * 256 / 36.25]
    np.testing.assert_allclose(sample["kp2d_px"][0].numpy(), nose_crop, atol=1e-3)
    np.testing.assert_allclose(sample["img"].numpy(), 127 / 255, atol=1e-6)


def test_undecodable_image_raises_at_getitem(tmp_path):
    _write_synthetic(tmp_path)
    ds = COCOKeypoints(tmp_path, "ann.json")
    with pytest.raises(ValueError, match=r"truncated\.jpg.*18"):
        ds[1]


def test_missing_root_names_path_and_key(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        COCOKeypoints(missing, "ann.json")
    assert str(missing) in str(err.value) and "data.root" in str(err.value)


def test_missing_ann_file_names_path_and_key(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        COCOKeypoints(tmp_path, "absent.json")
    assert str(tmp_path / "absent.json") in str(err.value) and "data.ann_file" in str(err.value)


def test_missing_img_dir_names_key(tmp_path):
    _write_synthetic(tmp_path)
    with pytest.raises(FileNotFoundError, match="data.img_dir"):
        COCOKeypoints(tmp_path, "ann.json", img_dir="images")


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.pop("annotations"), r"ann\.json.*'annotations'"),
        (lambda d: d["annotations"][0].update(image_id=99), r"ann\.json.*id 11.*'image_id'"),
        (lambda d: d["annotations"][1].update(id=11), r"ann\.json.*id 11.*'id' appears twice"),
    ],
)
def test_malformed_json_raises(tmp_path, mutate, pattern):
    """A json broken as a whole raises, naming the file, the id and the field."""
    path = _write_synthetic(tmp_path)
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=pattern):
        COCOKeypoints(tmp_path, "ann.json")


def test_invalid_json_syntax_raises(tmp_path):
    (tmp_path / "ann.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"ann\.json.*not valid JSON"):
        COCOKeypoints(tmp_path, "ann.json")


def test_box_outside_image_skipped(tmp_path):
    path = _write_synthetic(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"][0]["bbox"] = [150, 20, 20, 30]  # image is 100 wide
    path.write_text(json.dumps(data))
    assert COCOKeypoints(tmp_path, "ann.json").skipped["11"] == "box outside image"


def test_unknown_variant_names_config_key(tmp_path):
    _write_synthetic(tmp_path)
    with pytest.raises(ValueError, match="data.variant"):
        COCOKeypoints(tmp_path, "ann.json", variant="whole_body")


# ------------------------------------------------------- posed fixture: WholeBody + NeuralAnnot
FREE = Path(__file__).resolve().parents[1] / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
needs_free = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model missing: {FREE} (make setup)")
FEET = get_convention("coco17_feet")


@pytest.fixture(scope="module")
def free_body():
    return BodyModel.from_config("free", path=FREE)


@pytest.fixture(scope="module")
def posed_root(tmp_path_factory, free_body):
    return fx.write_coco_fixture(tmp_path_factory.mktemp("coco_posed"), seed=0, body=free_body)


@pytest.fixture(scope="module")
def posed_truth_joints(posed_root, free_body):
    """{annotation id: ((23, 3) coco17_feet joints in metres, focal (2,), princpt (2,))} of the fixture."""
    truth = json.loads((posed_root / fx.TRUTH_FILE).read_text())
    return {aid: (_coco_feet(free_body, t["pose"], t["shape"], t["trans"]), np.array(t["focal"]),
                  np.array(t["princpt"])) for aid, t in truth.items()}


def _posed(root, variant="person_keypoints", **kw) -> COCOKeypoints:
    ann = fx.WHOLEBODY if variant == "wholebody" else fx.PERSON_KEYPOINTS
    return COCOKeypoints(root, ann, fx.IMG_DIR, variant=variant, body_model_path=str(FREE), **kw)


def _coco_feet(body, pose, betas, transl) -> np.ndarray:
    """(23, 3) COCO-17 + feet joints of the posed free model (its own coco regressor)."""
    pose = torch.as_tensor(np.asarray(pose), dtype=torch.float32).reshape(1, 72)
    with torch.no_grad():
        out = body(pose[:, :3], pose[:, 3:], torch.as_tensor(np.asarray(betas), dtype=torch.float32)[None],
                   torch.as_tensor(np.asarray(transl), dtype=torch.float32)[None])
        joints, _ = body.regress(out.vertices_m, "coco17_feet")
    return joints[0].double().numpy()


@needs_free
@pytest.mark.parametrize("variant", ["person_keypoints", "wholebody"])
def test_posed_counts_and_smpl_bookkeeping(posed_root, variant):
    plain = _posed(posed_root, variant)
    assert plain.skipped == {"1003": "iscrowd"} and len(plain) == 4
    assert plain.summary() == "coco: loaded 4, skipped 1: iscrowd: 1"
    fitted = _posed(posed_root, variant, smpl_file=fx.NEURALANNOT)
    assert fitted.skipped == fx.BAD_AIDS and fitted.without_smpl == list(fx.NO_FIT_AIDS)
    assert [r.sample_id for r in fitted.records] == ["1000", "1001", "1002"]
    assert fitted.summary() == ("coco: loaded 3, skipped 2: invalid cam_param.focal: 1, iscrowd: 1; "
                                "without SMPL fit: 1")
    no_fit = fitted[[r.sample_id for r in fitted.records].index("1002")]
    assert no_fit["smpl_valid"] == 0 and no_fit["real_cam_valid"] == 0
    assert plain.native_convention == ("coco_wholebody32" if variant == "wholebody" else "coco18")
    assert plain.convention == ("coco17_feet" if variant == "wholebody" else "coco17")
    assert plain[0]["kp2d_px"].shape == ((23, 2) if variant == "wholebody" else (17, 2))


@needs_free
@pytest.mark.parametrize("joint", ["L_Wrist", "R_Knee", "L_Big_toe", "L_Heel", "R_Small_toe"])
def test_wholebody_named_joint_lands_where_the_model_put_it(posed_root, posed_truth_joints, joint):
    ds = _posed(posed_root, "wholebody")
    # WholeBody foot order: 17..22 = L big toe, L small toe, L heel, R big toe, R small toe, R heel
    j = FEET.index(joint)
    checked = 0
    for i, record in enumerate(ds.records):
        joints, focal, princpt = posed_truth_joints[record.sample_id]
        expect_img = joints[j, :2] / joints[j, 2] * focal + princpt
        sample = ds[i]
        box = sample["bbox_xywh_px"].double().numpy()
        expect_crop = (expect_img - box[:2]) * np.array([192 / box[2], 256 / box[3]])
        if record.sample_id == fx.NO_FOOT_AID and j >= 17:
            assert sample["kp2d_mask"][j] == 0  # foot_valid false: all-zero foot_kpts
            continue
        if sample["kp2d_mask"][j]:
            np.testing.assert_allclose(sample["kp2d_px"][j].numpy(), expect_crop, atol=2e-3)
            checked += 1
    assert checked >= 2


@needs_free
@pytest.mark.parametrize("variant", ["person_keypoints", "wholebody"])
@pytest.mark.parametrize("aug", [
    AugmentConfig(enabled=False),
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=1.0, rot_factor_deg=30.0, color_factor=0.0),
    AugmentConfig(enabled=True, flip_prob=0.0, rot_prob=1.0, rot_factor_deg=30.0, scale_factor=0.25),
])
def test_neuralannot_smpl_reprojects_onto_keypoints(posed_root, free_body, variant, aug):
    ds = _posed(posed_root, variant, smpl_file=fx.NEURALANNOT, augment=aug, seed=7)
    for i in range(len(ds)):
        s = ds[i]
        if s["sample_id"] in fx.NO_FIT_AIDS:
            continue
        assert s["smpl_valid"] == 1 and s["real_cam_valid"] == 1
        assert bool(s["flipped"]) == (aug.flip_prob == 1.0)
        joints = _coco_feet(free_body, s["smpl_pose_rotvec"].double().numpy(), s["smpl_betas"],
                            s["smpl_transl_m"])[: s["kp2d_px"].shape[0]]
        kp = joints[:, :2] / joints[:, 2:] * s["real_focal_crop_px"].double().numpy() \
            + s["real_princpt_crop_px"].double().numpy()
        mask = s["kp2d_mask"].numpy() > 0
        err = np.linalg.norm(kp - s["kp2d_px"].double().numpy(), axis=1)[mask]
        assert mask.sum() >= 10 and err.max() < 1.0, (s["sample_id"], err.max())


def _mutated_fits(root: Path, tmp_path: Path, mutate) -> str:
    fits = json.loads((root / fx.NEURALANNOT).read_text())
    mutate(fits)
    path = tmp_path / "fits.json"
    path.write_text(json.dumps(fits))
    return str(path)


@needs_free
@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d["1000"]["smpl_param"].update(pose=[0.0] * 71), "invalid smpl_param.pose"),
    (lambda d: d["1000"]["smpl_param"]["shape"].__setitem__(2, float("nan")), "invalid smpl_param.shape"),
    (lambda d: d["1000"]["smpl_param"].pop("trans"), "invalid smpl_param.trans"),
    (lambda d: d["1000"].pop("cam_param"), "invalid cam_param.focal"),
    (lambda d: d["1000"]["cam_param"].update(princpt="centre"), "invalid cam_param.princpt"),
])
def test_malformed_fit_skipped_naming_field(posed_root, tmp_path, mutate, reason):
    ds = _posed(posed_root, smpl_file=_mutated_fits(posed_root, tmp_path, mutate))
    assert ds.skipped["1000"] == reason and "1000" not in [r.sample_id for r in ds.records]


@needs_free
def test_smpl_and_wholebody_file_errors(posed_root, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        _posed(posed_root, smpl_file="annotations/absent.json")
    assert str(posed_root / "annotations/absent.json") in str(err.value)
    assert "data.smpl_file" in str(err.value)
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        _posed(posed_root, smpl_file=str(tmp_path / "bad.json"))
    data = json.loads((posed_root / fx.WHOLEBODY).read_text())
    data["annotations"][1].pop("foot_kpts")
    (tmp_path / "wb.json").write_text(json.dumps(data))
    wholebody = COCOKeypoints(posed_root, str(tmp_path / "wb.json"), fx.IMG_DIR, variant="wholebody")
    assert wholebody.skipped["1001"] == "invalid foot_kpts (missing)"
    # the person_keypoints variant does not read foot_kpts
    assert len(COCOKeypoints(posed_root, str(tmp_path / "wb.json"), fx.IMG_DIR)) == 4


@needs_free
def test_config_file_builds_the_loader(posed_root):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(FREE.parents[2] / "configs" / "data" / "coco.yaml"))
    assert DATASETS[cfg.pop("dataset")] is COCOKeypoints
    assert (cfg["ann_file"], cfg["img_dir"]) == (fx.PERSON_KEYPOINTS, fx.IMG_DIR)  # fixture = real layout
    cfg.update(root=str(posed_root), body_model_path=str(FREE))
    assert len(COCOKeypoints(**cfg)) == 4


@pytest.mark.parametrize(
    "mutate, sample_id, reason",
    [
        (lambda d: d["annotations"][0].update(keypoints=[1.0] * 50), "11", "invalid keypoints (wrong length)"),
        (lambda d: d["annotations"][2].update(bbox=[float("nan"), 1, 2, 3]), "13", "invalid bbox (NaN or inf)"),
        (lambda d: d["annotations"][0]["keypoints"].__setitem__(3, float("nan")), "11",
         "invalid keypoints (NaN or inf)"),
        (lambda d: d["annotations"][0].update(keypoints="1 2 2"), "11", "invalid keypoints (not numeric)"),
        (lambda d: d["annotations"][2].update(bbox=[30, 1, -20, 3]), "13", "negative box size"),
    ],
)
def test_a_bad_annotation_is_skipped_with_a_counted_reason(tmp_path, mutate, sample_id, reason):
    path = _write_synthetic(tmp_path)
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    ds = COCOKeypoints(tmp_path, "ann.json")
    assert ds.skipped[sample_id] == reason
    assert sample_id not in [r.sample_id for r in ds.records]
    assert f"{reason}: 1" in ds.summary()
