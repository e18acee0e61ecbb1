"""Study B's 16 setups on BBBC021 cycloheximide cells, then RESULTS.md from the results tables.

Runs ``biorep study`` (through the library) on ``configs/studies/screening-16.yaml`` (and, with
``--rgb``, ``screening-16-rgb.yaml``), then writes ``RESULTS.md`` beside this file: one table per task,
the time/memory table, the exact commands, the machine and a "Findings" section that checks the
study's four findings against these numbers by code. A study folder that already holds finished
setups is resumed, not retrained. Every cell comes from a run: a missing setup, evaluation or value
stops the script with a message naming it.

Usage:
    python benchmarks/screening/run.py                    # CPU-sized default (see the config)
    python benchmarks/screening/run.py --rgb              # + the three-channel configuration
    python benchmarks/screening/run.py --set train.epochs=50 --set train.limit_train_batches=null \\
        --set method.pretrain_epochs=49 --out-root runs/e50   # the study's 50 full epochs
    python benchmarks/screening/run.py --no-run           # only regenerate RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CONFIGS = {
    "gray": ROOT / "configs/studies/screening-16.yaml",
    "rgb": ROOT / "configs/studies/screening-16-rgb.yaml",
}
PARADIGMS = ("weak", "autoencoder", "regularized", "byol")


class Missing(SystemExit):
    """A value RESULTS.md needs is not in the study's outputs."""


# ----------------------------------------------------------------------------- reading one study
@dataclass
class Setup:
    name: str
    run_dir: Path
    method: str
    augment: str | None
    crops: str | None
    grid: bool  # one of the study's 16 (paradigm × augmentation × crops)
    row: pd.Series
    summary: dict[str, Any]
    config: dict[str, Any]
    clustering: dict[str, Any]

    @property
    def untrained(self) -> bool:
        """The baseline row: ``train.epochs: 0``, the encoder's seeded initial weights."""
        return self.summary.get("max_epochs") == 0


def _need(value: Any, what: str, setup: str) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise Missing(f"RESULTS.md: {what} is missing for setup {setup!r}; run the study to completion first")
    return value


def load_setups(prep: Any) -> list[Setup]:
    """Every setup of a prepared study with its results row, summary, config and clustering summary."""
    import yaml

    from biorep.study import setup_config

    csv = prep.out / "results.csv"
    if not csv.is_file():
        raise Missing(f"{csv}: not found; run the study first")
    table = pd.read_csv(csv, index_col="setup")
    out = []
    n_grid = len(prep.setups) - len(prep.study.extra)  # expand_grid lists the grid first, then the extras
    for i, spec in enumerate(prep.setups):
        run_dir = prep.out / "runs" / spec.name
        if spec.name not in table.index:
            raise Missing(f"{csv}: no row for setup {spec.name!r}; the study has not finished")
        summary_path, cfg_path = run_dir / "summary.json", run_dir / "config.yaml"
        clus_path = run_dir / "evaluation" / "clustering.json"
        for p in (summary_path, cfg_path, clus_path):
            if not p.is_file():
                raise Missing(f"{p}: not found; setup {spec.name!r} is not finished or not evaluated")
        cfg = setup_config(prep.base, spec)
        grid = i < n_grid
        out.append(Setup(
            name=spec.name, run_dir=run_dir, method=str(cfg["method"]["name"]),
            augment=str(cfg["views"]["augment"]), crops=str(cfg["views"]["crops"]),
            grid=bool(grid and cfg["method"]["name"] in PARADIGMS),
            row=table.loc[spec.name], summary=json.loads(summary_path.read_text()),
            config=yaml.safe_load(cfg_path.read_text()),
            clustering=json.loads(clus_path.read_text())["summary"],
        ))
    if sum(s.grid for s in out) != 16:
        raise Missing(f"{prep.config}: expected the study's 16 grid setups, found {sum(s.grid for s in out)}")
    return out


def col(s: Setup, column: str) -> Any:
    """One cell of the results table (fails loudly when absent)."""
    if column not in s.row.index:
        raise Missing(f"results.csv: column {column!r} is missing (setup {s.name!r}); "
                      "was the evaluation run?")
    value = s.row[column]
    return _need(None if pd.isna(value) else value, f"results.csv column {column!r}", s.name)


