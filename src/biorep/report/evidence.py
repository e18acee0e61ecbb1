"""The answers and evidence of a report, computed from a run directory's files.

- :func:`headline`: what was trained on what, the main metric(s) with 95 % CIs (a bootstrap over
  whole cases/karyograms/plates, :func:`biorep.evaluate.stats.bootstrap_ci`, from the per-crop
  predictions in ``RUN/evaluation/classification.csv``), karyotype accuracy before/after assembly
  (``RUN/karyotype/assignments.csv``), the screening tasks, time and peak memory.
- :func:`confused_pairs`, :func:`confidence_gallery`: the most-confused class pairs and the least
  sure correct / most sure wrong crops, as rows of the predictions table; the crops themselves are
  read from the image files (:mod:`biorep.report.crops`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from biorep.report.rundir import RunRecord, is_number
from biorep.rundir import KARYOTYPE_DIR, RunPaths

__all__ = [
    "Headline",
    "Metric",
    "confidence_gallery",
    "confused_pairs",
    "evaluation_summary",
    "group_column",
    "headline",
    "predictions",
    "SCREENING_TASKS",
]

#: Evaluations that make a run a screening run (their key numbers form the task table).
SCREENING_TASKS = ("treated_vs_control", "similarity", "replicate_map", "clustering", "nsc", "label_map")
#: Columns tried (in order) as the unit a bootstrap resamples when the config names no group.
GROUP_GUESSES = ("case", "karyogram", "plate", "patient", "well")
#: Per-crop predictions table written by the classification evaluation (``EvalResult.save``).
PREDICTIONS = "classification"  # the evaluation whose per-sample table (evaluation/<name>.csv) is read
N_BOOT = 1000
#: Below this many resampled groups the interval is called rough.
MIN_GROUPS = 5


@dataclass
class Metric:
    """One headline number, with its 95 % interval when one could be computed."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    percent: bool = True
    note: str = ""

    @property
    def text(self) -> str:
        return _num(self.value, self.percent)

    @property
    def ci(self) -> str:
        return f"95 % CI {self.ci_range}" if self.ci_range else ""

    @property
    def ci_range(self) -> str:
        if self.low is None or self.high is None or not math.isfinite(self.low):
            return ""
        return f"{_num(self.low, self.percent)} – {_num(self.high, self.percent)}"


def _num(v: float | None, percent: bool) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{100 * v:.1f} %" if percent else f"{v:.3g}"


@dataclass
class Headline:
    """The block a lab reads first."""

    what: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    karyotype: list[Metric] = field(default_factory=list)
    tasks: list[Metric] = field(default_factory=list)
    resources: list[tuple[str, str]] = field(default_factory=list)
    main: Metric | None = None


def evaluation_summary(run: RunRecord, name: str) -> dict[str, Any] | None:
    """The summary of one evaluation in ``evaluation.json`` (records ``{name, summary, ...}`` or bare)."""
    rec = (run.evaluation or {}).get(name)
    if not isinstance(rec, Mapping):
        return None
    inner = rec.get("summary")
    return dict(inner) if isinstance(inner, Mapping) else dict(rec)


