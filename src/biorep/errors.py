"""User-facing errors: the CLI turns these into one clear message and exit status 2."""

from __future__ import annotations


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
