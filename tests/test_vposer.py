"""VPoser v2 (V02_05 layout) network, loader and the free prior training (annot.priors).

The official checkpoint layout is rebuilt here from reference-spec.md C.3, independently of
``annot.priors.vposer``: a hand-written table of V02_05 keys and shapes, random weights, the
Lightning-style wrapper (``state_dict`` with ``vp_model.`` prefix plus body-model buffers ``bm.*``)
under ``<tmp>/V02_05/snapshots/V02_05_epoch=13_val_loss=0.03.ckpt`` and ``V02_05.yaml``. Forward
passes are compared with a second implementation written with plain tensor ops (LeakyReLU slope
0.01, BatchNorm in eval mode, Gram-Schmidt on ``view(-1, 3, 2)`` columns) and scipy's rotvec.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from annot.geometry.rotations import rotvec_to_rotmat
from annot.priors import VPoser, geodesic_deg, load_body_poses_npz, load_vposer

REPO = Path(__file__).resolve().parents[1]
CKPT_NAME = "V02_05_epoch=13_val_loss=0.03.ckpt"
YAML_TEXT = """\
general:
  expr_id: V02_05
model_params:
  num_neurons: {n}
  latentD: {d}
train_parms:
  batch_size: 128
"""


def v02_05_shapes(n: int = 512, d: int = 32, j: int = 21) -> dict[str, tuple[int, ...]]:
    """The V02_05 VPoser state-dict keys (no ``vp_model.`` prefix) and shapes, from spec C.3."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(name: str, c: int) -> None:
        shapes.update({f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),
                       f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()})

    def linear(name: str, c_in: int, c_out: int) -> None:
        shapes.update({f"{name}.weight": (c_out, c_in), f"{name}.bias": (c_out,)})

    bn("encoder_net.1", 3 * j)
    linear("encoder_net.2", 3 * j, n)
    bn("encoder_net.4", n)
    linear("encoder_net.6", n, n)
    linear("encoder_net.7", n, n)
    linear("encoder_net.8.mu", n, d)
    linear("encoder_net.8.logvar", n, d)
    linear("decoder_net.0", d, n)
    linear("decoder_net.3", n, n)
    linear("decoder_net.5", n, 6 * j)
    return shapes


