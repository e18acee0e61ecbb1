"""Karyotype assembly: assign a karyogram's crops to chromosome classes under the cell's constraint.

A normal human cell holds two of each autosome (1–22) and either XX or XY. Given per-crop class
probabilities, each karyogram is solved as an optimal assignment (Hungarian algorithm,
``scipy.optimize.linear_sum_assignment``) of crops to *slots* — two per autosome plus ``X, X``
(female) or ``X, Y`` (male) — minimising the total ``−log p``; both sexes are tried and the cheaper
kept. Fewer crops than slots is fine (slots stay empty). Hand-written because no library offers the
karyotype constraint; the solver itself is scipy's.

Karyograms are *flagged* — and keep their argmax predictions, with the reason — when the constraint
cannot hold: more crops than ``expected_count`` (46: aneuploid cell, stray object or a wrong
grouping), or an assignment whose mean extra cost per crop over the unconstrained argmax exceeds
``max_cost_per_crop`` nats. A crop is *doubtful* when its final class has probability below
``doubt_threshold`` or differs from its argmax.

Example:
    >>> crops, summary = assemble_karyotypes(probs, meta, classes, karyogram_column="karyogram",
    ...                                      label_column="chromosome")  # doctest: +SKIP
    >>> summary["accuracy_argmax"], summary["accuracy_assigned"]  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from biorep.errors import ConfigError, DataError
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult, require_columns

AUTOSOMES: tuple[str, ...] = tuple(str(i) for i in range(1, 23))
CHROMOSOMES: tuple[str, ...] = (*AUTOSOMES, "X", "Y")
SEX_SLOTS: dict[str, tuple[str, ...]] = {"XX": ("X", "X"), "XY": ("X", "Y")}
EXPECTED_COUNT = 46


def canonical_chromosome(name: Any) -> str:
    """``"chr01"``, ``"1"``, ``1`` → ``"1"``; ``"x"``/``"chrX"`` → ``"X"``; other names unchanged (stripped)."""
    s = str(name).strip()
    m = re.fullmatch(r"(?i)(?:chr(?:omosome)?[\s_-]?)?0*(\d+|x|y)", s)
    if not m:
        return s
    return m.group(1).upper()


def chromosome_columns(classes: Sequence[Any], aliases: Mapping[str, str] | None = None) -> dict[str, int]:
    """Map each of ``1..22, X, Y`` to its column in the classifier's class list.

    ``aliases`` renames classes first (e.g. ``{"23": "X", "24": "Y"}`` for folder-numbered classes).
    Extra classes (e.g. an "unassigned" class) are allowed and never receive a slot.

    Raises:
        ConfigError: a chromosome class is missing or appears twice.
    """
    aliases = {canonical_chromosome(k): canonical_chromosome(v) for k, v in (aliases or {}).items()}
    names = [aliases.get(canonical_chromosome(c), canonical_chromosome(c)) for c in classes]
    found: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in CHROMOSOMES:
            if n in found:
                raise ConfigError(f"karyotype: class {n!r} appears twice in the class list {list(classes)}")
            found[n] = i
    missing = [c for c in CHROMOSOMES if c not in found]
    if missing:
        raise ConfigError(
            f"karyotype: the classifier's classes {list(classes)} lack {missing}; karyotype assembly "
            "needs 1..22, X and Y (pass aliases, e.g. {'23': 'X', '24': 'Y'}, for numbered classes)"
        )
    return found


def _slots(sex: str) -> list[str]:
    return [c for c in AUTOSOMES for _ in range(2)] + list(SEX_SLOTS[sex])


def assign_karyogram(logp: np.ndarray) -> tuple[np.ndarray, str, float]:
    """Optimal constrained assignment of one karyogram.

    Args:
        logp: ``(n, 24)`` log-probabilities in :data:`CHROMOSOMES` order.

    Returns:
        ``(assigned column per crop, −1 for crops left without a slot; chosen sex; total −log p)``.
    """
    best: tuple[np.ndarray, str, float] | None = None
    col = {c: i for i, c in enumerate(CHROMOSOMES)}
    for sex in SEX_SLOTS:
        slot_cols = np.array([col[c] for c in _slots(sex)])
        cost = -logp[:, slot_cols]
        rows, slots = linear_sum_assignment(cost)
        total = float(cost[rows, slots].sum())
        assigned = np.full(len(logp), -1, dtype=np.int64)
        assigned[rows] = slot_cols[slots]
        if best is None or total < best[2] - 1e-9:
            best = (assigned, sex, total)
    assert best is not None
    return best


def assemble_karyotypes(
    probs: np.ndarray,
    meta: pd.DataFrame,
    classes: Sequence[Any],
    *,
    karyogram_column: str = "karyogram",
    label_column: str | None = None,
    aliases: Mapping[str, str] | None = None,
    expected_count: int = EXPECTED_COUNT,
    max_cost_per_crop: float = 1.0,
    doubt_threshold: float = 0.5,
    eps: float = 1e-9,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Constrained class assignment for every karyogram.

    Args:
        probs: ``(N, K)`` class probabilities of the crops (columns = ``classes``).
        meta: ``N`` rows with ``karyogram_column`` (and ``label_column`` for accuracies).
        classes: the classifier's class names; must include ``1..22, X, Y`` (after ``aliases``).
        expected_count: crops of a complete normal karyogram; more crops than that → flagged.
        max_cost_per_crop: flag when the constrained solution costs more than this many nats per crop
            above the argmax solution (the constraint fights the classifier too much to be trusted).
        doubt_threshold: a crop is doubtful when its final class probability is below this.

    Returns:
        ``(crops, summary)``. ``crops``: one row per input row with ``karyogram``, ``true`` (or None),
        ``argmax``, ``assigned`` (the final call: the constrained class, or the argmax for flagged
        karyograms and crops left without a slot), ``p_argmax``, ``p_assigned``, ``changed``,
        ``doubtful``, ``flagged``, ``reason`` (why a karyogram was flagged, or that a crop found no
        slot when ``expected_count`` allows more crops than slots), ``sex``. ``summary``: counts, accuracies (argmax vs
        assigned, overall and on unflagged karyograms), flag reasons and sex calls.
    """
    probs = np.asarray(probs, dtype=np.float64)
    meta = meta.reset_index(drop=True)
    if probs.ndim != 2 or len(probs) != len(meta) or probs.shape[1] != len(classes):
        raise DataError(f"karyotype: probabilities {probs.shape} do not match {len(meta)} crops × "
                        f"{len(classes)} classes")
    if not np.isfinite(probs).all():
        bad = int((~np.isfinite(probs)).any(axis=1).sum())
        raise DataError(f"karyotype: the classifier's probabilities are not finite (NaN/inf) for {bad} of "
                        f"{len(probs)} crops — the run's weights diverged; retrain it (lower train.lr, or "
                        "train.precision 32)")
    if karyogram_column not in meta.columns:
        raise DataError(f"no karyogram column {karyogram_column!r} (the column naming each crop's "
                        f"karyogram; choose one with -o karyogram_column=NAME); available: "
                        + ", ".join(map(str, meta.columns)))
    require_columns(meta, [label_column] if label_column else [])
    cols = chromosome_columns(classes, aliases)
    chrom_cols = np.array([cols[c] for c in CHROMOSOMES])
    # the argmax among the chromosome classes (extra classes such as "unassigned" never win a slot)
    p24 = probs[:, chrom_cols]
    logp = np.log(np.clip(p24, eps, None))
    names = np.array(CHROMOSOMES, dtype=object)
    argmax = p24.argmax(axis=1)

    assigned = argmax.copy()
    flagged = np.zeros(len(meta), dtype=bool)
    reason = np.full(len(meta), None, dtype=object)
    sex = np.full(len(meta), None, dtype=object)
    unslotted = np.zeros(len(meta), dtype=bool)
    karyo_rows = []
    for key, idx in meta.groupby(karyogram_column, sort=True, dropna=False).indices.items():
        n = len(idx)
        why = None
        a, s, cost = assign_karyogram(logp[idx])
        excess = (cost - float(-logp[idx, argmax[idx]][a >= 0].sum())) / max(int((a >= 0).sum()), 1)
        if n > expected_count:
            why = f"{n} crops > {expected_count} (aneuploid cell or stray objects); kept argmax"
        elif excess > max_cost_per_crop:
            why = (f"constrained assignment costs {excess:.2f} nats/crop more than argmax "
                   f"(> {max_cost_per_crop}); kept argmax")
        if why is None:
            assigned[idx] = np.where(a >= 0, a, argmax[idx])
            sex[idx] = s
            unslotted[idx[a < 0]] = True
            reason[idx[a < 0]] = "no slot left for this crop; kept argmax"
        else:
            flagged[idx] = True
            reason[idx] = why
        karyo_rows.append({"karyogram": str(key), "n_crops": n, "sex": None if why else s,
                           "excess_nats_per_crop": excess, "flagged": why is not None, "reason": why})

    p_assigned = p24[np.arange(len(meta)), assigned]
    crops = pd.DataFrame({
        "karyogram": meta[karyogram_column].astype(str).to_numpy(),
        "true": (meta[label_column].map(lambda v: None if pd.isna(v) else canonical_chromosome(v)).to_numpy()
                 if label_column else None),
        "argmax": names[argmax],
        "assigned": names[assigned],
        "p_argmax": p24[np.arange(len(meta)), argmax],
        "p_assigned": p_assigned,
        "changed": assigned != argmax,
        "doubtful": (p_assigned < doubt_threshold) | (assigned != argmax) | unslotted,
        "flagged": flagged,
        "reason": reason,
        "sex": sex,
    })
    summary = _summary(crops, pd.DataFrame(karyo_rows), label_column is not None)
    summary.update(expected_count=expected_count, max_cost_per_crop=max_cost_per_crop,
                   doubt_threshold=doubt_threshold)
    return crops, summary


