"""End-to-end smoke run of ``annot.benchmarks.quality`` (3 ITW people, a few steps): every method row present,
finite errors and times, and the scorer gives zero error for the GT itself (independent reference)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from annot.benchmarks.quality import DEFAULT_METHODS, LABELS, VARIANTS, BenchConfig, ensure_split, load_itw, run_bench
from annot.benchmarks.quality_score import score


@pytest.mark.slow
def test_bench_annot_tiny(tmp_path):
    import torch

    from annot.nets.pose_resnet import PoseResNet
    from annot.pretrain import checkpoint_name, write_checkpoint

    # an untrained pose_resnet stands in for the free SimpleBaseline (the real one takes minutes to build):
    # it exercises the second recipe's wiring, model.backbone_weights, not its benefit
    torch.manual_seed(0)
    write_checkpoint(tmp_path / "backbone" / checkpoint_name(18), PoseResNet(18), {"note": "test stand-in"})
    cfg = BenchConfig(out=str(tmp_path), size=3, mocap_size=3, steps=3, aux_steps=3, aux_batch=4,
                      prior_epochs=1, smplify_iters=3, eft_iters=2, num_overlays=2, cmu_frames=32, seeds=(0, 1),
                      fit_iters=3, refine_iters=0, backbone_dir=str(tmp_path / "backbone"),
                      extra_overrides=["auxiliary.cmu.args.fps=1"])
    res = run_bench(cfg, tuple(LABELS))  # the default rows and the optional ones
    assert set(res["rows"]) == set(LABELS)
    assert "VPoser prior of NeuralAnnot" in res["rows"]["smplify"]["label"]  # the prior NeuralAnnot trained
    assert "crop camera" in res["rows"]["smplify_crop_cam"]["label"]
    for key, row in res["rows"].items():
        for m in ("mpjpe_mm", "mpjpe_mm_lo", "mpjpe_mm_hi", "pa_mpjpe_mm", "mpvpe_mm", "orient_err_deg",
                  "kp2d_err_px", "seconds_per_sample"):
            assert math.isfinite(row[m]), (key, m)
        assert row["mpjpe_mm_lo"] <= row["mpjpe_mm"] <= row["mpjpe_mm_hi"]
        assert row["scored"] == row["people"] == 6  # 3 people x 2 seeds
    assert {"neuralannot_fit"} <= set(res["paired_vs_smplify_mpjpe_mm"]) | {"neuralannot_fit"}
    best = [k for k in res["paired_vs_smplify_mpjpe_mm"] if k.startswith("best:")]
    assert len(best) == 1
    md = (tmp_path / "results.md").read_text()
    for row in res["rows"].values():
        assert row["label"] in md
    assert "paired difference" in md and "COCO" in md
    assert (tmp_path / "results.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["per_seed"]) == {"0", "1"}
    assert "GT intrinsics" in res["rows"]["neuralannot_fit"]["label"]
    assert "estimated image camera" in res["rows"]["neuralannot_fit_estimated"]["label"]
    for key in ("neuralannot_fit", "eft"):  # both start from bench-annot's fit_from, f given the 2D keypoints
        assert "f given the 2D keypoints" in res["rows"][key]["label"], key
    # a second run of the default rows reuses every finished method and reproduces them exactly
    again = run_bench(cfg)
    assert set(again["rows"]) == set(DEFAULT_METHODS)
    for key, row in again["rows"].items():
        assert res["rows"][key]["mpjpe_mm"] == row["mpjpe_mm"], key


def test_score_gt_against_itself_is_zero(tmp_path):
    from annot.body_models import BodyModel

    body = BodyModel("free")
    for clean in (True, False):
        cfg = BenchConfig(out=str(tmp_path / str(clean)), size=3, mocap_size=0, photos_dir=None, cmu_frames=16,
                          clean_2d=clean)
        itw = load_itw(ensure_split(cfg))
        per = score(body, itw, {a: r["gt"] for a, r in itw.items()})
        for m in ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "orient_err_deg"):
            np.testing.assert_allclose(per[m], 0.0, atol=1e-2)
        if clean:  # the GT keypoints are the projection of the same body model's COCO joints: a few px at most
            assert np.all(per["kp2d_err_px"] < 5.0)
        else:  # the realistic annotations carry annotator noise; their exact projections are the GT's own
            assert np.all(per["kp2d_err_px"] > 0.5)
            for rec in itw.values():
                assert np.abs(rec["clean_kp2d_px"] - rec["kp2d_px"])[rec["vis"]].max() > 0


def test_orientation_error_hand_computed():
    import math

    from annot.benchmarks.quality_score import orientation_error_deg

    pred = np.array([[0.0, 0.0, math.pi / 2], [math.pi, 0.0, 0.0], [0.1, 0.2, 0.3]])
    gt = np.array([[0.0, 0.0, 0.0], [0.0, math.pi, 0.0], [0.1, 0.2, 0.3]])
    # 90 deg about z; Rx(pi) vs Ry(pi): Ry(pi)^T Rx(pi) = Rz(pi), 180 deg; identical: 0
    np.testing.assert_allclose(orientation_error_deg(pred, gt), [90.0, 180.0, 0.0], atol=1e-6)


def test_variants_give_f_the_keypoints_except_the_papers_f(tmp_path):
    """The main row and every recipe ablation use the f of ``make annotate-body`` (image + 2D keypoints), so that
    each ablation differs from the main row by its recipe alone; only ``neuralannot_paper`` is image-only. Each
    variant's recipes reach the pipeline config."""
    from annot.benchmarks.quality import _annotate_cfg

    cfg = BenchConfig(out=str(tmp_path), backbone_path="backbone.pth")
    for key, (_, vposer, aux3d, pretrained, kp2d) in VARIANTS.items():
        acfg = _annotate_cfg(cfg, tmp_path, key)
        assert acfg.model.kp2d_input is (key != "neuralannot_paper") is kp2d, key
        assert (acfg.prior.pose_prior == "vposer") is vposer, key
        assert ("synth3d" in (acfg.auxiliary or {})) is aux3d, key
        assert (acfg.model.backbone_weights == "backbone.pth") is pretrained, key
    assert "neuralannot_paper" not in DEFAULT_METHODS and DEFAULT_METHODS[0] == cfg.fit_from == "neuralannot"


