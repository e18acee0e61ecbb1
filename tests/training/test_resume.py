"""A run interrupted mid-epoch and resumed finishes exactly like an uninterrupted one (CPU, same seed).

What is reproduced exactly: model/optimiser/scheduler state (``last.ckpt`` written every step here),
the batch order (samplers are deterministic in (seed, epoch) and skip the batches already done) and
the augmentations (re-seeded from (seed, global step) before every step), and the ``train/*``
epoch means of the interrupted epoch (their running sums are in the checkpoint).
"""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from biorep.training import load_config, train

from .conftest import SMOKE

OVERRIDES = [
    "method.name=supcon",
    "method.pretrain_epochs=1",
    "method.proj_dim=32",
    "train.epochs=3",
    "train.limit_train_batches=3",
    "train.limit_val_batches=1",
    "train.checkpoint_every_n_steps=1",
    "views.augment=chromosome",
]


class Crash(RuntimeError):
    pass


class CrashAt(L.Callback):
    """Simulates a crash at the start of global step ``step`` (the previous step is checkpointed)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"simulated crash at step {self.step}")


def _rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "metrics.csv").open()))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.mark.parametrize("scheduler", ["exponential", "onecycle"])  # per epoch / per step, each staged
def test_resume_mid_epoch_matches_uninterrupted(scheduler: str, tmp_path: Path) -> None:
    cfg = load_config(SMOKE, [*OVERRIDES, f"train.scheduler={scheduler}", "train.warmup_epochs=0.5"])
    ref = train(cfg, tmp_path / "ref")

    run = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(cfg, run, callbacks=[CrashAt(step=4)])  # epoch 1, second batch
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4 and ckpt["epoch"] == 1
    assert len(_rows(run)) == 1  # only epoch 0 finished
    train(cfg, run, resume=True)

    ref_rows, rows = _rows(ref), _rows(run)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    for key in ("train/loss", "val/acc", "val/loss", "lr", "step"):
        assert float(rows[-1][key]) == pytest.approx(float(ref_rows[-1][key]), rel=1e-6, abs=1e-7), key
    for key in ("val/acc", "val/loss", "train/loss"):  # the interrupted epoch is whole
        assert float(rows[1][key]) == pytest.approx(float(ref_rows[1][key]), rel=1e-6, abs=1e-7), key
    w_ref, w = _weights(ref), _weights(run)
    assert w_ref.keys() == w.keys()
    for k in w_ref:
        torch.testing.assert_close(w[k], w_ref[k], rtol=1e-6, atol=1e-7)


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    from biorep.errors import RunDirError

    with pytest.raises(RunDirError, match="cannot --resume"):
        train(load_config(SMOKE), tmp_path / "nothing", resume=True)
