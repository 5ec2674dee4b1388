"""Tests for annot.data.mixing: exact per-batch mixture composition, seeded rank-aware streams.

References are independent of the implementation: largest-remainder counts computed by hand in the
comments, dataset membership read back from hard-coded ConcatDataset boundaries or from the items
themselves, DDP shards compared with a single-process sampler, and a real Lightning Trainer.
"""
from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from annot.data.mixing import (
    MixedBatchSampler,
    batch_composition,
    build_mixed_dataset,
    log_mix_counts,
    normalise_ratios,
)

SPIN_RATIOS = {"h36m": 0.3, "itw": 0.6, "mpi_inf": 0.1}


def epoch_batches(sampler: MixedBatchSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return [list(batch) for batch in sampler]


def membership(index: int, boundaries: list[int]) -> int:
    """Dataset position of a global index, from hard-coded exclusive upper boundaries."""
    return next(d for d, end in enumerate(boundaries) if index < end)


# ----------------------------------------------------------------------------- batch_composition


@pytest.mark.parametrize(
    ("ratios", "batch_size", "expected"),
    [
        # 0.5 * 192 = 96 exactly.
        ({"h36m": 0.5, "coco": 0.5}, 192, {"h36m": 96, "coco": 96}),
        # quotas 19.2 / 38.4 / 6.4; floors 19 / 38 / 6 = 63; one left, remainders .2 / .4 / .4:
        # tie between itw and mpi_inf, first in order (itw) wins.
        (SPIN_RATIOS, 64, {"h36m": 19, "itw": 39, "mpi_inf": 6}),
        # same ratios, other order: the tie now goes to mpi_inf.
        ({"mpi_inf": 0.1, "itw": 0.6, "h36m": 0.3}, 64, {"mpi_inf": 7, "itw": 38, "h36m": 19}),
        # 64 / 3 = 21.33 each: floors 63, one left, three-way tie -> first.
        ({"a": 1.0, "b": 1.0, "c": 1.0}, 64, {"a": 22, "b": 21, "c": 21}),
        # unnormalised 1:3 of 10: quotas 2.5 / 7.5, tie -> first.
        ({"a": 1, "b": 3}, 10, {"a": 3, "b": 7}),
        # 0.98/0.01/0.01 of 8: quotas 7.84 / .08 / .08 -> 8 / 0 / 0 by largest remainder; then b and c
        # each take one from a (the only donor): 6 / 1 / 1.
        ({"a": 0.98, "b": 0.01, "c": 0.01}, 8, {"a": 6, "b": 1, "c": 1}),
        # batch smaller than the number of datasets: zeros allowed (quotas .67 each, ties -> first two).
        ({"a": 1, "b": 1, "c": 1}, 2, {"a": 1, "b": 1, "c": 0}),
        # 1/7 of 7 with a big partner: quotas 6 / 1 exactly.
        ({"big": 6, "small": 1}, 7, {"big": 6, "small": 1}),
    ],
)
def test_batch_composition_hand_computed(ratios, batch_size, expected):
    counts = batch_composition(ratios, batch_size)
    assert counts == expected
    assert list(counts) == list(expected)  # order of the input kept


def test_batch_composition_is_within_one_of_quota():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        ratios = {f"d{i}": float(r) for i, r in enumerate(rng.uniform(0.05, 1.0, n))}
        batch_size = int(rng.integers(8 * n, 300))
        counts = batch_composition(ratios, batch_size)
        total = sum(ratios.values())
        assert sum(counts.values()) == batch_size
        for name, count in counts.items():
            quota = ratios[name] / total * batch_size
            assert math.floor(quota) <= count <= math.ceil(quota)


def test_normalise_ratios():
    assert normalise_ratios({"a": 1, "b": 3}) == pytest.approx({"a": 0.25, "b": 0.75})
    assert list(normalise_ratios({"z": 2.0, "a": 2.0})) == ["z", "a"]


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), "half", None])
def test_bad_ratio_names_the_dataset(bad):
    with pytest.raises(ValueError, match="mpi_inf"):
        batch_composition({"h36m": 0.5, "mpi_inf": bad}, 16)
    with pytest.raises(ValueError, match="mpi_inf"):
        normalise_ratios({"h36m": 0.5, "mpi_inf": bad})


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        batch_composition({"a": 1.0}, batch_size)


def test_empty_ratios():
    with pytest.raises(ValueError, match="non-empty"):
        batch_composition({}, 4)


# ----------------------------------------------------------------------------- MixedBatchSampler

SIZES = {"h36m": 500, "itw": 300, "mpi_inf": 40}
BOUNDARIES = [500, 800, 840]  # ConcatDataset: h36m 0..499, itw 500..799, mpi_inf 800..839


