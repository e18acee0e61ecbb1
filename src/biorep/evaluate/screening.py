"""Screening tasks of Study B on frozen embeddings, generalised over metadata columns.

- :func:`drug_similarity` — are two treatments expected to act alike close to each other, relative to
  their distance to the control? (median Euclidean distances, per group, then median ± MAD).
- :func:`treated_vs_control` — an SGD-trained MLP (small grid, group-aware inner validation) that
  separates treated from control samples on held-out groups; metrics from probabilities.

Samples are chosen with selectors (``{column: value}``, see :mod:`biorep.evaluate.selectors`).
The clustering task lives in :mod:`biorep.evaluate.clustering`.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from scipy.stats import median_abs_deviation
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from biorep.errors import ConfigError, DataError
from biorep.evaluate.classification import binary_metrics
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult, as_list, require_columns
from biorep.evaluate.selectors import Selector, describe, select

# -- 1. similarity of treatments expected to act alike ---------------------------------------------


def _groups(meta: pd.DataFrame, group_by: str | Sequence[str] | None) -> list[tuple[Any, np.ndarray]]:
    cols = as_list(group_by)
    if not cols:
        return [("all", np.arange(len(meta)))]
    require_columns(meta, cols)
    return [(key, idx) for key, idx in meta.groupby(cols, sort=True, dropna=False).indices.items()]


def _median_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(cdist(a, b, metric="euclidean")))


def _median_mad(values: Sequence[float]) -> dict[str, float | None]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return {"median": None, "mad": None}
    return {"median": float(np.median(v)), "mad": float(median_abs_deviation(v, scale=1.0))}


def drug_similarity(
    embeddings: np.ndarray,
    meta: pd.DataFrame,
    a: Selector,
    b: Selector,
    control: Selector,
    *,
    group_by: str | Sequence[str] | None = None,
    max_per_set: int | None = 2000,
    seed: int = 0,
    bootstrap: int = 0,
    bootstrap_by: str | Sequence[str] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Distance between two treatments expected to act alike, relative to their distance to control.

    Per group (e.g. cell line or plate): ``D`` = median Euclidean distance between the samples of
    ``a`` and of ``b``; ``D_hat`` = mean of the median distances a↔control and b↔control; reported as
    ``D``, ``D_inv = 1/D`` and ``d = (D_hat − D) / D_hat`` (> 0: a and b closer to each other than to
    control). Groups missing one of the three sets are skipped (listed in ``skipped``).

    Args:
        embeddings: ``(N, D)`` features.
        meta: ``N`` rows of metadata.
        a, b: selectors of the two treatments, e.g. ``{"compound": "methotrexate"}``.
        control: selector of the control, e.g. ``{"compound": "DMSO"}``.
        group_by: column(s) to compute per group (None: one group, ``"all"``).
        max_per_set: subsample each set to at most this many samples (fixed ``seed``) to bound the
            pairwise-distance matrices; None = no limit.
        bootstrap: with N > 0, a ``bootstrap`` block in the summary: percentile CI of the median
            over groups of ``d``, resampling samples (or whole ``bootstrap_by`` units, e.g. fields
            ``[well, site]``) N times (:func:`biorep.evaluate.stats.ci_record`).

    Returns:
        ``(summary, per_group)``: the summary holds median and MAD (unscaled) over groups of ``D``,
        ``D_inv`` and ``d``; the table one row per group.

    Example:
        >>> summary, table = drug_similarity(z, meta, {"compound": "methotrexate"},
        ...     {"compound": "pemetrexed"}, {"compound": "DMSO"}, group_by="cell_line")  # doctest: +SKIP
    """
    z = np.asarray(embeddings, dtype=np.float64)
    masks = {"a": select(meta, a), "b": select(meta, b), "control": select(meta, control)}
    if (masks["a"] & masks["b"]).any() or ((masks["a"] | masks["b"]) & masks["control"]).any():
        raise ConfigError("similarity: the a, b and control selectors must pick disjoint samples")
    for name, m in masks.items():
        if not m.any():
            spec = {"a": a, "b": b, "control": control}[name]
            raise DataError(f"similarity: selector {name} ({describe(spec)}) matches no sample")
    rng = np.random.default_rng(seed)
    rows, skipped = [], []
    kept: list[dict[str, np.ndarray]] = []  # per group: the rows of a, b and control (for the bootstrap)
    for key, idx in _groups(meta, group_by):
        sets = {}
        for name, m in masks.items():
            s = idx[m[idx]]
            if max_per_set is not None and len(s) > max_per_set:
                s = np.sort(rng.choice(s, max_per_set, replace=False))
            sets[name] = s
        if any(len(s) == 0 for s in sets.values()):
            skipped.append({"group": _key_str(key), "reason": "missing " + ", ".join(
                n for n, s in sets.items() if len(s) == 0)})
            continue
        kept.append(sets)
        d_ab = _median_distance(z[sets["a"]], z[sets["b"]])
        d_ac = _median_distance(z[sets["a"]], z[sets["control"]])
        d_bc = _median_distance(z[sets["b"]], z[sets["control"]])
        d_hat = (d_ac + d_bc) / 2.0
        rows.append({
            "group": _key_str(key),
            "n_a": len(sets["a"]), "n_b": len(sets["b"]), "n_control": len(sets["control"]),
            "D": d_ab, "D_inv": 1.0 / d_ab if d_ab > 0 else np.inf,
            "D_a_control": d_ac, "D_b_control": d_bc, "D_hat": d_hat,
            "d": (d_hat - d_ab) / d_hat if d_hat > 0 else np.nan,
        })
    table = pd.DataFrame(rows, columns=["group", "n_a", "n_b", "n_control", "D", "D_inv",
                                        "D_a_control", "D_b_control", "D_hat", "d"])
    summary: dict[str, Any] = {
        "a": describe(a), "b": describe(b), "control": describe(control),
        "group_by": as_list(group_by), "n_groups": len(rows), "skipped": skipped,
    }
    for col in ("D", "D_inv", "d"):
        summary[col] = _median_mad(table[col].tolist())
    if bootstrap and kept:
        summary["bootstrap"] = _similarity_bootstrap(z, meta, kept, n_boot=bootstrap, by=as_list(bootstrap_by),
                                                     seed=seed)
    return summary, table


