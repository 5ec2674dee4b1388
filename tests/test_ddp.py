"""DDP on CPU (2 processes, gloo): annotator training, sharded prediction, merge, resume; and a real kill.

Slow: each ``ddp_spawn`` starts two fresh Python processes. On the real COCO samples (14 annotations:
12 people, 2 without keypoints) a ResNet-18 in-the-wild annotator (64x48 crops, no VPoser) trains a few
steps on both ranks, then predicts on both ranks through :class:`annot.annotator.sharding.ShardedPseudoGTWriter`.
The merged pseudo-GTs are checked against a single-process prediction with the same weights.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from annot.annotator.sharding import annotate_sharded, read_shards
from annot.io.export import pseudo_gts_from_predictions, read_pseudo_gt
from tests.test_sharding import FakeDataset, FakeModule

REPO = Path(__file__).resolve().parents[1]
COCO = REPO.parent / "shared" / "data" / "coco_samples"
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
INPUT_HW = (64, 48)
EMPTY_IDS = {"1202706", "508900"}  # the two annotations without keypoints
DDP = {"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}

pytestmark = pytest.mark.slow


class OneThread(pl.Callback):
    """Each spawned rank uses one intra-op thread (2 ranks share 2 CPU cores)."""

    def setup(self, trainer, pl_module, stage):
        torch.set_num_threads(1)


class ParamChecksum(pl.Callback):
    """After training, each rank writes the sum of its parameters to ``<folder>/rank<r>.txt``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, trainer, pl_module):
        total = sum(float(p.detach().double().sum()) for p in pl_module.parameters())
        (self.folder / f"rank{trainer.global_rank}.txt").write_text(repr(total))


def _checksum(module: torch.nn.Module) -> float:
    return sum(float(p.detach().double().sum()) for p in module.parameters())


def _coco():
    """The 14 COCO sample annotations as 64x48 crops, no augmentation."""
    from annot.data.coco import COCOKeypoints

    return COCOKeypoints(root=COCO, ann_file="test_coco.json", input_hw=INPUT_HW, body_model_path=str(FREE))


def _single_process_reference(module, dataset) -> dict:
    module.eval()
    entries = {}
    with torch.no_grad():
        for i, batch in enumerate(DataLoader(dataset, batch_size=4, shuffle=False)):
            entries.update(pseudo_gts_from_predictions(module.predict_step(batch, i)))
    return entries