def test_every_batch_has_exact_composition():
    sampler = MixedBatchSampler(SIZES, SPIN_RATIOS, batch_size=64, num_batches=20, seed=1)
    batches = epoch_batches(sampler)
    assert len(sampler) == 20 and len(batches) == 20
    for batch in batches:
        assert len(batch) == 64 and all(isinstance(i, int) for i in batch)
        per_dataset = Counter(membership(i, BOUNDARIES) for i in batch)
        assert per_dataset == {0: 19, 1: 39, 2: 6}
    h36m = [i for batch in batches for i in batch if i < 500]
    assert len(h36m) == len(set(h36m)) == 380  # 380 draws < 500: without replacement
    assert sampler.realised_counts() == {"h36m": 19 * 20, "itw": 39 * 20, "mpi_inf": 6 * 20}


def test_batches_are_shuffled_inside():
    sampler = MixedBatchSampler(SIZES, SPIN_RATIOS, batch_size=64, num_batches=20, seed=1)
    layouts = {tuple(membership(i, BOUNDARIES) for i in batch) for batch in epoch_batches(sampler)}
    assert (0,) * 19 + (1,) * 39 + (2,) * 6 not in layouts  # not grouped by dataset
    assert len(layouts) == 20  # a different interleaving every batch


def test_determinism_seed_and_epoch():
    def make(seed: int) -> MixedBatchSampler:
        return MixedBatchSampler(SIZES, SPIN_RATIOS, batch_size=16, num_batches=8, seed=seed)

    first = epoch_batches(make(5))
    assert epoch_batches(make(5)) == first
    assert epoch_batches(make(6)) != first
    sampler = make(5)
    epoch1 = epoch_batches(sampler, epoch=1)
    assert epoch1 != first
    assert set(map(tuple, epoch1)).isdisjoint(map(tuple, first))
    assert epoch_batches(sampler, epoch=0) == first  # set_epoch is the only state


def test_sampler_order_of_ratio_keys_follows_dataset_sizes():
    reordered = {"mpi_inf": 0.1, "h36m": 0.3, "itw": 0.6}
    sampler = MixedBatchSampler(SIZES, reordered, batch_size=64, num_batches=1)
    assert sampler.composition == {"h36m": 19, "itw": 39, "mpi_inf": 6}


def test_ranks_are_disjoint_and_cover_the_single_stream():
    sizes = {"a": 10_000, "b": 5_000}
    ratios = {"a": 0.75, "b": 0.25}
    world = 4
    ranks = [MixedBatchSampler(sizes, ratios, batch_size=8, num_batches=10, seed=3, rank=r, world_size=world)
             for r in range(world)]
    single = MixedBatchSampler(sizes, ratios, batch_size=8, num_batches=10 * world, seed=3, rank=0,
                               world_size=1)
    for epoch in (0, 1):
        per_rank = [epoch_batches(s, epoch) for s in ranks]
        reference = epoch_batches(single, epoch)
        flat = [[i for batch in batches for i in batch] for batches in per_rank]
        for x, y in combinations(flat, 2):  # 4 ranks x 10 batches x 6 draws < 10_000, x 2 < 5_000
            assert set(x).isdisjoint(y)
        assert Counter(i for f in flat for i in f) == Counter(i for batch in reference for i in batch)
        for r, batches in enumerate(per_rank):  # rank r step t is batch t*world + r of one process
            assert batches == reference[r::world]


def test_small_dataset_cycles_through_all_indices():
    sizes = {"big": 1000, "small": 7}
    sampler = MixedBatchSampler(sizes, {"big": 0.5, "small": 0.5}, batch_size=4, num_batches=10, seed=0)
    small = Counter(i - 1000 for batch in epoch_batches(sampler) for i in batch if i >= 1000)
    # 10 batches x 2 = 20 draws of 7 samples: each 2 or 3 times, 20 - 2*7 = 6 of them 3 times.
    assert sorted(small) == list(range(7))
    assert sorted(Counter(small.values()).items()) == [(2, 1), (3, 6)]


def test_each_cycle_is_a_fresh_permutation():
    sizes = {"big": 1000, "small": 7}
    sampler = MixedBatchSampler(sizes, {"big": 0.75, "small": 0.25}, batch_size=4, num_batches=21, seed=0)
    assert sampler.composition == {"big": 3, "small": 1}  # one small draw per batch: stream order visible
    stream = [i - 1000 for batch in epoch_batches(sampler) for i in batch if i >= 1000]
    cycles = [stream[0:7], stream[7:14], stream[14:21]]
    assert all(sorted(c) == list(range(7)) for c in cycles)  # every cycle is a full permutation
    assert len({tuple(c) for c in cycles}) == 3  # reshuffled every cycle


def test_small_dataset_cycles_across_ranks():
    sizes = {"big": 1000, "small": 7}
    draws = Counter()
    for rank in range(2):
        sampler = MixedBatchSampler(sizes, {"big": 0.5, "small": 0.5}, batch_size=4, num_batches=5,
                                    seed=0, rank=rank, world_size=2)
        draws.update(i - 1000 for batch in epoch_batches(sampler) for i in batch if i >= 1000)
    assert sorted(Counter(draws.values()).items()) == [(2, 1), (3, 6)]  # same 20 draws split in two


