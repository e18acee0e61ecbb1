"""One self-contained HTML report for one run or a comparison of several runs (jinja2 templates).

The page answers first and shows the evidence after: per run a headline block (what was trained on
what, the main metrics with 95 % CIs, karyotype accuracy before/after assembly, screening tasks
against the study's untrained/classical baselines, time and peak memory), then the evidence (recall
per class, the most-confused class pairs with their crops, the least sure correct and most sure wrong
crops, karyograms with doubtful assignments marked, the embedding map, learning curves), and the raw
numbers folded at the end. A comparison leads with one ranked table.

Figures and crops are PNGs embedded as base64 data URIs, the CSS is inline (with print rules) and the
only script is a tiny inline one that records whether every image decoded
(``<body data-images-ok="true">``), so the file opens offline anywhere and can be mailed as is. The
HTML lives in ``templates/report.html.j2``; this module builds the page's data. Evaluation results
are laid out generically: scalars and dicts of scalars become tables, lists of records become tables,
a ``confusion_matrix`` (with ``classes``) becomes a heatmap and nested results become sub-sections.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from biorep.errors import RunDirError, short_list
from biorep.report import evidence, figures
from biorep.report.crops import crop_png, data_uri, load_crop, source_files
from biorep.report.projection import PROJECTIONS, Projection, project_file
from biorep.report.rundir import RunRecord, is_number, read_run, unique_names
from biorep.report.templating import render
from biorep.rundir import REPORT, atomic_write_text

__all__ = ["key_metrics", "render_report", "write_report"]

#: Summary keys shown under "Time and memory" (in this order) and their labels.
RESOURCE_KEYS: dict[str, str] = {
    "wall_time_s": "wall time (s)",
    "time_per_epoch_s": "time per epoch (s)",
    "images_per_s": "images per second",
    "peak_rss_mb": "peak RSS (MB)",
    "peak_tracemalloc_mb": "peak Python heap, tracemalloc (MB)",
    "peak_gpu_mb": "peak GPU memory (MB)",
}
#: Rows of the comparison table taken from summary.json, before and after the evaluation metrics.
COMPARISON_HEAD = ("method", "backbone", "epochs")
COMPARISON_TAIL = ("wall_time_s", "time_per_epoch_s", "peak_rss_mb", "peak_gpu_mb")
#: Metric names (substrings) where higher is better: the best run is shown in bold.
HIGHER_IS_BETTER = ("acc", "f1", "auroc", "auc", "precision", "recall", "map", "silhouette", "top")
MAX_GALLERY_PER_RUN = 24
MAX_TABLE_ROWS = 200
#: Dicts of scalars with at most this many entries (and not named ``per_...``) are shown side by side.
SMALL_DICT = 12
MAX_IMAGE_BYTES = 8 * 1024 * 1024
#: Confused pairs shown, crops per pair, crops per confidence gallery.
TOP_PAIRS = 6
CROPS_PER_PAIR = 4
GALLERY_CROPS = 8
#: Metadata columns an embedding map of a screening run is coloured by (first present wins).
TREATMENT_COLUMNS = ("compound", "treatment", "treated", "perturbation")
#: Setup names (substrings) of a study's baselines that a screening run's task table compares against.
BASELINE_WORDS = ("untrained", "classical")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Marks the body once every image has decoded; headless browsers (and tests) read it back.
IMAGES_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (im) { return im.complete && im.naturalWidth > 0; });
  document.body.dataset.imagesOk = ok ? "true" : "false";
  document.body.dataset.imagesTotal = String(imgs.length);
});
"""


