"""The whole-body stages (parts fits, integration, export, overlays) on the real COCO-WholeBody annotations of
the four sample images, with tiny synthetic SMPL / SMPL-X / MANO models (tests/wholebody_models.py) and a body
pseudo-GT written here (the body annotator itself is tested in test_annotate_pipeline.py)."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from omegaconf import OmegaConf

from annot.config import load_config
from annot.io.export import PseudoGT, write_pseudo_gt
from annot.io.export_smplx import SMPLX_FIELDS, VALID_FLAGS, read_smplx_pseudo_gt
from annot.wholebody.config import WholeBodyConfig
from annot.wholebody.pipeline import SKIP_NO_BODY, _stage_export, _stage_parts
from tests.conftest import build_tiny_smpl_dict
from tests.helpers import COCO
from tests.wholebody_models import write_tiny_wholebody_models

WB_FILE = "test_coco_wholebody.json"
needs_coco = pytest.mark.skipif(not (COCO / WB_FILE).is_file(), reason=f"COCO samples not found at {COCO}")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wb")
    models = write_tiny_wholebody_models(tmp / "models")
    smpl = tmp / "smpl" / "SMPL_NEUTRAL.pkl"
    smpl.parent.mkdir()
    smpl.write_bytes(pickle.dumps(build_tiny_smpl_dict()))
    anns = json.loads((COCO / WB_FILE).read_text())["annotations"]
    body_aids = [str(a["id"]) for a in anns if a["num_keypoints"] > 0][:-1]  # one kept person lacks a body pseudo-GT
    rng = np.random.default_rng(0)
    entries = {aid: PseudoGT(np.concatenate([[[np.pi, 0, 0]], 0.1 * rng.normal(size=(23, 3))]), np.zeros(10),
                             np.array([0.0, 0.0, 8.0]), np.array([1000.0, 1000.0]), np.array([320.0, 240.0]),
                             {"kp2d_err_px": 5.0}) for aid in body_aids}
    write_pseudo_gt(tmp / "body" / "pseudo_gt.json", entries)
    cfg = load_config(WholeBodyConfig, None, [
        f"data.root={COCO}", f"models.smplx={models['smplx']}", f"models.mano_right={models['mano_right']}",
        f"models.mano_left={models['mano_left']}", "face.iters_head=5", "face.iters_full=10", "hand.iters_rigid=5",
        "hand.iters_full=10", "hand.num_rolls=2", f"export.out_dir={tmp / 'out'}"])
    body_cfg = OmegaConf.create({"body_model": {"model_type": "smpl", "gender": "neutral", "path": str(smpl)}})
    (tmp / "parts").mkdir()
    _stage_parts(cfg, tmp / "parts", body_cfg, tmp / "body" / "pseudo_gt.json")
    _stage_export(cfg, tmp / "export", tmp / "parts" / "parts.pt")
    return {"tmp": tmp, "body_aids": body_aids, "anns": {str(a["id"]): a for a in anns}}


@needs_coco
def test_export_has_the_release_keys_and_the_valid_parts(run) -> None:
    raw = json.loads((run["tmp"] / "export" / "pseudo_gt_smplx.json").read_text())
    assert sorted(raw, key=int) == sorted(run["body_aids"], key=int)
    for aid, entry in raw.items():
        assert set(entry) == {"smplx_param", "cam_param", "quality"}
        assert set(entry["smplx_param"]) == set(SMPLX_FIELDS) | set(VALID_FLAGS)
        assert {k: len(entry["smplx_param"][k]) for k in SMPLX_FIELDS} == SMPLX_FIELDS
        assert set(entry["cam_param"]) == {"focal", "princpt"}
        ann = run["anns"][aid]
        assert entry["smplx_param"]["face_valid"] == bool(ann["face_valid"])
        assert entry["smplx_param"]["lhand_valid"] == bool(ann["lefthand_valid"])
        assert entry["smplx_param"]["rhand_valid"] == bool(ann["righthand_valid"])
        assert ("face_kp2d_err_px" in entry["quality"]) == bool(ann["face_valid"])
    entries = read_smplx_pseudo_gt(run["tmp"] / "export" / "pseudo_gt_smplx.json")  # round trip through the reader
    assert sum(e.valid["face_valid"] for e in entries.values()) == 4
    assert sum(e.valid["lhand_valid"] or e.valid["rhand_valid"] for e in entries.values()) == 7


@needs_coco
def test_skipped_counts_people_without_body(run) -> None:
    skipped = json.loads((run["tmp"] / "export" / "skipped.json").read_text())
    assert list(skipped["people"].values()).count(SKIP_NO_BODY) == 1
    assert skipped["counts"]["people"] == {"no keypoints": 2, SKIP_NO_BODY: 1}


@needs_coco
def test_overlays_are_written_per_person(run) -> None:
    pngs = sorted(p.stem for p in (run["tmp"] / "export" / "overlays").glob("*.png"))
    assert sorted(pngs, key=int) == sorted(run["body_aids"], key=int)


def test_missing_model_file_is_named_before_any_work(tmp_path) -> None:
    from annot.wholebody.pipeline import run_annotate_wholebody

    cfg = load_config(WholeBodyConfig, None, [f"models.smplx={tmp_path / 'nope.npz'}", f"export.out_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match=r"models\.smplx: .*nope\.npz does not exist"):
        run_annotate_wholebody(cfg)
