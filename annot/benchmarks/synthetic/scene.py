"""One synthetic image: people posed and placed in front of a random camera, coloured and lit, rendered over a
background photo crop (:class:`Backgrounds`); one person (:func:`sample_person`) or a crowd (:func:`sample_scene`).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from annot.benchmarks.synthetic.config import BODY_JOINTS, SyntheticConfig, SyntheticPerson
from annot.benchmarks.synthetic.poses import sample_pose
from annot.body_models import BodyModel
from annot.data.fixtures.common import project
from annot.data.person import SmplParams
from annot.render import MeshRenderer

_SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.89, 0.68, 0.55], [0.78, 0.57, 0.44], [0.63, 0.45, 0.33],
                        [0.45, 0.31, 0.22], [0.30, 0.20, 0.14]])


def random_color(rng: np.random.Generator) -> np.ndarray:
    """(3,) RGB in [0, 1]: half the time a jittered skin tone, else a cloth colour (random hue)."""
    if rng.random() < 0.5:
        rgb = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.normal(scale=0.03, size=3)
    else:
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 220), rng.uniform(70, 230)]]], np.uint8)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    return np.clip(rgb, 0.02, 0.98)


# ---------------------------------------------------------------------------------------------- camera
def _place(rng: np.random.Generator, verts0: np.ndarray, joints0: np.ndarray, config: SyntheticConfig,
           camera: tuple[np.ndarray, np.ndarray] | None = None, truncate: bool = False,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One camera draw: ``(transl offset (3,), focal_px (2,), princpt_px (2,))`` or None when rejected.

    ``verts0`` / ``joints0``: the posed person with its pelvis at the origin (camera axes, metres).
    ``camera``: a fixed ``(focal_px, princpt_px)`` (later people of a crowd share the first one's camera;
    their height must then lie in ``crowd_height_frac``); default: a focal drawn for this person.
    ``truncate``: let the border cut the person: the pelvis pixel range is widened by half the person's
    extent, and the draw is kept only when some joint is outside and ``min_labelled_keypoints`` are inside.
    Without it every joint lies inside the image.
    """
    height, width = config.image_hw
    depth = rng.uniform(*config.distance_range_m)
    extent_m = np.ptp(verts0[:, 1])
    if camera is None:
        lo_h, hi_h = config.person_height_frac
        lo_f = max(config.focal_range_frac[0] * max(height, width), lo_h * height * depth / extent_m)
        hi_f = min(config.focal_range_frac[1] * max(height, width), hi_h * height * depth / extent_m)
        if lo_f > hi_f:
            return None
        focal = np.full(2, rng.uniform(lo_f, hi_f))
        princpt = np.array([width / 2, height / 2]) + rng.uniform(-0.02, 0.02, size=2) * [width, height]
    else:
        focal, princpt = camera
        lo_h, hi_h = config.crowd_height_frac
        if not lo_h <= extent_m * focal[1] / depth / height <= hi_h:
            return None
    rel = joints0[:, :2] / np.maximum(joints0[:, 2:3] + depth, 0.1) * focal  # joints around the pelvis pixel
    lo_uv, hi_uv = -rel.min(axis=0) + 2.0, np.array([width, height]) - rel.max(axis=0) - 3.0
    if truncate:
        half = np.ptp(rel, axis=0) / 2
        lo_uv, hi_uv = lo_uv - half, hi_uv + half
    if np.any(lo_uv > hi_uv):
        return None
    pelvis_uv = rng.uniform(lo_uv, hi_uv)
    offset = np.r_[(pelvis_uv - princpt) / focal * depth, depth]
    joints_px = project(joints0 + offset, focal, princpt)
    inside = (joints_px >= 0).all(1) & (joints_px[:, 0] <= width - 1) & (joints_px[:, 1] <= height - 1)
    if not np.all(joints0[:, 2] + depth > 0.5):
        return None
    if truncate:
        ok = (not inside.all()) and inside.sum() >= config.min_labelled_keypoints
    else:
        ok = bool(inside.all())
    return (offset, focal, princpt) if ok else None


def sample_person(rng: np.random.Generator, body: BodyModel, pose_bank: np.ndarray | None,
                  config: SyntheticConfig, sample_id: str = "", camera: tuple[np.ndarray, np.ndarray] | None = None,
                  truncate: bool = False) -> SyntheticPerson:
    """Draw pose, shape, camera and appearance of one person (see the module docstring).

    ``camera`` and ``truncate``: see :func:`_place` (realistic ITW split; defaults: the person alone, whole).

    Raises:
        RuntimeError: no camera draw within ``config.max_tries`` keeps the body joints inside the image
            at the requested person height (names ``sample_id``; widen the ranges).
    """
    pose, mirrored = sample_pose(rng, pose_bank, config)
    betas = rng.normal(scale=config.betas_std, size=body.num_betas)
    pose_t = torch.as_tensor(pose.reshape(1, 72), dtype=torch.float32)
    with torch.no_grad():
        out = body(pose_t[:, :3], pose_t[:, 3:], torch.as_tensor(betas, dtype=torch.float32)[None])
    verts = out.vertices_m[0].double().numpy()
    joints = out.joints_smpl24_m[0, :BODY_JOINTS].double().numpy()
    pelvis = joints[0].copy()
    verts0, joints0 = verts - pelvis, joints - pelvis
    for _ in range(config.max_tries):
        placed = _place(rng, verts0, joints0, config, camera, truncate)
        if placed is not None:
            offset, focal, princpt = placed
            smpl = SmplParams(pose, betas, offset - pelvis, "neutral")
            return SyntheticPerson(smpl, verts0 + offset, focal, princpt, random_color(rng),
                                   float(rng.uniform(*config.light_range)), mirrored)
    raise RuntimeError(f"synthetic sample {sample_id}: no camera within {config.max_tries} draws keeps the "
                       "body inside the image; widen focal_range_frac / distance_range_m / person_height_frac")


