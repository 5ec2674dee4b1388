"""MPJPE / PA-MPJPE / MPVPE / PA-MPVPE and MuPoTS-3D 3DPCK against hand counts and scipy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.transform import Rotation

from annot.keypoints import get_convention
from annot.metrics import (
    H36M_EVAL_JOINTS,
    MPJPE,
    MPVPE,
    MUPOTS_PARENTS,
    MUPOTS_TRAVERSAL_ORDER,
    PAMPJPE,
    PAMPVPE,
    MuPoTS3DPCK,
    match_people,
    rescale_to_gt_bone_lengths,
)


def _t(x: np.ndarray | list) -> torch.Tensor:
    return torch.tensor(np.asarray(x, dtype=np.float64))


# --- MPJPE / PA-MPJPE ------------------------------------------------------------------------------


def test_mpjpe_hand_computed_3_4_5() -> None:
    gt = np.zeros((2, 2, 3))
    pred = gt.copy()
    pred[0, 0] = [0.03, 0.04, 0.0]  # 50 mm
    pred[0, 1] = [0.0, 0.06, 0.08]  # 100 mm
    pred[1, 1] = [0.05, 0.12, 0.0]  # 130 mm (5-12-13), joint 0 exact
    metric = MPJPE(root_index=None)
    metric.update(_t(pred), _t(gt))
    assert metric.compute().item() == pytest.approx((75.0 + 65.0) / 2, rel=1e-12)

    # root-aligned on joint 0: sample 0 -> joint 1 error |(0,.06,.08)-(.03,.04,0)| = sqrt(9+4+64) cm
    rooted = MPJPE(root_index=0)
    rooted.update(_t(pred), _t(gt))
    expected = (math.sqrt(9 + 4 + 64) * 10 / 2 + 130.0 / 2) / 2
    assert rooted.compute().item() == pytest.approx(expected, rel=1e-12)
    only_joint1 = MPJPE(root_index=0, eval_joints=(1,))
    only_joint1.update(_t(pred), _t(gt))
    assert only_joint1.compute().item() == pytest.approx((math.sqrt(77) * 10 + 130.0) / 2, rel=1e-12)


def _h36m_batch(seed: int, batch: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(batch, 17, 3)) * 0.3 + np.array([0.0, 0.0, 4.0])
    pred = gt + rng.normal(scale=0.05, size=gt.shape) + rng.normal(size=(batch, 1, 3))
    return pred, gt


def test_mpjpe_mks0601_protocol_matches_numpy() -> None:
    pred, gt = _h36m_batch(0)
    metric = MPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS)
    metric.update(_t(pred), _t(gt))
    idx = [1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16]
    ref = [np.linalg.norm((p - p[0])[idx] - (g - g[0])[idx], axis=1).mean() * 1000 for p, g in zip(pred, gt)]
    assert metric.compute().item() == pytest.approx(np.mean(ref), rel=1e-12)


def test_mpjpe_invariant_to_translation_of_prediction() -> None:
    pred, gt = _h36m_batch(1)
    shifted = pred + np.array([0.7, -0.3, 2.0])
    values = []
    for p in (pred, shifted):
        metric = MPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS)
        metric.update(_t(p), _t(gt))
        values.append(metric.compute().item())
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    absolute = MPJPE(root_index=None)  # the same shift is visible without root alignment
    absolute.update(_t(shifted), _t(gt))
    assert absolute.compute().item() > values[0] + 500


def scipy_pa_error_mm(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean L2 (mm) after a scipy orthogonal-Procrustes similarity fit, with a reflection sign fix."""
    x, y = pred - pred.mean(0), gt - gt.mean(0)
    r, sum_sv = scipy.linalg.orthogonal_procrustes(x, y)
    s = sum_sv / (x**2).sum()
    if np.linalg.det(r) < 0:  # orthogonal_procrustes allows reflections; the protocol does not
        u, sv, vt = scipy.linalg.svd(x.T @ y)
        r = u @ np.diag([1.0, 1.0, -1.0]) @ vt
        s = (sv[0] + sv[1] - sv[2]) / (x**2).sum()
    aligned = s * x @ r + gt.mean(0)
    return float(np.linalg.norm(aligned - gt, axis=1).mean() * 1000)


