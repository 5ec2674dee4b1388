"""The review page of an annotation run (``<out_dir>/review.html``) and the decisions it saves.

:func:`write_review_html` writes one self-contained static page (no server, no network: images are inline
JPEG data URIs, the script is inline) with one card per annotated person, worst first (EFT-rejected first,
then by 2D reprojection error, descending): the pseudo-GT overlay on the image crop, a side view of the mesh,
the 2D error (original-image pixels) and the EFT flag. Keys: ``a`` accept, ``r`` reject, ``u`` undecided
(then the next card is selected), ``j`` / ``k`` (or the arrows) move, ``s`` saves; the "Save decisions" button
downloads ``review_decisions.json`` through a ``Blob``::

    {"schema": "neural-annot-review/1", "run": "<out_dir name>", "pseudo_gt_sha256": "<hex>",
     "decisions": {"<aid>": "accept" | "reject"}}

:func:`apply_decisions` (``tools/apply_review.py``) turns it into a filtered ``pseudo_gt.json`` with only the
accepted people and a ``skipped.json`` that adds the rejected ones with the reason ``"rejected in review"``
(and, unless ``undecided="accept"``, the undecided ones with ``"not reviewed"``). EFT's rule for the flag:
Joo et al., "Exemplar Fine-Tuning for 3D Human Model Fitting", 3DV 2021.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annot.io.atomic import atomic_write_bytes, atomic_write_json
from annot.io.export import read_pseudo_gt, write_pseudo_gt

SCHEMA = "neural-annot-review/1"
REASON_REJECTED = "rejected in review"
REASON_NOT_REVIEWED = "not reviewed"
DECISIONS = ("accept", "reject")


@dataclass(frozen=True)
class ReviewItem:
    """One person of the page.

    Attributes:
        aid: annotation id (the key of ``pseudo_gt.json``).
        image: image file name shown as the card's caption.
        overlay_jpeg: JPEG bytes of the overlay crop (mesh over the image, keypoints drawn).
        side_jpeg: JPEG bytes of the mesh seen from its side.
        kp2d_err_px: 2D reprojection error, original-image pixels (NaN when unknown).
        eft_reject: EFT flag (1.0 rejected, 0.0 kept) or None when the run has none.
        extra: more quality fields shown under the card (name -> value).
    """

    aid: str
    image: str
    overlay_jpeg: bytes
    side_jpeg: bytes
    kp2d_err_px: float
    eft_reject: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def worst_first(items: list[ReviewItem]) -> list[ReviewItem]:
    """EFT-rejected first, then by ``kp2d_err_px`` descending (NaN first: unknown is worst), then by id."""
    def key(item: ReviewItem) -> tuple[int, float, str]:
        err = item.kp2d_err_px
        return (0 if item.eft_reject else 1, -math.inf if not math.isfinite(err) else -err, item.aid)
    return sorted(items, key=key)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (ties a decisions file to the ``pseudo_gt.json`` it was made for)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


_STYLE = """
body{font-family:sans-serif;margin:0;background:#f4f4f4;color:#222}
header{position:sticky;top:0;background:#222;color:#eee;padding:8px 14px;z-index:2}
header button{margin-left:12px;font-size:15px}
#grid{display:flex;flex-wrap:wrap;gap:10px;padding:10px}
.card{background:#fff;border:3px solid #ccc;border-radius:6px;padding:6px;width:max-content}
.card.sel{box-shadow:0 0 0 3px #2a6ad8}
.card[data-decision=accept]{border-color:#2e9d3a;background:#eefaef}
.card[data-decision=reject]{border-color:#d23c3c;background:#fbeeee}
.card img{height:220px;margin-right:4px;vertical-align:top}
.meta{font-size:13px;margin-top:4px}.eft{color:#d23c3c;font-weight:bold}.status{font-weight:bold}
"""

_SCRIPT = """
(function(){
const data = JSON.parse(document.getElementById('review-data').textContent);
const cards = Array.from(document.querySelectorAll('.card'));
const decisions = {};
let sel = 0;
function show(i){cards.forEach((c,k)=>c.classList.toggle('sel',k===i));
  if(cards[i]){cards[i].scrollIntoView({block:'nearest'});}}
function setDecision(i,d){const c=cards[i]; if(!c) return; const aid=c.dataset.aid;
  if(d){decisions[aid]=d;} else {delete decisions[aid];}
  c.dataset.decision=d||''; c.querySelector('.status').textContent=d||'undecided'; counts();}
function counts(){const v=Object.values(decisions);
  document.getElementById('counts').textContent=v.filter(x=>x==='accept').length+' accepted, '+
    v.filter(x=>x==='reject').length+' rejected, '+(cards.length-v.length)+' undecided';}
function decisionsJSON(){return JSON.stringify({schema:data.schema,run:data.run,pseudo_gt_sha256:data.pseudo_gt_sha256,
  decisions:Object.assign({},decisions)},null,1);}
function save(){const blob=new Blob([decisionsJSON()],{type:'application/json'});
  const a=document.createElement('a'); a.href=URL.createObjectURL(blob); a.download='review_decisions.json';
  document.body.appendChild(a); a.click(); a.remove();}
document.addEventListener('keydown',e=>{
  if(e.ctrlKey||e.metaKey||e.altKey) return;
  const k=e.key;
  if(k==='a'||k==='r'||k==='u'){setDecision(sel,k==='a'?'accept':(k==='r'?'reject':null));
    sel=Math.min(sel+1,cards.length-1); show(sel);}
  else if(k==='j'||k==='ArrowRight'||k==='ArrowDown'){sel=Math.min(sel+1,cards.length-1); show(sel);}
  else if(k==='k'||k==='ArrowLeft'||k==='ArrowUp'){sel=Math.max(sel-1,0); show(sel);}
  else if(k==='s'){save();}
  else return;
  e.preventDefault();});
cards.forEach((c,i)=>c.addEventListener('click',()=>{sel=i; show(i);}));
document.getElementById('save').addEventListener('click',save);
window.review={decisions:decisions,decisionsJSON:decisionsJSON,save:save};
show(0); counts();
})();
"""


def render_review_html(items: list[ReviewItem], run: str, pseudo_gt_sha256: str) -> str:
    """The page's HTML text (see the module docstring); ``items`` are sorted with :func:`worst_first`."""
    ordered = worst_first(items)
    meta = {"schema": SCHEMA, "run": run, "pseudo_gt_sha256": pseudo_gt_sha256,
            "order": [it.aid for it in ordered]}
    cards = []
    for it in ordered:
        err = f"{it.kp2d_err_px:.1f} px" if math.isfinite(it.kp2d_err_px) else "n/a"
        eft = ("" if it.eft_reject is None else
               ('<span class="eft">EFT: reject</span>' if it.eft_reject else "EFT: ok"))
        extra = " ".join(f"{html.escape(k)} {v:.3g}" for k, v in it.extra.items())
        aid = html.escape(it.aid, quote=True)
        cards.append(
            f'<div class="card" data-aid="{aid}" data-decision="">'
            f'<img alt="overlay {aid}" src="{_data_uri(it.overlay_jpeg)}">'
            f'<img alt="side view {aid}" src="{_data_uri(it.side_jpeg)}">'
            f'<div class="meta">#{aid} · {html.escape(it.image)} · 2D error <b>{err}</b> · {eft} · '
            f'<span class="status">undecided</span><br><small>{extra}</small></div></div>')
    payload = json.dumps(meta).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>review: {html.escape(run)}</title><style>{_STYLE}</style></head><body>"
        f"<header><b>{html.escape(run)}</b>: {len(ordered)} people, worst first · keys: "
        "<b>a</b> accept, <b>r</b> reject, <b>u</b> undecided, <b>j/k</b> move, <b>s</b> save · "
        "<span id=\"counts\"></span><button id=\"save\">Save decisions</button></header>"
        f"<div id=\"grid\">{''.join(cards)}</div>"
        f"<script type=\"application/json\" id=\"review-data\">{payload}</script>"
        f"<script>{_SCRIPT}</script></body></html>\n")


def write_review_html(path: str | Path, items: list[ReviewItem], run: str, pseudo_gt_path: str | Path) -> Path:
    """Write the page atomically to ``path`` (ties it to ``pseudo_gt_path`` by sha256). Returns the path."""
    text = render_review_html(items, run, file_sha256(pseudo_gt_path))
    return atomic_write_bytes(path, text.encode("utf-8"))


def parse_decisions(path: str | Path) -> dict[str, Any]:
    """Read and check a ``review_decisions.json``.

    Returns:
        the parsed object (``schema``, ``run``, ``pseudo_gt_sha256``, ``decisions``: aid -> accept | reject).

    Raises:
        ValueError: not JSON, another schema, or a field of the wrong type / value, naming the file and field
            (and the annotation id for a bad decision).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: field schema: expected {SCHEMA!r}, got {got!r}")
    decisions = data.get("decisions")
    if not isinstance(decisions, dict):
        raise ValueError(f"{path}: field decisions: expected an object {{aid: accept|reject}}, "
                         f"got {type(decisions).__name__}")
    for aid, value in decisions.items():
        if value not in DECISIONS:
            raise ValueError(f"{path}: decisions[{aid!r}]: expected one of {DECISIONS}, got {value!r}")
    if not isinstance(data.get("pseudo_gt_sha256"), str):
        raise ValueError(f"{path}: field pseudo_gt_sha256: missing")
    return data


def apply_decisions(run_dir: str | Path, decisions_path: str | Path, out_dir: str | Path,
                    undecided: str = "skip") -> dict[str, int]:
    """Write ``out_dir/pseudo_gt.json`` with the accepted people and ``out_dir/skipped.json`` with the run's
    skips plus the rejected (``"rejected in review"``) and undecided (``"not reviewed"``) ones.

    Args:
        run_dir: the annotation run (its ``pseudo_gt.json``, ``skipped.json``).
        decisions_path: the page's ``review_decisions.json``.
        out_dir: where to write (may be ``run_dir``'s sibling; writing into ``run_dir`` itself is refused so
            the reviewed file never replaces the full one).
        undecided: ``"skip"`` (default) or ``"accept"`` for people without a decision.

    Returns:
        counts ``accepted``, ``rejected``, ``not_reviewed`` (people) and ``skipped`` (entries of skipped.json).

    Raises:
        ValueError: bad decisions file (:func:`parse_decisions`), decisions for another ``pseudo_gt.json``
            (sha256 differs: the run was re-annotated after the page was written), an id the run does not have,
            ``out_dir`` equal to ``run_dir``, or an unknown ``undecided``.
        FileNotFoundError: the run has no ``pseudo_gt.json``.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if undecided not in ("skip", "accept"):
        raise ValueError(f"undecided: expected 'skip' or 'accept', got {undecided!r}")
    if out_dir.resolve() == run_dir.resolve():
        raise ValueError(f"{out_dir}: the output folder must differ from the run folder (keep the full pseudo_gt.json)")
    pgt_path = run_dir / "pseudo_gt.json"
    if not pgt_path.is_file():
        raise FileNotFoundError(f"{pgt_path}: no pseudo_gt.json in the run folder")
    data = parse_decisions(decisions_path)
    if data["pseudo_gt_sha256"] != file_sha256(pgt_path):
        raise ValueError(f"{decisions_path}: field pseudo_gt_sha256: made for another {pgt_path} (the run was "
                         "re-annotated after review.html was written: review the new page)")
    entries = read_pseudo_gt(pgt_path)
    unknown = sorted(set(data["decisions"]) - set(entries))
    if unknown:
        raise ValueError(f"{decisions_path}: decisions for annotation ids not in {pgt_path}: {unknown[:10]}")
    skipped_path = run_dir / "skipped.json"
    skipped: dict[str, str] = json.loads(skipped_path.read_text()) if skipped_path.is_file() else {}
    kept, counts = {}, {"accepted": 0, "rejected": 0, "not_reviewed": 0}
    for aid, entry in entries.items():
        decision = data["decisions"].get(aid)
        if decision == "reject":
            skipped[aid] = REASON_REJECTED
            counts["rejected"] += 1
        elif decision == "accept" or undecided == "accept":
            kept[aid] = entry
            counts["accepted"] += 1
        else:
            skipped[aid] = REASON_NOT_REVIEWED
            counts["not_reviewed"] += 1
    out_dir.mkdir(parents=True, exist_ok=True)
    write_pseudo_gt(out_dir / "pseudo_gt.json", kept)
    atomic_write_json(out_dir / "skipped.json", skipped)
    counts["skipped"] = len(skipped)
    return counts
