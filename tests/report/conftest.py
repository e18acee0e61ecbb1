"""Fixtures for the report tests: two fake run directories (see ``report_fakes``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fakes import make_run


@pytest.fixture
def run_a(tmp_path: Path) -> Path:
    return make_run(tmp_path / "runs", "ce", method="supervised", accuracy=0.8731, wall_time=123.4, seed=1)


@pytest.fixture(scope="session")
def comparison_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report comparing two runs (ce with a karyogram, supcon without), built once per session."""
    from biorep.report.html import write_report

    root = tmp_path_factory.mktemp("comparison")
    ce = make_run(root / "runs", "ce", method="supervised", accuracy=0.8731, wall_time=123.4, seed=1)
    supcon = make_run(
        root / "runs", "supcon", method="supcon", accuracy=0.9142, wall_time=456.7, seed=2, karyogram=False,
        errors={0: "2", 92: "7"},
    )
    return write_report([ce, supcon], root / "cmp.html", title="CE vs SupCon", projection="pca")
