"""Train an estimator g (Pose2Pose or HMR) on a dataset mixture (``make train-estimator``).

Usage::

    python tools/train_estimator.py --config configs/estimator/pose2pose.yaml [key=value ...]

Any config field can be overridden with a dotlist (``trainer.max_epochs=2 data.batch_size=16``); an
unknown key fails at start with its name. Prints the metrics table of the final weights; the run
folder (``out_dir``) holds config.yaml, checkpoints/, logs/, grids/ and metrics.json
(:mod:`estimators.train`). Evaluate a checkpoint later with ``tools/evaluate.py CKPT``.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import logging
import sys
import warnings

from annot.app.cli import run_tool
from annot.config import ConfigError, load_config
from estimators.config import EstimatorConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/estimator/pose2pose.yaml", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. trainer.max_epochs=2")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # Lightning on torch 2.13
    logging.getLogger("estimators").setLevel(logging.INFO)
    from estimators.train import run

    try:
        cfg = load_config(EstimatorConfig, args.config, args.overrides)
        result = run(cfg)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    loss = result["train_loss"]
    if loss:
        print(f"training loss: {loss['first_steps_mean']:.4g} (mean of the first {loss['window_steps']} steps) -> "
              f"{loss['last_steps_mean']:.4g} (last {loss['window_steps']}) over {loss['steps']} steps")
    print(result["table"])
    print(f"best checkpoint: {result['best']['path'] or '-'}; last: {result['last_checkpoint'] or '-'}")
    print(f"wall time {result['wall_time_s']:.0f} s; outputs in {cfg.out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
