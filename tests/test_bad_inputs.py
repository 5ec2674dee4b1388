"""Bad input never ends in a traceback or a silent loss (issue #12); one test per row of the table in
BENCHMARKS.md "Bad input".

* Preflight: every problem of the config, the datasets (target and auxiliary), the VPoser and the
  body model is reported together, before any training (no stage folder is created), with exit status 2,
  one clear line each, and no traceback unless ``--debug``.
* Damaged samples at run time are skipped with a counted reason in ``skipped.json`` and never exported;
  the run finishes.

The commands run in-process through the same boundary as the CLI (``annot.app.cli.run_tool``), except one
real subprocess that checks the whole command line. References: the written files and the known
content of the COCO samples (14 annotations, 2 without keypoints; image 785 holds annotation 442619,
image 40083 holds 198196, 230195 and 1202706).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from annot.app.cli import run_tool
from tests.helpers import COCO, FREE, NEEDS_COCO_AND_FREE_MODEL, REPO, SHARED  # noqa: E402
from tests.test_runtime import TOOLS

pytestmark = NEEDS_COCO_AND_FREE_MODEL
#: Preflight wall-time bound on a loaded 2-core machine (measured 1-6 s; training would take minutes).
PREFLIGHT_BOUND_S = 60.0


def _base(out: Path, root: Path = COCO, body_model: bool = True) -> list[str]:
    return ["--config", str(REPO / "configs/annotate/body_free.yaml"), f"data.root={root}",
            *([f"body_model.path={FREE}"] if body_model else []), f"export.out_dir={out}", "num_threads=1",
            "trainer.max_steps=3", "trainer.enable_progress_bar=false", "data.input_hw=[64,48]", "data.batch_size=4",
            "export.overlays=false", "model.backbone_depth=18", "model.hidden_dim=32",
            f"auxiliary.cmu.args.root={SHARED / 'mocap_cmu'}", "auxiliary.cmu.args.pattern=cmu_01_01.bvh",
            "aux_stage.max_steps=2", "aux_stage.hidden_dim=32", "aux_stage.batch_size=16", "prior.max_epochs=1",
            "prior.num_neurons=32", "prior.batch_size=64"]


def _annotate(argv: list[str], capfd) -> tuple[int, str]:
    """Run tools/annotate.py's main inside the CLI boundary; returns (status, stderr)."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import annotate  # tools/annotate.py
    finally:
        sys.path.remove(str(REPO / "tools"))
    capfd.readouterr()
    status = run_tool(annotate.main, argv)
    return status, capfd.readouterr().err