# --------------------------------------------------------------------------------------- helpers
def fmt(value: Any) -> str:
    """Format a value for a table cell: floats to 4 significant digits, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if abs(value) >= 1000:
            return f"{value:,.0f}" if abs(value) < 1e9 else f"{value:.3e}"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def _cell(value: Any, extra_class: str = "") -> dict[str, str]:
    classes = " ".join(c for c in ("num" if is_number(value) else "", extra_class) if c)
    return {"text": fmt(value), "cls": classes}


def _figure(png: bytes, alt: str, caption: str | None = None) -> dict[str, Any]:
    return {"t": "figure", "src": data_uri(png), "alt": alt, "caption": caption}


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _is_scalar_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(_is_scalar(v) for v in value.values())


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, Mapping) for r in value)


def _is_matrix(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(r, list) for r in value)
        and all(_is_scalar(v) for r in value for v in r)
    )


def _kv(items: Iterable[tuple[str, Any]], header: tuple[str, str] | None = None) -> dict[str, Any]:
    return {"t": "kv", "header": header, "rows": [(str(k), _cell(v)) for k, v in items]}


def _frame(df: pd.DataFrame, *, index: bool = True, best: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A table node of ``df``; ``best`` marks one column per row (row label → column)."""
    note = None
    if len(df) > MAX_TABLE_ROWS:
        note = f"first {MAX_TABLE_ROWS} of {len(df)} rows shown"
        df = df.head(MAX_TABLE_ROWS)
    rows = []
    for label, row in df.iterrows():
        cells = [
            _cell(None if _is_missing(v) else _native(v),
                  "best" if best and best.get(str(label)) == str(col) else "")
            for col, v in row.items()
        ]
        rows.append({"label": str(label) if index else None, "cells": cells})
    return {"t": "table", "index": index, "columns": [str(c) for c in df.columns], "rows": rows, "note": note}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _native(value: Any) -> Any:
    """numpy / pandas scalars → Python scalars (so formatting and number checks work)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _safe_figure(problems: list[str], what: str, draw: Callable[[], bytes]) -> bytes | None:
    try:
        return draw()
    except (ValueError, TypeError, RunDirError) as exc:
        problems.append(f"{what}: {exc}")
        return None


# ------------------------------------------------------------------------------------ evaluation
def key_metrics(evaluation: Mapping[str, Any] | None) -> dict[str, float]:
    """Headline numbers of an ``evaluation.json``: numeric scalars one and two levels down.

    ``{"probe": {"accuracy": .9, "knn": {"accuracy": .8, "per_class_recall": {...}}}}`` gives
    ``{"probe.accuracy": .9, "probe.knn.accuracy": .8}``; per-class dicts (names starting with
    ``per_`` or more than 12 entries) and matrices are left out. A top-level number stays as it is.

    Example:
        >>> key_metrics({"probe": {"accuracy": 0.9, "knn": {"macro_f1": 0.8}}})
        {'probe.accuracy': 0.9, 'probe.knn.macro_f1': 0.8}
    """
    out: dict[str, float] = {}
    for name, result in (evaluation or {}).items():
        if isinstance(result, Mapping) and isinstance(result.get("summary"), Mapping):
            # an evaluation record ({"name", "summary", "split", "n", ...}): its numbers are the summary's
            result = {k: v for k, v in result["summary"].items() if _is_headline(k, v)}
        if is_number(result):
            out[str(name)] = float(result)
        if not isinstance(result, Mapping):
            continue
        for key, value in result.items():
            if is_number(value):
                out[f"{name}.{key}"] = float(value)
            elif (_is_scalar_dict(value) and not str(key).startswith("per_") and len(value) <= 12) or (
                isinstance(value, Mapping) and not _is_scalar_dict(value)
            ):
                for sub, leaf in value.items():
                    if is_number(leaf):
                        out[f"{name}.{key}.{sub}"] = float(leaf)
    return out


#: Settings that evaluations echo in their summaries: shown in the evaluation's own table, not as metrics.
_SETTINGS = frozenset({"k", "temperature", "expected_count", "max_cost_per_crop", "doubt_threshold", "threshold"})


def _is_headline(key: str, value: Any) -> bool:
    """A summary entry worth a headline: a real-valued metric, not a count or an echoed setting."""
    if isinstance(value, bool) or (isinstance(value, int) and not isinstance(value, float)):
        return False
    return str(key) not in _SETTINGS


class _EvaluationRenderer:
    """Turns one evaluation result (any JSON) into template nodes, drawing confusion matrices as it goes."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def render(self, value: Any, level: int, where: str) -> list[dict[str, Any]]:
        if isinstance(value, Mapping):
            return self._mapping(value, level, where) if value else [{"t": "p", "text": "(empty)", "cls": "note"}]
        if _is_records(value):
            return [_frame(pd.DataFrame(value), index=False)]
        if _is_matrix(value):
            return [_frame(pd.DataFrame(value))]
        if isinstance(value, list):
            return [_frame(pd.DataFrame({"value": value}), index=False)]
        return [{"t": "p", "text": fmt(value), "cls": ""}]

    def _mapping(self, result: Mapping[str, Any], level: int, where: str) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        consumed: set[str] = set()
        cm = result.get("confusion_matrix")
        cm_png = None
        if _is_matrix(cm):
            classes = result.get("classes")
            if not (isinstance(classes, list) and len(classes) == len(cm)):
                classes = None
            else:
                consumed.add("classes")
            consumed.add("confusion_matrix")
            cm_png = _safe_figure(
                self.problems, f"{where} confusion matrix",
                lambda: figures.confusion_matrix(cm, classes, title=where),
            )
        scalars = [(k, v) for k, v in result.items() if k not in consumed and _is_scalar(v)]
        lists = [
            (k, v) for k, v in result.items()
            if k not in consumed and isinstance(v, list) and v and all(_is_scalar(x) for x in v)
        ]
        if scalars or lists:
            parts.append(_kv(scalars + [(k, short_list(v, 40, fmt)) for k, v in lists], header=("metric", "value")))
        if cm_png is not None:
            parts.append({"t": "heading", "level": min(level, 6), "text": "confusion matrix"})
            parts.append(_figure(cm_png, f"confusion matrix: {where}",
                                 "rows: true class, columns: predicted class, normalised per true class"))
        groups: dict[tuple[str, ...], list[str]] = {}
        for key, value in result.items():
            if key not in consumed and _is_scalar_dict(value):
                small = len(value) <= SMALL_DICT and not str(key).startswith("per_")
                groups.setdefault(("<small>",) if small else tuple(map(str, value)), []).append(key)
        for names in groups.values():
            rows: list[str] = []
            for n in names:
                rows += [str(k) for k in result[n] if str(k) not in rows]
            frame = pd.DataFrame({n: [result[n].get(k) for k in rows] for n in names}, index=rows, dtype=object)
            label = ", ".join(names)
            if len(rows) > 12:
                parts.append({"t": "details", "summary": f"{label} ({len(rows)} rows)", "children": [_frame(frame)]})
            else:
                parts.append({"t": "heading", "level": min(level, 6), "text": label})
                parts.append(_frame(frame))
        for key, value in result.items():
            if key in consumed or _is_scalar(value) or _is_scalar_dict(value):
                continue
            if isinstance(value, list) and all(_is_scalar(x) for x in value):
                continue
            heading = {"t": "heading", "level": min(level, 6), "text": str(key)}
            inner = self.render(value, level + 1, f"{where} / {key}")
            if isinstance(value, Mapping):
                parts.append({"t": "section", "cls": "sub", "children": [heading, *inner]})
            else:
                parts += [heading, *inner]
        return parts


