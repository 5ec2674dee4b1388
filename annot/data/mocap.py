"""CMU motion capture (BVH) as 3D joint positions in metres: a MoCap source with no images.

Feeds NeuralAnnot's "GT 3D joints only" MoCap-mode input and the training of a pose prior
(reference: Moon et al., NeuralAnnot, CVPRW 2022, MoCap data without images). Each item is one
frame of one clip: the joints of a named ``annot.keypoints`` convention (default ``smpl24``) in a
Y-up world frame, in metres.

Credit (required by the CMU terms for any use of the clips): "The data used in this project was
obtained from mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217."

BVH reader: ``pybvh`` (PyPI ``pybvh``, MIT, github.com/VictorS-67/pybvh), chosen over the other
PyPI readers after reading their code:

* ``pybvh`` 0.9 (13 releases, the latest in 2026): a token parser that checks the file
  (declared ``Frames`` against the data lines, values per line against the ``CHANNELS`` total,
  line numbers in its errors), honours each joint's own ``CHANNELS`` rotation order (intrinsic,
  ``R = R_first @ R_second @ R_third``, the BVH rule) and runs vectorised forward kinematics
  (``Bvh.node_positions``, end sites included). Dependencies: numpy and matplotlib only.
* ``upc-pymotion`` 0.3 (MIT, maintained): good FK, but its reader fills a truncated file's
  missing frames with the rest pose without a word (no frame-count check), and its torch extra
  pulls torchvision, which this project may not import.
* ``bvhio`` 1.5: pins ``pyglm==2.8.2`` and ``spatial-transform==1.3.3`` exactly.
* ``bvhtools`` 1.6: pulls raylib / pillow / pyyaml for its viewer.
* ``bvh`` 0.3 (2017) and ``bvh-converter`` 1.0 (2018): unmaintained, parse only (no FK).

So the FK is pybvh's; we only (a) add the ROOT ``OFFSET`` to the root translation, which pybvh
leaves out (see below), (b) scale to metres and (c) pick and rename joints.

Rig families (detected from joint names, see :data:`RIGS`)
----------------------------------------------------------
* ``cc_base``: the ``mocap_cmu/`` clips (CMU motion retargeted by a third party onto the
  Reallusion "CC_Base" 100-joint rig): centimetres, Y up, 60 fps. Its root channels are relative
  to the root OFFSET (0, 105.2, 0) cm: with the offset added the hips stand at 1.03-1.12 m and
  the feet 3-12 cm above Y = 0; without it the feet would be about 1 m below the floor. Two
  files (``cmu_02_01``, ``cmu_02_03``, "root variant B" of that folder's README) put an extra
  ``ROOT RL_BoneRoot`` (X rotation -90 deg, part of the heading) above ``CC_Base_Hip``: the FK
  goes through it and the body joints are read by name, so nothing else changes; their hip
  height is locked at 1.052 m by the source (noted in :attr:`MocapSequence.notes`).
* ``cmu_cgspeed``: the cgspeed / B. Hahne "3dsMax-friendly" BVH family (``Hips``, ``LHipJoint``,
  ``LeftHip``, ``LeftKnee``...), 120 fps, in CMU ASF length units: 1 unit = 1/0.45 inch =
  0.056444 m (CMU ASF ``:units length 0.45`` in inches).

Both families are Y up with the subject facing +Z and its left at +X in the rest pose, the same
axes as SMPL's template, so the world frame here is the file's world frame, in metres (no
rotation; :attr:`RigSpec.world_from_file` is the identity for both).

Rest-pose frames
----------------
Four ``mocap_cmu`` clips (``cmu_07_04``, ``_05``, ``_08``, ``_12``) start with a rest pose at the
origin and jump 2-2.5 m at frame 1 (their README: drop frame 0). We detect this generically: a
*leading* frame is dropped when the body root then moves faster than
:data:`MAX_ROOT_SPEED_M_S` (20 m/s; no human does; these jumps are 126-157 m/s, every other
step of the 48 clips here is below 8.5 m/s). Each dropped frame is recorded in
``BVHMocap.skipped`` under its sample id with the measured jump.

Resampling
----------
``fps`` picks, for each time ``k / fps`` from the first kept frame, the *nearest* source frame
(no interpolation, so bones stay rigid; exact for integer ratios such as 60 -> 30 or 120 -> 30,
otherwise a timing error of at most half a source frame). Upsampling is refused.
"""
from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import pybvh
import torch
from torch.utils.data import Dataset

