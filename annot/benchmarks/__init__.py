"""Benchmarks, each named for what it measures:

* :mod:`.quality`: ``make bench-annot``, pseudo-GT quality of NeuralAnnot (each recipe on / off, + fit),
  SMPLify and EFT against the hidden GT of the synthetic in-the-wild split (tables and figure:
  :mod:`.quality_report`; confidence intervals and paired tests: :mod:`.stats`);
* :mod:`.throughput`: ``make bench``, annotator training / annotation samples/s against a bare ResNet-50;
* :mod:`.threads`: ``make bench-threads``, the annotator's step rate alone and beside identical jobs;
* :mod:`.synthetic`: the data generator of the quality benchmark (``tools/make_synthetic.py``), free-body-model
  people rendered over photo crops in standard dataset layouts, with exact GT.
* ``two_stage.py`` (reserved): the two-stage NeuralAnnot benchmark, added at its branch's merge.

The top room: may import every room of ``annot`` (the annotator, the backbone pretraining, the fitting
baselines, ...); nothing in ``annot`` imports it, except that :mod:`annot.pretrain` trains on
:mod:`.synthetic`'s renders (``synthetic`` sits below ``annot.pretrain`` in the layering).
"""
