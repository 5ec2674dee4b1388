"""``tools/gpu_check.sh --dry-run``: the prepared GPU check (issue #15) at tiny sizes on CPU, so the script
cannot rot between GPU loans. Every part must print its section line and succeed, the summary files must
be written, and the whole run must stay under 5 minutes (times GPU_CHECK_BUDGET_SCALE, an integer the
script multiplies its time budgets by, for a heavily shared CPU; default 1)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("env", "versions", "render", "train_eager", "annotate_eager", "synthetic", "bench_neuralannot",
         "bench_all", "train_compile", "annotate_compile")


def test_methods_filter_skips_unknown_with_a_line():
    proc = subprocess.run([sys.executable, "tools/gpu_check.py", "methods", "neuralannot", "no_such_method",
                           "smplify"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["neuralannot", "smplify"]
    assert "'no_such_method' is not in this checkout's bench_annot" in proc.stderr


def test_collect_writes_json_and_markdown(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    (work / "status.tsv").write_text("train_eager\tok\t0\t12.5\t45\nbench_all\ttimeout\t124\t60.2\t60\n")
    settings = {"precision": "bf16", "channels_last": True, "compile": False, "batch_size": 192, "depth": 50}
    (work / "train_eager.json").write_text(json.dumps({"results": [
        {"task": "train", "settings": settings, "annotator_samples_per_s": 600.0,
         "bare_resnet_samples_per_s": 1000.0, "ratio": 0.6}]}))
    (work / "train_eager.stats.json").write_text(json.dumps({"exit": 0, "cuda_peak_allocated_mib": 2048.0}))
    (work / "train_eager.smi").write_text("1000\n4096\n3000\n")
    subprocess.run([sys.executable, "tools/gpu_check.py", "collect", "--work", str(work), "--out", str(out)],
                   cwd=REPO, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    result = json.loads((out / "gpu_check.json").read_text())
    part = result["parts"][0]
    assert part["samples_per_s"] == 600.0 and part["nvidia_smi_peak_mib"] == 4096.0
    assert part["cuda_peak_allocated_mib"] == 2048.0
    md = (out / "gpu_check.md").read_text()
    assert "| train | bf16 | NHWC | off | 192 | 50 | 600.0 | 1000.0 | 0.600 | 0.60 met |" in md
    assert "not ok: bench_all" in md


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    scale = int(os.environ.get("GPU_CHECK_BUDGET_SCALE", "1"))
    env = {**os.environ, "OUT": str(tmp_path), "GPU_CHECK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run(["bash", "tools/gpu_check.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=360 * scale)
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    for part in PARTS:
        assert f"=== [{part}] start" in log, part
        assert f"=== [{part}] ok" in log, f"part {part} not ok:\n{log[-6000:]}"
    assert "=== gpu-check done" in log
    assert proc.returncode == 0, log[-6000:]
    assert seconds < 300 * scale, f"dry run took {seconds:.0f} s"
    files = sorted(p.name for p in tmp_path.iterdir())
    assert {"gpu_check.json", "gpu_check.md", "gpu_check.log"} <= set(files) and len(files) <= 8, files
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [p["part"] for p in result["parts"]] == list(PARTS)
    assert {(r["task"], r["channels_last"], r["compile"]) for r in result["throughput"]} == {
        ("train", False, False), ("train", True, False), ("annotate", False, False), ("annotate", True, False),
        ("train", True, True), ("annotate", True, True)}
    assert "neuralannot" in result["bench_annot"]["bench_all"]["rows"]
    assert "smplify" in result["bench_annot"]["bench_all"]["rows"]
