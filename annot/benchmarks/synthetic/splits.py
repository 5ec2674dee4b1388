"""Writing the splits in the standard layouts (3DPW for ``mocap`` / ``test``, COCO for ``itw``) with their hidden
GT, and the manifest: :func:`make_split`, :func:`make_synthetic`.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annot.benchmarks.synthetic.config import (
    CLEAN_KP2D_FILE,
    COCO_IMG_DIR,
    COCO_PERSON_KEYPOINTS,
    COCO_WHOLEBODY,
    ITW_EXTRAS_FILE,
    MANIFEST,
    POSE_BANK,
    SCORING_FILE,
    SPLITS,
    SyntheticConfig,
    SyntheticPerson,
)
from annot.benchmarks.synthetic.poses import PoseBank, load_pose_bank
from annot.benchmarks.synthetic.scene import Backgrounds, render_sample, render_scene, sample_person, sample_scene
from annot.body_models import BodyModel
from annot.data.fixtures.coco import keypoint_triplets, neuralannot_entry
from annot.data.fixtures.common import joints_in, project
from annot.data.fixtures.pw3d import _annotation as pw3d_annotation
from annot.render import MeshRenderer


# --------------------------------------------------------------------------------------------- writing
def _floats(values: Any) -> list:
    return np.asarray(values, dtype=np.float64).round(10).tolist()


def _write_rgb(path: Path, rgb: np.ndarray, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"could not write synthetic image {path}")


def _write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise OSError(f"could not write synthetic mask {path}")


def _mask_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _coco_entries(body: BodyModel, aid: int, image_id: int, person: SyntheticPerson, mask: np.ndarray,
                  image_hw: tuple[int, int]) -> tuple[dict, dict]:
    """(person_keypoints annotation, wholebody annotation) of one rendered person: keypoints ``v = 2``
    inside the image (no occlusion flags), box and area of the silhouette, RLE segmentation."""
    joints, joint_mask = joints_in(body, person.smpl, "coco17_feet")
    trip = keypoint_triplets(project(joints, person.focal_px, person.princpt_px), joint_mask, image_hw)
    ann = {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0,
           "num_keypoints": int((trip[:17, 2] > 0).sum()), "bbox": _mask_box(mask),
           "area": float(mask.sum()), "segmentation": _rle(mask), "keypoints": _floats(trip[:17].reshape(-1))}
    whole = dict(ann, foot_kpts=_floats(trip[17:].reshape(-1)), foot_valid=True,
                 face_kpts=[0.0] * 204, lefthand_kpts=[0.0] * 63, righthand_kpts=[0.0] * 63,
                 face_box=[0.0] * 4, lefthand_box=[0.0] * 4, righthand_box=[0.0] * 4,
                 face_valid=False, lefthand_valid=False, righthand_valid=False)
    return ann, whole


def _realistic_entries(body: BodyModel, aid: int, image_id: int, person: SyntheticPerson, visible: np.ndarray,
                       scene_depth_m: np.ndarray, rng: np.random.Generator, config: SyntheticConfig,
                       ) -> tuple[dict, dict, dict] | None:
    """(person_keypoints annotation, wholebody annotation, clean keypoints) of one person of a realistic image,
    or None when it is too hidden to be annotated (``min_labelled_keypoints``, module docstring)."""
    from annot.benchmarks.synthetic.annotation import (
        COCO17_FEET_SIGMAS,
        annotator_noise,
        drop_unlabelled,
        inside_image,
        keypoint_visibility,
    )

    joints, joint_mask = joints_in(body, person.smpl, "coco17_feet")
    kp_px = project(joints, person.focal_px, person.princpt_px)
    seen = keypoint_visibility(kp_px, joints[:, 2], scene_depth_m, config.occlusion_margin_m) * joint_mask
    vis = drop_unlabelled(rng, seen, config.occluded_unlabelled_prob)
    need = config.min_labelled_keypoints
    if (vis[:17] > 0).sum() < need or (vis[:17] == 2).sum() < need or not visible.any():
        return None
    area = float(visible.sum())
    noisy = annotator_noise(rng, kp_px, vis, COCO17_FEET_SIGMAS, area, config.image_hw,
                            config.occluded_noise_factor)
    trip = np.c_[noisy, vis.astype(np.float64)]
    ann = {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0,
           "num_keypoints": int((vis[:17] > 0).sum()), "bbox": _mask_box(visible), "area": area,
           "segmentation": _rle(visible), "keypoints": _floats(trip[:17].reshape(-1))}
    whole = dict(ann, foot_kpts=_floats(trip[17:].reshape(-1)), foot_valid=bool((vis[17:] > 0).any()),
                 face_kpts=[0.0] * 204, lefthand_kpts=[0.0] * 63, righthand_kpts=[0.0] * 63,
                 face_box=[0.0] * 4, lefthand_box=[0.0] * 4, righthand_box=[0.0] * 4,
                 face_valid=False, lefthand_valid=False, righthand_valid=False)
    clean = {"kp2d_px": _floats(kp_px[:17]), "vis": seen[:17].tolist(),
             "truncated": bool(not inside_image(kp_px[:17], config.image_hw).all())}
    return ann, whole, clean


def _write_itw_realistic(root: Path, config: SyntheticConfig, body: BodyModel, renderer: MeshRenderer,
                         poses: np.ndarray | None, backgrounds: Backgrounds,
                         progress: Callable[[int], None] | None) -> tuple[list, list, list, dict, dict]:
    """Render images of the realistic ITW split until ``sizes["itw"]`` people are annotated.

    Returns ``(images, annotations, wholebody annotations, scoring GT, extras)`` where ``extras`` holds the
    clean keypoints per annotation id and the count of rendered people left unannotated (too hidden, or
    beyond the split size in its last image).
    """
    target = int(config.sizes.get("itw", 0))
    height, width = config.image_hw
    images, anns, wholes, scoring, clean = [], [], [], {}, {}
    unannotated = 0
    index = 0
    while len(anns) < target:
        if index >= 20 * max(target, 1):
            raise RuntimeError(f"synthetic itw: {index} images gave only {len(anns)} of {target} annotatable people; "
                               "lower min_labelled_keypoints or truncation_prob")
        rng = _sample_rng(config, "itw", index)
        image_id = index + 1
        people = sample_scene(rng, body, poses, config, f"itw/{index}")
        rgb, scene, owner, silhouettes = render_scene(people, body.faces, backgrounds.sample(rng, config.image_hw),
                                                      renderer)
        file_name = f"{image_id:012d}.jpg"
        kept = 0
        for k, person in enumerate(people):
            aid = 100 * image_id + k
            made = _realistic_entries(body, aid, image_id, person, owner == k, scene, rng, config) \
                if len(anns) < target else None
            if made is None:
                unannotated += 1
                continue
            ann, whole, clean[str(aid)] = made
            anns.append(ann)
            wholes.append(whole)
            scoring[str(aid)] = neuralannot_entry(person.smpl, person.focal_px, person.princpt_px)
            if config.save_masks:
                _write_mask(root / "scoring" / "masks" / f"{aid}.png", silhouettes[k])
            kept += 1
            if progress is not None:
                progress(1)
        if kept:
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
            _write_rgb(root / COCO_IMG_DIR / file_name, rgb, config.jpeg_quality)
        index += 1
    return images, anns, wholes, scoring, {"clean_kp2d": clean, "unannotated_people": unannotated,
                                           "images_drawn": index}


def _sample_rng(config: SyntheticConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, list(SPLITS).index(split), index])


def make_split(split: str, out_dir: str | Path, config: SyntheticConfig, body: BodyModel,
               renderer: MeshRenderer, pose_bank: PoseBank | None, backgrounds: Backgrounds,
               progress: Callable[[int], None] | None = None) -> Path:
    """Render ``config.sizes[split]`` images of ``split`` under ``out_dir/<split>`` and write its layout.

    Args:
        split: ``"mocap"``, ``"itw"`` or ``"test"`` (:data:`SPLITS`).
        out_dir: output root; the split's loader root is ``out_dir/<split>``.
        config: generator values; body: the free :class:`BodyModel`; renderer: a :class:`MeshRenderer`;
        pose_bank: from :func:`load_pose_bank` (this split's clips are used) or None (random poses);
        backgrounds: a :class:`Backgrounds`; progress: called with 1 after every sample (e.g. tqdm.update).

    Returns:
        the split root. For ``mocap`` / ``test``: ``build_dataset("3dpw", root=<it>, split="train" /
        "test")``; for ``itw``: ``build_dataset("coco", root=<it>, ann_file=COCO_PERSON_KEYPOINTS,
        img_dir=COCO_IMG_DIR)`` (scoring: ``smpl_file=SCORING_FILE``).

    Raises:
        ValueError: unknown split. RuntimeError: from :func:`sample_person` or the renderer.
    """
    if split not in SPLITS:
        raise ValueError(f"make_split: unknown split {split!r}; known: {list(SPLITS)}")
    layout, name = SPLITS[split]
    root = Path(out_dir) / split
    root.mkdir(parents=True, exist_ok=True)
    height, width = config.image_hw
    images, anns, wholes, scoring = [], [], [], {}
    poses = pose_bank.for_split(split) if pose_bank is not None else None
    realistic = layout == "coco" and not config.clean_2d
    if realistic:
        images, anns, wholes, scoring, extras = _write_itw_realistic(root, config, body, renderer, poses,
                                                                     backgrounds, progress)
        (root / CLEAN_KP2D_FILE).parent.mkdir(parents=True, exist_ok=True)
        (root / CLEAN_KP2D_FILE).write_text(json.dumps(extras.pop("clean_kp2d")))
        (root / ITW_EXTRAS_FILE).write_text(json.dumps(extras))
    for index in range(0 if realistic else int(config.sizes.get(split, 0))):
        rng = _sample_rng(config, split, index)
        image_id, aid = index + 1, 100 * (index + 1)
        person = sample_person(rng, body, poses, config, f"{split}/{index}")
        rgb, mask = render_sample(person, body.faces, backgrounds.sample(rng, config.image_hw), renderer)
        cam = {"focal": _floats(person.focal_px), "princpt": _floats(person.princpt_px)}
        if layout == "3dpw":
            sequence, file_name = f"synthetic_{split}", f"image_{index:05d}.jpg"
            images.append({"id": image_id, "file_name": file_name, "sequence": sequence, "frame_idx": index,
                           "width": width, "height": height, "cam_param": cam})
            ann, _ = pw3d_annotation(body, aid, image_id, person.smpl, cam)
            anns.append(dict(ann, person_id=0))
            _write_rgb(root / "imageFiles" / sequence / file_name, rgb, config.jpeg_quality)
            mask_path = root / "masks" / sequence / file_name.replace(".jpg", ".png")
        else:
            file_name = f"{image_id:012d}.jpg"
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
            ann, whole = _coco_entries(body, aid, image_id, person, mask, config.image_hw)
            anns.append(ann)
            wholes.append(whole)
            scoring[str(aid)] = neuralannot_entry(person.smpl, person.focal_px, person.princpt_px)
            _write_rgb(root / COCO_IMG_DIR / file_name, rgb, config.jpeg_quality)
            mask_path = root / "scoring" / "masks" / file_name.replace(".jpg", ".png")
        if config.save_masks:
            _write_mask(mask_path, mask)
        if progress is not None:
            progress(1)
    if layout == "3dpw":
        (root / f"3DPW_{name}.json").write_text(json.dumps({"images": images, "annotations": anns}))
    else:
        categories = [{"id": 1, "name": "person", "supercategory": "person"}]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        for rel, entries in ((COCO_PERSON_KEYPOINTS, anns), (COCO_WHOLEBODY, wholes)):
            (root / rel).write_text(json.dumps({"images": images, "annotations": entries,
                                                "categories": categories}))
        (root / SCORING_FILE).parent.mkdir(parents=True, exist_ok=True)
        (root / SCORING_FILE).write_text(json.dumps(scoring))
    return root


def make_synthetic(config: SyntheticConfig, out_dir: str | Path, body: BodyModel | None = None,
                   renderer: MeshRenderer | None = None,
                   progress: Callable[[str, int], Callable[[int], None] | None] | None = None) -> dict[str, Path]:
    """Generate every split with a non-zero size and ``out_dir/synthetic_manifest.json`` (config, pose
    source, background photos, split roots and loader arguments).

    Args:
        config: generator values; out_dir: output root (created).
        body: the free body model (default ``BodyModel("free")``); renderer: default a new MeshRenderer.
        progress: ``progress(split, total)`` returning a per-sample callback (e.g. a tqdm's ``update``).

    Returns:
        ``{split: split root}``.

    Raises:
        FileNotFoundError / ValueError: from :func:`load_pose_bank`, :class:`Backgrounds`, the body model.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body = body if body is not None else BodyModel.from_config("free")
    pose_bank = load_pose_bank(config, body, out / POSE_BANK)
    backgrounds = Backgrounds(config.photos_dir, config.color_noise_std)
    own_renderer = renderer is None
    renderer = renderer or MeshRenderer()
    roots: dict[str, Path] = {}
    try:
        for split in SPLITS:
            total = int(config.sizes.get(split, 0))
            if total:
                callback = progress(split, total) if progress is not None else None
                roots[split] = make_split(split, out, config, body, renderer, pose_bank, backgrounds, callback)
    finally:
        if own_renderer:
            renderer.close()
    manifest = {"config": asdict(config), "background_photos": backgrounds.names,
                "pose_source": pose_bank.source if pose_bank is not None else "random (pose_source=random)",
                "pose_bank_rejected": {"count": len(pose_bank.rejected) if pose_bank else 0,
                                       "frames": pose_bank.rejected if pose_bank else {}},
                "itw_annotations": _itw_statistics(roots.get("itw"), config),
                "splits": {s: str(p) for s, p in roots.items()},
                "loaders": {"mocap": {"dataset": "3dpw", "split": "train"},
                            "test": {"dataset": "3dpw", "split": "test"},
                            "itw": {"dataset": "coco", "ann_file": COCO_PERSON_KEYPOINTS, "img_dir": COCO_IMG_DIR,
                                    "scoring_smpl_file": SCORING_FILE}}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, default=list))
    return roots


#: measured on the 12 people with keypoints of ``../shared/data/coco_samples/test_coco.json`` (COCO val2017):
#: fractions of v = 0 / 1 / 2 keypoints, people with an unlabelled (cut or unseen) keypoint, people per image.
COCO_SAMPLE_STATS = {"people": 12, "v0": 0.113, "v1": 0.083, "v2": 0.804, "with_unlabelled": 0.833,
                     "truncated": None, "people_per_image": 3.0}


def _itw_statistics(root: Path | None, config: SyntheticConfig) -> dict[str, Any] | None:
    """Measured statistics of the ITW split's annotations (:func:`coco_annotation_stats`) next to the COCO
    sample's (:data:`COCO_SAMPLE_STATS`), and the generator's counts (realistic split only)."""
    from annot.benchmarks.synthetic.annotation import coco_annotation_stats

    if root is None:
        return None
    coco = json.loads((root / COCO_PERSON_KEYPOINTS).read_text())
    clean = json.loads((root / CLEAN_KP2D_FILE).read_text()) if (root / CLEAN_KP2D_FILE).is_file() else {}
    anns = [dict(a, truncated=clean[str(a["id"])]["truncated"]) if str(a["id"]) in clean else a
            for a in coco["annotations"]]
    stats = {"mode": "clean_2d" if config.clean_2d else "realistic",
             "measured": coco_annotation_stats(anns, len(coco["images"])), "coco_sample": COCO_SAMPLE_STATS}
    if (root / ITW_EXTRAS_FILE).is_file():
        stats.update(json.loads((root / ITW_EXTRAS_FILE).read_text()))
    return stats