from annot.data.registry import register
from annot.keypoints import convert, get_convention

logger = logging.getLogger(__name__)

__all__ = [
    "BVHMocap",
    "CMUMocap",
    "MAX_ROOT_SPEED_M_S",
    "MocapFileError",
    "MocapSample",
    "MocapSequence",
    "RIGS",
    "RigSpec",
    "UNIT_SCALES_M",
    "detect_rig",
    "read_bvh_sequence",
    "resample_indices",
]

#: Metres per file length unit. ``cmu`` is the CMU ASF unit (1/0.45 inch = 0.056444 m).
UNIT_SCALES_M: dict[str, float] = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "inch": 0.0254,
    "cmu": 0.0254 / 0.45,
}

#: A leading frame followed by a root speed above this (m/s) is a rest-pose frame and is dropped.
MAX_ROOT_SPEED_M_S = 20.0

SKIP_UNPARSABLE = "unparsable BVH"
SKIP_NO_FRAMES = "no frames"
SKIP_UNKNOWN_RIG = "unknown rig"
SKIP_NON_FINITE = "non-finite values"
SKIP_FPS = "frame rate too low"
SKIP_REST_FRAME = "rest pose frame"

_SMPL24 = "smpl24"


@dataclass(frozen=True)
class RigSpec:
    """One BVH skeleton family: how its joints map to ours, its unit and its axes.

    Attributes:
        name: rig id (``"cc_base"``, ``"cmu_cgspeed"``).
        body_root: node name of the body root (pelvis); an extra ROOT above it is allowed.
        smpl24: SMPL-24 joint name (``annot.keypoints`` spelling) -> BVH node name. SMPL joints
            without a counterpart are absent and come out masked.
        extras: joint names of other conventions (not in SMPL-24) -> BVH node name, filled by name
            after the SMPL-24 -> convention conversion (e.g. ``L_Eye`` for ``coco17``).
        default_units: key of :data:`UNIT_SCALES_M` used when ``units="auto"``.
        world_from_file: (3, 3) rotation from the file's axes to our Y-up world frame.
        description: where the rig comes from and how the map was chosen.
    """

    name: str
    body_root: str
    smpl24: dict[str, str]
    extras: dict[str, str]
    default_units: str
    world_from_file: np.ndarray = field(default_factory=lambda: np.eye(3))
    description: str = ""

    @property
    def required_nodes(self) -> frozenset[str]:
        """Every BVH node name the rig map reads (all must exist for the rig to be detected)."""
        return frozenset({self.body_root, *self.smpl24.values(), *self.extras.values()})


def _sided(template: dict[str, str]) -> dict[str, str]:
    """Expand ``{"{S}_Hip": "CC_Base_{S}_Thigh"}``-style entries for S in L, R (plus plain ones)."""
    out: dict[str, str] = {}
    for ours, theirs in template.items():
        if "{S}" in ours:
            for side, word in (("L", "Left"), ("R", "Right")):
                out[ours.format(S=side)] = theirs.format(S=side, Side=word, s=side.lower())
        else:
            out[ours] = theirs
    return out


