"""Sharded prediction: per-rank atomic shards, resume from finished shards, strict merge.

A fake annotator (no network, no body model) returns exactly the fields
:meth:`annot.annotator.module.AnnotatorModule.predict_step` returns, with values that are a known function of
the sample id, so the merged file can be checked against hand-computed cameras and against an
uninterrupted reference run.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset, Subset

from annot.annotator.sharding import (
    SKIP_NON_FINITE,
    ShardedPseudoGTWriter,
    annotate_sharded,
    dataset_sample_ids,
    load_overlay_inputs,
    merge_shards,
    pad_for_ranks,
    predict_sharded,
    read_shard,
    read_shards,
    remaining_indices,
)
from annot.io.export import read_pseudo_gt

CPU = {"accelerator": "cpu", "devices": 1}


# --------------------------------------------------------------------------- fakes
def fake_prediction(ids: list[str], nan_ids: tuple[str, ...] = ()) -> dict:
    """The fields of AnnotatorModule.predict_step for ``ids``; every value a function of the id."""
    k = torch.tensor([float(s) for s in ids])
    n = len(ids)
    scale = 2.0 + 0.1 * k
    crop_to_img = torch.zeros(n, 2, 3)
    crop_to_img[:, 0, 0] = crop_to_img[:, 1, 1] = scale
    crop_to_img[:, 0, 2], crop_to_img[:, 1, 2] = 10.0 * k, 5.0 * k
    pose = 0.01 * k[:, None, None] * torch.arange(72.0).reshape(1, 24, 3) / 72.0
    transl = torch.stack([0.1 * k, -0.05 * k, 5.0 + 0.01 * k], dim=1)
    for i, sid in enumerate(ids):
        if sid in nan_ids:
            transl[i, 2] = float("nan")
    kp = k[:, None, None] + torch.arange(34.0).reshape(1, 17, 2)
    betas = 0.1 * torch.arange(10.0)[None] + 1e-3 * k[:, None]
    return {"sample_id": list(ids), "pose_rotvec": pose, "betas": betas, "transl_m": transl,
            "focal_crop_px": torch.stack([500.0 + k, 510.0 + k], 1),
            "princpt_crop_px": torch.tensor([24.0, 32.0]).expand(n, 2).clone(), "crop_to_img": crop_to_img,
            "kp2d_err_img_px": 0.5 * k, "kp2d_loss_norm": torch.full((n,), 1e-3),
            "image_path": [f"/img/{s}.jpg" for s in ids], "kp2d_img_px": kp, "kp2d_pred_img_px": kp + 1.0,
            "kp2d_mask": torch.ones(n, 17)}


class FakeDataset(Dataset):
    """Items ``{"sample_id": id}``; ``sample_ids`` and ``skipped`` like a PersonCropDataset's."""

    def __init__(self, ids: list[str], skipped: dict[str, str] | None = None) -> None:
        self.sample_ids = list(ids)
        self.skipped = dict(skipped or {})

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index: int) -> dict:
        return {"sample_id": self.sample_ids[index]}


class Interrupted(RuntimeError):
    pass


