"""MuPoTS 3DPCK in the estimators' evaluation: a perfect prediction scores 100 %, a missing person
counts as misses in "all" but not in "matched"."""
import torch

from annot.keypoints import convert
from annot.metrics import MuPoTS3DPCK
from estimators.base import _mupots_images, _mupots_people


def _mupots(joints_h36m: torch.Tensor) -> torch.Tensor:
    return convert(joints_h36m.clone(), "h36m17", "mupots17")[0]


def _batch(gt_rel: torch.Tensor, root: torch.Tensor, paths: list[str]) -> dict:
    n = gt_rel.shape[0]
    cam = gt_rel + root[:, None]
    kp = cam[..., :2] / cam[..., 2:] * 1000.0 + 500.0
    return {"root_cam_m": root, "joints_cam_m": gt_rel, "kp2d_img_px": kp, "kp2d_mask": torch.ones(n, 17),
            "real_focal_crop_px": torch.full((n, 2), 1000.0), "real_princpt_crop_px": torch.full((n, 2), 500.0),
            "crop_to_img": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(n, 2, 3),
            "image_path": paths, "sample_id": [str(i) for i in range(n)]}


def test_perfect_prediction_scores_100_and_missing_person_only_hurts_all():
    gen = torch.Generator().manual_seed(0)
    gt_rel = torch.randn(3, 17, 3, generator=gen) * 0.3
    gt_rel -= gt_rel[:, :1].clone()                     # h36m17 root (Pelvis) at the origin
    root = torch.tensor([[-1.5, 0.0, 5.0], [0.0, 0.0, 5.0], [1.5, 0.0, 5.0]])
    paths = ["MultiPersonTestSet/TS3/img_000001.jpg"] * 3
    batch = _batch(gt_rel, root, paths)
    metric = MuPoTS3DPCK()
    metric.update(*_mupots_images(_mupots_people(batch, _mupots(gt_rel)), None))
    result = metric.compute()
    assert float(result["pck_all"]) == 100.0 and float(result["pck_matched"]) == 100.0

    people = _mupots_people(batch, _mupots(gt_rel))
    people[2]["pred2d"] = people[2]["pred2d"] + 500.0    # third prediction far away: unmatched in 2D
    metric.reset()
    metric.update(*_mupots_images(people, None))
    result = metric.compute()
    assert abs(float(result["pck_all"]) - 200.0 / 3) < 1e-3 and float(result["pck_matched"]) == 100.0
