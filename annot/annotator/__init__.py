"""The NeuralAnnot annotator f and Algorithm 1 around it.

What lives here (today: the body part, SMPL):

* :mod:`.config`: the config schema of ``tools/annotate.py`` (:class:`~.config.AnnotateConfig`);
* :mod:`.module`: :class:`~.module.AnnotatorModule`, the LightningModule of the body annotator (network,
  body model, losses; MoCap and in-the-wild modes); :mod:`.losses`: its loss terms;
* :mod:`.datasets`: the target and auxiliary datasets built from the config;
* :mod:`.pipeline`: Algorithm 1 (stages (a), prior, (b), (c), optional (d) and refinement) as one resumable
  command; :mod:`.stages`: stage markers and provenance; :mod:`.resume`: mid-stage resume;
  :mod:`.preflight`: every input checked before any stage runs;
* :mod:`.sharding`: distributed prediction into shard files and their merge;
* :mod:`.report`: ``report.json``, the error curve, the overlays and the run's W&B summary.

Part annotators: ``module.py`` / ``losses.py`` are the body annotator. The hand annotator and the face fit of
the whole-body work go beside them as sub-packages ``hand/`` and ``face/`` (their LightningModule and losses),
and the whole-body integration step as ``whole_body.py``, a stage that :mod:`.pipeline` runs after the parts;
the shared machinery (stages, resume, preflight, sharding, report) stays at this level.

May import every room below it (``annot.fitting``, ``annot.training``, ``annot.data``, ``annot.nets``,
``annot.priors``, ``annot.io``, ...), never ``annot.pretrain``, ``annot.benchmarks`` or ``estimators``.
"""
