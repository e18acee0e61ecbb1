"""Study B's 16 setups on BBBC021 cycloheximide cells, then RESULTS.md and results.json.

Runs the study (through :mod:`biorep.study.session`, the code behind ``biorep study``) on
``configs/studies/screening-16.yaml`` (and, with ``--rgb``, ``screening-16-rgb.yaml``; with
``--budget``, the budget curve ``screening-16-budget.yaml``), leave-one-plate-out (every plate held
out once), then writes ``RESULTS.md`` and ``results.json`` beside this file: per configuration and
setup, per task, the median and MAD over the folds, the CI of that median (bootstrap within each
fold), the untrained-encoder and classical-features values and the paired verdicts against them,
the epochs actually run, time and peak memory; and the study's four findings, each as holds /
does not hold / cannot tell, decided by the CIs. A study folder that already holds finished runs
is resumed, not retrained. A missing run, evaluation or value stops the script with a message
naming it (``--partial``: the setups not finished on every fold are left out and named instead).
RESULTS.md holds every configuration whose study has run, not only the ones this invocation ran.

Usage:
    python benchmarks/screening/run.py                      # CPU-sized default (see the config)
    python benchmarks/screening/run.py --rgb --budget       # + all three channels + the budget curve
    python benchmarks/screening/run.py --gpu                # the study's protocol: 50 full epochs
    python benchmarks/screening/run.py --only-rgb --gpu     # ... of the three-channel configuration only
    python benchmarks/screening/run.py --no-run             # only regenerate RESULTS.md / results.json
    python benchmarks/screening/run.py --no-run --partial   # ... from the setups finished so far
    python benchmarks/screening/run.py --archive-only       # copy finished runs into the archive, exit

A study outlives one session through its archive (``archive/<study folder>`` beside this file, to be
committed): finished and evaluated runs are copied there after every run, and restored from there
(where missing) before the study runs, so the next session continues where the last one stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CONFIGS = {
    "gray": ROOT / "configs/studies/screening-16.yaml",
    "rgb": ROOT / "configs/studies/screening-16-rgb.yaml",
    "budget": ROOT / "configs/studies/screening-16-budget.yaml",
}
TITLES = {"gray": "DNA channel only", "rgb": "All three channels", "budget": "Budget curve (DNA channel)"}
PARADIGMS = ("weak", "autoencoder", "regularized", "byol")
BENCHMARK = "benchmark.json"  # this script's record of its sessions, in each study folder
#: Each study's archive (its runs' small files, committed) goes to ARCHIVE/<study folder name>.
ARCHIVE = HERE / "archive"
#: The study's protocol (GPU): 50 full epochs, batch 256, Adam 1e-4 (the configs' base), BYOL's stopping rule.
GPU_SETS = ("train.epochs=50", "train.limit_train_batches=null", "method.pretrain_epochs=49")

sys.path.insert(0, str(ROOT / "src"))


class Missing(SystemExit):
    """A value RESULTS.md needs is not in the study's outputs."""


def _tasks() -> dict[str, Any]:
    from biorep.study import Task

    return {
        "similarity": Task("similarity", "d.median"),
        "treated vs control": Task("treated_vs_control", "overall.roc_auc"),
        "clustering": Task("clustering", "best_per_group.silhouette"),
        "dose mAP vs DMSO": Task("replicate_map", "mean_map"),
        "dose mAP vs DMSO, sphered": Task("replicate_map_sphered", "mean_map"),
        "dose mAP vs other doses": Task("label_map", "mean_map"),
        "dose mAP vs other doses, sphered": Task("label_map_sphered", "mean_map"),
    }


TASK_TEXT = {
    "similarity": "d = (D̂ − D)/D̂, 50 vs 15 µM (> 0: the doses closer to each other than to DMSO)",
    "treated vs control": "ROC-AUC of an MLP on frozen features, held-out plate",
    "clustering": "silhouette at the best min cluster size (UMAP → HDBSCAN, treated cells)",
    "dose mAP vs DMSO": "replicate mAP: each dose's fields retrieve each other ahead of DMSO fields",
    "dose mAP vs DMSO, sphered": "the same after ZCA sphering fitted on the DMSO cells",
    "dose mAP vs other doses": "label mAP: treated fields retrieve their own dose ahead of other doses",
    "dose mAP vs other doses, sphered": "the same after ZCA sphering fitted on the DMSO cells",
}
#: The four task scores the findings use (one per Study B task; mAP after field-standard processing).
FINDING_TASKS = ("similarity", "treated vs control", "clustering", "dose mAP vs other doses, sphered")


# ----------------------------------------------------------------------------- reading one study
@dataclass
class Setup:
    """One setup of a study: its runs (one per fold), summaries and task values over the folds."""

    name: str
    method: str
    augment: str
    crops: str
    backbone: str
    grid: bool  # one of the study's 16 (paradigm × augmentation × crops)
    max_epochs: int
    runs: dict[str, Path]
    summaries: dict[str, Any]
    values: dict[str, list[Any]] = field(default_factory=dict)  # task → [FoldValue per fold]

    @property
    def untrained(self) -> bool:
        """The untrained-encoder baseline: ``train.epochs: 0`` with the study's SimpleCNN."""
        return self.max_epochs == 0 and self.backbone != "classical"

    @property
    def classical(self) -> bool:
        """The classical-features baseline (``model.backbone: classical``)."""
        return self.backbone == "classical"

    @property
    def baseline(self) -> bool:
        return self.untrained or self.classical

    def summary_values(self, key: str) -> list[float]:
        out = []
        for s in self.summaries.values():
            v = s.get(key)
            if v is not None:
                out.append(float(v))
        return out