# ------------------------------------------------------------------------------------ crops
class _Crops:
    """Crop thumbnails of one run, read from its image files (sample_index → file)."""

    def __init__(self, run: RunRecord, problems: list[str]) -> None:
        self.run, self.problems = run, problems
        self._files: list[str] | None | bool = False
        self.failed: dict[str, str] = {}

    def note(self) -> None:
        """One note for every crop that could not be read."""
        if self.failed:
            first = next(iter(self.failed.values()))
            self.problems.append(f"{len(self.failed)} crop image(s) could not be read and are left out "
                                 f"(first: {first})")

    def files(self) -> list[str] | None:
        if self._files is False:
            files, why = source_files(self.run.config.get("data"))
            if why:
                self.problems.append(f"crops not shown: {why}")
            self._files = files
        return self._files  # type: ignore[return-value]

    def card(self, row: pd.Series, caption: str) -> dict[str, Any] | None:
        files = self.files()
        file = row.get("file") if isinstance(row.get("file"), str) else None
        if file is None and files is not None and "sample_index" in row and 0 <= int(row["sample_index"]) < len(files):
            file = files[int(row["sample_index"])]
        if file is None:
            return None
        img, why = load_crop(file)
        if img is None:
            self.failed[str(file)] = str(why)
            return None
        return {"src": data_uri(crop_png(img, max_side=128)), "alt": str(row.get("path", file)),
                "caption": caption, "title": str(row.get("path", file))}


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %"


