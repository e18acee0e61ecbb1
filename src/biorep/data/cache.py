"""Decode once: image files → one memory-mapped ``(N, C, H, W)`` ``.npy`` + a JSON sidecar.

The cache key hashes the ordered file list (path, size, mtime) and the preprocessing settings, so
editing, adding or re-ordering files or changing the geometry makes a new cache, and a later load
only ``stat``s the files. Every cache file is written to a temporary name and ``os.replace``d into
place (the JSON sidecar last, as the commit marker), so a crash or a bad file never leaves a
half-written cache. Decoding runs in a process pool with a rich progress bar on stderr.

Example:
    >>> dec = decode_cached(files, GeometryConfig(size=64), name="mine")   # doctest: +SKIP
    >>> dec.images.shape                                                    # doctest: +SKIP
    (1200, 1, 64, 64)
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biorep import paths
from biorep.data.config import GeometryConfig
from biorep.data.decode import as_colour, read_image
from biorep.data.geometry import (
    OUTLIER_FACTOR, Size, apply_geometry, as_hw, as_size, auto_scale, border_median, size_label, size_outliers,
)
from biorep.errors import BiorepError, DataError
from biorep.rundir import atomic_write, atomic_write_text

log = logging.getLogger("biorep.data")

#: Bumped when decoding changes what a cache holds (2: the auto scale leaves size outliers out; a planar
#: 4-sample TIFF keeps a 4th plane that is not an opacity mask; 16-bit colour PNGs keep their depth).
CACHE_VERSION = 2
_CHUNK = 128
_SERIAL_BELOW = 256  # files; smaller sets decode in-process (a pool costs more than it saves)
_DTYPE_ORDER = [np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)]


@dataclass
class Decoded:
    """What the cache holds: images, the original ``(h, w)`` per file, and settings/statistics."""

    images: np.ndarray
    orig_sizes: np.ndarray
    info: dict[str, Any]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Worker processes for decoding: the usable CPU cores, at most 8."""
    return max(1, min(8, usable_cores()))


def _warn_size_outliers(name: str, files: Sequence[str | Path], orig: np.ndarray, size: Size, scale: float) -> None:
    """Name the crops far larger than the rest when leaving them out of the auto scale mattered
    (they would have shrunk every other crop by more than 10 %); they are shrunk to fit."""
    out = size_outliers(orig[:, 0], orig[:, 1], size)
    if not out.any() or auto_scale(orig[:, 0], orig[:, 1], size, exclude_outliers=False) > 0.9 * scale:
        return
    biggest = int(np.argmax(np.where(out, orig[:, 0] * orig[:, 1], -1)))
    med_h, med_w = (int(v) for v in np.median(orig, axis=0))
    log.warning(
        "%s: %d of %d image(s) are more than %g× the median size (%d×%d px), e.g. %s (%d×%d px): the auto "
        "scale is fitted to the other images (they would have shrunk all of them), and these are shrunk to "
        "fit the canvas — are they crops of the same kind?", name, int(out.sum()), len(files), OUTLIER_FACTOR, med_h, med_w, files[biggest],
        int(orig[biggest, 0]), int(orig[biggest, 1]),
    )


def cache_key(files: Sequence[str | Path], settings: dict[str, Any], *, origin: str = "") -> str:
    """SHA-256 of the ordered file list (path, size, mtime) and the settings.

    Raises:
        DataError: a listed file does not exist.
    """
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, **settings}, sort_keys=True, default=str).encode())
    for f in files:
        try:
            st = os.stat(f)
        except FileNotFoundError:
            where = f" (listed in {origin})" if origin else ""
            raise DataError(f"{f}: image file does not exist{where}") from None
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{f}: not a file")
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover


def ensure_free_space(folder: Path, nbytes: int, *, what: str) -> None:
    """Raise a :class:`BiorepError` naming ``folder`` when its disk has less than ``nbytes`` free.

    Checked before writing a file of known size (the decode cache), so a full disk is one clear
    message instead of a half-written file.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the write itself (preallocated) will say
    if free < nbytes:
        raise BiorepError(
            f"{folder}: not enough free space for {what} ({_human(nbytes)} needed, {_human(free)} free); "
            "free some space or set BIOREP_CACHE to a folder on a disk with room"
        )


def preallocate(path: Path) -> None:
    """Reserve the blocks of ``path`` (its current size) so that writing a memory map of it can never
    hit a full disk (which would be SIGBUS, not an error). No-op where the file system cannot."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:  # pragma: no cover - not on this platform
        return
    fd = os.open(path, os.O_RDWR)
    try:
        fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return  # e.g. some network file systems; the free-space check still applies
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


