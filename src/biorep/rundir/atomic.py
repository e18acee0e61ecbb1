"""The one atomic writer: temp file in the target's folder, fsync, rename; files honour the umask.

Used for every file of a run directory (checkpoints included), caches and study tables, so a kill,
a full disk or an error mid-write never leaves a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from biorep.errors import BiorepError, RunDirError

log = logging.getLogger("biorep.rundir")


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (``os.umask`` can only be
    read by setting it, which would briefly let another thread create files with mode 0666)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def output_file(target: str | Path, *, overwrite: bool, option: str = "--out") -> Path:
    """Check, before any work, that a command may write its output file ``target``; returns the path
    to write (a symbolic link's target, so the link stays a link).

    Raises:
        RunDirError: ``target`` is a folder or a device, exists without ``overwrite``, or sits under
            a file or a folder this user cannot write.
    """
    path = Path(target).expanduser()
    if str(target) == "":
        raise RunDirError(f"{option}: give a file name")
    if path.is_symlink():
        path = path.resolve()
    if path.is_dir():
        raise RunDirError(f"{option} {target} is a folder; give a file name inside it")
    if path.exists():
        if not path.is_file():
            raise RunDirError(f"{option} {target} is not a regular file (a device or a pipe); give a file name")
        if not overwrite:
            raise RunDirError(f"{option} {target} already exists; pass --overwrite to replace it")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise RunDirError(f"{option} {target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunDirError(f"{option} {target}: cannot write in {parent} (permission denied)")
    return path


def atomic_write(target: str | Path, write: Callable[[Path], Any], *, mode: int = 0o666) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``target``, fsync it, then rename it into place.

    The folder is created when missing. A failed ``write`` (or fsync, e.g. a full disk) leaves
    ``target`` as it was and no temp file behind; an :class:`OSError` becomes a
    :class:`~biorep.errors.BiorepError` naming the path and the cause. The file gets
    ``mode & ~umask`` (``mkstemp`` alone would give 0600). Returns ``target``.

    Example:
        >>> atomic_write(Path("run/notes.txt"), lambda p: p.write_text("hello"))  # doctest: +SKIP
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise BiorepError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        raise BiorepError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``target``."""
    return atomic_write(target, lambda p: p.write_bytes(data))


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``target``."""
    return atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"))


def to_jsonable(obj: Any) -> Any:
    """JSON types for numpy/pandas scalars, arrays and tables, pydantic models and paths; NaN/inf/NA → None.

    Example:
        >>> to_jsonable({"a": float("nan"), 1: (2, 3)})
        {'a': None, '1': [2, 3]}
    """
    import math

    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump(mode="json"))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if type(obj).__name__ == "DataFrame" and hasattr(obj, "to_dict"):  # pandas, without importing it
        return [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars
        return to_jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if type(obj).__name__ in ("NAType", "NaTType"):  # pandas.NA / pandas.NaT
        return None
    return str(obj)


def write_json(target: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Atomically write ``obj`` as JSON (numpy values, models and NaN handled; ``indent=None``: one line)."""
    return atomic_write_text(target, json.dumps(to_jsonable(obj), indent=indent) + "\n")


def write_yaml(target: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as YAML, keys in their given order."""
    return atomic_write_text(target, yaml.safe_dump(to_jsonable(obj), sort_keys=False))


def _read(path: str | Path, parse: Callable[[str], Any], kind: str, errors: tuple[type[Exception], ...]) -> Any:
    path = Path(path)
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing — is {path.parent} a biorep run directory?") from None
    except (*errors, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: not valid {kind} ({exc})") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_json(path: str | Path) -> Any:
    """Parse a run-directory JSON file; a missing or corrupt one is a :class:`RunDirError` naming it."""
    return _read(path, json.loads, "JSON", (json.JSONDecodeError,))


def read_yaml(path: str | Path) -> Any:
    """Parse a run-directory YAML file; a missing or corrupt one is a :class:`RunDirError` naming it."""
    return _read(path, yaml.safe_load, "YAML", (yaml.YAMLError,))


@contextlib.contextmanager
def locked(target: str | Path) -> Iterator[None]:
    """Hold an exclusive lock for ``target`` (a hidden ``.<name>.lock`` beside it) while the block runs.

    For read-modify-write updates that several processes may make at once (two ``biorep evaluate``
    calls on one run). Where locks are not supported the block runs unlocked.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(target.parent / f".{target.name}.lock", "a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except OSError:  # e.g. a file system without locks
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def update_json(target: str | Path, update: Callable[[dict[str, Any]], dict[str, Any]], *,
                indent: int = 2) -> Path:
    """Atomically replace the JSON object in ``target`` by ``update(old)``, under :func:`locked`.

    A missing file reads as ``{}``; an unreadable one (or one not holding an object) is logged and
    replaced, so one broken file never blocks storing new results.
    """
    target = Path(target)
    with locked(target):
        old: dict[str, Any] = {}
        if target.is_file():
            try:
                loaded = read_json(target)
            except RunDirError as exc:
                log.warning("%s; it is replaced", exc)
            else:
                if isinstance(loaded, dict):
                    old = loaded
                else:
                    log.warning("%s: not a JSON object; it is replaced", target)
        return write_json(target, update(old), indent=indent)
