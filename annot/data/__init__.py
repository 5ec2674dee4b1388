"""Datasets and their preprocessing; every item is an ``annot.data.sample.Sample``.

Public API::

    sample:   Sample, SAMPLE_KEYS
    crop:     process_bbox, crop_affine, crop_image, apply_affine, invert_affine, compose_affine,
              flip_affine, flip_bbox_xywh
    coco:     COCOKeypoints (registered as "coco")
    registry: DATASETS, register, build_dataset

Importing this package registers every dataset module in ``DATASETS``.
"""

from __future__ import annotations

from annot.data.coco import COCOKeypoints
from annot.data.crop import (
    apply_affine,
    compose_affine,
    crop_affine,
    crop_image,
    flip_affine,
    flip_bbox_xywh,
    invert_affine,
    process_bbox,
)
from annot.data.registry import DATASETS, build_dataset, register
from annot.data.sample import SAMPLE_KEYS, Sample

__all__ = [
    "COCOKeypoints",
    "DATASETS",
    "SAMPLE_KEYS",
    "Sample",
    "apply_affine",
    "build_dataset",
    "compose_affine",
    "crop_affine",
    "crop_image",
    "flip_affine",
    "flip_bbox_xywh",
    "invert_affine",
    "process_bbox",
    "register",
]
