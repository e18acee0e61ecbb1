"""Where the samples come from: a class-per-folder image tree or a CSV/Parquet manifest.

A reader turns its input into a :class:`Source`: the list of files (absolute), their metadata table
(``path`` relative to the source folder + metadata columns) and the label/group defaults. Nothing is
decoded here; files are checked to exist and to stay inside the manifest's folder.

Example:
    >>> src = read_folder("my_images/")            # doctest: +SKIP
    >>> src.meta.columns.tolist()                  # doctest: +SKIP
    ['path', 'label']
"""

from __future__ import annotations

import codecs
import csv
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biorep.data.decode import image_suffixes, is_image_file
from biorep.errors import DataError

MANIFEST_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
log = logging.getLogger("biorep.data")


@dataclass
class Source:
    """Files + metadata of one data set, before decoding.

    Attributes:
        name: data set name.
        root: folder the ``path`` column is relative to.
        files: absolute paths (strings: cheap for 100k files), one per row of ``meta``.
        meta: ``path`` + metadata columns (RangeIndex).
        label_column / classes: label column and declared class order (``None`` = infer).
        group_column: default grouping column for splits.
        background: default canvas fill (raw units) or ``"auto"``.
        label_names: optional mapping from raw label values to class names (e.g. 0 → control).
    """

    name: str
    root: Path
    files: list[str]
    meta: pd.DataFrame
    label_column: str | None = None
    classes: list[str] | None = None
    group_column: str | None = None
    background: float | str = "auto"
    label_names: dict[str, str] = field(default_factory=dict)
    origin: str = ""  # what to name in error messages (manifest file or folder)


def _natural_key(s: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t]


def natural_sorted(values: list[str]) -> list[str]:
    """Sort so that ``clase2`` comes before ``clase10`` and ``9`` before ``10``."""
    return sorted(values, key=_natural_key)


def image_files_under(root: Path) -> list[str]:
    """The image files under ``root`` (any depth; hidden files and folders skipped), as paths
    starting with ``root``. Symbolic links are followed, but a folder reached twice (two links to
    it, or a link loop) is read once, with a warning: its images would otherwise count twice."""
    files: list[str] = []
    # a folder inside the tree is read at its own path (and keeps its class), never through a link to it
    own = {os.path.realpath(d): d for d, _, _ in os.walk(root)}
    seen: set[str] = set()
    again: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen or own.get(real, dirpath) != dirpath:
            again.append(Path(dirpath).relative_to(root).as_posix())
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [os.path.join(dirpath, fn) for fn in sorted(filenames) if not fn.startswith(".") and is_image_file(fn)]
    real_files = [os.path.realpath(f) for f in files]
    first: dict[str, str] = {}  # per real file, the path it keeps: its own over a link's, else the first
    for f, r in zip(files, real_files):
        if r not in first or (os.path.islink(first[r]) and not os.path.islink(f)):
            first[r] = f
    twice = [f for f, r in zip(files, real_files) if first[r] != f]
    if twice:  # a link to an image file elsewhere in the tree: the same pixels once, not twice
        log.warning("%s: %d image path(s) are symbolic links to images already found and were skipped: %s%s",
                    root, len(twice), ", ".join(twice[:3]), " ..." if len(twice) > 3 else "")
        files = [f for f, r in zip(files, real_files) if first[r] == f]
    if again:
        log.warning("%s: %d folder(s) reached a second time through a symbolic link were skipped, so no image "
                    "counts twice: %s%s", root, len(again), ", ".join(natural_sorted(again)[:3]),
                    " ..." if len(again) > 3 else "")
    return files


def _note_mixed_depths(root: Path, rel: list[str]) -> None:
    """Warn when labeled images sit at different depths (``a/x.png`` beside ``b/sub/y.png``): the
    class is the immediate parent, so ``sub`` becomes a class of its own, which is seldom meant."""
    depth: dict[int, str] = {}
    for p in rel:
        if "/" in p:
            depth.setdefault(p.count("/"), p)
    if len(depth) > 1:
        shallow, deep = depth[min(depth)], depth[max(depth)]
        log.warning("%s: images lie at different depths (%s, %s); each image's class is the folder holding it "
                    "(%r, %r), not the top-level folder — move the images, or list them in a manifest with a "
                    "label column", root, shallow, deep, shallow.rsplit("/", 2)[-2], deep.rsplit("/", 2)[-2])


