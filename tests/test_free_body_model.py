"""Tests for the free SMPL-format body model: the bake's building blocks (synthetic data, no anny)
and the baked file ``body_models/free/FREE_ANNY_SMPL_NEUTRAL.pkl`` (skipped when it is absent;
``make setup`` / ``tools/build_free_body_model.py`` bakes it).

The file tests check behaviour against independent references: stock ``smplx.SMPL`` loads and
poses the file, and expected joint positions are computed by hand from its rest joints.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from annot.body_models import free_model as fm

REPO = Path(__file__).resolve().parents[1]
MODEL_PATH = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
J = {name: i for i, name in enumerate(fm.SMPL_JOINT_NAMES)}


# ----------------------------------------------------------------------------------------------
# Building blocks on synthetic data


def test_frame_change_maps_anny_axes_to_smpl_axes():
    anny_up, anny_facing, anny_left = [0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]
    out = fm.anny_to_smpl_frame(np.array([anny_up, anny_facing, anny_left]))
    np.testing.assert_array_equal(out, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])  # Y up, +Z facing, +X left
    points = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(fm.anny_to_smpl_frame(points), points @ fm.ANNY_TO_SMPL_ROTMAT.T)
    assert np.linalg.det(fm.ANNY_TO_SMPL_ROTMAT) == pytest.approx(1.0)  # keeps face winding
    torch.testing.assert_close(fm.anny_to_smpl_frame(torch.as_tensor(points)),
                               torch.as_tensor(points @ fm.ANNY_TO_SMPL_ROTMAT.T))
    with pytest.raises(ValueError, match="expects"):
        fm.anny_to_smpl_frame(np.zeros((4, 2)))


def test_rotation_between_maps_directions():
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    dst = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    src = torch.cat([src, torch.tensor([[1.0, 0, 0], [0, 2.0, 0]], dtype=torch.float64)])
    dst = torch.cat([dst, torch.tensor([[3.0, 0, 0], [0, -1.0, 0]], dtype=torch.float64)])
    rot = fm.rotation_between(src, dst)
    unit = lambda v: v / v.norm(dim=-1, keepdim=True)  # noqa: E731
    torch.testing.assert_close((rot @ unit(src)[..., None])[..., 0], unit(dst))
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), torch.eye(3, dtype=torch.float64)
                               .expand(len(src), 3, 3))
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(len(src), dtype=torch.float64))
    torch.testing.assert_close(rot[-2], torch.eye(3, dtype=torch.float64))  # parallel: identity
    # smallest rotation: its axis is perpendicular to both directions
    axis_component = (rot - rot.transpose(-1, -2))[:50]
    axis = torch.stack([axis_component[:, 2, 1], axis_component[:, 0, 2], axis_component[:, 1, 0]], 1)
    assert torch.allclose((axis * src[:50]).sum(-1), torch.zeros(50, dtype=torch.float64), atol=1e-9)


def _toy_arm_rig() -> tuple[list[str], list[int], torch.Tensor]:
    """Root + two arms in an A-pose: upper arm 0.30 m at 45 degrees down, forearm 0.25 m bent
    forward (-Y, anny frame) by 30 degrees, hand 0.08 m further along the forearm."""
    labels = ["root", "upperarm01.L", "lowerarm01.L", "wrist.L", "hand_tip.L",
              "upperarm01.R", "lowerarm01.R", "wrist.R", "hand_tip.R"]
    parents = [-1, 0, 1, 2, 3, 0, 5, 6, 7]
    heads = [[0.0, 0.0, 1.0]]
    c45 = math.sqrt(0.5)
    for sign in (1.0, -1.0):
        shoulder = np.array([0.2 * sign, 0.0, 1.4])
        elbow = shoulder + 0.30 * np.array([c45 * sign, 0.0, -c45])
        fore_dir = np.array([c45 * sign * math.cos(math.radians(30)), -math.sin(math.radians(30)),
                             -c45 * math.cos(math.radians(30))])
        fore_dir /= np.linalg.norm(fore_dir)
        wrist = elbow + 0.25 * fore_dir
        heads += [shoulder, elbow, wrist, wrist + 0.08 * fore_dir]
    return labels, parents, torch.as_tensor(np.array(heads))[None]


def test_tpose_rotations_bring_the_toy_arms_horizontal():
    labels, parents, heads = _toy_arm_rig()
    rotations = fm.tpose_global_rotations(heads, labels, parents)
    # one vertex rigidly on each bone, at its head and 2 cm off it
    rest_vertices = torch.cat([heads, heads + torch.tensor([0.0, 0.0, 0.02], dtype=torch.float64)], 1)
    weights = torch.cat([torch.eye(len(labels)), torch.eye(len(labels))]).to(torch.float64)
    verts, posed = fm.repose_linear_blend(rest_vertices, heads, parents, rotations, weights)
    posed = posed[0].numpy()
    for _side, sign, first in (("L", 1.0, 1), ("R", -1.0, 5)):
        shoulder = heads[0, first].numpy()
        # hand-computed T-pose: each segment along +-X from the unmoved shoulder
        np.testing.assert_allclose(posed[first], shoulder, atol=1e-12)
        np.testing.assert_allclose(posed[first + 1], shoulder + [0.30 * sign, 0, 0], atol=1e-12)
        np.testing.assert_allclose(posed[first + 2], shoulder + [0.55 * sign, 0, 0], atol=1e-12)
        np.testing.assert_allclose(posed[first + 3], shoulder + [0.63 * sign, 0, 0], atol=1e-12)
    np.testing.assert_allclose(posed[0], heads[0, 0].numpy())  # the root does not move
    # rigidly attached vertices keep their offset length to the bone head
    offsets = (verts[0, len(labels):] - verts[0, :len(labels)]).norm(dim=-1)
    torch.testing.assert_close(offsets, torch.full((len(labels),), 0.02, dtype=torch.float64))


def test_repose_rejects_inconsistent_shapes():
    labels, parents, heads = _toy_arm_rig()
    rotations = torch.eye(3, dtype=torch.float64).expand(1, len(labels), 3, 3)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        fm.repose_linear_blend(heads, heads, parents, rotations, torch.ones(3, len(labels)))
    with pytest.raises(ValueError, match="parents"):
        fm.repose_linear_blend(heads, heads, [-1, 2, 0, 1, 3, 0, 5, 6, 7], rotations,
                               torch.eye(len(labels), dtype=torch.float64))


def _compact_anny_rig() -> tuple[list[str], list[int]]:
    """anny's hierarchy with one toe chain and two finger chains per side (labels as in anny)."""
    edges = [("root", None), ("spine05", "root"), ("spine04", "spine05"), ("spine03", "spine04"),
             ("spine02", "spine03"), ("spine01", "spine02"), ("neck01", "spine01"),
             ("neck02", "neck01"), ("neck03", "neck02"), ("head", "neck03"), ("eye.L", "head"),
             ("eye.R", "head")]
    for s in ("L", "R"):
        edges += [(f"pelvis.{s}", "root"), (f"upperleg01.{s}", f"pelvis.{s}"),
                  (f"upperleg02.{s}", f"upperleg01.{s}"), (f"lowerleg01.{s}", f"upperleg02.{s}"),
                  (f"lowerleg02.{s}", f"lowerleg01.{s}"), (f"foot.{s}", f"lowerleg02.{s}"),
                  (f"toe1-1.{s}", f"foot.{s}"), (f"toe1-2.{s}", f"toe1-1.{s}"),
                  (f"clavicle.{s}", "spine01"), (f"shoulder01.{s}", f"clavicle.{s}"),
                  (f"upperarm01.{s}", f"shoulder01.{s}"), (f"upperarm02.{s}", f"upperarm01.{s}"),
                  (f"lowerarm01.{s}", f"upperarm02.{s}"), (f"lowerarm02.{s}", f"lowerarm01.{s}"),
                  (f"wrist.{s}", f"lowerarm02.{s}"), (f"finger1-1.{s}", f"wrist.{s}"),
                  (f"metacarpal1.{s}", f"wrist.{s}"), (f"finger2-1.{s}", f"metacarpal1.{s}"),
                  (f"finger2-2.{s}", f"finger2-1.{s}")]
    labels = [label for label, _ in edges]
    return labels, [-1 if parent is None else labels.index(parent) for _, parent in edges]


