"""Image-based profiling: aggregate embeddings into profiles, normalise to controls, score retrieval.

Conventions of the field (pycytominer, copairs, BBBC021):

- :func:`normalize_to_controls` — per plate (or any group), standardise (``(x − mean) / std``) or
  robustly (``(x − median) / (1.4826·MAD)``) against the control samples of that group; applied to
  single-cell embeddings before aggregation by the registry adapters.
- :func:`aggregate_profiles` — mean or median per well / treatment (any columns).
- :func:`replicate_map` — phenotypic *activity*: can a treatment's replicate profiles retrieve each
  other ahead of control profiles? copairs AP with positives = same treatment (optionally different
  plate/well via ``pos_diffby``), negatives = controls, using copairs' reference-index recipe.
  Without controls, negatives are the other treatments.
- :func:`label_map` — phenotypic *consistency*: profiles sharing a label (e.g. MoA, dose) retrieve
  each other ahead of profiles with other labels (optionally only pairs differing in ``pos_diffby``,
  e.g. different compounds).
- :func:`nsc_accuracy` — BBBC021's not-same-compound (NSC) / and-not-same-batch (NSCB) 1-NN label
  accuracy with cosine similarity.

Sphering (``sphere="zca"`` or ``"zca-cor"``, :mod:`biorep.evaluate.sphering`) whitens the single-cell
embeddings on the evaluated rows' controls (after the per-plate normalisation, when both are set),
before aggregation; ``replicate_map_sphered`` / ``label_map_sphered`` are the same evaluations with
sphering on, so a study reports mAP with and without it side by side. With ``bootstrap: N`` a
``bootstrap`` block (percentile CI over resampled query profiles, and the replicates) is added.

mAP p-values come from copairs' permutation null (``null_size`` draws) with Benjamini–Hochberg
correction; ``fraction_retrieved`` is the share of groups with corrected p < ``threshold``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from biorep.errors import ConfigError, DataError
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult, as_list, require_columns
from biorep.evaluate.selectors import Selector, describe, select

REFERENCE_COLUMN = "_biorep_reference"
NORMALIZATIONS = ("standardize", "robust")


def aggregate_profiles(
    embeddings: np.ndarray,
    meta: pd.DataFrame,
    by: str | Sequence[str],
    *,
    how: str = "mean",
    keep: Sequence[str] = (),
) -> tuple[np.ndarray, pd.DataFrame]:
    """Mean or median of the embeddings of every combination of the ``by`` columns.

    Args:
        by: columns defining a profile, e.g. ``["plate", "well"]`` (wells) or ``["compound", "dose"]``.
        how: ``"mean"`` or ``"median"``.
        keep: extra columns to carry over (their first value within each profile).

    Returns:
        ``(profiles (P, D) float32, profile metadata: by + keep columns + n_samples)``.

    Example:
        >>> p, pm = aggregate_profiles(np.arange(6.0).reshape(3, 2), pd.DataFrame({"w": [1, 1, 2]}), "w")
        >>> p.tolist(), pm["n_samples"].tolist()
        ([[1.0, 2.0], [4.0, 5.0]], [2, 1])
    """
    cols = as_list(by)
    if not cols:
        raise ConfigError("aggregate_profiles: give at least one column to aggregate by")
    if how not in ("mean", "median"):
        raise ConfigError(f"aggregate_profiles: how must be 'mean' or 'median', got {how!r}")
    require_columns(meta, [*cols, *keep])
    z = pd.DataFrame(np.asarray(embeddings, dtype=np.float64))
    keys = meta[cols].reset_index(drop=True)
    if keys.isna().any(axis=None):
        bad = [c for c in cols if keys[c].isna().any()]
        raise DataError(f"aggregate_profiles: column(s) {bad} have missing values")
    grouped = z.groupby([keys[c] for c in cols], sort=True)
    prof = grouped.mean() if how == "mean" else grouped.median()
    pmeta = prof.index.to_frame(index=False)
    pmeta.columns = cols
    if keep:
        first = meta[list(keep)].reset_index(drop=True).groupby([keys[c] for c in cols], sort=True).first()
        pmeta = pd.concat([pmeta, first.reset_index(drop=True)], axis=1)
    pmeta["n_samples"] = grouped.size().to_numpy()
    return prof.to_numpy(dtype=np.float32), pmeta


def normalize_to_controls(
    x: np.ndarray,
    meta: pd.DataFrame,
    control: Selector,
    *,
    by: str | Sequence[str] | None = None,
    method: str = "standardize",
    eps: float = 1e-6,
) -> np.ndarray:
    """Normalise features against the controls of each group (pycytominer's ``normalize``).

    ``standardize``: ``(x − mean_ctrl) / std_ctrl``; ``robust``: ``(x − median_ctrl) /
    (1.4826 · MAD_ctrl)``; statistics per group of ``by`` (e.g. plate; None: all rows), ``eps``
    added to the scale; a feature constant on a group's controls is only centred (scale 1, as
    scikit-learn's ``StandardScaler``), not blown up by 1/eps. A group without controls is a
    :class:`DataError`.

    Example:
        >>> m = pd.DataFrame({"c": ["ctl", "ctl", "drug"]})
        >>> normalize_to_controls(np.array([[0.0], [2.0], [4.0]]), m, {"c": "ctl"}).round(3).ravel().tolist()
        [-1.0, 1.0, 3.0]
    """
    if method not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {method!r}")
    x = np.asarray(x, dtype=np.float64)
    is_ctrl = select(meta, control)
    cols = as_list(by)
    if cols:
        require_columns(meta, cols)
        groups = meta.reset_index(drop=True).groupby(cols, sort=True, dropna=False).indices.items()
    else:
        groups = [("all", np.arange(len(meta)))]
    out = np.empty_like(x)
    for key, idx in groups:
        ctrl = x[idx[is_ctrl[idx]]]
        if len(ctrl) == 0:
            raise DataError(f"normalize: group {key!r} of {cols} has no control samples ({describe(control)})")
        if method == "standardize":
            centre, scale = ctrl.mean(axis=0), ctrl.std(axis=0)
        else:
            centre = np.median(ctrl, axis=0)
            scale = 1.4826 * np.median(np.abs(ctrl - centre), axis=0)
        scale = np.where(scale > 0, scale, 1.0)  # a feature constant on the controls: centred only
        out[idx] = (x[idx] - centre) / (scale + eps)
    return out.astype(np.float32)


def _copairs_ap(
    feats: np.ndarray,
    meta: pd.DataFrame,
    pos_sameby: list[str],
    pos_diffby: list[str],
    neg_sameby: list[str],
    neg_diffby: list[str],
    distance: str,
) -> pd.DataFrame:
    from copairs.map import average_precision
    from copairs.matching import UnpairedException

    logging.getLogger("copairs").setLevel(logging.WARNING)
    try:
        return average_precision(
            meta.reset_index(drop=True), np.asarray(feats, dtype=np.float64), pos_sameby=pos_sameby,
            pos_diffby=pos_diffby, neg_sameby=neg_sameby, neg_diffby=neg_diffby, distance=distance,
            progress_bar=False,
        )
    except UnpairedException as exc:
        raise DataError(
            f"mAP: {exc} (positives: same {pos_sameby}, different {pos_diffby}; negatives: same "
            f"{neg_sameby}, different {neg_diffby}) — every group has a single profile?"
        ) from None


def _map_summary(
    ap: pd.DataFrame, map_by: list[str], *, null_size: int, threshold: float, seed: int,
    query_mask: np.ndarray | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    from copairs.map import mean_average_precision

    queries = ap if query_mask is None else ap.loc[query_mask]
    no_pos = queries[queries["n_pos_pairs"] == 0]
    skipped = sorted({"/".join(map(str, k)) if isinstance(k, tuple) else str(k)
                      for k in no_pos.groupby(map_by, sort=True).groups})
    valid = queries[queries["n_pos_pairs"] > 0]
    if valid.empty:
        raise DataError(f"mAP: no profile has a positive pair (groups by {map_by} have one member each?)")
    maps = mean_average_precision(valid, sameby=map_by, null_size=null_size, threshold=threshold,
                                  seed=seed, progress_bar=False)
    maps = maps.drop(columns=["indices"], errors="ignore")
    summary = {
        "map_by": map_by,
        "mean_map": float(maps["mean_average_precision"].mean()),
        "mean_normalized_map": float(maps["mean_normalized_average_precision"].mean()),
        "fraction_retrieved": float(maps["below_corrected_p"].mean()),
        "fraction_p_below": float(maps["below_p"].mean()),
        "threshold": threshold,
        "null_size": null_size,
        "n_groups": int(len(maps)),
        "n_queries": int(len(valid)),
        "per_group": maps.to_dict(orient="records"),
        "skipped_groups": skipped,
        "note": (f"{len(skipped)} group(s) skipped: their profiles have no positive pair "
                 "(a single member, or no member passing pos_diffby)") if skipped else None,
    }
    return summary, maps


def replicate_map(
    profiles: np.ndarray,
    pmeta: pd.DataFrame,
    treatment: str | Sequence[str],
    *,
    control: Selector | None = None,
    pos_diffby: Sequence[str] = (),
    neg_sameby: Sequence[str] = (),
    distance: str = "cosine",
    null_size: int = 10000,
    threshold: float = 0.05,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Replicate retrieval (phenotypic activity) mAP per treatment, with copairs.

    Queries: every non-control profile. Positives: profiles of the same treatment (and differing in
    ``pos_diffby``, e.g. ``["plate"]`` to require replicates from other plates). Negatives: control
    profiles (sharing ``neg_sameby``, e.g. ``["plate"]``), or — when ``control`` is None — profiles
    of other treatments.

    Returns:
        ``(summary, map per treatment, AP per query profile)``.
    """
    treat = as_list(treatment)
    meta = pmeta.reset_index(drop=True).copy()
    require_columns(meta, [*treat, *pos_diffby, *neg_sameby])
    if control is not None:
        is_ctrl = select(meta, control)
        if not is_ctrl.any():
            raise DataError(f"replicate mAP: no control profile matches {describe(control)}")
        # copairs' recipe: each control its own reference index (never a positive), treatments share -1
        meta[REFERENCE_COLUMN] = np.where(is_ctrl, np.arange(len(meta)), -1)
        ap = _copairs_ap(profiles, meta, [*treat, REFERENCE_COLUMN], list(pos_diffby), list(neg_sameby),
                         [*treat, REFERENCE_COLUMN], distance)
        query = ~is_ctrl
    else:
        ap = _copairs_ap(profiles, meta, treat, list(pos_diffby), list(neg_sameby), treat, distance)
        query = None
    summary, maps = _map_summary(ap, treat, null_size=null_size, threshold=threshold, seed=seed,
                                 query_mask=query)
    summary.update(kind="replicate", control=describe(control) if control else None,
                   pos_diffby=list(pos_diffby), neg_sameby=list(neg_sameby))
    return summary, maps, ap.drop(columns=[REFERENCE_COLUMN], errors="ignore")


def label_map(
    profiles: np.ndarray,
    pmeta: pd.DataFrame,
    label_column: str,
    *,
    pos_diffby: Sequence[str] = (),
    exclude: Selector | None = None,
    distance: str = "cosine",
    null_size: int = 10000,
    threshold: float = 0.05,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Same-label retrieval (phenotypic consistency) mAP per label, with copairs.

    Positives: same ``label_column`` (and different ``pos_diffby``, e.g. ``["compound"]``);
    negatives: different label. Profiles matching ``exclude`` (e.g. controls) are left out.

    Returns:
        ``(summary, map per label, AP per profile)``.
    """
    meta = pmeta.reset_index(drop=True)
    require_columns(meta, [label_column, *pos_diffby])
    feats = np.asarray(profiles)
    if exclude is not None:
        keep = ~select(meta, exclude)
        meta, feats = meta.loc[keep].reset_index(drop=True), feats[keep]
    ap = _copairs_ap(feats, meta, [label_column], list(pos_diffby), [], [label_column], distance)
    summary, maps = _map_summary(ap, [label_column], null_size=null_size, threshold=threshold, seed=seed)
    summary.update(kind="label", label_column=label_column, pos_diffby=list(pos_diffby),
                   excluded=describe(exclude) if exclude else None)
    return summary, maps, ap


def nsc_accuracy(
    profiles: np.ndarray,
    pmeta: pd.DataFrame,
    label_column: str,
    compound_column: str,
    *,
    batch_column: str | None = None,
    exclude: Selector | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Not-same-compound 1-NN accuracy (BBBC021): each profile takes the label of its most
    cosine-similar profile of another compound (NSC), and also of another batch (NSCB) when
    ``batch_column`` is given. Profiles with no eligible neighbour are left out (counted).

    Example:
        >>> p = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
        >>> m = pd.DataFrame({"moa": ["a", "a", "b", "b"], "cpd": ["c1", "c2", "c3", "c4"]})
        >>> nsc_accuracy(p, m, "moa", "cpd")[0]["nsc"]
        1.0
    """
    meta = pmeta.reset_index(drop=True)
    require_columns(meta, [label_column, compound_column] + ([batch_column] if batch_column else []))
    x = np.asarray(profiles, dtype=np.float64)
    if exclude is not None:
        keep = ~select(meta, exclude)
        meta, x = meta.loc[keep].reset_index(drop=True), x[keep]
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    labels = meta[label_column].astype(str).to_numpy()
    cpd = meta[compound_column].astype(str).to_numpy()
    table = meta.copy()
    summary: dict[str, Any] = {"label_column": label_column, "compound_column": compound_column,
                               "batch_column": batch_column}
    variants = {"nsc": cpd[:, None] == cpd[None, :]}
    if batch_column:
        batch = meta[batch_column].astype(str).to_numpy()
        variants["nscb"] = variants["nsc"] | (batch[:, None] == batch[None, :])
    for name, banned in variants.items():
        s = np.where(banned, -np.inf, sim)
        nn = s.argmax(axis=1)
        ok = np.isfinite(s[np.arange(len(s)), nn])
        pred = np.where(ok, labels[nn], None)
        table[f"{name}_predicted"] = pred
        summary[name] = float((pred[ok] == labels[ok]).mean()) if ok.any() else None
        summary[f"{name}_n"] = int(ok.sum())
    if batch_column and summary["nsc"] is not None and summary["nscb"] is not None:
        summary["drop"] = summary["nsc"] - summary["nscb"]
    return summary, table


def map_bootstrap(
    ap: pd.DataFrame, map_by: Sequence[str], *, query_mask: np.ndarray | None = None,
    n_boot: int = 1000, seed: int = 0,
) -> dict[str, Any]:
    """Percentile CI of ``mean_map`` (mean over groups of the groups' mean AP) over resampled query
    profiles; the ``bootstrap`` block of an mAP summary (:func:`biorep.evaluate.stats.ci_record`)."""
    from biorep.evaluate.stats import ci_record

    queries = ap if query_mask is None else ap.loc[np.asarray(query_mask, dtype=bool)]
    valid = queries[queries["n_pos_pairs"] > 0].reset_index(drop=True)
    keys = valid[list(map_by)].astype(str).agg("/".join, axis=1).to_numpy()
    codes, _ = pd.factorize(keys)
    apv = valid["average_precision"].to_numpy(dtype=np.float64)

    def stat(idx: np.ndarray) -> float:
        sums = np.bincount(codes[idx], weights=apv[idx])
        counts = np.bincount(codes[idx])
        present = counts > 0
        return float(np.mean(sums[present] / counts[present]))

    return ci_record(stat, len(valid), metric="mean_map", n_boot=n_boot, seed=seed, by=["query profile"])


# -- registry adapters -----------------------------------------------------------------------------
def sphere_to_controls(
    x: np.ndarray, meta: pd.DataFrame, control: Selector, *, method: str = "zca", epsilon: float = 1e-6
) -> np.ndarray:
    """Whiten ``x`` with a sphering map fitted on the rows matching ``control`` (see
    :func:`biorep.evaluate.sphering.fit_sphering`): afterwards the controls have identity covariance."""
    from biorep.evaluate.sphering import fit_sphering

    is_ctrl = select(meta, control)
    if is_ctrl.sum() < 2:
        raise DataError(f"sphering: needs at least 2 control samples ({describe(control)}), "
                        f"found {int(is_ctrl.sum())}")
    sph = fit_sphering(np.asarray(x)[is_ctrl], method=method, epsilon=epsilon)
    return sph.transform(x).astype(np.float32)


def _profiles_from_ctx(
    ctx: EvalContext, by: Sequence[str], keep: Sequence[str], how: str,
    normalize: str | None, control: Mapping[str, Any] | None, normalize_by: str | Sequence[str] | None,
    sphere: str | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    _, test = ctx.split()
    z, meta = ctx.embeddings[test], ctx.meta.iloc[test].reset_index(drop=True)
    if (normalize is not None or sphere is not None) and control is None:
        raise ConfigError("profile normalisation and sphering need a control selector (control=...)")
    if normalize is not None:
        z = normalize_to_controls(z, meta, control, by=normalize_by, method=normalize)
    if sphere is not None:
        z = sphere_to_controls(z, meta, control, method=sphere)
    keep = [c for c in dict.fromkeys(keep) if c not in by]
    return aggregate_profiles(z, meta, by, how=how, keep=keep)


@EVALUATIONS.register("replicate_map")
def run_replicate_map(
    ctx: EvalContext,
    *,
    treatment: list[str],
    profile_by: list[str] | None = None,
    control: Mapping[str, Any] | None = None,
    pos_diffby: list[str] | None = None,
    neg_sameby: list[str] | None = None,
    how: str = "mean",
    normalize: str | None = None,
    normalize_by: str | list[str] | None = None,
    sphere: str | None = None,
    null_size: int = 10000,
    threshold: float = 0.05,
    bootstrap: int = 0,
    seed: int = 0,
) -> EvalResult:
    """Replicate-retrieval mAP on profiles aggregated by ``profile_by`` (default: ``treatment`` +
    ``pos_diffby``, e.g. one profile per compound × dose × plate), after optional per-group
    normalisation of the single-sample embeddings against ``control`` and optional sphering
    (``sphere``: ``zca`` | ``zca-cor``, fitted on the controls); ``bootstrap`` > 0 adds a CI."""
    pos_diffby, neg_sameby = as_list(pos_diffby), as_list(neg_sameby)
    by = as_list(profile_by) or list(dict.fromkeys([*as_list(treatment), *pos_diffby, *neg_sameby]))
    keep = [*as_list(treatment), *pos_diffby, *neg_sameby, *(list(control) if control else [])]
    p, pm = _profiles_from_ctx(ctx, by, keep, how, normalize, control, normalize_by, sphere)
    summary, maps, ap = replicate_map(p, pm, treatment, control=control, pos_diffby=pos_diffby,
                                      neg_sameby=neg_sameby, null_size=null_size, threshold=threshold,
                                      seed=seed)
    summary.update(profile_by=by, n_profiles=len(pm), normalize=normalize, sphere=sphere)
    if bootstrap:
        query = ~select(pm.reset_index(drop=True), control) if control is not None else None
        summary["bootstrap"] = map_bootstrap(ap, as_list(treatment), query_mask=query, n_boot=bootstrap,
                                             seed=seed)
    return EvalResult("replicate_map", summary, maps)


@EVALUATIONS.register("label_map")
def run_label_map(
    ctx: EvalContext,
    *,
    profile_by: list[str],
    label_column: str | None = None,
    pos_diffby: list[str] | None = None,
    exclude: Mapping[str, Any] | None = None,
    control: Mapping[str, Any] | None = None,
    how: str = "mean",
    normalize: str | None = None,
    normalize_by: str | list[str] | None = None,
    sphere: str | None = None,
    null_size: int = 10000,
    threshold: float = 0.05,
    bootstrap: int = 0,
    seed: int = 0,
) -> EvalResult:
    """Same-label mAP on profiles aggregated by ``profile_by`` (label defaults to ``ctx.label_column``),
    after optional normalisation and sphering against ``control``; ``bootstrap`` > 0 adds a CI."""
    label = label_column or ctx.label_column
    if label is None:
        raise ConfigError("label_map needs label_column")
    pos_diffby = as_list(pos_diffby)
    keep = [label, *pos_diffby, *(list(exclude) if exclude else []), *(list(control) if control else [])]
    p, pm = _profiles_from_ctx(ctx, as_list(profile_by), keep, how, normalize, control, normalize_by, sphere)
    summary, maps, ap = label_map(p, pm, label, pos_diffby=pos_diffby, exclude=exclude,
                                  null_size=null_size, threshold=threshold, seed=seed)
    summary.update(profile_by=as_list(profile_by), n_profiles=len(pm), normalize=normalize, sphere=sphere)
    if bootstrap:
        summary["bootstrap"] = map_bootstrap(ap, [label], n_boot=bootstrap, seed=seed)
    return EvalResult("label_map", summary, maps)


def _sphered(fn: Any, name: str) -> Any:
    """``fn`` registered again as ``name`` with ``sphere="zca"`` by default (same options)."""
    import functools
    import inspect

    sig = inspect.signature(fn)
    params = [p.replace(default="zca") if p.name == "sphere" else p for p in sig.parameters.values()]

    @functools.wraps(fn)
    def run(ctx: EvalContext, **options: Any) -> EvalResult:
        options.setdefault("sphere", "zca")
        result = fn(ctx, **options)
        result.name = name
        return result

    run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    run.__doc__ = f"{fn.__name__} with sphering fitted on the controls (``sphere`` defaults to 'zca')."
    return EVALUATIONS.register(name)(run)


run_replicate_map_sphered = _sphered(run_replicate_map, "replicate_map_sphered")
run_label_map_sphered = _sphered(run_label_map, "label_map_sphered")


@EVALUATIONS.register("nsc")
def run_nsc(
    ctx: EvalContext,
    *,
    profile_by: list[str],
    compound_column: str,
    label_column: str | None = None,
    batch_column: str | None = None,
    exclude: Mapping[str, Any] | None = None,
    control: Mapping[str, Any] | None = None,
    how: str = "median",
    normalize: str | None = None,
    normalize_by: str | list[str] | None = None,
) -> EvalResult:
    """NSC / NSCB 1-NN accuracy on profiles aggregated by ``profile_by`` (e.g. compound × dose)."""
    label = label_column or ctx.label_column
    if label is None:
        raise ConfigError("nsc needs label_column")
    keep = [label, compound_column, *([batch_column] if batch_column else []),
            *(list(exclude) if exclude else []), *(list(control) if control else [])]
    p, pm = _profiles_from_ctx(ctx, as_list(profile_by), keep, how, normalize, control, normalize_by)
    summary, table = nsc_accuracy(p, pm, label, compound_column, batch_column=batch_column, exclude=exclude)
    summary.update(profile_by=as_list(profile_by), n_profiles=len(pm))
    return EvalResult("nsc", summary, table)
