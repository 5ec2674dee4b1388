"""The SMPL root joint at zero pose as a linear function of the betas, without running the model.

The global rotation of SMPL acts about the root joint ``J0(beta)``, so any rigid change of frame of an
SMPL fit (world -> camera, flip, in-plane rotation augmentation) must correct ``transl`` with ``J0``:
``transl' = G (J0 + transl) + t - J0`` for a change ``x -> G x + t`` (mks0601 Hand4Whole
``preprocessing.process_human_model_output``, 3DPW ``trans_cam = R trans + t - J0 + R J0``; reference-spec
A.5, A.8). ``J0`` does not depend on the pose, only on the betas, and is linear in them:
``J0(beta) = J_regressor[0] @ (v_template + shapedirs @ beta)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from annot.body_models.pkl import load_model_dict
from annot.body_models.resolver import resolve_model_file


class RestRootJoint:
    """``J0(beta)`` (metres, model frame) of an SMPL-format model file.

    Args:
        model_type, gender, path: as :func:`annot.body_models.resolve_model_file`.

    ``__call__(betas (..., B) float) -> (..., 3)`` float64 metres, with ``B <= num_betas`` of the file
    (missing betas count as 0).

    Raises:
        BodyModelNotFoundError / ValueError: from the resolver and the loader.
    """

    def __init__(self, model_type: str = "free", gender: str = "neutral", path: str | Path | None = None) -> None:
        model = load_model_dict(resolve_model_file(model_type, gender, path))
        row = np.asarray(model["J_regressor"], dtype=np.float64)[0]  # (V,)
        self.j0_template_m = row @ np.asarray(model["v_template"], dtype=np.float64)  # (3,)
        shapedirs = np.asarray(model["shapedirs"], dtype=np.float64)  # (V, 3, B)
        self.j0_shapedirs_m = np.einsum("v,vcb->cb", row, shapedirs)  # (3, B)

    @property
    def num_betas(self) -> int:
        return self.j0_shapedirs_m.shape[1]

    def __call__(self, betas: np.ndarray) -> np.ndarray:
        betas = np.asarray(betas, dtype=np.float64)
        if betas.shape[-1] > self.num_betas:
            raise ValueError(f"RestRootJoint: got {betas.shape[-1]} betas, the model has {self.num_betas}")
        return self.j0_template_m + betas @ self.j0_shapedirs_m[:, : betas.shape[-1]].T
