"""Keypoint conventions as data: joint names in a fixed order, left/right flip pairs and the root.

Each convention is one frozen :class:`KeypointConvention` table. Names and orders follow
``/work/shared/docs/reference-spec.md`` sections A.1-A.7, which record the mks0601 loaders
(Hand4Whole ``Pose2Pose`` branch ``data/*/*.py`` and ``common/utils/human_models.py``). Joint names use
the mks0601 spellings (``L_Shoulder``, ``R_Hip``, ``Pelvis``, ``Head_top``, ...).

Conventions (``name``: source):

- ``coco17``: COCO person keypoints (spec A.3). No pelvis, so ``root`` is None.
- ``coco17_feet``: COCO-17 followed by the six COCO-WholeBody foot points in the WholeBody order
  L_Big_toe, L_Small_toe, L_Heel, R_Big_toe, R_Small_toe, R_Heel (spec A.3, 32-joint set, indices 18-23).
- ``coco18``: COCO-17 plus ``Pelvis`` (17), the hip midpoint mks0601 appends (``add_pelvis`` /
  ``add_joint``, spec A.3); the native convention of the COCO person-keypoint loader.
- ``coco_wholebody32``: Hand4Whole's whole-body 32-joint set (spec A.3): COCO-17, ``Pelvis`` (17), the six
  foot points (18-23), the left hand MCPs ``L_Index_1 .. L_Pinky_1`` (24-27) and the right ones (28-31),
  taken from ``lefthand_kpts`` / ``righthand_kpts`` indices 5, 9, 13, 17; the native convention of the
  COCO-WholeBody loader.
- ``h36m17``: Human3.6M 17 joints, Hand4Whole names (spec A.1). Root Pelvis (index 0).
- ``mpi_inf_3dhp17``: MPI-INF-3DHP 17 joints (spec A.2). Root Pelvis (index 14).
- ``mupots17``: MuPoTS-3D 17 joints (spec A.6). Same order as ``mpi_inf_3dhp17`` but spelled
  ``Thorax``/``Spine`` where MPI-INF says ``Neck``/``Torso``. Flip pairs as MPI-INF.
- ``smpl24``: the SMPL kinematic joints (spec A.7). Root Pelvis (index 0).
- ``mpii16``: MPII 16 joints (spec A.4). Root Pelvis (index 6).
- ``openpose18``: the OpenPose-18 order of the 3DPW ``openpose_result`` field (spec A.5). The spec lists
  no flip pairs for it; ours pair each ``L_*`` with its ``R_*`` name [inferred from the names].
- ``pose2pose33``: the Pose2Pose supervision set (Hand4Whole ``Pose2Pose`` branch
  ``common/utils/human_models.py``, spec A.7): SMPL body joints, hand MCPs (``*_Index_1`` ..
  ``*_Pinky_1``), face and feet. Root Pelvis (index 0). Flip pairs as the spec lists them.
- ``pose2pose25``: the Pose2Pose PositionNet set (spec A.7), the subset of ``pose2pose33`` without the
  hand MCPs, in its own order (``reduce_joint_set``). Root Pelvis (index 0). Flip pairs are the
  ``L_*``/``R_*`` pairs of its names (the spec gives the 33-set pairs; these follow from the names).
- ``blazepose33``: the 33 landmarks of MediaPipe BlazePose (``mediapipe==0.10.14``,
  ``mp.solutions.pose.PoseLandmark``; Bazarevsky et al., "BlazePose", CVPRW 2020), in its order. The names
  shared with COCO-17 are spelled as there, so :func:`annot.keypoints.convert` maps it to ``coco17``; its
  ``*_Index_1`` / ``*_Pinky_1`` are the index / pinky knuckles (the MCPs of ``pose2pose33``), ``*_Thumb_2`` the
  thumb's second knuckle, and ``*_Foot_index`` (the foot tip) reads as ``*_Big_toe`` for matching
  (``JOINT_NAME_ALIASES``).
- ``hand21``: the 21-joint hand order of Hand4Whole (``common/utils/human_models.py``, MANO
  ``joints_name``): ``Wrist``, then thumb, index, middle, ring, pinky, each from the base to the tip
  (``*_1`` .. ``*_4``). COCO-WholeBody's ``lefthand_kpts`` / ``righthand_kpts`` use the same order.
- ``freihand21``: FreiHAND's ``training_xyz.json`` order, the same names in the same order as ``hand21``
  (kept as its own name so that files record where they come from).
- ``interhand21`` / ``interhand42``: InterHand2.6M's order, per hand tip first and wrist last (``Thumb_4`` ..
  ``Thumb_1``, ``Index_4`` .. ``Pinky_1``, ``Wrist``); ``interhand42`` is the right hand (0-20) then the left
  (21-41) with ``R_`` / ``L_`` prefixes and the wrists ``R_Wrist_Hand`` (20), ``L_Wrist_Hand`` (41), its two
  roots (``root`` None).
- ``mano16``: the 16 kinematic joints of ``smplx.MANO`` (wrist; index, middle, pinky, ring, thumb x 3).
- ``coco_wholebody133``: COCO-WholeBody's 133 points: COCO-17, 6 feet, 68 face (300-W), left hand 21, right
  hand 21 (hand wrists ``L_Wrist_Hand`` / ``R_Wrist_Hand``); no root.
- ``smplx55``: the 55 SMPL-X joints: SMPL's 22 body joints (``smpl24`` spellings), ``Jaw``, ``L_Eyeball``,
  ``R_Eyeball``, 15 left-hand and 15 right-hand joints in the MANO order. Root Pelvis.

The whole-body, hand and SMPL-X name tables and their sources are in :mod:`annot.keypoints.wholebody_names`.
- ``mediapipe_hand21``: MediaPipe Hands' 21 landmarks (``mp.solutions.hands.HandLandmark``) in their names
  (``Thumb_CMC`` .. ``Pinky_Tip``); the same anatomical order as ``hand21``, to which they map by the aliases.
"""

