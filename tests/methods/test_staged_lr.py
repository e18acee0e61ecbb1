"""StagedLR: every stage gets the configured schedule over its own length, and resumes mid-stage."""

from __future__ import annotations

import pytest
import torch

from biorep.methods.base import OptimConfig, _onecycle
from biorep.methods.staged_lr import StagedLR


def _opt(lr: float = 0.5) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _onecycle_builder(cfg: OptimConfig, per_epoch: float):
    return lambda opt, n: _onecycle(opt, cfg, n, per_epoch)


def _trace(opt: torch.optim.Optimizer, sched, steps: int) -> list[float]:
    """lr, Adam's beta1 (one-cycle cycles it), lr, beta1, … before each step."""
    out = []
    for _ in range(steps):
        g = opt.param_groups[0]
        out += [g["lr"], g["betas"][0]]
        opt.step()
        sched.step()
    return out


def test_each_stage_is_a_fresh_onecycle_over_its_length() -> None:
    cfg = OptimConfig(lr=0.5, optimizer="adamw", scheduler="onecycle", warmup_epochs=0.5)
    opt = _opt()
    staged = _trace(opt, StagedLR(opt, [30, 20], _onecycle_builder(cfg, 10.0)), 50)
    first, second = _opt(), _opt()
    expect = _trace(first, _onecycle(first, cfg, 30, 10.0), 30) + _trace(second, _onecycle(second, cfg, 20, 10.0), 20)
    assert staged == pytest.approx(expect)
    lrs = staged[::2]
    assert max(lrs[30:]) == pytest.approx(0.5) and lrs[29] < 0.01  # the second stage peaks again


@pytest.mark.parametrize("saved_at", [5, 12, 17])  # in stage 1, exactly at the switch, in stage 2
def test_resume_continues_the_same_trace(saved_at: int) -> None:
    cfg = OptimConfig(lr=0.5, optimizer="adamw", scheduler="onecycle", warmup_epochs=0.5)
    opt = _opt()
    ref = _trace(opt, StagedLR(opt, [12, 18], _onecycle_builder(cfg, 6.0)), 30)

    opt = _opt()
    sched = StagedLR(opt, [12, 18], _onecycle_builder(cfg, 6.0))
    head = _trace(opt, sched, saved_at)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    opt2 = _opt()
    sched2 = StagedLR(opt2, [12, 18], _onecycle_builder(cfg, 6.0))  # as configure_optimizers builds it
    opt2.load_state_dict(saved_opt)  # Lightning restores the optimiser, then the scheduler
    sched2.load_state_dict(saved_sched)
    assert head + _trace(opt2, sched2, 30 - saved_at) == pytest.approx(ref)


def test_refuses_other_stage_lengths_and_empty_stages() -> None:
    cfg = OptimConfig(lr=0.5, scheduler="onecycle")
    opt = _opt()
    state = StagedLR(opt, [5, 5], _onecycle_builder(cfg, 5.0)).state_dict()
    with pytest.raises(ValueError, match="stage lengths"):
        StagedLR(_opt(), [4, 6], _onecycle_builder(cfg, 5.0)).load_state_dict(state)
    with pytest.raises(ValueError, match="at least one step"):
        StagedLR(_opt(), [5, 0], _onecycle_builder(cfg, 5.0))


@pytest.mark.parametrize("stage_schedule", [True, False])
def test_two_stage_supcon_gives_the_classifier_its_own_schedule(stage_schedule: bool) -> None:
    from biorep.methods import METHODS, DataInfo
    from biorep.models import ModelConfig
    from biorep.views import ViewsConfig

    cls = METHODS.get("supcon")
    params = cls.Params(mode="two_stage", pretrain_epochs=3, proj_dim=8, stage_schedule=stage_schedule)
    method = cls(
        params, model=ModelConfig(backbone="simple_cnn"), views=ViewsConfig(),
        data=DataInfo(in_chans=1, size=32, classes=["a", "b"]),
        optim=OptimConfig(lr=1e-3, scheduler="cosine"),
    )
    assert method.schedule_stages(5) == ([3, 2] if stage_schedule else [5])
    method._max_epochs = lambda: 5  # what the trainer's max_epochs gives in a run
    sched = method.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert isinstance(sched, StagedLR) == stage_schedule
    if stage_schedule:
        assert sched.lengths == [3, 2]
