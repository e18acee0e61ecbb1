"""Read what a report needs from a run directory, without importing the stages that wrote it.

Every file name and reader comes from :mod:`biorep.rundir`. Only ``summary.json`` and ``config.yaml`` are required; every other file is optional and a broken
optional file becomes a note in the report instead of an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from biorep.errors import RunDirError
from biorep.rundir import (
    FIGURES_DIR,
    KARYOTYPE_DIR,
    METRICS,
    RunPaths,
    check_usable,
    read_json,
    read_summary,
    read_yaml,
)

#: Splits tried first for the embedding map, in this order; any other split comes after.
PREFERRED_SPLITS = ("test", "val", "train")
#: Folders of the run directory whose PNGs go to the gallery.
GALLERY_FOLDERS = (KARYOTYPE_DIR, FIGURES_DIR)


@dataclass
class RunRecord:
    """Everything a report shows about one run directory.

    Example:
        >>> run = read_run(Path("runs/supcon"))  # doctest: +SKIP
        >>> run.summary["method"], sorted(run.embeddings)  # doctest: +SKIP
        ('supcon', ['test', 'val'])
    """

    path: Path
    name: str
    config: dict[str, Any]
    config_text: str
    summary: dict[str, Any]
    metrics: pd.DataFrame | None = None
    evaluation: dict[str, Any] | None = None
    embeddings: dict[str, Path] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def label_column(self) -> str | None:
        """``data.label`` from the config, when set."""
        data = self.config.get("data")
        label = data.get("label") if isinstance(data, dict) else None
        return str(label) if label else None

    def embedding_split(self) -> str | None:
        """The split whose embeddings the report maps (test, then val, then train, then any)."""
        for split in PREFERRED_SPLITS:
            if split in self.embeddings:
                return split
        return next(iter(sorted(self.embeddings)), None)


def read_run(path: str | Path, name: str | None = None) -> RunRecord:
    """Read the report inputs of one run directory (through :mod:`biorep.rundir`).

    Args:
        path: the run directory.
        name: how the report names the run; default the folder name.

    Raises:
        RunDirError: when the folder, ``summary.json`` or ``config.yaml`` is missing or unreadable,
            or the run has not finished training (:func:`biorep.rundir.check_usable`).
    """
    paths = RunPaths(Path(path))
    run_dir = paths.root
    if not run_dir.exists():
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} is not a directory")
    if not paths.summary.is_file():
        raise RunDirError(f"{paths.summary} is missing: {run_dir} is not a finished run directory")
    check_usable(run_dir, "report")
    raw = read_json(paths.summary)
    if not isinstance(raw, dict):
        raise RunDirError(f"{paths.summary}: expected a JSON object, got {type(raw).__name__}")
    summary = read_summary(run_dir).model_dump(exclude_unset=True)
    if not paths.config.is_file():
        raise RunDirError(f"{paths.config} is missing: {run_dir} is not a run directory")
    try:
        config_text = paths.config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{paths.config}: cannot read YAML ({exc})") from exc
    config = read_yaml(paths.config) or {}
    if not isinstance(config, dict):
        raise RunDirError(f"{paths.config}: expected a mapping at the top level")

    run = RunRecord(
        path=run_dir,
        name=name or run_dir.resolve().name,
        config=config,
        config_text=config_text,
        summary=summary,
    )
    if paths.metrics.is_file():
        try:
            run.metrics = pd.read_csv(paths.metrics)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            run.problems.append(f"{METRICS} could not be read: {exc}")
    if paths.evaluation.is_file():
        try:
            evaluation = read_json(paths.evaluation)
            run.evaluation = evaluation if isinstance(evaluation, dict) else {"evaluation": evaluation}
        except RunDirError as exc:
            run.problems.append(f"{exc}".replace("not valid JSON", "cannot read JSON"))
    if paths.embeddings.is_dir():
        run.embeddings = {p.stem: p for p in sorted(paths.embeddings.glob("*.parquet"))}
    for folder in GALLERY_FOLDERS:
        run.images.extend(sorted((run_dir / folder).glob("*.png")))
    return run


def unique_names(paths: list[Path]) -> list[str]:
    """Short distinct names for run folders: the folder name, plus parents where names collide."""
    resolved = [Path(p).resolve() for p in paths]
    depth = 1
    while True:
        names = ["/".join(p.parts[-depth:]) for p in resolved]
        if len(set(names)) == len(names) or depth >= max(len(p.parts) for p in resolved):
            return names
        depth += 1


def is_number(value: object) -> bool:
    """True for int/float values (not bool) that are finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
