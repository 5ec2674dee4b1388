"""``make bench-annot``: pseudo-GT annotators scored against the hidden GT of the free synthetic ITW split.

Methods (one row each in ``results.md``):

* ``NeuralAnnot (recipes on)``: Algorithm 1 (:func:`annot.pipeline.run_annotate`, one stage) with the VPoser
  prior (third recipe) and the synthetic ``mocap`` split as an auxiliary 3D image set (first recipe);
* ``NeuralAnnot w/o prior``: the same with ``prior.pose_prior=none``;
* ``NeuralAnnot w/o 3D aux``: the same without the synthetic 3D auxiliary set (CMU joints only);
* ``SMPLify``: batched 2D fit (:class:`annot.fitting.smplify.SMPLify2D`) to the GT COCO-17 keypoints with
  the GT intrinsics, from both facing directions (SMPLify's 180 deg trial) and with the VPoser prior that
  the ``recipes on`` variant trained (the same prior as NeuralAnnot; axis-angle + L2 + bending without it);
* ``EFT``: per-sample exemplar fine-tuning (:func:`annot.fitting.eft.eft_annotate`) of the trained
  ``recipes on`` annotator.

The second recipe (a pre-trained backbone) is ``n/a``: no free checkpoint exists here.

Data (:mod:`annot.synthetic`): CMU poses retargeted to the free model by SMPLify3D; the ITW split's poses
come from clips that the ``mocap`` split never shows. The CMU joints themselves (all clips) are the
3D-joints-only auxiliary set of stage (a), and the prior trains on their pseudo-GTs, as NeuralAnnot's prior
trains on MoCap.

Scoring (mks0601 3DPW protocol): direct MPJPE / PA-MPJPE on the 14 H36M eval joints regressed from the
mesh with the regressed pelvis as root, MPVPE with the same root, 2D error = mean distance (original
pixels) of the projected COCO-17 joints to the visible GT keypoints; wall time per sample of each
method, measured in this run (NeuralAnnot: all of its stages' wall times / samples).
Our own benchmark; the comparison follows NeuralAnnot (Moon et al., CVPRW 2022) Table 1 in spirit.
"""
from __future__ import annotations

import io
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from annot.atomic import atomic_write_bytes, atomic_write_json
from annot.export import PseudoGT, pseudo_gts_from_predictions, read_pseudo_gt
from annot.keypoints import H36M_EVAL_JOINTS

log = logging.getLogger(__name__)
ANNOTATE_CONFIG = "configs/annotate/body_free.yaml"
SYNTH_CONFIG = "configs/data/synthetic.yaml"
ITW_ANN = "annotations/person_keypoints_train2017.json"
ITW_IMG = "images/train2017"
GT_FILE = "scoring/gt_smpl.json"
#: method key -> (table label, recipe overrides); NeuralAnnot variants only.
VARIANTS: dict[str, tuple[str, bool, bool]] = {  # key -> (label, vposer prior, synthetic 3D aux)
    "neuralannot": ("NeuralAnnot (recipes on)", True, True),
    "neuralannot_no_prior": ("NeuralAnnot w/o prior (3rd recipe off)", False, True),
    "neuralannot_no_aux3d": ("NeuralAnnot w/o 3D aux (1st recipe off)", True, False),
}
LABELS = {**{k: v[0] for k, v in VARIANTS.items()}, "smplify": "SMPLify (2D, GT intrinsics, both facings)",
          "smplify_crop_cam": "SMPLify (2D, f's crop camera, both facings)",
          "eft": "EFT (from NeuralAnnot f)"}
#: 2D convention of every variant: COCO-17 plus a Pelvis root, which the image auxiliary set's 3D-joint loss
#: needs (the pipeline uses ``data.convention`` for it; ``coco17`` has no root joint).
DATA_CONVENTION = "pose2pose25"
METRICS = ("mpjpe_mm", "pa_mpjpe_mm", "mpvpe_mm", "kp2d_err_px")


