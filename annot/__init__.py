"""annot: neural 3D human pseudo-GT annotation (NeuralAnnot with the Three Recipes).

Rooms (lower ones never import higher ones): ``keypoints`` and ``geometry`` (no project imports),
``body_models``, ``data``, ``nets``, ``losses``, ``module`` (the AnnotatorModule), ``pipeline``
(train, predict, export), ``export`` (NeuralAnnot JSON), ``render`` (pyrender overlays), ``callbacks``.
"""
__version__ = "0.1.0"