def _confusion_evidence(run: RunRecord, table: pd.DataFrame, crops: _Crops) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for pair in evidence.confused_pairs(table, TOP_PAIRS):
        wrong = [crops.card(table.loc[i], f"p = {table.loc[i, 'confidence']:.2f}")
                 for i in pair["rows"][:CROPS_PER_PAIR]]
        refs = []
        for cls in (pair["true"], pair["predicted"]):
            i = evidence.typical(table, cls)
            refs.append(None if i is None else crops.card(table.loc[i], f"a typical {cls}"))
        out.append({**{k: pair[k] for k in ("true", "predicted", "n", "n_true")},
                    "share": _pct(pair["n"] / pair["n_true"]) if pair["n_true"] else "",
                    "wrong": [c for c in wrong if c], "ref_true": refs[0], "ref_pred": refs[1]})
    return out


def _gallery_cards(table: pd.DataFrame, rows: list[int], crops: _Crops) -> list[dict[str, Any]]:
    cards = []
    for i in rows:
        r = table.loc[i]
        verdict = r["true"] if r["true"] == r["predicted"] else f"{r['true']} → {r['predicted']}"
        card = crops.card(r, f"{verdict} · p = {r['confidence']:.2f}")
        if card:
            cards.append(card)
    return cards


# ------------------------------------------------------------------------------------ run section
class _Projections:
    """Projects each run's embedding file once and remembers the result for every figure."""

    def __init__(self, method: str, max_points: int) -> None:
        self.method, self.max_points = method, max_points
        self._cache: dict[tuple[Path, str], Projection | str] = {}

    def get(self, run: RunRecord, split: str) -> Projection | str:
        """The projection, or a message saying why there is none."""
        key = (run.path, split)
        if key not in self._cache:
            try:
                self._cache[key] = project_file(
                    run.embeddings[split], label=_colour_column(run), method=self.method,
                    max_points=self.max_points,
                )
            except (RunDirError, ValueError) as exc:
                self._cache[key] = f"embedding map of {split}: {exc}"
        return self._cache[key]


def _is_screening(run: RunRecord) -> bool:
    return any(evidence.evaluation_summary(run, t) for t in evidence.SCREENING_TASKS)


def _colour_column(run: RunRecord) -> str | None:
    """Screening runs are coloured by treatment (when the embeddings have such a column)."""
    if _is_screening(run) and run.embedding_split() is not None:
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(run.embeddings[run.embedding_split()]).names
        except Exception:  # an unreadable file is reported by the projection itself
            names = []
        found = next((c for c in TREATMENT_COLUMNS if c in names), None)
        if found:
            return found
    return run.label_column


def _baselines(run: RunRecord) -> list[RunRecord]:
    """The untrained / classical baseline runs beside ``run`` in its study (``STUDY/runs/<setup>``)."""
    out = []
    parent = run.path.resolve().parent
    for sib in sorted(parent.iterdir()) if parent.is_dir() else []:
        if sib.resolve() == run.path.resolve() or not any(w in sib.name.lower() for w in BASELINE_WORDS):
            continue
        try:
            out.append(read_run(sib))
        except RunDirError:
            continue
    return out


def _task_table(run: RunRecord, h: evidence.Headline, problems: list[str]) -> dict[str, Any] | None:
    if not h.tasks:
        return None
    base = [b for b in _baselines(run)]
    columns = [run.name] + [b.name for b in base]
    base_tasks = [{m.label: m.value for m in evidence.headline(b, []).tasks} for b in base]
    rows = {m.label: [m.value] + [bt.get(m.label) for bt in base_tasks] for m in h.tasks}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns, dtype=object)
    return _frame(frame, best=_best_cells(frame))


