"""The error boundary and quiet logging shared by every command in ``tools/``.

Every tool ends with ``sys.exit(run_tool(main))``. :func:`run_tool`:

1. removes ``--debug`` from the arguments (``NEURAL_ANNOT_DEBUG=1`` does the same);
2. silences known third-party noise (:func:`quiet_third_party`): Lightning's advertising tips and the
   deprecation warnings that Lightning / torch emit about their own internals;
3. calls ``main(argv)``; a problem with the input (:data:`INPUT_ERRORS`: config errors, missing or
   unreadable files, malformed data, preflight reports) prints ``error: <message>`` on stderr (one line,
   or the short block of a :class:`annot.app.errors.PreflightError`) and returns
   :data:`annot.app.errors.EXIT_INPUT` (2); with ``--debug`` the traceback is printed as well. Any other
   exception is a bug: its traceback is always printed and the status is :data:`annot.app.errors.EXIT_BUG`.
   Ctrl-C returns 130 with one line.
"""
from __future__ import annotations

import logging
import os
import pickle
import sys
import traceback
import warnings
import zipfile
from collections.abc import Callable, Sequence

from annot.app.errors import EXIT_BUG, EXIT_INPUT, EXIT_INTERRUPTED

#: Environment variable that turns on tracebacks for input errors (like ``--debug``).
DEBUG_ENV = "NEURAL_ANNOT_DEBUG"

#: Exception types that describe a problem with the user's input; their messages name the file /
#: config key / sample id (``annot.config.ConfigError`` and ``annot.app.errors.InputError`` are ValueErrors,
#: ``BodyModelNotFoundError`` a FileNotFoundError). ``EOFError`` / ``UnpicklingError`` /
#: ``zipfile.BadZipFile``: a truncated or corrupt pickle / checkpoint / npz.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, EOFError, pickle.UnpicklingError,
                                                 zipfile.BadZipFile, ImportError)

#: Messages of third-party log records / warnings that are noise in our commands (regexes).
NOISE_MESSAGES = (
    r"💡 Tip:",                                       # Lightning's litlogger / litmodels advertising
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's _pytree on torch >= 2.6
    r"`weights_only` was not set",                       # Lightning's checkpoint loading
    r"Found \d+ module\(s\) in eval mode at the start of training",  # the frozen VPoser / body model
)
_NOISY_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                  "lightning_fabric.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                  "pytorch_lightning.trainer.connectors.checkpoint_connector",
                  "lightning.pytorch.trainer.connectors.checkpoint_connector",
                  "pytorch_lightning", "lightning.pytorch", "lightning_fabric")


class _DropNoise(logging.Filter):
    """Drop log records whose message matches one of :data:`NOISE_MESSAGES`."""

    def __init__(self) -> None:
        super().__init__()
        import re

        self._pattern = re.compile("|".join(NOISE_MESSAGES))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self._pattern.search(record.getMessage())


def quiet_third_party() -> None:
    """Silence :data:`NOISE_MESSAGES` (log records of the Lightning loggers and ``warnings``).

    Idempotent; affects only those messages (other warnings and Lightning's own info lines stay).
    """
    for pattern in NOISE_MESSAGES:
        warnings.filterwarnings("ignore", message=f".*{pattern}")
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())


def debug_requested(argv: Sequence[str]) -> bool:
    """True when ``--debug`` is among ``argv`` or ``NEURAL_ANNOT_DEBUG`` is set to anything but ``0``/empty."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def format_error(err: BaseException) -> str:
    """``error: <message>`` for an input error; ``OSError`` without a message gets its file name."""
    text = str(err).strip()
    if isinstance(err, OSError) and getattr(err, "filename", None) and str(err.filename) not in text:
        text = f"{err.filename}: {err.strerror or text}"
    if isinstance(err, (EOFError, pickle.UnpicklingError, zipfile.BadZipFile)) or not text:
        text = f"{type(err).__name__}: {text or 'no message'} (a truncated or corrupt file)"
    return f"error: {text}"


def run_tool(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``main(argv)`` inside the error boundary (module docstring); returns the exit status.

    Args:
        main: the tool's entry point, taking the argument list (without the program name and without
            ``--debug``) and returning its exit status (``None`` = 0).
        argv: arguments; default ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    args = [a for a in args if a != "--debug"]
    quiet_third_party()
    try:
        status = main(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except INPUT_ERRORS as err:
        if debug:
            traceback.print_exc()
        print(format_error(err), file=sys.stderr)
        if not debug:
            print(f"(run with --debug or {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return EXIT_INPUT
    except Exception as err:  # noqa: BLE001 - the boundary: a bug, shown in full
        traceback.print_exc()
        print(f"error: unexpected {type(err).__name__} (a bug: please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_BUG
    return 0 if status is None else int(status)


__all__ = ["DEBUG_ENV", "INPUT_ERRORS", "NOISE_MESSAGES", "debug_requested", "format_error", "quiet_third_party",
           "run_tool"]