def test_fold_sums_bone_weights_into_their_smpl_joint():
    labels, parents = _compact_anny_rig()
    rng = np.random.default_rng(0)
    dense = rng.dirichlet(np.ones(len(labels)), size=30)
    folded = fm.fold_skinning_weights(dense, labels, parents)
    assert folded.shape == (30, 24)
    np.testing.assert_allclose(folded.sum(1), 1.0)
    col = {label: i for i, label in enumerate(labels)}
    by_hand = {  # SMPL joint -> anny bones, written out independently of ANNY_FOLD_RULES
        "Pelvis": ["root", "spine05", "spine04", "pelvis.L", "pelvis.R"],
        "L_Elbow": ["lowerarm01.L", "lowerarm02.L"],
        "L_Collar": ["clavicle.L", "shoulder01.L"],
        "R_Wrist": ["wrist.R", "metacarpal1.R"],
        "R_Hand": ["finger1-1.R", "finger2-1.R", "finger2-2.R"],
        "L_Foot": ["toe1-1.L", "toe1-2.L"],
        "Head": ["head", "eye.L", "eye.R"],
        "Neck": ["neck01", "neck02", "neck03"],
        "Chest": ["spine01"],
    }
    for joint, bones in by_hand.items():
        np.testing.assert_allclose(folded[:, J[joint]], dense[:, [col[b] for b in bones]].sum(1))


