"""MixedDataModule: a real mixture of two fixture datasets gives exactly the configured per-batch
composition, every sample schema collates together, and the global batch is split across ranks."""
from collections import Counter
from pathlib import Path

import pytest

from annot.data.datamodule import MixedDataModule, build_datasets, split_global_batch
from annot.data.fixtures import fixture_writer

REPO = Path(__file__).resolve().parents[1]
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (make setup)")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixtures")
    h36m = fixture_writer("h36m")(root / "h36m", body_model_path=str(FREE))
    coco = fixture_writer("coco")(root / "coco", body_model_path=str(FREE))
    specs = {"h36m": {"dataset": "h36m", "root": str(h36m), "split": "train", "subjects": [1]},
             "coco": {"dataset": "coco", "root": str(coco), "ann_file": "annotations/person_keypoints_train2017.json",
                      "img_dir": "images/train2017"}}
    return build_datasets(specs, input_hw=(64, 48), convention="coco17", body_model_path=str(FREE))


def test_batches_have_the_exact_mix(datasets):
    dm = MixedDataModule(datasets, {"h36m": 0.5, "coco": 0.5}, global_batch_size=4, num_batches_per_epoch=3)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    for batch in batches:
        assert Counter(batch["dataset"]) == {"h36m": 2, "coco": 2}
        assert batch["img"].shape == (4, 3, 64, 48) and batch["kp2d_px"].shape == (4, 17, 2)
        is_h36m = [d == "h36m" for d in batch["dataset"]]
        # MoCap samples carry 3D joints, COCO samples do not
        assert all(bool(m.any()) == h for m, h in zip(batch["joints_cam_mask"], is_h36m))


def test_global_batch_must_divide_over_ranks():
    assert split_global_batch(192, 4) == 48
    with pytest.raises(ValueError, match="192 does not divide over 5"):
        split_global_batch(192, 5)


def test_unknown_dataset_name_is_listed():
    with pytest.raises(ValueError, match="h36m"):
        build_datasets({"x": {"dataset": "nope"}})
