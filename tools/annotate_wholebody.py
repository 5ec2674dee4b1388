"""Whole-body SMPL-X pseudo-GTs: body annotator + face and hand fits + integration (``make annotate-wholebody``).

Usage::

    python tools/annotate_wholebody.py --config configs/annotate/wholebody_free.yaml [key=value ...]

Runs ``make annotate-body``'s Algorithm 1 first (its complete stages are skipped), then the face and hand fits
and the integration into SMPL-X (``annot.wholebody.pipeline``); complete stages are skipped on a second
invocation. Outputs in ``export.out_dir``: ``pseudo_gt_smplx.json`` (NeuralAnnot whole-body release layout),
``skipped.json``, ``report.json``, ``stage_export/overlays/<aid>.png``.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import json
import logging
import sys

from annot.app.cli import run_tool
from annot.config import ConfigError, load_config
from annot.wholebody.config import WholeBodyConfig
from annot.wholebody.pipeline import run_annotate_wholebody


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/annotate/wholebody_free.yaml", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. face.iters_full=100")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("annot").setLevel(logging.INFO)
    try:
        cfg = load_config(WholeBodyConfig, args.config, list(args.overrides))
        report = run_annotate_wholebody(cfg)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts, errs = report["counts"], report["kp2d_err_px_mean"]
    print(f"annotated {counts['annotated']} people (face {counts['face_valid']}, left hand {counts['lhand_valid']}, "
          f"right hand {counts['rhand_valid']}); skipped {json.dumps(counts['skip_reasons'])}")
    print("mean 2D error (px) of the SMPL-X pseudo-GTs: " + ", ".join(
        f"{k.replace('_kp2d_err_px', '')} {v:.1f}" for k, v in errs.items() if v is not None))
    print(f"wall time {report['wall_time_s']:.0f} s; outputs in {cfg.export.out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
