"""One self-contained HTML report for one run or a comparison of several runs.

Figures are PNGs embedded as base64 data URIs, the CSS is inline and the only script is a tiny inline
one that records whether every image decoded (``<body data-images-ok="true">``), so the file opens
offline anywhere and can be mailed as is. Evaluation results are rendered generically: scalars and
dicts of scalars become tables, lists of records become tables, a ``confusion_matrix`` (with
``classes``) becomes a heatmap and nested results become sub-sections.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from biorep.errors import RunDirError
from biorep.report import figures
from biorep.report.projection import PROJECTIONS, Projection, project_file
from biorep.report.rundir import RunRecord, is_number, read_run, unique_names

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
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg-alt:#f6f8fa; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 1400px; line-height: 1.45; }
h1 { font-size: 1.7rem; margin: 0 0 .3rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid var(--line); padding-bottom: .25rem; margin-top: 2.2rem; }
h3 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; color: var(--accent); }
h4, h5, h6 { font-size: 1rem; margin: 1.1rem 0 .4rem; }
.meta, .path, .note { color: var(--muted); font-size: .9rem; }
.path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
nav ul { margin: .3rem 0; padding-left: 1.2rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid var(--line); padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: var(--bg-alt); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; background: #e6f4ea; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: .6rem 0 1.2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .2rem; }
.gallery { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.gallery figure { flex: 0 1 auto; max-width: 100%; }
section.sub { border-left: 3px solid var(--line); padding-left: 1rem; margin-left: .2rem; }
details { margin: .4rem 0 1rem; }
summary { cursor: pointer; color: var(--accent); }
pre { background: var(--bg-alt); padding: .8rem; overflow-x: auto; font-size: .82rem; border-radius: 4px; }
.problems li { color: #9a3412; }
footer { margin-top: 3rem; color: var(--muted); font-size: .8rem; }
"""

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
def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


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


