#!/usr/bin/env python
"""Data-loading throughput: samples/s of the raw path (full-frame JPEG decode + crop) vs the person cache.

Two cases:
  * ``coco_samples``: the real COCO samples (``../shared/data/coco_samples``, 12 people in 4 images of
    ~640x480), tiled over epochs (item ``i`` is record ``i % N`` at epoch ``i // N``, so the
    augmentation draws differ).
  * ``synthetic_1080p``: ``--synthetic-images`` JPEGs of 1920x1080 (smooth random texture plus fine
    noise, quality 85, ~0.5 MB like real HD frames) with 1-3 random person boxes each and a COCO
    json, written to a temporary folder, so the decode cost resembles H36M / MPII / video frames.

For each case the person cache is built (timed), then ``--samples`` items are loaded per setting:
``workers=0`` is one process (torch limited to 1 thread, as in a DataLoader worker) = samples/s per
worker; ``workers=N`` is a ``DataLoader`` with N worker processes (the clock starts after the first
batch, so worker start-up is excluded). Augmentation is on (Pose2Pose defaults: scale, rotation, flip,
colour), input 256x192, batch 32. The page cache is warm for both paths (JPEGs and shards are read
from RAM): this measures CPU cost, not disk bandwidth.

Usage::

    python tools/bench_data.py                      # table
    python tools/bench_data.py --workers 0 2 --samples 600 --json bench.json   # table + JSON file
    python tools/bench_data.py --json                                           # JSON on stdout
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from annot.app.cli import run_tool
from annot.data import COCOKeypoints
from annot.data.augment import AugmentConfig
from annot.data.cache import PersonCache, build_person_cache

REPO = Path(__file__).resolve().parents[1]
DEFAULT_COCO = REPO.parent / "shared" / "data" / "coco_samples"


class Tiled(Dataset):
    """``length`` items cycling over ``base``; item ``i`` is ``base[i % N]`` at epoch ``i // N``."""

    def __init__(self, base: COCOKeypoints, length: int) -> None:
        self.base, self.length = base, int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Any:
        self.base.epoch = i // len(self.base)
        return self.base[i % len(self.base)]


