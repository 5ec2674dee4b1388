"""Evaluation metrics as ``torchmetrics.Metric``: MPJPE, PA-MPJPE, MPVPE, PA-MPVPE, MuPoTS-3D 3DPCK.

Shared by the estimators (validation / test loops) and the annotation benchmarks. Every metric keeps
only additive states (sums of errors / hit counts and numbers of samples, ``dist_reduce_fx="sum"``),
so values are exact under DDP and two instances can be combined with ``Metric.merge_state``.

Units and frames: 3D inputs are in **metres**, in any frame shared by prediction and GT (camera
frame in practice); errors are reported in **millimetres**, 3DPCK in **percent**. 2D inputs are in
original-image pixels.

Protocols (reference-spec D.1 - D.4, pitfalls F.10, F.11):

- mks0601 (Hand4Whole ``data/PW3D/PW3D.py::evaluate``, ``data/Human36M/Human36M.py::evaluate``):
  joints are the 17 H36M joints regressed from the mesh (``J_regressor_h36m @ vertices``); both sets
  are root-aligned on index 0 (the *regressed* pelvis), then the 14 eval joints
  :data:`H36M_EVAL_JOINTS` are kept; MPJPE is the mean L2 over them, PA-MPJPE the same after
  :func:`annot.geometry.procrustes.similarity_align` of the 14 joints. Use
  ``MPJPE(root_index=0, eval_joints=H36M_EVAL_JOINTS)``. MPVPE subtracts the regressed H36M pelvis
  of each mesh from its vertices (``pred_root_m`` / ``gt_root_m``), then averages vertex L2.
- MuPoTS-3D (PN / MPI ``mpii_mupots_multiperson_eval.m``, root-relative mode): see
  :class:`MuPoTS3DPCK`, :func:`match_people`, :func:`rescale_to_gt_bone_lengths`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from annot.geometry.procrustes import similarity_align
from annot.keypoints import H36M_EVAL_JOINTS

__all__ = [
    "H36M_EVAL_JOINTS",
    "H36M_ROOT_INDEX",
    "MUPOTS_ROOT_INDEX",
    "MUPOTS_NUM_JOINTS",
    "MUPOTS_EVAL_JOINTS",
    "MUPOTS_MATCHING_JOINTS",
    "MUPOTS_PARENTS",
    "MUPOTS_TRAVERSAL_ORDER",
    "MUPOTS_NUM_SEQUENCES",
    "mpjpe_per_sample_mm",
    "mpvpe_per_sample_mm",
    "MPJPE",
    "PAMPJPE",
    "MPVPE",
    "PAMPVPE",
    "match_people",
    "rescale_to_gt_bone_lengths",
    "MuPoTS3DPCK",
]

#: Root of the mks0601 protocol in ``h36m17``: the pelvis regressed from the mesh (spec D.1, F.10).
H36M_ROOT_INDEX: int = 0

# --- MuPoTS-3D constants (``mupots17`` order, 0-based) -------------------------------------------
#: Pelvis in ``mupots17`` (MATLAB column 15).
MUPOTS_ROOT_INDEX: int = 14
MUPOTS_NUM_JOINTS: int = 17
MUPOTS_NUM_SEQUENCES: int = 20
#: Joints scored by 3DPCK: Head_top .. L_Ankle (MATLAB 1..14); Pelvis, Spine, Head are excluded.
MUPOTS_EVAL_JOINTS: tuple[int, ...] = tuple(range(14))
#: Joints used for 2D identity matching: Thorax .. L_Ankle (MATLAB ``matching_joints = 2:14``).
MUPOTS_MATCHING_JOINTS: tuple[int, ...] = tuple(range(1, 14))
#: Kinematic parents. MATLAB ``o1 = [2,16,2,3,4,2,6,7,15,9,10,15,12,13,15,15,2]`` (1-based, the
#: pelvis is its own parent); here minus 1, and the root's entry is -1 instead of itself.
#: E.g. Head_top(0) -> Thorax(1) -> Spine(15) -> Pelvis(14); R_Wrist(4) -> R_Elbow(3) -> R_Shoulder(2)
#: -> Thorax(1); R_Ankle(10) -> R_Knee(9) -> R_Hip(8) -> Pelvis(14); Head(16) -> Thorax(1).
MUPOTS_PARENTS: tuple[int, ...] = (1, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1)
#: Order in which bones are rescaled (parents before children). MATLAB
#: ``safe_traversal_order = [15, 16, 2, 1, 17, 3, 4, 5, 6, 7, 8, 9:14]`` (1-based) is used as
#: ``safe_traversal_order(2:end)``: the first entry (15, the pelvis, root) is skipped; the rest minus 1.
MUPOTS_TRAVERSAL_ORDER: tuple[int, ...] = (15, 1, 0, 16, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)


# --- functional forms -----------------------------------------------------------------------------


def _check_points(pred: torch.Tensor, gt: torch.Tensor, what: str) -> None:
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"{what}: pred must be (B, N, 3) metres, got {tuple(pred.shape)}")
    if gt.shape != pred.shape:
        raise ValueError(f"{what}: gt shape {tuple(gt.shape)} differs from pred shape {tuple(pred.shape)}")


def _check_index(index: int, size: int, what: str) -> None:
    if not -size <= index < size:
        raise ValueError(f"{what}: index {index} out of range for {size} points")


def mpjpe_per_sample_mm(
    pred_joints_m: torch.Tensor,
    gt_joints_m: torch.Tensor,
    root_index: int | None = H36M_ROOT_INDEX,
    eval_joints: Sequence[int] | None = None,
    procrustes: bool = False,
) -> torch.Tensor:
    """Per-sample mean joint position error (mks0601 protocol, spec D.1), millimetres.

    Steps: subtract each set's own root joint (``root_index``; ``None`` = no root alignment), keep
    ``eval_joints`` (``None`` = all), optionally similarity-align the kept prediction joints to the GT
    (``procrustes=True``, PA-MPJPE), then average the per-joint L2 distances.

    Args:
        pred_joints_m: ``(B, J, 3)`` predicted joints, metres, any frame shared with the GT.
        gt_joints_m: ``(B, J, 3)`` GT joints, metres, same frame.
        root_index: joint subtracted from each set before the error (H36M-17 regressed pelvis = 0).
        eval_joints: joint indices scored, e.g. :data:`H36M_EVAL_JOINTS`.
        procrustes: align with :func:`~annot.geometry.procrustes.similarity_align` before the error.

    Returns:
        ``(B,)`` float64, millimetres.

    Raises:
        ValueError: shapes disagree or an index is out of range.
    """
    _check_points(pred_joints_m, gt_joints_m, "mpjpe_per_sample_mm")
    num_joints = pred_joints_m.shape[1]
    pred, gt = pred_joints_m.to(torch.float64), gt_joints_m.to(torch.float64)
    if root_index is not None:
        _check_index(root_index, num_joints, "mpjpe_per_sample_mm root_index")
        root = root_index % num_joints
        pred = pred - pred[:, root : root + 1]
        gt = gt - gt[:, root : root + 1]
    if eval_joints is not None:
        for j in eval_joints:
            _check_index(j, num_joints, "mpjpe_per_sample_mm eval_joints")
        idx = torch.as_tensor(list(eval_joints), dtype=torch.long, device=pred.device)
        pred, gt = pred[:, idx], gt[:, idx]
    if procrustes:
        pred = similarity_align(pred, gt)
    return (pred - gt).norm(dim=-1).mean(dim=-1) * 1000.0


def mpvpe_per_sample_mm(
    pred_vertices_m: torch.Tensor,
    gt_vertices_m: torch.Tensor,
    pred_root_m: torch.Tensor | None = None,
    gt_root_m: torch.Tensor | None = None,
    procrustes: bool = False,
) -> torch.Tensor:
    """Per-sample mean vertex error (mks0601 3DPW protocol, spec D.1 / F.10), millimetres.

    Args:
        pred_vertices_m: ``(B, V, 3)`` predicted mesh, metres.
        gt_vertices_m: ``(B, V, 3)`` GT mesh (same topology), metres, same frame.
        pred_root_m: ``(B, 3)`` subtracted from ``pred_vertices_m``: the H36M pelvis regressed from the
            predicted mesh (``(J_regressor_h36m @ pred_vertices_m)[:, 0]``). Give both roots or neither
            (``None`` = compare absolute positions).
        gt_root_m: ``(B, 3)`` the same for the GT mesh.
        procrustes: similarity-align the vertices before the error (PA-MPVPE).

    Returns:
        ``(B,)`` float64, millimetres.

    Raises:
        ValueError: shapes disagree, or only one of the two roots is given.
    """
    _check_points(pred_vertices_m, gt_vertices_m, "mpvpe_per_sample_mm")
    pred, gt = pred_vertices_m.to(torch.float64), gt_vertices_m.to(torch.float64)
    if (pred_root_m is None) != (gt_root_m is None):
        raise ValueError("mpvpe_per_sample_mm: give both pred_root_m and gt_root_m, or neither")
    if pred_root_m is not None and gt_root_m is not None:
        batch = pred.shape[0]
        for name, root in (("pred_root_m", pred_root_m), ("gt_root_m", gt_root_m)):
            if root.shape != (batch, 3):
                raise ValueError(f"mpvpe_per_sample_mm: {name} must be ({batch}, 3), got {tuple(root.shape)}")
        pred = pred - pred_root_m.to(torch.float64)[:, None]
        gt = gt - gt_root_m.to(torch.float64)[:, None]
    if procrustes:
        pred = similarity_align(pred, gt)
    return (pred - gt).norm(dim=-1).mean(dim=-1) * 1000.0


# --- mean-error metrics ---------------------------------------------------------------------------


def _select(mask: torch.Tensor | None, batch: int, what: str) -> torch.Tensor | None:
    """Indices of samples kept by a per-sample mask (``None`` keeps all)."""
    if mask is None:
        return None
    if mask.shape != (batch,):
        raise ValueError(f"{what}: mask must be ({batch},), got {tuple(mask.shape)}")
    return torch.nonzero(mask.bool(), as_tuple=False)[:, 0]


class _MeanErrorMM(Metric):
    """Sum of per-sample errors (mm) and number of samples; ``compute`` = their ratio (NaN if empty)."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("error_sum_mm", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def _accumulate(self, per_sample_mm: torch.Tensor) -> None:
        self.error_sum_mm += per_sample_mm.sum().to(self.error_sum_mm)
        self.count += per_sample_mm.numel()

    def compute(self) -> torch.Tensor:
        """Mean error over all accumulated samples, millimetres (float64 scalar; NaN if none)."""
        if self.count == 0:
            return torch.full((), float("nan"), dtype=torch.float64, device=self.error_sum_mm.device)
        return self.error_sum_mm / self.count


