"""Pre-cropped person cache: crop every person once, so training never decodes a full frame.

Why: decoding a full-frame JPEG costs ~1.4 ms for a COCO 640x480 image and 6-8 ms for a 1080p frame
(one core; ``shared/docs/performance-anchors.md`` §2c: 6.0 ms at 1080p), plus a full-frame BGR->RGB
pass, while one H100 consumes 4-7k crops/s (§2a). Our network input is only 256x192, so almost all of
the decoded pixels are thrown away (``BENCHMARKS.md``: 2-3x more samples/s per worker on COCO-size
images, ~11-13x on 1080p frames). The cache stores,
per record, a *patch* around the processed box (``record.bbox_xywh_px``) at the crop's own pixel
density, as uint8 rows of memory-mappable ``.npy`` shards. At training time a sample reads one patch
(a few hundred KB of page cache, no decode) and warps it with the augmentation crop. Same idea as the
anchors' "pre-crop person boxes" advice; unlike a JPEG patch cache it has no decode cost at all, at the
price of disk space (``patch_h * patch_w * 3`` bytes per record: 332 KB at 384x288).

Geometry (all pixels; see :mod:`annot.data.crop` for the mks0601 crop affine)
--------------------------------------------------------------------------
The raw path crops the decoded image ``I`` with ``img_to_crop`` (``crop_image``: box, flip, rotation,
scale and shift of :mod:`annot.data.augment`). The cache holds ``patch = warp(I, img_to_patch)`` where
``img_to_patch`` is the mks0601 affine of the *unaugmented* box enlarged by ``margin`` about its centre,
no flip, no rotation. The cached path computes the very same ``img_to_crop`` (so every target, which
depends only on the record and that affine, is bit-identical to the raw path) and samples the patch
with ``patch_to_crop = img_to_crop o patch_to_img``. The image differs from the raw crop only by the
second bilinear interpolation, and is zero (``warpAffine``'s constant border) where the augmented crop
reaches beyond the patch.

The default patch size is ``input_hw + 2 * round(input_hw * (margin - 1) / 2)`` (384x288 for 256x192 at
margin 1.5) and the patch covers ``box * patch_hw / input_hw``, so one patch pixel is exactly one crop
pixel of the unaugmented crop and ``patch_to_crop`` maps pixel centres to pixel centres (an integer
translation, or with a flip ``x -> (patch_w + W) / 2 - x``, integer because ``patch_w - W`` is even).
Unaugmented and flip-only samples therefore equal the raw path up to OpenCV's 1/32 px fixed-point
rounding (measured <= 1-2 grey levels on the COCO samples). Scale / rotation augmentation resamples the
patch; neither path low-pass filters (``warpAffine`` bilinear), so real textures alias differently:
measured mean |difference| 0.7-5 grey levels per pixel on the COCO samples (99th percentile ~40 on
fine texture), about 3x less with a 2x oversampled ``patch_hw`` (768x576, 4x the disk). Zooming in
(``scale < 1``) upsamples the patch where the raw path could use the full-resolution image.

Coverage: margin 1.5 contains the box under scale augmentation up to 1.5 without rotation; the corners
of a crop rotated by large angles leave it and are then black. With Pose2Pose's default augmentation
(scale 1 +- 0.25, rotation +-60 deg with probability 0.6) a Monte-Carlo count gives, for margin
1.5 / 1.75 / 2.0 / 2.1: 22 / 9 / 3 / 0 % of samples with some black corner, 0.7 / 0.13 / 0.006 / 0 %
of the crop area on average (99th percentile 9 / 3 / 0.3 / 0 %). Choose a larger margin when that
matters (disk grows with margin^2: 324 KB per sample at 1.5, 576 KB at 2.0). COCO train (~150k people)
takes ~48 GB at margin 1.5: keep the cache on a local NVMe; a sample then reads ~0.3 MB, so 4k
samples/s need ~1.3 GB/s when the cache does not fit in the page cache.

On-disk layout of ``out_dir``
----------------------------
``index.json``         written first: ``format_version``, ``provenance`` (dataset name, input_hw,
                       margin, record count, ``records_sha256`` of the record list), ``patch_hw``,
                       ``cover_scale_xy``, ``shard_size``, ``shards`` (file, rows), ``samples``
                       (sample_id -> shard, row, ``patch_to_img`` (2, 3) patch px -> original image px).
``shard_00000.npy``    uint8 ``(N, patch_h, patch_w, 3)`` RGB, written to a temporary file and renamed
                       (``os.replace``) when complete, so a present shard is a finished shard.
``done``               marker written last; :class:`PersonCache` refuses a folder without it.
An interrupted build (or a deleted shard) resumes: only missing shards are rebuilt. Records are grouped
by image inside shards, so an image with several people is decoded once. Two builds must not write the
same folder at the same time.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import DataLoader, Dataset

from annot.app.runtime import worker_init_fn
from annot.data.crop import compose_affine, crop_affine, flip_affine, invert_affine
from annot.data.person import PersonCropDataset, PersonRecord

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_FILE = "index.json"
DONE_FILE = "done"
SHARD_NAME = "shard_{:05d}.npy"
BUILD_HINT = "build it with tools/build_person_cache.py or annot.data.cache.build_person_cache"


# ----------------------------------------------------------------------------- geometry
def default_patch_hw(input_hw: tuple[int, int], margin: float) -> tuple[int, int]:
    """Patch ``(H, W)`` pixels: ``input + 2 * round(input * (margin - 1) / 2)`` per axis.

    The difference to ``input_hw`` is even, so the unaugmented crop is an integer translation of the
    patch (see the module docstring). Raises ValueError if ``margin < 1``.
    """
    if not margin >= 1.0:
        raise ValueError(f"person cache: margin must be >= 1 (box enlargement), got {margin}")
    height, width = (int(d) + 2 * int(round(int(d) * (margin - 1.0) / 2.0)) for d in input_hw)
    return height, width


def patch_affine(bbox_xywh_px: np.ndarray, cover_scale_xy: np.ndarray,
                 patch_hw: tuple[int, int]) -> np.ndarray:
    """``img_to_patch`` (2, 3) float64: original image px -> patch px.

    The patch is the mks0601 crop (``crop_affine``, no flip, no rotation) of the box
    ``bbox_xywh_px`` (x, y, w, h) enlarged about its centre by ``cover_scale_xy`` (2,), at ``patch_hw``.
    """
    x, y, w, h = np.asarray(bbox_xywh_px, dtype=np.float64).reshape(4)
    size = np.array([w, h]) * np.asarray(cover_scale_xy, dtype=np.float64)
    return crop_affine((x + w / 2.0, y + h / 2.0), size, (patch_hw[1], patch_hw[0]))


def img_to_crop_affine(img_w: int, bbox_xywh_px, out_hw: tuple[int, int], flip: bool = False,
                       rot_deg: float = 0.0) -> np.ndarray:
    """The ``img_to_crop`` (2, 3) affine that :func:`annot.data.crop.crop_image` returns for an image of
    width ``img_w`` px, computed with the same operations (bit-identical), without touching pixels."""
    x, y, w, h = np.asarray(bbox_xywh_px, dtype=np.float64).reshape(4)
    center = np.array([x + w / 2.0, y + h / 2.0])
    if flip:
        center[0] = img_w - center[0] - 1.0
    trans = crop_affine(center, (w, h), (int(out_hw[1]), int(out_hw[0])), rot_deg=rot_deg)
    if flip:
        trans = compose_affine(trans, flip_affine(img_w))
    return trans


def crop_from_patch(patch: np.ndarray, patch_to_img: np.ndarray, img_w: int, bbox_xywh_px,
                    out_hw: tuple[int, int], flip: bool = False,
                    rot_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~annot.data.crop.crop_image` of the full image, computed from a cached patch.

    Args:
        patch: (h, w, 3) uint8 patch; ``patch_to_img`` (2, 3) its patch px -> original image px affine.
        img_w: original image width in px (defines the flip); the other arguments as ``crop_image``.

    Returns:
        ``(crop (H, W, 3) uint8, img_to_crop (2, 3) float64)``; ``img_to_crop`` is bit-identical to the
        raw path's, the crop equal up to interpolation, and 0 outside the patch.
    """
    img_to_crop = img_to_crop_affine(img_w, bbox_xywh_px, out_hw, flip, rot_deg)
    patch_to_crop = compose_affine(img_to_crop, patch_to_img)
    out_wh = (int(out_hw[1]), int(out_hw[0]))
    crop = cv2.warpAffine(np.asarray(patch), patch_to_crop, out_wh, flags=cv2.INTER_LINEAR)
    return crop, img_to_crop


