"""``train.epochs: 0``: an untrained baseline run whose checkpoint holds the seeded initial weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from biorep.training import load_config, train
from biorep.training.loading import load_run

from .conftest import SMOKE


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_run(run_dir).model.state_dict().items() if v.is_floating_point()}


def test_zero_epochs_saves_the_initial_weights_and_can_be_evaluated(tmp_path: Path) -> None:
    untrained = [train(load_config(SMOKE, ["train.epochs=0"]), tmp_path / f"e0-{i}") for i in range(2)]
    trained = train(load_config(SMOKE, ["train.epochs=1"]), tmp_path / "e1")
    summary = json.loads((untrained[0] / "summary.json").read_text())
    assert summary["epochs"] == 0 and summary["max_epochs"] == 0 and summary["global_step"] == 0
    assert (untrained[0] / "checkpoints" / "last.ckpt").is_file()
    a, b, c = _weights(untrained[0]), _weights(untrained[1]), _weights(trained)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same seed gives the same initial weights
    assert any(not torch.equal(a[k], c[k]) for k in a)  # one epoch of training moves them
    run = load_run(untrained[0])
    images = torch.from_numpy(run.dataset().images[run.splits.test[:4]])
    assert torch.isfinite(run.model.embed(images)).all()
