"""The one schema of a dataset item (``Sample``), shared by every loader in ``annot.data``.

Every dataset's ``__getitem__`` returns a ``Sample``: a plain ``dict`` whose values are
``torch.Tensor`` or ``str`` only, so ``torch.utils.data.default_collate`` batches it (each tensor
gains a leading batch dimension ``B``; strings become lists of strings).

Frames and units
----------------
* *original image*: pixels of the image file as decoded by OpenCV (x right, y down, origin at the
  centre of the top-left pixel, i.e. pixel ``(i, j)`` has centre ``x=j, y=i``).
* *crop*: pixels of the network input of size ``input_hw = (H, W)`` (default ``(256, 192)``),
  obtained with the mks0601 crop affine (Hand4Whole ``common/utils/preprocessing.py``,
  ``generate_patch_image`` / ``gen_trans_from_patch_cv``): the processed box centre maps to
  ``(W/2, H/2)`` and the box corners to ``(0, 0)`` and ``(W, H)``.
* *crop camera*: the virtual pinhole camera of the crop (``focal_px = (5000, 5000)``,
  ``princpt_px = (W/2, H/2)``, Pose2Pose convention, reference-spec A.3 / B.2.5).

Keys (shapes without batch dimension)
-------------------------------------
``img``           float32 ``(3, H, W)`` RGB crop in ``[0, 1]``, no mean/std normalisation
                  (mks0601 convention, reference-spec A.0).
``kp2d_px``       float32 ``(J, 2)`` 2D keypoints in *crop* pixels, in the dataset's ``convention``
                  (``annot.keypoints``; COCO default ``coco17``, J = 17). Values where
                  ``kp2d_mask == 0`` are meaningless.
``kp2d_mask``     float32 ``(J,)`` 1 where the keypoint is annotated (COCO ``v > 0``) *and* falls
                  inside the crop (``0 <= x < W``, ``0 <= y < H``), else 0.
``kp2d_img_px``   float32 ``(J, 2)`` the same keypoints in *original image* pixels (before crop);
                  always ``kp2d_img_px == apply_affine(kp2d_px, crop_to_img)``.
``bbox_xywh_px``  float32 ``(4,)`` processed box (clipped, aspect-fixed, scaled by ``bbox_scale``)
                  ``(x, y, w, h)`` in *original image* pixels; may extend past the image border.
``crop_to_img``   float32 ``(2, 3)`` affine ``A`` mapping crop pixels to original image pixels:
                  ``p_img = A[:, :2] @ p_crop + A[:, 2]``. Inverse of the ``img_to_crop`` affine of
                  ``annot.data.crop.crop_image``. Without flip it is ``diag(bw/W, bh/H)`` plus the box
                  origin, which is what maps the crop camera to the original camera (reference-spec
                  A.3, ``annot.geometry.cameras.crop_to_original_camera``).
``focal_px``      float32 ``(2,)`` crop camera focal length ``(fx, fy)`` in pixels.
``princpt_px``    float32 ``(2,)`` crop camera principal point ``(cx, cy)`` in crop pixels.
``img_hw``        int64 ``(2,)`` original image ``(height, width)`` in pixels.
``joints_cam_m``  float32 ``(J, 3)`` GT 3D joints, *root-relative* (the native convention's root),
                  metres, in the camera frame after augmentation (flip: ``x -> -x`` and pairs
                  swapped; in-plane rotation: rotated about the optical axis). Zeros without 3D GT.
``joints_cam_mask`` float32 ``(J,)`` 1 where ``joints_cam_m`` is valid (all 0 without 3D GT).
``root_cam_m``    float32 ``(3,)`` absolute root position in the same camera frame (metres), 0 if none.
``smpl_pose_rotvec`` float32 ``(24, 3)`` SMPL pose (GT or pseudo-GT), axis-angle radians, row 0 =
                  global orientation, in the augmented camera frame; ``smpl_betas`` ``(10,)``;
                  ``smpl_transl_m`` ``(3,)`` SMPL ``transl`` (metres) such that the mesh sits at its
                  true place in the augmented *real* camera frame; ``smpl_valid`` ``()`` 1/0;
                  ``smpl_gender`` str (``"neutral"``, ``"male"``, ``"female"``).
``real_focal_crop_px``, ``real_princpt_crop_px`` float32 ``(2,)`` the dataset's *real* camera
                  expressed in crop pixels (focal scaled by the crop, principal point through the crop
                  affine): projecting ``joints_cam_m + root_cam_m`` or the SMPL mesh with it lands on
                  ``kp2d_px``; ``real_cam_valid`` ``()`` 1/0 (0 for COCO, whose camera is unknown).
``flipped``       bool ``()`` tensor: True when the sample was horizontally mirrored.
``dataset``       str, registry name of the dataset (e.g. ``"coco"``).
``sample_id``     str, dataset-unique id (COCO: the annotation id, e.g. ``"442619"``).
``image_path``    str, absolute path of the original image file.

Flip (mks0601 ``generate_patch_image`` with ``do_flip``)
-------------------------------------------------------
The original image is mirrored first (``x -> W_img - 1 - x``), then cropped around the mirrored box
centre ``c_x' = W_img - 1 - c_x``; the keypoints are mirrored the same way and their left/right
pairs swapped, so ``kp2d_px[j]`` is joint ``j`` of the *mirrored* person. ``crop_to_img`` (and
``kp2d_img_px``) still refer to the *unmirrored* original image, so for a flipped sample
``crop_to_img`` contains the mirror (negative ``x`` scale) and ``kp2d_img_px[j]`` is the original
position of the joint that became ``j`` (e.g. the original right shoulder for ``L_Shoulder``).
``bbox_xywh_px`` is the unmirrored box; the mirrored image's box is
``annot.data.crop.flip_bbox_xywh(bbox, W_img)``. The crop camera then corresponds to the mirrored
image: use the mirrored box to map it to an image camera, and flip 3D targets (``x_cam -> -x_cam``).
"""
from __future__ import annotations