def cache_files(name: str, key: str) -> tuple[Path, Path, Path]:
    """The three cache files (images, original sizes, sidecar) for ``name`` and ``key``."""
    folder: Path | str = os.environ.get("BIOREP_CACHE") or "the cache folder"
    try:
        folder = paths.cache_dir() / "datasets"
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BiorepError(
            f"{exc.filename or folder}: cannot create the decode cache folder ({exc.strerror or exc}); "
            "set BIOREP_CACHE to a folder you can write to"
        ) from None
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:40] or "data"
    stem = f"{stem}-{key[:20]}"
    return folder / f"{stem}.npy", folder / f"{stem}.sizes.npy", folder / f"{stem}.json"


def _read_cache(images: Path, sizes: Path, sidecar: Path, n: int) -> Decoded | None:
    if not (images.exists() and sizes.exists() and sidecar.exists()):
        return None
    try:
        info = json.loads(sidecar.read_text())
        arr = np.load(images, mmap_mode="r")
        orig = np.load(sizes)
    except (OSError, ValueError):
        return None
    if arr.ndim != 4 or arr.shape[0] != n or orig.shape != (n, 2):
        return None
    return Decoded(arr, orig, info)


# --------------------------------------------------------------------------- workers


def _decode_chunk(files: Sequence[str | Path], borders: bool = True) -> list[tuple[np.ndarray, float]]:
    return [(a, border_median(a) if borders else 0.0) for a in map(read_image, files)]


def _geometry_chunk(
    arrays: list[np.ndarray], mode: str, size: Size, scale: float, background: float
) -> tuple[np.ndarray, int]:
    outs, shrunk = [], 0
    for a in arrays:
        o, s = apply_geometry(a, mode, size, scale, background)
        outs.append(o)
        shrunk += int(s)
    return np.stack(outs), shrunk


def _warn_mixed_dtypes(name: str, arrays: Sequence[np.ndarray], files: Sequence[Any]) -> None:
    """Warn when files of one data set have different pixel types (e.g. 8-bit JPEG beside 16-bit TIFF).

    They are stored in the widest type without rescaling, so their intensities are not comparable
    unless the lab meant that; the warning names one file of each type.
    """
    counts = Counter(str(a.dtype) for a in arrays)
    if len(counts) > 1:
        first = {}
        for a, f in zip(arrays, files):
            first.setdefault(str(a.dtype), f)
        kinds = ", ".join(f"{n} {k} (e.g. {first[k]})" for k, n in counts.items())
        log.warning("%s: files have different pixel types: %s; values are kept as they are (not rescaled "
                    "to a common range), so intensities differ between them", name, kinds)


def _warn_degenerate(name: str, arrays: Sequence[np.ndarray], files: Sequence[Any]) -> None:
    """Note images with nothing in them (one value everywhere: blank, all-zero, saturated) and tiny
    ones (under 4 px on a side): decodable, so no error, but usually an export or cropping slip."""
    flat = [i for i, a in enumerate(arrays) if a.size and a.min() == a.max()]
    tiny = [i for i, a in enumerate(arrays) if min(a.shape[1:]) < 4]
    for what, idx in (("hold one value everywhere (blank, all-zero or saturated)", flat),
                      ("are under 4 px on a side", tiny)):
        if idx:
            shown = ", ".join(str(files[i]) for i in idx[:3]) + (" ..." if len(idx) > 3 else "")
            log.warning("%s: %d of %d image(s) %s; they give a model nothing to learn from: %s",
                        name, len(idx), len(arrays), what, shown)