# ------------------------------------------------------------------------------------------ background
class Backgrounds:
    """Random background images (H, W, 3) uint8 RGB: crops of the photos in ``photos_dir`` or, with
    ``photos_dir=None``, noisy colour gradients.

    Raises:
        FileNotFoundError: ``photos_dir`` is given but missing or holds no jpg/png (names the folder and
            the config key ``photos_dir`` / flag ``--photos``).
    """

    def __init__(self, photos_dir: str | Path | None, color_noise_std: float = 6.0) -> None:
        self.color_noise_std = float(color_noise_std)
        self.photos: list[np.ndarray] = []
        self.names: list[str] = []
        if photos_dir is None:
            return
        folder = Path(photos_dir)
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
            if folder.is_dir() else []
        if not files:
            raise FileNotFoundError(f"background photos: no jpg/png in {folder.absolute()} (config key "
                                    "photos_dir, flag --photos; see ../shared/data/README.md, or pass None)")
        for path in files:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"background photos: cannot decode {path}")
            self.photos.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            self.names.append(path.name)

    def sample(self, rng: np.random.Generator, image_hw: tuple[int, int]) -> np.ndarray:
        """A random background of size ``image_hw`` (see the class docstring)."""
        height, width = image_hw
        if self.photos:
            photo = self.photos[rng.integers(len(self.photos))]
            ph, pw = photo.shape[:2]
            full = min(pw / width, ph / height)  # largest crop of the image's aspect ratio
            scale = full * rng.uniform(0.3, 1.0)
            cw, ch = max(int(width * scale), 1), max(int(height * scale), 1)
            x0, y0 = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
            img = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_AREA)
            if rng.random() < 0.5:
                img = img[:, ::-1]
        else:
            ramp = np.linspace(0.0, 1.0, height)[:, None, None]
            top, bottom = rng.uniform(30, 220, size=3), rng.uniform(30, 220, size=3)
            img = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3))
        gain = rng.normal(1.0, 0.1, size=3)
        noise = rng.normal(scale=self.color_noise_std, size=(height, width, 3))
        return np.clip(np.asarray(img, np.float64) * gain + noise, 0, 255).astype(np.uint8)


def render_sample(person: SyntheticPerson, faces: np.ndarray, background: np.ndarray,
                  renderer: MeshRenderer) -> tuple[np.ndarray, np.ndarray]:
    """Composite the shaded person over ``background`` (H, W, 3) uint8; returns (rgb, mask (H, W) bool)."""
    rgb, _, mask = renderer.render(person.vertices_cam_m, faces, person.focal_px, person.princpt_px,
                                   background.shape[:2], person.color, person.light_intensity)
    out = background.copy()
    out[mask] = rgb[mask]
    return out, mask


# ------------------------------------------------------------------------------- realistic ITW split
def sample_scene(rng: np.random.Generator, body: BodyModel, pose_bank: np.ndarray | None, config: SyntheticConfig,
                 image_key: str = "") -> list[SyntheticPerson]:
    """The people of one realistic ITW image: ``1 + k`` with probability ``people_per_image[k]``, each cut by
    the border with probability ``truncation_prob``; the first draws the camera, the others share it at
    their own depth, at least ``min_person_gap_m`` from every other body centre (mean vertex; they may overlap in the
    image). A later person that cannot be placed within ``max_tries`` is left out (the image has fewer people).

    Raises:
        RuntimeError: the first person cannot be placed (from :func:`sample_person`).
    """
    count = 1 + int(rng.choice(len(config.people_per_image), p=np.asarray(config.people_per_image)))
    people = [sample_person(rng, body, pose_bank, config, f"{image_key}/0",
                            truncate=bool(rng.random() < config.truncation_prob))]
    camera = (people[0].focal_px, people[0].princpt_px)
    for k in range(1, count):
        truncate = bool(rng.random() < config.truncation_prob)
        for _ in range(10):
            try:
                person = sample_person(rng, body, pose_bank, config, f"{image_key}/{k}", camera, truncate)
            except RuntimeError:
                break
            gaps = [np.linalg.norm(_body_centre(person) - _body_centre(other)) for other in people]
            if min(gaps) >= config.min_person_gap_m:
                people.append(person)
                break
    return people


def _body_centre(person: SyntheticPerson) -> np.ndarray:
    """(3,) a body-centre point in the camera frame (mean vertex), metres: enough to keep people apart."""
    return person.vertices_cam_m.mean(0)


def render_scene(people: list[SyntheticPerson], faces: np.ndarray, background: np.ndarray,
                 renderer: MeshRenderer) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Render every person and composite by depth.

    Returns:
        ``rgb`` (H, W, 3) uint8; ``scene_depth_m`` (H, W) nearest surface, ``inf`` on the background;
        ``owner`` (H, W) int index of the person seen at each pixel, -1 on the background; ``silhouettes``
        list of (H, W) bool full (unoccluded) masks, one per person.
    """
    hw = background.shape[:2]
    rgb = background.copy()
    scene = np.full(hw, np.inf)
    owner = np.full(hw, -1, dtype=np.int64)
    silhouettes = []
    for k, person in enumerate(people):
        shaded, depth, mask = renderer.render(person.vertices_cam_m, faces, person.focal_px, person.princpt_px,
                                              hw, person.color, person.light_intensity)
        nearer = mask & (depth < scene)
        rgb[nearer], scene[nearer], owner[nearer] = shaded[nearer], depth[nearer], k
        silhouettes.append(mask)
    return rgb, scene, owner, silhouettes
