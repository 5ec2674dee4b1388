"""Distributed pseudo-GT prediction: one shard stream per rank, resume from finished shards, strict merge.

NeuralAnnot's protocol runs the trained annotator f in ``predict`` over its whole training set
(Moon et al., CVPRW 2022); at COCO / AGORA scale that is many GPUs for hours, so a run must be split
across ranks and survive being killed. The pieces (architecture.md, "How data flows", step 4):

1. :class:`ShardedPseudoGTWriter` (a Lightning ``BasePredictionWriter``) maps every
   :meth:`annot.annotator.module.AnnotatorModule.predict_step` output from the crop camera to the original image
   camera (:func:`annot.io.export.pseudo_gts_from_predictions`) and, every ``batches_per_shard`` batches
   and at the end, writes ``<out_dir>/shards/rank{r:02d}-{n:05d}.json`` atomically
   (:func:`annot.io.atomic.atomic_write_json`): a reader never sees half a shard, and a killed run loses
   at most the batches buffered since its last shard.
2. :func:`remaining_indices` lists the dataset items whose sample id no finished shard (of any rank,
   any earlier run) covers; :func:`predict_sharded` predicts only those (``torch.utils.data.Subset``
   built *before* the DataLoader, so every rank splits the same list).
3. :func:`merge_shards` checks that every input sample id is annotated or skipped with a reason exactly
   once and writes the merged NeuralAnnot JSON (:func:`annot.io.export.write_pseudo_gt`).

Shard file (one JSON object, written in one atomic rename)::

    {"format": "annot-pseudo-gt-shard", "version": 1, "rank": r, "world_size": w, "shard": n,
     "run_key": "<caller's fingerprint of model + data>",
     "sample_ids": ["<id>", ...],                 # every id this shard covers, prediction order
     "pseudo_gt": {"<aid>": {NeuralAnnot entry}},  # the annotated ones (annot.io.export layout)
     "skipped": {"<id>": "non-finite prediction"}, # predicted but unusable
     "extras": {"<aid>": {"image_path": ..., "kp2d_img_px": [[x, y], ...], ...}}}  # for overlays

``set(sample_ids) == set(pseudo_gt) | set(skipped)`` (disjoint) is checked on every read.

Duplicates. Lightning >= 2.0 predicts through ``UnrepeatedDistributedSampler``, which does *not* pad
(ranks may differ by one batch), so a normal run produces no duplicate. Duplicates can still appear:
(a) when fewer items remain than there are ranks, :func:`pad_for_ranks` repeats items so that no rank
is empty (Lightning asserts every rank has one); (b) a caller turning ``use_distributed_sampler`` off;
(c) two runs sharing a folder. Policy: the writer keeps the first occurrence of an id on its rank (and
drops ids already in finished shards); across ranks, :func:`merge_shards` accepts a repeated id only
when its values agree (``np.allclose``, ``rtol=1e-5``, ``atol`` = ``dup_atol``; identical inputs through
the same weights differ only by float round-off of batch composition), keeps the first (lowest rank,
then shard) and reports the extra copies in :attr:`MergeReport.duplicates`; a repeated id with other
values is a conflict and raises.

A run's ``run_key`` (e.g. checkpoint checksum + data-config hash) is stored in each shard; resuming or
merging with another key raises (or, with ``discard_stale=True``, deletes those shards first), so
shards of an old model are never mixed into a new run.
"""
from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset, Subset

from annot.app.runtime import worker_init_fn
from annot.io.atomic import atomic_write_json
from annot.io.export import PseudoGT, parse_entry, pseudo_gts_from_predictions, write_pseudo_gt

log = logging.getLogger(__name__)

SHARD_FORMAT = "annot-pseudo-gt-shard"
SHARD_VERSION = 1
SHARDS_SUBDIR = "shards"
SHARD_NAME = re.compile(r"^rank(\d{2,})-(\d{5,})\.json$")
SKIP_NON_FINITE = "non-finite prediction"
#: predict_step keys the writer needs (image modes of AnnotatorModule)
REQUIRED_KEYS = ("sample_id", "pose_rotvec", "betas", "transl_m", "focal_crop_px", "princpt_crop_px",
                 "crop_to_img")
