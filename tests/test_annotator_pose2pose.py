"""The Pose2Pose architecture of the annotator f (Three Recipes supp. B: Pose2Pose predicting the VPoser z).

References are independent of the code under test: hand-computed heatmap units (spec A.9: ``x*W_hm/W``,
``y*H_hm/H``, ``(z/1 m + 1)/2*8``), the VPoser decoder run directly on the predicted z, the estimator's
own network (:class:`estimators.pose2pose.Pose2PoseModule`) for parameter names, and synthetic people
projected in this file with :func:`annot.geometry.cameras.perspective_project`.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from annot.annotator.module import AnnotatorModule
from annot.geometry.cameras import perspective_project
from annot.keypoints import get_convention
from annot.nets.pose2pose import Pose2PoseNet
from annot.nets.pose2pose_joints import position_targets
from annot.priors.vposer import VPoser

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
needs_free = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")
HW = (64, 48)            # ResNet-18 at 64x48: layer4 is 2x2, heatmap (8, 2, 2)
CONV = "pose2pose33"     # has all 25 PositionNet joints
LATENT = 32


@pytest.fixture(scope="module")
def vposer_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random VPoser in the Lightning layout ``load_vposer`` reads (``vp_model.`` prefix, sizes
    from ``hyper_parameters``)."""
    torch.manual_seed(7)
    model = VPoser(num_neurons=64, latent_dim=LATENT)
    path = tmp_path_factory.mktemp("vposer") / "tiny.ckpt"
    torch.save({"state_dict": {f"vp_model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"num_neurons": 64, "latent_dim": LATENT}}, path)
    return path


def _module(vposer_ckpt: Path | None, **kw) -> AnnotatorModule:
    args = dict(mode="itw", body_model_path=str(FREE), backbone_depth=18, input_hw=HW, kp2d_convention=CONV,
                joints3d_convention=CONV, architecture="pose2pose", lr=1e-3)
    if vposer_ckpt is not None:
        args.update(pose_prior="vposer", vposer_path=str(vposer_ckpt))
    args.update(kw)
    return AnnotatorModule(**args)


def _synthetic_batch(module: AnnotatorModule, num: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """People of random pose, upright in front of the crop camera (focal 5000 px, depth 130 m), their
    ``pose2pose33`` joints projected to the 64x48 crop; random images."""
    gen = torch.Generator().manual_seed(seed)
    pose = torch.randn(num, 24, 3, generator=gen) * 0.2
    pose[:, 0] = torch.tensor([torch.pi, 0.0, 0.0])   # Y-up model -> upright in OpenCV axes
    pose[:, 22:] = 0.0
    with torch.no_grad():
        body = module.body_model(pose[:, 0], pose[:, 1:].reshape(num, -1), torch.zeros(num, 10))
        joints, valid = module.body_model.regress(body.vertices_m, CONV)
    joints = joints - body.joints_smpl24_m[:, :1] + torch.tensor([0.0, 0.0, 130.0])
    focal = torch.full((num, 2), 5000.0)
    centre = torch.tensor([HW[1] / 2.0, HW[0] / 2.0]).expand(num, 2)
    kp = perspective_project(joints, focal, centre)
    inside = (kp[..., 0] >= 0) & (kp[..., 0] < HW[1]) & (kp[..., 1] >= 0) & (kp[..., 1] < HW[0])
    return {"img": torch.rand(num, 3, *HW, generator=gen), "kp2d_px": kp,
            "kp2d_mask": (inside & valid[None]).float()}


# ------------------------------------------------------------------------------------------ outputs
@needs_free
def test_itw_pose2pose_with_vposer_outputs(vposer_ckpt):
    torch.manual_seed(0)
    module = _module(vposer_ckpt).eval()
    with torch.no_grad():
        out = module(torch.rand(3, 3, *HW))
        decoded = module.vposer.decode(out["z"])["pose_body"]
    assert out["pose_rotvec"].shape == (3, 24, 3) and torch.all(out["pose_rotvec"][:, 22:] == 0)
    assert out["z"].shape == (3, LATENT)
    assert out["joint_img"].shape == (3, 25, 3)
    # the body rotations are the frozen prior's decoding of z, not a separate head
    torch.testing.assert_close(out["pose_rotvec"][:, 1:22], decoded)
    # soft-argmax stays inside the (8, 2, 2) heatmap
    assert torch.all(out["joint_img"] >= 0) and torch.all(out["joint_img"][..., :2] <= 1)
    assert torch.all(out["joint_img"][..., 2] <= 7)
    assert module.net.rotation_net.pose_out[0].out_features == LATENT
    assert module.net.rotation_net.cam_out[0].out_features == 3       # Pose2Pose = perspective camera


@needs_free
def test_few_steps_decrease_total_loss(vposer_ckpt):
    torch.manual_seed(0)
    module = _module(vposer_ckpt, lr=1e-4)   # Pose2Pose's lr (1e-3 on the 12875-wide heads overshoots z)
    module.net.backbone.requires_grad_(False)  # CPU time: the heads only (gradient flow: test below)
    batch = _synthetic_batch(module)
    opt = module.configure_optimizers()["optimizer"]
    total, joint_img = [], []
    for _ in range(12):
        terms = module._losses(module.predict_batch(batch), batch)
        total.append(float(terms["total"].detach()))
        joint_img.append(float(terms["joint_img"].detach()))
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
    assert {"kp2d", "joint_img", "z_l2", "betas_l2"} <= set(terms)
    print("total loss", [round(v, 3) for v in total], "joint_img", [round(v, 3) for v in joint_img])
    assert total[-1] < 0.8 * total[0]
    assert joint_img[-1] < 0.95 * joint_img[0]   # PositionNet itself learns from its own term


@needs_free
def test_gradients_reach_backbone_heads_not_prior(vposer_ckpt):
    torch.manual_seed(0)
    module = _module(vposer_ckpt)
    batch = _synthetic_batch(module, num=2)
    module._losses(module.predict_batch(batch), batch)["total"].backward()
    net = module.net
    for param in (net.backbone.conv1.weight, net.position_net.conv[0].weight, net.rotation_net.pose_out[0].weight,
                  net.rotation_net.root_pose_out[0].weight, net.rotation_net.cam_out[0].weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.vposer.parameters())   # frozen prior
    optimised = {id(p) for group in module.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert not any(id(p) in optimised for p in module.vposer.parameters())


# -------------------------------------------------------------------------------- PositionNet loss
def test_position_targets_hand_computed():
    # 64x48 crop -> heatmap (D, H, W) = (8, 2, 2): x * 2/48, y * 2/64; z: (z/1 + 1)/2 * 8
    names = get_convention(CONV).joint_names
    kp = torch.zeros(2, 33, 2)
    mask = torch.zeros(2, 33)
    l_hip, r_hip, nose = names.index("L_Hip"), names.index("R_Hip"), names.index("Nose")
    kp[:, l_hip] = torch.tensor([12.0, 16.0])     # -> (0.5, 0.5)
    kp[:, r_hip] = torch.tensor([100.0, 16.0])    # outside the crop: truncated
    kp[:, nose] = torch.tensor([float("nan"), 0.0])  # invisible, non-finite: must not leak
    mask[:, [l_hip, r_hip]] = 1.0
    joints = torch.zeros(2, 33, 3)
    joints[:, l_hip, 2] = 0.5                     # -> depth 6
    jmask = torch.zeros(2, 33)
    jmask[0, l_hip] = 1.0                         # sample 0 has 3D joints, sample 1 only 2D
    target, tmask = position_targets(kp, mask, CONV, HW, joints, jmask, CONV)
    p25 = get_convention("pose2pose25").joint_names
    i = p25.index("L_Hip")
    torch.testing.assert_close(target[0, i], torch.tensor([0.5, 0.5, 6.0]))
    torch.testing.assert_close(tmask[0, i], torch.ones(3))
    torch.testing.assert_close(tmask[1, i], torch.tensor([1.0, 1.0, 0.0]))   # no z without 3D joints
    assert tmask[:, p25.index("R_Hip")].sum() == 0 and tmask[:, p25.index("Nose")].sum() == 0
    assert torch.isfinite(target).all() and tmask.sum() == 5


def test_coco17_batches_mask_missing_position_joints():
    kp = torch.full((1, 17, 2), 10.0)
    target, mask = position_targets(kp, torch.ones(1, 17), "coco17", HW)
    p25 = get_convention("pose2pose25").joint_names
    missing = [j for j in p25 if j not in get_convention("coco17").joint_names]
    assert {"Pelvis", "Neck"} <= set(missing)
    for name in missing:
        assert mask[0, p25.index(name)].sum() == 0
    assert mask[0, p25.index("L_Hip"), :2].tolist() == [1.0, 1.0]
    assert mask[..., 2].sum() == 0   # 2D-only batch: no depth term


@needs_free
def test_joint_img_loss_is_masked(vposer_ckpt):
    torch.manual_seed(0)
    module = _module(vposer_ckpt).eval()
    batch = _synthetic_batch(module, num=2)
    with torch.no_grad():
        pred = module.predict_batch(batch)
        base = module._losses(pred, batch)
        joint = get_convention(CONV).index("Pelvis")
        assert batch["kp2d_mask"][0, joint] == 1
        dropped = {**batch, "kp2d_mask": batch["kp2d_mask"].clone()}
        dropped["kp2d_mask"][0, joint] = 0.0
        reference = module._losses(pred, dropped)                 # the joint simply left out
        huge = {**dropped, "kp2d_px": batch["kp2d_px"].clone()}
        huge["kp2d_px"][0, joint] = torch.tensor([1e6, -1e6])    # ... and moved far away
        hidden = module._losses(pred, huge)
        moved = {**batch, "kp2d_px": batch["kp2d_px"].clone()}
        moved["kp2d_px"][0, joint] = torch.tensor([1.0, 1.0])   # visible and moved inside the crop
        seen = module._losses(pred, moved)
    assert float(hidden["joint_img"]) == float(reference["joint_img"])
    assert float(hidden["total"]) == float(reference["total"])
    assert float(seen["joint_img"]) != pytest.approx(float(base["joint_img"]))
    # base by hand: mean |pred - target| over the visible, in-heatmap (x, y) of the 25 joints (2D-only batch)
    p25 = get_convention("pose2pose25").joint_names
    index = [get_convention(CONV).index(name) for name in p25]
    scale = torch.tensor([2 / HW[1], 2 / HW[0]])
    target = batch["kp2d_px"][:, index] * scale
    inside = (target >= 0).all(-1) & (target[..., 0] < 2) & (target[..., 1] < 2)
    valid = (batch["kp2d_mask"][:, index] > 0) & inside
    expected = (pred["joint_img"][..., :2] - target).abs()[valid].mean()
    torch.testing.assert_close(base["joint_img"], expected)


# ------------------------------------------------------------------------------- names and modes
@needs_free
def test_state_dict_keys_match_the_estimator():
    from estimators.pose2pose import Pose2PoseModule

    torch.manual_seed(0)
    annot_rot6d = _module(None)
    estimator = Pose2PoseModule(body_model_path=str(FREE), backbone_depth=18, input_hw=HW)
    ours = {k: v.shape for k, v in annot_rot6d.state_dict().items() if k.startswith("net.")}
    theirs = {k: v.shape for k, v in estimator.state_dict().items() if k.startswith("net.")}
    assert ours == theirs
    assert "net.position_net.conv.0.weight" in ours and "net.rotation_net.root_pose_out.0.weight" in ours
    # the weights load strictly into the estimator and give the same PositionNet output
    estimator.net.load_state_dict(annot_rot6d.net.state_dict())
    img = torch.rand(2, 3, *HW)
    with torch.no_grad():
        torch.testing.assert_close(estimator.eval()(img)["joint_img"], annot_rot6d.eval()(img)["joint_img"])


def test_vposer_rotation_net_differs_only_in_pose_out():
    p2p = {k: v.shape for k, v in Pose2PoseNet(18).state_dict().items()}
    z = {k: v.shape for k, v in Pose2PoseNet(18, pose_output="vposer", latent_dim=LATENT).state_dict().items()}
    assert p2p.keys() == z.keys()
    assert {k for k in p2p if p2p[k] != z[k]} == {"rotation_net.pose_out.0.weight", "rotation_net.pose_out.0.bias"}
    assert z["rotation_net.pose_out.0.weight"] == (LATENT, 25 * 515)
    with pytest.raises(ValueError, match="pose_output"):
        Pose2PoseNet(18, pose_output="quaternion")


@needs_free
def test_mocap_modes_with_pose2pose():
    torch.manual_seed(0)
    mocap = _module(None, mode="mocap", joints3d_convention="smpl24").eval()
    rot_in = mocap.net.rotation_net.root_pose_out[0].in_features
    assert rot_in == 25 * 515 + 512 and mocap.net.rotation_net.shape_out[0].in_features == 512 + 512
    joints, img = torch.randn(2, 24, 3) * 0.3, torch.rand(2, 3, *HW)
    with torch.no_grad():
        out = mocap(img, joints, torch.ones(2, 24))
        other = mocap(img, joints.flip(0), torch.ones(2, 24))
    assert out["joint_img"].shape == (2, 25, 3) and out["joints3d_rel_m"].shape == (2, 24, 3)
    # the GT joints condition the rotations and shape, not PositionNet (which sees the image only)
    assert not torch.allclose(out["pose_rotvec"], other["pose_rotvec"])
    assert not torch.allclose(out["betas"], other["betas"])
    torch.testing.assert_close(out["joint_img"], other["joint_img"])
    only = _module(None, mode="mocap_joints_only", joints3d_convention="smpl24")
    assert only.architecture == "regressor" and not hasattr(only.net, "position_net")
    with pytest.raises(ValueError, match="architecture"):
        _module(None, architecture="transformer")