def _copy_coco(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in COCO.iterdir():
        shutil.copyfile(f, dst / f.name)  # writable copies (the shared files are read-only)
    return dst


def _coco_json(root: Path) -> dict:
    return json.loads((root / "test_coco.json").read_text())


# --------------------------------------------------------------------------------------- preflight
def _bad_json(tmp: Path) -> list[str]:
    (tmp / "bad.json").write_text('{"images": [}')
    return [f"data.ann_file={tmp / 'bad.json'}"]


def _zero_samples(tmp: Path) -> list[str]:
    data = _coco_json(COCO)
    data["annotations"] = [a for a in data["annotations"] if a["num_keypoints"] == 0]
    (tmp / "empty.json").write_text(json.dumps(data))
    return [f"data.ann_file={tmp / 'empty.json'}"]


def _corrupt_pickle(tmp: Path) -> list[str]:
    (tmp / "SMPL_NEUTRAL.pkl").write_bytes(FREE.read_bytes()[:5000])  # truncated pickle
    return [f"body_model.path={tmp / 'SMPL_NEUTRAL.pkl'}"]


def _vposer_wrong_keys(tmp: Path) -> list[str]:
    torch.save({"state_dict": {"vp_model.foo.weight": torch.zeros(3)}}, tmp / "vposer.ckpt")
    return [f"prior.vposer_path={tmp / 'vposer.ckpt'}"]


#: (case id, overrides or a builder of them, expected text in the message)
PREFLIGHT_CASES = [
    ("wrong data.root", ["data.root=/no/such/coco"], "data: COCO root folder not found"),
    ("wrong data.dataset", ["data.dataset=cocoo"], "data.dataset: 'cocoo' is not one of"),
    ("wrong data.ann_file", ["data.ann_file=nope.json"], "annotation file not found"),
    ("bad prior.vposer_path", ["prior.vposer_path=/no/such/vposer"], "prior.vposer_path:"),
    ("invalid choice prior.pose_prior=vposr", ["prior.pose_prior=vposr"], "did you mean 'vposer'?"),
    ("negative data.batch_size", ["data.batch_size=-3"], "data.batch_size: must be > 0, got -3"),
    ("unknown camera model", ["model.camera_model=fisheye"], "model.camera_model: 'fisheye' is not one of"),
    ("wrong auxiliary root", ["auxiliary.cmu.args.root=/no/such/cmu"], "auxiliary.cmu:"),
    ("invalid JSON", _bad_json, "not valid JSON"),
    ("zero samples", _zero_samples, "zero samples to annotate"),
    ("corrupt body-model pickle", _corrupt_pickle, "body_model:"),
    ("VPoser checkpoint with wrong keys", _vposer_wrong_keys, "prior.vposer_path:"),
    ("unknown loader argument", ["data.extra.foo=1"], "data.extra.foo: not an argument of the 'coco' loader"),
]


@pytest.mark.parametrize("case, overrides, expected", PREFLIGHT_CASES, ids=[c[0] for c in PREFLIGHT_CASES])
def test_preflight_reports_before_training(case, overrides, expected, tmp_path, capfd):
    extra = overrides(tmp_path) if callable(overrides) else overrides
    out = tmp_path / "out"
    start = time.perf_counter()
    status, err = _annotate(_base(out) + extra, capfd)
    elapsed = time.perf_counter() - start
    assert status == 2, err
    assert expected in err, err
    assert "Traceback" not in err and "preflight of annotate-body failed" in err and "nothing trained" in err
    assert not out.exists() or not any(out.iterdir())  # no stage ran
    assert elapsed < PREFLIGHT_BOUND_S


def test_all_problems_are_reported_together(tmp_path, capfd):
    status, err = _annotate(_base(tmp_path / "out") + ["data.root=/no/such/coco", "prior.pose_prior=vposr",
                                                        "data.batch_size=-3", "trainer.max_steps=0"], capfd)
    assert status == 2 and "4 problems" in err, err
    for key in ("data:", "prior.pose_prior:", "data.batch_size:", "trainer.max_steps:"):
        assert f"  - {key}" in err


def test_h36m_target_with_no_frame_on_the_stride_is_an_error(tmp_path, capfd):
    """Human3.6M as the target (its loader takes no ann_file / img_dir: no TypeError) whose frames all fall
    between the default training stride (5): zero samples, reported with the stride and the key to set."""
    from annot.data.fixtures import fixture_writer

    root = fixture_writer("h36m")(tmp_path / "h36m", body_model_path=str(FREE))
    data_json = root / "annotations" / "Human36M_subject1_data.json"
    data = json.loads(data_json.read_text())
    for img in data["images"]:
        img["frame_idx"] += 1  # frames 1, 6, 65, ...: none is a multiple of 5
    data_json.write_text(json.dumps(data))
    status, err = _annotate(_base(tmp_path / "out", root=root) + [
        "data.dataset=h36m", "data.convention=h36m17", "data.extra.subjects=[1]"], capfd)
    assert status == 2 and "zero samples to annotate (h36m: loaded 0" in err, err
    assert "frame_stride=5" in err and "data.extra.frame_stride" in err and "Traceback" not in err


def test_body_models_dir_pointing_at_a_file_is_an_error(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("BODY_MODELS_DIR", str(FREE))
    status, err = _annotate(_base(tmp_path / "out", body_model=False), capfd)
    assert status == 2 and "$BODY_MODELS_DIR" in err and "is a file" in err, err


def test_config_errors_and_debug_traceback(tmp_path, capfd):
    status, err = _annotate(_base(tmp_path / "out") + ["trainer.max_step=3"], capfd)
    assert status == 2 and "invalid config key 'trainer.max_step'" in err and "Traceback" not in err
    status, err = _annotate(["--config", str(tmp_path / "missing.yaml")], capfd)
    assert status == 2 and "config file not found" in err and "Traceback" not in err
    status, err = _annotate(_base(tmp_path / "out") + ["data.batch_size=-3", "--debug"], capfd)
    assert status == 2 and "Traceback" in err and "data.batch_size" in err


def test_other_tools_print_one_line(tmp_path, capfd):
    """tools/evaluate.py on a file that is not a checkpoint, tools/train_prior.py on a bad npz."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import evaluate as evaluate_tool
        import train_prior as train_prior_tool
    finally:
        sys.path.remove(str(REPO / "tools"))
    (tmp_path / "x.ckpt").write_bytes(b"not a checkpoint")
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04broken")
    capfd.readouterr()
    assert run_tool(evaluate_tool.main, [str(tmp_path / "x.ckpt")]) == 2
    assert run_tool(train_prior_tool.main, ["--poses", str(tmp_path / "x.npz"), "--out", str(tmp_path / "p")]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.count("error: ") == 2 and "x.ckpt" in err and "x.npz" in err, err


def test_the_command_line_fails_fast_without_traceback_or_noise(tmp_path):
    """The real command: exit 2, one block, no traceback, in seconds (a subprocess)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(REPO / "tools/annotate.py"), *_base(tmp_path / "out"),
                           "data.root=/no/such/coco", "prior.pose_prior=vposr"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "2 problems" in proc.stderr
    assert time.perf_counter() - start < PREFLIGHT_BOUND_S + 30  # + interpreter and torch import


# --------------------------------------------------------------------------------------- run time
def test_damaged_samples_are_counted_skips_and_the_run_finishes(tmp_path, capfd, caplog, monkeypatch):
    """One run with: a JPEG truncated to half its bytes (decodes with a grey half: must be skipped), a json
    height 2 px off the file (the file wins, counted warning), and a sample whose loading fails at
    training and prediction time (skipped with its reason; the batch goes on)."""
    from annot.data.coco import COCOKeypoints

    root = _copy_coco(tmp_path / "coco")
    jpg = root / "000000000785.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    data = _coco_json(root)
    for img in data["images"]:
        if img["id"] == 40083:
            img["height"] += 2
    (root / "test_coco.json").write_text(json.dumps(data))
    original = COCOKeypoints.read_image

    def flaky(self, record):
        if str(record.sample_id) == "460541":
            raise ValueError(f"{record.image_path}: cannot decode image (coco sample_id 460541)")
        return original(self, record)

    monkeypatch.setattr(COCOKeypoints, "read_image", flaky)
    out = tmp_path / "out"
    status, err = _annotate(_base(out, root=root), capfd)
    assert status == 0, err
    assert "Traceback" not in err and "💡 Tip" not in err and "LeafSpec" not in err  # quiet entry point
    pgt = json.loads((out / "pseudo_gt.json").read_text())
    skipped = json.loads((out / "skipped.json").read_text())
    assert skipped["442619"] == "truncated image (no end-of-image marker)"
    assert skipped["460541"].startswith("failed to load: ValueError") and "460541" in skipped["460541"]
    assert {"1202706", "508900"} <= set(skipped) and len(skipped) == 4
    assert len(pgt) == 10 and not set(pgt) & set(skipped)
    assert {"198196", "230195"} <= set(pgt)  # the size mismatch is a warning, not a skip
    assert "file is 333x500 (HxW), json says 335x500: the file's size is used (coco sample_id 198196)" in caplog.text
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["skip_reasons"]["truncated image (no end-of-image marker)"] == 1
    assert report["counts"]["image_check"] == {"images": 4, "skipped": 1, "size_fixed": 2}


def test_image_status_detects_truncation_and_sizes(tmp_path):
    from annot.data.robust import SKIP_TRUNCATED, SKIP_UNDECODABLE, image_status

    good = COCO / "000000040083.jpg"
    assert image_status(good).problem is None and image_status(good).hw == (333, 500)
    half = tmp_path / "half.jpg"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert image_status(half).problem == SKIP_TRUNCATED
    import cv2

    decoded = cv2.imread(str(half))  # what the loader would have used: a decodable, damaged image
    assert decoded is not None and decoded.shape[:2] == (333, 500)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    assert image_status(tmp_path / "empty.jpg").problem == SKIP_UNDECODABLE
    assert image_status(tmp_path / "text.jpg").problem == SKIP_UNDECODABLE
    assert image_status(tmp_path / "missing.jpg").problem == "missing image file"
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), np.zeros((5, 7, 3), np.uint8))
    assert image_status(png) .hw == (5, 7) and image_status(png).problem is None
    png.write_bytes(png.read_bytes()[:-12])
    assert image_status(png).problem == SKIP_TRUNCATED