def test_fold_rejects_targets_off_the_ancestor_chain(monkeypatch):
    labels, parents = _compact_anny_rig()
    good_rules = fm.ANNY_FOLD_RULES
    swapped = tuple((pat, "{s}_Shoulder" if tgt == "{s}_Elbow" else tgt) for pat, tgt in good_rules)
    monkeypatch.setattr(fm.skinning, "ANNY_FOLD_RULES", swapped)  # elbow bones into the shoulder: skips a joint
    with pytest.raises(ValueError, match="lowerarm01.L.*lie in between"):
        fm.check_fold_targets(labels, parents)
    wrong_side = tuple((pat, "R_Knee" if tgt == "{s}_Knee" else tgt) for pat, tgt in good_rules)
    monkeypatch.setattr(fm.skinning, "ANNY_FOLD_RULES", wrong_side)  # left shin into the right knee
    with pytest.raises(ValueError, match="lowerleg01.L.*not on its ancestor chain"):
        fm.check_fold_targets(labels, parents)
    monkeypatch.setattr(fm.skinning, "ANNY_FOLD_RULES", good_rules)
    with pytest.raises(ValueError, match="no SMPL fold rule for anny bone 'tail'"):
        fm.check_fold_targets(labels + ["tail"], parents + [0])


def test_joint_regressor_fit_recovers_local_sum_to_one_regressor():
    rng = np.random.default_rng(0)
    num_vertices, num_joints = 400, 3
    template = rng.normal(size=(num_vertices, 3))
    basis = rng.normal(scale=0.05, size=(6, num_vertices, 3))
    def meshes(n):  # noqa: E306
        return template + np.einsum("nk,kvd->nvd", rng.normal(size=(n, 6)), basis)
    true = np.zeros((num_joints, num_vertices))
    for j in range(num_joints):  # each joint: convex mix of the 5 vertices nearest a point
        near = np.argsort(np.linalg.norm(template - template[j * 50], axis=1))[:5]
        true[j, near] = rng.dirichlet(np.ones(5))
    train, test = meshes(200), meshes(50)
    train_joints = np.einsum("jv,nvd->njd", true, train)
    regressor = fm.fit_joint_regressor([(train, train_joints, 1.0)], template,
                                       true @ template, num_neighbours=40, ridge=1e-9)
    np.testing.assert_allclose(regressor.sum(1), 1.0, atol=1e-9)
    assert (np.count_nonzero(regressor, axis=1) <= 40).all()
    errors = fm.regression_errors_mm(regressor, test, np.einsum("jv,nvd->njd", true, test))
    assert errors["max"] < 1e-3  # mm
    shifted = test + np.array([1.0, -2.0, 0.5])  # sum-to-one: translation moves the joints along
    np.testing.assert_allclose(np.einsum("jv,nvd->njd", regressor, shifted),
                               np.einsum("jv,nvd->njd", regressor, test) + [1.0, -2.0, 0.5])
    with pytest.raises(ValueError, match="mismatching sets"):
        fm.fit_joint_regressor([(train, train_joints[:, :2], 1.0)], template, true @ template,
                               40, 0.0)


