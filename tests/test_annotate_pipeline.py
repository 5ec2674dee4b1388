"""End to end: Algorithm 1 with a few steps per stage on the real COCO samples and a few CMU clips.

The exported pseudo-GTs are checked against the predictions through an independent path (body model
forward + regressor + pinhole projection with the exported camera), and a second invocation must
skip every finished stage.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from annot.annotator.config import AnnotateConfig
from annot.annotator.pipeline import run_annotate
from annot.body_models import BodyModel
from annot.config import load_config
from annot.io.export import read_pseudo_gt

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
COCO = SHARED / "coco_samples"
FREE = REPO / "body_models" / "free" / "FREE_ANNY_SMPL_NEUTRAL.pkl"
pytestmark = [pytest.mark.skipif(not COCO.is_dir(), reason=f"COCO samples not found at {COCO}"),
              pytest.mark.skipif(not FREE.is_file(), reason=f"free body model not baked at {FREE} (run make setup)")]


def _config(out: Path, *extra: str):
    """The embedded default at a few steps; f's own pseudo-GTs (``algorithm.refine=false``) unless ``extra`` says."""
    return load_config(AnnotateConfig, REPO / "configs/annotate/body_free.yaml", ["algorithm.refine=false",
        f"data.root={COCO}", f"body_model.path={FREE}", f"export.out_dir={out}", "trainer.max_steps=3",
        "trainer.enable_progress_bar=false", "data.input_hw=[128,96]", "export.eval_every_n_steps=1",
        f"auxiliary.cmu.args.root={SHARED / 'mocap_cmu'}", "auxiliary.cmu.args.pattern=cmu_01_0*.bvh",
        "aux_stage.max_steps=3", "aux_stage.hidden_dim=64", "prior.max_epochs=1", "prior.num_neurons=64",
        "model.hidden_dim=64", *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("annotate")
    return out, run_annotate(_config(out))


def test_outputs_and_counts(run):
    out, report = run
    pgt = json.loads((out / "pseudo_gt.json").read_text())
    skipped = json.loads((out / "skipped.json").read_text())
    assert len(pgt) == 12 and report["counts"]["annotated"] == 12
    assert set(skipped) == {"1202706", "508900"} and all(skipped.values())
    assert not set(pgt) & set(skipped)
    for entry in pgt.values():
        values = entry["smpl_param"]["pose"] + entry["smpl_param"]["shape"] + entry["smpl_param"]["trans"]
        assert np.isfinite(values).all()
        assert set(entry["quality"]) >= {"kp2d_err_px", "kp2d_loss_norm", "z_norm", "max_abs_beta", "eft_reject"}
        assert entry["quality"]["z_norm"] ** 2 < 64.0  # inside the prior's typical set (chi2, 32 dof)
    assert sorted(p.stem for p in (out / "overlays").glob("*.png")) == sorted(pgt)
    assert (out / "kp2d_error_curve.png").stat().st_size > 0
    assert len(report["kp2d_err_px_during_training"]) == 3
    assert report["config"]["trainer"]["max_steps"] == 3
    # the export step writes the review page: one card per annotated person, pictures inline
    page = (out / "review.html").read_text()
    assert sorted(re.findall(r'class="card" data-aid="(\d+)"', page)) == sorted(pgt)
    assert page.count("data:image/jpeg;base64,") == 2 * len(pgt) and 'src="http' not in page


def test_every_stage_has_provenance(run):
    out, report = run
    assert set(report["stages"]) == {"stage_a_cmu", "prior", "stage_b_round1", "stage_c_round1"}
    for marker in report["stages"].values():
        assert len(marker["config_hash"]) == 16 and "torch" in marker["versions"] and marker["outputs"]
    poses = np.load(out / "stage_a_cmu" / "pseudo_gt.npz")
    assert poses["pose_rotvec"].shape[1:] == (24, 3) and len(poses["sample_id"]) > 100
    assert np.isfinite(poses["joints3d_err_mm"]).all()


def test_second_invocation_skips_finished_stages(run):
    """Every stage of the second run is the first run's (same completion time): nothing retrained. No wall-clock
    bound: on a loaded 2-core machine the preflight and loading alone took 16-70 s."""
    out, first = run
    again = run_annotate(_config(out))
    for name, marker in again["stages"].items():
        assert marker["completed_at"] == first["stages"][name]["completed_at"], name
    assert json.loads((out / "pseudo_gt.json").read_text()).keys() == read_pseudo_gt(out / "pseudo_gt.json").keys()


def test_exported_mesh_reprojects_onto_the_predicted_keypoints(run):
    """The original-image camera in the export must reproduce f's 2D error computed in its crop."""
    out, _ = run
    body = BodyModel.from_config(model_type="free", path=FREE)
    anns = {a["id"]: a for a in json.loads((COCO / "test_coco.json").read_text())["annotations"]}
    for aid, entry in read_pseudo_gt(out / "pseudo_gt.json").items():
        kw = entry.smplx_kwargs()
        verts = body(kw["global_orient"], kw["body_pose"], kw["betas"], kw["transl"]).vertices_m
        joints = body.regress(verts, "coco17")[0][0].double().numpy()
        kp = joints[:, :2] / joints[:, 2:] * entry.focal_px + entry.princpt_px
        gt = np.asarray(anns[int(aid)]["keypoints"], dtype=float).reshape(17, 3)
        vis = _visible_in_crop(gt, anns[int(aid)]["bbox"], entry)
        err = np.linalg.norm(kp[vis] - gt[vis, :2], axis=1).mean()
        assert err == pytest.approx(entry.quality["kp2d_err_px"], abs=0.05)


def _visible_in_crop(gt: np.ndarray, bbox, entry) -> np.ndarray:
    """COCO v > 0 and inside the processed box (the annotator's kp2d_mask), recomputed from the export:
    the crop spans focal/5000 * (96, 128) pixels around the principal point."""
    half = entry.focal_px / 5000.0 * np.array([48.0, 64.0])
    lo, hi = entry.princpt_px - half, entry.princpt_px + half
    return (gt[:, 2] > 0) & (gt[:, :2] >= lo).all(1) & (gt[:, :2] < hi).all(1)


def test_refine_works_in_cliffs_estimated_image_camera(run):
    """NeuralAnnot + fit (``algorithm.refine``) on the finished run: only the refine stage runs; every entry now
    carries the estimated full-image camera of its photo (focal sqrt(W^2 + H^2), principal point at the centre,
    checked against the image sizes in the COCO json), and the 2D error never rises above f's."""
    out, first = run
    report = run_annotate(_config(out, "algorithm.refine=true", "algorithm.refine_iters=5"))
    for name, marker in first["stages"].items():
        assert report["stages"][name]["completed_at"] == marker["completed_at"], name
    coco = json.loads((COCO / "test_coco.json").read_text())
    size = {img["id"]: (img["width"], img["height"]) for img in coco["images"]}
    image_of = {str(a["id"]): a["image_id"] for a in coco["annotations"]}
    entries = read_pseudo_gt(out / "pseudo_gt.json")
    assert len(entries) == 12
    for aid, entry in entries.items():
        width, height = size[image_of[aid]]
        np.testing.assert_allclose(entry.focal_px, [np.hypot(width, height)] * 2, rtol=1e-6)
        np.testing.assert_allclose(entry.princpt_px, [width / 2, height / 2], rtol=1e-6)
        assert entry.quality["kp2d_err_px"] <= entry.quality["kp2d_err_px_f"] + 1e-6
