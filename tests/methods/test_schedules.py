"""Per-step LR schedules (warm-up + cosine, one-cycle) and the backbone's lr scale."""

from __future__ import annotations

import pytest
import torch

from biorep.methods.base import OptimConfig, _onecycle, _warmup_cosine


def _trace(make, cfg: OptimConfig, total: int, per_epoch: float) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make(opt, cfg, total, per_epoch)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_cosine_rises_then_decays_to_min_lr_every_step() -> None:
    cfg = OptimConfig(lr=1.0, scheduler="warmup_cosine", warmup_epochs=1, min_lr=0.01)
    lrs = _trace(_warmup_cosine, cfg, total=40, per_epoch=10)
    warm, rest = lrs[:10], lrs[10:]
    assert all(a < b for a, b in zip(warm, warm[1:]))  # linear warm-up over one epoch of steps
    assert rest[0] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rest, rest[1:]))  # then monotone cosine decay
    assert rest[-1] == pytest.approx(0.01, abs=0.01)
    assert len(set(round(x, 9) for x in lrs[10:20])) == 10  # changes within an epoch, not per epoch


def test_onecycle_peaks_at_lr_after_warmup() -> None:
    cfg = OptimConfig(lr=0.5, scheduler="onecycle", warmup_epochs=1)
    lrs = _trace(_onecycle, cfg, total=50, per_epoch=10)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert 8 <= peak <= 11 and lrs[peak] == pytest.approx(0.5, rel=1e-3)
    assert lrs[-1] < 0.01 * 0.5


def test_backbone_lr_scale_gives_the_backbone_its_own_group() -> None:
    from biorep.methods import METHODS, DataInfo
    from biorep.models import ModelConfig
    from biorep.views import ViewsConfig

    cls = METHODS.get("supervised")
    method = cls(
        cls.Params(), model=ModelConfig(backbone="simple_cnn"), views=ViewsConfig(),
        data=DataInfo(in_chans=1, size=32, classes=["a", "b"]),
        optim=OptimConfig(lr=1e-3, backbone_lr_scale=0.1),
    )
    opt = method.configure_optimizers()
    groups = opt.param_groups
    assert sorted(g["lr"] for g in groups) == pytest.approx([1e-4, 1e-3])
    backbone = {id(p) for p in method.backbone.parameters()}
    slow = next(g for g in groups if g["lr"] == pytest.approx(1e-4))
    assert {id(p) for p in slow["params"]} == backbone


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("warmup", [0.0, 0.5, 3.0])
def test_onecycle_on_a_handful_of_steps(total: int, warmup: float) -> None:
    """A tiny data set gives a run only a few steps; torch's OneCycleLR divides by zero there."""
    cfg = OptimConfig(lr=0.5, scheduler="onecycle", warmup_epochs=warmup)
    lrs = _trace(_onecycle, cfg, total=total, per_epoch=1)
    assert len(lrs) == total and all(0 < x <= 0.5 + 1e-9 for x in lrs)
