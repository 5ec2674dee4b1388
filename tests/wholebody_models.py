"""Tiny synthetic SMPL-X- and MANO-format model files for fast tests (no licensed or baked file).

The models are small but geometric, so fits on them are well posed: 55 joints with SMPL-X's kinematic tree
on a rough T-pose (metres, Y up, subject's left = +X) whose hands are flat, fingers along +-X; a dozen vertices
around each joint (skinning weights a softmax over joint distance, hand and face vertices one-hot);
``J_regressor`` one-hot on a vertex placed at each joint; 51 face landmarks (each a small triangle of its own
vertices, the lower mouth skinned to the jaw) with expression blend shapes on them; random hand means
(``hands_mean*``), zero ``posedirs``. The MANO files hold each SMPL-X hand's joints (same rest frame, so the
MANO -> SMPL-X hand alignment is the identity) with five fingertip vertices and their own random hand means.
Keys follow what stock ``smplx.SMPLX`` (npz) and ``smplx.MANO`` (pkl) read (smplx ``body_models.py``).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tests.conftest import REST_JOINTS_M, ROOT_PARENT_UINT32, SMPL_PARENTS

HAND_OFFSETS = {  # finger base offsets from the left wrist (metres) and their direction
    "Index": ((0.09, 0.0, 0.03), (1, 0, 0)), "Middle": ((0.095, 0.0, 0.01), (1, 0, 0)),
    "Pinky": ((0.08, 0.0, -0.03), (1, 0, 0)), "Ring": ((0.09, 0.0, -0.01), (1, 0, 0)),
    "Thumb": ((0.03, -0.01, 0.04), (0.7, 0, 0.7)),
}
MANO_ORDER = ("Index", "Middle", "Pinky", "Ring", "Thumb")
SEGMENT_M = 0.03


def _hand_joints(wrist: np.ndarray, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """(15, 3) finger joints (MANO order) and (5, 3) fingertips of a hand at ``wrist``; ``sign`` -1 mirrors x."""
    joints, tips = [], []
    for finger in MANO_ORDER:
        base, direction = (np.asarray(v, float) for v in HAND_OFFSETS[finger])
        base[0] *= sign
        direction = direction / np.linalg.norm(direction) * np.array([sign, 1, 1])
        for k in range(3):
            joints.append(wrist + base + k * SEGMENT_M * direction)
        tips.append(wrist + base + 3 * SEGMENT_M * direction)
    return np.array(joints), np.array(tips)


def smplx_rest_joints() -> np.ndarray:
    """(55, 3) rest joints in the ``smplx55`` order."""
    body = REST_JOINTS_M[:22]
    face = np.array([[0.0, 0.55, 0.06], [0.03, 0.62, 0.09], [-0.03, 0.62, 0.09]])
    left, _ = _hand_joints(body[20], 1.0)
    right, _ = _hand_joints(body[21], -1.0)
    return np.concatenate([body, face, left, right])


def smplx_parents() -> list[int]:
    hand = lambda wrist, first: [v for k in range(5) for v in (wrist, first + 3 * k, first + 3 * k + 1)]  # noqa: E731
    return SMPL_PARENTS[:22] + [15, 15, 15] + hand(20, 25) + hand(21, 40)


def _landmark_points() -> tuple[np.ndarray, np.ndarray]:
    """(51, 3) landmark positions on a face plane in front of the head and (51,) True where on the jaw."""
    pts, on_jaw = [], []
    cx, cy, z = 0.0, 0.60, 0.13
    for k in range(5):
        pts += [(-0.05 + 0.01 * k, cy + 0.045, z)]  # right eyebrow (subject's right = -x)
    for k in range(5):
        pts += [(0.01 + 0.01 * k, cy + 0.045, z)]
    for k in range(4):
        pts += [(cx, cy + 0.02 - 0.012 * k, z + 0.01 * k)]  # nose bridge
    for k in range(5):
        pts += [(-0.016 + 0.008 * k, cy - 0.035, z + 0.02)]  # nose base
    for side in (-1, 1):  # eyes
        for k in range(6):
            a = np.pi * k / 3
            pts += [(side * 0.03 + 0.012 * np.cos(a), cy + 0.02 + 0.005 * np.sin(a), z)]
    for k in range(12):  # outer lip
        a = np.pi + 2 * np.pi * k / 12
        pts += [(0.025 * np.cos(a), cy - 0.06 + 0.012 * np.sin(a), z)]
    for k in range(8):  # inner lip
        a = np.pi + 2 * np.pi * k / 8
        pts += [(0.015 * np.cos(a), cy - 0.06 + 0.005 * np.sin(a), z)]
    pts = np.array(pts)
    on_jaw = np.zeros(51, bool)
    on_jaw[31:] = pts[31:, 1] < cy - 0.06 - 1e-9  # the lower lip moves with the jaw
    return pts, on_jaw


def build_tiny_smplx_dict(seed: int = 0, per_joint: int = 12) -> dict[str, np.ndarray]:
    """Random-but-valid SMPL-X-format dict (module docstring); ``per_joint`` scattered vertices per joint."""
    rng = np.random.default_rng(seed)
    joints = smplx_rest_joints()
    nj = len(joints)
    spread = np.where(np.arange(nj) < 22, 0.04, 0.008)
    owner = np.repeat(np.arange(nj), per_joint)
    scatter = joints[owner] + rng.normal(size=(len(owner), 3)) * spread[owner, None]
    scatter[::per_joint] = joints  # the first vertex of each joint sits on it (the J_regressor's vertex)
    lmk, on_jaw = _landmark_points()
    tri = np.array([[0.004, 0, 0], [-0.002, 0.003, 0], [-0.002, -0.003, 0]])
    lmk_verts = (lmk[:, None] + tri[None]).reshape(-1, 3)
    lmk_owner = np.repeat(np.where(on_jaw, 22, 15), 3)
    verts = np.concatenate([scatter, lmk_verts])
    num_verts = len(verts)
    sq = ((verts[:, None] - joints[None]) ** 2).sum(-1)
    weights = np.exp(-(sq - sq.min(1, keepdims=True)) / (2 * 0.05**2))
    weights[:len(scatter)][owner >= 22] = np.eye(nj)[owner[owner >= 22]]
    weights[len(scatter):] = np.eye(nj)[lmk_owner]
    weights /= weights.sum(1, keepdims=True)
    j_reg = np.zeros((nj, num_verts))
    j_reg[np.arange(nj), np.arange(nj) * per_joint] = 1.0
    lmk_faces = len(scatter) + 3 * np.arange(51)
    faces = np.concatenate([np.stack([lmk_faces, lmk_faces + 1, lmk_faces + 2], 1),
                            rng.integers(0, len(scatter), (2 * len(scatter), 3))])
    shapedirs = rng.normal(0.0, 0.01, (num_verts, 3, 20))
    shapedirs[:, :, 10:] = 0.0
    shapedirs[len(scatter):, :2, 10:] = rng.normal(0.0, 0.004, (len(lmk_verts), 2, 10))
    kintree = np.array([smplx_parents(), list(range(nj))], dtype=np.int64)
    kintree[0, 0] = ROOT_PARENT_UINT32
    return {
        "v_template": verts.astype(np.float32), "f": faces.astype(np.int64), "J_regressor": j_reg.astype(np.float32),
        "weights": weights.astype(np.float32), "posedirs": np.zeros((num_verts, 3, 486), np.float32),
        "shapedirs": shapedirs.astype(np.float32), "kintree_table": kintree,
        "hands_componentsl": np.eye(45, dtype=np.float32), "hands_componentsr": np.eye(45, dtype=np.float32),
        "hands_meanl": rng.normal(0, 0.1, 45).astype(np.float32),
        "hands_meanr": rng.normal(0, 0.1, 45).astype(np.float32),
        "lmk_faces_idx": np.arange(51, dtype=np.int64), "lmk_bary_coords": np.full((51, 3), 1 / 3, np.float32),
    }


def build_tiny_mano_dict(is_rhand: bool, seed: int = 1, per_joint: int = 10) -> dict[str, np.ndarray]:
    """Random-but-valid MANO-format dict of the tiny SMPL-X's right (``is_rhand``) or left hand."""
    rng = np.random.default_rng(seed)
    smplx_joints = smplx_rest_joints()
    wrist = smplx_joints[21 if is_rhand else 20]
    fingers, tips = _hand_joints(wrist, -1.0 if is_rhand else 1.0)
    joints = np.concatenate([wrist[None], fingers])
    owner = np.repeat(np.arange(16), per_joint)
    verts = joints[owner] + rng.normal(size=(len(owner), 3)) * 0.006
    verts[::per_joint] = joints
    verts = np.concatenate([verts, tips])
    owner = np.concatenate([owner, [3, 6, 9, 12, 15]])
    weights = np.eye(16)[owner]
    j_reg = np.zeros((16, len(verts)))
    j_reg[np.arange(16), np.arange(16) * per_joint] = 1.0
    parents = [-1] + [v for k in range(5) for v in (0, 1 + 3 * k, 2 + 3 * k)]
    kintree = np.array([parents, list(range(16))], dtype=np.int64)
    kintree[0, 0] = ROOT_PARENT_UINT32
    return {
        "v_template": verts.astype(np.float32), "f": rng.integers(0, len(verts), (2 * len(verts), 3)).astype(np.int64),
        "J_regressor": j_reg.astype(np.float32), "weights": weights.astype(np.float32),
        "posedirs": np.zeros((len(verts), 3, 135), np.float32),
        "shapedirs": rng.normal(0.0, 0.003, (len(verts), 3, 10)).astype(np.float32), "kintree_table": kintree,
        "hands_components": np.eye(45, dtype=np.float32), "hands_mean": rng.normal(0, 0.1, 45).astype(np.float32),
    }


def write_tiny_wholebody_models(folder: Path) -> dict[str, Path]:
    """Write ``SMPLX_NEUTRAL.npz``, ``MANO_RIGHT.pkl``, ``MANO_LEFT.pkl`` into ``folder``; returns their paths
    keyed ``smplx``, ``mano_right``, ``mano_left``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"smplx": folder / "SMPLX_NEUTRAL.npz", "mano_right": folder / "MANO_RIGHT.pkl",
             "mano_left": folder / "MANO_LEFT.pkl"}
    np.savez(paths["smplx"], **build_tiny_smplx_dict())
    for key, right in (("mano_right", True), ("mano_left", False)):
        with paths[key].open("wb") as handle:
            pickle.dump(build_tiny_mano_dict(right), handle)
    return paths
