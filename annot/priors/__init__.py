"""Pose priors: VPoser v2 (V02_05 layout) and its free training path.

Public API::

    vposer: VPoser, load_vposer, VPoserLoadReport, VPOSER_URL
    train:  VPoserPriorModule, train_prior, load_body_poses_npz, NPZ_POSE_KEYS, geodesic_deg

This room imports only ``annot.geometry``.
"""
from __future__ import annotations

from annot.priors.train import (
    NPZ_POSE_KEYS,
    VPoserPriorModule,
    geodesic_deg,
    load_body_poses_npz,
    train_prior,
)
from annot.priors.vposer import VPOSER_URL, VPoser, VPoserLoadReport, load_vposer

__all__ = [
    "NPZ_POSE_KEYS",
    "VPOSER_URL",
    "VPoser",
    "VPoserLoadReport",
    "VPoserPriorModule",
    "geodesic_deg",
    "load_body_poses_npz",
    "load_vposer",
    "train_prior",
]