def load_setups(prep: Any, partial: bool = False) -> tuple[list[Setup], list[str]]:
    """Every setup of a prepared study with its per-fold run summaries and task values, and the names
    of the setups left out. A setup with a run not finished or not evaluated on some fold stops this
    with :class:`Missing`; with ``partial`` it is left out (and named) instead, unless it is a
    baseline every other row is read against."""
    from biorep.study import setup_config, study_setups

    tasks = _tasks()
    names = study_setups(prep.study)
    n_grid = len(names) - len(prep.study.extra)  # the grid comes first, then the extras
    by_setup: dict[str, list[Any]] = {}
    for spec in prep.setups:
        by_setup.setdefault(spec.setup_name, []).append(spec)
    out, skipped = [], []
    for i, name in enumerate(names):
        specs = by_setup[name]
        cfg = setup_config(prep.base, specs[0])
        try:
            out.append(_load_setup(prep, name, specs, cfg, grid=i < n_grid, tasks=tasks))
        except Missing:
            if not partial or str(cfg["model"]["backbone"]) == "classical" or int(cfg["train"]["epochs"]) == 0:
                raise
            skipped.append(name)
    return out, skipped


def _load_setup(prep: Any, name: str, specs: list[Any], cfg: dict[str, Any], *, grid: bool,
                tasks: dict[str, Any]) -> Setup:
    """One setup's runs over its folds (see :func:`load_setups`)."""
    from biorep.rundir import RunPaths, read_summary
    from biorep.study import fold_values

    runs, summaries = {}, {}
    for spec in specs:
        run_dir = prep.out / "runs" / spec.name
        paths = RunPaths(run_dir)
        for p in (paths.summary, paths.evaluation):
            if not p.is_file():
                raise Missing(f"{p}: not found; run {spec.name!r} is not finished or not evaluated — "
                              "run the study to completion first")
        runs[spec.fold or "all"] = run_dir
        summaries[spec.fold or "all"] = read_summary(run_dir)
    method = str(cfg["method"]["name"])
    s = Setup(name=name, method=method, augment=str(cfg["views"]["augment"]),
              crops=str(cfg["views"]["crops"]), backbone=str(cfg["model"]["backbone"]),
              grid=bool(grid and method in PARADIGMS), max_epochs=int(cfg["train"]["epochs"]),
              runs=runs, summaries=summaries)
    for task, spec_t in tasks.items():
        vals = fold_values(runs, spec_t)
        missing = [v.fold for v in vals if v.value is None]
        if missing:
            raise Missing(f"{prep.out}: {task} ({spec_t.evaluation}.{spec_t.path}) is missing for setup "
                          f"{name!r} on fold(s) {', '.join(missing)}; was the evaluation run?")
        s.values[task] = vals
    return s


# ----------------------------------------------------------------------------- formatting
def fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "undef."
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    v = float(v)
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.1f}"


def ci(lo: Any, hi: Any) -> str:
    return "—" if lo is None or hi is None else f"[{fmt(lo)}, {fmt(hi)}]"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def label(s: Setup) -> str:
    if s.grid:
        return s.name
    if s.untrained:
        return f"{s.name} (baseline: untrained encoder)"
    if s.classical:
        return f"{s.name} (baseline: classical features)"
    return f"{s.name} (extra)"


def _arrow(v: str) -> str:
    return {"holds": "above", "does not hold": "below", "cannot tell": "≈"}[v]


# ----------------------------------------------------------------------------- numbers
def task_numbers(setups: list[Setup]) -> dict[str, dict[str, Any]]:
    """Per setup, per task: aggregate over folds and paired verdicts against both baselines."""
    from biorep.study import aggregate_folds, compare_folds

    untrained = next((s for s in setups if s.untrained), None)
    classical = next((s for s in setups if s.classical), None)
    out: dict[str, dict[str, Any]] = {}
    for s in setups:
        per_task = {}
        for task, vals in s.values.items():
            rec = aggregate_folds(vals)
            for key, base in (("untrained", untrained), ("classical", classical)):
                if base is None or base is s:
                    continue
                rec[key] = aggregate_folds(base.values[task])["median"]
                rec[f"vs_{key}"] = compare_folds(vals, base.values[task])
            per_task[task] = rec
        out[s.name] = per_task
    return out


def resources(s: Setup) -> dict[str, Any]:
    """Epochs run, time and memory of a setup over its folds."""
    epochs = {f: r.get("epochs") for f, r in s.summaries.items()}
    steps = [float(r.get("global_step") or 0) for r in s.summaries.values()]
    wall = s.summary_values("wall_time_s")
    per_batch = [w / st for w, st in zip(wall, steps, strict=False) if st]
    rss, heap = s.summary_values("peak_rss_mb"), s.summary_values("peak_tracemalloc_mb")
    return {
        "max_epochs": s.max_epochs, "epochs_run": epochs,
        "stopped_early": {f: bool(r.get("stopped_early")) for f, r in s.summaries.items()},
        "batches_run": {f: r.get("global_step") for f, r in s.summaries.items()},
        "wall_time_s": {f: r.get("wall_time_s") for f, r in s.summaries.items()},
        "wall_time_s_total": float(sum(wall)),
        "s_per_batch": float(np.median(per_batch)) if per_batch else None,
        "peak_rss_mb": max(rss) if rss else None,
        "peak_tracemalloc_mb": max(heap) if heap else None,
        "precision": {f: r.get("precision") for f, r in s.summaries.items()},
        "machine": {f: r.get("machine") for f, r in s.summaries.items()},
    }


def comparable_folds(runs: Sequence[Setup]) -> tuple[list[str], list[str]]:
    """The folds on which every one of ``runs`` trained on the same hardware (device, precision and,
    where recorded, CPU capability, threads, GPU), so their times and memory compare; and the others."""
    from biorep.training.machine import same_hardware

    folds = list(runs[0].summaries) if runs else []
    same = [f for f in folds if all(same_hardware(runs[0].summaries[f], s.summaries[f]) for s in runs[1:])]
    return same, [f for f in folds if f not in same]


