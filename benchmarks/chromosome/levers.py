"""Issue 13's levers on the fast CPU recipe: each one a paired difference against the base on Pki-3's held-out cases.

One invocation:

1. runs the levers study (``configs/studies/chromosome-levers.yaml``: the fast recipe, its seeds 1 and
   2, and one setup per lever — EMA, epochs, canvas, label smoothing, schedule) through
   :func:`biorep.study.run_study` — resumable; every evaluated run is archived
   (``archive/chromosome-levers``, committed) and restored in the next session;
2. scores the seed ensemble (``biorep ensemble`` of base, base-s1, base-s2: the mean of their class
   probabilities; of the two still holding their checkpoints when one was restored from the archive
   without them) and keeps its per-crop correctness in ``ensembles.json`` (archived: the members'
   checkpoints are not);
3. writes ``LEVERS.md`` and ``levers.json``: per setup the validation accuracy (what a recipe choice
   may read), test accuracy and accuracy after karyotype assembly with 95 % bootstrap CIs over
   held-out cases, the paired difference from the base (same cases resampled for both) and its
   training minutes; the seed spread; one verdict per lever computed from the numbers.

    python benchmarks/chromosome/levers.py                 # the whole study (~85 min on 2 quiet cores)
    python benchmarks/chromosome/levers.py --only base --only ema
    python benchmarks/chromosome/levers.py --report-only   # LEVERS.md from the runs there (all of them)
    python benchmarks/chromosome/levers.py --report-only --partial   # from the finished ones, naming the rest
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_STUDY = REPO / "configs" / "studies" / "chromosome-levers.yaml"
DEFAULT_OUT = REPO / "runs" / "chromosome-levers"
DEFAULT_RESULTS = HERE / "LEVERS.md"
ARCHIVE = HERE / "archive"
BASE = "base"
#: The seed ensembles (``ensembles.json`` key → its members, in order; the first names the recipe). One
#: is scored where the study has all its members: the base's seeds, and the longest recipe's.
ENSEMBLE_SETS = {
    "base-seeds": ("base", "base-s1", "base-s2"),
    "long-seeds": ("epochs-10-canvas-128x64", "epochs-10-canvas-128x64-s1", "epochs-10-canvas-128x64-s2"),
}
SEED_ENSEMBLE = ENSEMBLE_SETS["base-seeds"]
ENSEMBLES = "ensembles.json"
DEFAULT_TITLE = "Levers of the fast CPU recipe on Pki-3 held-out cases"


def _bench() -> Any:
    """``run.py`` of this folder (its timing, collection, CI and paired-comparison code)."""
    name = "chromosome_bench_run"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _member_key(run: Path) -> str:
    """What identifies a trained member: a hash of its ``summary.json`` (rewritten when it is retrained)."""
    import hashlib

    from biorep.rundir import RunPaths

    return hashlib.sha1(RunPaths(run).summary.read_bytes()).hexdigest()


def seed_members(out: Path, seeds: Sequence[str] = SEED_ENSEMBLE) -> list[str]:
    """The seed runs an ensemble can use: ``seeds``, less finished runs restored from the archive
    without their checkpoints (when at least two are left; else all, and it waits)."""
    from biorep.study import archivable, is_restored

    usable = [m for m in seeds
              if not (archivable(out / "runs" / m) and is_restored(out / "runs" / m))]
    return usable if len(usable) >= 2 else list(seeds)


def ensemble_label(key: str, members: Sequence[str]) -> str:
    """The ensemble's row name: ``ensemble of N seeds`` (the base's), ``… of RECIPE`` for another recipe."""
    recipe = ENSEMBLE_SETS[key][0]
    return f"ensemble of {len(members)} seeds" + ("" if recipe == BASE else f" of {recipe}")


def read_ensembles(out: Path) -> dict[str, Any]:
    """``ensembles.json`` of a study folder (empty before the first ensemble is scored)."""
    from biorep.rundir import read_json

    path = out / ENSEMBLES
    return read_json(path) if path.is_file() else {}


def score_ensemble(out: Path, members: Sequence[str], name: str) -> dict[str, Any] | None:
    """The ensemble's numbers and per-crop correctness (``ensembles.json[name]``), computed once while
    the members' checkpoints exist and kept while the members are the same runs; None while a member
    is not finished and evaluated with its checkpoint at hand (e.g. restored from the archive)."""
    from biorep.evaluate.ensemble import evaluate_ensemble
    from biorep.rundir import read_data, write_json
    from biorep.study import archivable, is_restored

    b = _bench()
    path = out / ENSEMBLES
    done = read_ensembles(out)
    runs = [out / "runs" / m for m in members]
    ready = all(archivable(r) and not is_restored(r) for r in runs)
    keys = [_member_key(r) for r in runs] if all(archivable(r) for r in runs) else None
    old = done.get(name, {})
    if old.get("members") == list(members) and (keys is None or old.get("member_keys") == keys):
        return old
    if not ready:
        return None
    folder = out / "ensembles" / name
    results = evaluate_ensemble(runs, folder, overwrite=True)
    crops = b._per_crop(folder, read_data(runs[0]).model_dump().get("group_column"))
    record = {
        "members": list(members),
        "member_keys": keys,
        "accuracy": results["classification"]["summary"]["accuracy"],
        "val_accuracy": results["classification"].get("val_accuracy"),
        "assembled": results["karyotype"]["summary"]["accuracy_assigned"],
        "calibration": results["classification"]["summary"].get("calibration"),
        "crops": {k: crops[k].tolist() for k in ("id", "group", "correct", "correct_assembled")},
    }
    done[name] = record
    write_json(path, done, indent=None)
    return record


def ensemble_setup(record: dict[str, Any], members: Sequence[Any], name: str) -> Any:
    """A ``SetupNumbers`` of the ensemble (its CI over cases; ``runs`` = the members, for their times)."""
    from biorep.evaluate.stats import bootstrap_ci

    b = _bench()
    crops = pd.DataFrame(record["crops"])
    correct = crops["correct"].to_numpy(bool)[:, None]
    assembled = crops["correct_assembled"].to_numpy(bool)[:, None]
    groups, ids = crops["group"].to_numpy(), crops["id"].astype(str).to_numpy()
    acc = bootstrap_ci(lambda i: float(correct[i].mean()), len(ids), groups=groups, n_boot=b.N_BOOT)
    asm = bootstrap_ci(lambda i: float(assembled[i].mean()), len(ids), groups=groups, n_boot=b.N_BOOT)
    return b.SetupNumbers(name=name, model="resnet18", method="ensemble", runs=list(members), accuracy=acc.value,
                          ci=(acc.low, acc.high), assembled=asm.value, assembled_ci=(asm.low, asm.high),
                          correct=correct, correct_assembled=assembled, groups=groups, ids=ids)


def verdict(diff: Any, val_diff: float | None) -> str:
    """``helps`` / ``hurts`` when the paired CI over cases excludes 0, else ``within noise``; a test gain
    that validation does not show is flagged (the recipe is chosen on validation)."""
    low, high = diff.ci
    if low > 0:
        return "helps" + ("" if val_diff is None or val_diff > 0 else " on test, not on validation")
    if high < 0:
        return "hurts"
    return "within noise"


def render(setups: list[Any], ensembles: Sequence[tuple[Any, float | None, Sequence[str]]] = (), *, command: str,
           invocation: dict[str, Any], machine: dict[str, Any], study_path: str, title: str = DEFAULT_TITLE,
           missing: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """LEVERS.md and levers.json from the setups (one named ``base``) and the seed ensembles, each
    ``(setup, validation accuracy, members)``."""
    b = _bench()
    by = {s.name: s for s in setups}
    if BASE not in by:
        raise b.BenchmarkError(f"the study has no setup named {BASE!r} to compare the levers with")
    base = by[BASE]
    seeds = [by[m] for m in SEED_ENSEMBLE if m in by]
    spread = (max(s.accuracy for s in seeds) - min(s.accuracy for s in seeds)) if len(seeds) > 1 else None
    rows, payload = [], {"study": study_path, "invocation": invocation, "setups": {}, "seed_spread": spread,
                         "missing_runs": list(missing)}
    of_ensemble = {id(e): (val, members) for e, val, members in ensembles}
    for s in [*setups, *(e for e, _, _ in ensembles)]:
        is_ens = id(s) in of_ensemble
        val = of_ensemble[id(s)][0] if is_ens else s.mean(lambda r: r.val_accuracy)
        minutes = sum(float(r.summary["wall_time_s"]) for r in s.runs) / 60 if is_ens else s.train_minutes
        if s.name == BASE:
            d, answer, val_d = None, "—", None
        else:
            d = b.paired(base, s)
            val_d = None if val is None or base.mean(lambda r: r.val_accuracy) is None else \
                val - base.mean(lambda r: r.val_accuracy)
            answer = "a seed of the base" if s.name in SEED_ENSEMBLE else verdict(d, val_d)
        rows.append(
            f"| {s.name} | {'—' if val is None else b.pct(val, 2)} | **{b.pct(s.accuracy, 2)}** {b.ci_text(s.ci)} "
            f"| {b.pct(s.assembled, 2)} {b.ci_text(s.assembled_ci)} "
            f"| {'—' if d is None else f'{100 * d.difference:+.2f} {b.points(d.ci)}'} "
            f"| {'—' if d is None else f'{100 * d.assembled_difference:+.2f} {b.points(d.assembled_ci)}'} "
            f"| {minutes:.1f} | {answer} |")
        payload["setups"][s.name] = {
            "val_accuracy": val, "test_accuracy": s.accuracy, "ci_low": s.ci[0], "ci_high": s.ci[1],
            "assembled_accuracy": s.assembled, "assembled_ci": list(s.assembled_ci), "train_minutes": minutes,
            "difference": None if d is None else d.difference, "difference_ci": None if d is None else list(d.ci),
            "assembled_difference": None if d is None else d.assembled_difference,
            "verdict": answer, "members": list(of_ensemble[id(s)][1]) if is_ens else None,
        }
    when = invocation["finished"]
    lines = [
        f"# {title} (issue 13)", "",
        *([f"**Partial results:** {len(missing)} of the study's setups have not run yet ({', '.join(missing)}); "
           "they are absent, not estimated.", ""] if missing else []),
        f"Generated {when} by `{command}` from the run directories (`{study_path}`). Each lever changes one "
        "thing of the base (`configs/chromosome-cpu-fast.yaml`: ResNet-18 CE, 96 × 48 canvas, 5 epochs, "
        "one-cycle per batch, label smoothing 0.1, hflip TTA), same seed and split; Δ is the paired "
        "difference from the base on the same test cases (95 % bootstrap CI over the cases). "
        + ("base-s1/-s2 change only the seed: their Δ is what the seed alone moves"
           + (f" (test accuracy spread over the three seeds: {100 * spread:.2f} points)" if spread is not None else "")
           + ". " if len(seeds) > 1 else "")
        + "A lever is adopted only where validation agrees; the test cases only score.", "",
        "| setup | val acc | test acc [95 % CI] | after assembly [95 % CI] | Δ test (points) | Δ assembled "
        "| train min | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *rows, "",
    ]
    for ensemble, _, members in ensembles:
        alone = ", ".join(f"{m} {b.pct(by[m].accuracy, 2)}" for m in members if m in by)
        lines += [f"*{ensemble.name}*: mean class probabilities of {', '.join(members)} (`biorep ensemble`; "
                  f"alone: {alone}); its Δ is against the base like every row, and its train minutes are the "
                  "members' sum.", ""]
    lines += [
        "## Machine", "",
        f"- {machine['nproc']} cores ({machine['cpu']}), torch {machine['torch']} ({machine['torch_threads']} "
        f"threads); load average at start {invocation['load_start']}, at end {invocation['load_end']}.", "",
    ]
    return "\n".join(lines), payload


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--only", action="append", default=None, metavar="SETUP", help="run only these setups")
    p.add_argument("--report-only", action="store_true", help="write LEVERS.md from the runs there")
    p.add_argument("--partial", action="store_true",
                   help="write the report from the finished runs, naming the missing ones at its top")
    p.add_argument("--archive", type=Path, default=None, metavar="DIR",
                   help="the study's archive (default: archive/<name of --out> beside this script)")
    p.add_argument("--no-archive", action="store_true", help="neither restore from nor write to the archive")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change the base config of every setup (e.g. train.limit_train_batches=2 for a smoke run)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from biorep.errors import BiorepError
    from biorep.rundir import atomic_write_text, write_json
    from biorep.study import archivable, archive_study, expand_grid, load_study, restore_study, run_study

    b = _bench()
    t0, load_start = time.perf_counter(), b.loadavg()
    command = shlex.join(["python", os.path.relpath(__file__, REPO), *(argv if argv is not None else sys.argv[1:])])
    try:
        study, base = load_study(args.study, args.overrides)
        out = args.out
        archive = None if args.no_archive else (args.archive or ARCHIVE / out.resolve().name)
        extra = (b.TIMINGS, ENSEMBLES)

        def sync() -> None:
            if archive is not None:
                archive_study(out, archive, extra_files=extra, merge={b.TIMINGS: b.merge_timings})

        out.mkdir(parents=True, exist_ok=True)
        if archive is not None:
            restored = restore_study(archive, out, extra_files=extra, merge={b.TIMINGS: b.merge_timings},
                                     study={"name": study.name, "base": base}, echo=print)
            if restored:
                print(f"restored {len(restored)} finished run(s) from {archive}")
        if not args.report_only:
            train_fn, evaluate_fn = b.timed_runner(out)
            try:
                run_study(study, base, out, train_fn=train_fn,
                          evaluate_fn=b.archiving(evaluate_fn, sync if archive is not None else None),
                          only=args.only)
            finally:
                sync()
        grid = expand_grid(study)
        names = {spec.name for spec in grid}
        sets = {key: seeds for key, seeds in ENSEMBLE_SETS.items() if set(seeds) <= names}
        for key, seeds in sets.items():
            kept = read_ensembles(out).get(key, {}).get("members") or []
            # a scored ensemble keeps its members while they are finished (restored ones included)
            members = kept if kept and all(archivable(out / "runs" / m) for m in kept) else seed_members(out, seeds)
            if score_ensemble(out, members, key) is not None:
                sync()
        if args.only:
            print(f"ran {', '.join(args.only)}; LEVERS.md is written when every setup has run")
            return 0
        missing = b.missing_runs(out, grid) if args.partial else []
        setups = b.aggregate(b.collect(out, grid, partial=args.partial))
        by = {s.name: s for s in setups}
        ensembles = []
        for key in sets:
            rec = read_ensembles(out).get(key)
            members = list(rec["members"]) if rec else []
            if rec is not None and all(m in by for m in members):
                ens = ensemble_setup(rec, [r for m in members for r in by[m].runs], ensemble_label(key, members))
                ensembles.append((ens, rec.get("val_accuracy"), members))
        invocation = {"finished": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "load_start": load_start,
                      "load_end": b.loadavg(), "wall_s": round(time.perf_counter() - t0, 1)}
        study_path = os.path.relpath(args.study.resolve(), REPO)
        title = DEFAULT_TITLE if args.study.resolve() == DEFAULT_STUDY.resolve() else \
            f"Study {study.name}: each setup against its base on Pki-3 held-out cases"
        text, payload = render(setups, ensembles, command=command, invocation=invocation, machine=b.machine_info(),
                               study_path=study_path, missing=missing, title=title)
        atomic_write_text(args.results, text)
        write_json(args.results.with_name(args.results.stem.lower() + ".json"), payload)  # LEVERS.md: levers.json
        print(f"wrote {args.results}")
    except (BiorepError, b.BenchmarkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