class FakeModule(pl.LightningModule):
    """Records every sample id it is asked to predict; raises at batch ``fail_at`` when set."""

    def __init__(self, fail_at: int | None = None, nan_ids: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.fail_at, self.nan_ids = fail_at, nan_ids
        self.calls: list[str] = []

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        self.calls.extend(batch["sample_id"])
        if self.fail_at is not None and batch_idx == self.fail_at:
            raise Interrupted(f"simulated interruption at batch {batch_idx}")
        return fake_prediction(list(batch["sample_id"]), self.nan_ids)


def _ids(n: int) -> list[str]:
    return [str(i) for i in range(1, n + 1)]


def _writer(out: Path, rank: int, world: int = 2, **kw) -> ShardedPseudoGTWriter:
    """A writer set up as rank ``rank`` of ``world`` without a Trainer (a fake prediction stream)."""
    writer = ShardedPseudoGTWriter(out, **kw)
    writer.setup(SimpleNamespace(global_rank=rank, world_size=world), FakeModule(), "predict")
    return writer


def _feed(writer: ShardedPseudoGTWriter, batches: list[list[str]], **kw) -> None:
    for i, ids in enumerate(batches):
        writer.write_on_batch_end(None, None, fake_prediction(ids, **kw), None, None, i, 0)
    writer.flush()


# --------------------------------------------------------------------------- writing and merging
def test_sharded_predict_and_merge_each_id_once(tmp_path):
    ds = FakeDataset(_ids(10), skipped={"99": "no keypoints"})
    module = FakeModule()
    report = annotate_sharded(module, ds, tmp_path, CPU, batch_size=3, batches_per_shard=1)
    names = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert names == [f"rank00-{i:05d}.json" for i in range(4)]  # 3 + 3 + 3 + 1
    assert [read_shard(tmp_path / "shards" / n).sample_ids for n in names] == [
        ("1", "2", "3"), ("4", "5", "6"), ("7", "8", "9"), ("10",)]
    assert sorted(module.calls, key=int) == _ids(10)
    assert (report.expected, report.annotated, report.duplicates) == (11, 10, {})
    assert report.skipped == {"99": "no keypoints"}
    raw = json.loads((tmp_path / "pseudo_gt.json").read_text())
    assert list(raw) == _ids(10)  # numeric order: 9 before 10
    entry = read_pseudo_gt(tmp_path / "pseudo_gt.json")["7"]
    # hand-computed: s = 2.7, t = (70, 35); focal = s * (507, 517); princpt = s * (24, 32) + t
    np.testing.assert_allclose(entry.focal_px, [2.7 * 507, 2.7 * 517], rtol=1e-6)
    np.testing.assert_allclose(entry.princpt_px, [2.7 * 24 + 70, 2.7 * 32 + 35], rtol=1e-6)
    np.testing.assert_allclose(entry.transl_m, [0.7, -0.35, 5.07], rtol=1e-6)
    assert entry.quality["kp2d_err_px"] == pytest.approx(3.5)


def test_batches_per_shard_groups_batches(tmp_path):
    writer = _writer(tmp_path, rank=1, batches_per_shard=2)
    _feed(writer, [["1", "2"], ["3"], ["4", "5"]])
    assert [p.name for p in writer.written] == ["rank01-00000.json", "rank01-00001.json"]
    assert read_shard(writer.written[0]).sample_ids == ("1", "2", "3")
    assert read_shard(writer.written[1]).sample_ids == ("4", "5")


def test_padding_duplicates_are_accepted_and_counted(tmp_path):
    """DistributedSampler-style padding: rank 1 repeats id 1 with the same values (ranks run concurrently,
    so neither writer knows of the other's ids)."""
    rank0, rank1 = _writer(tmp_path, 0), _writer(tmp_path, 1)
    _feed(rank0, [["1", "3"], ["5"]])
    _feed(rank1, [["2", "4"], ["1"]])
    report = merge_shards(tmp_path / "shards", set(_ids(5)), {}, tmp_path / "m.json")
    assert report.annotated == 5 and report.duplicates == {"1": 1} and report.num_shards == 4
    assert list(json.loads((tmp_path / "m.json").read_text())) == _ids(5)


def test_writer_drops_ids_of_finished_shards(tmp_path):
    """Keep the first occurrence: a later writer never re-writes an id that a finished shard covers."""
    _feed(_writer(tmp_path, 0), [["1", "3"]])
    late = _writer(tmp_path, 1)
    _feed(late, [["2", "3"]])
    assert late.dropped_repeats == 1 and read_shard(late.written[0]).sample_ids == ("2",)


def test_conflicting_duplicate_raises_with_the_id(tmp_path):
    rank0, writer = _writer(tmp_path, 0), _writer(tmp_path, 1)
    _feed(rank0, [["1", "3"]])
    other = fake_prediction(["2", "3"])
    other["betas"][1] += 0.5  # id 3 predicted differently on rank 1
    writer.write_on_batch_end(None, None, other, None, None, 0, 0)
    writer.flush()
    pattern = r"1 conflicting duplicates: 3 \(rank00-00000.json vs rank01-00000.json\)"
    with pytest.raises(ValueError, match=pattern):
        merge_shards(tmp_path / "shards", set(_ids(3)), {}, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


@pytest.fixture
def three_shards(tmp_path):
    _feed(_writer(tmp_path, 0, world=1), [["1", "2"], ["3", "4"]])
    return tmp_path / "shards"


@pytest.mark.parametrize("expected, skipped, pattern", [
    ({"1", "2", "3", "4", "5"}, {}, r"1 missing \(neither annotated nor skipped\): 5"),
    ({"1", "2", "4"}, {}, r"1 unexpected: 3"),
    ({"1", "2", "3", "4", "7"}, {"7": "iscrowd", "8": "no keypoints"}, r"1 unexpected: 8"),
    ({"1", "2", "3", "4"}, {"2": "iscrowd"}, r"1 both annotated and skipped: 2"),
    ({"1", "2", "3", "4", "6"}, {"6": " "}, r"1 skipped without a reason: 6"),
])
def test_merge_fails_loudly(three_shards, expected, skipped, pattern):
    with pytest.raises(ValueError, match=pattern):
        merge_shards(three_shards, expected, skipped, three_shards.parent / "m.json")
    assert not (three_shards.parent / "m.json").exists()


def test_merge_lists_at_most_20_ids(three_shards):
    expected = {"1", "2", "3", "4"} | {str(i) for i in range(100, 130)}
    with pytest.raises(ValueError) as err:
        merge_shards(three_shards, expected, {}, three_shards.parent / "m.json")
    msg = str(err.value)
    assert "30 missing" in msg and "100, 101" in msg and "(+10 more)" in msg
    assert "119" in msg and "120" not in msg


def test_non_finite_prediction_is_skipped_with_reason(tmp_path):
    ds = FakeDataset(_ids(4))
    module = FakeModule(nan_ids=("3",))
    report = annotate_sharded(module, ds, tmp_path, CPU, batch_size=2, batches_per_shard=1)
    assert report.annotated == 3 and report.skipped == {"3": SKIP_NON_FINITE}
    assert set(read_pseudo_gt(tmp_path / "pseudo_gt.json")) == {"1", "2", "4"}
    with pytest.raises(ValueError, match="both annotated and skipped: 3"):  # a skip counts once too
        merge_shards(tmp_path / "shards", set(_ids(4)), {"3": "iscrowd"}, tmp_path / "m.json")


def test_writer_rejects_a_mocap_prediction(tmp_path):
    writer = _writer(tmp_path, 0)
    pred = fake_prediction(["4", "5"])
    del pred["crop_to_img"]
    with pytest.raises(ValueError, match=r"no field 'crop_to_img' \(batch starting at sample_id 4\)"):
        writer.write_on_batch_end(None, None, pred, None, None, 0, 0)


def test_half_precision_predictions_are_written_as_float(tmp_path):
    """A ``precision="bf16-mixed"`` run hands bfloat16 tensors to the writer (numpy has no bfloat16)."""
    writer = _writer(tmp_path, 0)
    pred = {k: v.bfloat16() if torch.is_tensor(v) and v.is_floating_point() else v
            for k, v in fake_prediction(["2"]).items()}
    writer.write_on_batch_end(None, None, pred, None, None, 0, 0)
    entry = read_shard(writer.written[0]).entries["2"]
    np.testing.assert_allclose(entry.betas, pred["betas"][0].float().numpy())
    assert entry.betas.dtype == np.float64


def test_overlay_inputs_come_back_from_the_shards(tmp_path):
    _feed(_writer(tmp_path, 1), [["12", "3"]])
    _feed(_writer(tmp_path, 0), [["7"]])
    got = load_overlay_inputs(tmp_path / "shards")
    ref = fake_prediction(["3", "7", "12"])
    assert got["sample_id"] == ["3", "7", "12"] and got["image_path"] == ref["image_path"]
    for key in ("kp2d_img_px", "kp2d_pred_img_px", "kp2d_mask"):
        torch.testing.assert_close(got[key], ref[key])


# --------------------------------------------------------------------------- resume
def test_interrupted_run_resumes_without_loss_or_repeat(tmp_path):
    ds = FakeDataset(_ids(10), skipped={"50": "iscrowd"})
    reference = annotate_sharded(FakeModule(), ds, tmp_path / "ref", CPU, batch_size=2, batches_per_shard=2)

    first = FakeModule(fail_at=3)  # batches 0+1 -> shard 0; batch 2 buffered; batch 3 raises
    with pytest.raises(Interrupted):
        annotate_sharded(first, ds, tmp_path / "run", CPU, batch_size=2, batches_per_shard=2)
    shards = read_shards(tmp_path / "run" / "shards")
    # shard 0 = batches 0 + 1; shard 1 = batch 2, flushed when batch 3 raised
    assert [s.sample_ids for s in shards] == [("1", "2", "3", "4"), ("5", "6")]
    assert remaining_indices(ds, tmp_path / "run" / "shards") == [6, 7, 8, 9]

    second = FakeModule()
    report = annotate_sharded(second, ds, tmp_path / "run", CPU, batch_size=2, batches_per_shard=2)
    assert second.calls == ["7", "8", "9", "10"]  # finished samples are not predicted again
    assert report.annotated == 10 and report.duplicates == {} and report.skipped == {"50": "iscrowd"}
    assert [p.name for p in sorted((tmp_path / "run" / "shards").glob("rank*"))][-1] == "rank00-00002.json"
    assert (tmp_path / "run" / "pseudo_gt.json").read_text() == reference.out_file.read_text()


def test_killed_run_leftovers_are_ignored_on_resume(tmp_path):
    """A kill loses the unflushed batches and may leave an atomic write's temp file: both are harmless."""
    ds = FakeDataset(_ids(9))
    predict_sharded(FakeModule(), Subset(ds, range(4)), tmp_path, CPU, batch_size=2, batches_per_shard=1)
    (tmp_path / "shards" / ".rank00-00002.json.abc123.tmp").write_text('{"half": ')  # killed mid-write
    module = FakeModule()
    report = annotate_sharded(module, ds, tmp_path, CPU, batch_size=2, batches_per_shard=1)
    assert module.calls == ["5", "6", "7", "8", "9"]
    assert report.annotated == 9 and report.duplicates == {}

    again = FakeModule()  # everything finished: nothing predicted, the merge is redone
    assert annotate_sharded(again, ds, tmp_path, CPU, batch_size=2).annotated == 9 and again.calls == []


def test_stale_shards_refuse_to_resume(tmp_path):
    ds = FakeDataset(_ids(4))
    predict_sharded(FakeModule(), Subset(ds, [0, 1]), tmp_path, CPU, batch_size=2, run_key="model-a")
    stale = r"rank00-00000.json: shard written under run_key 'model-a', this run is 'model-b'"
    with pytest.raises(ValueError, match=stale):
        predict_sharded(FakeModule(), ds, tmp_path, CPU, batch_size=2, run_key="model-b")
    module = FakeModule()
    report = annotate_sharded(module, ds, tmp_path, CPU, batch_size=2, run_key="model-b", discard_stale=True)
    assert module.calls == _ids(4) and report.annotated == 4
    assert {s.run_key for s in read_shards(tmp_path / "shards")} == {"model-b"}


def test_malformed_shard_names_the_file(tmp_path):
    _feed(_writer(tmp_path, 0), [["1", "2"]])
    path = tmp_path / "shards" / "rank00-00000.json"
    doc = json.loads(path.read_text())
    doc["sample_ids"].append("9")
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": 'sample_ids' must equal .* 9"):
        remaining_indices(FakeDataset(_ids(2)), tmp_path / "shards")


def test_small_helpers():
    assert pad_for_ranks([5], 4) == [5, 5, 5, 5] and pad_for_ranks([3, 4], 3) == [3, 4, 3]
    assert pad_for_ranks([], 2) == [] and pad_for_ranks([1, 2, 3], 2) == [1, 2, 3]
    assert dataset_sample_ids(Subset(FakeDataset(["a", "b", "c"]), [2, 0])) == ["c", "a"]
    with pytest.raises(ValueError, match="not unique: 7"):
        dataset_sample_ids(FakeDataset(["7", "8", "7"]))
    with pytest.raises(ValueError, match="batches_per_shard must be >= 1"):
        ShardedPseudoGTWriter("x", batches_per_shard=0)
