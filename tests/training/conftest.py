"""Shared fixtures for the training tests: one decode cache per session, the smoke config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "synthetic-smoke.yaml"


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Synthetic data is generated and decoded once per session into a private cache."""
    folder = tmp_path_factory.mktemp("biorep-cache")
    old = os.environ.get("BIOREP_CACHE")
    os.environ["BIOREP_CACHE"] = str(folder)
    torch.set_num_threads(1)
    yield folder
    if old is None:
        os.environ.pop("BIOREP_CACHE", None)
    else:
        os.environ["BIOREP_CACHE"] = old
