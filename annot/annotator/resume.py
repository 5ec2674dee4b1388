"""Resume = same result: per-stage seeds, step-indexed batches, and periodic training checkpoints.

An interrupted stage must end, after a rerun, with the result of an uninterrupted run (issue #12):

* :func:`stage_seed` derives each stage's seed from ``(seed, stage name)``, so a stage's initialisation
  does not depend on which stages ran before it in the same process;
* :class:`StepSampler` draws the sample indices of optimiser step ``i`` from ``(seed, i)`` alone
  (reshuffled passes over the dataset, each a permutation seeded by ``(seed, pass)``), so a resumed run
  continues with exactly the batches the uninterrupted run would have seen; mixed batches (target +
  auxiliary image sets) do the same through :class:`annot.data.mixing.MixedBatchSampler`'s ``start_step``;
* :class:`StepCheckpoint` writes ``resume.ckpt`` every ``every_n_steps`` optimiser steps (atomically:
  a kill while writing leaves the previous one), with the RNG states and a ``resume_key`` (the stage's
  config hash) so that a checkpoint of another configuration is never resumed (:func:`resume_step`).
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import Sampler

log = logging.getLogger(__name__)

RESUME_FILE = "resume.ckpt"


def stage_seed(seed: int, stage: str) -> int:
    """A 31-bit seed from ``(seed, stage)`` (SHA-256 of ``"<seed>:<stage>"``); stable across runs and
    Python versions (no ``hash()``)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{stage}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def seed_stage(seed: int, stage: str) -> int:
    """Seed Python, NumPy and torch (``pl.seed_everything``) with :func:`stage_seed`; returns it."""
    value = stage_seed(seed, stage)
    pl.seed_everything(value, workers=True, verbose=False)
    return value


class StepSampler(Sampler[int]):
    """Indices for optimiser steps ``start_step .. num_steps - 1``, ``batch_size`` per step.

    The index stream is the concatenation of permutations of ``range(n)``, pass ``p`` seeded by
    ``(seed, p)``; step ``i`` takes stream positions ``[i * batch_size, (i + 1) * batch_size)``. So the
    batch of a step depends only on ``(seed, n, batch_size, i)`` (a uniform random order without
    replacement within each pass, as ``RandomSampler`` with reshuffles).

    ``len()`` is ``num_steps * batch_size`` whatever ``start_step`` is: Lightning sizes the (single)
    epoch from it and counts a resumed run's batches from the checkpoint's step, and the run stops at
    ``max_steps`` = ``num_steps``, exactly when this sampler is exhausted.

    Args:
        n: dataset length (> 0). batch_size: samples per step (> 0). num_steps: total steps of the run.
        seed: the stage seed. start_step: the first step to yield (a resumed run's global step).
    """

    def __init__(self, n: int, batch_size: int, num_steps: int, seed: int, start_step: int = 0) -> None:
        if n < 1 or batch_size < 1 or num_steps < 0 or not 0 <= start_step <= num_steps:
            raise ValueError(f"StepSampler: need n >= 1, batch_size >= 1, 0 <= start_step <= num_steps; got "
                             f"n={n}, batch_size={batch_size}, start_step={start_step}, num_steps={num_steps}")
        self.n, self.batch_size, self.num_steps = int(n), int(batch_size), int(num_steps)
        self.seed, self.start_step = int(seed), int(start_step)

    def __len__(self) -> int:
        return self.num_steps * self.batch_size

    def step_indices(self, step: int) -> list[int]:
        """The ``batch_size`` dataset indices of optimiser step ``step``."""
        out, pos, perm_pass, perm = [], step * self.batch_size, -1, None
        for t in range(pos, pos + self.batch_size):
            p = t // self.n
            if p != perm_pass:
                perm_pass, perm = p, np.random.default_rng([self.seed, p]).permutation(self.n)
            out.append(int(perm[t % self.n]))
        return out

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.num_steps):
            yield from self.step_indices(step)


def _rng_state() -> dict[str, Any]:
    """torch / NumPy / Python RNG states as tensors and plain numbers (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached": float(cached)},
            "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                       "gauss": gauss}}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss"]))


class StepCheckpoint(pl.Callback):
    """Save ``<folder>/resume.ckpt`` every ``every_n_steps`` optimiser steps (see the module docstring).

    Args:
        path: the checkpoint file (written via ``<path>.tmp`` + ``os.replace``).
        every_n_steps: period in optimiser steps; ``0`` disables it.
        resume_key: stored in the checkpoint; :func:`resume_step` only accepts a file with the same key.
    """

    def __init__(self, path: str | Path, every_n_steps: int, resume_key: str) -> None:
        super().__init__()
        self.path, self.every_n_steps, self.resume_key = Path(path), int(every_n_steps), str(resume_key)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if self.every_n_steps <= 0 or step % self.every_n_steps or step >= (trainer.max_steps or 0):
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        self._saving = True
        try:
            trainer.save_checkpoint(tmp)
        finally:
            self._saving = False
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if getattr(self, "_saving", False):  # only the resume file carries them, not e.g. annotator.ckpt
            checkpoint["resume_key"] = self.resume_key
            checkpoint["rng_state"] = _rng_state()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if "rng_state" in checkpoint:
            _set_rng_state(checkpoint["rng_state"])


def resume_step(path: str | Path, resume_key: str) -> int:
    """Global step of a usable ``resume.ckpt`` at ``path``, else 0 (missing, unreadable, or written
    under another ``resume_key``: then the file is removed and the stage starts from step 0)."""
    path = Path(path)
    if not path.is_file():
        return 0
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
        if raw.get("resume_key") == resume_key:
            step = int(raw["global_step"])
            log.info("resuming from %s at step %d", path, step)
            return step
        log.info("%s was written under another configuration: starting from step 0", path)
    except Exception as err:  # noqa: BLE001 - a broken resume file only costs the steps it held
        log.warning("%s is unreadable (%s: %s): starting from step 0", path, type(err).__name__, err)
    path.unlink(missing_ok=True)
    return 0


__all__ = ["RESUME_FILE", "StepCheckpoint", "StepSampler", "resume_step", "seed_stage", "stage_seed"]
