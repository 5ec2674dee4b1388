"""Tests for annot.benchmarks.synthetic: the splits load through the ordinary loaders and their GT reprojects onto
the rendered silhouettes (re-rendered here from the loaded GT, a second path from json to pixels)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from annot.benchmarks.synthetic import (
    CLEAN_KP2D_FILE,
    COCO_IMG_DIR,
    COCO_PERSON_KEYPOINTS,
    COCO_WHOLEBODY,
    SCORING_FILE,
    Backgrounds,
    PoseBank,
    SyntheticConfig,
    cmu_pose_bank,
    global_orientation,
    load_pose_bank,
    make_synthetic,
    sample_pose,
)
from annot.body_models import BodyModel
from annot.data import DATASETS
from annot.data.registry import build_dataset
from annot.render import MeshRenderer

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
PHOTOS = REPO.parent / "shared" / "data" / "photos"
CMU = REPO.parent / "shared" / "data" / "mocap_cmu"
pytestmark = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model missing: {FREE} (make setup)")
HW = (192, 256)
SIZES = {"mocap": 3, "itw": 3, "test": 3}
TORSO_LIMBS = list(range(22))  # SMPL joints 0..21 (no hand joints)


def _config(seed: int = 0, sizes: dict | None = None, clean_2d: bool = True) -> SyntheticConfig:
    """The clean split (one whole person an image) for the layout tests; the realistic one has its own tests."""
    return SyntheticConfig(seed=seed, sizes=sizes or SIZES, image_hw=HW, pose_source="random",
                           photos_dir=str(PHOTOS) if PHOTOS.is_dir() else None, clean_2d=clean_2d)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.from_config("free", path=FREE)


@pytest.fixture(scope="module")
def renderer():
    with MeshRenderer() as r:
        yield r


@pytest.fixture(scope="module")
def out(tmp_path_factory, body, renderer) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(_config(), root, body=body, renderer=renderer)
    return root


def _pw3d(out: Path, split: str):
    return build_dataset("3dpw", root=out / split, split={"mocap": "train", "test": "test"}[split])


def _itw(out: Path, ann_file: str = COCO_PERSON_KEYPOINTS, **kwargs):
    return build_dataset("coco", root=out / "itw", ann_file=ann_file, img_dir=COCO_IMG_DIR, **kwargs)


def _pose(body: BodyModel, smpl) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (24, 3) smpl24 joints (camera frame, metres) of the loaded GT SMPL."""
    pose = torch.as_tensor(smpl.pose_rotvec, dtype=torch.float32).reshape(1, 72)
    with torch.no_grad():
        res = body(pose[:, :3], pose[:, 3:], torch.as_tensor(smpl.betas, dtype=torch.float32)[None],
                   torch.as_tensor(smpl.transl_m, dtype=torch.float32)[None])
        joints, _ = body.regress(res.vertices_m, "smpl24")
    return res.vertices_m[0].double().numpy(), joints[0].double().numpy()


def _on_mask(kp_px: np.ndarray, mask: np.ndarray) -> float:
    px = np.rint(kp_px).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < mask.shape[1]) & (px[:, 1] >= 0) & (px[:, 1] < mask.shape[0])
    hits = np.zeros(len(px), bool)
    hits[inside] = mask[px[inside, 1], px[inside, 0]]
    return float(hits.mean())


