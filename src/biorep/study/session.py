"""A study session: read and check a study config, then train and evaluate its setups resumably.

The library side of ``biorep study`` (the CLI only parses options and prints): :func:`prepare_study`
reads a study, applies ``--set`` overrides and validates every setup's config before any work;
:func:`run_prepared` trains (each setup in a fresh child process by default, so each run's
``peak_rss_mb`` is its own) and evaluates them through :func:`biorep.study.run_study`, then writes
the comparison report. ``benchmarks/`` drive studies through these functions.

Example:
    >>> prep = prepare_study("configs/studies/screening-16.yaml", ["train.epochs=2"])  # doctest: +SKIP
    >>> result = run_prepared(prep, report=False)                                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from biorep.errors import ConfigError, RunDirError, Terminated
from biorep.rundir import REPORT, RunPaths, read_summary

_STATES = {
    "done": "done — training skipped",
    "partial": "interrupted — resuming from checkpoints/last.ckpt",
    "new": "new",
    "broken": "incomplete (no checkpoint) — starting again",
}


@dataclass
class PreparedStudy:
    """A study read, overridden and checked: nothing has run yet."""

    config: Path
    study: Any  # StudyConfig
    base: dict[str, Any]
    setups: list[Any]  # list[SetupSpec]
    out: Path
    only: list[str] | None = None
    log: list[str] = field(default_factory=list)


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``["train.epochs=50", "data.channels=[0]"]`` → ``[("train.epochs", 50), ...]`` (values are YAML)."""
    out: list[tuple[str, Any]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=50")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
        out.append((key, value))
    return out


def _validation_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            return "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(config)'}: {e['msg']}" for e in errors()
            )
        except Exception:  # not a pydantic error after all
            pass
    return str(exc)


def prepare_study(
    config: str | Path,
    overrides: Sequence[str] = (),
    *,
    out: str | Path | None = None,
    only: Sequence[str] | None = None,
) -> PreparedStudy:
    """Read a study, apply ``--set`` overrides and check every setup's config before any work.

    ``overrides`` win over the study's own ``set`` section (they apply to the base config after it),
    while the grid's and the extra setups' values win over both. Raises :class:`ConfigError`
    naming the setup and the field for a config that would fail later.
    """
    from biorep.evaluate import EVALUATIONS
    from biorep.study import expand_grid, load_study, setup_config
    from biorep.study.grid import set_dotted
    from biorep.training import RunConfig

    config = Path(config)
    study, base = load_study(config)
    for key, value in parse_overrides(overrides):
        set_dotted(base, key, value)
    setups = expand_grid(study)
    if not setups:
        raise ConfigError(f"{config}: the study has no setups (empty grid and no extra)")
    for setup in setups:
        try:
            RunConfig.model_validate(setup_config(base, setup))
        except Exception as exc:  # pydantic ValidationError (or a ConfigError from a validator)
            raise ConfigError(
                f"{config}: setup {setup.name!r}: {_validation_message(exc)}"
            ) from None
    _check_evaluations(config, study, EVALUATIONS)
    names = [s.name for s in setups]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ConfigError(
                f"--only {', '.join(unknown)}: no such setup in {config} (setups: {', '.join(names)})"
            )
    target = Path(out) if out is not None else Path("runs") / study.name
    return PreparedStudy(config, study, base, setups, target, list(only) if only else None)


def _check_evaluations(config: Path, study: Any, registry: Any) -> None:
    from biorep.evaluate.run import check_options

    names = study.evaluations
    for name in [*(names or []), *study.evaluation_options]:
        if name not in registry:
            raise ConfigError(
                f"{config}: evaluations: unknown evaluation {name!r} (known: {', '.join(sorted(registry))})"
            )
    if names is not None:
        stray = sorted(set(study.evaluation_options) - set(names))
        if stray:
            raise ConfigError(
                f"{config}: evaluation_options: {', '.join(stray)} not listed under evaluations"
            )
    for name, opts in study.evaluation_options.items():
        check_options(name, opts, complete=False)


