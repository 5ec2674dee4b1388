#!/usr/bin/env python
"""Run a W&B-format grid sweep of the annotation pipeline, locally or through a W&B agent, and tabulate it.

The sweep file (``configs/sweep/reg_weights.yaml``) is in Weights & Biases' sweep format (``method: grid``,
``parameters`` with ``values`` / ``value``, ``command`` with ``${args_no_hyphens}``). Every parameter is a
dotlist key of :class:`annot.annotator.config.AnnotateConfig`, except the derived key ``reg_weight`` (Three Recipes
supp. Table A: one L2 weight for the pose regulariser and beta; :func:`point_overrides`).

Modes::

    # the whole grid here, one point after the other, then the table (no server needed)
    python tools/sweep.py --config configs/sweep/reg_weights.yaml --base configs/annotate/body_free.yaml \
        [--tiny] [key=value ...]
    # through W&B (creates the sweep and starts `wandb agent`; needs WANDB_API_KEY and a reachable server)
    python tools/sweep.py --config configs/sweep/reg_weights.yaml --backend wandb
    # one point, as `wandb agent` runs it (the sweep file's `command`)
    python tools/sweep.py --point --base configs/annotate/body_free.yaml reg_weight=0.01 prior.pose_prior=vposer
    # only rebuild the table from finished points
    python tools/sweep.py --config configs/sweep/reg_weights.yaml --collect

``--backend auto`` (default) uses W&B when ``annot.training.loggers.wandb_mode()`` is ``online`` (``WANDB_API_KEY``
set) and ``--tiny`` is not given, and falls back to the local run when the sweep cannot be created.
``--tiny``: a 2x2 sub-grid (:data:`TINY_GRID`) and few steps per stage (:data:`TINY_OVERRIDES`): the
check that ``make sweep`` runs on a CPU in a few minutes; its numbers mean nothing.

Each point runs :func:`annot.annotator.pipeline.run_annotate` into ``<out>/<point>/`` (resumable: finished stages
are skipped on a re-run). Stage (a) and the prior are *not* shared between points: their provenance hash
includes the loss weights (``loss.pose_l2`` and ``loss.betas_l2`` also regularise the stage-(a) MoCap
annotator), so every point runs them with its own weights, as ``wandb agent`` does.

Outputs in ``<out>/``: ``results.json`` (one row per point: parameters, overrides, the metrics of
:func:`annot.annotator.report.report_metrics`), ``results.md`` (the table) and ``results.png`` (bar chart of
the mean 2D error per point).
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import itertools
import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from annot.annotator.config import AnnotateConfig, trainer_profile_overrides
from annot.app.cli import run_tool
from annot.config import ConfigError, load_config

log = logging.getLogger("annot.sweep")

#: Sub-grid of ``--tiny`` (each value must be in the sweep file).
TINY_GRID: dict[str, list[Any]] = {"prior.pose_prior": ["vposer", "none"], "reg_weight": [1e-1, 1e-3]}
#: Few steps per stage, small crops and heads (``--tiny``); CMU clips restricted when the base has them.
TINY_OVERRIDES = ["trainer.max_steps=20", "trainer.log_every_n_steps=5", "trainer.enable_progress_bar=false",
                  "aux_stage.max_steps=20", "aux_stage.hidden_dim=128", "prior.max_epochs=2", "prior.num_neurons=128",
                  "model.hidden_dim=128", "data.input_hw=[128,96]", "export.eval_every_n_steps=5"]
TINY_CMU_OVERRIDES = ["auxiliary.cmu.args.pattern=cmu_01_0*.bvh"]
TABLE_METRICS = (("kp2d_err_px_mean", "2D err (px)", "{:.1f}"), ("eft_rejected", "EFT rejected", "{:.0f}"),
                 ("annotated", "annotated", "{:.0f}"), ("z_norm_mean", "mean abs z", "{:.2f}"),
                 ("max_abs_beta_mean", "mean max abs beta", "{:.3f}"),
                 ("body_pose_angle_deg_mean", "mean joint angle (deg)", "{:.1f}"), ("total_s", "wall (s)", "{:.0f}"))


# --------------------------------------------------------------------------- sweep file
def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read and check a W&B grid-sweep file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a mapping, ``method`` other than ``grid``, or a parameter without ``values`` /
            ``value`` (the message names the file and the parameter).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file not found: {path}")
    sweep = yaml.safe_load(path.read_text())
    if not isinstance(sweep, dict) or not isinstance(sweep.get("parameters"), dict) or not sweep["parameters"]:
        raise ValueError(f"{path}: a sweep file is a mapping with a non-empty `parameters` mapping")
    if sweep.get("method") != "grid":
        raise ValueError(f"{path}: method {sweep.get('method')!r}: only `grid` sweeps expand locally")
    for name, spec in sweep["parameters"].items():
        if not isinstance(spec, dict) or not ("values" in spec or "value" in spec):
            raise ValueError(f"{path}: parameter {name!r} needs `values: [...]` or `value: x` for a grid")
        if "values" in spec and (not isinstance(spec["values"], list) or not spec["values"]):
            raise ValueError(f"{path}: parameter {name!r}: `values` must be a non-empty list")
    return sweep


def expand_grid(sweep: dict[str, Any], subset: dict[str, list[Any]] | None = None) -> list[dict[str, Any]]:
    """Every point of a grid sweep (the cartesian product, first parameter outermost), as ``{name: value}``.

    ``subset`` keeps only the listed values of those parameters (ValueError if one is not in the grid).
    """
    names = list(sweep["parameters"])
    axes = []
    for name in names:
        spec = sweep["parameters"][name]
        values = list(spec["values"]) if "values" in spec else [spec["value"]]
        if subset and name in subset:
            missing = [v for v in subset[name] if v not in values]
            if missing:
                raise ValueError(f"sub-grid values {missing} of {name!r} are not in the sweep's {values}")
            values = [v for v in values if v in subset[name]]
        axes.append(values)
    return [dict(zip(names, combo)) for combo in itertools.product(*axes)]


def point_overrides(params: dict[str, Any], base_pose_prior: str = "vposer") -> list[str]:
    """Dotlist overrides of one point.

    ``reg_weight=w`` becomes ``loss.z_l2=w loss.betas_l2=w`` with the VPoser prior and
    ``loss.pose_l2=w loss.betas_l2=w`` without (``prior.pose_prior`` from the point, else
    ``base_pose_prior``); every other parameter passes through as ``key=value``.
    """
    out: list[str] = []
    prior = str(params.get("prior.pose_prior", base_pose_prior))
    for key, value in params.items():
        if key == "reg_weight":
            weight = float(value)
            pose_key = "loss.z_l2" if prior == "vposer" else "loss.pose_l2"
            out += [f"{pose_key}={weight!r}", f"loss.betas_l2={weight!r}"]
        else:
            out.append(f"{key}={_text(value)}")
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def point_name(params: dict[str, Any]) -> str:
    """Folder / run name of a point: ``pose_prior=vposer,reg_weight=0.01`` (last key component)."""
    def fmt(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    return ",".join(f"{key.split('.')[-1]}={fmt(value)}" for key, value in params.items())


def parse_point_args(items: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split ``key=value`` arguments (as ``wandb agent`` passes them) into sweep parameters and other
    overrides: ``reg_weight`` and ``prior.pose_prior`` are parameters, the rest pass through. Values are
    YAML-parsed (``0.01`` -> float, ``1e-05`` -> float)."""
    params: dict[str, Any] = {}
    rest: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {item!r}")
        if key == "reg_weight":
            params[key] = float(value)
        elif key == "prior.pose_prior":
            params[key] = value
        else:
            rest.append(item)
    return params, rest