def _background_in_range(name: str, bg: float, dtype: np.dtype[Any], *, given: bool) -> float:
    """``bg`` rounded and clipped to an integer pixel type's range; a ``given`` (not measured)
    background outside it gets a warning."""
    if not np.issubdtype(dtype, np.integer):
        return bg
    hi = float(np.iinfo(dtype).max)
    clipped = float(np.clip(round(bg), 0, hi))
    if given and abs(clipped - bg) > 0.5:
        log.warning("%s: background %g is outside the %s pixel range 0-%g; %g is used", name, bg,
                    np.dtype(dtype), hi, clipped)
    return clipped


def _chunks(seq: Sequence[Any], k: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), k):
        yield seq[i : i + k]


class _SerialExecutor:
    """Same ``map`` as an executor, in this process (for small inputs and 1 worker)."""

    def map(self, fn: Callable[..., Any], *its: Any) -> Iterator[Any]:
        return map(fn, *its)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _executor(n_files: int, workers: int | None) -> Executor | _SerialExecutor:
    workers = workers or default_workers()
    if workers <= 1 or n_files < _SERIAL_BELOW:
        return _SerialExecutor()
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


# --------------------------------------------------------------------------- decoding


def _resolve_channels(
    arrays: list[np.ndarray], files: Sequence[str | Path], channels: int | list[int] | None
) -> tuple[list[np.ndarray], int]:
    counts = [a.shape[0] for a in arrays]
    majority, n_major = Counter(counts).most_common(1)[0]
    if isinstance(channels, int):
        expected, why = channels, "the configured `channels`"
    else:
        expected, why = majority, f"the majority ({n_major} of {len(counts)} files)"
    arrays = [as_colour(a, f, expected) for a, f in zip(arrays, files)]
    grey = [i for i, a in enumerate(arrays) if a.shape[0] != counts[i]]
    counts = [a.shape[0] for a in arrays]
    if grey:  # grey (or RGB-of-grey) pictures in a colour set
        log.warning("%d grey picture(s) in a %d-channel (colour) data set are used with their grey value in each "
                    "channel, e.g. %s", len(grey), expected, files[grey[0]])
    for f, c in zip(files, counts):
        if c != expected:
            fix = "convert the file" if isinstance(channels, int) else "convert the file or set `channels`"
            raise DataError(f"{f}: has {c} channel(s) but the data set has {expected} ({why}); mixed channel "
                            f"counts — {fix}")
    if isinstance(channels, list):
        bad = [i for i in channels if i >= expected]
        if bad:
            raise DataError(f"channels {channels}: index {bad[0]} out of range, the images have {expected} channel(s)")
        arrays = [a[channels] for a in arrays]
        expected = len(channels)
    return arrays, expected


