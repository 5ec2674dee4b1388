"""Algorithm 1 with an auxiliary MoCap set *with images* (the H36M fixture, MoCap mode image + joints),
mixed half/half with the target (the COCO fixture), and the two-stage round. Slow: a few minutes on
2 CPU cores."""
import json
from pathlib import Path

import pytest
import yaml

from annot.annotator.config import AnnotateConfig
from annot.annotator.pipeline import run_annotate
from annot.config import load_config
from annot.data.fixtures import fixture_writer

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")]


def test_mixed_batches_and_second_round(tmp_path):
    h36m = fixture_writer("h36m")(tmp_path / "h36m", body_model_path=str(FREE))
    coco = fixture_writer("coco")(tmp_path / "coco", body_model_path=str(FREE))
    cfg_file = tmp_path / "mini.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "body_model": {"model_type": "free", "path": str(FREE)},
        "data": {"root": str(coco), "ann_file": "annotations/person_keypoints_train2017.json",
                 "img_dir": "images/train2017", "input_hw": [64, 48], "convention": "pose2pose33", "batch_size": 4},
        "auxiliary": {"h36m": {"dataset": "h36m", "config": str(REPO / "configs/data/h36m.yaml"),
                               "args": {"root": str(h36m), "subjects": [1]}}},
        "aux_stage": {"max_steps": 3, "batch_size": 4, "hidden_dim": 32, "joints3d_convention": "pose2pose33"},
        "prior": {"max_epochs": 1, "num_neurons": 32},
        "algorithm": {"aux_ratio": 0.5, "second_round": True},
        "model": {"backbone_depth": 18, "hidden_dim": 32},
        "trainer": {"max_steps": 3, "enable_progress_bar": False},
        "export": {"out_dir": str(tmp_path / "out"), "overlays": False, "eval_every_n_steps": 1},
    }))
    report = run_annotate(load_config(AnnotateConfig, cfg_file))
    out = tmp_path / "out"
    assert set(report["stages"]) == {"stage_a_h36m", "prior", "stage_b_round1", "stage_c_round1",
                                     "stage_b_round2", "stage_c_round2"}
    # stage (a) on images writes NeuralAnnot-layout pseudo-GTs keyed by the H36M sample ids
    aux = json.loads((out / "stage_a_h36m" / "pseudo_gt.json").read_text())
    assert len(aux) == 4
    # the mixed stage (b) logged exact half/half batches
    metrics = (out / "stage_b_round1" / "logs" / "metrics.csv").read_text()
    header = metrics.splitlines()[0].split(",")
    assert "train/mix/target" in header and "train/mix/h36m" in header
    rows = [dict(zip(header, line.split(","))) for line in metrics.splitlines()[1:]]
    counts = [(float(r["train/mix/target"]), float(r["train/mix/h36m"])) for r in rows if r["train/mix/target"]]
    assert counts and all(t == h for t, h in counts)   # half target, half auxiliary, exactly
    assert report["counts"]["annotated"] == 4 and report["counts"]["skipped"] == 1
