"""Import paths of the 0.1 layout that moved (issue #14, "the house"): one table, old path -> new path.

An old path fails with a message that names the new one, instead of a bare ``No module named ...``::

    >>> import annot.bench_annot
    ModuleNotFoundError: annot.bench_annot moved to annot.benchmarks.quality [...]
    >>> from annot.config import AnnotateConfig
    ImportError: annot.config.AnnotateConfig moved to annot.annotator.config.AnnotateConfig [...]

Modules are caught by :class:`MovedModuleFinder` (first on ``sys.meta_path``, installed by ``annot/__init__.py``;
it steps aside when a module really exists at the old path); names that left a module which still exists
(``annot.config``) by that module's ``__getattr__`` (:func:`moved_attribute`). Both read :data:`MOVED`.
Keep the table for one release after the move, then delete it (and this module).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

#: old dotted path (a module, or ``module.name`` for a name that left a module that stays) -> where it lives now.
MOVED: dict[str, str] = {
    # annot/app: application plumbing
    "annot.cli": "annot.app.cli",
    "annot.errors": "annot.app.errors",
    "annot.runtime": "annot.app.runtime",
    # annot/io: files other programs read
    "annot.atomic": "annot.io.atomic",
    "annot.export": "annot.io.export",
    "annot.export_mocap": "annot.io.export_mocap",
    # annot/training: Lightning plumbing shared by the annotator and the estimators
    "annot.callbacks": "annot.training.callbacks",
    "annot.logging_utils": "annot.training.loggers (build_loggers, wandb_mode, finish_wandb), "
                           "annot.training.callbacks (scale_callbacks) and annot.annotator.report "
                           "(log_report, report_metrics, overlay_grid)",
    # annot/annotator: the annotator and Algorithm 1
    "annot.losses": "annot.annotator.losses (kp2d_error_px: annot.metrics)",
    "annot.module": "annot.annotator.module",
    "annot.pipeline": "annot.annotator.pipeline (the datasets built from the config: annot.annotator.datasets; "
                      "report.json, curve and overlays: annot.annotator.report)",
    "annot.preflight": "annot.annotator.preflight",
    "annot.resume": "annot.annotator.resume",
    "annot.sharding": "annot.annotator.sharding",
    "annot.stages": "annot.annotator.stages",
    "annot.config.AnnotateConfig": "annot.annotator.config.AnnotateConfig",
    "annot.config.DataConfig": "annot.annotator.config.DataConfig",
    "annot.config.AuxDatasetConfig": "annot.annotator.config.AuxDatasetConfig",
    "annot.config.AuxStageConfig": "annot.annotator.config.AuxStageConfig",
    "annot.config.PriorConfig": "annot.annotator.config.PriorConfig",
    "annot.config.AlgorithmConfig": "annot.annotator.config.AlgorithmConfig",
    "annot.config.ModelConfig": "annot.annotator.config.ModelConfig",
    "annot.config.LossConfig": "annot.annotator.config.LossConfig",
    "annot.config.OptimConfig": "annot.annotator.config.OptimConfig",
    "annot.config.TrainerConfig": "annot.annotator.config.TrainerConfig",
    "annot.config.ExportConfig": "annot.annotator.config.ExportConfig",
    "annot.config.trainer_profile_overrides": "annot.annotator.config.trainer_profile_overrides",
    # annot/benchmarks: each named for what it measures
    "annot.bench_annot": "annot.benchmarks.quality",
    "annot.bench_stats": "annot.benchmarks.stats",
    "annot.benchmark": "annot.benchmarks.throughput",
    "annot.thread_bench": "annot.benchmarks.threads",
    "annot.synthetic": "annot.benchmarks.synthetic",
    "annot.synthetic_annotation": "annot.benchmarks.synthetic.annotation",
    "annot.bench_two_stage": "annot.benchmarks.two_stage",  # on its own branch when the house was built
}


def moved_message(old: str) -> str:
    """``"<old> moved to <new> (...)"`` for a path of :data:`MOVED`."""
    return f"{old} moved to {MOVED[old]} [the 0.1 layout's old paths: annot/_moved.py]"


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Fails the import of a moved module with :func:`moved_message`, unless a module really exists there."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in MOVED:
            return None
        if path is not None and importlib.machinery.PathFinder.find_spec(fullname, path) is not None:
            return None  # a real module at the old path (e.g. a branch merged without its move): let it load
        raise ModuleNotFoundError(moved_message(fullname))  # no name=: `from annot import x` would hide it


def install() -> None:
    """Put :class:`MovedModuleFinder` first on ``sys.meta_path`` (once): before any finder that could load a stale
    copy of a moved module, such as an editable install of another checkout."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())


def moved_attribute(module: str, name: str) -> ImportError | AttributeError:
    """The error for ``module.name`` missing: an ImportError naming the new place when the name moved (``from
    module import name`` shows its message), else the usual AttributeError. Use as a module ``__getattr__``::

        def __getattr__(name):
            raise moved_attribute(__name__, name)
    """
    old = f"{module}.{name}"
    if old in MOVED:
        return ImportError(moved_message(old), name=module)
    return AttributeError(f"module {module!r} has no attribute {name!r}")
