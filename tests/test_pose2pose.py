"""Tests for estimators.pose2pose: network shapes (spec B.2), soft-argmax, camera, targets, the seven
losses (B.3), the schedule (B.4), training and checkpoints.

References are independent of the code under test: hand-computed numbers, spec constants, the
body model and ``annot.geometry.perspective_project`` as a second implementation of the projection,
and synthetic people whose keypoints are projected in this file with numpy.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from annot.data.fixtures.common import random_people
from annot.geometry.cameras import perspective_project
from annot.keypoints import get_convention
from annot.nets.resnet import ResNetBackbone
from estimators.pose2pose import LOSS_NAMES, Pose2PoseModule, Pose2PoseNet, pose2pose_losses
from estimators.pose2pose.joints import (
    crop_px_to_heatmap,
    depth_to_heatmap,
    heatmap_shape,
    inside_heatmap,
    reduce_to_position_set,
)
from estimators.pose2pose.module import camera_trans_from_raw
from estimators.pose2pose.net import sample_joint_features, soft_argmax_3d

FREE_MODEL = Path(__file__).resolve().parents[1] / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
COCO_DIR = Path(os.environ.get("ANNOT_COCO_SAMPLES", Path(__file__).resolve().parents[2] / "shared/data/coco_samples"))
SMALL_HW = (64, 48)  # ResNet-18 at 64x48 (heatmap 8x2x2) keeps training tests fast; 256x192 shapes below
HM_PER_PX = torch.tensor([2 / 48, 2 / 64])  # heatmap units per crop pixel (x, y) at SMALL_HW

pytestmark = pytest.mark.skipif(not FREE_MODEL.is_file(), reason="free body model not built (make setup)")


# ----------------------------------------------------------------------------------------------- net
def test_resnet50_stage_shapes_at_256x192():
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        net = Pose2PoseNet(backbone_depth=50).eval()
        out = net(torch.empty(2, 3, 256, 192))
    assert out["img_feat"].shape == (2, 2048, 8, 6)
    assert out["heatmap"].shape == (2, 25, 8, 8, 6)
    assert out["joint_img"].shape == (2, 25, 3)
    assert out["rotation_input"].shape == (2, 12875)  # 25 x (512 + 3)
    assert net.rotation_net.root_pose_out[0].in_features == 12875
    assert net.rotation_net.pose_out[0].out_features == 21 * 6
    assert out["root_6d"].shape == (2, 6) and out["body_6d"].shape == (2, 21, 6)
    assert out["betas"].shape == (2, 10) and out["cam_raw"].shape == (2, 3)
    assert net.rotation_net.shape_out[0].in_features == 2048 and net.rotation_net.cam_out[0].in_features == 2048
    assert heatmap_shape((256, 192)) == (8, 8, 6)


def test_head_initialisation_follows_hand4whole():
    net = Pose2PoseNet(backbone_depth=18)
    conv = net.position_net.conv[0]
    assert conv.weight.detach().std().item() == pytest.approx(0.001, rel=0.1) and float(conv.bias.abs().max()) == 0
    linear = net.rotation_net.pose_out[0]
    assert linear.weight.detach().std().item() == pytest.approx(0.01, rel=0.05) and float(linear.bias.abs().max()) == 0
    bn = net.rotation_net.conv[1]
    assert bool((bn.weight == 1).all()) and bool((bn.bias == 0).all())


def test_soft_argmax_one_hot_and_uniform():
    heatmap = torch.zeros(1, 2, 8, 8, 6)
    heatmap[0, 0, 5, 2, 4] = 1e3      # joint 0: one hot voxel at (d=5, h=2, w=4)
    coords = soft_argmax_3d(heatmap)  # joint 1: uniform -> mean index
    torch.testing.assert_close(coords[0, 0], torch.tensor([4.0, 2.0, 5.0]))
    torch.testing.assert_close(coords[0, 1], torch.tensor([2.5, 3.5, 3.5]))  # (0+..+5)/6, (0+..+7)/8


def test_joint_feature_sampling_is_align_corners_bilinear():
    height, width = 8, 6
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    feat = torch.stack([10 * ys + xs, -xs], dim=0)[None]  # (1, 2, 8, 6): value 10*y + x and -x
    joints = torch.tensor([[[0.0, 0.0], [5.0, 7.0], [2.5, 1.0], [1.25, 3.5]]])
    sampled = sample_joint_features(feat, joints)
    expected = torch.tensor([[[0.0, 0.0], [75.0, -5.0], [12.5, -2.5], [36.25, -1.25]]])
    torch.testing.assert_close(sampled, expected)


# ------------------------------------------------------------------------------------ units, camera
def test_camera_depth_constant_and_heatmap_units():
    raw = torch.tensor([[0.3, -0.2, 0.0], [0.0, 0.0, 30.0]])
    trans = camera_trans_from_raw(raw, (256, 192))
    k = 5000 * 2.5 / math.sqrt(256 * 192)
    assert k == pytest.approx(56.38, abs=5e-3)
    torch.testing.assert_close(trans[0], torch.tensor([0.3, -0.2, k / 2]))
    assert trans[1, 2].item() == pytest.approx(56.38, abs=5e-3)
    hm = (8, 8, 6)
    torch.testing.assert_close(crop_px_to_heatmap(torch.tensor([[96.0, 128.0], [192.0, 0.0]]), (256, 192), hm),
                               torch.tensor([[3.0, 4.0], [6.0, 0.0]]))
    torch.testing.assert_close(depth_to_heatmap(torch.tensor([0.0, 0.5, -1.0, 1.0])),
                               torch.tensor([4.0, 6.0, 0.0, 8.0]))
    coords = torch.tensor([[[3.0, 4.0, 4.0], [5.9, 7.9, 7.9], [6.0, 1.0, 1.0], [1.0, 1.0, 8.0]]])
    assert inside_heatmap(coords, hm).tolist() == [[1.0, 1.0, 0.0, 0.0]]
    assert inside_heatmap(coords, hm, check_depth=torch.tensor([False])).tolist() == [[1.0, 1.0, 0.0, 1.0]]


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def module18() -> Pose2PoseModule:
    torch.manual_seed(0)
    return Pose2PoseModule(body_model_path=str(FREE_MODEL), backbone_depth=18, input_hw=SMALL_HW,
                           data_convention="h36m17")


def _synthetic_batch(body_model, convention: str, num: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """People posed by the free body model, seen by a camera in crop pixels (f = 2 H px, 4.5-5.5 m away).

    Samples 0, 1 carry 3D joints; samples 0, 1, 2 a pseudo-GT fit (= the truth); sample 3 has neither.
    Keypoints are the mesh's ``convention`` joints projected here with numpy; joints the model cannot
    regress (free model: hand MCPs) are NaN under a zero mask, which the module must ignore.
    """
    height, width = SMALL_HW
    focal, princpt = np.array([2.0 * height, 2.0 * height]), np.array([width / 2.0, height / 2.0])
    people = random_people(num, seed, depth_range_m=(4.5, 5.5))
    pose = torch.tensor(np.stack([p.pose_rotvec for p in people]), dtype=torch.float32)
    betas = torch.tensor(np.stack([p.betas for p in people]), dtype=torch.float32)
    transl = torch.tensor(np.stack([p.transl_m for p in people]), dtype=torch.float32)
    with torch.no_grad():
        verts = body_model(pose[:, 0], pose[:, 1:].reshape(num, 69), betas, transl).vertices_m
        joints, joint_mask = body_model.regress(verts, convention)
    joints = joints.double().numpy()
    with np.errstate(invalid="ignore"):  # joints the model cannot regress are 0 -> 0/0; left NaN on purpose
        kp = joints[..., :2] / joints[..., 2:] * focal + princpt
    inside = (kp[..., 0] >= 0) & (kp[..., 0] < width) & (kp[..., 1] >= 0) & (kp[..., 1] < height)
    root = get_convention(convention).index("Pelvis")
    has_3d = torch.tensor([1.0, 1.0, 0.0, 0.0])[:num]
    gen = torch.Generator().manual_seed(seed)
    return {
        "img": torch.rand(num, 3, height, width, generator=gen),
        "kp2d_px": torch.tensor(kp, dtype=torch.float32),
        "kp2d_mask": torch.tensor(inside & joint_mask.numpy()[None], dtype=torch.float32),
        "joints_cam_m": torch.tensor(joints - joints[:, root: root + 1], dtype=torch.float32) * has_3d[:, None, None],
        "joints_cam_mask": joint_mask.float()[None].repeat(num, 1) * has_3d[:, None],
        "smpl_pose_rotvec": pose, "smpl_betas": betas, "smpl_transl_m": transl,
        "smpl_valid": torch.tensor([1.0, 1.0, 1.0, 0.0])[:num],
        "real_focal_crop_px": torch.tensor(focal, dtype=torch.float32).repeat(num, 1),
        "real_princpt_crop_px": torch.tensor(princpt, dtype=torch.float32).repeat(num, 1),
        "real_cam_valid": torch.ones(num),
    }


@pytest.fixture(scope="module")
def h36m_batch(module18) -> dict[str, torch.Tensor]:
    return _synthetic_batch(module18.body_model, "h36m17")


# ------------------------------------------------------------------------------------- forward
def test_forward_contract_and_projection(module18):
    module = module18.eval()
    img = torch.rand(2, 3, *SMALL_HW)
    with torch.no_grad():
        out = module(img)
    verts = module.body_model.num_vertices
    assert out["pose_rotvec"].shape == (2, 24, 3) and float(out["pose_rotvec"][:, 22:].abs().max()) == 0
    assert out["betas"].shape == (2, 10) and out["cam_trans_m"].shape == (2, 3)
    assert out["vertices_cam_m"].shape == (2, verts, 3)
    assert out["joint_img"].shape == (2, 25, 3) and out["joint_proj"].shape == (2, 33, 2)
    assert out["joint_cam"].shape == (2, 33, 3) and float(out["joint_cam"][:, 0].abs().max()) == 0
    # vertices_cam_m is the SMPL mesh with transl = cam_trans_m
    pose = out["pose_rotvec"]
    with torch.no_grad():
        ref = module.body_model(pose[:, 0], pose[:, 1:].reshape(2, 69), out["betas"], out["cam_trans_m"])
    torch.testing.assert_close(out["vertices_cam_m"], ref.vertices_m, atol=1e-5, rtol=0)
    # joint_proj = crop-camera projection of the translated joints, in heatmap units
    joints_cam, mask = module.body_model.regress(ref.vertices_m, "pose2pose33")
    assert int(mask.sum()) == 25  # the free model has no hand MCPs
    px = perspective_project(joints_cam, torch.tensor([5000.0, 5000.0]), torch.tensor([24.0, 32.0]))
    torch.testing.assert_close(out["joint_proj"][:, mask], (px * HM_PER_PX)[:, mask],
                               atol=2e-3, rtol=1e-4)
    with pytest.raises(ValueError, match=r"img must be \(B, 3, 64, 48\)"):
        module(torch.rand(1, 3, 256, 192))


# ------------------------------------------------------------------------------------- targets
def test_dataset_and_pseudo_gt_targets_agree(module18, monkeypatch):
    # With keypoints that are the mesh's own 33 joints, the dataset route (kp2d_px -> heatmap) and the
    # pseudo-GT route (SMPL -> regress -> project -> heatmap) must give the same targets.
    module = module18
    monkeypatch.setitem(module.hparams, "data_convention", "pose2pose33")
    batch = _synthetic_batch(module.body_model, "pose2pose33", num=3)
    targets = module.build_targets(batch)
    both = targets["joint_trunc"] * targets["smpl_joint_trunc"]
    assert both[:3].sum() > 3 * 20  # most of the 25 free-model joints are in the crop
    diff = (targets["joint_img"][..., :2] - targets["smpl_joint_img"][..., :2]).abs() * both[..., None]
    assert float(diff.max()) < 1e-4
    depth = targets["joint_depth_valid"] * both
    assert float(((targets["joint_img"][..., 2] - targets["smpl_joint_img"][..., 2]).abs() * depth).max()) < 1e-4
    assert depth[:2].sum() > 0 and float(depth[2].sum()) == 0  # sample 2 has no 3D joints: z not supervised
    valid3d = targets["joint_cam_valid"] * targets["smpl_joint_valid"]
    assert float(((targets["joint_cam"] - targets["smpl_joint_cam"]).abs() * valid3d[..., None]).max()) < 1e-5
    # the free model has no hand MCPs: masked everywhere
    assert float(targets["model_joint_valid"][:, 14:22].abs().max()) == 0
    assert float(targets["smpl_joint_valid"][:, 14:22].abs().max()) == 0


def test_h36m_targets_are_converted_by_name(module18, h36m_batch):
    targets = module18.build_targets(h36m_batch)
    # H36M Neck (index 8) supervises the 33-set Neck (index 7); Nose has no H36M source
    torch.testing.assert_close(targets["joint_img"][:, 7, :2],
                               h36m_batch["kp2d_px"][:, 8] * HM_PER_PX)
    assert float(targets["joint_trunc"][:, 22].abs().max()) == 0
    assert targets["joint_cam_valid"][:, :14].sum(1).tolist() == [14.0, 14.0, 0.0, 0.0]  # is_3D for 0, 1
    coco_shaped = {**h36m_batch, "kp2d_px": h36m_batch["kp2d_px"][:, :16], "kp2d_mask": h36m_batch["kp2d_mask"][:, :16]}
    with pytest.raises(ValueError, match="data_convention 'h36m17'"):
        module18.build_targets(coco_shaped)


def test_real_coco_samples_give_2d_only_targets(module18, monkeypatch):
    if not (COCO_DIR / "test_coco.json").is_file():
        pytest.skip(f"COCO samples not found at {COCO_DIR} (set $ANNOT_COCO_SAMPLES)")
    from annot.data import COCOKeypoints

    dataset = COCOKeypoints(COCO_DIR, "test_coco.json", input_hw=SMALL_HW)
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    monkeypatch.setitem(module18.hparams, "data_convention", "coco17")
    targets = module18.build_targets(batch)
    # COCO: 2D only, no fit: only the 2D terms are supervised; every keypoint of the Sample is kept
    assert float(targets["joint_cam_valid"].sum()) == 0 and float(targets["joint_depth_valid"].sum()) == 0
    assert float(targets["smpl_valid"].sum()) == 0 and float(targets["smpl_joint_trunc"].sum()) == 0
    l_shoulder33, l_shoulder_coco = 8, 5
    torch.testing.assert_close(targets["joint_trunc"][:, l_shoulder33], batch["kp2d_mask"][:, l_shoulder_coco])
    module18.eval()
    with torch.no_grad():
        losses = pose2pose_losses(module18(batch["img"]), targets)
    assert float(losses["joint_img"]) > 0 and float(losses["joint_proj"]) > 0
    assert all(float(losses[n]) == 0 for n in ("smpl_joint_img", "smpl_pose", "smpl_shape", "joint_cam",
                                               "smpl_joint_cam"))


def test_bad_constructor_arguments_fail_before_loading_anything():
    with pytest.raises(ValueError, match="unknown keypoint convention 'h36m'"):
        Pose2PoseModule(body_model_path="/nonexistent", data_convention="h36m")
    with pytest.raises(ValueError, match="input_hw"):
        Pose2PoseModule(body_model_path="/nonexistent", input_hw=(0, 192))


# ------------------------------------------------------------------------------------- losses
def _random_targets(batch: int = 3, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.rand(*shape, generator=gen)

    def bits(*shape):
        return (torch.rand(*shape, generator=gen) > 0.3).float()

    joint_img = rnd(batch, 33, 3) * 5
    targets = {
        "joint_img": joint_img, "joint_trunc": bits(batch, 33), "joint_depth_valid": bits(batch, 33),
        "joint_cam": rnd(batch, 33, 3), "joint_cam_valid": bits(batch, 33),
        "smpl_joint_img": joint_img.clone(), "smpl_joint_trunc": bits(batch, 33),
        "smpl_pose": rnd(batch, 72), "smpl_shape": rnd(batch, 10), "smpl_valid": torch.tensor([1.0, 0.0, 1.0]),
        "smpl_joint_valid": bits(batch, 33), "model_joint_valid": bits(batch, 33),
    }
    targets["smpl_joint_cam"] = targets["joint_cam"].clone()
    pred = {
        "joint_img": reduce_to_position_set(joint_img).clone(),
        "pose_rotvec": targets["smpl_pose"].reshape(batch, 24, 3).clone(),
        "betas": targets["smpl_shape"].clone(), "joint_proj": joint_img[..., :2].clone(),
        "joint_cam": targets["joint_cam"].clone(),
    }
    return pred, targets


# (loss, pred key, pred element, masks that must all be 1 for the element to count,
#  masks of the other term reading the same prediction, set to 0 to isolate this one). 25-set 14 = 33-set 27.
MASK_CASES = [
    ("joint_img", "joint_img", (0, 14, 0), [("joint_trunc", (0, 27))], [("smpl_joint_trunc", (0, 27))]),
    ("joint_img", "joint_img", (0, 14, 2), [("joint_trunc", (0, 27)), ("joint_depth_valid", (0, 27))],
     [("smpl_joint_trunc", (0, 27))]),
    ("smpl_joint_img", "joint_img", (1, 0, 1), [("smpl_joint_trunc", (1, 0))], [("joint_trunc", (1, 0))]),
    ("joint_proj", "joint_proj", (1, 5, 1), [("joint_trunc", (1, 5)), ("model_joint_valid", (1, 5))], []),
    ("joint_cam", "joint_cam", (2, 9, 2), [("joint_cam_valid", (2, 9)), ("model_joint_valid", (2, 9))],
     [("smpl_joint_valid", (2, 9))]),
    ("smpl_joint_cam", "joint_cam", (2, 30, 0), [("smpl_joint_valid", (2, 30))], [("joint_cam_valid", (2, 30))]),
    ("smpl_pose", "pose_rotvec", (1, 3, 0), [("smpl_valid", (1,))], []),
    ("smpl_shape", "betas", (2, 4), [("smpl_valid", (2,))], []),
]


def test_losses_zero_at_the_targets_and_each_is_masked():
    pred, targets = _random_targets()
    losses = pose2pose_losses(pred, targets)
    assert tuple(losses) == LOSS_NAMES
    assert all(float(v) == 0.0 for v in losses.values())
    for name, key, index, gates, isolate in MASK_CASES:
        for off in [None] + list(range(len(gates))):  # None: every gate open -> the error counts
            p, t = _random_targets()
            for mask_key, idx in isolate:
                t[mask_key][idx] = 0.0
            for g, (mask_key, idx) in enumerate(gates):
                t[mask_key][idx] = 0.0 if g == off else 1.0
            p[key][index] += 1e6  # a huge error on one element
            loss = pose2pose_losses(p, t)
            # per-element mean over ALL elements of the prediction (masked zeros included), weight 1
            expected = 1e6 / p[key].numel() if off is None else 0.0
            assert float(loss[name]) == pytest.approx(expected, rel=1e-4, abs=1e-9), (name, index, off)
            assert all(float(v) == 0.0 for n, v in loss.items() if n != name), (name, index, off)


# ------------------------------------------------------------------------------------- optimisation
def test_lr_schedule_steps_at_epochs_4_and_6(module18):
    config = module18.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.Adam) and config["lr_scheduler"]["interval"] == "epoch"
    assert optimizer.param_groups[0]["weight_decay"] == 0
    lrs = []
    for _ in range(7):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(lrs, [1e-4] * 4 + [1e-5] * 2 + [1e-6], rtol=1e-9)


def test_a_few_steps_decrease_the_loss(module18, h36m_batch):
    module = copy.deepcopy(module18).train()
    optimizer = module.configure_optimizers()["optimizer"]
    totals = []
    for _ in range(4):
        losses = pose2pose_losses(module(h36m_batch["img"]), module.build_targets(h36m_batch))
        assert all(torch.isfinite(v) for v in losses.values()) and float(losses["joint_cam"]) > 0
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(float(total))
    print("pose2pose total loss per step:", [round(t, 4) for t in totals])
    assert totals[-1] < 0.9 * totals[0]


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.items = [{k: v[i] for k, v in batch.items()} for i in range(len(batch["img"]))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def test_checkpoint_round_trip(tmp_path, h36m_batch):
    backbone_file = tmp_path / "backbone.pth"
    torch.manual_seed(1)
    torch.save(ResNetBackbone(18).state_dict(), backbone_file)
    module = Pose2PoseModule(body_model_path=str(FREE_MODEL), backbone_depth=18, backbone_weights=str(backbone_file),
                             input_hw=SMALL_HW, data_convention="h36m17", config={"note": "test"})
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(_ListDataset(h36m_batch), batch_size=4))  # 1 step per epoch
    path = tmp_path / "pose2pose.ckpt"
    trainer.save_checkpoint(path, weights_only=True)  # optimizer state is irrelevant here and large
    backbone_file.unlink()  # the checkpoint must not need the init weights any more
    saved = torch.load(path, map_location="cpu", weights_only=False)
    assert not any(k.startswith("body_model.") for k in saved["state_dict"])
    assert saved["hyper_parameters"]["backbone_weights"] is None
    assert saved["pose2pose_backbone_init"] == str(backbone_file)
    loaded = Pose2PoseModule.load_from_checkpoint(path)
    assert loaded.hparams.input_hw == SMALL_HW and loaded.hparams.config == {"note": "test"}
    module.eval(), loaded.eval()
    with torch.no_grad():
        a, b = module(h36m_batch["img"]), loaded(h36m_batch["img"])
    for key in ("pose_rotvec", "betas", "cam_trans_m", "vertices_cam_m", "joint_img", "joint_proj"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