# ----------------------------------------------------------------------------- tables
def task_table(setups: list[Setup], numbers: dict[str, dict[str, Any]], task: str) -> str:
    rows = []
    for s in setups:
        r = numbers[s.name][task]
        per_fold = ", ".join(fmt(p["value"]) for p in r["per_fold"])
        vs = []
        for key in ("untrained", "classical"):
            c = r.get(f"vs_{key}")
            vs.append("—" if c is None else f"{_arrow(c['verdict'])} ({fmt(c['difference'])} "
                      f"{ci(c['ci_low'], c['ci_high'])})")
        rows.append([label(s), fmt(r["median"]), fmt(r["mad"]), ci(r["ci_low"], r["ci_high"]), per_fold, *vs])
    return md_table(["setup", "median", "MAD", "95 % CI", "per fold", "vs untrained (Δ, CI)",
                     "vs classical (Δ, CI)"], rows)


def resources_table(setups: list[Setup]) -> str:
    rows = []
    for s in setups:
        r = resources(s)
        ep = ", ".join(f"{v}" + ("*" if r["stopped_early"][f] else "") for f, v in r["epochs_run"].items())
        precs = [str(v) for v in r["precision"].values()]
        prec = precs[0] if len(set(precs)) == 1 else ", ".join(precs)
        rows.append([label(s), f"{ep} of {r['max_epochs']}", prec, fmt(r["s_per_batch"], 2),
                     fmt(r["wall_time_s_total"], 0), fmt(r["peak_tracemalloc_mb"], 1), fmt(r["peak_rss_mb"], 0)])
    return md_table(["setup", "epochs run per fold (* early stop)", "precision (per fold if mixed)", "s / batch",
                     "training s (all folds)", "peak tracemalloc MiB", "peak RSS MiB"], rows)


def hardware_note(setups: list[Setup]) -> str:
    """A warning when the runs did not all train on the same hardware (their times do not compare)."""
    _, mixed = comparable_folds([s for s in setups if not s.baseline])
    if not mixed:
        return ""
    return (f"\n**Hardware differs** between the runs of fold(s) {', '.join(mixed)} (precision, CPU capability, "
            "threads or GPU in their summary.json; e.g. a CPU without native bf16 trains in fp32, about 3× "
            "slower): training times and memory compare only between runs of the same hardware, and the "
            "time and memory findings leave those folds out.\n")


# ----------------------------------------------------------------------------- findings
def _majority(verdicts: Sequence[str]) -> str:
    """holds / does not hold when the CIs say so in more than half; else cannot tell."""
    n = len(verdicts)
    if sum(v == "holds" for v in verdicts) * 2 > n:
        return "holds"
    if sum(v == "does not hold" for v in verdicts) * 2 > n:
        return "does not hold"
    return "cannot tell"


def _count(verdicts: Sequence[str]) -> str:
    return (f"{sum(v == 'holds' for v in verdicts)} better / {sum(v == 'does not hold' for v in verdicts)} "
            f"worse / {sum(v == 'cannot tell' for v in verdicts)} cannot tell")


def findings(setups: list[Setup], numbers: dict[str, dict[str, Any]], grid: list[Setup] | None = None, *,
             scope: str = "the 16 grid setups", with_baselines: bool = True) -> tuple[str, dict[str, Any]]:
    """The study's four findings (and 'no single setup wins'), decided by paired CIs over folds.

    Over the study's 16 grid setups by default; ``grid`` gives a part of the grid instead (the budget
    curve's 50-epoch setups and their no-augmentation twins): a factor's finding then uses the pairs
    that are there, and a finding with nothing to compare is left out."""
    from biorep.study import compare_folds

    if grid is None:
        grid = [s for s in setups if s.grid]
        if len(grid) != 16:
            raise Missing(f"expected the study's 16 grid setups, found {len(grid)}")
    by_key = {(s.method, s.augment, s.crops): s for s in grid}
    record: dict[str, Any] = {}
    out = [f"Computed by `benchmarks/screening/run.py` from the tables above, over {scope}. "
           "A comparison of two setups is the paired difference of their task scores (same cells, same "
           "bootstrap resamples), median over the folds with its 95 % CI: **better** / **worse** when the "
           "CI excludes 0, else **cannot tell**. A task's verdict is *holds* / *does not hold* when more "
           "than half of its comparisons are better / worse, else *cannot tell*; a finding's verdict is "
           "the same majority rule over the tasks. Clustering is the exception to the pairing: its silhouette "
           "is over the cells HDBSCAN keeps (not noise), which differ between setups, so its differences "
           "combine unpaired resamples (a wider, conservative CI). Tasks: " + "; ".join(f"{t}: {TASK_TEXT[t]}"
                                                                         for t in FINDING_TASKS) + "."]

    for title, attr, a, b in (("Multi-crop vs one crop", "crops", "multi", "one"),
                              ("Random augmentation vs none", "augment", "random", "none")):
        pairs = []
        for s in grid:
            if getattr(s, attr) != a:
                continue
            key = {"method": s.method, "augment": s.augment, "crops": s.crops, attr: b}
            twin = by_key.get((key["method"], key["augment"], key["crops"]))
            if twin is not None:
                pairs.append((s, twin))
        if not pairs:
            continue
        rows, task_verdicts, rec = [], [], {}
        for task in FINDING_TASKS:
            vs = [compare_folds(s.values[task], twin.values[task])["verdict"] for s, twin in pairs]
            tv = _majority(vs)
            task_verdicts.append(tv)
            rec[task] = {"pairs": vs, "verdict": tv}
            rows.append([task, _count(vs), tv])
        fv = _majority(task_verdicts)
        mixed = [f"{s.name} / {twin.name} on {', '.join(m)}" for s, twin in pairs
                 if (m := comparable_folds([s, twin])[1])]
        record[title] = {"verdict": fv, "tasks": rec, "pairs": [[s.name, twin.name] for s, twin in pairs],
                         "pairs_on_other_hardware": mixed}
        out += [f"\n**{title}** — the study: it generally helps. Here: **{fv}** "
                f"(`{a}` against its `{b}` twin with the same paradigm and other factor, {len(pairs)} pairs "
                "per task)." + (f" Pairs whose two runs trained on different hardware or precision on some fold "
                               f"(accuracy, not time, is compared): {'; '.join(mixed)}." if mixed else "") + "\n",
                md_table(["task", f"{a} vs {b} ({len(pairs)} pairs)", "task verdict"], rows)]

    out += _byol_finding(grid, numbers, by_key, record)
    out += _cost_and_best_findings(grid, numbers, record)
    if with_baselines:
        out += baselines_section(setups, numbers, record)
    return "\n".join(out), record


