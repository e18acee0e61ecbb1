"""Built-in data sets, looked up by name in :data:`DATASETS`.

Each entry knows its folder under the data root, how to read its manifest, its label column and
class order, its grouping column for splits, its background and its data-set ``options``.

Example:
    >>> DATASETS.get("chromosome-pki3").group_column
    'case'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from biorep import paths
from biorep.data.config import DataConfig
from biorep.data.sources import Source, read_manifest, read_manifest_table
from biorep.data.synthetic import CELL_CLASSES, KARYOTYPE_CLASSES, make_synthetic_cells, make_synthetic_karyotype
from biorep.errors import ConfigError, DataError, validation_message
from biorep.registry import Registry


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KaryotypeOptions(_NoOptions):
    n_karyograms: int = Field(30, ge=1, le=100_000)
    seed: int = 0
    size: int = Field(96, ge=8, le=1024)


class CellsOptions(_NoOptions):
    n_cells: int = Field(1500, ge=1, le=10_000_000)
    seed: int = 0
    size: int = Field(64, ge=16, le=1024)
    channels: int = Field(3, ge=1, le=8)
    n_plates: int = Field(3, ge=1, le=1000)


@dataclass(frozen=True)
class BuiltinDataset:
    """A named data set: where it lives and how it is labelled and grouped.

    ``evaluations`` are the data set's default evaluation tasks beyond the generic ones (probes,
    classification, karyotype): ``{evaluation name: options}`` as ``biorep evaluate`` passes them to
    :data:`biorep.evaluate.EVALUATIONS` (``where``, a ``{column: value}`` selector, restricts the rows).
    """

    name: str
    description: str
    folder: str | None  # under the data root; None = generated
    label_column: str
    classes: tuple[str, ...]
    group_column: str
    background: float
    build: Callable[[BuiltinDataset, DataConfig, Any], Source]
    options_model: type[BaseModel] = _NoOptions
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False, compare=False)

    def options(self, cfg: DataConfig) -> Any:
        """Validate ``cfg.options`` against this data set's options model."""
        try:
            return self.options_model(**cfg.options)
        except ValidationError as exc:
            raise ConfigError(f"data.options for {self.name!r}: {validation_message(exc)}") from None

    def path(self, root: Path | None) -> Path | None:
        """The data set's folder under ``root`` (``None`` for generated sets)."""
        return None if self.folder is None or root is None else root / self.folder

    def present(self, root: Path | None) -> bool:
        """Whether the data is there (generated sets always are)."""
        p = self.path(root)
        return self.folder is None or (p is not None and (p / "labels.csv").is_file())

    def source(self, cfg: DataConfig) -> Source:
        """Read the manifest (generating the files first for synthetic sets)."""
        opts = self.options(cfg)
        src = self.build(self, cfg, opts)
        if cfg.label is None:
            src.label_column, src.classes = self.label_column, list(self.classes)
        src.group_column = self.group_column
        src.background = self.background
        return src


DATASETS: Registry[BuiltinDataset] = Registry("dataset")


def screening_evaluations(compound: str) -> dict[str, dict[str, Any]]:
    """Study B's screening tasks for cells treated with ``compound`` at 50/15/5 µM beside DMSO wells.

    Similarity of 50 vs 15 µM relative to DMSO per plate; treated vs control (the ``treated``
    column's split, selected as DMSO vs the rest so it holds whatever the label column is); UMAP +
    HDBSCAN of the treated cells per plate scored against ``dose``; replicate mAP of site-level
    profiles (plate × well × site) per treatment against DMSO.
    """
    dmso = {"compound": "DMSO"}
    return {
        "similarity": {"a": {"compound": compound, "dose": 50}, "b": {"compound": compound, "dose": 15},
                       "control": dmso, "group_by": "plate"},
        "treated_vs_control": {"control": dmso},
        "clustering": {"where": {"compound": compound}, "group_by": "plate", "label_column": "dose"},
        "replicate_map": {"treatment": ["compound", "dose"], "profile_by": ["plate", "well", "site"],
                          "control": dmso, "neg_sameby": ["plate"]},
    }


KARYOTYPE_EVALUATIONS: dict[str, dict[str, Any]] = {"karyotype": {"karyogram_column": "karyogram"}}


def _folder(spec: BuiltinDataset, cfg: DataConfig) -> Path:
    root = paths.find_data_root(cfg.root)
    assert root is not None
    folder = spec.path(root)
    assert folder is not None
    if not (folder / "labels.csv").is_file():
        raise DataError(f"{folder}/labels.csv: not found; data set {spec.name!r} is missing from data root {root}")
    return folder


def _check_label(spec: BuiltinDataset, cfg: DataConfig, columns: list[str], manifest: Path) -> None:
    if cfg.label is not None and cfg.label not in columns:
        raise DataError(f"{manifest}: data set {spec.name!r} has no label column {cfg.label!r} (columns: {', '.join(columns)})")


