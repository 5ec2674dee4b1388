"""Reading mks0601 COCO-style annotation files: paths, json structure, per-field checks, skip reasons.

Shared by the loaders built on :class:`annot.data.person.PersonCropDataset` (``coco``, ``mpii``,
``3dpw``, ``mupots``). The files are COCO-format JSON (``{"images": [...], "annotations": [...]}``)
as written by mks0601's converters (Hand4Whole branch Pose2Pose ``data/*/*.py``, I2L-MeshNet
``tool/3DPW/3dpw2coco.py``, 3DMPPE PoseNet ``data/MuPoTS``; reference-spec A.0). They are indexed with
``pycocotools.coco.COCO`` like the originals.

Two kinds of problems, two outcomes:

* the file as a whole is wrong (not JSON, no ``images`` / ``annotations`` list, an annotation without
  ``id`` / ``image_id``, a repeated id, an ``image_id`` with no image, an image without its name or
  size): ``ValueError`` naming the file, the item id and the field (:func:`field_error`);
* one sample is unusable (NaN, wrong joint count, degenerate box, box outside the image, missing
  image file): the sample is skipped and the reason recorded in the loader's ``skipped`` map, one
  reason string per kind so that :func:`annot.data.person.count_summary` counts them.
"""
from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools.coco import COCO

SKIP_MISSING_IMAGE = "missing image file"
SKIP_UNREADABLE_IMAGE = "unreadable image"
SKIP_DEGENERATE_BOX = "degenerate box"
SKIP_BOX_OUTSIDE = "box outside image"
SKIP_NO_JOINT_INSIDE = "no joint inside the image"
SKIP_NO_KEYPOINTS = "no keypoints"
SKIP_ISCROWD = "iscrowd"


SKIP_NEGATIVE_BOX = "negative box size"
_UNSET = object()


def array_problem(value: Any, shape: tuple[int, ...]) -> str | None:
    """What is wrong with ``value`` as a finite float array of ``shape``: ``"missing"``, ``"not numeric"``,
    ``"wrong length"`` (another number of entries) or ``"NaN or inf"``; None when nothing is."""
    if value is None:
        return "missing"
    if isinstance(value, (str, bytes, dict)):
        return "not numeric"
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return "not numeric"
    if arr.size != int(np.prod(shape)):
        return "wrong length"
    return None if np.all(np.isfinite(arr)) else "NaN or inf"


def invalid(field: str, value: Any = _UNSET, shape: tuple[int, ...] | None = None) -> str:
    """Skip reason for a sample whose ``field`` is missing, non-numeric, non-finite or mis-shaped:
    ``"invalid <field>"``, or with the offending ``value`` and its expected ``shape``
    ``"invalid <field> (<what>)"``, ``<what>`` from :func:`array_problem`
    (e.g. ``"invalid keypoints (NaN or inf)"``)."""
    why = array_problem(value, shape) if value is not _UNSET and shape is not None else None
    return f"invalid {field}" + (f" ({why})" if why else "")


def field_error(path: Path, kind: str, item_id: Any, field: str, what: str) -> ValueError:
    """``ValueError("<file>: <kind> id <id>: field '<field>' <what>")``."""
    return ValueError(f"{path}: {kind} id {item_id}: field '{field}' {what}")


# --------------------------------------------------------------------------- paths
def resolve_root(root: str | Path, dataset: str, key: str = "data.root") -> Path:
    """The dataset folder; FileNotFoundError naming the path looked at and the config key to set."""
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(
            f"{dataset} root folder not found: looked at '{root_path}' (absolute: '{root_path.absolute()}'). "
            f"Set the config key `{key}` to the folder holding the images and annotations."
        )
    return root_path


def resolve_file(root_path: Path, name: str | Path, dataset: str, what: str, key: str) -> Path:
    """``name`` (absolute, or relative to ``root_path``) as an existing file, else FileNotFoundError
    naming the path and the config key ``key``."""
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = root_path / path
    if not path.is_file():
        raise FileNotFoundError(
            f"{dataset} {what} not found: looked at '{path}'. Set the config key `{key}` "
            f"(absolute, or relative to `data.root`)."
        )
    return path


def resolve_dir(root_path: Path, name: str | Path, dataset: str, what: str, key: str) -> Path:
    """Folder ``name`` relative to ``root_path`` ("" = ``root_path``); FileNotFoundError naming ``key``."""
    folder = root_path / Path(name).expanduser() if str(name) else root_path
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{dataset} {what} not found: looked at '{folder}'. Set the config key `{key}` "
            f"(relative to `data.root`)."
        )
    return folder