def _cell(value: Any, extra_class: str = "") -> str:
    classes = " ".join(c for c in ("num" if is_number(value) else "", extra_class) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{_e(fmt(value))}</td>"


def _img(png: bytes, alt: str, caption: str | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">{cap}</figure>'


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


def _kv_table(items: Iterable[tuple[str, Any]], header: tuple[str, str] | None = None) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th>{_cell(v)}</tr>" for k, v in items)
    head = f"<tr><th>{_e(header[0])}</th><th>{_e(header[1])}</th></tr>" if header else ""
    return f'<table class="kv">{head}{rows}</table>'


def _frame_table(df: pd.DataFrame, *, index: bool = True, best: Mapping[str, str] | None = None) -> str:
    """An escaped HTML table of ``df``; ``best`` marks one column per row (row label → column)."""
    note = ""
    if len(df) > MAX_TABLE_ROWS:
        note = f'<p class="note">first {MAX_TABLE_ROWS} of {len(df)} rows shown</p>'
        df = df.head(MAX_TABLE_ROWS)
    head = ("<th></th>" if index else "") + "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = []
    for label, row in df.iterrows():
        cells = "".join(
            _cell(
                None if _is_missing(v) else _native(v),
                "best" if best and best.get(str(label)) == str(col) else "",
            )
            for col, v in row.items()
        )
        body.append(f"<tr>{f'<th>{_e(label)}</th>' if index else ''}{cells}</tr>")
    return f'{note}<div class="scroll"><table class="data"><tr>{head}</tr>{"".join(body)}</table></div>'


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
    """Turns one evaluation result (any JSON) into HTML, drawing confusion matrices as it goes."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def render(self, value: Any, level: int, where: str) -> str:
        if isinstance(value, Mapping):
            return self._mapping(value, level, where) if value else '<p class="note">(empty)</p>'
        if _is_records(value):
            return _frame_table(pd.DataFrame(value), index=False)
        if _is_matrix(value):
            return _frame_table(pd.DataFrame(value))
        if isinstance(value, list):
            return _frame_table(pd.DataFrame({"value": value}), index=False)
        return f"<p>{_e(fmt(value))}</p>"

    def _mapping(self, result: Mapping[str, Any], level: int, where: str) -> str:
        parts: list[str] = []
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
                self.problems,
                f"{where} confusion matrix",
                lambda: figures.confusion_matrix(cm, classes, title=where),
            )

        scalars = [(k, v) for k, v in result.items() if k not in consumed and _is_scalar(v)]
        lists = [
            (k, v)
            for k, v in result.items()
            if k not in consumed and isinstance(v, list) and v and all(_is_scalar(x) for x in v)
        ]
        if scalars or lists:
            rows = scalars + [(k, _short_list(v)) for k, v in lists]
            parts.append(_kv_table(rows, header=("metric", "value")))
        if cm_png is not None:
            parts.append(f"<h{min(level, 6)}>confusion matrix</h{min(level, 6)}>")
            parts.append(
                _img(
                    cm_png,
                    f"confusion matrix: {where}",
                    "rows: true class, columns: predicted class, normalised per true class",
                )
            )

        # Dicts of scalars: small ones (knn, linear, ...) side by side in one table; large ones sharing
        # the same keys (per_class_recall, per_class_precision, ...) in one table each.
        groups: dict[tuple[str, ...], list[str]] = {}
        for key, value in result.items():
            if key not in consumed and _is_scalar_dict(value):
                small = len(value) <= SMALL_DICT and not str(key).startswith("per_")
                groups.setdefault(("<small>",) if small else tuple(map(str, value)), []).append(key)
        for names in groups.values():
            rows: list[str] = []
            for n in names:
                rows += [str(k) for k in result[n] if str(k) not in rows]
            frame = pd.DataFrame(
                {n: [result[n].get(k) for k in rows] for n in names}, index=rows, dtype=object
            )
            table = _frame_table(frame)
            label = _e(", ".join(names))
            if len(rows) > 12:
                parts.append(f"<details><summary>{label} ({len(rows)} rows)</summary>{table}</details>")
            else:
                parts.append(f"<h{min(level, 6)}>{label}</h{min(level, 6)}>{table}")
        for key, value in result.items():
            if key in consumed or _is_scalar(value) or _is_scalar_dict(value):
                continue
            if isinstance(value, list) and all(_is_scalar(x) for x in value):
                continue
            heading = f"<h{min(level, 6)}>{_e(key)}</h{min(level, 6)}>"
            if isinstance(value, Mapping):
                inner = self.render(value, level + 1, f"{where} / {key}")
                parts.append(f'<section class="sub">{heading}{inner}</section>')
            else:
                parts.append(heading + self.render(value, level + 1, f"{where} / {key}"))
        return "".join(parts)


def _short_list(values: list[Any], limit: int = 40) -> str:
    text = ", ".join(fmt(v) for v in values[:limit])
    return text + (f", … ({len(values)} in all)" if len(values) > limit else "")


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
                    run.embeddings[split],
                    label=run.label_column,
                    method=self.method,
                    max_points=self.max_points,
                )
            except (RunDirError, ValueError) as exc:
                self._cache[key] = f"embedding map of {split}: {exc}"
        return self._cache[key]


def _section_id(index: int) -> str:
    return f"run-{index + 1}"


def _run_section(run: RunRecord, index: int, projections: _Projections) -> str:
    problems = list(run.problems)
    out = [
        f'<section class="run" id="{_section_id(index)}">',
        f"<h2>Run: {_e(run.name)}</h2>",
        f'<p class="path">{_e(run.path)}</p>',
    ]

    overview = [(k, v) for k, v in run.summary.items() if k not in RESOURCE_KEYS and _is_scalar(v)]
    out.append("<h3>Overview</h3>" + _kv_table(overview))
    headline = key_metrics(run.evaluation)
    if headline:
        out.append("<h4>Key metrics</h4>" + _kv_table(headline.items(), header=("metric", "value")))

    resources = [
        (label, "– (no GPU)" if k == "peak_gpu_mb" and run.summary[k] is None else run.summary[k])
        for k, label in RESOURCE_KEYS.items()
        if k in run.summary
    ]
    out.append("<h3>Time and memory</h3>")
    out.append(
        _kv_table(resources)
        if resources
        else '<p class="note">summary.json has no timing or memory figures</p>'
    )
    nested = [(k, v) for k, v in run.summary.items() if isinstance(v, (Mapping, list))]
    for key, value in nested:
        out.append(
            f"<h4>{_e(key)}</h4>" + _EvaluationRenderer(problems).render(value, 5, f"{run.name} / {key}")
        )

    if run.metrics is not None:
        png = _safe_figure(
            problems, "learning curves", lambda: figures.learning_curves(run.metrics, title=run.name)
        )
        if png is not None:
            out.append(
                "<h3>Learning curves</h3>"
                + _img(png, f"learning curves of {run.name}", "metrics.csv, per epoch")
            )

    if run.evaluation:
        out.append("<h3>Evaluation</h3>")
        renderer = _EvaluationRenderer(problems)
        for name, result in run.evaluation.items():
            inner = renderer.render(result, 5, f"{run.name} / {name}")
            out.append(f'<section class="sub evaluation"><h4>{_e(name)}</h4>{inner}</section>')

    split = run.embedding_split()
    if split is not None:
        proj = projections.get(run, split)
        if isinstance(proj, str):
            problems.append(proj)
        else:
            png = _safe_figure(
                problems,
                "embedding map",
                lambda: figures.embedding_map(
                    proj.coords,
                    proj.labels,
                    title=f"{run.name}: {split}",
                    label_name=proj.label_name,
                    axis_name=proj.method,
                ),
            )
            if png is not None:
                shown = len(proj.coords)
                caption = (
                    f"{proj.method} of embeddings/{split}.parquet, {shown} of {proj.n_total} points"
                    f", coloured by {proj.label_name or '(no label column)'}"
                )
                out.append("<h3>Embedding map</h3>" + _img(png, f"embedding map of {run.name}", caption))

    gallery = _gallery(run, problems)
    if gallery:
        out.append("<h3>Gallery</h3>" + gallery)

    out.append(
        "<h3>Configuration</h3><details><summary>config.yaml (resolved)</summary>"
        f"<pre>{_e(run.config_text)}</pre></details>"
    )
    if problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in problems)
        out.append(f'<h3>Notes</h3><ul class="problems">{items}</ul>')
    out.append("</section>")
    return "\n".join(out)


def _gallery(run: RunRecord, problems: list[str]) -> str:
    figs = []
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
            problems.append(
                f"{path.relative_to(run.path)}: not a PNG or larger than "
                f"{MAX_IMAGE_BYTES // 2**20} MB; left out"
            )
            continue
        rel = path.relative_to(run.path).as_posix()
        figs.append(_img(data, rel, rel))
    for folder, count in by_folder.items():
        if count > MAX_GALLERY_PER_RUN:
            problems.append(f"{folder}/: {count} images, the first {MAX_GALLERY_PER_RUN} are shown")
    return f'<div class="gallery">{"".join(figs)}</div>' if figs else ""


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


def _comparison_section(runs: list[RunRecord], projections: _Projections) -> str:
    problems: list[str] = []
    table = comparison_table(runs)
    out = [
        '<section id="comparison">',
        "<h2>Comparison</h2>",
        '<p class="note">Key metrics are the numbers in evaluation.json one and two levels down; '
        "the best value of higher-is-better metrics is in bold.</p>",
        _frame_table(table, best=_best_cells(table)),
    ]
    numeric_rows = [k for k in table.index if k not in COMPARISON_HEAD]
    bars = table.loc[numeric_rows].T if numeric_rows else pd.DataFrame()
    if not bars.empty:
        png = _safe_figure(problems, "comparison chart", lambda: figures.comparison_bars(bars))
        if png is not None:
            out.append(
                "<h3>Metrics side by side</h3>"
                + _img(png, "comparison bar chart", "one panel per metric, one bar per run")
            )
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
        png = _safe_figure(
            problems,
            "embedding maps",
            lambda: figures.embedding_maps(
                [p[:3] for p in panels], label_name=", ".join(labels) or None, axis_name="/".join(methods)
            ),
        )
        if png is not None:
            out.append(
                "<h3>Embedding maps side by side</h3>"
                + _img(
                    png,
                    "embedding maps side by side",
                    f"{'/'.join(methods)} per run; the same colour is the same label in every panel",
                )
            )
    if problems:
        out.append('<ul class="problems">' + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>")
    out.append("</section>")
    return "\n".join(out)


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
        title = (
            f"biorep report: {runs[0].name}"
            if len(runs) == 1
            else "biorep comparison: " + " vs ".join(r.name for r in runs)
        )
    projections = _Projections(projection, max_points)
    toc = []
    body = []
    if len(runs) > 1:
        toc.append('<li><a href="#comparison">Comparison</a></li>')
        body.append(_comparison_section(runs, projections))
    for i, run in enumerate(runs):
        toc.append(f'<li><a href="#{_section_id(i)}">Run: {_e(run.name)}</a></li>')
        body.append(_run_section(run, i, projections))
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>",
            "<body>",
            f"<header><h1>{_e(title)}</h1>",
            f'<p class="meta">{len(runs)} run{"s" if len(runs) > 1 else ""} · generated {_e(stamp)} '
            f"by biorep {_e(__version__)}</p>",
            f"<nav><strong>Contents</strong><ul>{''.join(toc)}</ul></nav></header>",
            *body,
            f"<footer>biorep {_e(__version__)} · self-contained report: figures are embedded, nothing is "
            "loaded from the network.</footer>",
            f"<script>{IMAGES_CHECK_SCRIPT}</script>",
            "</body></html>",
        ]
    )


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

    One run: its overview, time and memory, learning curves, evaluation tables and confusion
    matrices, embedding map, gallery (``karyotype/*.png``, ``figures/*.png``) and config. Several runs:
    a comparison (table, bar chart, side-by-side embedding maps) first, then one section per run.

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
        raise RunDirError(f"report path {out} is a directory; give a file name such as {out / 'report.html'}")
    if out.exists() and not overwrite:
        raise RunDirError(f"report {out} already exists; pass overwrite=True (--overwrite) to replace it")
    text = render_report(runs, title, projection=projection, max_points=max_points)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
