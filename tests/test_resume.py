"""Resume = same result (issue #12): ``tools/annotate.py`` killed with SIGKILL (by pid) and rerun ends
with a ``pseudo_gt.json`` bit-identical to an uninterrupted run, every annotation id exactly once.

Reference: an uninterrupted run of the same command in its own process (same thread count). The fast
test kills stage (b) right after its first ``resume.ckpt`` (so the rerun really resumes from a
checkpoint, not from step 0); the slow test kills once in every stage at a random moment (seed printed;
``KILL_SEED=<n>`` replays one).

Units: none (files compared byte for byte). Runs on CPU with ``num_threads=1``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import COCO, FREE, NEEDS_COCO_AND_FREE_MODEL, REPO, SHARED  # noqa: E402

pytestmark = NEEDS_COCO_AND_FREE_MODEL
RUN_TIMEOUT_S = 600  # one tiny run takes 20-60 s on a loaded 2-core machine


def _args(out: Path) -> list[str]:
    return [sys.executable, str(REPO / "tools" / "annotate.py"),
            "--config", str(REPO / "configs/annotate/body_free.yaml"),
            f"data.root={COCO}", f"body_model.path={FREE}", f"export.out_dir={out}", "num_threads=1",
            "trainer.max_steps=6", "trainer.checkpoint_every_n_steps=2", "trainer.enable_progress_bar=false",
            "data.input_hw=[64,48]", "data.batch_size=4", "export.batches_per_shard=1", "export.overlays=false",
            "export.eval_every_n_steps=1", "model.backbone_depth=18", "model.hidden_dim=32",
            f"auxiliary.cmu.args.root={SHARED / 'mocap_cmu'}", "auxiliary.cmu.args.pattern=cmu_01_01.bvh",
            "aux_stage.max_steps=3", "aux_stage.hidden_dim=32", "aux_stage.batch_size=16", "prior.max_epochs=1",
            "prior.num_neurons=32", "prior.batch_size=64"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(out: Path) -> str:
    """Run the command to completion; returns its stderr."""
    proc = subprocess.run(_args(out), env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def _kill_when(out: Path, ready, delay_s: float = 0.0) -> bool:
    """Start the command, wait until ``ready(out)`` holds (polling), sleep ``delay_s``, SIGKILL it by pid.
    Returns False when the run finished before the kill."""
    log = open(out.parent / f"{out.name}.log", "ab")
    proc = subprocess.Popen(_args(out), env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not ready(out):
            if proc.poll() is not None:
                return False
            assert time.monotonic() < deadline, "the run never reached the kill point"
            time.sleep(0.05)
        time.sleep(delay_s)
        if proc.poll() is not None:
            return False
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return True
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        log.close()


def _check_ids_once(out: Path) -> None:
    """Every annotation id of the target json is annotated or skipped, exactly once."""
    ann_ids = {str(a["id"]) for a in json.loads((COCO / "test_coco.json").read_text())["annotations"]}
    pgt = json.loads((out / "pseudo_gt.json").read_text())
    skipped = json.loads((out / "skipped.json").read_text())
    assert not set(pgt) & set(skipped)
    assert set(pgt) | set(skipped) == ann_ids and len(pgt) + len(skipped) == len(ann_ids)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    _run(out)
    _check_ids_once(out)
    return out


def test_kill_in_stage_b_after_a_checkpoint_resumes_to_the_same_result(reference, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for done in ("stage_a_cmu", "prior"):  # finished stages are reused (same provenance): only (b) + (c) run
        shutil.copytree(reference / done, out / done)
    resume = out / "stage_b_round1" / "resume.ckpt"
    assert _kill_when(out, lambda o: resume.is_file()), "stage (b) finished before the kill"
    assert not (out / "stage_b_round1" / "stage.json").exists() and resume.is_file()
    log = _run(out)
    assert f"resuming from {resume} at step " in log  # from the checkpoint, not from step 0
    assert "[a:cmu] complete" in log and "[prior] complete" in log
    assert (out / "pseudo_gt.json").read_bytes() == (reference / "pseudo_gt.json").read_bytes()
    assert (out / "stage_b_round1" / "annotator.ckpt").is_file() and not resume.exists()
    _check_ids_once(out)


STAGES = ("stage_a_cmu", "prior", "stage_b_round1", "stage_c_round1")


@pytest.mark.slow
def test_kill_at_random_points_in_every_stage_resumes_to_the_same_result(reference, tmp_path):
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    print(f"KILL_SEED={seed}")
    out = tmp_path / "run"
    killed = []
    for stage in STAGES:
        delay = rng.uniform(0.0, 4.0)
        # the stage has started when its folder exists (run_stage creates it first)
        if _kill_when(out, lambda o, s=stage: (o / s).is_dir() and not (o / s / "stage.json").exists(), delay):
            killed.append((stage, round(delay, 2)))
    print(f"killed in: {killed}")
    assert len(killed) >= 2, f"too few kills landed inside a stage: {killed}"
    _run(out)
    assert (out / "pseudo_gt.json").read_bytes() == (reference / "pseudo_gt.json").read_bytes()
    _check_ids_once(out)
