"""HMR (SPIN-style) estimator: network stages, IEF, normalisation, camera, losses, training, checkpoints.

References are independent of the code under test: SPIN's formulas written out by hand
(reference-spec B.8), numbers computed on paper, and the free body model itself. Needs the free body
model (``make setup``); the real COCO samples are used when ``../shared/data/coco_samples`` exists.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import roma
import torch

from annot.body_models import BodyModel
from annot.data.fixtures.common import random_people
from annot.keypoints import KeypointConvention, get_convention
from estimators.hmr import (
    HMRModule,
    HMRNet,
    camera_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    load_spin_mean_params,
    mean_params_from_poses,
    resolve_mean_params,
    smpl_param_losses,
    upright_mean_params,
)

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
COCO_DIR = Path(os.environ.get("ANNOT_COCO_SAMPLES", REPO.parent / "shared/data/coco_samples"))
pytestmark = pytest.mark.skipif(not FREE.is_file(),
                                reason=f"free body model not baked at {FREE} (make setup)")

SIZE, FOCAL = 224, 5000.0
SMALL = 64  # crop side of the loss / training tests: any multiple of 32 works, and 64 keeps CPU time low
COCO = get_convention("coco17")
SMPL24 = get_convention("smpl24")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core test machine OpenMP spin-waiting made these tests
    5-10x slower under load (measured: 8 s with one thread vs 30-75 s with two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _module(**kw) -> HMRModule:
    torch.manual_seed(0)
    kw.setdefault("backbone_depth", 18)
    return HMRModule(body_model_path=str(FREE), **kw)


@pytest.fixture(scope="module")
def hmr() -> HMRModule:
    return _module().eval()


@pytest.fixture(scope="module")
def hmr_small() -> HMRModule:
    return _module(input_size=SMALL).eval()


def _synthetic_batch(body: BodyModel, num: int = 4, seed: int = 0,
                     size: int = SMALL) -> dict[str, torch.Tensor]:
    """Random images + consistent SMPL / COCO-17 targets in SPIN's camera (focal 5000, ``size`` crop)."""
    rng = np.random.default_rng(seed)
    people = random_people(num, seed)
    pose = torch.tensor(np.stack([p.pose_rotvec for p in people]), dtype=torch.float32)
    betas = torch.tensor(np.stack([p.betas for p in people]), dtype=torch.float32)
    scale = torch.tensor(rng.uniform(0.7, 1.0, num), dtype=torch.float32)
    transl = torch.stack([torch.tensor(rng.uniform(-0.1, 0.1, num), dtype=torch.float32),
                          torch.tensor(rng.uniform(-0.1, 0.1, num), dtype=torch.float32),
                          2 * FOCAL / (size * scale)], dim=1)
    with torch.no_grad():
        out = body(pose[:, 0], pose[:, 1:].reshape(num, -1), betas, transl)
        joints, _ = body.regress(out.vertices_m, "coco17")
    kp2d = joints[..., :2] / joints[..., 2:] * FOCAL + size / 2
    hips = joints[:, [COCO.index("L_Hip"), COCO.index("R_Hip")]].mean(1, keepdim=True)
    return {
        "img": torch.rand(num, 3, size, size, generator=torch.Generator().manual_seed(seed)),
        "kp2d_px": kp2d, "kp2d_mask": torch.ones(num, COCO.num_joints),
        "joints_cam_m": joints - hips, "joints_cam_mask": torch.ones(num, COCO.num_joints),
        "smpl_pose_rotvec": pose, "smpl_betas": betas, "smpl_transl_m": transl, "smpl_valid": torch.ones(num),
    }


def _zero_decoders(net: HMRNet) -> None:
    with torch.no_grad():
        for dec in (net.decpose, net.decshape, net.deccam):
            dec.weight.zero_()
            dec.bias.zero_()


