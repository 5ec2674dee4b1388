"""HMR network: ResNet -> global average pooling -> iterative error feedback (IEF) regressor.

Follows nkolot SPIN ``models/hmr.py`` (Kolotouros et al., ICCV 2019; IEF from Kanazawa et al., HMR,
CVPR 2018), reference-spec B.8. The network sees an ImageNet-normalised 224x224 crop (the Lightning
module normalises); it predicts 24 rotations in 6D (spec B.2.4), ``num_betas`` shape coefficients and a
weak-perspective camera ``[s, tx, ty]``. Each of ``n_iter`` iterations feeds
``xc = cat[xf, pose, shape, cam]`` through ``fc1 -> Dropout(0.5) -> fc2 -> Dropout(0.5)`` (no ReLU, as
SPIN) and adds the three decoders' outputs to the current estimate, starting from the mean parameters
(buffers ``init_pose/init_shape/init_cam``). The decoders start with ``xavier_uniform_(gain=0.01)``,
so the first prediction is close to the mean. Parameter names (``fc1``, ``fc2``, ``decpose``,
``decshape``, ``deccam``, ``init_*``) are SPIN's; the ResNet sits under ``backbone.`` with torchvision
names (``annot.nets.resnet``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from annot.nets.resnet import ResNetBackbone
from estimators.hmr.mean_params import NUM_POSE_JOINTS, MeanParams, upright_mean_params

__all__ = ["HMRNet", "IEF_HIDDEN_DIM"]

IEF_HIDDEN_DIM = 1024


class HMRNet(nn.Module):
    """ResNet encoder + IEF regressor (SPIN ``HMR``).

    Args:
        backbone_depth: ResNet depth (18, 34, 50, 101, 152); 50 gives 2048 features as SPIN.
        mean_params: starting point of the regressor (:mod:`estimators.hmr.mean_params`); default
            :func:`upright_mean_params`.
        n_iter: IEF iterations (SPIN: 3).
        hidden_dim: width of ``fc1``/``fc2`` (SPIN: 1024).

    Attributes:
        feature_dim: length of the pooled feature ``xf`` (2048 for ResNet-50, 512 for ResNet-18/34).
        num_betas: shape coefficients, from ``mean_params``.

    ``forward(img_norm)``: ``img_norm`` (B, 3, H, W) ImageNet-normalised RGB (224x224 for SPIN) ->
    dict with ``pose_6d`` (B, 24, 6), ``betas`` (B, num_betas), ``cam`` (B, 3) = ``[s, tx, ty]`` and
    ``features`` (B, feature_dim) (the pooled ``xf``).

    Raises:
        ValueError: ``n_iter < 1`` or an unsupported depth.
    """

    def __init__(self, backbone_depth: int = 50, mean_params: MeanParams | None = None, n_iter: int = 3,
                 hidden_dim: int = IEF_HIDDEN_DIM) -> None:
        super().__init__()
        if n_iter < 1:
            raise ValueError(f"HMRNet: n_iter must be >= 1, got {n_iter}")
        mean_params = mean_params or upright_mean_params()
        init_pose, init_shape, init_cam = mean_params.tensors()
        self.n_iter = int(n_iter)
        self.num_betas = int(init_shape.shape[1])
        self.backbone = ResNetBackbone(backbone_depth)
        self.feature_dim = self.backbone.out_channels
        pose_dim = NUM_POSE_JOINTS * 6
        self.fc1 = nn.Linear(self.feature_dim + pose_dim + self.num_betas + 3, hidden_dim)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(hidden_dim, pose_dim)
        self.decshape = nn.Linear(hidden_dim, self.num_betas)
        self.deccam = nn.Linear(hidden_dim, 3)
        for decoder in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(decoder.weight, gain=0.01)
        self.register_buffer("init_pose", init_pose)
        self.register_buffer("init_shape", init_shape)
        self.register_buffer("init_cam", init_cam)

    def regress(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """IEF: ``n_iter`` residual updates from the mean parameters.

        Args:
            features: (B, feature_dim) pooled image features ``xf``.

        Returns:
            ``(pose_6d (B, 144), betas (B, num_betas), cam (B, 3))``.
        """
        batch = features.shape[0]
        pose = self.init_pose.expand(batch, -1)
        shape = self.init_shape.expand(batch, -1)
        cam = self.init_cam.expand(batch, -1)
        for _ in range(self.n_iter):
            xc = torch.cat([features, pose, shape, cam], dim=1)
            xc = self.drop2(self.fc2(self.drop1(self.fc1(xc))))
            pose = self.decpose(xc) + pose
            shape = self.decshape(xc) + shape
            cam = self.deccam(xc) + cam
        return pose, shape, cam

    def forward(self, img_norm: Tensor) -> dict[str, Tensor]:
        """See the class docstring."""
        features = self.backbone(img_norm).mean(dim=(2, 3))  # SPIN: AvgPool2d(7) on the 7x7 layer4 map
        pose, shape, cam = self.regress(features)
        return {"pose_6d": pose.reshape(-1, NUM_POSE_JOINTS, 6), "betas": shape, "cam": cam,
                "features": features}