from __future__ import annotations

from dataclasses import dataclass

from annot.keypoints.wholebody_names import (
    COCO_WHOLEBODY133_FLIP,
    COCO_WHOLEBODY133_NAMES,
    HAND21_NAMES,
    INTERHAND21_NAMES,
    INTERHAND42_NAMES,
    MANO16_NAMES,
    SMPLX55_FLIP,
    SMPLX55_NAMES,
)

__all__ = [
    "KeypointConvention",
    "CONVENTIONS",
    "H36M_EVAL_JOINTS",
    "get_convention",
    "known_conventions",
]


@dataclass(frozen=True)
class KeypointConvention:
    """One keypoint convention: joint names in order, flip pairs and root joint.

    Attributes:
        name: convention id, e.g. ``"coco17"``.
        joint_names: joint names in the exact order of the data, length ``num_joints``.
        flip_pairs: index pairs ``(i, j)`` swapped by a horizontal flip; each index in at most one pair.
        root: name of the root joint (e.g. ``"Pelvis"``), or None when the convention has none.

    Raises:
        ValueError: at construction if names repeat, a flip index is out of range or used twice,
            or ``root`` is not one of the names.
    """

    name: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    root: str | None = None

    def __post_init__(self) -> None:
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"keypoint convention {self.name!r}: joint_names contain duplicates")
        used: set[int] = set()
        for pair in self.flip_pairs:
            for idx in pair:
                if not 0 <= idx < len(self.joint_names):
                    raise ValueError(
                        f"keypoint convention {self.name!r}: flip pair {pair} has index {idx} outside "
                        f"0..{len(self.joint_names) - 1}"
                    )
                if idx in used:
                    raise ValueError(f"keypoint convention {self.name!r}: index {idx} is in two flip pairs")
                used.add(idx)
        if self.root is not None and self.root not in self.joint_names:
            raise ValueError(f"keypoint convention {self.name!r}: root {self.root!r} is not a joint name")

    @property
    def num_joints(self) -> int:
        """Number of joints ``J``."""
        return len(self.joint_names)

    def index(self, joint_name: str) -> int:
        """Position of ``joint_name`` in ``joint_names``.

        Raises:
            KeyError: naming the joint and the convention when the joint is absent.
        """
        try:
            return self.joint_names.index(joint_name)
        except ValueError:
            raise KeyError(f"joint {joint_name!r} is not in keypoint convention {self.name!r}") from None

    def flip_permutation(self) -> list[int]:
        """Index permutation ``perm`` (length ``J``) that swaps left and right.

        ``kps_flipped = kps[..., perm, :]``; joints outside every pair map to themselves. The
        permutation is its own inverse.
        """
        perm = list(range(self.num_joints))
        for i, j in self.flip_pairs:
            perm[i], perm[j] = j, i
        return perm