@pytest.mark.skipif(not COCO.is_dir(), reason=f"COCO samples not found at {COCO}")
@pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")
@pytest.mark.filterwarnings("ignore")
def test_ddp_training_then_sharded_prediction(tmp_path):
    from annot.annotator.module import AnnotatorModule

    pl.seed_everything(0, verbose=False)
    module = AnnotatorModule(mode="itw", body_model_type="free", body_model_path=str(FREE), backbone_depth=18,
                             hidden_dim=32, input_hw=INPUT_HW, kp2d_convention="coco17", pose_prior="none",
                             lr=1e-3)
    train_set, predict_set = _coco(), _coco()
    assert len(train_set) == 12 and set(train_set.skipped) == EMPTY_IDS
    before = _checksum(module)

    sums = tmp_path / "sums"
    sums.mkdir()
    trainer = pl.Trainer(**DDP, max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[OneThread(), ParamChecksum(sums)])
    trainer.fit(module, DataLoader(train_set, batch_size=4, shuffle=True))
    rank_sums = [float((sums / f"rank{r}.txt").read_text()) for r in (0, 1)]
    assert rank_sums[0] == pytest.approx(rank_sums[1], abs=1e-6)  # gradients were all-reduced
    assert abs(rank_sums[0] - before) > 1e-3  # and training moved the weights
    assert _checksum(module) == pytest.approx(rank_sums[0], abs=1e-6)  # spawn returned rank 0's weights

    out = tmp_path / "annotate"
    report = annotate_sharded(module, predict_set, out, {**DDP, "callbacks": [OneThread()]}, batch_size=4,
                              batches_per_shard=1)
    shards = read_shards(out / "shards")
    assert sorted(s.path.name for s in shards) == [f"rank0{r}-0000{n}.json" for r in (0, 1) for n in (0, 1)]
    per_rank = [sorted(sid for s in shards if s.rank == r for sid in s.sample_ids) for r in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == 6 and not set(per_rank[0]) & set(per_rank[1])
    assert (report.expected, report.annotated, report.duplicates) == (14, 12, {})
    assert set(report.skipped) == EMPTY_IDS and all(report.skipped.values())

    merged = read_pseudo_gt(out / "pseudo_gt.json")
    reference = _single_process_reference(module, predict_set)
    assert set(merged) == set(reference) == {r.sample_id for r in predict_set.records}
    for aid, entry in merged.items():
        ref = reference[aid]
        for got, want in ((entry.pose_rotvec, ref.pose_rotvec), (entry.betas, ref.betas),
                          (entry.transl_m, ref.transl_m), (entry.focal_px, ref.focal_px),
                          (entry.princpt_px, ref.princpt_px)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=aid)

    # rank 1 "died": its shards are gone; the resumed 2-rank run re-predicts exactly those 6 people
    for shard in shards:
        if shard.rank == 1:
            shard.path.unlink()
    (out / "pseudo_gt.json").unlink()
    again = annotate_sharded(module, predict_set, out, {**DDP, "callbacks": [OneThread()]}, batch_size=4,
                             batches_per_shard=1)
    kept = {s.path.name for s in shards if s.rank == 0}
    new = [s for s in read_shards(out / "shards") if s.path.name not in kept]
    assert sorted(sid for s in new for sid in s.sample_ids) == per_rank[1]
    assert {s.rank for s in new} == {0, 1}  # the remainder was split over both ranks
    assert again.annotated == 12 and again.duplicates == {} and set(again.skipped) == EMPTY_IDS
    resumed = read_pseudo_gt(out / "pseudo_gt.json")
    for aid in per_rank[1]:
        np.testing.assert_allclose(resumed[aid].pose_rotvec, merged[aid].pose_rotvec, rtol=1e-4, atol=1e-4)


KILL_SCRIPT = """
import sys, time
import torch
from tests.test_sharding import FakeDataset, FakeModule
from annot.annotator.sharding import predict_sharded

class Slow(FakeModule):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        time.sleep(0.4)
        return super().predict_step(batch, batch_idx, dataloader_idx)

torch.set_num_threads(1)
predict_sharded(Slow(), FakeDataset([str(i) for i in range(1, 41)]), sys.argv[1],
                {"accelerator": "cpu", "devices": 1}, batch_size=2, batches_per_shard=1)
"""


@pytest.mark.filterwarnings("ignore")
def test_sigkilled_prediction_resumes_without_loss_or_repeat(tmp_path):
    """A real SIGKILL midway (no Python cleanup); the resumed run predicts only the unfinished ids."""
    ids = [str(i) for i in range(1, 41)]
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while len(list((out / "shards").glob("rank*.json"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no shard appeared in 180 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {sid for s in read_shards(out / "shards") for sid in s.sample_ids}
    assert 6 <= len(finished) < 40  # killed midway

    module = FakeModule()
    cpu = {"accelerator": "cpu", "devices": 1}
    report = annotate_sharded(module, FakeDataset(ids), out, cpu, batch_size=2, batches_per_shard=1)
    # nothing finished is predicted again
    assert sorted(module.calls, key=int) == [s for s in ids if s not in finished]
    assert report.annotated == 40 and report.duplicates == {}
    reference = annotate_sharded(FakeModule(), FakeDataset(ids), tmp_path / "ref", cpu, batch_size=2)
    assert report.out_file.read_text() == reference.out_file.read_text()