def test_skipping_dataset_train_substitutes_predict_masks(tmp_path):
    from torch.utils.data import DataLoader

    from annot.data import build_dataset
    from annot.data.robust import SkippingDataset, load_errors, validate_image_records

    root = _copy_coco(tmp_path / "coco")
    ds = build_dataset("coco", root=str(root), ann_file="test_coco.json", input_hw=(64, 48))
    assert validate_image_records(ds) == {"images": 4, "skipped": 0, "size_fixed": 0}
    victim = ds.records[1]
    Path(victim.image_path).unlink()  # changed after indexing: fails at load time
    failing = {str(r.sample_id) for r in ds.records if r.image_path == victim.image_path}
    train = SkippingDataset(ds, "train")
    batch = next(iter(DataLoader(train, batch_size=len(train), shuffle=False)))
    assert set(load_errors(batch)) == failing and len(batch["sample_id"]) == len(ds)
    assert not failing & set(batch["sample_id"])  # stand-ins are other, loadable samples
    predict = SkippingDataset(ds, "predict")
    batch = next(iter(DataLoader(predict, batch_size=len(predict), shuffle=False)))
    assert set(load_errors(batch)) == failing and list(batch["sample_id"]) == [str(r.sample_id) for r in ds.records]
    for i, sid in enumerate(batch["sample_id"]):
        if sid in failing:
            assert float(batch["img"][i].abs().sum()) == 0.0 and float(batch["kp2d_mask"][i].sum()) == 0.0