_COCO17_NAMES: tuple[str, ...] = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
    "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
)  # fmt: skip
_COCO17_FLIP: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16),
)  # fmt: skip

_BLAZEPOSE33_NAMES: tuple[str, ...] = (
    "Nose", "L_Eye_inner", "L_Eye", "L_Eye_outer", "R_Eye_inner", "R_Eye", "R_Eye_outer", "L_Ear", "R_Ear",
    "Mouth_L", "Mouth_R", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
    "L_Pinky_1", "R_Pinky_1", "L_Index_1", "R_Index_1", "L_Thumb_2", "R_Thumb_2", "L_Hip", "R_Hip",
    "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "L_Heel", "R_Heel", "L_Foot_index", "R_Foot_index",
)  # fmt: skip
_FINGERS: tuple[str, ...] = ("Thumb", "Index", "Middle", "Ring", "Pinky")
_HAND21_NAMES: tuple[str, ...] = HAND21_NAMES
_MEDIAPIPE_HAND21_NAMES: tuple[str, ...] = ("Wrist",) + tuple(
    f"{f}_{k}" for f, parts in (("Thumb", ("CMC", "MCP", "IP", "Tip")),) + tuple(
        (g, ("MCP", "PIP", "DIP", "Tip")) for g in _FINGERS[1:]) for k in parts)

_MPI_INF_FLIP: tuple[tuple[int, int], ...] = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13))