def _byol_finding(grid: list[Setup], numbers: dict[str, dict[str, Any]],
                  by_key: dict[tuple[str, str, str], Setup], record: dict[str, Any]) -> list[str]:
    """Finding 3 (BYOL competitive and faster) over ``grid`` (see :func:`findings`)."""
    from biorep.study import compare_folds

    if not any(s.method == "byol" for s in grid) or all(s.method == "byol" for s in grid):
        return []
    # BYOL competitive (its best setup not worse than the best of the other paradigms) and faster
    out: list[str] = []
    rows, comp = [], []
    for task in FINDING_TASKS:
        def best(ss: list[Setup], t: str = task) -> Setup:
            return max(ss, key=lambda s: numbers[s.name][t]["median"])
        byol = best([s for s in grid if s.method == "byol"])
        other = best([s for s in grid if s.method != "byol"])
        c = compare_folds(byol.values[task], other.values[task])
        comp.append(c["verdict"])
        rows.append([task, byol.name, other.name, fmt(c["difference"]), ci(c["ci_low"], c["ci_high"]),
                     {"holds": "better", "does not hold": "worse"}.get(c["verdict"], c["verdict"])])
    worse = sum(v == "does not hold" for v in comp)
    competitive = "holds" if worse == 0 else ("does not hold" if worse * 2 > len(comp) else "cannot tell")
    ratios, ratio_min, ratio_max = [], [], []
    for s in grid:
        if s.method == "byol":
            continue
        twin = by_key.get(("byol", s.augment, s.crops))
        if twin is None:
            continue
        same, _ = comparable_folds([s, twin])
        per_fold = [float(s.summaries[f].get("wall_time_s")) / float(twin.summaries[f].get("wall_time_s"))
                    for f in same if twin.summaries[f].get("wall_time_s")]
        if not per_fold:
            continue
        ratios.append(float(np.median(per_fold)))
        ratio_min.append(min(per_fold))
        ratio_max.append(max(per_fold))
    r = np.asarray(ratios) if ratios else np.asarray([np.nan])
    faster = ("cannot tell" if not ratios else "holds" if min(ratio_min) > 1 else
              "does not hold" if max(ratio_max) < 1 else
              "holds" if np.median(r) > 1 and sum(x > 1 for x in ratio_min) * 2 > len(r) else "cannot tell")
    byol_epochs = [f"{s.name}: {', '.join(str(e) for e in resources(s)['epochs_run'].values())} of {s.max_epochs}"
                   for s in grid if s.method == "byol"]
    record["BYOL competitive and faster"] = {"competitive": competitive, "faster": faster, "tasks": comp,
                                             "time_ratio_median": float(np.median(r)) if ratios else None,
                                             "time_ratio_range": [float(r.min()), float(r.max())] if ratios else None}
    ratio_text = (f"median {np.median(r):.2f}×, range {r.min():.2f}×–{r.max():.2f}×" if ratios else
                  "no pair of runs trained on the same hardware")
    out += ["\n**BYOL competitive and up to 11× faster** — competitive (BYOL's best setup not worse, by "
            f"the CI, than the best setup of the other three paradigms, on every task): **{competitive}**; "
            f"faster: **{faster}** — training time of the other paradigms over BYOL's with the same views "
            f"(median over folds, pairs on the same hardware only): {ratio_text} "
            "(*holds* when every fold of every pair is faster for BYOL, or the median ratio is > 1 and "
            "more than half of the pairs are faster on every fold). Epochs BYOL ran per fold (its "
            f"stopping rule): {'; '.join(byol_epochs)}.\n",
            md_table(["task", "BYOL's best", "others' best", "Δ median", "95 % CI", "BYOL better?"], rows)]

    return out


def _cost_units(grid: list[Setup], present: list[str]) -> tuple[list[tuple[str, str, list[Setup]]], bool]:
    """Where the paradigms' costs compare: ``(label, fold, runs)`` per fold on which every run of
    ``grid`` trained on one hardware; when there is none (a grid trained over several sessions on
    different machines), per views (augmentation, crops) and fold on which the runs of every paradigm
    with those views did. The flag says which."""
    folds, _ = comparable_folds(grid)
    if folds:
        return [(f, f, grid) for f in folds], False
    units = []
    for views in sorted({(s.augment, s.crops) for s in grid}):
        group = [s for s in grid if (s.augment, s.crops) == views]
        if {s.method for s in group} != set(present):
            continue
        same, _ = comparable_folds(group)
        units += [(f"{views[0]}/{views[1]} on {f}", f, group) for f in same]
    return units, True


