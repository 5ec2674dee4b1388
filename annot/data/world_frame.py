"""The part shared by the MoCap loaders whose 3D joints and SMPL fits are in a world frame (Human3.6M,
:mod:`annot.data.h36m`; MPI-INF-3DHP, :mod:`annot.data.mpi_inf_3dhp`): :class:`WorldFrameMocapDataset` with its
per-sample checks, world -> camera conversion of the joints and of the SMPL fits (with the root compensation of
reference-spec A.8, :func:`smpl_world_to_camera`), the json parsing helpers and the skip bookkeeping.
Unlike mks0601, nothing is dropped silently: every unusable annotation is recorded in ``skipped``.
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np

from annot.data.augment import AugmentConfig, transform_smpl
from annot.data.person import PersonCropDataset, PersonRecord, SmplParams

logger = logging.getLogger(__name__)

NUM_JOINTS = 17
SKIP_MISSING_3D = "missing 3D joints"
SKIP_NONFINITE_3D = "non-finite 3D joints"
SKIP_BEHIND_CAMERA = "joints behind camera"
SKIP_DEGENERATE_BOX = "degenerate box"
SKIP_MISSING_IMAGE = "missing image file"
SKIP_EMPTY_IMAGE = "empty image file"
SMPL_NO_FILE = "no SMPL file"
SMPL_NO_ENTRY = "no SMPL entry"
SMPL_NONFINITE = "non-finite SMPL"


# --------------------------------------------------------------------------------------------- cameras
@dataclass(frozen=True)
class WorldCamera:
    """A calibrated MoCap camera (OpenCV axes: x right, y down, z forward).

    ``rotmat`` (3, 3) world -> camera rotation; ``t_mm`` (3,) translation in millimetres, so that
    ``x_cam_mm = rotmat @ x_world_mm + t_mm`` (mks0601 ``transforms.world2cam``); ``focal_px`` (2,)
    ``(fx, fy)`` and ``princpt_px`` (2,) ``(cx, cy)`` in original-image pixels.
    """

    rotmat: np.ndarray
    t_mm: np.ndarray
    focal_px: np.ndarray
    princpt_px: np.ndarray

    def world_to_camera_mm(self, points_world_mm: np.ndarray) -> np.ndarray:
        """(N, 3) world millimetres -> (N, 3) camera millimetres: ``R @ X + t``."""
        return np.asarray(points_world_mm, dtype=np.float64) @ self.rotmat.T + self.t_mm

    def project_px(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) camera points (any unit, Z > 0) -> (N, 2) pixels: ``x = X / Z * fx + cx``
        (mks0601 ``transforms.cam2pixel``)."""
        pts = np.asarray(points_cam, dtype=np.float64)
        return pts[:, :2] / pts[:, 2:3] * self.focal_px + self.princpt_px


def smpl_world_to_camera(smpl_world: SmplParams, camera: WorldCamera, root_joint_m: np.ndarray) -> SmplParams:
    """Move a world-frame SMPL fit into a camera frame (reference-spec A.8, pitfall F.1).

    The camera rotation is merged into the global orientation (``R0' = R R0``) and ``transl`` is
    corrected for SMPL rotating about its root joint ``J0(beta)``:
    ``transl' = R (J0 + transl) + t_m - J0`` with ``t_m = t_mm / 1000``. This is the exact form of
    mks0601 Hand4Whole ``preprocessing.process_human_model_output`` / NeuralAnnot
    ``Human3.6M/demo_smpl.py`` (which move the posed mesh by ``- root + R root + t``), done on the
    parameters with :func:`annot.data.augment.transform_smpl`.

    Args:
        smpl_world: world-frame fit (``pose_rotvec`` (24, 3), ``betas`` (10,), ``transl_m`` (3,) metres).
        camera: the camera (``t`` in millimetres).
        root_joint_m: (3,) ``J0(beta)`` of the body model in use (metres).

    Returns:
        The fit in the camera frame (same betas and gender).
    """
    pose, transl = transform_smpl(smpl_world.pose_rotvec, smpl_world.transl_m, root_joint_m, camera.rotmat,
                                  camera.t_mm / 1000.0)
    return SmplParams(pose, np.asarray(smpl_world.betas, dtype=np.float64), transl, smpl_world.gender)