from typing import TypedDict

import torch

SAMPLE_KEYS: tuple[str, ...] = (
    "img",
    "kp2d_px",
    "kp2d_mask",
    "kp2d_img_px",
    "bbox_xywh_px",
    "crop_to_img",
    "focal_px",
    "princpt_px",
    "img_hw",
    "joints_cam_m",
    "joints_cam_mask",
    "root_cam_m",
    "smpl_pose_rotvec",
    "smpl_betas",
    "smpl_transl_m",
    "smpl_valid",
    "smpl_gender",
    "real_focal_crop_px",
    "real_princpt_crop_px",
    "real_cam_valid",
    "flipped",
    "dataset",
    "sample_id",
    "image_path",
)


class Sample(TypedDict):
    """One dataset item; see the module docstring for shapes, units and frames of every key."""

    img: torch.Tensor
    kp2d_px: torch.Tensor
    kp2d_mask: torch.Tensor
    kp2d_img_px: torch.Tensor
    bbox_xywh_px: torch.Tensor
    crop_to_img: torch.Tensor
    focal_px: torch.Tensor
    princpt_px: torch.Tensor
    img_hw: torch.Tensor
    joints_cam_m: torch.Tensor
    joints_cam_mask: torch.Tensor
    root_cam_m: torch.Tensor
    smpl_pose_rotvec: torch.Tensor
    smpl_betas: torch.Tensor
    smpl_transl_m: torch.Tensor
    smpl_valid: torch.Tensor
    smpl_gender: str
    real_focal_crop_px: torch.Tensor
    real_princpt_crop_px: torch.Tensor
    real_cam_valid: torch.Tensor
    flipped: torch.Tensor
    dataset: str
    sample_id: str
    image_path: str
