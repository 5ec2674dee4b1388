"""Datasets and their preprocessing; every item is an ``annot.data.sample.Sample``.

Public API::

    sample:   Sample, SAMPLE_KEYS
    crop:     process_bbox, crop_affine, crop_image, apply_affine, invert_affine, compose_affine,
              flip_affine, flip_bbox_xywh
    person:   PersonCropDataset (base of the image loaders), PersonRecord, SmplParams
    coco:     COCOKeypoints (registered as "coco")
    coco_wholebody: COCOWholeBody ("coco_wholebody"), WholeBodyHands ("coco_wholebody_hands")
    freihand: FreiHAND ("freihand");  interhand: InterHand26M ("interhand26m")
    h36m:     Human36M ("h36m");  mpi_inf_3dhp: MPIINF3DHP ("mpi_inf_3dhp")
    pw3d:     PW3D ("3dpw");  mupots: MuPoTS ("mupots");  mpii: MPII ("mpii")
    mocap:    BVHMocap / CMUMocap (registered as "cmu_mocap"; 3D joints, no images)
    cache:    build_person_cache, PersonCache (pre-cropped uint8 shards; dataset.attach_cache)
    mixing:   batch_composition, MixedBatchSampler, build_mixed_dataset
    registry: DATASETS, register, build_dataset

Importing this package registers every dataset module in ``DATASETS``.
"""

from __future__ import annotations

from annot.data.cache import PersonCache, build_person_cache
from annot.data.coco import COCOKeypoints
from annot.data.coco_wholebody import COCOWholeBody, WholeBodyHands
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
from annot.data.freihand import FreiHAND
from annot.data.h36m import Human36M
from annot.data.interhand import InterHand26M
from annot.data.mixing import MixedBatchSampler, batch_composition, build_mixed_dataset
from annot.data.mocap import BVHMocap, CMUMocap
from annot.data.mpi_inf_3dhp import MPIINF3DHP
from annot.data.mpii import MPII
from annot.data.mupots import MuPoTS
from annot.data.person import PersonCropDataset, PersonRecord, SmplParams
from annot.data.pw3d import PW3D
from annot.data.registry import DATASETS, build_dataset, register
from annot.data.sample import SAMPLE_KEYS, Sample

__all__ = [
    "BVHMocap",
    "CMUMocap",
    "COCOKeypoints",
    "COCOWholeBody",
    "FreiHAND",
    "InterHand26M",
    "WholeBodyHands",
    "Human36M",
    "MPII",
    "MPIINF3DHP",
    "MuPoTS",
    "PW3D",
    "MixedBatchSampler",
    "PersonCache",
    "PersonCropDataset",
    "PersonRecord",
    "SmplParams",
    "batch_composition",
    "build_mixed_dataset",
    "DATASETS",
    "SAMPLE_KEYS",
    "Sample",
    "apply_affine",
    "build_dataset",
    "build_person_cache",
    "compose_affine",
    "crop_affine",
    "crop_image",
    "flip_affine",
    "flip_bbox_xywh",
    "invert_affine",
    "process_bbox",
    "register",
]