def read_folder(folder: str | os.PathLike[str], *, name: str | None = None, label: str = "label") -> Source:
    """Read an image folder whose files' immediate parent folder names are the classes.

    Any depth works (``root/a/b/cat/x.png`` has class ``cat``); files directly in ``folder`` are
    unlabeled. Hidden files and folders are skipped; links as in :func:`image_files_under`.

    Raises:
        DataError: ``folder`` does not exist or holds no image file.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    rel = [Path(f).relative_to(root).as_posix() for f in image_files_under(root)]
    if not rel:
        raise DataError(f"{root}: folder holds no image files (looked for {', '.join(image_suffixes())})")
    rel = natural_sorted(rel)
    parents = [p.rsplit("/", 2)[-2] if "/" in p else None for p in rel]
    meta = pd.DataFrame({"path": rel})
    labeled = any(p is not None for p in parents)
    if labeled:
        meta[label] = pd.array(parents, dtype="object")
        _note_mixed_depths(root, rel)
    return Source(
        name=name or root.name,
        root=root.resolve(),
        files=[os.path.join(str(root.resolve()), p) for p in rel],
        meta=meta,
        label_column=label if labeled else None,
        origin=str(root),
    )


@dataclass(frozen=True)
class CsvFormat:
    """How a text manifest is written: encoding, separator, lines before the header."""

    encoding: str = "utf-8"
    sep: str = ","
    skip: int = 0  # Excel's "sep=;" hint line

    def read_kwargs(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "sep": self.sep, "skiprows": self.skip}


_SEP_HINT = re.compile(r"sep=(.)\r?\n?")


def _check_utf8(manifest: Path) -> None:
    """Refuse a file that is not UTF-8, naming the line (pandas says only 'invalid start byte')."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    with open(manifest, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = newlines + chunk.count(b"\n", 0, max(exc.start, 0)) + 1
                raise DataError(
                    f"{manifest}: is not UTF-8 text: byte 0x{chunk[exc.start]:02x} on line {line} cannot be read "
                    "(a spreadsheet's CSV in a local encoding?); save it as 'CSV UTF-8', or convert it, e.g. "
                    "`iconv -f cp1252 -t utf-8`"
                ) from None
            newlines += chunk.count(b"\n")


def csv_format(manifest: Path) -> CsvFormat:
    """Sniff a text manifest: a BOM's encoding (UTF-8, UTF-16 or UTF-32, as spreadsheets write them),
    else UTF-8 (checked); tab-separated for ``.tsv``; a first line ``sep=X`` (Excel's hint) sets the
    separator and is skipped.

    Raises:
        DataError: a file without a BOM that is not UTF-8.
    """
    with open(manifest, "rb") as fh:
        head = fh.read(4)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        encoding = "utf-32"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
        _check_utf8(manifest)
    with open(manifest, encoding=encoding, newline="") as fh:
        first = fh.readline()
    hint = _SEP_HINT.fullmatch(first)
    if hint:
        return CsvFormat(encoding, hint.group(1), 1)
    return CsvFormat(encoding, "\t" if manifest.suffix.lower() == ".tsv" else ",")


def _csv_header(manifest: Path, fmt: CsvFormat) -> list[str]:
    """The CSV's column names as written; a name used twice is refused (pandas would rename it)."""
    header = [str(h) for h in pd.read_csv(manifest, header=None, nrows=1, dtype=str, keep_default_na=False,
                                          **fmt.read_kwargs()).iloc[0]]
    dup = sorted({h for h in header if h and header.count(h) > 1})  # empty names: pandas' "Unnamed: N"
    if dup:
        raise DataError(f"{manifest}: column name(s) {', '.join(map(repr, dup))} appear more than once in the "
                        "header; give each column its own name")
    return header


def _record_lines(manifest: Path, n_columns: int, fmt: CsvFormat) -> list[int]:
    """The file line each data row starts on (for messages: blank lines, a ``sep=`` line and quoted
    line breaks make it differ from the row's position); refuses a row with more or fewer fields
    than the header: pandas shifts a longer first row into the index (every value one column off)
    and fills a shorter one with missing values."""
    lines: list[int] = []
    with open(manifest, newline="", encoding=fmt.encoding) as fh:
        for _ in range(fmt.skip):
            fh.readline()
        reader = csv.reader(fh, delimiter=fmt.sep)
        done, header_seen = fmt.skip, False
        for row in reader:
            start, done = done + 1, fmt.skip + reader.line_num
            if not row:  # a blank line: pandas skips it too
                continue
            if len(row) != n_columns:
                raise DataError(f"{manifest}: line {start} has {len(row)} fields, the header {n_columns} "
                                "(a stray or missing separator, or an unquoted value with a separator in it?)")
            if header_seen:
                lines.append(start)
            header_seen = True
    return lines


