"""The hands of the free SMPL-X / MANO stand-ins: finger flexion axes, a sampled finger-pose distribution
and its PCA (``hands_components`` / ``hands_mean``), the MANO cut of the hand region, and the conversion of
an SMPL-X pose into anny bone rotations (to check the bake against anny).

Frames: SMPL-X frame (Y up, facing +Z, +X = subject's left), metres; the zero pose is the baked T-pose
with straight fingers (palms down, as MANO's flat hand). Axis-angle vectors are smplx local rotations
(relative to the parent, axes of the rest pose).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from annot.body_models.free_model.names import ANNY_TO_SMPL_ROTMAT
from annot.body_models.free_model.wholebody_names import MANO_JOINTS_IN_SMPLX
from annot.keypoints.wholebody_names import MANO_FINGER_ORDER


@dataclass(frozen=True)
class HandPoseDistribution:
    """Synthetic finger-pose population for the hand PCA (angles in radians).

    Each sample draws an overall grasp g ~ U(0, 1), a curl per finger c = clip(g + N(0, curl_spread),
    -0.1, 1), then flexion = c x ``max_flex`` (base, middle, distal joint) + N(0, joint_noise), and a
    base abduction N(0, abduction_std) x (1 - c). The thumb uses ``thumb_max_flex`` and abducts more.
    Ranges follow typical active ranges of motion (MCP ~80-90, PIP ~100, DIP ~70 degrees).
    """

    num_samples: int = 20000
    curl_spread: float = 0.25
    max_flex: tuple[float, float, float] = (1.4, 1.7, 1.2)
    thumb_max_flex: tuple[float, float, float] = (0.5, 0.9, 1.2)
    joint_noise: float = 0.1
    abduction_std: float = 0.15
    thumb_abduction_std: float = 0.3


def hand_axes(joints: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Flexion and abduction axes of the 15 finger joints of one hand (MANO order).

    Fingers: flexion axis of joint j = d_j x n_palm (d_j: the joint's segment direction, to its child, the
    last segment reused for the distal joint; n_palm: the direction the palm faces, from the index / pinky
    bases and the wrist), so a positive rotation curls the finger toward the palm; abduction axis: n_palm
    (in-plane spread). Thumb (anny's rest thumb hangs below the palm, nearly along n_palm): flexion axis =
    d_j x (c - p_j), c the midpoint of the index and middle bases, so a positive rotation turns the thumb
    toward them (opposition, pinch); abduction axis: the thumb's flexion axis of its base x its segment.

    Args:
        joints: (55, 3) SMPL-X rest joints, SMPL frame, metres; side: ``"right"`` or ``"left"``.

    Returns:
        flexion (15, 3) and abduction (15, 3) unit axes.
    """
    ids = MANO_JOINTS_IN_SMPLX[side]
    hand = joints[list(ids)]  # (16, 3): wrist, index1..3, middle1..3, pinky1..3, ring1..3, thumb1..3
    wrist = hand[0]
    index1, middle1, pinky1 = hand[1], hand[4], hand[7]
    palm = np.cross(index1 - wrist, pinky1 - wrist)
    palm /= np.linalg.norm(palm)
    if palm[1] > 0:  # palms face down (-Y) in the zero pose
        palm = -palm
    centre = 0.5 * (index1 + middle1)

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    flex, abduct = np.zeros((15, 3)), np.zeros((15, 3))
    for f, finger in enumerate(MANO_FINGER_ORDER):
        chain = hand[1 + 3 * f: 4 + 3 * f]
        segments = [chain[1] - chain[0], chain[2] - chain[1], chain[2] - chain[1]]
        for k, seg in enumerate(segments):
            seg = unit(seg)
            if finger == "Thumb":
                flex[3 * f + k] = unit(np.cross(seg, centre - chain[k]))
                abduct[3 * f + k] = unit(np.cross(flex[3 * f + k], seg))
            else:
                flex[3 * f + k] = unit(np.cross(seg, palm))
                abduct[3 * f + k] = palm
    return flex, abduct


def sample_hand_poses(
    flex_axes: np.ndarray, abduct_axes: np.ndarray, distribution: HandPoseDistribution,
    rng: np.random.Generator,
) -> np.ndarray:
    """Random finger poses (N, 45): axis-angle per MANO joint (index, middle, pinky, ring, thumb x 3).

    Args:
        flex_axes, abduct_axes: (15, 3) from :func:`hand_axes`; distribution: the population.
    """
    n = distribution.num_samples
    grasp = rng.uniform(0.0, 1.0, size=(n, 1))
    curl = np.clip(grasp + rng.normal(0.0, distribution.curl_spread, size=(n, 5)), -0.1, 1.0)
    poses = np.zeros((n, 15, 3))
    for f, finger in enumerate(MANO_FINGER_ORDER):
        thumb = finger == "Thumb"
        max_flex = distribution.thumb_max_flex if thumb else distribution.max_flex
        spread = distribution.thumb_abduction_std if thumb else distribution.abduction_std
        for k in range(3):
            angle = curl[:, f] * max_flex[k] + rng.normal(0.0, distribution.joint_noise, size=n)
            poses[:, 3 * f + k] = angle[:, None] * flex_axes[3 * f + k]
        base_spread = rng.normal(0.0, spread, size=n) * (1.0 - np.clip(curl[:, f], 0.0, 1.0))
        poses[:, 3 * f] += base_spread[:, None] * abduct_axes[3 * f]
    return poses.reshape(n, 45)


