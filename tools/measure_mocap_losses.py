#!/usr/bin/env python
"""Measure image MoCap-mode (stage (a)) error with and without the terms beyond NeuralAnnot Eq. 1.

NeuralAnnot Eq. 1 (MoCap mode): L1 on root-relative 3D joints + L2 regularisers. Our image MoCap mode
also adds the 2D reprojection L1 (``mocap_kp2d``) and, with the Pose2Pose architecture, the PositionNet
L1 (``mocap_joint_img``). This script renders a small synthetic 3DPW-layout MoCap set with exact GT
(:mod:`annot.benchmarks.synthetic`, ``pose_source="random"`` so that no CMU retargeting is needed), trains one
MoCap-mode annotator per variant with the same seed, data order and steps, predicts on the same set
(train-and-test, as stage (a)) and reports, against the GT SMPL:

* ``mpjpe3d_mm``: the stage-(a) 3D joint error (``joints3d_err_mm``, SMPL-24, root-relative, mean);
* ``mpvpe_mm`` / ``pa_mpvpe_mm``: vertex error of the pseudo-GT mesh after subtracting each mesh's
  regressed H36M pelvis (mks0601 protocol), and after Procrustes alignment;
* ``kp2d_err_px``: 2D error of the projected joints, original-image pixels.

Usage (the README numbers; about 11 minutes per variant on a loaded 2-core CPU)::

    python tools/measure_mocap_losses.py --out outputs/mocap-losses --samples 32 --steps 80 --batch 8

Writes ``<out>/mocap_losses_<variants>.json`` and prints a table (``eq1_2d_pn``: Eq. 1 + 2D + PositionNet;
``eq1``: Eq. 1 alone). ``--variants eq1_2d_pn`` / ``--variants eq1`` run one each (two processes).
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from annot.annotator.config import LossConfig
from annot.annotator.module import AnnotatorModule
from annot.benchmarks.synthetic import SyntheticConfig, make_synthetic
from annot.body_models import BodyModel
from annot.data.pw3d import PW3D
from annot.metrics import MPVPE, PAMPVPE

VARIANTS = {  # name -> (mocap_kp2d, mocap_joint_img)
    "eq1_2d_pn": (True, True),  # Eq. 1 + 2D reprojection + PositionNet (before #13)
    "eq1": (False, False),      # NeuralAnnot Eq. 1 alone (the aux_stage default)
}


def _data(out: Path, samples: int, seed: int) -> Path:
    root = out / "synthetic" / "mocap"
    if not (root / "3DPW_train.json").is_file():
        photos = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
        config = SyntheticConfig(seed=seed, sizes={"mocap": samples, "itw": 0, "test": 0}, image_hw=(240, 320),
                                 pose_source="random", photos_dir=str(photos) if photos.is_dir() else None)
        make_synthetic(config, out / "synthetic")
    return root


def _train(dataset: PW3D, mocap_kp2d: bool, mocap_joint_img: bool, steps: int, batch: int, depth: int,
           seed: int) -> AnnotatorModule:
    torch.manual_seed(seed)
    loss = LossConfig()
    module = AnnotatorModule(mode="mocap", backbone_depth=depth, kp2d_convention="smpl24",
                             joints3d_convention="smpl24", architecture="pose2pose", w_joint_img=loss.joint_img,
                             w_joints3d=loss.joints3d, w_pose_l2=loss.pose_l2, w_betas_l2=loss.betas_l2, lr=1e-3,
                             lr_decay_steps=(int(0.75 * steps),), mocap_kp2d=mocap_kp2d,
                             mocap_joint_img=mocap_joint_img)
    opt = module.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    module.train()
    gen = torch.Generator().manual_seed(seed)
    step = 0
    while step < steps:
        for b in DataLoader(dataset, batch_size=batch, shuffle=True, generator=gen, drop_last=True):
            terms = module._losses(module.predict_batch(b), b)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 25 == 0:
                print(f"  step {step}/{steps} loss {terms['total'].item():.4f}", flush=True)
            if step >= steps:
                break
    return module.eval()


@torch.no_grad()
def _score(module: AnnotatorModule, dataset: PW3D, body: BodyModel) -> dict[str, float]:
    mpvpe, pa_mpvpe, err3d, err2d = MPVPE(), PAMPVPE(), [], []
    for b in DataLoader(dataset, batch_size=16, shuffle=False):
        out = module.predict_step(b, 0)
        err3d.append(out["joints3d_err_mm"])
        err2d.append(out["kp2d_err_img_px"])
        pred = module.predict_batch(b)["vertices_cam_m"]
        pose = b["smpl_pose_rotvec"].reshape(-1, 72)
        gt = body(pose[:, :3], pose[:, 3:], b["smpl_betas"], b["smpl_transl_m"]).vertices_m
        roots = (body.regress(pred, "h36m17")[0][:, 0], body.regress(gt, "h36m17")[0][:, 0])
        mpvpe.update(pred, gt, *roots)
        pa_mpvpe.update(pred, gt, *roots)
    return {"mpjpe3d_mm": float(torch.cat(err3d).mean()), "mpvpe_mm": float(mpvpe.compute()),
            "pa_mpvpe_mm": float(pa_mpvpe.compute()), "kp2d_err_px": float(torch.cat(err2d).nanmean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/mocap-losses")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="run only these (e.g. one per process, then compare the json files)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    root = _data(out, args.samples, args.seed)
    dataset = PW3D(root, split="train", convention="smpl24")
    body = BodyModel.from_config("free")
    results = {"settings": vars(args), "samples": len(dataset), "variants": {}}
    for name in args.variants:
        kp2d, joint_img = VARIANTS[name]
        start = time.perf_counter()
        module = _train(dataset, kp2d, joint_img, args.steps, args.batch, args.depth, args.seed)
        row = _score(module, dataset, body)
        row["train_seconds"] = time.perf_counter() - start
        results["variants"][name] = row
        print(name, json.dumps(row), flush=True)
    (out / f"mocap_losses_{'_'.join(args.variants)}.json").write_text(json.dumps(results, indent=1))
    keys = ("mpjpe3d_mm", "mpvpe_mm", "pa_mpvpe_mm", "kp2d_err_px")
    print(f"{'variant':<12s}" + "".join(f"{k:>14s}" for k in keys))
    for name, row in results["variants"].items():
        print(f"{name:<12s}" + "".join(f"{row[k]:>14.1f}" for k in keys))


if __name__ == "__main__":
    import sys

    from annot.app.cli import run_tool

    np.set_printoptions(precision=3)
    sys.exit(run_tool(main))