def _similarity_bootstrap(
    z: np.ndarray, meta: pd.DataFrame, kept: list[dict[str, np.ndarray]], *, n_boot: int,
    by: list[str], seed: int,
) -> dict[str, Any]:
    """CI of the median over groups of d, resampling the groups' samples (or ``by`` units)."""
    from biorep.evaluate.stats import ci_record, unit_labels

    rows = np.concatenate([np.concatenate([g["a"], g["b"], g["control"]]) for g in kept])
    owner, role, local = [], [], []  # per pooled row: its group, its set (0 a, 1 b, 2 control), position
    mats = []
    for gi, g in enumerate(kept):
        for r, name in enumerate(("a", "b", "control")):
            owner += [gi] * len(g[name])
            role += [r] * len(g[name])
            local += list(range(len(g[name])))
        mats.append((cdist(z[g["a"]], z[g["b"]]), cdist(z[g["a"]], z[g["control"]]),
                     cdist(z[g["b"]], z[g["control"]])))
    owner_a, role_a, local_a = np.asarray(owner), np.asarray(role), np.asarray(local)

    def stat(idx: np.ndarray) -> float:
        ds = []
        for gi, (ab, ac, bc) in enumerate(mats):
            mine = idx[owner_a[idx] == gi]
            ia = local_a[mine[role_a[mine] == 0]]
            ib = local_a[mine[role_a[mine] == 1]]
            ic = local_a[mine[role_a[mine] == 2]]
            if not (len(ia) and len(ib) and len(ic)):
                continue
            d_ab = np.median(ab[np.ix_(ia, ib)])
            d_hat = (np.median(ac[np.ix_(ia, ic)]) + np.median(bc[np.ix_(ib, ic)])) / 2.0
            if d_hat > 0:
                ds.append((d_hat - d_ab) / d_hat)
        return float(np.median(ds)) if ds else float("nan")

    groups = unit_labels(meta.iloc[rows].reset_index(drop=True), by)
    if groups is not None:  # units never span two groups of the task
        groups = np.char.add(owner_a.astype(str), np.char.add("|", groups.astype(str)))
    return ci_record(stat, len(rows), metric="d", groups=groups, by=by, n_boot=n_boot, seed=seed)


def _key_str(key: Any) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


@EVALUATIONS.register("similarity")
def run_similarity(
    ctx: EvalContext,
    *,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    control: Mapping[str, Any],
    group_by: str | list[str] | None = None,
    max_per_set: int | None = 2000,
    bootstrap: int = 0,
    bootstrap_by: list[str] | None = None,
    seed: int = 0,
) -> EvalResult:
    """Registry adapter of :func:`drug_similarity` (``group_by`` defaults to ``ctx.group_columns``)."""
    group_by = ctx.group_columns if group_by is None else group_by
    summary, table = drug_similarity(ctx.embeddings, ctx.meta, a, b, control, group_by=group_by,
                                     max_per_set=max_per_set, seed=seed, bootstrap=bootstrap,
                                     bootstrap_by=bootstrap_by)
    return EvalResult("similarity", summary, table)


# -- 2. treated vs control -------------------------------------------------------------------------

