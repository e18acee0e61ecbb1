"""``biorep review``: an interactive karyotype review page — one self-contained HTML file.

Each karyogram is laid out by assigned class (rows 1–5, 6–12, 13–18, 19–22 + X + Y, and a slot for
crops that are not a chromosome); crops the assembly changed or doubts are framed in red. A person
drags a crop to another class (or clicks it and picks the class), marks crops to look at again, and
exports the corrections as a CSV manifest (``path, karyogram, predicted, label, corrected, marked,
argmax, p_predicted``) that ``biorep train`` reads as data (``label`` is the person's class).

Why one self-contained file rather than a small local server: the page must travel — a lab reviews
on whatever machine it has, often without Python, and mails the page or the exported CSV; a file
needs no port, no process to keep alive, no CORS or authentication, and works offline. Everything a
person changes lives in the page until they export it; the export is a download (a Blob), so no
server is needed to write it. The price is size (crops are embedded as small PNGs, ~1–3 kB each), which
stays small for the tens of karyograms a review session covers.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biorep.errors import RunDirError
from biorep.report.crops import crop_png, data_uri, load_crop
from biorep.report.karyogram import KARYOGRAM_ROWS, canonical_class
from biorep.report.templating import render
from biorep.rundir import CORRECTIONS, REVIEW, atomic_write_text

__all__ = ["REVIEW_FILE", "EXPORT_FILE", "render_review", "review_data", "write_review"]

#: Default name of the review page in the run directory, and of the CSV it exports.
REVIEW_FILE = REVIEW
EXPORT_FILE = CORRECTIONS
#: Copies per class in a normal cell (X counts up to 2, Y up to 1): slots over it are shown in red.
EXPECTED = {**{str(i): 2 for i in range(1, 23)}, "X": 2, "Y": 1}
#: Median crop height on the page (CSS px): crops share one scale so sizes stay comparable.
TARGET_HEIGHT = 64.0


def _order(crops: pd.DataFrame) -> list[str]:
    from biorep.report.figures import natural_key

    flagged = crops.groupby("karyogram", sort=False)["flagged"].any().to_dict()
    return sorted(flagged, key=lambda k: (not flagged[k], natural_key(k)))


def review_data(crops: pd.DataFrame, *, karyograms: Sequence[str] | None = None,
                max_karyograms: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """The page's data (karyograms, crops as embedded PNGs) and the problems met reading crops.

    ``crops`` is the assembly table (:func:`biorep.evaluate.karyotype_run.assemble_run`): ``karyogram``,
    ``file``, ``path``, ``argmax``, ``assigned``, ``p_assigned``, ``doubtful``, ``flagged``, ``reason``.
    """
    crops = crops.copy()
    crops["karyogram"] = crops["karyogram"].astype(str)
    order = _order(crops)
    if karyograms:
        wanted = [str(k) for k in karyograms]
        missing = sorted(set(wanted) - set(order))
        if missing:
            raise RunDirError(f"karyogram(s) {', '.join(missing)} not in the assembly "
                              f"(there: {', '.join(order[:10])}{' …' if len(order) > 10 else ''})")
        order = [k for k in order if k in wanted]
    if max_karyograms is not None:
        order = order[:max_karyograms]
    problems: list[str] = []
    loaded: dict[int, np.ndarray | None] = {}
    rows = crops[crops["karyogram"].isin(order)]
    for i, r in rows.iterrows():
        img, why = load_crop(r.get("file"))
        loaded[i] = img
        if why:
            problems.append(why)
    heights = [im.shape[0] for im in loaded.values() if im is not None] or [TARGET_HEIGHT]
    scale = float(np.clip(TARGET_HEIGHT / float(np.median(heights)), 0.25, 4.0))
    blank = np.full((40, 12), 200, np.uint8)
    out = []
    for k in order:
        kr = rows[rows["karyogram"] == k]
        items = []
        for i, r in kr.iterrows():
            img = loaded[i] if loaded[i] is not None else blank
            h, w = img.shape[:2]
            slot = canonical_class(r["assigned"]) or "unassigned"
            why = ""
            if bool(r.get("changed", False)):
                why = f"changed by the assembly (argmax {r['argmax']})"
            elif bool(r["doubtful"]):
                why = f"p = {float(r['p_assigned']):.2f}"
            items.append({
                "id": str(len(items)) + "-" + str(len(out)), "src": data_uri(crop_png(img, max_side=512)),
                "w": max(1, round(w * scale)), "h": max(1, round(h * scale)),
                "file": str(r.get("file") if isinstance(r.get("file"), str) else r["path"]),
                "name": Path(str(r["path"])).name, "assigned": slot if slot != "unassigned" else "",
                "slot": slot, "argmax": str(r["argmax"]), "p": float(r["p_assigned"]),
                "doubtful": bool(r["doubtful"]), "why": why,
            })
        flagged = bool(kr["flagged"].any())
        reason = next((str(x) for x in kr["reason"] if isinstance(x, str) and x), "") if flagged else ""
        sex = next((str(x) for x in kr["sex"] if isinstance(x, str) and x), None) if "sex" in kr else None
        n_doubt = int(kr["doubtful"].astype(bool).sum())
        out.append({"name": k, "flagged": flagged, "reason": reason, "n_doubtful": n_doubt,
                    "info": f"{len(items)} crops · {n_doubt} doubtful" + (f" · {sex}" if sex else ""),
                    "crops": items})
    data = {"karyograms": out, "rows": [list(r) for r in KARYOGRAM_ROWS], "expected": EXPECTED,
            "export_name": EXPORT_FILE}
    return data, sorted(set(problems))


def render_review(crops: pd.DataFrame, *, title: str, subtitle: str = "", doubt_threshold: float = 0.5,
                  karyograms: Sequence[str] | None = None, max_karyograms: int | None = None) -> str:
    """The review page's HTML text (see the module docstring)."""
    data, problems = review_data(crops, karyograms=karyograms, max_karyograms=max_karyograms)
    if not data["karyograms"]:
        raise RunDirError("the assembly has no karyogram to review")
    if problems:
        subtitle = f"{subtitle} · {len(problems)} crop image(s) could not be read: {problems[0]}"
    return render("review.html.j2", title=title, subtitle=subtitle, data=data,
                  karyograms=data["karyograms"], doubt_threshold=doubt_threshold)


def write_review(crops: pd.DataFrame, out: str | os.PathLike[str], *, title: str, subtitle: str = "",
                 doubt_threshold: float = 0.5, karyograms: Sequence[str] | None = None,
                 max_karyograms: int | None = None, overwrite: bool = False) -> Path:
    """Write the review page for an assembly table to ``out`` (atomically); returns the path."""
    out = Path(out)
    if out.is_dir():
        raise RunDirError(f"review path {out} is a directory; give a file name such as {out / REVIEW_FILE}")
    if out.exists() and not overwrite:
        raise RunDirError(f"{out} already exists; pass --overwrite to replace it")
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    text = render_review(crops, title=title, subtitle=f"{subtitle} · made {stamp}".strip(" ·"),
                         doubt_threshold=doubt_threshold, karyograms=karyograms,
                         max_karyograms=max_karyograms)
    return atomic_write_text(out, text)
