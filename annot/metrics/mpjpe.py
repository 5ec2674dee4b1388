"""Joint and vertex errors: MPJPE, PA-MPJPE, MPVPE, PA-MPVPE (``torchmetrics.Metric``), their per-sample
functional forms, and the per-sample 2D error in pixels. Protocols: :mod:`annot.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from annot.geometry.procrustes import similarity_align

#: Root of the mks0601 protocol in ``h36m17``: the pelvis regressed from the mesh (spec D.1, F.10).
H36M_ROOT_INDEX: int = 0


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


# --- 2D ------------------------------------------------------------------------------------------------


def kp2d_error_px(pred_px: torch.Tensor, target_px: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean Euclidean 2D error over valid joints, in the pixels of the inputs.

    Args:
        pred_px, target_px: (B, J, 2) pixels (crop or original image, both the same).
        mask: (B, J) 0/1.

    Returns:
        (B,) mean error in pixels; NaN for a sample with no valid joint.
    """
    dist = (pred_px - target_px).norm(dim=-1)
    count = mask.sum(dim=-1)
    err = (dist * mask).sum(dim=-1) / count.clamp(min=1.0)
    return torch.where(count > 0, err, torch.full_like(err, float("nan")))
