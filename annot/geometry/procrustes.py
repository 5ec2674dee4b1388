"""Batched similarity (Procrustes) alignment with scale, for PA-MPJPE / PA-MPVPE.

Solves, per batch element, ``min_{s, R, t} sum_i || s R p_i + t - g_i ||^2`` over a scale ``s >= 0``,
a proper rotation ``R`` (``det R = +1``) and a translation ``t`` (Umeyama 1991). This is what
mks0601 Hand4Whole ``common/utils/transforms.py::rigid_transform_3D`` / ``rigid_align`` and nkolot SPIN
``utils/pose_utils.py::compute_similarity_transform`` compute (reference-spec D.2), batched in torch.

Derivation used here (row-vector points, ``(N, 3)`` per element):

- centre both sets: ``X = P - mean(P)``, ``Y = G - mean(G)``;
- cross-covariance ``K = X^T Y`` (3x3), SVD ``K = U diag(sigma) V^T``;
- reflection fix: ``D = diag(1, 1, sign(det(U V^T)))`` (``+1`` when the determinant is 0), so that the
  rotation is proper even when ``G`` is a mirror image of ``P``;
- ``R = V D U^T`` (so that ``R x_i`` is the rotated column vector), ``s = trace(D diag(sigma)) / ||X||_F^2``,
  ``t = mean(G) - s R mean(P)``; aligned points ``s P R^T + t``.

The computation runs in float64 whatever the input dtype (3x3 SVDs of nearly degenerate
cross-covariances are unstable in float32) and the result is cast back to the input dtype. It is
meant for evaluation; gradients flow through ``torch.linalg.svd`` but are ill-defined when two
singular values coincide.
"""

from __future__ import annotations

import torch

__all__ = ["similarity_transform", "similarity_align", "apply_similarity"]

#: Floor on ``||X||_F^2`` (squared metres when points are in metres) to avoid 0/0 for a prediction
#: whose points all coincide; such a prediction gets ``s = 0`` (every point maps to ``mean(G)``).
_MIN_SQ_NORM = 1e-30


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, fn: str) -> None:
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"{fn}: pred must be (B, N, 3), got {tuple(pred.shape)}")
    if gt.shape != pred.shape:
        raise ValueError(f"{fn}: gt shape {tuple(gt.shape)} differs from pred shape {tuple(pred.shape)}")
    if pred.shape[1] < 1:
        raise ValueError(f"{fn}: need at least one point, got N = 0")


def similarity_transform(
    pred: torch.Tensor, gt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform mapping ``pred`` onto ``gt`` (Umeyama, proper rotation).

    Args:
        pred: ``(B, N, 3)`` points to align (e.g. predicted joints), any frame and length unit.
        gt: ``(B, N, 3)`` target points, same frame convention and unit as ``pred``.

    Returns:
        ``(scale, rotmat, transl)``: ``scale`` ``(B,)`` (unitless, ``>= 0``), ``rotmat`` ``(B, 3, 3)``
        proper rotations (``det = +1``), ``transl`` ``(B, 3)`` in the unit of ``gt``; all float64. The
        aligned points are ``scale[:, None, None] * pred @ rotmat.transpose(1, 2) + transl[:, None]``
        (see :func:`apply_similarity`). Follows SPIN ``compute_similarity_transform`` and mks0601
        ``rigid_transform_3D`` (reference-spec D.2), including their reflection fix.

    Raises:
        ValueError: ``pred`` is not ``(B, N, 3)`` with ``N >= 1`` or ``gt`` has another shape.
    """
    _check_pair(pred, gt, "similarity_transform")
    p = pred.to(torch.float64)
    g = gt.to(torch.float64)
    mu_p, mu_g = p.mean(dim=1, keepdim=True), g.mean(dim=1, keepdim=True)
    x, y = p - mu_p, g - mu_g
    cross_cov = x.transpose(1, 2) @ y  # (B, 3, 3) = X^T Y
    u, sigma, vh = torch.linalg.svd(cross_cov)
    v = vh.transpose(1, 2)
    det_sign = torch.where(torch.linalg.det(u @ vh) < 0, -1.0, 1.0).to(torch.float64)
    d = torch.ones_like(sigma)
    d[:, 2] = det_sign
    rotmat = v @ torch.diag_embed(d) @ u.transpose(1, 2)
    sq_norm = x.pow(2).sum(dim=(1, 2)).clamp(min=_MIN_SQ_NORM)
    scale = (sigma * d).sum(dim=1) / sq_norm
    transl = mu_g[:, 0] - scale[:, None] * (rotmat @ mu_p[:, 0, :, None])[..., 0]
    return scale, rotmat, transl


def apply_similarity(
    points: torch.Tensor, scale: torch.Tensor, rotmat: torch.Tensor, transl: torch.Tensor
) -> torch.Tensor:
    """Apply ``x -> scale * R x + t`` to row-vector points.

    Args:
        points: ``(B, N, 3)``.
        scale: ``(B,)``; rotmat: ``(B, 3, 3)``; transl: ``(B, 3)`` (as from :func:`similarity_transform`).

    Returns:
        ``(B, N, 3)`` in the dtype of ``points``.
    """
    out = scale.to(torch.float64)[:, None, None] * (points.to(torch.float64) @ rotmat.transpose(1, 2))
    return (out + transl.to(torch.float64)[:, None, :]).to(points.dtype)


def similarity_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``pred`` after the least-squares similarity alignment (scale, proper rotation, translation) to ``gt``.

    This is the "PA" (Procrustes-aligned) step of PA-MPJPE / PA-MPVPE: mks0601 ``rigid_align(A, B)``
    and SPIN ``compute_similarity_transform(S1, S2)`` (reference-spec D.2), batched.

    Args:
        pred: ``(B, N, 3)`` points to align (any length unit, e.g. metres).
        gt: ``(B, N, 3)`` target points, same unit.

    Returns:
        ``(B, N, 3)`` aligned ``pred``, in the unit of ``gt`` and the dtype of ``pred`` (computed in
        float64). When ``gt`` is a mirror image of ``pred`` the best *proper* rotation is used, so the
        residual is non-zero.

    Raises:
        ValueError: ``pred`` is not ``(B, N, 3)`` with ``N >= 1`` or ``gt`` has another shape.
    """
    scale, rotmat, transl = similarity_transform(pred, gt)
    return apply_similarity(pred, scale, rotmat, transl)