# ----------------------------------------------------------------------------- network
def test_resnet50_shapes_at_224():
    torch.manual_seed(0)
    net = HMRNet(backbone_depth=50).eval()
    seen = {}
    net.backbone.register_forward_hook(lambda m, i, o: seen.__setitem__("layer4", tuple(o.shape)))
    with torch.no_grad():
        out = net(torch.randn(1, 3, SIZE, SIZE))
    assert seen["layer4"] == (1, 2048, 7, 7)
    assert out["features"].shape == (1, 2048)
    assert out["pose_6d"].shape == (1, 24, 6) and out["betas"].shape == (1, 10) and out["cam"].shape == (1, 3)
    assert (net.fc1.in_features, net.fc1.out_features) == (2048 + 144 + 10 + 3, 1024) == (2205, 1024)
    assert (net.fc2.in_features, net.fc2.out_features) == (1024, 1024)
    assert [d.out_features for d in (net.decpose, net.decshape, net.deccam)] == [144, 10, 3]
    assert net.drop1.p == net.drop2.p == 0.5
    assert tuple(net.init_pose.shape) == (1, 144) and tuple(net.init_shape.shape) == (1, 10)
    # xavier_uniform(gain=0.01): |w| <= 0.01 sqrt(6 / (fan_in + fan_out)), and the bound is nearly reached
    for dec in (net.decpose, net.decshape, net.deccam):
        bound = 0.01 * math.sqrt(6.0 / (dec.in_features + dec.out_features))
        assert bound * 0.9 < dec.weight.abs().max().item() <= bound


@pytest.mark.parametrize("n_iter", [1, 3])
def test_ief_loop_runs_n_iter_times_and_adds_residuals(n_iter):
    net = HMRNet(backbone_depth=18, n_iter=n_iter).eval()
    calls = []
    net.fc1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    _zero_decoders(net)
    features = torch.randn(2, net.feature_dim)          # the IEF part alone (the backbone is tested above)
    with torch.no_grad():
        pose, betas, cam = net.regress(features)
    assert len(calls) == n_iter and calls[0] == (2, 512 + 144 + 10 + 3)
    # zero decoders: the mean parameters come back unchanged
    assert torch.equal(pose, net.init_pose.expand(2, -1))
    assert torch.equal(betas, net.init_shape.expand(2, -1))
    assert torch.equal(cam, net.init_cam.expand(2, -1))
    # decoders that output a constant b: each iteration adds b once -> init + n_iter * b
    with torch.no_grad():
        net.deccam.bias.copy_(torch.tensor([0.01, -0.02, 0.03]))
        cam = net.regress(features)[2]
    expected = net.init_cam + n_iter * torch.tensor([0.01, -0.02, 0.03])
    torch.testing.assert_close(cam, expected.expand(2, -1))


def test_imagenet_normalisation_applied_once(hmr):
    captured = {}
    handle = hmr.net.backbone.register_forward_pre_hook(
        lambda m, args: captured.__setitem__("x", args[0].clone()))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    # sample 0 random, sample 1 every pixel equal to the ImageNet mean
    img = torch.cat([torch.rand(1, 3, SIZE, SIZE), mean.expand(1, 3, SIZE, SIZE)])
    try:
        with torch.no_grad():
            hmr(img)
    finally:
        handle.remove()
    torch.testing.assert_close(captured["x"], (img - mean) / std)
    assert captured["x"][1].abs().max() < 1e-6          # the mean image reaches the backbone as 0


def test_rejects_a_256x192_batch(hmr):
    with pytest.raises(ValueError, match=r"224x224.*256x192.*input_hw=\(224, 224\)"):
        hmr(torch.rand(1, 3, 256, 192))


