"""The whole-body, hand and SMPL-X keypoint conventions of issue #16 (annot.keypoints.wholebody_names).

Orders are checked against the sources: smplx's own ``JOINT_NAMES`` for SMPL-X, InterHand2.6M's
``skeleton.txt`` (right wrist 20, left wrist 41, tip first) and COCO-WholeBody's part lengths.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from annot.keypoints import (
    COCO_WHOLEBODY133_PARTS,
    SMPLX55_PARTS,
    conversion_index,
    convert,
    flip_keypoints,
    get_convention,
    sided,
)

#: InterHand2.6M's annotations/skeleton.txt (name, index) for the right hand, as the dataset ships it.
INTERHAND_SKELETON_RIGHT = (
    "r_thumb4 r_thumb3 r_thumb2 r_thumb1 r_index4 r_index3 r_index2 r_index1 r_middle4 r_middle3 r_middle2 "
    "r_middle1 r_ring4 r_ring3 r_ring2 r_ring1 r_pinky4 r_pinky3 r_pinky2 r_pinky1 r_wrist"
).split()


@pytest.mark.parametrize("name, length", [("coco_wholebody133", 133), ("smplx55", 55), ("interhand42", 42),
                                          ("interhand21", 21), ("freihand21", 21), ("mano16", 16)])
def test_lengths(name, length):
    assert get_convention(name).num_joints == length


def test_wholebody_parts_in_the_json_order():
    conv = get_convention("coco_wholebody133")
    sizes = {part: len(r) for part, r in COCO_WHOLEBODY133_PARTS.items()}
    assert sizes == {"body": 17, "foot": 6, "face": 68, "lefthand": 21, "righthand": 21}
    assert conv.joint_names[:17] == get_convention("coco17").joint_names
    assert conv.joint_names[:23] == get_convention("coco17_feet").joint_names
    assert conv.joint_names[91:112] == sided(get_convention("hand21").joint_names, "L")
    assert conv.joint_names[112] == "R_Wrist_Hand" and conv.joint_names[112 + 5] == "R_Index_1"
    # face (0-based 300-W indices): 31 is the first nose-base point, 36 the right eye's outer corner
    assert conv.joint_names[23 + 31] == "Nose_Base_1" and conv.joint_names[23 + 36] == "R_Eye_1"


def test_wholebody_flip_is_a_mirror():
    conv = get_convention("coco_wholebody133")
    perm = conv.flip_permutation()
    assert perm[91:112] == list(range(112, 133)) and perm[23] == 23 + 16  # hands swap; contour ends swap
    assert perm[23 + 8] == 23 + 8 and perm[23 + 30] == 23 + 30  # chin and nose bridge tip stay
    assert perm[23 + 36] == 23 + 45 and perm[23 + 48] == 23 + 54  # eye outer corners, mouth corners
    for i, j in conv.flip_pairs:  # a pair joins a left and a right name, or two face points of one group
        a, b = conv.joint_names[i], conv.joint_names[j]
        assert a.split("_")[0] != b.split("_")[0] or a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0]


def test_smplx_order_is_smplx_joint_names():
    from smplx.joint_names import JOINT_NAMES

    conv = get_convention("smplx55")
    side = {"left": "L", "right": "R"}

    def ours(name: str) -> str:
        if name.endswith("_smplhf"):
            return f"{side[name.split('_')[0]]}_Eyeball"
        words = name.split("_")
        if words[0] in side and words[1][:-1] in ("index", "middle", "pinky", "ring", "thumb"):
            return f"{side[words[0]]}_{words[1][:-1].capitalize()}_{words[1][-1]}"
        return name
    spelled = [ours(n) for n in JOINT_NAMES[:55]]
    smpl = get_convention("smpl24").joint_names
    # the body joints are spelled as smpl24; the rest as smplx's with our prefixes
    assert conv.joint_names[:22] == smpl[:22]
    assert list(conv.joint_names[22:]) == [s.capitalize() if s == "jaw" else s for s in spelled[22:]]
    assert {k: len(r) for k, r in SMPLX55_PARTS.items()} == {"body": 22, "face": 3, "lefthand": 15, "righthand": 15}
    assert conv.flip_permutation()[23] == 24 and conv.flip_permutation()[25] == 40


def test_interhand_order_matches_its_skeleton_file():
    conv = get_convention("interhand42")
    for k, raw in enumerate(INTERHAND_SKELETON_RIGHT):
        finger = raw[2:-1].capitalize() if raw != "r_wrist" else "Wrist"
        expected = "R_Wrist_Hand" if finger == "Wrist" else f"R_{finger}_{raw[-1]}"
        assert conv.joint_names[k] == expected
        assert conv.joint_names[21 + k] == "L" + expected[1:]
    assert conv.index("R_Wrist_Hand") == 20 and conv.index("L_Wrist_Hand") == 41  # mks0601 root_joint_idx


def test_freihand_and_interhand_to_hand21_hand_checked():
    assert conversion_index("freihand21", "hand21") == tuple(range(21))
    index = conversion_index("interhand21", "hand21")
    assert index[0] == 20  # Wrist is InterHand's last point
    assert index[1:5] == (3, 2, 1, 0)  # Thumb_1 (CMC) .. Thumb_4 (tip) come tip first
    assert index[17:21] == (19, 18, 17, 16)  # pinky


@pytest.mark.parametrize("src, dst", [("interhand21", "hand21"), ("freihand21", "interhand21"),
                                      ("coco_wholebody133", "coco_wholebody133")])
def test_round_trip_by_name(src, dst):
    kps = np.random.default_rng(0).normal(size=(2, get_convention(src).num_joints, 3))
    there, mask = convert(kps, src, dst)
    back, mask_back = convert(there, dst, src)
    assert mask.all() and mask_back.all()
    np.testing.assert_array_equal(back, kps)


def test_interhand42_to_wholebody_hands_and_back():
    kps = torch.randn(42, 3, dtype=torch.float64)
    whole, mask = convert(kps, "interhand42", "coco_wholebody133")
    assert mask.sum() == 42 and mask[91:].all() and not mask[:91].any()
    # right wrist: InterHand 20 -> whole-body 112; left thumb tip: InterHand 21 -> whole-body 91 + 4
    assert torch.equal(whole[112], kps[20]) and torch.equal(whole[95], kps[21])
    back, mask_back = convert(whole, "coco_wholebody133", "interhand42")
    assert mask_back.all() and torch.equal(back, kps)


def test_wholebody_to_smplx_and_body_sets():
    kps = np.arange(133 * 2, dtype=np.float64).reshape(133, 2)
    smplx, mask = convert(kps, "coco_wholebody133", "smplx55")
    smplx_names = get_convention("smplx55").joint_names
    filled = {smplx_names[i] for i in np.flatnonzero(mask)}
    # the COCO body points that share a name, and the finger joints *_1 .. *_3 (MCP, PIP, DIP)
    assert {"L_Wrist", "R_Knee", "L_Index_1", "R_Thumb_3", "L_Pinky_2"} <= filled
    assert not ({"Pelvis", "Jaw", "L_Eyeball", "Spine"} & filled)
    np.testing.assert_array_equal(smplx[smplx_names.index("L_Index_1")], kps[91 + 5])
    body, body_mask = convert(kps, "coco_wholebody133", "coco_wholebody32")
    assert body_mask.sum() == 31  # all but the Pelvis, which the loader computes
    np.testing.assert_array_equal(body[24], kps[91 + 5])  # L_Index_1, the MCP used by Pose2Pose


def test_flip_wholebody_image_keypoints():
    kps = np.zeros((133, 3))
    kps[91:112, 0] = 10.0  # left hand at x = 10
    out = flip_keypoints(kps, "coco_wholebody133", image_width=100)
    assert (out[112:, 0] == 89.0).all()  # now the right hand, mirrored


def test_sided_rejects_a_bad_side():
    with pytest.raises(ValueError, match="side"):
        sided(("Wrist",), "X")
