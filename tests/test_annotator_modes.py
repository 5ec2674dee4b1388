"""The annotator's modes, pose prior and camera models on data generated from the free body model."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from annot.annotator.module import AnnotatorModule
from annot.geometry.cameras import perspective_project, project_camera_model

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
needs_free = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")


def _known_poses(module: AnnotatorModule, num: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GT SMPL-24 joints (root-relative, model frame) of random poses and shapes, and the poses."""
    gen = torch.Generator().manual_seed(seed)
    pose = torch.randn(num, 24, 3, generator=gen) * 0.35
    pose[:, 0] = torch.randn(num, 3, generator=gen) * 0.3
    pose[:, 22:] = 0.0
    betas = torch.randn(num, 10, generator=gen) * 0.5
    with torch.no_grad():
        out = module.body_model(pose[:, 0], pose[:, 1:].reshape(num, -1), betas)
    joints = out.joints_smpl24_m
    return joints - joints[:, :1], pose


@needs_free
def test_mocap_mode_recovers_known_poses():
    torch.manual_seed(0)
    module = AnnotatorModule(mode="mocap_joints_only", body_model_path=str(FREE), hidden_dim=256,
                             joints3d_convention="smpl24", w_pose_l2=0.0, w_betas_l2=1e-4, lr=2e-3)
    gt, _ = _known_poses(module, 16, seed=1)
    batch = {"joints_world_m": gt, "joints_mask": torch.ones(gt.shape[:2])}
    opt = torch.optim.Adam(module.net.parameters(), lr=2e-3)
    for _ in range(120):
        loss = module._losses(module.predict_batch(batch), batch)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = module.predict_batch(batch)["joints3d_rel_m"]
        mean_pose = module.body_model(torch.zeros(16, 3), torch.zeros(16, 69), torch.zeros(16, 10)).joints_smpl24_m
    trained_mm = 1000 * (pred - gt).norm(dim=-1).mean().item()
    mean_pose_mm = 1000 * ((mean_pose - mean_pose[:, :1]) - gt).norm(dim=-1).mean().item()
    print(f"MoCap mode MPJPE after training {trained_mm:.1f} mm vs mean pose {mean_pose_mm:.1f} mm")
    assert trained_mm < 0.35 * mean_pose_mm


@needs_free
def test_itw_mode_with_rot6d_outputs_and_zero_hands():
    module = AnnotatorModule(mode="itw", body_model_path=str(FREE), backbone_depth=18, hidden_dim=64,
                             input_hw=(128, 96))
    out = module(torch.rand(2, 3, 128, 96))
    assert out["pose_rotvec"].shape == (2, 24, 3) and torch.all(out["pose_rotvec"][:, 22:] == 0)
    assert out["kp2d_pred_px"].shape == (2, 17, 2)
    # the exported translation puts the mesh where the projection says: re-project the mesh joints
    joints, _ = module.body_model.regress(out["vertices_cam_m"], "coco17")
    centre = torch.tensor([48.0, 64.0]).expand(2, 2)
    torch.testing.assert_close(perspective_project(joints, out["focal_px"], centre), out["kp2d_pred_px"],
                               atol=1e-2, rtol=0)


def test_bad_mode_and_missing_prior_fail_early():
    with pytest.raises(ValueError, match="mode"):
        AnnotatorModule(mode="fancy")
    with pytest.raises(ValueError, match="vposer_path"):
        AnnotatorModule(pose_prior="vposer", vposer_path=None)


@pytest.mark.parametrize("model,width", [("perspective", 3), ("weak_perspective", 3), ("d2s", 4)])
def test_camera_models_are_equivalent_pinholes(model, width):
    gen = torch.Generator().manual_seed(3)
    joints = torch.randn(4, 9, 3, generator=gen) * 0.3
    if model == "weak_perspective":
        joints[..., 2] = 0.0   # weak perspective equals a pinhole only for a flat body
    raw = torch.randn(4, width, generator=gen)
    kp, focal, transl = project_camera_model(joints, raw, model, (256, 192))
    centre = torch.tensor([96.0, 128.0]).expand(4, 2)
    torch.testing.assert_close(perspective_project(joints + transl[:, None], focal, centre), kp, atol=1e-3, rtol=0)


