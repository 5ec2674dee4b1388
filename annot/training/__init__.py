"""Lightning plumbing shared by the annotator and the estimators: trainer callbacks (:mod:`.callbacks`:
throughput, channels-last, ``torch.compile``, mix counts, metric history, checkpoints, prediction grid) and the
run loggers (:mod:`.loggers`: CSV always, Weights & Biases offline by default).

May import ``annot.data``, ``annot.render``, ``annot.io`` and the rooms below them; never the annotator or
the estimators, which both use it.
"""
