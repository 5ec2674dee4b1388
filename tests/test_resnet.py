"""Tests for annot.nets.resnet against torchvision's published layout and parameter counts.

The expected key list is generated here from the torchvision layout (block counts, per-block module
names, BN buffers), independently of the implementation. Parameter totals are torchvision's
documented numbers (``resnet18``: 11,689,512; ``resnet34``: 21,797,672; ``resnet50``: 25,557,032;
``resnet101``: 44,549,160; ``resnet152``: 60,192,808) minus the 1000-way fc layer
(512*1000+1000 = 513,000 or 2048*1000+1000 = 2,049,000).
"""
from __future__ import annotations

import logging
from collections import OrderedDict

import pytest
import torch

from annot.nets import BackboneLoadReport, ResNetBackbone, load_backbone_weights

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str) -> list[str]:
    return [f"{prefix}.{k}" for k in BN_KEYS]


def expected_torchvision_keys(block_counts: list[int], bottleneck: bool) -> set[str]:
    """torchvision ResNet state_dict keys without fc, written from the documented layout."""
    keys = ["conv1.weight", *_bn("bn1")]
    n_convs = 3 if bottleneck else 2
    for layer_idx, count in enumerate(block_counts, start=1):
        for block in range(count):
            p = f"layer{layer_idx}.{block}"
            for c in range(1, n_convs + 1):
                keys += [f"{p}.conv{c}.weight", *_bn(f"{p}.bn{c}")]
            # basic-block ResNets have no projection in layer1 (64 -> 64, stride 1)
            if block == 0 and (bottleneck or layer_idx > 1):
                keys += [f"{p}.downsample.0.weight", *_bn(f"{p}.downsample.1")]
    return set(keys)


def test_resnet50_keys_match_torchvision_without_fc():
    keys = set(ResNetBackbone(50).state_dict())
    expected = expected_torchvision_keys([3, 4, 6, 3], bottleneck=True)
    assert keys == expected
    assert len(expected) == 320 - 2  # torchvision resnet50 has 320 keys including fc.weight/fc.bias


def test_resnet18_keys_match_torchvision_without_fc():
    assert set(ResNetBackbone(18).state_dict()) == expected_torchvision_keys([2, 2, 2, 2], bottleneck=False)


@pytest.mark.parametrize(
    "depth, tv_total, fc_params, out_channels",
    [
        (18, 11_689_512, 513_000, 512),
        (34, 21_797_672, 513_000, 512),
        (50, 25_557_032, 2_049_000, 2048),
        (101, 44_549_160, 2_049_000, 2048),
        (152, 60_192_808, 2_049_000, 2048),
    ],
)
def test_parameter_counts(depth, tv_total, fc_params, out_channels):
    net = ResNetBackbone(depth)
    assert fc_params == out_channels * 1000 + 1000
    assert sum(p.numel() for p in net.parameters()) == tv_total - fc_params
    assert net.out_channels == out_channels


def test_explicit_counts_50_and_18():
    assert sum(p.numel() for p in ResNetBackbone(50).parameters()) == 23_508_032
    assert sum(p.numel() for p in ResNetBackbone(18).parameters()) == 11_176_512


def test_stride_on_conv2_in_bottleneck():
    net = ResNetBackbone(50)
    assert net.layer2[0].conv1.stride == (1, 1)
    assert net.layer2[0].conv2.stride == (2, 2)
    assert net.layer2[0].downsample[0].stride == (2, 2)
    assert net.layer1[0].downsample[0].stride == (1, 1)


def test_unsupported_depth_raises():
    with pytest.raises(ValueError, match="unsupported depth 42"):
        ResNetBackbone(42)


def test_output_shape_resnet50():
    net = ResNetBackbone(50).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 256, 192))
    assert out.shape == (2, 2048, 8, 6)


def test_output_shape_resnet18_and_bad_input():
    net = ResNetBackbone(18).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 96)).shape == (1, 512, 2, 3)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 64, 64))


def test_init_like_torchvision():
    torch.manual_seed(0)
    net = ResNetBackbone(50)
    assert torch.all(net.bn1.weight == 1) and torch.all(net.bn1.bias == 0)
    assert torch.all(net.layer3[2].bn3.weight == 1)
    # kaiming normal, fan_out: std = sqrt(2 / (out_ch * k * k))
    w = net.layer4[0].conv2.weight  # (512, 512, 3, 3)
    expected_std = (2.0 / (512 * 9)) ** 0.5
    assert w.mean().abs() < 0.05 * expected_std
    assert w.std().item() == pytest.approx(expected_std, rel=0.02)