@dataclass
class BenchConfig:
    """Sizes and steps of the benchmark (defaults: about 20 min on 2 CPU cores, set-up included).

    ``size``: ITW people (= images); ``mocap_size``: synthetic 3D auxiliary images; ``image_hw`` (H, W) px;
    ``steps``: stage-(b) steps per NeuralAnnot variant; ``aux_steps`` / ``aux_batch``: stage (a) steps and
    batch (CMU and synthetic 3D); ``prior_epochs``: VPoser-prior epochs; ``smplify_iters``: Adam steps per
    SMPLify stage; ``eft_iters``: EFT maximum steps per sample; ``num_overlays``: samples shown in the PNG;
    ``cmu_frames``: CMU frames retargeted for the synthetic poses (``annot.synthetic``); ``cmu_fit_iters``: its
    SMPLify3D steps per stage; ``architecture``:
    the annotator f (``pose2pose``, the Three Recipes f, or ``regressor``); ``refine_iters``: SMPLify3D
    refinement of the stage-(a) pseudo-GTs (``aux_stage.refine_iters``; 0 = as the paper); ``extra_overrides``:
    annotate-config ``key=value`` items applied to every NeuralAnnot variant.
    """

    out: str = "outputs/bench-annot"
    size: int = 64
    mocap_size: int = 256
    image_hw: tuple[int, int] = (240, 320)
    steps: int = 500
    aux_steps: int = 240
    aux_batch: int = 16
    prior_epochs: int = 50
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


