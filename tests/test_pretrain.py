"""Tests for annot.nets.pose_resnet and annot.pretrain (the free SimpleBaseline backbone, second recipe).

References, independent of the implementation:

* key names and shapes from reference-spec E (SimpleBaseline ``pose_resnet`` checkpoints):
  ``deconv_layers.{0,3,6}.weight`` [in, 256, 4, 4], ``deconv_layers.{1,4,7}`` BN(256),
  ``final_layer.{weight [17, 256, 1, 1], bias [17]}``, backbone keys = torchvision's;
* parameter count of pose_resnet_50: Xiao et al. 2018, Table 1 (34.0M), and exactly
  23,508,032 (torchvision ResNet-50 without fc) + 2048*256*16 + 2 * 256*256*16 + 3 * 512 (BN)
  + 256*17 + 17 = 33,999,697;
* Gaussian targets / argmax decoding: values computed by hand below.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from annot.nets import ResNetBackbone, load_backbone_weights
from annot.nets.pose_resnet import PoseResNet
from annot.pretrain import (
    DEFAULT_CHECKPOINT,
    DEFAULT_CONFIG,
    PretrainConfig,
    checkpoint_name,
    decode_heatmaps,
    ensure_pretrained_backbone,
    gaussian_heatmaps,
    joints_mse_loss,
    load_pretrain_config,
    pck,
    write_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(autouse=True)
def _threads():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------- names
@pytest.mark.parametrize("depth, in_ch", [(18, 512), (50, 2048)])
def test_state_dict_has_pose_resnet_names(depth, in_ch):
    net = PoseResNet(depth)
    sd = net.state_dict()
    head = {"deconv_layers.0.weight": (in_ch, 256, 4, 4), "deconv_layers.3.weight": (256, 256, 4, 4),
            "deconv_layers.6.weight": (256, 256, 4, 4), "final_layer.weight": (17, 256, 1, 1),
            "final_layer.bias": (17,)}
    for i in (1, 4, 7):
        head.update({f"deconv_layers.{i}.{k}": (256,) for k in BN[:4]})
        head[f"deconv_layers.{i}.num_batches_tracked"] = ()
    backbone = ResNetBackbone(depth).state_dict()
    assert set(sd) == set(backbone) | set(head)  # nothing else, no "module." / "backbone." prefix
    for key, shape in head.items():
        assert tuple(sd[key].shape) == shape, key
    for key, value in backbone.items():
        assert sd[key].shape == value.shape, key
    assert not any(k.startswith(("module.", "backbone.")) for k in sd)
    assert set(net.backbone_state_dict()) == set(backbone)


def test_pose_resnet_50_parameter_count_and_shapes():
    net = PoseResNet(50)
    assert sum(p.numel() for p in net.parameters()) == 33_999_697  # 34.0M, Xiao et al. 2018 Table 1
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 17, 16, 16)
    with pytest.raises(ValueError, match="unsupported depth"):
        PoseResNet(20)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(3, 64, 64))


# ------------------------------------------------------------------------------------ heatmaps
def test_gaussian_heatmaps_hand_computed():
    # x = 21 px, y = 10 px at stride 4: mu = (floor(5.25 + 0.5), floor(2.5 + 0.5)) = (5, 3).
    kp = torch.tensor([[[21.0, 10.0], [21.0, 10.0], [-40.0, 8.0], [4.0 * 30, 4.0]]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    heatmaps, weight = gaussian_heatmaps(kp, mask, (16, 12), stride=4, sigma=2.0)
    assert heatmaps.shape == (1, 4, 16, 12)
    assert weight.tolist() == [[1.0, 0.0, 0.0, 0.0]]  # masked; mu_x=-10: -10+6+1 < 0; mu_x=30: 30-6 >= 12
    hm = heatmaps[0, 0]
    assert hm[3, 5] == 1.0 and hm.max() == 1.0
    assert hm[3, 6] == pytest.approx(math.exp(-1 / 8), abs=1e-7)
    assert hm[5, 4] == pytest.approx(math.exp(-5 / 8), abs=1e-7)
    assert hm[9, 11] == pytest.approx(math.exp(-72 / 8), abs=1e-9)  # |dx| = |dy| = 6 = 3 sigma: inside
    assert hm[10, 5] == 0.0  # |dy| = 7 > 3 sigma
    assert heatmaps[0, 1:].abs().sum() == 0.0  # zero-weight keypoints get no target
    assert mask.tolist() == [[1.0, 0.0, 1.0, 1.0]]  # input untouched


def test_decode_heatmaps_hand_computed():
    hm = torch.zeros(1, 3, 8, 10)
    hm[0, 0, 5, 7], hm[0, 0, 5, 8], hm[0, 0, 5, 6] = 1.0, 0.5, 0.2  # right neighbour higher: +0.25 in x
    hm[0, 0, 4, 7] = hm[0, 0, 6, 7] = 0.3  # equal vertical neighbours: no y shift
    hm[0, 1, 2, 0], hm[0, 1, 2, 1] = 1.0, 0.9  # at the border u = 0: no x shift
    hm[0, 1, 3, 0] = 0.5  # lower neighbour higher: +0.25 in y
    hm[0, 2, 7, 4], hm[0, 2, 6, 4] = 2.0, 1.0  # at the border v = h - 1: no y shift
    kp, maxvals = decode_heatmaps(hm, stride=4)
    assert kp[0].tolist() == [[29.0, 20.0], [0.0, 9.0], [16.0, 28.0]]
    assert maxvals[0].tolist() == [1.0, 1.0, 2.0]


def test_targets_decode_to_their_centre():
    gen = torch.Generator().manual_seed(3)
    kp = torch.rand(2, 17, 2, generator=gen) * torch.tensor([95.0, 127.0])
    heatmaps, weight = gaussian_heatmaps(kp, torch.ones(2, 17), (32, 24), stride=4, sigma=1.0)
    decoded, _ = decode_heatmaps(heatmaps, stride=4)
    assert torch.equal(decoded, torch.floor(kp / 4 + 0.5) * 4)  # symmetric peak: no quarter shift
    assert weight.all()
    assert joints_mse_loss(heatmaps, heatmaps, weight) == 0.0
    assert joints_mse_loss(torch.zeros_like(heatmaps), heatmaps, torch.zeros_like(weight)) == 0.0


def test_pck_torso_threshold():
    gt = torch.zeros(1, 17, 2)
    gt[0, 5] = torch.tensor([0.0, 0.0])  # L_Shoulder
    gt[0, 12] = torch.tensor([30.0, 40.0])  # R_Hip: torso diameter 50 px
    pred = gt.clone()
    pred[0, 0] += torch.tensor([25.0, 0.0])  # exactly 0.5 * 50: correct
    pred[0, 1] += torch.tensor([0.0, 25.1])  # just beyond: wrong
    mask = torch.ones(1, 17)
    mask[0, 2] = 0
    correct, counted = pck(pred, gt, mask, alpha=0.5)
    assert counted.sum() == 16 and not counted[0, 2]
    assert correct[0, 0] and not correct[0, 1] and correct.sum() == 15
    mask[0, 12] = 0  # no torso: the person is not counted
    assert pck(pred, gt, mask, 0.5)[1].sum() == 0


# ------------------------------------------------------------------------------- checkpoint / API
def test_checkpoint_loads_through_annotator_backbone_weights(tmp_path, caplog):
    from annot.annotator.module import AnnotatorModule

    net = PoseResNet(18)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.01)
    provenance = {"data": "test", "steps": 0, "torch": torch.__version__}  # a TorchVersion, not a str
    path = write_checkpoint(tmp_path / checkpoint_name(18), net, provenance)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["provenance"] == {"data": "test", "steps": 0, "torch": str(torch.__version__)}
    module = AnnotatorModule(mode="itw", backbone_depth=18, backbone_weights=str(path), hidden_dim=32)
    got = module.net.backbone.state_dict()
    for key, value in net.backbone_state_dict().items():
        assert torch.equal(got[key], value), key
    report = load_backbone_weights(ResNetBackbone(18), path)
    assert not report.missing and len(report.loaded) == len(ResNetBackbone(18).state_dict())
    assert {k.split(".")[0] for k in report.unused} == {"deconv_layers", "final_layer"}
    with pytest.raises(TypeError):
        write_checkpoint(tmp_path / "bad.pth", net, {"x": object()})


def test_config_yaml_matches_defaults_and_overrides():
    from dataclasses import asdict

    assert load_pretrain_config(REPO / DEFAULT_CONFIG) == PretrainConfig()
    with open(REPO / DEFAULT_CONFIG) as handle:
        assert set(yaml.safe_load(handle)) == set(asdict(PretrainConfig()))
    cfg = load_pretrain_config(None, ["depth=50", "input_hw=[256,192]", "train.steps=7"])
    assert (cfg.depth, cfg.input_hw, cfg.train.steps) == (50, (256, 192), 7)
    with pytest.raises(ValueError, match="nope"):
        load_pretrain_config(None, ["train.nope=1"])
    with pytest.raises(ValueError, match="multiples of 32"):
        load_pretrain_config(None, ["input_hw=[100,96]"])
    with pytest.raises(ValueError, match="must differ"):
        load_pretrain_config(None, ["synthetic.heldout_seed=1000"])
    assert DEFAULT_CHECKPOINT == "outputs/pretrain-backbone/" + checkpoint_name(18)
    cfg = PretrainConfig()
    assert cfg.synthetic.train_seed >= 1000 and cfg.synthetic.heldout_seed >= 1000  # never a benchmark seed


def test_ensure_returns_an_existing_checkpoint_untouched(tmp_path):
    path = tmp_path / checkpoint_name(34)
    path.write_bytes(b"existing")
    assert ensure_pretrained_backbone(34, tmp_path) == path
    assert path.read_bytes() == b"existing"


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_pretrain_end_to_end_tiny(tmp_path):
    """Renders 6 + 3 synthetic images, trains 4 steps, writes a loadable checkpoint, figure and json."""
    from annot.pretrain import pretrain_backbone

    cfg = load_pretrain_config(None, [f"out_dir={tmp_path}", "synthetic.train_images=6",
                                      "synthetic.heldout_images=3", "synthetic.cmu_frames=24",
                                      "synthetic.cmu_fit_iters=20", "coco.repeat=1", "train.steps=4",
                                      "train.batch_size=4", "figure_images=3"])
    result = pretrain_backbone(cfg, progress=False)
    path = Path(result["checkpoint"])
    assert path == tmp_path / checkpoint_name(18) and Path(result["figure"]).is_file()
    saved = torch.load(path, map_location="cpu", weights_only=True)
    prov = saved["provenance"]
    assert prov["steps"] == 4 and prov["data"]["synthetic"]["train_seed"] == 1000
    assert prov["data"]["coco_samples"]["people"] == 12
    assert 0.0 <= prov["pck"]["value"] <= 1.0 and prov["pck"]["keypoints"] > 0
    report = load_backbone_weights(ResNetBackbone(18), path)
    assert not report.missing_weights
    assert ensure_pretrained_backbone(18, tmp_path) == path
