"""Whole-body SMPL-X pseudo-GTs (expressive NeuralAnnot, Moon et al., section 4), as one resumable command.

Stages (each in its own folder under ``export.out_dir`` with a ``stage.json`` provenance marker,
:mod:`annot.annotator.stages`; a rerun skips complete stages):

(body)    ``make annotate-body``'s Algorithm 1 (:func:`annot.annotator.pipeline.run_annotate`) on the body config
          ``body.config``; its own stages are skipped when already complete, so after ``make annotate-body``
          nothing is retrained. Its ``pseudo_gt.json`` (SMPL, NeuralAnnot layout) is the body part.
(parts)   ``stage_parts/parts.pt``: the SMPL bodies carried into SMPL-X
          (:func:`annot.wholebody.integrate.smpl_body_to_smplx`), the batched face fit of every person with a valid
          face (:func:`annot.fitting.face.fit_face`) and the batched MANO fit of every valid hand
          (:func:`annot.fitting.hands.fit_hands`), all in the body's camera.
(hands)   only with ``parts.hand_method`` ``annotator`` / ``annotator_fit``: ``stage_hands/``, the hand annotator
          trained with Algorithm 1 on the free auxiliary hand set + these people's hand crops, and its predictions
          (:mod:`annot.wholebody.hand_annotator`); the parts stage then takes them as the hands (``annotator``) or
          as the start of the MANO fit (``annotator_fit``).
(export)  ``stage_export/``: the integration (:func:`annot.wholebody.integrate.integrate`: wrist rule, jaw and
          expression), ``pseudo_gt_smplx.json`` (release layout, :mod:`annot.io.export_smplx`) with per-part
          quality, ``skipped.json`` (counted reasons) and ``overlays/<aid>.png``.

The final ``pseudo_gt_smplx.json``, ``skipped.json`` and ``report.json`` are copied to the top of
``export.out_dir``.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from annot.annotator.stages import provenance, run_stage
from annot.body_models.wholebody import (
    FACE_STATIC_LANDMARKS,
    Hand21,
    SmplxParams,
    face_landmarks,
    hand_frame_alignment,
    load_mano,
    load_smplx,
    smplx_forward,
)
from annot.config import to_container
from annot.fitting.kp2d import mean_error_px
from annot.geometry.cameras import perspective_project
from annot.io.atomic import atomic_write_bytes, atomic_write_json
from annot.io.export import read_pseudo_gt
from annot.io.export_smplx import SMPLX_FIELDS, SmplxPseudoGT, read_smplx_pseudo_gt, write_smplx_pseudo_gt
from annot.keypoints import COCO_WHOLEBODY133_PARTS, get_convention
from annot.wholebody.hand_annotator import check_hand_method
from annot.wholebody.integrate import (
    ARM_RULES,
    WRIST,
    FacePart,
    HandPart,
    Integrated,
    integrate,
    smpl_body_to_smplx,
    smplx_global_rotmats,
)

log = logging.getLogger(__name__)
SIDES = ("left", "right")
SKIP_NO_BODY = "no body pseudo-GT (the body annotator skipped the person)"
PART_TOO_FEW = "too few annotated points ({n} < {k})"


# --------------------------------------------------------------------------- helpers
def body_keypoint_rows() -> tuple[list[int], list[int]]:
    """The COCO body keypoints that are SMPL-X kinematic joints (shoulders, elbows, wrists, hips, knees,
    ankles): (indices into ``coco_wholebody133``, indices into ``smplx55``)."""
    smplx_names = get_convention("smplx55").joint_names
    wb_names = get_convention("coco_wholebody133").joint_names
    pairs = [(i, smplx_names.index(n)) for i, n in enumerate(wb_names[:17]) if n in smplx_names]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _people(cfg: DictConfig, body_pgt: Path) -> tuple[Any, list[Any], dict[str, str]]:
    """The COCO-WholeBody set, its kept people that have a body pseudo-GT, and ``{aid: reason}`` of the rest."""
    from annot.data.coco_wholebody import COCOWholeBody

    data = COCOWholeBody(cfg.data.root, cfg.data.ann_file, cfg.data.img_dir)
    body = read_pseudo_gt(body_pgt)
    skipped = dict(data.skipped)
    people = []
    for rec in data.records:
        if rec.sample_id in body:
            people.append(rec)
        else:
            skipped[rec.sample_id] = SKIP_NO_BODY
    return data, people, skipped


# --------------------------------------------------------------------------- stage (parts)
def _stage_parts(cfg: DictConfig, folder: Path, body_cfg: DictConfig, body_pgt: Path,
                 hand_predictions: Path | None = None) -> list[str]:
    from annot.body_models import BodyModel
    from annot.fitting.face import FaceFitConfig, fit_face
    from annot.fitting.hands import HandFitConfig, fit_hands
    from annot.wholebody.hand_annotator import anchored_prediction, check_hand_method, read_predictions

    method = check_hand_method(cfg.parts.hand_method)
    if method != "fit" and hand_predictions is None:
        raise ValueError(f"parts.hand_method={method!r} needs the hands stage's predictions (stage_hands/)")

    data, people, skipped = _people(cfg, body_pgt)
    if not people:
        raise ValueError(f"{Path(cfg.data.root) / cfg.data.ann_file}: no person with a body pseudo-GT in {body_pgt}")
    entries = read_pseudo_gt(body_pgt)
    aids = [p.sample_id for p in people]
    pose = torch.tensor(np.stack([entries[a].pose_rotvec for a in aids]), dtype=torch.float32)
    betas = torch.tensor(np.stack([entries[a].betas for a in aids]), dtype=torch.float32)
    transl = torch.tensor(np.stack([entries[a].transl_m for a in aids]), dtype=torch.float32)
    focal = torch.tensor(np.stack([entries[a].focal_px for a in aids]), dtype=torch.float32)
    princpt = torch.tensor(np.stack([entries[a].princpt_px for a in aids]), dtype=torch.float32)
    b = body_cfg.body_model
    smpl = BodyModel(b.model_type, b.gender, b.path, num_betas=betas.shape[1])
    with torch.no_grad():
        joints22 = smpl(pose[:, 0], pose[:, 1:].reshape(len(aids), -1), betas, transl).joints_smpl24_m[:, :22]
    layer = load_smplx(cfg.models.smplx)
    base = smpl_body_to_smplx(layer, pose, joints22)
    part_skipped: dict[str, str] = {}
    saved: dict[str, Any] = {"aids": aids, "base": {k: getattr(base, k) for k in SMPLX_FIELDS},
                             "focal": focal, "princpt": princpt}

    def rows_of(part: str, points: list[int], minimum: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        rows, kps, masks = [], [], []
        for i, aid in enumerate(aids):
            box = data.parts[aid].get(part)
            if box is None:
                continue
            vis = box.kps_xyv[:, 2] > 0
            if int(vis[points].sum()) < minimum:
                part_skipped[f"{aid}/{part}"] = PART_TOO_FEW.format(n=int(vis[points].sum()), k=minimum)
                continue
            rows.append(i)
            kps.append(torch.tensor(box.kps_xyv[:, :2], dtype=torch.float32))
            masks.append(torch.tensor(vis))
        num = len(COCO_WHOLEBODY133_PARTS[part])
        empty = (torch.zeros(0, num, 2), torch.zeros(0, num, dtype=torch.bool))
        return rows, *((torch.stack(kps), torch.stack(masks)) if rows else empty)

    rows, kp, mask = rows_of("face", list(FACE_STATIC_LANDMARKS), cfg.parts.min_face_points)
    face = {"rows": rows, "kp": kp, "mask": mask}
    if rows:
        fit = fit_face(layer, base.index(rows), kp, mask, focal[rows], princpt[rows],
                       FaceFitConfig(**to_container(cfg.face)))
        face.update(jaw_pose=fit.params.jaw_pose, expr=fit.params.expr, err=fit.kp2d_err_px, init_err=fit.init_err_px,
                    neck_head=fit.params.body_pose[:, [11, 14]])
        log.info("face fit: %d faces, 2D error %.1f -> %.1f px (mean)", len(rows), float(fit.init_err_px.mean()),
                 float(fit.kp2d_err_px.mean()))
    saved["face"] = face
    with torch.no_grad():
        joints55, _ = smplx_forward(layer, base)
    glob = smplx_global_rotmats(layer, base)
    for side in SIDES:
        mano = load_mano(cfg.models[f"mano_{side}"], is_rhand=side == "right")
        align = hand_frame_alignment(mano, layer, side)
        rows, kp, mask = rows_of(f"{side}hand", list(range(21)), cfg.parts.min_hand_points)
        hand = {"rows": rows, "kp": kp, "mask": mask, "align": align, "mano_mean": mano.hand_mean.detach().clone()}
        if rows:
            wrist = joints55[rows, WRIST[side]]
            if method == "fit":
                init = glob[rows, WRIST[side]] @ align  # the body's hand orientation in the MANO frame
                fit = fit_hands(mano, kp, mask, focal[rows], princpt[rows], wrist, init,
                                HandFitConfig(**to_container(cfg.hand)))
            else:
                rot, pose_pred, betas_pred = read_predictions(hand_predictions, [f"{aids[i]}_{side}" for i in rows])
                if method == "annotator":
                    fit = anchored_prediction(mano, kp, mask, focal[rows], princpt[rows], wrist, rot, pose_pred,
                                              betas_pred)
                else:
                    fit = fit_hands(mano, kp, mask, focal[rows], princpt[rows], wrist, rot,
                                    HandFitConfig(**to_container(cfg.hand)), init_hand_pose=pose_pred,
                                    init_betas=betas_pred)
            hand.update(global_rotmat=fit.global_rotmat, hand_pose=fit.hand_pose, betas=fit.betas,
                        transl=fit.transl_m, err=fit.kp2d_err_px, init_err=fit.init_err_px)
            log.info("%s hand %s: %d hands, 2D error %.1f -> %.1f px (mean)", side, method, len(rows),
                     float(fit.init_err_px.mean()), float(fit.kp2d_err_px.mean()))
        saved[f"{side}hand"] = hand
    saved.update(skipped=skipped, part_skipped=part_skipped, part_problems=dict(data.part_problems),
                 image_path={r.sample_id: str(r.image_path) for r in people},
                 body_kp={r.sample_id: torch.tensor(r.kp2d_img_px[:17], dtype=torch.float32) for r in people},
                 body_mask={r.sample_id: torch.tensor(r.kp2d_valid[:17]) for r in people},
                 body_kp2d_err_px={a: entries[a].quality.get("kp2d_err_px", float("nan")) for a in aids})
    buf = __import__("io").BytesIO()
    torch.save(saved, buf)
    atomic_write_bytes(folder / "parts.pt", buf.getvalue())
    return ["parts.pt"]


# --------------------------------------------------------------------------- stage (hands)
def _stage_hands(cfg: DictConfig, folder: Path, body_pgt: Path) -> list[str]:
    from annot.wholebody.hand_annotator import stage_hands

    data, people, _ = _people(cfg, body_pgt)
    return stage_hands(cfg, folder, data, people, read_pseudo_gt(body_pgt))


# --------------------------------------------------------------------------- stage (export)
def _integrated(cfg: DictConfig, layer: Any, parts: dict[str, Any]) -> Integrated:
    base = SmplxParams(**parts["base"], )
    f = parts["face"]
    face = None
    if f["rows"]:
        face = FacePart(torch.tensor(f["rows"]), f["jaw_pose"], f["expr"],
                        f["neck_head"] if cfg.integration.face_head_rotation else None)
    hands = {}
    for side in SIDES:
        h = parts[f"{side}hand"]
        if h["rows"]:
            hands[side] = (HandPart(torch.tensor(h["rows"]), h["global_rotmat"], h["hand_pose"]), h["mano_mean"],
                           h["align"])
    return integrate(layer, base, hands, face, arm_rule=cfg.integration.arm_rule)


def part_errors(layer: Any, params: SmplxParams, parts: dict[str, Any]) -> dict[str, torch.Tensor]:
    """(B,) 2D errors (pixels, nan where the part was not fitted) of the integrated SMPL-X: ``body`` (the 12 COCO
    keypoints that are SMPL-X joints), ``face`` (51 landmarks), ``lhand`` / ``rhand`` (21 keypoints)."""
    focal, princpt = parts["focal"], parts["princpt"]
    with torch.no_grad():
        joints, verts = smplx_forward(layer, params)
    batch = len(parts["aids"])
    wb_rows, sx_rows = body_keypoint_rows()
    kp = torch.stack([parts["body_kp"][a] for a in parts["aids"]])[:, wb_rows]
    mask = torch.stack([parts["body_mask"][a] for a in parts["aids"]])[:, wb_rows]
    out = {"body": mean_error_px(perspective_project(joints[:, sx_rows], focal, princpt), kp, mask)}
    f = parts["face"]
    out["face"] = torch.full((batch,), float("nan"))
    if f["rows"]:
        rows = f["rows"]
        lm = perspective_project(face_landmarks(layer, verts[rows]), focal[rows], princpt[rows])
        out["face"][rows] = mean_error_px(lm, f["kp"][:, list(FACE_STATIC_LANDMARKS)],
                                      f["mask"][:, list(FACE_STATIC_LANDMARKS)])
    for side in SIDES:
        h, key = parts[f"{side}hand"], f"{side[0]}hand"
        out[key] = torch.full((batch,), float("nan"))
        if h["rows"]:
            rows = h["rows"]
            kps = Hand21(layer, side)(joints[rows], verts[rows])
            out[key][rows] = mean_error_px(perspective_project(kps, focal[rows], princpt[rows]), h["kp"], h["mask"])
    return out


def _stage_export(cfg: DictConfig, folder: Path, parts_file: Path) -> list[str]:
    parts = torch.load(parts_file, map_location="cpu", weights_only=False)
    layer = load_smplx(cfg.models.smplx)
    integrated = _integrated(cfg, layer, parts)
    params = integrated.params
    errors = part_errors(layer, params, parts)
    aids = parts["aids"]
    fitted = {side: dict(zip(parts[f"{side}hand"]["rows"], parts[f"{side}hand"].get("err", []))) for side in SIDES}
    face_rows = dict(zip(parts["face"]["rows"], parts["face"].get("err", [])))
    entries = {}
    for i, aid in enumerate(aids):
        valid = {"lhand_valid": i in fitted["left"], "rhand_valid": i in fitted["right"], "face_valid": i in face_rows}
        quality = {"body_kp2d_err_px": float(errors["body"][i]),
                   "body_smpl_kp2d_err_px": float(parts["body_kp2d_err_px"][aid])}
        for key, flag in (("lhand", "lhand_valid"), ("rhand", "rhand_valid"), ("face", "face_valid")):
            quality[f"{key}_valid"] = float(valid[flag])
            if valid[flag]:
                quality[f"{key}_kp2d_err_px"] = float(errors[key][i])
        for side, key in (("left", "lhand"), ("right", "rhand")):
            if i in fitted[side]:
                quality[f"{key}_fit_kp2d_err_px"] = float(fitted[side][i])
                quality[f"{key}_rotation_used"] = float(integrated.hand_rotation_used[side][i])
        if i in face_rows:
            quality["face_fit_kp2d_err_px"] = float(face_rows[i])
        values = {k: getattr(params, k)[i].reshape(-1).numpy() for k in SMPLX_FIELDS}
        entries[aid] = SmplxPseudoGT(values, valid, parts["focal"][i].numpy(), parts["princpt"][i].numpy(), quality)
    write_smplx_pseudo_gt(folder / "pseudo_gt_smplx.json", entries)
    skipped = {"people": parts["skipped"], "parts": {**parts["part_problems"], **parts["part_skipped"]}}
    skipped["counts"] = {"people": dict(Counter(skipped["people"].values())),
                         "parts": dict(Counter(v.split(" (")[0] for v in skipped["parts"].values()))}
    atomic_write_json(folder / "skipped.json", skipped)
    outputs = ["pseudo_gt_smplx.json", "skipped.json"]
    if cfg.export.overlays:
        from annot.wholebody.overlays import write_wholebody_overlays

        write_wholebody_overlays(folder / "overlays", layer, read_smplx_pseudo_gt(folder / "pseudo_gt_smplx.json"),
                                 parts)
        outputs.append("overlays")
    return outputs


def summarise(entries: dict[str, SmplxPseudoGT], skipped: dict[str, Any]) -> dict[str, Any]:
    """Counts and mean per-part 2D errors (pixels) of the exported pseudo-GTs."""
    def mean(key: str) -> float | None:
        vals = [e.quality[key] for e in entries.values() if key in e.quality and np.isfinite(e.quality[key])]
        return float(np.mean(vals)) if vals else None

    keys = ("body_kp2d_err_px", "body_smpl_kp2d_err_px", "face_kp2d_err_px", "face_fit_kp2d_err_px",
            "lhand_kp2d_err_px", "lhand_fit_kp2d_err_px", "rhand_kp2d_err_px", "rhand_fit_kp2d_err_px")
    return {"counts": {"annotated": len(entries), "skipped_people": len(skipped["people"]),
                       "face_valid": sum(e.valid["face_valid"] for e in entries.values()),
                       "lhand_valid": sum(e.valid["lhand_valid"] for e in entries.values()),
                       "rhand_valid": sum(e.valid["rhand_valid"] for e in entries.values()),
                       "skip_reasons": skipped["counts"]},
            "kp2d_err_px_mean": {k: mean(k) for k in keys}}


# --------------------------------------------------------------------------- the command
def run_annotate_wholebody(cfg: DictConfig) -> dict[str, Any]:
    """Run the whole-body annotation (module docstring; complete stages are skipped) and write its outputs.

    Args:
        cfg: a :class:`annot.wholebody.config.WholeBodyConfig` structured config.

    Returns:
        The report written to ``report.json``.

    Raises:
        FileNotFoundError: a config, annotation, image or model file is missing (the message names it).
        ValueError: bad annotations or models, or no person to annotate.
    """
    from annot.annotator.config import AnnotateConfig
    from annot.annotator.pipeline import run_annotate
    from annot.config import load_config

    t0 = time.perf_counter()
    out = Path(cfg.export.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key in ("smplx", "mano_right", "mano_left"):
        if not Path(cfg.models[key]).is_file():
            raise FileNotFoundError(f"models.{key}: {cfg.models[key]} does not exist (the free stand-ins are baked "
                                    f"into body_models/free/; or point models.{key} at a licensed file)")
    if cfg.integration.arm_rule not in ARM_RULES:
        raise ValueError(f"integration.arm_rule: {cfg.integration.arm_rule!r} is not one of {ARM_RULES}")
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    body_cfg = load_config(AnnotateConfig, cfg.body.config, list(cfg.body.overrides))
    body_report = run_annotate(body_cfg)
    body_pgt = Path(body_cfg.export.out_dir) / "pseudo_gt.json"
    common = {"seed": cfg.seed, "body_model": to_container(body_cfg.body_model)}
    model_inputs = {k: cfg.models[k] for k in ("smplx", "mano_right", "mano_left")}
    prov_p = provenance({**common, "data": to_container(cfg.data), "parts": to_container(cfg.parts),
                         "face": to_container(cfg.face), "hand": to_container(cfg.hand)},
                        {"body_pseudo_gt": body_pgt, "ann": Path(cfg.data.root) / cfg.data.ann_file, **model_inputs})
    parts_dir, export_dir = out / "stage_parts", out / "stage_export"
    hand_predictions = None
    if check_hand_method(cfg.parts.hand_method) != "fit":
        from annot.wholebody.hand_annotator import PREDICTIONS

        hands_dir = out / "stage_hands"
        prov_h = provenance({**common, "data": to_container(cfg.data), "min_hand_points": cfg.parts.min_hand_points,
                             "hand_annotator": to_container(cfg.hand_annotator)},
                            {"body_pseudo_gt": body_pgt, "ann": Path(cfg.data.root) / cfg.data.ann_file,
                             "mano_right": cfg.models.mano_right})
        run_stage("hands", hands_dir, prov_h, lambda d: _stage_hands(cfg, d, body_pgt), log.info, seed=cfg.seed)
        hand_predictions = hands_dir / PREDICTIONS
        prov_p = provenance({**common, "data": to_container(cfg.data), "parts": to_container(cfg.parts),
                             "face": to_container(cfg.face), "hand": to_container(cfg.hand)},
                            {"body_pseudo_gt": body_pgt, "ann": Path(cfg.data.root) / cfg.data.ann_file,
                             "hand_predictions": hand_predictions, **model_inputs})
    run_stage("parts", parts_dir, prov_p, lambda d: _stage_parts(cfg, d, body_cfg, body_pgt, hand_predictions),
              log.info, seed=cfg.seed)
    prov_e = provenance({**common, "integration": to_container(cfg.integration), "export": to_container(cfg.export)},
                        {"parts": parts_dir / "parts.pt", "smplx": cfg.models.smplx})
    run_stage("export", export_dir, prov_e, lambda d: _stage_export(cfg, d, parts_dir / "parts.pt"), log.info,
              seed=cfg.seed)
    entries = read_smplx_pseudo_gt(export_dir / "pseudo_gt_smplx.json")
    skipped = __import__("json").loads((export_dir / "skipped.json").read_text())
    write_smplx_pseudo_gt(out / "pseudo_gt_smplx.json", entries)
    atomic_write_json(out / "skipped.json", skipped)
    report = {**summarise(entries, skipped), "body_report": str(Path(body_cfg.export.out_dir) / "report.json"),
              "body_kp2d_err_px_mean": (body_report.get("kp2d_err_px") or {}).get("mean"),
              "wall_time_s": time.perf_counter() - t0, "outputs": str(out)}
    atomic_write_json(out / "report.json", report)
    return report


__all__ = ["body_keypoint_rows", "part_errors", "run_annotate_wholebody", "summarise"]
