"""The hand annotator in the whole-body pipeline (``parts.hand_method``; issue #16 item 3).

``fit`` (default): the per-sample MANO fit (:func:`annot.fitting.hands.fit_hands`) alone. ``annotator``: the hand
annotator f_hand trained with Algorithm 1 (:func:`annot.hands.algorithm.run_algorithm1`: the free auxiliary 3D hand
set + the COCO-WholeBody hand crops of the people with a body pseudo-GT, left hands flipped) predicts every hand's
MANO global rotation, finger pose and shape; the hand hangs at the body's wrist as the fit's does.
``annotator_fit``: the fit started from that prediction. Either way the MANO global rotation then goes through the
wrist integration (:func:`annot.wholebody.integrate.integrate`).

The stage (hands) writes ``hand_annotator.pt``: ``{"<aid>_<side>": {"global_rotmat" (3, 3) image camera,
"hand_pose" (15, 3) relative to the side's ``hands_mean``, "betas" (10,), "kp2d_img_px" (21, 2)}}``, and
``history.json`` (losses per step, timings).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from annot.body_models.wholebody import Hand21
from annot.fitting.hands import HandFit
from annot.fitting.kp2d import mean_error_px
from annot.geometry.cameras import perspective_project
from annot.geometry.rotations import rotmat_to_rotvec
from annot.io.atomic import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)
HAND_METHODS = ("fit", "annotator", "annotator_fit")
PREDICTIONS = "hand_annotator.pt"


def check_hand_method(method: str) -> str:
    """``method`` if it is one of :data:`HAND_METHODS`, else ValueError naming the key."""
    if method not in HAND_METHODS:
        raise ValueError(f"parts.hand_method must be one of {HAND_METHODS}, got {method!r}")
    return method


def hand_targets(data: Any, people: list[Any], entries: dict[str, Any], minimum: int) -> list[dict[str, Any]]:
    """The hands the parts stage fits (both sides, at least ``minimum`` of 21 points annotated), with what their crops
    need: ``sid`` ``"<aid>_<side>"``, ``image_path``, ``kp`` (21, 2) image px, ``mask`` (21,), ``left``, ``focal`` /
    ``princpt`` (2,) the body pseudo-GT's camera."""
    out = []
    for person in people:
        for side in ("left", "right"):
            box = data.parts[person.sample_id].get(f"{side}hand")
            if box is None or int((box.kps_xyv[:, 2] > 0).sum()) < minimum:
                continue
            entry = entries[person.sample_id]
            out.append({"sid": f"{person.sample_id}_{side}", "image_path": str(person.image_path),
                        "kp": box.kps_xyv[:, :2].astype(np.float32), "mask": box.kps_xyv[:, 2] > 0,
                        "left": side == "left", "focal": np.asarray(entry.focal_px, dtype=np.float32),
                        "princpt": np.asarray(entry.princpt_px, dtype=np.float32)})
    return out