# --------------------------------------------------------------------------- running points
def point_config(base: str | Path, params: dict[str, Any], out: Path, extra: list[str]):
    """The structured config of one point: base file < ``extra`` (profile, tiny, user) < the point's
    overrides < ``export.out_dir=<out>/<point>`` and ``name``."""
    base_cfg = load_config(AnnotateConfig, base, extra)
    overrides = [*extra, *point_overrides(params, base_cfg.prior.pose_prior),
                 f"export.out_dir={out / point_name(params)}", f"name={point_name(params)}"]
    return load_config(AnnotateConfig, base, overrides)


def run_point(cfg) -> dict[str, float]:
    """Run the pipeline for one point's config; returns :func:`annot.annotator.report.report_metrics`
    (and logs the report to W&B when ``trainer.logger=wandb``)."""
    from annot.annotator.pipeline import run_annotate
    from annot.annotator.report import log_report

    report = run_annotate(cfg)
    return log_report(report, cfg, run_name=cfg.name)


def tiny_overrides(base: str | Path) -> list[str]:
    """:data:`TINY_OVERRIDES`, plus :data:`TINY_CMU_OVERRIDES` when the base config has a ``cmu`` set."""
    base_cfg = load_config(AnnotateConfig, base)
    return TINY_OVERRIDES + (TINY_CMU_OVERRIDES if "cmu" in base_cfg.auxiliary else [])