def _section_id(index: int) -> str:
    return f"run-{index + 1}"


def _run_section(run: RunRecord, index: int, projections: _Projections) -> dict[str, Any]:
    problems = list(run.problems)
    h = evidence.headline(run, problems)
    crops = _Crops(run, problems)
    ev: dict[str, Any] = {"recall": None, "pairs": [], "low_correct": [], "high_wrong": [], "karyograms": [],
                          "tasks": _task_table(run, h, problems), "map": None, "curves": None, "cm": None}
    cls = evidence.evaluation_summary(run, "classification")
    if cls and isinstance(cls.get("per_class_recall"), Mapping):
        png = _safe_figure(problems, "recall per class", lambda: figures.per_class_recall(cls["per_class_recall"]))
        if png:
            n = f", {cls['n']} crops" if is_number(cls.get("n")) else ""
            ev["recall"] = _figure(png, f"recall per class of {run.name}",
                                   f"test split{n}; orange bars: below the mean recall")
    table = evidence.predictions(run, problems)
    if table is not None and len(table):
        ev["pairs"] = _confusion_evidence(run, table, crops)
        low, high = evidence.confidence_gallery(table, GALLERY_CROPS)
        ev["low_correct"] = _gallery_cards(table, low, crops)
        ev["high_wrong"] = _gallery_cards(table, high, crops)
        crops.note()
    elif cls:
        problems.append("no per-crop predictions (evaluation/classification.csv): run `biorep evaluate` "
                        "for the confused pairs and crop galleries")

    gallery_figs = []
    by_folder: dict[str, int] = {}
    for path in run.images:
        folder = path.parent.name
        by_folder[folder] = by_folder.get(folder, 0) + 1
        if by_folder[folder] > MAX_GALLERY_PER_RUN:
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if not data.startswith(_PNG_MAGIC) or len(data) > MAX_IMAGE_BYTES:
            problems.append(f"{path.relative_to(run.path)}: not a PNG or larger than "
                            f"{MAX_IMAGE_BYTES // 2**20} MB; left out")
            continue
        rel = path.relative_to(run.path).as_posix()
        gallery_figs.append(_figure(data, rel, rel))
    for folder, count in by_folder.items():
        if count > MAX_GALLERY_PER_RUN:
            problems.append(f"{folder}/: {count} images, the first {MAX_GALLERY_PER_RUN} are shown")
    ev["karyograms"] = [f for f in gallery_figs if f["alt"].startswith("karyotype/")]
    other_figs = [f for f in gallery_figs if not f["alt"].startswith("karyotype/")]

    split = run.embedding_split()
    if split is not None:
        proj = projections.get(run, split)
        if isinstance(proj, str):
            problems.append(proj)
        else:
            png = _safe_figure(problems, "embedding map", lambda: figures.embedding_map(
                proj.coords, proj.labels, title=f"{run.name}: {split}", label_name=proj.label_name,
                axis_name=proj.method))
            if png is not None:
                caption = (f"{proj.method} of embeddings/{split}.parquet, {len(proj.coords)} of {proj.n_total} "
                           f"points, coloured by {proj.label_name or '(no label column)'}")
                ev["map"] = _figure(png, f"embedding map of {run.name}", caption)
    if run.metrics is not None:
        png = _safe_figure(problems, "learning curves", lambda: figures.learning_curves(run.metrics, title=run.name))
        if png is not None:
            ev["curves"] = _figure(png, f"learning curves of {run.name}", "metrics.csv, per epoch")

    raw: list[dict[str, Any]] = []
    overview = [(k, v) for k, v in run.summary.items() if k not in RESOURCE_KEYS and _is_scalar(v)]
    raw += [{"t": "heading", "level": 4, "text": "Overview"}, _kv(overview)]
    headline_numbers = key_metrics(run.evaluation)
    if headline_numbers:
        raw += [{"t": "heading", "level": 4, "text": "Key metrics"},
                _kv(headline_numbers.items(), header=("metric", "value"))]
    resources = [(label, "– (no GPU)" if k == "peak_gpu_mb" and run.summary[k] is None else run.summary[k])
                 for k, label in RESOURCE_KEYS.items() if k in run.summary]
    raw.append({"t": "heading", "level": 4, "text": "Time and memory"})
    raw.append(_kv(resources) if resources else
               {"t": "p", "cls": "note", "text": "summary.json has no timing or memory figures"})
    renderer = _EvaluationRenderer(problems)
    for key, value in run.summary.items():
        if isinstance(value, (Mapping, list)):
            raw += [{"t": "heading", "level": 4, "text": str(key)}, *renderer.render(value, 5, f"{run.name} / {key}")]
    if run.evaluation:
        raw.append({"t": "heading", "level": 4, "text": "Evaluation"})
        for name, result in run.evaluation.items():
            raw.append({"t": "section", "cls": "sub evaluation", "children": [
                {"t": "heading", "level": 5, "text": str(name)}, *renderer.render(result, 6, f"{run.name} / {name}")]})
    if other_figs:
        raw += [{"t": "heading", "level": 4, "text": "Gallery"}, {"t": "gallery", "children": other_figs}]
    return {"id": _section_id(index), "name": run.name, "path": str(run.path), "headline": h, "ev": ev,
            "raw": raw, "config_text": run.config_text, "problems": problems}


