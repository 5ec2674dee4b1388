"""Stage-(a) pseudo-GTs of the MoCap sets in mks0601's world-frame layouts, for the reference code.

Besides the per-annotation-id file (:mod:`annot.io.export`), stage (a) writes the fits of a world-frame
MoCap set the way NeuralAnnot_RELEASE ships them, so that they can replace the released files in
mks0601's loaders (Hand4Whole ``data/Human36M/Human36M.py``, ``data/MPI_INF_3DHP/MPI_INF_3DHP.py``;
reference-spec A.1, A.2, A.8)::

    Human36M_subject{S}_SMPL_NeuralAnnot.json   {action_idx: {subaction_idx: {frame_idx: {pose, shape, trans}}}}
    MPI-INF-3DHP_SMPL_NeuralAnnot.json          {subject_idx: {seq_idx: {frame_idx: {pose, shape, trans}}}}

(all keys strings; ``pose`` 72 axis-angle values, ``shape`` 10, ``trans`` 3 metres, **world** frame).

From camera to world: the global orientation is ``R^T R0`` (``R`` the camera's world -> camera rotation).
The translation is *not* mapped with the camera's ``t``: the pseudo-GT was predicted in a crop camera of
virtual focal length, whose depth has no metric meaning, so ``trans`` is set to put the mesh's root of the
dataset's joint convention (H36M: the regressed pelvis; MPI-INF: the pelvis) on the MoCap root joint in
the world, which is where mks0601 expects the NeuralAnnot mesh. A frame seen by several cameras gets
the fit of the view with the lowest 3D joint error (``quality["joints3d_err_mm"]``, ties: the first
annotation id); the others are counted as merged views.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from annot.io.atomic import atomic_write_json
from annot.io.export import PseudoGT
from annot.keypoints import get_convention

REFERENCE_DIR = "reference_layout"
SKIP_NOT_LOADED = "not a loaded sample of the dataset"


def _quality(entry: PseudoGT) -> float:
    err = entry.quality.get("joints3d_err_mm", math.inf)
    return math.inf if not math.isfinite(err) else float(err)


def _pick_views(dataset: Any, entries: Mapping[str, PseudoGT]) -> tuple[dict[tuple, str], dict[str, str], int]:
    """``({(file, keys): chosen annotation id}, skipped {aid: reason}, number of merged views)``."""
    chosen: dict[tuple, str] = {}
    skipped: dict[str, str] = {}
    merged = 0
    for aid in entries:
        if aid not in dataset.cameras:
            skipped[aid] = SKIP_NOT_LOADED
            continue
        slot = dataset.reference_entry(aid)
        if slot in chosen:
            merged += 1
            if _quality(entries[aid]) < _quality(entries[chosen[slot]]):
                chosen[slot] = aid
        else:
            chosen[slot] = aid
    return chosen, skipped, merged


def world_frame_fits(dataset: Any, entries: Mapping[str, PseudoGT], body_model: Any,
                     batch_size: int = 256) -> tuple[dict[str, dict], dict[str, Any]]:
    """Camera-frame pseudo-GTs of a world-frame MoCap set -> mks0601 world-frame fits (module docstring).

    Args:
        dataset: a :class:`annot.data.world_frame.WorldFrameMocapDataset` (``cameras``, ``records`` with
            ``joints_cam_m`` in ``native_convention``, ``reference_entry``).
        entries: ``{annotation id: PseudoGT}`` in each sample's camera frame (:mod:`annot.io.export`).
        body_model: the :class:`annot.body_models.BodyModel` the pseudo-GTs were predicted with.
        batch_size: samples per body-model call.

    Returns:
        ``({file name: {k1: {k2: {k3: {"pose", "shape", "trans"}}}}}, report)`` with report
        ``{"written": n, "merged_views": k, "skipped": {aid: reason}}``.
    """
    chosen, skipped, merged = _pick_views(dataset, entries)
    conv = get_convention(dataset.native_convention)
    root = conv.index(conv.root)
    records = {r.sample_id: r for r in dataset.records}
    slots = list(chosen.items())
    files: dict[str, dict] = {}
    for start in range(0, len(slots), batch_size):
        chunk = slots[start:start + batch_size]
        aids = [aid for _, aid in chunk]
        cams = [dataset.cameras[a] for a in aids]
        pose = np.stack([entries[a].pose_rotvec.reshape(24, 3) for a in aids]).astype(np.float64)
        rot_w = np.stack([c.rotmat.T for c in cams])
        pose[:, 0] = Rotation.from_matrix(rot_w @ Rotation.from_rotvec(pose[:, 0]).as_matrix()).as_rotvec()
        betas = np.stack([np.asarray(entries[a].betas, np.float64)[:10] for a in aids])
        gt_root_w = np.stack([c.rotmat.T @ (records[a].joints_cam_m[root] - c.t_mm / 1000.0)
                              for a, c in zip(aids, cams)])
        device = next(body_model.buffers()).device
        pose_t = torch.as_tensor(pose, dtype=torch.float32, device=device).reshape(len(aids), 72)
        with torch.no_grad():
            out = body_model(pose_t[:, :3], pose_t[:, 3:], torch.as_tensor(betas, dtype=torch.float32, device=device))
            joints, _ = body_model.regress(out.vertices_m, conv.name)
        transl = gt_root_w - joints[:, root].double().cpu().numpy()
        for ((name, keys), _aid), p, b, t in zip(chunk, pose, betas, transl):
            node = files.setdefault(name, {})
            for key in keys[:-1]:
                node = node.setdefault(str(key), {})
            node[str(keys[-1])] = {"pose": p.reshape(-1).tolist(), "shape": b.tolist(), "trans": t.tolist()}
    return files, {"written": len(slots), "merged_views": merged, "skipped": skipped}


def write_reference_layout(folder: str | Path, dataset: Any, entries: Mapping[str, PseudoGT],
                           body_model: Any) -> list[str]:
    """Write :func:`world_frame_fits` under ``folder/reference_layout/`` (atomic writes) with a
    ``report.json``; nothing for a dataset without a reference layout (no ``reference_entry``).

    Returns:
        The written paths, relative to ``folder``.
    """
    if not hasattr(dataset, "reference_entry") or not hasattr(dataset, "cameras"):
        return []
    files, report = world_frame_fits(dataset, entries, body_model)
    out = Path(folder) / REFERENCE_DIR
    written = []
    for name, tree in sorted(files.items()):
        atomic_write_json(out / name, tree)
        written.append(f"{REFERENCE_DIR}/{name}")
    atomic_write_json(out / "report.json", report)
    return [*written, f"{REFERENCE_DIR}/report.json"]


__all__ = ["REFERENCE_DIR", "SKIP_NOT_LOADED", "world_frame_fits", "write_reference_layout"]
