"""People and their 2D keypoints in photos with no annotations: MediaPipe BlazePose, seeded by faces.

The detector is the one whose weights ship inside a registry package: ``mediapipe==0.10.14`` (Apache-2.0; its
wheel carries ``pose_detection.tflite``, ``pose_landmark_full.tflite``, the BlazeFace full-range face detector
and the hand / face landmark models; nothing is downloaded at run time). It cannot share the project's
environment (it pins ``protobuf<5`` and ``opencv-contrib-python``), so ``make photos-deps`` installs it with
its two small pure-Python dependencies into ``.photos-deps/`` and :func:`load_mediapipe` puts that folder
first on ``sys.path`` of the *detection process only* (``tools/detect_people.py``); training never imports it.

Several people per photo. MediaPipe's legacy ``mp.solutions.pose`` (Bazarevsky et al., "BlazePose",
CVPRW 2020) finds one person per image. People are separated first, then BlazePose runs once per person:

1. **seeds**: the user's person boxes (a COCO json, ``--boxes``) when given; otherwise faces found by the
   BlazeFace full-range detector (``mp.solutions.face_detection``, model 1) on the whole image and on
   overlapping square tiles (small faces of a group photo), merged by :func:`nms_boxes`;
2. **crop**: a square around each seed (a face: ``crop_side_faces`` face heights wide, from ``crop_top_faces``
   above the face), with the *other* faces in it painted grey so that BlazePose locks onto this person;
3. **check**: the pose is kept only when its nose lies in the seeding face (else it is another person's
   body: reason ``pose of another person``); no pose, or fewer than ``min_keypoints`` keypoints over
   ``kp_min_conf``, are recorded with their reason too (:data:`SKIP_NO_POSE`, :data:`SKIP_FEW_KEYPOINTS`).
   With no face and no box at all, BlazePose runs on the whole image (a portrait seen from the back).

People it cannot separate: a person whose face is not found (turned away, under ~10 px) gets no seed and
is missed unless the user gives a box; in crowded rows (the back rows of the 1927 Solvay photo, bodies hidden
behind the front row) BlazePose finds no body in the crop, and the face is recorded as a skipped detection.

Keypoints: the 33 BlazePose landmarks (``blazepose33``) are mapped to COCO-17 by name with
:func:`annot.keypoints.convert`; a keypoint's ``v`` is BlazePose's visibility (a probability) when it is at
least ``kp_min_conf``, else 0 (COCO's "not labelled"), so the COCO loader's ``v > 0`` mask keeps the confident
ones. Coordinates are pixels of the written (downscaled) image copy.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annot.keypoints import convert

MEDIAPIPE_VERSION = "0.10.14"
#: Where ``make photos-deps`` installs mediapipe and its pinned dependencies (relative to the repository root).
DEPS_DIR = Path(__file__).resolve().parents[2] / ".photos-deps"
DETECTOR_NAME = f"mediapipe-{MEDIAPIPE_VERSION} BlazeFace full-range + BlazePose full"

SKIP_NO_POSE = "no pose found in the person crop"
SKIP_OTHER_PERSON = "pose of another person"
SKIP_FEW_KEYPOINTS = "too few confident keypoints"


@dataclass
class DetectConfig:
    """Detector settings (``configs/detect/blazepose.yaml``; dotlist overrides on the command line).

    ``max_side_px``: longest side of the image copies the pipeline reads (pixels; larger photos are downscaled);
    ``face_min_score``: BlazeFace score threshold; ``tile_fracs``: tile sides as fractions of the shorter image
    side (half-overlapping), for small faces; ``face_nms_overlap``: intersection over the smaller box above which
    two faces are one; ``crop_side_faces`` / ``crop_top_faces``: the person crop in face heights;
    ``mask_other_faces``: paint the other faces of a crop grey; ``box_margin``: margin added around a user box
    (fraction of its longer side); ``model_complexity``: BlazePose 1 (full; the only landmark model in the
    wheel); ``kp_min_conf``: visibility below which a keypoint is unlabelled (v=0); ``min_keypoints``: fewest
    confident COCO keypoints of a kept person; ``nose_margin``: slack of the nose-in-face check (face sizes).
    """

    max_side_px: int = 1600
    face_min_score: float = 0.5
    tile_fracs: list[float] = field(default_factory=lambda: [0.6, 0.3])
    face_nms_overlap: float = 0.3
    crop_side_faces: float = 9.0
    crop_top_faces: float = 1.0
    mask_other_faces: bool = True
    box_margin: float = 0.15
    model_complexity: int = 1
    kp_min_conf: float = 0.5
    min_keypoints: int = 6
    nose_margin: float = 0.3


@dataclass(frozen=True)
class Detection:
    """One person found in an image.

    Attributes:
        landmarks: (33, 3) float ``blazepose33`` landmarks: x, y in image pixels, BlazePose visibility in [0, 1].
        bbox_xywh: (4,) person box in image pixels (the landmarks' extent and the seed, clipped to the image).
        seed_xywh: (4,) the face or user box that separated this person, image pixels.
        source: ``"face"``, ``"box"`` (user box) or ``"image"`` (whole image, no seed).
        score: mean visibility of the 17 COCO keypoints (for ranking, e.g. by ``COCOeval``).
    """

    landmarks: np.ndarray
    bbox_xywh: np.ndarray
    seed_xywh: np.ndarray
    source: str
    score: float


def load_mediapipe(deps_dir: str | Path | None = None) -> Any:
    """Import ``mediapipe`` (0.10.14) from ``deps_dir`` (default :data:`DEPS_DIR`), put first on ``sys.path``.

    Call it before anything imports ``google.protobuf`` in the process (the environment's protobuf 7 cannot
    run mediapipe's graphs).

    Raises:
        ImportError: mediapipe is missing or another version, naming the folder and ``make photos-deps``.
    """
    import os
    import warnings

    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ INFO/WARNING lines on stderr
    warnings.filterwarnings("ignore", message=".*GetPrototype.*", category=UserWarning)
    folder = Path(deps_dir) if deps_dir is not None else DEPS_DIR
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    try:
        import mediapipe as mp
    except ImportError as err:
        raise ImportError(f"mediapipe {MEDIAPIPE_VERSION} is not installed in {folder} ({err}): run "
                          "`make photos-deps` (it installs it there, outside the project's venv)") from err
    if mp.__version__ != MEDIAPIPE_VERSION:
        raise ImportError(f"mediapipe {mp.__version__} found ({mp.__file__}); the detector needs "
                          f"{MEDIAPIPE_VERSION}, the last release whose wheel ships the BlazePose models")
    return mp


# --------------------------------------------------------------------------- pure geometry (no mediapipe)
def nms_boxes(boxes: np.ndarray, overlap: float) -> np.ndarray:
    """Greedy non-maximum suppression by intersection over the *smaller* box.

    Args:
        boxes: (N, 5) ``x, y, w, h, score`` in pixels.
        overlap: a box whose intersection with a kept, higher-scoring box exceeds ``overlap`` times the smaller
            of the two areas is dropped (a face seen whole in one tile and cut in another is one face).

    Returns:
        (K, 5) the kept boxes, highest score first.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    keep: list[int] = []
    for i in np.argsort(-boxes[:, 4], kind="stable"):
        b = boxes[i]
        dup = False
        for k in keep:
            c = boxes[k]
            ix = max(0.0, min(b[0] + b[2], c[0] + c[2]) - max(b[0], c[0]))
            iy = max(0.0, min(b[1] + b[3], c[1] + c[3]) - max(b[1], c[1]))
            if ix * iy > overlap * min(b[2] * b[3], c[2] * c[3]):
                dup = True
                break
        if not dup:
            keep.append(int(i))
    return boxes[keep]


def tiles(image_hw: tuple[int, int], fracs: list[float]) -> list[tuple[int, int, int, int]]:
    """The whole image and half-overlapping square tiles of side ``frac * min(H, W)`` for each ``frac``.

    Returns:
        list of ``(x0, y0, x1, y1)`` pixel windows (x1, y1 exclusive), the whole image first.
    """
    h, w = image_hw
    out = [(0, 0, w, h)]
    for frac in fracs:
        side = max(16, int(frac * min(h, w)))
        step = max(1, side // 2)
        for y in range(0, max(1, h - side + step), step):
            for x in range(0, max(1, w - side + step), step):
                out.append((x, y, min(w, x + side), min(h, y + side)))
    return out


def face_crop(face_xywh: np.ndarray, image_hw: tuple[int, int], side_faces: float,
              top_faces: float) -> tuple[int, int, int, int]:
    """Square person window seeded by a face: ``side_faces`` face heights wide, centred on the face in x,
    starting ``top_faces`` face heights above it; clipped to the image. Returns ``(x0, y0, x1, y1)`` pixels."""
    x, y, w, h = (float(v) for v in face_xywh[:4])
    side = side_faces * h
    cx = x + w / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(y - top_faces * h))
    return x0, y0, min(image_hw[1], int(cx + side / 2)), min(image_hw[0], int(y0 + side))


def box_crop(box_xywh: np.ndarray, image_hw: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """A user box grown by ``margin`` of its longer side on every side, clipped. Returns ``(x0, y0, x1, y1)``."""
    x, y, w, h = (float(v) for v in box_xywh[:4])
    pad = margin * max(w, h)
    return (max(0, int(x - pad)), max(0, int(y - pad)), min(image_hw[1], int(np.ceil(x + w + pad))),
            min(image_hw[0], int(np.ceil(y + h + pad))))


def nose_in_face(landmarks: np.ndarray, face_xywh: np.ndarray, margin: float) -> bool:
    """Whether the BlazePose nose (landmark 0, pixels) lies in the face box grown by ``margin`` face sizes."""
    x, y, w, h = (float(v) for v in face_xywh[:4])
    nx, ny = float(landmarks[0, 0]), float(landmarks[0, 1])
    return x - margin * w <= nx <= x + (1 + margin) * w and y - margin * h <= ny <= y + (1 + margin) * h


def person_box(landmarks: np.ndarray, seed_xywh: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(4,) ``x, y, w, h`` pixel box around all 33 landmarks (BlazePose predicts hidden ones too) and the seed,
    clipped to the image."""
    pts = np.concatenate([landmarks[:, :2], [seed_xywh[:2], seed_xywh[:2] + seed_xywh[2:4]]])
    x0, y0 = np.clip(pts.min(0), 0, None)
    x1, y1 = np.minimum(pts.max(0), [image_hw[1] - 1, image_hw[0] - 1])
    return np.array([x0, y0, max(1.0, x1 - x0), max(1.0, y1 - y0)], np.float64)


def coco_keypoints(landmarks: np.ndarray, kp_min_conf: float) -> tuple[np.ndarray, int]:
    """COCO-17 ``(x, y, v)`` from BlazePose-33 landmarks by joint name (:func:`annot.keypoints.convert`).

    Args:
        landmarks: (33, 3) x, y (pixels), visibility in [0, 1].
        kp_min_conf: visibility below which ``v`` is 0 (x, y kept).

    Returns:
        ``(kps, num_keypoints)``: (17, 3) float, ``v`` the visibility (rounded to 1e-3) or 0; the count of v > 0.
    """
    kps, _ = convert(np.asarray(landmarks, np.float64), "blazepose33", "coco17")
    kps = kps.copy()
    conf = kps[:, 2]
    kps[:, 2] = np.where(conf >= kp_min_conf, np.maximum(np.round(conf, 3), 1e-3), 0.0)
    return kps, int((kps[:, 2] > 0).sum())


def coco_annotation(det: Detection, image_id: int, ann_id: int, kp_min_conf: float) -> dict[str, Any]:
    """One COCO person-keypoints annotation dict (``keypoints`` 51 floats, ``bbox`` xywh px, ``score``)."""
    kps, num = coco_keypoints(det.landmarks, kp_min_conf)
    box = [round(float(v), 2) for v in det.bbox_xywh]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": box,
            "area": round(box[2] * box[3], 2), "num_keypoints": num,
            "keypoints": [round(float(v), 3) for v in kps.reshape(-1)], "score": round(det.score, 4),
            "source": det.source, "seed_bbox": [round(float(v), 2) for v in det.seed_xywh[:4]]}


def coco_document(images: list[dict[str, Any]], annotations: list[dict[str, Any]], info: dict[str, Any]
                  ) -> dict[str, Any]:
    """A COCO person-keypoints json (the layout of ``person_keypoints_val2017.json``) for the COCO loader."""
    from annot.keypoints import get_convention

    names = [n.lower() for n in get_convention("coco17").joint_names]
    return {"info": info, "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": names,
                            "skeleton": []}]}


# --------------------------------------------------------------------------- the detector
class BlazePoseDetector:
    """Face- (or box-) seeded BlazePose on one image at a time; see the module docstring.

    Args:
        cfg: a :class:`DetectConfig` (or its ``DictConfig``).
        deps_dir: where mediapipe is installed (:func:`load_mediapipe`).

    Raises:
        ImportError: mediapipe 0.10.14 missing (:func:`load_mediapipe`).
    """

    def __init__(self, cfg: DetectConfig | Any, deps_dir: str | Path | None = None) -> None:
        mp = load_mediapipe(deps_dir)
        self.cfg = cfg
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=int(cfg.model_complexity),
                                            enable_segmentation=False)
        self._faces = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                min_detection_confidence=float(cfg.face_min_score))

    def close(self) -> None:
        """Free the two MediaPipe graphs."""
        self._pose.close()
        self._faces.close()

    def __enter__(self) -> BlazePoseDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def faces(self, image_rgb: np.ndarray) -> np.ndarray:
        """(K, 5) face boxes ``x, y, w, h`` (pixels) and scores over the whole image and its tiles, after NMS."""
        found = []
        for x0, y0, x1, y1 in tiles(image_rgb.shape[:2], list(self.cfg.tile_fracs)):
            result = self._faces.process(np.ascontiguousarray(image_rgb[y0:y1, x0:x1]))
            for d in result.detections or []:
                b = d.location_data.relative_bounding_box
                found.append([x0 + b.xmin * (x1 - x0), y0 + b.ymin * (y1 - y0), b.width * (x1 - x0),
                              b.height * (y1 - y0), float(d.score[0])])
        return nms_boxes(np.asarray(found, np.float64).reshape(-1, 5), float(self.cfg.face_nms_overlap))

    def _pose_in(self, image_rgb: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray | None:
        x0, y0, x1, y1 = window
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        result = self._pose.process(np.ascontiguousarray(image_rgb[y0:y1, x0:x1]))
        if result.pose_landmarks is None:
            return None
        lm = result.pose_landmarks.landmark
        return np.array([[x0 + p.x * (x1 - x0), y0 + p.y * (y1 - y0), p.visibility] for p in lm], np.float64)

    def detect(self, image_rgb: np.ndarray, boxes_xywh: np.ndarray | None = None
               ) -> tuple[list[Detection], list[dict[str, Any]]]:
        """People of one image.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            boxes_xywh: optional (N, 4) user person boxes (pixels); when given, faces are not searched.

        Returns:
            ``(detections, skipped)``: the kept people, and one ``{"seed_bbox": [4], "source", "reason"}`` per
            seed whose person was not kept.
        """
        cfg, hw = self.cfg, image_rgb.shape[:2]
        if boxes_xywh is not None:
            seeds = [(np.asarray(b, np.float64)[:4], "box") for b in boxes_xywh]
        else:
            faces = self.faces(image_rgb)
            seeds = [(f[:4], "face") for f in faces]
            if not seeds:
                seeds = [(np.array([0.0, 0.0, hw[1], hw[0]]), "image")]
        dets: list[Detection] = []
        skipped: list[dict[str, Any]] = []
        for seed, source in seeds:
            shown = image_rgb
            if source == "face":
                window = face_crop(seed, hw, cfg.crop_side_faces, cfg.crop_top_faces)
                if cfg.mask_other_faces and len(seeds) > 1:
                    shown = image_rgb.copy()
                    for other, _ in seeds:
                        if other is not seed:
                            ox, oy, ow, oh = other
                            shown[max(0, int(oy - 0.2 * oh)):int(oy + 1.1 * oh), max(0, int(ox)):int(ox + ow)] = 128
            elif source == "box":
                window = box_crop(seed, hw, cfg.box_margin)
            else:
                window = (0, 0, hw[1], hw[0])
            landmarks = self._pose_in(shown, window)
            reason = None
            if landmarks is None:
                reason = SKIP_NO_POSE
            elif source == "face" and not nose_in_face(landmarks, seed, cfg.nose_margin):
                reason = SKIP_OTHER_PERSON
            elif coco_keypoints(landmarks, cfg.kp_min_conf)[1] < cfg.min_keypoints:
                reason = SKIP_FEW_KEYPOINTS
            if reason is not None:
                skipped.append({"seed_bbox": [round(float(v), 2) for v in seed], "source": source,
                                "reason": reason})
                continue
            coco17, _ = convert(landmarks, "blazepose33", "coco17")
            dets.append(Detection(landmarks, person_box(landmarks, seed, hw), np.asarray(seed, np.float64), source,
                                  float(coco17[:, 2].mean())))
        return dets, skipped
