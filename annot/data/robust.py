"""Bad samples never stop a run: a checked image index, and a dataset wrapper that skips what fails.

Two layers, both keyed by sample id and both ending in ``skipped.json`` (issue #12):

1. :func:`validate_image_records` runs once when a person-crop dataset is built for the pipeline
   (and in the preflight). For every distinct image file it reads the header (PIL, lazy: no pixel
   decoding) and the last bytes of the file:

   * no header / unknown format -> the sample is skipped with :data:`SKIP_UNDECODABLE`;
   * a JPEG without its end-of-image marker ``FF D9`` (or a PNG without its ``IEND`` chunk) in the
     last :data:`TAIL_BYTES` bytes -> :data:`SKIP_TRUNCATED`. Such a file *decodes* (libjpeg fills the
     missing rows with grey and only prints "Premature end of JPEG file"), so without this check a
     damaged person would be exported as if nothing happened;
   * a header size that differs from the json ``height`` / ``width``: the decoded size wins (the
     record's ``img_hw`` is replaced) and the sample is counted in ``size_fixed`` (a warning, not a skip).

   The skipped samples move from ``dataset.records`` to ``dataset.skipped`` with their reason.

2. :class:`SkippingDataset` wraps a dataset at training / prediction time. A sample whose loading
   raises one of :data:`SAMPLE_ERRORS` (a file that changed after indexing, a decoder error) does not
   stop the run: the item returned instead carries ``load_error = "<sample id>\\t<reason>"``
   (every good item carries ``load_error = ""``, so batches collate as before):

   * ``mode="train"``: the next loadable index (deterministic) stands in for it, so batches keep their size;
   * ``mode="predict"``: a stand-in with the failed sample's id, all targets masked; the pseudo-GT
     writer (:class:`annot.annotator.sharding.ShardedPseudoGTWriter`) records the id as skipped with the reason
     and never exports it.

   :func:`load_errors` reads the failures back from a collated batch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

SKIP_TRUNCATED = "truncated image (no end-of-image marker)"
SKIP_UNDECODABLE = "unreadable image (no decodable header)"
SKIP_LOAD_FAILED = "failed to load"
#: How far from the end of a file the end-of-image marker is looked for (bytes). Cameras and editors
#: sometimes append a few hundred bytes after the JPEG EOI; a truncated file ends inside entropy-coded
#: data, where ``FF D9`` cannot occur (a data ``FF`` is always followed by ``00``).
TAIL_BYTES = 4096
#: Errors of one sample's loading that skip the sample instead of stopping the run.
SAMPLE_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, cv2.error, KeyError, IndexError)
_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND\xaeB`\x82"


@dataclasses.dataclass(frozen=True)
class ImageStatus:
    """What :func:`image_status` found: ``problem`` (a skip reason or None) and ``hw`` (height, width) px."""

    problem: str | None
    hw: tuple[int, int] | None


def image_status(path: str | Path) -> ImageStatus:
    """Header size and integrity of one image file, without decoding its pixels.

    Returns:
        ``ImageStatus(None, (H, W))`` for a good file; ``ImageStatus(reason, hw or None)`` for a missing
        file (``"missing image file"``), an unknown / broken header (:data:`SKIP_UNDECODABLE`) or a JPEG /
        PNG whose end marker is missing (:data:`SKIP_TRUNCATED`).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return ImageStatus("missing image file", None)
    if size == 0:
        return ImageStatus(SKIP_UNDECODABLE, None)
    try:
        with Image.open(path) as img:
            width, height = img.size
            fmt = img.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return ImageStatus(SKIP_UNDECODABLE, None)
    marker = {"JPEG": _JPEG_EOI, "MPO": _JPEG_EOI, "PNG": _PNG_IEND}.get(fmt or "")
    if marker is not None:
        with open(path, "rb") as fh:
            fh.seek(max(0, size - TAIL_BYTES))
            if marker not in fh.read():
                return ImageStatus(SKIP_TRUNCATED, (int(height), int(width)))
    return ImageStatus(None, (int(height), int(width)))


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return f"{path}:missing"


def _fingerprint(stamps: list[str]) -> str:
    digest = hashlib.sha256()
    for line in sorted(stamps):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()[:16]


def validate_image_records(dataset: Any) -> dict[str, int]:
    """Check every image of ``dataset`` (a :class:`annot.data.person.PersonCropDataset`) in place.

    See the module docstring. Records of bad images move to ``dataset.skipped``; records whose json
    size differs from the file's get the file's size. Idempotent (the checks are cached per path
    only for this call).

    Returns:
        ``{"images": distinct files checked, "skipped": samples skipped, "size_fixed": samples whose
        ``img_hw`` was replaced}``; also stored as ``dataset.image_check``. ``dataset.image_fingerprint``:
        SHA-256 (16 hex digits) of every checked file's path, size and modification time (ns), the cheap
        identity of the images that the stage provenance uses.
    """
    statuses: dict[Path, ImageStatus] = {}
    stamps: list[str] = []
    kept, fixed, skipped = [], 0, 0
    reasons: Counter = Counter()
    for record in dataset.records:
        path = Path(record.image_path)
        if path not in statuses:
            statuses[path] = image_status(path)
            stamps.append(_stamp(path))
        status = statuses[path]
        if status.problem is not None:
            dataset.skipped[str(record.sample_id)] = status.problem
            reasons[status.problem] += 1
            skipped += 1
            continue
        if status.hw is not None and tuple(status.hw) != tuple(record.img_hw):
            log.warning("%s: file is %dx%d (HxW), json says %dx%d: the file's size is used (%s sample_id %s)",
                        path, *status.hw, *record.img_hw, getattr(dataset, "name", "?"), record.sample_id)
            record = dataclasses.replace(record, img_hw=tuple(status.hw))
            fixed += 1
        kept.append(record)
    dataset.records = kept
    result = {"images": len(statuses), "skipped": skipped, "size_fixed": fixed}
    dataset.image_check = result
    dataset.image_fingerprint = _fingerprint(stamps)
    if skipped or fixed:
        log.warning("%s: image check: %d of %d files bad (%s), %d samples skipped, %d sizes taken from the file",
                    getattr(dataset, "name", "?"), sum(s.problem is not None for s in statuses.values()),
                    len(statuses), dict(reasons), skipped, fixed)
    return result