def test_constructor_rejects_bad_settings():
    with pytest.raises(ValueError, match="multiple of 32"):
        HMRModule(body_model_path=str(FREE), input_size=100)
    with pytest.raises(ValueError, match="unknown keypoint convention 'no_such_convention'"):
        HMRModule(body_model_path=str(FREE), joints3d_convention="no_such_convention")
    no_hips = KeypointConvention("no_hips", ("Nose", "Neck"), ())
    with pytest.raises(ValueError, match="'no_hips' needs L_Hip and R_Hip"):
        HMRModule(body_model_path=str(FREE), joints3d_convention=no_hips)


def test_forward_contract_and_camera_by_hand():
    module = _module().eval()
    _zero_decoders(module.net)
    with torch.no_grad():
        module.net.init_cam.copy_(torch.tensor([[0.8, 0.1, -0.2]]))
        pred = module(torch.rand(1, 3, SIZE, SIZE))
    shapes = {k: tuple(v.shape) for k, v in pred.items()}
    v = module.body_model.num_vertices
    assert shapes == {"pose_rotvec": (1, 24, 3), "betas": (1, 10), "cam_trans_m": (1, 3),
                      "vertices_cam_m": (1, v, 3), "pred_cam": (1, 3), "pred_rotmat": (1, 24, 3, 3),
                      "pose_6d": (1, 24, 6)}
    # SPIN: t = [tx, ty, 2 * 5000 / (224 * s)] = [0.1, -0.2, 55.803571...]
    torch.testing.assert_close(pred["cam_trans_m"][0], torch.tensor([0.1, -0.2, 10000.0 / 179.2]))
    # rotvec agrees with the rotation matrices; the mesh is the body model's plus the translation
    torch.testing.assert_close(roma.rotvec_to_rotmat(pred["pose_rotvec"]), pred["pred_rotmat"],
                               atol=1e-5, rtol=0)
    with torch.no_grad():
        pose = pred["pose_rotvec"]
        body = module.body_model(pose[:, 0], pose[:, 1:].reshape(1, -1), pred["betas"])
    torch.testing.assert_close(pred["vertices_cam_m"], body.vertices_m + pred["cam_trans_m"][:, None])
    # a point at depth 0 (model frame) projects like the weak-perspective camera: s * (X + t_xy)
    point = torch.tensor([[[0.3, -0.5, 0.0]]])
    norm = module.project_normalised(point + pred["cam_trans_m"][:1, None])
    torch.testing.assert_close(norm, 0.8 * (point[..., :2] + torch.tensor([0.1, -0.2])))
    assert torch.equal(module.crop_px_to_normalised(torch.tensor([[112.0, 112.0], [224.0, 0.0]])),
                       torch.tensor([[0.0, 0.0], [1.0, -1.0]]))


# ----------------------------------------------------------------------------- losses
def test_camera_loss_by_hand():
    assert camera_loss(torch.tensor([0.1])).item() == pytest.approx(math.exp(-2.0))  # 0.135335
    assert camera_loss(torch.tensor([0.1, 0.0])).item() == pytest.approx((math.exp(-2.0) + 1.0) / 2)


def test_keypoint_2d_loss_by_hand():
    pred = torch.tensor([[[0.5, 0.0], [0.0, 0.0]]])
    gt = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    # conf (1, 0.5): (1 * 0.25 + 0.5 * (1 + 1)) / 4 elements = 1.25 / 4
    assert keypoint_2d_loss(pred, gt, torch.tensor([[1.0, 0.5]])).item() == pytest.approx(0.3125)


def test_keypoint_3d_loss_recentres_on_hips_by_hand():
    hips = (1, 2)
    gt = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]]])
    pred = gt.clone()
    pred[0, 0, 1] = 0.3                                  # one joint 0.3 m off along y
    conf = torch.ones(1, 3)
    expected = 0.3**2 / 9                                # mean over 3 joints x 3 coordinates
    assert keypoint_3d_loss(pred, gt, conf, hips).item() == pytest.approx(expected)
    assert keypoint_3d_loss(pred + 5.0, gt - 2.0, conf, hips).item() == pytest.approx(expected, rel=1e-5)
    conf_no_hip = torch.tensor([[1.0, 0.0, 1.0]])       # without both hips a sample does not take part
    assert keypoint_3d_loss(pred, gt, conf_no_hip, hips).item() == 0.0