def hand_pca(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of finger poses (N, 45): ``hands_components`` (45, 45), rows = principal directions scaled by
    their standard deviation (coefficients ~ N(0, 1)), ``hands_mean`` (45,), explained variance ratio (45,).

    smplx: ``hand_pose = coeffs @ hands_components[:k] + hands_mean`` (``flat_hand_mean=False``). Follows
    MANO's layout (Romero et al., SIGGRAPH Asia 2017: a PCA of 45-dim finger poses with the mean pose kept
    apart); the scaling of the rows is ours.
    """
    mean = poses.mean(axis=0)
    centred = poses - mean
    cov = centred.T @ centred / (len(poses) - 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 1e-12, None), eigvec[:, order]
    components = (eigvec * np.sqrt(eigval)).T
    return components, mean, eigval / eigval.sum()


def mirror_hand_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror axis-angle hand poses (..., 45) through the plane x = 0 (right hand <-> left hand):
    (a_x, a_y, a_z) -> (a_x, -a_y, -a_z) per joint (a rotation's mirror image under x -> -x)."""
    out = np.array(pose, dtype=np.float64, copy=True).reshape(*np.shape(pose)[:-1], 15, 3)
    out[..., 1:] *= -1.0
    return out.reshape(np.shape(pose))


def mano_vertex_mask(weights: np.ndarray, side: str, min_share: float = 0.5) -> np.ndarray:
    """Vertices of the MANO cut of one hand: those whose SMPL-X skinning weight on the wrist and the 15
    finger joints of that hand sums to at least ``min_share`` (the hand and the distal forearm that the
    wrist bone carries).

    Args:
        weights: (V, 55) SMPL-X skinning weights; side: ``"right"`` / ``"left"``.

    Returns:
        (V,) bool mask.
    """
    return weights[:, list(MANO_JOINTS_IN_SMPLX[side])].sum(axis=1) >= min_share


def cut_faces(faces: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces (F', 3) with all three vertices in ``mask``, re-indexed to the kept vertices, and the
    kept vertex ids (V',) (those used by a kept face; ``mask`` vertices in no such face are dropped)."""
    keep_face = mask[faces].all(axis=1)
    kept = np.unique(faces[keep_face])
    remap = -np.ones(len(mask), dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    return remap[faces[keep_face]], kept


def mano_weights(weights: np.ndarray, side: str) -> np.ndarray:
    """MANO (V, 16) weights from SMPL-X (V, 55) ones: the 15 finger columns kept, everything else
    (wrist, forearm, ...) on the MANO root (the wrist)."""
    ids = list(MANO_JOINTS_IN_SMPLX[side])
    out = np.zeros((len(weights), 16))
    out[:, 1:] = weights[:, ids[1:]]
    out[:, 0] = 1.0 - out[:, 1:].sum(axis=1)
    return out


def smplx_pose_to_anny_rotations(
    full_pose_rotvec: torch.Tensor, smplx_parents: Sequence[int], fold_targets: Sequence[int],
    tpose_rotations: torch.Tensor,
) -> torch.Tensor:
    """World rotations of anny's bones (anny frame, relative to anny's A-pose rest) that pose anny as an
    SMPL-X pose poses the baked model.

    Bone b, folded into SMPL-X joint j(b), turns by G_j(b) T_b: first its T-pose (and finger
    straightening) turn T_b, then the joint's global rotation G_j = G_parent R_j, expressed in anny's frame
    (M^T G M, M = ``ANNY_TO_SMPL_ROTMAT``). Feed the result to ``repose_linear_blend`` with anny's own
    104-bone weights, or turn it into anny's ``world-orient`` pose input.

    Args:
        full_pose_rotvec: (B, 55, 3) smplx local rotations (the ``full_pose``), SMPL frame.
        smplx_parents: (55,) tree; fold_targets: (K,) SMPL-X joint of each anny bone;
        tpose_rotations: (B, K, 3, 3) or (1, K, 3, 3) from ``tpose_global_rotations``.

    Returns:
        (B, K, 3, 3) float64 rotations.
    """
    from smplx.lbs import batch_rodrigues  # noqa: PLC0415

    batch = full_pose_rotvec.shape[0]
    local = batch_rodrigues(full_pose_rotvec.reshape(-1, 3).double()).reshape(batch, -1, 3, 3)
    glob = [local[:, 0]]
    for j in range(1, local.shape[1]):
        glob.append(glob[smplx_parents[j]] @ local[:, j])
    glob_t = torch.stack(glob, dim=1)
    frame = torch.as_tensor(ANNY_TO_SMPL_ROTMAT, dtype=torch.float64)
    in_anny = frame.T @ glob_t @ frame
    return in_anny[:, list(fold_targets)] @ tpose_rotations.double()