def _masked_like(sample: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``sample`` with zero image, zero masks / validity flags (no loss, no export)."""
    out = dict(sample)
    for key, value in sample.items():
        if torch.is_tensor(value) and (key == "img" or "mask" in key or key.endswith("_valid")):
            out[key] = torch.zeros_like(value)
    return out


class SkippingDataset(Dataset):
    """Wrap ``dataset`` so that a sample that fails to load is skipped, not fatal (module docstring).

    Args:
        dataset: items are dicts with ``sample_id`` (the person-crop datasets); other attributes
            (``records``, ``skipped``, ``set_epoch``, ``attach_pseudo_gt``, ``summary``...) are forwarded.
        mode: ``"train"`` (substitute the next loadable index) or ``"predict"`` (masked stand-in that
            keeps the failed id).
        max_tries: how many following indices a ``train`` item tries before giving up (RuntimeError).

    Attributes:
        failures: ``{sample_id: reason}`` seen by *this process* (DataLoader workers have their own
            copies; read the failures from the batches with :func:`load_errors`).
    """

    def __init__(self, dataset: Dataset, mode: str = "train", max_tries: int = 16) -> None:
        if mode not in ("train", "predict"):
            raise ValueError(f"SkippingDataset mode must be 'train' or 'predict', got {mode!r}")
        self.dataset, self.mode, self.max_tries = dataset, mode, int(max_tries)
        self.failures: dict[str, str] = {}
        self._template: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "__setstate__", "__getstate__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _sample_id(self, index: int) -> str:
        records = getattr(self.dataset, "records", None)
        return str(records[index].sample_id) if records is not None else f"index {index}"

    def _try(self, index: int) -> tuple[dict[str, Any] | None, str]:
        try:
            item = self.dataset[index]
        except SAMPLE_ERRORS as err:
            reason = f"{SKIP_LOAD_FAILED}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            sid = self._sample_id(index)
            if sid not in self.failures:
                log.warning("%s sample_id %s skipped: %s", getattr(self.dataset, "name", "dataset"), sid, reason)
            self.failures[sid] = reason
            return None, reason
        return {**item, "load_error": ""}, ""

    def __getitem__(self, index: int) -> dict[str, Any]:
        item, reason = self._try(index)
        if item is not None:
            if self._template is None:
                self._template = item
            return item
        failed = f"{self._sample_id(index)}\t{reason}"
        n = len(self)
        for step in range(1, min(self.max_tries, n) + 1):
            if self.mode == "predict" and self._template is not None:
                break
            other, _ = self._try((index + step) % n)
            if other is not None:
                if self._template is None:
                    self._template = other
                if self.mode == "train":
                    return {**other, "load_error": failed}
                break
        if self._template is None:
            raise RuntimeError(f"{getattr(self.dataset, 'name', 'dataset')}: {self.max_tries + 1} samples in a row "
                               f"failed to load (last: {failed.replace(chr(9), ': ')})")
        stand_in = _masked_like(self._template)
        sid = self._sample_id(index)
        stand_in.update(sample_id=sid, load_error=failed)
        return stand_in


def load_errors(batch: Any) -> dict[str, str]:
    """``{sample_id: reason}`` of the failed samples a collated batch of :class:`SkippingDataset` items reports."""
    if not isinstance(batch, dict) or "load_error" not in batch:
        return {}
    out = {}
    for text in batch["load_error"]:
        if text:
            sid, _, reason = str(text).partition("\t")
            out[sid] = reason
    return out


class LoadErrorsToPredictions(pl.Callback):
    """Copy each batch's ``load_error`` column into the dict that ``predict_step`` returned, so that
    :func:`drop_failed_predictions` can remove the stand-ins of samples that failed to load
    (``trainer.predict`` returns the outputs, not the batches)."""

    def on_predict_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        if isinstance(outputs, dict) and isinstance(batch, dict) and "load_error" in batch:
            outputs["load_error"] = list(batch["load_error"])


def drop_failed_predictions(pred: dict[str, Any]) -> dict[str, str]:
    """Remove (in place) the rows of merged predictions whose ``load_error`` is set; returns
    ``{sample_id: reason}`` of the removed rows. Lists and tensors with one row per sample are filtered."""
    errors = pred.pop("load_error", None)
    if not errors:
        return {}
    keep = [i for i, e in enumerate(errors) if not e]
    failed = {str(e).partition("\t")[0]: str(e).partition("\t")[2] for e in errors if e}
    n = len(errors)
    for key, value in list(pred.items()):
        if torch.is_tensor(value) and value.shape[:1] == (n,):
            pred[key] = value[keep]
        elif isinstance(value, list) and len(value) == n:
            pred[key] = [value[i] for i in keep]
    return failed


__all__ = [
    "LoadErrorsToPredictions", "drop_failed_predictions", "ImageStatus", "SAMPLE_ERRORS", "SKIP_LOAD_FAILED",
    "SKIP_TRUNCATED", "SKIP_UNDECODABLE", "SkippingDataset", "image_status", "load_errors",
    "validate_image_records",
]
