"""DataModule for mixed training: datasets by config, exact per-batch ratios, DDP-correct shares.

The *global* batch size (e.g. 192 = 96 H36M + 96 COCO, Three Recipes) is split across ranks in
:meth:`MixedDataModule.setup`; the per-rank batches then have the exact composition of
:func:`annot.data.mixing.batch_composition` and the ranks draw disjoint shares
(:class:`annot.data.mixing.MixedBatchSampler`). Build the Trainer with ``use_distributed_sampler=False``
so Lightning does not wrap the sampler a second time.

Follows the Lightning DataModule split of the lightning-hydra-template (``setup`` divides the global
batch by ``trainer.world_size`` and raises when it does not divide; style.md §1).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from annot.app.runtime import worker_init_fn
from annot.data.mixing import MixedBatchSampler, build_mixed_dataset
from annot.data.registry import build_dataset


def build_datasets(specs: Mapping[str, Mapping[str, Any]], **common: Any) -> dict[str, Dataset]:
    """Instantiate datasets from ``{name: {"dataset": registry_name, <loader args>...}}``.

    ``common`` arguments (e.g. ``input_hw``, ``convention``, ``augment``, ``seed``) are passed to every
    loader unless its spec overrides them. Each dataset logs its ``loaded N, skipped M`` line.

    Raises:
        ValueError: unknown registry name (the message lists the registered ones).
    """
    datasets = {}
    for name, spec in specs.items():
        args = dict(common)
        args.update({k: v for k, v in spec.items() if k != "dataset"})
        datasets[name] = build_dataset(spec.get("dataset", name), **args)
    return datasets


def split_global_batch(global_batch_size: int, world_size: int) -> int:
    """Per-rank batch size; ValueError when ``global_batch_size`` is not a multiple of ``world_size``."""
    if global_batch_size % world_size:
        raise ValueError(f"global batch size {global_batch_size} does not divide over {world_size} devices; "
                         f"choose a multiple of {world_size} (config key data.batch_size)")
    return global_batch_size // world_size


class MixedDataModule(pl.LightningDataModule):
    """Training loader over a mixture; predict/val loaders over single datasets.

    Args:
        train_datasets: ``{name: Dataset}`` mixed for training (order = ConcatDataset order).
        ratios: ``{name: ratio}`` per-batch ratios (normalised; exact counts per batch).
        global_batch_size: samples per optimiser step over all ranks.
        num_batches_per_epoch: epoch length in batches per rank.
        num_workers: DataLoader workers per rank.
        seed: sampler seed (draws depend on ``(seed, epoch, rank)``).
        start_step: the first training step (per rank, from epoch 0) to load: a run resumed from a
            checkpoint at global step ``k`` passes ``k`` and continues the uninterrupted run's batches
            (:class:`annot.data.mixing.MixedBatchSampler`).
        predict_datasets: ``{name: Dataset}`` for ``trainer.predict`` (each sample once, in order).

    Augmentation draws of :class:`annot.data.person.PersonCropDataset` depend on the dataset's epoch:
    :meth:`train_dataloader` sets it to the trainer's current epoch, so build the Trainer with
    ``reload_dataloaders_every_n_epochs=1`` to get fresh draws every epoch (worker processes hold copies
    of the datasets).
    """

    def __init__(self, train_datasets: Mapping[str, Dataset], ratios: Mapping[str, float], global_batch_size: int,
                 num_batches_per_epoch: int, num_workers: int = 0, seed: int = 0,
                 predict_datasets: Mapping[str, Dataset] | None = None, start_step: int = 0) -> None:
        super().__init__()
        self.train_datasets = dict(train_datasets)
        self.ratios = dict(ratios)
        self.global_batch_size = int(global_batch_size)
        self.num_batches_per_epoch = int(num_batches_per_epoch)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.predict_datasets = dict(predict_datasets or {})
        self.batch_size_per_rank = self.global_batch_size
        self.sampler: MixedBatchSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        self.batch_size_per_rank = split_global_batch(self.global_batch_size, world)
        if stage in (None, "fit") and self.train_datasets:
            self.sampler, self._concat = MixedBatchSampler.from_datasets(
                self.train_datasets, self.ratios, self.batch_size_per_rank, self.num_batches_per_epoch,
                seed=self.seed, rank=rank, world_size=world, start_step=self.start_step)

    def train_dataloader(self) -> DataLoader:
        if self.sampler is None:
            self.setup("fit")
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        for dataset in self.train_datasets.values():
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
        return DataLoader(self._concat, batch_sampler=self.sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, worker_init_fn=worker_init_fn)

    def predict_dataloader(self) -> list[DataLoader]:
        return [DataLoader(ds, batch_size=self.batch_size_per_rank, shuffle=False, num_workers=self.num_workers,
                           worker_init_fn=worker_init_fn)
                for ds in self.predict_datasets.values()]


class MixedTrainValDataModule(MixedDataModule):
    """:class:`MixedDataModule` plus named evaluation sets (the estimators' validation).

    A separate class because Lightning warns about a ``val_dataloader`` without a ``validation_step``
    (the annotator has none).

    Args:
        val_datasets: ``{name: Dataset}``; :meth:`val_dataloader` returns one unshuffled loader per set
            in this order (the estimators' ``val_set_names``), each sample once (every rank sees whole
            sets: validate on one device for exact numbers).
        val_batch_size: samples per validation batch (default: the per-rank training batch).
        *args, **kwargs: those of :class:`MixedDataModule`.
    """

    def __init__(self, *args: Any, val_datasets: Mapping[str, Dataset], val_batch_size: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.val_datasets = dict(val_datasets)
        self.val_batch_size = None if val_batch_size is None else int(val_batch_size)

    def val_dataloader(self) -> list[DataLoader]:
        """One unshuffled loader per validation set, in ``val_datasets`` order."""
        batch_size = self.val_batch_size or self.batch_size_per_rank
        return [DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=self.num_workers,
                           worker_init_fn=worker_init_fn)
                for ds in self.val_datasets.values()]


__all__ = ["MixedDataModule", "MixedTrainValDataModule", "build_datasets", "split_global_batch",
           "build_mixed_dataset"]
