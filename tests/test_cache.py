"""Tests for annot.data.cache: cached samples equal raw samples, resume, staleness, index coverage.

Two datasets: the real COCO samples (``$ANNOT_COCO_SAMPLES`` or ``<repo>/../shared/data/coco_samples``)
and a synthetic one on a smooth image (sinusoids with periods >= 70 px) with 3D joints, SMPL fits and a
real camera, where double bilinear interpolation is nearly exact, so any geometric error of the
patch / crop composition (a 1 px shift changes a pixel by ~6 grey levels) fails the pixel check.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from annot.data import COCOKeypoints
from annot.data.augment import AugmentConfig
from annot.data.cache import PersonCache, build_person_cache
from annot.data.crop import apply_affine, invert_affine
from annot.data.person import PersonCropDataset, PersonRecord, SmplParams

REPO = Path(__file__).resolve().parents[1]
COCO_DIR = Path(os.environ.get("ANNOT_COCO_SAMPLES", REPO.parent / "shared/data/coco_samples"))
ANN_FILE = "test_coco.json"
needs_coco = pytest.mark.skipif(not (COCO_DIR / ANN_FILE).is_file(),
                                reason=f"COCO samples not found at {COCO_DIR} (set ANNOT_COCO_SAMPLES)")
FULL_AUG = AugmentConfig(enabled=True, scale_factor=0.25, rot_factor_deg=30.0, rot_prob=1.0, shift_factor=0.1,
                         flip_prob=0.5, color_factor=0.2)
IMG_HW = (600, 800)


def _smooth_image(img_hw: tuple[int, int]) -> np.ndarray:
    """uint8 RGB sum of slow sinusoids (values 40..215): bilinear interpolation is ~exact on it."""
    ys, xs = np.mgrid[0:img_hw[0], 0:img_hw[1]].astype(np.float64)
    chans = [128 + 45 * np.sin(2 * np.pi * (xs / 83 + ys / 151) + k)
             + 40 * np.cos(2 * np.pi * (ys / 71 - xs / 197) + 2 * k) for k in range(3)]
    return np.clip(np.stack(chans, -1), 0, 255).round().astype(np.uint8)


class _Synthetic(PersonCropDataset):
    """Four people on a smooth PNG with 3D joints, SMPL and a real camera (smpl24 native)."""

    name = "synthetic"
    native_convention = "smpl24"

    def __init__(self, image_path: Path, body_model_path: Path, boxes: list[list[float]], **kw) -> None:
        super().__init__(body_model_type="smpl", body_model_path=str(body_model_path), convention="smpl24",
                         **kw)
        rng = np.random.default_rng(3)
        records = []
        for i, raw_box in enumerate(boxes):
            box = self.process_box(np.asarray(raw_box), IMG_HW)
            x, y, w, h = raw_box
            kp = np.stack([rng.uniform(x, x + w, 24), rng.uniform(y, y + h, 24)], 1)
            joints = np.concatenate([rng.normal(scale=0.4, size=(24, 2)), rng.uniform(4, 6, (24, 1))], 1)
            pose = rng.normal(scale=0.3, size=(24, 3))
            smpl = SmplParams(pose, rng.normal(size=10), np.array([0.1, 0.2, 5.0]))
            records.append(PersonRecord(f"p{i}", image_path, IMG_HW, box, kp, rng.random(24) > 0.2, joints,
                                        np.ones(24, bool), smpl, np.array([900.0, 900.0]),
                                        np.array([400.0, 300.0])))
        self._set_records(records, {})


@pytest.fixture
def synthetic(tmp_path, tiny_smpl_file):
    image = tmp_path / "smooth.png"
    cv2.imwrite(str(image), cv2.cvtColor(_smooth_image(IMG_HW), cv2.COLOR_RGB2BGR))
    boxes = [[300, 120, 140, 330], [80, 200, 110, 260], [600, 10, 150, 420], [-40, 350, 160, 300]]
    return lambda **kw: _Synthetic(image, tiny_smpl_file, boxes, **kw)


def _coco(**kw) -> COCOKeypoints:
    return COCOKeypoints(COCO_DIR, ANN_FILE, **kw)


def _assert_targets_equal(raw: dict, cached: dict) -> None:
    assert raw.keys() == cached.keys()
    for key, value in raw.items():
        if key == "img":
            continue
        if torch.is_tensor(value):
            assert torch.equal(value, cached[key]), key
        else:
            assert value == cached[key], key


def _source_masks(sample: dict, cache: PersonCache, record: PersonRecord) -> tuple[np.ndarray, np.ndarray]:
    """(interior, outside) (H, W) masks of crop pixels whose source point lies >= 1.5 px inside the patch
    and ~2 patch px inside the image, and > 1 px outside the patch; computed from ``crop_to_img``."""
    _, height, width = sample["img"].shape
    patch, patch_to_img = cache.patch(record.sample_id)
    ys, xs = np.mgrid[0:height, 0:width]
    img_pts = apply_affine(np.stack([xs, ys], -1).astype(np.float64), sample["crop_to_img"].double().numpy())
    patch_pts = apply_affine(img_pts, invert_affine(patch_to_img))

    def inside(pts, hw, pad):
        x_ok = (pts[..., 0] >= pad) & (pts[..., 0] <= hw[1] - 1 - pad)
        return x_ok & (pts[..., 1] >= pad) & (pts[..., 1] <= hw[0] - 1 - pad)

    patch_px = float(np.linalg.norm(patch_to_img[:, 0]))  # image px per patch px
    # near the image border both paths blend with the zero border, over 1 image px vs 1 patch px
    img_pad = 1.5 * max(1.0, patch_px) + 1
    interior = inside(patch_pts, patch.shape[:2], 1.5) & inside(img_pts, record.img_hw, img_pad)
    return interior, ~inside(patch_pts, patch.shape[:2], -1.0)


def _raw_and_cached(ds: PersonCropDataset, out_dir: Path, epochs: int = 1, **build_kw):
    build_person_cache(ds, out_dir, **build_kw)
    items = [(e, i) for e in range(epochs) for i in range(len(ds))]

    def load():
        samples = []
        for epoch, i in items:
            ds.set_epoch(epoch)
            samples.append(ds[i])
        return samples

    raw = load()
    cache = PersonCache(out_dir)
    ds.attach_cache(cache)
    return raw, load(), cache, [ds.records[i] for _, i in items]


# ----------------------------------------------------------------------------- equality with the raw path
@pytest.mark.parametrize("aug", [None, FULL_AUG])
def test_synthetic_cached_equals_raw(synthetic, tmp_path, aug):
    ds = synthetic(augment=aug)
    epochs = 2 if aug else 1
    raw, cached, cache, records = _raw_and_cached(ds, tmp_path / "cache", epochs=epochs, shard_size=3)
    outside_seen, flips, rots = 0, 0, 0
    for r, c, rec in zip(raw, cached, records):
        _assert_targets_equal(r, c)
        # the targets are really present, so their equality means something
        assert float(r["smpl_valid"]) == 1.0 and float(r["joints_cam_mask"].sum()) == 24
        interior, outside = _source_masks(r, cache, rec)
        diff = (r["img"] - c["img"]).abs().amax(0).numpy() * 255
        assert interior.mean() > 0.5
        assert diff[interior].max() <= (1.0 if aug is None else 4.0), (rec.sample_id, diff[interior].max())
        assert float(c["img"].amax(0).numpy()[outside].max(initial=0.0)) == 0.0
        outside_seen += int(outside.sum() > 0 and float(r["img"].amax(0).numpy()[outside].max()) > 0.1)
        flips += int(r["flipped"])
        rots += int(not np.allclose(r["crop_to_img"][0, 1], 0.0))
    if aug is not None:  # the augmented run really flipped, rotated and left the patch somewhere
        assert flips > 0 and rots > 0 and outside_seen > 0


@needs_coco
@pytest.mark.parametrize("aug, tol", [
    (None, 1.0),
    (AugmentConfig(enabled=True, flip_prob=1.0, rot_prob=0.0, scale_factor=0.0, color_factor=0.0), 2.0),
])
def test_coco_unaugmented_and_flipped_match_within_rounding(tmp_path, aug, tol):
    """Default patch = crop pixel density, so these crops copy patch pixels: only OpenCV's 1/32 px
    fixed-point rounding differs (<= 1-2 grey levels), everywhere inside the patch."""
    ds = _coco(augment=aug)
    raw, cached, cache, records = _raw_and_cached(ds, tmp_path / "cache", shard_size=5)
    for r, c, rec in zip(raw, cached, records):
        _assert_targets_equal(r, c)
        assert bool(r["flipped"]) == (aug is not None)
        interior, _ = _source_masks(r, cache, rec)
        assert ((r["img"] - c["img"]).abs().amax(0).numpy()[interior] * 255).max() <= tol + 1e-3


@needs_coco
def test_coco_augmented_close(tmp_path):
    """Real textures under scale/rotation: both paths alias differently (no antialiasing in warpAffine),
    so compare the mean (measured 0.7-5 grey levels) rather than the max."""
    ds = _coco(augment=FULL_AUG)
    raw, cached, cache, records = _raw_and_cached(ds, tmp_path / "cache")
    for r, c, rec in zip(raw, cached, records):
        _assert_targets_equal(r, c)
        interior, _ = _source_masks(r, cache, rec)
        assert ((r["img"] - c["img"]).abs().amax(0).numpy()[interior] * 255).mean() < 8.0


# ----------------------------------------------------------------------------- index, geometry
@needs_coco
def test_index_covers_every_record_once_and_patch_geometry(tmp_path):
    ds = _coco()
    build_person_cache(ds, tmp_path / "cache", shard_size=5)
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert sorted(index["samples"]) == sorted(r.sample_id for r in ds.records)
    slots = [(e["shard"], e["row"]) for e in index["samples"].values()]
    assert len(set(slots)) == len(slots) == 12
    assert [s["rows"] for s in index["shards"]] == [5, 5, 2]
    for number, shard in enumerate(index["shards"]):
        assert sorted(r for s, r in slots if s == number) == list(range(shard["rows"]))
        shape = np.load(tmp_path / "cache" / shard["file"], mmap_mode="r").shape
        assert shape == (shard["rows"], 384, 288, 3)
    prov = index["provenance"]
    got = (prov["dataset"], prov["input_hw"], prov["margin"], prov["num_records"])
    assert got == ("coco", [256, 192], 1.5, 12)
    cache = PersonCache(tmp_path / "cache")
    rec = ds.records[3]
    patch, patch_to_img = cache.patch(rec.sample_id)
    x, y, w, h = rec.bbox_xywh_px
    # patch centre -> box centre, one patch px = one crop px (box_w / 192 image px), margin 1.5
    np.testing.assert_allclose(apply_affine([144.0, 192.0], patch_to_img), [x + w / 2, y + h / 2], atol=1e-9)
    np.testing.assert_allclose(patch_to_img[:, :2], np.eye(2) * w / 192, atol=1e-9)
    img = cv2.cvtColor(cv2.imread(str(rec.image_path)), cv2.COLOR_BGR2RGB)
    for px, py in [(100, 150), (200, 300), (144, 192)]:
        sx, sy = apply_affine([px, py], patch_to_img)
        x0, y0 = int(np.floor(sx)), int(np.floor(sy))
        fx, fy = sx - x0, sy - y0
        ref = ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x0 + 1]
               + (1 - fx) * fy * img[y0 + 1, x0] + fx * fy * img[y0 + 1, x0 + 1])
        np.testing.assert_allclose(patch[py, px].astype(float), ref, atol=1.0)


# ----------------------------------------------------------------------------- resume, staleness
@needs_coco
def test_resume_rebuilds_only_the_deleted_shard(tmp_path):
    ds = _coco()
    out = tmp_path / "cache"
    first = build_person_cache(ds, out, shard_size=5)
    assert first.built == [0, 1, 2] and first.reused == []
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("shard_*.npy")}
    (out / "shard_00001.npy").unlink()
    with pytest.raises(FileNotFoundError, match="shard_00001"):
        PersonCache(out)
    second = build_person_cache(ds, out, shard_size=5)
    assert second.built == [1] and second.reused == [0, 2]
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("shard_*.npy")}
    assert after["shard_00000.npy"] == before["shard_00000.npy"]
    assert after["shard_00002.npy"] == before["shard_00002.npy"]
    assert after["shard_00001.npy"][1] == before["shard_00001.npy"][1]
    assert build_person_cache(ds, out, shard_size=5).built == []
    assert len(PersonCache(out)) == 12


class _CountingCOCO(COCOKeypoints):
    """COCO that counts decodes and can fail on one image file (to interrupt a build)."""

    fail_on: str | None = None
    decodes = 0

    def read_image(self, record):
        if self.fail_on is not None and record.image_path.name == self.fail_on:
            raise RuntimeError("simulated crash")
        type(self).decodes += 1
        return super().read_image(record)


@needs_coco
def test_interrupted_build_resumes_from_finished_shards(tmp_path):
    ds = _CountingCOCO(COCO_DIR, ANN_FILE)
    out = tmp_path / "cache"
    last_image = max(r.image_path.name for r in ds.records)  # records are grouped by image: last shard
    ds.fail_on = last_image
    with pytest.raises(RuntimeError, match="simulated"):
        build_person_cache(ds, out, shard_size=4)
    assert not (out / "done").exists() and not list(out.glob("*.tmp*"))
    with pytest.raises(ValueError, match="did not finish"):
        PersonCache(out)
    finished = sorted(int(p.stem.split("_")[1]) for p in out.glob("shard_*.npy"))
    assert finished and 2 not in finished
    index = json.loads((out / "index.json").read_text())
    ds.fail_on, _CountingCOCO.decodes = None, 0
    report = build_person_cache(ds, out, shard_size=4)
    assert report.reused == finished and report.built == [s for s in range(3) if s not in finished]
    by_id = {r.sample_id: r.image_path for r in ds.records}
    needed = {(e["shard"], by_id[sid]) for sid, e in index["samples"].items() if e["shard"] in report.built}
    assert _CountingCOCO.decodes == len(needed)  # one decode per (shard, image), finished shards untouched
    assert len(PersonCache(out)) == 12


@needs_coco
def test_stale_cache_raises_naming_the_folder(tmp_path):
    out = tmp_path / "my_cache"
    build_person_cache(_coco(), out)
    cache = PersonCache(out)
    _coco().attach_cache(cache)  # same records: fine
    for stale in (_coco(bbox_scale=1.3), _coco(input_hw=(256, 256))):
        with pytest.raises(ValueError, match=f"stale person cache {out}"):
            stale.attach_cache(cache)
    fewer = _coco()
    fewer.records = fewer.records[:-1]
    with pytest.raises(ValueError, match="records differ"):
        fewer.attach_cache(cache)
    with pytest.raises(ValueError, match="different cache"):
        build_person_cache(_coco(bbox_scale=1.3), out)
    assert build_person_cache(_coco(bbox_scale=1.3), out, overwrite=True).built == [0]


# ----------------------------------------------------------------------------- tools
def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_coco
def test_cli_builds_and_loader_uses_workers(tmp_path, capsys):
    out = tmp_path / "cli_cache"
    cli = _tool("build_person_cache")
    args = ["--root", str(COCO_DIR), "--ann-file", ANN_FILE, "--out", str(out), "--shard-size", "8",
            "--no-progress"]
    assert cli.main(args + ["--num-workers", "2"]) == 0
    assert "12 samples, 2 shards built, 0 reused" in capsys.readouterr().out
    assert cli.main(args + ["--margin", "2.0"]) == 2
    assert "different cache" in capsys.readouterr().err
    ds = _coco(augment=FULL_AUG)
    ds.attach_cache(PersonCache(out))
    loader = torch.utils.data.DataLoader(ds, batch_size=6, num_workers=1)  # the cache goes to a worker
    batch = next(iter(loader))
    assert batch["img"].shape == (6, 3, 256, 192) and float(batch["img"].mean()) > 0.05


def test_bench_runs_synthetic_case(tmp_path):
    bench = _tool("bench_data")
    args = bench.parse_args(["--samples", "8", "--workers", "0", "--repeats", "1", "--batch-size", "4"])
    ann = bench.write_synthetic_coco(tmp_path / "synthetic", 2, img_hw=(270, 480))
    ds = COCOKeypoints(ann.parent, ann.name, augment=FULL_AUG)
    rows = bench.bench_case("tiny", ds, tmp_path / "cache", args)
    assert [(r["path"], r["workers"]) for r in rows] == [("raw", 0), ("cached", 0)]
    assert all(r["samples_per_s"] > 0 for r in rows) and rows[0]["cache_kb_per_sample"] == 324.0
    assert rows[0]["image_hw"] == [270, 480] and ds.cache is None
