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
EVALUATION = "evaluation.json"
EVALUATION_DIR = "evaluation"
KARYOTYPE_DIR = "karyotype"
FIGURES_DIR = "figures"
REPORT = "report.html"


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

    def embedding(self, split: str) -> Path:
        return self.root / EMBEDDINGS_DIR / f"{split}.parquet"

    @property
    def evaluation(self) -> Path:
        return self.root / EVALUATION

    @property
    def evaluation_dir(self) -> Path:
        return self.root / EVALUATION_DIR

    @property
    def karyotype(self) -> Path:
        return self.root / KARYOTYPE_DIR

    @property
    def figures(self) -> Path:
        return self.root / FIGURES_DIR

    @property
    def report(self) -> Path:
        return self.root / REPORT
