"""Dataset mixtures written as config, with an EXACT per-batch composition.

A mixture is a plain mapping ``dataset name -> ratio`` (e.g. ``{"h36m": 0.5, "coco": 0.5}``, the
NeuralAnnot / Three Recipes "half MoCap, half in-the-wild" batches, or SPIN's 0.3 / 0.6 / 0.1 split,
reference-spec B.8). Ratios are positive and are normalised to sum to one.

How this differs from the public code it replaces (style.md §8, §10.5, §11.5):

- open-mmlab/mmhuman3d ``mmhuman3d/data/datasets/mixed_dataset.py::MixedDataset`` (config
  ``partition=[...]``) weights every sample by ``p_i / len(ds_i)`` and draws through
  ``WeightedRandomSampler``: the ratios hold only in expectation, and ``__getitem__`` ignores ``idx``.
- nkolot/SPIN ``datasets/mixed_dataset.py::MixedDataset`` picks the dataset of every item with
  ``np.random.rand()`` against hard-coded ratios: in expectation only, unseeded, per worker.
- mks0601 Hand4Whole ``data/dataset.py::MultipleDatasets`` (reference-spec B.4) concatenates, with
  ``make_same_len=True`` cycling the shorter group (``idx % len``): no ratio at all beyond 1:1 in
  expectation over an epoch.

Here :func:`batch_composition` turns the ratios into integer counts per batch (largest remainder) and
:class:`MixedBatchSampler` yields batches of global ``ConcatDataset`` indices with exactly those
counts in every batch, shuffled within each dataset, cycling the short ones, seeded, rank-aware
under DDP, and resumable (``start_step``: a run resumed from a checkpoint continues the sequence of the
uninterrupted run). Public API::

    normalise_ratios(ratios) -> dict[str, float]
    batch_composition(ratios, batch_size) -> dict[str, int]
    build_mixed_dataset(datasets) -> (ConcatDataset, sizes)
    MixedBatchSampler(dataset_sizes, ratios, batch_size, num_batches, seed=0, rank=None, world_size=None,
                      start_step=0)
    MixedBatchSampler.from_datasets(datasets, ratios, ...) -> (sampler, ConcatDataset)
    log_mix_counts(module, sampler) -> dict[str, float]     # logs ``train/mix/<name>``
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import ConcatDataset, Dataset, Sampler

#: Stream tags mixed into the seeds so the draw and the in-batch shuffle streams never coincide.
_STREAM_DRAWS = 0
_STREAM_SHUFFLE = 1


def _exact_ratios(ratios: Mapping[str, Any]) -> dict[str, Fraction]:
    """Validate ``ratios`` and return them normalised as exact fractions (same key order).

    Each ratio is read as the decimal number it prints as (``Fraction(repr(float(r)))``), so that
    0.3 / 0.6 / 0.1 of 64 gives the quotas 19.2 / 38.4 / 6.4 exactly and the 38.4 vs 6.4 tie is a
    real tie (broken by order), not a floating-point accident.
    """
    if not isinstance(ratios, Mapping) or len(ratios) == 0:
        raise ValueError(f"mixture ratios must be a non-empty mapping dataset name -> ratio, got {ratios!r}")
    exact: dict[str, Fraction] = {}
    for name, ratio in ratios.items():
        try:
            value = float(ratio)
        except (TypeError, ValueError):
            raise ValueError(f"mixture ratio of dataset {name!r} is not a number: {ratio!r}") from None
        if not math.isfinite(value) or value <= 0.0:
            raise ValueError(f"mixture ratio of dataset {name!r} must be a finite number > 0, got {ratio!r}")
        exact[str(name)] = Fraction(repr(value))
    total = sum(exact.values())
    return {name: value / total for name, value in exact.items()}


def normalise_ratios(ratios: Mapping[str, Any]) -> dict[str, float]:
    """Validated mixture ratios divided by their sum, in the input order.

    Args:
        ratios: ``{dataset name: ratio}``; ratios are numbers > 0 (any scale, e.g. ``{"a": 1, "b": 3}``).

    Returns:
        ``{name: ratio / sum(ratios)}`` as floats summing to 1 (up to rounding).

    Raises:
        ValueError: empty mapping, or a ratio that is not a number, NaN, infinite or <= 0 (the message
            names the dataset).
    """
    return {name: float(value) for name, value in _exact_ratios(ratios).items()}


def _largest_remainder(quotas: list[Fraction], total: int) -> list[int]:
    """Floors of ``quotas`` plus one for the ``total - sum(floors)`` largest remainders (ties: first)."""
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _ensure_one_each(counts: list[int], quotas: list[Fraction]) -> list[int]:
    """Give every zero count one sample, taken from the donor (count >= 2) furthest above its quota."""
    counts = list(counts)
    for i, count in enumerate(counts):
        if count > 0:
            continue
        donors = [j for j, c in enumerate(counts) if c >= 2]
        donor = min(donors, key=lambda j: (-(counts[j] - quotas[j]), j))
        counts[donor] -= 1
        counts[i] = 1
    return counts


def batch_composition(ratios: Mapping[str, Any], batch_size: int) -> dict[str, int]:
    """Exact integer number of samples per dataset in one batch.

    Hamilton's largest-remainder method on the quotas ``q_i = r_i * batch_size`` (``r_i`` normalised,
    see :func:`normalise_ratios`): every dataset gets ``floor(q_i)``, and the samples left over go one
    each to the largest fractional parts ``q_i - floor(q_i)``; equal fractional parts are broken by the
    order of ``ratios`` (earlier first). Then, if ``batch_size >= len(ratios)``, every dataset that got
    0 receives 1, taken from the dataset with at least 2 that sits furthest above its quota (ties:
    earlier first), so no dataset of the mixture is silently dropped from the batches. With
    ``batch_size < len(ratios)`` zero counts are possible (:class:`MixedBatchSampler` refuses them).

    Examples (hand-computed): ``{"h36m": .5, "coco": .5}`` of 192 -> 96 / 96; SPIN's
    ``{"h36m": .3, "itw": .6, "mpi_inf": .1}`` of 64: quotas 19.2 / 38.4 / 6.4, floors 19 / 38 / 6
    (63), the one left goes to the first of the tied 0.4 remainders -> 19 / 39 / 6.

    Args:
        ratios: ``{dataset name: ratio > 0}``; the order matters only for ties.
        batch_size: samples per batch (per rank under DDP), >= 1.

    Returns:
        ``{name: count}`` in the order of ``ratios``, counts >= 0 summing to ``batch_size``.

    Raises:
        ValueError: bad ratio (names the dataset, see :func:`normalise_ratios`) or ``batch_size < 1``.
    """
    exact = _exact_ratios(ratios)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"mixture batch_size must be an integer >= 1, got {batch_size!r}")
    quotas = [value * int(batch_size) for value in exact.values()]
    counts = _largest_remainder(quotas, int(batch_size))
    if batch_size >= len(quotas):
        counts = _ensure_one_each(counts, quotas)
    return dict(zip(exact, counts))


def build_mixed_dataset(datasets: Mapping[str, Dataset]) -> tuple[ConcatDataset, dict[str, int]]:
    """Concatenate named datasets in the mapping's order.

    Dataset ``d`` occupies the global indices ``offset_d .. offset_d + size_d - 1`` of the returned
    ``ConcatDataset``, with ``offset_d`` the sum of the sizes before it; :class:`MixedBatchSampler`
    must be given the returned ``sizes`` (same order) to produce valid indices.

    Args:
        datasets: ``{name: map-style Dataset with __len__}``, e.g. ``{"h36m": ..., "coco": ...}``.

    Returns:
        ``(concat, sizes)`` with ``sizes = {name: len(dataset)}`` in the same order.

    Raises:
        ValueError: empty mapping, or a dataset without ``__len__`` or with no sample (names it).
    """
    if not isinstance(datasets, Mapping) or len(datasets) == 0:
        raise ValueError("build_mixed_dataset needs a non-empty mapping dataset name -> Dataset")
    sizes: dict[str, int] = {}
    for name, dataset in datasets.items():
        try:
            size = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(f"mixture dataset {name!r} has no __len__ (map-style datasets only)") from None
        if size < 1:
            raise ValueError(f"mixture dataset {name!r} is empty (0 samples); check its config / root")
        sizes[str(name)] = int(size)
    return ConcatDataset(list(datasets.values())), sizes


def _default_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values win; otherwise ``torch.distributed`` when initialised; otherwise (0, 1)."""
    initialised = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"MixedBatchSampler needs 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
        )
    return int(rank), int(world_size)


