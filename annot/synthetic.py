"""A free synthetic benchmark: free-body-model people rendered over photo crops, in standard layouts.

Every sample is one person posed with the free body model
(``BodyModel("free")``), seen by a random perspective camera and rendered with
:class:`annot.render.MeshRenderer` over a random crop of a free photo. Three splits are written, each
in a layout the ordinary loaders read:

``mocap/``  3DPW layout (``annot.data.pw3d``), ``3DPW_train.json``: GT SMPL visible (MoCap-like).
``itw/``    COCO layout (``annot.data.coco``): ``annotations/person_keypoints_train2017.json`` and
            ``annotations/coco_wholebody_train_v1.0.json`` (2D keypoints, box, RLE segmentation only);
            the 3D GT sits in ``scoring/gt_smpl.json`` (NeuralAnnot layout keyed by annotation id,
            ``{smpl_param, cam_param}``), which no annotation json references (ITW-like).
``test/``   3DPW layout, ``3DPW_test.json``: a test split for estimators.

The ``itw`` split is **realistic** by default: its 2D annotations look like COCO's, because per-sample
fitting is hurt exactly by what real annotations have and a perfect projection lacks
(:mod:`annot.synthetic_annotation`):

* 1-4 people an image (``people_per_image``), sharing the camera at their own depths, overlapping;
* some people cut by the image border (``truncation_prob``): their outside keypoints are ``v = 0``;
* a keypoint covered by the person itself or by someone in front (depth test on the rendered scene) is
  ``v = 1`` (labelled, not visible), or left unlabelled (``v = 0``) with ``occluded_unlabelled_prob``;
* every labelled keypoint carries human annotator noise, COCO's per-keypoint ``sigma_i * sqrt(area)`` per
  axis, twice that for hidden keypoints;
* a person with fewer than ``min_labelled_keypoints`` labelled or visible keypoints stays in the image
  unannotated, as COCO leaves people nobody could annotate;
* box, area and RLE segmentation are of the visible part of each person.

The exact projections (``scoring/clean_kp2d.json``) and the GT lie beside the annotations where no loader
reads them; the manifest reports the measured fractions of ``v = 0 / 1 / 2`` keypoints, of truncated people
and the people per image next to those of the COCO sample. ``clean_2d=True`` gives the first version's ITW
split (one whole person an image, exact keypoints, all ``v = 2``).

GT is exact: SMPL parameters in the OpenCV camera frame of the image (x right, y down, z forward,
metres), gender ``"neutral"``, the image camera ``cam_param`` (``fx == fy``). Silhouette masks are
saved as PNG (``masks/`` for the 3DPW-layout splits, ``scoring/masks/`` for the ITW split: one per image in
the clean split, one full silhouette per annotation id ``<aid>.png`` in the realistic one).

Sampling (all from ``numpy.random.default_rng([seed, split index, sample index])``, so every sample
is reproducible on its own and a split can be regenerated in shards):

* body pose: joints 1..21 of a frame of the pose bank (:class:`PoseBank`); its root orientation is
  discarded. ``pose_source="cmu_fit"`` (default) retargets ``cmu_frames`` evenly spaced frames of the CMU
  clips (``cmu_root``) to the free body model with the 3D fitting baseline
  (:class:`annot.fitting.smplify.SMPLify3D`, NeuralAnnot supp. B) and keeps the fits below
  ``cmu_max_err_m`` (rejected frames are counted with their error in the manifest); the bank is cached
  in ``<out>/pose_bank.npz``. ``"npz"`` reads MoCap-mode pseudo-GTs (``pseudo_gt.npz`` of stage (a),
  key ``pose_rotvec`` (N, 24, 3)). ``"random"`` draws :func:`random_body_pose` (N(0, 0.2 rad) per joint,
  arms lowered, elbows bent: implausible, for tests only). Splits draw from disjoint clips: every third
  clip (sorted by name) is held out for ``itw`` / ``test``, the others feed ``mocap``, so the MoCap-like
  split never shows an ITW pose.
* mirrored with ``mirror_prob`` (``annot.data.augment.flip_smpl_pose``); hands (22, 23) zero.
* global orientation ``Rz(roll) Rx(elevation) Rx(pi) Ry(yaw)``: upright (SMPL Y-up -> camera y-down,
  facing the camera at yaw 0), turned by ``yaw`` about the body axis, tilted towards the camera by the
  camera ``elevation`` (camera above, looking down, for elevation > 0) and rolled in the image plane.
* betas ~ N(0, ``betas_std``^2): the free model's betas are in units of its realistic adult population's
  standard deviation (the baked file's provenance), so ``betas_std = 1`` reproduces that population.
* camera: distance of the pelvis 2-10 m, focal ``focal_range_frac`` x max(H, W) pixels restricted to
  the values that make the person ``person_height_frac`` of the image height, principal point near
  the centre, the person placed so that every body joint (SMPL 0..21) lies inside the image.
* appearance: one random colour per person (skin tone or cloth colour: the renderer takes one colour
  per mesh), light intensity scale ``light_range``, background = random crop of a photo (random
  scale, horizontal flip, per-channel gain, Gaussian colour noise) or, with ``photos_dir=None``, a
  noisy colour gradient.

Follows the idea of rendered pseudo-benchmarks such as AGORA / BEDLAM (parametric bodies over
backgrounds with exact GT); our own simple recipe, no code from them.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from annot.body_models import BodyModel
from annot.data.augment import flip_smpl_pose
from annot.data.fixtures.coco import keypoint_triplets, neuralannot_entry
from annot.data.fixtures.common import joints_in, project
from annot.data.fixtures.pw3d import _annotation as pw3d_annotation
from annot.data.person import SmplParams
from annot.render import MeshRenderer

log = logging.getLogger(__name__)

#: split name -> (layout, 3DPW split name or COCO image folder); the order fixes the split index of the seed.
SPLITS: dict[str, tuple[str, str]] = {"mocap": ("3dpw", "train"), "itw": ("coco", "train2017"),
                                      "test": ("3dpw", "test")}
BODY_JOINTS = 22  # SMPL joints 0..21 (no hands): must all project inside the image
COCO_PERSON_KEYPOINTS = "annotations/person_keypoints_train2017.json"
COCO_WHOLEBODY = "annotations/coco_wholebody_train_v1.0.json"
COCO_IMG_DIR = "images/train2017"
SCORING_FILE = "scoring/gt_smpl.json"
#: realistic ITW split: exact projections of the 17 COCO keypoints and their visibility per annotation id
#: (``{aid: {"kp2d_px": (17, 2), "vis": (17,), "truncated": bool}}``); hidden from the annotator like the GT.
CLEAN_KP2D_FILE = "scoring/clean_kp2d.json"
ITW_EXTRAS_FILE = "scoring/split_counts.json"
MANIFEST = "synthetic_manifest.json"
POSE_BANK = "pose_bank.npz"
POSE_SOURCES = ("cmu_fit", "npz", "random")
#: splits whose poses come from the held-out clips (every third clip); the others use the remaining clips.
HELD_OUT_SPLITS = ("itw", "test")
_SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.89, 0.68, 0.55], [0.78, 0.57, 0.44], [0.63, 0.45, 0.33],
                        [0.45, 0.31, 0.22], [0.30, 0.20, 0.14]])


@dataclass(frozen=True)
class SyntheticConfig:
    """Values of the generator (``configs/data/synthetic.yaml``).

    Attributes:
        seed: master seed; sample ``i`` of split ``s`` uses ``default_rng([seed, index of s, i])``.
        sizes: images per split ``{"mocap": n, "itw": n, "test": n}`` (one person each).
        image_hw: (height, width) pixels of every image.
        focal_range_frac: focal length range as a fraction of ``max(H, W)`` (pixels = frac * max(H, W)).
        distance_range_m: camera-to-pelvis depth range, metres.
        elevation_range_deg: camera elevation (positive = above the person, looking down), degrees.
        yaw_range_deg: rotation of the person about its vertical axis (0 = facing the camera), degrees.
        roll_range_deg: in-plane rotation, degrees.
        mirror_prob: probability of mirroring the pose (``flip_smpl_pose``).
        betas_std: standard deviation of betas (1 = the free model's adult population).
        person_height_frac: accepted silhouette height as a fraction of the image height.
        light_range: range of the light intensity scale (``MeshRenderer.render(light_intensity=)``).
        color_noise_std: std of the Gaussian background noise, 0..255 units.
        photos_dir: folder of background photos (jpg/png), relative to the working directory or
            absolute; ``None`` = procedural backgrounds.
        pose_source: ``"cmu_fit"`` (retarget the CMU clips with SMPLify3D), ``"npz"`` (``poses_npz``)
            or ``"random"`` (implausible random poses, tests only); see the module docstring.
        cmu_root: folder of the CMU BVH clips (``pose_source="cmu_fit"``).
        cmu_frames: frames retargeted, evenly spaced over all clips at 30 fps.
        cmu_fit_iters: SMPLify3D Adam steps per stage.
        cmu_max_err_m: retargeted frames with a larger mean 3D joint error are rejected, metres.
        poses_npz: MoCap-mode pseudo-GTs (``pose_source="npz"``), e.g. stage (a) of ``make annotate-body``.
        save_masks: write the silhouette masks as PNG.
        jpeg_quality: JPEG quality of the images.
        max_tries: camera draws per sample before giving up (RuntimeError).
        clean_2d: the ITW split as it was first made: one person per image, every body joint inside the image,
            keypoints exact projections with ``v = 2``. False (default): the realistic split (module docstring).
        people_per_image: realistic ITW split: probabilities of 1, 2, ... people in an image.
        truncation_prob: realistic ITW split: probability that a person may be cut by the image border.
        min_labelled_keypoints: realistic ITW split: a person is annotated only with at least this many of the
            17 COCO keypoints inside the image and this many visible (``v = 2``), as annotators skip people they
            cannot see (others stay in the image, unannotated, and are counted in the manifest).
        crowd_height_frac: realistic ITW split: accepted height (fraction of the image) of the second and
            later people of an image, which share the first one's camera.
        min_person_gap_m: realistic ITW split: least distance between two body centres (mean vertices) of an image, metres.
        occlusion_margin_m: a keypoint is hidden when a surface lies this far in front of it, metres;
        occluded_noise_factor: annotator noise of hidden keypoints relative to visible ones;
        occluded_unlabelled_prob: probability that a hidden keypoint is left unlabelled (``v = 0``)
            (:mod:`annot.synthetic_annotation`).
    """

    seed: int = 0
    sizes: dict[str, int] = field(default_factory=lambda: {"mocap": 24, "itw": 24, "test": 24})
    image_hw: tuple[int, int] = (480, 640)
    focal_range_frac: tuple[float, float] = (0.8, 2.5)
    distance_range_m: tuple[float, float] = (2.0, 10.0)
    elevation_range_deg: tuple[float, float] = (-10.0, 30.0)
    yaw_range_deg: tuple[float, float] = (-180.0, 180.0)
    roll_range_deg: tuple[float, float] = (-15.0, 15.0)
    mirror_prob: float = 0.5
    betas_std: float = 1.0
    person_height_frac: tuple[float, float] = (0.3, 0.9)
    light_range: tuple[float, float] = (0.6, 1.5)
    color_noise_std: float = 6.0
    photos_dir: str | None = "../shared/data/photos"
    pose_source: str = "cmu_fit"
    cmu_root: str = "../shared/data/mocap_cmu"
    cmu_frames: int = 512
    cmu_fit_iters: int = 200
    cmu_max_err_m: float = 0.04
    poses_npz: str | None = "outputs/annotate-body/stage_a_cmu/pseudo_gt.npz"
    save_masks: bool = True
    jpeg_quality: int = 95
    max_tries: int = 200
    clean_2d: bool = False
    people_per_image: tuple[float, ...] = (0.45, 0.3, 0.15, 0.1)
    truncation_prob: float = 0.3
    min_labelled_keypoints: int = 6
    crowd_height_frac: tuple[float, float] = (0.15, 0.9)
    min_person_gap_m: float = 0.6
    occlusion_margin_m: float = 0.15
    occluded_noise_factor: float = 2.0
    occluded_unlabelled_prob: float = 0.4

    def __post_init__(self) -> None:
        unknown = set(self.sizes) - set(SPLITS)
        if unknown:
            raise ValueError(f"SyntheticConfig.sizes: unknown splits {sorted(unknown)}; known: {list(SPLITS)}")
        if any(int(n) < 0 for n in self.sizes.values()):
            raise ValueError(f"SyntheticConfig.sizes: negative size in {self.sizes}")
        if self.pose_source not in POSE_SOURCES:
            raise ValueError(f"SyntheticConfig.pose_source: expected one of {POSE_SOURCES}, "
                             f"got {self.pose_source!r}")
        if self.cmu_frames < 1 or self.cmu_fit_iters < 1 or self.cmu_max_err_m <= 0:
            raise ValueError("SyntheticConfig: cmu_frames and cmu_fit_iters must be >= 1 and cmu_max_err_m > 0, "
                             f"got {self.cmu_frames}, {self.cmu_fit_iters}, {self.cmu_max_err_m}")
        probs = np.asarray(self.people_per_image, np.float64)
        if probs.ndim != 1 or len(probs) == 0 or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
            raise ValueError(f"SyntheticConfig.people_per_image: probabilities of 1, 2, ... people summing to 1, "
                             f"got {self.people_per_image}")
        if not 0 <= self.occluded_unlabelled_prob <= 1:
            raise ValueError(f"SyntheticConfig.occluded_unlabelled_prob: expected [0, 1], got {self.occluded_unlabelled_prob}")
        if not 0 <= self.truncation_prob <= 1 or not 0 <= self.min_labelled_keypoints <= 17:
            raise ValueError(f"SyntheticConfig: truncation_prob in [0, 1] and min_labelled_keypoints in [0, 17], got "
                             f"{self.truncation_prob}, {self.min_labelled_keypoints}")
        for name in ("focal_range_frac", "distance_range_m", "person_height_frac", "light_range",
                     "crowd_height_frac"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"SyntheticConfig.{name}: expected 0 < low <= high, got {(lo, hi)}")
        if len(self.image_hw) != 2 or min(self.image_hw) < 16:
            raise ValueError(f"SyntheticConfig.image_hw: expected (H, W) >= 16 pixels, got {self.image_hw}")


@dataclass(frozen=True)
class SyntheticPerson:
    """One sampled person and its camera.

    ``smpl``: SMPL parameters in the OpenCV camera frame (metres, gender neutral); ``vertices_cam_m``
    (V, 3); ``focal_px`` / ``princpt_px`` (2,) pixels; ``color`` (3,) RGB in [0, 1];
    ``light_intensity`` scale of the light rig; ``mirrored`` whether the pose was flipped.
    """

    smpl: SmplParams
    vertices_cam_m: np.ndarray
    focal_px: np.ndarray
    princpt_px: np.ndarray
    color: np.ndarray
    light_intensity: float
    mirrored: bool


# ----------------------------------------------------------------------------------------------- poses
@dataclass(frozen=True)
class PoseBank:
    """Body poses to draw from, grouped by clip.

    Attributes:
        poses: (N, 21, 3) axis-angle radians of SMPL joints 1..21 (no root orientation, no hands).
        clips: (N,) clip name of every pose (``""`` when unknown: then every split draws from all).
        source: a description for the manifest.
        rejected: ``{sample id: reason}`` of frames left out (retargeting error above the threshold).
    """

    poses: np.ndarray
    clips: np.ndarray
    source: str
    rejected: dict[str, str] = field(default_factory=dict)

    def for_split(self, split: str) -> np.ndarray:
        """(M, 21, 3) poses of ``split``: clips sorted by name, every third held out for :data:`HELD_OUT_SPLITS`,
        the rest for the others; all poses when there are fewer than three clips.

        Raises:
            ValueError: the selection is empty (names the split).
        """
        names = sorted(set(self.clips.tolist()))
        if len(names) < 3:
            return self.poses
        held = set(names[::3])
        keep = np.array([(c in held) == (split in HELD_OUT_SPLITS) for c in self.clips])
        if not keep.any():
            raise ValueError(f"pose bank ({self.source}): no pose left for split {split!r}")
        return self.poses[keep]


def retarget_cmu(config: SyntheticConfig, body: BodyModel) -> dict[str, np.ndarray]:
    """Fit the free body model to ``config.cmu_frames`` evenly spaced CMU frames (SMPL-24 joints, 30 fps).

    Returns:
        ``pose_rotvec`` (N, 24, 3) radians and ``transl_m`` (N, 3) in the clips' Y-up world frame, ``betas``
        (N, B), ``sample_id`` (N,) ``"<clip>:<frame>"``, ``joints_err_m`` (N,) mean 3D joint error of the
        fit, metres. Batched :class:`annot.fitting.smplify.SMPLify3D` (prior ``none``: L2 + bending),
        about 20 s for 512 frames on 2 CPU cores.

    Raises:
        FileNotFoundError: ``config.cmu_root`` holds no BVH (from :class:`annot.data.mocap.BVHMocap`).
    """
    from annot.data.mocap import BVHMocap
    from annot.fitting.smplify import SMPLify3D

    mocap = BVHMocap(config.cmu_root, convention="smpl24", fps=30.0)
    index = np.unique(np.linspace(0, len(mocap) - 1, min(config.cmu_frames, len(mocap))).round().astype(int))
    items = [mocap[int(i)] for i in index]
    joints = torch.stack([it["joints_world_m"] for it in items])
    mask = torch.stack([it["joints_mask"] for it in items])
    fit = SMPLify3D(body, prior="none", num_iters_per_stage=config.cmu_fit_iters).fit(joints, mask, "smpl24")
    return {"pose_rotvec": fit.pose_rotvec.double().numpy(), "transl_m": fit.transl_m.double().numpy(),
            "betas": fit.betas.double().numpy(), "sample_id": np.array([it["sample_id"] for it in items]),
            "joints_err_m": fit.joints_err_m.double().numpy()}


def _bank_provenance(config: SyntheticConfig) -> str:
    return json.dumps({"cmu_root": str(Path(config.cmu_root).resolve()), "cmu_frames": config.cmu_frames,
                       "cmu_fit_iters": config.cmu_fit_iters, "version": 1}, sort_keys=True)


def cmu_pose_bank(config: SyntheticConfig, body: BodyModel, cache: Path | None = None) -> PoseBank:
    """The ``cmu_fit`` :class:`PoseBank`: :func:`retarget_cmu`, cached in ``cache`` (an ``.npz`` with its
    fields and ``provenance``, reused while that matches), then frames above ``config.cmu_max_err_m``
    rejected with their error.

    Raises:
        FileNotFoundError: from :func:`retarget_cmu`. ValueError: every frame rejected.
    """
    import io

    from annot.io.atomic import atomic_write_bytes

    provenance = _bank_provenance(config)
    fitted = None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if str(data["provenance"]) == provenance:
                fitted = {k: data[k] for k in data.files}
    if fitted is None:
        fitted = retarget_cmu(config, body)
        if cache is not None:
            buf = io.BytesIO()
            np.savez(buf, provenance=np.array(provenance), **fitted)
            atomic_write_bytes(cache, buf.getvalue())
    ids, err = fitted["sample_id"].astype(str), fitted["joints_err_m"]
    keep = err <= config.cmu_max_err_m
    rejected = {i: f"retargeting error {e * 1e3:.1f} mm > {config.cmu_max_err_m * 1e3:.0f} mm"
                for i, e, k in zip(ids, err, keep) if not k}
    if not keep.any():
        raise ValueError(f"CMU pose bank: all {len(ids)} retargeted frames exceed cmu_max_err_m="
                         f"{config.cmu_max_err_m} m (median {np.median(err) * 1e3:.0f} mm)")
    clips = np.array([i.split(":")[0] for i in ids[keep]])
    source = (f"cmu_fit ({config.cmu_root}: {int(keep.sum())} of {len(ids)} frames retargeted by SMPLify3D, "
              f"mean error {err[keep].mean() * 1e3:.1f} mm)")
    return PoseBank(fitted["pose_rotvec"][keep, 1:BODY_JOINTS], clips, source, rejected)


def load_pose_bank(config: SyntheticConfig, body: BodyModel | None = None, cache: Path | None = None,
                   ) -> PoseBank | None:
    """The poses of ``config.pose_source``: a :class:`PoseBank`, or None for ``"random"`` (a warning is logged).

    Args:
        config: generator values; body: the free body model (``cmu_fit`` only; default ``BodyModel("free")``);
        cache: ``.npz`` path caching the ``cmu_fit`` retargeting (None: no cache).

    Raises:
        FileNotFoundError: ``npz`` without ``poses_npz`` file (says to run ``make annotate-body``), or no CMU
            clips under ``cmu_root`` (``cmu_fit``).
        ValueError: the npz lacks ``pose_rotvec`` of shape (N, 24, 3) with finite values (names file, field).
    """
    if config.pose_source == "random":
        log.warning("synthetic: random body poses (pose_source=random) are implausible; tests only")
        return None
    if config.pose_source == "cmu_fit":
        return cmu_pose_bank(config, body if body is not None else BodyModel.from_config("free"), cache)
    path = Path(config.poses_npz) if config.poses_npz else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{path}: no MoCap-mode pseudo-GT poses (pose_source=npz); run `make annotate-body` "
                                "first, or use pose_source=cmu_fit")
    with np.load(path) as data:
        if "pose_rotvec" not in data.files:
            raise ValueError(f"{path}: field 'pose_rotvec' missing (have {data.files})")
        poses = np.asarray(data["pose_rotvec"], dtype=np.float64)
        ids = np.asarray(data["sample_id"]).astype(str) if "sample_id" in data.files else np.full(len(poses), "")
    if poses.ndim != 3 or poses.shape[1:] != (24, 3) or len(poses) == 0 or not np.all(np.isfinite(poses)):
        raise ValueError(f"{path}: field 'pose_rotvec' must be finite (N, 24, 3), got {poses.shape}")
    clips = np.array([i.split(":")[0] for i in ids])
    return PoseBank(poses[:, 1:BODY_JOINTS], clips, f"npz ({path}, {len(poses)} frames)")


def random_body_pose(rng: np.random.Generator) -> np.ndarray:
    """(21, 3) axis-angle radians for SMPL joints 1..21: N(0, 0.2) per joint, both shoulders lowered
    by U(0.3, 1.3) rad from the T-pose (rotation about the model's z axis) and elbows bent by
    U(0, 1.2) rad (about y), so that arms are not always stretched out."""
    pose = rng.normal(scale=0.2, size=(24, 3))
    pose[16, 2] -= rng.uniform(0.3, 1.3)  # left arm (+x) down: -angle about +z
    pose[17, 2] += rng.uniform(0.3, 1.3)  # right arm (-x) down
    pose[18, 1] -= rng.uniform(0.0, 1.2)  # left elbow bends forward
    pose[19, 1] += rng.uniform(0.0, 1.2)
    return pose[1:BODY_JOINTS]


def global_orientation(yaw_rad: float, elevation_rad: float, roll_rad: float) -> np.ndarray:
    """(3,) axis-angle of ``Rz(roll) Rx(elevation) Rx(pi) Ry(yaw)``: an upright SMPL body (Y up) in the
    OpenCV camera frame (y down), facing the camera at yaw 0, seen from ``elevation`` above (radians)."""
    rot = (Rotation.from_rotvec([0.0, 0.0, roll_rad]) * Rotation.from_rotvec([elevation_rad, 0.0, 0.0])
           * Rotation.from_rotvec([np.pi, 0.0, 0.0]) * Rotation.from_rotvec([0.0, yaw_rad, 0.0]))
    return rot.as_rotvec()


def _uniform_deg(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(np.deg2rad(rng.uniform(*bounds)))


def sample_pose(rng: np.random.Generator, pose_bank: np.ndarray | None,
                config: SyntheticConfig) -> tuple[np.ndarray, bool]:
    """(24, 3) SMPL pose (axis-angle radians, camera frame global orientation) and whether mirrored."""
    pose = np.zeros((24, 3))
    if pose_bank is None:
        pose[1:BODY_JOINTS] = random_body_pose(rng)
    else:
        pose[1:BODY_JOINTS] = pose_bank[rng.integers(len(pose_bank))]
    mirrored = bool(rng.random() < config.mirror_prob)
    if mirrored:
        pose = flip_smpl_pose(pose)
    pose[0] = global_orientation(_uniform_deg(rng, config.yaw_range_deg),
                                 _uniform_deg(rng, config.elevation_range_deg),
                                 _uniform_deg(rng, config.roll_range_deg))
    pose[22:] = 0.0
    return pose, mirrored


def random_color(rng: np.random.Generator) -> np.ndarray:
    """(3,) RGB in [0, 1]: half the time a jittered skin tone, else a cloth colour (random hue)."""
    if rng.random() < 0.5:
        rgb = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.normal(scale=0.03, size=3)
    else:
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 220), rng.uniform(70, 230)]]], np.uint8)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    return np.clip(rgb, 0.02, 0.98)


# ---------------------------------------------------------------------------------------------- camera
def _place(rng: np.random.Generator, verts0: np.ndarray, joints0: np.ndarray, config: SyntheticConfig,
           camera: tuple[np.ndarray, np.ndarray] | None = None, truncate: bool = False,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One camera draw: ``(transl offset (3,), focal_px (2,), princpt_px (2,))`` or None when rejected.

    ``verts0`` / ``joints0``: the posed person with its pelvis at the origin (camera axes, metres).
    ``camera``: a fixed ``(focal_px, princpt_px)`` (later people of a crowd share the first one's camera;
    their height must then lie in ``crowd_height_frac``); default: a focal drawn for this person.
    ``truncate``: let the border cut the person: the pelvis pixel range is widened by half the person's
    extent, and the draw is kept only when some joint is outside and ``min_labelled_keypoints`` are inside.
    Without it every joint lies inside the image.
    """
    height, width = config.image_hw
    depth = rng.uniform(*config.distance_range_m)
    extent_m = np.ptp(verts0[:, 1])
    if camera is None:
        lo_h, hi_h = config.person_height_frac
        lo_f = max(config.focal_range_frac[0] * max(height, width), lo_h * height * depth / extent_m)
        hi_f = min(config.focal_range_frac[1] * max(height, width), hi_h * height * depth / extent_m)
        if lo_f > hi_f:
            return None
        focal = np.full(2, rng.uniform(lo_f, hi_f))
        princpt = np.array([width / 2, height / 2]) + rng.uniform(-0.02, 0.02, size=2) * [width, height]
    else:
        focal, princpt = camera
        lo_h, hi_h = config.crowd_height_frac
        if not lo_h <= extent_m * focal[1] / depth / height <= hi_h:
            return None
    rel = joints0[:, :2] / np.maximum(joints0[:, 2:3] + depth, 0.1) * focal  # joints around the pelvis pixel
    lo_uv, hi_uv = -rel.min(axis=0) + 2.0, np.array([width, height]) - rel.max(axis=0) - 3.0
    if truncate:
        half = np.ptp(rel, axis=0) / 2
        lo_uv, hi_uv = lo_uv - half, hi_uv + half
    if np.any(lo_uv > hi_uv):
        return None
    pelvis_uv = rng.uniform(lo_uv, hi_uv)
    offset = np.r_[(pelvis_uv - princpt) / focal * depth, depth]
    joints_px = project(joints0 + offset, focal, princpt)
    inside = (joints_px >= 0).all(1) & (joints_px[:, 0] <= width - 1) & (joints_px[:, 1] <= height - 1)
    if not np.all(joints0[:, 2] + depth > 0.5):
        return None
    if truncate:
        ok = (not inside.all()) and inside.sum() >= config.min_labelled_keypoints
    else:
        ok = bool(inside.all())
    return (offset, focal, princpt) if ok else None


def sample_person(rng: np.random.Generator, body: BodyModel, pose_bank: np.ndarray | None,
                  config: SyntheticConfig, sample_id: str = "", camera: tuple[np.ndarray, np.ndarray] | None = None,
                  truncate: bool = False) -> SyntheticPerson:
    """Draw pose, shape, camera and appearance of one person (see the module docstring).

    ``camera`` and ``truncate``: see :func:`_place` (realistic ITW split; defaults: the person alone, whole).

    Raises:
        RuntimeError: no camera draw within ``config.max_tries`` keeps the body joints inside the image
            at the requested person height (names ``sample_id``; widen the ranges).
    """
    pose, mirrored = sample_pose(rng, pose_bank, config)
    betas = rng.normal(scale=config.betas_std, size=body.num_betas)
    pose_t = torch.as_tensor(pose.reshape(1, 72), dtype=torch.float32)
    with torch.no_grad():
        out = body(pose_t[:, :3], pose_t[:, 3:], torch.as_tensor(betas, dtype=torch.float32)[None])
    verts = out.vertices_m[0].double().numpy()
    joints = out.joints_smpl24_m[0, :BODY_JOINTS].double().numpy()
    pelvis = joints[0].copy()
    verts0, joints0 = verts - pelvis, joints - pelvis
    for _ in range(config.max_tries):
        placed = _place(rng, verts0, joints0, config, camera, truncate)
        if placed is not None:
            offset, focal, princpt = placed
            smpl = SmplParams(pose, betas, offset - pelvis, "neutral")
            return SyntheticPerson(smpl, verts0 + offset, focal, princpt, random_color(rng),
                                   float(rng.uniform(*config.light_range)), mirrored)
    raise RuntimeError(f"synthetic sample {sample_id}: no camera within {config.max_tries} draws keeps the "
                       "body inside the image; widen focal_range_frac / distance_range_m / person_height_frac")


# ------------------------------------------------------------------------------------------ background
class Backgrounds:
    """Random background images (H, W, 3) uint8 RGB: crops of the photos in ``photos_dir`` or, with
    ``photos_dir=None``, noisy colour gradients.

    Raises:
        FileNotFoundError: ``photos_dir`` is given but missing or holds no jpg/png (names the folder and
            the config key ``photos_dir`` / flag ``--photos``).
    """

    def __init__(self, photos_dir: str | Path | None, color_noise_std: float = 6.0) -> None:
        self.color_noise_std = float(color_noise_std)
        self.photos: list[np.ndarray] = []
        self.names: list[str] = []
        if photos_dir is None:
            return
        folder = Path(photos_dir)
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
            if folder.is_dir() else []
        if not files:
            raise FileNotFoundError(f"background photos: no jpg/png in {folder.absolute()} (config key "
                                    "photos_dir, flag --photos; see ../shared/data/README.md, or pass None)")
        for path in files:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"background photos: cannot decode {path}")
            self.photos.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            self.names.append(path.name)

    def sample(self, rng: np.random.Generator, image_hw: tuple[int, int]) -> np.ndarray:
        """A random background of size ``image_hw`` (see the class docstring)."""
        height, width = image_hw
        if self.photos:
            photo = self.photos[rng.integers(len(self.photos))]
            ph, pw = photo.shape[:2]
            full = min(pw / width, ph / height)  # largest crop of the image's aspect ratio
            scale = full * rng.uniform(0.3, 1.0)
            cw, ch = max(int(width * scale), 1), max(int(height * scale), 1)
            x0, y0 = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
            img = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_AREA)
            if rng.random() < 0.5:
                img = img[:, ::-1]
        else:
            ramp = np.linspace(0.0, 1.0, height)[:, None, None]
            top, bottom = rng.uniform(30, 220, size=3), rng.uniform(30, 220, size=3)
            img = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3))
        gain = rng.normal(1.0, 0.1, size=3)
        noise = rng.normal(scale=self.color_noise_std, size=(height, width, 3))
        return np.clip(np.asarray(img, np.float64) * gain + noise, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- writing
def _floats(values: Any) -> list:
    return np.asarray(values, dtype=np.float64).round(10).tolist()


def _write_rgb(path: Path, rgb: np.ndarray, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"could not write synthetic image {path}")


def _write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise OSError(f"could not write synthetic mask {path}")


def render_sample(person: SyntheticPerson, faces: np.ndarray, background: np.ndarray,
                  renderer: MeshRenderer) -> tuple[np.ndarray, np.ndarray]:
    """Composite the shaded person over ``background`` (H, W, 3) uint8; returns (rgb, mask (H, W) bool)."""
    rgb, _, mask = renderer.render(person.vertices_cam_m, faces, person.focal_px, person.princpt_px,
                                   background.shape[:2], person.color, person.light_intensity)
    out = background.copy()
    out[mask] = rgb[mask]
    return out, mask


def _mask_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _coco_entries(body: BodyModel, aid: int, image_id: int, person: SyntheticPerson, mask: np.ndarray,
                  image_hw: tuple[int, int]) -> tuple[dict, dict]:
    """(person_keypoints annotation, wholebody annotation) of one rendered person: keypoints ``v = 2``
    inside the image (no occlusion flags), box and area of the silhouette, RLE segmentation."""
    joints, joint_mask = joints_in(body, person.smpl, "coco17_feet")
    trip = keypoint_triplets(project(joints, person.focal_px, person.princpt_px), joint_mask, image_hw)
    ann = {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0,
           "num_keypoints": int((trip[:17, 2] > 0).sum()), "bbox": _mask_box(mask),
           "area": float(mask.sum()), "segmentation": _rle(mask), "keypoints": _floats(trip[:17].reshape(-1))}
    whole = dict(ann, foot_kpts=_floats(trip[17:].reshape(-1)), foot_valid=True,
                 face_kpts=[0.0] * 204, lefthand_kpts=[0.0] * 63, righthand_kpts=[0.0] * 63,
                 face_box=[0.0] * 4, lefthand_box=[0.0] * 4, righthand_box=[0.0] * 4,
                 face_valid=False, lefthand_valid=False, righthand_valid=False)
    return ann, whole


# ------------------------------------------------------------------------------- realistic ITW split
def sample_scene(rng: np.random.Generator, body: BodyModel, pose_bank: np.ndarray | None, config: SyntheticConfig,
                 image_key: str = "") -> list[SyntheticPerson]:
    """The people of one realistic ITW image: ``1 + k`` with probability ``people_per_image[k]``, each cut by
    the border with probability ``truncation_prob``; the first draws the camera, the others share it at
    their own depth, at least ``min_person_gap_m`` from every other body centre (mean vertex; they may overlap in the image).
    A later person that cannot be placed within ``max_tries`` is left out (the image has fewer people).

    Raises:
        RuntimeError: the first person cannot be placed (from :func:`sample_person`).
    """
    count = 1 + int(rng.choice(len(config.people_per_image), p=np.asarray(config.people_per_image)))
    people = [sample_person(rng, body, pose_bank, config, f"{image_key}/0",
                            truncate=bool(rng.random() < config.truncation_prob))]
    camera = (people[0].focal_px, people[0].princpt_px)
    for k in range(1, count):
        truncate = bool(rng.random() < config.truncation_prob)
        for _ in range(10):
            try:
                person = sample_person(rng, body, pose_bank, config, f"{image_key}/{k}", camera, truncate)
            except RuntimeError:
                break
            gaps = [np.linalg.norm(_body_centre(person) - _body_centre(other)) for other in people]
            if min(gaps) >= config.min_person_gap_m:
                people.append(person)
                break
    return people


def _body_centre(person: SyntheticPerson) -> np.ndarray:
    """(3,) a body-centre point in the camera frame (mean vertex), metres: enough to keep people apart."""
    return person.vertices_cam_m.mean(0)


def render_scene(people: list[SyntheticPerson], faces: np.ndarray, background: np.ndarray,
                 renderer: MeshRenderer) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Render every person and composite by depth.

    Returns:
        ``rgb`` (H, W, 3) uint8; ``scene_depth_m`` (H, W) nearest surface, ``inf`` on the background;
        ``owner`` (H, W) int index of the person seen at each pixel, -1 on the background; ``silhouettes``
        list of (H, W) bool full (unoccluded) masks, one per person.
    """
    hw = background.shape[:2]
    rgb = background.copy()
    scene = np.full(hw, np.inf)
    owner = np.full(hw, -1, dtype=np.int64)
    silhouettes = []
    for k, person in enumerate(people):
        shaded, depth, mask = renderer.render(person.vertices_cam_m, faces, person.focal_px, person.princpt_px,
                                              hw, person.color, person.light_intensity)
        nearer = mask & (depth < scene)
        rgb[nearer], scene[nearer], owner[nearer] = shaded[nearer], depth[nearer], k
        silhouettes.append(mask)
    return rgb, scene, owner, silhouettes


def _realistic_entries(body: BodyModel, aid: int, image_id: int, person: SyntheticPerson, visible: np.ndarray,
                       scene_depth_m: np.ndarray, rng: np.random.Generator, config: SyntheticConfig,
                       ) -> tuple[dict, dict, dict] | None:
    """(person_keypoints annotation, wholebody annotation, clean keypoints) of one person of a realistic image,
    or None when it is too hidden to be annotated (``min_labelled_keypoints``, module docstring)."""
    from annot.synthetic_annotation import (
        COCO17_FEET_SIGMAS,
        annotator_noise,
        drop_unlabelled,
        inside_image,
        keypoint_visibility,
    )

    joints, joint_mask = joints_in(body, person.smpl, "coco17_feet")
    kp_px = project(joints, person.focal_px, person.princpt_px)
    seen = keypoint_visibility(kp_px, joints[:, 2], scene_depth_m, config.occlusion_margin_m) * joint_mask
    vis = drop_unlabelled(rng, seen, config.occluded_unlabelled_prob)
    need = config.min_labelled_keypoints
    if (vis[:17] > 0).sum() < need or (vis[:17] == 2).sum() < need or not visible.any():
        return None
    area = float(visible.sum())
    noisy = annotator_noise(rng, kp_px, vis, COCO17_FEET_SIGMAS, area, config.image_hw,
                            config.occluded_noise_factor)
    trip = np.c_[noisy, vis.astype(np.float64)]
    ann = {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0,
           "num_keypoints": int((vis[:17] > 0).sum()), "bbox": _mask_box(visible), "area": area,
           "segmentation": _rle(visible), "keypoints": _floats(trip[:17].reshape(-1))}
    whole = dict(ann, foot_kpts=_floats(trip[17:].reshape(-1)), foot_valid=bool((vis[17:] > 0).any()),
                 face_kpts=[0.0] * 204, lefthand_kpts=[0.0] * 63, righthand_kpts=[0.0] * 63,
                 face_box=[0.0] * 4, lefthand_box=[0.0] * 4, righthand_box=[0.0] * 4,
                 face_valid=False, lefthand_valid=False, righthand_valid=False)
    clean = {"kp2d_px": _floats(kp_px[:17]), "vis": seen[:17].tolist(),
             "truncated": bool(not inside_image(kp_px[:17], config.image_hw).all())}
    return ann, whole, clean


def _write_itw_realistic(root: Path, config: SyntheticConfig, body: BodyModel, renderer: MeshRenderer,
                         poses: np.ndarray | None, backgrounds: Backgrounds,
                         progress: Callable[[int], None] | None) -> tuple[list, list, list, dict, dict]:
    """Render images of the realistic ITW split until ``sizes["itw"]`` people are annotated.

    Returns ``(images, annotations, wholebody annotations, scoring GT, extras)`` where ``extras`` holds the
    clean keypoints per annotation id and the count of rendered people left unannotated (too hidden, or
    beyond the split size in its last image).
    """
    target = int(config.sizes.get("itw", 0))
    height, width = config.image_hw
    images, anns, wholes, scoring, clean = [], [], [], {}, {}
    unannotated = 0
    index = 0
    while len(anns) < target:
        if index >= 20 * max(target, 1):
            raise RuntimeError(f"synthetic itw: {index} images gave only {len(anns)} of {target} annotatable people; "
                               "lower min_labelled_keypoints or truncation_prob")
        rng = _sample_rng(config, "itw", index)
        image_id = index + 1
        people = sample_scene(rng, body, poses, config, f"itw/{index}")
        rgb, scene, owner, silhouettes = render_scene(people, body.faces, backgrounds.sample(rng, config.image_hw),
                                                      renderer)
        file_name = f"{image_id:012d}.jpg"
        kept = 0
        for k, person in enumerate(people):
            aid = 100 * image_id + k
            made = _realistic_entries(body, aid, image_id, person, owner == k, scene, rng, config) \
                if len(anns) < target else None
            if made is None:
                unannotated += 1
                continue
            ann, whole, clean[str(aid)] = made
            anns.append(ann)
            wholes.append(whole)
            scoring[str(aid)] = neuralannot_entry(person.smpl, person.focal_px, person.princpt_px)
            if config.save_masks:
                _write_mask(root / "scoring" / "masks" / f"{aid}.png", silhouettes[k])
            kept += 1
            if progress is not None:
                progress(1)
        if kept:
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
            _write_rgb(root / COCO_IMG_DIR / file_name, rgb, config.jpeg_quality)
        index += 1
    return images, anns, wholes, scoring, {"clean_kp2d": clean, "unannotated_people": unannotated,
                                           "images_drawn": index}


def _sample_rng(config: SyntheticConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, list(SPLITS).index(split), index])


def make_split(split: str, out_dir: str | Path, config: SyntheticConfig, body: BodyModel,
               renderer: MeshRenderer, pose_bank: PoseBank | None, backgrounds: Backgrounds,
               progress: Callable[[int], None] | None = None) -> Path:
    """Render ``config.sizes[split]`` images of ``split`` under ``out_dir/<split>`` and write its layout.

    Args:
        split: ``"mocap"``, ``"itw"`` or ``"test"`` (:data:`SPLITS`).
        out_dir: output root; the split's loader root is ``out_dir/<split>``.
        config: generator values; body: the free :class:`BodyModel`; renderer: a :class:`MeshRenderer`;
        pose_bank: from :func:`load_pose_bank` (this split's clips are used) or None (random poses);
        backgrounds: a :class:`Backgrounds`; progress: called with 1 after every sample (e.g. tqdm.update).

    Returns:
        the split root. For ``mocap`` / ``test``: ``build_dataset("3dpw", root=<it>, split="train" /
        "test")``; for ``itw``: ``build_dataset("coco", root=<it>, ann_file=COCO_PERSON_KEYPOINTS,
        img_dir=COCO_IMG_DIR)`` (scoring: ``smpl_file=SCORING_FILE``).

    Raises:
        ValueError: unknown split. RuntimeError: from :func:`sample_person` or the renderer.
    """
    if split not in SPLITS:
        raise ValueError(f"make_split: unknown split {split!r}; known: {list(SPLITS)}")
    layout, name = SPLITS[split]
    root = Path(out_dir) / split
    root.mkdir(parents=True, exist_ok=True)
    height, width = config.image_hw
    images, anns, wholes, scoring = [], [], [], {}
    poses = pose_bank.for_split(split) if pose_bank is not None else None
    realistic = layout == "coco" and not config.clean_2d
    if realistic:
        images, anns, wholes, scoring, extras = _write_itw_realistic(root, config, body, renderer, poses,
                                                                     backgrounds, progress)
        (root / CLEAN_KP2D_FILE).parent.mkdir(parents=True, exist_ok=True)
        (root / CLEAN_KP2D_FILE).write_text(json.dumps(extras.pop("clean_kp2d")))
        (root / ITW_EXTRAS_FILE).write_text(json.dumps(extras))
    for index in range(0 if realistic else int(config.sizes.get(split, 0))):
        rng = _sample_rng(config, split, index)
        image_id, aid = index + 1, 100 * (index + 1)
        person = sample_person(rng, body, poses, config, f"{split}/{index}")
        rgb, mask = render_sample(person, body.faces, backgrounds.sample(rng, config.image_hw), renderer)
        cam = {"focal": _floats(person.focal_px), "princpt": _floats(person.princpt_px)}
        if layout == "3dpw":
            sequence, file_name = f"synthetic_{split}", f"image_{index:05d}.jpg"
            images.append({"id": image_id, "file_name": file_name, "sequence": sequence, "frame_idx": index,
                           "width": width, "height": height, "cam_param": cam})
            ann, _ = pw3d_annotation(body, aid, image_id, person.smpl, cam)
            anns.append(dict(ann, person_id=0))
            _write_rgb(root / "imageFiles" / sequence / file_name, rgb, config.jpeg_quality)
            mask_path = root / "masks" / sequence / file_name.replace(".jpg", ".png")
        else:
            file_name = f"{image_id:012d}.jpg"
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
            ann, whole = _coco_entries(body, aid, image_id, person, mask, config.image_hw)
            anns.append(ann)
            wholes.append(whole)
            scoring[str(aid)] = neuralannot_entry(person.smpl, person.focal_px, person.princpt_px)
            _write_rgb(root / COCO_IMG_DIR / file_name, rgb, config.jpeg_quality)
            mask_path = root / "scoring" / "masks" / file_name.replace(".jpg", ".png")
        if config.save_masks:
            _write_mask(mask_path, mask)
        if progress is not None:
            progress(1)
    if layout == "3dpw":
        (root / f"3DPW_{name}.json").write_text(json.dumps({"images": images, "annotations": anns}))
    else:
        categories = [{"id": 1, "name": "person", "supercategory": "person"}]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        for rel, entries in ((COCO_PERSON_KEYPOINTS, anns), (COCO_WHOLEBODY, wholes)):
            (root / rel).write_text(json.dumps({"images": images, "annotations": entries,
                                                "categories": categories}))
        (root / SCORING_FILE).parent.mkdir(parents=True, exist_ok=True)
        (root / SCORING_FILE).write_text(json.dumps(scoring))
    return root


def make_synthetic(config: SyntheticConfig, out_dir: str | Path, body: BodyModel | None = None,
                   renderer: MeshRenderer | None = None,
                   progress: Callable[[str, int], Callable[[int], None] | None] | None = None) -> dict[str, Path]:
    """Generate every split with a non-zero size and ``out_dir/synthetic_manifest.json`` (config, pose
    source, background photos, split roots and loader arguments).

    Args:
        config: generator values; out_dir: output root (created).
        body: the free body model (default ``BodyModel("free")``); renderer: default a new MeshRenderer.
        progress: ``progress(split, total)`` returning a per-sample callback (e.g. a tqdm's ``update``).

    Returns:
        ``{split: split root}``.

    Raises:
        FileNotFoundError / ValueError: from :func:`load_pose_bank`, :class:`Backgrounds`, the body model.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body = body if body is not None else BodyModel.from_config("free")
    pose_bank = load_pose_bank(config, body, out / POSE_BANK)
    backgrounds = Backgrounds(config.photos_dir, config.color_noise_std)
    own_renderer = renderer is None
    renderer = renderer or MeshRenderer()
    roots: dict[str, Path] = {}
    try:
        for split in SPLITS:
            total = int(config.sizes.get(split, 0))
            if total:
                callback = progress(split, total) if progress is not None else None
                roots[split] = make_split(split, out, config, body, renderer, pose_bank, backgrounds, callback)
    finally:
        if own_renderer:
            renderer.close()
    manifest = {"config": asdict(config), "background_photos": backgrounds.names,
                "pose_source": pose_bank.source if pose_bank is not None else "random (pose_source=random)",
                "pose_bank_rejected": {"count": len(pose_bank.rejected) if pose_bank else 0,
                                       "frames": pose_bank.rejected if pose_bank else {}},
                "itw_annotations": _itw_statistics(roots.get("itw"), config),
                "splits": {s: str(p) for s, p in roots.items()},
                "loaders": {"mocap": {"dataset": "3dpw", "split": "train"},
                            "test": {"dataset": "3dpw", "split": "test"},
                            "itw": {"dataset": "coco", "ann_file": COCO_PERSON_KEYPOINTS, "img_dir": COCO_IMG_DIR,
                                    "scoring_smpl_file": SCORING_FILE}}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, default=list))
    return roots


#: measured on the 12 people with keypoints of ``../shared/data/coco_samples/test_coco.json`` (COCO val2017):
#: fractions of v = 0 / 1 / 2 keypoints, people with an unlabelled (cut or unseen) keypoint, people per image.
COCO_SAMPLE_STATS = {"people": 12, "v0": 0.113, "v1": 0.083, "v2": 0.804, "with_unlabelled": 0.833,
                     "truncated": None, "people_per_image": 3.0}


def _itw_statistics(root: Path | None, config: SyntheticConfig) -> dict[str, Any] | None:
    """Measured statistics of the ITW split's annotations (:func:`coco_annotation_stats`) next to the COCO
    sample's (:data:`COCO_SAMPLE_STATS`), and the generator's counts (realistic split only)."""
    from annot.synthetic_annotation import coco_annotation_stats

    if root is None:
        return None
    coco = json.loads((root / COCO_PERSON_KEYPOINTS).read_text())
    clean = json.loads((root / CLEAN_KP2D_FILE).read_text()) if (root / CLEAN_KP2D_FILE).is_file() else {}
    anns = [dict(a, truncated=clean[str(a["id"])]["truncated"]) if str(a["id"]) in clean else a
            for a in coco["annotations"]]
    stats = {"mode": "clean_2d" if config.clean_2d else "realistic",
             "measured": coco_annotation_stats(anns, len(coco["images"])), "coco_sample": COCO_SAMPLE_STATS}
    if (root / ITW_EXTRAS_FILE).is_file():
        stats.update(json.loads((root / ITW_EXTRAS_FILE).read_text()))
    return stats


def config_from_dict(values: dict[str, Any]) -> SyntheticConfig:
    """A :class:`SyntheticConfig` from plain values (yaml): lists become tuples.

    Raises:
        ValueError: unknown keys (names them) or invalid values.
    """
    known = set(SyntheticConfig.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"synthetic config: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    cleaned = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if "sizes" in cleaned:
        cleaned["sizes"] = {str(k): int(n) for k, n in dict(cleaned["sizes"]).items()}
    return replace(SyntheticConfig(), **cleaned)


__all__ = ["Backgrounds", "COCO_IMG_DIR", "COCO_PERSON_KEYPOINTS", "COCO_WHOLEBODY", "MANIFEST", "POSE_BANK",
           "POSE_SOURCES", "PoseBank", "SCORING_FILE", "SPLITS", "SyntheticConfig", "cmu_pose_bank", "retarget_cmu", "SyntheticPerson", "config_from_dict", "global_orientation",
           "load_pose_bank", "make_split", "make_synthetic", "random_body_pose", "random_color", "render_sample",
           "sample_person", "sample_pose"]
