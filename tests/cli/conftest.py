"""Shared fixtures for the CLI tests: one decode cache and two tiny trained runs per session.

- ``karyotype_run``: supervised ``simple_cnn`` on 8 synthetic karyograms at 32 px (≈ 65 % test
  accuracy after 20 short epochs, enough for karyotype assembly to show its effect);
- ``cells_run``: BYOL (no classifier) on 120 synthetic cells at 32 px, 1 epoch.

Tests get a private copy (``*_copy``) so what one writes into a run never leaks into another.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from biorep.cli import main


@pytest.fixture(scope="session")
def cli_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private ``BIOREP_CACHE`` for the trained runs (set for the rest of the session)."""
    folder = tmp_path_factory.mktemp("cli-eval-cache")
    old = os.environ.get("BIOREP_CACHE")
    os.environ["BIOREP_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("BIOREP_CACHE", None)
    else:
        os.environ["BIOREP_CACHE"] = old


def _train(raw: dict[str, Any], out: Path) -> Path:
    from biorep.training import RunConfig, train

    torch.set_num_threads(1)
    return train(RunConfig.from_dict(raw), out)


_TRAIN = {"batch_size": 32, "accelerator": "cpu", "devices": 1, "tracemalloc": False, "progress": False}


def karyotype_config(seed: int = 0, split_seed: int = 0, epochs: int = 20, val: float = 0.0) -> dict[str, Any]:
    """The config of ``karyotype_run`` (another ``seed``, split or length for tests that need more runs)."""
    return {
        "data": {"dataset": "synthetic-karyotype", "options": {"n_karyograms": 8, "seed": 0, "size": 32},
                 "geometry": {"mode": "canvas", "size": 32},
                 "split": {"test": 0.34, "val": val, "seed": split_seed}},
        "views": {"augment": "none", "crops": "one"},
        "model": {"backbone": "simple_cnn"},
        "method": {"name": "supervised"},
        "train": {"epochs": epochs, "lr": 2e-3, "seed": seed, **_TRAIN},
    }


@pytest.fixture(scope="session")
def karyotype_run(cli_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(karyotype_config(), tmp_path_factory.mktemp("runs") / "karyo")


@pytest.fixture(scope="session")
def train_karyotype(cli_cache: Path) -> Callable[..., Path]:
    """``train_karyotype(out, **karyotype_config kwargs)`` trains another small karyotype run."""

    def run(out: Path, **kwargs: Any) -> Path:
        return _train(karyotype_config(**kwargs), out)

    return run


@pytest.fixture(scope="session")
def cells_run(cli_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train({
        "data": {"dataset": "synthetic-cells", "options": {"n_cells": 120, "seed": 0, "size": 32},
                 "geometry": {"mode": "resize", "size": 32}, "split": {"test": 0.34, "val": 0.0, "seed": 0}},
        "views": {"augment": "none", "crops": "one"},
        "model": {"backbone": "simple_cnn"},
        "method": {"name": "byol"},
        "train": {"epochs": 1, "lr": 1e-3, **_TRAIN},
    }, tmp_path_factory.mktemp("runs") / "cells")


@pytest.fixture
def karyotype_copy(karyotype_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(karyotype_run, tmp_path / "karyo"))


@pytest.fixture
def cells_copy(cells_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cells_run, tmp_path / "cells"))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``cli(*args)`` runs ``biorep ARGS`` through the real entry point: (exit code, stdout, stderr
    with rich's line wrapping undone)."""

    def run(*args: Any) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, " ".join(err.split())

    return run
