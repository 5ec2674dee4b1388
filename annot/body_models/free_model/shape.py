"""Step 6 of the bake, the shape space: PCA of the T-posed sample meshes into ``v_template`` and ``shapedirs``
scaled so that ``betas ~ N(0, I)`` reproduces the population, oriented and described by phenotype.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from annot.body_models.free_model.config import BakeConfig


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
