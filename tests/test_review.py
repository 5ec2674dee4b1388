"""The review page (issue #17): its order and content, the decisions it saves and ``tools/apply_review.py``, the side
view's geometry; and, in headless Chromium (Debian's ``chromium``; skipped without it), the page as a person uses it:
every person present, the shortcuts pressed, the decisions saved through the button's Blob and applied, a screenshot.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from annot.io.export import PseudoGT, read_pseudo_gt, write_pseudo_gt
from annot.io.review import (
    REASON_NOT_REVIEWED,
    REASON_REJECTED,
    SCHEMA,
    ReviewItem,
    apply_decisions,
    file_sha256,
    render_review_html,
    write_review_html,
)

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _jpeg(color: tuple[int, int, int], hw: tuple[int, int] = (40, 30)) -> bytes:
    img = np.zeros((*hw, 3), np.uint8)
    img[:] = color
    return cv2.imencode(".jpg", img)[1].tobytes()


def _entry(err: float, eft: float) -> PseudoGT:
    return PseudoGT(np.zeros((24, 3)), np.zeros(10), np.array([0.0, 0.0, 5.0]), np.array([1000.0, 1000.0]),
                    np.array([320.0, 240.0]), {"kp2d_err_px": err, "eft_reject": eft})


ERRORS = {"11": (3.0, 0.0), "12": (25.0, 0.0), "13": (9.0, 1.0), "14": (float("nan"), 0.0)}
ORDER = ["13", "14", "12", "11"]  # EFT-rejected first, then unknown error, then by error descending


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    write_pseudo_gt(run / "pseudo_gt.json", {aid: _entry(*v) for aid, v in ERRORS.items()})
    (run / "skipped.json").write_text(json.dumps({"99": "no keypoints"}))
    items = [ReviewItem(aid, f"img{aid}.jpg", _jpeg((200, 10 * int(aid), 0)), _jpeg((0, 0, 200)), err, eft,
                        {"z_norm": 1.5}) for aid, (err, eft) in ERRORS.items()]
    write_review_html(run / "review.html", items, "run", run / "pseudo_gt.json")
    return run


def _decisions(run: Path, decisions: dict[str, str], path: Path) -> Path:
    path.write_text(json.dumps({"schema": SCHEMA, "run": "run", "pseudo_gt_sha256": file_sha256(run / "pseudo_gt.json"),
                                "decisions": decisions}))
    return path


def test_page_is_self_contained_and_worst_first(run_dir):
    page = (run_dir / "review.html").read_text()
    assert re.findall(r'class="card" data-aid="(\d+)"', page) == ORDER
    assert page.count("data:image/jpeg;base64,") == 8 and 'src="http' not in page and "<script src" not in page
    meta = json.loads(re.search(r'id="review-data">(.*?)</script>', page).group(1))
    assert meta["order"] == ORDER and meta["pseudo_gt_sha256"] == file_sha256(run_dir / "pseudo_gt.json")
    assert "25.0 px" in page and "n/a" in page and "EFT: reject" in page
    # a closing tag inside the data cannot end the script
    assert "</script><" not in render_review_html([], "</script><b>", "x").split("review-data")[1].split("</script>")[0]


def test_apply_keeps_the_accepted_and_skips_the_rest_with_reasons(run_dir, tmp_path):
    dec = _decisions(run_dir, {"11": "accept", "12": "reject", "13": "accept"}, tmp_path / "d.json")
    counts = apply_decisions(run_dir, dec, tmp_path / "out")
    assert counts == {"accepted": 2, "rejected": 1, "not_reviewed": 1, "skipped": 3}
    kept = read_pseudo_gt(tmp_path / "out" / "pseudo_gt.json")
    assert sorted(kept) == ["11", "13"]
    np.testing.assert_array_equal(kept["11"].transl_m, [0.0, 0.0, 5.0])
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert skipped == {"99": "no keypoints", "12": REASON_REJECTED, "14": REASON_NOT_REVIEWED}
    counts = apply_decisions(run_dir, dec, tmp_path / "out2", undecided="accept")
    assert counts["accepted"] == 3 and "14" in read_pseudo_gt(tmp_path / "out2" / "pseudo_gt.json")


_HEAD = '{"schema": "' + SCHEMA + '", '


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not a readable JSON file"),
    ('{"schema": "other"}', "field schema"),
    (_HEAD + '"decisions": {"11": "maybe"}, "pseudo_gt_sha256": "x"}', "decisions['11']"),
    (_HEAD + '"decisions": {"11": "accept"}, "pseudo_gt_sha256": "0"}', "made for another"),
    (_HEAD + '"decisions": [], "pseudo_gt_sha256": "0"}', "field decisions"),
])
def test_bad_decisions_name_the_file_and_field(run_dir, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        apply_decisions(run_dir, path, tmp_path / "out")
    assert str(path) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_unknown_ids_and_writing_over_the_run_are_refused(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"not in .*\['77'\]"):
        apply_decisions(run_dir, _decisions(run_dir, {"77": "accept"}, tmp_path / "d.json"), tmp_path / "out")
    with pytest.raises(ValueError, match="must differ"):
        apply_decisions(run_dir, _decisions(run_dir, {}, tmp_path / "d.json"), run_dir)


def test_side_view_turns_the_mesh_a_quarter_turn():
    """A plate 1 m wide (x), 0.5 m high (y), 1 cm deep (z), facing the camera: from the side it is a thin
    vertical bar. Each view is framed on its own longest extent (80 % of the side) at a distance that leaves
    room for the depth, so the side bar is 0.5 m framed with 1 m of depth. Measured: front 205 x 103 px of
    256, side 3 x 169 px."""
    from annot.annotator.review import side_view
    from annot.render import MeshRenderer

    x, y, z = np.meshgrid([-0.5, 0.5], [-0.25, 0.25], [-0.005, 0.005], indexing="ij")
    verts = np.stack([x.ravel(), y.ravel(), z.ravel()], 1) + [0.0, 0.0, 4.0]
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],
                      [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    with MeshRenderer() as renderer:
        front = side_view(renderer, verts, faces, size_px=256, angle_rad=0.0)
        side = side_view(renderer, verts, faces, size_px=256)
    def extent(img: np.ndarray) -> tuple[int, int]:
        ys, xs = np.nonzero((img < 250).any(-1))
        return int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1
    (fw, fh), (sw, sh) = extent(front), extent(side)
    assert abs(fw - 0.8 * 256) <= 3 and abs(fh - fw / 2) <= 3  # framed to 80 %, aspect 2:1 kept
    assert sw <= 6 and 150 <= sh <= 0.8 * 256 + 3  # from the side: 1 cm deep, 0.5 m high


# --------------------------------------------------------------------------- the page in a browser
_DRIVER = """
<script>
window.addEventListener('load', async () => {
  const press = k => document.dispatchEvent(new KeyboardEvent('keydown', {key: k, bubbles: true}));
  press('a'); press('r'); press('j'); press('a');      // card 1 accept, card 2 reject, skip card 3, card 4 accept
  let blob = null;
  const orig = URL.createObjectURL;
  URL.createObjectURL = b => { blob = b; return orig.call(URL, b); };
  document.getElementById('save').click();             // the button a person clicks
  const out = document.createElement('pre');
  out.id = 'test-out';
  out.textContent = blob ? await blob.text() : 'NO BLOB';
  document.body.appendChild(out);
});
</script>
"""


def _chromium(*args: str, tries: int = 3) -> subprocess.CompletedProcess:
    """Headless Chromium with ``args``. Headless Chromium occasionally hangs at exit on a loaded machine (seen once
    in a clean-clone ``make test``: no output for 120 s, while the same page takes 2-3 s otherwise), so a run that
    times out is killed and started again, up to ``tries`` times."""
    for attempt in range(tries):
        try:
            return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                   "--disable-extensions", "--disable-dev-shm-usage", *args],
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium; make test "
                                             "installs it)")
def test_page_in_headless_chromium(run_dir, tmp_path):
    page = (run_dir / "review.html").read_text()
    driven = tmp_path / "driven.html"
    driven.write_text(page.replace("</body>", _DRIVER + "</body>"))
    proc = _chromium("--virtual-time-budget=5000", "--dump-dom", driven.as_uri())
    dom = proc.stdout
    assert re.findall(r'class="card[^"]*" data-aid="(\d+)"', dom) == ORDER, proc.stderr[-1500:]
    status = dict(re.findall(r'data-aid="(\d+)" data-decision="(\w*)"', dom))
    assert status == {"13": "accept", "14": "reject", "12": "", "11": "accept"}
    saved = json.loads(re.search(r'<pre id="test-out">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    assert saved["decisions"] == {"13": "accept", "14": "reject", "11": "accept"}
    decisions = tmp_path / "review_decisions.json"
    decisions.write_text(json.dumps(saved))
    tool = subprocess.run([sys.executable, str(REPO / "tools" / "apply_review.py"), str(run_dir), str(decisions),
                           "--out", str(tmp_path / "reviewed")], capture_output=True, text=True, cwd=REPO)
    assert tool.returncode == 0, tool.stderr
    assert sorted(read_pseudo_gt(tmp_path / "reviewed" / "pseudo_gt.json")) == ["11", "13"]
    skipped = json.loads((tmp_path / "reviewed" / "skipped.json").read_text())
    assert skipped["14"] == REASON_REJECTED and skipped["12"] == REASON_NOT_REVIEWED

    shot = tmp_path / "shot.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=900,600", "--hide-scrollbars",
                     (run_dir / "review.html").as_uri())
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None, proc.stderr[-1500:]
    assert img.shape == (600, 900, 3)
    shutil.copy(shot, tmp_path.parent / "review_screenshot.png")  # left for a look (pytest keeps its tmp dirs)
    # the header bar (dark) and the first card's overlay (solid BGR (200, 130, 0), 30x40 px shown 220 px high)
    assert img[5:20, 5:200].mean() < 80
    first = (img[..., 0] > 150) & (np.abs(img[..., 1].astype(int) - 130) < 30) & (img[..., 2] < 60)
    assert first.sum() > 150 * 200 and math.isfinite(float(img.std())) and img.std() > 20
