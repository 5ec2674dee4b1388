"""Pictures of the free SMPL-X / MANO stand-ins (issue #16): finger articulation and the face.

Usage::

    python tools/render_free_wholebody.py [--model-dir body_models/free] [--out-dir docs/images]

Writes ``free_wholebody_fingers.png`` (left hand of the SMPL-X stand-in and the right MANO stand-in, seen
from the front: flat zero pose, the PCA mean, every finger joint flexed 60 degrees (thumb 30), +2 sigma along the first
hand component, a thumb-index pinch) and ``free_wholebody_face.png`` (the 68 face landmarks on the neutral
face, the jaw opened 0.35 rad, expressions 0 and 1 at +3). Renders with ``annot.render`` (pyrender,
headless). Exit status 0 on success, 1 on error.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads (annot/app/runtime.py)

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from annot.app.cli import run_tool
from annot.body_models.free_model.hands import hand_axes
from annot.body_models.free_model.wholebody_names import MANO_JOINTS_IN_SMPLX, SMPLX_JOINT_NAMES
from annot.body_models.wholebody_layers import build_mano_layer, build_smplx_layer
from annot.io.atomic import atomic_write_bytes
from annot.render import draw_keypoints, render_mesh, tile_grid

J = {name: i for i, name in enumerate(SMPLX_JOINT_NAMES)}
SIZE = 360


def front_camera(points_m: np.ndarray, centre_m: np.ndarray, distance_m: float) -> np.ndarray:
    """World (SMPL-X frame: Y up, subject facing +Z) -> OpenCV camera frame of a camera on the +Z side
    looking at ``centre_m`` from ``distance_m``: (x, y, z)_cam = (X - cx, -(Y - cy), d - (Z - cz))."""
    rel = points_m - centre_m
    return np.stack([rel[..., 0], -rel[..., 1], distance_m - rel[..., 2]], axis=-1)


def _render(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray, distance: float,
            points: np.ndarray | None = None, focal: float = 900.0) -> np.ndarray:
    cam = front_camera(vertices, centre, distance)
    rgb, _, _ = render_mesh(cam, faces, (focal, focal), (SIZE / 2, SIZE / 2), (SIZE, SIZE))
    if points is not None:
        pts = front_camera(points, centre, distance)
        uv = pts[:, :2] / pts[:, 2:] * focal + SIZE / 2
        rgb = draw_keypoints(rgb, uv, color=(255, 60, 60), radius_px=2)
    return rgb


def _hand_poses(rest_joints: np.ndarray, components: np.ndarray, mean: np.ndarray, side: str) -> list[np.ndarray]:
    """(45,) hand poses: flat, PCA mean, finger joints flexed 60 degrees (thumb joints 30), +2 sigma PC1,
    thumb-index pinch."""
    flex, _ = hand_axes(rest_joints, side)
    bent = math.radians(60) * flex
    bent[12:15] *= 0.5  # thumb (MANO order: index, middle, pinky, ring, thumb)
    bent = bent.reshape(45)
    pinch = np.zeros((15, 3))
    pinch[0:3] = math.radians(30) * flex[0:3]  # index
    pinch[12:15] = math.radians(28) * flex[12:15]  # thumb, toward the index and middle bases
    return [np.zeros(45), mean, bent, 2.0 * components[0] + mean, pinch.reshape(45)]


def finger_figure(model_dir: Path) -> np.ndarray:
    """Tiles: SMPL-X left hand (top row) and MANO right hand (bottom row) in five poses."""
    smplx_layer, _ = build_smplx_layer(model_dir / "FREE_ANNY_SMPLX_NEUTRAL.npz")
    mano_layer, _ = build_mano_layer("right", model_dir / "FREE_ANNY_MANO_RIGHT.pkl")
    with torch.no_grad():
        rest = smplx_layer().joints[0, :55].numpy().astype(np.float64)
    data = np.load(model_dir / "FREE_ANNY_SMPLX_NEUTRAL.npz")
    tiles = []
    for pose in _hand_poses(rest, data["hands_componentsl"], data["hands_meanl"], "left"):
        with torch.no_grad():
            out = smplx_layer(left_hand_pose=torch.as_tensor(pose[None], dtype=torch.float32))
        centre = rest[J["L_Middle_1"]] + [0.0, -0.03, 0.0]
        ids = list(MANO_JOINTS_IN_SMPLX["left"])
        tiles.append(_render(out.vertices[0].numpy(), smplx_layer.faces, centre, 0.6,
                             out.joints[0, ids].numpy()))
    with torch.no_grad():
        hand_rest = mano_layer().joints[0].numpy().astype(np.float64)
    fake = np.zeros((55, 3))
    fake[list(MANO_JOINTS_IN_SMPLX["right"])] = hand_rest
    for pose in _hand_poses(fake, data["hands_componentsr"], data["hands_meanr"], "right"):
        with torch.no_grad():
            out = mano_layer(hand_pose=torch.as_tensor(pose[None], dtype=torch.float32))
        centre = hand_rest[4] + [0.0, -0.03, 0.0]  # Middle_1
        tiles.append(_render(out.vertices[0].numpy(), mano_layer.faces, centre, 0.6, out.joints[0].numpy()))
    return tile_grid(tiles, 5)


def face_figure(model_dir: Path) -> np.ndarray:
    """Tiles: neutral face with its 68 landmarks, jaw open, expression 0 and 1 at +3."""
    layer, _ = build_smplx_layer(model_dir / "FREE_ANNY_SMPLX_NEUTRAL.npz", use_face_contour=True)
    tiles = []
    settings = [{}, {"jaw_pose": torch.tensor([[0.35, 0.0, 0.0]])}]
    for k in (0, 1):
        expression = torch.zeros(1, 10)
        expression[0, k] = 3.0
        settings.append({"expression": expression})
    for params in settings:
        with torch.no_grad():
            out = layer(**params)
        joints = out.joints[0].numpy()
        centre = joints[-68:].mean(axis=0)
        tiles.append(_render(out.vertices[0].numpy(), layer.faces, centre, 0.55, joints[-68:], focal=1200.0))
    return tile_grid(tiles, 4)


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2  # noqa: PLC0415

    ok, encoded = cv2.imencode(".png", image[..., ::-1])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    atomic_write_bytes(path, encoded.tobytes())


def main(argv: list[str] | None = None) -> int:
    """Render both figures; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("body_models/free"))
    parser.add_argument("--out-dir", type=Path, default=Path("docs/images"))
    args = parser.parse_args(argv)
    for name, figure in (("free_wholebody_fingers.png", finger_figure), ("free_wholebody_face.png", face_figure)):
        _write_png(args.out_dir / name, figure(args.model_dir))
        print(f"wrote {args.out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
