"""Loss terms against hand-computed values."""
import math

import torch

from annot.annotator.losses import l2_regulariser, masked_l1, masked_l1_kp2d
from annot.metrics import kp2d_error_px


def test_masked_l1_hand_computed():
    pred = torch.tensor([[[10.0, 20.0], [0.0, 0.0], [5.0, 5.0]]])
    target = torch.tensor([[[13.0, 16.0], [100.0, 100.0], [5.0, 9.0]]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    # valid coords: |3|/4, |4|/8, |0|/4, |4|/8 over 4 coordinates -> (0.75 + 0.5 + 0 + 0.5) / 4
    loss = masked_l1_kp2d(pred, target, mask, norm_wh=(4.0, 8.0))
    assert math.isclose(loss.item(), 1.75 / 4, rel_tol=1e-6)


def test_masked_l1_ignores_masked_joints_and_handles_empty_mask():
    pred = torch.zeros(2, 3, 2)
    target = torch.full((2, 3, 2), 50.0)
    assert masked_l1_kp2d(pred, target, torch.zeros(2, 3), (1.0, 1.0)).item() == 0.0


def test_kp2d_error_px_is_euclidean_mean_over_valid():
    pred = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    target = torch.tensor([[[3.0, 4.0], [6.0, 8.0]], [[1.0, 1.0], [1.0, 1.0]]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    err = kp2d_error_px(pred, target, mask)
    assert math.isclose(err[0].item(), 7.5)
    assert math.isnan(err[1].item())


def test_l2_regulariser_is_mean_squared_norm_per_sample():
    x = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    assert math.isclose(l2_regulariser(x).item(), (5.0 + 9.0) / 2)


def test_masked_l1_joints_and_params():
    pred = torch.tensor([[[1.0, 1.0, 1.0], [9.0, 9.0, 9.0]]])
    target = torch.zeros(1, 2, 3)
    assert math.isclose(masked_l1(pred, target, torch.tensor([[1.0, 0.0]])).item(), 1.0)
    params = torch.tensor([[2.0, -4.0]])
    assert math.isclose(masked_l1(params, torch.zeros(1, 2), torch.tensor([[1.0, 1.0]])).item(), 3.0)
