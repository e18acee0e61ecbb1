"""Report figures: matplotlib functions that return PNG bytes.

Every function draws on its own :class:`~matplotlib.figure.Figure` (never the pyplot state machine),
so it renders with Agg whatever the session's backend is, never opens a window and leaks no figures.

Example:
    >>> import numpy as np
    >>> png = confusion_matrix([[5, 1], [0, 6]], ["a", "b"])
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.lines
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from biorep.report.karyogram import render_karyogram
from biorep.report.png import to_png

__all__ = [
    "comparison_bars",
    "confusion_matrix",
    "embedding_map",
    "embedding_maps",
    "learning_curves",
    "natural_key",
    "per_class_recall",
    "render_karyogram",
]


def natural_key(value: object) -> tuple:
    """Sort key that orders ``"2"`` before ``"10"`` and numbers before letters (1..22, X, Y)."""
    parts = re.split(r"(\d+)", str(value))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p != "")


# ----------------------------------------------------------------------------------------- curves
_SCORE_WORDS = ("acc", "f1", "auroc", "auc", "recall", "precision", "map", "top")


def _metric_group(name: str) -> str:
    low = name.lower()
    if "loss" in low:
        return "loss"
    if any(word in low for word in _SCORE_WORDS):
        return "score"
    if low in {"lr", "learning_rate"} or low.startswith("lr-") or low.startswith("lr_"):
        return "learning rate"
    return "other"


_GROUP_TITLES = {
    "loss": "Losses",
    "score": "Accuracy and scores",
    "learning rate": "Learning rate",
    "other": "Other metrics",
}


def _is_timing(name: str) -> bool:
    """Wall-clock columns (``epoch_time_s``, ``time``...): not a learning curve, so never plotted."""
    low = str(name).lower()
    return "time" in low or low.endswith("_s") or low in {"timestamp", "duration"}


def learning_curves(metrics: pd.DataFrame, *, x: str | None = None, title: str | None = None) -> bytes:
    """Plot every numeric column of a ``metrics.csv`` table against ``epoch`` (or ``step``).

    Wall-clock columns (``epoch_time_s`` and the like) are left out: time is not learning.
    Columns are grouped into panels: losses, accuracy-like scores (acc, f1, auroc, ...), the learning
    rate and anything else. Rows where a column is empty are skipped for that column, and several rows
    per epoch (step-level logging) are averaged.

    Args:
        metrics: the table; needs at least one numeric column besides the x column.
        x: the x column; default ``epoch``, else ``step``, else the row number.
        title: figure title.

    Raises:
        ValueError: when there is no numeric metric column to plot.
    """
    df = metrics.copy()
    if x is None:
        x = next((c for c in ("epoch", "step") if c in df.columns), None)
    if x is None:
        df = df.reset_index(drop=True)
        df["row"] = np.arange(len(df))
        x = "row"
    df[x] = pd.to_numeric(df[x], errors="coerce")
    skip = {x, "epoch", "step", "row"}
    columns = [
        c
        for c in df.columns
        if c not in skip
        and not _is_timing(c)
        and pd.api.types.is_numeric_dtype(pd.to_numeric(df[c], errors="coerce"))
        and pd.to_numeric(df[c], errors="coerce").notna().any()
    ]
    if not columns:
        raise ValueError("metrics table has no numeric metric column to plot")
    groups: dict[str, list[str]] = {}
    for col in columns:
        groups.setdefault(_metric_group(col), []).append(col)
    order = [g for g in ("loss", "score", "learning rate", "other") if g in groups]
    fig = Figure(figsize=(5.2 * len(order), 3.6))
    axes = fig.subplots(1, len(order), squeeze=False)[0]
    for ax, group in zip(axes, order):
        plotted: list[float] = []
        for col in groups[group]:
            series = df[[x, col]].apply(pd.to_numeric, errors="coerce").dropna()
            series = series.groupby(x, sort=True)[col].mean()
            if series.empty:
                continue
            plotted += series.tolist()
            ax.plot(
                series.index,
                series.values,
                marker="o" if len(series) <= 30 else None,
                markersize=3,
                linewidth=1.5,
                label=col,
            )
        ax.set_title(_GROUP_TITLES[group], fontsize=11)
        ax.set_xlabel(x)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if group == "learning rate" and plotted and min(plotted) > 0:  # a schedule that ends at 0 stays linear
            ax.set_yscale("log")
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return to_png(fig)


# ---------------------------------------------------------------------------------------- confusion
def confusion_matrix(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    classes: Sequence[str] | None = None,
    *,
    title: str | None = None,
    normalize: bool = True,
) -> bytes:
    """Heatmap of a confusion matrix (rows = true class, columns = predicted), labelled on both axes.

    Args:
        matrix: square counts ``[[int]]``.
        classes: class names in matrix order; default ``0..n-1``.
        title: figure title.
        normalize: divide each row by its total (recall per true class); rows without samples stay 0.

    Raises:
        ValueError: when the matrix is not square or ``classes`` has the wrong length.
    """
    cm = np.asarray(matrix, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"confusion matrix must be square and non-empty, got shape {cm.shape}")
    n = cm.shape[0]
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"confusion matrix is {n}x{n} but {len(names)} class names were given")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        shown = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    else:
        shown = cm
    side = float(np.clip(0.32 * n + 2.2, 4.0, 11.0))
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(shown.max()), 1.0)
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    label_size = 9 if n <= 12 else 7
    ax.set_xticks(range(n), names, rotation=90 if max(map(len, names)) > 3 else 0, fontsize=label_size)
    ax.set_yticks(range(n), names, fontsize=label_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    # Cell annotations: fraction (or percent at many classes) where non-zero, white on dark cells.
    cell_size = 8 if n <= 12 else 6.5
    for i in range(n):
        for j in range(n):
            value = shown[i, j]
            if value <= 0:
                continue
            if normalize:
                text = f"{value:.2f}" if n <= 12 else f"{100 * value:.0f}"
            else:
                text = f"{value:.0f}"
            if text in {"0", "0.00"}:
                continue
            colour = "white" if value > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=cell_size, color=colour)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cbar.set_label("fraction of true class" if normalize else "count")
    if title or (normalize and n > 12):
        sub = "cell values: % of true class" if normalize and n > 12 else ""
        ax.set_title("\n".join(t for t in (title or "", sub) if t), fontsize=11)
    fig.tight_layout()
    return to_png(fig)


# ---------------------------------------------------------------------------------------- embedding
def _palette(n: int) -> list:
    """``n`` distinct colours (tab10 → tab20 → tab20 + tab20b + tab20c)."""
    cmaps = matplotlib.colormaps
    if n <= 10:
        return list(cmaps["tab10"].colors)[:n]
    if n <= 20:
        return list(cmaps["tab20"].colors)[:n]
    colours = list(cmaps["tab20"].colors) + list(cmaps["tab20b"].colors) + list(cmaps["tab20c"].colors)
    if n <= len(colours):
        return colours[:n]
    return [cmaps["turbo"](i / max(n - 1, 1)) for i in range(n)]


def _is_continuous(labels: np.ndarray) -> bool:
    return labels.dtype.kind in "fiu" and len(np.unique(labels[~pd.isna(labels)])) > 30


def embedding_maps(
    panels: Sequence[tuple[str, np.ndarray, Sequence | np.ndarray | None]],
    *,
    label_name: str | None = None,
    title: str | None = None,
    axis_name: str = "UMAP",
    max_columns: int = 4,
) -> bytes:
    """Side-by-side 2-D embedding maps sharing one colour per label (e.g. CE vs SupCon test sets).

    Args:
        panels: ``(title, Z, labels)`` per map; ``Z`` has shape ``(n, 2)``; ``labels`` has ``n``
            entries (categorical → one colour each, numeric with many values → a colour bar) or ``None``.
        label_name: legend title (the label column).
        title: figure title.
        axis_name: axis label prefix (``UMAP`` or ``PC``).
        max_columns: panels per row; more panels wrap onto further rows.

    Raises:
        ValueError: for no panels, a ``Z`` that is not ``(n, 2)`` or labels of the wrong length.
    """
    if not panels:
        raise ValueError("embedding_maps needs at least one panel")
    prepared = []
    for name, z, labels in panels:
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[1] != 2:
            raise ValueError(f"panel {name!r}: coordinates must have shape (n, 2), got {z.shape}")
        lab = None if labels is None else np.asarray(labels)
        if lab is not None and len(lab) != len(z):
            raise ValueError(f"panel {name!r}: {len(z)} points but {len(lab)} labels")
        prepared.append((name, z, lab))
    continuous = any(lab is not None and _is_continuous(lab) for _, _, lab in prepared)
    categories: list = []
    if not continuous:
        seen = {str(v) for _, _, lab in prepared if lab is not None for v in lab}
        categories = sorted(seen, key=natural_key)
    colour_of = dict(zip(categories, _palette(len(categories))))
    n_panels = len(prepared)
    ncols = min(n_panels, max_columns)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(4.6 * ncols + (2.2 if categories else 1.0), 4.6 * nrows), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in grid[n_panels:]:
        ax.set_visible(False)
    axes = grid[:n_panels]
    mappable = None
    for ax, (name, z, lab) in zip(axes, prepared):
        size = float(np.clip(6000.0 / max(len(z), 1), 3.0, 30.0))
        if lab is None:
            ax.scatter(z[:, 0], z[:, 1], s=size, color="#4c72b0", alpha=0.8, linewidths=0)
        elif continuous:
            mappable = ax.scatter(
                z[:, 0], z[:, 1], s=size, c=lab.astype(float), cmap="viridis", alpha=0.85, linewidths=0
            )
        else:
            text = np.array([str(v) for v in lab])
            for cat in categories:
                mask = text == cat
                if mask.any():
                    ax.scatter(
                        z[mask, 0],
                        z[mask, 1],
                        s=size,
                        color=colour_of[cat],
                        alpha=0.85,
                        linewidths=0,
                        label=cat,
                    )
        ax.set_title(f"{name} (n={len(z)})", fontsize=11)
        ax.set_xlabel(f"{axis_name} 1")
        ax.set_ylabel(f"{axis_name} 2")
        ax.set_xticks([])
        ax.set_yticks([])
    if mappable is not None:
        fig.colorbar(mappable, ax=list(axes), label=label_name or "")
    elif categories:
        handles = [
            matplotlib.lines.Line2D([], [], marker="o", linestyle="", color=colour_of[c], label=c)
            for c in categories
        ]
        ncol = 1 if len(categories) <= 16 else 2
        if len(categories) <= 60:
            fig.legend(
                handles=handles,
                title=label_name,
                loc="outside right center",
                fontsize=8,
                ncol=ncol,
                frameon=False,
            )
    if title:
        fig.suptitle(title, fontsize=12)
    return to_png(fig)


def embedding_map(
    z: np.ndarray,
    labels: Sequence | np.ndarray | None = None,
    *,
    title: str = "",
    label_name: str | None = None,
    axis_name: str = "UMAP",
) -> bytes:
    """One 2-D embedding map coloured by ``labels`` (see :func:`embedding_maps`)."""
    return embedding_maps([(title, z, labels)], label_name=label_name, axis_name=axis_name)


# ----------------------------------------------------------------------------------------- bars
def comparison_bars(
    table: pd.DataFrame | Mapping[str, Mapping[str, float]],
    *,
    title: str | None = None,
    max_panels: int = 16,
    skip_constant: bool = True,
) -> bytes:
    """Small multiples: one bar panel per metric, one bar per run (metrics keep their own scale).

    Args:
        table: rows = runs, columns = metrics (or ``{run: {metric: value}}``); non-numeric or empty
            metrics are left out.
        title: figure title.
        max_panels: at most this many metrics (the first ones in column order).
        skip_constant: leave out metrics that are the same for every run (unless all are).

    Raises:
        ValueError: when no metric has a numeric value.
    """
    df = pd.DataFrame(table).T if isinstance(table, Mapping) else table.copy()
    df = df.apply(pd.to_numeric, errors="coerce")
    df = df.loc[:, df.notna().any(axis=0)]
    if df.shape[1] == 0:
        raise ValueError("comparison table has no numeric metric")
    if len(df) > 1 and skip_constant:
        varying = df.loc[:, df.nunique(dropna=True) > 1]
        df = varying if varying.shape[1] else df
    metrics = list(df.columns)[:max_panels]
    runs = [str(r) for r in df.index]
    width = max(2.6, 0.45 * len(runs) + 1.2)
    ncols = max(1, min(4, len(metrics), int(18 // width)))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(width * ncols, 2.3 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = _palette(len(runs))
    for ax, metric in zip(axes, metrics):
        values = df[metric].to_numpy(dtype=float)
        positions = np.arange(len(runs))
        ax.bar(positions, np.nan_to_num(values), color=colours, edgecolor="black", linewidth=0.4)
        for pos, val in zip(positions, values):
            if np.isfinite(val):
                ax.annotate(
                    f"{val:.4g}",
                    (pos, val),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 1),
                    textcoords="offset points",
                )
        ax.set_title(str(metric), fontsize=9)
        ax.set_xticks(
            positions,
            runs,
            rotation=30 if len(runs) > 2 else 0,
            ha="right" if len(runs) > 2 else "center",
            fontsize=8,
        )
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return to_png(fig)


# ----------------------------------------------------------------------------------- per class
def per_class_recall(
    recall: Mapping[str, float | None],
    *,
    counts: Mapping[str, int] | None = None,
    title: str | None = None,
    mark_below: float | None = None,
) -> bytes:
    """Bar chart of recall per true class (classes in natural order: 1..22, X, Y).

    Bars below ``mark_below`` (default: the mean recall) are drawn in orange; classes without test
    samples (``None``) are left empty and labelled ``n/a``. ``counts`` adds ``n`` under each class.

    Raises:
        ValueError: when no class has a recall.
    """
    names = sorted((str(k) for k in recall), key=natural_key)
    values = np.array([np.nan if recall[n] is None else float(recall[n]) for n in names], dtype=float)
    if not np.isfinite(values).any():
        raise ValueError("no class has a recall to plot")
    threshold = float(np.nanmean(values)) if mark_below is None else float(mark_below)
    colours = ["#dd8452" if np.isfinite(v) and v < threshold else "#4c72b0" for v in values]
    fig = Figure(figsize=(float(np.clip(0.36 * len(names) + 1.8, 4.0, 12.0)), 2.9))
    ax = fig.add_subplot()
    pos = np.arange(len(names))
    ax.bar(pos, np.nan_to_num(values), color=colours, edgecolor="black", linewidth=0.3)
    for p, v in zip(pos, values):
        if not np.isfinite(v):
            ax.annotate("n/a", (p, 0), ha="center", va="bottom", fontsize=7, color="gray")
    ax.axhline(threshold, color="gray", linestyle="--", linewidth=0.8)
    labels = [f"{n}\n{counts[n]}" if counts and n in counts else n for n in names]
    ax.set_xticks(pos, labels, fontsize=8 if len(names) <= 30 else 6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"recall per class (orange: below {threshold:.2f}, the dashed line)", fontsize=10)
    fig.tight_layout()
    return to_png(fig)
