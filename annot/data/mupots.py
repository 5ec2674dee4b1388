"""MuPoTS-3D in the mks0601 COCO-style layout as a ``torch.utils.data.Dataset`` of ``Sample`` crops.

Layout (3DCrowdNet ``data/MuPoTs/MuPoTs.py``, 3DMPPE PoseNet ``data/MuPoTS/``; reference-spec A.6)::

    <root>/MuPoTS-3D.json                              (root = data/MuPoTs/data)
    <root>/MultiPersonTestSet/TS<n>/img_%06d.jpg

``images[i]``: ``id, file_name ('TS<n>/img_<frame>.jpg'), width, height, intrinsic [fx, fy, cx, cy]``
(pixels). ``annotations[j]``: ``id, image_id, is_valid, bbox`` (x, y, w, h), ``keypoints_cam`` (17 x 3,
camera frame, **millimetres**), ``keypoints_img`` (17 x 2, pixels), ``keypoints_vis`` (17).

What the loader takes: native convention ``mupots17`` (root Pelvis); 3D joints = ``keypoints_cam``
/ 1000 (metres); 2D keypoints = ``keypoints_img`` with validity ``keypoints_vis > 0``; all 17 3D joints
valid; the real camera = ``intrinsic``. No SMPL. An evaluation set: no augmentation by default.
Annotations with ``is_valid == 0`` are skipped (as 3DCrowdNet does), with every other unusable one,
each with its reason.

Evaluation GT (:meth:`MuPoTS.evaluation_gt`, used by the estimators' 3DPCK): as the official MATLAB
evaluation (``mpii_mupots_multiperson_eval.m``, run by 3DMPPE_POSENET_RELEASE / 3DCrowdNet), the GT
people of an image are **all** valid people of ``TS<n>/annot.mat`` for that frame (``isValidFrame``),
with ``univ_annot3`` (mm, the bone-length-normalised skeleton) as 3D GT and ``annot2`` as 2D GT, whether
or not the loader could crop them. Layout (MPI, as read by mmhuman3d ``mupots3d.py``): ``annotations``
is a (frames, people) cell array of structs with ``annot2`` (2 x 17 px), ``annot3`` / ``univ_annot3``
(3 x 17 mm) and ``isValidFrame``; frame ``i`` (0-based) is ``img_%06d.jpg``. For a sequence without
``annot.mat`` the documented fallback is the json: every ``is_valid`` annotation with parseable joints,
``keypoints_cam`` (which is ``annot3``, not ``univ_annot3``) and ``keypoints_img``.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from pycocotools.coco import COCO

from annot.data.augment import AugmentConfig
from annot.data.parsing import (
    SKIP_DEGENERATE_BOX,
    box_problem,
    check_image_size,
    coco_index,
    collect,
    float_array,
    image_of,
    image_problem,
    image_size,
    invalid,
    load_coco_json,
    resolve_dir,
    resolve_file,
    resolve_root,
)
from annot.data.person import PersonCropDataset, PersonRecord
from annot.data.registry import register

NUM_JOINTS = 17
MM_PER_M = 1000.0
SKIP_NOT_VALID = "is_valid == 0"
GT_SOURCES = ("auto", "annot_mat", "json")
ANNOT_MAT = "annot.mat"


def read_annot_mat(path: str | Path) -> list[list[dict[str, Any]]]:
    """Read a MuPoTS-3D ``TS<n>/annot.mat`` (MPI layout, see the module docstring).

    Returns:
        ``frames[i][k]`` for frame ``i`` (0-based, ``img_%06d.jpg``) and person ``k``: ``{"annot2_px"
        (17, 2), "annot3_mm" (17, 3), "univ_annot3_mm" (17, 3), "valid" bool}`` (camera frame, mm).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a MATLAB file, no ``annotations`` cell array, or a field of one entry missing /
            mis-shaped (the message names the file, frame, person and field).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MuPoTS-3D annotation file not found: {path}")
    try:
        cells = scipy.io.loadmat(str(path))["annotations"]
    except KeyError:
        raise ValueError(f"{path}: no 'annotations' variable") from None
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a readable MATLAB file ({type(err).__name__}: {err})") from None
    if cells.ndim != 2:
        raise ValueError(f"{path}: 'annotations' must be a (frames, people) cell array, got shape {cells.shape}")

    def field(entry: Any, name: str, rows: int, frame: int, person: int) -> np.ndarray:
        try:
            value = np.asarray(entry[name][0, 0], dtype=np.float64)
        except (KeyError, ValueError, IndexError, TypeError):
            raise ValueError(f"{path}: frame {frame} person {person}: field '{name}' missing") from None
        if value.shape != (rows, NUM_JOINTS):
            raise ValueError(f"{path}: frame {frame} person {person}: field '{name}' has shape {value.shape}, "
                             f"expected ({rows}, {NUM_JOINTS})")
        return value.T

    frames = []
    for i in range(cells.shape[0]):
        people = []
        for k in range(cells.shape[1]):
            entry = cells[i, k]
            try:
                valid = bool(np.asarray(entry["isValidFrame"][0, 0]).reshape(-1)[0])
            except (KeyError, ValueError, IndexError, TypeError):
                raise ValueError(f"{path}: frame {i} person {k}: field 'isValidFrame' missing") from None
            people.append({"annot2_px": field(entry, "annot2", 2, i, k), "annot3_mm": field(entry, "annot3", 3, i, k),
                           "univ_annot3_mm": field(entry, "univ_annot3", 3, i, k), "valid": valid})
        frames.append(people)
    return frames


