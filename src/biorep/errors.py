"""User-facing errors: the CLI turns these into one clear message and exit status 2."""

from __future__ import annotations

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