_CC_BASE = RigSpec(
    name="cc_base",
    body_root="CC_Base_Hip",
    smpl24=_sided({
        "Pelvis": "CC_Base_Hip", "Torso": "CC_Base_Spine01", "Spine": "CC_Base_Spine02",
        "Neck": "CC_Base_NeckTwist01", "Head": "CC_Base_Head",
        "{S}_Hip": "CC_Base_{S}_Thigh", "{S}_Knee": "CC_Base_{S}_Calf", "{S}_Ankle": "CC_Base_{S}_Foot",
        "{S}_Foot": "CC_Base_{S}_ToeBase", "{S}_Collar": "CC_Base_{S}_Clavicle",
        "{S}_Shoulder": "CC_Base_{S}_Upperarm", "{S}_Elbow": "CC_Base_{S}_Forearm",
        "{S}_Wrist": "CC_Base_{S}_Hand", "{S}_Hand": "CC_Base_{S}_Mid1",
    }),  # fmt: skip
    extras=_sided({"{S}_Eye": "CC_Base_{S}_Eye"}),
    default_units="cm",
    description=(
        "Reallusion CC_Base rig of mocap_cmu/ (README joint table). Spine joints by height above the "
        "pelvis in the rest pose: Spine01 (+0.11 m) -> Torso, Spine02 (+0.26 m) -> Spine; SMPL Chest has "
        "no counterpart (masked). Twist/share/finger/toe/face bones are not used."
    ),
)

_CMU_CGSPEED = RigSpec(
    name="cmu_cgspeed",
    body_root="Hips",
    smpl24=_sided({
        "Pelvis": "Hips", "Torso": "Chest", "Spine": "Chest2", "Neck": "Neck", "Head": "Head",
        "{S}_Hip": "{Side}Hip", "{S}_Knee": "{Side}Knee", "{S}_Ankle": "{Side}Ankle", "{S}_Foot": "{Side}Toe",
        "{S}_Collar": "{Side}Collar", "{S}_Shoulder": "{Side}Shoulder", "{S}_Elbow": "{Side}Elbow",
        "{S}_Wrist": "{Side}Wrist", "{S}_Hand": "{S}Fingers",
    }),  # fmt: skip
    extras={},
    default_units="cmu",
    description=(
        "cgspeed / B. Hahne 3dsMax-friendly conversion of the CMU ASF skeleton. A BVH joint sits at "
        "the start of the ASF bone of the same role (LeftHip = lfemur start = hip joint). Chest "
        "(+0.11 m) -> Torso, Chest2 (+0.22 m) -> Spine; SMPL Chest masked; LFingers (knuckles) -> "
        "L_Hand. The head End Site ends the CMU head bone, not the top of the head: no Head_top."
    ),
)

#: Known rig families, tried in this order by :func:`detect_rig`.
RIGS: dict[str, RigSpec] = {rig.name: rig for rig in (_CC_BASE, _CMU_CGSPEED)}