def clustering_best(s: Setup) -> dict[str, Any]:
    """Median over plates of the row with the best silhouette per plate (the evaluation's summary)."""
    best = s.clustering.get("best_per_group") or []
    if not best:
        raise Missing(f"{s.run_dir}/evaluation/clustering.json: no clustering result (best_per_group empty)")
    keys = ("min_cluster_size", "silhouette", "calinski_harabasz", "davies_bouldin", "noise_fraction",
            "n_clusters", "ari", "nmi")
    out: dict[str, Any] = {"n_plates": len(best)}
    for k in keys:
        if any(k not in r for r in best):
            raise Missing(f"{s.run_dir}/evaluation/clustering.json: {k!r} missing (label_column not set?)")
        vals = [r[k] for r in best if r[k] is not None]
        out[k] = float(np.median(vals)) if vals else None  # None: undefined (< 2 clusters on every plate)
    return out


def batches_per_epoch(s: Setup) -> float:
    return _need(s.summary.get("global_step"), "summary global_step", s.name) / max(1, s.summary["epochs"])


def full_epoch_batches(s: Setup) -> int:
    return int(s.summary["n_train"]) // int(s.config["train"]["batch_size"])


# ----------------------------------------------------------------------------- formatting
def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
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


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def label(s: Setup) -> str:
    if s.grid:
        return s.name
    return f"{s.name} (baseline: no training)" if s.untrained else f"{s.name} (extra)"


# ----------------------------------------------------------------------------- the task tables
def similarity_table(setups: list[Setup]) -> str:
    rows = []
    for s in setups:
        p = "similarity.summary."
        rows.append([label(s), fmt(col(s, p + "D_inv.median"), 4), fmt(col(s, p + "D_inv.mad"), 4),
                     fmt(col(s, p + "d.median")), fmt(col(s, p + "d.mad")), fmt(col(s, p + "D.median")),
                     int(col(s, p + "n_groups"))])
    return md_table(["setup", "D⁻¹ median", "D⁻¹ MAD", "d median", "d MAD", "D median", "plates"], rows)


def tvc_table(setups: list[Setup]) -> str:
    p = "treated_vs_control.summary.overall."
    rows = [[label(s), *(fmt(col(s, p + m)) for m in ("accuracy", "precision", "recall", "f1", "roc_auc")),
             int(col(s, p + "n"))] for s in setups]
    return md_table(["setup", "accuracy", "precision", "recall", "F1", "ROC-AUC", "cells"], rows)


def clustering_table(setups: list[Setup]) -> str:
    rows = []
    for s in setups:
        c = clustering_best(s)
        noise = None if c["noise_fraction"] is None else 100 * c["noise_fraction"]
        rows.append([label(s), fmt(c["min_cluster_size"], 0), fmt(c["silhouette"]),
                     fmt(c["calinski_harabasz"], 1), fmt(c["davies_bouldin"]), fmt(noise, 1),
                     fmt(c["n_clusters"], 0), fmt(c["ari"]), fmt(c["nmi"])])
    return md_table(["setup", "min cluster size", "silhouette", "Calinski–Harabasz", "Davies–Bouldin",
                     "noise %", "clusters", "ARI (dose)", "NMI (dose)"], rows)


def profiles_table(setups: list[Setup]) -> str:
    rows = []
    for s in setups:
        r, lab = "replicate_map.summary.", "label_map.summary."
        rows.append([label(s), fmt(col(s, r + "mean_map")), fmt(col(s, r + "fraction_retrieved")),
                     int(col(s, r + "n_profiles")), fmt(col(s, lab + "mean_map")),
                     fmt(col(s, lab + "fraction_retrieved"))])
    return md_table(["setup", "replicate mAP (vs DMSO)", "retrieved (p<0.05)", "field profiles",
                     "dose mAP (vs other doses)", "retrieved (p<0.05)"], rows)