def test_pose_loss_on_rotation_matrices_by_hand():
    pred_rotmat = torch.eye(3).expand(1, 24, 3, 3)
    gt = torch.zeros(1, 24, 3)
    gt[0, 5, 2] = math.pi / 2                           # 90 degrees about z: four entries differ by 1
    pose, betas = smpl_param_losses(pred_rotmat, torch.zeros(1, 10), gt, torch.full((1, 10), 2.0),
                                    torch.ones(1))
    assert pose.item() == pytest.approx(4.0 / (24 * 9), abs=1e-7)
    assert betas.item() == pytest.approx(4.0)


def test_total_is_spin_weighted_sum(hmr_small):
    hmr = hmr_small
    batch = _synthetic_batch(hmr.body_model, num=2)
    with torch.no_grad():
        terms = hmr.compute_losses(hmr(batch["img"]), batch)
    assert all(terms[k] > 0 for k in ("kp2d", "joints3d", "pose", "betas", "cam"))
    expected = 60.0 * (5 * terms["kp2d"] + 5 * terms["joints3d"] + terms["pose"] + 0.001 * terms["betas"]
                       + terms["cam"])
    torch.testing.assert_close(terms["total"], expected)


def test_each_loss_ignores_masked_samples(hmr_small):
    hmr = hmr_small
    batch = _synthetic_batch(hmr.body_model, num=3, seed=1)
    batch["kp2d_mask"][1] = 0.0
    batch["kp2d_mask"][0, :5] = 0.0
    batch["joints_cam_mask"][2] = 0.0
    batch["smpl_valid"][0] = 0.0
    with torch.no_grad():
        pred = hmr(batch["img"])
        base = hmr.compute_losses(pred, batch)
        garbage = {k: v.clone() for k, v in batch.items()}
        garbage["kp2d_px"][1] += 500.0
        garbage["kp2d_px"][0, :5] -= 300.0
        garbage["joints_cam_m"][2] += 3.0
        garbage["smpl_pose_rotvec"][0] = 1.0
        garbage["smpl_betas"][0] = 9.0
        after = hmr.compute_losses(pred, garbage)
        for name in ("kp2d", "joints3d", "pose", "betas", "total"):
            assert after[name].item() == pytest.approx(base[name].item(), rel=1e-6), name
        # the same change on a valid sample does change each term (the test can fail)
        valid = {k: v.clone() for k, v in batch.items()}
        valid["kp2d_px"][2] += 50.0
        valid["joints_cam_m"][1, 0] += 0.5
        valid["smpl_betas"][1] = 9.0
        changed = hmr.compute_losses(pred, valid)
    for name in ("kp2d", "joints3d", "betas"):
        assert changed[name].item() > base[name].item() * 1.01, name
    # no sample with SMPL / 3D: those terms are 0
    for key in ("joints_cam_mask", "smpl_valid"):
        batch[key] = torch.zeros_like(batch[key])
    with torch.no_grad():
        empty = hmr.compute_losses(pred, batch)
    assert empty["joints3d"].item() == empty["pose"].item() == empty["betas"].item() == 0.0


def test_wrong_joint_count_is_reported(hmr_small):
    hmr = hmr_small
    batch = _synthetic_batch(hmr.body_model, num=1)
    batch["kp2d_px"], batch["kp2d_mask"] = batch["kp2d_px"][:, :12], batch["kp2d_mask"][:, :12]
    with torch.no_grad(), pytest.raises(ValueError, match="kp2d_px.*12 joints.*coco17"):
        hmr.compute_losses(hmr(batch["img"]), batch)