def test_pa_mpjpe_matches_scipy_on_eval_joints() -> None:
    pred, gt = _h36m_batch(2)
    rot = Rotation.random(random_state=5).as_matrix()
    pred = pred @ rot.T * 1.2  # a rotated, scaled prediction: PA must undo it
    metric = PAMPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS)
    metric.update(_t(pred), _t(gt))
    ref = [scipy_pa_error_mm(p[list(H36M_EVAL_JOINTS)], g[list(H36M_EVAL_JOINTS)]) for p, g in zip(pred, gt)]
    assert metric.compute().item() == pytest.approx(np.mean(ref), rel=1e-10)
    plain = MPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS)
    plain.update(_t(pred), _t(gt))
    assert plain.compute().item() > 2 * metric.compute().item()


def test_pa_mpjpe_reflection_is_not_undone() -> None:
    # Hand-derived (see test_procrustes): axis points at +-0.1, +-0.2, +-0.3 m mirrored in x -> 600/7 mm.
    a, b, c = 0.1, 0.2, 0.3
    pred = np.array([[a, 0, 0], [-a, 0, 0], [0, b, 0], [0, -b, 0], [0, 0, c], [0, 0, -c]])
    gt = pred * np.array([-1.0, 1.0, 1.0])
    metric = PAMPJPE(root_index=None)
    metric.update(_t(pred[None]), _t(gt[None]))
    assert metric.compute().item() == pytest.approx(600 / 7, rel=1e-10)
    assert metric.compute().item() == pytest.approx(scipy_pa_error_mm(pred, gt), rel=1e-10)


def test_pa_mpjpe_invariant_to_similarity_of_prediction() -> None:
    pred, gt = _h36m_batch(3)
    rot = Rotation.from_rotvec([0.4, 1.1, -0.7]).as_matrix()
    moved = 1.7 * pred @ rot.T + np.array([0.3, 1.0, -2.0])
    values = []
    for p in (pred, moved):
        metric = PAMPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS)
        metric.update(_t(p), _t(gt))
        values.append(metric.compute().item())
    assert values[0] > 10.0
    assert values[0] == pytest.approx(values[1], rel=1e-9)


def test_mask_skips_samples() -> None:
    pred, gt = _h36m_batch(4)
    pred[2] = np.nan  # a skipped sample must not poison the sums
    mask = torch.tensor([True, True, False, True, True, True])
    masked = MPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS)
    masked.update(_t(pred), _t(gt), mask=mask)
    subset = MPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS)
    subset.update(_t(pred)[mask], _t(gt)[mask])
    assert masked.compute().item() == pytest.approx(subset.compute().item(), rel=1e-12)
    assert int(masked.count) == 5


def test_empty_metric_is_nan_and_bad_input_raises() -> None:
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(MPJPE().compute().item())
    with pytest.raises(ValueError, match="MPJPE.update"):
        MPJPE().update(torch.zeros(2, 17, 3), torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match="eval_joints"):
        MPJPE(eval_joints=(20,)).update(torch.zeros(2, 17, 3), torch.zeros(2, 17, 3))
    with pytest.raises(ValueError, match="mask"):
        MPJPE().update(torch.zeros(2, 17, 3), torch.zeros(2, 17, 3), mask=torch.ones(3))


# --- MPVPE / PA-MPVPE ------------------------------------------------------------------------------


def test_mpvpe_subtracts_given_roots() -> None:
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(2, 50, 3)) * 0.3
    offset = np.array([0.3, 0.0, 0.4])  # 500 mm
    pred = gt + offset
    gt_root, pred_root = gt[:, 0] * 0.0, gt[:, 0] * 0.0 + offset
    metric = MPVPE()
    metric.update(_t(pred), _t(gt), _t(pred_root), _t(gt_root))
    assert metric.compute().item() == pytest.approx(0.0, abs=1e-9)
    absolute = MPVPE()
    absolute.update(_t(pred), _t(gt))
    assert absolute.compute().item() == pytest.approx(500.0, rel=1e-12)
    wrong_root = MPVPE()  # roots differing by (0.03, 0.04, 0) from the true offset leave a 50 mm error
    wrong_root.update(_t(pred), _t(gt), _t(pred_root + np.array([0.03, 0.04, 0.0])), _t(gt_root))
    assert wrong_root.compute().item() == pytest.approx(50.0, rel=1e-12)
    with pytest.raises(ValueError, match="both"):
        MPVPE().update(_t(pred), _t(gt), _t(pred_root), None)


