"""Every file name of a run directory, defined once, and :class:`RunPaths` to spell them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
DATA = "data.json"
STATE = "state.json"
SUMMARY = "summary.json"
METRICS = "metrics.csv"
CKPT_DIR = "checkpoints"
LAST = "last.ckpt"
BEST = "best.ckpt"
EMBEDDINGS_DIR = "embeddings"
#: The files of one set of embeddings ``<stem>.*`` (``stem``: the split, or ``<data>.<split>``):
#: features + metadata as Parquet and AnnData, classifier logits, and the record of what they were
#: made from and by which run (written last).
EMBEDDING_FILES = {"parquet": ".parquet", "h5ad": ".h5ad", "logits": ".logits.npy", "info": ".json"}
EVALUATION = "evaluation.json"
EVALUATION_DIR = "evaluation"
KARYOTYPE_DIR = "karyotype"
KARYOTYPE_SUMMARY = "summary.json"
KARYOTYPE_ASSIGNMENTS = "assignments.csv"
FIGURES_DIR = "figures"
REPORT = "report.html"
REVIEW = "review.html"
#: what the review page exports: a manifest of corrected labels that ``biorep train`` accepts
CORRECTIONS = "corrections.csv"
#: the record of an ensemble folder (``biorep ensemble``): its members and their own numbers
ENSEMBLE = "ensemble.json"


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run directory.

    Example:
        >>> RunPaths(Path("runs/ce")).last
        PosixPath('runs/ce/checkpoints/last.ckpt')
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def data(self) -> Path:
        return self.root / DATA

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def checkpoints(self) -> Path:
        return self.root / CKPT_DIR

    @property
    def last(self) -> Path:
        return self.root / CKPT_DIR / LAST

    @property
    def best(self) -> Path:
        return self.root / CKPT_DIR / BEST

    @property
    def embeddings(self) -> Path:
        return self.root / EMBEDDINGS_DIR

    def embedding(self, split: str, kind: str = "parquet") -> Path:
        """``embeddings/<split><suffix>`` for ``kind`` in :data:`EMBEDDING_FILES`."""
        return self.root / EMBEDDINGS_DIR / f"{split}{EMBEDDING_FILES[kind]}"

    @property
    def evaluation(self) -> Path:
        return self.root / EVALUATION

    @property
    def evaluation_dir(self) -> Path:
        return self.root / EVALUATION_DIR

    def evaluation_result(self, key: str, suffix: str = ".json") -> Path:
        """``evaluation/<key>.json`` (summary) or ``.csv`` (table) of one stored evaluation."""
        return self.root / EVALUATION_DIR / f"{key}{suffix}"

    @property
    def karyotype(self) -> Path:
        return self.root / KARYOTYPE_DIR

    @property
    def karyotype_summary(self) -> Path:
        return self.root / KARYOTYPE_DIR / KARYOTYPE_SUMMARY

    @property
    def karyotype_assignments(self) -> Path:
        return self.root / KARYOTYPE_DIR / KARYOTYPE_ASSIGNMENTS

    @property
    def figures(self) -> Path:
        return self.root / FIGURES_DIR

    @property
    def report(self) -> Path:
        return self.root / REPORT


def embedding_files(folder: str | Path, stem: str) -> dict[str, Path]:
    """The files of one set of embeddings ``folder/<stem>.*`` by kind (see :data:`EMBEDDING_FILES`).

    Example:
        >>> embedding_files("runs/ce/embeddings", "test")["logits"]
        PosixPath('runs/ce/embeddings/test.logits.npy')
    """
    return {kind: Path(folder) / f"{stem}{suffix}" for kind, suffix in EMBEDDING_FILES.items()}
