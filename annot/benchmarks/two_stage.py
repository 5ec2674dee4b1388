"""``make bench-two-stage``: pseudo-GTs judged by the estimator they train (issue #18).

Protocol. The papers measure pseudo-GTs by their second stage: the Three Recipes paper trains Pose2Pose on
H36M + MPI-INF-3DHP + COCO with each set of COCO pseudo-GTs and tests on 3DPW and MuPoTS (Moon et al.,
CVPRW 2022, Table 2), CLIFF does the same with its pseudo-GTs against EFT's and others' (Li et al., ECCV
2022, Table 4), and EFT compares the regressors trained on its fits with those trained on SPIN's / SMPLify's
(Joo et al., 3DV 2021). Here, on free synthetic data with exact GT at test time, per seed:

1. the realistic synthetic splits of the quality benchmark (:mod:`annot.benchmarks.quality`): ``itw`` (COCO layout,
   1-4 people an image, COCO-like annotator noise, hidden GT) and ``mocap`` (3DPW layout, 3D GT), identical
   to ``make bench-annot``'s for the same seed and settings, plus a ``test`` split (3DPW layout, exact GT,
   one whole person an image, poses from the clips held out of ``mocap`` like the ITW split's) generated in
   ``<annot out>/seed<k>/synthetic_test`` with the same generator values;
2. the ITW split annotated by each annotator of the quality benchmark: NeuralAnnot (all three recipes),
   NeuralAnnot + fit, SMPLify (2D, GT intrinsics, both facings) and EFT. Their pseudo-GTs are the quality
   benchmark's own: read from ``<annot out>/seed<k>/<method>/{pseudo_gt.json, method.json}`` when
   ``method.json`` records the same settings (:func:`annot.benchmarks.quality.load_method`), else made with its
   functions (:func:`annot.benchmarks.quality.run_method`) and saved there for both benchmarks. Two reference rows:
   the hidden GT itself (``itw/scoring/gt_smpl.json``, the upper bound) and "no in-the-wild pseudo-GT" (the
   ITW people give only their 2D keypoint losses; the baseline every pseudo-GT must beat);
3. one estimator per row (Pose2Pose by default, HMR with ``estimator="hmr"``), trained with the project's code
   (:func:`estimators.train.run`) on ``mocap`` (3D GT) + ``itw`` (its 2D keypoints and the row's pseudo-GT
   SMPL through the COCO loader's ``smpl_file``) with exact per-batch shares (``itw_ratio``), the same seed
   (weights, batch composition, augmentation), the same steps and settings: only the ITW SMPL targets differ;
4. evaluated with the final weights (no model selection on the test set) on the ``test`` split by the
   estimator's validation (:class:`estimators.base.EstimatorModule`, mks0601 3DPW protocol: 14 H36M joints
   regressed from the mesh, regressed pelvis as root; MPJPE, PA-MPJPE, MPVPE), and each annotator scored
   directly against the hidden ITW GT (:func:`annot.benchmarks.quality.score`).

Outputs in ``out``: ``results.json`` (config, rows with mean and 95 % t interval over seeds,
:func:`annot.benchmarks.stats.mean_ci`; per seed and row the metrics, the annotator's direct errors, the PA-MPJPE
after every epoch, what ran and what was reused), ``results.md`` (table, the paired per-seed differences
against the "no pseudo-GT" row, the correlation between annotator error and estimator error, the ranking at
each epoch end, a plain statement of the outcome) and ``results.png`` (PA-MPJPE bars with their intervals; the
annotator's direct MPJPE against the estimator's PA-MPJPE, one point per annotator and seed, with Pearson's
r; PA-MPJPE along training). Every trained row keeps ``<out>/seed<k>/<row>/row.json`` with a hash of
everything that decides it (estimator config without paths, the split generator values, the pseudo-GT
file's SHA-256): a rerun reuses rows whose hash matches and retrains the others.

Default sizes (CPU, 2 cores; measured timings in ``BENCHMARKS.md``): the quality benchmark's defaults for
the splits and annotators (64 ITW people, 256 ``mocap`` images at 320x240; see
:class:`annot.benchmarks.quality.BenchConfig`), 64 test people, and the estimator of
``configs/estimator/<estimator>.yaml`` (ResNet-18; Pose2Pose 128x96 crops, HMR 128x128) trained 3 epochs of
100 steps of 8 crops (half ``mocap``, half ``itw``), Adam at that file's learning rate with a x0.1 decay
after epoch 2 (Pose2Pose; HMR has no schedule), the backbone initialised from the free SimpleBaseline of
``make pretrain-backbone`` like the annotator's second recipe (or from scratch with
``pretrained_backbone=False``, for all rows alike). Measured on a loaded 2-core VM (about one core for us):
one row 123-136 s, one seed with nothing reused 43 min (2433 s CPU, of which NeuralAnnot ~1300 s, EFT ~350 s,
the six rows ~750 s); projected on 2 idle cores: 65-85 s a row, 71-91 min for ``make bench-two-stage`` from a
clean clone (three seeds, backbone built), 20-25 min when ``make bench-annot`` made the pseudo-GTs.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from annot.benchmarks.quality import GT_FILE, ITW_ANN, ITW_IMG, BenchConfig
from annot.io.atomic import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

#: row key -> label. Annotator rows use the quality benchmark's method keys.
ROWS: dict[str, str] = {
    "none": "no in-the-wild pseudo-GT (2D keypoints only)",
    "neuralannot": "NeuralAnnot (all three recipes)",
    "neuralannot_fit": "NeuralAnnot + fit",
    "smplify": "SMPLify (2D, GT intrinsics, both facings)",
    "eft": "EFT (from NeuralAnnot f)",
    "gt": "hidden GT (upper bound)",
}
#: rows whose pseudo-GTs come from the quality benchmark, in the order they are made (NeuralAnnot first: + fit
#: and EFT start from it, SMPLify uses its VPoser prior).
ANNOTATORS = ("neuralannot", "neuralannot_fit", "smplify", "eft")
SHORT = {"none": "no PGT", "neuralannot": "NA", "neuralannot_fit": "NA + fit", "smplify": "SMPLify", "eft": "EFT",
         "gt": "GT"}
#: estimator metrics on the test split (``val/test/<metric>``) and the annotator's direct errors on the ITW split.
EST_METRICS = ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm")
ANNOT_METRICS = ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "orient_err_deg")
TEST_SET = "test"
ROW_FILE = "row.json"
VERSION = 1  # bump when the row record or the protocol changes (invalidates saved rows)


@dataclass
class TwoStageConfig:
    """Sizes and settings (defaults: module docstring).

    ``out``: results folder; ``annot``: the quality benchmark's settings for the splits and annotators, whose
    ``out`` (default ``outputs/bench-annot``) holds the per-seed splits and pseudo-GTs shared with
    ``make bench-annot``; ``seeds``: whole runs (split, annotation, training); ``rows``: keys of :data:`ROWS`;
    ``estimator``: ``pose2pose`` or ``hmr``; ``estimator_config``: model / optimiser defaults (default
    ``configs/estimator/<estimator>.yaml``; its data sets are replaced); ``test_size``: test people;
    ``epochs`` x ``steps_per_epoch`` optimiser steps of ``batch_size`` crops, ``itw_ratio`` of each batch from
    the ITW split; ``lr``: None = the config file's; ``lr_dec_epochs``: Pose2Pose's x0.1 decays (ignored for
    HMR); ``estimator_overrides``: ``key=value`` items for every row (e.g. ``pose2pose.input_hw=[64,48]``);
    ``keep_checkpoints``: keep each row's checkpoints (45-90 MB each; removed by default once evaluated);
    ``progress``: Lightning's progress bar.
    """

    out: str = "outputs/bench-two-stage"
    annot: BenchConfig = field(default_factory=BenchConfig)
    seeds: tuple[int, ...] = (0, 1, 2)
    rows: tuple[str, ...] = tuple(ROWS)
    estimator: str = "pose2pose"
    estimator_config: str | None = None
    test_size: int = 64
    epochs: int = 3
    steps_per_epoch: int = 100
    batch_size: int = 8
    itw_ratio: float = 0.5
    lr: float | None = None
    lr_dec_epochs: tuple[int, ...] = (2,)
    num_threads: int = 0
    estimator_overrides: list[str] = field(default_factory=list)
    keep_checkpoints: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [r for r in self.rows if r not in ROWS]
        if unknown:
            raise ValueError(f"bench-two-stage: unknown rows {unknown}; known: {list(ROWS)}")
        if self.estimator not in ("pose2pose", "hmr"):
            raise ValueError(f"bench-two-stage: estimator must be pose2pose or hmr, got {self.estimator!r}")
        if not 0.0 < self.itw_ratio < 1.0:
            raise ValueError(f"bench-two-stage: itw_ratio must be in (0, 1), got {self.itw_ratio}")
        if min(self.test_size, self.epochs, self.steps_per_epoch, self.batch_size) < 1 or not self.seeds:
            raise ValueError("bench-two-stage: test_size, epochs, steps_per_epoch, batch_size and seeds must be "
                             "positive / non-empty")


# --------------------------------------------------------------------------- data
def ensure_test_split(acfg: BenchConfig, size: int) -> Path:
    """The ``test`` split (3DPW layout, exact GT) of ``acfg.seed`` under ``<acfg.out>/synthetic_test``, made
    with the quality benchmark's generator values (:func:`annot.benchmarks.quality.synthetic_config`) unless present
    with the same ones; the CMU pose bank of ``<acfg.out>/synthetic`` is reused when there. Returns the split
    root (``build_dataset("3dpw", root=<it>, split="test")``).

    Raises:
        FileNotFoundError: the generator config or the CMU clips are missing.
    """
    from annot.benchmarks.quality import synthetic_config
    from annot.benchmarks.synthetic import MANIFEST, POSE_BANK, make_synthetic

    synth = synthetic_config(acfg, sizes={"mocap": 0, "itw": 0, "test": int(size)})
    root = Path(acfg.out) / "synthetic_test"
    manifest = root / MANIFEST
    if manifest.is_file():
        if json.loads(manifest.read_text()).get("config", {}) == json.loads(json.dumps(asdict(synth), default=list)):
            return root / "test"
        log.info("bench-two-stage: test-split generator values changed; regenerating %s", root)
    if root.exists():
        shutil.rmtree(root)
    bank = Path(acfg.out) / "synthetic" / POSE_BANK
    if bank.is_file():  # same provenance (cmu_root, frames, iterations): the generator re-checks it
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bank, root / POSE_BANK)
    make_synthetic(synth, root)
    return root / "test"


def _manifest_config(split_root: Path) -> dict[str, Any]:
    from annot.benchmarks.synthetic import MANIFEST

    return json.loads((split_root.parent / MANIFEST).read_text()).get("config", {})


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- stage 1: pseudo-GTs
def annotate_seed(cfg: TwoStageConfig, acfg: BenchConfig, syn: Path, itw: dict[str, dict[str, Any]],
                  body: Any) -> dict[str, dict[str, Any]]:
    """Pseudo-GTs of every annotator row of ``cfg.rows`` (plus the methods they start from) for one seed.

    Returns ``{row: {"path": pseudo_gt.json, "entries": {aid: PseudoGT}, "seconds", "label", "source"}}`` with
    ``source`` ``"reused"`` (the quality benchmark's saved output for the same settings), ``"ran"`` or
    ``"hidden GT"``; the ``none`` row has no entry.
    """
    from annot.benchmarks.quality import (
        FROM_NEURALANNOT,
        LABELS,
        NEURALANNOT_ROWS,
        load_method,
        run_method,
        save_method,
    )

    done: dict[str, dict[str, Any]] = {}

    def get(key: str) -> dict[str, Any]:
        if key in done:
            return done[key]
        saved = load_method(acfg, key)
        if saved is None:
            if key in FROM_NEURALANNOT:
                get(acfg.fit_from)
            log.info("bench-two-stage: seed %d: annotating with %s", acfg.seed, key)
            result = run_method(acfg, key, syn, itw, body, done)
            save_method(acfg, key, result)
            saved = {**result, "label": result.get("label", LABELS[key]), "reused": False}  # as load_method's
        else:
            log.info("bench-two-stage: seed %d: %s pseudo-GTs reused from %s", acfg.seed, key, Path(acfg.out) / key)
        done[key] = saved
        return saved

    out: dict[str, dict[str, Any]] = {}
    for key in ANNOTATORS:
        if key in cfg.rows:
            rec = get(key)
            label = rec["label"]
            if key in NEURALANNOT_ROWS and not acfg.backbone_path:
                label += " [no pretrained backbone]"
            out[key] = {"path": Path(acfg.out) / key / "pseudo_gt.json", "entries": rec["entries"],
                        "seconds": float(rec["seconds"]), "label": label,
                        "source": "reused" if rec.get("reused") else "ran"}
    if "gt" in cfg.rows:
        out["gt"] = {"path": syn / "itw" / GT_FILE, "entries": {a: r["gt"] for a, r in itw.items()}, "seconds": 0.0,
                     "label": ROWS["gt"], "source": "hidden GT"}
    return out


def annotator_errors(body: Any, itw: dict[str, dict[str, Any]], entries: Mapping[str, Any]) -> dict[str, Any]:
    """Direct errors of ``entries`` on the ITW split (:func:`annot.benchmarks.quality.score`): per metric of
    :data:`ANNOT_METRICS` the mean over the people it annotated, and ``scored`` / ``people`` counts."""
    from annot.benchmarks.quality_score import score

    per = score(body, itw, dict(entries))
    finite = np.isfinite(per["mpjpe_mm"])
    out: dict[str, Any] = {m: float(np.nanmean(per[m])) if finite.any() else float("nan") for m in ANNOT_METRICS}
    out.update(scored=int(finite.sum()), people=len(itw))
    return out


# --------------------------------------------------------------------------- stage 2: estimators
def estimator_config(cfg: TwoStageConfig, seed: int, syn: Path, test_root: Path, smpl_file: Path | None,
                     out_dir: Path, backbone: str | None) -> Any:
    """The :class:`estimators.config.EstimatorConfig` of one row: ``cfg.estimator_config`` (model, optimiser,
    augmentation) with the data replaced by ``mocap`` + ``itw`` (``smpl_file`` = the row's pseudo-GTs, or none)
    and the ``test`` split as the only evaluation set, then ``cfg.estimator_overrides``.

    Raises:
        FileNotFoundError: the estimator config file is missing. ConfigError: a bad override.
    """
    from estimators.config import check_config, merge_config

    path = Path(cfg.estimator_config or f"configs/estimator/{cfg.estimator}.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: estimator config missing (bench-two-stage estimator_config)")
    base = yaml.safe_load(path.read_text()) or {}
    data = {k: v for k, v in (base.get("data") or {}).items() if k not in ("train", "val")}
    itw_args = {"root": str(syn / "itw"), "ann_file": ITW_ANN, "img_dir": ITW_IMG}
    if smpl_file is not None:
        itw_args["smpl_file"] = str(Path(smpl_file).absolute())
    data.update(batch_size=cfg.batch_size, batch_size_scope="global", num_batches_per_epoch=cfg.steps_per_epoch,
                val_batch_size=16, num_workers=0, group_ratios={},
                train={"mocap": {"dataset": "3dpw", "ratio": 1.0 - cfg.itw_ratio,
                                 "args": {"root": str(syn / "mocap"), "split": "train"}},
                       "itw": {"dataset": "coco", "ratio": cfg.itw_ratio, "args": itw_args}},
                val={TEST_SET: {"dataset": "3dpw", "args": {"root": str(test_root), "split": "test"}}})
    values = {k: v for k, v in base.items() if k not in ("data", "name", "out_dir", "trainer", "checkpoint", "grid")}
    values.update(name=f"two_stage_seed{seed}", estimator=cfg.estimator, seed=int(seed), out_dir=str(out_dir),
                  num_threads=cfg.num_threads, data=data, grid={"enabled": False},
                  trainer={"max_epochs": cfg.epochs, "max_steps": -1, "accelerator": "cpu", "devices": 1,
                           "log_every_n_steps": 10, "enable_progress_bar": cfg.progress},
                  checkpoint={"monitor": f"val/{TEST_SET}/pa_mpjpe_mm", "mode": "min", "save_top_k": 1,
                              "save_weights_only": True})
    optim = dict(values.get("optim") or {})
    if cfg.lr is not None:
        optim["lr"] = cfg.lr
    optim["lr_dec_epochs"] = list(cfg.lr_dec_epochs) if cfg.estimator == "pose2pose" else []
    values["optim"] = optim
    model = dict(values.get(cfg.estimator) or {})
    model["backbone_weights"] = backbone
    values[cfg.estimator] = model
    est = merge_config(values, overrides=list(cfg.estimator_overrides), origin=str(path))
    check_config(est)
    return est


def row_hash(est_cfg: Any, syn: Path, test_root: Path, pseudo_gt: Path | None) -> str:
    """SHA-256 over what decides a row's result: the estimator config without its paths (run folder, data
    roots, pseudo-GT file), the generator values of the training and test splits, and the pseudo-GT file's
    bytes (``None`` for the ``none`` row)."""
    from annot.config import to_container

    values = to_container(est_cfg)
    for key in ("out_dir", "name"):
        values.pop(key, None)
    values["trainer"].pop("enable_progress_bar", None)
    for section in ("train", "val"):
        for spec in values["data"][section].values():
            for key in ("root", "smpl_file"):
                spec["args"].pop(key, None)
    record = {"version": VERSION, "estimator": values, "train_split": _manifest_config(syn / "itw"),
              "test_split": _manifest_config(test_root),
              "pseudo_gt_sha256": file_sha256(pseudo_gt) if pseudo_gt is not None else None}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=list).encode()).hexdigest()


def pa_mpjpe_curve(train_dir: Path, epochs: int, steps_per_epoch: int) -> list[dict[str, float]]:
    """``[{"epoch", "step", "pa_mpjpe_mm"}]``: the test PA-MPJPE of the validation at the end of each of the
    ``epochs`` epochs (``<train_dir>/logs/metrics.csv``; ``step`` = optimiser steps done; the final
    re-validation of the same weights is left out)."""
    path = train_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    key = f"val/{TEST_SET}/pa_mpjpe_mm"
    seen: dict[int, dict[str, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get(key) not in (None, "") and row.get("epoch") not in (None, ""):
                epoch = int(float(row["epoch"]))
                if epoch < epochs:
                    seen.setdefault(epoch, {"epoch": epoch, "step": (epoch + 1) * steps_per_epoch,
                                            "pa_mpjpe_mm": float(row[key])})
    return [seen[e] for e in sorted(seen)]


def train_row(cfg: TwoStageConfig, seed: int, row: str, syn: Path, test_root: Path, pseudo_gt: Path | None,
              backbone: str | None) -> dict[str, Any]:
    """Train and evaluate the estimator of one row, or reuse ``<out>/seed<seed>/<row>/row.json`` when its hash
    (:func:`row_hash`) matches. Returns the record: ``metrics`` ``{metric: mm}`` of the final weights on the
    test split, ``curve`` (:func:`pa_mpjpe_curve`), ``train_loss``, ``seconds``, ``steps``, ``hash``,
    ``trained`` (False when reused)."""
    from estimators.train import run

    folder = Path(cfg.out) / f"seed{seed}" / row
    est = estimator_config(cfg, seed, syn, test_root, pseudo_gt, folder / "train", backbone)
    digest = row_hash(est, syn, test_root, pseudo_gt)
    record_path = folder / ROW_FILE
    if record_path.is_file():
        saved = json.loads(record_path.read_text())
        if saved.get("hash") == digest:
            log.info("bench-two-stage: seed %d: %s reused (%s)", seed, row, record_path)
            return {**saved, "trained": False}
        log.info("bench-two-stage: seed %d: %s: settings changed; retraining", seed, row)
    log.info("bench-two-stage: seed %d: training %s on mocap + itw (%s)", seed, cfg.estimator,
             f"pseudo-GTs {pseudo_gt}" if pseudo_gt else "2D keypoints only")
    result = run(est)
    metrics = result["final"][TEST_SET]
    record = {"row": row, "seed": int(seed), "hash": digest, "metrics": {m: metrics.get(m) for m in EST_METRICS},
              "curve": pa_mpjpe_curve(folder / "train", cfg.epochs, cfg.steps_per_epoch),
              "train_loss": result["train_loss"],
              "seconds": float(result["wall_time_s"]), "steps": int(result["steps"]),
              "data": result["data"], "pseudo_gt": str(pseudo_gt) if pseudo_gt else None}
    if not cfg.keep_checkpoints:
        shutil.rmtree(folder / "train" / "checkpoints", ignore_errors=True)
    atomic_write_json(record_path, record)
    return {**record, "trained": True}


# --------------------------------------------------------------------------- one seed
def run_seed(cfg: TwoStageConfig, seed: int, backbone: str | None) -> dict[str, Any]:
    """Splits, pseudo-GTs and one trained estimator per row for ``seed``.

    Returns ``{row: {"label", "metrics", "annotator" (direct errors or None), "annotation" (source, seconds),
    "curve", "seconds", "trained", ...}}``.
    """
    from annot.benchmarks.quality import ensure_split, load_itw
    from annot.body_models import BodyModel

    acfg = replace(cfg.annot, seed=int(seed), out=str(Path(cfg.annot.out) / f"seed{seed}"),
                   backbone_path=backbone if cfg.annot.pretrained_backbone else None)
    syn = ensure_split(acfg)
    test_root = ensure_test_split(acfg, cfg.test_size)
    itw = load_itw(syn)
    body = BodyModel("free")
    pseudo = annotate_seed(cfg, acfg, syn, itw, body)
    rows: dict[str, Any] = {}
    for row in cfg.rows:
        p = pseudo.get(row)
        rec = train_row(cfg, seed, row, syn, test_root, p["path"] if p else None, backbone)
        rows[row] = {**rec, "label": p["label"] if p else ROWS[row],
                     "annotator": annotator_errors(body, itw, p["entries"]) if p else None,
                     "annotation": {"source": p["source"], "seconds": p["seconds"], "path": str(p["path"]),
                                    "people": len(p["entries"])} if p else {"source": "none"}}
    atomic_write_json(Path(cfg.out) / f"seed{seed}" / "seed.json", rows)
    return rows


# --------------------------------------------------------------------------- the command
def run_bench(cfg: TwoStageConfig) -> dict[str, Any]:
    """Every seed (:func:`run_seed`), then rows over seeds, the paired differences against the no-pseudo-GT
    row, the correlation and ``results.{md,json,png}`` in ``cfg.out``. Returns the results dict (with the
    markdown under ``"markdown"``).

    Raises:
        FileNotFoundError / ValueError: from the data, the annotators, the estimator config and training.
    """
    from annot.benchmarks.quality import ensure_backbone

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    backbone_info = ensure_backbone(cfg.annot, ("neuralannot",)) if cfg.annot.pretrained_backbone else None
    backbone = backbone_info["path"] if backbone_info else None
    per_seed = {int(s): run_seed(cfg, int(s), backbone) for s in cfg.seeds}
    from annot.benchmarks.two_stage_report import (
        aggregate,
        correlation,
        paired_vs_baseline,
        ranking_along_training,
        results_markdown,
        scatter_points,
        write_figure,
    )

    rows = aggregate(per_seed)
    paired = paired_vs_baseline(per_seed)
    points = scatter_points(per_seed)
    corr = correlation(points)
    ranking = ranking_along_training(per_seed)
    sources = {"trained": [f"seed{s}/{k}" for s, r in per_seed.items() for k, v in r.items() if v["trained"]],
               "reused rows": [f"seed{s}/{k}" for s, r in per_seed.items() for k, v in r.items() if not v["trained"]],
               "annotated": [f"seed{s}/{k}" for s, r in per_seed.items() for k, v in r.items()
                             if v["annotation"]["source"] == "ran"],
               "pseudo-GTs reused": [f"seed{s}/{k}" for s, r in per_seed.items() for k, v in r.items()
                                     if v["annotation"]["source"] == "reused"]}
    total_s = time.perf_counter() - t0
    md = results_markdown(cfg, rows, paired, corr, ranking, sources, total_s)
    results = {"config": json.loads(json.dumps(asdict(cfg), default=list)), "rows": rows,
               "paired_vs_none_pa_mpjpe_mm": paired, "scatter": {"points": points, "correlation": corr},
               "ranking_along_training": ranking, "per_seed": {str(s): r for s, r in per_seed.items()},
               "this_run": sources, "backbone": backbone_info, "total_s": total_s}
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "results.md", md.encode())
    write_figure(out / "results.png", rows, points, corr, per_seed)
    results["markdown"] = md
    return results


__all__ = ["ANNOTATORS", "ROWS", "TwoStageConfig", "annotate_seed", "annotator_errors", "ensure_test_split",
           "estimator_config", "pa_mpjpe_curve", "row_hash", "run_bench", "run_seed", "train_row"]
