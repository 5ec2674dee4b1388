"""The outputs of an annotation run besides the pseudo-GTs: ``report.json``, the 2D-error curve, the overlays,
and the run's W&B summary.

:func:`finalise` copies the last round's outputs to the top folder and writes ``report.json``, the curve and
(``export.review_html``) the review page ``review.html`` (:mod:`annot.annotator.review`);
:func:`write_overlays` renders every pseudo-GT over its image. :func:`report_metrics` reads ``report.json`` (and
``pseudo_gt.json``'s per-sample quality) into the scalars a sweep compares; :func:`log_report` writes them, the
overlay grid and the 2D-error curve into the run's W&B log (:mod:`annot.training.loggers`) and closes it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from annot.annotator.module import AnnotatorModule
from annot.annotator.stages import package_versions
from annot.config import to_container
from annot.io.atomic import atomic_write_bytes, atomic_write_json
from annot.io.export import PseudoGT, read_pseudo_gt, write_pseudo_gt
from annot.training.loggers import active_wandb_run, finish_wandb, wandb_init_kwargs, wandb_mode, wandb_run_in


def report_metrics(report: dict[str, Any], pseudo_gt_json: str | Path | None = None) -> dict[str, float]:
    """Flat scalars of a ``report.json`` (and of its ``pseudo_gt.json`` per-sample quality).

    Returns ``kp2d_err_px_mean`` (original-image pixels, mean over annotated people), ``annotated``,
    ``skipped``, ``eft_rejected`` (count), ``total_s`` (all stages, from their markers) and, from the
    pseudo-GT file when given:
    ``z_norm_mean`` (|z| of the VPoser code; ``nan`` without VPoser), ``max_abs_beta_mean`` and
    ``body_pose_angle_deg_mean`` (mean over people and the 21 body joints of the rotation angle |rotvec|,
    degrees: how far the pseudo-GT poses are from the rest pose).
    """
    counts = report.get("counts", {})
    mean = (report.get("kp2d_err_px") or {}).get("mean")
    metrics = {"kp2d_err_px_mean": float(mean) if mean is not None else float("nan"),
               "annotated": float(counts.get("annotated", 0)), "skipped": float(counts.get("skipped", 0)),
               "eft_rejected": float(counts.get("eft_rejected", 0)),
               "total_s": float(report.get("wall_time", {}).get("stages_total_s", float("nan")))}
    if pseudo_gt_json is not None and Path(pseudo_gt_json).is_file():
        entries = json.loads(Path(pseudo_gt_json).read_text()).values()
        quality = [e.get("quality", {}) for e in entries]

        def mean_of(values: list[float]) -> float:
            return float(np.mean(values)) if values else float("nan")

        metrics["z_norm_mean"] = mean_of([q["z_norm"] for q in quality if "z_norm" in q])
        metrics["max_abs_beta_mean"] = mean_of([q["max_abs_beta"] for q in quality if "max_abs_beta" in q])
        angles = [np.linalg.norm(np.asarray(e["smpl_param"]["pose"], float).reshape(-1, 3)[1:22], axis=1).mean()
                  for e in entries]
        metrics["body_pose_angle_deg_mean"] = float(np.degrees(mean_of(angles)))
    return metrics


def overlay_grid(folder: str | Path, max_images: int = 9, tile_height_px: int = 256,
                 columns: int = 3) -> np.ndarray | None:
    """uint8 (H, W, 3) RGB grid of the first ``max_images`` overlay PNGs of ``folder`` (sorted by name),
    each scaled to ``tile_height_px``; ``None`` when there is none."""
    import cv2

    from annot.render import tile_grid

    tiles = []
    for path in sorted(Path(folder).glob("*.png"))[:max_images]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        scale = tile_height_px / image.shape[0]
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), tile_height_px), interpolation=cv2.INTER_AREA)
        tiles.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return tile_grid(tiles, min(columns, len(tiles))) if tiles else None


def log_report(report: dict[str, Any], cfg: DictConfig, run_name: str | None = None) -> dict[str, float]:
    """Close the run's W&B log with its outputs (no-op unless ``cfg.trainer.logger == "wandb"``).

    Writes :func:`report_metrics` into the run summary (the sweep metric is ``kp2d_err_px_mean``), logs
    the overlay grid (``annotate/overlays``) and the 2D-error curve (``annotate/kp2d_error_curve``) and
    finishes the run. When every stage was already complete (no trainer ran), a run is created for this.
    Returns the metrics (also for ``csv`` / ``none``). Call on rank zero.
    """
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    out = Path(cfg.export.out_dir)
    metrics = report_metrics(report, out / "pseudo_gt.json")
    if cfg.trainer.logger != "wandb" or wandb_mode() == "disabled" or getattr(rank_zero_only, "rank", 0) != 0:
        return metrics
    import wandb

    active = active_wandb_run()
    if active is None or not wandb_run_in(active, out):
        finish_wandb()
        kwargs = wandb_init_kwargs(out, cfg, run_name or out.name, None)
        kwargs["dir"] = kwargs.pop("save_dir")
        active = wandb.init(**kwargs)
    active.summary.update({k: v for k, v in metrics.items() if np.isfinite(v)})
    images: dict[str, Any] = {}
    grid = overlay_grid(out / "overlays")
    if grid is not None:
        images["annotate/overlays"] = wandb.Image(grid, caption="pseudo-GT overlays (green: GT 2D, red: projected)")
    if (out / "kp2d_error_curve.png").is_file():
        images["annotate/kp2d_error_curve"] = wandb.Image(str(out / "kp2d_error_curve.png"))
    if images:
        active.log(images)
    finish_wandb()
    return metrics


# --------------------------------------------------------------------------- report.json, curve, overlays
def finalise(cfg: DictConfig, out: Path, c_dir: Path, b_dir: Path, result: dict[str, Any],
              total_s: float, final_dir: Path | None = None) -> dict[str, Any]:
    """Copy the last round's outputs (``final_dir``: the refinement's when it ran, else stage (c)'s) to the top
    folder and write report.json, the curve PNG and, with ``export.review_html`` (and overlays), review.html."""
    import shutil

    final_dir = final_dir or c_dir
    entries = read_pseudo_gt(final_dir / "pseudo_gt.json")
    write_pseudo_gt(out / "pseudo_gt.json", entries)
    skipped = json.loads((c_dir / "skipped.json").read_text())
    atomic_write_json(out / "skipped.json", skipped)
    overlays = final_dir / "overlays" if (final_dir / "overlays").is_dir() else c_dir / "overlays"
    if overlays.is_dir():
        shutil.copytree(overlays, out / "overlays", dirs_exist_ok=True)
    curve = json.loads((b_dir / "history.json").read_text())
    write_curve_png(out / "kp2d_error_curve.png", curve)
    errors = {aid: e.quality.get("kp2d_err_px", float("nan")) for aid, e in entries.items()}
    finite = [v for v in errors.values() if np.isfinite(v)]
    reasons: dict[str, int] = {}
    for reason in skipped.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    report = {
        "dataset": cfg.data.dataset,
        "counts": {"annotated": len(entries), "skipped": len(skipped), "skip_reasons": reasons,
                   "eft_rejected": int(sum(e.quality.get("eft_reject", 0.0) for e in entries.values())),
                   "image_check": result.get("image_check", {}),
                   **({"refine_kept": int(sum(e.quality.get("refine_kept", 0.0) for e in entries.values()))}
                      if cfg.algorithm.refine else {})},
        "kp2d_err_px": {"mean": float(np.mean(finite)) if finite else None, "per_sample": errors,
                        "units": "original-image pixels, mean over visible keypoints"},
        "kp2d_err_px_during_training": curve,
        "merge": result.get("merge"),
        "stages": {p.name: json.loads((p / "stage.json").read_text())
                   for p in sorted(out.iterdir()) if (p / "stage.json").is_file()},
        "wall_time": wall_times(out, total_s, c_dir, len(entries)),
        "config": to_container(cfg),
        "versions": package_versions(),
    }
    atomic_write_json(out / "report.json", report)
    if cfg.export.review_html and cfg.export.overlays:
        report["review_html"] = str(_review_page(cfg, out, c_dir, entries))
    return report


def _review_page(cfg: DictConfig, out: Path, c_dir: Path, entries: dict[str, PseudoGT]) -> Path:
    """``out/review.html`` (:mod:`annot.annotator.review`) from the top folder's pseudo-GTs and overlays."""
    from annot.annotator.review import write_review_page
    from annot.annotator.sharding import load_overlay_inputs
    from annot.body_models import BodyModel

    inputs = load_overlay_inputs(c_dir / "shards")
    images = {str(a): str(p) for a, p in zip(inputs["sample_id"], inputs["image_path"])}
    b = cfg.body_model
    body = BodyModel.from_config(model_type=b.model_type, gender=b.gender, path=b.path, num_betas=b.num_betas)
    return write_review_page(out, entries, body, images)


