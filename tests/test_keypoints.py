"""Tests for annot.keypoints: tables against reference-spec A.1-A.7 (copied here independently)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annot.keypoints import (
    CONVENTIONS,
    H36M_EVAL_JOINTS,
    KeypointConvention,
    convert,
    flip_keypoints,
    get_convention,
)

# Written out from /work/shared/docs/reference-spec.md, not from the module.
SPEC_NAMES = {
    "coco17": ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow",
               "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle"),
    "h36m17": ("Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck", "Head",
               "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist"),
    "mpi_inf_3dhp17": ("Head_top", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow",
                       "L_Wrist", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis",
                       "Torso", "Head"),
    "mupots17": ("Head_top", "Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
                 "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Spine", "Head"),
    "smpl24": ("Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle", "R_Ankle",
               "Chest", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
               "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand"),
    "mpii16": ("R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Thorax", "Neck",
               "Head_top", "R_Wrist", "R_Elbow", "R_Shoulder", "L_Shoulder", "L_Elbow", "L_Wrist"),
    "openpose18": ("Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
                   "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear",
                   "L_Ear"),
}  # fmt: skip
SPEC_NAMES["coco17_feet"] = SPEC_NAMES["coco17"] + (
    "L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel",
)  # fmt: skip
# COCO + the mks0601 Pelvis, and Hand4Whole's whole-body 32-joint set (spec A.3).
SPEC_NAMES["coco18"] = SPEC_NAMES["coco17"] + ("Pelvis",)
SPEC_NAMES["coco_wholebody32"] = SPEC_NAMES["coco17"] + (
    "Pelvis", "L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel",
    "L_Index_1", "L_Middle_1", "L_Ring_1", "L_Pinky_1", "R_Index_1", "R_Middle_1", "R_Ring_1", "R_Pinky_1",
)  # fmt: skip
# Pose2Pose supervision (33) and PositionNet (25) sets, spec A.7.
SPEC_NAMES["pose2pose33"] = (
    "Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Neck", "L_Shoulder", "R_Shoulder",
    "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Index_1", "L_Middle_1", "L_Ring_1", "L_Pinky_1",
    "R_Index_1", "R_Middle_1", "R_Ring_1", "R_Pinky_1", "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear",
    "L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel",
)  # fmt: skip
SPEC_NAMES["pose2pose25"] = (
    "Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Neck", "L_Shoulder", "R_Shoulder",
    "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe",
    "R_Small_toe", "R_Heel", "L_Ear", "R_Ear", "L_Eye", "R_Eye", "Nose",
)  # fmt: skip

SPEC_FLIP = {
    "coco17": ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    "h36m17": ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)),
    "mpi_inf_3dhp17": ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)),
    "mupots17": ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)),
    "smpl24": ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)),
    "mpii16": ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    "pose2pose33": ((1, 2), (3, 4), (5, 6), (8, 9), (10, 11), (12, 13), (14, 18), (15, 19), (16, 20), (17, 21),
                    (23, 24), (25, 26), (27, 30), (28, 31), (29, 32)),
    "coco_wholebody32": ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (18, 21),
                         (19, 22), (20, 23), (24, 28), (25, 29), (26, 30), (27, 31)),
}
SPIN_SMPL_FLIP_PERM = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
SPEC_ROOT_INDEX = {"h36m17": 0, "mpi_inf_3dhp17": 14, "mupots17": 14, "smpl24": 0, "mpii16": 6,
                   "pose2pose33": 0, "pose2pose25": 0}


def test_all_conventions_present() -> None:
    # plus the MediaPipe ones of issue #17, checked against MediaPipe's own enums in tests/test_photos.py
    # and the whole-body / hand / SMPL-X ones of issue #16, checked in tests/test_keypoints_wholebody.py
    assert set(CONVENTIONS) == set(SPEC_NAMES) | {"blazepose33", "hand21", "mediapipe_hand21"} | {
        "freihand21", "interhand21", "interhand42", "mano16", "coco_wholebody133", "smplx55"}


@pytest.mark.parametrize("name", sorted(SPEC_NAMES))
def test_joint_order_matches_spec(name: str) -> None:
    conv = get_convention(name)
    assert conv.name == name
    assert conv.joint_names == SPEC_NAMES[name]
    assert conv.num_joints == len(SPEC_NAMES[name])


@pytest.mark.parametrize("name", sorted(SPEC_FLIP))
def test_flip_pairs_match_spec(name: str) -> None:
    assert {frozenset(p) for p in get_convention(name).flip_pairs} == {frozenset(p) for p in SPEC_FLIP[name]}


def test_smpl_flip_permutation_equals_spin() -> None:
    assert get_convention("smpl24").flip_permutation() == SPIN_SMPL_FLIP_PERM


@pytest.mark.parametrize("name", sorted(SPEC_ROOT_INDEX))
def test_root(name: str) -> None:
    conv = get_convention(name)
    assert conv.root == "Pelvis"
    assert conv.index(conv.root) == SPEC_ROOT_INDEX[name]


def _mirror_name(n: str) -> str:
    if n.startswith("L_"):
        return "R_" + n[2:]
    if n.startswith("R_"):
        return "L_" + n[2:]
    return n


@pytest.mark.parametrize("name", sorted(SPEC_NAMES))
def test_flip_permutation_involutive_and_swaps_sides(name: str) -> None:
    conv = get_convention(name)
    perm = conv.flip_permutation()
    assert sorted(perm) == list(range(conv.num_joints))
    assert [perm[p] for p in perm] == list(range(conv.num_joints))
    for i, j in enumerate(perm):
        # every L_/R_ joint maps to its mirror name; centre joints map to themselves
        assert conv.joint_names[j] == _mirror_name(conv.joint_names[i]), (name, conv.joint_names[i])


def test_h36m_eval_joints_exclude_pelvis_torso_head() -> None:
    assert H36M_EVAL_JOINTS == (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
    h36m = get_convention("h36m17")
    excluded = {h36m.joint_names[i] for i in range(17) if i not in H36M_EVAL_JOINTS}
    assert excluded == {"Pelvis", "Torso", "Head"}


def test_unknown_convention_and_joint_errors() -> None:
    with pytest.raises(ValueError, match="coco17"):
        get_convention("cocoo")
    with pytest.raises(KeyError, match="coco17"):
        get_convention("coco17").index("Pelvis")


def test_invalid_table_rejected() -> None:
    with pytest.raises(ValueError):
        KeypointConvention("bad", ("A", "A"), ())
    with pytest.raises(ValueError):
        KeypointConvention("bad", ("A", "B"), ((0, 2),))
    with pytest.raises(ValueError):
        KeypointConvention("bad", ("A", "B", "C"), ((0, 1), (1, 2)))
    with pytest.raises(ValueError):
        KeypointConvention("bad", ("A", "B"), (), root="Pelvis")


def test_convert_coco_to_smpl_torch() -> None:
    kps = torch.arange(2 * 3 * 17 * 3, dtype=torch.float32).reshape(2, 3, 17, 3) + 1.0  # no zeros
    out, mask = convert(kps, "coco17", "smpl24")
    assert out.shape == (2, 3, 24, 3) and isinstance(out, torch.Tensor) and mask.dtype == torch.bool
    # COCO L_Shoulder is index 5; SMPL L_Shoulder is index 16 (spec A.3 / A.7)
    assert torch.equal(out[..., 16, :], kps[..., 5, :])
    assert torch.equal(out[..., 21, :], kps[..., 10, :])  # R_Wrist
    assert torch.equal(out[..., 1, :], kps[..., 11, :])  # L_Hip
    matched = {1, 2, 4, 5, 7, 8, 16, 17, 18, 19, 20, 21}
    assert mask.tolist() == [i in matched for i in range(24)]
    assert torch.all(out[..., ~mask, :] == 0)


def test_convert_numpy_and_gradients() -> None:
    kps = np.random.default_rng(0).normal(size=(17, 2)).astype(np.float32)
    out, mask = convert(kps, "coco17", "openpose18")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and mask.dtype == bool
    assert np.array_equal(out[5], kps[5]) and np.array_equal(out[0], kps[0])  # L_Shoulder, Nose
    assert np.array_equal(out[14], kps[2])  # R_Eye
    assert not mask[1] and np.all(out[1] == 0)  # COCO has no Neck
    t = torch.randn(4, 17, 3, requires_grad=True)
    convert(t, "coco17", "smpl24")[0].sum().backward()
    assert t.grad is not None and t.grad[:, :5].abs().sum() == 0 and torch.all(t.grad[:, 5:] == 1)


def test_convert_round_trip() -> None:
    kps = torch.randn(5, 17, 3)
    smpl, mask = convert(kps, "h36m17", "smpl24")
    back, back_mask = convert(smpl, "smpl24", "h36m17")
    # joints whose names exist in both survive the round trip; the rest are masked
    assert torch.equal(back[:, back_mask], kps[:, back_mask])
    assert set(np.array(SPEC_NAMES["h36m17"])[back_mask.numpy()]) == set(SPEC_NAMES["h36m17"]) - {"Head_top"}
    same, same_mask = convert(kps, "h36m17", "h36m17")
    assert torch.equal(same, kps) and bool(same_mask.all())


def test_mupots_alias_equals_mpi_inf() -> None:
    kps = np.random.default_rng(1).normal(size=(3, 17, 3))
    out, mask = convert(kps, "mupots17", "mpi_inf_3dhp17")
    assert mask.all() and np.array_equal(out, kps)
    out, mask = convert(kps, "mpi_inf_3dhp17", "mupots17")
    assert mask.all() and np.array_equal(out, kps)


def test_no_global_alias_in_smpl_or_mpii() -> None:
    # SMPL has both Torso and Spine; MPII has both Thorax and Neck: they must stay distinct joints
    kps = torch.randn(24, 3)
    out, _ = convert(kps, "smpl24", "smpl24")
    assert torch.equal(out, kps)
    out, mask = convert(kps, "smpl24", "mpii16")
    assert not mask[7] and torch.equal(out[8], kps[12])  # MPII Thorax unmatched, Neck <- SMPL Neck


def test_convert_bad_shape() -> None:
    with pytest.raises(ValueError, match="coco17"):
        convert(torch.zeros(2, 18, 2), "coco17", "smpl24")


def test_flip_keypoints_pixels() -> None:
    kps = np.zeros((17, 3), dtype=np.float32)
    kps[5] = (10.0, 20.0, 1.0)  # L_Shoulder
    kps[6] = (30.0, 21.0, 0.5)  # R_Shoulder
    kps[0] = (15.0, 5.0, 1.0)  # Nose
    out = flip_keypoints(kps, "coco17", image_width=100)
    np.testing.assert_allclose(out[5], (100 - 1 - 30.0, 21.0, 0.5))
    np.testing.assert_allclose(out[6], (100 - 1 - 10.0, 20.0, 1.0))
    np.testing.assert_allclose(out[0], (84.0, 5.0, 1.0))
    assert kps[5, 0] == 10.0  # input untouched
    # flipping twice is the identity
    np.testing.assert_allclose(flip_keypoints(out, "coco17", image_width=100), kps)


def test_flip_keypoints_torch_no_width() -> None:
    kps = torch.randn(2, 24, 3)
    out = flip_keypoints(kps, "smpl24")
    assert torch.equal(out, kps[:, SPIN_SMPL_FLIP_PERM])


def test_pose2pose25_is_the_33_set_without_hand_mcps() -> None:
    # reduce_joint_set (spec A.7): every PositionNet joint is picked from the 33-set by name; the 8 hand
    # MCPs are the only supervision joints left out.
    _, mask = convert(np.zeros((33, 3)), "pose2pose33", "pose2pose25")
    assert bool(mask.all())
    kps33 = np.arange(33 * 2, dtype=np.float64).reshape(33, 2)
    kps25, _ = convert(kps33, "pose2pose33", "pose2pose25")
    assert kps25[14].tolist() == kps33[27].tolist()  # L_Big_toe: 33-index 27 -> 25-index 14
    assert kps25[24].tolist() == kps33[22].tolist()  # Nose: 22 -> 24
    _, back = convert(kps25, "pose2pose25", "pose2pose33")
    assert [SPEC_NAMES["pose2pose33"][i] for i in np.flatnonzero(~back)] == [
        "L_Index_1", "L_Middle_1", "L_Ring_1", "L_Pinky_1", "R_Index_1", "R_Middle_1", "R_Ring_1", "R_Pinky_1"]


def test_h36m_to_pose2pose33_by_name() -> None:
    # H36M Neck supervises the 33-set Neck (spec A.7); Head_top / Torso / Head have no 33-set joint.
    h36m = torch.arange(17 * 3, dtype=torch.float32).reshape(17, 3) + 1.0
    out, mask = convert(h36m, "h36m17", "pose2pose33")
    assert torch.equal(out[7], h36m[8]) and torch.equal(out[0], h36m[0]) and torch.equal(out[13], h36m[16])
    assert int(mask.sum()) == 14 and bool(mask[:14].all()) and not bool(mask[14:].any())