def _summary(crops: pd.DataFrame, karyos: pd.DataFrame, labelled: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_crops": int(len(crops)),
        "n_karyograms": int(len(karyos)),
        "n_flagged": int(karyos["flagged"].sum()) if len(karyos) else 0,
        "n_changed": int(crops["changed"].sum()),
        "n_doubtful": int(crops["doubtful"].sum()),
        "sex_calls": karyos["sex"].value_counts().to_dict() if len(karyos) else {},
        "flagged_karyograms": karyos.loc[karyos["flagged"], ["karyogram", "n_crops", "reason"]]
        .to_dict(orient="records") if len(karyos) else [],
    }
    if labelled:
        known = crops["true"].isin(CHROMOSOMES).to_numpy()
        ok = known & ~crops["flagged"].to_numpy()
        for name, mask in (("", known), ("_unflagged", ok)):
            t = crops.loc[mask, "true"].to_numpy()
            out[f"accuracy_argmax{name}"] = float((crops.loc[mask, "argmax"].to_numpy() == t).mean()) if mask.any() else None
            out[f"accuracy_assigned{name}"] = float((crops.loc[mask, "assigned"].to_numpy() == t).mean()) if mask.any() else None
        out["n_scored"] = int(known.sum())
    return out


@EVALUATIONS.register("karyotype")
def run_karyotype(
    ctx: EvalContext,
    *,
    karyogram_column: str = "karyogram",
    aliases: Mapping[str, str] | None = None,
    expected_count: int = EXPECTED_COUNT,
    max_cost_per_crop: float = 1.0,
    doubt_threshold: float = 0.5,
) -> EvalResult:
    """Registry adapter of :func:`assemble_karyotypes` on ``ctx``'s test rows (needs probs or logits)."""
    probs = ctx.probabilities()
    if probs is None:
        raise DataError("karyotype assembly needs class probabilities or logits (this model has no classifier)")
    _, test = ctx.split()
    crops, summary = assemble_karyotypes(
        probs[test], ctx.meta.iloc[test], ctx.class_names(), karyogram_column=karyogram_column,
        label_column=ctx.label_column, aliases=aliases, expected_count=expected_count,
        max_cost_per_crop=max_cost_per_crop, doubt_threshold=doubt_threshold)
    return EvalResult("karyotype", summary, crops)
