"""Validate the installed body models and assets (``make check-body-models``).

Usage::

    python tools/check_body_models.py [--root DIR] [--require-smpl] [--tol 1e-3]

Checks the free model (required) and, when present, the SMPL files (neutral / male / female) and
``J_regressor_h36m_smpl.npy``, searched with the project's lookup order (``--root``, else
``$BODY_MODELS_DIR``, then ``./body_models``). For each model file: readable without chumpy, the
fields ``smplx.SMPL`` reads have consistent shapes and finite values, regressor rows sum to 1
(within ``--tol``), the model loads in ``smplx.SMPL`` and a zero pose returns the template.
Whole-body models (optional, issue #16): SMPL-X, MANO right / left and FLAME, licence-gated or the free
stand-ins (``make free-wholebody-models``), each loaded in stock smplx and run once.
Prints a table; exit status 1 when anything required is missing or any check fails.
"""

from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from annot.app.cli import run_tool
from annot.body_models import (
    BodyModel,
    BodyModelNotFoundError,
    check_model_dict,
    load_model_dict,
    resolve_asset,
    resolve_model_file,
)
from annot.body_models.body_model import H36M_REGRESSOR_ASSET, SMPL_NUM_VERTICES
from annot.body_models.pkl import pickle_globals
from annot.body_models.resolver import resolve_wholebody_model
from annot.body_models.wholebody_layers import build_mano_layer, build_smplx_layer

OK, WARN, FAIL, ABSENT = "OK", "WARN", "FAIL", "absent"


@dataclass
class Row:
    """One line of the report."""

    item: str
    status: str
    path: str
    detail: str


def row_sum_problems(model_dict: dict, tol: float) -> list[str]:
    """Names of regressors whose rows do not sum to 1 within ``tol`` (translation equivariance)."""
    problems = []
    for key in ("J_regressor", "coco_regressor", "h36m_regressor"):
        if key in model_dict:
            deviation = float(np.abs(np.asarray(model_dict[key]).sum(axis=1) - 1.0).max())
            if deviation > tol:
                problems.append(f"{key} rows sum to 1 +- {deviation:.2g} (tol {tol:g})")
    return problems


def _forward_problems(body_model: BodyModel, model_dict: dict) -> list[str]:
    """Zero pose must give the template; a random pose must stay finite."""
    batch = 2
    zeros = dict(global_orient_rotvec=torch.zeros(batch, 3), body_pose_rotvec=torch.zeros(batch, 69),
                 betas=torch.zeros(batch, body_model.num_betas))
    with torch.no_grad():
        rest = body_model(**zeros).vertices_m
        pose = 0.3 * torch.randn(batch, 69, generator=torch.Generator().manual_seed(0))
        posed = body_model(**{**zeros, "body_pose_rotvec": pose})
        keypoints, _ = body_model.regress(posed.vertices_m, "coco17_feet")
    problems = []
    template = torch.as_tensor(np.asarray(model_dict["v_template"]), dtype=rest.dtype)
    if not torch.allclose(rest[0], template, atol=1e-5):
        problems.append("zero pose does not return v_template")
    if not all(torch.isfinite(t).all() for t in (posed.vertices_m, posed.joints_smpl24_m, keypoints)):
        problems.append("non-finite output for a random pose")
    return problems


def check_model_file(path: Path, model_type: str, gender: str, tol: float) -> Row:
    """Load, validate and run one model file; returns its report row."""
    item = f"{model_type} {gender}"
    try:
        model_dict = load_model_dict(path)
        check_model_dict(model_dict, str(path))
        body_model = BodyModel(model_type=model_type, gender=gender, path=path)
        problems = row_sum_problems(model_dict, tol) + _forward_problems(body_model, model_dict)
    except (OSError, ValueError) as error:
        return Row(item, FAIL, str(path), str(error).splitlines()[0])
    if problems:
        return Row(item, FAIL, str(path), "; ".join(problems))
    detail = (f"V={body_model.num_vertices} F={len(body_model.faces)} betas={body_model.num_betas} "
              f"coco={'own' if 'coco_regressor' in model_dict else 'SMPL ids'}")
    if path.suffix.lower() != ".npz" and any(g.startswith("chumpy") for g in pickle_globals(path)):
        return Row(item, WARN, str(path), detail + "; chumpy pickle: fine here, but stock smplx needs "
                   "`python tools/convert_body_model.py IN OUT`")
    return Row(item, OK, str(path), detail)