def test_paired_lines_name_the_best_row_and_f_alone():
    """With NeuralAnnot + fit best and the project's f the best row without fitting, the paired comparison
    reports both against SMPLify, each with the hand-computed mean per-person difference; the paper's f (worse
    than the project's) gets no line of its own."""
    from annot.benchmarks.quality_report import claim_lines, paired_against_smplify

    smplify = np.array([100.0, 120.0, 140.0, 160.0])
    per = {"smplify": smplify, "neuralannot_fit": smplify - 10.0, "neuralannot_paper": smplify + 50.0,
           "neuralannot": smplify + [-8.0, -4.0, 0.0, 4.0]}
    seeds = {0: {"per_sample": {k: {"mpjpe_mm": v} for k, v in per.items()}}}
    rows = {k: {"mpjpe_mm": float(v.mean()), "label": LABELS[k]} for k, v in per.items()}
    paired = paired_against_smplify(seeds, rows)
    assert set(paired) == {"best:neuralannot_fit", "alone:neuralannot"}
    assert paired["best:neuralannot_fit"]["mean"] == pytest.approx(-10.0)
    assert paired["alone:neuralannot"]["mean"] == pytest.approx(-2.0)
    lines = claim_lines(rows, paired, BenchConfig())
    assert any("f alone" in line and "-2.0 mm" in line for line in lines)


@pytest.mark.parametrize("f_key", ["neuralannot", "neuralannot_kp2d_in"])
def test_scale_from_results_rebuilds_the_table_with_recomputed_paired_lines(tmp_path, f_key):
    """``bench_annot_scale.py --from-results`` runs nothing: from a saved N-folder ``results.json`` (here written by
    hand) it writes scale.{md,json,png} whose paired line for f alone is the hand-computed mean difference. A file
    written before the rename (the project's f under ``neuralannot_kp2d_in``) reads the same."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_annot_scale", Path(__file__).resolve().parents[1] / "tools" / "bench_annot_scale.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    smplify = [150.0, 160.0, 170.0]
    per = {"smplify": smplify, f_key: [140.0, 150.0, 175.0], "neuralannot_fit": [130.0, 150.0, 160.0]}
    rows = {k: {"label": LABELS.get(k, k), "mpjpe_mm": float(np.mean(v)), "mpjpe_mm_lo": float("nan"),
                "mpjpe_mm_hi": float("nan"), "seconds_per_sample": 1.0} for k, v in per.items()}
    saved = {"rows": rows, "per_seed": {"0": {"per_sample": {k: {"mpjpe_mm": v} for k, v in per.items()}}},
             "paired_vs_smplify_mpjpe_mm": {}, "total_s": 1.0, "config": {}}
    (tmp_path / "N8").mkdir()
    (tmp_path / "N8" / "results.json").write_text(json.dumps(saved))
    assert tool.main(["--out", str(tmp_path), "--sizes", "8", "--from-results"]) == 0
    scale = json.loads((tmp_path / "scale.json").read_text())["8"]
    assert scale["paired_vs_smplify_mpjpe_mm"]["alone:neuralannot"]["mean"] == pytest.approx(-5.0)
    assert scale["paired_vs_smplify_mpjpe_mm"]["best:neuralannot_fit"]["mean"] == pytest.approx(-40.0 / 3)
    assert "-5.0" in (tmp_path / "scale.md").read_text() and (tmp_path / "scale.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="N16"):
        tool.main(["--out", str(tmp_path), "--sizes", "16", "--from-results"])
