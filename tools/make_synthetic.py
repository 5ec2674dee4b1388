"""Render the free synthetic benchmark (annot.benchmarks.synthetic) into the standard dataset layouts.

Usage::

    python tools/make_synthetic.py [--config configs/data/synthetic.yaml] [--out outputs/synthetic]
        [--seed 0] [--mocap 24] [--itw 24] [--test 24] [--image-hw 480 640] [--photos DIR]
        [--poses outputs/annotate-body/stage_a_cmu/pseudo_gt.npz] [--pose-source cmu_fit|npz|random]
        [--cmu-root ../shared/data/mocap_cmu]
        [--platform osmesa|egl]

Flags override the yaml. ``--platform egl`` renders on a GPU machine (sets ``PYOPENGL_PLATFORM`` before
OpenGL is imported); the default is OSMesa (CPU). Prints each split's loader root.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import os
import sys
import time
from pathlib import Path

import yaml
from tqdm import tqdm

from annot.app.cli import run_tool


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/data/synthetic.yaml", help="generator values (yaml)")
    parser.add_argument("--out", default="outputs/synthetic", help="output folder")
    parser.add_argument("--seed", type=int, default=None)
    for split in ("mocap", "itw", "test"):
        parser.add_argument(f"--{split}", type=int, default=None,
                            help=f"people in the {split} split (one an image, except the realistic itw split)")
    parser.add_argument("--image-hw", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--photos", default=None, help="background photo folder ('none': procedural)")
    parser.add_argument("--poses", default=None, help="MoCap-mode pseudo_gt.npz (with --pose-source npz)")
    parser.add_argument("--pose-source", choices=("cmu_fit", "npz", "random"), default=None,
                        help="cmu_fit: retarget the CMU clips with SMPLify3D (default of the yaml)")
    parser.add_argument("--cmu-root", default=None, help="CMU BVH folder (pose_source cmu_fit)")
    parser.add_argument("--platform", choices=("osmesa", "egl"), default=None, help="PYOPENGL_PLATFORM")
    parser.add_argument("--clean-2d", action="store_true",
                        help="ITW split as first made: one whole person an image, exact keypoints (no noise, "
                             "no occlusion flags); default: the realistic split")
    return parser


def _values(args: argparse.Namespace) -> dict:
    path = Path(args.config)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config (flag --config)")
    values = yaml.safe_load(path.read_text()) or {}
    sizes = dict(values.get("sizes", {}))
    sizes.update({s: getattr(args, s) for s in ("mocap", "itw", "test") if getattr(args, s) is not None})
    values["sizes"] = sizes
    for key, flag in (("seed", "seed"), ("image_hw", "image_hw"), ("poses_npz", "poses"),
                      ("pose_source", "pose_source"), ("cmu_root", "cmu_root")):
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    if args.clean_2d:
        values["clean_2d"] = True
    if args.photos is not None:
        values["photos_dir"] = None if args.photos.lower() == "none" else args.photos
    return values


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.platform:
        os.environ["PYOPENGL_PLATFORM"] = args.platform
    from annot.benchmarks.synthetic import config_from_dict, make_synthetic  # after PYOPENGL_PLATFORM

    bars: list[tqdm] = []

    def progress(split: str, total: int):
        bars.append(tqdm(total=total, desc=split, unit="img"))
        return bars[-1].update

    try:
        config = config_from_dict(_values(args))
        start = time.perf_counter()
        roots = make_synthetic(config, args.out, progress=progress)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        for bar in bars:
            bar.close()
    total = sum(config.sizes.get(s, 0) for s in roots)
    seconds = time.perf_counter() - start
    for split, root in roots.items():
        print(f"{split:6s} -> {root}")
    print(f"{total} images in {seconds:.1f} s ({seconds / max(total, 1):.3f} s per image)")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
