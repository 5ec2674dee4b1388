"""Independent references shared by the loader tests (kept out of the package on purpose)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def expected_box(bbox, img_w, img_h) -> np.ndarray:
    """Independent re-derivation of the mks0601 box for a 256x192 input (clip, aspect 0.75, x1.25)."""
    x, y, w, h = bbox
    x1, y1 = max(0, x), max(0, y)
    x2, y2 = min(img_w - 1, x1 + max(0, w - 1)), min(img_h - 1, y1 + max(0, h - 1))
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    w, h = max(w, 0.75 * h), max(h, w / 0.75)
    return np.array([cx - 0.625 * w, cy - 0.625 * h, 1.25 * w, 1.25 * h])


def posed_joints(body, pose, betas, transl, convention: str) -> np.ndarray:
    """(J, 3) joints in ``convention`` regressed from the body model posed with SMPL parameters
    (pose (72,) axis-angle, betas, transl in metres): the same path the fixtures take."""
    pose = torch.as_tensor(np.asarray(pose), dtype=torch.float32).reshape(1, 72)
    with torch.no_grad():
        out = body(pose[:, :3], pose[:, 3:], torch.as_tensor(np.asarray(betas), dtype=torch.float32)[None],
                   torch.as_tensor(np.asarray(transl), dtype=torch.float32)[None])
        joints, _ = body.regress(out.vertices_m, convention)
    return joints[0].double().numpy()


REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
COCO = SHARED / "coco_samples"
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
#: pytestmark of tests that run the pipeline on the COCO samples with the free body model.
NEEDS_COCO_AND_FREE_MODEL = [
    pytest.mark.skipif(not COCO.is_dir(), reason=f"COCO samples not found at {COCO}"),
    pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")]