# ----------------------------------------------------------------------------- provenance
def records_checksum(records: Iterable[PersonRecord]) -> str:
    """sha256 (hex) of what determines a record's patch: sample id, image file name, image size and
    processed box (to 1e-3 px), in sample-id order (so a reordering of the records is not "stale")."""
    lines = []
    for rec in records:
        box = ",".join(f"{v:.3f}" for v in np.asarray(rec.bbox_xywh_px, dtype=np.float64).reshape(4))
        lines.append(f"{rec.sample_id}\t{Path(rec.image_path).name}\t{rec.img_hw[0]}x{rec.img_hw[1]}\t{box}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def _check_unique_ids(dataset: PersonCropDataset) -> None:
    seen: set[str] = set()
    for rec in dataset.records:
        if rec.sample_id in seen:
            raise ValueError(f"person cache: {dataset.name} sample_id {rec.sample_id} appears twice "
                             "in the records")
        seen.add(rec.sample_id)


def _plan(dataset: PersonCropDataset, margin: float, patch_hw: tuple[int, int] | None,
          shard_size: int) -> dict[str, Any]:
    """The full ``index.json`` content (see the module docstring); records grouped by image file."""
    base_hw = default_patch_hw(dataset.input_hw, margin)
    cover = np.array([base_hw[1] / dataset.input_hw[1], base_hw[0] / dataset.input_hw[0]])
    patch_hw = base_hw if patch_hw is None else (int(patch_hw[0]), int(patch_hw[1]))
    order = sorted(range(len(dataset.records)), key=lambda i: (str(dataset.records[i].image_path), i))
    samples, shards = {}, []
    for start in range(0, len(order), shard_size):
        rows = order[start:start + shard_size]
        shards.append({"file": SHARD_NAME.format(len(shards)), "rows": len(rows)})
        for row, idx in enumerate(rows):
            rec = dataset.records[idx]
            p2i = invert_affine(patch_affine(rec.bbox_xywh_px, cover, patch_hw))
            samples[rec.sample_id] = {"shard": len(shards) - 1, "row": row, "patch_to_img": p2i.tolist()}
    provenance = {"dataset": dataset.name, "input_hw": list(dataset.input_hw), "margin": float(margin),
                  "num_records": len(dataset.records), "records_sha256": records_checksum(dataset.records)}
    return {"format_version": FORMAT_VERSION, "provenance": provenance, "patch_hw": list(patch_hw),
            "cover_scale_xy": cover.tolist(), "shard_size": int(shard_size), "shards": shards,
            "samples": samples}


# ----------------------------------------------------------------------------- building
@dataclass
class CacheBuildReport:
    """What :func:`build_person_cache` did: shard numbers ``built`` now and ``reused`` from an earlier
    (interrupted or complete) build, ``out_dir``, ``num_samples``."""

    out_dir: Path
    num_samples: int
    built: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)