def _saved_mask(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return img > 127


def test_3dpw_layout_splits_load_with_exact_gt(out, body):
    for split in ("mocap", "test"):
        ds = _pw3d(out, split)
        assert len(ds) == 3 and ds.skipped == {}
        for rec in ds.records:
            assert rec.smpl.gender == "neutral" and rec.img_hw == HW
            assert rec.cam_focal_px[0] == rec.cam_focal_px[1] > 0
            _, joints = _pose(body, rec.smpl)  # the json's joint_cam is the GT SMPL's joints
            np.testing.assert_allclose(rec.joints_cam_m, joints, atol=1e-4)
            assert 2.0 - 1.0 < rec.joints_cam_m[0, 2] < 10.0 + 1.0  # pelvis depth in the 2-10 m range
        sample = ds[0]
        assert sample["img"].shape[-2:] == (256, 192)


def test_itw_split_loads_without_3d_and_scoring_is_separate(out):
    ds = _itw(out)
    assert len(ds) == 3 and ds.skipped == {}
    assert all(r.smpl is None and r.joints_cam_m is None for r in ds.records)
    assert len(_itw(out, ann_file=COCO_WHOLEBODY, variant="wholebody")) == 3
    scoring = json.loads((out / "itw" / SCORING_FILE).read_text())
    assert set(scoring) == {r.sample_id for r in ds.records}
    assert not (out / "itw" / SCORING_FILE).is_relative_to(out / "itw" / "annotations")
    for rel in (COCO_PERSON_KEYPOINTS, COCO_WHOLEBODY):
        text = (out / "itw" / rel).read_text()
        assert "scoring" not in text and "gt_smpl" not in text and "smpl_param" not in text
    # the scorer reads the GT through the same loader, via smpl_file
    scored = _itw(out, smpl_file=SCORING_FILE)
    assert all(r.smpl is not None and r.cam_focal_px is not None for r in scored.records)


def _check_reprojection(body, renderer, smpl, focal, princpt, kp2d_px, mask_path) -> None:
    verts, joints = _pose(body, smpl)
    _, _, mask = renderer.render(verts, body.faces, focal, princpt, HW)
    saved = _saved_mask(mask_path)
    iou = (mask & saved).sum() / (mask | saved).sum()
    assert iou > 0.98, (mask_path, iou)
    assert _on_mask(kp2d_px, mask) >= 0.9, mask_path
    proj = joints[TORSO_LIMBS, :2] / joints[TORSO_LIMBS, 2:] * focal + princpt
    assert _on_mask(proj, saved) >= 0.9, mask_path


def test_gt_reprojects_onto_rendered_silhouette(out, body, renderer):
    for split in ("mocap", "test"):
        for rec in _pw3d(out, split).records:
            seq_file = Path(rec.image_path.parent.name) / rec.image_path.with_suffix(".png").name
            _check_reprojection(body, renderer, rec.smpl, rec.cam_focal_px, rec.cam_princpt_px,
                                rec.kp2d_img_px[TORSO_LIMBS], out / split / "masks" / seq_file)
    for rec in _itw(out, smpl_file=SCORING_FILE).records:
        mask_path = out / "itw" / "scoring" / "masks" / rec.image_path.with_suffix(".png").name
        body_kp = rec.kp2d_img_px[5:][rec.kp2d_valid[5:]]  # COCO shoulders .. ankles (surface-free joints)
        _check_reprojection(body, renderer, rec.smpl, rec.cam_focal_px, rec.cam_princpt_px, body_kp, mask_path)
        assert _saved_mask(mask_path).mean() > 0.01  # a person is visible, not just background


def _json_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))
            if p.name != "synthetic_manifest.json"}


def test_same_seed_same_files_other_seed_differs(out, tmp_path, body, renderer):
    make_synthetic(_config(), tmp_path / "again", body=body, renderer=renderer)
    first, again = _json_bytes(out), _json_bytes(tmp_path / "again")
    assert len(first) == 5 and first == again
    make_synthetic(_config(seed=1, sizes={"test": 1}), tmp_path / "other", body=body, renderer=renderer)
    other = json.loads((tmp_path / "other" / "test" / "3DPW_test.json").read_text())
    mine = json.loads((out / "test" / "3DPW_test.json").read_text())
    assert other["annotations"][0]["smpl_param"] != mine["annotations"][0]["smpl_param"]


