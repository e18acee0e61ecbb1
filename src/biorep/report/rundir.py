"""Read what a report needs from a run directory, without importing the stages that wrote it.

Only ``summary.json`` and ``config.yaml`` are required; every other file is optional and a broken
optional file becomes a note in the report instead of an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from biorep.errors import RunDirError

#: Splits tried first for the embedding map, in this order; any other split comes after.
PREFERRED_SPLITS = ("test", "val", "train")
#: Folders of the run directory whose PNGs go to the gallery.
GALLERY_FOLDERS = ("karyotype", "figures")


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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: cannot read JSON ({exc})") from exc


def read_run(path: str | Path, name: str | None = None) -> RunRecord:
    """Read the report inputs of one run directory.

    Args:
        path: the run directory.
        name: how the report names the run; default the folder name.

    Raises:
        RunDirError: when the folder, ``summary.json`` or ``config.yaml`` is missing or unreadable.
    """
    run_dir = Path(path)
    if not run_dir.exists():
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} is not a directory")
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise RunDirError(f"{summary_path} is missing: {run_dir} is not a finished run directory")
    summary = _read_json(summary_path)
    if not isinstance(summary, dict):
        raise RunDirError(f"{summary_path}: expected a JSON object, got {type(summary).__name__}")
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise RunDirError(f"{config_path} is missing: {run_dir} is not a run directory")
    try:
        config_text = config_path.read_text(encoding="utf-8")
        config = yaml.safe_load(config_text) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunDirError(f"{config_path}: cannot read YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise RunDirError(f"{config_path}: expected a mapping at the top level")

    run = RunRecord(
        path=run_dir,
        name=name or run_dir.resolve().name,
        config=config,
        config_text=config_text,
        summary=summary,
    )
    metrics_path = run_dir / "metrics.csv"
    if metrics_path.is_file():
        try:
            run.metrics = pd.read_csv(metrics_path)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            run.problems.append(f"metrics.csv could not be read: {exc}")
    evaluation_path = run_dir / "evaluation.json"
    if evaluation_path.is_file():
        try:
            evaluation = _read_json(evaluation_path)
            run.evaluation = evaluation if isinstance(evaluation, dict) else {"evaluation": evaluation}
        except RunDirError as exc:
            run.problems.append(str(exc))
    emb_dir = run_dir / "embeddings"
    if emb_dir.is_dir():
        run.embeddings = {p.stem: p for p in sorted(emb_dir.glob("*.parquet"))}
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
