"""Synthetic hands of a MANO-format model (the free stand-in by default), and their rendered crops.

Two uses, one sampler (:func:`draw_hands`), the recipe of the synthetic hand benchmark
(:mod:`annot.benchmarks.hands`): poses from the model's own pose PCA (``np_hand_components``; the first
``num_comps`` directions with N(0, ``pose_std``) coefficients), uniformly random global rotations, the wrist
0.5-1.5 m in front of a pinhole camera (focal ``focal_px``, principal point (320, 240)), the 21 ``hand21``
keypoints projected with Gaussian pixel noise.

- the **free auxiliary 3D hand set** of Algorithm 1 (issue #16: "hand poses of the free model rendered like the
  synthetic benchmark"): :func:`make_hand_set` with exact 3D joints and 2D keypoints, cached on disk;
- the benchmark's **synthetic target split**: the same hands the per-sample fit is scored on, rendered the same way.

Crops (:func:`render_crops`): a square box around the (noisy) 2D keypoints, enlarged ``crop_scale`` times, is
rendered directly at ``crop_size`` pixels with the crop's intrinsics (focal ``f * s``, principal point
``(c - box origin) * s``, ``s = crop_size / box side``), i.e. exactly the affine crop of the full image, by the
project's renderer (:class:`annot.render.MeshRenderer`: one random skin tone, random light, flat grey background).

Frames: the annotator explains a crop with a *virtual crop camera* whose optical axis is the ray through the crop
centre (:mod:`annot.hands.crops`); ``ray_rotmat`` (N, 3, 3) takes that frame to the image camera
(``X_cam = ray_rotmat @ X_virtual``), and ``joints_rel_m`` are the wrist-relative 21 keypoints in the virtual frame.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from annot.body_models.wholebody import Hand21
from annot.geometry.cameras import perspective_project
from annot.geometry.rotations import rotmat_to_rotvec, rotvec_to_rotmat
from annot.hands.crops import HandCrops, crop_boxes, virtual_ray_rotmat

log = logging.getLogger(__name__)
PRINCPT_PX = (320.0, 240.0)
#: RGB skin tones in [0, 1] (light to dark) the renders draw from.
_SKIN = np.array([[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.78, 0.57, 0.44], [0.55, 0.38, 0.28],
                  [0.36, 0.24, 0.17]])


def hand_pose_components(layer) -> Tensor:
    """(C, 45) the MANO model's pose PCA directions (``np_hand_components``, C = what the file holds: 45 for the
    official MANO, 6 for the free stand-in); the identity (45, 45) for a model without them."""
    comps = getattr(layer, "np_hand_components", None)
    if comps is None:
        return torch.eye(45)
    return torch.as_tensor(np.asarray(comps), dtype=torch.float32).reshape(-1, 45)


def random_rotations(n: int, g: torch.Generator) -> Tensor:
    """(n, 3, 3) uniformly random rotations (normalised Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1).reshape(n, 3, 3)


@dataclass(frozen=True)
class SyntheticHands:
    """N posed hands (one side) in a pinhole camera (OpenCV axes, metres, pixels).

    ``global_rotmat`` (N, 3, 3) MANO global rotation; ``hand_pose`` (N, 45) finger axis-angles relative to
    ``hands_mean``; ``betas`` (N, 10); ``wrist_cam_m`` (N, 3); ``joints_cam_m`` (N, 21, 3) exact ``hand21``
    keypoints; ``vertices_cam_m`` (N, V, 3); ``kp2d_px`` (N, 21, 2) projections + noise; ``focal_px`` /
    ``princpt_px`` (N, 2); ``anchor_m`` (N, 3) the wrist + N(0, ``anchor_noise_m``) (the body's wrist);
    ``init_rotmat`` (N, 3, 3) the true rotation turned by ``init_error_deg`` (the body's forearm).
    """

    global_rotmat: Tensor
    hand_pose: Tensor
    betas: Tensor
    wrist_cam_m: Tensor
    joints_cam_m: Tensor
    vertices_cam_m: Tensor
    kp2d_px: Tensor
    focal_px: Tensor
    princpt_px: Tensor
    anchor_m: Tensor
    init_rotmat: Tensor