#: per-sample predict_step outputs kept in the shards for overlays (:func:`load_overlay_inputs`)
EXTRA_KEYS = ("image_path", "kp2d_img_px", "kp2d_pred_img_px", "kp2d_mask")
MAX_LISTED = 20
#: Trainer defaults of :func:`predict_sharded` (a prediction run logs and checkpoints nothing)
PREDICT_TRAINER_DEFAULTS: dict[str, Any] = {"logger": False, "enable_checkpointing": False,
                                            "enable_model_summary": False, "enable_progress_bar": False}


# --------------------------------------------------------------------------- shard files
def shard_path(shards_dir: str | Path, rank: int, index: int) -> Path:
    """``<shards_dir>/rank{rank:02d}-{index:05d}.json``."""
    return Path(shards_dir) / f"rank{rank:02d}-{index:05d}.json"


def _id_order(sample_id: str) -> tuple[float, str]:
    """Numeric ids first in numeric order, then the others alphabetically (the export's key order)."""
    return (int(sample_id), "") if sample_id.isdigit() else (math.inf, sample_id)


def _listed(ids: Iterable[str]) -> str:
    ids = sorted(ids, key=_id_order)
    more = f" ... (+{len(ids) - MAX_LISTED} more)" if len(ids) > MAX_LISTED else ""
    return ", ".join(ids[:MAX_LISTED]) + more


@dataclass(frozen=True)
class Shard:
    """One finished shard as read back.

    Attributes:
        path: the shard file.
        rank, index: writer rank and the rank's shard counter (from the file, checked against the name).
        run_key: the run fingerprint the shard was written under.
        sample_ids: every id the shard covers, in prediction order (no repeats).
        entries: ``{aid: PseudoGT}`` in the original-image camera (annotated ids).
        skipped: ``{sample_id: reason}`` predicted but unusable (e.g. non-finite values).
        extras: ``{aid: {key: value}}`` overlay inputs (:data:`EXTRA_KEYS`), original-image pixels.
    """

    path: Path
    rank: int
    index: int
    run_key: str
    sample_ids: tuple[str, ...]
    entries: dict[str, PseudoGT]
    skipped: dict[str, str]
    extras: dict[str, dict[str, Any]]