@pytest.mark.slow
def test_failing_sample_of_an_image_auxiliary_set_is_left_out_of_stage_a(tmp_path, caplog, monkeypatch):
    """An auxiliary set with images (the H36M fixture, mixed batches): a sample whose loading fails is
    substituted in training (stages (a) and (b)) and left out of stage (a)'s pseudo-GTs; the run finishes."""
    from annot.annotator.config import AnnotateConfig
    from annot.annotator.pipeline import run_annotate
    from annot.config import load_config
    from annot.data.fixtures import fixture_writer
    from annot.data.h36m import Human36M

    h36m = fixture_writer("h36m")(tmp_path / "h36m", body_model_path=str(FREE))
    coco = fixture_writer("coco")(tmp_path / "coco", body_model_path=str(FREE))
    original = Human36M.read_image
    victims: list[str] = []

    def flaky(self, record):
        if not victims:
            victims.append(str(record.sample_id))
        if str(record.sample_id) == victims[0]:
            raise ValueError(f"{record.image_path}: cannot decode image (h36m sample_id {record.sample_id})")
        return original(self, record)

    monkeypatch.setattr(Human36M, "read_image", flaky)
    cfg = load_config(AnnotateConfig, None, [
        "body_model.model_type=free", f"body_model.path={FREE}", f"data.root={coco}",
        "data.ann_file=annotations/person_keypoints_train2017.json", "data.img_dir=images/train2017",
        "data.input_hw=[64,48]", "data.convention=pose2pose33", "data.batch_size=4",
        "auxiliary.h36m.dataset=h36m", f"auxiliary.h36m.config={REPO / 'configs/data/h36m.yaml'}",
        f"auxiliary.h36m.args.root={h36m}", "auxiliary.h36m.args.subjects=[1]", "aux_stage.max_steps=2",
        "aux_stage.batch_size=4", "aux_stage.hidden_dim=32", "aux_stage.joints3d_convention=pose2pose33",
        "prior.max_epochs=1", "prior.num_neurons=32", "model.backbone_depth=18", "model.hidden_dim=32",
        "trainer.max_steps=2", "trainer.enable_progress_bar=false", f"export.out_dir={tmp_path / 'out'}",
        "export.overlays=false", "num_threads=1"])
    report = run_annotate(cfg)
    assert report["counts"]["annotated"] > 0
    stage_a = json.loads((tmp_path / "out" / "stage_a_h36m" / "pseudo_gt.json").read_text())
    assert victims and victims[0] not in stage_a and len(stage_a) >= 1
    assert f"h36m sample_id {victims[0]} skipped: failed to load" in caplog.text
    assert "prediction: 1 samples failed to load and are left out" in caplog.text


@pytest.mark.parametrize("path", TOOLS, ids=lambda p: p.name)
def test_every_tool_runs_inside_the_error_boundary(path):
    """Each tool's ``__main__`` block exits through :func:`annot.app.cli.run_tool` (one clean line for bad input)."""
    import ast

    tree = ast.parse(path.read_text())
    mains = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert mains, f"{path.name}: no __main__ block"
    assert "run_tool(" in ast.unparse(mains[-1]), f"{path.name}: exit through annot.app.cli.run_tool"