def decode_cached(
    files: Sequence[str | Path],
    geometry: GeometryConfig,
    *,
    name: str,
    channels: int | list[int] | None = None,
    background: float | str = "auto",
    progress: bool = True,
    workers: int | None = None,
    origin: str = "",
) -> Decoded:
    """Decode ``files`` (or read their cache) into ``(N, C, size, size)`` with geometry applied.

    Args:
        files: absolute image paths in data set order.
        geometry: mode/size/scale (its ``background`` overrides the ``background`` argument).
        name: data set name (for the cache file name and messages).
        channels: channel count to enforce, indices to keep, or ``None`` (majority).
        background: default fill value in raw units or ``"auto"`` (median border pixel).
        progress: show a rich progress bar on stderr.
        workers: decoding processes (default: usable cores, at most 8).
        origin: manifest/folder to name in "file does not exist" messages.

    Raises:
        DataError: a missing/corrupt/zero-sized/NaN image, mixed channel counts, or images of
            different sizes with ``geometry.mode == "none"``. Nothing is written in that case.
    """
    if not files:
        raise DataError(f"{origin or name}: no image files to load")
    bg_setting = geometry.background if geometry.background is not None else background
    settings = {
        "mode": geometry.mode,
        "size": geometry.size,
        "scale": geometry.scale,
        "background": bg_setting,
        "channels": channels,
    }
    if geometry.pixel_size is not None:  # only then: caches of every other setting keep their key
        settings["pixel_size"] = geometry.pixel_size
    key = cache_key(files, settings, origin=origin)
    img_path, sizes_path, sidecar = cache_files(name, key)
    cached = _read_cache(img_path, sizes_path, sidecar, len(files))
    if cached is not None:
        return cached

    files = list(files)
    ex = _executor(len(files), workers)
    try:
        with _progress(progress) as bar:
            task = bar.add_task(f"decoding {name}", total=len(files))
            arrays: list[np.ndarray] = []
            borders: list[float] = []
            jobs = list(_chunks(files, _CHUNK))
            for chunk in ex.map(_decode_chunk, jobs, [bg_setting == "auto"] * len(jobs)):
                for a, b in chunk:
                    arrays.append(a)
                    borders.append(b)
                bar.advance(task, len(chunk))

            arrays, n_channels = _resolve_channels(arrays, files, channels)
            dtype = max((a.dtype for a in arrays), key=_DTYPE_ORDER.index)
            _warn_mixed_dtypes(name, arrays, files)
            orig = np.array([a.shape[1:] for a in arrays], dtype=np.int32)
            _warn_degenerate(name, arrays, files)
            auto_bg = bg_setting == "auto"
            bg = float(np.median(borders)) if auto_bg else float(bg_setting)
            bg = _background_in_range(name, bg, np.dtype(dtype), given=not auto_bg)

            if geometry.mode == "none":
                h0, w0 = orig[0]
                for f, (h, w) in zip(files, orig):
                    if (h, w) != (h0, w0):
                        raise DataError(
                            f"{f}: is {h}×{w} but {files[0]} is {h0}×{w0}; geometry mode 'none' needs "
                            "images of one size (use mode 'canvas' or 'resize')"
                        )
                size: Size = as_size((int(h0), int(w0)))
            else:
                size = geometry.size
            scale = (
                auto_scale(orig[:, 0], orig[:, 1], size) if geometry.scale == "auto" else geometry.resize_factor()
            )
            if geometry.scale == "auto" and geometry.mode != "none":
                _warn_size_outliers(name, files, orig, size, scale)
            if geometry.mode == "canvas":
                med_h, med_w = (float(v) * scale for v in np.median(orig, axis=0))
                if max(med_h, med_w) < 4:  # a scale typed with the wrong exponent: blank canvases
                    log.warning("%s: at scale %g the median image becomes %.1f×%.1f px on the %s canvas; nothing "
                                "of it will be left to learn from — is the scale right?", name, scale, med_h, med_w,
                                size_label(size))

            shape = (len(files), n_channels, *as_hw(size))
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            ensure_free_space(img_path.parent, nbytes + orig.nbytes + (1 << 16), what="the decode cache")
            n_shrunk = 0

            def fill(tmp: Path) -> None:
                nonlocal n_shrunk
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
                try:
                    preallocate(tmp)  # a full disk fails here, not as SIGBUS while writing the memmap
                    task2 = bar.add_task(f"{geometry.mode} {size_label(size)}", total=len(files))
                    pos = 0
                    jobs = [[a.astype(dtype, copy=False) for a in c] for c in _chunks(arrays, _CHUNK)]
                    k = len(jobs)
                    for stack, shrunk in ex.map(
                        _geometry_chunk, jobs, [geometry.mode] * k, [size] * k, [scale] * k, [bg] * k
                    ):
                        out[pos : pos + len(stack)] = stack
                        pos += len(stack)
                        n_shrunk += shrunk
                        bar.advance(task2, len(stack))
                    out.flush()
                finally:
                    del out

            def save_sizes(tmp: Path) -> None:
                with open(tmp, "wb") as fh:
                    np.save(fh, orig)

            # temp file beside each target, fsync, rename; the sidecar last, as the commit marker
            atomic_write(img_path, fill)
            atomic_write(sizes_path, save_sizes)
            info = {
                "name": name,
                "key": key,
                "n": len(files),
                "channels": n_channels,
                "dtype": str(np.dtype(dtype)),
                "size": size,
                "background": bg,
                "scale": scale,
                "n_shrunk": n_shrunk,
                "settings": settings,
                "cache_version": CACHE_VERSION,
            }
            atomic_write_text(sidecar, json.dumps(info, indent=1, default=str))
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    if n_shrunk:
        log.warning("%s: %d of %d crops were larger than the %s canvas at scale %.3f and were shrunk to fit",
                    name, n_shrunk, len(files), size_label(size), scale)
    result = _read_cache(img_path, sizes_path, sidecar, len(files))
    assert result is not None
    return result