def _read_csv(manifest: Path, text_columns: tuple[str, ...] | None, read_kwargs: dict[str, Any]) -> pd.DataFrame:
    fmt = csv_format(manifest)
    header = _csv_header(manifest, fmt)
    try:
        lines: list[int] | None = _record_lines(manifest, len(header), fmt)
    except csv.Error as exc:  # e.g. a NUL byte; pandas names the problem below
        log.debug("%s: csv module: %s", manifest, exc)
        lines = None
    text = [c for c in header if c] if text_columns is None else [c for c in text_columns if c in header]
    dtype = {**dict.fromkeys(text, str), **dict(read_kwargs.pop("dtype", None) or {})}
    df = pd.read_csv(manifest, index_col=False, dtype=dtype, **fmt.read_kwargs(), **read_kwargs)
    if text:  # names, not values: 'NA', 'None', '01' stay as written; only an empty cell is missing
        raw = pd.read_csv(manifest, index_col=False, usecols=text, dtype=str, keep_default_na=False,
                          **fmt.read_kwargs())
        for c in text:
            df[c] = raw[c].where(raw[c] != "", None)
    unnamed = [col for name, col in zip(header, df.columns) if not name.strip() and df[col].isna().all()]
    if unnamed:  # the empty last column of rows that end in a separator (a spreadsheet's trailing commas)
        df = df.drop(columns=unnamed)
    if lines is not None and len(lines) == len(df):
        df.attrs["lines"] = np.asarray(lines, dtype=np.int64)  # an array: pandas deep-copies attrs
    return df


def row_lines(df: pd.DataFrame) -> list[int]:
    """The file line of each row of a manifest table read by :func:`read_manifest_table` (also after
    rows were dropped from it), else the row's position + 2 (a header on line 1)."""
    lines = df.attrs.get("lines")
    index = df.index.to_numpy()
    if lines is not None and index.dtype.kind in "iu" and ((index >= 0) & (index < len(lines))).all():
        return [int(v) for v in np.asarray(lines)[index]]
    return [i + 2 for i in range(len(df))]


def read_manifest_table(
    manifest: Path, *, text_columns: tuple[str, ...] | None = (), **read_kwargs: Any
) -> pd.DataFrame:
    """Read a CSV/TSV or Parquet manifest into a DataFrame (DataError when unreadable or empty).

    Text manifests are sniffed by :func:`csv_format` (UTF-8/16/32 by their BOM, an Excel ``sep=``
    line); a last column with no name and no values (rows ending in a separator) is dropped;
    :func:`row_lines` gives each row's file line for messages.

    ``text_columns`` (paths, labels, groups; ``None``: every column) are read from a CSV as the
    strings written, not through pandas' type and missing-value guessing, which merges ``01`` with
    ``1`` and reads ``NA`` or ``None`` as no label; an empty cell is missing.
    """
    try:
        if manifest.suffix.lower() in (".csv", ".tsv"):
            df = _read_csv(manifest, text_columns, dict(read_kwargs))
        else:
            df = pd.read_parquet(manifest)
    except FileNotFoundError:
        raise DataError(f"{manifest}: manifest does not exist") from None
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types
        raise DataError(f"{manifest}: cannot read manifest ({type(exc).__name__}: {exc})") from None
    if len(df) == 0:
        raise DataError(f"{manifest}: manifest has no rows")
    return df


def resolve_manifest_paths(
    values: pd.Series, base: Path, manifest: Path, column: str, *, allow_absolute: bool = True,
    lines: list[int] | None = None,
) -> list[str]:
    """Turn manifest path values into absolute paths, refusing ones that escape ``base``.

    Relative paths must stay inside the manifest's folder after resolving ``..``; absolute paths are
    allowed for user manifests only. ``lines``: each value's file line, for messages (default: the
    row's position + 2).
    """
    base_s = str(base.resolve())
    prefix = base_s.rstrip(os.sep) + os.sep
    out: list[str] = []
    for row, raw in enumerate(values.tolist()):
        line = lines[row] if lines is not None else row + 2
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            raise DataError(f"{manifest}: column {column!r} is empty on line {line}")
        raw = str(raw)
        if os.path.isabs(raw):
            if not allow_absolute:
                raise DataError(f"{manifest}: line {line} has absolute path {raw!r}; paths must be relative")
            out.append(os.path.normpath(raw))
            continue
        full = os.path.normpath(os.path.join(base_s, raw))
        if not full.startswith(prefix):
            raise DataError(
                f"{manifest}: path {raw!r} (line {line}, column {column!r}) escapes the manifest folder {base_s}"
            )
        out.append(full)
    return out


