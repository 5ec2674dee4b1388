"""Detect people and their COCO-17 keypoints in a folder of photos -> a COCO-layout annotation file
(the first step of ``make annotate-photos``).

Usage::

    python tools/detect_people.py --images ../shared/data/photos --out outputs/annotate-photos/detections \
        [--boxes my_boxes.json] [--config configs/detect/blazepose.yaml] [key=value ...]

Writes to ``--out``: ``images/`` (copies, longest side at most ``max_side_px``), ``photos_coco.json`` (COCO
person keypoints; the ``data.root`` / ``data.ann_file`` of ``configs/annotate/photos_free.yaml``) and
``detect_skipped.json`` (every face or box whose person was not kept, with the reason). ``--boxes``: a COCO
json whose ``images[].file_name`` names photos of the folder and whose person annotations' ``bbox`` are used as
seeds instead of faces. See :mod:`annot.data.photos` for the method. Exit 2 on a bad folder or box file,
and when no person is found at all.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from annot.app.cli import run_tool
from annot.config import ConfigError, load_config
from annot.data.photos import (
    DETECTOR_NAME,
    BlazePoseDetector,
    DetectConfig,
    coco_annotation,
    coco_document,
    load_mediapipe,
)
from annot.io.atomic import atomic_write_bytes, atomic_write_json

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def user_boxes(path: Path) -> dict[str, np.ndarray]:
    """file_name (base name) -> (N, 4) person boxes ``x, y, w, h`` (pixels of the original photo).

    Raises:
        ValueError: not a COCO json, or a box that is not 4 finite numbers, naming the file and annotation id.
    """
    try:
        data = json.loads(path.read_text())
        names = {img["id"]: Path(img["file_name"]).name for img in data["images"]}
        anns = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a COCO json with images[].file_name and annotations[] ({err!r})") from None
    out: dict[str, list[np.ndarray]] = {}
    for ann in anns:
        box = np.asarray(ann.get("bbox", []), dtype=np.float64) if isinstance(ann.get("bbox"), list) else None
        if box is None or box.shape != (4,) or not np.isfinite(box).all() or (box[2:] <= 0).any():
            raise ValueError(f"{path}: annotation {ann.get('id')}: field bbox: expected [x, y, w, h] with w, h > 0, "
                             f"got {ann.get('bbox')!r}")
        if ann.get("image_id") not in names:
            raise ValueError(f"{path}: annotation {ann.get('id')}: field image_id: {ann.get('image_id')!r} is not "
                             "an image of the file")
        out.setdefault(names[ann["image_id"]], []).append(box)
    return {k: np.stack(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="folder of photos (jpg/png)")
    parser.add_argument("--out", required=True, help="output folder (images/, photos_coco.json, detect_skipped.json)")
    parser.add_argument("--boxes", default=None, help="optional COCO json of person boxes to use as seeds")
    parser.add_argument("--config", default="configs/detect/blazepose.yaml")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides of the detector config, e.g. max_side_px=1200")
    args = parser.parse_args(argv)
    import cv2
    from tqdm import tqdm

    try:
        cfg = load_config(DetectConfig, args.config, list(args.overrides))
        load_mediapipe()
    except (ConfigError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    folder, out = Path(args.images), Path(args.out)
    if not folder.is_dir():
        print(f"error: --images {folder}: not a folder", file=sys.stderr)
        return 2
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        print(f"error: --images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})", file=sys.stderr)
        return 2
    try:
        boxes = user_boxes(Path(args.boxes)) if args.boxes else None
    except ValueError as err:
        print(f"error: --boxes {err}", file=sys.stderr)
        return 2
    images, annotations, skipped = [], [], {}
    with BlazePoseDetector(cfg) as detector:
        for image_id, path in enumerate(tqdm(files, desc="detect people"), start=1):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                skipped[path.name] = [{"reason": "unreadable image"}]
                continue
            scale = min(1.0, cfg.max_side_px / max(bgr.shape[:2]))
            if scale < 1.0:
                bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            ok, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise RuntimeError(f"{path}: could not encode the image copy")
            name = f"images/{path.stem}.jpg"
            atomic_write_bytes(out / name, jpg.tobytes())
            seeds = None
            if boxes is not None:
                seeds = boxes.get(path.name, np.zeros((0, 4))) * scale
            dets, rejects = detector.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), seeds)
            images.append({"id": image_id, "file_name": name, "height": int(bgr.shape[0]),
                           "width": int(bgr.shape[1]), "source_file": str(path.resolve()), "scale": scale})
            for k, det in enumerate(dets):
                annotations.append(coco_annotation(det, image_id, image_id * 1000 + k, cfg.kp_min_conf))
            if rejects:
                skipped[path.name] = rejects
    info = {"description": f"people found by {DETECTOR_NAME} (tools/detect_people.py)",
            "seeds": "user boxes" if boxes is not None else "faces", "images_folder": str(folder.resolve())}
    atomic_write_json(out / "photos_coco.json", coco_document(images, annotations, info))
    atomic_write_json(out / "detect_skipped.json", skipped)
    counts = {"images": len(files), "people": len(annotations),
              "not_kept": sum(len(v) for v in skipped.values())}
    reasons: dict[str, int] = {}
    for rejects in skipped.values():
        for r in rejects:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    per_image = {Path(img["source_file"]).name: sum(a["image_id"] == img["id"] for a in annotations)
                 for img in images}
    print(f"detected {counts['people']} people in {counts['images']} images {json.dumps(per_image)}; "
          f"not kept {counts['not_kept']} {json.dumps(reasons)} -> {out / 'photos_coco.json'}")
    if not annotations:
        print(f"error: no person found in {folder}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
