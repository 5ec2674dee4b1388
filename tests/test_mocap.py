"""Tests for annot.data.mocap on real CMU clips (shared/data) and on small broken BVH files.

The clips are read from ``<repo>/../shared/data/mocap_cmu`` (Reallusion CC_Base rig, cm, 60 fps)
and ``<repo>/../shared/data/mocap_cmu_cgspeed`` (cgspeed rig, CMU units, 120 fps); tests that need
them skip when they are absent. Only a few clips are loaded (a folder of symlinks) to stay fast.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from torch.utils.data import default_collate

from annot.data.mocap import RIGS, BVHMocap, CMUMocap, read_bvh_sequence, resample_indices
from annot.data.registry import DATASETS, build_dataset
from annot.keypoints import get_convention

DATA_DIR = Path(__file__).resolve().parents[2] / "shared/data"
CC_DIR = DATA_DIR / "mocap_cmu"
CGSPEED_DIR = DATA_DIR / "mocap_cmu_cgspeed"
CC_CLIPS = ("cmu_02_01.bvh", "cmu_05_01.bvh", "cmu_07_04.bvh")  # variant B, plain walk, rest frame 0
README_REST_FRAME_CLIPS = {"cmu_07_04", "cmu_07_05", "cmu_07_08", "cmu_07_12"}
README_EXTRA_ROOT_CLIPS = {"cmu_02_01", "cmu_02_03"}
CMU_UNIT_M = 0.056444  # data README: multiply CMU length units by 0.056444 for metres

needs_cc = pytest.mark.skipif(
    not all((CC_DIR / f).is_file() for f in CC_CLIPS), reason=f"CMU CC_Base clips not found in {CC_DIR}"
)
needs_cgspeed = pytest.mark.skipif(
    not (CGSPEED_DIR / "131_01.bvh").is_file(), reason=f"CMU cgspeed clips not found in {CGSPEED_DIR}"
)
SMPL = get_convention("smpl24")


def j(name: str) -> int:
    return SMPL.index(name)


@pytest.fixture(scope="module")
def cc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cc_clips")
    for name in CC_CLIPS:
        (folder / name).symlink_to(CC_DIR / name)
    return folder


@pytest.fixture(scope="module")
def cc_native(cc_root: Path) -> BVHMocap:
    return BVHMocap(cc_root, fps=None)


@pytest.fixture(scope="module")
def cgspeed_native() -> BVHMocap:
    return BVHMocap(CGSPEED_DIR, pattern="131_0[12].bvh", fps=None)


def sequence(ds: BVHMocap, name: str):
    return next(s for s in ds.sequences if s.name == name)


# ----------------------------------------------------------------------------- reference FK
def reference_fk(path: Path, frames: list[int]) -> dict[str, np.ndarray]:
    """Second FK implementation: our own BVH reading + scipy intrinsic Euler angles.

    Root position = OFFSET + position channels; child = parent + R_parent @ OFFSET;
    R = R_parent @ R_local with R_local = intrinsic rotations in CHANNELS order (uppercase in
    scipy). Returns {node name: (len(frames), 3)} in file units.
    """
    tokens = path.read_text().split()
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    i = tokens.index("HIERARCHY") + 1
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            stack.append(len(names) - 1)
            i += 2
        elif tok == "End":  # End Site { OFFSET x y z }
            i += 8
        elif tok == "OFFSET":
            offsets.append([float(v) for v in tokens[i + 1 : i + 4]])
            i += 4
        elif tok == "CHANNELS":
            count = int(tokens[i + 1])
            channels.append(tokens[i + 2 : i + 2 + count])
            i += 2 + count
        elif tok == "}":
            stack.pop()
            i += 1
        else:  # "{"
            i += 1
    num_frames = int(tokens[i + 2])
    values = np.array(tokens[i + 6 :], dtype=np.float64).reshape(num_frames, -1)[frames]
    pos = np.zeros((len(frames), len(names), 3))
    rot = np.zeros((len(frames), len(names), 3, 3))
    col = 0
    for k, (chans, parent) in enumerate(zip(channels, parents)):
        trans = np.array(offsets[k], dtype=np.float64) + np.zeros((len(frames), 3))
        rot_axes = ""
        rot_cols = []
        for c, chan in enumerate(chans):
            if chan.endswith("position"):
                trans[:, "XYZ".index(chan[0])] += values[:, col + c]
            else:
                rot_axes += chan[0]
                rot_cols.append(col + c)
        col += len(chans)
        local = Rotation.from_euler(rot_axes, values[:, rot_cols], degrees=True).as_matrix()
        if parent < 0:
            pos[:, k], rot[:, k] = trans, local
        else:
            pos[:, k] = pos[:, parent] + np.einsum("fij,fj->fi", rot[:, parent], trans)
            rot[:, k] = rot[:, parent] @ local
    return {name: pos[:, k] for k, name in enumerate(names)}


# ----------------------------------------------------------------------------- tests
def test_registered_as_cmu_mocap() -> None:
    assert DATASETS["cmu_mocap"] is BVHMocap is CMUMocap


@needs_cc
@needs_cgspeed
@pytest.mark.parametrize(
    "path, scale",
    [
        (CC_DIR / "cmu_02_01.bvh", 0.01),
        (CC_DIR / "cmu_07_04.bvh", 0.01),
        (CGSPEED_DIR / "131_01.bvh", CMU_UNIT_M),
    ],
)
def test_joints_match_independent_fk(path: Path, scale: float) -> None:
    seq = read_bvh_sequence(path, fps=None)
    rig = RIGS[seq.rig]
    local = [0, len(seq.frames) // 2, len(seq.frames) - 1]
    ref = reference_fk(path, [int(seq.frames[k]) for k in local])
    for joint_name, node in rig.smpl24.items():
        np.testing.assert_allclose(seq.joints_world_m[local, j(joint_name)], ref[node] * scale, atol=2e-4)
    assert not seq.joints_mask[j("Chest")] and seq.joints_mask.sum() == 23


@needs_cc
@needs_cgspeed
def test_bone_lengths_plausible_and_constant(cc_native: BVHMocap, cgspeed_native: BVHMocap) -> None:
    bones = {
        "thigh": ("Hip", "Knee", 0.35, 0.55),
        "shin": ("Knee", "Ankle", 0.33, 0.55),
        "upper arm": ("Shoulder", "Elbow", 0.15, 0.40),
        "forearm": ("Elbow", "Wrist", 0.15, 0.40),
    }
    for seq in cc_native.sequences + cgspeed_native.sequences:
        joints = seq.joints_world_m
        for bone, (a, b, low, high) in bones.items():
            lengths = {
                side: np.linalg.norm(joints[:, j(f"{side}_{a}")] - joints[:, j(f"{side}_{b}")], axis=-1)
                for side in "LR"
            }
            for side, length in lengths.items():
                assert low < length.mean() < high, (seq.name, side, bone, length.mean())
                assert length.std() < 1e-3, (seq.name, side, bone, length.std())
            assert abs(lengths["L"].mean() - lengths["R"].mean()) < 0.03, (seq.name, bone)


@needs_cc
@needs_cgspeed
def test_standing_subject_is_upright_y_up(cc_native: BVHMocap, cgspeed_native: BVHMocap) -> None:
    walks = [sequence(cc_native, n) for n in ("cmu_05_01", "cmu_07_04")]
    walks.append(sequence(cgspeed_native, "131_01"))
    for seq in walks:
        y = seq.joints_world_m[..., 1]
        ankles = np.maximum(y[:, j("L_Ankle")], y[:, j("R_Ankle")])
        assert np.all(y[:, j("Head")] > y[:, j("Neck")]), seq.name
        assert np.all(y[:, j("Neck")] > y[:, j("Pelvis")]), seq.name
        assert np.all(y[:, j("Pelvis")] > ankles + 0.3), seq.name  # 131_01 lifts a knee high
        assert -0.05 < y[:, [j("L_Foot"), j("R_Foot")]].min() < 0.2, seq.name  # feet near the floor Y=0


@needs_cc
@needs_cgspeed
def test_left_joints_on_subjects_left(cc_native: BVHMocap, cgspeed_native: BVHMocap) -> None:
    """Forward = (L_Hip - R_Hip) x up must agree with where the feet point (ankle -> ball of foot)."""
    up = np.array([0.0, 1.0, 0.0])
    for seq in cc_native.sequences + cgspeed_native.sequences:
        joints = seq.joints_world_m.astype(np.float64)
        forward = np.cross(joints[:, j("L_Hip")] - joints[:, j("R_Hip")], up)
        feet = sum(joints[:, j(f"{s}_Foot")] - joints[:, j(f"{s}_Ankle")] for s in "LR")
        feet[:, 1] = 0.0
        agree = np.einsum("fi,fi->f", forward, feet) > 0
        assert agree.mean() > 0.98, (seq.name, agree.mean())
        for a in ("Shoulder", "Elbow", "Knee"):  # every left joint is on the left of its right twin
            left_minus_right = joints[:, j(f"L_{a}")] - joints[:, j(f"R_{a}")]
            side = np.einsum("fi,fi->f", left_minus_right, np.cross(up, forward))
            assert (side > 0).mean() > 0.9, (seq.name, a)


@needs_cc
@needs_cgspeed
def test_resampling_frame_counts(cc_root: Path, cc_native: BVHMocap) -> None:
    cc30 = BVHMocap(cc_root, fps=30)
    cg30 = BVHMocap(CGSPEED_DIR, pattern="131_01.bvh", fps=30)
    for native in cc_native.sequences:
        resampled = sequence(cc30, native.name)
        # integer ratio 60 -> 30: every 2nd kept frame, ceil(N / 2) frames
        assert native.source_fps == pytest.approx(60.0) and resampled.fps == 30.0
        assert len(resampled.frames) == -(-len(native.frames) // 2)
        np.testing.assert_array_equal(resampled.frames, native.frames[::2])
        np.testing.assert_array_equal(resampled.joints_world_m, native.joints_world_m[::2])
    cg = cg30.sequences[0]
    assert cg.source_fps == pytest.approx(120.0)
    assert len(cg.frames) == -(-994 // 4) == 249  # 131_01 has 994 frames at 120 fps
    np.testing.assert_array_equal(cg.frames, np.arange(0, 994, 4))
    assert len(cc30) == sum(len(s.frames) for s in cc30.sequences)


def test_resample_indices_non_integer_ratio() -> None:
    idx = resample_indices(11, 60.0, 25.0)  # times 0, 0.04, ..., 0.16 s -> frames 0, 2.4, 4.8, 7.2, 9.6
    np.testing.assert_array_equal(idx, [0, 2, 5, 7, 10])
    with pytest.raises(ValueError, match="above the source"):
        resample_indices(10, 30.0, 60.0)


@needs_cgspeed
def test_cgspeed_scale_gives_adult_size(cgspeed_native: BVHMocap) -> None:
    """CMU units x 0.056444 m: leg segments and standing hip height of an adult (1.5-1.95 m).

    Stature from leg segments with Drillis & Contini's proportions (Winter, Biomechanics and Motor
    Control of Human Movement, fig. 4.1): thigh 0.245 H, shank 0.246 H, hip height 0.530 H. The
    raw top joint (CMU head bone end) is ~0.25 m below the vertex, so it is not used for stature.
    """
    seq = sequence(cgspeed_native, "131_01")
    assert seq.metres_per_unit == pytest.approx(CMU_UNIT_M, rel=1e-4)
    joints = seq.joints_world_m
    thigh = np.linalg.norm(joints[:, j("L_Hip")] - joints[:, j("L_Knee")], axis=-1).mean()
    shank = np.linalg.norm(joints[:, j("L_Knee")] - joints[:, j("L_Ankle")], axis=-1).mean()
    stature = (thigh + shank) / (0.245 + 0.246)
    assert 1.5 < stature < 1.95, stature
    assert -0.02 < joints[:, [j("L_Foot"), j("R_Foot")], 1].min() < 0.05  # the capture floor is Y = 0
    hip_height = joints[0, [j("L_Hip"), j("R_Hip")], 1].mean()  # start-walk-stop: frame 0 stands
    assert 0.530 * 1.5 < hip_height < 0.530 * 1.95, hip_height


@needs_cc
def test_rest_pose_frame_skipped_with_reason(cc_native: BVHMocap) -> None:
    seq = sequence(cc_native, "cmu_07_04")
    assert seq.frames[0] == 1 and len(seq.frames) == 225 - 1  # README: 225 frames, drop frame 0
    reason = cc_native.skipped["cmu_07_04:000000"]
    jump = float(re.search(r"jumps ([0-9.]+) m", reason).group(1))
    assert reason.startswith("rest pose frame:") and 2.0 <= jump <= 2.5  # README: jumps about 2-2.5 m
    root_step = np.linalg.norm(np.diff(seq.joints_world_m[:, j("Pelvis")], axis=0), axis=-1) * 60
    assert root_step.max() < 5.0  # what is left moves at walking speed
    assert sequence(cc_native, "cmu_05_01").frames[0] == 0
    assert cc_native.skipped == {"cmu_07_04:000000": reason}
    assert cc_native.summary() == "cmu_mocap: loaded 694 frames (3 files), skipped 1: rest pose frame: 1"
    assert cc_native[len(sequence(cc_native, "cmu_02_01").frames) + 299]["sample_id"] == "cmu_07_04:000001"


@needs_cc
def test_extra_root_clip_reads_like_the_others(cc_native: BVHMocap) -> None:
    extra, plain = sequence(cc_native, "cmu_02_01"), sequence(cc_native, "cmu_05_01")
    assert "extra root 'RL_BoneRoot' above the body root 'CC_Base_Hip'" in extra.notes
    assert "body root height constant at 1.052 m (no vertical motion)" in extra.notes  # README: 105.2 cm
    assert plain.notes == ()
    np.testing.assert_array_equal(extra.joints_mask, plain.joints_mask)
    for a, b in (("L_Hip", "L_Knee"), ("L_Shoulder", "L_Elbow"), ("Pelvis", "Head")):
        len_extra = np.linalg.norm(extra.joints_world_m[0, j(a)] - extra.joints_world_m[0, j(b)])
        len_plain = np.linalg.norm(plain.joints_world_m[0, j(a)] - plain.joints_world_m[0, j(b)])
        assert len_extra == pytest.approx(len_plain, abs=0.02 if a == "Pelvis" else 1e-4)
    travel = extra.joints_world_m[-1, j("Pelvis")] - extra.joints_world_m[0, j("Pelvis")]
    assert travel[2] > 2.0  # walks forward along +Z in spite of the -90 deg extra root


@needs_cc
def test_items_h36m17_and_collate(cc_root: Path, cc_native: BVHMocap) -> None:
    h36m = build_dataset("cmu_mocap", root=cc_root, pattern="cmu_05_01.bvh", convention="h36m17", fps=None)
    conv = get_convention("h36m17")
    item = h36m[10]
    assert item["joints_world_m"].shape == (17, 3) and item["joints_world_m"].dtype == torch.float32
    masked = [conv.joint_names[k] for k in np.flatnonzero(item["joints_mask"].numpy() == 0)]
    assert masked == ["Head_top"]
    assert torch.all(item["joints_world_m"][conv.index("Head_top")] == 0)
    smpl_joints = sequence(cc_native, "cmu_05_01").joints_world_m[10]
    for name in ("Pelvis", "L_Knee", "R_Wrist", "Neck", "Head"):
        np.testing.assert_array_equal(item["joints_world_m"][conv.index(name)].numpy(), smpl_joints[j(name)])
    batch = default_collate([h36m[k] for k in range(4)])
    assert batch["joints_world_m"].shape == (4, 17, 3)
    assert batch["sample_id"] == [f"cmu_05_01:{k:06d}" for k in range(4)]
    assert batch["frame"].tolist() == [0, 1, 2, 3]
    assert batch["time_s"][3].item() == pytest.approx(3 / 60)
    assert batch["dataset"] == ["cmu_mocap"] * 4 and batch["rig"] == ["cc_base"] * 4
    coco = BVHMocap(cc_root, pattern="cmu_05_01.bvh", convention="coco17", fps=None)  # eyes from the rig
    eyes = [get_convention("coco17").index(n) for n in ("L_Eye", "R_Eye")]
    assert coco.sequences[0].joints_mask[eyes].all() and not coco.sequences[0].joints_mask[0]  # no Nose
    with pytest.raises(IndexError):
        h36m[len(h36m)]


BVH_TEMPLATE = """HIERARCHY
ROOT {root}
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Child
  {{
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {{
      OFFSET 0 1 0
    }}
  }}
}}
MOTION
Frames: {frames}
Frame Time: 0.0083333
{motion}"""


@needs_cgspeed
def test_bad_files_skipped_with_reasons(tmp_path: Path) -> None:
    good = (CGSPEED_DIR / "131_01.bvh").read_text()
    (tmp_path / "good.bvh").write_text(good)
    (tmp_path / "truncated.bvh").write_text(good[: len(good) // 2].rsplit("\n", 1)[0])
    (tmp_path / "garbage.bvh").write_bytes(b"\x00\xff not a bvh file at all")
    (tmp_path / "empty.bvh").write_text(BVH_TEMPLATE.format(root="Hips", frames=0, motion=""))
    (tmp_path / "nan.bvh").write_text(good.replace("\n5.2300 16.9002", "\nnan 16.9002", 1))
    (tmp_path / "robot.bvh").write_text(
        BVH_TEMPLATE.format(root="Base", frames=2, motion="0 0 0 0 0 0 0 0 0\n1 0 0 0 0 0 0 0 0\n")
    )
    ds = BVHMocap(tmp_path, fps=None)
    assert [s.name for s in ds.sequences] == ["good"] and len(ds) == 994
    reasons = {key: reason.split(": ", 1)[0] for key, reason in ds.skipped.items()}
    assert reasons == {
        "truncated": "unparsable BVH",
        "garbage": "unparsable BVH",
        "empty": "no frames",
        "nan": "non-finite values",
        "robot": "unknown rig",
    }
    assert "declares 994 frames" in ds.skipped["truncated"]
    assert "root 'Base'" in ds.skipped["robot"]
    assert ds.summary() == (
        "cmu_mocap: loaded 994 frames (1 files), skipped 5: unparsable BVH: 2, no frames: 1, "
        "non-finite values: 1, unknown rig: 1"
    )
    too_fast = BVHMocap(tmp_path, pattern="good.bvh", fps=240)
    assert len(too_fast) == 0 and too_fast.skipped["good"].startswith("frame rate too low: asked 240")


def test_missing_root_and_bad_arguments(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"nowhere.*data\.root"):
        BVHMocap(missing)
    with pytest.raises(FileNotFoundError, match=r"data\.pattern"):
        BVHMocap(tmp_path)  # exists but holds no .bvh
    (tmp_path / "a.bvh").write_text("HIERARCHY\n")
    with pytest.raises(ValueError, match="unknown keypoint convention"):
        BVHMocap(tmp_path, convention="nope")
    with pytest.raises(ValueError, match=r"data\.units"):
        BVHMocap(tmp_path, units="furlong")
    with pytest.raises(ValueError, match=r"data\.fps"):
        BVHMocap(tmp_path, fps=0)


@pytest.mark.slow
@needs_cc
def test_whole_folder_matches_readme() -> None:
    """All 45 clips parse; the rest frames and extra roots found are exactly the README's lists."""
    ds = BVHMocap(CC_DIR, fps=None)
    assert len(ds.sequences) == 45
    assert {key.split(":")[0] for key in ds.skipped} == README_REST_FRAME_CLIPS
    assert all(key.endswith(":000000") for key in ds.skipped)
    assert {s.name for s in ds.sequences if s.notes} == README_EXTRA_ROOT_CLIPS
    assert len(ds) == 21779 - 4  # README: 21779 frames in all
