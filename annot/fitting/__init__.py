"""Optimisation baselines for the synthetic benchmark: SMPLify (2D and 3D variants) and EFT.

Public API::

    smplify: gmof, rigid_align, FitResult, KeypointBodyModel, SMPLify2D, SMPLify3D
    eft:     eft_fit, eft_annotate, EFTResult

``smplify`` uses ``body_models`` / ``geometry`` / ``keypoints`` (and an optional ``priors.VPoser``);
``eft`` works on a trained :class:`annot.annotator.module.AnnotatorModule` and ``annot.io.export.quality_scores``.
"""
from __future__ import annotations

from annot.fitting.eft import EFTResult, eft_annotate, eft_fit
from annot.fitting.smplify import FitResult, KeypointBodyModel, SMPLify2D, SMPLify3D, gmof, rigid_align

__all__ = [
    "EFTResult", "eft_annotate", "eft_fit", "FitResult", "KeypointBodyModel", "SMPLify2D", "SMPLify3D", "gmof",
    "rigid_align",
]