def test_global_orientation_hand_computed():
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_rotvec(global_orientation(0.0, 0.0, 0.0)).as_matrix()
    np.testing.assert_allclose(rot @ [0, 1, 0], [0, -1, 0], atol=1e-12)  # SMPL up -> image up (-y)
    np.testing.assert_allclose(rot @ [0, 0, 1], [0, 0, -1], atol=1e-12)  # faces the camera
    elev = np.deg2rad(30.0)  # camera above looking down: the head leans towards the camera
    rot = Rotation.from_rotvec(global_orientation(0.0, elev, 0.0)).as_matrix()
    np.testing.assert_allclose(rot @ [0, 1, 0], [0, -np.cos(elev), -np.sin(elev)], atol=1e-12)
    rot = Rotation.from_rotvec(global_orientation(np.pi / 2, 0.0, 0.0)).as_matrix()
    np.testing.assert_allclose(rot @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # yaw 90: facing image right


def test_pose_bank_used_and_missing_file_reported(tmp_path):
    bank = np.zeros((2, 24, 3))
    bank[:, 18] = [0.0, -1.0, 0.0]  # left elbow bent; everything else zero
    path = tmp_path / "pseudo_gt.npz"
    np.savez(path, pose_rotvec=bank, betas=np.zeros((2, 10)), sample_id=np.array(["a:000001", "b:000002"]))
    cfg = SyntheticConfig(poses_npz=str(path), pose_source="npz", mirror_prob=0.0)
    poses = load_pose_bank(cfg)
    assert poses.poses.shape == (2, 21, 3) and poses.source.startswith("npz")
    assert poses.clips.tolist() == ["a", "b"] and len(poses.for_split("itw")) == 2  # < 3 clips: shared
    pose, mirrored = sample_pose(np.random.default_rng(0), poses.poses, cfg)
    assert not mirrored and np.allclose(pose[1:22], bank[0, 1:22])
    pose, mirrored = sample_pose(np.random.default_rng(0), poses.poses, SyntheticConfig(mirror_prob=1.0))
    assert mirrored and np.allclose(pose[19], [0.0, 1.0, 0.0]) and np.allclose(pose[18], 0.0)  # L <-> R, y negated
    missing = SyntheticConfig(poses_npz=str(tmp_path / "nope.npz"), pose_source="npz")
    with pytest.raises(FileNotFoundError, match="make annotate-body"):
        load_pose_bank(missing)
    assert load_pose_bank(SyntheticConfig(pose_source="random")) is None
    np.savez(path, betas=np.zeros((2, 10)))
    with pytest.raises(ValueError, match="pose_rotvec"):
        load_pose_bank(cfg)
    with pytest.raises(FileNotFoundError, match="photos_dir"):
        Backgrounds(tmp_path / "no_photos")
    with pytest.raises(ValueError, match="pose_source"):
        SyntheticConfig(pose_source="auto")


def test_pose_bank_splits_use_disjoint_clips():
    clips = np.array(["c0", "c1", "c2", "c3", "c4", "c5", "c6"])  # sorted; held out: c0, c3, c6
    bank = PoseBank(np.arange(7, dtype=float)[:, None, None] * np.ones((7, 21, 3)), clips, "test")
    assert bank.for_split("itw")[:, 0, 0].tolist() == [0, 3, 6]
    assert bank.for_split("test")[:, 0, 0].tolist() == [0, 3, 6]
    assert bank.for_split("mocap")[:, 0, 0].tolist() == [1, 2, 4, 5]


@pytest.mark.skipif(not CMU.is_dir(), reason=f"CMU clips missing: {CMU}")
def test_cmu_retargeting_reproduces_the_mocap_joints(tmp_path, body):
    """The retargeted poses, posed again through the body model (a second path: BodyModel, not the fitter's
    joint-only model), land within a few centimetres of the BVH joints once rigidly aligned, and the cache
    reproduces the fit."""
    from annot.data.mocap import BVHMocap

    cfg = SyntheticConfig(cmu_root=str(CMU), cmu_frames=6, cmu_fit_iters=120)
    bank = cmu_pose_bank(cfg, body, tmp_path / "bank.npz")
    with np.load(tmp_path / "bank.npz") as data:
        ids, err = data["sample_id"].tolist(), data["joints_err_m"]
    assert len(ids) == 6 and np.all(err < 0.05), err
    assert len(bank.poses) + len(bank.rejected) == 6
    mocap = BVHMocap(CMU, convention="smpl24", fps=30.0)
    lookup = {mocap[i]["sample_id"]: i for i in np.linspace(0, len(mocap) - 1, 6).round().astype(int)}
    target = torch.stack([mocap[int(lookup[i])]["joints_world_m"] for i in ids])
    with np.load(tmp_path / "bank.npz") as data:
        fit = {k: torch.as_tensor(data[k], dtype=torch.float32) for k in ("pose_rotvec", "betas", "transl_m")}
    pose = fit["pose_rotvec"].reshape(6, 72)
    with torch.no_grad():
        joints = body(pose[:, :3], pose[:, 3:], fit["betas"], fit["transl_m"]).joints_smpl24_m
    keep = [j for j in range(24) if j != 9]  # spine2 is not in the CMU rig's mask
    direct = (joints[:, keep] - target[:, keep]).norm(dim=-1).mean(1)
    np.testing.assert_allclose(direct.numpy(), err, atol=1e-3)  # the fitter's own error, recomputed
    assert direct.max() < 0.05
    again = cmu_pose_bank(cfg, body, tmp_path / "bank.npz")  # from the cache: same poses
    np.testing.assert_array_equal(again.poses, bank.poses)


def test_light_intensity_scales_shading_not_geometry(renderer):
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    args = (sphere.vertices + [0.0, 0.0, 3.0], sphere.faces, (400.0, 400.0), (128.0, 96.0), HW)
    rgb1, depth1, mask1 = renderer.render(*args)
    rgb_dim, depth_dim, mask_dim = renderer.render(*args, light_intensity=0.4)
    assert np.array_equal(mask1, mask_dim) and np.array_equal(depth1, depth_dim)
    assert rgb_dim[mask1].astype(float).mean() < 0.8 * rgb1[mask1].astype(float).mean()
    with pytest.raises(ValueError, match="light_intensity"):
        renderer.render(*args, light_intensity=0.0)


def test_the_loaders_used_by_the_splits_are_registered():
    assert {"3dpw", "coco"} <= set(DATASETS)


# ------------------------------------------------------------------------------- realistic ITW split
@pytest.fixture(scope="module")
def realistic(tmp_path_factory, body, renderer) -> Path:
    root = tmp_path_factory.mktemp("synthetic_realistic")
    config = replace(_config(sizes={"itw": 10}, clean_2d=False), people_per_image=(0.0, 0.5, 0.5),
                     truncation_prob=0.5)
    make_synthetic(config, root, body=body, renderer=renderer)
    return root


def test_realistic_split_has_crowds_truncation_and_coco_flags(realistic):
    coco = json.loads((realistic / "itw" / COCO_PERSON_KEYPOINTS).read_text())
    clean = json.loads((realistic / "itw" / CLEAN_KP2D_FILE).read_text())
    stats = json.loads((realistic / "synthetic_manifest.json").read_text())["itw_annotations"]
    assert len(coco["annotations"]) == 10 and stats["mode"] == "realistic"
    per_image = np.bincount([a["image_id"] for a in coco["annotations"]])
    assert per_image.max() >= 2  # crowds: 2-3 people drawn per image here
    flags = np.concatenate([np.asarray(a["keypoints"]).reshape(17, 3)[:, 2] for a in coco["annotations"]])
    measured = stats["measured"]
    np.testing.assert_allclose([measured[f"v{k}"] for k in range(3)], [(flags == k).mean() for k in range(3)])
    assert measured["v1"] > 0  # somebody is hidden behind somebody (or themselves)
    assert measured["truncated"] == np.mean([clean[str(a["id"])]["truncated"] for a in coco["annotations"]])
    for ann in coco["annotations"]:
        kp = np.asarray(ann["keypoints"]).reshape(17, 3)
        exact = np.asarray(clean[str(ann["id"])]["kp2d_px"])
        labelled = kp[:, 2] > 0
        assert labelled.sum() >= 6 and ann["num_keypoints"] == labelled.sum()
        assert np.all(kp[~labelled, :2] == 0)  # v = 0: not labelled, as COCO
        outside = (exact[:, 0] < 0) | (exact[:, 1] < 0) | (exact[:, 0] > HW[1] - 1) | (exact[:, 1] > HW[0] - 1)
        seen = np.asarray(clean[str(ann["id"])]["vis"])  # the depth test's flags before annotators skip some
        assert np.all(~labelled[outside]) and np.all(seen[outside] == 0)  # outside the image: never labelled
        assert np.all(seen[~labelled & ~outside] == 1)  # inside yet unlabelled: only hidden keypoints
        assert np.all(kp[labelled, 2] == seen[labelled])
        # annotator noise: sigma_i * sqrt(area) per axis (x2 when hidden); 5 sigma bounds every draw here
        scale = np.sqrt(ann["area"]) * np.where(kp[:, 2] == 1, 2.0, 1.0)
        from annot.benchmarks.synthetic.annotation import COCO17_OKS_SIGMAS

        err = np.abs(kp[labelled, :2] - exact[labelled])
        assert np.all(err <= 5 * (COCO17_OKS_SIGMAS * scale)[labelled, None] + 1e-6)
        assert err.max() > 0  # the keypoints are not exact projections


def test_realistic_gt_lies_on_its_own_silhouette(realistic, body, renderer):
    """Re-render every person from its loaded GT: the saved full silhouette matches, and the GT joints that
    project inside the image fall on it (truncated people included)."""
    records = _itw(realistic, smpl_file=SCORING_FILE).records
    assert len(records) == 10
    for rec in records:
        verts, joints = _pose(body, rec.smpl)
        _, _, mask = renderer.render(verts, body.faces, rec.cam_focal_px, rec.cam_princpt_px, HW)
        saved = _saved_mask(realistic / "itw" / "scoring" / "masks" / f"{rec.sample_id}.png")
        assert (mask & saved).sum() / (mask | saved).sum() > 0.98, rec.sample_id
        proj = joints[TORSO_LIMBS, :2] / joints[TORSO_LIMBS, 2:] * rec.cam_focal_px + rec.cam_princpt_px
        inside = (proj[:, 0] >= 0) & (proj[:, 1] >= 0) & (proj[:, 0] < HW[1]) & (proj[:, 1] < HW[0])
        assert _on_mask(proj[inside], saved) >= 0.9, rec.sample_id


def test_realistic_split_is_reproducible(realistic, tmp_path, body, renderer):
    config = replace(_config(sizes={"itw": 10}, clean_2d=False), people_per_image=(0.0, 0.5, 0.5),
                     truncation_prob=0.5)
    make_synthetic(config, tmp_path / "again", body=body, renderer=renderer)
    assert _json_bytes(realistic) == _json_bytes(tmp_path / "again")
