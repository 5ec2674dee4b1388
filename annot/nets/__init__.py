"""Network building blocks (plain ``nn.Module``s, no Lightning)."""
from __future__ import annotations

from annot.nets.resnet import (
    DEFAULT_PREFIXES,
    RESNET_SPECS,
    BackboneLoadReport,
    BasicBlock,
    Bottleneck,
    ResNetBackbone,
    load_backbone_weights,
)

__all__ = [
    "DEFAULT_PREFIXES",
    "RESNET_SPECS",
    "BackboneLoadReport",
    "BasicBlock",
    "Bottleneck",
    "ResNetBackbone",
    "load_backbone_weights",
]
