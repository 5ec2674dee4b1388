"""Explicit dataset registry: configs name datasets, this maps names to classes.

A plain ``dict`` plus a decorator, in the spirit of mmhuman3d's ``Registry`` without mmcv
(style.md §10.4). No string-built imports: a dataset module registers itself when ``annot.data``
imports it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

DATASETS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator that registers a dataset class under ``name``.

    Raises:
        ValueError: if ``name`` is already registered to a different class.
    """

    def _register(cls: type) -> type:
        existing = DATASETS.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"dataset name {name!r} already registered to {existing.__module__}.{existing.__qualname__}"
            )
        DATASETS[name] = cls
        return cls

    return _register


def build_dataset(name: str, **kwargs: Any) -> Any:
    """Instantiate the dataset registered as ``name`` with keyword arguments ``kwargs``.

    Raises:
        ValueError: if ``name`` is unknown (the message lists the registered names).
    """
    if name not in DATASETS:
        known = ", ".join(sorted(DATASETS)) or "<none>"
        raise ValueError(f"unknown dataset {name!r} (config key `data.name`); registered: {known}")
    return DATASETS[name](**kwargs)