def drop_duplicate_paths(
    files: list[str], meta: pd.DataFrame, *, manifest: Path, path_column: str, label: str | None,
    lines: list[int] | None = None,
) -> tuple[list[str], pd.DataFrame]:
    """One row per image file: a path listed twice would put one image in two split parts.

    Rows naming the same file (after resolving ``..`` and ``./``) with the same label are reduced to
    the first, with a warning; with different labels the manifest is contradictory and refused.

    ``lines``: each row's file line, for messages (default: the row's position + 2).

    Raises:
        DataError: a file listed with conflicting labels (lists them, with lines and labels).
    """
    paths = pd.Series([os.path.realpath(f) for f in files])  # a link to a listed file is that file
    dup = paths.duplicated(keep=False).to_numpy()
    if not dup.any():
        return files, meta
    rows = np.flatnonzero(dup)
    at = lines if lines is not None else [r + 2 for r in range(len(files))]
    labels = _label_strings(meta[label]) if label is not None else [None] * len(meta)
    by_file: dict[str, list[int]] = {}
    for r in rows:
        by_file.setdefault(paths.iloc[r], []).append(int(r))
    shown = lambda r: str(meta[path_column].iloc[r])  # noqa: E731 - as the manifest spells it
    conflicts = [
        f"{shown(rs[0])} (lines {', '.join(str(at[r]) for r in rs)}: "
        f"{', '.join(repr(labels[r]) for r in rs)})"
        for rs in by_file.values() if len({labels[r] for r in rs}) > 1
    ]
    if conflicts:
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        raise DataError(
            f"{manifest}: {len(conflicts)} image path(s) listed more than once with different labels in "
            f"column {label!r}: {'; '.join(conflicts[:5])}{more}; keep one row per image"
        )
    keep = ~paths.duplicated(keep="first").to_numpy()
    examples = ", ".join(f"{shown(rs[0])} (lines {', '.join(str(at[r]) for r in rs)})"
                         for rs in list(by_file.values())[:3])
    log.warning("%s: %d image path(s) listed more than once (same label); using the first row of each and "
                "dropping %d duplicate row(s), so no image is in two split parts: %s%s", manifest,
                len(by_file), int((~keep).sum()), examples, " ..." if len(by_file) > 3 else "")
    return [f for f, k in zip(files, keep) if k], meta.loc[keep].reset_index(drop=True)


def read_manifest(
    manifest: str | os.PathLike[str],
    *,
    path_column: str = "path",
    label: str | None = None,
    group: str | None = None,
    name: str | None = None,
    allow_absolute: bool = True,
    df: pd.DataFrame | None = None,
    text_columns: tuple[str, ...] = (),
) -> Source:
    """Read a CSV/Parquet manifest: a path column, an optional label column, any metadata columns.

    Args:
        manifest: the manifest file; relative paths are relative to its folder.
        path_column: column with the image paths.
        label: label column (default: ``label`` when that column exists, else unlabeled).
        group: grouping column for splits (must exist when given).
        df: an already-read (and possibly filtered) manifest table.
        text_columns: more columns to read as written (the path, label and group columns always are),
            e.g. a ``split.group`` other than ``group``.

    Raises:
        DataError: unreadable manifest, missing path/label/group column, escaping or empty paths, a
            path listed twice with different labels (the same label twice: a warning, one row kept).
    """
    manifest = Path(manifest).expanduser()
    if df is None:
        df = read_manifest_table(manifest, text_columns=(path_column, label or "label", *([group] if group else []), *text_columns))
    cols = ", ".join(map(str, df.columns))
    if path_column not in df.columns:
        raise DataError(f"{manifest}: manifest has no path column {path_column!r} (columns: {cols})")
    if label is not None and label not in df.columns:
        raise DataError(f"{manifest}: manifest has no label column {label!r} (columns: {cols})")
    if group is not None and group not in df.columns:
        raise DataError(f"{manifest}: manifest has no group column {group!r} (columns: {cols})")
    if label is None and "label" in df.columns and path_column != "label":
        label = "label"
    elif label is None:
        near = [c for c in df.columns if str(c).strip().lower() == "label"]
        if near:  # 'Label' or 'label ' from a spreadsheet: say why the set is unlabeled
            log.warning("%s: no column named 'label', so the images are unlabeled; column %r looks like one: "
                        "set data.label: %r (or rename it)", manifest, near[0], near[0])
    blank = df.isna().all(axis=1).to_numpy() if len(df.columns) > 1 else np.zeros(len(df), bool)
    if blank.any() and not blank.all():  # ',,' rows a spreadsheet leaves at the end: not images
        df = df.loc[~blank]
    lines = row_lines(df)
    files = resolve_manifest_paths(df[path_column], manifest.parent, manifest, path_column,
                                   allow_absolute=allow_absolute, lines=lines)
    meta = df.reset_index(drop=True).copy()
    meta.attrs.pop("lines", None)
    files, meta = drop_duplicate_paths(files, meta, manifest=manifest, path_column=path_column, label=label,
                                       lines=lines)
    if path_column != "path":
        if "path" in meta.columns:
            meta = meta.drop(columns=["path"])
        meta = meta.rename(columns={path_column: "path"})
        if label == path_column:
            label = "path"
    meta["path"] = meta["path"].astype(str)
    return Source(
        name=name or manifest.stem,
        root=manifest.parent.resolve(),
        files=files,
        meta=meta,
        label_column=label,
        group_column=group,
        origin=str(manifest),
    )