def test_pa_mpvpe_matches_scipy_and_is_similarity_invariant() -> None:
    rng = np.random.default_rng(6)
    gt = rng.normal(size=(3, 40, 3)) * 0.3
    pred = gt + rng.normal(scale=0.03, size=gt.shape)
    rot = Rotation.from_rotvec([-0.2, 0.9, 1.3]).as_matrix()
    moved = 1.7 * pred @ rot.T + np.array([1.0, 2.0, 3.0])
    values = []
    for p in (pred, moved):
        metric = PAMPVPE()
        metric.update(_t(p), _t(gt), _t(p[:, 0]), _t(gt[:, 0]))
        values.append(metric.compute().item())
    ref = np.mean([scipy_pa_error_mm(p, g) for p, g in zip(pred, gt)])
    assert values[0] == pytest.approx(ref, rel=1e-10)
    assert values[1] == pytest.approx(ref, rel=1e-9)


# --- DDP: two ranks == one process ---------------------------------------------------------------


def _split_merge(make, updates: list[tuple], cut: int):
    """One metric on all updates vs two 'ranks' (updates[:cut], updates[cut:]) merged."""
    whole, rank0, rank1 = make(), make(), make()
    for i, args in enumerate(updates):
        whole.update(*args)
        (rank0 if i < cut else rank1).update(*args)
    summed = {name: getattr(rank0, name) + getattr(rank1, name) for name in rank0._defaults}
    rank0.merge_state(rank1)
    return whole.compute(), rank0.compute(), summed, whole


@pytest.mark.parametrize("cls", [MPJPE, PAMPJPE])
def test_ddp_joint_metrics_merge_equals_single(cls: type) -> None:
    pred, gt = _h36m_batch(7, batch=8)
    updates = [(_t(pred[:3]), _t(gt[:3])), (_t(pred[3:]), _t(gt[3:]))]  # uneven: 3 vs 5 samples
    make = lambda: cls(root_index=0, eval_joints=H36M_EVAL_JOINTS)  # noqa: E731
    whole, merged, summed, ref = _split_merge(make, updates, 1)
    assert merged.item() == pytest.approx(whole.item(), rel=1e-12)
    for name, value in summed.items():
        assert torch.equal(value, getattr(ref, name))
    halves = []  # a mean of per-rank means would differ: the states must be sums
    for sl in (slice(0, 3), slice(3, 8)):
        m = cls(root_index=0, eval_joints=H36M_EVAL_JOINTS)
        m.update(_t(pred[sl]), _t(gt[sl]))
        halves.append(m.compute().item())
    assert abs(np.mean(halves) - whole.item()) > 1e-6


def test_ddp_vertex_metric_merge_equals_single() -> None:
    rng = np.random.default_rng(8)
    gt = rng.normal(size=(5, 30, 3))
    pred = gt + rng.normal(scale=0.05, size=gt.shape)
    updates = [(_t(pred[:2]), _t(gt[:2]), _t(pred[:2, 0]), _t(gt[:2, 0])),
               (_t(pred[2:]), _t(gt[2:]), _t(pred[2:, 0]), _t(gt[2:, 0]))]
    whole, merged, _, _ = _split_merge(MPVPE, updates, 1)
    assert merged.item() == pytest.approx(whole.item(), rel=1e-12)


# --- MuPoTS-3D: bone rescaling, matching, 3DPCK ----------------------------------------------------