def test_epochs_continue_the_stream():
    sampler = MixedBatchSampler({"a": 30, "b": 1000}, {"a": 0.5, "b": 0.5}, batch_size=4, num_batches=5)
    seen = Counter()
    for epoch in range(3):  # 3 epochs x 5 batches x 2 = 30 draws of "a": exactly one pass
        seen.update(i for batch in epoch_batches(sampler, epoch) for i in batch if i < 30)
    assert seen == Counter(range(30))


def test_indices_fetch_from_the_concat_dataset():
    names_sizes = {"h36m": 23, "coco": 11, "mpii": 5}
    datasets = {name: TensorDataset(torch.full((n,), d), torch.arange(n))
                for d, (name, n) in enumerate(names_sizes.items())}
    sampler, concat = MixedBatchSampler.from_datasets(
        datasets, {"h36m": 2.0, "coco": 1.0, "mpii": 1.0}, batch_size=8, num_batches=12, seed=4)
    assert len(concat) == 39 and sampler.dataset_sizes == names_sizes
    loader = DataLoader(concat, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == 12
    for dataset_id, local in batches:
        assert Counter(dataset_id.tolist()) == {0: 4, 1: 2, 2: 2}
        sizes = torch.tensor(list(names_sizes.values()))
        assert bool((local < sizes[dataset_id]).all())
    # every mpii sample (5) is drawn 24 / 5 -> 4 or 5 times
    mpii = Counter(int(i) for d, loc in batches for i, dd in zip(loc, d) if dd == 2)
    assert sorted(mpii) == list(range(5)) and set(mpii.values()) <= {4, 5}


def test_build_mixed_dataset_errors():
    with pytest.raises(ValueError, match="'coco'.*empty"):
        build_mixed_dataset({"h36m": TensorDataset(torch.zeros(3)), "coco": TensorDataset(torch.zeros(0))})
    with pytest.raises(ValueError, match="non-empty"):
        build_mixed_dataset({})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratios": {"h36m": 0.5, "itw": 0.5}}, "mpi_inf"),
        ({"ratios": {**SPIN_RATIOS, "lsp": 0.1}}, "lsp"),
        ({"ratios": {**SPIN_RATIOS, "itw": float("nan")}}, "itw"),
        ({"dataset_sizes": {**SIZES, "itw": 0}}, "itw"),
        ({"batch_size": 2}, "mpi_inf"),
        ({"num_batches": 0}, "num_batches"),
        ({"seed": -1}, "seed"),
        ({"rank": 4, "world_size": 4}, "rank"),
    ],
)
def test_sampler_errors(kwargs, match):
    args = {"dataset_sizes": SIZES, "ratios": SPIN_RATIOS, "batch_size": 16, "num_batches": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        MixedBatchSampler(**args)


def test_rank_defaults_without_process_group():
    sampler = MixedBatchSampler(SIZES, SPIN_RATIOS, batch_size=16, num_batches=4)
    assert (sampler.rank, sampler.world_size) == (0, 1)


# ----------------------------------------------------------------------------- Lightning


class _Recorder(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        (index,) = batch
        self.seen.append(index.tolist())
        log_mix_counts(self, self.trainer.train_dataloader.batch_sampler)
        return (self.weight * index.float()).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_lightning_sets_epoch_and_logs_mix(tmp_path):
    datasets = {"a": TensorDataset(torch.arange(50)), "b": TensorDataset(torch.arange(50, 80))}
    sampler, concat = MixedBatchSampler.from_datasets(datasets, {"a": 0.5, "b": 0.5}, batch_size=4,
                                                      num_batches=3, seed=2)
    reference = [batch for epoch in (0, 1) for batch in epoch_batches(sampler, epoch)]
    sampler.set_epoch(0)
    module = _Recorder()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, use_distributed_sampler=False,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module, DataLoader(concat, batch_sampler=sampler))
    assert module.seen == reference  # the fit loop reached set_epoch(1) through ``.sampler``
    assert trainer.callback_metrics["train/mix/a"].item() == 6.0  # 3 batches x 2 in the last epoch
    assert trainer.callback_metrics["train/mix/b"].item() == 6.0


def test_lightning_refuses_to_replace_the_sampler():
    # What Lightning 2.6 does under DDP when use_distributed_sampler=True is left on: it tries to
    # inject a DistributedSampler into the batch sampler. It must fail loudly, not shard twice.
    from pytorch_lightning.utilities.data import _update_dataloader

    sampler, concat = MixedBatchSampler.from_datasets({"a": TensorDataset(torch.arange(10))}, {"a": 1.0},
                                                      batch_size=2, num_batches=2)
    loader = DataLoader(concat, batch_sampler=sampler)
    with pytest.raises(TypeError, match="use_distributed_sampler=False"):
        _update_dataloader(loader, DistributedSampler(concat, num_replicas=2, rank=0))