# ----------------------------------------------------------------------------- training and checkpoints
def test_a_few_steps_reduce_the_loss():
    module = _module(input_size=SMALL).train()           # SPIN's Adam, lr 5e-5
    batch = _synthetic_batch(module.body_model, num=4, seed=2)
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["lr"] == 5e-5 and opt.defaults["weight_decay"] == 0.0
    losses = []
    for _ in range(6):
        opt.zero_grad()
        total = module.compute_losses(module(batch["img"]), batch)["total"]
        total.backward()
        opt.step()
        losses.append(total.item())
    assert np.isfinite(losses).all()
    # measured (4 seeds): ~12-20 at the start, ~3.3-5.1 after 5 steps
    assert np.mean(losses[-2:]) < 0.6 * np.mean(losses[:2]), losses


def test_default_hyperparameters_follow_spin():
    hp = HMRModule.__init__.__defaults__
    names = HMRModule.__init__.__code__.co_varnames[1:len(hp) + 1]
    defaults = dict(zip(names, hp))
    assert defaults["backbone_depth"] == 50 and defaults["input_size"] == 224 and defaults["n_iter"] == 3
    assert (defaults["lr"], defaults["weight_decay"]) == (5e-5, 0.0)
    assert (defaults["w_kp2d"], defaults["w_joints3d"], defaults["w_pose"], defaults["w_betas"],
            defaults["w_cam"], defaults["loss_scale"]) == (5.0, 5.0, 1.0, 0.001, 1.0, 60.0)


def test_checkpoint_from_trainer_loads_alone(tmp_path):
    module = _module(input_size=SMALL, val_set_names=("synthetic",))
    batches = [_synthetic_batch(module.body_model, num=2, seed=s) for s in range(3)]
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         num_sanity_val_steps=0, limit_val_batches=1)
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    # the inherited evaluation ran on HMR's output (mks0601 protocol, base class)
    logged = set(trainer.callback_metrics)
    assert {"val/synthetic/mpjpe_mm", "val/synthetic/pa_mpjpe_mm", "train/loss/total"} <= logged
    path = tmp_path / "hmr.ckpt"
    trainer.save_checkpoint(path)
    loaded = HMRModule.load_from_checkpoint(path).eval()
    module.eval()
    assert loaded.hparams.backbone_depth == 18 and loaded.input_size == SMALL
    img = torch.rand(2, 3, SMALL, SMALL)
    with torch.no_grad():
        a, b = module(img), loaded(img)
    for key in ("pose_rotvec", "betas", "cam_trans_m", "vertices_cam_m"):
        torch.testing.assert_close(a[key], b[key])
    assert not torch.equal(loaded.net.decpose.weight, HMRNet(18).decpose.weight)  # trained weights came back


# ----------------------------------------------------------------------------- mean parameters
def test_free_model_mean_params_give_an_upright_centred_person():
    mean = upright_mean_params()
    body = BodyModel.from_config("free", path=FREE)
    rotmat = roma.special_gramschmidt(torch.tensor(mean.pose_6d).reshape(24, 3, 2))  # view(-1, 3, 2) 6D
    pose_rotvec = roma.rotmat_to_rotvec(rotmat)
    cam = torch.tensor(mean.cam)
    transl = torch.cat([cam[1:], (2 * FOCAL / (SIZE * cam[0]))[None]])[None]
    with torch.no_grad():
        out = body(pose_rotvec[:1], pose_rotvec[1:].reshape(1, 69), torch.tensor(mean.betas)[None], transl)
    j = out.joints_smpl24_m[0]
    px = j[:, :2] / j[:, 2:] * FOCAL + SIZE / 2            # crop pixels, y down
    head, pelvis = px[SMPL24.index("Head")], px[SMPL24.index("Pelvis")]
    ankles = px[[SMPL24.index("L_Ankle"), SMPL24.index("R_Ankle")]]
    assert head[1] < pelvis[1] - 40 and (ankles[:, 1] > pelvis[1] + 60).all()
    assert abs(head[0] - pelvis[0]) < 2                 # upright, not tilted
    assert ((px > 0) & (px < SIZE)).all()               # the whole skeleton inside the crop
    # facing the camera: the subject's left shoulder appears on the image's right (x larger)
    assert px[SMPL24.index("L_Shoulder"), 0] > px[SMPL24.index("R_Shoulder"), 0]
    assert np.array_equal(mean.betas, np.zeros(10)) and np.allclose(mean.cam, [0.9, 0.0, 0.0])