#: A T-ish skeleton in ``mupots17`` order, metres, pelvis at the origin (y down).
MUPOTS_SKELETON_M = np.array([
    [0.0, -0.75, 0.0],   # 0 Head_top
    [0.0, -0.50, 0.0],   # 1 Thorax
    [-0.2, -0.50, 0.0],  # 2 R_Shoulder
    [-0.2, -0.25, 0.0],  # 3 R_Elbow
    [-0.2, 0.00, 0.0],   # 4 R_Wrist
    [0.2, -0.50, 0.0],   # 5 L_Shoulder
    [0.2, -0.25, 0.0],   # 6 L_Elbow
    [0.2, 0.00, 0.0],    # 7 L_Wrist
    [-0.1, 0.00, 0.0],   # 8 R_Hip
    [-0.1, 0.40, 0.0],   # 9 R_Knee
    [-0.1, 0.80, 0.0],   # 10 R_Ankle
    [0.1, 0.00, 0.0],    # 11 L_Hip
    [0.1, 0.40, 0.0],    # 12 L_Knee
    [0.1, 0.80, 0.0],    # 13 L_Ankle
    [0.0, 0.00, 0.0],    # 14 Pelvis
    [0.0, -0.25, 0.0],   # 15 Spine
    [0.0, -0.60, 0.0],   # 16 Head
])  # fmt: skip


def test_mupots_tree_constants_by_joint_name() -> None:
    names = get_convention("mupots17").joint_names
    expected_parent = {
        "Head_top": "Thorax", "Thorax": "Spine", "Spine": "Pelvis", "Head": "Thorax",
        "R_Shoulder": "Thorax", "R_Elbow": "R_Shoulder", "R_Wrist": "R_Elbow",
        "L_Shoulder": "Thorax", "L_Elbow": "L_Shoulder", "L_Wrist": "L_Elbow",
        "R_Hip": "Pelvis", "R_Knee": "R_Hip", "R_Ankle": "R_Knee",
        "L_Hip": "Pelvis", "L_Knee": "L_Hip", "L_Ankle": "L_Knee",
    }  # fmt: skip
    for j, name in enumerate(names):
        if name == "Pelvis":
            assert MUPOTS_PARENTS[j] == -1
        else:
            assert names[MUPOTS_PARENTS[j]] == expected_parent[name], name
    # MATLAB: safe_traversal_order = [15, 16, 2, 1, 17, 3..14], used from the 2nd entry, 1-based
    assert MUPOTS_TRAVERSAL_ORDER == tuple(np.array([16, 2, 1, 17, *range(3, 15)]) - 1)
    assert sorted(MUPOTS_TRAVERSAL_ORDER) == [j for j in range(17) if names[j] != "Pelvis"]


def test_bone_rescaling_on_a_chain_hand_computed() -> None:
    parents, order = (-1, 0, 1), (1, 2)
    pred = _t([[[0.0, 0, 0], [2, 0, 0], [2, 3, 0]]])
    gt = _t([[[5.0, 5, 5], [5, 6, 5], [5, 6, 10]]])  # bone lengths 1 and 5
    out = rescale_to_gt_bone_lengths(pred, gt, parents, order)
    np.testing.assert_allclose(out[0].numpy(), [[0, 0, 0], [1, 0, 0], [1, 5, 0]], atol=1e-12)
    with pytest.raises(ValueError, match="before its parent"):
        rescale_to_gt_bone_lengths(pred, gt, parents, (2, 1))


@pytest.mark.parametrize("tree", ["chain", "mupots"])
def test_bone_rescaling_keeps_directions_and_sets_gt_lengths(tree: str) -> None:
    rng = np.random.default_rng(9)
    if tree == "chain":
        parents, order = (-1, 0, 1, 2, 3), (1, 2, 3, 4)
    else:
        parents, order = MUPOTS_PARENTS, MUPOTS_TRAVERSAL_ORDER
    num = len(parents)
    pred, gt = rng.normal(size=(3, num, 3)), rng.normal(size=(3, num, 3))
    out = rescale_to_gt_bone_lengths(_t(pred), _t(gt), parents, order).numpy()
    root = parents.index(-1)
    np.testing.assert_allclose(out[:, root], pred[:, root], atol=1e-12)
    for j in order:
        p = parents[j]
        bone_out, bone_pred, bone_gt = out[:, j] - out[:, p], pred[:, j] - pred[:, p], gt[:, j] - gt[:, p]
        np.testing.assert_allclose(
            np.linalg.norm(bone_out, axis=1), np.linalg.norm(bone_gt, axis=1), rtol=1e-10
        )
        unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
        np.testing.assert_allclose(unit(bone_out), unit(bone_pred), atol=1e-10)


