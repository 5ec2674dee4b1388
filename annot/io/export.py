"""Pseudo-GT writers and readers in the NeuralAnnot JSON layout, with atomic writes.

Layout (mks0601/NeuralAnnot_RELEASE, reference-spec A.3), keyed by ``str(annotation_id)``::

    {"<aid>": {"smpl_param": {"pose": [72], "shape": [10], "trans": [3]},
               "cam_param": {"focal": [fx, fy], "princpt": [cx, cy]},
               "quality": {"kp2d_err_px": e}}}

``pose`` is axis-angle (24 x 3, index 0 = global orientation, radians), ``shape`` the betas,
``trans`` the SMPL ``transl`` in metres; all in the camera frame of the *original* image (OpenCV
axes), so ``SMPL(global_orient=pose[:3], body_pose=pose[3:], betas=shape, transl=trans)`` projected
with ``focal``/``princpt`` (original-image pixels) lies over the person. ``quality`` is our addition
(readers of the NeuralAnnot layout ignore it).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annot.io.atomic import atomic_write_json

SCHEMA_VERSION = "1.0"


# --------------------------------------------------------------------------- cameras
def crop_to_image_camera(focal_crop_px: torch.Tensor, princpt_crop_px: torch.Tensor,
                         crop_to_img: torch.Tensor, atol: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Intrinsics of the original image from the crop camera and the crop -> image affine.

    A crop without rotation is an axis-aligned scale ``s`` plus offset ``t`` of the image
    (``x_img = s x_crop + t``), so the 3D camera frame is unchanged and only the intrinsics change:
    ``focal_img = s * focal_crop`` and ``princpt_img = s * princpt_crop + t`` (reference-spec A.3,
    Pose2Pose ``demo_body.py``).

    Args:
        focal_crop_px, princpt_crop_px: (B, 2) crop pixels.
        crop_to_img: (B, 2, 3) affine mapping crop pixels to original-image pixels.
        atol: tolerance on the off-diagonal terms.

    Returns:
        (focal_img_px, princpt_img_px), each (B, 2) in original-image pixels.

    Raises:
        ValueError: the affine has a rotation or shear (a rotated crop has no such intrinsics).
    """
    lin = crop_to_img[:, :, :2]
    if (lin[:, 0, 1].abs() > atol).any() or (lin[:, 1, 0].abs() > atol).any():
        raise ValueError("crop_to_img has rotation/shear; pseudo-GTs must be predicted on unrotated crops")
    scale = torch.stack([lin[:, 0, 0], lin[:, 1, 1]], dim=-1)
    return focal_crop_px * scale, princpt_crop_px * scale + crop_to_img[:, :, 2]


