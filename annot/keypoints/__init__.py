"""Keypoint conventions (names, orders, flip pairs) as data, and name-based conversion between them.

Public API::

    KeypointConvention, CONVENTIONS, H36M_EVAL_JOINTS, get_convention, known_conventions
    convert(kps, src, dst) -> (kps_dst, mask), conversion_index, JOINT_NAME_ALIASES
    flip_keypoints(kps, convention, image_width=None)
    wholebody_names: COCO_WHOLEBODY133_PARTS, SMPLX55_PARTS, sided (name tables of the whole-body,
                     hand and SMPL-X conventions)

This room imports nothing else from ``annot``.
"""

from __future__ import annotations

from annot.keypoints.conventions import (
    CONVENTIONS,
    H36M_EVAL_JOINTS,
    KeypointConvention,
    get_convention,
    known_conventions,
)
from annot.keypoints.convert import JOINT_NAME_ALIASES, conversion_index, convert, flip_keypoints
from annot.keypoints.wholebody_names import COCO_WHOLEBODY133_PARTS, SMPLX55_PARTS, sided

__all__ = [
    "COCO_WHOLEBODY133_PARTS",
    "CONVENTIONS",
    "H36M_EVAL_JOINTS",
    "JOINT_NAME_ALIASES",
    "KeypointConvention",
    "conversion_index",
    "convert",
    "flip_keypoints",
    "get_convention",
    "known_conventions",
    "SMPLX55_PARTS",
    "sided",
]
