"""MuPoTS-3D 3DPCK (``torchmetrics.Metric``) with the MPI evaluation's 2D matching and bone-length rescaling.
Protocol: :mod:`annot.metrics`, :class:`MuPoTS3DPCK`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

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