def test_mean_params_from_poses_and_files(tmp_path):
    poses = np.zeros((2, 24, 3))
    poses[1, 3] = [0.0, 0.0, math.pi / 2]               # joint 3: identity and 90 degrees about z
    mean = mean_params_from_poses(poses, betas=np.array([[1.0] * 10, [3.0] * 10]))
    # 6D = [R00, R01, R10, R11, R20, R21]; Rz(90) = [[0,-1,0],[1,0,0],[0,0,1]] -> (0,-1,1,0,0,0)
    np.testing.assert_allclose(mean.pose_6d[3], [0.5, -0.5, 0.5, 0.5, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(mean.pose_6d[0], [1, 0, 0, 1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(mean.betas, 2.0)
    np.savez(tmp_path / "poses.npz", pose_rotvec=poses.reshape(2, 72))
    np.testing.assert_allclose(resolve_mean_params(tmp_path / "poses.npz").pose_6d, mean.pose_6d, atol=1e-6)
    spin_like = {"pose": np.arange(144, dtype=np.float64) / 144, "shape": np.full(10, 0.1),
                 "cam": [0.9, 0, 0]}
    np.savez(tmp_path / "smpl_mean_params.npz", **spin_like)
    loaded = resolve_mean_params(tmp_path / "smpl_mean_params.npz")
    np.testing.assert_allclose(loaded.pose_6d.reshape(-1), spin_like["pose"], rtol=1e-6)
    module = _module(mean_params_path=str(tmp_path / "smpl_mean_params.npz"))
    np.testing.assert_allclose(module.net.init_pose.numpy()[0], spin_like["pose"], rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="SPIN"):
        load_spin_mean_params(tmp_path / "absent.npz")
    np.savez(tmp_path / "bad.npz", something=np.zeros(3))
    with pytest.raises(ValueError, match="bad.npz.*pose"):
        resolve_mean_params(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", pose=np.zeros(72), shape=np.zeros(10), cam=np.zeros(3))
    with pytest.raises(ValueError, match="short.npz.*'pose'.*144"):
        resolve_mean_params(tmp_path / "short.npz")


# ----------------------------------------------------------------------------- real COCO crops at 224
@pytest.mark.skipif(not (COCO_DIR / "test_coco.json").is_file(),
                    reason=f"COCO samples not found at {COCO_DIR}")
def test_real_coco_crops_at_224(hmr):
    from annot.data import COCOKeypoints

    ds = COCOKeypoints(COCO_DIR, "test_coco.json", input_hw=(SIZE, SIZE))
    batch = torch.utils.data.default_collate([ds[i] for i in range(2)])
    assert batch["img"].shape == (2, 3, SIZE, SIZE)
    norm = hmr.crop_px_to_normalised(batch["kp2d_px"])[batch["kp2d_mask"] > 0]
    assert norm.abs().max() <= 1.0                      # visible keypoints lie inside [-1, 1]
    with torch.no_grad():
        terms = hmr.compute_losses(hmr(batch["img"]), batch)
    assert torch.isfinite(terms["total"]) and terms["kp2d"] > 0
    with pytest.raises(ValueError, match="224x224"):
        hmr(torch.utils.data.default_collate([COCOKeypoints(COCO_DIR, "test_coco.json")[0]])["img"])
