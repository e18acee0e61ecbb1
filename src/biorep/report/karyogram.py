"""Karyogram figure: chromosome crops laid out by class in the classic karyogram rows.

Hand-written because no plotting library lays out karyograms: matplotlib only draws the crops.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from biorep.report.png import DPI as _DPI
from biorep.report.png import to_png

#: Classic karyogram rows: 1–5, 6–12, 13–18, 19–22 + X + Y.
KARYOGRAM_ROWS: tuple[tuple[str, ...], ...] = (
    tuple(str(i) for i in range(1, 6)),
    tuple(str(i) for i in range(6, 13)),
    tuple(str(i) for i in range(13, 19)),
    tuple(str(i) for i in range(19, 23)) + ("X", "Y"),
)
KARYOGRAM_CLASSES: tuple[str, ...] = tuple(c for row in KARYOGRAM_ROWS for c in row)

_PREFIX = re.compile(r"^(chromosome|chr|clase|class)[\s_-]*", flags=re.IGNORECASE)
_FIG_WIDTH_IN = 11.0
_FONT_PT = 9.0


def canonical_class(name: object) -> str | None:
    """Map a class name to its karyogram slot (``"1"``..``"22"``, ``"X"``, ``"Y"``) or ``None``.

    Accepts ``"7"``, ``7``, ``"chr7"``, ``"clase7"``, ``"x"``; ``23``/``24`` are X/Y (the PKI-3 folder
    numbering). Anything else (``None``, ``""``, ``"25"``) is unassigned.

    Example:
        >>> canonical_class("chr7"), canonical_class(23), canonical_class(None)
        ('7', 'X', None)
    """
    if name is None:
        return None
    if isinstance(name, float) and not np.isfinite(name):
        return None
    text = _PREFIX.sub("", str(name).strip())
    if text.isdigit():
        number = int(text)
        if 1 <= number <= 22:
            return str(number)
        return {23: "X", 24: "Y"}.get(number)
    upper = text.upper()
    return upper if upper in {"X", "Y"} else None


def _as_2d(crop: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(crop)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.squeeze(axis=0 if arr.shape[0] == 1 else -1)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"crop {index} must be a non-empty 2-D image, got shape {np.asarray(crop).shape}")
    return arr


def _display_range(arr: np.ndarray) -> tuple[float, float]:
    if arr.dtype == np.uint8:
        return 0.0, 255.0
    if arr.dtype == bool:
        return 0.0, 1.0
    low, high = float(np.nanmin(arr)), float(np.nanmax(arr))
    return (low, high) if high > low else (low, low + 1.0)


def render_karyogram(
    crops: Sequence[np.ndarray],
    assigned: Sequence[str | None],
    doubtful: Sequence[bool] | None = None,
    title: str = "",
) -> bytes:
    """Draw a karyogram: crops grouped by class in rows 1–5, 6–12, 13–18, 19–22 + X + Y.

    All crops share one pixel scale, so chromosome sizes stay comparable. Each slot is labelled with
    its class; doubtful assignments get a red frame and a red ``?``; crops whose class is not one of
    the 24 (``None``, ``""``, an unknown name) go to a separate "unassigned" slot below, captioned
    with their given name when they have one.

    Args:
        crops: 2-D grey images (``(1, H, W)`` / ``(H, W, 1)`` are squeezed); uint8 is shown on 0–255,
            other dtypes on their own min–max.
        assigned: the class of each crop (see :func:`canonical_class`).
        doubtful: per crop, whether the assignment is uncertain; default all ``False``.
        title: figure title.

    Returns:
        PNG bytes.

    Raises:
        ValueError: when the three sequences differ in length or a crop is not 2-D.

    Example:
        >>> import numpy as np
        >>> crops = [np.full((30, 10), 200, np.uint8) for _ in range(3)]
        >>> png = render_karyogram(crops, ["1", "1", None], [False, True, False], "case 17")
        >>> png[:4] == b"\\x89PNG"
        True
    """
    doubtful = [False] * len(crops) if doubtful is None else list(doubtful)
    if not len(crops) == len(assigned) == len(doubtful):
        raise ValueError(
            f"crops ({len(crops)}), assigned ({len(assigned)}) and doubtful ({len(doubtful)}) "
            "must have the same length"
        )
    images = [_as_2d(c, i) for i, c in enumerate(crops)]
    slots: dict[str, list[int]] = {c: [] for c in KARYOGRAM_CLASSES}
    unassigned: list[int] = []
    for i, name in enumerate(assigned):
        cls = canonical_class(name)
        (slots[cls] if cls is not None else unassigned).append(i)

    widths = [im.shape[1] for im in images] or [20]
    heights = [im.shape[0] for im in images] or [60]
    med_w, med_h = float(np.median(widths)), float(np.median(heights))
    gap = max(2.0, 0.2 * med_w)  # between crops in one slot
    slot_gap = max(3 * gap, 0.8 * med_w)  # minimum between slots

    def content_width(idx: list[int]) -> float:
        if not idx:
            return 1.5 * med_w
        return sum(images[i].shape[1] for i in idx) + gap * (len(idx) - 1)

    row_widths = [
        sum(content_width(slots[c]) for c in row) + slot_gap * (len(row) + 1) for row in KARYOGRAM_ROWS
    ]
    total_w = max(row_widths + [max(widths) + 2 * slot_gap])

    # Text sizes in data units: the figure is _FIG_WIDTH_IN wide, so one data unit is this many pixels.
    px_per_unit = _FIG_WIDTH_IN * _DPI / total_w
    text_h = _FONT_PT / 72.0 * _DPI / px_per_unit
    top_band, label_band = 1.6 * text_h, 2.4 * text_h

    # Unassigned crops wrap onto as many lines as needed within the total width.
    unassigned_lines: list[list[int]] = []
    line: list[int] = []
    used = slot_gap
    for i in unassigned:
        w = images[i].shape[1]
        if line and used + w + gap > total_w - slot_gap:
            unassigned_lines.append(line)
            line, used = [], slot_gap
        line.append(i)
        used += w + gap
    if line:
        unassigned_lines.append(line)

    row_heights = [
        max([images[i].shape[0] for c in row for i in slots[c]] or [med_h]) for row in KARYOGRAM_ROWS
    ]
    un_heights = [max(images[i].shape[0] for i in ln) for ln in unassigned_lines]
    caption_band = label_band if any(assigned[i] not in (None, "") for i in unassigned) else 0.0
    total_h = sum(top_band + h + label_band for h in row_heights)
    if unassigned_lines:
        total_h += 2.0 * text_h + sum(top_band + h + caption_band for h in un_heights) + text_h

    fig_h = float(np.clip(total_h * px_per_unit / _DPI, 2.0, 40.0))
    fig = Figure(figsize=(_FIG_WIDTH_IN, fig_h))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, total_w)
    ax.set_ylim(total_h, 0)
    ax.set_axis_off()
    fontsize = _FONT_PT

    def draw_crop(i: int, x: float, baseline: float) -> None:
        im = images[i]
        h, w = im.shape
        top = baseline - h
        vmin, vmax = _display_range(im)
        ax.imshow(
            im,
            cmap="gray",
            vmin=vmin,
            vmax=vmax,
            extent=(x, x + w, baseline, top),
            interpolation="nearest",
            aspect="auto",
        )
        if doubtful[i]:
            ax.add_patch(
                Rectangle((x - 0.5, top - 0.5), w + 1, h + 1, fill=False, edgecolor="red", linewidth=1.6)
            )
            ax.text(
                x + w,
                top - 0.2 * text_h,
                "?",
                color="red",
                fontsize=fontsize + 1,
                ha="center",
                va="bottom",
                fontweight="bold",
            )

    y = 0.0
    for row, row_h in zip(KARYOGRAM_ROWS, row_heights):
        baseline = y + top_band + row_h
        contents = [content_width(slots[c]) for c in row]
        spacing = (total_w - sum(contents)) / (len(row) + 1)
        x = spacing
        for cls, width in zip(row, contents):
            cx = x
            for i in slots[cls]:
                draw_crop(i, cx, baseline)
                cx += images[i].shape[1] + gap
            ax.plot(
                [x - 0.15 * gap, x + width + 0.15 * gap],
                [baseline + 0.25 * text_h] * 2,
                color="black",
                linewidth=1.0,
            )
            n_doubt = sum(doubtful[i] for i in slots[cls])
            label = cls if not n_doubt else f"{cls} ({n_doubt}?)"
            ax.text(
                x + width / 2,
                baseline + 0.45 * text_h,
                label,
                ha="center",
                va="top",
                fontsize=fontsize,
                color="red" if n_doubt else "black",
            )
            x += width + spacing
        y = baseline + label_band

    if unassigned_lines:
        y += text_h
        ax.text(
            slot_gap * 0.5,
            y,
            f"unassigned ({len(unassigned)})",
            ha="left",
            va="top",
            fontsize=fontsize,
            fontstyle="italic",
        )
        frame_top = y - 0.3 * text_h
        y += 1.4 * text_h
        for ln, line_h in zip(unassigned_lines, un_heights):
            baseline = y + top_band + line_h
            x = slot_gap
            for i in ln:
                draw_crop(i, x, baseline)
                if caption_band and assigned[i] not in (None, ""):
                    ax.text(
                        x + images[i].shape[1] / 2,
                        baseline + 0.3 * text_h,
                        str(assigned[i]),
                        ha="center",
                        va="top",
                        fontsize=fontsize - 2,
                        color="dimgray",
                    )
                x += images[i].shape[1] + gap
            y = baseline + caption_band
        ax.add_patch(
            Rectangle(
                (0.25 * slot_gap, frame_top),
                total_w - 0.5 * slot_gap,
                y - frame_top + 0.5 * text_h,
                fill=False,
                edgecolor="gray",
                linestyle="--",
                linewidth=0.8,
            )
        )
    if title:
        ax.set_title(title, fontsize=fontsize + 3, pad=4)
    return to_png(fig)


def _grey(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else img.mean(axis=2).astype(np.uint8)


def draw_karyograms(crops: Any, out_dir: Path, max_images: int = 12) -> list[str]:
    """Draw one karyogram PNG per karyogram of an assembly table into ``out_dir``, from the crop files.

    ``crops`` is the ``assignments.csv`` table of :func:`biorep.evaluate.karyotype_run.assemble_run`
    (``karyogram``, ``file``, ``assigned``, ``doubtful``, ``flagged``). Flagged karyograms come first,
    then by name; at most ``max_images`` are drawn and PNGs of earlier calls that are not redrawn are
    removed. A crop whose file cannot be read is drawn as a grey box. Returns the file names written.
    """
    from biorep.report.crops import load_crop
    from biorep.rundir import atomic_write_bytes

    out_dir = Path(out_dir)
    flagged = crops.groupby("karyogram", sort=False)["flagged"].any().to_dict()
    order = sorted(flagged, key=lambda k: (not flagged[k], _natural_key(str(k))))
    names: list[str] = []
    for k in order[:max_images]:
        rows = crops[crops["karyogram"] == k]
        pics = []
        for f in rows["file"] if "file" in rows.columns else [None] * len(rows):
            img, _ = load_crop(f)
            pics.append(_grey(img) if img is not None else np.full((40, 12), 160, np.uint8))
        flag = " — flagged" if bool(rows["flagged"].any()) else ""
        png = render_karyogram(pics, rows["assigned"].tolist(), rows["doubtful"].astype(bool).tolist(),
                               title=f"karyogram {k}{flag}")
        name = f"{_slug(str(k))}.png"
        atomic_write_bytes(out_dir / name, png)
        names.append(name)
    for old in out_dir.glob("*.png"):
        if old.name not in names:
            old.unlink(missing_ok=True)
    return names


def _natural_key(s: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "karyogram"
