"""``aux_stage.refine_iters``: stage-(a) pseudo-GTs refined by SMPLify3D against the GT 3D joints."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from annot.annotator.pipeline import _refine_with_3d_fit
from annot.body_models import BodyModel, RestRootJoint

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")


def test_refinement_lowers_the_joint_error_and_keeps_the_root(caplog):
    torch.set_num_threads(2)
    body = BodyModel("free", path=str(FREE))
    gen = torch.Generator().manual_seed(0)
    num = 3
    gt_pose = torch.randn(num, 24, 3, generator=gen) * 0.3
    gt_pose[:, 0] = torch.tensor([math.pi, 0.0, 0.0])
    gt_pose[:, 22:] = 0.0
    gt_betas = torch.randn(num, 10, generator=gen) * 0.5
    with torch.no_grad():
        joints = body(gt_pose[:, 0], gt_pose[:, 1:].reshape(num, 69), gt_betas).joints_smpl24_m
    gt_rel = joints - joints[:, :1]
    # a poor stage-(a) prediction: the body pose halved, the shape zeroed
    pred_pose = gt_pose.clone()
    pred_pose[:, 1:22] *= 0.5
    pred = {"pose_rotvec": pred_pose, "betas": torch.zeros(num, 10), "transl_m": torch.tensor([[0.1, 0.2, 40.0]] * num),
            "joints3d_gt_rel_m": gt_rel, "joints3d_mask": torch.ones(num, 24),
            "joints3d_err_mm": torch.full((num,), float("nan"))}
    root = RestRootJoint("free", "neutral", FREE)
    root_cam_before = pred["transl_m"].double() + torch.as_tensor(root(pred["betas"].double().numpy()))
    with caplog.at_level("INFO"):
        _refine_with_3d_fit(pred, body, "smpl24", 60, "test")
    assert "SMPLify3D refinement" in caplog.text
    # independent check: pose the refined parameters through the full body model
    with torch.no_grad():
        out = body(pred["pose_rotvec"][:, 0], pred["pose_rotvec"][:, 1:].reshape(num, 69), pred["betas"])
    rel = out.joints_smpl24_m - out.joints_smpl24_m[:, :1]
    err_mm = 1000.0 * (rel - gt_rel).norm(dim=-1).mean(1)
    assert torch.all(err_mm < 15.0), err_mm
    torch.testing.assert_close(pred["joints3d_err_mm"], err_mm, atol=0.05, rtol=0)  # root-relative, as stage (a)
    root_cam_after = pred["transl_m"].double() + torch.as_tensor(root(pred["betas"].double().numpy()))
    torch.testing.assert_close(root_cam_after, root_cam_before, atol=1e-5, rtol=0)
