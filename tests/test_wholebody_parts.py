"""Whole-body parts (issue #16) on tiny synthetic SMPL-X / MANO models (tests/wholebody_models.py), checked
against independent references: the wrist rule recovers a known wrist and hand pose, the integrated SMPL-X
hand equals the MANO hand it came from, the face fit recovers a known jaw / expression / head from projected
landmarks, the hand fit lands on projected MANO keypoints, the SMPL -> SMPL-X carry-over recovers a known
shape and translation, and the release-layout export round-trips and rejects bad input by name."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from annot.body_models.wholebody import (
    Hand21,
    SmplxParams,
    fingertip_vertex_ids,
    hand_frame_alignment,
    load_mano,
    load_smplx,
    smplx_forward,
    smplx_hand_rows,
)
from annot.fitting.face import FaceFitConfig, fit_face, project_landmarks_px
from annot.fitting.hands import HandFitConfig, fit_hands
from annot.geometry.cameras import perspective_project
from annot.geometry.rotations import global_rotmats, rotmat_to_rotvec, rotvec_to_rotmat
from annot.io.export_smplx import SMPLX_FIELDS, SmplxPseudoGT, read_smplx_pseudo_gt, write_smplx_pseudo_gt
from annot.wholebody.integrate import (
    ELBOW,
    WRIST,
    HandPart,
    integrate,
    share_roll_with_elbow,
    smpl_body_to_smplx,
    smplx_global_rotmats,
    twist_about_x,
)
from tests.wholebody_models import write_tiny_wholebody_models

FOCAL, PRINCPT = torch.tensor([[1500.0, 1500.0]]), torch.tensor([[320.0, 240.0]])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    paths = write_tiny_wholebody_models(tmp_path_factory.mktemp("models"))
    return {"smplx": load_smplx(paths["smplx"]), "right": load_mano(paths["mano_right"], True),
            "left": load_mano(paths["mano_left"], False), "paths": paths}


def _person(batch: int, seed: int = 0) -> SmplxParams:
    g = torch.Generator().manual_seed(seed)
    root = torch.tensor([[math.pi, 0.0, 0.0]]).repeat(batch, 1) + 0.1 * torch.randn(batch, 3, generator=g)
    return SmplxParams.zeros(batch).replace(root_pose=root, body_pose=0.3 * torch.randn(batch, 21, 3, generator=g),
                                            shape=torch.randn(batch, 10, generator=g),
                                            trans=torch.tensor([[0.0, 0.2, 3.0]]).repeat(batch, 1))


def test_global_rotmats_match_smplx_chain(models) -> None:
    """global_rotmats composes like smplx's batch_rigid_transform: the posed bone directions agree."""
    layer, p = models["smplx"], _person(2)
    joints, _ = smplx_forward(layer, p)
    rest, _ = smplx_forward(layer, SmplxParams.zeros(2).replace(shape=p.shape))
    glob = smplx_global_rotmats(layer, p)
    for child, parent in ((20, 18), (18, 16), (15, 12)):
        posed = joints[:, child] - joints[:, parent]
        turned = (glob[:, parent] @ (rest[:, child] - rest[:, parent])[..., None])[..., 0]
        torch.testing.assert_close(posed, turned, atol=1e-5, rtol=0)


