"""Similarity (Procrustes) alignment against scipy and hand-derived values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.transform import Rotation

from annot.geometry.procrustes import apply_similarity, similarity_align, similarity_transform


def scipy_similarity(
    a: np.ndarray, b: np.ndarray, fix_reflection: bool
) -> tuple[np.ndarray, float, np.ndarray]:
    """Reference ``(aligned (N,3), s, r)`` with ``aligned = s (a - mean a) r + mean b`` (row vectors).

    Without the fix, r is scipy's orthogonal_procrustes (may be a reflection); with the fix, the SVD of
    ``x^T y`` with the last singular direction flipped when ``det(u vt) < 0`` (Umeyama).
    """
    x, y = a - a.mean(0), b - b.mean(0)
    if fix_reflection:
        u, sv, vt = scipy.linalg.svd(x.T @ y)
        signs = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        r = u @ np.diag(signs) @ vt
        s = float((sv * signs).sum() / (x**2).sum())
    else:
        r, sum_sv = scipy.linalg.orthogonal_procrustes(x, y)
        s = float(sum_sv / (x**2).sum())  # trace(r^T x^T y) / ||x||_F^2
    return s * x @ r + b.mean(0), s, r


def _random_pair(seed: int, n: int = 14, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(n, 3)) * 0.3
    rot = Rotation.random(random_state=seed).as_matrix()
    gt = 0.8 * pred @ rot.T + rng.normal(size=3) + rng.normal(scale=noise, size=(n, 3))
    return pred, gt


def test_matches_scipy_orthogonal_procrustes() -> None:
    pairs = [_random_pair(seed) for seed in range(5)]
    pred = torch.tensor(np.stack([p for p, _ in pairs]))
    gt = torch.tensor(np.stack([g for _, g in pairs]))
    aligned = similarity_align(pred, gt)
    scale, rotmat, transl = similarity_transform(pred, gt)
    for b, (p, g) in enumerate(pairs):
        ref, s_ref, r_ref = scipy_similarity(p, g, fix_reflection=False)
        assert np.linalg.det(r_ref) > 0  # a proper case: scipy and we must agree exactly
        np.testing.assert_allclose(aligned[b].numpy(), ref, atol=1e-10)
        assert scale[b].item() == pytest.approx(s_ref, rel=1e-10)
        np.testing.assert_allclose(rotmat[b].numpy(), r_ref.T, atol=1e-10)  # ours acts on columns
    reapplied = apply_similarity(pred, scale, rotmat, transl)
    np.testing.assert_allclose(reapplied.numpy(), aligned.numpy(), atol=1e-12)


def test_recovers_exact_similarity() -> None:
    pred, _ = _random_pair(7)
    rot = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    gt = 1.7 * pred @ rot.T + np.array([0.5, -2.0, 4.0])
    scale, rotmat, transl = similarity_transform(torch.tensor(pred)[None], torch.tensor(gt)[None])
    assert scale.item() == pytest.approx(1.7, rel=1e-12)
    np.testing.assert_allclose(rotmat[0].numpy(), rot, atol=1e-12)
    np.testing.assert_allclose(transl[0].numpy(), [0.5, -2.0, 4.0], atol=1e-12)


def test_mirror_image_uses_proper_rotation_hand_derived() -> None:
    # Points on the axes at +-a, +-b, +-c with a < b < c; gt mirrors x. K = X^T Y = diag(-2a^2, 2b^2, 2c^2):
    # the best proper rotation is the identity, s = (b^2 + c^2 - a^2) / (a^2 + b^2 + c^2) = 12/14 for
    # (a, b, c) = (1, 2, 3) * 0.1 m; errors a(1+s), b(1-s), c(1-s) -> mean 6/7 * 0.1 m.
    a, b, c = 0.1, 0.2, 0.3
    pred = np.array([[a, 0, 0], [-a, 0, 0], [0, b, 0], [0, -b, 0], [0, 0, c], [0, 0, -c]])
    gt = pred * np.array([-1.0, 1.0, 1.0])
    r_reflect, _ = scipy.linalg.orthogonal_procrustes(pred, gt)
    assert np.linalg.det(r_reflect) < 0  # a reflection would fit exactly ...
    np.testing.assert_allclose(pred @ r_reflect, gt, atol=1e-12)
    scale, rotmat, _ = similarity_transform(torch.tensor(pred)[None], torch.tensor(gt)[None])
    aligned = similarity_align(torch.tensor(pred)[None], torch.tensor(gt)[None])[0].numpy()
    assert torch.linalg.det(rotmat[0]).item() == pytest.approx(1.0, abs=1e-12)  # ... but we must not use it
    np.testing.assert_allclose(rotmat[0].numpy(), np.eye(3), atol=1e-12)
    assert scale.item() == pytest.approx(6 / 7, rel=1e-12)
    np.testing.assert_allclose(aligned, 6 / 7 * pred, atol=1e-12)
    assert np.linalg.norm(aligned - gt, axis=1).mean() == pytest.approx(0.6 / 7, rel=1e-12)


def test_random_mirror_matches_sign_fixed_svd() -> None:
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(10, 3)) * 0.3
    mirror = np.diag([1.0, -1.0, 1.0])
    gt = pred @ mirror @ Rotation.random(random_state=4).as_matrix().T + rng.normal(scale=0.01, size=(10, 3))
    ref, s_ref, r_ref = scipy_similarity(pred, gt, fix_reflection=True)
    aligned = similarity_align(torch.tensor(pred)[None], torch.tensor(gt)[None])[0].numpy()
    scale, rotmat, _ = similarity_transform(torch.tensor(pred)[None], torch.tensor(gt)[None])
    np.testing.assert_allclose(aligned, ref, atol=1e-10)
    assert scale.item() == pytest.approx(s_ref, rel=1e-10)
    assert torch.linalg.det(rotmat[0]).item() == pytest.approx(1.0, abs=1e-10)
    assert np.linalg.norm(aligned - gt, axis=1).mean() > 0.05  # the mirror cannot be undone
    unfixed, _, _ = scipy_similarity(pred, gt, fix_reflection=False)
    assert np.linalg.norm(unfixed - gt, axis=1).mean() < 0.03  # while a reflection nearly fits


def test_float32_in_float32_out_and_close_to_float64() -> None:
    pred, gt = _random_pair(11)
    pred32, gt32 = torch.tensor(pred, dtype=torch.float32)[None], torch.tensor(gt, dtype=torch.float32)[None]
    out32 = similarity_align(pred32, gt32)
    out64 = similarity_align(torch.tensor(pred)[None], torch.tensor(gt)[None])
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), atol=1e-5)


def test_degenerate_prediction_maps_to_gt_centroid() -> None:
    pred = torch.ones(1, 5, 3)
    gt = torch.arange(15, dtype=torch.float64).reshape(1, 5, 3)
    aligned = similarity_align(pred.double(), gt)
    assert torch.isfinite(aligned).all()
    np.testing.assert_allclose(aligned[0].numpy(), np.tile(gt[0].mean(0).numpy(), (5, 1)), atol=1e-12)


@pytest.mark.parametrize(
    "pred_shape, gt_shape",
    [((2, 5, 3), (2, 4, 3)), ((5, 3), (5, 3)), ((2, 5, 2), (2, 5, 2)), ((1, 0, 3), (1, 0, 3))],
)
def test_bad_shapes_raise(pred_shape: tuple[int, ...], gt_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="similarity_transform"):
        similarity_align(torch.zeros(pred_shape), torch.zeros(gt_shape))