def _kp2d(base_x: float) -> np.ndarray:
    """A (17, 2) 2D skeleton: joint j at (base_x + 10 j, 200 + 15 j) px."""
    j = np.arange(17)
    return np.stack([base_x + 10.0 * j, 200.0 + 15.0 * j], axis=1)


def test_match_people_greedy_with_exclusion() -> None:
    gt0 = _kp2d(100)
    gt1 = gt0 + np.array([20.0, 0.0])  # within 40 px of gt0 on every joint
    pred_a, pred_b = gt0.copy(), gt1 + np.array([30.0, 0.0])  # b is 50 px from gt0, 30 px from gt1
    far = gt0 + 500.0
    gts = np.stack([gt0, gt1])
    assert match_people(gts, None, np.stack([pred_a, pred_b, far])) == [0, 1]
    # a scores 13 for both GTs; gt0 claims it, so gt1 must take b even though a comes first
    assert match_people(gts, None, np.stack([pred_b, pred_a])) == [1, 0]
    assert match_people(gts, None, np.zeros((0, 17, 2))) == [None, None]


def test_match_people_scores_count_matching_visible_joints() -> None:
    gt = _kp2d(100)
    pred_few, pred_many = gt + 500.0, gt + 500.0
    pred_few[1:6] = gt[1:6] + 5.0  # 5 joints close
    pred_many[1:11] = gt[1:11] - 5.0  # 10 joints close
    assert match_people(gt[None], None, np.stack([pred_few, pred_many])) == [1]
    vis = np.ones((1, 17))
    vis[0, 6:11] = 0  # hide the extra joints of pred_many: 5 vs 5, the first wins
    assert match_people(gt[None], vis, np.stack([pred_few, pred_many])) == [0]
    only_unused = gt + 500.0
    only_unused[[0, 14, 15, 16]] = gt[[0, 14, 15, 16]]  # Head_top, Pelvis, Spine, Head are not compared
    assert match_people(gt[None], None, only_unused[None]) == [None]


def test_match_people_per_axis_strict_threshold_and_zero_joints() -> None:
    gt = _kp2d(100)[None]
    assert match_people(gt, None, gt + np.array([39.0, 39.0])) == [0]  # 55 px apart, but < 40 per axis
    assert match_people(gt, None, gt + np.array([40.0, 0.0])) == [None]
    assert match_people(gt, None, gt + np.array([0.0, -40.0])) == [None]
    near_origin = np.full((1, 17, 2), 10.0)
    assert match_people(near_origin, None, np.zeros((1, 17, 2))) == [None]  # (0, 0) = not predicted
    assert match_people(near_origin, None, np.full((1, 17, 2), 0.5)) == [0]