def _simplebaseline_state_dict(src: ResNetBackbone) -> OrderedDict:
    """A SimpleBaseline pose_resnet-style checkpoint (spec E): backbone + deconv + final layer."""
    sd = OrderedDict((k, v.clone()) for k, v in src.state_dict().items() if "num_batches_tracked" not in k)
    sd["deconv_layers.0.weight"] = torch.randn(2048, 256, 4, 4)
    for i in (1, 4, 7):
        for name in ("weight", "bias", "running_mean", "running_var"):
            sd[f"deconv_layers.{i}.{name}"] = torch.randn(256)
    sd["deconv_layers.3.weight"] = torch.randn(256, 256, 4, 4)
    sd["deconv_layers.6.weight"] = torch.randn(256, 256, 4, 4)
    sd["final_layer.weight"] = torch.randn(17, 256, 1, 1)
    sd["final_layer.bias"] = torch.randn(17)
    return sd


def _randomise(net: ResNetBackbone, seed: int) -> ResNetBackbone:
    g = torch.Generator().manual_seed(seed)
    for v in net.state_dict().values():
        if v.is_floating_point():
            v.copy_(torch.randn(v.shape, generator=g))
    return net


def test_load_simplebaseline_reports_unused(caplog):
    src = _randomise(ResNetBackbone(50), seed=1)
    sd = _simplebaseline_state_dict(src)
    dst = ResNetBackbone(50)
    with caplog.at_level(logging.INFO, logger="annot.nets.resnet"):
        report = load_backbone_weights(dst, sd)
    assert isinstance(report, BackboneLoadReport)
    expected_unused = {k for k in sd if k.startswith(("deconv_layers.", "final_layer."))}
    assert set(report.unused) == expected_unused and len(expected_unused) == 3 + 12 + 2
    assert all(k.endswith("num_batches_tracked") for k in report.missing)
    assert len(report.missing) == 53  # one counter per BN layer of ResNet-50
    assert report.missing_weights == []
    assert len(report.loaded) == 318 - 53
    for k, v in src.state_dict().items():
        if "num_batches_tracked" not in k:
            assert torch.equal(dst.state_dict()[k], v), k
    assert "unused 17: deconv_layers.* (15), final_layer.* (2)" in caplog.text
    assert "missing 53 (53 BN num_batches_tracked)" in caplog.text


@pytest.mark.parametrize("prefix", ["module.", "backbone.", "module.backbone."])
def test_load_strips_prefixes_and_reports_heads(prefix):
    src = _randomise(ResNetBackbone(18), seed=2)
    sd = {prefix + k: v for k, v in src.state_dict().items()}
    sd["module.position_net.conv.weight"] = torch.zeros(200, 512, 1, 1)
    sd["fc.weight"] = torch.zeros(1000, 512)
    dst = ResNetBackbone(18)
    report = load_backbone_weights(dst, {"network": sd, "epoch": 0})
    assert report.missing == []
    assert set(report.unused) == {"module.position_net.conv.weight", "fc.weight"}
    assert torch.equal(dst.layer4[1].conv2.weight, src.layer4[1].conv2.weight)


def test_load_from_path_and_missing_file(tmp_path):
    src = _randomise(ResNetBackbone(18), seed=3)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"backbone." + k: v for k, v in src.state_dict().items()}}, path)
    dst = ResNetBackbone(18)
    report = load_backbone_weights(dst, path)
    assert report.source == str(path) and report.missing == [] and report.unused == []
    assert torch.equal(dst.conv1.weight, src.conv1.weight)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_backbone_weights(dst, tmp_path / "nope.pth")


def test_missing_weights_are_reported():
    src = ResNetBackbone(18)
    sd = {k: v for k, v in src.state_dict().items() if not k.startswith("layer4.")}
    report = load_backbone_weights(ResNetBackbone(18), sd)
    assert "layer4.1.conv2.weight" in report.missing_weights
    assert all(k.startswith("layer4.") for k in report.missing)


def test_shape_mismatch_names_key_and_copies_nothing():
    sd = _simplebaseline_state_dict(ResNetBackbone(50))
    sd["layer3.1.conv2.weight"] = torch.zeros(256, 256, 1, 1)
    dst = ResNetBackbone(50)
    before = dst.conv1.weight.clone()
    with pytest.raises(ValueError, match=r"layer3\.1\.conv2\.weight.*\(256, 256, 1, 1\).*\(256, 256, 3, 3\)"):
        load_backbone_weights(dst, sd)
    assert torch.equal(dst.conv1.weight, before)


def test_resnet18_weights_into_resnet50_fail_loudly():
    with pytest.raises(ValueError, match="shape mismatch"):
        load_backbone_weights(ResNetBackbone(50), ResNetBackbone(18).state_dict())


def test_duplicate_keys_after_stripping_raise():
    w = ResNetBackbone(18).conv1.weight.detach()
    with pytest.raises(ValueError, match="both map to 'conv1.weight'"):
        load_backbone_weights(ResNetBackbone(18), {"conv1.weight": w, "module.conv1.weight": w})
