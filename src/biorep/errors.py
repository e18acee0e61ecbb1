"""User-facing errors: the CLI turns these into one clear message and exit status 2."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class BiorepError(Exception):
    """A problem with the user's input (file, column, config value) rather than a bug.

    The message must name the file, column or field and say what is wrong.
    """

    exit_code = 2


class DataError(BiorepError):
    """An image, folder or manifest cannot be used as given."""


class ConfigError(BiorepError):
    """A config file or override is invalid."""


class RunDirError(BiorepError):
    """A run directory is missing, incomplete or would be overwritten."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM (a scheduler's pre-emption); the run dir is kept for
    ``--resume``. Lightning turns both signals into ``SystemExit`` (status 1, or 0 for SIGTERM);
    this carries the signal's conventional exit status instead (130, 143)."""

    def __init__(self, out: str, signal_name: str = "SIGINT") -> None:
        super().__init__(out, signal_name)
        self.out, self.signal_name = out, signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130

    def __str__(self) -> str:
        return self.message()

    def message(self, config: str | None = None) -> str:
        """What stopped, what is kept and the command that continues it (``config``: the file trained)."""
        return (f"interrupted ({self.signal_name}); {self.out} is kept: continue it with "
                f"`biorep train {config or 'CONFIG'} --out {self.out} --resume`")


class Terminated(KeyboardInterrupt):
    """A SIGTERM raised as Ctrl-C in a process that waits on a training child (a study), so the same
    wind-down runs; it carries the signal's conventional exit status, 143."""

    exit_code = 143

    def __init__(self) -> None:
        super().__init__("SIGTERM")


def short_list(items: Sequence[Any], limit: int, show: Callable[[Any], str] = str) -> str:
    """``a, b, … (N in all)``: the first ``limit`` of ``items``, each through ``show``, for an error line
    or a table cell."""
    text = ", ".join(show(v) for v in items[:limit])
    return text + (f", … ({len(items)} in all)" if len(items) > limit else "")


def validation_message(exc: Any, *, prefix: str = "") -> str:
    """One line for a pydantic ``ValidationError``: each problem as ``KEY=VALUE: what is wrong``.

    ``prefix`` is put before each key (``"data.options."``); a missing field reads ``KEY: Field
    required``. Use it wherever user values are validated (``--set``, ``-o``, config files).

    Example:
        >>> validation_message(err, prefix="train.")  # doctest: +SKIP
        "train.epochs='zero': Input should be a valid integer, unable to parse string as an integer"
    """
    parts = []
    for e in exc.errors():
        key = prefix + (".".join(str(p) for p in e.get("loc", ())) or "value")
        given = e.get("input")
        shown = "" if e.get("type") == "missing" or isinstance(given, dict) else f"={given!r}"
        parts.append(f"{key}{shown}: {e.get('msg')}")
    return "; ".join(parts)