def test_wrist_rule_recovers_a_known_hand(models) -> None:
    """A synthetic body + hand: the MANO global rotation built from the SMPL-X hand's own global rotation and the
    MANO pose built from its finger pose give back the same wrist rotation and finger pose after integration, and
    the integrated SMPL-X hand joints equal the MANO hand's (independent forward of the MANO layer)."""
    layer = models["smplx"]
    truth = _person(3, seed=1).replace(shape=torch.zeros(3, 10))  # MANO's hand has SMPL-X's zero-shape bones
    g = torch.Generator().manual_seed(2)
    truth = truth.replace(rhand_pose=0.3 * torch.randn(3, 15, 3, generator=g),
                          lhand_pose=0.3 * torch.randn(3, 15, 3, generator=g))
    glob = smplx_global_rotmats(layer, truth)
    hands, body_only = {}, truth.replace(body_pose=truth.body_pose.clone())
    body_only.body_pose[:, [WRIST["left"] - 1, WRIST["right"] - 1]] = 0.0  # the body part's wrists are wrong
    for side, key in (("left", "lhand_pose"), ("right", "rhand_pose")):
        mano = models[side]
        align = hand_frame_alignment(mano, layer, side)
        torch.testing.assert_close(align, torch.eye(3), atol=1e-4, rtol=0)
        smplx_mean = (layer.left_hand_mean if side == "left" else layer.right_hand_mean).reshape(15, 3)
        mano_pose = getattr(truth, key) + smplx_mean - mano.hand_mean.reshape(15, 3)  # same absolute rotations
        hands[side] = (HandPart(torch.arange(3), glob[:, WRIST[side]] @ align, mano_pose), mano.hand_mean, align)
    out = integrate(layer, body_only, hands, None, arm_rule="wrist").params
    torch.testing.assert_close(out.body_pose, truth.body_pose, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.rhand_pose, truth.rhand_pose, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.lhand_pose, truth.lhand_pose, atol=1e-5, rtol=0)
    joints, _ = smplx_forward(layer, out)
    for side in ("left", "right"):
        part = hands[side][0]
        mano_out = models[side](global_orient=rotmat_to_rotvec(part.global_rotmat),
                                hand_pose=part.hand_pose.reshape(3, 45), betas=torch.zeros(3, 10))
        rows = smplx_hand_rows(side)
        smplx_hand = joints[:, rows] - joints[:, rows[:1]]  # the 16 kinematic joints (tips differ by mesh)
        torch.testing.assert_close(smplx_hand, mano_out.joints - mano_out.joints[:, :1], atol=1e-4, rtol=0)


def test_wrist_rule_is_forearm_inverse_times_hand(models) -> None:
    """The wrist rotation written by integrate is exactly R_forearm^T @ R_hand (paper 4.4 / Hand4Whole)."""
    layer = models["smplx"]
    body = _person(2, seed=3)
    hand_rot = rotvec_to_rotmat(torch.tensor([[0.3, -1.0, 0.2], [2.0, 0.1, -0.4]]))
    part = HandPart(torch.tensor([0, 1]), hand_rot, torch.zeros(2, 15, 3))
    out = integrate(layer, body, {"right": (part, models["right"].hand_mean, torch.eye(3))}, None,
                    arm_rule="wrist").params
    forearm = smplx_global_rotmats(layer, body)[:, ELBOW["right"]]
    torch.testing.assert_close(rotvec_to_rotmat(out.body_pose[:, WRIST["right"] - 1]),
                               forearm.transpose(1, 2) @ hand_rot, atol=1e-5, rtol=0)
    torch.testing.assert_close(smplx_global_rotmats(layer, out)[:, WRIST["right"]], hand_rot, atol=1e-5, rtol=0)


def _rx(a: float) -> torch.Tensor:
    return rotvec_to_rotmat(torch.tensor([[a, 0.0, 0.0]]))


def test_twist_about_x_is_the_roll_of_a_swing_twist_product() -> None:
    """Hand-built R = R_swing @ R_x(t) with the swing about an axis perpendicular to x: the twist is t."""
    for swing_axis in ([0.0, 0.4, 0.0], [0.0, 0.3, -0.5]):
        swing = rotvec_to_rotmat(torch.tensor([swing_axis]))
        for t in (0.0, 0.7, -1.2, 3.0):
            assert abs(float(twist_about_x(swing @ _rx(t))[0]) - t) < 1e-5


def test_share_roll_with_elbow_moves_half_the_roll_and_keeps_the_hand() -> None:
    """Paper supplementary Algorithm 2, lines 5-7: a pure 0.8 rad wrist roll becomes 0.4 at the elbow and 0.4 at
    the wrist; the elbow-wrist product (the hand relative to the shoulder) is unchanged; a wrist bent 1.0 rad about
    y (> pi/4) fails the anatomical check, one bent 0.5 rad passes."""
    elbow = rotvec_to_rotmat(torch.tensor([[0.0, 0.3, 0.1]]))
    new_elbow, new_wrist, ok = share_roll_with_elbow(elbow, _rx(0.8))
    torch.testing.assert_close(new_elbow, elbow @ _rx(0.4), atol=1e-6, rtol=0)
    torch.testing.assert_close(new_wrist, _rx(0.4), atol=1e-6, rtol=0)
    assert bool(ok[0])
    bent = rotvec_to_rotmat(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.4], [0.0, 0.0, 1.7]]))
    _, w2, ok2 = share_roll_with_elbow(elbow.expand(4, 3, 3), bent)  # no roll: nothing moves, only the check
    torch.testing.assert_close(w2, bent, atol=1e-6, rtol=0)
    assert ok2.tolist() == [False, True, True, False]
    e3, w3, _ = share_roll_with_elbow(elbow.expand(4, 3, 3), bent @ _rx(0.6))
    torch.testing.assert_close(e3 @ w3, elbow @ bent @ _rx(0.6), atol=1e-5, rtol=0)


