"""f conditioned on the annotated 2D keypoints beside the image (``kp2d_input``, beyond the paper).

References: the normalisation computed by hand; the 2D loss of an image-only f, which on one constant image
can only fit the mean person (its floor is independent of training), against the same f given the keypoints.
"""
from __future__ import annotations

import pytest
import torch

from annot.annotator.module import AnnotatorModule, kp2d_input_features
from tests.test_annotator_pose2pose import CONV, FREE, HW, _synthetic_batch, needs_free


def test_features_are_crop_normalised_and_zero_where_unlabelled():
    kp = torch.tensor([[[0.0, 0.0], [48.0, 64.0], [12.0, 48.0]]])       # crop 64 x 48 (H, W)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    feats = kp2d_input_features(kp, mask, (64, 48))
    expected = torch.tensor([[[-1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
    torch.testing.assert_close(feats, expected)


def test_jitter_and_dropout_draw_noise_of_the_stated_size():
    torch.manual_seed(0)
    kp = torch.full((4000, 17, 2), 32.0)
    mask = torch.ones(4000, 17)
    feats = kp2d_input_features(kp, mask, (64, 48), jitter=0.05, dropout=0.25)
    kept = feats[..., 2] > 0
    # dropout: a quarter of the labelled keypoints hidden (4000 x 17 draws: 3 sigma ~ 0.01)
    assert abs(1.0 - kept.float().mean().item() - 0.25) < 0.01
    # jitter: 0.05 of the crop height = 3.2 px = 0.1 in y's [-1, 1] units (2 / 64 per pixel)
    y = feats[..., 1][kept]
    assert abs(y.std().item() - 0.1) < 0.003 and abs(y.mean().item()) < 0.003


def _module(**kw) -> AnnotatorModule:
    return AnnotatorModule(mode="itw", body_model_path=str(FREE), backbone_depth=18, hidden_dim=64, input_hw=HW,
                           kp2d_convention=CONV, joints3d_convention=CONV, architecture="regressor", lr=1e-3, **kw)


@needs_free
def test_kp2d_input_only_in_itw_mode():
    with pytest.raises(ValueError, match="kp2d_input"):
        AnnotatorModule(mode="mocap", body_model_path=str(FREE), backbone_depth=18, hidden_dim=64, input_hw=HW,
                        kp2d_convention=CONV, joints3d_convention=CONV, kp2d_input=True)


@needs_free
def test_prediction_follows_the_keypoints_and_is_deterministic_in_eval():
    torch.manual_seed(0)
    module = _module(kp2d_input=True, kp2d_input_jitter=0.05, kp2d_input_dropout=0.5).eval()
    batch = _synthetic_batch(module, num=2)
    with torch.no_grad():
        first, again = module.predict_batch(batch), module.predict_batch(batch)
        moved = module.predict_batch({**batch, "kp2d_px": batch["kp2d_px"].flip(0)})
    torch.testing.assert_close(first["pose_rotvec"], again["pose_rotvec"])        # no jitter outside training
    assert (first["pose_rotvec"] - moved["pose_rotvec"]).abs().max() > 1e-4          # same images, other keypoints


def _fit_2d_loss(module: AnnotatorModule, batch: dict[str, torch.Tensor], steps: int) -> float:
    module.net.backbone.requires_grad_(False)  # CPU time; the image is constant anyway
    opt = module.configure_optimizers()["optimizer"]
    module.train()
    for _ in range(steps):
        loss = module._losses(module.predict_batch(batch), batch)["kp2d"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    module.eval()
    with torch.no_grad():
        return float(module._losses(module.predict_batch(batch), batch)["kp2d"])


@needs_free
def test_keypoints_let_f_fit_people_it_cannot_tell_apart_in_the_image():
    """One constant image for four people: the image-only f can at best predict their mean; f given the keypoints
    fits each one (measured after 150 steps, seeds 0-2: the keypoint-input loss is 0.12-0.19 of the image-only one)."""
    torch.set_num_threads(2)
    losses = {}
    for kp2d_input in (False, True):
        torch.manual_seed(0)
        module = _module(kp2d_input=kp2d_input, w_pose_l2=0.0, w_betas_l2=0.0)
        batch = _synthetic_batch(module, num=4, seed=3)
        batch["img"] = torch.full_like(batch["img"], 0.5)
        losses[kp2d_input] = _fit_2d_loss(module, batch, steps=150)
    assert losses[True] < 0.5 * losses[False], losses
