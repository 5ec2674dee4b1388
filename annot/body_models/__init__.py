"""Body models: file resolution, chumpy-free loading, and the ``BodyModel`` wrapper over smplx.

Public API::

    resolve_model_file(model_type="smpl", gender="neutral", path=None) -> Path
    resolve_asset(name, path=None) -> Path
    BodyModelNotFoundError (FileNotFoundError), ENV_VAR ("BODY_MODELS_DIR")
    load_model_dict(path) -> dict, save_model_dict(model_dict, path) -> Path, check_model_dict(d, source)
    BodyModel(model_type="free", gender="neutral", path=None, num_betas=10, ...), BodyModelOutput
    build_smpl_keypoint_regressor(j_regressor, joint_names) -> (regressor, mask)
    RestRootJoint(model_type, gender, path)(betas) -> J0 (..., 3), the zero-pose root joint
    resolve_wholebody_model("smplx" | "mano" | "flame", variant, path=None, allow_free=True) -> ResolvedModel
    build_smplx_layer(path=None, ...) -> (smplx.SMPLX, ResolvedModel); build_mano_layer(side, path=None, ...)
        -> (smplx.MANO, ResolvedModel): licence-gated files when present, else the free anny stand-ins

The free-model bake (the ``free_model`` package) lives in this package too but is not imported here.
"""

from __future__ import annotations

from annot.body_models.body_model import (
    REGRESS_CONVENTIONS,
    SMPL_KEYPOINT_VERTEX_IDS,
    BodyModel,
    BodyModelOutput,
    build_smpl_keypoint_regressor,
)
from annot.body_models.pkl import check_model_dict, load_model_dict, save_model_dict
from annot.body_models.resolver import (
    ENV_VAR,
    FREE_MODEL_FILENAME,
    BodyModelNotFoundError,
    ResolvedModel,
    resolve_asset,
    resolve_model_file,
    resolve_wholebody_model,
)
from annot.body_models.rest_joints import RestRootJoint
from annot.body_models.wholebody_layers import build_mano_layer, build_smplx_layer

__all__ = [
    "ENV_VAR",
    "FREE_MODEL_FILENAME",
    "REGRESS_CONVENTIONS",
    "RestRootJoint",
    "SMPL_KEYPOINT_VERTEX_IDS",
    "BodyModel",
    "BodyModelNotFoundError",
    "BodyModelOutput",
    "ResolvedModel",
    "build_mano_layer",
    "build_smpl_keypoint_regressor",
    "build_smplx_layer",
    "check_model_dict",
    "load_model_dict",
    "resolve_asset",
    "resolve_model_file",
    "resolve_wholebody_model",
    "save_model_dict",
]
