"""A study's small results kept where they survive: an archive folder committed to git.

A long study outlives one machine: its study folder (``runs/<setup>@<fold>/`` with checkpoints and
embeddings) is lost between sessions, only what is committed survives. :func:`archive_study` copies
the small files of every finished and evaluated run into ``ARCHIVE/runs/<run>/``; the next session
:func:`restore_study` copies them back where the run is missing, so the runner sees those runs as done
and evaluated and skips them, and the results writers read them as any other run.

Per run the archive keeps :data:`RUN_FILES` (config, data record, summary, evaluation, metrics,
state) and the per-item tables ``evaluation/<key>.csv`` (gzip-compressed, ``.csv.gz``) of the
evaluations recorded in ``evaluation.json`` (per-crop predictions for paired verdicts, the report's evidence). It leaves out
checkpoints, embeddings and karyogram figures (tens of MB) and ``evaluation/<key>.json``, which
repeat ``evaluation.json[key]`` (``name`` + ``summary``) and which no reader opens. A restored run
therefore has no checkpoint: :func:`check_checkpoints` says so before a step that needs one.

Only runs that are done (``summary.json``), finished (``state.json``) and evaluated
(``evaluation.json``) are copied, and every file is written atomically, so archiving while another
process runs the study (``--archive-only`` of the benchmark drivers) copies whole runs only.

Example:
    >>> archive_study("runs/screening-16", "benchmarks/screening/archive/screening-16")  # doctest: +SKIP
    >>> restore_study("benchmarks/screening/archive/screening-16", "runs/screening-16")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from biorep.errors import RunDirError
from biorep.rundir import (
    CONFIG,
    DATA,
    EVALUATION,
    METRICS,
    STATE,
    SUMMARY,
    RunPaths,
    atomic_write_bytes,
    read_json,
    read_state,
    to_jsonable,
    write_json,
)
from biorep.study.runner import RESULTS_CSV, RESULTS_MD, STUDY, run_state

log = logging.getLogger("biorep.study")

#: The files of a run directory the archive keeps (``summary.json`` written last on restore).
RUN_FILES = (CONFIG, DATA, STATE, METRICS, EVALUATION, SUMMARY)
#: The suffix of an evaluation's per-item table, ``evaluation/<key>.csv``.
TABLE_SUFFIX = ".csv"
#: Per-item tables are kept gzip-compressed in the archive (``<key>.csv.gz``, ~5× smaller: a chromosome
#: run's per-crop tables are ~2 MB as text) and written back as plain ``<key>.csv`` on restore.
PACKED = ".gz"
#: The study folder's own small files the archive keeps (drivers add theirs, e.g. ``benchmark.json``).
STUDY_FILES = (STUDY, RESULTS_CSV, RESULTS_MD)
RUNS = "runs"
#: ``merge(archived, local) -> merged`` for a study-level JSON file present on both sides.
Merge = Callable[[Any, Any], Any]


# ----------------------------------------------------------------------------- which runs and files
def archivable(run_dir: str | Path) -> bool:
    """Whether a run is finished and evaluated: ``summary.json``, ``evaluation.json`` and a finished state."""
    run_dir = Path(run_dir)
    if run_state(run_dir) != "done" or not RunPaths(run_dir).evaluation.is_file():
        return False
    try:
        state = read_state(run_dir)
    except RunDirError:
        return False
    return state is None or state.status == "finished"


def run_files(run_dir: str | Path) -> dict[str, bytes]:
    """The archived files of one run as ``{relative path: bytes}``; empty when it is not :func:`archivable`.

    Read in one go (each file was written atomically), so a run another process is still evaluating
    is either taken whole as it was or left for the next call.
    """
    run_dir = Path(run_dir)
    if not archivable(run_dir):
        return {}
    paths = RunPaths(run_dir)
    out: dict[str, bytes] = {}
    try:
        for name in RUN_FILES:
            path = paths.root / name
            if path.is_file():
                out[name] = path.read_bytes()
        evaluations = json.loads(out[EVALUATION])
    except (OSError, KeyError, ValueError) as exc:
        log.warning("%s: not archived (%s)", run_dir, exc)
        return {}
    if not isinstance(evaluations, dict):
        log.warning("%s: not archived (%s holds no JSON object)", run_dir, EVALUATION)
        return {}
    for key in evaluations:
        table = paths.evaluation_result(key, TABLE_SUFFIX)
        if table.is_file():
            out[table.relative_to(paths.root).as_posix() + PACKED] = _pack(table.read_bytes())
    return out


def _pack(data: bytes) -> bytes:
    """gzip with a fixed timestamp, so archiving an unchanged table again writes nothing."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def _unpacked(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """An archived run's files as the run directory holds them (tables decompressed)."""
    return {(rel[: -len(PACKED)] if rel.endswith(TABLE_SUFFIX + PACKED) else rel):
            (gzip.decompress(data) if rel.endswith(TABLE_SUFFIX + PACKED) else data)
            for rel, data in files.items()}


