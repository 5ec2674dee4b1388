"""ResNet backbone with torchvision's parameter names, and a reporting weight loader.

The network is written here (torchvision does not import in this environment), but every parameter
and buffer carries exactly the name torchvision's ``torchvision/models/resnet.py`` gives it:
``conv1``, ``bn1``, ``layer1`` .. ``layer4``, blocks ``layer{k}.{i}.conv1/bn1/conv2/bn2[/conv3/bn3]``
and ``layer{k}.0.downsample.0`` (1x1 conv) / ``downsample.1`` (BN). So ImageNet torchvision
checkpoints, the SimpleBaseline ``pose_resnet`` backbone (Xiao et al. 2018,
``microsoft/human-pose-estimation.pytorch`` ``lib/models/pose_resnet.py``) and the mks0601
``ResNetBackbone`` (``Hand4Whole_RELEASE`` ``common/nets/resnet.py``) load without renaming
(reference-spec B.2.1, B.7, E).

The backbone has no ``avgpool`` / ``fc``: it returns the layer4 feature map.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNetBackbone",
    "BackboneLoadReport",
    "load_backbone_weights",
    "RESNET_SPECS",
    "DEFAULT_PREFIXES",
]

log = logging.getLogger(__name__)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut; ResNet-18/34.

    Args:
        in_ch: input channels.
        width: channels of both convolutions (output = ``width * expansion`` = ``width``).
        stride: stride of the first 3x3 convolution (2 at the first block of layer2..4).
        downsample: optional shortcut projection ``Sequential(conv1x1, BN)`` named ``downsample``.

    Shapes: ``(B, in_ch, H, W) -> (B, width, H/stride, W/stride)``.
    Follows He et al. 2016 and the torchvision layout (``conv1, bn1, conv2, bn2, downsample``).
    """

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck block (expansion 4); ResNet-50/101/152.

    The stride sits on the 3x3 ``conv2`` (torchvision "ResNet v1.5"), not on ``conv1`` as in the
    original Caffe ResNet; SimpleBaseline and mks0601 use the same placement.

    Args:
        in_ch: input channels.
        width: channels of conv1/conv2; output channels are ``4 * width``.
        stride: stride of ``conv2``.
        downsample: optional shortcut projection ``Sequential(conv1x1, BN)``.

    Shapes: ``(B, in_ch, H, W) -> (B, 4*width, H/stride, W/stride)``.
    """

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


# depth -> (block class, number of blocks in layer1..layer4), as torchvision's resnet18..resnet152.
RESNET_SPECS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNetBackbone(nn.Module):
    """ResNet feature extractor (stem + layer1..layer4, no avgpool/fc) with torchvision key names.

    Args:
        depth: one of 18, 34, 50, 101, 152.

    Raises:
        ValueError: for any other depth (the message lists the supported ones).

    Attributes:
        depth: the ResNet depth.
        out_channels: channels of the returned feature map, 512 (18/34) or 2048 (50/101/152).

    ``forward(img)``: ``img`` (B, 3, H, W) float, any normalisation (mks0601 feeds RGB in [0, 1];
    ImageNet/SimpleBaseline weights were trained on mean/std-normalised input) ->
    ``img_feat`` (B, out_channels, ceil(H/32), ceil(W/32)); (B, 2048, 8, 6) for a 256x192 crop
    (reference-spec B.2.1).

    Initialisation follows torchvision: Kaiming-normal (fan_out, ReLU gain) for convolutions, BN
    weight 1 and bias 0 (``zero_init_residual=False``). BN momentum is PyTorch's default 0.1, as in
    SimpleBaseline.
    """

    def __init__(self, depth: int):
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ValueError(
                f"ResNetBackbone: unsupported depth {depth!r}; supported: {sorted(RESNET_SPECS)}"
            )
        block, counts = RESNET_SPECS[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._in_ch = 64
        self.layer1 = self._make_layer(block, 64, counts[0], stride=1)
        self.layer2 = self._make_layer(block, 128, counts[1], stride=2)
        self.layer3 = self._make_layer(block, 256, counts[2], stride=2)
        self.layer4 = self._make_layer(block, 512, counts[3], stride=2)
        self.out_channels = 512 * block.expansion
        del self._in_ch
        self.reset_parameters()

    def _make_layer(self, block: type[nn.Module], width: int, num_blocks: int, stride: int) -> nn.Sequential:
        out_ch = width * block.expansion
        downsample = None
        if stride != 1 or self._in_ch != out_ch:
            downsample = nn.Sequential(_conv1x1(self._in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        blocks = [block(self._in_ch, width, stride, downsample)]
        self._in_ch = out_ch
        blocks += [block(out_ch, width) for _ in range(1, num_blocks)]
        return nn.Sequential(*blocks)

    def reset_parameters(self) -> None:
        """Re-initialise as torchvision: conv Kaiming-normal (fan_out, relu), BN weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, img: Tensor) -> Tensor:
        """``img`` (B, 3, H, W) -> layer4 features (B, out_channels, H/32, W/32).

        Raises:
            ValueError: if ``img`` is not 4-D with 3 channels.
        """
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(
                f"ResNetBackbone.forward: expected img of shape (B, 3, H, W), got {tuple(img.shape)}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(img))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)


# Longest first: a key is stripped of the first prefix it starts with.
DEFAULT_PREFIXES: tuple[str, ...] = ("module.backbone.", "backbone.", "module.")
# Containers that checkpoints wrap their state dict in (Lightning, mks0601 snapshots, misc).
_CONTAINER_KEYS: tuple[str, ...] = ("state_dict", "network", "model")


@dataclass
class BackboneLoadReport:
    """What :func:`load_backbone_weights` did.

    Attributes:
        loaded: backbone keys copied from the checkpoint.
        missing: backbone keys absent from the checkpoint (left at their current value).
            ``num_batches_tracked`` buffers are listed too; old checkpoints (SimpleBaseline) lack them
            and that is harmless.
        unused: checkpoint keys (as written in the checkpoint) that are not backbone keys, e.g.
            ``fc.*``, ``deconv_layers.*``, ``final_layer.*``.
        source: the file path, or ``"<state_dict>"``.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    source: str = "<state_dict>"

    @property
    def missing_weights(self) -> list[str]:
        """``missing`` without the ``num_batches_tracked`` counters (keys that actually matter)."""
        return [k for k in self.missing if not k.endswith("num_batches_tracked")]

    def summary(self) -> str:
        """One line: counts, missing weights (up to five), unused keys grouped by top-level name."""
        text = f"backbone weights from {self.source}: loaded {len(self.loaded)}"
        if self.missing:
            weights = self.missing_weights
            counters = len(self.missing) - len(weights)
            text += f"; missing {len(self.missing)} ({counters} BN num_batches_tracked"
            if weights:
                more = f", ... (+{len(weights) - 5})" if len(weights) > 5 else ""
                text += f"; weights: {', '.join(weights[:5])}{more}"
            text += ")"
        if self.unused:
            groups: dict[str, int] = {}
            for key in self.unused:
                parts = key.split(".")
                group = ".".join(parts[:2]) if parts[0] == "module" and len(parts) > 2 else parts[0]
                groups[group] = groups.get(group, 0) + 1
            text += f"; unused {len(self.unused)}: " + ", ".join(f"{g}.* ({n})" for g, n in groups.items())
        return text


def _read_state_dict(state_dict_or_path: Mapping[str, Tensor] | str | Path) -> tuple[dict[str, Tensor], str]:
    if isinstance(state_dict_or_path, (str, Path)):
        path = Path(state_dict_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"load_backbone_weights: checkpoint file not found: {path}")
        obj = torch.load(path, map_location="cpu", weights_only=True)
        source = str(path)
    else:
        obj, source = state_dict_or_path, "<state_dict>"
    if not isinstance(obj, Mapping):
        raise ValueError(f"load_backbone_weights: {source} holds a {type(obj).__name__}, not a state dict")
    for key in _CONTAINER_KEYS:  # unwrap {'state_dict': ...} / {'network': ...} / {'model': ...}
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    return {k: v for k, v in obj.items() if isinstance(v, Tensor)}, source


def _strip_prefix(key: str, prefixes: Sequence[str]) -> str:
    for prefix in sorted(prefixes, key=len, reverse=True):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def load_backbone_weights(
    backbone: nn.Module,
    state_dict_or_path: Mapping[str, Tensor] | str | Path,
    prefixes: Sequence[str] = DEFAULT_PREFIXES,
) -> BackboneLoadReport:
    """Copy matching weights into ``backbone`` and report what was missing and what was unused.

    Accepts a plain state dict (torchvision ImageNet, SimpleBaseline ``pose_resnet``), a mks0601
    snapshot ``{'network': ...}`` or a Lightning ``{'state_dict': ...}`` (or a path to any of them,
    read with ``torch.load(weights_only=True)`` on CPU). Each key loses the longest of ``prefixes``
    it starts with (default ``module.backbone.``, ``backbone.``, ``module.``; H4W
    ``tool/convert_simple_to_pose2pose.py`` writes ``module.backbone.*``). Unlike the mks0601
    ``load_state_dict(strict=False)`` path, keys that do not belong to the backbone
    (``fc.*``, ``deconv_layers.*``, ``final_layer.*``, head weights) are reported as unused, and the
    summary is logged (INFO; WARNING when weights other than BN counters are missing).

    Args:
        backbone: the module to fill (usually :class:`ResNetBackbone`); modified in place.
        state_dict_or_path: mapping key -> tensor, or a checkpoint file path.
        prefixes: prefixes to strip.

    Returns:
        :class:`BackboneLoadReport`.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file holds no mapping; two checkpoint keys map to the same backbone key
            after prefix stripping; or shapes differ (the message names every mismatching key with
            both shapes). Nothing is copied when a ValueError is raised.
    """
    ckpt, source = _read_state_dict(state_dict_or_path)
    own = backbone.state_dict()
    report = BackboneLoadReport(source=source)
    to_load: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    mismatches: list[str] = []
    for ckpt_key, value in ckpt.items():
        key = _strip_prefix(ckpt_key, prefixes)
        if key not in own:
            report.unused.append(ckpt_key)
            continue
        if key in origin:
            raise ValueError(
                f"load_backbone_weights: {source}: keys {origin[key]!r} and {ckpt_key!r} both map to {key!r}"
            )
        origin[key] = ckpt_key
        if tuple(value.shape) != tuple(own[key].shape):
            mismatches.append(
                f"{ckpt_key}: checkpoint {tuple(value.shape)} vs backbone {tuple(own[key].shape)}"
            )
            continue
        to_load[key] = value
    if mismatches:
        raise ValueError(f"load_backbone_weights: {source}: shape mismatch for " + "; ".join(mismatches))
    backbone.load_state_dict(to_load, strict=False)
    report.loaded = [k for k in own if k in to_load]
    report.missing = [k for k in own if k not in to_load]
    level = logging.WARNING if report.missing_weights else logging.INFO
    log.log(level, report.summary())
    return report
