#!/usr/bin/env python
"""Build (or resume) a pre-cropped person cache for a registered dataset (see ``annot/data/cache.py``).

Example::

    python tools/build_person_cache.py --dataset coco --root ../shared/data/coco_samples \\
        --ann-file test_coco.json --out cache/coco_samples --num-workers 2

Dataset arguments other than ``root`` / ``ann_file`` / ``img_dir`` / ``input_hw`` / ``bbox_scale`` go as
``--kw key=value`` (value parsed as JSON when it can be, else a string). Training then attaches the
cache with ``dataset.attach_cache(PersonCache(out))``; the dataset must be built with the same
arguments (a different record list raises a "stale person cache" ValueError).
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from annot.app.cli import run_tool
from annot.data import build_dataset
from annot.data.cache import build_person_cache


def _parse_kw(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--kw expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="coco", help="registry name (annot.data.DATASETS)")
    parser.add_argument("--root", required=True, help="dataset root folder (config key data.root)")
    parser.add_argument("--ann-file", default=None, help="annotation file (COCO: json, relative to --root)")
    parser.add_argument("--img-dir", default=None, help="image folder relative to --root")
    parser.add_argument("--input-hw", type=int, nargs=2, default=[256, 192], metavar=("H", "W"))
    parser.add_argument("--bbox-scale", type=float, default=1.25)
    parser.add_argument("--kw", action="append", default=[], help="extra dataset argument key=value")
    parser.add_argument("--out", required=True, type=Path, help="cache folder")
    parser.add_argument("--margin", type=float, default=1.5, help="box enlargement beyond the processed box")
    parser.add_argument("--patch-hw", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="patch size in px (default: input_hw * margin, the crop's pixel density)")
    parser.add_argument("--shard-size", type=int, default=1024)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a folder holding a different cache")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kwargs: dict[str, Any] = {"root": args.root, "input_hw": tuple(args.input_hw),
                              "bbox_scale": args.bbox_scale}
    if args.ann_file is not None:
        kwargs["ann_file"] = args.ann_file
    if args.img_dir is not None:
        kwargs["img_dir"] = args.img_dir
    kwargs.update(_parse_kw(args.kw))
    try:
        dataset = build_dataset(args.dataset, **kwargs)
        report = build_person_cache(dataset, args.out, margin=args.margin,
                                    patch_hw=None if args.patch_hw is None else tuple(args.patch_hw),
                                    shard_size=args.shard_size, num_workers=args.num_workers,
                                    overwrite=args.overwrite, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{report.out_dir}: {report.num_samples} samples, {len(report.built)} shards built, "
          f"{len(report.reused)} reused")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