_CONVENTION_LIST: tuple[KeypointConvention, ...] = (
    KeypointConvention(
        name="coco17",
        joint_names=_COCO17_NAMES,
        flip_pairs=_COCO17_FLIP,
        root=None,
    ),
    KeypointConvention(
        name="coco17_feet",
        joint_names=_COCO17_NAMES
        + ("L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel"),
        flip_pairs=_COCO17_FLIP + ((17, 20), (18, 21), (19, 22)),
        root=None,
    ),
    KeypointConvention(
        name="coco18",
        joint_names=_COCO17_NAMES + ("Pelvis",),
        flip_pairs=_COCO17_FLIP,
        root="Pelvis",
    ),
    KeypointConvention(
        name="coco_wholebody32",
        joint_names=_COCO17_NAMES
        + ("Pelvis", "L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel",
           "L_Index_1", "L_Middle_1", "L_Ring_1", "L_Pinky_1", "R_Index_1", "R_Middle_1", "R_Ring_1",
           "R_Pinky_1"),
        flip_pairs=_COCO17_FLIP + ((18, 21), (19, 22), (20, 23), (24, 28), (25, 29), (26, 30), (27, 31)),
        root="Pelvis",
    ),
    KeypointConvention(
        name="h36m17",
        joint_names=(
            "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck", "Head",
            "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
        ),  # fmt: skip
        flip_pairs=((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)),
        root="Pelvis",
    ),
    KeypointConvention(
        name="mpi_inf_3dhp17",
        joint_names=(
            "Head_top", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
            "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Torso", "Head",
        ),  # fmt: skip
        flip_pairs=_MPI_INF_FLIP,
        root="Pelvis",
    ),
    KeypointConvention(
        name="mupots17",
        joint_names=(
            "Head_top", "Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
            "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Spine", "Head",
        ),  # fmt: skip
        flip_pairs=_MPI_INF_FLIP,
        root="Pelvis",
    ),
    KeypointConvention(
        name="smpl24",
        joint_names=(
            "Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle", "R_Ankle", "Chest",
            "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder",
            "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
        ),  # fmt: skip
        flip_pairs=((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)),
        root="Pelvis",
    ),
    KeypointConvention(
        name="mpii16",
        joint_names=(
            "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Thorax", "Neck",
            "Head_top", "R_Wrist", "R_Elbow", "R_Shoulder", "L_Shoulder", "L_Elbow", "L_Wrist",
        ),  # fmt: skip
        flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
        root="Pelvis",
    ),
    KeypointConvention(
        name="openpose18",
        joint_names=(
            "Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
            "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear",
        ),  # fmt: skip
        flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
        root=None,
    ),
    KeypointConvention(
        name="pose2pose33",
        joint_names=(
            "Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Neck", "L_Shoulder",
            "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Index_1", "L_Middle_1", "L_Ring_1",
            "L_Pinky_1", "R_Index_1", "R_Middle_1", "R_Ring_1", "R_Pinky_1", "Nose", "L_Eye", "R_Eye",
            "L_Ear", "R_Ear", "L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel",
        ),  # fmt: skip
        flip_pairs=(
            (1, 2), (3, 4), (5, 6), (8, 9), (10, 11), (12, 13), (14, 18), (15, 19), (16, 20), (17, 21),
            (23, 24), (25, 26), (27, 30), (28, 31), (29, 32),
        ),  # fmt: skip
        root="Pelvis",
    ),
    KeypointConvention(
        name="pose2pose25",
        joint_names=(
            "Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Neck", "L_Shoulder",
            "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Big_toe", "L_Small_toe", "L_Heel",
            "R_Big_toe", "R_Small_toe", "R_Heel", "L_Ear", "R_Ear", "L_Eye", "R_Eye", "Nose",
        ),  # fmt: skip
        flip_pairs=(
            (1, 2), (3, 4), (5, 6), (8, 9), (10, 11), (12, 13), (14, 17), (15, 18), (16, 19), (20, 21), (22, 23),
        ),  # fmt: skip
        root="Pelvis",
    ),
    KeypointConvention(
        name="blazepose33",
        joint_names=_BLAZEPOSE33_NAMES,
        flip_pairs=((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20),
                    (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)),
        root=None,
    ),
    KeypointConvention(name="hand21", joint_names=_HAND21_NAMES, flip_pairs=(), root="Wrist"),
    KeypointConvention(name="mediapipe_hand21", joint_names=_MEDIAPIPE_HAND21_NAMES, flip_pairs=(), root="Wrist"),
    KeypointConvention(name="freihand21", joint_names=HAND21_NAMES, flip_pairs=(), root="Wrist"),
    KeypointConvention(name="interhand21", joint_names=INTERHAND21_NAMES, flip_pairs=(), root="Wrist"),
    KeypointConvention(name="interhand42", joint_names=INTERHAND42_NAMES,
                       flip_pairs=tuple((i, 21 + i) for i in range(21)), root=None),
    KeypointConvention(name="mano16", joint_names=MANO16_NAMES, flip_pairs=(), root="Wrist"),
    KeypointConvention(name="coco_wholebody133", joint_names=COCO_WHOLEBODY133_NAMES,
                       flip_pairs=COCO_WHOLEBODY133_FLIP, root=None),
    KeypointConvention(name="smplx55", joint_names=SMPLX55_NAMES, flip_pairs=SMPLX55_FLIP, root="Pelvis"),
)

#: All conventions by name.
CONVENTIONS: dict[str, KeypointConvention] = {c.name: c for c in _CONVENTION_LIST}

#: The 14 ``h36m17`` indices used by the mks0601 / SPIN MPJPE protocol: every joint except
#: Pelvis (0), Torso (7) and Head (9) (spec A.1 and D.1).
H36M_EVAL_JOINTS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)


def known_conventions() -> tuple[str, ...]:
    """Names of all registered conventions, in definition order."""
    return tuple(CONVENTIONS)


def get_convention(name: str | KeypointConvention) -> KeypointConvention:
    """Look up a convention by name (a :class:`KeypointConvention` is returned unchanged).

    Raises:
        ValueError: for an unknown name; the message lists the known names.
    """
    if isinstance(name, KeypointConvention):
        return name
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown keypoint convention {name!r}; known: {', '.join(known_conventions())}"
        ) from None
