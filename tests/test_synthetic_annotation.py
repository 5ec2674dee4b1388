"""annot.benchmarks.synthetic.annotation: visibility by depth test, COCO annotator noise, COCO statistics."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annot.benchmarks.synthetic.annotation import (
    COCO17_OKS_SIGMAS,
    annotator_noise,
    coco_annotation_stats,
    drop_unlabelled,
    keypoint_visibility,
)

COCO_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_samples" / "test_coco.json"


def test_visibility_hand_computed():
    depth = np.full((10, 20), np.inf)
    depth[:, :10] = 2.0  # a surface at 2 m over the left half
    kp = np.array([[5.0, 5.0], [5.0, 5.0], [15.0, 5.0], [-1.0, 5.0], [19.0, 9.0], [5.0, 10.2]])
    z = np.array([2.1, 2.3, 9.0, 2.0, 1.0, 2.0])
    v = keypoint_visibility(kp, z, depth, margin_m=0.15)
    # 0.1 m behind the surface: visible; 0.3 m behind: hidden; background: visible; outside: 0; the last
    # row rounds to y = 10, outside a 10-row image
    np.testing.assert_array_equal(v, [2, 1, 2, 0, 2, 0])
    with pytest.raises(ValueError):
        keypoint_visibility(kp, z[:2], depth, 0.15)


def test_annotator_noise_has_the_coco_spread():
    rng = np.random.default_rng(0)
    n = 4000
    kp = np.tile([[100.0, 80.0]], (17, 1))
    vis = np.array([2] * 9 + [1] * 8)
    draws = np.stack([annotator_noise(rng, kp, vis, COCO17_OKS_SIGMAS, 10000.0, (480, 640), 2.0) for _ in range(n)])
    expected = COCO17_OKS_SIGMAS * 100.0 * np.where(vis == 1, 2.0, 1.0)  # sigma_i * sqrt(area) (x2 hidden)
    np.testing.assert_allclose(draws.std(axis=0).mean(axis=1), expected, rtol=0.06)
    np.testing.assert_allclose(draws.mean(axis=0), kp, atol=4 * expected.max() / np.sqrt(n))
    none = annotator_noise(rng, kp, np.zeros(17, int), COCO17_OKS_SIGMAS, 10000.0, (480, 640), 2.0)
    assert np.all(none == 0)  # v = 0: not labelled
    edge = annotator_noise(rng, np.zeros((17, 2)), np.full(17, 2), COCO17_OKS_SIGMAS, 1e6, (48, 64), 2.0)
    assert edge.min() >= 0 and edge[:, 0].max() <= 63 and edge[:, 1].max() <= 47  # clicked inside the image


@pytest.mark.skipif(not COCO_SAMPLE.is_file(), reason=f"COCO sample missing: {COCO_SAMPLE}")
def test_coco_statistics_of_the_real_sample():
    coco = json.loads(COCO_SAMPLE.read_text())
    stats = coco_annotation_stats(coco["annotations"], len(coco["images"]))
    # counted by hand from the 12 annotations with keypoints: 23 / 17 / 164 of 204 keypoints are v = 0 / 1 / 2
    assert stats["people"] == 12 and stats["people_per_image"] == 3.0
    assert stats["v0"] == pytest.approx(23 / 204) and stats["v1"] == pytest.approx(17 / 204)
    assert stats["v2"] == pytest.approx(164 / 204)
    assert stats["with_unlabelled"] == pytest.approx(10 / 12) and stats["truncated"] is None


def test_drop_unlabelled_only_touches_hidden_keypoints():
    rng = np.random.default_rng(0)
    vis = np.array([0, 1, 2] * 2000)
    out = drop_unlabelled(rng, vis, 0.4)
    np.testing.assert_array_equal(out[vis != 1], vis[vis != 1])
    assert set(np.unique(out[vis == 1])) == {0, 1}
    assert (out[vis == 1] == 0).mean() == pytest.approx(0.4, abs=0.04)  # 2000 draws: 4 standard errors
    np.testing.assert_array_equal(drop_unlabelled(rng, vis, 0.0), vis)
    with pytest.raises(ValueError):
        drop_unlabelled(rng, vis, 1.5)