DEFAULT_GRID: dict[str, list[Any]] = {
    "learning_rate_init": [1e-3, 1e-2],
    "alpha": [1e-4, 1e-2],
    "hidden_layer_sizes": [(64,), (256,)],
}


def _mlp(params: Mapping[str, Any], seed: int, max_iter: int, n: int) -> Any:
    kw = dict(params)
    if "hidden_layer_sizes" in kw:
        kw["hidden_layer_sizes"] = tuple(as_int_tuple(kw["hidden_layer_sizes"]))
    return make_pipeline(
        StandardScaler(),
        MLPClassifier(solver="sgd", momentum=0.9, batch_size=max(1, min(256, n)), max_iter=max_iter, random_state=seed,
                      **kw),
    )


def as_int_tuple(v: Any) -> tuple[int, ...]:
    """``64`` → ``(64,)``; ``[64, 32]`` → ``(64, 32)``."""
    return (int(v),) if np.ndim(v) == 0 else tuple(int(x) for x in v)


def _fit(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def _inner_split(y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) >= 2:
        for attempt in range(10):  # both classes must appear on both sides
            gss = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed + attempt)
            tr, va = next(gss.split(idx, y, groups))
            if len(np.unique(y[tr])) == 2 and len(np.unique(y[va])) == 2:
                return tr, va
    sss = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    return next(sss.split(idx, y))


