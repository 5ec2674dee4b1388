"""``annot.benchmarks.two_stage`` (``make bench-two-stage``): a tiny end-to-end run through the tool (1 seed, 3 ITW
people, 2 x 2 steps, 64x48 crops, random backbone), the GT row reading exactly the hidden GT, reuse of the
quality benchmark's saved pseudo-GTs and of finished rows (evidence: the run's record of what it trained, not
timing), retraining of exactly the row whose pseudo-GTs changed, and the aggregation / scatter / curve code on
hand-made numbers (references: hand-computed means, t intervals and correlations)."""
from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from annot.benchmarks.quality import GT_FILE, BenchConfig
from annot.benchmarks.two_stage import TwoStageConfig, pa_mpjpe_curve
from annot.benchmarks.two_stage_report import (
    aggregate,
    claim_lines,
    correlation,
    paired_vs_baseline,
    ranking_along_training,
    scatter_points,
    write_figure,
)

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
CMU = REPO.parent / "shared" / "data" / "mocap_cmu"
TINY_ANNOT = dict(size=3, mocap_size=3, photos_dir=None, cmu_frames=16, smplify_iters=3, pretrained_backbone=False,
                  cmu_root=str(CMU))


def _tool():
    spec = importlib.util.spec_from_file_location("bench_two_stage_tool", REPO / "tools" / "bench_two_stage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _argv(tmp: Path) -> list[str]:
    return ["--seeds", "0", "--rows", "none", "smplify", "gt", "--out", str(tmp / "two"), "--annot-out",
            str(tmp / "annot"), "--size", "3", "--mocap-size", "3", "--test-size", "3", "--photos-dir", "none",
            "--cmu-frames", "16", "--cmu-root", str(CMU), "--smplify-iters", "3", "--no-pretrained-backbone",
            "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "4",
            "--set", "pose2pose.input_hw=[64,48]", "num_threads=1", "trainer.enable_progress_bar=false"]


@pytest.mark.skipif(not FREE.is_file() or not CMU.is_dir(), reason="free body model or CMU clips missing")
def test_tiny_run_reads_gt_reuses_pseudo_gts_and_rows(tmp_path, capsys):
    import torch

    from annot.app.cli import run_tool
    from annot.benchmarks.quality import load_method, run_seed
    from annot.io.export import read_pseudo_gt, write_pseudo_gt

    torch.manual_seed(0)
    # the quality benchmark ran SMPLify on seed 0 first: its saved pseudo-GTs must be read, not recomputed
    acfg = BenchConfig(out=str(tmp_path / "annot" / "seed0"), seed=0, **TINY_ANNOT)
    run_seed(acfg, ("smplify",))
    saved = load_method(acfg, "smplify")
    assert saved is not None and len(saved["entries"]) == 3
    tool = _tool()
    assert run_tool(tool.main, _argv(tmp_path)) == 0
    out = tmp_path / "two"
    for name in ("results.md", "results.json", "results.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 500, name
    res = json.loads((out / "results.json").read_text())
    assert list(res["rows"]) == ["none", "smplify", "gt"]
    assert res["this_run"]["trained"] == ["seed0/none", "seed0/smplify", "seed0/gt"]
    assert res["this_run"]["pseudo-GTs reused"] == ["seed0/smplify"] and res["this_run"]["annotated"] == []
    seed = res["per_seed"]["0"]
    for row in ("none", "smplify", "gt"):
        for m in ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm"):
            assert math.isfinite(seed[row]["metrics"][m]), (row, m)
        assert [c["step"] for c in seed[row]["curve"]] == [2, 4]  # test PA-MPJPE after each epoch
        assert seed[row]["curve"][-1]["pa_mpjpe_mm"] == pytest.approx(seed[row]["metrics"]["pa_mpjpe_mm"])
        assert seed[row]["steps"] == 4
        assert not (out / "seed0" / row / "train" / "checkpoints").exists()  # removed once evaluated
    # the GT row trains on exactly the hidden GT: its annotator error is zero and every ITW person has a fit
    gt = seed["gt"]
    assert Path(gt["pseudo_gt"]) == tmp_path / "annot" / "seed0" / "synthetic" / "itw" / GT_FILE
    for m in ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "orient_err_deg"):
        assert gt["annotator"][m] == pytest.approx(0.0, abs=1e-3)
    assert gt["annotator"]["scored"] == 3 and "without SMPL fit: 0" in gt["data"]["train"]["itw"]["summary"]
    # the no-pseudo-GT row: no SMPL file for the ITW people, no annotator error
    assert seed["none"]["pseudo_gt"] is None and seed["none"]["annotator"] is None
    assert "without SMPL fit" not in seed["none"]["data"]["train"]["itw"]["summary"]
    assert seed["smplify"]["annotator"]["mpjpe_mm"] > 1.0 and seed["smplify"]["annotation"]["source"] == "reused"
    # every row saw the same ITW, mocap and test samples: only the SMPL targets differ
    assert len({json.dumps(seed[r]["data"]["val"]) for r in seed}) == 1
    sizes = {(seed[r]["data"]["train"]["itw"]["size"], seed[r]["data"]["train"]["mocap"]["size"]) for r in seed}
    assert len(sizes) == 1
    md = (out / "results.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3 and "estimator PA-MPJPE" in table[0]
    for row in res["rows"].values():
        assert row["label"] in md
    assert "no-pseudo-GT row's (same seed)" in md

    # second run: nothing retrained, nothing annotated
    capsys.readouterr()
    assert run_tool(tool.main, _argv(tmp_path)) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["this_run"]["trained"] == [] and again["this_run"]["annotated"] == []
    assert again["this_run"]["reused rows"] == ["seed0/none", "seed0/smplify", "seed0/gt"]
    assert again["per_seed"]["0"]["gt"]["metrics"] == seed["gt"]["metrics"]

    # changed pseudo-GTs of one annotator: exactly that row retrains
    path = tmp_path / "annot" / "seed0" / "smplify" / "pseudo_gt.json"
    entries = read_pseudo_gt(path)
    first = next(iter(entries))
    entries[first] = replace(entries[first], betas=entries[first].betas + 0.5)
    write_pseudo_gt(path, entries)
    assert run_tool(tool.main, _argv(tmp_path)) == 0
    third = json.loads((out / "results.json").read_text())
    assert third["this_run"]["trained"] == ["seed0/smplify"]


def test_bad_rows_and_ratio_are_refused():
    with pytest.raises(ValueError, match="unknown rows"):
        TwoStageConfig(rows=("none", "bogus"))
    with pytest.raises(ValueError, match="itw_ratio"):
        TwoStageConfig(itw_ratio=1.0)


def _hand_made() -> dict[int, dict[str, dict]]:
    """3 seeds; annotator errors x and estimator PA-MPJPE y = 0.5 x + 50 + seed for the annotators."""
    per_seed = {}
    for seed in (0, 1, 2):
        rows = {"none": {"metrics": {"mpjpe_mm": 200.0, "pa_mpjpe_mm": 120.0 + 2 * seed, "mpvpe_mm": 230.0},
                         "annotator": None, "seconds": 10.0,
                         "curve": [{"epoch": 0, "step": 100, "pa_mpjpe_mm": 150.0},
                                   {"epoch": 1, "step": 200, "pa_mpjpe_mm": 120.0 + 2 * seed}]}}
        for key, x, early in (("smplify", 160.0, 140.0), ("neuralannot", 240.0, 145.0), ("gt", 0.0, 160.0)):
            y = 0.5 * x + 50.0 + seed
            rows[key] = {"metrics": {"mpjpe_mm": y + 100, "pa_mpjpe_mm": y, "mpvpe_mm": y + 120},
                         "annotator": {"mpjpe_mm": x, "pa_mpjpe_mm": x / 2, "mpvpe_mm": x, "orient_err_deg": 0.0},
                         "seconds": 10.0 + seed, "label": key.upper(),
                         "curve": [{"epoch": 0, "step": 100, "pa_mpjpe_mm": early},
                                   {"epoch": 1, "step": 200, "pa_mpjpe_mm": y}]}
        per_seed[seed] = rows
    return per_seed


def test_aggregation_scatter_and_ranking_on_hand_made_numbers(tmp_path):
    per_seed = _hand_made()
    rows = aggregate(per_seed)
    # smplify: y = 130, 131, 132 -> mean 131, sd 1, t_{0.975, 2} = 4.302653 -> half width 4.302653 / sqrt(3)
    half = 4.302653 / math.sqrt(3)
    assert rows["smplify"]["pa_mpjpe_mm"] == pytest.approx(131.0)
    assert rows["smplify"]["pa_mpjpe_mm_lo"] == pytest.approx(131.0 - half, rel=1e-6)
    assert rows["smplify"]["pa_mpjpe_mm_hi"] == pytest.approx(131.0 + half, rel=1e-6)
    assert rows["smplify"]["annot_mpjpe_mm"] == 160.0 and rows["smplify"]["annot_mpjpe_mm_lo"] == 160.0
    assert math.isnan(rows["none"]["annot_mpjpe_mm"]) and rows["none"]["seeds"] == 3
    assert rows["smplify"]["train_s"] == pytest.approx(11.0)
    # paired against "none": smplify - none = 130 - 120, 131 - 122, 132 - 124 = 10, 9, 8 -> mean 9, sd 1
    paired = paired_vs_baseline(per_seed)
    assert set(paired) == {"smplify", "neuralannot", "gt"}
    assert paired["smplify"]["mean"] == pytest.approx(9.0)
    assert paired["smplify"]["low"] == pytest.approx(9.0 - half, rel=1e-6) and paired["smplify"]["seeds"] == 3
    assert paired["gt"]["high"] < 0  # 50 + s - (120 + 2 s) = -70 - s
    # scatter: 3 annotators x 3 seeds; y = 0.5 x + 50 + seed: Pearson r from numpy, Spearman by hand
    points = scatter_points(per_seed)
    assert len(points) == 9 and {p["row"] for p in points} == {"smplify", "neuralannot", "gt"}
    corr = correlation(points)
    x, y = np.array([p["x"] for p in points]), np.array([p["y"] for p in points])
    assert corr["n"] == 9 and corr["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert corr["pearson_r"] > 0.99 and corr["pearson_p"] < 1e-6
    # Spearman: x ranks are the annotators' tied ranks (2, 2, 2, 5, 5, 5, 8, 8, 8), y ranks 1..9: rho =
    # sd(group means of 1..9) / sd(1..9) = sqrt(6 / (60 / 9)) = sqrt(0.9)
    assert corr["spearman_rho"] == pytest.approx(math.sqrt(0.9))
    assert math.isnan(correlation(points[:2])["pearson_r"])
    # ranking per epoch end: at step 100 smplify 140 < neuralannot 145 < none 150 < gt 160; at 200 by final y
    ranking = ranking_along_training(per_seed)
    assert [e["step"] for e in ranking] == [100, 200]
    assert ranking[0]["order"] == ["smplify", "neuralannot", "none", "gt"]
    assert ranking[1]["order"] == ["gt", "none", "smplify", "neuralannot"]
    lines = claim_lines(rows, paired, corr, ranking)
    text = "\n".join(lines)
    assert "**yes**" in text and "the ranking changed" in text
    assert "**HIGHER (worse) than without pseudo-GT**" in text and "LOWER (better)" in text
    write_figure(tmp_path / "results.png", rows, points, corr, per_seed)
    assert (tmp_path / "results.png").stat().st_size > 5000


def test_negative_and_missing_correlation_say_so():
    points = [{"x": float(x), "y": float(100 - x)} for x in range(5)]
    corr = correlation(points)
    assert corr["pearson_r"] == pytest.approx(-1.0)
    rows = {"a": {"label": "A", "pa_mpjpe_mm": 1.0, "annot_mpjpe_mm": 1.0}}
    assert any("the opposite" in line for line in claim_lines(rows, {}, corr, []))
    flat = correlation([{"x": 1.0, "y": 2.0}] * 4)
    assert math.isnan(flat["pearson_r"]) and not any("Pearson" in line for line in claim_lines(rows, {}, flat, []))


def test_pa_mpjpe_curve_reads_epoch_ends_and_drops_the_final_revalidation(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "metrics.csv").write_text(
        "epoch,step,train/loss/total,val/test/pa_mpjpe_mm\n"
        ",0,,\n0,9,1.5,\n0,9,,130.5\n1,19,1.2,\n1,19,,121.25\n2,20,,121.25\n")
    assert pa_mpjpe_curve(tmp_path, epochs=2, steps_per_epoch=10) == [
        {"epoch": 0, "step": 10, "pa_mpjpe_mm": 130.5}, {"epoch": 1, "step": 20, "pa_mpjpe_mm": 121.25}]
    assert pa_mpjpe_curve(tmp_path / "missing", 2, 10) == []