# --------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class PseudoGT:
    """One pseudo-GT, original-image camera frame.

    Attributes:
        pose_rotvec: (24, 3) axis-angle, radians; row 0 = global orientation.
        betas: (10,) shape coefficients.
        transl_m: (3,) SMPL ``transl``, metres.
        focal_px, princpt_px: (2,) original-image intrinsics, pixels.
        quality: per-sample quality numbers (may be empty).
    """

    pose_rotvec: np.ndarray
    betas: np.ndarray
    transl_m: np.ndarray
    focal_px: np.ndarray
    princpt_px: np.ndarray
    quality: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The NeuralAnnot per-annotation dict (plus ``quality``)."""
        return {
            "smpl_param": {"pose": _floats(self.pose_rotvec.reshape(-1)), "shape": _floats(self.betas),
                           "trans": _floats(self.transl_m)},
            "cam_param": {"focal": _floats(self.focal_px), "princpt": _floats(self.princpt_px)},
            "quality": {k: float(v) for k, v in self.quality.items()},
        }

    def smplx_kwargs(self) -> dict[str, torch.Tensor]:
        """Batch-of-one float32 tensors for ``smplx.SMPL`` / ``BodyModel``: global_orient (1,3),
        body_pose (1,69), betas (1,10), transl (1,3)."""
        pose = torch.as_tensor(self.pose_rotvec, dtype=torch.float32).reshape(1, 72)
        return {"global_orient": pose[:, :3], "body_pose": pose[:, 3:],
                "betas": torch.as_tensor(self.betas, dtype=torch.float32)[None],
                "transl": torch.as_tensor(self.transl_m, dtype=torch.float32)[None]}


def _floats(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]


_FIELDS = {("smpl_param", "pose"): 72, ("smpl_param", "shape"): None, ("smpl_param", "trans"): 3,
           ("cam_param", "focal"): 2, ("cam_param", "princpt"): 2}


def parse_entry(path: Path, aid: str, raw: Any) -> PseudoGT:
    """Validate one NeuralAnnot-layout entry ``raw`` of file ``path`` (annotation ``aid``).

    Raises:
        ValueError: a field is missing, not numeric, of the wrong length or non-finite (the message names
            the file, the annotation id and the field).
    """
    def field(group: str, name: str) -> np.ndarray:
        try:
            values = np.asarray(raw[group][name], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: annotation {aid}: field {group}.{name} missing or not numeric ({err})") from None
        want = _FIELDS[(group, name)]
        if values.ndim != 1 or (want is not None and values.size != want):
            raise ValueError(f"{path}: annotation {aid}: field {group}.{name} has shape {values.shape}, "
                             f"expected ({want if want else 'n'},)")
        if not np.isfinite(values).all():
            raise ValueError(f"{path}: annotation {aid}: field {group}.{name} has non-finite values")
        return values

    return PseudoGT(pose_rotvec=field("smpl_param", "pose").reshape(24, 3), betas=field("smpl_param", "shape"),
                    transl_m=field("smpl_param", "trans"), focal_px=field("cam_param", "focal"),
                    princpt_px=field("cam_param", "princpt"),
                    quality={k: float(v) for k, v in (raw.get("quality") or {}).items()})


def write_pseudo_gt(path: str | Path, entries: dict[str, Any]) -> None:
    """Write ``{aid: entry}`` (anything with ``to_json()``: :class:`PseudoGT`, the SMPL-X entries of
    :mod:`annot.io.export_smplx`) in the NeuralAnnot layout, atomically, keys sorted numerically."""
    def order(aid: str) -> tuple[int, str]:
        return (int(aid), "") if aid.isdigit() else (math.inf, aid)  # type: ignore[return-value]
    atomic_write_json(path, {aid: entries[aid].to_json() for aid in sorted(entries, key=order)})


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object (keyed by annotation id) in ``path``.

    Raises:
        FileNotFoundError: no such file. ValueError: not valid JSON, or not an object (names the file).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by annotation id, got {type(raw).__name__}")
    return raw


def read_pseudo_gt(path: str | Path) -> dict[str, PseudoGT]:
    """Read a NeuralAnnot-layout JSON (ours or the official release files).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a JSON object, or an entry lacks / malforms a field (message names the file,
            the annotation id and the field).
    """
    path = Path(path)
    return {str(aid): parse_entry(path, str(aid), entry) for aid, entry in read_json_object(path).items()}


#: EFT's rejection rule (Joo et al., 3DV 2021): shape too extreme or 2D fit too poor.
EFT_MAX_ABS_BETA = 5.0
EFT_MAX_KP2D_LOSS_NORM = 0.01


def quality_scores(pred: dict[str, Any], index: int) -> dict[str, float]:
    """Per-sample quality of one prediction: ``kp2d_err_px`` (original-image pixels), ``kp2d_loss_norm``
    (EFT's normalised 2D loss, :func:`annot.annotator.losses.eft_kp2d_loss_norm`: SPIN's ``keypoint_loss``, the mean
    of ``conf * squared error`` over all J x 2 coordinates in crop coordinates scaled to [-1, 1]), ``z_norm``
    (|z| of the VPoser code, when used), ``max_abs_beta`` and ``eft_reject`` (1.0 when max |beta| > 5
    or the normalised 2D loss > 0.01, EFT's rule; users filter on it)."""
    betas = pred["betas"][index]
    scores = {"max_abs_beta": float(betas.abs().max())}
    if "kp2d_err_img_px" in pred:
        scores["kp2d_err_px"] = float(pred["kp2d_err_img_px"][index])
        scores["kp2d_loss_norm"] = float(pred["kp2d_loss_norm"][index])
    if "z" in pred:
        scores["z_norm"] = float(pred["z"][index].norm())
    if "joints3d_err_mm" in pred:
        scores["joints3d_err_mm"] = float(pred["joints3d_err_mm"][index])
    reject = scores["max_abs_beta"] > EFT_MAX_ABS_BETA or scores.get("kp2d_loss_norm", 0.0) > EFT_MAX_KP2D_LOSS_NORM
    scores["eft_reject"] = float(reject)
    return scores


def pseudo_gts_from_predictions(pred: dict[str, Any]) -> dict[str, PseudoGT]:
    """Turn one :meth:`AnnotatorModule.predict_step` output (crop camera) into original-camera entries.

    The mesh is unchanged by the crop (no rotation), so ``trans`` = the crop-camera SMPL ``transl`` and
    only the intrinsics are mapped (:func:`crop_to_image_camera`).
    """
    focal, princpt = crop_to_image_camera(pred["focal_crop_px"], pred["princpt_crop_px"], pred["crop_to_img"])
    out = {}
    for i, aid in enumerate(pred["sample_id"]):
        out[str(aid)] = PseudoGT(
            pose_rotvec=pred["pose_rotvec"][i].numpy(), betas=pred["betas"][i].numpy(),
            transl_m=pred["transl_m"][i].numpy(), focal_px=focal[i].numpy(), princpt_px=princpt[i].numpy(),
            quality=quality_scores(pred, i))
    return out