# --------------------------------------------------------------------------- json structure
def load_json_object(path: Path) -> dict[str, Any]:
    """Parse a JSON file whose top level must be an object; ValueError naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    return data


def load_coco_json(path: Path) -> dict[str, Any]:
    """Read a COCO-format json and check its structure (see the module docstring).

    Raises:
        ValueError: not JSON; no ``images`` / ``annotations`` list; an image or annotation that is not
            an object or lacks ``id``; an annotation without ``image_id``; a repeated image or
            annotation id. The message names the file, the item id and the field.
    """
    data = load_json_object(path)
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing or non-list field '{key}'")
    for kind, key in (("image", "images"), ("annotation", "annotations")):
        seen: set[str] = set()
        for item in data[key]:
            if not isinstance(item, dict) or "id" not in item:
                raise ValueError(f"{path}: an entry of '{key}' has no 'id' field: {str(item)[:80]}")
            if str(item["id"]) in seen:
                raise field_error(path, kind, item["id"], "id", "appears twice")
            seen.add(str(item["id"]))
    for ann in data["annotations"]:
        if "image_id" not in ann:
            raise field_error(path, "annotation", ann["id"], "image_id", "is missing")
    return data


def coco_index(data: dict[str, Any]) -> COCO:
    """A ``pycocotools.coco.COCO`` over already-parsed ``data`` (its progress prints silenced)."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def image_of(path: Path, coco: COCO, ann: dict[str, Any]) -> dict[str, Any]:
    """The image entry of annotation ``ann``; ValueError naming file, annotation id and 'image_id'."""
    if ann["image_id"] not in coco.imgs:
        raise field_error(path, "annotation", ann["id"], "image_id", f"{ann['image_id']!r} not in 'images'")
    return coco.imgs[ann["image_id"]]


def image_size(path: Path, img: dict[str, Any], fields: tuple[str, ...] = ("file_name",)) -> tuple[int, int]:
    """``(height, width)`` of an image entry; ValueError naming the image id and the field when
    ``height`` / ``width`` or one of ``fields`` is missing, or the size is not positive."""
    for field in (*fields, "height", "width"):
        if field not in img:
            raise field_error(path, "image", img.get("id"), field, "is missing")
    height, width = img["height"], img["width"]
    numeric = isinstance(height, (int, float)) and isinstance(width, (int, float))
    if not (numeric and height > 0 and width > 0):
        raise field_error(path, "image", img.get("id"), "height/width", f"must be > 0, got {height}x{width}")
    return int(height), int(width)


# --------------------------------------------------------------------------- per-sample checks
def float_array(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as a float64 array of ``shape`` with finite entries, or ``None`` when it is missing,
    non-numeric, of another size, or contains NaN / inf. A flat list of the right size is reshaped."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.size != int(np.prod(shape)) or not np.all(np.isfinite(arr)):
        return None
    return arr.reshape(shape)


def box_outside(bbox_xywh: np.ndarray, img_hw: tuple[int, int]) -> bool:
    """True when the ``(x, y, w, h)`` box (pixels) does not overlap the image at all."""
    x, y, w, h = bbox_xywh
    return bool(x >= img_hw[1] or y >= img_hw[0] or x + w <= 0 or y + h <= 0)


def box_problem(bbox_xywh: np.ndarray, img_hw: tuple[int, int]) -> str | None:
    """Skip reason for an ``(x, y, w, h)`` box in pixels: ``"negative box size"`` (``w < 0`` or ``h < 0``),
    ``"box outside image"`` (no overlap with the image), or None."""
    if bbox_xywh[2] < 0 or bbox_xywh[3] < 0:
        return SKIP_NEGATIVE_BOX
    return SKIP_BOX_OUTSIDE if box_outside(bbox_xywh, img_hw) else None


def image_problem(path: Path, cache: dict[Path, str | None]) -> str | None:
    """Skip reason for an image file (missing / unreadable header), or None; cached per path."""
    if path not in cache:
        if not path.is_file():
            cache[path] = SKIP_MISSING_IMAGE
        elif path.stat().st_size == 0 or not cv2.haveImageReader(str(path)):
            cache[path] = SKIP_UNREADABLE_IMAGE
        else:
            cache[path] = None
    return cache[path]


def check_image_size(img: np.ndarray, record: Any, ann_path: Path) -> np.ndarray:
    """Return the decoded ``img`` (H, W, 3) unchanged; ValueError naming the image file, the sample id
    and the annotation file when its size differs from the json ``height`` / ``width``."""
    if img.shape[:2] != tuple(record.img_hw):
        raise ValueError(
            f"{record.image_path}: decoded size {img.shape[:2]} != json height/width {tuple(record.img_hw)} "
            f"(sample_id {record.sample_id}, file {ann_path})"
        )
    return img


def collect(
    annotations: list[dict[str, Any]], parse: Callable[[dict[str, Any]], Any]
) -> tuple[list, dict[str, str]]:
    """Run ``parse(ann)`` on each annotation: a returned ``str`` is a skip reason, anything else a record.

    Returns:
        ``(records, skipped)`` with ``skipped = {str(annotation id): reason}``.
    """
    records: list = []
    skipped: dict[str, str] = {}
    for ann in annotations:
        out = parse(ann)
        if isinstance(out, str):
            skipped[str(ann["id"])] = out
        else:
            records.append(out)
    return records, skipped


__all__ = [
    "SKIP_BOX_OUTSIDE", "SKIP_DEGENERATE_BOX", "SKIP_ISCROWD", "SKIP_MISSING_IMAGE", "SKIP_NO_JOINT_INSIDE",
    "SKIP_NO_KEYPOINTS", "SKIP_UNREADABLE_IMAGE", "box_outside", "check_image_size", "coco_index", "collect",
    "field_error",
    "float_array", "image_of", "image_problem", "image_size", "invalid", "load_coco_json",
    "load_json_object", "resolve_dir", "resolve_file", "resolve_root",
]