class MocapFileError(ValueError):
    """A BVH file that cannot be used; ``reason`` is the short category counted by ``summary()``."""

    def __init__(self, path: Path, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {reason}: {detail}")
        self.path = path
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class MocapSequence:
    """One clip after parsing, rest-frame removal, resampling and joint selection.

    Attributes:
        name: sequence id: the path relative to the dataset root without suffix (``"cmu_01_01"``).
        path: absolute path of the BVH file.
        rig: :attr:`RigSpec.name` of the detected rig.
        source_fps: the file's frame rate, 1 / ``Frame Time`` as pybvh reads it (a truncated
            ``0.016667`` is snapped to exactly 1/60 s, so these clips are 60.0 and 120.0 fps).
        fps: frame rate of ``joints_world_m`` (``source_fps`` when no resampling was asked).
        metres_per_unit: scale applied to the file's lengths.
        frames: (T,) int64 source frame index (0-based, in the file) of each kept frame.
        joints_world_m: (T, J, 3) float32 joints in the Y-up world frame, metres, in ``convention``.
        joints_mask: (J,) bool, True where the rig has the joint (rows of False joints are 0).
        convention: ``annot.keypoints`` convention name of the joints.
        skipped_frames: {source frame index: reason} for dropped rest-pose frames.
        notes: remarks about the file (e.g. an extra root above the body root).
    """

    name: str
    path: Path
    rig: str
    source_fps: float
    fps: float
    metres_per_unit: float
    frames: np.ndarray
    joints_world_m: np.ndarray
    joints_mask: np.ndarray
    convention: str
    skipped_frames: dict[int, str]
    notes: tuple[str, ...] = ()

    def sample_id(self, local_index: int) -> str:
        """``"<name>:<source frame, 6 digits>"``, e.g. ``"cmu_01_01:000120"``."""
        return f"{self.name}:{int(self.frames[local_index]):06d}"


class MocapSample(TypedDict):
    """One item of :class:`BVHMocap` (shapes without batch dimension).

    ``joints_world_m`` float32 (J, 3) joints in the Y-up world frame (subject's rest-pose left at
    +X, facing +Z), metres, in the dataset's ``convention``; rows where the mask is 0 are 0.
    ``joints_mask`` float32 (J,) 1 where the rig has the joint.
    ``frame`` int64 () source frame index in the BVH file; ``time_s`` float32 () its time in the
    file (``frame / source_fps``). ``sample_id`` ``"<sequence>:<frame:06d>"``; ``sequence`` the
    clip id; ``rig`` the rig family; ``dataset`` ``"cmu_mocap"``.
    """

    joints_world_m: torch.Tensor
    joints_mask: torch.Tensor
    frame: torch.Tensor
    time_s: torch.Tensor
    sample_id: str
    sequence: str
    rig: str
    dataset: str


def detect_rig(node_names: Iterable[str]) -> RigSpec | None:
    """The first rig of :data:`RIGS` whose every mapped node name is in ``node_names``, else None."""
    names = set(node_names)
    for rig in RIGS.values():
        if rig.required_nodes <= names:
            return rig
    return None


def resample_indices(num_frames: int, source_fps: float, target_fps: float | None) -> np.ndarray:
    """Nearest source frame for each target time ``k / target_fps``, ``k = 0, 1, ...``.

    Args:
        num_frames: number of source frames ``N`` (>= 1), at ``source_fps``.
        source_fps, target_fps: frame rates in Hz; ``target_fps`` None keeps every frame.

    Returns:
        (K,) int64 indices into the N source frames, non-decreasing; ``K = floor((N - 1) *
        target / source) + 1`` (so 60 -> 30 fps keeps frames 0, 2, 4, ...).

    Raises:
        ValueError: non-positive rates, ``num_frames < 1``, or ``target_fps > source_fps``
            (upsampling would repeat frames).
    """
    if num_frames < 1:
        raise ValueError(f"resample_indices: num_frames must be >= 1, got {num_frames}")
    if not source_fps > 0:
        raise ValueError(f"resample_indices: source_fps must be > 0, got {source_fps}")
    if target_fps is None:
        return np.arange(num_frames, dtype=np.int64)
    if not target_fps > 0:
        raise ValueError(f"resample_indices: target_fps must be > 0, got {target_fps}")
    if target_fps > source_fps * (1 + 1e-6):
        raise ValueError(f"resample_indices: target {target_fps} fps is above the source {source_fps} fps")
    count = math.floor((num_frames - 1) * target_fps / source_fps + 1e-6) + 1
    idx = np.floor(np.arange(count) * (source_fps / target_fps) + 0.5).astype(np.int64)
    return np.minimum(idx, num_frames - 1)


def _parse(path: Path) -> pybvh.Bvh:
    """pybvh parse; every parser failure becomes a :class:`MocapFileError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pybvh's axis / left-right heuristics; we know both
            return pybvh.read_bvh_file(path, world_up="+y")
    except (ValueError, OSError, IndexError, KeyError, TypeError) as err:
        message = str(err).replace(str(path), Path(path).name)
        reason = SKIP_NO_FRAMES if message.startswith("Frame count (0)") else SKIP_UNPARSABLE
        raise MocapFileError(path, reason, f"{type(err).__name__}: {message}") from err


def _node_positions_world_m(bvh: pybvh.Bvh, rig: RigSpec, metres_per_unit: float) -> np.ndarray:
    """(F, N, 3) float64 FK positions of every node, world frame, metres (root OFFSET added)."""
    positions = bvh.node_positions(centered="world") + np.asarray(bvh.root.offset, dtype=np.float64)
    return np.einsum("ij,fnj->fni", rig.world_from_file, positions) * metres_per_unit


def _leading_rest_frames(root_m: np.ndarray, source_fps: float) -> dict[int, str]:
    """{frame: reason} for leading frames followed by a root jump faster than MAX_ROOT_SPEED_M_S."""
    skipped: dict[int, str] = {}
    for frame in range(len(root_m) - 1):
        jump_m = float(np.linalg.norm(root_m[frame + 1] - root_m[frame]))
        speed = jump_m * source_fps
        if speed <= MAX_ROOT_SPEED_M_S:
            break
        skipped[frame] = (
            f"{SKIP_REST_FRAME}: the root jumps {jump_m:.2f} m to frame {frame + 1} "
            f"({speed:.0f} m/s > {MAX_ROOT_SPEED_M_S:.0f} m/s)"
        )
    return skipped


def _notes(bvh: pybvh.Bvh, rig: RigSpec, root_m: np.ndarray) -> tuple[str, ...]:
    """Remarks on a parsed clip: an extra ROOT above the body root; a body root that never moves
    vertically (< 1 mm std over more than one frame: vertical motion missing in the source)."""
    notes: list[str] = []
    if bvh.root.name != rig.body_root:
        notes.append(f"extra root {bvh.root.name!r} above the body root {rig.body_root!r}")
    if len(root_m) > 1 and float(np.std(root_m[:, 1])) < 1e-3:
        notes.append(f"body root height constant at {float(root_m[0, 1]):.3f} m (no vertical motion)")
    return tuple(notes)


def _select_joints(
    nodes_m: np.ndarray, node_index: dict[str, int], rig: RigSpec, convention: str
) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 3) joints and (J,) bool mask of ``convention`` from all nodes, via SMPL-24 names.

    SMPL-24 is filled from ``rig.smpl24``; another convention is obtained with
    ``annot.keypoints.convert`` (by joint name) and then completed from ``rig.extras``.
    """
    smpl = get_convention(_SMPL24)
    joints24 = np.zeros((nodes_m.shape[0], smpl.num_joints, 3), dtype=nodes_m.dtype)
    mask24 = np.zeros(smpl.num_joints, dtype=bool)
    for j, joint_name in enumerate(smpl.joint_names):
        node = rig.smpl24.get(joint_name)
        if node is not None:
            joints24[:, j] = nodes_m[:, node_index[node]]
            mask24[j] = True
    conv = get_convention(convention)
    if conv.name == _SMPL24:
        return joints24, mask24
    joints, filled = convert(joints24, smpl, conv)
    carried, _ = convert(mask24[:, None].astype(np.float32), smpl, conv)
    mask = filled & (carried[:, 0] > 0)
    for j, joint_name in enumerate(conv.joint_names):
        node = rig.extras.get(joint_name)
        if node is not None and not mask[j]:
            joints[:, j] = nodes_m[:, node_index[node]]
            mask[j] = True
    return joints, mask


def _check_units(units: str) -> None:
    """ValueError naming the config key when ``units`` is neither "auto" nor in UNIT_SCALES_M."""
    if units != "auto" and units not in UNIT_SCALES_M:
        known = ", ".join(UNIT_SCALES_M)
        raise ValueError(f"unknown units {units!r} (config key `data.units`); known: auto, {known}")


def _metres_per_unit(units: str, rig: RigSpec) -> float:
    key = rig.default_units if units == "auto" else units
    return UNIT_SCALES_M[key]


def read_bvh_sequence(
    path: str | Path,
    convention: str = _SMPL24,
    units: str = "auto",
    fps: float | None = 30.0,
    name: str | None = None,
) -> MocapSequence:
    """Parse one BVH clip into world-frame joints in metres (see the module docstring).

    Args:
        path: BVH file of a known rig family (:data:`RIGS`).
        convention: ``annot.keypoints`` convention of the output joints.
        units: ``"auto"`` (the rig's default: ``cc_base`` cm, ``cmu_cgspeed`` CMU units) or a key of
            :data:`UNIT_SCALES_M`, applied to every length of the file.
        fps: output frame rate (nearest-frame resampling, :func:`resample_indices`); None keeps the
            file's rate.
        name: sequence id (default: the file stem).

    Returns:
        A :class:`MocapSequence` (joints float32, metres, Y-up world frame).

    Raises:
        MocapFileError (a ValueError): the file cannot be parsed, has no frames, has non-finite
            values, matches no rig, has no joint of ``convention``, or its rate is below ``fps``;
            the message names the file; ``.reason`` is the category.
        ValueError: unknown ``convention`` or ``units``.
    """
    path = Path(path)
    conv = get_convention(convention)
    _check_units(units)
    bvh = _parse(path)
    if bvh.frame_count < 1:
        raise MocapFileError(path, SKIP_NO_FRAMES, "the MOTION section has 0 frames")
    node_index = bvh.node_index
    rig = detect_rig(node_index)
    if rig is None:
        raise MocapFileError(
            path, SKIP_UNKNOWN_RIG,
            f"root {bvh.root.name!r}, {bvh.joint_count} joints; none of the known rigs "
            f"({', '.join(RIGS)}) has all its joints here",
        )  # fmt: skip
    source_fps = 1.0 / bvh.frame_time
    if fps is not None and fps > source_fps * (1 + 1e-6):
        detail = f"asked {fps} fps, the file has {source_fps:.3f} fps (no upsampling)"
        raise MocapFileError(path, SKIP_FPS, detail)
    metres_per_unit = _metres_per_unit(units, rig)
    nodes_m = _node_positions_world_m(bvh, rig, metres_per_unit)
    if not np.all(np.isfinite(nodes_m)):
        bad = int(np.flatnonzero(~np.isfinite(nodes_m).all(axis=(1, 2)))[0])
        raise MocapFileError(path, SKIP_NON_FINITE, f"NaN or inf in the FK positions, first at frame {bad}")
    skipped_frames = _leading_rest_frames(nodes_m[:, node_index[rig.body_root]], source_fps)
    first = len(skipped_frames)
    frames = first + resample_indices(bvh.frame_count - first, source_fps, fps)
    joints, mask = _select_joints(nodes_m[frames], node_index, rig, conv.name)
    if not mask.any():
        raise MocapFileError(path, SKIP_UNKNOWN_RIG, f"rig {rig.name} has no joint of convention {conv.name}")
    notes = _notes(bvh, rig, nodes_m[first:, node_index[rig.body_root]])
    return MocapSequence(
        name=name if name is not None else path.stem,
        path=path.absolute(),
        rig=rig.name,
        source_fps=source_fps,
        fps=float(fps) if fps is not None else source_fps,
        metres_per_unit=metres_per_unit,
        frames=frames,
        joints_world_m=joints.astype(np.float32),
        joints_mask=mask,
        convention=conv.name,
        skipped_frames=skipped_frames,
        notes=notes,
    )


def _summary_line(name: str, loaded: int, files: int, skipped: dict[str, str]) -> str:
    """``"<name>: loaded N frames (F files), skipped M: <reason>: k, ..."`` counted by category."""
    line = f"{name}: loaded {loaded} frames ({files} files), skipped {len(skipped)}"
    counts = Counter(reason.split(": ", 1)[0] for reason in skipped.values())
    if counts:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        line += ": " + ", ".join(f"{reason}: {count}" for reason, count in ordered)
    return line


@register("cmu_mocap")
class BVHMocap(Dataset):
    """BVH motion capture clips as a frame-level ``torch.utils.data.Dataset`` of 3D joints.

    All files matching ``pattern`` under ``root`` are parsed once at construction (pybvh + FK,
    about 0.03 s per 1000 frames of the 100-joint rig) and their joints cached as float32 numpy;
    items are :class:`MocapSample` dicts (torch tensors and str, ``default_collate``-ready).

    Args:
        root: folder of BVH files (config key ``data.root``), e.g. ``../shared/data/mocap_cmu``.
        pattern: glob relative to ``root`` (``data.pattern``); ``"**/*.bvh"`` recurses.
        convention: ``annot.keypoints`` convention of ``joints_world_m`` (``data.convention``).
        fps: output frame rate in Hz (nearest-frame resampling); None keeps each file's rate.
        units: ``"auto"`` (per rig: ``mocap_cmu`` cm, cgspeed CMU units) or a key of
            :data:`UNIT_SCALES_M`, forced on every file.

    Attributes:
        sequences: the kept :class:`MocapSequence` objects, in sorted path order.
        skipped: ``{key: reason}``: key is the sequence id for a skipped file, the sample id for a
            dropped rest-pose frame; the reason starts with its category ("unparsable BVH",
            "no frames", "unknown rig", "non-finite values", "frame rate too low",
            "rest pose frame") followed by ": " and the detail.

    Raises:
        FileNotFoundError: ``root`` is not a folder, or no file matches ``pattern`` (names the path
            and the config keys ``data.root`` / ``data.pattern``).
        ValueError: unknown ``convention`` or ``units``, or ``fps <= 0``.
    """

    name = "cmu_mocap"

    def __init__(
        self,
        root: str | Path,
        pattern: str = "*.bvh",
        convention: str = _SMPL24,
        fps: float | None = 30.0,
        units: str = "auto",
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.pattern = pattern
        self.convention = get_convention(convention).name
        if fps is not None and not fps > 0:
            raise ValueError(f"BVHMocap: fps must be > 0 or None (config key `data.fps`), got {fps}")
        _check_units(units)
        self.fps = fps
        self.units = units
        self.sequences: list[MocapSequence] = []
        self.skipped: dict[str, str] = {}
        self._load(self._find_files())
        counts = np.array([len(s.frames) for s in self.sequences], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        logger.info(self.summary())

    def _find_files(self) -> list[Path]:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"MoCap root folder not found: looked at '{self.root}' (absolute: '{self.root.absolute()}'). "
                "Set the config key `data.root` to the folder holding the .bvh files."
            )
        files = sorted(p for p in self.root.glob(self.pattern) if p.is_file())
        if not files:
            raise FileNotFoundError(
                f"no file matches '{self.pattern}' under '{self.root.absolute()}'. Check the config keys "
                "`data.root` and `data.pattern`."
            )
        return files

    def _load(self, files: list[Path]) -> None:
        for path in files:
            seq_name = path.relative_to(self.root).with_suffix("").as_posix()
            try:
                seq = read_bvh_sequence(path, self.convention, self.units, self.fps, name=seq_name)
            except MocapFileError as err:
                self.skipped[seq_name] = f"{err.reason}: {err.detail}"
                logger.warning("cmu_mocap: skipped %s: %s: %s", path, err.reason, err.detail)
                continue
            for frame, reason in seq.skipped_frames.items():
                self.skipped[f"{seq_name}:{frame:06d}"] = reason
            self.sequences.append(seq)

    def summary(self) -> str:
        """One line, e.g. ``"cmu_mocap: loaded 10890 frames (45 files), skipped 4: rest pose frame: 4"``."""
        return _summary_line(self.name, len(self), len(self.sequences), self.skipped)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``(sequence index, frame index within that sequence)`` of item ``index``.

        Raises:
            IndexError: ``index`` outside ``[-len, len)``.
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"cmu_mocap: index {index} out of range for {n} frames")
        index = index % n
        seq = int(np.searchsorted(self._starts, index, side="right") - 1)
        return seq, int(index - self._starts[seq])

    def __getitem__(self, index: int) -> MocapSample:
        seq_idx, local = self.locate(index)
        seq = self.sequences[seq_idx]
        frame = int(seq.frames[local])
        return MocapSample(
            joints_world_m=torch.from_numpy(seq.joints_world_m[local].copy()),
            joints_mask=torch.from_numpy(seq.joints_mask.astype(np.float32)),
            frame=torch.tensor(frame, dtype=torch.int64),
            time_s=torch.tensor(frame / seq.source_fps, dtype=torch.float32),
            sample_id=seq.sample_id(local),
            sequence=seq.name,
            rig=seq.rig,
            dataset=self.name,
        )

    def __repr__(self) -> str:
        args = f"root={str(self.root)!r}, convention={self.convention!r}, fps={self.fps}"
        return f"BVHMocap({args}) [{self.summary()}]"


#: Alias: the CMU clips are the BVH source this loader is written for.
CMUMocap = BVHMocap