_TRAILING_ZEROS = re.compile(r"[+-]?(?:0|[1-9]\d*)\.\d*0")


def _label_strings(values: pd.Series) -> list[str | None]:
    """Label values as class-name strings without surrounding spaces, ``None`` where missing.

    A decimal number is one class however many zeros end it (``"0.10"`` → ``"0.1"``, ``1.0`` or
    ``"1.0"`` → ``"1"``, as a spreadsheet writes whole numbers); leading zeros are kept (``"01"``
    is a name, not ``"1"``).
    """
    out: list[str | None] = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and v.strip() == ""):
            out.append(None)
        elif isinstance(v, float) and float(v).is_integer():
            out.append(str(int(v)))
        elif isinstance(v, str) and _TRAILING_ZEROS.fullmatch(v.strip()):
            out.append(v.strip().rstrip("0").rstrip("."))
        else:  # 'a ' next to 'a' is a typing slip; NFD 'café' (a macOS folder name) is NFC 'café'
            out.append(unicodedata.normalize("NFC", str(v).strip()))
    return out


_MISSING_MARKERS = frozenset({"na", "n/a", "nan", "none", "null", "#n/a", "missing"})


def _warn_missing_markers(where: str, col: str, names: list[str | None], classes: list[str]) -> None:
    """Warn when a class found in the labels is spelled like a spreadsheet's "no value" (``NaN``,
    ``N/A``, ``null``): it is kept as a class name (``NA`` may be a real one), but a lab that meant
    "unlabeled" trains a class of unlabeled images without this note."""
    suspect = [c for c in classes if c.lower() in _MISSING_MARKERS]
    if suspect:
        counts = ", ".join(f"{c!r} ({sum(v == c for v in names)} image(s))" for c in suspect)
        log.warning("%s: label column %r has class(es) %s spelled like a missing value; they are read as "
                    "class names: leave the cell empty for an unlabeled image, or declare the classes to "
                    "silence this note", where, col, counts)


def encode_labels(source: Source, declared: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Class list and int64 targets (−1 = unlabeled) for ``source``; rewrites the label column.

    Declared classes (config ``classes`` or the built-in's list) fix the order and every label
    must be one of them; otherwise the classes are the natural-sorted distinct values.

    Raises:
        DataError: a label value that is not a declared class (names the column and value).
    """
    col = source.label_column
    n = len(source.meta)
    if col is None:
        return [], np.full(n, -1, dtype=np.int64)
    padded = sorted({v for v in source.meta[col].tolist() if isinstance(v, str) and v.strip() and v != v.strip()})
    if padded:
        log.warning("%s: label column %r has %d value(s) with spaces around them (%s); read without the spaces",
                    source.origin or source.name, col, len(padded), ", ".join(repr(v) for v in padded[:3]))
    names = _label_strings(source.meta[col])
    if source.label_names:
        names = [source.label_names.get(v, v) if v is not None else None for v in names]
    classes = declared if declared is not None else source.classes
    if classes is not None:  # spelled as the labels are read: "0.10" declares the labels' "0.1"
        classes = [c for c in _label_strings(pd.Series(list(classes), dtype=object)) if c is not None]
    if classes is None:
        classes = natural_sorted(sorted({v for v in names if v is not None}))
        _warn_missing_markers(source.origin or source.name, col, names, classes)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in names if v is not None and v not in index})
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        where = source.origin or source.name
        first_row = next(i for i, v in enumerate(names) if v == unknown[0])
        raise DataError(
            f"{where}: label column {col!r} has unknown class {shown} (first at {source.meta['path'].iloc[first_row]}); "
            f"known classes: {', '.join(classes)}"
        )
    targets = np.array([index[v] if v is not None else -1 for v in names], dtype=np.int64)
    source.meta[col] = pd.array(names, dtype="object")
    return list(classes), targets