class _PatchJobs(Dataset):
    """One item per (shard, image): decode the image once, warp each of its records to a patch."""

    def __init__(self, dataset: PersonCropDataset, jobs: list[tuple[int, list[int], list[int]]],
                 index: dict[str, Any]) -> None:
        self.dataset, self.jobs, self.index = dataset, jobs, index
        self.patch_hw = tuple(index["patch_hw"])

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, np.ndarray]:
        shard, rows, record_ids = self.jobs[i]
        first = self.dataset.records[record_ids[0]]
        img = self.dataset.read_image(first)
        if tuple(img.shape[:2]) != tuple(first.img_hw):
            raise ValueError(f"{first.image_path}: decoded size {img.shape[:2]} != record img_hw "
                             f"{first.img_hw} ({self.dataset.name} sample_id {first.sample_id}); "
                             "the cache needs the true size")
        out = np.empty((len(rows), *self.patch_hw, 3), dtype=np.uint8)
        for k, idx in enumerate(record_ids):
            rec = self.dataset.records[idx]
            img_to_patch = invert_affine(np.asarray(self.index["samples"][rec.sample_id]["patch_to_img"]))
            patch_wh = (self.patch_hw[1], self.patch_hw[0])
            out[k] = cv2.warpAffine(img, img_to_patch, patch_wh, flags=cv2.INTER_LINEAR)
        return shard, np.asarray(rows, dtype=np.int64), out


