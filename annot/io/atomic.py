"""Atomic file writes: a temporary file in the target folder, fsync, then ``os.replace``.

A reader never sees a half-written file and an interrupted run leaves the previous file (or none).
This module imports nothing else from ``annot``, so every room can use it.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, then rename it to ``path``.

    Parent folders are created; the file gets the usual mode (``0o666`` minus the umask, not
    ``mkstemp``'s 0600). On any exception the temporary file is removed and the exception re-raised.

    Returns:
        ``path`` as a :class:`Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Serialise ``obj`` as indented JSON (UTF-8, trailing newline) and write it atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode("utf-8"))