def read_shard(path: str | Path) -> Shard:
    """Read and validate one shard file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, wrong format/version, a field missing or of the wrong type, repeated ids,
            ``sample_ids`` not equal to annotated + skipped, or a malformed NeuralAnnot entry (the message
            names the file, the sample id and the field).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: shard is not valid JSON ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != SHARD_FORMAT or raw.get("version") != SHARD_VERSION:
        raise ValueError(f"{path}: not a version-{SHARD_VERSION} {SHARD_FORMAT!r} file "
                         "(field 'format'/'version')")
    for name, kind in (("sample_ids", list), ("pseudo_gt", dict), ("skipped", dict), ("extras", dict),
                       ("rank", int), ("shard", int), ("run_key", str)):
        if not isinstance(raw.get(name), kind):
            raise ValueError(f"{path}: field {name!r} missing or not a {kind.__name__}")
    ids = [str(s) for s in raw["sample_ids"]]
    repeats = [s for s, n in Counter(ids).items() if n > 1]
    if repeats:
        raise ValueError(f"{path}: field 'sample_ids' repeats ids {_listed(repeats)}")
    entries = {str(aid): parse_entry(path, str(aid), e) for aid, e in raw["pseudo_gt"].items()}
    skipped = {str(k): str(v) for k, v in raw["skipped"].items()}
    both = set(entries) & set(skipped)
    if both or set(ids) != set(entries) | set(skipped):
        odd = both | (set(ids) ^ (set(entries) | set(skipped)))
        raise ValueError(f"{path}: 'sample_ids' must equal the keys of 'pseudo_gt' plus 'skipped' "
                         f"(disjoint); offending ids: {_listed(odd)}")
    match = SHARD_NAME.match(path.name)
    if match is None or (int(match.group(1)), int(match.group(2))) != (raw["rank"], raw["shard"]):
        raise ValueError(f"{path}: file name does not match fields rank={raw['rank']} shard={raw['shard']}")
    return Shard(path, raw["rank"], raw["shard"], raw["run_key"], tuple(ids), entries, skipped,
                 {str(k): v for k, v in raw["extras"].items()})


def read_shards(shards_dir: str | Path, run_key: str | None = None) -> list[Shard]:
    """All finished shards of all ranks under ``shards_dir``, sorted by (rank, index).

    Only ``rank*-*.json`` names count: an interrupted atomic write leaves at most a hidden
    ``.rankXX-XXXXX.json.*.tmp`` file, which is ignored. A missing folder means no shard.

    Args:
        run_key: when given, every shard must carry this key.

    Raises:
        ValueError: a malformed shard (:func:`read_shard`) or one written under another ``run_key``
            (the message names the file and both keys; see :func:`discard_stale_shards`).
    """
    folder = Path(shards_dir)
    if not folder.is_dir():
        return []
    shards = []
    for path in sorted(p for p in folder.iterdir() if SHARD_NAME.match(p.name)):
        try:
            shard = read_shard(path)
        except FileNotFoundError:  # removed meanwhile by another rank's discard_stale_shards
            continue
        if run_key is not None and shard.run_key != run_key:
            raise ValueError(f"{path}: shard written under run_key {shard.run_key!r}, this run is "
                             f"{run_key!r}; delete the stale shards or pass discard_stale=True")
        shards.append(shard)
    return sorted(shards, key=lambda s: (s.rank, s.index))


def discard_stale_shards(shards_dir: str | Path, run_key: str) -> list[Path]:
    """Delete the shards written under a ``run_key`` other than ``run_key``; returns their paths.

    Raises:
        ValueError: a malformed shard (it is not deleted: a person should look at it).
    """
    stale = [s.path for s in read_shards(shards_dir) if s.run_key != run_key]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.warning("discarded %d stale shard(s) in %s (run_key changed to %r)", len(stale), shards_dir,
                    run_key)
    return stale


def finished_ids(shards_dir: str | Path, run_key: str | None = None) -> set[str]:
    """Sample ids covered (annotated or skipped) by the finished shards of all ranks."""
    return {sid for shard in read_shards(shards_dir, run_key) for sid in shard.sample_ids}


# --------------------------------------------------------------------------- datasets and resume
def dataset_sample_ids(dataset: Dataset) -> list[str]:
    """The sample id of every item, in index order, without loading any image.

    Understands :class:`annot.data.person.PersonCropDataset` (``records[i].sample_id``), any dataset with
    a ``sample_ids`` sequence, and ``torch.utils.data.Subset`` of those.

    Raises:
        ValueError: the dataset exposes no ids, or two items share an id (merge could not tell them apart).
    """
    if isinstance(dataset, Subset):
        base = dataset_sample_ids(dataset.dataset)
        ids = [base[int(i)] for i in dataset.indices]
    elif hasattr(dataset, "records"):
        ids = [str(r.sample_id) for r in dataset.records]
    elif hasattr(dataset, "sample_ids"):
        ids = [str(s) for s in dataset.sample_ids]
    else:
        raise ValueError(f"{type(dataset).__name__}: no 'records' or 'sample_ids' to take sample ids from")
    repeats = [s for s, n in Counter(ids).items() if n > 1]
    if repeats:
        raise ValueError(f"{type(dataset).__name__}: sample ids are not unique: {_listed(repeats)}")
    return ids


def remaining_indices(dataset: Dataset, shards_dir: str | Path, run_key: str | None = None) -> list[int]:
    """Indices of the items whose sample id no finished shard covers (ascending).

    Raises:
        ValueError: see :func:`dataset_sample_ids` and :func:`read_shards`.
    """
    done = finished_ids(shards_dir, run_key)
    return [i for i, sid in enumerate(dataset_sample_ids(dataset)) if sid not in done]


def pad_for_ranks(indices: Sequence[int], world_size: int) -> list[int]:
    """``indices``, cyclically repeated up to ``world_size`` items when there are fewer (but some).

    Lightning's prediction sampler asserts that every rank gets at least one item; the repeats are
    identical predictions that :func:`merge_shards` accepts and counts as duplicates.
    """
    out = list(indices)
    if 0 < len(out) < world_size:
        out = [out[i % len(out)] for i in range(world_size)]
    return out


# --------------------------------------------------------------------------- the writer
def _to_jsonable(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.detach().cpu().double().tolist()
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).tolist()
    return value


def _finite(entry: PseudoGT) -> bool:
    return all(np.isfinite(a).all() for a in (entry.pose_rotvec, entry.betas, entry.transl_m, entry.focal_px,
                                               entry.princpt_px))


class ShardedPseudoGTWriter(BasePredictionWriter):
    """Write :meth:`AnnotatorModule.predict_step` outputs as per-rank atomic shards (module docstring).

    Args:
        out_dir: run folder; shards go to ``<out_dir>/shards``.
        batches_per_shard: batches buffered per shard (1 in tests; e.g. 64 in production: fewer files,
            at most that many batches lost by a kill).
        run_key: fingerprint stored in every shard and required of existing ones.
        flush_on_exception: on an exception during ``predict`` (not on a kill), write the buffered
            *completed* batches before Lightning re-raises.

    On ``setup`` (each rank, in its own process) the writer reads the finished shards of all ranks:
    their ids are never written again by this rank, and the rank's shard counter continues after its
    highest existing shard, so earlier shards are never overwritten.

    Raises:
        ValueError: ``batches_per_shard < 1``; a prediction without a field of :data:`REQUIRED_KEYS`
            (message names the field and the batch's first sample id); a rotated crop
            (:func:`annot.io.export.crop_to_image_camera`); stale or malformed shards at setup.
    """

    def __init__(self, out_dir: str | Path, batches_per_shard: int = 1, run_key: str = "",
                 flush_on_exception: bool = True) -> None:
        super().__init__(write_interval="batch")
        if int(batches_per_shard) < 1:
            raise ValueError(f"batches_per_shard must be >= 1, got {batches_per_shard}")
        self.shards_dir = Path(out_dir) / SHARDS_SUBDIR
        self.batches_per_shard = int(batches_per_shard)
        self.run_key = str(run_key)
        self.flush_on_exception = flush_on_exception
        self.rank, self.world_size = 0, 1
        self.written: list[Path] = []
        self.dropped_repeats = 0
        self._seen: set[str] = set()
        self._next_index = 0
        self._buffer: list[dict[str, Any]] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Read the finished shards of all ranks (resume); see the class docstring."""
        super().setup(trainer, pl_module, stage)
        self.rank, self.world_size = int(trainer.global_rank), int(trainer.world_size)
        shards = read_shards(self.shards_dir, self.run_key)
        self._seen = {sid for shard in shards for sid in shard.sample_ids}
        self._next_index = 1 + max((s.index for s in shards if s.rank == self.rank), default=-1)
        self._buffer = []
        self.shards_dir.mkdir(parents=True, exist_ok=True)

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        """Buffer one batch's pseudo-GTs; write a shard every ``batches_per_shard`` batches. Samples the batch
        reports as failed to load (:func:`annot.data.robust.load_errors`) are recorded as skipped with
        their reason, never exported."""
        from annot.data.robust import load_errors

        self._buffer.append(self._convert(prediction, load_errors(batch)))
        if len(self._buffer) >= self.batches_per_shard:
            self.flush()

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the last, partial shard."""
        super().on_predict_epoch_end(trainer, pl_module)
        self.flush()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        """Keep the completed batches of an interrupted ``predict`` (``flush_on_exception``)."""
        if self.flush_on_exception and trainer.predicting:
            self.flush()

    def _convert(self, prediction: dict[str, Any], failed: dict[str, str] | None = None) -> dict[str, Any]:
        """One predict_step output -> ``{"ids", "entries", "skipped", "extras"}`` of new ids only; ids in
        ``failed`` (``{sample_id: reason}``) are skipped with their reason."""
        failed = failed or {}
        for key in REQUIRED_KEYS:
            if key not in prediction:
                first = prediction.get("sample_id", ["?"])[0] if isinstance(prediction, dict) else "?"
                raise ValueError(f"ShardedPseudoGTWriter: prediction has no field {key!r} (batch starting at "
                                 f"sample_id {first}); needs an image-mode AnnotatorModule predict_step")
        prediction = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v  # bf16 / fp16 runs
                      for k, v in prediction.items()}
        converted = pseudo_gts_from_predictions(prediction)
        out: dict[str, Any] = {"ids": [], "entries": {}, "skipped": {}, "extras": {}}
        for i, raw_id in enumerate(prediction["sample_id"]):
            sid = str(raw_id)
            if sid in self._seen:
                self.dropped_repeats += 1
                continue
            self._seen.add(sid)
            out["ids"].append(sid)
            if sid in failed:
                out["skipped"][sid] = failed[sid]
                continue
            entry = converted[sid]
            if not _finite(entry):
                out["skipped"][sid] = SKIP_NON_FINITE
                continue
            out["entries"][sid] = entry
            out["extras"][sid] = {k: _to_jsonable(prediction[k][i]) for k in EXTRA_KEYS if k in prediction}
        return out

    def flush(self) -> Path | None:
        """Write the buffered batches as this rank's next shard (atomic); None when nothing is buffered."""
        if not self._buffer:
            return None
        ids = [sid for part in self._buffer for sid in part["ids"]]
        doc = {"format": SHARD_FORMAT, "version": SHARD_VERSION, "rank": self.rank,
               "world_size": self.world_size, "shard": self._next_index, "run_key": self.run_key,
               "sample_ids": ids,
               "pseudo_gt": {sid: e.to_json() for part in self._buffer for sid, e in part["entries"].items()},
               "skipped": {sid: r for part in self._buffer for sid, r in part["skipped"].items()},
               "extras": {sid: x for part in self._buffer for sid, x in part["extras"].items()}}
        path = atomic_write_json(shard_path(self.shards_dir, self.rank, self._next_index), doc)
        self._next_index += 1
        self._buffer = []
        self.written.append(path)
        return path


# --------------------------------------------------------------------------- merge
@dataclass(frozen=True)
class MergeReport:
    """What :func:`merge_shards` found and wrote.

    Attributes:
        out_file: the merged NeuralAnnot JSON.
        expected: number of input sample ids.
        annotated: number of pseudo-GTs written.
        skipped: ``{sample_id: reason}``: the input's skips plus the predicted-but-unusable ones (what
            ``skipped.json`` should hold).
        duplicates: ``{sample_id: extra copies}`` of ids repeated with agreeing values (module docstring).
        num_shards: shards read.
    """

    out_file: Path
    expected: int
    annotated: int
    skipped: dict[str, str]
    duplicates: dict[str, int] = field(default_factory=dict)
    num_shards: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly counts (for ``report.json``)."""
        return {"out_file": str(self.out_file), "expected": self.expected, "annotated": self.annotated,
                "skipped": len(self.skipped), "duplicates": sum(self.duplicates.values()),
                "duplicate_ids": sorted(self.duplicates, key=_id_order), "num_shards": self.num_shards}


def _agree(a: PseudoGT | str, b: PseudoGT | str, atol: float) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return all(np.allclose(x, y, rtol=1e-5, atol=atol) for x, y in (
        (a.pose_rotvec, b.pose_rotvec), (a.betas, b.betas), (a.transl_m, b.transl_m),
        (a.focal_px, b.focal_px), (a.princpt_px, b.princpt_px)))


def _collect(shards: list[Shard], atol: float) -> tuple[dict[str, PseudoGT | str], Counter, list[str]]:
    """First value per id (entry or skip reason), extra agreeing copies, and conflict descriptions."""
    first: dict[str, tuple[PseudoGT | str, Path]] = {}
    copies: Counter = Counter()
    conflicts: list[str] = []
    for shard in shards:
        for sid in shard.sample_ids:
            value = shard.entries[sid] if sid in shard.entries else shard.skipped[sid]
            if sid not in first:
                first[sid] = (value, shard.path)
            elif _agree(first[sid][0], value, atol):
                copies[sid] += 1
            else:
                conflicts.append(f"{sid} ({first[sid][1].name} vs {shard.path.name})")
    return {sid: v for sid, (v, _) in first.items()}, copies, conflicts


def merge_shards(shards_dir: str | Path, expected_ids: set[str], skipped: dict[str, str],
                 out_file: str | Path, run_key: str | None = None, dup_atol: float = 1e-5) -> MergeReport:
    """Merge all shards into one NeuralAnnot JSON, checking each input id appears exactly once.

    Every id of ``expected_ids`` must be either annotated (in some shard) or skipped with a non-empty
    reason (``skipped``, e.g. ``dataset.skipped``, or a shard's predicted-but-unusable list), and
    nothing else may appear. A repeated id is accepted only with agreeing values (module docstring).

    Args:
        shards_dir: folder of ``rank*-*.json`` shards.
        expected_ids: every input sample id (the dataset's records *and* its skipped annotations).
        skipped: ``{sample_id: reason}`` of the inputs not sent to prediction.
        out_file: merged output, written atomically, keys in numeric order (:func:`write_pseudo_gt`).
        run_key: when given, every shard must carry it.
        dup_atol: absolute tolerance for a repeated id's values to count as the same prediction.

    Returns:
        :class:`MergeReport`.

    Raises:
        ValueError: missing ids, unexpected ids, ids both annotated and skipped, conflicting duplicates,
            empty skip reasons or malformed / stale shards; the message gives the counts and lists up to
            20 offending ids of each kind. Nothing is written then.
    """
    shards = read_shards(shards_dir, run_key)
    values, copies, conflicts = _collect(shards, dup_atol)
    expected = {str(s) for s in expected_ids}
    given_skips = {str(k): v for k, v in skipped.items()}
    problems = []
    no_reason = [s for s, r in given_skips.items() if not isinstance(r, str) or not r.strip()]
    both = set(values) & set(given_skips)
    missing = expected - set(values) - set(given_skips)
    unexpected = (set(values) | set(given_skips)) - expected
    for label, ids in (("missing (neither annotated nor skipped)", missing), ("unexpected", unexpected),
                       ("both annotated and skipped", both), ("skipped without a reason", no_reason)):
        if ids:
            problems.append(f"{len(ids)} {label}: {_listed(ids)}")
    if conflicts:
        more = f" ... (+{len(conflicts) - MAX_LISTED} more)" if len(conflicts) > MAX_LISTED else ""
        problems.append(f"{len(conflicts)} conflicting duplicates: {'; '.join(conflicts[:MAX_LISTED])}{more}")
    if problems:
        raise ValueError(f"merge_shards({shards_dir}): {len(expected)} expected ids, {len(shards)} shards; "
                         + "; ".join(problems))
    entries = {sid: v for sid, v in values.items() if isinstance(v, PseudoGT)}
    all_skips = {**given_skips, **{sid: v for sid, v in values.items() if isinstance(v, str)}}
    write_pseudo_gt(out_file, entries)
    all_skips = dict(sorted(all_skips.items(), key=lambda kv: _id_order(kv[0])))
    report = MergeReport(Path(out_file), len(expected), len(entries), all_skips, dict(copies), len(shards))
    log.info("merged %d shards: %d annotated, %d skipped, %d duplicate copies -> %s", len(shards),
             report.annotated, len(report.skipped), sum(copies.values()), out_file)
    return report


def load_overlay_inputs(shards_dir: str | Path, run_key: str | None = None) -> dict[str, Any]:
    """The overlay inputs kept in the shards, shaped like a merged ``predict_step`` output.

    Returns:
        ``{"sample_id": [aid, ...] (numeric order, first occurrence), "image_path": [...],
        "kp2d_img_px": (N, J, 2), "kp2d_pred_img_px": (N, J, 2), "kp2d_mask": (N, J)}`` (tensors,
        original-image pixels); keys absent from the shards are left out. This is what
        :func:`annot.annotator.report.write_overlays` reads.
    """
    extras: dict[str, dict[str, Any]] = {}
    for shard in read_shards(shards_dir, run_key):
        for sid, values in shard.extras.items():
            extras.setdefault(sid, values)
    ids = sorted(extras, key=_id_order)
    out: dict[str, Any] = {"sample_id": ids}
    for key in EXTRA_KEYS:
        if ids and all(key in extras[s] for s in ids):
            column = [extras[s][key] for s in ids]
            out[key] = column if isinstance(column[0], str) else torch.tensor(column, dtype=torch.float32)
    return out


# --------------------------------------------------------------------------- running it
def _run_sharded(module: pl.LightningModule, dataset: Dataset, out_dir: str | Path,
                 trainer_kwargs: dict[str, Any] | None, batch_size: int, batches_per_shard: int,
                 num_workers: int, run_key: str, discard_stale: bool) -> tuple[Path, pl.Trainer]:
    shards_dir = Path(out_dir) / SHARDS_SUBDIR
    if discard_stale:
        discard_stale_shards(shards_dir, run_key)
    remaining = remaining_indices(dataset, shards_dir, run_key)
    kwargs = {**PREDICT_TRAINER_DEFAULTS, **(trainer_kwargs or {})}
    writer = ShardedPseudoGTWriter(out_dir, batches_per_shard, run_key)
    kwargs["callbacks"] = [*list(kwargs.get("callbacks") or []), writer]
    trainer = pl.Trainer(**kwargs)
    total = len(dataset_sample_ids(dataset))
    if not remaining:
        log.info("sharded predict: all %d samples already in %s", total, shards_dir)
        return shards_dir, trainer
    indices = pad_for_ranks(remaining, trainer.num_devices * trainer.num_nodes)
    log.info("sharded predict: %d of %d samples remaining -> %s", len(remaining), total, shards_dir)
    loader = DataLoader(Subset(dataset, indices), batch_size=max(1, min(batch_size, len(indices))),
                        shuffle=False, num_workers=num_workers, worker_init_fn=worker_init_fn)
    trainer.predict(module, loader, return_predictions=False)
    trainer.strategy.barrier("predict_sharded")  # every rank's last shard is on disk before a merge
    return shards_dir, trainer


def predict_sharded(module: pl.LightningModule, dataset: Dataset, out_dir: str | Path,
                    trainer_kwargs: dict[str, Any] | None = None, batch_size: int = 64,
                    batches_per_shard: int = 64, num_workers: int = 0, run_key: str = "",
                    discard_stale: bool = False) -> Path:
    """Run, or resume, sharded prediction of ``module`` over ``dataset``; returns ``<out_dir>/shards``.

    The items already covered by finished shards are removed (:func:`remaining_indices`) before the
    DataLoader is built; Lightning then splits the rest over the ranks (``UnrepeatedDistributedSampler``)
    and each rank's :class:`ShardedPseudoGTWriter` writes its shards. Call it the same way on every rank
    (``strategy="ddp"`` relaunches the script; ``"ddp_spawn"`` runs it once and spawns the ranks); merge
    afterwards on global rank zero (:func:`annotate_sharded` does both).

    Args:
        module: an image-mode :class:`annot.annotator.module.AnnotatorModule` (or anything whose ``predict_step``
            returns the same fields).
        dataset: items with a ``sample_id`` (:func:`dataset_sample_ids`); no augmentation.
        out_dir: run folder (shards in ``out_dir/shards``).
        trainer_kwargs: ``pl.Trainer`` arguments (accelerator, devices, strategy, precision, callbacks...),
            over :data:`PREDICT_TRAINER_DEFAULTS`.
        batch_size: items per batch per rank.
        batches_per_shard: see :class:`ShardedPseudoGTWriter`.
        num_workers: DataLoader workers.
        run_key: fingerprint of model + data; shards with another key raise unless ``discard_stale``.
        discard_stale: delete shards written under another ``run_key`` first.

    Raises:
        ValueError: see :func:`remaining_indices` and :class:`ShardedPseudoGTWriter`.
    """
    return _run_sharded(module, dataset, out_dir, trainer_kwargs, batch_size, batches_per_shard, num_workers,
                        run_key, discard_stale)[0]


def annotate_sharded(module: pl.LightningModule, dataset: Dataset, out_dir: str | Path,
                     trainer_kwargs: dict[str, Any] | None = None, batch_size: int = 64,
                     batches_per_shard: int = 64, num_workers: int = 0, run_key: str = "",
                     discard_stale: bool = False, out_file: str | Path | None = None) -> MergeReport | None:
    """:func:`predict_sharded`, then :func:`merge_shards` on global rank zero.

    The expected ids are the dataset's sample ids plus ``dataset.skipped`` (its annotations skipped
    with a reason at load time). Writes ``out_file`` (default ``<out_dir>/pseudo_gt.json``).

    Returns:
        The :class:`MergeReport` on global rank zero, None on the other ranks.

    Raises:
        ValueError: see :func:`predict_sharded` and :func:`merge_shards`.
    """
    shards_dir, trainer = _run_sharded(module, dataset, out_dir, trainer_kwargs, batch_size,
                                       batches_per_shard, num_workers, run_key, discard_stale)
    if not trainer.is_global_zero:
        return None
    skipped = dict(getattr(dataset, "skipped", {}) or {})
    expected = set(dataset_sample_ids(dataset)) | set(skipped)
    out_file = out_file or Path(out_dir) / "pseudo_gt.json"
    return merge_shards(shards_dir, expected, skipped, out_file, run_key=run_key)
