"""Evaluation metrics as ``torchmetrics.Metric``: MPJPE, PA-MPJPE, MPVPE, PA-MPVPE, MuPoTS-3D 3DPCK.

Shared by the estimators (validation / test loops), the annotator (2D error) and the benchmarks;
imports only ``annot.geometry`` and ``annot.keypoints``. :mod:`.mpjpe`: joint and vertex errors (the MPJPE family) and
the 2D error; :mod:`.mupots`: MuPoTS-3D 3DPCK. Every metric keeps
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

from annot.keypoints import H36M_EVAL_JOINTS
from annot.metrics.mpjpe import (
    H36M_ROOT_INDEX,
    MPJPE,
    MPVPE,
    PAMPJPE,
    PAMPVPE,
    kp2d_error_px,
    mpjpe_per_sample_mm,
    mpvpe_per_sample_mm,
)
from annot.metrics.mupots import (
    MUPOTS_EVAL_JOINTS,
    MUPOTS_MATCHING_JOINTS,
    MUPOTS_NUM_JOINTS,
    MUPOTS_NUM_SEQUENCES,
    MUPOTS_PARENTS,
    MUPOTS_ROOT_INDEX,
    MUPOTS_TRAVERSAL_ORDER,
    MuPoTS3DPCK,
    match_people,
    rescale_to_gt_bone_lengths,
)

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
    "kp2d_error_px",
    "MPJPE",
    "PAMPJPE",
    "MPVPE",
    "PAMPVPE",
    "match_people",
    "rescale_to_gt_bone_lengths",
    "MuPoTS3DPCK",
]
