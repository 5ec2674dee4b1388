"""Error types for problems with the user's input, and the list a preflight check collects.

Two kinds of failure end a command (style.md: clear errors name file, sample id, field, config key):

* a problem with the input: a config value, a missing / malformed / unreadable file, an empty
  dataset. The message is meant for the user; :mod:`annot.app.cli` prints it as one line (or a short
  block for a :class:`PreflightError`) without a traceback and exits with :data:`EXIT_INPUT`;
* anything else is a bug: :mod:`annot.app.cli` prints the traceback.

:class:`InputError` and :class:`PreflightError` subclass ``ValueError`` so that existing callers that
catch ``ValueError`` (and tests using ``pytest.raises(ValueError)``) keep working.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Exit status of a command stopped by a problem with its input (config, files, data).
EXIT_INPUT = 2
#: Exit status of a command stopped by an unexpected error (a bug: the traceback is printed).
EXIT_BUG = 1
#: Exit status after Ctrl-C.
EXIT_INTERRUPTED = 130


class InputError(ValueError):
    """A problem with the user's input; the message names the file / config key / sample id."""


@dataclass(frozen=True)
class Problem:
    """One problem found by a preflight check.

    Attributes:
        where: the config key (``data.root``) or file the problem is about.
        what: what is wrong, one sentence, naming the value / sample id / field.
        hint: optional: what to do about it.
    """

    where: str
    what: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" + (f" ({self.hint})" if self.hint else "")


class PreflightError(InputError):
    """Every problem a preflight check found, reported together.

    Args:
        problems: at least one :class:`Problem`.
        title: first line of the message.
    """

    def __init__(self, problems: list[Problem], title: str = "preflight check failed") -> None:
        self.problems = list(problems)
        self.title = title
        lines = [f"{title}: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


__all__ = ["EXIT_BUG", "EXIT_INPUT", "EXIT_INTERRUPTED", "InputError", "PreflightError", "Problem"]