def _read_csv(path: Any, problems: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, dtype={"true": str, "predicted": str, "argmax": str, "assigned": str,
                                        "karyogram": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        problems.append(f"{path.name} could not be read: {exc}")
        return None


def predictions(run: RunRecord, problems: list[str] | None = None) -> pd.DataFrame | None:
    """Per-crop predictions of the run's test split (``true``, ``predicted``, ``confidence``, …)."""
    table = _read_csv(RunPaths(run.path).evaluation_result(PREDICTIONS, ".csv"), problems if problems is not None else [])
    if table is None or not {"true", "predicted", "confidence"} <= set(table.columns):
        return None
    return table[table["true"].notna()].reset_index(drop=True)


def assignments(run: RunRecord, problems: list[str] | None = None) -> pd.DataFrame | None:
    """The karyotype assembly's per-crop table, when ``biorep karyotype`` ran."""
    folder = run.path / KARYOTYPE_DIR
    if not folder.is_dir():
        return None
    from biorep.evaluate.karyotype_run import ASSIGNMENTS  # its one definition (evaluate is left of report)

    return _read_csv(folder / ASSIGNMENTS, problems if problems is not None else [])


def group_column(run: RunRecord, table: pd.DataFrame) -> str | None:
    """The unit to resample: the config's split/data group when the table has it, else a guess."""
    data = run.config.get("data") if isinstance(run.config.get("data"), Mapping) else {}
    split = data.get("split") if isinstance(data.get("split"), Mapping) else {}
    for name in (split.get("group"), data.get("group"), *GROUP_GUESSES):
        if name and name in table.columns:
            return str(name)
    return None


def _accuracy(correct: np.ndarray, groups: np.ndarray | None, label: str) -> Metric:
    from biorep.evaluate.stats import bootstrap_ci

    ci = bootstrap_ci(lambda idx: float(correct[idx].mean()), len(correct), groups=groups, n_boot=N_BOOT)
    return Metric(label, ci.value, ci.low, ci.high)


def _duration(seconds: Any) -> str:
    if not is_number(seconds):
        return "–"
    s = float(seconds)
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _mb(value: Any) -> str:
    return f"{float(value) / 1024:.2f} GiB" if is_number(value) and value >= 1024 else (
        f"{float(value):.0f} MiB" if is_number(value) else "–")


def headline(run: RunRecord, problems: list[str]) -> Headline:
    """The headline block of one run (see the module docstring)."""
    s, cfg = run.summary, run.config
    data = cfg.get("data") if isinstance(cfg.get("data"), Mapping) else {}
    model = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else {}
    mcfg = cfg.get("method") if isinstance(cfg.get("method"), Mapping) else {}
    method = s.get("method") or mcfg.get("name")
    h = Headline()
    trained = f"{method or '?'} on {s.get('backbone') or model.get('backbone') or '?'}"
    if model.get("weights"):
        trained += f" (from {model['weights']})"
    h.what.append(("trained", trained))
    what_data = str(s.get("dataset") or data.get("dataset") or "?")
    extra = [f"{s['n_images']} images" if is_number(s.get("n_images")) else "",
             f"label {data['label']}" if data.get("label") else "",
             f"grouped by {data['group']}" if data.get("group") else ""]
    h.what.append(("data", what_data + (f" ({', '.join(e for e in extra if e)})" if any(extra) else "")))
    epochs = s.get("epochs")
    if epochs is not None:
        text = f"{epochs}" + (f" of {s['max_epochs']}" if s.get("max_epochs") not in (None, epochs) else "")
        if epochs == 0:
            text += " (untrained baseline: the seeded initial weights)"
        elif s.get("stopped_early"):
            text += " (stopped early)"
        h.what.append(("epochs", text))

    table = predictions(run, problems)
    cls = evaluation_summary(run, "classification")
    if table is not None and len(table):
        group = group_column(run, table)
        correct = (table["true"].astype(str) == table["predicted"].astype(str)).to_numpy(float)
        groups = table[group].astype(str).to_numpy() if group else None
        m = _accuracy(correct, groups, "accuracy per crop")
        n_groups = len(np.unique(groups)) if group else len(table)
        m.note = (f"{len(table)} test crops" + (f", {n_groups} {group}s resampled" if group else
                                                 ", crops resampled"))
        if n_groups < MIN_GROUPS:
            m.note += f" (only {n_groups}: a rough interval)"
        h.metrics.append(m)
    elif cls and is_number(cls.get("accuracy")):
        h.metrics.append(Metric("accuracy per crop", float(cls["accuracy"]), note="no per-crop table for a CI"))
    if cls:
        for key, label in (("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro F1")):
            if is_number(cls.get(key)):
                h.metrics.append(Metric(label, float(cls[key])))
    if not h.metrics:
        for name in ("knn", "linear"):
            ev = evaluation_summary(run, name)
            if ev and is_number(ev.get("accuracy")):
                h.metrics.append(Metric(f"{name} probe accuracy", float(ev["accuracy"])))

    kar = evaluation_summary(run, "karyotype")
    crops = assignments(run, problems)
    if crops is not None and {"true", "argmax", "assigned"} <= set(crops.columns) and crops["true"].notna().any():
        known = crops[crops["true"].notna()]
        groups = known["karyogram"].astype(str).to_numpy() if "karyogram" in known else None
        for col, label in (("argmax", "before assembly (argmax)"), ("assigned", "after karyotype assembly")):
            m = _accuracy((known[col].astype(str) == known["true"].astype(str)).to_numpy(float), groups, label)
            h.karyotype.append(m)
        n_k = known["karyogram"].nunique()
        h.karyotype[-1].note = f"{len(known)} crops, {n_k} karyograms resampled" + (
            f" (only {n_k}: a rough interval)" if n_k < MIN_GROUPS else "")
    elif kar and is_number(kar.get("accuracy_assigned")):
        h.karyotype = [Metric("before assembly (argmax)", kar.get("accuracy_argmax")),
                       Metric("after karyotype assembly", kar.get("accuracy_assigned"))]
    if kar:
        h.karyotype.append(Metric("karyograms flagged", kar.get("n_flagged"), percent=False,
                                  note=f"of {kar.get('n_karyograms', '?')}; {kar.get('n_doubtful', '?')} doubtful crops"))

    for name in SCREENING_TASKS:
        ev = evaluation_summary(run, name)
        if not ev:
            continue
        for key, value in _task_numbers(ev).items():
            h.tasks.append(Metric(f"{name} {key}", value, percent=False))

    h.main = next((m for m in h.metrics), None) or next((m for m in h.tasks), None)

    r = s
    h.resources = [(label, value) for label, value in (
        ("wall time", _duration(r.get("wall_time_s"))),
        ("time per epoch", _duration(r.get("time_per_epoch_s"))),
        ("images per second", f"{float(r['images_per_s']):.0f}" if is_number(r.get("images_per_s")) else "–"),
        ("peak memory (RSS)", _mb(r.get("peak_rss_mb"))),
        ("peak GPU memory", _mb(r.get("peak_gpu_mb")) if r.get("peak_gpu_mb") is not None else "– (no GPU)"),
    ) if value != "–"]
    return h


#: Numbers of a screening task that make its headline (first match per task wins their order).
_TASK_KEYS = ("roc_auc", "mean_map", "map", "fraction_significant", "ari", "nmi", "silhouette", "accuracy",
              "separation", "ratio")


def _task_numbers(summary: Mapping[str, Any], limit: int = 3) -> dict[str, float]:
    """The few headline numbers of a screening task's summary (one level down included)."""
    flat: dict[str, float] = {}
    for k, v in summary.items():
        if is_number(v):
            flat[str(k)] = float(v)
        elif isinstance(v, Mapping):
            for k2, v2 in v.items():
                if is_number(v2):
                    flat[f"{k}.{k2}"] = float(v2)
    chosen = {k: v for k, v in flat.items() if any(k.split(".")[-1] == t or k.split(".")[-1].endswith(t)
                                                   for t in _TASK_KEYS)}
    return dict(list((chosen or {}).items())[:limit])


def confused_pairs(table: pd.DataFrame, top: int = 6) -> list[dict[str, Any]]:
    """The most frequent (true, predicted) error pairs, most frequent first.

    Each: ``true``, ``predicted``, ``n`` (errors of that pair), ``n_true`` (test crops of the true
    class) and ``rows`` (indices into ``table`` of those errors, most confident first).
    """
    wrong = table[table["true"].astype(str) != table["predicted"].astype(str)]
    if wrong.empty:
        return []
    counts = wrong.groupby(["true", "predicted"]).size().sort_values(ascending=False, kind="stable")
    n_true = table["true"].astype(str).value_counts()
    out = []
    for (t, p), n in counts.head(top).items():
        rows = wrong[(wrong["true"] == t) & (wrong["predicted"] == p)].sort_values("confidence", ascending=False)
        out.append({"true": str(t), "predicted": str(p), "n": int(n), "n_true": int(n_true.get(str(t), 0)),
                    "rows": rows.index.tolist()})
    return out


def typical(table: pd.DataFrame, cls: str) -> int | None:
    """The row of the most confidently correct crop of class ``cls`` (what ``cls`` looks like)."""
    ok = table[(table["true"].astype(str) == cls) & (table["predicted"].astype(str) == cls)]
    return None if ok.empty else int(ok["confidence"].idxmax())


def confidence_gallery(table: pd.DataFrame, n: int = 8) -> tuple[list[int], list[int]]:
    """Rows of the ``n`` least confident correct crops and the ``n`` most confident wrong ones."""
    correct = table["true"].astype(str) == table["predicted"].astype(str)
    low = table[correct].sort_values("confidence", kind="stable").head(n).index.tolist()
    high = table[~correct].sort_values("confidence", ascending=False, kind="stable").head(n).index.tolist()
    return low, high
