"""Geometry: rotation representations (through ``roma``) and camera models.

Public API::

    rotations: rot6d_to_rotmat, rotmat_to_rot6d, rotvec_to_rotmat, rotmat_to_rotvec,
               rot6d_to_rotvec, rotvec_to_rot6d
    cameras:   VIRTUAL_FOCAL_PX, CAMERA_3D_SIZE_M, DEPTH_EPS_M, perspective_project, crop_camera,
               camera_depth_constant, camera_depth_from_sigmoid, crop_to_original_camera,
               original_to_crop_camera, weak_perspective_project, weak_perspective_to_translation,
               CAMERA_MODELS, project_camera_model (the annotator's perspective / weak / D2S cameras),
               rotation_between_rays, move_to_camera (a person re-expressed in another camera of the image),
               estimated_image_camera (CLIFF's full-image camera when the intrinsics are unknown)
    procrustes: similarity_transform, apply_similarity, similarity_align

This room imports nothing else from ``annot``.
"""

from __future__ import annotations

from annot.geometry.cameras import (
    CAMERA_3D_SIZE_M,
    CAMERA_MODELS,
    DEPTH_EPS_M,
    VIRTUAL_FOCAL_PX,
    camera_depth_constant,
    camera_depth_from_sigmoid,
    crop_camera,
    crop_to_original_camera,
    estimated_image_camera,
    move_to_camera,
    original_to_crop_camera,
    perspective_project,
    project_camera_model,
    rotation_between_rays,
    weak_perspective_project,
    weak_perspective_to_translation,
)
from annot.geometry.procrustes import apply_similarity, similarity_align, similarity_transform
from annot.geometry.rotations import (
    rot6d_to_rotmat,
    rot6d_to_rotvec,
    rotmat_to_rot6d,
    rotmat_to_rotvec,
    rotvec_to_rot6d,
    rotvec_to_rotmat,
)

__all__ = [
    "CAMERA_3D_SIZE_M",
    "CAMERA_MODELS",
    "apply_similarity",
    "project_camera_model",
    "similarity_align",
    "similarity_transform",
    "DEPTH_EPS_M",
    "VIRTUAL_FOCAL_PX",
    "camera_depth_constant",
    "camera_depth_from_sigmoid",
    "crop_camera",
    "crop_to_original_camera",
    "estimated_image_camera",
    "move_to_camera",
    "original_to_crop_camera",
    "rotation_between_rays",
    "perspective_project",
    "rot6d_to_rotmat",
    "rot6d_to_rotvec",
    "rotmat_to_rot6d",
    "rotmat_to_rotvec",
    "rotvec_to_rot6d",
    "rotvec_to_rotmat",
    "weak_perspective_project",
    "weak_perspective_to_translation",
]