class MixedBatchSampler(Sampler[list[int]]):
    """Batch sampler over a ``ConcatDataset`` with the exact same dataset composition in every batch.

    Every batch holds ``batch_composition(ratios, batch_size)[name]`` samples of each dataset (global
    indices, ``offset = cumulative size`` as in :func:`build_mixed_dataset`), in a seeded random order
    inside the batch. Use it as ``DataLoader(concat, batch_sampler=sampler, num_workers=...)``.

    Draw streams. Dataset ``d`` (position in ``dataset_sizes``, size ``N_d``) has one infinite stream
    of local indices: the concatenation of permutations ``P_0, P_1, ...`` of ``range(N_d)``, where
    ``P_c`` is seeded by ``(seed, d, c)``. When a permutation is used up, the next (fresh) one starts,
    so a dataset smaller than its draws cycles through all its samples (each appears floor or ceil of
    draws / N_d times), like Hand4Whole's ``make_same_len`` but reshuffled every cycle. A batch that
    straddles two permutations may hold the same sample twice (at most ``k_d - 1`` repeats, only for
    datasets with fewer samples than draws). This rank's step ``s = epoch * num_batches + t``
    (batch ``t`` of epoch ``epoch``) is batch number ``G = s * world_size + rank`` globally, and batch
    ``G`` takes stream positions ``G*k_d .. G*k_d + k_d - 1`` of every dataset (``k_d`` its count per
    batch); its in-batch order is seeded by ``(seed, G)``. Consequences:

    - ranks take disjoint, contiguous blocks of the SAME stream: within an epoch no two ranks share a
      draw, and together they consume exactly what a single process would (rank ``r``'s step ``t`` is
      batch ``t*world_size + r`` of a ``world_size=1`` sampler with ``num_batches * world_size``
      batches);
    - epochs continue the stream instead of restarting it: ``set_epoch(e)`` changes the batches, and
      over successive epochs every sample of a dataset is drawn equally often (up to one), whereas
      reseeding each epoch would draw an independent random subset every epoch;
    - the whole sequence is a pure function of ``(seed, epoch, rank, world_size, sizes, ratios,
      batch_size, num_batches)``: no global RNG, identical on every run and every worker setting;
      :meth:`step_batch` gives the batch of any step ``s`` directly;
    - resume: with ``start_step=k`` iteration skips the steps ``s < k`` (for epoch ``k // num_batches``,
      batches ``k % num_batches ..`` are yielded; earlier epochs yield nothing), so a run restarted
      from a checkpoint at (per-rank) step ``k`` sees exactly the batches the uninterrupted run saw
      from step ``k`` on, as :class:`annot.annotator.resume.StepSampler` does for one dataset.
      ``len()`` stays ``num_batches``: Lightning sizes the epoch from it and counts the resumed
      epoch's batches from the checkpoint's batch index.

    Lightning. This is a *batch* sampler that shards by itself. Lightning must not replace it:
    build the Trainer with ``use_distributed_sampler=False`` (the name since Lightning 2.0; it was
    ``replace_sampler_ddp``) and pass ``rank=trainer.global_rank, world_size=trainer.world_size``.
    If it is left ``True`` under DDP, Lightning 2.6 raises a ``TypeError`` ("can't inject a
    (distributed) sampler into your batch sampler") rather than sharding twice; the class deliberately
    has no ``drop_last`` attribute so that this stays an error. Lightning's fit loop calls
    ``set_epoch`` on ``dataloader.batch_sampler.sampler`` at every epoch start; :attr:`sampler`
    returns ``self`` so that call reaches this object.

    Args:
        dataset_sizes: ``{name: size >= 1}`` in the ``ConcatDataset`` order (see
            :func:`build_mixed_dataset`).
        ratios: ``{name: ratio > 0}`` with exactly the names of ``dataset_sizes``; the composition is
            computed in the ``dataset_sizes`` order (which breaks ties).
        batch_size: samples per batch PER RANK, >= number of datasets.
        num_batches: epoch length in batches PER RANK (from config), >= 1; ``len(self)``.
        seed: non-negative integer.
        rank, world_size: this process's rank and the number of processes; ``None`` reads
            ``torch.distributed`` when it is initialised, else ``(0, 1)``.
        start_step: the first step (per rank, counted from epoch 0) to yield; a resumed run's global
            step (one optimiser step per batch). Default 0.

    Raises:
        ValueError: bad ratio or size (names the dataset), names of ``ratios`` and ``dataset_sizes``
            differ, ``batch_size`` smaller than the number of datasets, ``num_batches < 1``,
            negative seed or ``start_step``, or a rank outside ``[0, world_size)``.

    Sources: replaces mmhuman3d ``MixedDataset`` / SPIN ``MixedDataset`` (ratios in expectation only)
    and Hand4Whole ``MultipleDatasets`` (reference-spec B.4); style.md §8, §10.5.
    """

    def __init__(
        self,
        dataset_sizes: Mapping[str, int],
        ratios: Mapping[str, Any],
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        start_step: int = 0,
    ) -> None:
        self.dataset_sizes = self._check_sizes(dataset_sizes)
        self._check_names(self.dataset_sizes, ratios)
        ordered = {name: ratios[name] for name in self.dataset_sizes}
        self.composition = batch_composition(ordered, batch_size)
        starved = [name for name, count in self.composition.items() if count == 0]
        if starved:
            raise ValueError(
                f"MixedBatchSampler: batch_size {batch_size} is smaller than the {len(ordered)} datasets of "
                f"the mixture; dataset(s) {starved} would never be drawn"
            )
        if isinstance(num_batches, bool) or not isinstance(num_batches, (int, np.integer)) or num_batches < 1:
            raise ValueError(f"MixedBatchSampler: num_batches must be an integer >= 1, got {num_batches!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"MixedBatchSampler: seed must be a non-negative integer, got {seed!r}")
        if isinstance(start_step, bool) or not isinstance(start_step, (int, np.integer)) or start_step < 0:
            raise ValueError(f"MixedBatchSampler: start_step must be a non-negative integer, got {start_step!r}")
        self.ratios = normalise_ratios(ordered)
        self.batch_size = int(batch_size)
        self.num_batches = int(num_batches)
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.rank, self.world_size = _default_rank_world(rank, world_size)
        self.epoch = 0
        self._sizes = list(self.dataset_sizes.values())
        self._offsets = np.cumsum([0, *self._sizes])[:-1].tolist()
        self._counts: dict[str, int] = dict.fromkeys(self.dataset_sizes, 0)
        self._perm_cache: dict[int, tuple[int, np.ndarray]] = {}

    @staticmethod
    def _check_sizes(dataset_sizes: Mapping[str, int]) -> dict[str, int]:
        if not isinstance(dataset_sizes, Mapping) or len(dataset_sizes) == 0:
            raise ValueError("MixedBatchSampler: dataset_sizes must be a non-empty mapping name -> size")
        for name, size in dataset_sizes.items():
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
                raise ValueError(
                    f"MixedBatchSampler: dataset {name!r} has size {size!r}; need an integer >= 1"
                )
        return {str(name): int(size) for name, size in dataset_sizes.items()}

    @staticmethod
    def _check_names(sizes: Mapping[str, int], ratios: Mapping[str, Any]) -> None:
        if not isinstance(ratios, Mapping):
            raise ValueError(f"MixedBatchSampler: ratios must be a mapping name -> ratio, got {ratios!r}")
        missing = [name for name in sizes if name not in ratios]
        extra = [name for name in ratios if name not in sizes]
        if missing or extra:
            raise ValueError(
                f"MixedBatchSampler: mixture ratios and datasets differ: no ratio for {missing}, "
                f"ratio for unknown dataset(s) {extra}; datasets are {list(sizes)}"
            )

    @classmethod
    def from_datasets(
        cls,
        datasets: Mapping[str, Dataset],
        ratios: Mapping[str, Any],
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        start_step: int = 0,
    ) -> tuple[MixedBatchSampler, ConcatDataset]:
        """Build the ``ConcatDataset`` (:func:`build_mixed_dataset`) and its sampler in one call.

        Returns:
            ``(sampler, concat)``; use ``DataLoader(concat, batch_sampler=sampler)``.

        Raises:
            ValueError: as :func:`build_mixed_dataset` and the constructor.
        """
        concat, sizes = build_mixed_dataset(datasets)
        sampler = cls(sizes, ratios, batch_size, num_batches, seed=seed, rank=rank, world_size=world_size,
                      start_step=start_step)
        return sampler, concat

    @property
    def sampler(self) -> MixedBatchSampler:
        """``self``: Lightning calls ``set_epoch`` on ``dataloader.batch_sampler.sampler``."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (DDP / Lightning convention; call before iterating). Raises ValueError if < 0."""
        if epoch < 0:
            raise ValueError(f"MixedBatchSampler: epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Batches per epoch on this rank (``num_batches``)."""
        return self.num_batches

    def realised_counts(self) -> dict[str, int]:
        """Samples of each dataset yielded so far in the current pass (reset when iteration starts).

        With ``num_workers > 0`` the DataLoader fetches up to ``prefetch_factor * num_workers``
        batches ahead, so these counts lead the batches the model has consumed by that much.
        """
        return dict(self._counts)

    def _cycle_permutation(self, d: int, cycle: int) -> np.ndarray:
        cached = self._perm_cache.get(d)
        if cached is None or cached[0] != cycle:
            rng = np.random.default_rng([self.seed, _STREAM_DRAWS, d, cycle])
            cached = (cycle, rng.permutation(self._sizes[d]))
            self._perm_cache[d] = cached
        return cached[1]

    def _stream_slice(self, d: int, start: int, count: int) -> np.ndarray:
        """Local indices at positions ``start .. start+count-1`` of dataset ``d``'s draw stream."""
        size = self._sizes[d]
        parts, pos, end = [], start, start + count
        while pos < end:
            cycle, offset = divmod(pos, size)
            take = min(end - pos, size - offset)
            parts.append(self._cycle_permutation(d, cycle)[offset : offset + take])
            pos += take
        return np.concatenate(parts)

    def _batch(self, global_batch: int) -> list[int]:
        parts = [
            self._stream_slice(d, global_batch * count, count) + offset
            for d, (count, offset) in enumerate(zip(self.composition.values(), self._offsets))
        ]
        shuffle_rng = np.random.default_rng([self.seed, _STREAM_SHUFFLE, global_batch, 0])
        order = shuffle_rng.permutation(self.batch_size)
        return np.concatenate(parts)[order].tolist()

    def step_batch(self, step: int) -> list[int]:
        """The ``batch_size`` global indices of this rank's step ``step`` (``epoch * num_batches + t``)."""
        return self._batch(int(step) * self.world_size + self.rank)

    def __iter__(self) -> Iterator[list[int]]:
        """Yield this epoch's lists of ``batch_size`` global indices (Python ints) for this rank: its
        ``num_batches`` steps, less those before ``start_step``."""
        self._counts = dict.fromkeys(self.dataset_sizes, 0)
        first = self.epoch * self.num_batches
        for step in range(max(first, self.start_step), first + self.num_batches):
            batch = self.step_batch(step)
            for name, count in self.composition.items():
                self._counts[name] += count
            yield batch


def log_mix_counts(module: Any, sampler: MixedBatchSampler, prefix: str = "train/mix") -> dict[str, float]:
    """Log the sampler's realised per-dataset counts as ``<prefix>/<name>`` from a LightningModule.

    Call it from ``training_step``, e.g.
    ``log_mix_counts(self, self.trainer.train_dataloader.batch_sampler)``; it logs on step, not on
    epoch, from rank zero only (every rank has the same composition).

    Args:
        module: anything with Lightning's ``log_dict(dict, on_step=, on_epoch=, rank_zero_only=)``.
        sampler: the :class:`MixedBatchSampler` of the training DataLoader.
        prefix: metric name prefix (style.md §10.5: ``train/mix``).

    Returns:
        The logged ``{f"{prefix}/{name}": float(count)}``.
    """
    metrics = {f"{prefix}/{name}": float(count) for name, count in sampler.realised_counts().items()}
    module.log_dict(metrics, on_step=True, on_epoch=False, rank_zero_only=True)
    return metrics
