"""Where data and caches live: ``--data-root`` → ``BIOREP_DATA`` → ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

from biorep.errors import DataError

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # <checkout>/src/biorep -> <checkout>


def default_data_roots() -> list[Path]:
    """Candidate data roots in priority order (without the explicit ``--data-root``)."""
    roots: list[Path] = []
    env = os.environ.get("BIOREP_DATA")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(_PACKAGE_ROOT.parent / "shared" / "data")
    roots.append(Path.cwd().parent / "shared" / "data")
    return roots


def find_data_root(explicit: str | os.PathLike[str] | None = None, *, required: bool = True) -> Path | None:
    """Resolve the data root; raise a :class:`DataError` explaining how to set it when absent."""
    if explicit is not None:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise DataError(f"--data-root {root}: not a directory")
        return root.resolve()
    for root in default_data_roots():
        if root.is_dir():
            return root.resolve()
    if required:
        tried = ", ".join(str(r) for r in default_data_roots())
        raise DataError(
            "no data root found (tried " + tried + "); pass --data-root DIR or set BIOREP_DATA=DIR "
            "to the folder that holds the built-in data sets"
        )
    return None


def cache_dir() -> Path:
    """Folder for decoded-image caches: ``BIOREP_CACHE`` or ``~/.cache/biorep``."""
    env = os.environ.get("BIOREP_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "biorep"
    path.mkdir(parents=True, exist_ok=True)
    return path
