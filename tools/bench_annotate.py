#!/usr/bin/env python
"""Samples/s of *annotation* (``trainer.predict`` of the annotator) next to a bare ResNet-50 forward.

The annotator (in-the-wild mode, VPoser prior, ResNet-50, 256x192) predicts pseudo-GTs of a synthetic
batch already on the device (body model, projection and the per-sample quality included; the data loader
is not measured); the bare ``annot.nets.resnet.ResNetBackbone(50)`` runs a forward under
``torch.inference_mode`` at the same batch, resolution, precision and layout, interleaved with it. The
ratio annotator / bare is the figure to compare across machines (see ``annot.benchmarks.throughput``).

Usage::

    python tools/bench_annotate.py --batch 8 --threads 1                     # CPU
    python tools/bench_annotate.py --device cuda --batch 192 --precision bf16 --channels-last true
    python tools/bench_annotate.py ... --json results.json
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import sys

from annot.app.cli import run_tool
from annot.benchmarks.throughput import main

if __name__ == "__main__":
    sys.exit(run_tool(lambda argv: main(train=False, argv=argv)))
