"""Joint-name tables of the whole-body, hand and SMPL-X conventions (data only; issue #16).

:mod:`annot.keypoints.conventions` turns these tuples into :class:`~annot.keypoints.conventions.KeypointConvention`
objects. Spellings follow the rest of ``annot.keypoints`` (mks0601 Hand4Whole ``common/utils/human_models.py``):
``L_``/``R_`` prefixes, fingers ``Thumb``, ``Index``, ``Middle``, ``Ring``, ``Pinky`` numbered from the base,
``*_1`` .. ``*_4`` (``*_4`` is the finger tip; the thumb's ``_1`` is its CMC, the other fingers' ``_1`` their MCP).

Sources, checked on the files:

* **COCO-WholeBody** (Jin et al., ECCV 2020; jin-s13/COCO-WholeBody ``data_format.md``): 133 points =
  ``keypoints`` (17, COCO order) + ``foot_kpts`` (6: L big toe, L small toe, L heel, R big toe, R small toe,
  R heel) + ``face_kpts`` (68) + ``lefthand_kpts`` (21) + ``righthand_kpts`` (21), in that order (the order of
  mmpose's ``coco_wholebody`` dataset info). The hand's wrist is spelled ``L_Wrist_Hand`` / ``R_Wrist_Hand``
  (as Hand4Whole's ``MSCOCO.py``) so that it never matches the body's ``L_Wrist``.
* **Face, 68 points**: the iBUG 300-W markup that COCO-WholeBody's ``face_kpts`` use. 0-16 contour (from the
  subject's right ear along the chin to the left ear), 17-21 right eyebrow, 22-26 left eyebrow, 27-30 nose
  bridge, 31-35 nose base, 36-41 right eye, 42-47 left eye, 48-59 outer lip, 60-67 inner lip ("right" /
  "left" = the subject's, i.e. the image left of a frontal face is the subject's right). Names
  ``Contour_1`` .. ``Mouth_Inner_8``, numbered within each group in the 300-W order.
* **Hands, 21 points**: ``HAND21_NAMES`` is MANO-with-tips order (Hand4Whole ``MANO.joints_name``):
  ``Wrist``, then thumb, index, middle, ring, pinky, each base to tip. COCO-WholeBody's hands and
  **FreiHAND** (Zimmermann et al., ICCV 2019; ``training_xyz.json``: wrist, thumb mcp..tip, index ...) use it.
  **InterHand2.6M** (Moon et al., ECCV 2020; facebookresearch/InterHand2.6M, ``annotations/skeleton.txt`` read by
  ``data/InterHand2.6M/dataset.py`` with ``root_joint_idx = {'right': 20, 'left': 41}``) stores each hand
  *tip first, wrist last*: ``thumb4, thumb3, thumb2, thumb1, index4 .. pinky1, wrist``, the right hand
  (0-20) before the left (21-41): ``INTERHAND21_NAMES`` / ``INTERHAND42_NAMES``.
* **MANO, 16 joints**: the kinematic joints of ``smplx.MANO`` (``output.joints``): wrist, then index, middle,
  pinky, ring, thumb, three each (the MANO kinematic-tree order, not the anatomical one).
* **SMPL-X, 55 joints** (Pavlakos et al., CVPR 2019; ``smplx.joint_names.JOINT_NAMES[:55]``): the 22 SMPL body
  joints (spelled as ``smpl24``: ``Torso``, ``Spine``, ``Chest`` for spine1..3), ``Jaw``, ``L_Eyeball``,
  ``R_Eyeball`` (smplx ``left_eye_smplhf``: the eyeball's rotation centre, deliberately not named
  ``L_Eye`` so that it does not match COCO's eye keypoint), then 15 left-hand and 15 right-hand joints in
  the MANO order. SMPL-X's ``Index_1`` is the MCP joint, as COCO-WholeBody's ``Index_1`` keypoint
  (Hand4Whole matches them the same way).
"""
from __future__ import annotations

FINGERS: tuple[str, ...] = ("Thumb", "Index", "Middle", "Ring", "Pinky")
#: The MANO kinematic-tree order of the fingers (index, middle, pinky, ring, thumb).
MANO_FINGER_ORDER: tuple[str, ...] = ("Index", "Middle", "Pinky", "Ring", "Thumb")

HAND21_NAMES: tuple[str, ...] = ("Wrist",) + tuple(f"{f}_{k}" for f in FINGERS for k in range(1, 5))
INTERHAND21_NAMES: tuple[str, ...] = tuple(f"{f}_{k}" for f in FINGERS for k in range(4, 0, -1)) + ("Wrist",)
MANO16_NAMES: tuple[str, ...] = ("Wrist",) + tuple(f"{f}_{k}" for f in MANO_FINGER_ORDER for k in range(1, 4))