# ----------------------------------------------------------------------------- training a setup
def _train_here(cfg: dict[str, Any], run_dir: str, resume: bool) -> str:
    """Train one setup in this process (the child's entry point with ``--isolate``)."""
    from biorep.training import RunConfig, train

    # a parent whose SIGINT is ignored (Lightning does that after a Ctrl-C) would pass that on
    signal.signal(signal.SIGINT, signal.default_int_handler)

    return str(train(RunConfig.model_validate(cfg), Path(run_dir), resume=resume))


def interrupt_workers(pool: ProcessPoolExecutor, future: Future[Any], grace_s: float = 120.0) -> None:
    """Pass an interrupt on to the pool's workers and wait for ``future`` to wind down.

    A Ctrl-C in a terminal reaches the whole process group, but ``timeout -s INT``, ``kill -INT`` or a
    scheduler signal the parent only; without this the parent would wait, interrupted, for the child
    to finish the whole setup. The child's training stops as on Ctrl-C (its last checkpoint is kept
    for ``--resume``); one still running after ``grace_s`` is terminated. The pool's worker list is
    a private attribute of :class:`ProcessPoolExecutor` (no public accessor exists).
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGINT)
    try:
        future.exception(timeout=grace_s)
    except BaseException:  # noqa: BLE001 - winding down; the caller re-raises the interrupt
        pass
    if not future.done():
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 15.0  # an interrupted worker exits once the pool's sentinel reaches it;
    for proc in procs:                  # on a loaded machine that can lag: never leave one behind
        if not wait_exited(proc, max(0.0, deadline - time.monotonic())):
            proc.terminate()
            wait_exited(proc, 5.0)


def wait_exited(proc: Any, timeout: float) -> bool:
    """Wait up to ``timeout`` s for a pool worker to exit; True when it has.

    Not ``proc.join(timeout)`` alone: the pool's management thread joins its workers on shutdown
    too, and the thread that loses that race gets ``ECHILD`` from ``waitpid``, which
    ``multiprocessing`` reads as "still running" (``join`` returns at once, ``is_alive()`` is True)
    until the winner has recorded the exit code a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        proc.join(max(0.0, min(0.5, deadline - time.monotonic())))
        if not proc.is_alive():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While waiting on a training child, a SIGTERM (a scheduler's pre-emption, ``kill``) is handled as
    Ctrl-C, so the child is interrupted and wound down (:func:`interrupt_workers`) instead of left
    training as an orphan when the parent dies. Only the main thread can set signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_isolated(cfg: dict[str, Any], run_dir: Path, resume: bool) -> Path:
    """Train one setup in a fresh (spawned) child process and wait for it.

    User errors raised in the child come back as they are; a child that dies (killed, out of memory)
    becomes a :class:`RunDirError` — its last checkpoint, if any, is resumed on the next call.
    """
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        future = pool.submit(_train_here, cfg, str(run_dir), resume)
        try:
            with sigterm_as_interrupt():
                return Path(future.result())
        except KeyboardInterrupt:
            interrupt_workers(pool, future)
            raise
        except BrokenProcessPool:
            raise RunDirError(
                f"{run_dir}: the training process died (killed, or out of memory?); run the same "
                "command again to resume from its last checkpoint"
            ) from None


# ----------------------------------------------------------------------------- running
@dataclass
class StudyResult:
    """What :func:`run_prepared` returns: the results table, the study folder and the report."""

    table: pd.DataFrame
    out: Path
    report: Path | None
    wall_time_s: float
    timings: dict[str, dict[str, float]]


def run_prepared(
    prep: PreparedStudy,
    *,
    report: bool = True,
    isolate: bool = True,
    projection: str = "auto",
    echo: Callable[[str], None] = print,
    train_fn: Callable[[dict[str, Any], Path, bool], Any] | None = None,
    evaluate_fn: Callable[[Path, list[str] | None, dict[str, dict[str, Any]]], dict[str, Any]] | None = None,
) -> StudyResult:
    """Train and evaluate the setups of ``prep`` (resumably), then write the comparison report.

    ``train_fn`` / ``evaluate_fn`` replace the defaults (a child process per training with
    ``isolate``; :func:`biorep.evaluate.run.evaluate_run`); timings per setup are echoed and returned.
    """
    from biorep.study import run_study

    timings: dict[str, dict[str, float]] = {}
    inner_train = train_fn or (train_isolated if isolate else _train_in_process)
    inner_eval = evaluate_fn or _evaluate

    def timed_train(cfg: dict[str, Any], run_dir: Path, resume: bool) -> Any:
        start = time.perf_counter()
        result = inner_train(cfg, run_dir, resume)
        took = time.perf_counter() - start
        timings.setdefault(run_dir.name, {})["train_s"] = took
        echo(f"    trained in {fmt_seconds(took)}{_summary_note(run_dir)}")
        return result

    def timed_eval(run_dir: Path, names: list[str] | None, options: dict[str, dict[str, Any]]) -> Any:
        start = time.perf_counter()
        result = inner_eval(run_dir, names, options)
        took = time.perf_counter() - start
        timings.setdefault(run_dir.name, {})["evaluate_s"] = took
        failed = sorted(k for k, v in (result or {}).items() if isinstance(v, dict) and "error" in v)
        note = f" (could not run: {', '.join(failed)})" if failed else ""
        echo(f"    evaluated in {fmt_seconds(took)}{note}")
        return result

    def log(message: str) -> None:
        m = re.match(r"^(\[\d+/\d+\] .+): (done|partial|new|broken)$", message)
        echo(f"{m.group(1)}: {_STATES[m.group(2)]}" if m else message)

    start = time.perf_counter()
    echo(f"study {prep.study.name!r}: {len(prep.only or prep.setups)} setup(s) into {prep.out}")
    table = run_study(prep.study, prep.base, prep.out, train_fn=timed_train, evaluate_fn=timed_eval,
                      only=prep.only, log=log)
    report_path = None
    if report:
        report_path = write_study_report(prep, projection=projection)
        if report_path is not None:
            echo(f"report written to {report_path}")
    return StudyResult(table, prep.out, report_path, time.perf_counter() - start, timings)


def _train_in_process(cfg: dict[str, Any], run_dir: Path, resume: bool) -> Path:
    return Path(_train_here(cfg, str(run_dir), resume))


def _evaluate(run_dir: Path, names: list[str] | None, options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from biorep.evaluate.run import evaluate_run

    return evaluate_run(run_dir, names=names, options=options)


def _summary_note(run_dir: Path) -> str:
    if not RunPaths(run_dir).summary.is_file():
        return ""
    s = read_summary(run_dir).model_dump()
    parts = [f"{s.get('epochs')} epoch(s)" + (" (stopped early)" if s.get("stopped_early") else "")]
    if s.get("time_per_epoch_s"):
        parts.append(f"{s['time_per_epoch_s']:.1f} s/epoch")
    if s.get("peak_rss_mb"):
        parts.append(f"peak RSS {s['peak_rss_mb']:.0f} MiB")
    return " — " + ", ".join(parts)


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def write_study_report(prep: PreparedStudy, *, projection: str = "auto") -> Path | None:
    """(Re)write ``<out>/report.html`` comparing every finished setup; None when none has finished."""
    from biorep.report import write_report

    runs = [prep.out / "runs" / s.name for s in prep.setups]
    done = [r for r in runs if RunPaths(r).summary.is_file()]
    if not done:
        return None
    return write_report(done, prep.out / REPORT, f"study {prep.study.name}", overwrite=True,
                        projection=projection, max_points=2000)