def stage_hands(cfg: Any, folder: Path, data: Any, people: list[Any], entries: dict[str, Any]) -> list[str]:
    """Train f_hand with Algorithm 1 on the auxiliary set + the target hands and write its predictions (module
    docstring).

    Raises:
        FileNotFoundError: an image of a target hand cannot be read (the message names it).
        ValueError: no hand to annotate.
    """
    from annot.body_models.wholebody import load_mano
    from annot.config import to_container
    from annot.hands.algorithm import HandAnnotatorConfig, run_algorithm1
    from annot.hands.crops import crop_image_hands
    from annot.hands.synthetic import AuxHandSetConfig, make_hand_set

    targets = hand_targets(data, people, entries, cfg.parts.min_hand_points)
    if not targets:
        raise ValueError("parts.hand_method: no hand with enough annotated points to train the hand annotator on")
    images: dict[str, np.ndarray] = {}
    for t in targets:
        if t["image_path"] not in images:
            bgr = cv2.imread(t["image_path"], cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"hand {t['sid']}: cannot read image {t['image_path']}")
            images[t["image_path"]] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    raw = to_container(cfg.hand_annotator)
    acfg = HandAnnotatorConfig(**{**raw, "aux": AuxHandSetConfig(**raw["aux"])})
    stack = lambda key: torch.tensor(np.stack([t[key] for t in targets]))  # noqa: E731
    crops = crop_image_hands([images[t["image_path"]] for t in targets], stack("kp"), stack("mask"), stack("left"),
                             stack("focal"), stack("princpt"), [t["sid"] for t in targets], acfg.crop_size,
                             acfg.crop_scale)
    mano_path = cfg.models.mano_right
    aux = make_hand_set(load_mano(mano_path, is_rhand=True), acfg.aux, acfg.crop_size, acfg.crop_scale, mano_path,
                        acfg.cache_dir)
    out = run_algorithm1(mano_path, aux, crops, acfg)
    pred = out["target"]
    saved = {sid: {k: pred[k][i].detach().clone() for k in ("global_rotmat", "hand_pose", "betas", "kp2d_img_px")}
             for i, sid in enumerate(crops.sample_ids)}
    buf = __import__("io").BytesIO()
    torch.save(saved, buf)
    atomic_write_bytes(folder / PREDICTIONS, buf.getvalue())
    atomic_write_json(folder / "history.json", {"loss": out["history"], "seconds": out["seconds"],
                                                "aux_mpjpe_mm": out["aux_mpjpe_mm"], "num_hands": len(targets)})
    log.info("hand annotator: %d hands predicted (%s)", len(targets), json.dumps(out["seconds"]))
    return [PREDICTIONS, "history.json"]


def read_predictions(path: Path, sids: list[str]) -> tuple[Tensor, Tensor, Tensor]:
    """``(global_rotmat (N, 3, 3), hand_pose (N, 15, 3), betas (N, 10))`` of the hands ``sids`` in ``path``.

    Raises:
        ValueError: a hand without a prediction (named, with the file).
    """
    preds = torch.load(path, map_location="cpu", weights_only=False)
    missing = [s for s in sids if s not in preds]
    if missing:
        raise ValueError(f"{path}: no hand-annotator prediction for {missing[:5]} ({len(missing)} hands); rerun the "
                         "hands stage")
    return tuple(torch.stack([preds[s][k] for s in sids]) for k in ("global_rotmat", "hand_pose", "betas"))


def anchored_prediction(layer: Any, kp21_px: Tensor, mask21: Tensor, focal_px: Tensor, princpt_px: Tensor,
                        wrist_cam_m: Tensor, global_rotmat: Tensor, hand_pose: Tensor, betas: Tensor) -> HandFit:
    """The annotator's hands as a :class:`annot.fitting.hands.HandFit`: MANO posed with the prediction, its wrist at
    the body's wrist ``wrist_cam_m`` (N, 3) (``transl_m`` set so), with the 2D error of the visible keypoints (pixels;
    ``init_err_px`` is the same)."""
    n = global_rotmat.shape[0]
    with torch.no_grad():
        out = layer(global_orient=rotmat_to_rotvec(global_rotmat), hand_pose=hand_pose.reshape(n, 45), betas=betas)
        kps = Hand21(layer)(out.joints, out.vertices)
        transl = wrist_cam_m - kps[:, 0]
        err = mean_error_px(perspective_project(kps + transl[:, None], focal_px, princpt_px), kp21_px, mask21)
    return HandFit(global_rotmat=global_rotmat, hand_pose=hand_pose.reshape(n, 15, 3), betas=betas, transl_m=transl,
                   kp2d_err_px=err, init_err_px=err.clone())


__all__ = ["HAND_METHODS", "PREDICTIONS", "anchored_prediction", "check_hand_method", "hand_targets",
           "read_predictions", "stage_hands"]