def random_weights(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but sane weights: Linear ~ N(0, 1/fan_in), BN affine/stats around 1 / 0."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1234, dtype=torch.long)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=gen)
        elif len(shape) == 2:
            out[key] = torch.randn(shape, generator=gen) / shape[1] ** 0.5
        else:
            out[key] = 0.3 * torch.randn(shape, generator=gen) + (1.0 if key.endswith(".weight") else 0.0)
    return out


def write_official(root: Path, weights: dict[str, torch.Tensor], n: int = 512, d: int = 32,
                   yaml: bool = True, name: str = CKPT_NAME) -> Path:
    """Write a V02_05-style experiment folder; returns the .ckpt path."""
    snap = root / "snapshots"
    snap.mkdir(parents=True, exist_ok=True)
    state = {f"vp_model.{k}": v for k, v in weights.items()}
    state["bm.init_pose"] = torch.zeros(1, 63)
    state["bm.shapedirs"] = torch.randn(10, 3, 10)
    torch.save({"epoch": 13, "global_step": 999, "pytorch-lightning_version": "1.2.1",
                "state_dict": state}, snap / name)
    if yaml:
        (root / "V02_05.yaml").write_text(YAML_TEXT.format(n=n, d=d))
    return snap / name


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("vposer") / "V02_05"
    weights = random_weights(v02_05_shapes())
    write_official(root, weights)
    return root, weights


# ------------------------------------------------------------------ reference maths (independent)

def ref_encode(w: dict[str, torch.Tensor], pose_rotvec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    def bn(x: torch.Tensor, p: str) -> torch.Tensor:
        x_hat = (x - w[f"{p}.running_mean"]) / torch.sqrt(w[f"{p}.running_var"] + 1e-5)
        return x_hat * w[f"{p}.weight"] + w[f"{p}.bias"]

    def lin(x: torch.Tensor, p: str) -> torch.Tensor:
        return x @ w[f"{p}.weight"].T + w[f"{p}.bias"]

    h = bn(pose_rotvec.reshape(len(pose_rotvec), -1), "encoder_net.1")
    h = lin(h, "encoder_net.2")
    h = torch.where(h > 0, h, 0.01 * h)
    h = bn(h, "encoder_net.4")
    h = lin(lin(h, "encoder_net.6"), "encoder_net.7")
    return lin(h, "encoder_net.8.mu"), F.softplus(lin(h, "encoder_net.8.logvar"))


def ref_decode_rotmat(w: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    def lin(x: torch.Tensor, p: str) -> torch.Tensor:
        return x @ w[f"{p}.weight"].T + w[f"{p}.bias"]

    h = lin(z, "decoder_net.0")
    h = torch.where(h > 0, h, 0.01 * h)
    h = lin(h, "decoder_net.3")
    h = torch.where(h > 0, h, 0.01 * h)
    m = lin(h, "decoder_net.5").reshape(-1, 3, 2)
    b1 = m[:, :, 0] / m[:, :, 0].norm(dim=1, keepdim=True)
    a2 = m[:, :, 1]
    b2 = a2 - (b1 * a2).sum(1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=1, keepdim=True)
    b3 = torch.linalg.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=-1).reshape(len(z), -1, 3, 3)


# ------------------------------------------------------------------ layout and loading

def test_state_dict_layout_is_v02_05() -> None:
    got = {k: tuple(v.shape) for k, v in VPoser().state_dict().items()}
    assert got == v02_05_shapes()
    assert sum(p.numel() for p in VPoser().parameters()) == sum(
        int(np.prod(s)) for k, s in v02_05_shapes().items() if "running" not in k and "num_batches" not in k)


def test_official_folder_loads_weights_key_by_key(official) -> None:
    root, weights = official
    model = load_vposer(root)
    state = model.state_dict()
    assert set(state) == set(weights)
    for key, value in weights.items():
        assert torch.equal(state[key], value), key
    assert state["decoder_net.5.weight"].shape == (126, 512)
    assert torch.equal(model.decoder_net[5].weight, weights["decoder_net.5.weight"])
    assert torch.equal(model.encoder_net[8].logvar.bias, weights["encoder_net.8.logvar.bias"])
    report = model.load_report
    assert report.ignored == ["bm.init_pose", "bm.shapedirs"]
    assert report.checkpoint.endswith(CKPT_NAME) and report.sizes_from == "yaml"
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_loaded_model_matches_reference_maths(official) -> None:
    root, weights = official
    model = load_vposer(root / "snapshots" / CKPT_NAME)  # the file itself works too
    gen = torch.Generator().manual_seed(1)
    pose = 0.4 * torch.randn(5, 21, 3, generator=gen)
    z = torch.randn(5, 32, generator=gen)
    mu_ref, sigma_ref = ref_encode(weights, pose)
    with torch.no_grad():
        q = model.encode(pose)
        q_flat = model.encode(pose.reshape(5, 63))
        out = model.decode(z)
    torch.testing.assert_close(q.loc, mu_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(q.scale, sigma_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(q_flat.loc, q.loc)
    rotmat_ref = ref_decode_rotmat(weights, z)
    torch.testing.assert_close(out["pose_body_matrot"], rotmat_ref.reshape(5, 21, 9), atol=1e-5, rtol=1e-5)
    rotvec_ref = Rotation.from_matrix(rotmat_ref.reshape(-1, 3, 3).double().numpy()).as_rotvec()
    np.testing.assert_allclose(out["pose_body"].reshape(-1, 3).numpy(), rotvec_ref, atol=1e-4)


def test_newest_snapshot_by_mtime(tmp_path: Path) -> None:
    root = tmp_path / "V02_05"
    old, new = random_weights(v02_05_shapes(), seed=1), random_weights(v02_05_shapes(), seed=2)
    write_official(root, new, name="V02_05_epoch=13_val_loss=0.03.ckpt")
    write_official(root, old, name="V02_05_epoch=99_val_loss=0.01.ckpt")  # later name, older mtime
    os.utime(root / "snapshots" / "V02_05_epoch=99_val_loss=0.01.ckpt", (1e9, 1e9))
    model = load_vposer(root)
    assert torch.equal(model.decoder_net[3].weight, new["decoder_net.3.weight"])


def test_sizes_from_yaml_and_defaults(tmp_path: Path) -> None:
    small = random_weights(v02_05_shapes(n=64, d=16))
    write_official(tmp_path / "small", small, n=64, d=16)
    model = load_vposer(tmp_path / "small")
    assert (model.num_neurons, model.latent_dim) == (64, 16)
    assert model.decode(torch.zeros(2, 16))["pose_body"].shape == (2, 21, 3)
    write_official(tmp_path / "noyaml", random_weights(v02_05_shapes()), yaml=False)
    assert load_vposer(tmp_path / "noyaml").load_report.sizes_from == "defaults"


@pytest.mark.parametrize("key, change", [("decoder_net.3.bias", "drop"), ("encoder_net.8.mu.weight", "drop"),
                                         ("decoder_net.5.weight", "shape")])
def test_missing_or_mismatched_key_raises(tmp_path: Path, key: str, change: str) -> None:
    weights = random_weights(v02_05_shapes())
    if change == "drop":
        del weights[key]
    else:
        weights[key] = torch.zeros(120, 512)
    write_official(tmp_path / "V02_05", weights)
    with pytest.raises(ValueError) as err:
        load_vposer(tmp_path / "V02_05")
    assert key in str(err.value) and CKPT_NAME in str(err.value)
    if change == "shape":
        assert "(120, 512)" in str(err.value) and "(126, 512)" in str(err.value)


def test_missing_path_and_empty_folder_raise(tmp_path: Path) -> None:
    for path in (tmp_path / "nowhere" / "V02_05", tmp_path):
        with pytest.raises(FileNotFoundError) as err:
            load_vposer(path)
        text = str(err.value)
        assert str(path) in text and "smpl-x.is.tue.mpg.de" in text and "make train-prior" in text


def test_vposer_v1_snapshot_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "snapshots" / "TR00_E096.pt"
    path.parent.mkdir()
    torch.save({"bodyprior_enc_fc1.weight": torch.zeros(512, 63)}, path)
    with pytest.raises(ValueError, match="v1"):
        load_vposer(path)


# ------------------------------------------------------------------ decode behaviour

def test_decode_shapes_and_valid_rotations() -> None:
    torch.manual_seed(0)
    model = VPoser().eval()
    with torch.no_grad():
        out = model.decode(3.0 * torch.randn(64, 32))
    assert out["pose_body"].shape == (64, 21, 3) and out["pose_body_matrot"].shape == (64, 21, 9)
    rotmat = out["pose_body_matrot"].reshape(-1, 3, 3).double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(rotmat)
    torch.testing.assert_close(torch.linalg.det(rotmat), torch.ones(len(rotmat), dtype=torch.float64),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(rotmat.transpose(1, 2) @ rotmat, eye, atol=1e-5, rtol=0)
    angles = out["pose_body"].norm(dim=-1)
    assert float(angles.max()) <= np.pi + 1e-5
    torch.testing.assert_close(rotvec_to_rotmat(out["pose_body"]).reshape(64, 21, 9), out["pose_body_matrot"],
                               atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"\(B, 32\)"):
        model.decode(torch.zeros(2, 31))
    with pytest.raises(ValueError, match=r"\(B, 21, 3\)"):
        model.encode(torch.zeros(2, 22, 3))


def test_decode_zero_is_decode_of_prior_mean_and_batch_independent() -> None:
    torch.manual_seed(0)
    model = VPoser().eval()
    prior = torch.distributions.Normal(torch.zeros(1, 32), torch.ones(1, 32))
    batch = torch.cat([torch.randn(3, 32), torch.zeros(1, 32), torch.randn(4, 32)])
    with torch.no_grad():
        zero = model.decode(torch.zeros(1, 32))["pose_body_matrot"]
        mean = model.decode(prior.mean)["pose_body_matrot"]
        in_batch = model.decode(batch)["pose_body_matrot"][3:4]
        again = model.decode(torch.zeros(1, 32))["pose_body_matrot"]
    torch.testing.assert_close(zero, mean)
    torch.testing.assert_close(zero, in_batch, atol=1e-5, rtol=0)  # batched matmul rounding
    assert torch.equal(zero, again)  # eval mode: dropout off, deterministic
    model.train()
    with torch.no_grad():
        assert not torch.equal(model.decode(torch.zeros(1, 32))["pose_body_matrot"], zero)  # dropout active


# ------------------------------------------------------------------ npz poses

def test_load_body_poses_npz_keys(tmp_path: Path) -> None:
    body = np.random.default_rng(0).normal(size=(5, 21, 3)).astype(np.float32)
    full = np.concatenate([np.ones((5, 3)), body.reshape(5, 63), np.full((5, 6), 7.0)], axis=1)  # SMPL 72
    amass = np.concatenate([full[:, :66], np.full((5, 90), 9.0)], axis=1)  # SMPL+H 156
    cases = {"pose_body": body.reshape(5, 63), "body_pose": full[:, 3:], "poses": full}
    for i, (key, arr) in enumerate({**cases, "amass": amass}.items()):
        path = tmp_path / f"{i}.npz"
        np.savez(path, **{("poses" if key == "amass" else key): arr, "betas": np.zeros((5, 10))})
        np.testing.assert_array_equal(load_body_poses_npz(path), body)
    np.savez(tmp_path / "bad.npz", pose=body)
    with pytest.raises(ValueError, match="pose_body"):
        load_body_poses_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", poses=np.zeros((5, 60)))
    with pytest.raises(ValueError, match="short.npz"):
        load_body_poses_npz(tmp_path / "short.npz")
    with pytest.raises(FileNotFoundError):
        load_body_poses_npz(tmp_path / "none.npz")


# ------------------------------------------------------------------ training (through the CLI)

def synthetic_poses(num: int, sample_seed: int = 1) -> np.ndarray:
    """(num, 21, 3) body poses (radians) on a fixed 4-D linear manifold around a non-zero mean pose;
    ``sample_seed`` draws the 4-D coordinates (training set: 1, held-out set: 2)."""
    rng = np.random.default_rng(0)
    basis, mean_pose = rng.normal(0.0, 0.15, (63, 4)), rng.normal(0.0, 0.2, 63)
    coords = np.random.default_rng(sample_seed).normal(size=(num, 4))
    return (coords @ basis.T + mean_pose).reshape(num, 21, 3).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    out = tmp_path_factory.mktemp("prior") / "vposer_free"
    poses = synthetic_poses(1024)
    smpl72 = np.concatenate([np.zeros((1024, 3)), poses.reshape(1024, 63), np.zeros((1024, 6))], axis=1)
    np.savez(out.parent / "poses.npz", poses=smpl72)
    spec = importlib.util.spec_from_file_location("train_prior_cli", REPO / "tools" / "train_prior.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    rc = cli.main(["--poses", str(out.parent / "poses.npz"), "--out", str(out), "--max-epochs", "6",
                   "--batch-size", "64", "--num-neurons", "128", "--accelerator", "cpu"])
    assert rc == 0
    return out, poses


def _rec_error_deg(model: VPoser, poses: np.ndarray) -> float:
    x = torch.from_numpy(poses)
    with torch.no_grad():
        rotmat = model.decode(model.encode(x).mean)["pose_body_matrot"].reshape(-1, 21, 3, 3)
    return float(geodesic_deg(rotmat, rotvec_to_rotmat(x)).mean())


def test_trained_prior_reconstructs_better_than_untrained(trained) -> None:
    out, poses = trained
    ckpts = sorted((out / "snapshots").glob("*.ckpt"))
    assert len(ckpts) == 1 and (out / "vposer_prior.yaml").is_file()
    model = load_vposer(out)
    assert (model.num_neurons, model.latent_dim) == (128, 32) and model.load_report.ignored == []
    torch.manual_seed(0)
    untrained = VPoser(num_neurons=128).eval()
    test_poses = synthetic_poses(256, sample_seed=2)  # held out, close to the training distribution
    err_trained, err_untrained = _rec_error_deg(model, test_poses), _rec_error_deg(untrained, test_poses)
    print(f"\nreconstruction geodesic error: trained {err_trained:.2f} deg, "
          f"untrained {err_untrained:.2f} deg")
    assert err_trained < 0.25 * err_untrained and err_trained < 15.0
    reloaded = load_vposer(ckpts[0])
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values()))


def test_trained_prior_samples_stay_in_training_ranges(trained) -> None:
    out, poses = trained
    model = load_vposer(out)
    torch.manual_seed(0)
    untrained = VPoser(num_neurons=128).eval()
    with torch.no_grad():
        z_sq = float((model.encode(torch.from_numpy(poses)).mean ** 2).sum(1).mean())
        z = torch.randn(1000, 32)
        angles = model.decode(z)["pose_body"].norm(dim=-1).numpy()
        angles_untrained = untrained.decode(z)["pose_body"].norm(dim=-1).numpy()
    max_angle = np.linalg.norm(poses, axis=-1).max(axis=0) + 0.1  # per joint, radians
    inside, inside_untrained = (angles <= max_angle).mean(), (angles_untrained <= max_angle).mean()
    print(f"\nmean |z|^2 of training poses {z_sq:.1f} (latent_dim 32); samples within training joint-angle "
          f"ranges: trained {inside:.3f}, untrained {inside_untrained:.3f}")
    assert inside >= 0.98 and inside_untrained < 0.8
    assert np.isfinite(z_sq) and z_sq < 32  # posterior means in the prior's typical set


def test_checkpoint_with_pickled_hyper_parameters_loads(tmp_path: Path) -> None:
    """Official Lightning files may pickle config objects next to the tensors (weights_only fallback)."""
    from omegaconf import OmegaConf

    weights = random_weights(v02_05_shapes())
    ckpt = write_official(tmp_path / "V02_05", weights, yaml=False)
    blob = torch.load(ckpt, weights_only=True)
    blob["hyper_parameters"] = OmegaConf.create({"model_params": {"latentD": 32}})
    torch.save(blob, ckpt)
    model = load_vposer(ckpt)
    assert torch.equal(model.encoder_net[2].weight, weights["encoder_net.2.weight"])


def test_frozen_decoder_passes_gradients_to_z(official) -> None:
    model = load_vposer(official[0])
    z = torch.zeros(4, 32, requires_grad=True)
    out = model.decode(z)
    (out["pose_body"].square().sum() + out["pose_body_matrot"].sum()).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