def _identity(item: Any) -> Any:
    return item


def _write_json_atomic(path: Path, content: Any) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(content, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _shard_is_complete(path: Path, rows: int, patch_hw: tuple[int, int]) -> bool:
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return arr.dtype == np.uint8 and arr.shape == (rows, *patch_hw, 3)


def _open_existing_plan(out_dir: Path, plan: dict[str, Any], overwrite: bool) -> bool:
    """True when ``out_dir`` already holds this plan's index; clears it on ``overwrite``; else ValueError."""
    index_path = out_dir / INDEX_FILE
    if not index_path.is_file():
        return False
    try:
        old = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        old = {}
    if old == json.loads(json.dumps(plan, sort_keys=True)):
        return True
    if not overwrite:
        changed = sorted(k for k in set(old) | set(plan) if k != "samples" and old.get(k) != plan.get(k))
        raise ValueError(f"person cache {out_dir}: holds a different cache "
                         f"(differs in {changed or ['samples']}); "
                         "pass overwrite=True (--overwrite) or choose another folder")
    for path in out_dir.iterdir():
        if path.name in (INDEX_FILE, DONE_FILE) or path.name.startswith("shard_"):
            path.unlink()
    return False


def _jobs_for(plan: dict[str, Any], dataset: PersonCropDataset,
              shards: list[int]) -> list[tuple[int, list[int], list[int]]]:
    """(shard, rows, record indices) per image inside each shard to build."""
    where = {rec.sample_id: i for i, rec in enumerate(dataset.records)}
    per_shard: dict[int, list[tuple[int, int]]] = {s: [] for s in shards}
    for sid, entry in plan["samples"].items():
        if entry["shard"] in per_shard:
            per_shard[entry["shard"]].append((entry["row"], where[sid]))
    jobs = []
    for shard in shards:
        rows = sorted(per_shard[shard])  # the plan keeps one image's records on consecutive rows
        for _, group in itertools.groupby(rows, key=lambda pair: str(dataset.records[pair[1]].image_path)):
            pairs = list(group)
            jobs.append((shard, [r for r, _ in pairs], [i for _, i in pairs]))
    return jobs


def build_person_cache(dataset: PersonCropDataset, out_dir: str | Path, margin: float = 1.5,
                       patch_hw: tuple[int, int] | None = None, shard_size: int = 1024, num_workers: int = 0,
                       overwrite: bool = False, progress: bool = False) -> CacheBuildReport:
    """Crop every record of ``dataset`` once (no augmentation) into uint8 patch shards (see module docstring).

    Args:
        dataset: a :class:`PersonCropDataset`; its ``records``, ``input_hw``, ``name`` and ``read_image``
            are used (augmentation settings are irrelevant).
        out_dir: cache folder (created). A folder holding the same plan resumes: finished shards are kept.
        margin: box enlargement beyond the processed box (>= 1), room for scale/rotation/shift augmentation.
        patch_hw: patch (H, W) px; default :func:`default_patch_hw` (the crop's pixel density). A larger
            value oversamples the same region.
        shard_size: records per shard (a 384x288 row is 332 KB: 1024 rows = 340 MB).
        num_workers: DataLoader worker processes decoding and warping (0 = in this process).
        overwrite: replace a folder holding a *different* cache instead of raising.
        progress: show a tqdm bar over the records to build.

    Returns:
        :class:`CacheBuildReport`.

    Raises:
        ValueError: no records, a repeated sample_id, bad margin / shard_size / patch_hw, an image whose
            decoded size differs from ``record.img_hw``, or a folder with a different cache (no overwrite).
    """
    if not dataset.records:
        raise ValueError(f"person cache: dataset {dataset.name} has no records")
    if shard_size < 1 or (patch_hw is not None and min(patch_hw) < 1):
        raise ValueError(f"person cache: need shard_size >= 1 and patch_hw > 0, got {shard_size}, {patch_hw}")
    _check_unique_ids(dataset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = _plan(dataset, margin, patch_hw, shard_size)
    if not _open_existing_plan(out, plan, overwrite):
        (out / DONE_FILE).unlink(missing_ok=True)
        _write_json_atomic(out / INDEX_FILE, plan)
    for stale in out.glob("shard_*.npy.tmp*"):
        stale.unlink()
    hw = tuple(plan["patch_hw"])
    report = CacheBuildReport(out, len(dataset.records))
    for number, shard in enumerate(plan["shards"]):
        complete = _shard_is_complete(out / shard["file"], shard["rows"], hw)
        (report.reused if complete else report.built).append(number)
    if report.built:
        (out / DONE_FILE).unlink(missing_ok=True)
        _write_shards(dataset, plan, out, report.built, num_workers, progress)
    _write_json_atomic(out / DONE_FILE, {"num_samples": len(dataset.records), "shards": len(plan["shards"])})
    logger.info("person cache %s: %d samples, built %d shards, reused %d", out, report.num_samples,
                len(report.built), len(report.reused))
    return report


def _write_shards(dataset: PersonCropDataset, plan: dict[str, Any], out: Path, shards: list[int],
                  num_workers: int, progress: bool) -> None:
    """Fill each shard in a temporary memory map and rename it when its last row is written."""
    jobs = _jobs_for(plan, dataset, shards)
    loader = DataLoader(_PatchJobs(dataset, jobs, plan), batch_size=None, shuffle=False,
                        num_workers=num_workers, collate_fn=_identity, worker_init_fn=worker_init_fn)
    remaining = {s: plan["shards"][s]["rows"] for s in shards}
    open_maps: dict[int, tuple[Path, np.ndarray]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(remaining.values()), desc=f"person cache {out.name}", unit="crop")
    try:
        for shard, rows, patches in loader:
            if shard not in open_maps:
                tmp = out / f"{plan['shards'][shard]['file']}.tmp{os.getpid()}"
                open_maps[shard] = (tmp, np.lib.format.open_memmap(
                    tmp, mode="w+", dtype=np.uint8, shape=(remaining[shard], *plan["patch_hw"], 3)))
            open_maps[shard][1][rows] = patches
            remaining[shard] -= len(rows)
            if bar is not None:
                bar.update(len(rows))
            if remaining[shard] == 0:
                tmp, arr = open_maps.pop(shard)
                arr.flush()
                del arr
                os.replace(tmp, out / plan["shards"][shard]["file"])
    finally:
        if bar is not None:
            bar.close()
        for tmp, _ in open_maps.values():
            tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- reading
class PersonCache:
    """A finished person cache folder, opened read-only (shards memory-mapped lazily, per process).

    ``patch(sample_id) -> (patch (h, w, 3) uint8 read-only view, patch_to_img (2, 3) float64)``;
    ``crop(record, box, out_hw, flip, rot_deg)`` is the cached ``crop_image`` used by
    :meth:`PersonCropDataset.attach_cache`; ``check_dataset(dataset)`` raises on a stale cache.
    Pickles without its memory maps (DataLoader workers reopen them).

    Raises:
        FileNotFoundError: no ``index.json`` in ``out_dir``, or a shard file is missing.
        ValueError: an unfinished build (no ``done`` marker) or an unknown format version.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        index_path = self.out_dir / INDEX_FILE
        if not index_path.is_file():
            raise FileNotFoundError(f"person cache: no {INDEX_FILE} in {self.out_dir}; {BUILD_HINT}")
        if not (self.out_dir / DONE_FILE).is_file():
            raise ValueError(f"person cache {self.out_dir}: build did not finish (no '{DONE_FILE}' marker); "
                             "rerun the build with the same arguments to resume")
        index = json.loads(index_path.read_text(encoding="utf-8"))
        if index.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"person cache {self.out_dir}: format_version {index.get('format_version')} "
                             f"!= {FORMAT_VERSION}; rebuild it")
        self.provenance: dict[str, Any] = index["provenance"]
        self.patch_hw = tuple(index["patch_hw"])
        self._shard_files = [s["file"] for s in index["shards"]]
        self._shard_rows = [s["rows"] for s in index["shards"]]
        ids = list(index["samples"])
        self._slot = {sid: k for k, sid in enumerate(ids)}
        entries = [index["samples"][s] for s in ids]
        self._where = np.array([[e["shard"], e["row"]] for e in entries], np.int64)
        self._patch_to_img = np.array([e["patch_to_img"] for e in entries], np.float64)
        self._maps: dict[int, np.ndarray] = {}
        missing = [f for f in self._shard_files if not (self.out_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(f"person cache {self.out_dir}: missing shards {missing[:5]} "
                                    f"({len(missing)} in all); rerun the build with the same arguments "
                                    "to rebuild them")

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._slot

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def _shard(self, number: int) -> np.ndarray:
        if number not in self._maps:
            path = self.out_dir / self._shard_files[number]
            if not path.is_file():
                raise FileNotFoundError(f"person cache {self.out_dir}: shard {path.name} is missing; "
                                        "rerun the build with the same arguments to rebuild it")
            arr = np.load(path, mmap_mode="r")
            if arr.shape != (self._shard_rows[number], *self.patch_hw, 3):
                raise ValueError(f"person cache: {path} has shape {arr.shape}, index expects "
                                 f"{(self._shard_rows[number], *self.patch_hw, 3)}")
            self._maps[number] = arr
        return self._maps[number]

    def patch(self, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(patch (h, w, 3) uint8 RGB read-only view, patch_to_img (2, 3))``.

        Raises ValueError (naming the folder) for a sample id the cache does not hold."""
        slot = self._slot.get(sample_id)
        if slot is None:
            raise ValueError(f"person cache {self.out_dir}: no sample_id {sample_id} "
                             f"(built from {self.provenance['dataset']}); the cache is stale, rebuild it")
        shard, row = self._where[slot]
        return self._shard(int(shard))[int(row)], self._patch_to_img[slot]

    def crop(self, record: PersonRecord, bbox_xywh_px, out_hw: tuple[int, int], flip: bool = False,
             rot_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Same contract as :func:`annot.data.crop.crop_image` on the decoded image of ``record``."""
        patch, patch_to_img = self.patch(record.sample_id)
        img_w = int(record.img_hw[1])
        return crop_from_patch(patch, patch_to_img, img_w, bbox_xywh_px, out_hw, flip, rot_deg)

    def check_dataset(self, dataset: PersonCropDataset) -> None:
        """Raise ValueError (naming this folder) unless the cache was built from ``dataset``'s records
        (dataset name, input_hw and the record checksum of :func:`records_checksum`)."""
        prov = self.provenance
        problems = []
        if prov["dataset"] != dataset.name:
            problems.append(f"dataset {prov['dataset']!r} != {dataset.name!r}")
        if tuple(prov["input_hw"]) != tuple(dataset.input_hw):
            problems.append(f"input_hw {tuple(prov['input_hw'])} != {tuple(dataset.input_hw)}")
        if prov["records_sha256"] != records_checksum(dataset.records):
            problems.append(f"records differ ({prov['num_records']} cached, {len(dataset.records)} now, "
                            "or boxes / images changed)")
        if problems:
            raise ValueError(f"stale person cache {self.out_dir}: " + "; ".join(problems)
                             + f"; rebuild it ({BUILD_HINT}, overwrite=True / --overwrite)")


__all__ = ["CacheBuildReport", "PersonCache", "build_person_cache", "crop_from_patch", "default_patch_hw",
           "img_to_crop_affine", "patch_affine", "records_checksum"]
