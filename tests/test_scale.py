"""Scale issue: trainer profiles, the global-batch split, loggers (CSV + offline W&B), the sweep file and
its local expansion, and the throughput benchmarks (one tiny iteration each)."""
from __future__ import annotations

import importlib.util
import json
import math
import socket
from pathlib import Path

import pytest
import torch

from annot.annotator.config import AnnotateConfig, trainer_profile_overrides
from annot.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "configs" / "trainer"
SWEEP_FILE = REPO / "configs" / "sweep" / "reg_weights.yaml"
BASE = REPO / "configs" / "annotate" / "body_free.yaml"
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
needs_free = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- trainer profiles
EXPECTED = {  # profile -> (accelerator, devices, num_nodes, strategy, precision, channels_last)
    "cpu": ("cpu", 1, 1, "auto", "32-true", False),
    "gpu": ("gpu", 1, 1, "auto", "bf16-mixed", True),
    "ddp4": ("gpu", 4, 1, "ddp", "bf16-mixed", True),
    "slurm": ("gpu", 4, 2, "ddp", "bf16-mixed", True),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trainer_profile_merges_between_file_and_command_line(name):
    profile = trainer_profile_overrides(PROFILES / f"{name}.yaml")
    assert all(item.startswith("trainer.") for item in profile)
    cfg = load_config(AnnotateConfig, BASE, profile + ["trainer.max_steps=7"])
    t = cfg.trainer
    assert (t.accelerator, t.devices, t.num_nodes, t.strategy, t.precision, t.channels_last) == EXPECTED[name]
    assert t.compile is False and t.max_steps == 7  # command line wins; untouched keys keep the file's values
    assert cfg.data.batch_size == 12 and cfg.loss.z_l2 == pytest.approx(1e-2)
    # the command line overrides the profile too
    assert load_config(AnnotateConfig, BASE, profile + ["trainer.precision=32-true"]).trainer.precision == "32-true"


def test_every_profile_file_is_tested_and_bad_profiles_fail_with_the_file_name(tmp_path):
    assert {p.stem for p in PROFILES.glob("*.yaml")} == set(EXPECTED)
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices: 2\nnum_gpus: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*num_gpus"):
        trainer_profile_overrides(bad)
    bad.write_text("devices: four\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*devices"):
        trainer_profile_overrides(bad)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        trainer_profile_overrides(tmp_path / "nope.yaml")
    quoted = tmp_path / "q.yaml"
    quoted.write_text("precision: '16-mixed'\nstrategy: ddp_find_unused_parameters_true\n")
    cfg = load_config(AnnotateConfig, None, trainer_profile_overrides(quoted))
    assert cfg.trainer.precision == "16-mixed" and cfg.trainer.strategy == "ddp_find_unused_parameters_true"


def test_annotate_cli_accepts_a_trainer_profile(tmp_path):
    annotate = _tool("annotate")
    code = annotate.main(["--config", str(BASE), "--trainer", str(tmp_path / "missing.yaml")])
    assert code == 2  # a missing profile is a clean error, before anything runs


# ----------------------------------------------------------------------------- global batch split
def _stage_trainer(tmp_path, overrides):
    from annot.annotator.pipeline import _trainer

    cfg = load_config(AnnotateConfig, BASE, ["trainer.logger=none", f"export.out_dir={tmp_path}", *overrides])
    return _trainer(cfg, tmp_path / "stage", 3, [], 3)


def test_global_batch_split_error_names_the_key_and_the_world_size(tmp_path):
    from annot.data.datamodule import split_global_batch

    assert split_global_batch(192, 4) == 48 and split_global_batch(192, 8) == 24
    with pytest.raises(ValueError, match=r"192 does not divide over 5 devices.*multiple of 5"):
        split_global_batch(192, 5)
    # the pipeline's trainer checks every global batch against devices x num_nodes (CPU DDP: not launched)
    two = ["trainer.devices=2", "trainer.strategy=ddp"]
    assert _stage_trainer(tmp_path, two).world_size == 2  # 12 and 64 divide by 2
    with pytest.raises(ValueError, match=r"data\.batch_size=13 does not divide over 2 ranks.*trainer\.devices=2"):
        _stage_trainer(tmp_path, [*two, "data.batch_size=13"])
    with pytest.raises(ValueError, match=r"aux_stage\.batch_size=64 does not divide over 3 ranks"):
        _stage_trainer(tmp_path, ["trainer.devices=3", "trainer.strategy=ddp"])


# ----------------------------------------------------------------------------- loggers
@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B in offline mode with its files under tmp_path; any network connection fails the test."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    connect = socket.socket.connect

    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network connection attempted: {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield tmp_path
    from annot.training.loggers import finish_wandb

    finish_wandb()


def test_wandb_mode_is_offline_without_an_api_key(monkeypatch):
    from annot.training.loggers import wandb_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"


def test_build_loggers_csv_and_offline_wandb_share_one_run(offline_wandb):
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    from annot.training.loggers import build_loggers

    out = offline_wandb / "run"
    cfg = load_config(AnnotateConfig, BASE, ["trainer.logger=wandb", f"export.out_dir={out}"])
    assert build_loggers(out / "stage", cfg, "r", kind="none") == []
    csv_only = build_loggers(out / "stage", cfg, "r", kind="csv")
    assert [type(x) for x in csv_only] == [CSVLogger]
    csv, wb = build_loggers(out / "stage_a", cfg, "my-run", wandb_dir=out, prefix="stage_a")
    assert isinstance(csv, CSVLogger) and isinstance(wb, WandbLogger)
    run = wb.experiment
    assert run.settings.mode == "offline" and Path(run.dir).resolve().is_relative_to(out.resolve())
    assert run.name == "my-run"
    assert run.config["loss"]["z_l2"] == pytest.approx(1e-2)  # the resolved config
    assert run.config["trainer"]["logger"] == "wandb"
    wb.log_metrics({"train/loss/total": 1.5}, step=1)
    _, wb2 = build_loggers(out / "stage_b", cfg, "my-run", wandb_dir=out, prefix="stage_b")
    assert wb2.experiment is run  # later stages log into the same run
    csv.log_metrics({"train/loss/total": 1.5}, step=1)
    csv.save()
    assert "train/loss/total" in (out / "stage_a" / "logs" / "metrics.csv").read_text()
    assert list((out / "wandb").glob("offline-run-*"))
    with pytest.raises(ValueError, match="trainer.logger"):
        build_loggers(out, cfg, "r", kind="tensorboard")


def test_throughput_lr_and_report_reach_the_loggers(offline_wandb, tmp_path):
    """A 4-step fit through the pipeline's trainer: samples/s and lr in metrics.csv; log_report closes the run."""
    import pytorch_lightning as pl

    from annot.annotator.pipeline import _trainer
    from annot.annotator.report import log_report
    from annot.training.callbacks import SamplesPerSecond

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def training_step(self, batch, batch_idx):
            loss = self.conv(batch["img"]).mean()
            self.log("train/loss/total", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    out = tmp_path / "run"
    cfg = load_config(AnnotateConfig, BASE, ["trainer.logger=wandb", f"export.out_dir={out}",
                                             "trainer.log_every_n_steps=2", "trainer.channels_last=true",
                                             "trainer.enable_progress_bar=false"])
    trainer = _trainer(cfg, out / "stage_b_round1", 5, [], 5)
    loader = torch.utils.data.DataLoader([{"img": torch.rand(3, 8, 8)}] * 15, batch_size=3)
    module = Tiny()
    trainer.fit(module, loader)
    assert module.conv.weight.is_contiguous(memory_format=torch.channels_last)
    rate = next(c for c in trainer.callbacks if isinstance(c, SamplesPerSecond)).last_samples_per_s
    assert rate > 0 and math.isfinite(rate)
    header = (out / "stage_b_round1" / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/samples_per_s", "lr-SGD", "train/loss/total"} <= set(header)
    report = {"counts": {"annotated": 3, "skipped": 1, "eft_rejected": 1}, "kp2d_err_px": {"mean": 4.5},
              "wall_time": {"total_s": 2.0}}
    metrics = log_report(report, cfg)
    assert metrics["kp2d_err_px_mean"] == 4.5 and metrics["eft_rejected"] == 1
    import wandb

    assert wandb.run is None  # finished
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1  # one run for the stage and the report


def test_report_metrics_from_pseudo_gt_quality(tmp_path):
    from annot.annotator.report import report_metrics

    pose = [0.0] * 72
    pose[3:6] = [0.0, 0.0, math.pi / 2]  # joint 1 at 90 degrees, the other 20 body joints at 0
    entries = {"1": {"smpl_param": {"pose": pose}, "quality": {"z_norm": 2.0, "max_abs_beta": 0.5}},
               "2": {"smpl_param": {"pose": [0.0] * 72}, "quality": {"z_norm": 4.0, "max_abs_beta": 1.5}}}
    (tmp_path / "pgt.json").write_text(json.dumps(entries))
    metrics = report_metrics({"counts": {"annotated": 2}, "kp2d_err_px": {"mean": None}}, tmp_path / "pgt.json")
    assert math.isnan(metrics["kp2d_err_px_mean"]) and metrics["annotated"] == 2
    assert metrics["z_norm_mean"] == pytest.approx(3.0) and metrics["max_abs_beta_mean"] == pytest.approx(1.0)
    assert metrics["body_pose_angle_deg_mean"] == pytest.approx(90.0 / 21 / 2)


# ----------------------------------------------------------------------------- sweep
def test_sweep_file_is_a_wandb_grid_of_table_a():
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args, load_sweep_config

    sweep = load_sweep_config(str(SWEEP_FILE))  # W&B's own loader
    assert sweep["method"] == "grid" and sweep["metric"]["goal"] in ("minimize", "maximize")
    assert set(sweep["parameters"]) == {"reg_weight", "prior.pose_prior"}
    assert sweep["parameters"]["prior.pose_prior"]["values"] == ["vposer", "none"]
    assert sweep["parameters"]["reg_weight"]["values"] == [0.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5]  # Table A
    assert (REPO / sweep["program"]).is_file() and "${args_no_hyphens}" in sweep["command"]
    macros = {c for c in sweep["command"] if str(c).startswith("${")}
    assert macros <= {"${env}", "${interpreter}", "${program}", "${args_no_hyphens}"}
    sweep_tool = _tool("sweep")
    points = sweep_tool.expand_grid(sweep_tool.load_sweep(SWEEP_FILE))
    assert len(points) == 2 * 6 and len({sweep_tool.point_name(p) for p in points}) == 12
    # the exact argv `wandb agent` builds for a point, read back by tools/sweep.py --point
    args = create_sweep_command_args({"args": {"prior.pose_prior": {"value": "none"}, "reg_weight": {"value": 1e-05}}})
    argv = []
    for chunk in sweep["command"][3:]:
        argv += args["args_no_hyphens"] if chunk == "${args_no_hyphens}" else [str(chunk)]
    assert argv[0] == "--point" and argv[-2:] == ["prior.pose_prior=none", "reg_weight=1e-05"]
    params, rest = sweep_tool.parse_point_args(argv[-2:])
    assert params == {"prior.pose_prior": "none", "reg_weight": 1e-5} and rest == []


def test_local_expansion_maps_the_tied_weight_to_the_right_keys(tmp_path):
    sweep_tool = _tool("sweep")
    sweep = sweep_tool.load_sweep(SWEEP_FILE)
    tiny = sweep_tool.expand_grid(sweep, sweep_tool.TINY_GRID)
    assert len(tiny) == 4
    with_vposer = sweep_tool.point_config(BASE, {"prior.pose_prior": "vposer", "reg_weight": 1e-3}, tmp_path, [])
    assert (with_vposer.loss.z_l2, with_vposer.loss.betas_l2) == (1e-3, 1e-3)
    assert with_vposer.loss.pose_l2 == LossDefaults.pose_l2 and with_vposer.prior.pose_prior == "vposer"
    assert with_vposer.export.out_dir == str(tmp_path / "pose_prior=vposer,reg_weight=0.001")
    without = sweep_tool.point_config(BASE, {"prior.pose_prior": "none", "reg_weight": 0.0}, tmp_path,
                                      ["trainer.max_steps=3"])
    assert (without.loss.pose_l2, without.loss.betas_l2) == (0.0, 0.0)
    assert without.loss.z_l2 == pytest.approx(1e-2) and without.prior.pose_prior == "none"
    assert without.trainer.max_steps == 3
    assert sweep_tool.point_overrides({"reg_weight": 1e-5}, "none") == ["loss.pose_l2=1e-05", "loss.betas_l2=1e-05"]
    assert sweep_tool.point_overrides({"optim.lr": 0.5, "algorithm.second_round": True}) == [
        "optim.lr=0.5", "algorithm.second_round=true"]
    with pytest.raises(ValueError, match="reg_weight"):
        sweep_tool.expand_grid(sweep, {"reg_weight": [0.5]})
    bad = tmp_path / "random.yaml"
    bad.write_text("method: bayes\nparameters: {reg_weight: {min: 0.0, max: 1.0}}\n")
    with pytest.raises(ValueError, match="only `grid`"):
        sweep_tool.load_sweep(bad)


class LossDefaults:
    pose_l2 = 1e-4  # annot.annotator.config.LossConfig default, untouched by the VPoser points


def test_results_table_and_chart(tmp_path):
    sweep_tool = _tool("sweep")
    rows = [{"point": "a", "params": {"prior.pose_prior": "vposer", "reg_weight": 0.01},
             "metrics": {"kp2d_err_px_mean": 12.34, "eft_rejected": 2.0, "annotated": 12.0, "z_norm_mean": 1.5,
                         "max_abs_beta_mean": 0.25, "body_pose_angle_deg_mean": 10.0, "total_s": 60.0}},
            {"point": "b", "params": {"prior.pose_prior": "none", "reg_weight": 0.01},
             "metrics": {"kp2d_err_px_mean": 20.0, "eft_rejected": 0.0, "annotated": 12.0, "z_norm_mean": math.nan,
                         "max_abs_beta_mean": 0.5, "body_pose_angle_deg_mean": 20.0, "total_s": 50.0}},
            {"point": "c", "params": {"prior.pose_prior": "none", "reg_weight": 0.1}, "error": "ValueError: boom"}]
    sweep_tool.write_results(rows, tmp_path, "T", "python tools/sweep.py --tiny")
    table = (tmp_path / "results.md").read_text().splitlines()
    assert "| pose_prior | reg_weight | 2D err (px) | EFT rejected |" in table[4]
    assert table[6].startswith("| vposer | 0.01 | 12.3 | 2 | 12 | 1.50 | 0.250 | 10.0 | 60 |")
    assert "| none | 0.01 | 20.0 | 0 | 12 | n/a |" in table[7]
    assert "failed: ValueError: boom" in table[8]
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["metrics"]["kp2d_err_px_mean"] == 12.34
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- benchmarks
@needs_free
def test_benchmarks_run_one_tiny_iteration(tmp_path):
    from annot.benchmarks.throughput import (
        BenchSettings,
        annotator_samples_per_s,
        bare_resnet_samples_per_s,
        compare,
        make_random_vposer,
    )

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vposer = make_random_vposer(tmp_path)
        settings = BenchSettings(batch_size=2, input_hw=(64, 48), depth=18, steps=1, warmup=1,
                                 module_kwargs={"hidden_dim": 32})
        assert bare_resnet_samples_per_s(settings, train=True) > 0
        assert annotator_samples_per_s(settings, True, vposer, FREE) > 0
        result = compare(settings, False, vposer, FREE, repeats=1)
        assert result["task"] == "annotate" and result["annotator_samples_per_s"] > 0
        assert result["ratio"] == pytest.approx(result["annotator_samples_per_s"] / result["bare_resnet_samples_per_s"])
        nhwc = BenchSettings(batch_size=2, input_hw=(64, 48), depth=18, steps=1, warmup=0, precision="bf16",
                             channels_last=True, compile=True, backend="eager")
        assert bare_resnet_samples_per_s(nhwc, train=False) > 0
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="precision"):
        BenchSettings(precision="fp8")
