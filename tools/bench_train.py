#!/usr/bin/env python
"""Samples/s of annotator *training* next to a bare ResNet-50 forward + backward on the same device.

The annotator (in-the-wild mode, VPoser prior, ResNet-50, 256x192) is trained by a Lightning Trainer on a
synthetic batch already on the device (the data loader is not measured); the bare
``annot.nets.resnet.ResNetBackbone(50)`` runs forward, backward and an Adam step at the same batch,
resolution, precision and layout, interleaved with it. The ratio annotator / bare is the figure to
compare across machines (see ``annot.benchmarks.throughput``).

Usage::

    python tools/bench_train.py --batch 8 --threads 1                        # CPU
    python tools/bench_train.py --device cuda --batch 192 --precision 32 bf16 --channels-last false true
    python tools/bench_train.py ... --json results.json
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import sys

from annot.app.cli import run_tool
from annot.benchmarks.throughput import main

if __name__ == "__main__":
    sys.exit(run_tool(lambda argv: main(train=True, argv=argv)))
