"""What a bake samples and fits: the adult population (:class:`AdultPhenotypeDistribution`) and the bake's
parameters (:class:`BakeConfig`, stored in the file's provenance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


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