def draw_hands(layer, num_hands: int, seed: int, num_comps: int = 6, pose_std: float = 1.0,
               noise_px: float = 1.0, anchor_noise_m: float = 0.02, init_error_deg: float = 30.0,
               focal_px: float = 1000.0, betas_std: float = 0.0) -> SyntheticHands:
    """Draw ``num_hands`` hands from ``seed`` (module docstring); deterministic (a CPU generator of its own).

    The draw order (pose, rotation, wrist, keypoint noise, start-rotation axis, anchor noise, then betas) is the
    synthetic hand benchmark's, so its hands do not change with ``betas_std`` = 0.
    """
    g = torch.Generator().manual_seed(int(seed))
    n = int(num_hands)
    comps = hand_pose_components(layer)
    k = min(int(num_comps), comps.shape[0])
    pose = (pose_std * torch.randn(n, int(num_comps), generator=g))[:, :k] @ comps[:k]
    rot = random_rotations(n, g)
    lo, hi = torch.tensor([-0.2, -0.2, 0.5]), torch.tensor([0.2, 0.2, 1.5])
    wrist = lo + (hi - lo) * torch.rand(n, 3, generator=g)
    noise = noise_px * torch.randn(n, 21, 2, generator=g)
    axis = torch.randn(n, 3, generator=g)
    anchor = wrist + anchor_noise_m * torch.randn(n, 3, generator=g)
    betas = betas_std * torch.randn(n, layer.num_betas, generator=g) if betas_std > 0 else torch.zeros(
        n, layer.num_betas)
    keypoints = Hand21(layer)
    with torch.no_grad():
        out = layer(global_orient=rotmat_to_rotvec(rot), hand_pose=pose, betas=betas)
        kps = keypoints(out.joints, out.vertices)
        shift = wrist - kps[:, 0]
        joints = kps + shift[:, None]
        verts = out.vertices + shift[:, None]
    focal = torch.full((n, 2), float(focal_px))
    princpt = torch.tensor([PRINCPT_PX]).repeat(n, 1)
    kp2d = perspective_project(joints, focal, princpt) + noise
    turn = rotvec_to_rotmat(axis / axis.norm(dim=1, keepdim=True) * math.radians(init_error_deg))
    return SyntheticHands(rot, pose, betas, wrist, joints, verts, kp2d, focal, princpt, anchor, turn @ rot)


def render_crops(hands: SyntheticHands, faces: np.ndarray, crop_size: int = 128, crop_scale: float = 1.5,
                 seed: int = 0, sample_prefix: str = "synth") -> HandCrops:
    """Render the crops of ``hands`` (module docstring): boxes around ``kp2d_px``, right hands (no flip).

    Returns:
        :class:`annot.hands.crops.HandCrops` with ``joints_rel_m`` (exact, wrist-relative, virtual crop frame).
    """
    from annot.render import MeshRenderer

    n = hands.kp2d_px.shape[0]
    origin, side = crop_boxes(hands.kp2d_px, torch.ones(n, 21, dtype=torch.bool), crop_scale)
    scale = crop_size / side  # (N,) crop pixels per image pixel
    focal_c = hands.focal_px * scale[:, None]
    princpt_c = (hands.princpt_px - origin) * scale[:, None]
    rng = np.random.default_rng(int(seed))
    imgs = np.zeros((n, crop_size, crop_size, 3), dtype=np.uint8)
    verts = hands.vertices_cam_m.numpy()
    with MeshRenderer(znear_m=0.01) as renderer:
        for i in range(n):
            color = np.clip(_SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.1), 0, 1)
            rgb, _, mask = renderer.render(verts[i], faces, focal_c[i].numpy(), princpt_c[i].numpy(),
                                           (crop_size, crop_size), color, light_intensity=float(rng.uniform(0.6, 1.4)))
            bg = rng.uniform(0, 255, size=3) * 0.5 + 40
            imgs[i] = np.where(mask[..., None], rgb, bg.astype(np.uint8))
    ray = virtual_ray_rotmat(origin + side[:, None] / 2, hands.focal_px, hands.princpt_px)
    rel = hands.joints_cam_m - hands.joints_cam_m[:, :1]
    joints_virtual = rel @ ray  # R^T x for row vectors: x @ R
    kp_crop = (hands.kp2d_px - origin[:, None]) * scale[:, None, None]
    return HandCrops(img=torch.from_numpy(imgs), kp2d_px=kp_crop, kp2d_mask=torch.ones(n, 21, dtype=torch.bool),
                     box_origin_px=origin, box_side_px=side, ray_rotmat=ray, flipped=torch.zeros(n, dtype=torch.bool),
                     joints_rel_m=joints_virtual, sample_ids=[f"{sample_prefix}{i:05d}" for i in range(n)])


