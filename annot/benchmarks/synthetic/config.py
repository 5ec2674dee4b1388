"""The generator's settings (:class:`SyntheticConfig`), its file names and split names, and one sampled person
(:class:`SyntheticPerson`). The generator itself: :mod:`annot.benchmarks.synthetic`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from annot.data.person import SmplParams

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
        min_person_gap_m: realistic ITW split: least distance between two body centres (mean vertices) of an image,
        metres. occlusion_margin_m: a keypoint is hidden when a surface lies this far in front of it, metres;
        occluded_noise_factor: annotator noise of hidden keypoints relative to visible ones;
        occluded_unlabelled_prob: probability that a hidden keypoint is left unlabelled (``v = 0``)
            (:mod:`annot.benchmarks.synthetic.annotation`).
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
            raise ValueError("SyntheticConfig.occluded_unlabelled_prob: expected [0, 1], "
                             f"got {self.occluded_unlabelled_prob}")
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