# --------------------------------------------------------------------------- data
def ensure_split(cfg: BenchConfig) -> Path:
    """Generate the synthetic ``itw`` + ``mocap`` splits under ``<out>/synthetic`` unless present with the
    same generator values (every field of the manifest's config); returns the synthetic root.

    Raises:
        FileNotFoundError: the generator config (``configs/data/synthetic.yaml``) or the CMU clips are missing.
    """
    from annot.synthetic import config_from_dict, make_synthetic

    path = Path(SYNTH_CONFIG)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: synthetic generator config missing")
    values = yaml.safe_load(path.read_text()) or {}
    values.update(sizes={"mocap": cfg.mocap_size, "itw": cfg.size, "test": 0}, image_hw=list(cfg.image_hw),
                  seed=cfg.seed, photos_dir=cfg.photos_dir, cmu_root=cfg.cmu_root,
                  cmu_frames=cfg.cmu_frames, cmu_fit_iters=cfg.cmu_fit_iters)
    synth = config_from_dict(values)
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
    """Per annotation id: ``image_path``, ``kp2d_px`` (17, 2), ``vis`` (17,) bool, GT :class:`PseudoGT`.

    Raises:
        FileNotFoundError: the annotation or scoring file is missing.
        ValueError: an annotation without a GT entry.
    """
    ann_path, gt_path = root / "itw" / ITW_ANN, root / "itw" / GT_FILE
    for p in (ann_path, gt_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: synthetic ITW file missing (regenerate: rm -r {root})")
    coco = json.loads(ann_path.read_text())
    gt = read_pseudo_gt(gt_path)
    images = {im["id"]: im for im in coco["images"]}
    out = {}
    for ann in coco["annotations"]:
        aid = str(ann["id"])
        if aid not in gt:
            raise ValueError(f"{gt_path}: no GT for annotation id {aid} (field smpl_param)")
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        out[aid] = {"image_path": root / "itw" / ITW_IMG / images[ann["image_id"]]["file_name"],
                    "kp2d_px": kp[:, :2], "vis": kp[:, 2] > 0, "gt": gt[aid]}
    return out


# --------------------------------------------------------------------------- methods
def _annotate_cfg(cfg: BenchConfig, syn: Path, key: str) -> Any:
    from annot.config import AnnotateConfig, load_config

    _, vposer, aux3d = VARIANTS[key]
    ov = [f"seed={cfg.seed}", f"data.root={syn / 'itw'}", f"data.ann_file={ITW_ANN}", f"data.img_dir={ITW_IMG}",
          f"auxiliary.cmu.args.root={cfg.cmu_root}", f"aux_stage.max_steps={cfg.aux_steps}",
          f"aux_stage.batch_size={cfg.aux_batch}", f"aux_stage.lr_decay_steps=[{int(cfg.aux_steps * 0.75)}]",
          f"prior.max_epochs={cfg.prior_epochs}", f"prior.pose_prior={'vposer' if vposer else 'none'}",
          f"trainer.max_steps={cfg.steps}", f"optim.lr_decay_steps=[{int(cfg.steps * 0.8)}]",
          "export.overlays=false", f"data.convention={DATA_CONVENTION}", f"export.out_dir={Path(cfg.out) / key}",
          "algorithm.second_round=false", f"model.architecture={cfg.architecture}",
          f"aux_stage.refine_iters={cfg.refine_iters}"]
    if aux3d:
        ov += ["auxiliary.synth3d.dataset=3dpw", f"auxiliary.synth3d.args.root={syn / 'mocap'}",
               "auxiliary.synth3d.args.split=train"]
    return load_config(AnnotateConfig, ANNOTATE_CONFIG, ov + list(cfg.extra_overrides))


def _share_stages(cfg: BenchConfig, key: str) -> None:
    """Copy completed stage-(a) folders of an earlier variant (same provenance: the pipeline re-checks it)."""
    dst = Path(cfg.out) / key
    for other in VARIANTS:
        if other == key:
            continue
        for src in sorted((Path(cfg.out) / other).glob("stage_a_*")):
            if (src / "stage.json").is_file() and not (dst / src.name).exists():
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copytree(src, dst / src.name)


def run_neuralannot(cfg: BenchConfig, syn: Path, key: str) -> dict[str, Any]:
    """One NeuralAnnot variant -> ``{"entries": {aid: PseudoGT}, "seconds": total stage wall time}``."""
    from annot.pipeline import run_annotate

    _share_stages(cfg, key)
    report = run_annotate(_annotate_cfg(cfg, syn, key))
    wall = report["wall_time"]
    return {"entries": read_pseudo_gt(Path(cfg.out) / key / "pseudo_gt.json"),
            "seconds": float(wall["stages_total_s"]), "this_invocation_s": float(wall["this_invocation_s"])}


def _shared_prior(cfg: BenchConfig) -> Any:
    """The VPoser prior trained by the ``neuralannot`` variant (stage "prior"), or None when absent."""
    from annot.priors import load_vposer

    folder = Path(cfg.out) / "neuralannot" / "prior"
    return load_vposer(folder) if (folder / "stage.json").is_file() else None


def run_smplify(cfg: BenchConfig, itw: dict[str, dict[str, Any]], body: Any,
                cameras: dict[str, PseudoGT] | None = None) -> dict[str, Any]:
    """Batched SMPLify2D on the GT 2D keypoints (original-image pixels), from both facing directions
    (``try_flipped``), with the same VPoser prior as NeuralAnnot when it was trained in this run (else
    axis-angle + L2 + bending; the label says which). Camera: the GT intrinsics, or with ``cameras`` (the
    ``neuralannot`` entries) each sample's crop camera of f (virtual focal length, box-centred principal
    point), the camera NeuralAnnot itself assumes. Samples missing from ``cameras`` are not fitted."""
    from annot.fitting.smplify import SMPLify2D

    aids = [a for a in itw if cameras is None or a in cameras]
    cams = {a: (cameras[a] if cameras is not None else itw[a]["gt"]) for a in aids}
    kp = torch.tensor(np.stack([itw[a]["kp2d_px"] for a in aids]), dtype=torch.float32)
    conf = torch.tensor(np.stack([itw[a]["vis"] for a in aids]), dtype=torch.float32)
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
    return {"entries": entries, "seconds": seconds, "label": label}


def run_eft(cfg: BenchConfig, syn: Path) -> dict[str, Any]:
    """EFT from the trained ``recipes on`` annotator, one sample at a time (its fine-tuning time only)."""
    from annot.fitting.eft import eft_annotate
    from annot.module import AnnotatorModule
    from annot.pipeline import _target_dataset

    acfg = _annotate_cfg(cfg, syn, "neuralannot")
    module = AnnotatorModule.load_from_checkpoint(Path(cfg.out) / "neuralannot" / "stage_b_round1" / "annotator.ckpt",
                                                  map_location="cpu")
    dataset = _target_dataset(acfg, train=False)
    start = time.perf_counter()
    results = eft_annotate(module, dataset, max_iters=cfg.eft_iters)
    seconds = time.perf_counter() - start
    entries: dict[str, PseudoGT] = {}
    for r in results:
        entries.update(pseudo_gts_from_predictions(r.pred))
    return {"entries": entries, "seconds": seconds}


# --------------------------------------------------------------------------- scoring
def _mesh(body: Any, entries: list[PseudoGT]) -> torch.Tensor:
    pose = torch.tensor(np.stack([e.pose_rotvec.reshape(72) for e in entries]), dtype=torch.float32)
    betas = torch.tensor(np.stack([e.betas for e in entries]), dtype=torch.float32)
    transl = torch.tensor(np.stack([e.transl_m for e in entries]), dtype=torch.float32)
    with torch.no_grad():
        return body(pose[:, :3], pose[:, 3:], betas, transl).vertices_m


def score(body: Any, itw: dict[str, dict[str, Any]], entries: dict[str, PseudoGT]) -> dict[str, np.ndarray]:
    """Per-sample errors of ``entries`` vs the hidden GT (samples a method skipped get NaN).

    Returns ``{metric: (N,) array}`` for :data:`METRICS` (mm, mm, mm, px) in ``itw`` order.
    """
    from annot.metrics import mpjpe_per_sample_mm, mpvpe_per_sample_mm

    aids = list(itw)
    out = {m: np.full(len(aids), np.nan) for m in METRICS}
    have = [i for i, a in enumerate(aids) if a in entries]
    if not have:
        return out
    pred_v = _mesh(body, [entries[aids[i]] for i in have])
    gt_v = _mesh(body, [itw[aids[i]]["gt"] for i in have])
    pred_j, gt_j = body.regress(pred_v, "h36m17")[0], body.regress(gt_v, "h36m17")[0]
    ev = list(H36M_EVAL_JOINTS)
    out["mpjpe_mm"][have] = mpjpe_per_sample_mm(pred_j, gt_j, 0, ev).numpy()
    out["pa_mpjpe_mm"][have] = mpjpe_per_sample_mm(pred_j, gt_j, 0, ev, procrustes=True).numpy()
    out["mpvpe_mm"][have] = mpvpe_per_sample_mm(pred_v, gt_v, pred_j[:, 0], gt_j[:, 0]).numpy()
    coco = body.regress(pred_v, "coco17")[0].double()
    for k, i in enumerate(have):
        e, rec = entries[aids[i]], itw[aids[i]]
        xy = coco[k, :, :2] / coco[k, :, 2:].clamp(min=1e-6) * torch.as_tensor(e.focal_px, dtype=torch.float64) \
            + torch.as_tensor(e.princpt_px, dtype=torch.float64)
        d = np.linalg.norm(xy.numpy() - rec["kp2d_px"], axis=1)[rec["vis"]]
        out["kp2d_err_px"][i] = float(d.mean()) if d.size else np.nan
    return out


# --------------------------------------------------------------------------- outputs
def _summary(per: dict[str, np.ndarray], seconds: float, n: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for m in METRICS:
        v = per[m][np.isfinite(per[m])]
        row[m] = float(v.mean()) if v.size else float("nan")
        row[m + "_std"] = float(v.std()) if v.size else float("nan")
    row["scored"] = int(np.isfinite(per["mpjpe_mm"]).sum())
    row["seconds_per_sample"] = seconds / max(n, 1)
    return row


def claim_lines(rows: dict[str, dict[str, Any]], cfg: BenchConfig, f_desc: str = "f") -> list[str]:
    """Sentences comparing the rows with the papers' claims: NeuralAnnot's direct MPJPE below SMPLify's
    (NeuralAnnot Table 5 setting) and each recipe lowering it (Three Recipes); says plainly when not.
    ``f_desc`` names the annotator network (e.g. ``"Pose2Pose (ResNet-18)"``)."""
    mpjpe = {k: r["mpjpe_mm"] for k, r in rows.items()}
    out = []
    na, sm = mpjpe.get("neuralannot"), mpjpe.get("smplify")
    if na is not None and sm is not None:
        if na < sm:
            out.append(f"NeuralAnnot's direct MPJPE ({na:.1f} mm) is lower than SMPLify's ({sm:.1f} mm), "
                       "as in the paper.")
        else:
            out.append(f"**NeuralAnnot's direct MPJPE ({na:.1f} mm) is NOT lower than SMPLify's ({sm:.1f} mm) "
                       f"in this run**, unlike the paper: here f ({f_desc}) is trained from scratch for "
                       f"{cfg.steps} steps on {cfg.size} + {cfg.mocap_size} synthetic images on a CPU, where the "
                       "paper's f starts from a pre-trained backbone and trains on ~100k images; SMPLify gets the "
                       "GT intrinsics, both facing directions and the same prior.")
    crop = mpjpe.get("smplify_crop_cam")
    if sm is not None and crop is not None:
        out.append(f"With f's own crop camera instead of the GT intrinsics SMPLify's MPJPE is {crop:.1f} mm: "
                   f"{crop - sm:+.1f} mm is the camera; the rest of the gap to NeuralAnnot is the fit itself.")
    for key, recipe in (("neuralannot_no_prior", "the prior (3rd recipe)"),
                        ("neuralannot_no_aux3d", "the 3D auxiliary images (1st recipe)")):
        if na is not None and key in mpjpe:
            verb = "lowers" if na < mpjpe[key] else "does NOT lower"
            out.append(f"Adding {recipe} {verb} NeuralAnnot's MPJPE ({mpjpe[key]:.1f} -> {na:.1f} mm).")
    return out


def results_markdown(rows: dict[str, dict[str, Any]], cfg: BenchConfig, n: int, total_s: float,
                     f_desc: str = "f") -> str:
    """The ``results.md`` table plus :func:`claim_lines` and the scoring / timing notes."""
    lines = [f"# bench-annot: pseudo-GT annotators on the free synthetic ITW split ({n} people, "
             f"{cfg.image_hw[1]}x{cfg.image_hw[0]} px)", "",
             "| method | MPJPE (mm) | PA-MPJPE (mm) | MPVPE (mm) | 2D err (px) | time / sample (s) | scored |",
             "|---|---|---|---|---|---|---|"]
    for key, r in rows.items():
        lines.append(f"| {r['label']} | {r['mpjpe_mm']:.1f} ± {r['mpjpe_mm_std']:.1f} | "
                     f"{r['pa_mpjpe_mm']:.1f} ± {r['pa_mpjpe_mm_std']:.1f} | {r['mpvpe_mm']:.1f} ± "
                     f"{r['mpvpe_mm_std']:.1f} | {r['kp2d_err_px']:.1f} ± {r['kp2d_err_px_std']:.1f} | "
                     f"{r['seconds_per_sample']:.2f} | {r['scored']}/{n} |")
    lines.append("| NeuralAnnot w/o pre-trained backbone (2nd recipe) | n/a | n/a | n/a | n/a | n/a | "
                 "no free checkpoint |")
    lines += ["", *claim_lines(rows, cfg, f_desc)]
    lines += ["", "± = standard deviation over samples. MPJPE / PA-MPJPE: 14 H36M eval joints regressed from the "
              "mesh, regressed pelvis as root; MPVPE with the same root; 2D error: projected COCO-17 joints vs "
              "visible GT keypoints, original pixels.",
              "Time / sample: NeuralAnnot = every stage of Algorithm 1 (stage (a), prior, training, prediction; "
              "shared stage (a) counted for each variant) / samples; SMPLify = the batched fit / samples "
              "(given the GT intrinsics); EFT = its per-sample fine-tuning only (plus the NeuralAnnot training "
              "it starts from).",
              f"Settings: steps={cfg.steps}, aux_steps={cfg.aux_steps}, aux_batch={cfg.aux_batch}, "
              f"prior_epochs={cfg.prior_epochs}, smplify_iters={cfg.smplify_iters}, eft_iters={cfg.eft_iters}, "
              f"seed={cfg.seed}. Total wall time of this run: {total_s:.0f} s.", ""]
    return "\n".join(lines)


SHORT = {"neuralannot": "NA", "neuralannot_no_prior": "NA w/o prior", "neuralannot_no_aux3d": "NA w/o 3D aux",
         "smplify": "SMPLify", "smplify_crop_cam": "SMPLify crop cam", "eft": "EFT"}


def _short(key: str) -> str:
    """Short method name for the figure (``key`` itself when unknown, e.g. ``"GT"``)."""
    return SHORT.get(key, key)


def _overlay_grid(body: Any, itw: dict[str, dict[str, Any]], methods: dict[str, dict[str, Any]], num: int):
    import cv2
    from annot.render import MeshRenderer

    renderer = MeshRenderer()
    faces = np.asarray(body.faces)
    aids = list(itw)[:num]
    rows = [("GT", {a: itw[a]["gt"] for a in aids})] + [(k, m["entries"]) for k, m in methods.items()]
    grid = []
    for label, entries in rows:
        row = []
        for a in aids:
            img = cv2.imread(str(itw[a]["image_path"]))[:, :, ::-1].copy()
            if a in entries:
                v = _mesh(body, [entries[a]])[0].numpy()
                img = renderer.overlay(img, v, faces, entries[a].focal_px, entries[a].princpt_px)
            row.append(np.asarray(img))
        grid.append((label, row))
    return grid, aids


def write_figure(path: Path, rows: dict[str, dict[str, Any]], grid: list, aids: list[str]) -> None:
    """results.png: error bars (mean ± std) per method and metric, then one overlay row per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(grid), max(len(aids), 1)
    fig = plt.figure(figsize=(4 * max(n_cols, 4), 3.2 + 2.4 * n_rows))
    gs = fig.add_gridspec(1 + n_rows, max(n_cols, len(METRICS)), height_ratios=[1.4] + [1] * n_rows)
    keys = list(rows)
    for j, m in enumerate(METRICS):
        ax = fig.add_subplot(gs[0, j])
        ax.bar(range(len(keys)), [rows[k][m] for k in keys], yerr=[rows[k][m + "_std"] for k in keys],
               capsize=3, color=[f"C{i}" for i in range(len(keys))])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([_short(k) for k in keys],
                           rotation=35, ha="right", fontsize=7)
        ax.set_title(m.replace("_", " "), fontsize=9)
    for r, (label, images) in enumerate(grid):
        for c, img in enumerate(images):
            ax = fig.add_subplot(gs[1 + r, c])
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(_short(label), fontsize=8)
            if r == 0:
                ax.set_title(f"ann {aids[c]}", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- the command
def run_bench(cfg: BenchConfig, methods: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Generate (if missing), annotate with every method, score, write results.{md,json,png}.

    Returns the results dict (also in ``results.json``); ``methods`` restricts the rows (EFT needs
    ``neuralannot``). Raises FileNotFoundError / ValueError from the data, pipeline and fitters.
    """
    from annot.body_models import BodyModel

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    syn = ensure_split(cfg)
    gen_s = time.perf_counter() - t0
    itw = load_itw(syn)
    body = BodyModel("free")
    methods = methods or (*VARIANTS, "smplify", "smplify_crop_cam", "eft")
    done: dict[str, dict[str, Any]] = {}
    for key in methods:
        log.info("bench-annot: %s", key)
        if key in VARIANTS:
            done[key] = run_neuralannot(cfg, syn, key)
        elif key == "smplify":
            done[key] = run_smplify(cfg, itw, body)
        elif key == "smplify_crop_cam":
            if "neuralannot" not in done:
                raise ValueError("bench-annot: smplify_crop_cam needs the neuralannot method (its cameras)")
            done[key] = run_smplify(cfg, itw, body, cameras=done["neuralannot"]["entries"])
        elif key == "eft":
            done[key] = run_eft(cfg, syn)
        else:
            raise ValueError(f"bench-annot: unknown method {key!r}; known: {list(LABELS)}")
    per = {k: score(body, itw, m["entries"]) for k, m in done.items()}
    rows = {k: {"label": done[k].get("label", LABELS[k]), **_summary(per[k], done[k]["seconds"], len(itw))}
            for k in done}
    total_s = time.perf_counter() - t0
    model = _annotate_cfg(cfg, syn, "neuralannot").model
    f_desc = f"{model.architecture}, ResNet-{model.backbone_depth}"
    md = results_markdown(rows, cfg, len(itw), total_s, f_desc)
    results = {"config": {**asdict(cfg), "image_hw": list(cfg.image_hw)}, "num_samples": len(itw),
               "rows": rows,
               "per_sample": {k: {m: v.tolist() for m, v in p.items()} for k, p in per.items()},
               "sample_ids": list(itw), "generate_s": gen_s, "total_s": total_s}
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "results.md", md.encode())
    grid, aids = _overlay_grid(body, itw, done, cfg.num_overlays)
    write_figure(out / "results.png", rows, grid, aids)
    results["markdown"] = md
    return results
