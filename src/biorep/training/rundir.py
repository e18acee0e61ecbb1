"""What training does to a run directory: refuse to clobber, replace safely, resume compatibly.

The layout itself (file names, the atomic writer, records, run state) is owned by
:mod:`biorep.rundir`; this module holds training's rules on top of it:

- :func:`check_run_dir` refuses an occupied folder without ``--overwrite``/``--resume`` (before any
  work starts, so nothing is touched);
- :class:`Replacement` moves an old run aside for ``--overwrite`` and deletes it only once the new run
  has written its first checkpoint; a failure before then restores it;
- :func:`resume_changes` refuses a ``--resume`` whose config changes the data, model, views or method
  (or a train field the saved state depends on), naming the field, and lists the allowed changes.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from biorep.errors import RunDirError
from biorep.rundir import CONFIG, STATE, RunPaths, is_rank_zero_process, read_state

__all__ = ["Replacement", "check_run_dir", "is_rank_zero_process", "resume_changes"]

log = logging.getLogger("biorep.training")

#: train fields a resumed run may change (they do not alter the state saved in the checkpoint).
RESUME_MAY_CHANGE = {
    "epochs", "min_lr", "early_stopping", "num_workers", "limit_val_batches", "limit_train_batches",
    "checkpoint_every_n_steps", "checkpoint_every_minutes", "val_check", "tracemalloc", "progress",
    "progress_every_minutes", "deterministic",
}
#: data fields that may differ (where the files are; the data fingerprint checks they are the same).
DATA_MAY_CHANGE = {"root"}
#: Model fields that only change inference (test-time augmentation).
MODEL_MAY_CHANGE = {"tta"}


def check_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run (without ``overwrite``) or to resume a missing one."""
    paths = RunPaths(out)
    if resume:
        if not paths.config.is_file():
            raise RunDirError(f"{out}: cannot --resume, it is not a biorep run directory (no {CONFIG})")
        return
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a directory")
    here = Path.cwd().resolve()
    if out.is_dir() and overwrite and (out.resolve() == here or out.resolve() in here.parents):
        raise RunDirError(
            f"{out}: is the current folder or holds it; --overwrite cannot replace the folder you work "
            "in: run from elsewhere or choose another --out"
        )
    if out.is_dir() and any(out.iterdir()) and overwrite and not _is_run_dir(out):
        raise RunDirError(
            f"{out}: is not empty and is not a biorep run directory (no {STATE}, or a {CONFIG} without the run's "
            "data.json, summary.json or checkpoints/); --overwrite "
            "replaces only a run: choose another --out, or empty or remove the folder yourself"
        )
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        state = read_state(out)
        if state is not None and state.status in ("interrupted", "failed"):
            raise RunDirError(
                f"{out}: holds a run that {state.status.replace('interrupted', 'was interrupted')}; "
                "pass --resume to finish it, or --overwrite to replace it"
            )
        raise RunDirError(
            f"{out}: run directory already exists and is not empty; pass --overwrite to replace it "
            "or --resume to continue it"
        )


def _is_run_dir(out: Path) -> bool:
    """A biorep run — a ``state.json`` biorep can read, or a ``config.yaml`` beside a run's own files
    (``data.json``, ``summary.json``, ``checkpoints/``) — or what a run's start left before it failed
    (only empty folders such as ``checkpoints/``): the folders ``--overwrite`` may replace. A user's
    folder that merely holds a ``config.yaml`` is not one."""
    paths = RunPaths(out)
    if paths.state.is_file():
        try:
            return read_state(out) is not None
        except RunDirError:
            return False
    if paths.config.is_file():
        return paths.data.is_file() or paths.summary.is_file() or paths.checkpoints.is_dir()
    return all(p.is_dir() for p in out.rglob("*"))


class Replacement:
    """``--overwrite`` without losing the old run to a failed new one.

    :meth:`begin` renames an existing ``out`` to a hidden sibling and creates an empty ``out``;
    :meth:`commit` (called once the new run has a checkpoint) deletes the old one; :meth:`rollback`
    (on a failure before that) deletes the partial new run and puts the old one back.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.aside: Path | None = None

    def begin(self) -> None:
        if self.out.is_dir() and any(self.out.iterdir()):
            real = self.out.resolve()  # "--out runs/x/.." has no usable name of its own
            self.aside = real.with_name(f".{real.name}.replaced-{os.getpid()}")
            if self.aside.exists():
                shutil.rmtree(self.aside)
            os.replace(self.out, self.aside)
        self.out.mkdir(parents=True, exist_ok=True)

    def commit(self) -> None:
        if self.aside is not None and self.aside.exists():
            shutil.rmtree(self.aside, ignore_errors=True)
        self.aside = None

    def rollback(self) -> bool:
        """Put the old run back (True) if it is still aside; False when there is nothing to restore."""
        if self.aside is None or not self.aside.exists():
            return False
        shutil.rmtree(self.out, ignore_errors=True)
        os.replace(self.aside, self.out)
        log.warning("the new run failed before its first checkpoint; %s is restored as it was", self.out)
        self.aside = None
        return True


def _diff(old: Any, new: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _diff(old.get(key), new.get(key), f"{prefix}.{key}")
        return out
    return [] if old == new else [(prefix, old, new)]


def resume_changes(saved: dict[str, Any], new: dict[str, Any], source: Path) -> list[str]:
    """The allowed differences between a run's saved config and the one it is resumed with.

    Raises a :class:`RunDirError` naming the first field that may not change.
    """
    allowed: list[str] = []
    for section in ("data", "views", "model", "method", "train"):
        for key, old, new_value in _diff(saved.get(section), new.get(section), section):
            field = key.split(".")[1] if "." in key else key
            ok = ((section == "train" and field in RESUME_MAY_CHANGE)
                  or (section == "data" and field in DATA_MAY_CHANGE)
                  or (section == "model" and field in MODEL_MAY_CHANGE))
            if not ok:
                raise RunDirError(
                    f"{source}: cannot --resume with {key} changed ({old!r} → {new_value!r}); a resumed run "
                    f"keeps its data, views, model, method and optimiser — start a new run (another --out) "
                    "instead"
                )
            if key == "train.epochs" and (saved.get("train") or {}).get("scheduler") == "onecycle":
                raise RunDirError(
                    f"{source}: cannot --resume with train.epochs changed ({old!r} → {new_value!r}) under "
                    "train.scheduler onecycle: its schedule is fixed by the run's total steps (start a new "
                    "run, or --init-from this one with the new epochs)"
                )
            if key in ("train.epochs", "train.limit_train_batches") and _staged(saved):
                raise RunDirError(
                    f"{source}: cannot --resume with {key} changed ({old!r} → {new_value!r}): this two-stage "
                    "run gives each stage its own LR schedule (method.stage_schedule), whose lengths are "
                    "fixed when it starts (start a new run, or --init-from this one)"
                )
            allowed.append(f"{key}: {old!r} → {new_value!r}")
    return allowed


def _staged(saved: dict[str, Any]) -> bool:
    """Whether a saved config trains in stages with one LR schedule each (SupCon two-stage)."""
    method = saved.get("method") or {}
    return (method.get("name") == "supcon" and method.get("mode", "two_stage") == "two_stage"
            and bool(method.get("stage_schedule", False)) and (saved.get("train") or {}).get("scheduler") != "none")