# ------------------------------------------------------------------------------------ comparison
def comparison_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Rows = method, backbone, epochs, key metrics, time and memory; columns = runs."""
    metrics = [key_metrics(r.evaluation) for r in runs]
    metric_names: list[str] = []
    for m in metrics:
        metric_names += [k for k in m if k not in metric_names]
    rows: dict[str, list[Any]] = {}
    for key in COMPARISON_HEAD:
        rows[key] = [r.summary.get(key) for r in runs]
    for key in metric_names:
        rows[key] = [m.get(key) for m in metrics]
    for key in COMPARISON_TAIL:
        if any(key in r.summary for r in runs):
            rows[RESOURCE_KEYS.get(key, key)] = [r.summary.get(key) for r in runs]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[r.name for r in runs], dtype=object)


def _best_cells(table: pd.DataFrame) -> dict[str, str]:
    best = {}
    for label, row in table.iterrows():
        if not any(word in str(label).lower() for word in HIGHER_IS_BETTER) or "loss" in str(label).lower():
            continue
        numbers = {col: v for col, v in row.items() if is_number(v)}
        if len(numbers) > 1 and len(set(numbers.values())) > 1:
            best[str(label)] = str(max(numbers, key=numbers.get))
    return best


def ranked_table(runs: list[RunRecord], sections: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per run, best main metric first: the table a comparison leads with."""
    rows = []
    for run, sec in zip(runs, sections):
        h: evidence.Headline = sec["headline"]
        after = next((m for m in h.karyotype if m.label.startswith("after")), None)
        rows.append({
            "run": run.name, "anchor": sec["id"],
            "method": str(run.summary.get("method") or "–"), "backbone": str(run.summary.get("backbone") or "–"),
            "main": h.main, "after": after,
            "time": next((v for k, v in h.resources if k == "wall time"), "–"),
            "memory": next((v for k, v in h.resources if k == "peak memory (RSS)"), "–"),
            "_key": h.main.value if h.main is not None and h.main.value is not None else -math.inf,
        })
    rows.sort(key=lambda r: -r["_key"])
    label = next((r["main"].label for r in rows if r["main"] is not None), "main metric")
    return {"rows": rows, "label": label, "has_after": any(r["after"] for r in rows)}


