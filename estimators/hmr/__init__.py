"""HMR (SPIN-style) estimator g: ResNet-50 + iterative error feedback, trained on pseudo-GTs.

Public API::

    HMRModule (LightningModule; estimators.base.EstimatorModule), HMRNet (nn.Module)
    MeanParams, resolve_mean_params, upright_mean_params, mean_params_from_poses,
    load_spin_mean_params, load_pose_statistics
    keypoint_2d_loss, keypoint_3d_loss, smpl_param_losses, camera_loss

Follows nkolot SPIN ``models/hmr.py`` and ``train/trainer.py`` (reference-spec B.8).
"""
from __future__ import annotations

from estimators.hmr.mean_params import (
    MeanParams,
    load_pose_statistics,
    load_spin_mean_params,
    mean_params_from_poses,
    resolve_mean_params,
    upright_mean_params,
)
from estimators.hmr.module import (
    HMRModule,
    camera_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    smpl_param_losses,
)
from estimators.hmr.net import HMRNet

__all__ = [
    "HMRModule",
    "HMRNet",
    "MeanParams",
    "camera_loss",
    "keypoint_2d_loss",
    "keypoint_3d_loss",
    "load_pose_statistics",
    "load_spin_mean_params",
    "mean_params_from_poses",
    "resolve_mean_params",
    "smpl_param_losses",
    "upright_mean_params",
]