def test_shape_space_has_unit_variance_betas_and_reconstructs():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(100, 3))
    dirs = rng.normal(size=(2, 100, 3))
    samples = mean + np.einsum("nk,kvd->nvd", rng.normal(size=(300, 2)) * [3.0, 0.5], dirs)
    space = fm.fit_shape_space(samples, num_components=2)
    betas = space.project(samples)
    np.testing.assert_allclose(betas.std(axis=0, ddof=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(space.shape(betas), samples, atol=1e-9)
    assert space.explained_variance_ratio.sum() == pytest.approx(1.0)
    assert space.explained_variance_ratio[0] > space.explained_variance_ratio[1]
    with pytest.raises(ValueError, match="more than 2 samples"):
        fm.fit_shape_space(samples[:2], 2)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="num_shape_samples"):
        fm.BakeConfig(num_shape_samples=5)
    with pytest.raises(ValueError, match="holdout_fraction"):
        fm.BakeConfig(holdout_fraction=0.0)


# ----------------------------------------------------------------------------------------------
# The baked file

needs_file = pytest.mark.skipif(
    not MODEL_PATH.is_file(),
    reason=f"free body model not baked at {MODEL_PATH} (run `make setup` or "
           "`python tools/build_free_body_model.py`)",
)


@pytest.fixture(scope="module")
def model_dict() -> dict[str, Any]:
    if not MODEL_PATH.is_file():
        pytest.skip(f"free body model not baked at {MODEL_PATH}")
    return fm.load_free_model_file(MODEL_PATH)


@pytest.fixture(scope="module")
def smpl(model_dict):
    import smplx

    return smplx.SMPL(model_path=str(MODEL_PATH), vertex_ids=model_dict["vertex_ids"])


def _run(smpl, betas=None, body_pose=None, batch=1):
    with torch.no_grad():
        return smpl(betas=torch.zeros(batch, 10) if betas is None else betas,
                    body_pose=torch.zeros(batch, 69) if body_pose is None else body_pose,
                    global_orient=torch.zeros(batch, 3))


@needs_file
def test_file_loads_in_stock_smplx_and_is_valid(model_dict):
    import smplx

    stock = smplx.SMPL(model_path=str(MODEL_PATH))  # no extra arguments at all
    out = _run(stock)
    num_vertices = model_dict["v_template"].shape[0]
    assert out.vertices.shape == (1, num_vertices, 3) and num_vertices > 10000
    np.testing.assert_allclose(out.vertices[0].numpy(), model_dict["v_template"], atol=1e-6)
    assert fm.validate_model_dict(model_dict) == []
    for key in ("v_template", "J_regressor", "weights", "posedirs", "shapedirs", "coco_regressor",
                "h36m_regressor"):
        assert model_dict[key].dtype == np.float32, key
    assert not model_dict["posedirs"].any()
    assert model_dict["kintree_table"][0, 0] == 4294967295
    assert model_dict["joint_names"] == list(fm.SMPL_JOINT_NAMES)


@needs_file
def test_zero_pose_is_a_t_pose(smpl):
    joints = _run(smpl).joints[0, :24].numpy()
    for side, sign in (("L", 1.0), ("R", -1.0)):
        shoulder, elbow, wrist = (joints[J[f"{side}_{n}"]] for n in ("Shoulder", "Elbow", "Wrist"))
        assert abs(wrist[1] - shoulder[1]) < 0.03  # wrists at shoulder height (m)
        arm = (wrist - shoulder) / np.linalg.norm(wrist - shoulder)
        assert arm[0] * sign > 0.98  # arms along +-X
        assert sign * shoulder[0] < sign * elbow[0] < sign * wrist[0]
        assert 0.4 < np.linalg.norm(wrist - shoulder) < 0.65  # shoulder-wrist length (m)


@needs_file
def test_joints_are_anatomically_ordered(smpl):
    joints = _run(smpl).joints[0, :24].numpy()
    y = {name: joints[i, 1] for name, i in J.items()}
    assert y["Head"] > y["Neck"] > y["Chest"] > y["Spine"] > y["Torso"] > y["Pelvis"]
    for side in ("L", "R"):
        assert y["Pelvis"] > y[f"{side}_Hip"] > y[f"{side}_Knee"] > y[f"{side}_Ankle"]
        assert y[f"{side}_Ankle"] > y[f"{side}_Foot"]
    assert joints[J["L_Foot"], 2] > joints[J["L_Ankle"], 2] + 0.05  # feet point forward (+Z)
    for name, i in J.items():
        if name.startswith("L_"):
            mirror = joints[J["R_" + name[2:]]]
            assert joints[i, 0] > 0.02 and mirror[0] < -0.02, name  # left joints at +X
            np.testing.assert_allclose(joints[i] * [-1, 1, 1], mirror, atol=2e-3)  # symmetric


@needs_file
def test_heights_match_the_stored_shape_space(smpl, model_dict):
    betas = torch.zeros(3, 10)
    betas[:, 0] = torch.tensor([-2.0, 0.0, 2.0])
    verts = _run(smpl, betas=betas, batch=3).vertices.numpy()
    height = verts[..., 1].max(-1) - verts[..., 1].min(-1)
    assert 1.5 < height[1] < 1.9
    assert height[2] - height[0] > 0.2  # beta0 is stature, positive = taller
    stored = model_dict["shape_space"]["height_at_beta0_m"]
    np.testing.assert_allclose(height, [stored["-2"], stored["+0"], stored["+2"]], atol=1e-3)


@needs_file
def test_elbow_flexion_moves_the_wrist_as_computed_by_hand(smpl):
    rest = _run(smpl).joints[0].numpy()
    pose = torch.zeros(1, 69)
    pose[0, (J["L_Elbow"] - 1) * 3 + 1] = -math.pi / 2  # about +Y: left forearm to the front
    pose[0, (J["R_Elbow"] - 1) * 3 + 1] = math.pi / 2  # mirror for the right arm
    posed = _run(smpl, body_pose=pose).joints[0].numpy()
    for side, turn in (("L", lambda d: np.array([-d[2], d[1], d[0]])),  # R_y(-90) by hand
                       ("R", lambda d: np.array([d[2], d[1], -d[0]]))):  # R_y(+90) by hand
        elbow, wrist = rest[J[f"{side}_Elbow"]], rest[J[f"{side}_Wrist"]]
        np.testing.assert_allclose(posed[J[f"{side}_Elbow"]], elbow, atol=1e-6)
        np.testing.assert_allclose(posed[J[f"{side}_Wrist"]], elbow + turn(wrist - elbow), atol=1e-5)
        assert posed[J[f"{side}_Wrist"], 2] - elbow[2] > 0.2  # in front of the elbow
    middle_tip = 24 + 11 + 2  # smplx extra joints: 5 face, 6 feet, then l thumb, index, middle
    assert posed[middle_tip, 2] > rest[middle_tip, 2] + 0.3  # the hand mesh followed


@needs_file
def test_j_regressor_reproduces_smplx_joints_at_rest_and_posed(smpl, model_dict):
    regressor = torch.as_tensor(model_dict["J_regressor"])
    np.testing.assert_allclose(regressor.sum(1).numpy(), 1.0, atol=1e-5)
    gen = torch.Generator().manual_seed(0)
    betas = torch.randn(4, 10, generator=gen)
    out = _run(smpl, betas=betas, batch=4)
    torch.testing.assert_close(regressor @ out.vertices, out.joints[:, :24], atol=1e-5, rtol=0)
    pose = torch.randn(4, 69, generator=gen) * 0.3
    out = _run(smpl, betas=betas, body_pose=pose, batch=4)
    error_m = (regressor @ out.vertices - out.joints[:, :24]).norm(dim=-1)
    assert error_m.max() < 0.015, error_m.max()  # signed weights fitted on posed meshes too


@needs_file
def test_coco_and_h36m_regressors(smpl, model_dict):
    out = _run(smpl)
    verts, joints = out.vertices[0].numpy().astype(np.float64), out.joints[0, :24].numpy()
    coco_w = model_dict["coco_regressor"].astype(np.float64)
    np.testing.assert_allclose(coco_w.sum(1), 1.0, atol=1e-5)
    assert (coco_w >= 0).all()  # anny's keypoint weights are convex
    coco = dict(zip(fm.COCO23_JOINT_NAMES, coco_w @ verts))
    assert coco["Nose"][2] > joints[J["Head"], 2] + 0.05  # nose in front of the head joint
    assert joints[J["Neck"], 1] < coco["Nose"][1] < verts[:, 1].max()
    assert coco["L_Eye"][0] > 0 > coco["R_Eye"][0] and coco["L_Ear"][0] > 0 > coco["R_Ear"][0]
    for name in ("L_Wrist", "R_Ankle", "L_Knee", "R_Elbow"):
        assert np.linalg.norm(coco[name] - joints[J[name]]) < 0.06, name
    assert coco["L_Big_toe"][2] > coco["L_Heel"][2] + 0.15  # toes in front of the heel

    h36m_w = model_dict["h36m_regressor"].astype(np.float64)
    np.testing.assert_allclose(h36m_w.sum(1), 1.0, atol=1e-5)
    h36m = dict(zip(fm.H36M_JOINT_NAMES, h36m_w @ verts))
    np.testing.assert_allclose(h36m["Pelvis"], joints[J["Pelvis"]], atol=1e-5)
    assert max(p[1] for p in h36m.values()) == h36m["Head_top"][1]
    assert verts[:, 1].max() - h36m["Head_top"][1] < 0.02
    assert h36m["Pelvis"][1] < h36m["Torso"][1] < h36m["Neck"][1] < h36m["Head"][1]


@needs_file
def test_vertex_ids_sit_where_their_names_say(smpl, model_dict):
    ids = model_dict["vertex_ids"]
    assert list(ids) == list(fm.SMPLX_VERTEX_ID_NAMES)
    verts = model_dict["v_template"]
    joints = _run(smpl).joints[0, :24].numpy()
    for side, sign in (("l", 1.0), ("r", -1.0)):
        wrist_x = joints[J[f"{side.upper()}_Wrist"], 0]
        for tip in ("thumb", "index", "middle", "ring", "pinky"):
            assert sign * (verts[ids[side + tip], 0] - wrist_x) > 0.08, side + tip
    assert verts[ids["nose"], 2] > joints[J["Head"], 2]
    assert verts[ids["leye"], 0] > 0 > verts[ids["reye"], 0]
    assert verts[ids["LBigToe"], 2] > verts[ids["LHeel"], 2] + 0.15
    assert verts[ids["RHeel"], 0] < 0 < verts[ids["LHeel"], 0]


@needs_file
def test_provenance_and_shape_space_are_recorded(model_dict):
    prov = model_dict["provenance"]
    assert fm.LICENCE_NOTE == prov["licence"] and "not SMPL" in prov["licence"]
    assert re.fullmatch(r"\d+\.\d+.*", prov["source"]["version"])
    assert prov["source"]["topology"] == "anny"
    assert {"seed", "num_shape_samples", "regressor_ridge"} <= set(prov["bake_parameters"])
    datetime.datetime.fromisoformat(prov["date_utc"])
    assert prov["metrics"]["j_regressor_holdout_error_mm"]["mean"] < 1.0
    space = model_dict["shape_space"]
    assert set(space["phenotype_distribution"]) == {"age", "gender", "height", "weight", "muscle",
                                                   "proportions"}
    assert len(space["components"]) == 10 and space["explained_variance_ratio_total"] > 0.999


@needs_file
def test_cli_skips_a_valid_file_and_writes_atomically(model_dict, tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("build_free_body_model",
                                                  REPO / "tools" / "build_free_body_model.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    def no_bake(*args, **kwargs):
        raise AssertionError("the bake must not run")

    monkeypatch.setattr(fm, "bake_free_model", no_bake)
    assert tool.main(["--out", str(MODEL_PATH)]) == 0
    assert "skipping" in capsys.readouterr().out

    out = tmp_path / "new" / "dir" / "model.pkl"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"not a pickle")  # invalid: rebaked
    monkeypatch.setattr(fm, "bake_free_model", lambda config, log: model_dict)
    assert tool.main(["--out", str(out), "--seed", "3"]) == 0
    assert "rebaking" in capsys.readouterr().out
    assert fm.check_free_model_file(out) == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.pkl"]  # no temporary left


@needs_file
def test_validation_reports_broken_files(model_dict, tmp_path):
    broken = dict(model_dict, J_regressor=model_dict["J_regressor"] * 2.0)
    assert any("J_regressor" in p for p in fm.validate_model_dict(broken))
    missing = {k: v for k, v in model_dict.items() if k != "coco_regressor"}
    assert fm.validate_model_dict(missing) == ["missing keys ['coco_regressor']"]
    with pytest.raises(FileNotFoundError, match="not found"):
        fm.load_free_model_file(tmp_path / "absent.pkl")
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04garbage")
    assert "cannot read" in fm.check_free_model_file(tmp_path / "bad.pkl")[0]
