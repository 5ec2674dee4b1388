"""Accuracy of the photos detector (``annot.data.photos``) against the GT keypoints of the COCO samples.

Usage::

    python tools/bench_detector.py [--coco ../shared/data/coco_samples] [--out outputs/bench-detector] [key=value ...]

Runs the detector twice on every image of ``test_coco.json``: seeded by faces (what ``make annotate-photos``
does) and seeded by the GT person boxes (``--boxes``). Scores each with pycocotools' ``COCOeval`` (``iouType=
"keypoints"``, OKS with COCO's per-keypoint sigmas: AP, AP50, AP75, AR) and with PCK: for every GT person with
keypoints, the detection of highest OKS; a GT-labelled keypoint is correct when the detection labels it and it lies
within ``alpha`` x the GT box's longer side (alpha 0.1 and 0.2); an unmatched person counts all its keypoints wrong.
Writes ``results.json`` and ``results.md`` to ``--out`` and prints the table.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from annot.app.cli import run_tool
from annot.config import load_config
from annot.data.photos import DETECTOR_NAME, BlazePoseDetector, DetectConfig, coco_annotation
from annot.io.atomic import atomic_write_bytes, atomic_write_json


def evaluate(gt_path: Path, dets: list[dict]) -> dict[str, float]:
    """COCOeval keypoint AP / AR (OKS) and PCK@0.1 / 0.2 of the GT box's longer side. ``dets``: COCO results."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        res = gt.loadRes(dets) if dets else None
    out: dict[str, float] = {}
    if res is not None:
        ev = COCOeval(gt, res, "keypoints")
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        for name, value in zip(("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"), ev.stats):
            out[name] = float(value)
    correct = {0.1: 0, 0.2: 0}
    total = 0
    for img_id in gt.getImgIds():
        gts = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=img_id, iscrowd=False)) if a.get("num_keypoints", 0) > 0]
        mine = [d for d in dets if d["image_id"] == img_id]
        for g in gts:
            ref = np.asarray(g["keypoints"], float).reshape(17, 3)
            labelled = ref[:, 2] > 0
            total += int(labelled.sum())
            if not mine:
                continue
            scale = max(g["bbox"][2:])
            best = max(mine, key=lambda d, g=g: _oks(np.asarray(d["keypoints"]).reshape(17, 3), g))
            pred = np.asarray(best["keypoints"], float).reshape(17, 3)
            dist = np.linalg.norm(pred[:, :2] - ref[:, :2], axis=1) / scale
            for alpha in correct:
                correct[alpha] += int((labelled & (pred[:, 2] > 0) & (dist < alpha)).sum())
    for alpha, n in correct.items():
        out[f"PCK@{alpha}"] = n / max(1, total)
    out["gt_keypoints"] = total
    return out


_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0


def _oks(pred: np.ndarray, gt: dict) -> float:
    """COCO's object keypoint similarity of one prediction (17, 3) with one GT annotation (its area, sigmas)."""
    ref = np.asarray(gt["keypoints"], float).reshape(17, 3)
    vis = ref[:, 2] > 0
    if not vis.any():
        return 0.0
    d2 = ((pred[:, :2] - ref[:, :2]) ** 2).sum(1)
    e = d2 / ((2 * _SIGMAS) ** 2 * (gt["area"] + np.spacing(1)) * 2)
    return float(np.exp(-e[vis]).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coco", default="../shared/data/coco_samples")
    parser.add_argument("--ann", default="test_coco.json")
    parser.add_argument("--out", default="outputs/bench-detector")
    parser.add_argument("--config", default="configs/detect/blazepose.yaml")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    import cv2
    from tqdm import tqdm

    cfg = load_config(DetectConfig, args.config, list(args.overrides))
    root, gt_path = Path(args.coco), Path(args.coco) / args.ann
    data = json.loads(gt_path.read_text())
    rows: dict[str, dict] = {}
    with BlazePoseDetector(cfg) as detector:
        for mode in ("faces", "gt boxes"):
            dets, t0, people = [], time.perf_counter(), 0
            for img in tqdm(data["images"], desc=f"detect ({mode})"):
                rgb = cv2.cvtColor(cv2.imread(str(root / img["file_name"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                boxes = None
                if mode == "gt boxes":
                    boxes = np.array([a["bbox"] for a in data["annotations"] if a["image_id"] == img["id"]
                                      and not a.get("iscrowd", 0)], float).reshape(-1, 4)
                found, _ = detector.detect(rgb, boxes)
                people += len(found)
                for k, det in enumerate(found):
                    ann = coco_annotation(det, img["id"], k, cfg.kp_min_conf)
                    dets.append({"image_id": img["id"], "category_id": 1, "keypoints": ann["keypoints"],
                                 "score": ann["score"]})
            seconds = time.perf_counter() - t0
            rows[mode] = {**evaluate(gt_path, dets), "people_found": people, "seconds": seconds}
    gt_people = sum(1 for a in data["annotations"] if a.get("num_keypoints", 0) > 0)
    lines = [f"Detector: {DETECTOR_NAME}, on {gt_path} ({len(data['images'])} images, {gt_people} people with GT "
             f"keypoints); {platform.machine()}, {platform.python_version()}", "",
             "| seeds | people found | AP (OKS) | AP50 | AP75 | AR | PCK@0.1 | PCK@0.2 | time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for mode, r in rows.items():
        ap = [r.get(k, float("nan")) for k in ("AP", "AP50", "AP75", "AR")]
        lines.append(f"| {mode} | {r['people_found']} | " + " | ".join(f"{v:.3f}" for v in ap)
                     + f" | {r['PCK@0.1']:.3f} | {r['PCK@0.2']:.3f} | {r['seconds']:.1f} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    atomic_write_json(out / "results.json", {"detector": DETECTOR_NAME, "gt": str(gt_path), "rows": rows})
    atomic_write_bytes(out / "results.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
