"""Run every setup of a study once: finished setups are skipped, interrupted ones resumed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from biorep.errors import RunDirError
from biorep.rundir import EVALUATION, SUMMARY, RunPaths, atomic_write_text, read_json, write_json
from biorep.study.grid import StudyConfig, expand_grid, setup_config
from biorep.study.table import results_table

STUDY = "study.json"  # the study folder's fingerprint
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"

TrainFn = Callable[[dict[str, Any], Path, bool], Any]
EvaluateFn = Callable[[Path, list[str] | None, dict[str, dict[str, Any]]], dict[str, Any]]


def run_state(run_dir: Path) -> str:
    """``done`` (summary written), ``partial`` (a checkpoint to resume from), ``broken`` or ``new``."""
    paths = RunPaths(run_dir)
    if paths.summary.is_file():
        return "done"
    if paths.last.is_file():
        return "partial"
    if run_dir.exists():
        return "broken"
    return "new"


def _check_same_study(out_dir: Path, fingerprint: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """Refuse to mix two different studies in one folder (a resumed study must be the same one), or
    to write a study into a non-empty folder that holds none (its files would be replaced).

    A study may grow: the same name and base with every earlier setup unchanged, plus new setups,
    is accepted (the finished runs are kept) and ``study.json`` is updated.
    """
    import json

    path = out_dir / STUDY
    new = json.loads(json.dumps(fingerprint, default=str))
    if not path.is_file():
        if out_dir.is_dir() and any(out_dir.iterdir()):  # a user's folder, or a run: never written into
            raise RunDirError(
                f"{out_dir}: is not empty and is not a biorep study folder (no {STUDY}); choose another "
                "--out, or empty the folder yourself"
            )
        write_json(path, fingerprint)
        return
    old = read_json(path)
    if old == new:
        return
    refuse = f"{out_dir}: holds a different study (its study.json differs from this config"
    hint = "); choose another --out, or delete the folder yourself to start over"
    if old.get("name") != new["name"]:
        raise RunDirError(f"{refuse}: name {old.get('name')!r} there, {new['name']!r} here{hint}")
    if old.get("base") != new["base"]:
        raise RunDirError(f"{refuse}: its base settings differ{hint}")
    now = {s["name"]: s for s in new["setups"]}
    before = old.get("setups", [])
    for setup in before:
        if setup["name"] not in now:
            raise RunDirError(f"{refuse}: setup {setup['name']!r} is no longer in the grid{hint}")
        if now[setup["name"]] != setup:
            raise RunDirError(f"{refuse}: setup {setup['name']!r} has changed{hint}")
    known = {s["name"] for s in before}
    added = [n for n in now if n not in known]
    if added:  # else only the order of the setups changed
        log(f"study {new['name']!r} extended by {len(added)} setup(s): {', '.join(added)}; finished ones are kept")
    write_json(path, fingerprint)


def _needs_evaluation(run_dir: Path, names: list[str] | None) -> bool:
    path = RunPaths(run_dir).evaluation
    if not path.is_file():
        return True
    if names is None:
        return False
    done = read_json(path)
    return any(name not in done for name in names)


def run_study(
    study: StudyConfig,
    base: dict[str, Any],
    out_dir: str | Path,
    *,
    train_fn: TrainFn | None = None,
    evaluate_fn: EvaluateFn | None = None,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Train and evaluate every setup under ``out_dir/runs/<setup>``; return the results table.

    ``train_fn(config_dict, run_dir, resume)`` and ``evaluate_fn(run_dir, names, options)`` default to
    biorep's own ``train`` and ``evaluate_run``; tests inject cheap ones. The combined table is written
    to ``out_dir/results.csv`` and ``results.md`` after every setup, so an interruption loses nothing.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_fn = train_fn or _default_train
    evaluate_fn = evaluate_fn or _default_evaluate
    setups = expand_grid(study)
    if only:
        unknown = sorted(set(only) - {s.name for s in setups})
        if unknown:
            raise RunDirError(f"--only {', '.join(unknown)}: no such setup in study {study.name!r}")
        setups = [s for s in setups if s.name in only]
    fingerprint = {"name": study.name, "base": base, "setups": [s.fingerprint() for s in expand_grid(study)]}
    _check_same_study(out_dir, fingerprint, log)

    run_dirs: list[Path] = []
    for i, setup in enumerate(setups, 1):
        run_dir = out_dir / "runs" / setup.name
        state = run_state(run_dir)
        log(f"[{i}/{len(setups)}] {setup.name}: {state}")
        if state == "broken":  # created by us, but died before its first checkpoint: start it again
            _clear_incomplete(run_dir)
            state = "new"
        if state != "done":
            train_fn(setup_config(base, setup), run_dir, state == "partial")
        if _needs_evaluation(run_dir, study.evaluations):
            evaluate_fn(run_dir, study.evaluations, study.evaluation_options)
        run_dirs.append(run_dir)
        table = results_table(out_dir / "runs", [s.name for s in setups if (out_dir / "runs" / s.name).is_dir()])
        _write_table(table, out_dir)
    return results_table(out_dir / "runs", [s.name for s in setups])


def _clear_incomplete(run_dir: Path) -> None:
    """Remove a run folder that holds no checkpoint and no summary (only our own partial files)."""
    import shutil

    marker_files = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    if marker_files & {SUMMARY, EVALUATION}:
        raise RunDirError(f"{run_dir}: unexpected results in an incomplete run; remove it yourself")
    shutil.rmtree(run_dir)


def _write_table(table: pd.DataFrame, out_dir: Path) -> None:
    atomic_write_text(out_dir / RESULTS_CSV, table.to_csv())
    atomic_write_text(out_dir / RESULTS_MD,
                      table.to_markdown(floatfmt=".4g") if not table.empty else "(no results yet)\n")


def _default_train(cfg: dict[str, Any], run_dir: Path, resume: bool) -> Any:
    from biorep.training import RunConfig, train

    return train(RunConfig.model_validate(cfg), run_dir, resume=resume)


def _default_evaluate(run_dir: Path, names: list[str] | None, options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from biorep.evaluate.run import evaluate_run

    return evaluate_run(run_dir, names=names, options=options)
