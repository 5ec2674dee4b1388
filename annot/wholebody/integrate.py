"""Integration of the part pseudo-GTs into SMPL-X parameters (expressive NeuralAnnot, Moon et al., section 4.4).

The final SMPL-X pseudo-GT forwards ``{theta_gb, theta_b, beta_b, theta_g_rh, theta_rh, theta_g_lh, theta_lh,
theta_f, psi}``: the body part's root and body rotations, the hand part's finger poses, the face part's jaw
rotation and expression. The hand part's *global* rotation enters through the wrist (Hand4Whole's rule, the
one the paper's integration builds on): the SMPL-X wrist rotation is the hand's global rotation made relative
to the body's forearm, ``R_wrist = R_forearm^-1 @ R_hand_global``, where ``R_forearm`` is the global rotation
of the elbow joint (the wrist's parent) from the body's kinematic chain.

``arm_rule="paper"`` adds the paper's thresholding (supplementary Algorithm 2): the body part often
gets the roll of elbows and wrists wrong, and anatomically the forearm's roll is shared between elbow and wrist.
So half of the hand's roll about the forearm moves to the elbow (line 5 averages the elbow's and the hand's roll),
and the hand's rotation is used only when the new local wrist rotation is anatomically plausible (line 7: its
Euler y and z angles within pi/4 and pi/2); otherwise the body keeps its own elbow and wrist (the fingers still
come from the hand part). The paper averages Euler x angles of global rotations in its body frame; here the roll
is the twist about the forearm's bone axis (x in SMPL-X's rest frame, both arms) of the local wrist rotation
(swing-twist decomposition), which is the same quantity in any camera frame, and the hand's global rotation is
kept exactly when accepted. Euler angles: intrinsic ``XYZ`` (roll first), the paper does not name its order.
``arm_rule="wrist"`` always uses the hand's rotation through the wrist alone (the default of
``make annotate-wholebody``, :class:`annot.wholebody.config.IntegrationConfig`).

The body part here is the SMPL annotator of ``make annotate-body``. It keeps the SMPL body pose it predicts
(SMPL's 21 body joints are SMPL-X's, same kinematic tree and joint order; SMPL's two hand joints are
dropped); SMPL-X's shape and translation are fitted to the SMPL body's posed joints (:func:`smpl_body_to_smplx`,
exact linear least squares: posed joints are linear in betas and translation for a fixed pose).

All inputs and outputs are in the camera frame (OpenCV axes), metres, axis-angle in radians.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import roma
import torch
from torch import Tensor

from annot.body_models.wholebody import SmplxParams, smplx_forward
from annot.geometry.rotations import global_rotmats, rotmat_to_rotvec, rotvec_to_rotmat

#: SMPL-X joint indices (``smplx55``) of the wrists and their forearm (elbow) parents.
WRIST = {"left": 20, "right": 21}
ELBOW = {"left": 18, "right": 19}
NECK, HEAD = 12, 15
SMPL_BODY_JOINTS = 22
#: :func:`integrate`'s rules for the hands' global rotations (module docstring).
ARM_RULES = ("paper", "wrist")
#: the paper's anatomical limits on the new local wrist rotation (Euler y, z; radians; Algorithm 2, line 7).
WRIST_LIMITS_RAD = (math.pi / 4, math.pi / 2)


def smpl_body_to_smplx(layer, pose_rotvec: Tensor, joints_cam_m: Tensor, shape_l2: float = 1e-4) -> SmplxParams:
    """SMPL-X parameters carrying an SMPL body: same root and body rotations, betas and ``trans`` fitted.

    Args:
        layer: ``smplx.SMPLX`` (:func:`annot.body_models.wholebody.load_smplx`).
        pose_rotvec: (B, 24, 3) SMPL pose (row 0 global orientation), radians.
        joints_cam_m: (B, 22, 3) the SMPL body's posed joints 0..21 (``smpl24`` order), camera frame, metres.
        shape_l2: ridge weight on the betas (m^2 per unit beta^2): keeps them finite when joints do not
            constrain them.

    Returns:
        :class:`SmplxParams` with zero hands, jaw and expression; ``shape`` and ``trans`` minimise
        ``sum_j |J_j(shape, trans) - joints_cam_m_j|^2 + shape_l2 |shape|^2``.

    Raises:
        ValueError: shapes do not match.
    """
    batch = pose_rotvec.shape[0]
    if pose_rotvec.shape != (batch, 24, 3) or joints_cam_m.shape != (batch, SMPL_BODY_JOINTS, 3):
        raise ValueError(f"smpl_body_to_smplx: pose_rotvec must be (B, 24, 3) and joints_cam_m (B, 22, 3), got "
                         f"{tuple(pose_rotvec.shape)} and {tuple(joints_cam_m.shape)}")
    nb = layer.num_betas
    base = SmplxParams.zeros(batch, nb, layer.num_expression_coeffs).replace(
        root_pose=pose_rotvec[:, 0].float(), body_pose=pose_rotvec[:, 1:22].float())
    # joints at shape 0 and along each beta: (1 + nb) forwards of the batch, linear in (shape, trans)
    with torch.no_grad():
        basis = [smplx_forward(layer, base)[0][:, :SMPL_BODY_JOINTS]]
        for k in range(nb):
            unit = torch.zeros(batch, nb)
            unit[:, k] = 1.0
            basis.append(smplx_forward(layer, base.replace(shape=unit))[0][:, :SMPL_BODY_JOINTS])
    j0 = basis[0].double()
    dirs = torch.stack([b.double() - j0 for b in basis[1:]], dim=-1)  # (B, 22, 3, nb)
    eye3 = torch.eye(3, dtype=torch.float64).expand(batch, SMPL_BODY_JOINTS, 3, 3)
    a = torch.cat([dirs, eye3], dim=-1).reshape(batch, -1, nb + 3)
    b = (joints_cam_m.double() - j0).reshape(batch, -1)
    reg = torch.diag(torch.tensor([shape_l2] * nb + [0.0] * 3, dtype=torch.float64))
    x = torch.linalg.solve(a.transpose(1, 2) @ a + reg, (a.transpose(1, 2) @ b[..., None]))[..., 0]
    return base.replace(shape=x[:, :nb].float(), trans=x[:, nb:].float())


def smplx_global_rotmats(layer, p: SmplxParams) -> Tensor:
    """(B, 22, 3, 3) global (camera-frame) rotations of the 22 SMPL-X body joints of ``p``."""
    local = rotvec_to_rotmat(torch.cat([p.root_pose[:, None], p.body_pose], dim=1))
    return global_rotmats(local, layer.parents[:SMPL_BODY_JOINTS].tolist())


def wrist_from_hand(forearm_rotmat: Tensor, hand_global_rotmat: Tensor) -> Tensor:
    """The wrist rule: (B, 3, 3) local wrist rotation ``R_forearm^-1 @ R_hand``.

    Args:
        forearm_rotmat: (B, 3, 3) global rotation of the elbow joint (the wrist's parent), camera frame.
        hand_global_rotmat: (B, 3, 3) the hand's global rotation in the SMPL-X hand frame, camera frame.
    """
    return forearm_rotmat.transpose(-1, -2) @ hand_global_rotmat


def twist_about_x(rotmat: Tensor) -> Tensor:
    """(B,) angle (radians, in (-pi, pi]) of the twist about the x axis in the swing-twist decomposition
    ``R = R_swing @ R_x(twist)`` of (B, 3, 3) rotations: for a local wrist rotation, the roll about the forearm."""
    q = roma.rotmat_to_unitquat(rotmat)  # (B, 4) x, y, z, w
    return torch.remainder(2 * torch.atan2(q[:, 0], q[:, 3]) + math.pi, 2 * math.pi) - math.pi


def _rot_x(angle: Tensor) -> Tensor:
    """(B, 3, 3) rotations by ``angle`` (B,) radians about x."""
    return roma.rotvec_to_rotmat(torch.stack([angle, torch.zeros_like(angle), torch.zeros_like(angle)], dim=-1))


def share_roll_with_elbow(elbow_local: Tensor, wrist_local: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The paper's Algorithm 2, lines 5-7, for one arm: half of the wrist's roll about the forearm moves to the
    elbow, the hand's global rotation unchanged; and the anatomical check of the new wrist.

    Args:
        elbow_local: (B, 3, 3) local elbow rotation (relative to the shoulder, SMPL-X rest axes).
        wrist_local: (B, 3, 3) the local wrist rotation that puts the hand at its part's global rotation.

    Returns:
        ``(elbow_local (B, 3, 3), wrist_local (B, 3, 3), plausible (B,) bool)``: ``elbow @ R_x(t / 2)`` and
        ``R_x(-t / 2) @ wrist`` (``t``: :func:`twist_about_x` of the wrist; their product, the hand's rotation
        relative to the shoulder, is unchanged), and whether the new wrist's intrinsic-XYZ Euler y and z angles
        are within :data:`WRIST_LIMITS_RAD`.
    """
    half = _rot_x(twist_about_x(wrist_local) / 2)
    new_elbow, new_wrist = elbow_local @ half, half.transpose(-1, -2) @ wrist_local
    euler = roma.rotmat_to_euler("XYZ", new_wrist)
    plausible = (euler[:, 1].abs() < WRIST_LIMITS_RAD[0]) & (euler[:, 2].abs() < WRIST_LIMITS_RAD[1])
    return new_elbow, new_wrist, plausible


def mano_to_smplx_hand(hand_pose: Tensor, mano_mean: Tensor, smplx_mean: Tensor, align: Tensor) -> Tensor:
    """(B, 15, 3) SMPL-X finger pose (relative to SMPL-X's hand mean) of a MANO finger pose.

    MANO's absolute finger rotations ``hand_pose + mano_mean`` are expressed in SMPL-X's hand rest frame
    (conjugation by ``align``, :func:`annot.body_models.wholebody.hand_frame_alignment`: an axis-angle vector
    turns with the frame) and SMPL-X's mean is subtracted (smplx adds it back in ``forward``).

    Args:
        hand_pose: (B, 15, 3) or (B, 45) MANO pose, relative to ``mano_mean``. mano_mean, smplx_mean: (45,).
        align: (3, 3) MANO -> SMPL-X rest-frame rotation.
    """
    batch = hand_pose.shape[0]
    absolute = hand_pose.reshape(batch, 15, 3) + mano_mean.reshape(15, 3)
    return absolute @ align.T - smplx_mean.reshape(15, 3)


@dataclass(frozen=True)
class HandPart:
    """Hand pseudo-GTs of one side for some people: ``rows`` (N,) indices into the batch of people,
    ``global_rotmat`` (N, 3, 3) MANO global rotation (camera frame), ``hand_pose`` (N, 15, 3) MANO pose relative
    to the MANO mean."""

    rows: Tensor
    global_rotmat: Tensor
    hand_pose: Tensor


@dataclass(frozen=True)
class FacePart:
    """Face pseudo-GTs for some people: ``rows`` (N,), ``jaw_pose`` (N, 3), ``expr`` (N, 10), and
    ``neck_head_pose`` (N, 2, 3) the fitted local neck and head rotations (or None to keep the body's)."""

    rows: Tensor
    jaw_pose: Tensor
    expr: Tensor
    neck_head_pose: Tensor | None = None


@dataclass(frozen=True)
class Integrated:
    """:func:`integrate`'s result: ``params`` (B people) and, per side, ``hand_rotation_used`` (B,) bool: the
    hand part's global rotation set this person's wrist (and elbow roll); False where there was no hand part or
    the anatomical check of ``arm_rule="paper"`` kept the body's arm."""

    params: SmplxParams
    hand_rotation_used: dict[str, Tensor]


def integrate(layer, body: SmplxParams, hands: dict[str, tuple[HandPart, Tensor, Tensor]],
              face: FacePart | None, arm_rule: str = "paper") -> Integrated:
    """SMPL-X pseudo-GTs from the part pseudo-GTs (module docstring).

    Args:
        layer: ``smplx.SMPLX``.
        body: (B people) the body part as SMPL-X parameters (:func:`smpl_body_to_smplx`).
        hands: ``{"left" | "right": (HandPart, mano_mean (45,), align (3, 3))}``; people not in a part's
            ``rows`` keep the body's wrist and a mean hand (zero pose).
        face: jaw and expression (and optionally neck/head) of the people in its ``rows``; others keep zeros.
        arm_rule: one of :data:`ARM_RULES` (module docstring).

    Returns:
        :class:`Integrated`.

    Raises:
        ValueError: an unknown ``arm_rule``.
    """
    if arm_rule not in ARM_RULES:
        raise ValueError(f"integrate: arm_rule must be one of {ARM_RULES}, got {arm_rule!r}")
    body_pose = body.body_pose.clone()
    if face is not None and face.neck_head_pose is not None and len(face.rows):
        body_pose[face.rows, NECK - 1] = face.neck_head_pose[:, 0]
        body_pose[face.rows, HEAD - 1] = face.neck_head_pose[:, 1]
    current = body.replace(body_pose=body_pose)
    glob = smplx_global_rotmats(layer, current)  # one arm's elbow and wrist do not move the other arm
    out = {"lhand_pose": body.lhand_pose.clone(), "rhand_pose": body.rhand_pose.clone()}
    used = {side: torch.zeros(body.body_pose.shape[0], dtype=torch.bool) for side in WRIST}
    for side, (part, mano_mean, align) in hands.items():
        if not len(part.rows):
            continue
        rows, elbow = part.rows, ELBOW[side]
        smplx_hand = part.global_rotmat @ align.T  # MANO global rotation in the SMPL-X hand frame
        wrist = wrist_from_hand(glob[rows, elbow], smplx_hand)
        take = torch.ones(len(rows), dtype=torch.bool)
        if arm_rule == "paper":
            shoulder = glob[rows, int(layer.parents[elbow])]
            elbow_new, wrist, take = share_roll_with_elbow(shoulder.transpose(-1, -2) @ glob[rows, elbow], wrist)
            body_pose[rows[take], elbow - 1] = rotmat_to_rotvec(elbow_new[take])
        body_pose[rows[take], WRIST[side] - 1] = rotmat_to_rotvec(wrist[take])
        used[side][rows[take]] = True
        smplx_mean = (layer.left_hand_mean if side == "left" else layer.right_hand_mean).detach()
        out[f"{side[0]}hand_pose"][rows] = mano_to_smplx_hand(part.hand_pose, mano_mean, smplx_mean, align)
    jaw, expr = body.jaw_pose.clone(), body.expr.clone()
    if face is not None and len(face.rows):
        jaw[face.rows], expr[face.rows] = face.jaw_pose, face.expr
    return Integrated(current.replace(body_pose=body_pose, jaw_pose=jaw, expr=expr, **out), used)


__all__ = ["ARM_RULES", "ELBOW", "FacePart", "HandPart", "Integrated", "WRIST", "WRIST_LIMITS_RAD", "integrate",
           "mano_to_smplx_hand", "share_roll_with_elbow", "smpl_body_to_smplx", "smplx_global_rotmats",
           "twist_about_x", "wrist_from_hand"]
