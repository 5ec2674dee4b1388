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

import shutil
from pathlib import Path

import pytest
import torch

from annot.data.mixing import MixedBatchSampler
from tests.helpers import FREE, REPO

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


# ----------------------------------------------------------------------------- the pipeline, interrupted
KILL_STEP = 3


class Killed(RuntimeError):
    """Stands for a kill at a step (raised from a callback, so the rest of the stage never runs)."""


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    if not FREE.is_file():
        pytest.skip(f"free body model not baked at {FREE} (make setup)")
    from annot.data.fixtures import fixture_writer

    root = tmp_path_factory.mktemp("mixed_data")
    return {"h36m": fixture_writer("h36m")(root / "h36m", body_model_path=str(FREE)),
            "coco": fixture_writer("coco")(root / "coco", body_model_path=str(FREE))}


def _config(fixtures: dict[str, Path], out: Path, workers: int = 0):
    from annot.annotator.config import AnnotateConfig
    from annot.config import load_config

    return load_config(AnnotateConfig, None, [
        "body_model.model_type=free", f"body_model.path={FREE}", f"data.root={fixtures['coco']}",
        "data.ann_file=annotations/person_keypoints_train2017.json", "data.img_dir=images/train2017",
        "data.input_hw=[64,48]", "data.convention=pose2pose33", "data.batch_size=4", "data.augment.enabled=true",
        f"data.num_workers={workers}", "auxiliary.h36m.dataset=h36m",
        f"auxiliary.h36m.config={REPO / 'configs/data/h36m.yaml'}", f"auxiliary.h36m.args.root={fixtures['h36m']}",
        "auxiliary.h36m.args.subjects=[1]",
        "aux_stage.max_steps=2", "aux_stage.batch_size=4", "aux_stage.hidden_dim=32",
        "aux_stage.joints3d_convention=pose2pose33", "prior.max_epochs=1", "prior.num_neurons=32",
        "algorithm.aux_ratio=0.5", "model.backbone_depth=18", "model.hidden_dim=32", "trainer.max_steps=6",
        "trainer.checkpoint_every_n_steps=2", "trainer.enable_progress_bar=false", "trainer.logger=csv",
        f"export.out_dir={out}", "export.overlays=false", "num_threads=1"])


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_mixed_stage_b_interrupted_and_rerun_is_bit_identical(fixtures, tmp_path, monkeypatch, one_thread, workers):
    """Augmentation on (its draws are per sample, seeded by ``(seed, epoch, index)``); with DataLoader
    workers too (slow)."""
    from annot.annotator.pipeline import run_annotate
    from annot.annotator.resume import StepCheckpoint

    reference = tmp_path / "reference"
    run_annotate(_config(fixtures, reference, workers))
    out = tmp_path / "resumed"
    out.mkdir()
    for done in ("stage_a_h36m", "prior"):  # same provenance: reused, only (b) and (c) run
        shutil.copytree(reference / done, out / done)

    original = StepCheckpoint.on_train_batch_end

    def kill_at_step(self, trainer, *args, **kwargs):
        original(self, trainer, *args, **kwargs)
        if trainer.global_step == KILL_STEP:
            raise Killed(f"killed at step {trainer.global_step}")

    with monkeypatch.context() as patch:
        patch.setattr(StepCheckpoint, "on_train_batch_end", kill_at_step)
        with pytest.raises(Killed):
            run_annotate(_config(fixtures, out, workers))
    b_dir = out / "stage_b_round1"
    resume = b_dir / "resume.ckpt"
    assert resume.is_file() and not (b_dir / "stage.json").exists()
    assert torch.load(resume, map_location="cpu", weights_only=False)["global_step"] == KILL_STEP - 1

    run_annotate(_config(fixtures, out, workers))
    assert not resume.exists()
    want, got = _weights(reference / "stage_b_round1" / "annotator.ckpt"), _weights(b_dir / "annotator.ckpt")
    assert want.keys() == got.keys()
    differ = [k for k in want if not torch.equal(want[k], got[k])]
    assert not differ, f"{len(differ)} of {len(want)} tensors differ after the resume, e.g. {differ[:3]}"
    assert (out / "pseudo_gt.json").read_bytes() == (reference / "pseudo_gt.json").read_bytes()
