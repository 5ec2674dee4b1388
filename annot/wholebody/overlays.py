"""Overlays of the whole-body pseudo-GTs: the exported SMPL-X mesh over the original image, one panel cropped to
the person and one enlarged panel per fitted part (face, hands) so that they are visible; green dots = annotated
keypoints (body, face, hands), red dots = the same points of the pseudo-GT (12 body joints, 51 face landmarks,
21 points per fitted hand)."""
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


def _panel(image: np.ndarray, points: np.ndarray, gt: list, pred: list, height: int = 384,
           margin: float = 0.3) -> np.ndarray:
    """The square region around ``points`` (N, 2) (their box enlarged by ``margin`` each side, at least 24 px)
    resized to ``height`` pixels (black outside the image), with the ``gt`` (green) and ``pred`` (red) keypoint
    sets ``[(kp (J, 2) image pixels, mask (J,), radius px)]`` drawn at panel resolution."""
    import cv2

    from annot.render import draw_keypoints

    lo, hi = points.min(0), points.max(0)
    centre, half = (lo + hi) / 2, max(12.0, float((hi - lo).max()) * (0.5 + margin))
    src = np.float32([centre - half, centre + [half, -half], centre + [-half, half]])
    affine = cv2.getAffineTransform(src, np.float32([[0, 0], [height, 0], [0, height]]))
    out = cv2.warpAffine(image, affine, (height, height), flags=cv2.INTER_LINEAR)
    for sets, color, shrink in ((gt, (0, 255, 0), 0), (pred, (255, 0, 0), 1)):
        for kp, mask, radius in sets:
            moved = kp @ affine[:, :2].T + affine[:, 2]
            out = draw_keypoints(out, moved, mask, color=color, radius_px=max(1, radius - shrink))
    return out


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

    from annot.render import MeshRenderer, tile_grid

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
                                 entry.princpt_px)
        gt, pred = [], []
        body_mask = parts["body_mask"][aid].numpy()
        gt.append((parts["body_kp"][aid].numpy(), body_mask, 4))
        wb_rows, sx_rows = body_keypoint_rows()
        pred.append((perspective_project(joints[0, sx_rows], focal, princpt).numpy(), body_mask[wb_rows], 4))
        f = parts["face"]
        if i in f["rows"]:
            r = f["rows"].index(i)
            gt.append((f["kp"][r].numpy(), f["mask"][r].numpy(), 3))
            lm = perspective_project(face_landmarks(layer, verts)[0], focal, princpt).numpy()
            pred.append((lm, f["mask"][r].numpy()[list(FACE_STATIC_LANDMARKS)], 3))
        for side in ("left", "right"):
            h = parts[f"{side}hand"]
            if i in h["rows"]:
                r = h["rows"].index(i)
                gt.append((h["kp"][r].numpy(), h["mask"][r].numpy(), 3))
                kps = hands[side](joints, verts)[0]
                pred.append((perspective_project(kps, focal, princpt).numpy(), h["mask"][r].numpy(), 3))
        points = [kp[np.asarray(m, bool)] for kp, m, _ in gt]
        panels = [_panel(shown, np.concatenate([p for p in points if len(p)]), gt, pred)]  # the person, then parts
        panels += [_panel(shown, p, [g], [q], margin=0.6) for p, g, q in zip(points[1:], gt[1:], pred[1:]) if len(p)]
        ok, png = cv2.imencode(".png", cv2.cvtColor(tile_grid(panels, len(panels)), cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode the overlay of annotation {aid}")
        atomic_write_bytes(Path(folder) / f"{aid}.png", png.tobytes())


__all__ = ["params_of", "write_wholebody_overlays"]
