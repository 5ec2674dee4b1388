"""The pictures of the review page (:mod:`annot.io.review`): per person, the overlay cropped around the mesh and
a side view of the mesh, as small JPEGs; written by the export step of every annotate run
(``export.review_html``, default on).

The overlay is the run's ``overlays/<aid>.png`` (the pseudo-GT mesh rendered over the original image by
:func:`annot.annotator.report.write_overlays`), cropped to the projected mesh's box grown by 15 % and
downscaled to ``height_px``. The side view turns the mesh (camera frame, OpenCV axes, metres) by 90 degrees
about the camera's vertical (y) axis through its vertex centroid and renders it with
:class:`annot.render.MeshRenderer` (pyrender; OSMesa on CPU) on a white background, so depth errors that the
overlay hides (a body leaning towards the camera, a bent spine) show.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annot.io.export import PseudoGT
from annot.io.review import ReviewItem, write_review_html

SIDE_ANGLE_RAD = math.pi / 2


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("could not encode a review JPEG")
    return buf.tobytes()


def _resize_to_height(rgb: np.ndarray, height_px: int) -> np.ndarray:
    import cv2

    scale = height_px / rgb.shape[0]
    width = max(1, int(round(rgb.shape[1] * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height_px), interpolation=interp)


def mesh_box_px(verts_cam_m: np.ndarray, focal_px: np.ndarray, princpt_px: np.ndarray) -> np.ndarray:
    """(4,) ``x0, y0, x1, y1`` pixel box of the perspective projection of (V, 3) camera-frame vertices (metres,
    in front of the camera: z > 0)."""
    z = np.clip(verts_cam_m[:, 2], 1e-6, None)
    uv = verts_cam_m[:, :2] / z[:, None] * focal_px + princpt_px
    return np.concatenate([uv.min(0), uv.max(0)])


def crop_around(image_rgb: np.ndarray, box_px: np.ndarray, grow: float = 0.15) -> np.ndarray:
    """Crop of ``image_rgb`` (H, W, 3) around ``box_px`` (x0, y0, x1, y1) grown by ``grow`` of its size on each
    side and clipped to the image; the whole image when the box misses it."""
    h, w = image_rgb.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box_px)
    gx, gy = grow * (x1 - x0), grow * (y1 - y0)
    a, b = int(max(0, math.floor(x0 - gx))), int(max(0, math.floor(y0 - gy)))
    c, d = int(min(w, math.ceil(x1 + gx))), int(min(h, math.ceil(y1 + gy)))
    if c - a < 2 or d - b < 2:
        return image_rgb
    return image_rgb[b:d, a:c]


def side_view(renderer: Any, verts_cam_m: np.ndarray, faces: np.ndarray, size_px: int = 256,
              angle_rad: float = SIDE_ANGLE_RAD) -> np.ndarray:
    """(size_px, size_px, 3) uint8 RGB render of the mesh turned by ``angle_rad`` about the camera's y axis
    through its centroid, framed to fill 80 % of the image height, on white.

    Args:
        renderer: an :class:`annot.render.MeshRenderer`.
        verts_cam_m: (V, 3) vertices, camera frame (OpenCV axes), metres.
        faces: (F, 3) int triangle indices.
    """
    centre = verts_cam_m.mean(0)
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    turned = (verts_cam_m - centre) @ rot.T
    extent = float(max(np.ptp(turned[:, 0]), np.ptp(turned[:, 1]), 1e-3))
    focal = 1000.0
    depth = focal * extent / (0.8 * size_px) + float(np.ptp(turned[:, 2]))
    turned = turned + np.array([0.0, 0.0, depth])
    rgb, _, mask = renderer.render(turned, faces, (focal, focal), (size_px / 2, size_px / 2), (size_px, size_px))
    out = np.full_like(rgb, 255)
    out[mask] = rgb[mask]
    return out


def review_items(entries: dict[str, PseudoGT], overlays_dir: Path, body: Any, images: dict[str, str] | None = None,
                 height_px: int = 220, quality: int = 80) -> list[ReviewItem]:
    """One :class:`ReviewItem` per pseudo-GT whose overlay exists (``overlays_dir/<aid>.png``).

    Args:
        entries: the run's pseudo-GTs by annotation id.
        overlays_dir: folder of the overlay PNGs.
        body: the :class:`annot.body_models.BodyModel` of the run (CPU).
        images: annotation id -> image file name (the card's caption), when known.
        height_px: height of both pictures of a card; ``quality``: their JPEG quality.
    """
    import cv2
    from tqdm import tqdm

    from annot.render import MeshRenderer

    items: list[ReviewItem] = []
    faces = body.faces
    with MeshRenderer() as renderer:
        for aid, entry in tqdm(sorted(entries.items()), desc="review page", leave=False):
            png = overlays_dir / f"{aid}.png"
            if not png.is_file():
                continue
            overlay = cv2.imread(str(png), cv2.IMREAD_COLOR)
            if overlay is None:
                raise ValueError(f"{png}: cannot decode the overlay of annotation {aid}")
            overlay = cv2.cvtColor(overlay, cv2.COLOR_BGR2RGB)
            kw = entry.smplx_kwargs()
            with torch.no_grad():
                verts = body(kw["global_orient"], kw["body_pose"], kw["betas"], kw["transl"]).vertices_m[0].numpy()
            box = mesh_box_px(verts.astype(np.float64), np.asarray(entry.focal_px), np.asarray(entry.princpt_px))
            crop = _resize_to_height(np.ascontiguousarray(crop_around(overlay, box)), height_px)
            side = side_view(renderer, verts, faces, size_px=height_px)
            q = dict(entry.quality)
            err = float(q.pop("kp2d_err_px", float("nan")))
            eft = q.pop("eft_reject", None)
            image = Path((images or {}).get(str(aid), "")).name
            items.append(ReviewItem(aid=str(aid), image=image, overlay_jpeg=_jpeg(crop, quality),
                                    side_jpeg=_jpeg(side, quality), kp2d_err_px=err,
                                    eft_reject=None if eft is None else float(eft),
                                    extra={k: float(v) for k, v in q.items()}))
    return items


def write_review_page(out: Path, entries: dict[str, PseudoGT], body: Any, images: dict[str, str] | None = None,
                      run: str | None = None) -> Path:
    """Write ``out/review.html`` for the run in ``out`` (its ``pseudo_gt.json`` and ``overlays/``). Returns it."""
    items = review_items(entries, out / "overlays", body, images)
    return write_review_html(out / "review.html", items, run or out.name, out / "pseudo_gt.json")