def _intrinsic(img: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | str:
    """``(focal_px (2,), princpt_px (2,))`` from ``intrinsic [fx, fy, cx, cy]``, or the skip reason."""
    values = float_array(img.get("intrinsic"), (4,))
    if values is None or not np.all(values[:2] > 0):
        return invalid("intrinsic")
    return values[:2], values[2:]


@register("mupots")
class MuPoTS(PersonCropDataset):
    """MuPoTS-3D person crops with 3D joints (mm in the file, metres here) and the real camera.

    Args:
        root: folder holding ``MuPoTS-3D.json`` and ``MultiPersonTestSet/`` (config key ``data.root``;
            mks0601 layout ``data/MuPoTs/data``).
        ann_file: the json, absolute or relative to ``root`` (``data.ann_file``).
        img_dir: image folder relative to ``root`` (``data.img_dir``).
        input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset` (``augment=None``: no augmentation).
        gt_source: evaluation GT (``data.gt_source``): ``"auto"`` = ``TS<n>/annot.mat`` where present,
            else the json; ``"annot_mat"`` = require it (FileNotFoundError when a sequence lacks it);
            ``"json"`` = always the json.

    Attributes:
        records: kept persons; ``kp2d_img_px`` (17, 2) = ``keypoints_img``, ``kp2d_valid`` =
            ``keypoints_vis > 0``, ``joints_cam_m`` (17, 3) metres, camera = ``intrinsic``.
        skipped: ``{annotation id: reason}``: "is_valid == 0", "invalid intrinsic", "invalid bbox",
            "invalid keypoints_cam" / "invalid keypoints_img" / "invalid keypoints_vis" (missing,
            non-finite or not 17 joints), "box outside image", "degenerate box", "missing image file",
            "unreadable image".

    Raises:
        FileNotFoundError: missing root, json or image folder (names the path and the config key).
        ValueError: malformed json as a whole (not JSON, no 'images' / 'annotations' list, an entry
            without 'id', a repeated id, an 'image_id' with no image, an image without 'file_name' /
            'height' / 'width'); the message names file, id and field.
    """

    name = "mupots"
    native_convention = "mupots17"

    def __init__(
        self,
        root: str | Path,
        ann_file: str = "MuPoTS-3D.json",
        img_dir: str = "MultiPersonTestSet",
        input_hw: tuple[int, int] = (256, 192),
        convention: str | None = None,
        augment: AugmentConfig | None = None,
        bbox_scale: float = 1.25,
        seed: int = 0,
        body_model_type: str = "free",
        body_model_path: str | None = None,
        gt_source: str = "auto",
    ) -> None:
        if gt_source not in GT_SOURCES:
            raise ValueError(f"MuPoTS-3D: gt_source must be one of {GT_SOURCES}, got {gt_source!r} "
                             "(config key data.gt_source)")
        super().__init__(input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path)
        self.gt_source = gt_source
        self.gt_source_counts: Counter[str] = Counter()
        self._annot_mats: dict[int, list | None] = {}
        self._eval_gt: dict[str, dict[str, Any]] | None = None
        self.root = resolve_root(root, "MuPoTS-3D")
        self.ann_path = resolve_file(self.root, ann_file, "MuPoTS-3D", "annotation file", "data.ann_file")
        self.image_dir = resolve_dir(self.root, img_dir, "MuPoTS-3D", "image folder", "data.img_dir")
        data = load_coco_json(self.ann_path)
        coco, cache = coco_index(data), {}
        self._coco = coco
        self._set_records(*collect(data["annotations"], lambda ann: self._parse(ann, coco, cache)))

    # ----------------------------------------------------------------- evaluation GT
    def _annot_mat(self, seq: int) -> list | None:
        """Frames of ``TS<seq>/annot.mat`` (cached), or None when the json is the GT source."""
        if seq not in self._annot_mats:
            path = self.image_dir / f"TS{seq}" / ANNOT_MAT
            if self.gt_source == "json" or (self.gt_source == "auto" and not path.is_file()):
                self._annot_mats[seq] = None
            else:
                self._annot_mats[seq] = read_annot_mat(path)
        return self._annot_mats[seq]

    def _json_people(self, image_id: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(joints (G, 17, 3) m, kp2d (G, 17, 2) px)`` of the image's valid json annotations."""
        joints, kps = [], []
        for ann in self._coco.imgToAnns.get(image_id, []):
            if not ann.get("is_valid", 1):
                continue
            parsed = self._joints(ann)
            if not isinstance(parsed, str):
                joints.append(parsed[0])
                kps.append(parsed[1])
        return (np.asarray(joints).reshape(-1, NUM_JOINTS, 3), np.asarray(kps).reshape(-1, NUM_JOINTS, 2))

    def evaluation_gt(self) -> dict[str, dict[str, Any]]:
        """GT people of every image of the json, for the MuPoTS 3DPCK (module docstring), cached.

        Returns:
            ``{image path (str, as the samples' image_path): {"seq": n, "frame": i, "source": "annot.mat" |
            "json", "gt_joints_m" (G, 17, 3) camera frame metres, "gt_kp2d_px" (G, 17, 2) original-image
            pixels, "sample_ids": [ids of this image's loaded samples]}}``; ``gt_source_counts`` counts the
            images per source.

        Raises:
            ValueError: a ``file_name`` without ``TS<n>/img_<frame>``; a malformed ``annot.mat``.
            FileNotFoundError: ``gt_source="annot_mat"`` and a sequence has no ``annot.mat``.
        """
        if self._eval_gt is not None:
            return self._eval_gt
        by_image: dict[str, list[str]] = {}
        for record in self.records:
            by_image.setdefault(str(record.image_path), []).append(record.sample_id)
        gt, self.gt_source_counts = {}, Counter()
        for image_id, img in self._coco.imgs.items():
            match = re.search(r"TS(\d+)/img_(\d+)", str(img["file_name"]))
            if match is None:
                raise ValueError(f"{self.ann_path}: image id {image_id}: field 'file_name' {img['file_name']!r} is not "
                                 "TS<n>/img_<frame>.jpg")
            seq, frame = int(match.group(1)), int(match.group(2))
            frames = self._annot_mat(seq)
            if frames is None:
                joints_m, kp = self._json_people(image_id)
                source = "json"
            else:
                people = [p for p in (frames[frame] if frame < len(frames) else []) if p["valid"]]
                joints_m = np.asarray([p["univ_annot3_mm"] for p in people]).reshape(-1, NUM_JOINTS, 3) / MM_PER_M
                kp = np.asarray([p["annot2_px"] for p in people]).reshape(-1, NUM_JOINTS, 2)
                source = "annot.mat"
            path = str((self.image_dir / img["file_name"]).absolute())
            gt[path] = {"seq": seq, "frame": frame, "source": source, "gt_joints_m": joints_m, "gt_kp2d_px": kp,
                        "sample_ids": by_image.get(path, [])}
            self.gt_source_counts[source] += 1
        self._eval_gt = gt
        return gt

    def _joints(self, ann: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
        """``(joints_cam_m (17, 3), kp_img_px (17, 2), vis (17,) bool)`` or the skip reason."""
        joints_mm = float_array(ann.get("keypoints_cam"), (NUM_JOINTS, 3))
        if joints_mm is None:
            return invalid("keypoints_cam", ann.get("keypoints_cam"), (NUM_JOINTS, 3))
        kp = float_array(ann.get("keypoints_img"), (NUM_JOINTS, 2))
        if kp is None:
            return invalid("keypoints_img", ann.get("keypoints_img"), (NUM_JOINTS, 2))
        vis = float_array(ann.get("keypoints_vis"), (NUM_JOINTS,))
        if vis is None:
            return invalid("keypoints_vis", ann.get("keypoints_vis"), (NUM_JOINTS,))
        return joints_mm / MM_PER_M, kp, vis > 0

    def _parse(self, ann: dict[str, Any], coco: COCO, cache: dict[Path, str | None]) -> PersonRecord | str:
        """A record for a usable annotation, else its skip reason."""
        img = image_of(self.ann_path, coco, ann)
        img_hw = image_size(self.ann_path, img)
        if not ann.get("is_valid", 1):
            return SKIP_NOT_VALID
        camera = _intrinsic(img)
        if isinstance(camera, str):
            return camera
        bbox = float_array(ann.get("bbox"), (4,))
        if bbox is None:
            return invalid("bbox", ann.get("bbox"), (4,))
        joints = self._joints(ann)
        if isinstance(joints, str):
            return joints
        if (problem := box_problem(bbox, img_hw)) is not None:
            return problem
        box = self.process_box(bbox, img_hw)
        if box is None:
            return SKIP_DEGENERATE_BOX
        image_path = (self.image_dir / img["file_name"]).absolute()
        problem = image_problem(image_path, cache)
        if problem is not None:
            return problem
        joints_m, kp, vis = joints
        return PersonRecord(str(ann["id"]), image_path, img_hw, box, kp, vis, joints_m,
                            np.ones(NUM_JOINTS, bool), None, camera[0], camera[1])

    def read_image(self, record: PersonRecord) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)``; ValueError naming file and sample id when undecodable or its size
        differs from the json."""
        return check_image_size(super().read_image(record), record, self.ann_path)


__all__ = ["GT_SOURCES", "MM_PER_M", "MuPoTS", "read_annot_mat"]