def write_synthetic_coco(folder: Path, num_images: int, img_hw: tuple[int, int] = (1080, 1920),
                         seed: int = 0) -> Path:
    """Write ``num_images`` HD JPEGs and ``synthetic.json`` (COCO person keypoints) into ``folder``.

    Each image: low-frequency colour texture (upsampled 1/16 noise), mid-frequency grey blobs and fine
    grey noise (sigma 2 levels), JPEG quality 85: ~0.5 MB, ~6 ms to decode on one core, close to the
    1080p figure of shared/docs/performance-anchors.md §2c (446 KB, 6.0 ms). 1-3 people per image with
    boxes 28-83% of the height (300-900 px at 1080), aspect 0.3-0.5, and 17 visible keypoints uniformly
    inside the box. Returns the json path.
    """
    rng = np.random.default_rng(seed)
    h, w = img_hw
    images, anns = [], []
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(num_images):
        low = cv2.resize(rng.uniform(0, 255, (h // 16, w // 16, 3)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_CUBIC)
        mid = cv2.resize(rng.normal(0, 20, (h // 4, w // 4)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_LINEAR)
        img = np.clip(low + (mid + rng.normal(0, 2, (h, w)))[..., None], 0, 255).astype(np.uint8)
        name = f"frame_{k:04d}.jpg"
        cv2.imwrite(str(folder / name), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        images.append({"id": k + 1, "file_name": name, "height": h, "width": w})
        for _ in range(int(rng.integers(1, 4))):
            bh = float(rng.uniform(0.28, 0.83)) * h  # 300-900 px at 1080
            bw = bh * float(rng.uniform(0.3, 0.5))
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            kps = np.stack([rng.uniform(x, x + bw, 17), rng.uniform(y, y + bh, 17), np.full(17, 2.0)], 1)
            anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": 1, "iscrowd": 0,
                         "bbox": [x, y, bw, bh], "area": bw * bh, "num_keypoints": 17,
                         "keypoints": kps.reshape(-1).round(2).tolist()})
    ann_path = folder / "synthetic.json"
    ann_path.write_text(json.dumps({"images": images, "annotations": anns,
                                    "categories": [{"id": 1, "name": "person"}]}))
    return ann_path


def decode_rate(paths: list[Path], repeats: int = 3) -> float:
    """Full-frame decodes per second (cv2.imread + BGR->RGB, one thread, files in page cache)."""
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    start = time.perf_counter()
    for _ in range(repeats):
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    rate = repeats * len(paths) / (time.perf_counter() - start)
    cv2.setNumThreads(cv_threads)
    return rate


def rate_in_process(data: Dataset, batch_size: int) -> float:
    """samples/s of one process (torch and OpenCV on 1 thread, like a DataLoader worker), collate included."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        default_collate([data[i] for i in range(min(batch_size, len(data)))])  # warm-up (lazy imports, maps)
        start = time.perf_counter()
        for lo in range(0, len(data), batch_size):
            default_collate([data[i] for i in range(lo, min(lo + batch_size, len(data)))])
        return len(data) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def rate_loader(data: Dataset, batch_size: int, workers: int) -> float:
    """samples/s through a DataLoader with ``workers`` processes, after its first batch."""
    loader = DataLoader(data, batch_size=batch_size, num_workers=workers, shuffle=False, prefetch_factor=4)
    it = iter(loader)
    next(it)
    start, count = time.perf_counter(), 0
    for batch in it:
        count += len(batch["sample_id"])
    return count / (time.perf_counter() - start)


def bench_case(name: str, ds: COCOKeypoints, cache_dir: Path,
               args: argparse.Namespace) -> list[dict[str, Any]]:
    """Build the cache and measure raw / cached throughput for every worker count."""
    t0 = time.perf_counter()
    report = build_person_cache(ds, cache_dir, num_workers=0, overwrite=True)
    build_s = time.perf_counter() - t0
    cache = PersonCache(cache_dir)
    shard_bytes = sum(f.stat().st_size for f in cache_dir.glob("shard_*.npy"))
    paths = sorted({r.image_path for r in ds.records})
    info = {"case": name, "records": len(ds), "images": len(paths), "image_hw": list(ds.records[0].img_hw),
            "jpeg_kb_mean": round(sum(p.stat().st_size for p in paths) / 1024 / len(paths), 1),
            "decode_img_per_s_1thread": round(decode_rate(paths), 1),
            "cache_build_samples_per_s_1proc": round(report.num_samples / build_s, 1),
            "cache_kb_per_sample": round(shard_bytes / 1024 / len(ds), 1), "patch_hw": list(cache.patch_hw)}
    tiled = Tiled(ds, args.samples)
    runs: dict[tuple[str, int], list[float]] = {(p, w): [] for p in ("raw", "cached") for w in args.workers}
    for _ in range(args.repeats):  # interleaved, so both paths see the same background load
        for path, workers in runs:
            ds.attach_cache(cache if path == "cached" else None)
            if workers == 0:
                rate = rate_in_process(tiled, args.batch_size)
            else:
                rate = rate_loader(tiled, args.batch_size, workers)
            runs[(path, workers)].append(rate)
            print(f"  {name} {path} workers={workers}: {rate:.1f} samples/s", file=sys.stderr)
    rows = []
    for (path, workers), rates in runs.items():
        total = statistics.median(rates)
        rows.append({**info, "path": path, "workers": workers, "samples_per_s": round(total, 1),
                     "samples_per_s_best": round(max(rates), 1),
                     "samples_per_s_per_worker": round(total / max(workers, 1), 1),
                     "runs": [round(r, 1) for r in rates]})
    ds.attach_cache(None)
    return rows


def machine() -> dict[str, Any]:
    """nproc, CPU model, load average, versions."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "loadavg_at_start": list(os.getloadavg()),
            "python": platform.python_version(), "torch": torch.__version__, "opencv": cv2.__version__,
            "numpy": np.__version__}


def print_table(rows: list[dict[str, Any]]) -> None:
    """Markdown tables; speed-up = cached / raw (medians) at the same worker count."""
    raw = {(r["case"], r["workers"]): r["samples_per_s"] for r in rows if r["path"] == "raw"}
    print("| case | path | workers | samples/s (median) | best run | median per worker | speed-up (median) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        speed = r["samples_per_s"] / raw[(r["case"], r["workers"])]
        print(f"| {r['case']} | {r['path']} | {r['workers']} | {r['samples_per_s']:.0f} | "
              f"{r['samples_per_s_best']:.0f} | "
              f"{r['samples_per_s_per_worker']:.0f} | {speed:.1f}x |")
    print()
    print("| case | records | first image | JPEG KB (mean) | decode img/s (1 thread) "
          "| cache build samples/s (1 proc) | patch | cache KB/sample |")
    print("|---|---|---|---|---|---|---|---|")
    seen = set()
    for r in rows:
        if r["case"] not in seen:
            seen.add(r["case"])
            print(f"| {r['case']} | {r['records']} | {r['image_hw'][1]}x{r['image_hw'][0]} | "
                  f"{r['jpeg_kb_mean']:.0f} | "
                  f"{r['decode_img_per_s_1thread']:.0f} | {r['cache_build_samples_per_s_1proc']:.0f} | "
                  f"{r['patch_hw'][1]}x{r['patch_hw'][0]} | {r['cache_kb_per_sample']:.0f} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coco-root", type=Path, default=DEFAULT_COCO,
                        help="folder of the real COCO samples")
    parser.add_argument("--ann-file", default="test_coco.json")
    parser.add_argument("--samples", type=int, default=600, help="items per measurement (tiled over epochs)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="0 = in-process (per worker)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved runs per setting; the median and the best are reported")
    parser.add_argument("--synthetic-images", type=int, default=64,
                        help="1920x1080 JPEGs (0 = skip the case)")
    parser.add_argument("--skip-coco", action="store_true")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="also write JSON (machine, command, rows) to PATH; "
                             "bare --json: to stdout instead of the tables")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    aug = AugmentConfig(enabled=True)
    rows: list[dict[str, Any]] = []
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        tmp_dir = Path(tmp)
        if not args.skip_coco:
            if not (args.coco_root / args.ann_file).is_file():
                raise FileNotFoundError(
                    f"COCO samples not found at {args.coco_root / args.ann_file} (--coco-root)")
            ds = COCOKeypoints(args.coco_root, args.ann_file, augment=aug)
            rows += bench_case("coco_samples", ds, tmp_dir / "cache_coco", args)
        if args.synthetic_images > 0:
            ann = write_synthetic_coco(tmp_dir / "synthetic", args.synthetic_images)
            ds = COCOKeypoints(ann.parent, ann.name, augment=aug)
            rows += bench_case("synthetic_1080p", ds, tmp_dir / "cache_synthetic", args)
    info["loadavg_at_end"] = list(os.getloadavg())
    result = {"machine": info, "command": " ".join(["python", *sys.argv]), "rows": rows}
    if args.json == "-":
        print(json.dumps(result, indent=1))
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"machine: nproc={info['nproc']}, {info['cpu_model']}, load {info['loadavg_at_start']} -> "
          f"{info['loadavg_at_end']}; torch {info['torch']}, opencv {info['opencv']}\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