def test_paper_arm_rule_places_plausible_hands_and_keeps_the_body_otherwise(models) -> None:
    """arm_rule="paper": a hand whose wrist rotation relative to the forearm is plausible ends at its global
    rotation exactly, with half its roll on the elbow; one needing a 1.3 rad bend keeps the body's elbow and
    wrist, and hand_rotation_used says which."""
    layer = models["smplx"]
    body = _person(2, seed=5)
    forearm = smplx_global_rotmats(layer, body)[:, ELBOW["right"]]
    relative = torch.cat([rotvec_to_rotmat(torch.tensor([[0.0, 0.2, 0.3]])) @ _rx(0.9),
                          rotvec_to_rotmat(torch.tensor([[0.0, 1.3, 0.0]]))])
    part = HandPart(torch.tensor([0, 1]), forearm @ relative, torch.zeros(2, 15, 3))
    res = integrate(layer, body, {"right": (part, models["right"].hand_mean, torch.eye(3))}, None)
    assert res.hand_rotation_used["right"].tolist() == [True, False]
    assert res.hand_rotation_used["left"].tolist() == [False, False]
    glob = smplx_global_rotmats(layer, res.params)
    torch.testing.assert_close(glob[0, WRIST["right"]], forearm[0] @ relative[0], atol=1e-5, rtol=0)
    elbow_before = rotvec_to_rotmat(body.body_pose[:, ELBOW["right"] - 1])
    elbow_after = rotvec_to_rotmat(res.params.body_pose[:, ELBOW["right"] - 1])
    assert abs(float(twist_about_x(elbow_before[:1].transpose(1, 2) @ elbow_after[:1])[0]) - 0.45) < 1e-4
    torch.testing.assert_close(res.params.body_pose[1], body.body_pose[1])


def test_smpl_body_to_smplx_recovers_shape_and_translation(models) -> None:
    layer, truth = models["smplx"], _person(3, seed=4)
    joints, _ = smplx_forward(layer, truth)
    pose24 = torch.cat([truth.root_pose[:, None], truth.body_pose, torch.zeros(3, 2, 3)], dim=1)
    got = smpl_body_to_smplx(layer, pose24, joints[:, :22], shape_l2=1e-9)
    torch.testing.assert_close(got.shape, truth.shape, atol=1e-3, rtol=0)
    torch.testing.assert_close(got.trans, truth.trans, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.body_pose, truth.body_pose)


def test_face_fit_recovers_jaw_expression_and_head(models) -> None:
    layer = models["smplx"]
    start = _person(2, seed=5)
    g = torch.Generator().manual_seed(6)
    body = start.body_pose.clone()
    body[:, 14] += 0.15 * torch.randn(2, 3, generator=g)
    truth = start.replace(body_pose=body, jaw_pose=torch.tensor([[0.25, 0.0, 0.0], [0.15, 0.05, 0.0]]),
                          expr=0.8 * torch.randn(2, 10, generator=g))
    focal, princpt = FOCAL.repeat(2, 1), PRINCPT.repeat(2, 1)
    kp68, mask = torch.zeros(2, 68, 2), torch.zeros(2, 68, dtype=torch.bool)
    kp68[:, 17:], mask[:, 17:] = project_landmarks_px(layer, truth, focal, princpt), True
    cfg = FaceFitConfig(iters_head=40, iters_full=250, w_jaw=1e-6, w_expr=1e-7, w_head=1e-6)
    fit = fit_face(layer, start, kp68, mask, focal, princpt, cfg)
    assert (fit.init_err_px > 3.0).all() and (fit.kp2d_err_px < 0.3).all()
    torch.testing.assert_close(fit.params.jaw_pose, truth.jaw_pose, atol=0.03, rtol=0)
    torch.testing.assert_close(fit.params.expr, truth.expr, atol=0.1, rtol=0)
    head = global_rotmats(rotvec_to_rotmat(torch.cat([fit.params.root_pose[:, None], fit.params.body_pose], 1)),
                          layer.parents[:22].tolist())[:, 15]
    head_true = smplx_global_rotmats(layer, truth)[:, 15]
    angle = torch.arccos(((head.transpose(1, 2) @ head_true).diagonal(dim1=1, dim2=2).sum(-1) - 1).clamp(-2, 2) / 2)
    assert (angle < 0.05).all()
    # the body below the neck is untouched
    torch.testing.assert_close(fit.params.body_pose[:, :11], start.body_pose[:, :11])


