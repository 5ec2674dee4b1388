"""SimpleBaseline 2D pose network (``pose_resnet``): ResNet, three deconvolutions, a 1x1 heatmap head.

Follows Xiao, Wu and Wei, "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018, and
its code ``microsoft/human-pose-estimation.pytorch`` ``lib/models/pose_resnet.py`` (read as a
reference, re-written here; reference-spec E):

* backbone: :class:`annot.nets.resnet.ResNetBackbone` (``conv1``, ``bn1``, ``layer1`` .. ``layer4``,
  torchvision names), the layer4 feature map at stride 32;
* ``deconv_layers``: ``num_deconv`` (3) x [``ConvTranspose2d(k=4, s=2, p=1, output_padding=0,
  bias=False)``, ``BatchNorm2d``, ``ReLU``] with ``deconv_channels`` (256) channels, so keys
  ``deconv_layers.{0,3,6}.weight`` ([in, 256, 4, 4]) and ``deconv_layers.{1,4,7}.*`` (BN);
* ``final_layer``: ``Conv2d(256, num_joints, 1)`` with bias (keys ``final_layer.{weight,bias}``).

The state dict therefore has exactly the names of a SimpleBaseline checkpoint (no ``module.``
prefix; the backbone keys at top level), so :func:`annot.nets.resnet.load_backbone_weights` takes it
unchanged and reports ``deconv_layers.*`` / ``final_layer.*`` as unused.

Initialisation as the reference: deconvolution weights N(0, 0.001), BN weight 1 and bias 0,
``final_layer`` weight N(0, 0.001) and bias 0; the backbone keeps torchvision's Kaiming init.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from annot.nets.resnet import ResNetBackbone

__all__ = ["PoseResNet", "POSE_RESNET_HEAD_PREFIXES"]

#: top-level state-dict names of the SimpleBaseline head (not backbone keys).
POSE_RESNET_HEAD_PREFIXES = ("deconv_layers.", "final_layer.")


class PoseResNet(nn.Module):
    """SimpleBaseline ``pose_resnet``: image crop -> per-joint heatmaps at stride 4.

    Args:
        depth: ResNet depth (18, 34, 50, 101, 152; :data:`annot.nets.resnet.RESNET_SPECS`).
        num_joints: heatmap channels (17 COCO keypoints).
        num_deconv: number of stride-2 deconvolution blocks (3: stride 32 -> 4).
        deconv_channels: channels of every deconvolution (256).

    Raises:
        ValueError: unsupported depth (from :class:`ResNetBackbone`), or ``num_joints``,
            ``num_deconv`` or ``deconv_channels`` < 1.

    ``forward(img)``: ``img`` (B, 3, H, W) float (any normalisation; we feed RGB in [0, 1] as the
    rest of the project) -> ``heatmaps`` (B, num_joints, H * 2**num_deconv / 32, ...), i.e.
    (B, 17, 64, 48) for a 256 x 192 crop. Heatmap pixel ``(i, j)`` represents the crop point
    ``(stride * j, stride * i)`` (SimpleBaseline; see :func:`annot.pretrain.decode_heatmaps`).

    The backbone modules sit at top level (``self.conv1``, ``self.layer1`` ...), exactly as in the
    reference, so no key carries a ``backbone.`` prefix.
    """

    def __init__(self, depth: int = 50, num_joints: int = 17, num_deconv: int = 3,
                 deconv_channels: int = 256):
        super().__init__()
        if min(num_joints, num_deconv, deconv_channels) < 1:
            raise ValueError(f"PoseResNet: num_joints, num_deconv and deconv_channels must be >= 1, got "
                             f"{num_joints}, {num_deconv}, {deconv_channels}")
        backbone = ResNetBackbone(depth)
        self.depth = depth
        self.num_joints = num_joints
        self.stride = 32 // 2 ** num_deconv
        # Same attribute names as ResNetBackbone -> identical state-dict keys.
        self.conv1, self.bn1, self.relu = backbone.conv1, backbone.bn1, backbone.relu
        self.maxpool = backbone.maxpool
        self.layer1, self.layer2 = backbone.layer1, backbone.layer2
        self.layer3, self.layer4 = backbone.layer3, backbone.layer4
        layers: list[nn.Module] = []
        in_ch = backbone.out_channels
        for _ in range(num_deconv):
            layers += [nn.ConvTranspose2d(in_ch, deconv_channels, kernel_size=4, stride=2, padding=1,
                                          output_padding=0, bias=False),
                       nn.BatchNorm2d(deconv_channels), nn.ReLU(inplace=True)]
            in_ch = deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_ch, num_joints, kernel_size=1, stride=1, padding=0)
        self._init_head()

    def _init_head(self) -> None:
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def backbone_features(self, img: Tensor) -> Tensor:
        """``img`` (B, 3, H, W) -> layer4 features (B, C, H/32, W/32), as :class:`ResNetBackbone`."""
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"PoseResNet.forward: expected img of shape (B, 3, H, W), "
                             f"got {tuple(img.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(img))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, img: Tensor) -> Tensor:
        """``img`` (B, 3, H, W) -> ``heatmaps`` (B, num_joints, H/stride, W/stride).

        Raises:
            ValueError: ``img`` is not (B, 3, H, W).
        """
        return self.final_layer(self.deconv_layers(self.backbone_features(img)))

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict without the head (``deconv_layers.*``, ``final_layer.*``): ResNet keys only."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(POSE_RESNET_HEAD_PREFIXES)}