def _build_chromosomes(spec: BuiltinDataset, cfg: DataConfig, opts: Any) -> Source:
    manifest = _folder(spec, cfg) / "labels.csv"
    df = read_manifest_table(manifest, dtype={"karyogram": str, "chromosome": str})
    for col in ("path", "karyogram", "label", "chromosome"):
        if col not in df.columns:
            raise DataError(f"{manifest}: expected column {col!r} is missing")
    df = df[df["label"] != 25]  # the one stray 'clase25' crop (an unassigned chromosome)
    df = df.assign(case=df["karyogram"].str.rsplit(".", n=1).str[0])
    df = df[["path", "karyogram", "case", "chromosome", "index_in_class"]]
    _check_label(spec, cfg, list(df.columns), manifest)
    return read_manifest(manifest, label=cfg.label, name=spec.name, allow_absolute=False, df=df)


def _build_bbbc021(spec: BuiltinDataset, cfg: DataConfig, opts: Any) -> Source:
    manifest = _folder(spec, cfg) / "labels.csv"
    df = read_manifest_table(manifest, dtype={"plate": str, "well": str})
    for col in ("path", "treated", "compound", "concentration_uM", "plate", "well"):
        if col not in df.columns:
            raise DataError(f"{manifest}: expected column {col!r} is missing")
    df = df.rename(columns={"concentration_uM": "dose"})
    keep = ["path", "compound", "dose", "plate", "well", "site", "replicate", "moa", "treated"]
    df = df[[c for c in keep if c in df.columns]]
    _check_label(spec, cfg, list(df.columns), manifest)
    src = read_manifest(manifest, label=cfg.label, name=spec.name, allow_absolute=False, df=df)
    if cfg.label is None:
        src.label_names = {"0": "control", "1": "treated"}
    return src


def _build_synthetic_karyotype(spec: BuiltinDataset, cfg: DataConfig, opts: KaryotypeOptions) -> Source:
    manifest = make_synthetic_karyotype(opts.n_karyograms, opts.seed, opts.size)
    df = read_manifest_table(manifest, dtype={"karyogram": str, "case": str, "chromosome": str})
    _check_label(spec, cfg, list(df.columns), manifest)
    return read_manifest(manifest, label=cfg.label, name=spec.name, allow_absolute=False, df=df)


def _build_synthetic_cells(spec: BuiltinDataset, cfg: DataConfig, opts: CellsOptions) -> Source:
    manifest = make_synthetic_cells(opts.n_cells, opts.seed, opts.size, opts.channels, opts.n_plates)
    df = read_manifest_table(manifest, dtype={"plate": str, "well": str})
    _check_label(spec, cfg, list(df.columns), manifest)
    return read_manifest(manifest, label=cfg.label, name=spec.name, allow_absolute=False, df=df)


DATASETS.add("chromosome-pki3", BuiltinDataset(
    name="chromosome-pki3",
    description="G-banded chromosome crops (Pki-3), 24 classes 1–22/X/Y, 28,135 crops from 372 cases; 8-bit, white background",
    folder="chromosome_pki3",
    label_column="chromosome",
    classes=tuple(KARYOTYPE_CLASSES),
    group_column="case",
    background=255.0,
    build=_build_chromosomes,
    evaluations=KARYOTYPE_EVALUATIONS,
))
DATASETS.add("bbbc021-cycloheximide", BuiltinDataset(
    name="bbbc021-cycloheximide",
    description="BBBC021 MCF-7 single cells, cycloheximide vs DMSO, 4,912 crops on 3 plates; 3×68×68 uint16",
    folder="bbbc021_cycloheximide_singlecell",
    label_column="treated",
    classes=tuple(CELL_CLASSES),
    group_column="plate",
    background=0.0,
    build=_build_bbbc021,
    evaluations=screening_evaluations("cyclohexamide"),  # the manifest's spelling
))
DATASETS.add("synthetic-karyotype", BuiltinDataset(
    name="synthetic-karyotype",
    description="generated banded chromosomes, 46 per karyogram, 24 classes (options: n_karyograms, seed, size)",
    folder=None,
    label_column="chromosome",
    classes=tuple(KARYOTYPE_CLASSES),
    group_column="case",
    background=255.0,
    build=_build_synthetic_karyotype,
    options_model=KaryotypeOptions,
    evaluations=KARYOTYPE_EVALUATIONS,
))
DATASETS.add("synthetic-cells", BuiltinDataset(
    name="synthetic-cells",
    description="generated fluorescent cells, dose-dependent treatment effect, plate effects (options: n_cells, seed, size, channels, n_plates)",
    folder=None,
    label_column="treated",
    classes=tuple(CELL_CLASSES),
    group_column="plate",
    background=0.0,
    build=_build_synthetic_cells,
    options_model=CellsOptions,
    evaluations=screening_evaluations("compound_a"),
))
