"""Overlays of the whole-body pseudo-GTs: the exported SMPL-X mesh over the original image, cropped to the
person and enlarged so that hands and face are visible; green dots = annotated keypoints (body, face, hands),
red dots = the same points of the pseudo-GT (12 body joints, 51 face landmarks, 21 points per fitted hand)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from annot.body_models.wholebody import FACE_STATIC_LANDMARKS, Hand21, SmplxParams, face_landmarks, smplx_forward
from annot.geometry.cameras import perspective_project
from annot.io.atomic import atomic_write_bytes
from annot.io.export_smplx import SMPLX_FIELDS, SmplxPseudoGT
from annot.wholebody.pipeline import body_keypoint_rows

SHAPES = {"root_pose": (3,), "body_pose": (21, 3), "lhand_pose": (15, 3), "rhand_pose": (15, 3), "jaw_pose": (3,),
          "shape": (-1,), "expr": (-1,), "trans": (3,)}


def params_of(entry: SmplxPseudoGT) -> SmplxParams:
    """Batch-of-one :class:`SmplxParams` (float32) of an exported entry."""
    return SmplxParams(**{k: torch.tensor(entry.params[k], dtype=torch.float32).reshape(1, *SHAPES[k])
                          for k in SMPLX_FIELDS})


def _crop(image: np.ndarray, points: np.ndarray, min_height: int = 512) -> np.ndarray:
    """The image around ``points`` (N, 2) (their box enlarged by 30 %), resized to at least ``min_height``."""
    import cv2

    lo, hi = points.min(0), points.max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() * 0.65 + 10
    h, w = image.shape[:2]
    x0, y0 = int(max(0, centre[0] - half)), int(max(0, centre[1] - half))
    x1, y1 = int(min(w, centre[0] + half)), int(min(h, centre[1] + half))
    crop = image[y0:y1, x0:x1]
    scale = max(1.0, min_height / max(1, crop.shape[0]))
    return cv2.resize(crop, (int(crop.shape[1] * scale), int(crop.shape[0] * scale)), interpolation=cv2.INTER_LINEAR)


def write_wholebody_overlays(folder: Path, layer: Any, entries: dict[str, SmplxPseudoGT],
                             parts: dict[str, Any]) -> None:
    """One PNG ``folder/<aid>.png`` per exported entry, rendered from the *exported* parameters (module docstring).

    Args:
        folder: output folder. layer: ``smplx.SMPLX``. entries: the read-back ``pseudo_gt_smplx.json``.
        parts: the parts stage's saved dict (``stage_parts/parts.pt``): image paths and annotated points.

    Raises:
        FileNotFoundError: an image cannot be read. RuntimeError: a PNG cannot be encoded.
    """
    import cv2

    from annot.render import MeshRenderer, draw_keypoints

    renderer = MeshRenderer()
    faces = layer.faces.astype(np.int64)
    index = {aid: i for i, aid in enumerate(parts["aids"])}
    hands = {side: Hand21(layer, side) for side in ("left", "right")}
    for aid, entry in entries.items():
        i = index[aid]
        path = parts["image_path"][aid]
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"overlay of annotation {aid}: cannot read image {path}")
        with torch.no_grad():
            joints, verts = smplx_forward(layer, params_of(entry))
        focal, princpt = torch.tensor(entry.focal_px).float(), torch.tensor(entry.princpt_px).float()
        shown = renderer.overlay(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), verts[0].numpy(), faces, entry.focal_px,
                                 entry.princpt_px, alpha=0.6)
        gt, pred = [], []
        body_mask = parts["body_mask"][aid].numpy()
        gt.append((parts["body_kp"][aid].numpy(), body_mask, 4))
        wb_rows, sx_rows = body_keypoint_rows()
        pred.append((perspective_project(joints[0, sx_rows], focal, princpt).numpy(), body_mask[wb_rows], 4))
        f = parts["face"]
        if i in f["rows"]:
            r = f["rows"].index(i)
            gt.append((f["kp"][r].numpy(), f["mask"][r].numpy(), 2))
            lm = perspective_project(face_landmarks(layer, verts)[0], focal, princpt).numpy()
            pred.append((lm, f["mask"][r].numpy()[list(FACE_STATIC_LANDMARKS)], 2))
        for side in ("left", "right"):
            h = parts[f"{side}hand"]
            if i in h["rows"]:
                r = h["rows"].index(i)
                gt.append((h["kp"][r].numpy(), h["mask"][r].numpy(), 2))
                kps = hands[side](joints, verts)[0]
                pred.append((perspective_project(kps, focal, princpt).numpy(), h["mask"][r].numpy(), 2))
        for kp, mask, radius in gt:
            shown = draw_keypoints(shown, kp, mask, color=(0, 255, 0), radius_px=radius)
        for kp, mask, radius in pred:
            shown = draw_keypoints(shown, kp, mask, color=(255, 0, 0), radius_px=max(1, radius - 1))
        visible = np.concatenate([kp[np.asarray(m, bool)] for kp, m, _ in gt if np.asarray(m, bool).any()])
        ok, png = cv2.imencode(".png", cv2.cvtColor(_crop(shown, visible), cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode the overlay of annotation {aid}")
        atomic_write_bytes(Path(folder) / f"{aid}.png", png.tobytes())


__all__ = ["params_of", "write_wholebody_overlays"]