def _cost_and_best_findings(grid: list[Setup], numbers: dict[str, dict[str, Any]],
                            record: dict[str, Any]) -> list[str]:
    """Finding 4 (regularized costs the most) and 'no single setup wins' over ``grid``."""
    from biorep.study import compare_folds

    out: list[str] = []
    # regularized costs the most
    present = [p for p in PARADIGMS if any(s.method == p for s in grid)]
    n_per = {p: sum(s.method == p for s in grid) for p in present}
    if "regularized" in present and len(present) > 1:
        units, per_views = _cost_units(grid, present)
        lines, verdicts = [], []
        for key, name in (("peak_tracemalloc_mb", "peak tracemalloc MiB"), ("peak_rss_mb", "peak RSS MiB"),
                          ("wall_time_s", "training time s")):
            if not units:
                verdicts.append("cannot tell")
                lines.append([name, *("—" for _ in present), "no fold with one hardware", "cannot tell"])
                continue
            tops, means = [], {p: [] for p in present}
            for _, f, group in units:
                m = {p: float(np.mean([float(s.summaries[f].get(key) or 0) for s in group if s.method == p]))
                     for p in present}
                tops.append(max(m, key=m.get))
                for p in present:
                    means[p].append(m[p])
            n_reg = sum(t == "regularized" for t in tops)
            v = "holds" if n_reg == len(units) else ("does not hold" if n_reg == 0 else "cannot tell")
            verdicts.append(v)
            lines.append([name, *(f"{np.mean(means[p]):.1f}" for p in present), f"{n_reg} of {len(units)}", v])
        reg = _majority(verdicts)
        record["Regularized costs the most"] = {"verdict": reg, "measures": verdicts,
                                                "compared_within": [u[0] for u in units]}
        unit = "comparisons" if per_views else "folds"
        within = (f"its {n_per.get('regularized', 0)} setups on every fold" if not per_views else
                  "the setups of the same views on each fold where all paradigms' runs of those views trained on "
                  f"one hardware ({', '.join(u[0] for u in units) or 'none'}; the runs of a whole fold did not)")
        out += [f"\n**Regularized costs the most memory and compute** — **{reg}** (per measure: *holds* when "
                f"the regularized paradigm has the highest mean over {within}, *does not hold* "
                "on none; no CI — each is one measurement per run; tracemalloc sees the Python heap, not "
                "torch tensors, as in the study).\n",
                md_table([f"measure (mean over setups and {unit})", *present, f"regularized highest ({unit})",
                          "verdict"], lines)]

    # no single setup wins every task: for every setup some other setup is better (by the CI) somewhere
    beaten = {}
    for s in grid:
        beaten[s.name] = next(((t, o.name) for t in FINDING_TASKS for o in grid
                               if o is not s and compare_folds(o.values[t], s.values[t])["verdict"] == "holds"),
                              None)
    unbeaten = [n for n, b in beaten.items() if b is None]
    best_per_task = {t: max(grid, key=lambda s, t=t: numbers[s.name][t]["median"]).name for t in FINDING_TASKS}
    nosingle = "holds" if not unbeaten else "cannot tell"
    if len(set(best_per_task.values())) == 1 and unbeaten == [next(iter(best_per_task.values()))]:
        nosingle = "does not hold" if all(
            compare_folds(next(s for s in grid if s.name == unbeaten[0]).values[t], o.values[t])["verdict"] == "holds"
            for t in FINDING_TASKS for o in grid if o.name != unbeaten[0]) else "cannot tell"
    record["No single setup wins every task"] = {"verdict": nosingle, "best_per_task": best_per_task,
                                                 "not_beaten_anywhere": unbeaten}
    out += [f"\n**No single setup is best on every task** — **{nosingle}** (*holds* when every setup is "
            "beaten, by the CI, by some other setup on some task). Best median per task: "
            + "; ".join(f"{t}: {n}" for t, n in best_per_task.items())
            + (f". Not beaten by the CI on any task: {', '.join(unbeaten)}." if unbeaten else ".") + "\n"]
    return out


def baselines_section(setups: list[Setup], numbers: dict[str, dict[str, Any]], record: dict[str, Any]) -> list[str]:
    """Every trained paradigm against both baselines, on every task (its best setup and all setups)."""
    trained = [s for s in setups if not s.baseline]
    methods = list(dict.fromkeys(s.method for s in trained))
    out, rec = [], {}
    for key, what in (("untrained", "the untrained encoder"), ("classical", "the classical features")):
        if not any(f"vs_{key}" in numbers[s.name][t] for s in trained for t in numbers[s.name]):
            continue
        rows, beats = [], {}
        for m in methods:
            ss = [s for s in trained if s.method == m]
            cells, flags = [], []
            for t in _tasks():
                vs = [numbers[s.name][t][f"vs_{key}"]["verdict"] for s in ss]
                n_up = sum(v == "holds" for v in vs)
                flags.append(n_up > 0)
                cells.append(f"{n_up} / {len(vs)} above" + (f", {sum(v == 'does not hold' for v in vs)} below"
                                                             if "does not hold" in vs else ""))
            beats[m] = {t: f for t, f in zip(_tasks(), flags, strict=True)}
            rows.append([m, *cells])
        rec[key] = beats
        fails = {m: [t for t, ok in b.items() if not ok] for m, b in beats.items()}
        fails = {m: ("every task" if len(ts) == len(b) else ", ".join(ts)) for (m, ts), b in
                 zip(fails.items(), beats.values(), strict=True) if ts}
        out += [f"\n**Against {what}** — setups of each paradigm whose score lies above it by the paired CI "
                "(all folds):\n", md_table(["paradigm", *_tasks()], rows),
                "\n" + ("Where no setup of a paradigm beats " + what + ": "
                        + "; ".join(f"**{m}** on {ts}" for m, ts in fails.items()) + "."
                        if fails else f"Every paradigm has a setup above {what} on every task.") + "\n"]
    record["against baselines"] = rec
    return out