def _comparison(runs: list[RunRecord], sections: list[dict[str, Any]], projections: _Projections) -> dict[str, Any]:
    problems: list[str] = []
    table = comparison_table(runs)
    out: dict[str, Any] = {"ranked": ranked_table(runs, sections), "table": _frame(table, best=_best_cells(table)),
                           "bars": None, "maps": None, "problems": problems}
    numeric_rows = [k for k in table.index if k not in COMPARISON_HEAD]
    bars = table.loc[numeric_rows].T if numeric_rows else pd.DataFrame()
    if not bars.empty:
        png = _safe_figure(problems, "comparison chart", lambda: figures.comparison_bars(bars))
        if png is not None:
            out["bars"] = _figure(png, "comparison bar chart", "one panel per metric, one bar per run")
    common = next((s for s in ("test", "val", "train") if all(s in r.embeddings for r in runs)), None)
    panels = []
    for run in runs:
        split = common or run.embedding_split()
        if split is None:
            continue
        proj = projections.get(run, split)
        if isinstance(proj, Projection):
            panels.append((f"{run.name} ({split})", proj.coords, proj.labels, proj))
    if len(panels) > 1:
        methods = sorted({p[3].method for p in panels})
        labels = sorted({p[3].label_name or "" for p in panels} - {""})
        png = _safe_figure(problems, "embedding maps", lambda: figures.embedding_maps(
            [p[:3] for p in panels], label_name=", ".join(labels) or None, axis_name="/".join(methods)))
        if png is not None:
            out["maps"] = _figure(png, "embedding maps side by side",
                                  f"{'/'.join(methods)} per run; the same colour is the same label in every panel")
    return out


# ------------------------------------------------------------------------------------ document
def render_report(
    runs: list[RunRecord], title: str | None = None, *, projection: str = "auto", max_points: int = 5000
) -> str:
    """The report's HTML text for already-read runs (see :func:`write_report`)."""
    if not runs:
        raise RunDirError("no run directories given")
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}")
    from biorep import __version__

    if title is None:
        title = (f"biorep report: {runs[0].name}" if len(runs) == 1
                 else "biorep comparison: " + " vs ".join(r.name for r in runs))
    projections = _Projections(projection, max_points)
    sections = [_run_section(run, i, projections) for i, run in enumerate(runs)]
    comparison = _comparison(runs, sections, projections) if len(runs) > 1 else None
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return render("report.html.j2", title=title, runs=sections, comparison=comparison, stamp=stamp,
                  version=__version__, n_runs=len(runs), images_script=IMAGES_CHECK_SCRIPT)


def write_report(
    run_dirs: list[Path] | list[str],
    out: Path | str,
    title: str | None = None,
    *,
    overwrite: bool = False,
    projection: str = "auto",
    max_points: int = 5000,
) -> Path:
    """Write one self-contained HTML report for one or several run directories.

    One run: the headline block (what, main metrics with CIs, karyotype before/after, screening tasks,
    time and memory), the evidence (recall per class, confused pairs with crops, confidence galleries,
    karyograms, embedding map, learning curves) and the raw numbers and config folded at the end.
    Several runs: a ranked table first, then the comparison table, bar chart and side-by-side maps,
    then one section per run.

    Args:
        run_dirs: run directories (each needs ``summary.json`` and ``config.yaml``).
        out: the HTML file to write (its folder is created).
        title: page title; default names the run(s).
        overwrite: replace an existing ``out``.
        projection: embedding maps by ``auto`` (UMAP, PCA below 15 points), ``umap`` or ``pca``.
        max_points: embedding points drawn per map at most (random subsample, fixed seed).

    Returns:
        The path of the written report.

    Raises:
        RunDirError: for a missing run directory or ``summary.json``, or an existing ``out``
            without ``overwrite``.

    Example:
        >>> write_report([Path("runs/ce"), Path("runs/supcon")], Path("ce-vs-supcon.html"))  # doctest: +SKIP
        PosixPath('ce-vs-supcon.html')
    """
    out = Path(out)
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise RunDirError("no run directories given")
    runs = [read_run(p, name) for p, name in zip(paths, unique_names(paths))]
    if out.is_dir():
        raise RunDirError(f"report path {out} is a directory; give a file name such as {out / REPORT}")
    if out.exists() and not overwrite:
        raise RunDirError(f"report {out} already exists; pass overwrite=True (--overwrite) to replace it")
    text = render_report(runs, title, projection=projection, max_points=max_points)
    return atomic_write_text(out, text)
