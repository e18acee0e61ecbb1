"""Weight EMA (``train.ema_decay``): the warmed-up average, what the checkpoints hold, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from biorep.training import load_config, train
from biorep.training.ema import WarmupEMA, warmup_decay

from .conftest import SMOKE
from .test_resume import OVERRIDES, Crash, CrashAt, _rows

EMA = [*OVERRIDES, "train.ema_decay=0.9"]


def test_decay_warms_up_then_stays() -> None:
    assert warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert warmup_decay(0.999, 10) == pytest.approx(11 / 20)
    assert warmup_decay(0.9, 10_000) == 0.9


def test_average_follows_the_formula_and_copies_integer_buffers() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    avg = AveragedModel(net, use_buffers=True, multi_avg_fn=WarmupEMA(0.5))
    expected = net[0].weight.detach().clone()
    for step in range(4):
        with torch.no_grad():
            net[0].weight.add_(1.0)
        net(torch.randn(5, 3))  # BatchNorm: running stats and num_batches_tracked move
        avg.update_parameters(net)
        # the first update copies; then update n (n earlier ones) moves by 1 − min(0.5, (1+n)/(10+n))
        expected = net[0].weight.detach().clone() if step == 0 else \
            expected + (1 - warmup_decay(0.5, step)) * (net[0].weight.detach() - expected)
        torch.testing.assert_close(avg.module[0].weight, expected)
    assert int(avg.module[1].num_batches_tracked) == int(net[1].num_batches_tracked) == 4
    assert not torch.equal(avg.module[0].weight, net[0].weight)


def test_checkpoints_hold_the_average_and_resume_continues_it(tmp_path: Path) -> None:
    cfg = load_config(SMOKE, EMA)
    ref = train(cfg, tmp_path / "ref")
    last = torch.load(ref / "checkpoints" / "last.ckpt", weights_only=False)
    averaged, live = last["state_dict"], last["current_model_state"]
    assert averaged.keys() == live.keys()
    assert any(not torch.equal(averaged[k], live[k]) for k in averaged)  # the average is not the last weights

    run = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(cfg, run, callbacks=[CrashAt(step=4)])
    train(cfg, run, resume=True)
    for key in ("val/acc", "val/loss", "train/loss"):  # validation scores the average, same as uninterrupted
        assert float(_rows(run)[-1][key]) == pytest.approx(float(_rows(ref)[-1][key]), rel=1e-6, abs=1e-7), key
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    for part in ("state_dict", "current_model_state"):
        for k, v in last[part].items():
            torch.testing.assert_close(resumed[part][k], v, rtol=1e-6, atol=1e-7)


def test_resume_refuses_a_changed_ema(tmp_path: Path) -> None:
    from biorep.errors import BiorepError

    cfg = load_config(SMOKE, [*EMA, "train.epochs=2"])
    train(cfg, tmp_path / "run")
    with pytest.raises(BiorepError, match="ema_decay"):
        train(load_config(SMOKE, [*OVERRIDES, "train.epochs=2", "train.ema_decay=0.5"]), tmp_path / "run",
              resume=True)
