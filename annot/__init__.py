"""annot: neural 3D human pseudo-GT annotation (NeuralAnnot with the Three Recipes).

Rooms by concept (README.md, "Layout"; the import direction between them is tests/test_layers.py's LAYERS):
``app`` (error boundary, errors, threads), ``config`` (config machinery), ``geometry``, ``keypoints``, ``io``
(pseudo-GT files, atomic writes), ``body_models``, ``data``, ``nets``, ``priors``, ``metrics``, ``render``,
``fitting`` (SMPLify, EFT baselines), ``training`` (callbacks, loggers), ``annotator`` (the annotator f and
Algorithm 1), ``pretrain`` (the free 2D-pose backbone), ``benchmarks`` (quality, throughput, threads, and the
synthetic data generator).
"""
from annot import _moved

_moved.install()  # the 0.1 layout's old import paths fail with a message naming the new one

__version__ = "0.1.0"
