"""Suite-wide test settings: few threads (2 shared cores), no GUI backend, real-data marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_data_root() -> Path | None:
    """The real-data folder when present (``BIOREP_DATA`` or ``../shared/data``), else None."""
    env = os.environ.get("BIOREP_DATA")
    for cand in ([Path(env)] if env else []) + [SHARED_DATA]:
        if cand.is_dir():
            return cand
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if real_data_root() is not None:
        return
    skip = pytest.mark.skip(reason="real data folder ../shared/data (or BIOREP_DATA) is absent")
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)
