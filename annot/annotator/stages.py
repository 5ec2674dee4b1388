"""Resumable pipeline stages with provenance.

Every stage of Algorithm 1 writes its artefacts into its own folder and, last, a ``stage.json`` marker
with its provenance: a hash of the config that decides the stage's result, package versions, checksums
of its input files, and the list of outputs. A later run skips a stage whose marker matches the same
hash and whose outputs all exist; anything else re-runs it (writes are atomic, so an interrupted stage
leaves no marker and simply runs again).
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from annot.io.atomic import atomic_write_json

MARKER = "stage.json"


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("neural-annot", "torch", "pytorch-lightning", "smplx", "numpy", "roma", "omegaconf"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def config_hash(obj: Any) -> str:
    """Stable SHA-256 (first 16 hex digits) of a JSON-serialisable object (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_checksum(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes; for a folder, of its listing (relative paths,
    sizes and modification times (ns) of every file below it), which detects added, removed, resized
    or rewritten files (e.g. images repaired in place) without reading a whole dataset's images."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            st = file.stat()
            digest.update(f"{file.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


def provenance(stage_config: Any, inputs: dict[str, str | Path] | None = None) -> dict[str, Any]:
    """The provenance block written into every output: config hash, versions, input checksums."""
    checks = {name: file_checksum(p) for name, p in (inputs or {}).items() if Path(p).exists()}
    return {"config_hash": config_hash({"config": stage_config, "inputs": checks}), "versions": package_versions(),
            "inputs": {name: {"path": str(p), "sha256_16": checks.get(name)} for name, p in (inputs or {}).items()}}


def is_complete(folder: Path, prov: dict[str, Any]) -> bool:
    """True when ``folder/stage.json`` records the same config hash and all its outputs exist."""
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        done = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    outputs = done.get("outputs", [])
    return done.get("config_hash") == prov["config_hash"] and all((folder / o).exists() for o in outputs)


def run_stage(name: str, folder: Path, prov: dict[str, Any], work: Callable[[Path], list[str]],
              log: Callable[[str], None] = print, seed: int | None = None) -> bool:
    """Run ``work(folder) -> outputs`` unless the stage is already complete; then write the marker.

    With a ``seed``, the random generators are seeded from ``(seed, name)`` just before ``work``
    (:func:`annot.annotator.resume.seed_stage`), so the stage's result does not depend on the stages run before
    it in the same process (a resumed run equals an uninterrupted one).

    Returns:
        True when the stage ran, False when it was skipped as complete.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if is_complete(folder, prov):
        log(f"[{name}] complete ({folder}), skipped")
        return False
    log(f"[{name}] running -> {folder}")
    start = time.perf_counter()
    if seed is not None:
        from annot.annotator.resume import seed_stage

        seed_stage(seed, name)
    outputs = work(folder)
    atomic_write_json(folder / MARKER, {"stage": name, **prov, "outputs": outputs,
                                        "wall_time_s": time.perf_counter() - start,
                                        "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return True
