"""Train a VPoser-architecture body-pose prior on pose parameters (the free path to a VPoser).

Usage::

    python tools/train_prior.py --poses poses.npz --out outputs/prior/vposer_free \
        [--max-epochs 20] [--batch-size 128] [--seed 0] [--latent-dim 32] [--num-neurons 512]
        [--kl-weight 0.005] [--rec-weight 1.0] [--accelerator auto]

``poses.npz`` holds axis-angle radians under one of the keys ``pose_body`` (N,63) / (N,21,3),
``body_pose`` (N,69) / (N,63), or ``poses`` (N,72) SMPL / (N,156) AMASS SMPL+H / (N,165) SMPL-X
(root first; joints 1..21 are used). The output folder has the V02_05 layout; pass it to
``annot.priors.load_vposer``. See ``annot.priors.train`` for the loss and settings.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import logging
import sys

from annot.app.cli import run_tool
from annot.priors.train import load_body_poses_npz, train_prior


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--poses", required=True,
                        help="npz with 'pose_body' (N,63), 'body_pose' (N,69) or 'poses' (N,72|156|165)")
    parser.add_argument("--out", required=True, help="experiment folder to write (snapshots/*.ckpt + yaml)")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--num-neurons", type=int, default=512)
    parser.add_argument("--kl-weight", type=float, default=0.005, help="KL weight (V02_05: 0.005)")
    parser.add_argument("--rec-weight", type=float, default=1.0, help="reconstruction weight")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("annot").setLevel(logging.INFO)
    try:
        poses = load_body_poses_npz(args.poses)
        ckpt = train_prior(poses, args.out, max_epochs=args.max_epochs, batch_size=args.batch_size,
                           seed=args.seed, num_neurons=args.num_neurons, latent_dim=args.latent_dim,
                           kl_weight=args.kl_weight, rec_weight=args.rec_weight, accelerator=args.accelerator)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"trained on {len(poses)} poses; checkpoint {ckpt}; "
          f"load with annot.priors.load_vposer('{args.out}')")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