def resources_table(setups: list[Setup]) -> str:
    rows = []
    for s in setups:
        bpe = batches_per_epoch(s)
        if s.untrained:  # no epoch to time
            per_epoch = full = None
        else:
            per_epoch = float(col(s, "time_per_epoch_s"))
            full = per_epoch / bpe * full_epoch_batches(s)
        rows.append([label(s), fmt(per_epoch, 1), fmt(bpe, 0), fmt(full, 0),
                     fmt(col(s, "wall_time_s"), 0), f"{int(col(s, 'epochs'))} of {s.summary['max_epochs']}"
                     + (" (early stop)" if s.summary.get("stopped_early") else ""),
                     fmt(col(s, "peak_tracemalloc_mb"), 1), fmt(col(s, "peak_rss_mb"), 0)])
    return md_table(["setup", "s / epoch", "batches / epoch", "s / full epoch (est.)", "training s",
                     "epochs run", "peak tracemalloc MiB", "peak RSS MiB"], rows)


# ----------------------------------------------------------------------------- findings
#: Task scores used by the findings (higher is better) and how to read them.
TASKS: dict[str, tuple[str, Callable[[Setup], float | None]]] = {
    "similarity": ("d = (D̂ − D)/D̂, 50 vs 15 µM",
                   lambda s: float(col(s, "similarity.summary.d.median"))),
    "treated vs control": ("ROC-AUC", lambda s: float(col(s, "treated_vs_control.summary.overall.roc_auc"))),
    "clustering": ("silhouette at the best size", lambda s: clustering_best(s)["silhouette"]),
    # dose mAP, not replicate mAP: treated fields vs DMSO fields is easy on one plate (mAP ≈ 1 for
    # every setup, so it cannot rank them)
    "profiles": ("dose mAP of field profiles", lambda s: float(col(s, "label_map.summary.mean_map"))),
}


def _scores(grid: list[Setup]) -> pd.DataFrame:
    return pd.DataFrame({t: [f(s) for s in grid] for t, (_, f) in TASKS.items()},
                        index=[s.name for s in grid]).astype(float)


