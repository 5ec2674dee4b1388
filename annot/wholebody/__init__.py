"""Whole-body (SMPL-X) pseudo-GTs (issue #16): the part fits' integration, the export and the pipeline of
``make annotate-wholebody`` (expressive NeuralAnnot, Moon et al., section 4)."""
