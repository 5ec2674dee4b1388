"""Real auxiliary hand sets (annot.hands.aux_real): FreiHAND and InterHand2.6M fixtures in their released layouts
become Algorithm 1's hand crops. References: the dataset records themselves (image keypoints, camera-frame joints)
and the crop geometry's own inverse (crop -> image pixels, virtual frame -> camera frame)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from annot.data import FreiHAND, InterHand26M
from annot.data.fixtures import hands as fx
from annot.hands.aux_real import hand_set_from_dataset
from annot.hands.mirror import mirror_points
from annot.hands.synthetic import AuxHandSetConfig, make_hand_set
from annot.keypoints import convert


def _camera_joints(ds, sid: str) -> np.ndarray:
    r = next(r for r in ds.records if r.sample_id == sid)
    return convert(np.asarray(r.joints_cam_m, dtype=np.float64), ds.native_convention, "hand21")[0]


def _image_kp(ds, sid: str) -> np.ndarray:
    r = next(r for r in ds.records if r.sample_id == sid)
    return convert(np.asarray(r.kp2d_img_px, dtype=np.float64), ds.native_convention, "hand21")[0]


@pytest.mark.parametrize("which", ["freihand", "interhand"])
def test_real_hands_become_crops_with_virtual_frame_joints(tmp_path, which):
    if which == "freihand":
        ds = FreiHAND(fx.write_freihand_fixture(tmp_path))
    else:
        ds = InterHand26M(fx.write_interhand_fixture(tmp_path), split="train")
    crops = hand_set_from_dataset(ds, crop_size=32)
    assert crops.sample_ids == [r.sample_id for r in ds.records]
    left = [getattr(ds, "sides", {}).get(s, "right") == "left" for s in crops.sample_ids]
    assert crops.flipped.tolist() == left and (any(left) == (which == "interhand"))
    image_px = crops.to_image_px(crops.kp2d_px).numpy()
    for i, sid in enumerate(crops.sample_ids):
        # crop pixels map back to the record's image keypoints
        np.testing.assert_allclose(image_px[i], _image_kp(ds, sid), atol=1e-3)
        # virtual-frame joints, unmirrored and turned by the ray rotation, are the camera-frame joints minus the wrist
        joints = _camera_joints(ds, sid)
        virtual = mirror_points(crops.joints_rel_m[i]) if crops.flipped[i] else crops.joints_rel_m[i]
        back = (crops.ray_rotmat[i] @ virtual.T).T.numpy()
        np.testing.assert_allclose(back, joints - joints[0], atol=1e-5)


def test_make_hand_set_reads_a_registered_dataset_and_caches_it(tmp_path):
    root = fx.write_freihand_fixture(tmp_path / "freihand")
    cfg = AuxHandSetConfig(dataset="freihand", root=str(root), num_hands=2)
    crops = make_hand_set(None, cfg, crop_size=32, cache_dir=tmp_path / "cache")
    assert len(crops) == 2 and crops.joints_rel_m is not None
    assert len(list((tmp_path / "cache").glob("hand_aux_*.pt"))) == 1
    again = make_hand_set(None, cfg, crop_size=32, cache_dir=tmp_path / "cache")
    assert torch.equal(again.img, crops.img) and torch.equal(again.joints_rel_m, crops.joints_rel_m)
    with pytest.raises(ValueError, match="unknown dataset"):
        make_hand_set(None, AuxHandSetConfig(dataset="nohands", root=str(root)), crop_size=32)
