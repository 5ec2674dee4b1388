"""Bake the free SMPL-format body model from the ``anny`` package (``make setup`` runs this), or, with
``--wholebody``, the free SMPL-X- and MANO-format stand-ins (``make free-wholebody-models``).

Usage::

    python tools/build_free_body_model.py [--out body_models/free/FREE_ANNY_SMPL_NEUTRAL.pkl]
                                          [--seed 0] [--num-shape-samples 1000] [--force]
    python tools/build_free_body_model.py --wholebody [--out-dir body_models/free] [--seed 0]
                                          [--num-shape-samples 1000] [--force]

``--wholebody`` writes ``FREE_ANNY_SMPLX_NEUTRAL.npz`` (stock ``smplx.SMPLX``) and
``FREE_ANNY_MANO_RIGHT.pkl`` / ``FREE_ANNY_MANO_LEFT.pkl`` (stock ``smplx.MANO``) under OUT_DIR (method:
``annot/body_models/free_model/wholebody.py``); it skips the bake when all three exist and are valid, unless
``--force``.

Writes a pickle that stock ``smplx.SMPL(model_path=OUT)`` loads (keys: see the interface contract,
"Free model file"; method: ``annot/body_models/free_model/`` and
``shared/docs/free-body-model.md``). If OUT already exists and is valid, prints so and exits
without baking unless ``--force``. The file is written atomically (temporary file + ``os.replace``)
and its parent folders are created. Needs ``anny`` (``pip install -e .[bake]``); downloads
nothing. About 20 s and 2 GB of memory on 2 CPU cores once anny's cache exists (the first
``anny.Anny()`` on a machine builds it: about 75 s more). Exit status 0 on success or skip, 1 on
error.
"""

from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import sys
import time
from pathlib import Path

from annot.app.cli import run_tool
from annot.body_models import free_model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: --out, --wholebody, --out-dir, --seed, --num-shape-samples, --force."""
    defaults = free_model.BakeConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=free_model.DEFAULT_RELATIVE_PATH,
                        help="output pickle (default: %(default)s, relative to the current folder)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of the phenotype sampling (default: %(default)s)")
    parser.add_argument("--num-shape-samples", type=int, default=defaults.num_shape_samples,
                        help="anny meshes sampled for the shape space and the joint regressor, "
                             "20 %% held out for the reported errors (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebake even if OUT is valid")
    parser.add_argument("--wholebody", action="store_true",
                        help="bake the SMPL-X and MANO stand-ins into --out-dir instead of the SMPL model")
    parser.add_argument("--out-dir", type=Path, default=free_model.DEFAULT_RELATIVE_PATH.parent,
                        help="folder of the --wholebody files (default: %(default)s)")
    return parser.parse_args(argv)


def _summary(model_dict: dict, path: Path) -> str:
    """Printable summary of a baked model: errors, heights, file size."""
    metrics = model_dict["provenance"]["metrics"]
    space = model_dict["shape_space"]
    heights = space["height_at_beta0_m"]
    lines = [
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB), "
        f"{model_dict['v_template'].shape[0]} vertices, {model_dict['f'].shape[0]} faces",
        f"  bake time: {metrics['bake_seconds']:.1f} s",
        "  shape PCA: {:.4f} % variance in 10 betas; held-out error mean {:.2f} mm, max {:.2f} mm"
        .format(100 * space["explained_variance_ratio_total"],
                metrics["pca_holdout_error_mm"]["mean"], metrics["pca_holdout_error_mm"]["max"]),
    ]
    trip = metrics["tpose_roundtrip_error_mm"]
    lines.append(f"  T-pose -> A-pose round trip (24-joint rig vs anny): mean {trip['mean']:.2f} mm, "
                 f"max {trip['max']:.2f} mm ({trip['worst_joint']})")
    for label, key in (("held-out rest meshes", "j_regressor_holdout_error_mm"),
                       ("held-out via 10 betas", "j_regressor_holdout_error_through_betas_mm"),
                       ("held-out posed meshes", "j_regressor_holdout_posed_error_mm")):
        err = metrics[key]
        lines.append(f"  J_regressor, {label}: mean {err['mean']:.2f} mm, max {err['max']:.2f} mm"
                     f" ({err['worst_joint']})")
    lines.append("  height (m) at beta0 = -2 / -1 / 0 / +1 / +2: " + " / ".join(
        f"{heights[k]:.3f}" for k in ("-2", "-1", "+0", "+1", "+2")))
    return "\n".join(lines)


def _main_wholebody(args: argparse.Namespace) -> int:
    """The ``--wholebody`` bake (or its skip); returns the exit status."""
    from annot.body_models.free_model import wholebody  # noqa: PLC0415 - only this mode needs it

    if not args.force and not wholebody.check_wholebody_files(args.out_dir):
        print(f"the SMPL-X and MANO stand-ins in {args.out_dir} exist and are valid; skipping the bake "
              "(pass --force to rebake)")
        return 0
    started = time.perf_counter()
    models = _bake(wholebody.WholebodyBakeConfig, wholebody.bake_free_wholebody, args)
    if models is None:
        return 1
    for path in wholebody.save_wholebody_files(models, args.out_dir):
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(f"  total time including writing: {time.perf_counter() - started:.1f} s")
    return 0


def _bake(config_class, bake, args: argparse.Namespace):
    """``bake(config_class(seed, num_shape_samples), log=print)``, or None after printing why it could not run (a bad
    setting, no ``anny``, a failed bake)."""
    try:
        config = config_class(seed=args.seed, num_shape_samples=args.num_shape_samples)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    try:
        return bake(config, log=lambda msg: print(msg, flush=True))
    except ImportError as err:
        print(f"error: the bake needs the 'anny' package (pip install -e .[bake]): {err}", file=sys.stderr)
    except (ValueError, RuntimeError) as err:
        print(f"error: bake failed: {err}", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the bake (or skip it); returns the exit status."""
    args = parse_args(argv)
    if args.wholebody:
        return _main_wholebody(args)
    out = args.out
    if out.exists() and not args.force:
        problems = free_model.check_free_model_file(out)
        if not problems:
            params = free_model.load_free_model_file(out)["provenance"].get("bake_parameters", {})
            print(f"{out} exists and is valid (seed {params.get('seed')}, "
                  f"{params.get('num_shape_samples')} shape samples); skipping the bake "
                  "(pass --force to rebake)")
            return 0
        print(f"{out} exists but is not valid ({'; '.join(problems)}); rebaking")
    started = time.perf_counter()
    model_dict = _bake(free_model.BakeConfig, free_model.bake_free_model, args)
    if model_dict is None:
        return 1
    free_model.save_free_model_file(model_dict, out)
    print(_summary(model_dict, out))
    print(f"  total time including writing: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
