"""Tests for annot.geometry.rotations against hand-computed values, scipy and a plain SPIN formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from annot.geometry import (
    rot6d_to_rotmat,
    rot6d_to_rotvec,
    rotmat_to_rot6d,
    rotmat_to_rotvec,
    rotvec_to_rot6d,
    rotvec_to_rotmat,
)


def spin_rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """Plain re-implementation of the SPIN / Pose2Pose formula: columns of x.view(-1, 3, 2)."""
    x = x.reshape(-1, 3, 2)
    a1, a2 = x[:, :, 0], x[:, :, 1]
    b1 = a1 / a1.norm(dim=-1, keepdim=True)
    u2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = u2 / u2.norm(dim=-1, keepdim=True)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def _random_rotvec(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=torch.float64) * (math.pi - 1e-3)
    return axis * angle


def test_rotvec_quarter_turn_about_z_hand_value() -> None:
    R = rotvec_to_rotmat(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(R, expected, atol=1e-12, rtol=0)


def test_rotvec_half_turn_about_x_hand_value() -> None:
    R = rotvec_to_rotmat(torch.tensor([math.pi, 0.0, 0.0], dtype=torch.float64))
    expected = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(R, expected, atol=1e-12, rtol=0)


def test_rot6d_hand_derived_gram_schmidt() -> None:
    # x.view(3, 2) = [[1, 0], [1, 1], [0, 0]] -> columns a1 = (1, 1, 0), a2 = (0, 1, 0).
    # b1 = (1, 1, 0)/sqrt2; a2 - <b1, a2> b1 = (-1/2, 1/2, 0) -> b2 = (-1, 1, 0)/sqrt2; b3 = (0, 0, 1).
    # So R = [b1 b2 b3] = rotation of +45 degrees about z.
    x = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[r, -r, 0.0], [r, r, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(rot6d_to_rotmat(x), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        rot6d_to_rotvec(x), torch.tensor([0.0, 0.0, math.pi / 4], dtype=torch.float64), atol=1e-12, rtol=0
    )
    # The other layout (x[:3], x[3:] as the two vectors) would give a different matrix: guard against it.
    assert not torch.allclose(split_halves_gram_schmidt(x), expected)


def split_halves_gram_schmidt(x: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt of (x[:3], x[3:]): the convention we must NOT use."""
    return spin_rot6d_to_rotmat(torch.stack([x[:3], x[3:]], dim=-1).reshape(6))[0]


def test_rot6d_matches_plain_spin_formula() -> None:
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(rot6d_to_rotmat(x), spin_rot6d_to_rotmat(x), atol=1e-12, rtol=0)


def test_rot6d_output_is_rotation_with_batch_dims() -> None:
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(1))
    R = rot6d_to_rotmat(x)
    assert R.shape == (2, 5, 3, 3) and R.dtype == torch.float32
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(2, 5, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(2, 5), atol=1e-5, rtol=0)


def test_rotvec_to_rotmat_matches_scipy() -> None:
    rv = _random_rotvec(32, seed=2)
    expected = torch.from_numpy(Rotation.from_rotvec(rv.numpy()).as_matrix())
    torch.testing.assert_close(rotvec_to_rotmat(rv), expected, atol=1e-10, rtol=0)


def test_rotvec_round_trip() -> None:
    rv = _random_rotvec(64, seed=3).reshape(4, 16, 3)
    torch.testing.assert_close(rotmat_to_rotvec(rotvec_to_rotmat(rv)), rv, atol=1e-9, rtol=0)
    torch.testing.assert_close(rot6d_to_rotvec(rotvec_to_rot6d(rv)), rv, atol=1e-9, rtol=0)


def test_rot6d_round_trip() -> None:
    # A valid 6D (first two columns of a rotation) survives 6D -> rotmat -> 6D exactly.
    R = rotvec_to_rotmat(_random_rotvec(16, seed=4))
    x = rotmat_to_rot6d(R)
    torch.testing.assert_close(rotmat_to_rot6d(rot6d_to_rotmat(x)), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(rot6d_to_rotmat(x), R, atol=1e-12, rtol=0)
    # An arbitrary 6D maps to the same rotation after one normalisation pass.
    y = torch.randn(16, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(rot6d_to_rotmat(rotmat_to_rot6d(rot6d_to_rotmat(y))), rot6d_to_rotmat(y))


def test_rotmat_to_rot6d_layout() -> None:
    R = torch.arange(9.0).reshape(3, 3)
    assert rotmat_to_rot6d(R).tolist() == [0.0, 1.0, 3.0, 4.0, 6.0, 7.0]  # [R00, R01, R10, R11, R20, R21]


def test_identity_is_finite_with_gradient() -> None:
    rv = torch.zeros(3, 3, requires_grad=True)
    out = rotmat_to_rotvec(rotvec_to_rotmat(rv))
    out.sum().backward()
    assert torch.all(out == 0) and torch.isfinite(rv.grad).all()


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="6"):
        rot6d_to_rotmat(torch.zeros(4, 5))
    with pytest.raises(ValueError):
        rotmat_to_rotvec(torch.zeros(4, 3, 2))
    with pytest.raises(ValueError):
        rotvec_to_rotmat(torch.zeros(()))
    with pytest.raises(TypeError):
        rotvec_to_rotmat(np.zeros(3))