def _rotate_z(vec: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ vec


def _bent_prediction() -> np.ndarray:
    """The skeleton with 4 leaf bones re-directed: errors after rescaling 500, 500, 100, 200 mm."""
    pred = MUPOTS_SKELETON_M.copy()
    pred[0] = pred[1] - (pred[0] - pred[1])  # Head_top flipped: 2 * 0.25 m
    pred[4] = pred[3] - (pred[4] - pred[3])  # R_Wrist flipped: 2 * 0.25 m
    pred[7] = pred[6] + _rotate_z(pred[7] - pred[6], 2 * math.asin(0.10 / 0.5))  # 2 * 0.25 * sin = 0.10
    pred[13] = pred[12] + _rotate_z(pred[13] - pred[12], 2 * math.asin(0.20 / 0.8))  # 0.20 m
    return pred


def _mupots_images() -> list[tuple]:
    """(gt3d, gt2d, vis, pred3d, pred2d, ts) per image; expected hits in the docstring of the test."""
    cam = np.array([0.0, 0.0, 4.0])
    gt3d_p0, gt3d_p1 = MUPOTS_SKELETON_M + cam, MUPOTS_SKELETON_M + cam + [1.0, 0, 0]
    gt2d_p0, gt2d_p1 = _kp2d(100), _kp2d(600)
    pred3d_p0 = 1.3 * _bent_prediction() + np.array([0.2, -0.1, 5.0])  # scale/translation are undone
    spurious3d, spurious2d = MUPOTS_SKELETON_M + cam, _kp2d(1500)
    image_ts1 = (np.stack([gt3d_p0, gt3d_p1]), np.stack([gt2d_p0, gt2d_p1]), None,
                 np.stack([spurious3d, pred3d_p0]), np.stack([spurious2d, gt2d_p0 + 5.0]), 1)
    no_3d, no_2d = np.zeros((0, 17, 3)), np.zeros((0, 17, 2))
    empty_ts1 = (no_3d, no_2d, None, no_3d, no_2d, 1)
    image_ts3 = (MUPOTS_SKELETON_M[None] + cam, _kp2d(300)[None], np.ones((1, 17)),
                 0.8 * MUPOTS_SKELETON_M[None] + 1.0, _kp2d(300)[None] - 3.0, 3)
    return [image_ts1, empty_ts1, image_ts3]


def _update(metric: MuPoTS3DPCK, images: list[tuple]) -> None:
    cols = list(zip(*images))
    metric.update([_t(x) for x in cols[0]], [_t(x) for x in cols[1]], list(cols[2]),
                  [_t(x) for x in cols[3]], [_t(x) for x in cols[4]], list(cols[5]))


def test_mupots_3dpck_hand_count() -> None:
    """TS1: person 0 matched (pred index 1), 11 of 14 joints within 150 mm (Head_top, R_Wrist, L_Ankle
    miss; L_Wrist at 100 mm hits); person 1 unmatched. TS3: one person, exact up to scale -> 14/14."""
    metric = MuPoTS3DPCK()
    _update(metric, _mupots_images())
    out = metric.compute()
    ts1, ts3 = out["per_sequence"]["TS1"], out["per_sequence"]["TS3"]
    assert set(out["per_sequence"]) == {"TS1", "TS3"}
    assert ts1["pck_all"].item() == pytest.approx(100 * 11 / 28)
    assert ts1["pck_matched"].item() == pytest.approx(100 * 11 / 14)
    assert (int(ts1["num_gt"]), int(ts1["num_matched"])) == (2, 1)
    assert ts3["pck_all"].item() == pytest.approx(100.0) and ts3["pck_matched"].item() == pytest.approx(100.0)
    assert out["pck_all"].item() == pytest.approx((100 * 11 / 28 + 100) / 2)
    assert out["pck_matched"].item() == pytest.approx((100 * 11 / 14 + 100) / 2)


def test_mupots_threshold_is_strict_and_in_mm() -> None:
    # R_Wrist's bone flipped on the exact skeleton: its error is exactly 0.5 m (dyadic, no rounding)
    gt3d = MUPOTS_SKELETON_M[None] + np.array([0.0, 0.0, 4.0])
    pred = MUPOTS_SKELETON_M.copy()
    pred[4] = pred[3] - (pred[4] - pred[3])
    image = (gt3d, _kp2d(300)[None], None, pred[None], _kp2d(300)[None], 5)
    for thresh, expected in ((500.0, 100 * 13 / 14), (500.0 + 1e-9, 100.0), (0.4999 * 1000, 100 * 13 / 14)):
        metric = MuPoTS3DPCK(threshold_mm=thresh)
        _update(metric, [image])
        assert metric.compute()["pck_all"].item() == pytest.approx(expected), thresh


def test_mupots_ddp_merge_equals_single_and_bad_input() -> None:
    images = _mupots_images()
    whole, rank0, rank1 = MuPoTS3DPCK(), MuPoTS3DPCK(), MuPoTS3DPCK()
    _update(whole, images)
    _update(rank0, images[:1])
    _update(rank1, images[1:])
    rank0.merge_state(rank1)
    for name in MuPoTS3DPCK._STATES:
        assert torch.equal(getattr(rank0, name), getattr(whole, name)), name
    assert rank0.compute()["pck_all"].item() == pytest.approx(whole.compute()["pck_all"].item())
    with pytest.raises(ValueError, match="seq_ts"):
        _update(MuPoTS3DPCK(), [images[2][:5] + (21,)])
    with pytest.raises(ValueError, match="gt_kp2d_px"):
        _update(MuPoTS3DPCK(), [(images[2][0], images[2][1][:, :16]) + images[2][2:]])