def run_local(sweep: dict[str, Any], base: str | Path, out: Path, extra: list[str], subset=None) -> list[dict]:
    """Every point in turn (a failing point is recorded with its error and the others go on)."""
    from annot.training.loggers import finish_wandb

    rows = []
    points = expand_grid(sweep, subset)
    for index, params in enumerate(points, 1):
        name = point_name(params)
        log.info("sweep point %d/%d: %s", index, len(points), name)
        row: dict[str, Any] = {"point": name, "params": params}
        try:
            cfg = point_config(base, params, out, extra)
            row["overrides"] = point_overrides(params, cfg.prior.pose_prior)
            start = time.perf_counter()
            row["metrics"] = run_point(cfg)
            row["wall_s"] = time.perf_counter() - start
        except Exception as err:  # noqa: BLE001 - one broken point must not lose the others
            log.exception("sweep point %s failed", name)
            row["error"] = f"{type(err).__name__}: {err}"
        finally:
            finish_wandb()
        rows.append(row)
    return rows


def collect(sweep: dict[str, Any], out: Path, subset=None) -> list[dict]:
    """Rows of the finished points (``<out>/<point>/report.json``), without running anything."""
    from annot.annotator.report import report_metrics

    rows = []
    for params in expand_grid(sweep, subset):
        folder = out / point_name(params)
        row: dict[str, Any] = {"point": point_name(params), "params": params}
        if (folder / "report.json").is_file():
            row["metrics"] = report_metrics(json.loads((folder / "report.json").read_text()), folder / "pseudo_gt.json")
        else:
            row["error"] = f"not run: no {folder / 'report.json'}"
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- results
def results_markdown(rows: list[dict], title: str, command: str) -> str:
    """The results table (one row per point; failed points show their error)."""
    params = list(rows[0]["params"]) if rows else []
    head = [p.split(".")[-1] for p in params] + [label for _, label, _ in TABLE_METRICS]
    lines = [f"# {title}", "", f"Command: `{command}`", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{v:g}" if isinstance(v, float) else str(v) for v in row["params"].values()]
        metrics = row.get("metrics")
        if metrics is None:
            cells += [f"failed: {row.get('error', '?')}"] + [""] * (len(TABLE_METRICS) - 1)
        else:
            cells += ["n/a" if not math.isfinite(metrics.get(key, math.nan)) else fmt.format(metrics[key])
                      for key, _, fmt in TABLE_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "2D err: mean over the annotated people of the exported pseudo-GTs' 2D error (original-image "
              "pixels, visible keypoints; train-and-test on the same set). EFT rejected: max abs beta > 5 or EFT's "
              "normalised 2D loss > 0.01. mean abs z: norm of the VPoser code (n/a without VPoser). "
              "mean joint angle: mean rotation angle of the 21 body joints (degrees).", ""]
    return "\n".join(lines)


def results_png(rows: list[dict], path: Path) -> None:
    """Grouped bar chart of the mean 2D error: one group per value of the other parameters (the weight),
    one bar per ``prior.pose_prior`` value; failed points are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.get("metrics") and math.isfinite(r["metrics"].get("kp2d_err_px_mean", math.nan))]
    if not done:
        return

    def label(row: dict) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for k, v in row["params"].items()
                        if k != "prior.pose_prior") or "-"

    groups = list(dict.fromkeys(label(r) for r in done))
    priors = list(dict.fromkeys(str(r["params"].get("prior.pose_prior", "")) for r in done))
    width = 0.8 / len(priors)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(groups) + 2.5), 3.8), dpi=100)
    for j, prior in enumerate(priors):
        xs, ys = [], []
        for row in done:
            if str(row["params"].get("prior.pose_prior", "")) == prior:
                xs.append(groups.index(label(row)) + (j - (len(priors) - 1) / 2) * width)
                ys.append(row["metrics"]["kp2d_err_px_mean"])
        ax.bar(xs, ys, width=width, label=prior or None)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("mean 2D error (px)")
    ax.set_xlabel("reg_weight" if "reg_weight" in done[0]["params"] else "point")
    ax.set_title("Pseudo-GT 2D error per sweep point")
    if any(priors):
        ax.legend(title="pose prior", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_results(rows: list[dict], out: Path, title: str, command: str) -> None:
    """``results.json``, ``results.md`` and ``results.png`` under ``out``."""
    from annot.io.atomic import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", {"title": title, "command": command, "rows": rows})
    (out / "results.md").write_text(results_markdown(rows, title, command))
    results_png(rows, out / "results.png")


# --------------------------------------------------------------------------- W&B
def run_wandb(sweep: dict[str, Any], project: str, count: int | None) -> None:
    """Create the sweep on the W&B server and run ``wandb agent`` here (the venv's ``python`` first on PATH).

    Raises whatever ``wandb.sweep`` raises when the server is unreachable (the caller falls back)."""
    import wandb

    sweep_id = wandb.sweep(sweep=sweep, project=project)
    entity = wandb.Api().default_entity
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    command = [str(Path(sys.executable).parent / "wandb"), "agent", f"{entity}/{project}/{sweep_id}"]
    if count:
        command += ["--count", str(count)]
    log.info("running %s", " ".join(command))
    subprocess.run(command, env=env, check=True)


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/sweep/reg_weights.yaml", help="W&B grid-sweep file")
    parser.add_argument("--base", default="configs/annotate/body_free.yaml", help="annotation config of every point")
    parser.add_argument("--trainer", default=None, help="trainer profile (configs/trainer/*.yaml) for every point")
    parser.add_argument("--out", default="outputs/sweep", help="folder of the points and the results table")
    parser.add_argument("--tiny", action="store_true", help="2x2 sub-grid, few steps per stage (a CPU check)")
    parser.add_argument("--backend", choices=["auto", "local", "wandb"], default="auto")
    parser.add_argument("--count", type=int, default=None, help="wandb agent: stop after this many points")
    parser.add_argument("--point", action="store_true", help="run one point (how `wandb agent` calls us)")
    parser.add_argument("--collect", action="store_true", help="only rebuild the table from finished points")
    parser.add_argument("overrides", nargs="*", help="key=value for every point (with --point: the point too)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("annot").setLevel(logging.INFO)
    out = Path(args.out)
    try:
        extra = trainer_profile_overrides(args.trainer) if args.trainer else []
        if args.point:
            params, rest = parse_point_args(args.overrides)
            cfg = point_config(args.base, params, out, [*extra, *rest, "trainer.logger=wandb"])
            metrics = run_point(cfg)
            print(json.dumps({"point": point_name(params), **metrics}))
            return 0
        sweep = load_sweep(args.config)
        subset = TINY_GRID if args.tiny else None
        title = f"Sweep {sweep.get('name', Path(args.config).stem)}" + (" (--tiny)" if args.tiny else "")
        command = " ".join(["python tools/sweep.py", *(argv if argv is not None else sys.argv[1:])])
        if args.collect:
            rows = collect(sweep, out, subset)
        else:
            from annot.training.loggers import wandb_mode

            if args.backend == "wandb" or (args.backend == "auto" and not args.tiny and wandb_mode() == "online"):
                try:
                    run_wandb(sweep, sweep.get("project") or "neural-annot", args.count)
                    return 0
                except Exception as err:  # noqa: BLE001 - no server: same grid here
                    if args.backend == "wandb":
                        raise
                    log.warning("W&B sweep unavailable (%s: %s); running the grid locally", type(err).__name__, err)
            rows = run_local(sweep, args.base, out, [*extra, *(tiny_overrides(args.base) if args.tiny else []),
                                                     *args.overrides], subset)
        write_results(rows, out, title, command)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((out / "results.md").read_text())
    print(f"results: {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0 if all("metrics" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(run_tool(main))
