"""Stage provenance covers exactly what a stage reads (issue #12), in both directions:

* no stale reuse: images repaired in place (same paths, new bytes / modification times) make stages
  (b) and (c) run again, and the old "truncated image" skip disappears;
* no needless retraining: a new target annotation file reruns (b) and (c) but reuses stage (a) and the
  prior, which do not read the target.

Reference: the ``completed_at`` of each stage's ``stage.json`` marker (a stage that reran has a new one)
and the known content of the COCO samples (annotation 442619 is the only person of image 785).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from annot.annotator.config import AnnotateConfig
from annot.annotator.pipeline import run_annotate
from annot.config import load_config
from tests.helpers import COCO, FREE, NEEDS_COCO_AND_FREE_MODEL, REPO, SHARED  # noqa: E402

pytestmark = NEEDS_COCO_AND_FREE_MODEL


def _config(root: Path, out: Path, ann_file: str = "test_coco.json"):
    return load_config(AnnotateConfig, REPO / "configs/annotate/body_free.yaml", [
        f"data.root={root}", f"data.ann_file={ann_file}", f"body_model.path={FREE}", f"export.out_dir={out}",
        "num_threads=1", "trainer.max_steps=2", "trainer.enable_progress_bar=false", "data.input_hw=[64,48]",
        "data.batch_size=4", "export.overlays=false", "model.backbone_depth=18", "model.hidden_dim=32",
        f"auxiliary.cmu.args.root={SHARED / 'mocap_cmu'}", "auxiliary.cmu.args.pattern=cmu_01_01.bvh",
        "aux_stage.max_steps=2", "aux_stage.hidden_dim=32", "aux_stage.batch_size=16", "prior.max_epochs=1",
        "prior.num_neurons=32", "prior.batch_size=64"])


def _completed(report: dict) -> dict[str, str]:
    return {name: marker["completed_at"] + str(marker["wall_time_s"]) for name, marker in report["stages"].items()}


@pytest.fixture
def first_run(tmp_path):
    root = tmp_path / "coco"
    root.mkdir()
    for f in COCO.iterdir():
        shutil.copyfile(f, root / f.name)
    jpg = root / "000000000785.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])  # broken: skipped as truncated
    out = tmp_path / "out"
    report = run_annotate(_config(root, out))
    assert json.loads((out / "skipped.json").read_text())["442619"].startswith("truncated image")
    return root, out, report


def test_repaired_images_rerun_b_and_c_but_not_a(first_run):
    root, out, first = first_run
    shutil.copyfile(COCO / "000000000785.jpg", root / "000000000785.jpg")  # repaired in place
    again = run_annotate(_config(root, out))
    before, after = _completed(first), _completed(again)
    assert after["stage_a_cmu"] == before["stage_a_cmu"] and after["prior"] == before["prior"]
    assert after["stage_b_round1"] != before["stage_b_round1"] and after["stage_c_round1"] != before["stage_c_round1"]
    assert "442619" in json.loads((out / "pseudo_gt.json").read_text())
    assert "442619" not in json.loads((out / "skipped.json").read_text())


def test_new_target_reuses_stage_a_and_the_prior(first_run):
    root, out, first = first_run
    data = json.loads((root / "test_coco.json").read_text())
    data["annotations"] = [a for a in data["annotations"] if a["id"] != 437295]
    (root / "other.json").write_text(json.dumps(data))
    again = run_annotate(_config(root, out, ann_file="other.json"))
    before, after = _completed(first), _completed(again)
    assert after["stage_a_cmu"] == before["stage_a_cmu"] and after["prior"] == before["prior"]
    assert after["stage_b_round1"] != before["stage_b_round1"] and after["stage_c_round1"] != before["stage_c_round1"]
    pgt, skipped = (json.loads((out / f).read_text()) for f in ("pseudo_gt.json", "skipped.json"))
    assert "437295" not in pgt and "437295" not in skipped and len(pgt) + len(skipped) == 13
    # and nothing changed: everything is reused
    third = run_annotate(_config(root, out, ann_file="other.json"))
    assert _completed(third) == after
