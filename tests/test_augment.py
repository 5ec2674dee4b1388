"""Augmentation keeps image, 2D joints, 3D joints and the posed SMPL mesh consistent.

A person is posed with the free body model in a real camera, projected, and cropped with flips,
rotations, scales and shifts; projecting the *augmented* SMPL parameters with the sample's real camera
(in crop pixels) must land on the *augmented* 2D keypoints, and the augmented 3D joints must equal the
augmented SMPL joints.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from annot.body_models import BodyModel
from annot.data.augment import AugmentConfig, flip_smpl_pose, frame_map_from_affine, sample_augment
from annot.data.person import PersonCropDataset, PersonRecord, SmplParams

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")
FOCAL, PRINCPT, IMG_HW = np.array([1100.0, 1100.0]), np.array([330.0, 250.0]), (480, 640)


class _Posed(PersonCropDataset):
    name = "posed"
    native_convention = "smpl24"

    def __init__(self, body, records_smpl, image_path, **kw):
        super().__init__(body_model_path=str(FREE), **kw)
        records = []
        for i, smpl in enumerate(records_smpl):
            joints = _joints(body, smpl)
            kp = joints[:, :2] / joints[:, 2:] * FOCAL + PRINCPT
            lo, hi = kp.min(0), kp.max(0)
            box = self.process_box(np.r_[lo, hi - lo], IMG_HW)
            records.append(PersonRecord(str(i), image_path, IMG_HW, box, kp, np.ones(24, bool), joints,
                                        np.ones(24, bool), smpl, FOCAL, PRINCPT))
        self._set_records(records, {})


def _joints(body, smpl: SmplParams) -> np.ndarray:
    pose = torch.as_tensor(smpl.pose_rotvec, dtype=torch.float32).reshape(1, 72)
    out = body(pose[:, :3], pose[:, 3:], torch.as_tensor(smpl.betas, dtype=torch.float32)[None],
               torch.as_tensor(smpl.transl_m, dtype=torch.float32)[None])
    return out.joints_smpl24_m[0].double().numpy()


@pytest.fixture(scope="module")
def body():
    return BodyModel.from_config("free", path=FREE)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    rng = np.random.default_rng(0)
    image = tmp_path_factory.mktemp("img") / "blank.png"
    cv2.imwrite(str(image), np.full((*IMG_HW, 3), 127, np.uint8))
    smpls = []
    for _ in range(4):
        pose = rng.normal(scale=0.25, size=(24, 3))
        pose[0] = [np.pi + rng.normal(scale=0.2), rng.normal(scale=0.5), rng.normal(scale=0.1)]
        smpls.append(SmplParams(pose, rng.normal(size=10), np.array([rng.normal(scale=0.3), 0.1, 6.0])))
    return smpls, image


@pytest.mark.parametrize("aug", [
    AugmentConfig(enabled=False),
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=0.0, scale_factor=0.0),
    AugmentConfig(enabled=True, flip_prob=0.0, rot_prob=1.0, rot_factor_deg=30.0),
    AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=1.0, rot_factor_deg=30.0, shift_factor=0.1),
])
def test_augmented_smpl_projects_onto_augmented_keypoints(body, people, aug):
    smpls, image = people
    ds = _Posed(body, smpls, image, convention="smpl24", augment=aug, seed=1)
    for i in range(len(ds)):
        s = ds[i]
        smpl = SmplParams(s["smpl_pose_rotvec"].double().numpy(), s["smpl_betas"].double().numpy(),
                          s["smpl_transl_m"].double().numpy())
        joints = _joints(body, smpl)
        focal, princpt = s["real_focal_crop_px"].double().numpy(), s["real_princpt_crop_px"].double().numpy()
        kp = joints[:, :2] / joints[:, 2:] * focal + princpt
        err = np.linalg.norm(kp - s["kp2d_px"].double().numpy(), axis=1)
        assert err.max() < 1.0, (i, err.max())
        rel = joints - joints[0]
        np.testing.assert_allclose(rel, s["joints_cam_m"].double().numpy(), atol=2e-3)
        np.testing.assert_allclose(joints[0], s["root_cam_m"].double().numpy(), atol=2e-3)


def test_flip_really_mirrors(body, people):
    smpls, image = people
    plain = _Posed(body, smpls, image, augment=AugmentConfig(enabled=False))[0]
    flipped = _Posed(body, smpls, image, augment=AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=0.0,
                                                              scale_factor=0.0, color_factor=0.0))[0]
    assert bool(flipped["flipped"])
    # left wrist of the flipped sample = mirrored right wrist of the plain one (x -> -x about the root)
    lw, rw = 20, 21
    expect = plain["joints_cam_m"][rw].clone()
    expect[0] = -expect[0]
    torch.testing.assert_close(flipped["joints_cam_m"][lw], expect, atol=1e-5, rtol=0)


def test_flip_pose_swaps_and_negates():
    pose = np.arange(72, dtype=float).reshape(24, 3)
    out = flip_smpl_pose(pose)
    np.testing.assert_array_equal(out[1], [pose[2, 0], -pose[2, 1], -pose[2, 2]])
    np.testing.assert_array_equal(out[0], [0.0, -1.0, -2.0])
    np.testing.assert_array_equal(flip_smpl_pose(out), pose)


def test_frame_map_reads_rotation_and_mirror():
    c, s = np.cos(0.4), np.sin(0.4)
    aff = np.array([[2 * c, -2 * s, 5.0], [2 * s, 2 * c, 7.0]])
    g, scale = frame_map_from_affine(aff)
    np.testing.assert_allclose(scale, [2.0, 2.0])
    np.testing.assert_allclose(g, [[c, -s, 0], [s, c, 0], [0, 0, 1]], atol=1e-12)
    mirrored = aff @ np.diag([-1.0, 1.0, 1.0])
    assert np.linalg.det(frame_map_from_affine(mirrored)[0]) < 0
    with pytest.raises(ValueError, match="similarity"):
        frame_map_from_affine(np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]]))


def test_sampling_follows_pose2pose_ranges():
    cfg = AugmentConfig(enabled=True)
    draws = [sample_augment(cfg, np.random.default_rng(i)) for i in range(400)]
    scales = np.array([d.scale for d in draws])
    rots = np.array([d.rot_deg for d in draws])
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert np.abs(rots).max() <= 60.0 and 0.3 < (rots == 0).mean() < 0.5   # rot with prob 0.6
    assert 0.4 < np.mean([d.flip for d in draws]) < 0.6
    assert sample_augment(AugmentConfig(enabled=False), np.random.default_rng(0)).scale == 1.0


def test_extreme_crop_box_picks_the_upper_body_or_face():
    from annot.data.augment import extreme_crop_box
    from annot.keypoints import get_convention

    names = get_convention("coco17").joint_names
    kp = np.zeros((17, 2))
    kp[names.index("Nose")] = (50, 20)
    kp[names.index("L_Shoulder")] = (70, 60)
    kp[names.index("R_Shoulder")] = (30, 60)
    kp[names.index("L_Hip")] = (65, 150)
    kp[names.index("L_Ankle")] = (60, 300)
    valid = np.zeros(17, bool)
    valid[[names.index(n) for n in ("Nose", "L_Shoulder", "R_Shoulder", "L_Hip", "L_Ankle")]] = True
    np.testing.assert_allclose(extreme_crop_box(kp, valid, names, "upper"), [30, 20, 40, 130])   # no ankle
    np.testing.assert_allclose(extreme_crop_box(kp, valid, names, "face"), [30, 20, 40, 40])     # no hip
    assert extreme_crop_box(kp, np.zeros(17, bool), names, "face") is None