# --------------------------------------------------------------------------------------------- parsing
def load_json(path: Path) -> Any:
    """Parsed JSON of ``path``; ValueError naming the file when it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def load_json_object(path: Path) -> dict[str, Any]:
    """Parsed JSON whose top level must be an object (dict); ValueError naming the file otherwise."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be an object keyed by strings, got {type(data).__name__}")
    return data


def load_coco_lists(path: Path) -> tuple[list[dict], list[dict]]:
    """``(images, annotations)`` of an mks0601 COCO-style json; ValueError naming file and field."""
    data = load_json_object(path)
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing or non-list field '{key}'")
    return data["images"], data["annotations"]


def field_error(path: Path, item: str, field: str, what: str) -> ValueError:
    """``ValueError("<file>: <item>: field '<field>' <what>")`` (item e.g. ``"sample_id 12"``)."""
    return ValueError(f"{path}: {item}: field '{field}' {what}")


def float_array(path: Path, item: str, field: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float64 array of ``shape`` (NaN allowed, JSON ``null`` becomes NaN).

    Raises:
        ValueError: wrong shape or non-numeric content (names file, item and field).
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise field_error(path, item, field, f"is not numeric ({err})") from err
    if arr.shape != shape:
        raise field_error(path, item, field, f"must have shape {shape}, got {arr.shape}")
    return arr


def nested_entry(tree: Mapping[str, Any], keys: Iterable[Any], path: Path, item: str) -> Any:
    """``tree[str(k0)][str(k1)]...`` or ``None`` when a key is absent (all keys are strings, F.2).

    Raises:
        ValueError: an intermediate level is not an object (the file has the wrong nesting).
    """
    node: Any = tree
    walked: list[str] = []
    for key in keys:
        if not isinstance(node, dict):
            raise field_error(path, item, "/".join(walked) or "<top>",
                              f"must be an object keyed by strings, got {type(node).__name__}")
        node = node.get(str(key))
        walked.append(str(key))
        if node is None:
            return None
    return node


def image_fields(path: Path, img: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The required ``fields`` of one ``images`` entry; every field but ``file_name`` (and ``id``) must be
    an integer (``width``, ``height`` > 0). ValueError naming file, image id and field."""
    if not isinstance(img, dict):
        raise ValueError(f"{path}: an 'images' entry is not an object: {str(img)[:80]}")
    item = f"image id {img.get('id')}"
    out = {}
    for field in fields:
        if field not in img:
            raise field_error(path, item, field, "is missing")
        value = img[field]
        if field not in ("file_name", "id"):
            integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not integral:
                raise field_error(path, item, field, f"must be an integer, got {value!r}")
            value = int(value)
        elif field == "file_name" and not isinstance(value, str):
            raise field_error(path, item, field, f"must be a string, got {value!r}")
        out[field] = value
    if "height" in out and not (out["height"] > 0 and out["width"] > 0):
        raise field_error(path, item, "height/width", f"must be > 0, got {out['height']}x{out['width']}")
    return out


def index_images(path: Path, images: list[Any], fields: tuple[str, ...]) -> dict[Any, dict[str, Any]]:
    """``{image id: required fields}``; ValueError on a missing field or a repeated id."""
    index: dict[Any, dict[str, Any]] = {}
    for img in images:
        entry = image_fields(path, img, ("id", *fields))
        if entry["id"] in index:
            raise field_error(path, f"image id {entry['id']}", "id", "appears twice")
        index[entry["id"]] = entry
    return index


def parse_camera(path: Path, item: str, entry: Any, focal_key: str, princpt_key: str) -> WorldCamera:
    """One camera entry ``{R, t, <focal_key>, <princpt_key>}`` (H36M ``f/c``, MPI-INF ``focal/princpt``).

    Raises:
        ValueError: missing key, wrong shape, non-finite value, non-positive focal length, or an ``R``
            that is not a rotation (``|R R^T - I| > 1e-2`` or ``det R <= 0``); names file, camera, field.
    """
    if not isinstance(entry, dict):
        raise field_error(path, item, "<camera>", f"must be an object, got {type(entry).__name__}")
    shapes = {"R": (3, 3), "t": (3,), focal_key: (2,), princpt_key: (2,)}
    values = {}
    for key, shape in shapes.items():
        if key not in entry:
            raise field_error(path, item, key, f"is missing (expected keys {sorted(shapes)})")
        values[key] = float_array(path, item, key, entry[key], shape)
        if not np.all(np.isfinite(values[key])):
            raise field_error(path, item, key, "contains NaN or inf")
    rotmat = values["R"]
    if np.abs(rotmat @ rotmat.T - np.eye(3)).max() > 1e-2 or np.linalg.det(rotmat) <= 0:
        raise field_error(path, item, "R", "is not a rotation matrix (orthonormal, det +1)")
    if np.any(values[focal_key] <= 0):
        raise field_error(path, item, focal_key, f"must be > 0, got {values[focal_key].tolist()}")
    return WorldCamera(rotmat, values["t"], values[focal_key], values[princpt_key])


def parse_smpl_entry(path: Path, item: str, entry: Any) -> SmplParams | None:
    """NeuralAnnot ``{pose: 72, shape: 10, trans: 3}`` (world frame, metres) as :class:`SmplParams`.

    Returns ``None`` when a value is NaN / inf (the caller counts it as a missing fit).

    Raises:
        ValueError: not an object, missing key or wrong length (names file, sample and field).
    """
    if not isinstance(entry, dict):
        raise field_error(path, item, "<smpl>", f"must be an object, got {type(entry).__name__}")
    values = {}
    for key, shape in (("pose", (72,)), ("shape", (10,)), ("trans", (3,))):
        if key not in entry:
            raise field_error(path, item, key, "is missing (expected pose, shape, trans)")
        values[key] = float_array(path, item, key, entry[key], shape)
    if not all(np.all(np.isfinite(v)) for v in values.values()):
        return None
    return SmplParams(values["pose"].reshape(24, 3), values["shape"], values["trans"], "neutral")


def resolve_dir(path: Path, what: str, hint: str) -> Path:
    """``path`` if it is a folder, else FileNotFoundError naming it and the config key (``hint``)."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: looked at '{path}' (absolute: '{path.absolute()}'). "
                                f"{hint}")
    return path


def resolve_file(path: Path, what: str, hint: str) -> Path:
    """``path`` if it is a file, else FileNotFoundError naming it and the config key (``hint``)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: looked at '{path}'. {hint}")
    return path


def check_frame_stride(name: str, frame_stride: int | None, default: int) -> int:
    """The frame stride to use (``default`` when None); ValueError unless a positive integer."""
    stride = default if frame_stride is None else frame_stride
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"{name}: frame_stride (config key `data.frame_stride`) must be an integer >= 1, "
                         f"got {frame_stride!r}")
    return stride


@dataclass
class ParsedFiles:
    """One set of parsed annotation files (H36M: one subject; MPI-INF: the whole dataset).

    ``paths``: ``{"data", "camera", "joint_3d", "smpl"}`` -> file; ``cameras_raw`` / ``joints`` /
    ``smpl`` the parsed jsons (``smpl`` None when not read); ``focal_key`` / ``princpt_key`` the camera
    key names (H36M ``f`` / ``c``, MPI-INF ``focal`` / ``princpt``); ``cameras`` the parsed cameras by
    key path (filled on first use).
    """

    paths: dict[str, Path]
    cameras_raw: dict[str, Any]
    joints: dict[str, Any]
    smpl: dict[str, Any] | None
    focal_key: str
    princpt_key: str
    cameras: dict[tuple[int, ...], WorldCamera] = dataclass_field(default_factory=dict)


# --------------------------------------------------------------------------------------------- base
class WorldFrameMocapDataset(PersonCropDataset):
    """Shared part of the MoCap loaders whose 3D joints and SMPL fits are in a world frame (H36M, MPI-INF).

    Subclasses parse their layout, read the per-subject / per-dataset files with :meth:`load_files`,
    call :meth:`add_annotation` once per sampled annotation, then :meth:`finish_loading`. Per-sample
    problems are skipped with a reason (:meth:`make_record`); missing / unusable SMPL fits keep the
    sample with ``smpl=None`` and are counted in ``smpl_missing``. Frames left out by the frame stride
    (or camera filter) are not "skipped": they are never looked at, as in mks0601, and a repeated
    annotation id is only detected among the sampled ones.

    Args:
        use_smpl: read the ``*_SMPL_NeuralAnnot.json`` fits (when the file is present) and convert them
            to each camera; needs the body model (``body_model_type`` / ``body_model_path``) for
            ``J0(beta)``.
        input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path: see
            :class:`annot.data.person.PersonCropDataset`.

    ``__getitem__`` raises ValueError (file, sample id) when an image cannot be decoded or its size
    differs from the json ``height`` / ``width``.

    Attributes:
        skipped: ``{sample_id: reason}``; reasons "missing 3D joints", "non-finite 3D joints",
            "joints behind camera", "degenerate box", "missing image file", "empty image file".
        smpl_missing: ``{sample_id: reason}`` for kept samples without a fit ("no SMPL file",
            "no SMPL entry", "non-finite SMPL"); empty when ``use_smpl`` is False.
        frame_keys: ``{sample_id: (subject, sequence..., frame_idx, cam_idx)}`` of every kept sample
            (H36M ``(subject, action_idx, subaction_idx, frame_idx, cam_idx)``, MPI-INF
            ``(subject_idx, seq_idx, frame_idx, cam_idx)``), e.g. to write fits back in NeuralAnnot keys.
        cameras: ``{sample_id: WorldCamera}`` of every kept sample (world -> camera, ``t`` in mm).
    """

    def reference_entry(self, sample_id: str) -> tuple[str, tuple[int, ...]]:  # pragma: no cover - abstract
        """``(file name, (key, key, key))`` under which mks0601's ``*_SMPL_NeuralAnnot.json`` stores the
        world-frame fit of kept sample ``sample_id`` (KeyError for a sample that is not kept)."""
        raise NotImplementedError

    def __init__(self, use_smpl: bool = True, input_hw: tuple[int, int] = (256, 192),
                 convention: str | None = None, augment: AugmentConfig | None = None,
                 bbox_scale: float = 1.25, seed: int = 0,
                 body_model_type: str = "free", body_model_path: str | None = None) -> None:
        super().__init__(input_hw, convention, augment, bbox_scale, seed, body_model_type, body_model_path)
        self.use_smpl = bool(use_smpl)
        self.smpl_missing: dict[str, str] = {}
        self.frame_keys: dict[str, tuple[int, ...]] = {}
        self.cameras: dict[str, WorldCamera] = {}
        self._image_status: dict[Path, str | None] = {}

    def summary(self) -> str:
        """``"<name>: loaded N, skipped M: <reason>: k, ...; smpl missing K: <reason>: k"`` (the SMPL part
        only with ``use_smpl``)."""
        line = super().summary()
        if self.use_smpl:
            line += f"; smpl missing {len(self.smpl_missing)}"
            counts = sorted(Counter(self.smpl_missing.values()).items(), key=lambda kv: (-kv[1], kv[0]))
            if counts:
                line += ": " + ", ".join(f"{reason}: {count}" for reason, count in counts)
        return line

    def finish_loading(self, records: list[PersonRecord], skipped: dict[str, str]) -> None:
        """Store the records (logs the summary) and drop the per-path image cache of the loading pass."""
        self._image_status.clear()
        self._set_records(records, skipped)

    def read_image(self, record: PersonRecord) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)``; ValueError naming the file and sample id when it cannot be decoded or
        its size differs from the json ``height`` / ``width`` (the projections assume the json size)."""
        img = super().read_image(record)
        if img.shape[:2] != tuple(record.img_hw):
            raise ValueError(f"{record.image_path}: decoded size {img.shape[:2]} != json height/width "
                             f"{tuple(record.img_hw)} ({self.name} sample_id {record.sample_id})")
        return img

    def image_problem(self, path: Path) -> str | None:
        """Skip reason for an image file ("missing image file" / "empty image file") or None: one
        ``os.stat`` per path, cached (the image is only decoded in ``__getitem__``)."""
        if path not in self._image_status:
            try:
                size = os.stat(path).st_size
                self._image_status[path] = None if size > 0 else SKIP_EMPTY_IMAGE
            except OSError:
                self._image_status[path] = SKIP_MISSING_IMAGE
        return self._image_status[path]

    def make_record(self, sample_id: str, image_path: Path, img_hw: tuple[int, int], bbox_xywh: np.ndarray,
                    joints_world_mm: np.ndarray | None, camera: WorldCamera,
                    smpl_world: SmplParams | None | str) -> PersonRecord | str:
        """A :class:`PersonRecord` in the camera frame, or the skip reason (str).

        Checks, in this order: 3D entry present ("missing 3D joints"), all finite ("non-finite 3D
        joints"), every joint in front of the camera ("joints behind camera"), box usable after
        ``process_box`` ("degenerate box", also for NaN boxes), image file present ("missing image
        file" / "empty image file").

        Args:
            sample_id: dataset-unique id (the annotation id as a string).
            image_path: absolute image path; img_hw: (height, width) from the json.
            bbox_xywh: (4,) json box, original-image pixels.
            joints_world_mm: (17, 3) world joints in millimetres, or None when the entry is absent.
            camera: the sample's camera.
            smpl_world: world-frame fit, or the reason it is missing (str), or None (``use_smpl`` off).
        """
        if joints_world_mm is None:
            return SKIP_MISSING_3D
        if not np.all(np.isfinite(joints_world_mm)):
            return SKIP_NONFINITE_3D
        joints_cam_mm = camera.world_to_camera_mm(joints_world_mm)
        if np.any(joints_cam_mm[:, 2] <= 0):
            return SKIP_BEHIND_CAMERA
        box = self.process_box(bbox_xywh, img_hw) if np.all(np.isfinite(bbox_xywh)) else None
        if box is None:
            return SKIP_DEGENERATE_BOX
        problem = self.image_problem(image_path)
        if problem is not None:
            return problem
        smpl = None
        if isinstance(smpl_world, str):
            self.smpl_missing[sample_id] = smpl_world
        elif smpl_world is not None:
            root_joint = self.root_joint(smpl_world.betas, smpl_world.gender)
            smpl = smpl_world_to_camera(smpl_world, camera, root_joint)
        valid = np.ones(len(joints_cam_mm), dtype=bool)
        return PersonRecord(sample_id, image_path, img_hw, box, camera.project_px(joints_cam_mm), valid,
                            joints_cam_mm / 1000.0, valid.copy(), smpl, camera.focal_px.copy(),
                            camera.princpt_px.copy())

    def smpl_lookup(self, smpl_tree: Mapping[str, Any] | None, keys: tuple[Any, ...], path: Path,
                    item: str) -> SmplParams | str | None:
        """World fit at ``smpl_tree[keys]`` or the reason it is missing; None when ``use_smpl`` is off."""
        if not self.use_smpl:
            return None
        if smpl_tree is None:
            return SMPL_NO_FILE
        entry = nested_entry(smpl_tree, keys, path, item)
        if entry is None:
            return SMPL_NO_ENTRY
        parsed = parse_smpl_entry(path, item, entry)
        return SMPL_NONFINITE if parsed is None else parsed

    def load_files(self, paths: dict[str, Path], focal_key: str, princpt_key: str) -> ParsedFiles:
        """Parse the camera, joint_3d and (with ``use_smpl``, when present) SMPL jsons of ``paths``."""
        smpl_tree = None
        if self.use_smpl:
            if paths["smpl"].is_file():
                smpl_tree = load_json_object(paths["smpl"])
            else:
                logger.warning("%s: no SMPL fits at %s; its samples keep smpl=None", self.name, paths["smpl"])
        return ParsedFiles(paths, load_json_object(paths["camera"]), load_json_object(paths["joint_3d"]),
                           smpl_tree, focal_key, princpt_key)

    def add_annotation(self, files: ParsedFiles, sample_id: str, img: dict[str, Any], bbox: np.ndarray,
                       camera_keys: tuple[int, ...], frame_keys: tuple[int, ...],
                       sample_key: tuple[int, ...], image_path: Path, records: list[PersonRecord],
                       skipped: dict[str, str]) -> None:
        """Build one sample (``make_record``) and file it in ``records`` or ``skipped``.

        Args:
            camera_keys: nesting of the camera json (H36M ``(cam,)``, MPI-INF ``(subject, seq, cam)``).
            frame_keys: nesting of the joint_3d / SMPL jsons (H36M ``(action, subaction, frame)``,
                MPI-INF ``(subject, seq, frame)``).
            sample_key: stored in ``frame_keys[sample_id]`` when the sample is kept.

        Raises:
            ValueError: a repeated annotation id, a camera missing from the camera json, malformed
                camera / joints / SMPL entries (names file, sample id and field).
        """
        item = f"sample_id {sample_id}"
        if sample_id in skipped or sample_id in self.frame_keys:
            raise field_error(files.paths["data"], item, "id",
                              "appears twice (annotation ids must be unique)")
        if camera_keys not in files.cameras:
            files.cameras[camera_keys] = camera_entry(files.paths["camera"], files.cameras_raw, camera_keys,
                                                      item, files.focal_key, files.princpt_key)
        joints_world = joints_entry(files.paths["joint_3d"], files.joints, frame_keys, item)
        smpl = self.smpl_lookup(files.smpl, frame_keys, files.paths["smpl"], item)
        result = self.make_record(sample_id, image_path, (img["height"], img["width"]), bbox, joints_world,
                                  files.cameras[camera_keys], smpl)
        if isinstance(result, str):
            skipped[sample_id] = result
        else:
            records.append(result)
            self.frame_keys[sample_id] = sample_key
            self.cameras[sample_id] = files.cameras[camera_keys]


def annotation_box(path: Path, ann: Any,
                   images: Mapping[Any, dict[str, Any]]) -> tuple[str, dict[str, Any], np.ndarray]:
    """``(sample_id, image fields, bbox (4,))`` of one annotation; ValueError naming file, id and field."""
    if not isinstance(ann, dict) or "id" not in ann:
        raise ValueError(f"{path}: an annotation has no 'id' field: {str(ann)[:80]}")
    item = f"sample_id {ann['id']}"
    if ann.get("image_id") not in images:
        raise field_error(path, item, "image_id", f"{ann.get('image_id')!r} not in 'images'")
    if "bbox" not in ann:
        raise field_error(path, item, "bbox", "is missing")
    return str(ann["id"]), images[ann["image_id"]], float_array(path, item, "bbox", ann["bbox"], (4,))


def key_path(keys: Iterable[Any]) -> str:
    """``['2']['1']['10']``: how a nested string-keyed entry is named in error messages."""
    return "".join(f"['{key}']" for key in keys)


def camera_entry(path: Path, tree: Mapping[str, Any], keys: tuple[Any, ...], item: str, focal_key: str,
                 princpt_key: str) -> WorldCamera:
    """The camera at ``tree[str(k0)]...``; ValueError naming file, sample and key path when it is absent
    (the camera file does not match the data: the dataset is misconfigured as a whole)."""
    entry = nested_entry(tree, keys, path, item)
    if entry is None:
        raise field_error(path, item, key_path(keys),
                          "is missing: the data json uses this camera but the camera json has no such entry")
    return parse_camera(path, f"camera {key_path(keys)}", entry, focal_key, princpt_key)


def joints_entry(path: Path, tree: Mapping[str, Any], keys: tuple[Any, ...], item: str) -> np.ndarray | None:
    """(17, 3) world joints (mm) at ``tree[str(k0)]...`` (NaN kept), or None when the entry is absent.

    Raises:
        ValueError: the entry is not 17 x 3 numbers (names file, sample and key path).
    """
    entry = nested_entry(tree, keys, path, item)
    return None if entry is None else float_array(path, item, key_path(keys), entry, (NUM_JOINTS, 3))


__all__ = ["WorldCamera", "WorldFrameMocapDataset", "smpl_world_to_camera"]