def test_hand_fit_lands_on_projected_mano_keypoints(models) -> None:
    mano = models["right"]
    n = 2
    g = torch.Generator().manual_seed(7)
    orient = torch.tensor([[0.2, 1.4, 0.3], [-0.5, 2.0, 1.0]])
    pose = 0.2 * torch.randn(n, 45, generator=g)
    wrist = torch.tensor([[0.3, 0.1, 2.5], [-0.2, 0.0, 3.0]])
    out = mano(global_orient=orient, hand_pose=pose, betas=torch.zeros(n, 10))
    kps = Hand21(mano)(out.joints, out.vertices)
    kps = kps - kps[:, :1] + wrist[:, None]
    focal, princpt = FOCAL.repeat(n, 1), PRINCPT.repeat(n, 1)
    kp2d = perspective_project(kps, focal, princpt)
    init = rotvec_to_rotmat(orient + torch.tensor([[0.3, -0.2, 0.2]]))  # a wrong start near the truth
    fit = fit_hands(mano, kp2d, torch.ones(n, 21, dtype=torch.bool), focal, princpt, wrist, init,
                    HandFitConfig(iters_rigid=40, iters_full=200, num_rolls=2))
    assert (fit.kp2d_err_px < 0.3 * fit.init_err_px).all() and (fit.kp2d_err_px < 2.0).all()


def test_fingertips_found_on_other_topologies(models) -> None:
    """The derived fingertip of each finger is the vertex the fixture put at the tip (the last 5 vertices)."""
    mano = models["right"]
    n = mano.v_template.shape[0]
    assert sorted(fingertip_vertex_ids(mano).values()) == list(range(n - 5, n))


def _entry(seed: int) -> SmplxPseudoGT:
    rng = np.random.default_rng(seed)
    return SmplxPseudoGT({k: rng.normal(size=v) for k, v in SMPLX_FIELDS.items()},
                         {"lhand_valid": True, "rhand_valid": False, "face_valid": True},
                         np.array([1500.0, 1500.0]), np.array([320.0, 240.0]), {"face_kp2d_err_px": 1.5})


def test_export_round_trips_with_exactly_the_release_keys(tmp_path) -> None:
    entries = {"12": _entry(0), "3": _entry(1)}
    write_smplx_pseudo_gt(tmp_path / "pgt.json", entries)
    raw = json.loads((tmp_path / "pgt.json").read_text())
    assert list(raw) == ["3", "12"]
    assert set(raw["3"]["smplx_param"]) == {"root_pose", "body_pose", "lhand_pose", "rhand_pose", "jaw_pose", "shape",
                                            "expr", "trans", "lhand_valid", "rhand_valid", "face_valid"}
    assert set(raw["3"]["cam_param"]) == {"focal", "princpt"}
    back = read_smplx_pseudo_gt(tmp_path / "pgt.json")
    for aid, e in entries.items():
        for k in SMPLX_FIELDS:
            np.testing.assert_allclose(back[aid].params[k], e.params[k])
        assert back[aid].valid == e.valid and back[aid].quality == e.quality


def test_export_reader_names_file_annotation_and_field(tmp_path) -> None:
    write_smplx_pseudo_gt(tmp_path / "pgt.json", {"7": _entry(0)})
    raw = json.loads((tmp_path / "pgt.json").read_text())
    raw["7"]["smplx_param"]["lhand_pose"] = raw["7"]["smplx_param"]["lhand_pose"][:44]
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"bad\.json: annotation 7: field smplx_param\.lhand_pose has shape"):
        read_smplx_pseudo_gt(tmp_path / "bad.json")
    raw["7"]["smplx_param"].update(lhand_pose=[0.0] * 45, face_valid=1)
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"annotation 7: field smplx_param\.face_valid must be true or false"):
        read_smplx_pseudo_gt(tmp_path / "bad.json")


def test_loaders_name_the_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="SMPL-X model file .*nope.npz"):
        load_smplx(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="MANO model file"):
        load_mano(tmp_path / "nope.pkl", True)