def sided(names: tuple[str, ...], side: str) -> tuple[str, ...]:
    """``names`` of one hand with the side prefix ``"L"`` or ``"R"``; ``Wrist`` becomes ``<side>_Wrist_Hand``.

    Raises:
        ValueError: ``side`` is not ``"L"`` or ``"R"``.
    """
    if side not in ("L", "R"):
        raise ValueError(f"hand side must be 'L' or 'R', got {side!r}")
    return tuple(f"{side}_Wrist_Hand" if n == "Wrist" else f"{side}_{n}" for n in names)


INTERHAND42_NAMES: tuple[str, ...] = sided(INTERHAND21_NAMES, "R") + sided(INTERHAND21_NAMES, "L")

FACE68_NAMES: tuple[str, ...] = (
    tuple(f"Contour_{k}" for k in range(1, 18))
    + tuple(f"R_Eyebrow_{k}" for k in range(1, 6)) + tuple(f"L_Eyebrow_{k}" for k in range(1, 6))
    + tuple(f"Nose_Bridge_{k}" for k in range(1, 5)) + tuple(f"Nose_Base_{k}" for k in range(1, 6))
    + tuple(f"R_Eye_{k}" for k in range(1, 7)) + tuple(f"L_Eye_{k}" for k in range(1, 7))
    + tuple(f"Mouth_Outer_{k}" for k in range(1, 13)) + tuple(f"Mouth_Inner_{k}" for k in range(1, 9))
)
#: 300-W mirror pairs, indices into the 68 face points.
FACE68_FLIP: tuple[tuple[int, int], ...] = (
    tuple((i, 16 - i) for i in range(8))  # contour
    + tuple((17 + i, 26 - i) for i in range(5))  # eyebrows
    + ((31, 35), (32, 34))  # nose base
    + ((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46))  # eyes
    + ((48, 54), (49, 53), (50, 52), (55, 59), (56, 58))  # outer lip
    + ((60, 64), (61, 63), (65, 67))  # inner lip
)

_COCO17: tuple[str, ...] = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
    "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
)  # fmt: skip
_FEET6: tuple[str, ...] = ("L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel")

COCO_WHOLEBODY133_NAMES: tuple[str, ...] = (
    _COCO17 + _FEET6 + FACE68_NAMES + sided(HAND21_NAMES, "L") + sided(HAND21_NAMES, "R")
)
#: Index ranges of the parts of ``coco_wholebody133`` (the json fields, in order).
COCO_WHOLEBODY133_PARTS: dict[str, range] = {
    "body": range(0, 17), "foot": range(17, 23), "face": range(23, 91), "lefthand": range(91, 112),
    "righthand": range(112, 133),
}
COCO_WHOLEBODY133_FLIP: tuple[tuple[int, int], ...] = (
    ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    + ((17, 20), (18, 21), (19, 22))
    + tuple((23 + i, 23 + j) for i, j in FACE68_FLIP)
    + tuple((91 + i, 112 + i) for i in range(21))
)

_SMPL_BODY22: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle", "R_Ankle", "Chest",
    "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder",
    "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)  # fmt: skip
SMPLX55_NAMES: tuple[str, ...] = (
    _SMPL_BODY22 + ("Jaw", "L_Eyeball", "R_Eyeball")
    + tuple(f"L_{n}" for n in MANO16_NAMES[1:]) + tuple(f"R_{n}" for n in MANO16_NAMES[1:])
)
SMPLX55_FLIP: tuple[tuple[int, int], ...] = (
    ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (23, 24))
    + tuple((25 + k, 40 + k) for k in range(15))
)
#: Index ranges of the SMPL-X parts (body, face: jaw and eyeballs, hands).
SMPLX55_PARTS: dict[str, range] = {
    "body": range(0, 22), "face": range(22, 25), "lefthand": range(25, 40), "righthand": range(40, 55),
}

__all__ = [
    "COCO_WHOLEBODY133_FLIP", "COCO_WHOLEBODY133_NAMES", "COCO_WHOLEBODY133_PARTS", "FACE68_FLIP", "FACE68_NAMES",
    "FINGERS", "HAND21_NAMES", "INTERHAND21_NAMES", "INTERHAND42_NAMES", "MANO16_NAMES", "MANO_FINGER_ORDER",
    "SMPLX55_FLIP", "SMPLX55_NAMES", "SMPLX55_PARTS", "sided",
]