def test_d2s_per_joint_scale_hand_computed():
    # one joint at (0.1, 0.2, 0.5) m from the root; s = softplus(0) + 1e-3, t = 0, depth logit 0
    joints = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.2, 0.5]]])
    raw = torch.zeros(1, 4)
    kp, _, transl = project_camera_model(joints, raw, "d2s", (256, 192))
    s = float(np.log(2.0)) + 1e-3
    d = float(transl[0, 2])
    expected = np.array([0.1, 0.2]) * s * d / (d + 0.5) * 96.0 + np.array([96.0, 128.0])
    np.testing.assert_allclose(kp[0, 1].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(kp[0, 0].numpy(), [96.0, 128.0], atol=1e-5)


@needs_free
def test_smpl_param_term_compares_rotations_not_axis_angle():
    """theta* with global orientation (pi - e) about +x and a prediction with (pi - e) about -x: the same
    rotation up to 2e, 2(pi - e) apart as axis-angle. The term must see a small difference (hand computed:
    rotation matrices differ by 2e in two entries), and a clearly different pose must cost more."""
    module = AnnotatorModule(mode="itw", body_model_path=str(FREE), backbone_depth=18, hidden_dim=32,
                             input_hw=(64, 48), pose_prior="none", w_pose_l2=0.0, w_betas_l2=0.0)
    eps = 0.01
    target = torch.zeros(1, 24, 3)
    target[0, 0] = torch.tensor([math.pi - eps, 0.0, 0.0])
    near = torch.zeros(1, 24, 3)
    near[0, 0] = torch.tensor([-(math.pi - eps), 0.0, 0.0])
    batch = {"smpl_valid": torch.ones(1), "smpl_pose_rotvec": target, "smpl_betas": torch.zeros(1, 10)}

    def term(pose: torch.Tensor) -> float:
        return float(module._losses({"pose_rotvec": pose, "betas": torch.zeros(1, 10)}, batch)["smpl_param"])

    # Rx(pi - e) vs Rx(-(pi - e)): entries (1, 2) and (2, 1) are -sin and sin, i.e. differ by 2 sin(pi - e) each
    expected = 2 * 2 * math.sin(math.pi - eps) / (22 * 9 + 10)
    assert term(near) == pytest.approx(expected, rel=1e-3)
    far = target.clone()
    far[0, 0] = torch.tensor([0.0, 0.0, 0.0])
    assert term(far) > 20 * term(near)


@needs_free
def test_root_orient_term_weights_the_root_rotation_alone():
    """loss.root_orient: identity predicted for a theta* root of Rz(90 deg): |I - Rz(90)| has four entries of 1
    (hand computed), so the mean over the root's 9 entries is 4 / 9, times the weight; the body joints do not
    enter it, and with weight 0 the term is absent (the paper's loss)."""
    batch = {"smpl_valid": torch.ones(1), "smpl_pose_rotvec": torch.zeros(1, 24, 3), "smpl_betas": torch.zeros(1, 10)}
    batch["smpl_pose_rotvec"][0, 0] = torch.tensor([0.0, 0.0, math.pi / 2])
    pose = torch.zeros(1, 24, 3)
    pose[0, 5] = torch.tensor([0.7, 0.0, 0.0])  # a body joint off: not the root term's business
    for weight in (0.0, 2.0):
        module = AnnotatorModule(mode="itw", body_model_path=str(FREE), backbone_depth=18, hidden_dim=32,
                                 input_hw=(64, 48), pose_prior="none", w_pose_l2=0.0, w_betas_l2=0.0,
                                 w_root_orient=weight)
        terms = module._losses({"pose_rotvec": pose, "betas": torch.zeros(1, 10)}, batch)
        if weight == 0.0:
            assert "root_orient" not in terms
        else:
            assert float(terms["root_orient"]) == pytest.approx(weight * 4 / 9, rel=1e-5)
