"""Steps 8-9 of the bake, the regressors: the SMPL joint regressor (ridge least squares over rest and posed
samples), the COCO and H36M keypoint regressors, and smplx's extra-joint vertex ids for this topology.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from annot.body_models.free_model.names import (
    ANNY_COCO_LABELS,
    COCO23_JOINT_NAMES,
    H36M_JOINT_NAMES,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    SMPLX_FINGERTIP_BONES,
    SMPLX_KEYPOINT_VERTEX_SOURCES,
    SMPLX_VERTEX_ID_NAMES,
)

RegressionData = tuple[np.ndarray, np.ndarray, float]


def fit_joint_regressor(
    datasets: Sequence[RegressionData], template: np.ndarray, template_joints: np.ndarray,
    num_neighbours: int | Sequence[int], ridge: float,
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
        num_neighbours: vertices per joint (capped at V), one number or (J,) per joint.
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
    counts = np.broadcast_to(np.asarray(num_neighbours), (template_joints.shape[0],))
    regressor = np.zeros((template_joints.shape[0], num_vertices))
    for j, centre in enumerate(template_joints):
        k = int(min(counts[j], num_vertices))
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
    vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray, pose_std_rad: float | np.ndarray,
    rng: np.random.Generator, chunk: int = 50, parents: Sequence[int] = SMPL_PARENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Pose meshes with random body poses, by the model's own LBS (smplx's kinematics).

    Args:
        vertices: (N, V, 3) T-posed meshes, SMPL frame, metres.
        joints: (N, J, 3) their joints (J = 24 with the default SMPL ``parents``).
        weights: (V, J) the folded skinning weights.
        pose_std_rad: per-axis standard deviation of the joints' axis-angle rotations (radians), one
            number or (J,) per joint; the global orientation stays zero (the regressor is rotation-equivariant anyway).
        rng: numpy generator.
        chunk: meshes posed at once (memory).
        parents: (J,) kinematic tree (root -1).

    Returns:
        posed vertices (N, V, 3) float32 and posed joints (N, J, 3) float64 (smplx
        ``batch_rigid_transform``; no pose correctives, like the baked model).
    """
    from smplx.lbs import batch_rigid_transform, batch_rodrigues  # noqa: PLC0415

    num_joints = len(parents)
    parents = torch.as_tensor(parents, dtype=torch.long)
    std = np.broadcast_to(np.asarray(pose_std_rad, dtype=np.float64), (num_joints,))[:, None]
    skin = torch.as_tensor(weights, dtype=torch.float64)
    out_v, out_j = [], []
    for start in range(0, len(vertices), chunk):
        verts = torch.as_tensor(vertices[start:start + chunk], dtype=torch.float64)
        num = len(verts)
        rotvec = torch.as_tensor(rng.normal(0.0, 1.0, size=(num, num_joints, 3)) * std)
        rotvec[:, 0] = 0.0
        rotmats = batch_rodrigues(rotvec.reshape(-1, 3)).reshape(num, num_joints, 3, 3)
        posed_joints, transforms = batch_rigid_transform(
            rotmats, torch.as_tensor(joints[start:start + chunk]), parents, dtype=torch.float64
        )
        blended = torch.einsum("vj,njab->nvab", skin, transforms[..., :3, :])
        posed = (blended[..., :3] @ verts[..., None])[..., 0] + blended[..., 3]
        out_v.append(posed.numpy().astype(np.float32))
        out_j.append(posed_joints.numpy())
    return np.concatenate(out_v), np.concatenate(out_j)


def regression_errors_mm(
    regressor: np.ndarray, vertices: np.ndarray, joints: np.ndarray,
    joint_names: Sequence[str] = SMPL_JOINT_NAMES,
) -> dict[str, float]:
    """Mean / max / per-joint-max Euclidean error (mm) of ``regressor @ vertices`` vs ``joints``.

    Args:
        regressor: (J, V); vertices: (N, V, 3) metres; joints: (N, J, 3) metres;
        joint_names: names for ``worst_joint`` (the index as a string when J differs).
    """
    pred = np.einsum("jv,nvd->njd", regressor, vertices)
    err = np.linalg.norm(pred - joints, axis=-1) * 1000.0
    worst = int(err.max(axis=0).argmax())
    return {"mean": float(err.mean()), "max": float(err.max()),
            "worst_joint": joint_names[worst] if joints.shape[1] == len(joint_names) else str(worst)}


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