# ----------------------------------------------------------------------------- budget curve
def budget_section(setups: list[Setup], numbers: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Trained − untrained per paradigm and epoch budget: where does the gap stop moving?"""
    rows, rec = [], {}
    trained = sorted([s for s in setups if s.grid], key=lambda s: (s.method, s.max_epochs))
    for s in trained:
        cells = []
        for t in FINDING_TASKS:
            c = numbers[s.name][t].get("vs_untrained")
            cells.append("—" if c is None else f"{fmt(c['difference'])} {ci(c['ci_low'], c['ci_high'])}")
            rec.setdefault(s.method, {}).setdefault(str(s.max_epochs), {})[t] = c
        ep = ", ".join(str(v) for v in resources(s)["epochs_run"].values())
        rows.append([s.method, s.max_epochs, ep, *cells])
    text = ("Trained minus untrained (median over folds, paired 95 % CI) per paradigm and epoch budget; "
            "the gap has stopped moving where consecutive budgets' CIs overlap.\n\n"
            + md_table(["paradigm", "epochs (budget)", "epochs run per fold", *FINDING_TASKS], rows))
    return text, rec


def top_budget_findings(setups: list[Setup], numbers: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The study's findings over the budget curve's largest budget: its grid setups (random augmentation)
    with the extras trained at that budget (their no-augmentation twins). None without such a twin."""
    from dataclasses import replace

    grid = [s for s in setups if s.grid]
    if not grid:
        return None
    top = max(s.max_epochs for s in grid)
    at_top = [s for s in grid if s.max_epochs == top]
    twins = [replace(s, grid=True) for s in setups
             if not s.grid and not s.baseline and s.method in PARADIGMS and s.max_epochs == top]
    if not twins:
        return None
    views = sorted({(s.augment, s.crops) for s in at_top + twins})
    scope = (f"the {len(at_top) + len(twins)} setups trained for {top} epochs (views "
             f"{', '.join(f'{a}/{c}' for a, c in views)}: {', '.join(s.name for s in at_top + twins)})")
    text, rec = findings(setups, numbers, at_top + twins, scope=scope, with_baselines=False)
    rec["epochs"] = top
    return text, rec


# ----------------------------------------------------------------------------- the document
def headline(setups: list[Setup], numbers: dict[str, dict[str, Any]]) -> str:
    """The answer a reader needs first: how many (trained setup, task) scores beat each baseline."""
    trained = [s for s in setups if not s.baseline]
    tasks = list(_tasks())
    lines = []
    for key, what in (("untrained", "the untrained encoder"), ("classical", "the classical features")):
        verdicts = [numbers[s.name][t].get(f"vs_{key}", {}).get("verdict") for s in trained for t in tasks]
        if not any(verdicts):
            continue
        up, down = sum(v == "holds" for v in verdicts), sum(v == "does not hold" for v in verdicts)
        lines.append(f"above {what} in **{up}** and below it in {down} of the {len(verdicts)} (trained "
                     f"setup, task) scores")
    if not lines:
        return ""
    return (f"**Headline:** by the paired 95 % CI over folds, the {len(trained)} trained setups × {len(tasks)} "
            "tasks lie " + "; ".join(lines) + " (the rest cannot be told apart from it).\n")


def machine() -> dict[str, str]:
    from biorep.training.machine import machine_info

    m = machine_info()
    return {"nproc": str(m["cpu_count"]), "cpu": m["cpu"], "cpu_capability": str(m["cpu_capability"]),
            "torch": m["torch"], "threads": str(m["threads"]), "python": platform.python_version(),
            "gpu": m["gpu"] or "none"}


def rel(path: Path | str) -> str:
    """``path`` relative to the repository root when it lies inside it (RESULTS.md names no home folder)."""
    return str(path).replace(f"{ROOT}/", "")


def section(kind: str, prep: Any, bench: dict[str, Any], partial: bool = False) -> tuple[str, dict[str, Any]]:
    setups, skipped = load_setups(prep, partial)
    numbers = task_numbers(setups)
    t = prep.base["train"]
    folds = [f.get("label") for f in prep.study.folds] or ["(the config's split)"]
    head = (f"## {TITLES[kind]} — `{rel(prep.config)}`\n\n"
            f"Study folder `{rel(prep.out)}`; {len(setups)} setups × {len(folds)} folds "
            f"(held-out plate per fold: {', '.join(map(str, folds))}); data channels "
            f"{prep.base['data'].get('channels') or 'all'}; {t['epochs']} epochs × "
            f"{t.get('limit_train_batches') or 'all'} batch(es) of {t['batch_size']} (unless a setup says "
            f"otherwise); study wall time {bench['wall_time_s'] / 60:.1f} min.\n")
    if skipped:
        head += (f"\n**Partial:** {len(skipped)} setup(s) are not finished and evaluated on every fold yet and "
                 f"are left out of every table and finding below: {', '.join(skipped)}. Rerun the script "
                 "to train them (it resumes).\n")
    parts = [head + hardware_note(setups), headline(setups, numbers)]
    rec: dict[str, Any] = {"config": rel(prep.config), "study_folder": rel(prep.out), "folds": folds,
                           "setups": {}, "not_finished": skipped}
    for s in setups:
        rec["setups"][s.name] = {"method": s.method, "augment": s.augment, "crops": s.crops,
                                 "backbone": s.backbone, "grid": s.grid, "untrained": s.untrained,
                                 "classical": s.classical, **resources(s), "tasks": numbers[s.name]}
    for i, task in enumerate(_tasks(), 1):
        parts += [f"### {i}. {task}\n\n{TASK_TEXT[task]}. Median and MAD over the folds; 95 % CI of "
                  "the median (bootstrap within each fold over fields of view, combined across folds); "
                  "'vs' columns: paired difference to the baseline, *above* / *below* when its CI excludes "
                  "0, ≈ otherwise.\n", task_table(setups, numbers, task), ""]
    parts += ["### Time and memory (training)\n", resources_table(setups), ""]
    if kind == "budget":
        text, rec["budget_curve"] = budget_section(setups, numbers)
        parts += ["### Budget curve\n", text, ""]
        if (top := top_budget_findings(setups, numbers)) is not None:
            parts += [f"### Findings at {top[1]['epochs']} epochs\n", top[0]]
            rec["findings_at_top_budget"] = top[1]
    else:
        text, rec["findings"] = findings(setups, numbers)
        parts += ["### Findings\n", text]
    return "\n".join(parts), rec


def _sessions(bench: dict[str, Any]) -> str:
    runs = bench.get("sessions", [])
    if len(runs) < 2:
        return ""
    minutes = " + ".join(f"{r['wall_time_s'] / 60:.1f}" for r in runs)
    return f" in {len(runs)} sessions ({minutes} min)"


#: Flags of one session that narrow what it trains or writes, not what the study is.
SESSION_ONLY = {"--only": 1, "--no-results": 0, "--partial": 0}


def study_command(command: str) -> str:
    """The recorded ``command`` without the flags of its session (``--only RUN``, ``--no-results``,
    ``--partial``): the command that trains, or continues, the whole study."""
    words, out = shlex.split(command), []
    skip = 0
    for word in words:
        if skip:
            skip -= 1
            continue
        flag = word.split("=", 1)[0]
        if flag in SESSION_ONLY:
            skip = SESSION_ONLY[flag] if "=" not in word else 0
            continue
        out.append(word)
    return " ".join(map(shlex.quote, out))


def write_results(preps: dict[str, Any], target: Path, json_target: Path | None = None,
                  partial: bool = False) -> Path:
    from biorep.rundir import atomic_write_text, read_json, write_json

    benches = {}
    for kind, prep in preps.items():
        path = prep.out / BENCHMARK
        if not path.is_file():
            raise Missing(f"{path}: not found (written by this script after a run); run without --no-run first")
        benches[kind] = read_json(path)
    m = machine()
    commands = list(dict.fromkeys(study_command(b["command"]) for b in benches.values()))
    cmds = "\n".join(commands)
    body = [
        "# Screening study (Dmitrenko et al., MIDL 2022) on BBBC021 cycloheximide cells — results\n",
        f"Generated by `benchmarks/screening/run.py` on {dt.date.today().isoformat()} from the study "
        "folders' run directories; do not edit by hand (`results.json` beside it has every number). "
        "Setup and task definitions: `configs/studies/screening-16.yaml` (comments).\n",
        "## How it was run\n",
        "Each command trains its study, or continues it from its run folders and archive (a session "
        "may train a subset with `--only RUN`); `--no-run` regenerates this file from them.\n",
        "```\n" + cmds + "\n```\n",
        "Equivalent CLI per configuration: " + "; ".join(f"`{rel(b['cli'])}`" for b in benches.values()) + "\n",
        f"Generated on: {m['nproc']} CPU cores ({m['cpu']}, {m['cpu_capability']}), torch {m['torch']} "
        f"({m['threads']} threads), Python {m['python']}, GPU: {m['gpu']}; each run records the machine it "
        "trained on in its summary.json (precision per setup in the time tables). Wall time: "
        + ", ".join(f"{k} {b['wall_time_s'] / 60:.1f} min" + _sessions(b) for k, b in benches.items()) + ".\n",
    ]
    doc: dict[str, Any] = {"generated": dt.date.today().isoformat(), "machine": m,
                           "commands": commands,
                           "configurations": {}}
    for kind, prep in preps.items():
        text, rec = section(kind, prep, benches[kind], partial)
        rec["wall_time_s"] = benches[kind]["wall_time_s"]
        body.append(text)
        doc["configurations"][kind] = rec
    atomic_write_text(target, "\n".join(body) + "\n")
    write_json(json_target or target.with_name("results.json"), doc)
    return target


# ----------------------------------------------------------------------------- sessions and the archive
def merge_benchmark(archived: dict[str, Any], local: dict[str, Any]) -> dict[str, Any]:
    """One ``benchmark.json`` from the archive's and the study folder's: the sessions of both (one per
    start time, the local record winning), their wall times summed, the local command and timings on
    top of the archived ones."""
    sessions = {str(x.get("started")): x for x in archived.get("sessions", [])}
    sessions.update({str(x.get("started")): x for x in local.get("sessions", [])})
    ordered = [sessions[k] for k in sorted(sessions)]
    out = {**archived, **local, "sessions": ordered,
           "wall_time_s": sum(float(x.get("wall_time_s") or 0) for x in ordered),
           "timings": {**archived.get("timings", {}), **local.get("timings", {})}}
    if ordered:
        out["started"] = ordered[0].get("started")
    return out


def record_session(path: Path, started: str, wall_time_s: float, timings: dict[str, Any], *, command: str,
                   cli: str, finished: bool) -> None:
    """Add or update this session (by its start time) in ``benchmark.json``: written after every run and
    at the end, so a session cut off mid-study still counts."""
    from biorep.rundir import read_json, write_json

    old = read_json(path) if path.is_file() else {}
    this = {"started": started, "wall_time_s": wall_time_s, **({} if finished else {"finished": False})}
    sessions = [x for x in old.get("sessions", []) if x.get("started") != started] + [this]
    sessions.sort(key=lambda x: str(x.get("started")))
    write_json(path, {"command": command, "cli": cli, "started": sessions[0].get("started"),
                      "sessions": sessions, "wall_time_s": sum(float(x["wall_time_s"]) for x in sessions),
                      "timings": {**old.get("timings", {}), **timings}})


def archive_dir(root: Path, prep: Any) -> Path:
    """The archive of a prepared study: ``root/<study folder name>`` (``--gpu`` folders are their own)."""
    return root / prep.out.name


def sync_archive(prep: Any, root: Path) -> list[str]:
    """Copy the study's finished and evaluated runs (and its small files) into its archive."""
    from biorep.study import archive_study

    return archive_study(prep.out, archive_dir(root, prep), extra_files=(BENCHMARK,),
                         merge={BENCHMARK: merge_benchmark})


def restore_archive(prep: Any, root: Path) -> list[str]:
    """Restore the archived runs the study folder lacks; refuses an archive of another study."""
    from biorep.study import restore_study

    target = archive_dir(root, prep)
    names = restore_study(target, prep.out, extra_files=(BENCHMARK,), merge={BENCHMARK: merge_benchmark},
                          study={"name": prep.study.name, "base": prep.base}, echo=print)
    if names:
        print(f"restored {len(names)} finished run(s) of {prep.study.name!r} from {rel(target)} (no "
              "checkpoints or embeddings: training and evaluation skip them)", flush=True)
    return names


def archiving_evaluate(prep: Any, after: Any) -> Any:
    """``evaluate_fn`` for :func:`run_prepared`: refuses a restored run (no checkpoint to evaluate),
    evaluates, then calls ``after()`` (archive the run, record the session)."""
    from biorep.evaluate.run import evaluate_run
    from biorep.study import check_checkpoints

    def evaluate(run_dir: Path, names: list[str] | None, options: dict[str, Any]) -> dict[str, Any]:
        check_checkpoints(run_dir, f"evaluated ({', '.join(names or ['the default evaluations'])})")
        result = evaluate_run(run_dir, names=names, options=options)
        after()
        return result

    return evaluate


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rgb", action="store_true", help="also the three-channel configuration")
    ap.add_argument("--budget", action="store_true", help="also the budget curve (screening-16-budget.yaml)")
    ap.add_argument("--only-budget", action="store_true", help="only the budget curve")
    ap.add_argument("--only-rgb", action="store_true",
                    help="only the three-channel configuration (e.g. with --gpu: its 50-epoch runs, "
                         "without also training the DNA channel's)")
    ap.add_argument("--gpu", action="store_true", help="the study's protocol: " + " ".join(GPU_SETS)
                    + " (study folders get an -e50 suffix)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override for every setup (as `biorep study --set`)")
    ap.add_argument("--out-root", type=Path, default=ROOT / "runs", help="study folders go to OUT_ROOT/<study name>")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="where to write RESULTS.md")
    ap.add_argument("--json", type=Path, default=None, help="where to write results.json (default: beside RESULTS.md)")
    ap.add_argument("--only", action="append", default=None, metavar="RUN",
                    help="run only this run (e.g. byol-random-multi@Week4_27861; repeatable); RESULTS.md "
                    "needs every run, so combine with --no-results")
    ap.add_argument("--no-results", action="store_true", help="run, but do not write RESULTS.md / results.json")
    ap.add_argument("--no-run", action="store_true", help="only regenerate RESULTS.md from finished studies")
    ap.add_argument("--partial", action="store_true",
                    help="write RESULTS.md from the setups finished on every fold, naming the others (the "
                    "baselines must be finished)")
    ap.add_argument("--no-report", action="store_true", help="skip the HTML comparison reports")
    ap.add_argument("--archive", type=Path, default=ARCHIVE, metavar="DIR",
                    help="each study's archive goes to DIR/<study folder name> (default: "
                    f"{rel(ARCHIVE)}, committed)")
    ap.add_argument("--no-archive", action="store_true", help="neither restore from nor write to the archive")
    ap.add_argument("--archive-only", action="store_true",
                    help="copy the finished and evaluated runs into the archive and exit (safe while the "
                    "study runs in another process)")
    args = ap.parse_args(argv)
    if args.archive_only and args.no_archive:
        ap.error("--archive-only and --no-archive exclude each other")
    if args.only_budget and args.only_rgb:
        ap.error("--only-budget and --only-rgb exclude each other")

    from biorep.errors import RunDirError, Terminated
    from biorep.study import is_restored
    from biorep.study.session import prepare_study, run_prepared

    kinds = (["budget"] if args.only_budget else ["rgb"] if args.only_rgb
             else ["gray", *(["rgb"] if args.rgb else []), *(["budget"] if args.budget else [])])
    sets = [*(GPU_SETS if args.gpu else ()), *args.sets]
    suffix = "-e50" if args.gpu else ""
    preps = {k: prepare_study(CONFIGS[k], sets, out=args.out_root / (CONFIGS[k].stem + suffix), only=args.only)
             for k in kinds}
    archive = None if args.no_archive else args.archive
    try:
        for prep in preps.values():
            if args.archive_only:
                names = sync_archive(prep, args.archive)
                print(f"{rel(archive_dir(args.archive, prep))}: {len(names)} finished run(s) of "
                      f"{prep.study.name!r}")
            elif archive is not None:
                restore_archive(prep, archive)
    except RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.archive_only:
        return 0
    if not args.no_run:
        words = [rel(sys.argv[0]), *(argv if argv is not None else sys.argv[1:])]
        command = " ".join(["python", *map(shlex.quote, words)])
        for prep in preps.values():
            started = dt.datetime.now().isoformat(timespec="seconds")
            t0 = time.perf_counter()
            cli = " ".join(["biorep study", shlex.quote(rel(prep.config)), "--out",
                            shlex.quote(rel(prep.out)), *(f"--set {shlex.quote(s)}" for s in sets)])

            def save(timings: dict[str, Any], finished: bool) -> None:
                record_session(prep.out / BENCHMARK, started, time.perf_counter() - t0, timings,
                               command=command, cli=cli, finished=finished)
                if archive is not None:
                    sync_archive(prep, archive)

            result = None
            try:
                result = run_prepared(prep, report=not args.no_report,
                                      echo=lambda msg: print(msg, flush=True),
                                      evaluate_fn=archiving_evaluate(prep, lambda: save({}, False)))
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (biorep.errors.Terminated)
                print(f"interrupted ({'SIGTERM' if isinstance(exc, Terminated) else 'SIGINT'}); the finished "
                      f"runs are kept in {rel(prep.out)}: run the same command again to resume",
                      file=sys.stderr, flush=True)
                return int(getattr(exc, "exit_code", 130))
            finally:  # also when interrupted: the session so far and the finished runs are kept
                save(result.timings if result is not None else {}, result is not None)
            restored = [s.name for s in prep.setups if is_restored(prep.out / "runs" / s.name)]
            if restored and not args.no_report:
                print(f"note: {len(restored)} run(s) restored from the archive have no embeddings; the HTML "
                      "report has no embedding maps for them", flush=True)
    if args.no_results:
        return 0
    # RESULTS.md holds every configuration run so far, not only this invocation's (so that
    # `--only-budget` does not drop the DNA-channel tables), also one whose study folder did not
    # survive the machine but whose archive did
    for kind in CONFIGS:
        out = args.out_root / (CONFIGS[kind].stem + suffix)
        if kind in preps:
            continue
        if not (out / BENCHMARK).is_file() and archive is not None and (archive / out.name / BENCHMARK).is_file():
            restore_archive(prepare_study(CONFIGS[kind], sets, out=out), archive)
        if (out / BENCHMARK).is_file():
            preps[kind] = prepare_study(CONFIGS[kind], sets, out=out)
    preps = {k: preps[k] for k in CONFIGS if k in preps}
    path = write_results(preps, args.results, args.json, args.partial)
    print(f"wrote {path} and {args.json or path.with_name('results.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