def _ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Rank 1 = best; an undefined score ranks last."""
    return scores.fillna(-np.inf).rank(ascending=False, method="average")


def _pairwise(
    grid: list[Setup], scores: pd.DataFrame, attr: str, a: str, b: str
) -> tuple[list[list[Any]], int]:
    """Per task: wins of ``attr == a`` over its ``attr == b`` twin (same other factors), mean ranks."""
    ranks = _ranks(scores)
    by_key = {(s.method, s.augment, s.crops): s.name for s in grid}
    rows, majority = [], 0
    for task in scores.columns:
        wins = losses = ties = 0
        for s in grid:
            if getattr(s, attr) != a:
                continue
            key = {"method": s.method, "augment": s.augment, "crops": s.crops}
            key[attr] = b
            twin = by_key[(key["method"], key["augment"], key["crops"])]
            x, y = scores.at[s.name, task], scores.at[twin, task]
            x = -np.inf if np.isnan(x) else x
            y = -np.inf if np.isnan(y) else y
            wins += x > y
            losses += x < y
            ties += x == y
        names_a = [s.name for s in grid if getattr(s, attr) == a]
        names_b = [s.name for s in grid if getattr(s, attr) == b]
        majority += wins > losses
        rows.append([task, f"{wins} / {wins + losses + ties}" + (f" ({ties} tied)" if ties else ""),
                     f"{ranks.loc[names_a, task].mean():.1f}", f"{ranks.loc[names_b, task].mean():.1f}",
                     "yes" if wins > losses else ("tie" if wins == losses else "no")])
    return rows, majority


def _verdict(n_yes: int, n_tasks: int) -> str:
    if n_yes * 2 > n_tasks:
        return f"**holds** ({n_yes} of {n_tasks} tasks)"
    if n_yes * 2 == n_tasks:
        return f"**mixed** ({n_yes} of {n_tasks} tasks)"
    return f"**does not hold** ({'only ' if n_yes else ''}{n_yes} of {n_tasks} tasks)"


def findings(setups: list[Setup]) -> str:
    grid = [s for s in setups if s.grid]
    scores = _scores(grid)
    ranks = _ranks(scores)
    n_tasks = len(TASKS)
    out = ["Computed by `benchmarks/screening/run.py` from the tables above, over the study's 16 grid setups "
           "(the extra setups are left out). Task scores, higher is better: "
           + "; ".join(f"{t}: {d}" for t, (d, _) in TASKS.items())
           + ". Ranks run from 1 (best) to 16; an undefined score ranks last."]

    # 1-2: crops and augmentation
    for title, attr, a, b in (("Multi-crop vs one crop", "crops", "multi", "one"),
                              ("Random augmentation vs none", "augment", "random", "none")):
        rows, majority = _pairwise(grid, scores, attr, a, b)
        out += [f"\n**{title}** — the study: it generally helps. Here: {_verdict(majority, n_tasks)} "
                f"(a task counts when `{a}` beats its `{b}` twin — same paradigm and other factor — in "
                f"more of the 8 pairs than it loses).\n",
                md_table(["task", f"{a} wins", f"mean rank {a}", f"mean rank {b}", f"{a} better?"], rows)]

    # 3: BYOL competitive and faster
    best_rank = {p: ranks.loc[[s.name for s in grid if s.method == p]].min() for p in PARADIGMS}
    pr = pd.DataFrame(best_rank)  # task × paradigm: rank of the paradigm's best setup
    place = pr.rank(axis=1, method="min")  # 1 = the paradigm with the best setup
    comp = int((place["byol"] <= 2).sum())
    times = {s.name: float(col(s, "wall_time_s")) for s in grid}
    ratios = []
    for s in grid:
        if s.method == "byol":
            continue
        byol = next(g for g in grid if g.method == "byol" and g.augment == s.augment and g.crops == s.crops)
        ratios.append((times[s.name] / times[byol.name], s.name, byol.name))
    ratios.sort()
    r = np.array([x[0] for x in ratios])
    mean_t = {p: np.mean([times[s.name] for s in grid if s.method == p]) for p in PARADIGMS}
    byol_epochs = [f"{s.name}: {s.summary['epochs']} of {s.summary['max_epochs']}"
                   for s in grid if s.method == "byol"]
    faster = bool(np.median(r) > 1)
    out += ["\n**BYOL competitive and up to 11× faster** — competitive: "
            + _verdict(comp, n_tasks).replace(
                "tasks)", "tasks where BYOL's best setup is 1st or 2nd of the 4 paradigms' best setups)")
            + f"; faster: **{'holds' if faster else 'does not hold'}** — the other paradigms' training "
            f"time over BYOL's with the same views: median {np.median(r):.2f}×, range {r.min():.2f}× "
            f"({ratios[0][1]}) to {r.max():.2f}× ({ratios[-1][1]}). Mean training time per paradigm: "
            + ", ".join(f"{p} {mean_t[p]:.0f} s" for p in PARADIGMS)
            + f". Epochs BYOL ran (its stopping rule): {'; '.join(byol_epochs)}.\n",
            md_table(["task (place of each paradigm's best setup)", *PARADIGMS],
                     [[t, *(f"{int(place.at[t, p])} (rank {pr.at[t, p]:.0f})" for p in PARADIGMS)]
                      for t in pr.index])]

    # 4: regularized costliest
    mem = {}
    measures = (("peak_tracemalloc_mb", "peak tracemalloc MiB"), ("peak_rss_mb", "peak RSS MiB"),
                ("wall_time_s", "training time s"))
    for key, name in measures:
        m = {p: float(np.mean([float(col(s, key)) for s in grid if s.method == p])) for p in PARADIGMS}
        mem[name] = m
    lines = []
    for name, m in mem.items():
        top = max(m, key=m.get)
        lines.append([name, *(f"{m[p]:.1f}" for p in PARADIGMS), top,
                      "yes" if top == "regularized" else "no"])
    n_reg = sum(row[-1] == "yes" for row in lines)
    verdict = _verdict(n_reg, 3).replace("tasks", "measures")
    out += [f"\n**Regularized costs the most memory and compute** — {verdict} "
            "(mean over each paradigm's 4 setups; tracemalloc sees the Python heap incl. numpy, not torch "
            "tensors, as in the study; RSS is per setup because each trains in its own process).\n",
            md_table(["measure (mean)", *PARADIGMS, "highest", "regularized highest?"], lines)]

    # 5: no single setup wins every task
    best = {t: scores[t].fillna(-np.inf).idxmax() for t in scores.columns}
    one = len(set(best.values())) == 1
    mean_rank = ranks.mean(axis=1).sort_values()
    out += [f"\n**No single setup is best on every task** — **{'does not hold' if one else 'holds'}**: "
            "best per task "
            + "; ".join(f"{t}: {n}" for t, n in best.items())
            + f". Best mean rank over the tasks: {mean_rank.index[0]} ({mean_rank.iloc[0]:.1f}), then "
            f"{mean_rank.index[1]} ({mean_rank.iloc[1]:.1f}), "
            f"{mean_rank.index[2]} ({mean_rank.iloc[2]:.1f}).\n"]
    out += _against_untrained(setups, scores)
    return "\n".join(out)


def _against_untrained(setups: list[Setup], scores: pd.DataFrame) -> list[str]:
    """How many of the 16 beat the untrained encoder (``train.epochs: 0``) on each task, if it was run."""
    base = next((s for s in setups if not s.grid and s.untrained), None)
    if base is None:
        return []
    ref = _scores([base]).iloc[0]
    rows = [[t, fmt(ref[t]), f"{int((scores[t] > ref[t]).sum())} / {len(scores)}",
             fmt(scores[t].max()), fmt(scores[t].median())] for t in TASKS]
    return [f"\n**Against the untrained encoder** (`{base.name}`: the same SimpleCNN, seeded initial weights, "
            "no training) — how many of the 16 trained setups score above it on each task:\n",
            md_table(["task", "untrained", "setups above it", "best of the 16", "median of the 16"], rows) + "\n"]


# ----------------------------------------------------------------------------- the document
def machine() -> dict[str, str]:
    import torch

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "torch": torch.__version__,
            "threads": str(torch.get_num_threads()), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def rel(path: Path | str) -> str:
    """``path`` relative to the repository root when it lies inside it (RESULTS.md names no home folder)."""
    return str(path).replace(f"{ROOT}/", "")


def section(kind: str, prep: Any, bench: dict[str, Any]) -> str:
    setups = load_setups(prep)
    base = setups[0].config
    t = base["train"]
    grid_wall = sum(float(col(s, "wall_time_s")) for s in setups if s.grid)
    title = "DNA channel only" if kind == "gray" else "All three channels"
    head = (f"## {title} — `{prep.config.relative_to(ROOT)}`\n\n"
            f"Study folder `{rel(prep.out)}`; {len(setups)} setups ({sum(s.grid for s in setups)} of the study + "
            f"{sum(not s.grid for s in setups)} extra); data channels {base['data'].get('channels') or 'all'}; "
            f"{t['epochs']} epochs × {t.get('limit_train_batches') or 'all'} batch(es) of "
            f"{t['batch_size']}; "
            f"held-out plate(s) {', '.join(base['data']['split']['holdout'])}. Study wall time "
            f"{bench['wall_time_s'] / 60:.1f} min (training of the 16: {grid_wall / 60:.1f} min).\n")
    parts = [head,
             "### 1. Similarity of 50 µM and 15 µM cycloheximide (relative to DMSO)\n\n"
             "D = median Euclidean distance between the two doses' cells; D⁻¹ its inverse; "
             "d = (D̂ − D)/D̂ with D̂ the mean of their median distances to DMSO (> 0: the doses are "
             "closer to each other than to control). Per plate, then median and MAD over the held-out "
             "plates. D⁻¹ depends on each representation's scale, so compare d across paradigms.\n",
             similarity_table(setups),
             "\n### 2. Treated vs control (held-out plate)\n\nMLP on the frozen 2048-d "
             "representations of the training plates, scored on the held-out plate; ROC-AUC from "
             "probabilities, the rest at 0.5.\n",
             tvc_table(setups),
             "\n### 3. Clustering of treated cells (per plate)\n\nUMAP → HDBSCAN, min cluster size swept "
             f"{setups[0].clustering['min_cluster_sizes']}; each row is the size with the "
             "**best silhouette** per plate (median over plates); internal metrics on the UMAP "
             "coordinates of non-noise cells; "
             "ARI/NMI against dose (noise as its own cluster). 'undef.' = fewer than 2 clusters at "
             "every size.\n",
             clustering_table(setups),
             "\n### 4. Profiles (copairs mAP)\n\nMean profile per field of view (plate × well × site) "
             "on the held-out plate. Replicate mAP: each treatment's fields retrieve each other ahead of "
             "DMSO fields; dose mAP: treated fields retrieve their own dose ahead of other doses. "
             "'retrieved' = share of "
             "groups with BH-corrected permutation p < 0.05.\n", profiles_table(setups),
             "\n### 5. Time and memory (training)\n\n's / full epoch (est.)' = s / batch × the "
             "batches of one full pass over the training cells, for comparison with the 50-epoch setting.\n",
             resources_table(setups),
             "\n### Findings\n\n" + findings(setups)]
    return "\n".join(parts)


def _sessions(bench: dict[str, Any]) -> str:
    """' in 2 sessions (41.0 + 2.7 min)' when a study was resumed or extended, else ''."""
    runs = bench.get("sessions", [])
    if len(runs) < 2:
        return ""
    minutes = " + ".join(f"{r['wall_time_s'] / 60:.1f}" for r in runs)
    return f" in {len(runs)} sessions ({minutes} min)"


def write_results(preps: dict[str, Any], target: Path) -> Path:
    benches = {}
    for kind, prep in preps.items():
        path = prep.out / "benchmark.json"
        if not path.is_file():
            raise Missing(f"{path}: not found (written by this script after a run); "
                          "run without --no-run first")
        benches[kind] = json.loads(path.read_text())
    m = machine()
    cmds = "\n".join(dict.fromkeys(b["command"] for b in benches.values()))  # one line per invocation
    body = [
        "# Screening study (Dmitrenko et al., MIDL 2022) on BBBC021 cycloheximide cells — results\n",
        f"Generated by `benchmarks/screening/run.py` on {dt.date.today().isoformat()} from the study "
        "folders' `results.csv` and run directories; do not edit by hand. Setup and task definitions: "
        "`configs/studies/screening-16.yaml` (comments).\n",
        "## How it was run\n",
        "```\n" + cmds + "\n```\n",
        "Equivalent CLI per configuration: "
        + "; ".join(f"`{rel(b['cli'])}`" for b in benches.values()) + "\n",
        f"Machine: {m['nproc']} CPU cores ({m['cpu']}), torch {m['torch']} ({m['threads']} threads), "
        f"Python {m['python']}, GPU: {m['gpu']}. Wall time: "
        + ", ".join(f"{k} {b['wall_time_s'] / 60:.1f} min" + _sessions(b) for k, b in benches.items())
        + f" (started {', '.join(b['started'] for b in benches.values())}).\n",
    ]
    body += [section(kind, prep, benches[kind]) for kind, prep in preps.items()]
    text = "\n".join(body) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rgb", action="store_true", help="also run the three-channel configuration")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override for every setup (as `biorep study --set`)")
    ap.add_argument("--out-root", type=Path, default=ROOT / "runs",
                    help="study folders go to OUT_ROOT/<study name>")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="where to write RESULTS.md")
    ap.add_argument("--no-run", action="store_true", help="only regenerate RESULTS.md from finished studies")
    ap.add_argument("--no-report", action="store_true", help="skip the HTML comparison reports")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from biorep.cli.study import prepare_study, run_prepared

    kinds = ["gray", "rgb"] if args.rgb else ["gray"]
    preps = {}
    for kind in kinds:
        cfg = CONFIGS[kind]
        name = cfg.stem
        preps[kind] = prepare_study(cfg, args.sets, out=args.out_root / name)
    if not args.no_run:
        for kind, prep in preps.items():
            started = dt.datetime.now().isoformat(timespec="seconds")
            result = run_prepared(prep, report=not args.no_report, echo=lambda m: print(m, flush=True))
            cli = " ".join(["biorep study", shlex.quote(str(prep.config.relative_to(ROOT))),
                            "--out", shlex.quote(str(prep.out)),
                            *(f"--set {shlex.quote(s)}" for s in args.sets)])
            path = prep.out / "benchmark.json"
            old = json.loads(path.read_text()) if path.is_file() else {}
            sessions = [*old.get("sessions", []), {"started": started, "wall_time_s": result.wall_time_s}]
            timings = {**old.get("timings", {}), **result.timings}  # a resumed study adds to the first
            words = [str(Path(sys.argv[0])), *(argv if argv is not None else sys.argv[1:])]
            bench = {"command": " ".join(["python", *map(shlex.quote, words)]),
                     "cli": cli, "started": sessions[0]["started"], "sessions": sessions,
                     "wall_time_s": sum(x["wall_time_s"] for x in sessions), "timings": timings}
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(bench, indent=1))
            os.replace(tmp, path)
    path = write_results(preps, args.results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