class _JointErrorMM(_MeanErrorMM):
    _procrustes = False

    def __init__(
        self,
        root_index: int | None = H36M_ROOT_INDEX,
        eval_joints: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if root_index is not None and not isinstance(root_index, int):
            raise ValueError(f"{type(self).__name__}: root_index must be an int or None, got {root_index!r}")
        self.root_index = root_index
        self.eval_joints = None if eval_joints is None else tuple(int(j) for j in eval_joints)
        if self.eval_joints is not None and len(self.eval_joints) == 0:
            raise ValueError(f"{type(self).__name__}: eval_joints is empty")

    def update(
        self, pred_joints_m: torch.Tensor, gt_joints_m: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Accumulate a batch.

        Args:
            pred_joints_m: ``(B, J, 3)`` predicted joints, metres (e.g. H36M-17 regressed from the mesh).
            gt_joints_m: ``(B, J, 3)`` GT joints, metres, same frame and joint order.
            mask: optional ``(B,)`` bool / 0-1; samples with 0 are skipped (not computed, not counted).

        Raises:
            ValueError: shapes disagree or an index is out of range.
        """
        _check_points(pred_joints_m, gt_joints_m, f"{type(self).__name__}.update")
        keep = _select(mask, pred_joints_m.shape[0], f"{type(self).__name__}.update")
        if keep is not None:
            pred_joints_m, gt_joints_m = pred_joints_m[keep], gt_joints_m[keep]
        if pred_joints_m.shape[0] == 0:
            return
        self._accumulate(
            mpjpe_per_sample_mm(pred_joints_m, gt_joints_m, self.root_index, self.eval_joints,
                                procrustes=self._procrustes)
        )


class MPJPE(_JointErrorMM):
    """Mean per-joint position error after root alignment, millimetres (mks0601 / SPIN, spec D.1).

    Per sample: subtract the root joint ``root_index`` from prediction and GT (each its own), keep
    ``eval_joints``, average the per-joint L2 distances; the metric is the mean over samples.

    Args:
        root_index: root joint index (``None`` = absolute positions). The mks0601 protocol passes H36M-17
            joints regressed from the mesh and uses 0, the regressed pelvis (pitfall F.10).
        eval_joints: joints scored after root alignment; ``None`` = all. mks0601: :data:`H36M_EVAL_JOINTS`
            ``(1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)``.
        **kwargs: forwarded to ``torchmetrics.Metric``.

    ``update(pred_joints_m (B,J,3) m, gt_joints_m (B,J,3) m, mask (B,) | None)``; ``compute() -> mm``.
    """


class PAMPJPE(_JointErrorMM):
    """Procrustes-aligned MPJPE, millimetres (mks0601 ``rigid_align`` / SPIN ``reconstruction_error``).

    Same inputs and options as :class:`MPJPE`; after root alignment and joint selection the prediction
    is similarity-aligned (scale, proper rotation, translation) to the GT on the selected joints, as in
    mks0601 (``rigid_align(pred14, gt14)``). The root alignment does not change the result (the
    alignment removes any translation); it is kept so both metrics take the same arguments.
    """

    _procrustes = True


class _VertexErrorMM(_MeanErrorMM):
    _procrustes = False

    def update(
        self,
        pred_vertices_m: torch.Tensor,
        gt_vertices_m: torch.Tensor,
        pred_root_m: torch.Tensor | None = None,
        gt_root_m: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Accumulate a batch.

        Args:
            pred_vertices_m: ``(B, V, 3)`` predicted mesh, metres.
            gt_vertices_m: ``(B, V, 3)`` GT mesh, metres, same frame and topology.
            pred_root_m: ``(B, 3)`` root subtracted from the predicted mesh: the **regressed H36M pelvis**
                ``(J_regressor_h36m @ vertices)[:, 0]`` in the mks0601 protocol (pitfall F.10).
            gt_root_m: ``(B, 3)`` the same for the GT mesh. Both roots or neither.
            mask: optional ``(B,)`` bool / 0-1; samples with 0 are skipped.

        Raises:
            ValueError: shapes disagree or only one root is given.
        """
        _check_points(pred_vertices_m, gt_vertices_m, f"{type(self).__name__}.update")
        keep = _select(mask, pred_vertices_m.shape[0], f"{type(self).__name__}.update")
        if keep is not None:
            pred_vertices_m, gt_vertices_m = pred_vertices_m[keep], gt_vertices_m[keep]
            pred_root_m = None if pred_root_m is None else pred_root_m[keep]
            gt_root_m = None if gt_root_m is None else gt_root_m[keep]
        if pred_vertices_m.shape[0] == 0:
            return
        self._accumulate(
            mpvpe_per_sample_mm(pred_vertices_m, gt_vertices_m, pred_root_m, gt_root_m,
                                procrustes=self._procrustes)
        )


class MPVPE(_VertexErrorMM):
    """Mean per-vertex position error after root subtraction, millimetres (mks0601 3DPW, spec D.1).

    ``update(pred_vertices_m (B,V,3), gt_vertices_m (B,V,3), pred_root_m (B,3) | None,
    gt_root_m (B,3) | None, mask (B,) | None)``: each mesh minus its own root (the regressed H36M pelvis),
    mean vertex L2 per sample, mean over samples. ``**kwargs`` go to ``torchmetrics.Metric``.
    """


class PAMPVPE(_VertexErrorMM):
    """Procrustes-aligned MPVPE, millimetres: :class:`MPVPE` after similarity alignment of all vertices.

    Same ``update`` as :class:`MPVPE` (the roots do not change the result; accepted for symmetry).
    """

    _procrustes = True


# --- MuPoTS-3D 3DPCK ------------------------------------------------------------------------------


def _as_tensor(x: object, dtype: torch.dtype, what: str) -> torch.Tensor:
    """CPU tensor of ``dtype`` from a tensor / array / nested list (ValueError naming ``what`` otherwise)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=dtype)
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: expected a tensor or array, got {type(x).__name__}") from err


def _people(x: torch.Tensor, channels: int) -> torch.Tensor:
    """An empty per-image array (no person) as ``(0, 17, channels)``; other arrays unchanged."""
    return x.reshape(0, MUPOTS_NUM_JOINTS, channels) if x.numel() == 0 else x


def match_people(
    gt_kp2d_px: torch.Tensor | np.ndarray,
    gt_vis: torch.Tensor | np.ndarray | None,
    pred_kp2d_px: torch.Tensor | np.ndarray,
    thresh_px: float = 40.0,
    pred_vis: torch.Tensor | np.ndarray | None = None,
    matching_joints: Sequence[int] = MUPOTS_MATCHING_JOINTS,
) -> list[int | None]:
    """Greedy 2D identity matching of MuPoTS-3D (MPI ``mpii_multiperson_get_identity_matching.m``).

    For each GT person in order: a joint of an unclaimed prediction "matches" when ``|dx| < thresh_px``
    **and** ``|dy| < thresh_px`` (per axis, strict); the score is the number of matching joints among
    ``matching_joints`` visible in both; the prediction with the highest score (lowest index on ties)
    is claimed if the score is > 0, otherwise the GT person is undetected (spec D.4.2).

    Args:
        gt_kp2d_px: ``(G, 17, 2)`` GT 2D joints (``annot2``), original-image pixels, ``mupots17`` order.
        gt_vis: ``(G, 17)`` bool / 0-1, or ``None`` = all visible (the official script uses all ones).
        pred_kp2d_px: ``(P, 17, 2)`` predicted 2D joints, same image pixels.
        thresh_px: per-axis threshold, pixels (40 in the official evaluation).
        pred_vis: ``(P, 17)``; ``None`` = the official rule: a predicted joint at exactly ``(0, 0)`` is
            invisible.
        matching_joints: 0-based joints compared; default Thorax..L_Ankle (MATLAB ``2:14``).

    Returns:
        ``list`` of length ``G``: the matched prediction index, or ``None``.

    Raises:
        ValueError: shapes disagree.
    """
    gt = _as_tensor(gt_kp2d_px, torch.float64, "match_people gt_kp2d_px")
    pred = _as_tensor(pred_kp2d_px, torch.float64, "match_people pred_kp2d_px")
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(f"match_people: gt_kp2d_px must be (G, J, 2), got {tuple(gt.shape)}")
    num_gt, num_joints = gt.shape[:2]
    if pred.numel() == 0:
        return [None] * num_gt
    if pred.ndim != 3 or pred.shape[1:] != (num_joints, 2):
        raise ValueError(f"match_people: pred_kp2d_px must be (P, {num_joints}, 2), got {tuple(pred.shape)}")
    if num_gt == 0:
        return []
    g_vis = (torch.ones(gt.shape[:2], dtype=torch.bool) if gt_vis is None
             else _as_tensor(gt_vis, torch.float64, "match_people gt_vis") != 0)
    p_vis = (~(pred == 0).all(dim=-1) if pred_vis is None
             else _as_tensor(pred_vis, torch.float64, "match_people pred_vis") != 0)
    if g_vis.shape != gt.shape[:2] or p_vis.shape != pred.shape[:2]:
        raise ValueError(f"match_people: gt_vis {tuple(g_vis.shape)} / pred_vis {tuple(p_vis.shape)} must be "
                         f"{tuple(gt.shape[:2])} / {tuple(pred.shape[:2])}")
    idx = torch.as_tensor(list(matching_joints), dtype=torch.long)
    close = ((gt[:, None, idx] - pred[None, :, idx]).abs() < thresh_px).all(dim=-1)  # (G, P, Jm)
    both_vis = g_vis[:, None, idx] & p_vis[None, :, idx]
    scores = (close & both_vis).sum(dim=-1)  # (G, P)
    claimed = torch.zeros(pred.shape[0], dtype=torch.bool)
    matches: list[int | None] = []
    for g in range(num_gt):
        row = torch.where(claimed, torch.zeros_like(scores[g]), scores[g])
        best = int(torch.argmax(row))  # first maximum, as MATLAB max
        if row[best] > 0:
            matches.append(best)
            claimed[best] = True
        else:
            matches.append(None)
    return matches


def _check_tree(parents: Sequence[int], order: Sequence[int]) -> None:
    seen = {j for j, p in enumerate(parents) if p < 0}
    for j in order:
        if not 0 <= j < len(parents) or parents[j] < 0 or parents[j] not in seen:
            raise ValueError(f"rescale_to_gt_bone_lengths: traversal visits joint {j} before its parent "
                             f"(parents {tuple(parents)}, order {tuple(order)})")
        seen.add(j)


def rescale_to_gt_bone_lengths(
    pred_joints: torch.Tensor,
    gt_joints: torch.Tensor,
    parents: Sequence[int] = MUPOTS_PARENTS,
    traversal_order: Sequence[int] = MUPOTS_TRAVERSAL_ORDER,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Give the prediction the GT bone lengths, keeping its bone directions.

    Follows MPI ``mpii_map_to_gt_bone_lengths.m`` (MuPoTS-3D evaluation, spec D.4.3).

    Walking ``traversal_order`` (parents first), joint ``j`` is placed at
    ``out[parent] + |gt[j] - gt[parent]| * unit(pred[j] - pred[parent])``: directions come from the
    *original* prediction, positions accumulate from the already rescaled parent; joints not visited
    (the root) keep the predicted position. A zero-length predicted bone (direction undefined; the
    MATLAB code would produce NaN) puts the joint on its parent, as the Python ports' ``+eps`` does.

    Args:
        pred_joints: ``(..., J, 3)`` predicted joints (root-relative in the MuPoTS protocol), any unit.
        gt_joints: ``(..., J, 3)`` GT joints, same unit.
        parents: ``J`` parent indices, ``-1`` for the root (default: MuPoTS-17, :data:`MUPOTS_PARENTS`).
        traversal_order: joints to rescale, each after its parent (default :data:`MUPOTS_TRAVERSAL_ORDER`).
        eps: floor on the predicted bone length.

    Returns:
        ``(..., J, 3)`` in the dtype of ``pred_joints``.

    Raises:
        ValueError: shapes disagree, or the order visits a joint before its parent.
    """
    if pred_joints.shape != gt_joints.shape or pred_joints.ndim < 2 or pred_joints.shape[-1] != 3:
        raise ValueError(f"rescale_to_gt_bone_lengths: pred {tuple(pred_joints.shape)} and gt "
                         f"{tuple(gt_joints.shape)} must both be (..., J, 3)")
    if len(parents) != pred_joints.shape[-2]:
        raise ValueError(
            f"rescale_to_gt_bone_lengths: {len(parents)} parents for {pred_joints.shape[-2]} joints"
        )
    _check_tree(parents, traversal_order)
    order = torch.as_tensor(list(traversal_order), dtype=torch.long, device=pred_joints.device)
    par = torch.as_tensor([parents[j] for j in traversal_order], dtype=torch.long, device=pred_joints.device)
    pred, gt = pred_joints.to(torch.float64), gt_joints.to(torch.float64)
    bone_pred = pred[..., order, :] - pred[..., par, :]
    unit = bone_pred / bone_pred.norm(dim=-1, keepdim=True).clamp(min=eps)
    gt_len = (gt[..., order, :] - gt[..., par, :]).norm(dim=-1, keepdim=True)
    out = pred.clone()
    for k, j in enumerate(traversal_order):
        out[..., j, :] = out[..., parents[j], :] + unit[..., k, :] * gt_len[..., k, :]
    return out.to(pred_joints.dtype)


class MuPoTS3DPCK(Metric):
    """MuPoTS-3D root-relative 3DPCK at 150 mm, "all annotated" and "only matched" (spec D.4, F.11).

    Official protocol (MPI ``mpii_mupots_multiperson_eval.m`` with ``is_relative = 1``):
    per image, match predictions to the GT people by 2D (:func:`match_people`, 40 px, joints
    Thorax..L_Ankle); for each matched GT person, make both skeletons root-relative (Pelvis, index 14),
    rescale the prediction bone by bone to the GT bone lengths (:func:`rescale_to_gt_bone_lengths`) and
    count the joints among :data:`MUPOTS_EVAL_JOINTS` (14 joints) with L2 error ``< threshold_mm``
    (strict, as ``mpii_compute_3d_pck.m``). An unmatched GT person counts 14 misses in "all" mode and is
    left out in "matched" mode. PCK is computed per sequence (TS1..TS20) as hits / scored joints, and
    the reported number is the mean over sequences.

    States (all ``dist_reduce_fx="sum"``, one entry per sequence): ``hits`` (joints within the
    threshold; only matched people can hit, so "all" and "matched" share it), ``joints_all``
    (14 x GT people), ``joints_matched`` (14 x matched GT people), ``num_gt``, ``num_matched``.

    Args:
        num_sequences: number of test sequences (20).
        threshold_mm: PCK threshold, millimetres (150).
        match_thresh_px: 2D matching threshold, pixels (40).
        **kwargs: forwarded to ``torchmetrics.Metric``.

    Notes:
        Sequences without any GT person ("all") or any matched person ("matched") are left out of the
        mean (the MATLAB script would give NaN); ``per_sequence`` lists only sequences with a GT person.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    _STATES = ("hits", "joints_all", "joints_matched", "num_gt", "num_matched")

    def __init__(
        self,
        num_sequences: int = MUPOTS_NUM_SEQUENCES,
        threshold_mm: float = 150.0,
        match_thresh_px: float = 40.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_sequences < 1:
            raise ValueError(f"MuPoTS3DPCK: num_sequences must be >= 1, got {num_sequences}")
        self.num_sequences = int(num_sequences)
        self.threshold_mm = float(threshold_mm)
        self.match_thresh_px = float(match_thresh_px)
        for name in self._STATES:
            zeros = torch.zeros(self.num_sequences, dtype=torch.long)
            self.add_state(name, default=zeros, dist_reduce_fx="sum")

    def _check_image(self, i: int, gt3d: torch.Tensor, gt2d: torch.Tensor, pred3d: torch.Tensor,
                     pred2d: torch.Tensor, ts: int) -> None:
        j = MUPOTS_NUM_JOINTS
        num_gt, num_pred = gt3d.shape[0], pred3d.shape[0]
        checks = (("gt_joints_m", gt3d, (num_gt, j, 3)), ("gt_kp2d_px", gt2d, (num_gt, j, 2)),
                  ("pred_joints_m", pred3d, (num_pred, j, 3)), ("pred_kp2d_px", pred2d, (num_pred, j, 2)))
        for name, x, shape in checks:
            if tuple(x.shape) != shape:
                raise ValueError(
                    f"MuPoTS3DPCK.update: image {i}: {name} must be {shape}, got {tuple(x.shape)}"
                )
        if not 1 <= ts <= self.num_sequences:
            raise ValueError(
                f"MuPoTS3DPCK.update: image {i}: seq_ts must be in 1..{self.num_sequences}, got {ts}"
            )

    def update(
        self,
        gt_joints_m: Sequence[torch.Tensor],
        gt_kp2d_px: Sequence[torch.Tensor],
        gt_vis: Sequence[torch.Tensor | None] | None,
        pred_joints_m: Sequence[torch.Tensor],
        pred_kp2d_px: Sequence[torch.Tensor],
        seq_ts: Sequence[int] | torch.Tensor,
    ) -> None:
        """Accumulate a list of images (one entry per image in every argument).

        Args:
            gt_joints_m: per image ``(G, 17, 3)`` GT ``univ_annot3`` joints of the valid annotations,
                **metres** (the official files are in mm: divide by 1000), ``mupots17`` order, camera frame.
            gt_kp2d_px: per image ``(G, 17, 2)`` GT ``annot2``, original-image pixels.
            gt_vis: per image ``(G, 17)`` or ``None`` (all visible, as the official script); or ``None``.
            pred_joints_m: per image ``(P, 17, 3)`` predicted joints, metres (``P`` may be 0); only
                root-relative positions matter.
            pred_kp2d_px: per image ``(P, 17, 2)`` predicted 2D joints, pixels (official: the 3D joints with
                the GT root added, projected with the GT intrinsics).
            seq_ts: per image the sequence number ``n`` of ``TS{n}``, 1-based (1..20).

        Raises:
            ValueError: list lengths or shapes disagree, or a sequence number is out of range.
        """
        ts_list = [int(t) for t in (seq_ts.tolist() if isinstance(seq_ts, torch.Tensor) else seq_ts)]
        n = len(ts_list)
        lengths = {"gt_joints_m": len(gt_joints_m), "gt_kp2d_px": len(gt_kp2d_px),
                   "pred_joints_m": len(pred_joints_m), "pred_kp2d_px": len(pred_kp2d_px)}
        if gt_vis is not None:
            lengths["gt_vis"] = len(gt_vis)
        if any(v != n for v in lengths.values()):
            raise ValueError(f"MuPoTS3DPCK.update: per-image lists differ in length: {lengths}, seq_ts {n}")
        eval_idx = torch.as_tensor(MUPOTS_EVAL_JOINTS, dtype=torch.long)
        num_eval = len(MUPOTS_EVAL_JOINTS)
        for i, ts in enumerate(ts_list):
            gt3d = _people(_as_tensor(gt_joints_m[i], torch.float64, "gt_joints_m"), 3)
            gt2d = _people(_as_tensor(gt_kp2d_px[i], torch.float64, "gt_kp2d_px"), 2)
            pred3d = _people(_as_tensor(pred_joints_m[i], torch.float64, "pred_joints_m"), 3)
            pred2d = _people(_as_tensor(pred_kp2d_px[i], torch.float64, "pred_kp2d_px"), 2)
            self._check_image(i, gt3d, gt2d, pred3d, pred2d, ts)
            vis = None
            if gt_vis is not None and gt_vis[i] is not None:
                vis = _as_tensor(gt_vis[i], torch.float64, "gt_vis")
            matches = match_people(gt2d, vis, pred2d, thresh_px=self.match_thresh_px)
            gt_ids = [g for g, p in enumerate(matches) if p is not None]
            hits = 0
            if gt_ids:
                pred_ids = [matches[g] for g in gt_ids]
                root = MUPOTS_ROOT_INDEX
                gt_rel = gt3d[gt_ids] - gt3d[gt_ids, root : root + 1]
                pred_rel = pred3d[pred_ids] - pred3d[pred_ids, root : root + 1]
                mapped = rescale_to_gt_bone_lengths(pred_rel, gt_rel)
                err_mm = (mapped[:, eval_idx] - gt_rel[:, eval_idx]).norm(dim=-1) * 1000.0
                hits = int((err_mm < self.threshold_mm).sum())
            s = ts - 1
            self.hits[s] += hits
            self.joints_all[s] += num_eval * gt3d.shape[0]
            self.joints_matched[s] += num_eval * len(gt_ids)
            self.num_gt[s] += gt3d.shape[0]
            self.num_matched[s] += len(gt_ids)

    def compute(self) -> dict:
        """Return ``{"pck_all": %, "pck_matched": %, "per_sequence": {"TS{n}": {...}}}``.

        ``pck_all`` / ``pck_matched``: mean over sequences of the per-sequence PCK (float64 scalars,
        percent; NaN when no sequence qualifies). ``per_sequence["TS{n}"]`` holds ``pck_all``,
        ``pck_matched`` (percent, NaN when nothing matched), ``num_gt`` and ``num_matched`` for each
        sequence with at least one GT person.
        """
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=self.hits.device)

        def ratio(hits: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
            pct = 100.0 * hits.to(torch.float64) / total.clamp(min=1).to(torch.float64)
            return torch.where(total > 0, pct, nan)

        seq_all = ratio(self.hits, self.joints_all)
        seq_matched = ratio(self.hits, self.joints_matched)
        per_sequence = {
            f"TS{s + 1}": {"pck_all": seq_all[s], "pck_matched": seq_matched[s],
                           "num_gt": self.num_gt[s], "num_matched": self.num_matched[s]}
            for s in range(self.num_sequences) if self.num_gt[s] > 0
        }
        return {
            "pck_all": seq_all.nanmean() if (self.joints_all > 0).any() else nan,
            "pck_matched": seq_matched.nanmean() if (self.joints_matched > 0).any() else nan,
            "per_sequence": per_sequence,
        }