def is_restored(run_dir: str | Path) -> bool:
    """A run with results but no ``checkpoints/``: training always makes that folder before it writes
    ``summary.json``, so such a run came from an archive (:func:`restore_study`)."""
    paths = RunPaths(Path(run_dir))
    return paths.summary.is_file() and not paths.checkpoints.is_dir()


def check_checkpoints(run_dir: str | Path, action: str) -> None:
    """Raise a :class:`RunDirError` naming the run when it was restored from an archive (no checkpoints
    or embeddings), before ``action`` (e.g. ``"evaluated again"``) fails on a missing checkpoint."""
    run_dir = Path(run_dir)
    if is_restored(run_dir):
        raise RunDirError(
            f"{run_dir}: run {run_dir.name!r} was restored from the study archive without checkpoints or "
            f"embeddings (the archive keeps only the small result files), so it cannot be {action}; "
            f"delete {run_dir} and run the study again to retrain it"
        )


# ----------------------------------------------------------------------------- the study fingerprint
def _normal(obj: Any) -> Any:
    return json.loads(json.dumps(to_jsonable(obj), default=str))


def _identity(study: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": study.get("name"), "base": _normal(study.get("base"))}


def check_same_study(archive_dir: str | Path, study: Mapping[str, Any], where: str | Path) -> None:
    """Refuse an archive whose ``study.json`` has another name or base than ``study`` (``{"name",
    "base"}``, a ``study.json`` or the config about to run); setups may differ (a study may grow)."""
    path = Path(archive_dir) / STUDY
    if not path.is_file():
        return
    there, here = _identity(read_json(path)), _identity(study)
    if there == here:
        return
    what = (f"name {there['name']!r} there, {here['name']!r} in {where}" if there["name"] != here["name"]
            else f"its base settings differ from {where}")
    raise RunDirError(f"{archive_dir}: the archive holds a different study ({what}); give another archive "
                      "folder (--archive) or none (--no-archive)")


# ----------------------------------------------------------------------------- copying
def _same(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.read_bytes() == data
    except OSError:
        return False


def _write_run(files: Mapping[str, bytes], target: Path) -> None:
    """Write ``files`` under ``target``: a new run through a hidden staging folder renamed into place
    (never half there), an existing one file by file (only the files that changed)."""
    order = sorted(files, key=lambda rel: rel == SUMMARY)  # summary.json last
    if target.is_dir():
        for rel in order:
            if not _same(target / rel, files[rel]):
                atomic_write_bytes(target / rel, files[rel])
        return
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for rel in order:
            atomic_write_bytes(staging / rel, files[rel])
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sync_study_file(archived: Path, local: Path, merge: Merge | None, *, to_archive: bool) -> bool:
    """Copy one study-level file from ``local`` to ``archived`` (``to_archive``: replacing a different
    one) or back (only when missing), or merge the two; True when the target was written."""
    src, dst = (local, archived) if to_archive else (archived, local)
    if not src.is_file():
        return False
    if dst.is_file() and merge is not None:
        merged = _normal(merge(read_json(archived), read_json(local)))
        if _normal(read_json(dst)) == merged:
            return False
        write_json(dst, merged)
        return True
    if dst.is_file() and not to_archive:
        return False
    data = src.read_bytes()
    if _same(dst, data):
        return False
    atomic_write_bytes(dst, data)
    return True


def _run_folders(folder: Path) -> list[Path]:
    """The run folders under ``folder/runs/`` (sorted; hidden staging folders left out)."""
    runs = folder / RUNS
    if not runs.is_dir():
        return []
    return [d for d in sorted(runs.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def archive_study(
    study_dir: str | Path,
    archive_dir: str | Path,
    *,
    extra_files: Sequence[str] = (),
    merge: Mapping[str, Merge] | None = None,
) -> list[str]:
    """Copy every finished and evaluated run's small files into ``archive_dir/runs/<run>/``.

    Also the study folder's :data:`STUDY_FILES` and ``extra_files`` (when present); a file with a
    ``merge`` function that the archive already holds becomes ``merge(archived, local)`` (e.g. the
    sessions of both). Runs the archive holds but the study folder lacks are kept. Returns the names
    of the runs archived (sorted), whether their files changed or not.

    Raises:
        RunDirError: when the archive holds a different study (:func:`check_same_study`).
    """
    study_dir, archive_dir = Path(study_dir), Path(archive_dir)
    merge = merge or {}
    if (study_dir / STUDY).is_file():
        check_same_study(archive_dir, read_json(study_dir / STUDY), study_dir)
    names = []
    for run_dir in _run_folders(study_dir):
        files = run_files(run_dir)
        if files:
            _write_run(files, archive_dir / RUNS / run_dir.name)
            names.append(run_dir.name)
    for name in (*STUDY_FILES, *extra_files):
        _sync_study_file(archive_dir / name, study_dir / name, merge.get(name), to_archive=True)
    return names


def restore_study(
    archive_dir: str | Path,
    study_dir: str | Path,
    *,
    extra_files: Sequence[str] = (),
    merge: Mapping[str, Merge] | None = None,
    study: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = log.info,
) -> list[str]:
    """Copy the archived runs into ``study_dir/runs/<run>/`` where that folder does not exist.

    A local run folder is never touched, whatever its state. Study-level files (:data:`STUDY_FILES`,
    ``extra_files``) are copied when missing locally; one with a ``merge`` function present on both
    sides becomes ``merge(archived, local)``. ``study`` (``{"name", "base"}`` of the study about to
    run) and a local ``study.json`` are checked against the archive's first. Returns the names of the
    runs restored; a missing archive restores nothing.

    Raises:
        RunDirError: when the archive holds a different study (:func:`check_same_study`).
    """
    archive_dir, study_dir = Path(archive_dir), Path(study_dir)
    merge = merge or {}
    if not archive_dir.is_dir():
        return []
    if study is not None:
        check_same_study(archive_dir, study, "this study's config")
    if (study_dir / STUDY).is_file():
        check_same_study(archive_dir, read_json(study_dir / STUDY), study_dir)
    restored, kept = [], []
    for src in _run_folders(archive_dir):
        target = study_dir / RUNS / src.name
        if target.exists():
            if run_state(target) != "done":
                kept.append(f"{src.name} ({run_state(target)})")
            continue
        files = {p.relative_to(src).as_posix(): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
        if SUMMARY not in files or EVALUATION not in files:
            echo(f"{src}: incomplete in the archive (no {SUMMARY} or {EVALUATION}); not restored")
            continue
        _write_run(_unpacked(files), target)
        restored.append(src.name)
    if kept:
        echo(f"kept the local, unfinished run(s) {', '.join(kept)} although the archive holds them finished; "
             "delete a local run folder to use the archived one")
    for name in (*STUDY_FILES, *extra_files):
        _sync_study_file(archive_dir / name, study_dir / name, merge.get(name), to_archive=False)
    return restored