def wall_times(out: Path, total_s: float, c_dir: Path, num: int) -> dict[str, float]:
    """This invocation's wall time, and every stage's own wall time from its marker (also for stages a
    resumed run skipped), so the report always says what the annotation cost."""
    stages = {p.name: json.loads((p / "stage.json").read_text())["wall_time_s"]
              for p in sorted(out.iterdir()) if (p / "stage.json").is_file()}
    return {"this_invocation_s": total_s, "stages_total_s": sum(stages.values()),
            **{f"{name}_s": value for name, value in stages.items()},
            "predict_s_per_sample": stages.get(c_dir.name, float("nan")) / max(1, num)}


def write_curve_png(path: Path, curve: list[dict[str, float]]) -> None:
    """Plot the 2D reprojection error (original-image px) against the training step."""
    if not curve:
        return
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in curve]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, [row["train/kp2d_err_img_px"] for row in curve], marker="o", ms=3)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean 2D error (px, original image)")
    ax.set_title("Annotator f: 2D reprojection error during training")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_overlays(folder: Path, entries: dict[str, PseudoGT], preds: dict[str, Any], module: AnnotatorModule) -> None:
    """Render every pseudo-GT mesh over its original image, from the *exported* parameters.

    Green dots: GT keypoints; red dots: projected pseudo-GT joints. One PNG per annotation id.
    """
    import cv2
    from tqdm import tqdm

    from annot.render import MeshRenderer, draw_keypoints

    renderer = MeshRenderer()
    body = module.body_model.cpu()
    faces = body.faces
    for i, aid in enumerate(tqdm(preds["sample_id"], desc="overlays", leave=False)):
        entry = entries[str(aid)]
        image = cv2.cvtColor(cv2.imread(preds["image_path"][i], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        kw = entry.smplx_kwargs()
        with torch.no_grad():
            verts = body(kw["global_orient"], kw["body_pose"], kw["betas"], kw["transl"]).vertices_m[0].numpy()
        shown = renderer.overlay(image, verts, faces, entry.focal_px, entry.princpt_px)
        mask = preds["kp2d_mask"][i].numpy() > 0
        shown = draw_keypoints(shown, preds["kp2d_img_px"][i].numpy(), mask, color=(0, 255, 0))
        shown = draw_keypoints(shown, preds["kp2d_pred_img_px"][i].numpy(), mask, color=(255, 0, 0))
        ok, png = cv2.imencode(".png", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode overlay for annotation {aid}")
        atomic_write_bytes(folder / f"{aid}.png", png.tobytes())