def check_regressor_asset(path: Path, num_vertices: int, tol: float) -> Row:
    """Validate ``J_regressor_h36m_smpl.npy``: (17, V) finite, rows summing to 1."""
    item = H36M_REGRESSOR_ASSET
    try:
        regressor = np.load(path, allow_pickle=False)
    except Exception as error:
        return Row(item, FAIL, str(path), f"unreadable: {type(error).__name__}: {error}")
    if regressor.shape != (17, num_vertices):
        return Row(item, FAIL, str(path), f"shape {regressor.shape}, expected (17, {num_vertices})")
    if not np.isfinite(regressor).all():
        return Row(item, FAIL, str(path), "contains NaN or inf")
    problems = row_sum_problems({"h36m_regressor": regressor}, tol)
    return Row(item, FAIL if problems else OK, str(path), "; ".join(problems) or "(17, V) rows sum to 1")


def collect_rows(root: Path | None, require_smpl: bool, tol: float, notes: list[str]) -> list[Row]:
    """Check everything installed under ``root`` (or the default lookup order).

    The full "not found" message of each missing required file is appended to ``notes``.
    """
    rows = []
    for model_type, gender in [("free", "neutral"), ("smpl", "neutral"), ("smpl", "male"),
                               ("smpl", "female")]:
        required = model_type == "free" or (require_smpl and gender == "neutral")
        try:
            path = resolve_model_file(model_type, gender, root)
        except BodyModelNotFoundError as error:
            status = FAIL if required else ABSENT
            hint = "required: run `make setup`" if model_type == "free" else "optional (licence-gated)"
            rows.append(Row(f"{model_type} {gender}", status, "-", hint))
            if required:
                notes.append(str(error))
            continue
        rows.append(check_model_file(path, model_type, gender, tol))
    try:
        asset = resolve_asset(H36M_REGRESSOR_ASSET, root)
    except BodyModelNotFoundError:
        rows.append(Row(H36M_REGRESSOR_ASSET, ABSENT, "-", "optional (h36m17 on real SMPL)"))
    else:
        rows.append(check_regressor_asset(asset, SMPL_NUM_VERTICES, tol))
    return rows


def wholebody_rows(root: Path | None) -> list[Row]:
    """Optional rows for SMPL-X, MANO (right, left) and FLAME: absent, or loaded in stock smplx and run
    once (OK with vertex / joint counts, FAIL with the error). FLAME is only located."""
    rows = []
    for model_type, variant in (("smplx", "neutral"), ("mano", "right"), ("mano", "left"), ("flame", "neutral")):
        item = f"{model_type} {variant}"
        try:
            resolved = resolve_wholebody_model(model_type, variant, root)
        except BodyModelNotFoundError:
            hint = "optional (licence-gated; no free stand-in)" if model_type == "flame" else (
                "optional: licence-gated, or `make free-wholebody-models`")
            rows.append(Row(item, ABSENT, "-", hint))
            continue
        kind = "free stand-in" if resolved.is_free else "licence-gated"
        if model_type == "flame":
            rows.append(Row(item, OK, str(resolved.path), f"{kind}, located (not loaded)"))
            continue
        try:
            layer = (build_smplx_layer(resolved.path)[0] if model_type == "smplx"
                     else build_mano_layer(variant, resolved.path)[0])
            with torch.no_grad():
                out = layer()
            rows.append(Row(item, OK, str(resolved.path),
                            f"{kind}, {out.vertices.shape[1]} vertices, {out.joints.shape[1]} joints"))
        except Exception as error:  # noqa: BLE001 - any load failure is a failed check
            rows.append(Row(item, FAIL, str(resolved.path), f"{kind}: {type(error).__name__}: {error}"))
    return rows


def format_table(rows: list[Row]) -> str:
    """Fixed-width table: item, status, path, detail."""
    header = Row("item", "status", "path", "detail")
    widths = [max(len(getattr(r, f)) for r in [header, *rows]) for f in ("item", "status", "path")]
    lines = [f"{r.item:<{widths[0]}}  {r.status:<{widths[1]}}  {r.path:<{widths[2]}}  {r.detail}"
             for r in [header, *rows]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the table and returns 0 if all required items pass, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="body-model folder to check (default: $BODY_MODELS_DIR, then ./body_models)")
    parser.add_argument("--require-smpl", action="store_true", help="fail if SMPL_NEUTRAL is missing")
    parser.add_argument("--tol", type=float, default=1e-3, help="tolerance on regressor row sums")
    args = parser.parse_args(argv)
    notes: list[str] = []
    rows = collect_rows(args.root, args.require_smpl, args.tol, notes) + wholebody_rows(args.root)
    print(format_table(rows))
    for note in notes:
        print(f"\n{note}")
    failed = [r.item for r in rows if r.status == FAIL]
    print(f"\n{'FAILED: ' + ', '.join(failed) if failed else 'all required body models OK'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