def select_mlp(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    val_fraction: float = 0.25,
    seed: int = 0,
    max_iter: int = 200,
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """Pick MLP hyper-parameters on a group-aware inner validation split (by ROC-AUC), refit on all.

    Returns ``(fitted pipeline, best params, [{params..., val_auc}, ...])``.
    """
    grid = DEFAULT_GRID if grid is None else grid
    keys = list(grid)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
    if not combos:
        raise ConfigError("treated_vs_control: the hyper-parameter grid is empty")
    trials = []
    if len(combos) > 1:
        tr, va = _inner_split(y, groups, val_fraction, seed)
        for params in combos:
            model = _fit(_mlp(params, seed, max_iter, len(tr)), x[tr], y[tr])
            score = binary_metrics(y[va], model.predict_proba(x[va])[:, 1])["roc_auc"]
            trials.append({**params, "val_auc": score})
        best = max(range(len(combos)), key=lambda i: -1.0 if trials[i]["val_auc"] is None
                   else trials[i]["val_auc"])
    else:
        best = 0
    model = _fit(_mlp(combos[best], seed, max_iter, len(x)), x, y)
    return model, combos[best], trials


def treated_vs_control(
    embeddings: np.ndarray,
    meta: pd.DataFrame,
    control: Selector,
    treated: Selector | None = None,
    *,
    holdout_column: str | None = None,
    test_mask: np.ndarray | None = None,
    report_by: str | Sequence[str] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    val_fraction: float = 0.25,
    max_iter: int = 200,
    seed: int = 0,
    bootstrap: int = 0,
    bootstrap_by: str | Sequence[str] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Drug-treated vs control classification with an MLP on frozen embeddings.

    Labels: ``control`` → 0, ``treated`` → 1 (default: every non-control sample); samples matching
    neither are left out. Evaluation scheme:

    - ``test_mask`` given: one model trained on the other rows, scored on these (``holdout_column``,
      if given, then only keeps its groups apart in the inner validation split);
    - else ``holdout_column`` given: leave-one-group-out over its values (e.g. plate);
    - neither: :class:`ConfigError`.

    Hyper-parameters come from a small grid (learning rate × L2 alpha × hidden size; SGD with
    momentum, standardised inputs), chosen on an inner split of the training rows that keeps the
    ``holdout_column`` groups apart when there are at least two.

    With ``bootstrap`` N > 0 the summary gains a ``bootstrap`` block: the percentile CI of the
    overall ROC-AUC over N resamples of the held-out samples (or of whole ``bootstrap_by`` units,
    e.g. fields ``[well, site]``); the model is not refitted.

    Returns:
        ``(summary, per_group)``: the summary holds ``overall`` binary metrics (accuracy, precision,
        recall, F1 at 0.5 and ROC-AUC from probabilities) over all held-out predictions, ``folds``
        (held-out values and chosen params) and ``per_group``; the table one row per
        ``report_by`` group (default: ``holdout_column``).
    """
    z = np.asarray(embeddings, dtype=np.float32)
    is_control = select(meta, control)
    is_treated = select(meta, treated) if treated is not None else ~is_control
    if (is_control & is_treated).any():
        raise ConfigError("treated_vs_control: the treated and control selectors overlap")
    keep = is_control | is_treated
    if not is_control.any() or not is_treated.any():
        raise DataError(f"treated_vs_control: need both classes; control ({describe(control)}) has "
                        f"{int(is_control.sum())} samples, treated has {int(is_treated.sum())}")
    y = is_treated.astype(np.int64)
    if holdout_column is not None:
        require_columns(meta, [holdout_column])
    groups = meta[holdout_column].astype(str).to_numpy() if holdout_column is not None else None

    if test_mask is not None:
        test_mask = np.asarray(test_mask, dtype=bool)
        folds = [("given split", keep & ~test_mask, keep & test_mask)]
    elif groups is not None:
        folds = [(g, keep & (groups != g), keep & (groups == g)) for g in sorted(np.unique(groups[keep]))]
        if len(folds) < 2:
            raise DataError(f"treated_vs_control: column {holdout_column!r} has a single group; "
                            "leave-one-group-out needs at least two")
    else:
        raise ConfigError("treated_vs_control needs test_mask or holdout_column (leave-one-group-out)")

    prob = np.full(len(z), np.nan)
    fold_info = []
    for name, train_m, test_m in folds:
        if len(np.unique(y[train_m])) < 2 or not test_m.any():
            fold_info.append({"held_out": str(name), "skipped": "training rows lack a class or no test rows"})
            continue
        tr = np.flatnonzero(train_m)
        model, params, trials = select_mlp(
            z[tr], y[tr], groups[tr] if groups is not None else None,
            grid=grid, val_fraction=val_fraction, seed=seed, max_iter=max_iter,
        )
        prob[test_m] = model.predict_proba(z[test_m])[:, 1]
        fold_info.append({"held_out": str(name), "n_train": int(train_m.sum()), "n_test": int(test_m.sum()),
                          "params": params, "trials": trials})
    scored = ~np.isnan(prob)
    if not scored.any():
        raise DataError("treated_vs_control: no fold could be trained (each needs both classes)")

    by = as_list(report_by) or as_list(holdout_column)
    rows = []
    if by:
        require_columns(meta, by)
        sub = meta.loc[scored, by]
        for key, idx in sub.groupby(by, sort=True, dropna=False).indices.items():
            rows_idx = np.flatnonzero(scored)[idx]
            rows.append({"group": _key_str(key), **binary_metrics(y[rows_idx], prob[rows_idx])})
    table = pd.DataFrame(rows)
    summary = {
        "control": describe(control),
        "treated": describe(treated) if treated is not None else "not control",
        "holdout_column": holdout_column,
        "report_by": by,
        "overall": binary_metrics(y[scored], prob[scored]),
        "per_group": rows,
        "folds": fold_info,
    }
    if bootstrap:
        from sklearn.metrics import roc_auc_score

        from biorep.evaluate.stats import ci_record, unit_labels

        rows_s = np.flatnonzero(scored)
        ys, ps = y[rows_s], prob[rows_s]

        def auc(idx: np.ndarray) -> float:
            return float(roc_auc_score(ys[idx], ps[idx])) if len(np.unique(ys[idx])) == 2 else float("nan")

        units = as_list(bootstrap_by)
        summary["bootstrap"] = ci_record(
            auc, len(rows_s), metric="roc_auc", by=units, n_boot=bootstrap, seed=seed,
            groups=unit_labels(meta.iloc[rows_s].reset_index(drop=True), units))
    return summary, table


@EVALUATIONS.register("treated_vs_control")
def run_treated_vs_control(
    ctx: EvalContext,
    *,
    control: Mapping[str, Any],
    treated: Mapping[str, Any] | None = None,
    holdout_column: str | None = None,
    report_by: str | list[str] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    val_fraction: float = 0.25,
    max_iter: int = 200,
    bootstrap: int = 0,
    bootstrap_by: list[str] | None = None,
    seed: int = 0,
) -> EvalResult:
    """Registry adapter of :func:`treated_vs_control`.

    Uses ``ctx.test_idx`` as the held-out rows when set, else leave-one-group-out over
    ``holdout_column`` (default: the first of ``ctx.group_columns``).
    """
    if holdout_column is None and ctx.test_idx is not None:
        train, test = ctx.split()
        rows = np.union1d(train, test)  # rows in neither side stay out
        test_mask: np.ndarray | None = np.isin(rows, test)
        z, meta = ctx.embeddings[rows], ctx.meta.iloc[rows].reset_index(drop=True)
        holdout_column = ctx.group_columns[0] if ctx.group_columns else None  # inner split only
    else:
        if holdout_column is None and ctx.group_columns:
            holdout_column = ctx.group_columns[0]
        z, meta, test_mask = ctx.embeddings, ctx.meta, None
    summary, table = treated_vs_control(
        z, meta, control, treated, holdout_column=holdout_column, test_mask=test_mask,
        report_by=report_by or ctx.group_columns or None, grid=grid, val_fraction=val_fraction,
        max_iter=max_iter, seed=seed, bootstrap=bootstrap, bootstrap_by=bootstrap_by)
    return EvalResult("treated_vs_control", summary, table)