@dataclass
class AuxHandSetConfig:
    """The auxiliary 3D hand set. By default the free one: ``num_hands`` hands from ``seed`` (held out from the
    benchmark's seeds), poses ``pose_std`` x the first ``num_comps`` PCA directions, shapes N(0, ``betas_std``), exact
    2D keypoints (the crop size and box scale are the annotator's, :func:`make_hand_set`). With ``dataset`` a
    registered hand dataset (``freihand``, ``interhand26m``) read from ``root``: its first ``num_hands`` usable hands
    (:func:`annot.hands.aux_real.hand_set_from_dataset`; 0 = all), as the paper trains on."""

    num_hands: int = 512
    seed: int = 1000
    num_comps: int = 6
    pose_std: float = 1.0
    betas_std: float = 0.5
    dataset: str = ""
    root: str = ""


def make_hand_set(layer, cfg: AuxHandSetConfig, crop_size: int = 128, crop_scale: float = 1.5,
                  mano_path: str | Path | None = None, cache_dir: str | Path | None = None) -> HandCrops:
    """The auxiliary hand set of ``cfg`` (module docstring) as ``crop_size`` crops, read from ``cache_dir`` when a file
    of the same settings and MANO file is there, else rendered (about 0.1 s a hand on one CPU core) and written
    there."""
    from annot.annotator.stages import config_hash, file_checksum

    key = config_hash({"cfg": asdict(cfg), "crop": [crop_size, crop_scale],
                       "mano": file_checksum(mano_path) if mano_path else None})
    path = Path(cache_dir) / f"hand_aux_{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        log.info("auxiliary hand set: %s (cached)", path)
        return HandCrops.load(path)
    if cfg.dataset:
        from annot.data.registry import build_dataset
        from annot.hands.aux_real import hand_set_from_dataset

        dataset = build_dataset(cfg.dataset, root=cfg.root)
        log.info("auxiliary hand set: %s", dataset.summary())
        crops = hand_set_from_dataset(dataset, crop_size, crop_scale, cfg.num_hands)
        if path is not None:
            crops.save(path)
        return crops
    hands = draw_hands(layer, cfg.num_hands, cfg.seed, cfg.num_comps, cfg.pose_std, noise_px=0.0,
                       betas_std=cfg.betas_std)
    crops = render_crops(hands, layer.faces.astype(np.int64), crop_size, crop_scale, seed=cfg.seed,
                         sample_prefix="aux")
    if path is not None:
        crops.save(path)
        log.info("auxiliary hand set: %d hands rendered -> %s", cfg.num_hands, path)
    return crops


__all__ = ["AuxHandSetConfig", "SyntheticHands", "draw_hands", "hand_pose_components", "make_hand_set",
           "random_rotations", "render_crops"]
