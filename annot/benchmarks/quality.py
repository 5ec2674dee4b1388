"""``make bench-annot``: pseudo-GT annotators scored against the hidden GT of the free synthetic ITW split.

The ITW split is realistic by default (:mod:`annot.benchmarks.synthetic`): COCO-like annotator noise, occluded
keypoints flagged ``v = 1``, people cut by the border and 1-4 overlapping people an image. Every row is
the mean over ``seeds`` whole runs (split generation, training, fitting) with a 95 % t interval
(:mod:`annot.benchmarks.stats`); the best NeuralAnnot row and NeuralAnnot + fit are compared with SMPLify on the
same people (mean paired difference with a stratified bootstrap interval).

Methods (one row each in ``results.md``):

* ``NeuralAnnot (all three recipes)``: Algorithm 1 (:func:`annot.annotator.pipeline.run_annotate`, one round) with
  the VPoser prior (third recipe), the synthetic ``mocap`` split as an auxiliary 3D image set (first
  recipe) and the backbone of a SimpleBaseline 2D pose network trained on free data (second recipe,
  :mod:`annot.pretrain`, built once and reported separately); f is that of ``make annotate-body``, given the
  annotated 2D keypoints beside the image (``model.kp2d_input``, beyond the paper);
* ``NeuralAnnot w/o ...``: the same f with one recipe off (prior ``none``; no synthetic 3D images; a randomly
  initialised backbone);
* optional (``methods``): ``neuralannot_paper``, the paper's image-only f with all three recipes, and
  ``neuralannot_fit_estimated``, NeuralAnnot + fit in CLIFF's estimated camera;
* ``NeuralAnnot + fit``: the ``all recipes`` pseudo-GTs refined by a warm-started SMPLify with the same
  prior, kept per person only when the 2D error drops inside the prior's typical set
  (:mod:`annot.fitting.refine`);
* ``SMPLify``: batched 2D fit (:class:`annot.fitting.smplify.SMPLify2D`) to the annotated COCO-17 keypoints
  with the GT intrinsics, from both facing directions (SMPLify's 180 deg trial) and with the VPoser prior
  that the ``all recipes`` variant trained; a second row with f's crop camera instead;
* ``EFT``: per-sample exemplar fine-tuning (:func:`annot.fitting.eft.eft_annotate`) of the trained
  ``all recipes`` annotator;
* ``SMPLify on clean 2D (reference)``: the same SMPLify given the exact projections of all 17 keypoints
  (no noise, nothing hidden): what per-sample fitting would reach on perfect annotations.

Data (:mod:`annot.benchmarks.synthetic`): CMU poses retargeted to the free model by SMPLify3D; the ITW split's poses
come from clips that the ``mocap`` split never shows. The CMU joints themselves (all clips) are the
3D-joints-only auxiliary set of stage (a), and the prior trains on their pseudo-GTs, as NeuralAnnot's prior
trains on MoCap.

Scoring (:mod:`annot.benchmarks.quality_score`, mks0601 3DPW protocol): direct MPJPE / PA-MPJPE on the 14 H36M
eval joints regressed from the mesh with the regressed pelvis as root, MPVPE with the same root, global-orientation
error (geodesic angle between the predicted and GT root rotations in the camera frame, degrees), 2D error = mean
distance (original pixels) of the projected COCO-17 joints to the labelled (``v > 0``) annotated keypoints; wall
time per sample of each method, measured in this run (NeuralAnnot: all of its stages' wall times / samples).
Our own benchmark; the comparison follows NeuralAnnot (Moon et al., CVPRW 2022) Table 1 in spirit.

Tables and figure: :mod:`annot.benchmarks.quality_report`.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from annot.benchmarks.quality_score import score
from annot.io.atomic import atomic_write_bytes, atomic_write_json
from annot.io.export import PseudoGT, pseudo_gts_from_predictions, read_pseudo_gt

log = logging.getLogger(__name__)

ANNOTATE_CONFIG = "configs/annotate/body_free.yaml"
SYNTH_CONFIG = "configs/data/synthetic.yaml"
ITW_ANN = "annotations/person_keypoints_train2017.json"
ITW_IMG = "images/train2017"
GT_FILE = "scoring/gt_smpl.json"

#: NeuralAnnot variants: key -> (label, VPoser prior (3rd recipe), synthetic 3D aux (1st), pretrained backbone (2nd),
#: annotated 2D keypoints as an input of f beside the image (``model.kp2d_input``, beyond the paper)). The main row
#: and the recipe ablations use the f of ``make annotate-body`` (image + 2D keypoints in); ``neuralannot_paper`` is
#: the paper's image-only f with all three recipes (not a default row: ``--methods neuralannot_paper ...``).
VARIANTS: dict[str, tuple[str, bool, bool, bool, bool]] = {
    "neuralannot": ("NeuralAnnot (all three recipes; f given the 2D keypoints)", True, True, True, True),
    "neuralannot_no_prior": ("NeuralAnnot w/o prior (3rd recipe off)", False, True, True, True),
    "neuralannot_no_aux3d": ("NeuralAnnot w/o 3D aux (1st recipe off)", True, False, True, True),
    "neuralannot_no_pretrain": ("NeuralAnnot w/o pretrained backbone (2nd recipe off)", True, True, False, True),
    "neuralannot_paper": ("NeuralAnnot, the paper's image-only f (all three recipes)", True, True, True, False),
}
#: the variants that NeuralAnnot + fit, EFT and SMPLify in f's camera can start from (``fit_from``), as labels
#: name them.
FIT_FROM = {"neuralannot": "f given the 2D keypoints, all recipes",
            "neuralannot_paper": "the paper's image-only f, all recipes"}
LABELS = {**{k: v[0] for k, v in VARIANTS.items()},
          "neuralannot_fit": "NeuralAnnot + fit (warm-started SMPLify)",
          "neuralannot_fit_estimated": "NeuralAnnot + fit (CLIFF's estimated image camera)",
          "smplify": "SMPLify (2D, GT intrinsics, both facings)",
          "smplify_crop_cam": "SMPLify (2D, f's crop camera, both facings)",
          "eft": "EFT (from the annotator f)",
          "smplify_clean": "SMPLify on clean 2D (reference: exact keypoints, all visible)"}

#: rows compared with SMPLify by the paired bootstrap (the best NeuralAnnot row is added at run time).
NEURALANNOT_ROWS = (*VARIANTS, "neuralannot_fit", "neuralannot_fit_estimated")
#: methods that start from a NeuralAnnot variant's pseudo-GTs or checkpoint (:class:`BenchConfig` ``fit_from``).
FROM_NEURALANNOT = ("smplify_crop_cam", "neuralannot_fit", "neuralannot_fit_estimated", "eft")

#: 2D convention of every variant: COCO-17 plus a Pelvis root, which the image auxiliary set's 3D-joint loss
#: needs (the pipeline uses ``data.convention`` for it; ``coco17`` has no root joint).
DATA_CONVENTION = "pose2pose25"
#: cameras of NeuralAnnot + fit (:class:`BenchConfig` ``fit_camera``) and how its row's label names them.
FIT_CAMERAS = {"gt": "GT intrinsics", "estimated": "CLIFF's estimated image camera", "crop": "f's crop camera"}


@dataclass
class BenchConfig:
    """Sizes and steps of the benchmark, sized so that the three-seed, nine-row default fits about an hour on 2
    CPU cores (BENCHMARKS.md has the measured time).

    ``size``: ITW people (= images); ``mocap_size``: synthetic 3D auxiliary images; ``image_hw`` (H, W) px of the
    rendered images; ``input_hw`` (H, W) px of f's crops (128x96: the resolution the free backbone is pretrained at;
    the step time on CPU is dominated by the backbone's convolutions, BENCHMARKS.md);
    ``steps``: stage-(b) steps per NeuralAnnot variant; ``aux_steps`` / ``aux_batch``: stage (a) steps and
    batch (CMU and synthetic 3D); ``prior_epochs``: VPoser-prior epochs; ``smplify_iters``: Adam steps per
    SMPLify stage; ``eft_iters``: EFT maximum steps per sample; ``num_overlays``: samples shown in the PNG;
    ``cmu_frames``: CMU frames retargeted for the synthetic poses (``annot.benchmarks.synthetic``); ``cmu_fit_iters``:
    its SMPLify3D steps per stage; ``architecture``:
    the annotator f (``pose2pose``, the Three Recipes f, or ``regressor``); ``refine_iters``: SMPLify3D
    refinement of the stage-(a) pseudo-GTs (``aux_stage.refine_iters``; 0 = as the paper); ``extra_overrides``:
    annotate-config ``key=value`` items applied to every NeuralAnnot variant; ``seeds``: whole runs averaged
    (``seed`` is the one being run); ``clean_2d``: the first, clean ITW split instead of the realistic one;
    ``backbone_dir``: where the free SimpleBaseline backbone of the second recipe is built once
    (``make pretrain-backbone``); ``backbone_path``: its checkpoint, set by :func:`run_bench`; ``fit_iters`` /
    ``fit_stages`` / ``fit_facings``: NeuralAnnot + fit (:class:`annot.fitting.refine.RefineConfig`);
    ``fit_camera``: the camera
    NeuralAnnot + fit works in: ``"gt"``, the GT intrinsics that the SMPLify row gets too (f's prediction is
    moved into it first, :func:`annot.fitting.refine.move_entries_to_camera`), ``"estimated"``, CLIFF's image
    camera for unknown intrinsics (:func:`annot.geometry.estimated_image_camera`, what real photos get), or
    ``"crop"``, f's own crop camera; ``pretrained_backbone``: False
    runs every variant from a random backbone (quick checks; the rows' labels then say the 2nd recipe is off);
    ``fit_from``: the NeuralAnnot variant that the methods of :data:`FROM_NEURALANNOT` (NeuralAnnot + fit, EFT,
    SMPLify in f's crop camera) start from: ``neuralannot``, the f of ``make annotate-body``, by default;
    ``neuralannot_paper`` is the paper's image-only f.
    """

    out: str = "outputs/bench-annot"
    size: int = 64
    mocap_size: int = 256
    image_hw: tuple[int, int] = (240, 320)
    input_hw: tuple[int, int] = (128, 96)
    steps: int = 350
    aux_steps: int = 160
    aux_batch: int = 16
    prior_epochs: int = 30
    smplify_iters: int = 60
    eft_iters: int = 20
    num_overlays: int = 4
    seed: int = 0
    photos_dir: str | None = "../shared/data/photos"
    cmu_root: str = "../shared/data/mocap_cmu"
    cmu_frames: int = 512
    cmu_fit_iters: int = 200
    architecture: str = "pose2pose"
    refine_iters: int = 100
    extra_overrides: list[str] = field(default_factory=list)
    seeds: tuple[int, ...] = (0, 1, 2)
    clean_2d: bool = False
    backbone_dir: str = "outputs/pretrain-backbone"
    backbone_path: str | None = None
    fit_iters: int = 60
    fit_stages: int = 2
    fit_facings: int = 2
    fit_camera: str = "gt"
    pretrained_backbone: bool = True
    fit_from: str = "neuralannot"

    def __post_init__(self) -> None:
        if self.fit_from not in FIT_FROM:
            raise ValueError(f"bench-annot: fit_from must be one of {tuple(FIT_FROM)}, got {self.fit_from!r}")
        if self.fit_camera not in FIT_CAMERAS:
            raise ValueError(f"bench-annot: fit_camera must be one of {tuple(FIT_CAMERAS)}, got {self.fit_camera!r}")


# --------------------------------------------------------------------------- data
def synthetic_config(cfg: BenchConfig, sizes: dict[str, int] | None = None) -> Any:
    """The generator values of ``cfg`` (``configs/data/synthetic.yaml`` with the bench's sizes, image size,
    seed and data folders) as an :class:`annot.benchmarks.synthetic.SyntheticConfig`; ``sizes`` replaces the split
    sizes (default ``{"mocap": mocap_size, "itw": size, "test": 0}``). Samples are drawn per split and index,
    so another ``sizes`` gives the same images for the splits it shares.

    Raises:
        FileNotFoundError: the generator config is missing.
    """
    from annot.benchmarks.synthetic import config_from_dict

    path = Path(SYNTH_CONFIG)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: synthetic generator config missing")
    values = yaml.safe_load(path.read_text()) or {}
    values.update(sizes=sizes or {"mocap": cfg.mocap_size, "itw": cfg.size, "test": 0}, image_hw=list(cfg.image_hw),
                  seed=cfg.seed, photos_dir=cfg.photos_dir, cmu_root=cfg.cmu_root,
                  cmu_frames=cfg.cmu_frames, cmu_fit_iters=cfg.cmu_fit_iters, clean_2d=cfg.clean_2d)
    return config_from_dict(values)


def ensure_split(cfg: BenchConfig) -> Path:
    """Generate the synthetic ``itw`` + ``mocap`` splits under ``<out>/synthetic`` unless present with the
    same generator values (every field of the manifest's config); returns the synthetic root.

    Raises:
        FileNotFoundError: the generator config (``configs/data/synthetic.yaml``) or the CMU clips are missing.
    """
    from annot.benchmarks.synthetic import make_synthetic

    synth = synthetic_config(cfg)
    root = Path(cfg.out) / "synthetic"
    manifest = root / "synthetic_manifest.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text()).get("config", {})
        if old == json.loads(json.dumps(asdict(synth), default=list)):
            return root
        log.info("bench-annot: generator values changed; regenerating %s", root)
    if root.exists():
        shutil.rmtree(root)
    make_synthetic(synth, root)
    return root


def load_itw(root: Path) -> dict[str, dict[str, Any]]:
    """Per annotation id: ``image_path``, ``kp2d_px`` (17, 2) annotated keypoints and ``vis`` (17,) bool
    (labelled, ``v > 0``), GT :class:`PseudoGT`, and ``clean_kp2d_px`` (17, 2) the exact projections (realistic
    split: ``scoring/clean_kp2d.json``; clean split: the annotations themselves).

    Raises:
        FileNotFoundError: the annotation or scoring file is missing.
        ValueError: an annotation without a GT entry.
    """
    from annot.benchmarks.synthetic import CLEAN_KP2D_FILE

    ann_path, gt_path = root / "itw" / ITW_ANN, root / "itw" / GT_FILE
    for p in (ann_path, gt_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: synthetic ITW file missing (regenerate: rm -r {root})")
    coco = json.loads(ann_path.read_text())
    gt = read_pseudo_gt(gt_path)
    clean_path = root / "itw" / CLEAN_KP2D_FILE
    clean = json.loads(clean_path.read_text()) if clean_path.is_file() else {}
    images = {im["id"]: im for im in coco["images"]}
    out = {}
    for ann in coco["annotations"]:
        aid = str(ann["id"])
        if aid not in gt:
            raise ValueError(f"{gt_path}: no GT for annotation id {aid} (field smpl_param)")
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        exact = np.asarray(clean[aid]["kp2d_px"], np.float64) if aid in clean else kp[:, :2]
        out[aid] = {"image_path": root / "itw" / ITW_IMG / images[ann["image_id"]]["file_name"],
                    "kp2d_px": kp[:, :2], "vis": kp[:, 2] > 0, "gt": gt[aid], "clean_kp2d_px": exact}
    return out


# --------------------------------------------------------------------------- methods
def _annotate_cfg(cfg: BenchConfig, syn: Path, key: str) -> Any:
    from annot.annotator.config import AnnotateConfig
    from annot.config import load_config

    _, vposer, aux3d, pretrained, kp2d_input = VARIANTS[key]
    ov = [f"seed={cfg.seed}", f"data.root={syn / 'itw'}", f"data.ann_file={ITW_ANN}", f"data.img_dir={ITW_IMG}",
          f"auxiliary.cmu.args.root={cfg.cmu_root}", f"aux_stage.max_steps={cfg.aux_steps}",
          f"aux_stage.batch_size={cfg.aux_batch}", f"aux_stage.lr_decay_steps=[{int(cfg.aux_steps * 0.75)}]",
          f"prior.max_epochs={cfg.prior_epochs}", f"prior.pose_prior={'vposer' if vposer else 'none'}",
          f"trainer.max_steps={cfg.steps}", f"optim.lr_decay_steps=[{int(cfg.steps * 0.8)}]",
          "export.overlays=false", f"data.convention={DATA_CONVENTION}", f"export.out_dir={Path(cfg.out) / key}",
          "algorithm.second_round=false", "algorithm.refine=false", f"model.architecture={cfg.architecture}",
          f"aux_stage.refine_iters={cfg.refine_iters}", f"data.input_hw=[{cfg.input_hw[0]},{cfg.input_hw[1]}]"]
    if pretrained and cfg.backbone_path:
        ov.append(f"model.backbone_weights={cfg.backbone_path}")
    if aux3d:
        ov += ["auxiliary.synth3d.dataset=3dpw", f"auxiliary.synth3d.args.root={syn / 'mocap'}",
               "auxiliary.synth3d.args.split=train"]
    ov.append(f"model.kp2d_input={str(kp2d_input).lower()}")
    return load_config(AnnotateConfig, ANNOTATE_CONFIG, ov + list(cfg.extra_overrides))


def _share_stages(cfg: BenchConfig, key: str) -> None:
    """Copy completed stage-(a) and prior folders of an earlier variant; the pipeline re-checks each one's
    provenance and retrains what does not match (e.g. the prior of a variant whose stage-(a) pseudo-GTs differ)."""
    dst = Path(cfg.out) / key
    for other in VARIANTS:
        if other == key:
            continue
        for src in sorted([*(Path(cfg.out) / other).glob("stage_a_*"), Path(cfg.out) / other / "prior"]):
            if (src / "stage.json").is_file() and not (dst / src.name).exists():
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copytree(src, dst / src.name)


def run_neuralannot(cfg: BenchConfig, syn: Path, key: str) -> dict[str, Any]:
    """One NeuralAnnot variant -> ``{"entries": {aid: PseudoGT}, "seconds": total stage wall time}``."""
    from annot.annotator.pipeline import run_annotate

    _share_stages(cfg, key)
    report = run_annotate(_annotate_cfg(cfg, syn, key))
    wall = report["wall_time"]
    return {"entries": read_pseudo_gt(Path(cfg.out) / key / "pseudo_gt.json"),
            "seconds": float(wall["stages_total_s"]), "this_invocation_s": float(wall["this_invocation_s"])}


def _shared_prior(cfg: BenchConfig) -> Any:
    """The VPoser prior trained in this seed's run (stage "prior" of ``cfg.fit_from``, else of the first variant that
    has one: the variants share it, :func:`_share_stages`), or None when no variant trained one."""
    from annot.priors import load_vposer

    for key in (cfg.fit_from, *VARIANTS):
        folder = Path(cfg.out) / key / "prior"
        if (folder / "stage.json").is_file():
            return load_vposer(folder)
    return None


def run_smplify(cfg: BenchConfig, itw: dict[str, dict[str, Any]], body: Any,
                cameras: dict[str, PseudoGT] | None = None, clean: bool = False) -> dict[str, Any]:
    """Batched SMPLify2D on the GT 2D keypoints (original-image pixels), from both facing directions
    (``try_flipped``), with the same VPoser prior as NeuralAnnot when it was trained in this run (else
    axis-angle + L2 + bending; the label says which). Camera: the GT intrinsics, or with ``cameras`` (the
    ``neuralannot`` entries) each sample's crop camera of f (virtual focal length, box-centred principal
    point), the camera NeuralAnnot itself assumes. Samples missing from ``cameras`` are not fitted.
    ``clean``: fit the exact projections of all 17 keypoints instead of the annotations (reference row)."""
    from annot.fitting.smplify import SMPLify2D

    aids = [a for a in itw if cameras is None or a in cameras]
    cams = {a: (cameras[a] if cameras is not None else itw[a]["gt"]) for a in aids}
    kp = torch.tensor(np.stack([itw[a]["clean_kp2d_px" if clean else "kp2d_px"] for a in aids]), dtype=torch.float32)
    conf = torch.tensor(np.stack([np.ones(17) if clean else itw[a]["vis"] for a in aids]), dtype=torch.float32)
    focal = torch.tensor(np.stack([cams[a].focal_px for a in aids]), dtype=torch.float32)
    princpt = torch.tensor(np.stack([cams[a].princpt_px for a in aids]), dtype=torch.float32)
    vposer = _shared_prior(cfg)
    start = time.perf_counter()
    fit = SMPLify2D(body, prior="vposer" if vposer is not None else "none", vposer=vposer,
                    num_iters_per_stage=cfg.smplify_iters, try_flipped=True).fit(
        kp, conf, focal, princpt, convention="coco17")
    seconds = time.perf_counter() - start
    entries = {a: PseudoGT(pose_rotvec=fit.pose_rotvec[i].detach().numpy().reshape(24, 3),
                           betas=fit.betas[i].detach().numpy(), transl_m=fit.transl_m[i].detach().numpy(),
                           focal_px=focal[i].numpy(), princpt_px=princpt[i].numpy(), quality={})
               for i, a in enumerate(aids)}
    prior = "VPoser prior of NeuralAnnot" if vposer is not None else "L2 + bending prior"
    camera = "GT intrinsics" if cameras is None else "f's crop camera"
    label = f"SMPLify (2D, {camera}, both facings, {prior})"
    if clean:
        label = f"SMPLify on clean 2D (reference: exact keypoints, all visible; {camera}, {prior})"
    return {"entries": entries, "seconds": seconds, "label": label}


def run_fit(cfg: BenchConfig, itw: dict[str, dict[str, Any]], body: Any, neuralannot: dict[str, Any]) -> dict[str, Any]:
    """NeuralAnnot + fit: :func:`annot.fitting.refine.refine_pseudo_gts` on the ``all recipes`` pseudo-GTs with
    the annotated COCO-17 keypoints and the same prior, in the camera of ``cfg.fit_camera``; its time =
    NeuralAnnot's + the refinement's."""
    from annot.fitting.refine import RefineConfig, refine_pseudo_gts
    from annot.geometry import estimated_image_camera

    vposer = _shared_prior(cfg)
    aids = [a for a in itw if a in neuralannot["entries"]]
    kp = torch.tensor(np.stack([itw[a]["kp2d_px"] for a in aids]), dtype=torch.float32)
    conf = torch.tensor(np.stack([itw[a]["vis"] for a in aids]), dtype=torch.float32)
    camera = None
    if cfg.fit_camera == "gt":
        camera = tuple(torch.tensor(np.stack([getattr(itw[a]["gt"], k) for a in aids]), dtype=torch.float32)
                       for k in ("focal_px", "princpt_px"))
    elif cfg.fit_camera == "estimated":
        camera = estimated_image_camera(torch.tensor([list(cfg.image_hw)] * len(aids), dtype=torch.float32))
    refined, summary = refine_pseudo_gts([neuralannot["entries"][a] for a in aids], kp, conf, body, vposer,
                                         "coco17", RefineConfig(iters=cfg.fit_iters, stages=cfg.fit_stages,
                                                                   facings=cfg.fit_facings), camera)
    camera_label = FIT_CAMERAS[cfg.fit_camera]
    start = FIT_FROM[cfg.fit_from]
    return {"entries": dict(zip(aids, refined)), "seconds": neuralannot["seconds"] + summary["seconds"],
            "refine": summary, "label": f"NeuralAnnot + fit (from {start}, warm-started SMPLify, {camera_label})"}


def run_eft(cfg: BenchConfig, syn: Path) -> dict[str, Any]:
    """EFT from the trained annotator of ``cfg.fit_from``, one sample at a time (its fine-tuning time only)."""
    from annot.annotator.datasets import target_dataset
    from annot.annotator.module import AnnotatorModule
    from annot.fitting.eft import eft_annotate

    acfg = _annotate_cfg(cfg, syn, cfg.fit_from)
    module = AnnotatorModule.load_from_checkpoint(Path(cfg.out) / cfg.fit_from / "stage_b_round1" / "annotator.ckpt",
                                                  map_location="cpu")
    dataset = target_dataset(acfg, train=False)
    start = time.perf_counter()
    results = eft_annotate(module, dataset, max_iters=cfg.eft_iters)
    seconds = time.perf_counter() - start
    entries: dict[str, PseudoGT] = {}
    for r in results:
        entries.update(pseudo_gts_from_predictions(r.pred))
    return {"entries": entries, "seconds": seconds, "label": f"EFT (from {FIT_FROM[cfg.fit_from]})"}


# --------------------------------------------------------------------------- one seed
def run_method(cfg: BenchConfig, key: str, syn: Path, itw: dict[str, dict[str, Any]], body: Any,
               done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Annotate with method ``key`` -> ``{"entries": {aid: PseudoGT}, "seconds", ...}``; ``done`` holds the
    methods already run for this seed (those of :data:`FROM_NEURALANNOT` need ``cfg.fit_from``).
    ``neuralannot_fit_estimated`` is NeuralAnnot + fit with ``fit_camera="estimated"``: what photos without
    intrinsics get.

    Raises:
        ValueError: an unknown method, or one that needs ``neuralannot`` without it.
    """
    if key in FROM_NEURALANNOT and cfg.fit_from not in done:
        raise ValueError(f"bench-annot: {key} needs the {cfg.fit_from} method (list it first)")
    if key in VARIANTS:
        return run_neuralannot(cfg, syn, key)
    if key == "neuralannot_fit":
        return run_fit(cfg, itw, body, done[cfg.fit_from])
    if key == "neuralannot_fit_estimated":
        return run_fit(replace(cfg, fit_camera="estimated"), itw, body, done[cfg.fit_from])
    if key in ("smplify", "smplify_clean"):
        return run_smplify(cfg, itw, body, clean=key == "smplify_clean")
    if key == "smplify_crop_cam":
        return run_smplify(cfg, itw, body, cameras=done[cfg.fit_from]["entries"])
    if key == "eft":
        return run_eft(cfg, syn)
    raise ValueError(f"bench-annot: unknown method {key!r}; known: {list(LABELS)}")


#: per method folder: the method's record beside its ``pseudo_gt.json`` (:func:`save_method`).
METHOD_FILE = "method.json"
#: :class:`BenchConfig` fields that do not change a method's pseudo-GTs (where they go, what is plotted).
_NOT_SETTINGS = ("out", "seeds", "num_overlays", "backbone_dir")


def method_settings(cfg: BenchConfig) -> dict[str, Any]:
    """The values that decide a seed's pseudo-GTs: every :class:`BenchConfig` field but :data:`_NOT_SETTINGS`
    (JSON types). Another benchmark reuses a saved method only when these match (:func:`load_method`)."""
    values = {k: v for k, v in asdict(cfg).items() if k not in _NOT_SETTINGS}
    return json.loads(json.dumps(values, default=list))


def save_method(cfg: BenchConfig, key: str, result: dict[str, Any]) -> Path:
    """Write ``<out>/<key>/pseudo_gt.json`` (:func:`annot.io.export.write_pseudo_gt`; NeuralAnnot variants already
    have theirs from the pipeline) and ``<out>/<key>/method.json`` (method, settings, seconds, label), both
    atomically; returns the folder."""
    from annot.io.export import write_pseudo_gt

    folder = Path(cfg.out) / key
    if key not in VARIANTS:
        write_pseudo_gt(folder / "pseudo_gt.json", result["entries"])
    atomic_write_json(folder / METHOD_FILE, {"method": key, "settings": method_settings(cfg),
                                             "seconds": float(result["seconds"]),
                                             "label": result.get("label", LABELS.get(key, key)),
                                             "people": len(result["entries"])})
    return folder


def load_method(cfg: BenchConfig, key: str) -> dict[str, Any] | None:
    """A method saved by :func:`save_method` for the same settings: ``{"entries", "seconds", "label",
    "reused": True}``, or None (missing, or made with other settings)."""
    folder = Path(cfg.out) / key
    record, pgt = folder / METHOD_FILE, folder / "pseudo_gt.json"
    if not (record.is_file() and pgt.is_file()):
        return None
    saved = json.loads(record.read_text())
    if saved.get("method") != key or saved.get("settings") != method_settings(cfg):
        log.info("bench-annot: %s was made with other settings; not reused", folder)
        return None
    return {"entries": read_pseudo_gt(pgt), "seconds": float(saved["seconds"]),
            "label": saved.get("label", LABELS.get(key, key)), "reused": True}


def _reusable(cfg: BenchConfig, key: str) -> dict[str, Any] | None:
    """A finished method of an earlier, interrupted or shorter run (:func:`load_method`), unless it is a NeuralAnnot
    variant (its pipeline checks its own stages) or it starts from a ``neuralannot`` output written after it."""
    if key in VARIANTS:
        return None
    saved = load_method(cfg, key)
    base = Path(cfg.out) / cfg.fit_from / "pseudo_gt.json"
    if saved is not None and key in FROM_NEURALANNOT and (
            not base.is_file() or base.stat().st_mtime > (Path(cfg.out) / key / METHOD_FILE).stat().st_mtime):
        return None
    return saved


def run_seed(cfg: BenchConfig, methods: tuple[str, ...]) -> dict[str, Any]:
    """Generate the split of ``cfg.seed`` (if missing), annotate with every method and score.

    Returns ``{"per_sample": {method: {metric: (N,)}}, "seconds": {method: s}, "labels": {method: label},
    "sample_ids": [...], "split": manifest statistics, "entries": {method: {aid: PseudoGT}}, "refine": counts}``.

    Raises:
        ValueError: an unknown method, or one that needs ``neuralannot`` without it.
    """
    from annot.body_models import BodyModel

    syn = ensure_split(cfg)
    itw = load_itw(syn)
    body = BodyModel("free")
    done: dict[str, dict[str, Any]] = {}
    for key in methods:
        saved = _reusable(cfg, key)
        if saved is not None:
            log.info("bench-annot: seed %d: %s reused from %s", cfg.seed, key, Path(cfg.out) / key)
            done[key] = saved
            continue
        log.info("bench-annot: seed %d: %s", cfg.seed, key)
        done[key] = run_method(cfg, key, syn, itw, body, done)
        save_method(cfg, key, done[key])
    manifest = json.loads((syn / "synthetic_manifest.json").read_text())
    return {"per_sample": {k: score(body, itw, m["entries"]) for k, m in done.items()},
            "seconds": {k: float(m["seconds"]) for k, m in done.items()},
            "labels": {k: m.get("label", LABELS[k]) + ("" if cfg.backbone_path or k not in NEURALANNOT_ROWS
                                                           else " [no pretrained backbone]") for k, m in done.items()},
            "sample_ids": list(itw), "split": manifest.get("itw_annotations"),
            "entries": {k: m["entries"] for k, m in done.items()}, "itw": itw, "body": body,
            "refine": done.get("neuralannot_fit", {}).get("refine")}


# --------------------------------------------------------------------------- the command
#: the rows of ``make bench-annot`` (issue #11's list). Left out to keep three seeds near an hour on 2 cores, one
#: ``--methods`` away: ``neuralannot_paper`` (one more f per seed) and ``neuralannot_fit_estimated``.
DEFAULT_METHODS = ("neuralannot", "neuralannot_no_prior", "neuralannot_no_aux3d", "neuralannot_no_pretrain",
                   "neuralannot_fit", "smplify", "smplify_crop_cam", "eft", "smplify_clean")


def ensure_backbone(cfg: BenchConfig, methods: tuple[str, ...]) -> dict[str, Any] | None:
    """The second recipe's free SimpleBaseline backbone (:func:`annot.pretrain.ensure_pretrained_backbone`),
    built once under ``cfg.backbone_dir`` when a listed variant uses it; ``{"path", "seconds", "note"}``."""
    if not cfg.pretrained_backbone or not any(VARIANTS[k][3] for k in methods if k in VARIANTS):
        return None
    from annot.pretrain import ensure_pretrained_backbone

    depth = int(_annotate_cfg(cfg, Path(cfg.out), "neuralannot").model.backbone_depth)
    start = time.perf_counter()
    path = ensure_pretrained_backbone(depth, Path(cfg.backbone_dir))
    seconds = time.perf_counter() - start
    note = (f"SimpleBaseline ResNet-{depth} trained on free data by `make pretrain-backbone`; "
            + (f"built in this run in {seconds:.0f} s, not counted in the rows" if seconds > 5 else "reused"))
    return {"path": str(path), "seconds": seconds, "note": note}


def run_bench(cfg: BenchConfig, methods: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every seed of ``cfg.seeds`` (:func:`run_seed`, each under ``<out>/seed<k>``), then the rows over
    seeds, the paired comparison with SMPLify and ``results.{md,json,png}`` in ``cfg.out``.

    Returns the results dict (also in ``results.json``, with every per-sample value). Raises
    FileNotFoundError / ValueError from the data, pipeline and fitters.
    """
    from annot.benchmarks.quality_report import (
        aggregate,
        overlay_grid,
        paired_against_smplify,
        results_markdown,
        split_summary,
        write_figure,
    )

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = tuple(methods or DEFAULT_METHODS)
    backbone = ensure_backbone(cfg, methods)
    seeds: dict[int, dict[str, Any]] = {}
    for seed in cfg.seeds:
        seed_cfg = replace(cfg, seed=int(seed), out=str(out / f"seed{seed}"),
                           backbone_path=backbone["path"] if backbone else None)
        seeds[int(seed)] = run_seed(seed_cfg, methods)
    rows = aggregate(seeds)
    paired = paired_against_smplify(seeds, rows)
    split = split_summary(seeds)
    total_s = time.perf_counter() - t0
    model = _annotate_cfg(cfg, out, "neuralannot").model
    md = results_markdown(rows, paired, split, cfg, total_s, backbone,
                          f"{model.architecture}, ResNet-{model.backbone_depth}")
    results = {"config": {**asdict(cfg), "image_hw": list(cfg.image_hw), "input_hw": list(cfg.input_hw),
                          "seeds": list(cfg.seeds)},
               "rows": rows, "paired_vs_smplify_mpjpe_mm": paired, "split": split, "backbone": backbone,
               "per_seed": {s: {"sample_ids": r["sample_ids"], "refine": r["refine"],
                                "per_sample": {k: {m: v.tolist() for m, v in p.items()}
                                               for k, p in r["per_sample"].items()}} for s, r in seeds.items()},
               "total_s": total_s}
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "results.md", md.encode())
    first = next(iter(seeds.values()))
    grid, aids = overlay_grid(first["body"], first["itw"], first["entries"], cfg.num_overlays)
    orient = {k: np.concatenate([r["per_sample"][k]["orient_err_deg"] for r in seeds.values()]) for k in rows}
    write_figure(out / "results.png", rows, orient, grid, aids)
    results["markdown"] = md
    return results
