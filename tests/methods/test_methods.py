"""The method contract (prepare/embed/classify), switches, targets and the study's stopping rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from biorep.errors import ConfigError
from biorep.methods import METHODS
from biorep.methods.early_stop import LossTrendStop
from biorep.methods.supcon_joint import class_pairs
from biorep.methods.targets import ColumnTargetParams, column_targets

from .conftest import SIZE, make_method, toy_batch


def test_registry_has_every_paradigm() -> None:
    assert METHODS.names() == [
        "autoencoder",
        "barlow_twins",
        "byol",
        "regularized",
        "simclr",
        "supcon",
        "supervised",
        "vicreg",
        "weak",
    ]


@pytest.mark.parametrize("name", ["supervised", "simclr", "byol", "autoencoder", "supcon"])
def test_prepare_embed_classify(name: str) -> None:
    m = make_method(name, **({"pretrain_epochs": 1} if name == "supcon" else {}))
    x_raw, _, _ = toy_batch(2)
    x = m.prepare(x_raw)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    z = m.embed(x_raw)
    assert z.shape == (len(x_raw), m.num_features) and not z.requires_grad  # backbone, not a projection
    torch.testing.assert_close(z, m.backbone(x).detach())
    logits = m.classify(x_raw)
    if m.has_classifier:
        assert logits is not None and logits.shape == (len(x_raw), 4)
    else:
        assert logits is None


def test_prepare_uses_the_fitted_scaler() -> None:
    from biorep.data import IntensityScaler
    from biorep.methods import DataInfo, OptimConfig
    from biorep.models import ModelConfig
    from biorep.views import ViewsConfig

    scaler = IntensityScaler(low=[100.0], high=[200.0], invert=True)
    m = METHODS.get("autoencoder")(
        METHODS.get("autoencoder").Params(),
        model=ModelConfig(),
        views=ViewsConfig(),
        data=DataInfo(in_chans=1, size=SIZE, scaler=scaler.to_dict()),
        optim=OptimConfig(),
    )
    x = torch.full((1, 1, SIZE, SIZE), 150, dtype=torch.int32)
    x[0, 0, 0, 0] = 250
    out = m.prepare(x)
    assert out[0, 0, 1, 1].item() == pytest.approx(0.5) and out[0, 0, 0, 0].item() == 0.0


def _backbone_grads(method, x_raw, y, idx) -> list[torch.Tensor]:
    method.zero_grad()
    loss, _ = method.compute_loss(method.make_views(method.prepare(x_raw), 1), y, idx)
    loss.backward()
    return [p.grad.clone() for p in method.backbone.parameters()]


def test_regularized_detach_switch() -> None:
    x_raw, y, idx = toy_batch(2)
    base = _backbone_grads(make_method("regularized", cls_weight=0.0), x_raw, y, idx)
    detached = _backbone_grads(
        make_method("regularized", cls_weight=5.0, detach_classifier=True), x_raw, y, idx
    )
    summed = _backbone_grads(make_method("regularized", cls_weight=5.0), x_raw, y, idx)
    for a, b in zip(base, detached):
        torch.testing.assert_close(a, b)  # the public code: CE never reaches the encoder
    assert any(not torch.allclose(a, b) for a, b in zip(base, summed))  # the paper: it does


def test_two_stage_frozen_encoder_gets_no_gradient() -> None:
    x_raw, y, idx = toy_batch(2)
    m = make_method("supcon", mode="two_stage", pretrain_epochs=1, finetune=False)
    loss, _ = m.compute_loss([m.prepare(x_raw)], y, idx)  # no trainer: the classifier stage
    loss.backward()
    assert all(p.grad is None for p in m.backbone.parameters())
    assert all(p.grad is not None for p in m.classifier.parameters())
    ft = make_method("supcon", mode="two_stage", pretrain_epochs=1, finetune=True)
    loss, _ = ft.compute_loss([ft.prepare(x_raw)], y, idx)
    loss.backward()
    assert all(p.grad is not None for p in ft.backbone.parameters())


def test_joint_recipe_structure() -> None:
    m = make_method("supcon", mode="joint", embed_hidden_dim=64, embed_dim=32, cls_hidden_dim=16)
    assert m.batch_sampling() == {"kind": "class_balanced", "samples_per_class": 2}
    assert m.embed_head[1].bias is None and m.embed_head[1].out_features == 32
    assert m.contrastive.temperature == pytest.approx(0.07)
    x_raw, y, idx = toy_batch(2)
    _, logs = m.compute_loss([m.prepare(x_raw)], y, idx)
    assert {"contrastive", "classification", "temperature"} <= set(logs)


def test_class_pairs_in_order_of_appearance() -> None:
    ia, ib = class_pairs(torch.tensor([3, 1, 3, 1, 1, -1, 2]))
    assert sorted(zip(ia.tolist(), ib.tolist())) == [(0, 2), (1, 3)]


def test_params_reject_unknown_and_impossible_values() -> None:
    with pytest.raises(ValidationError, match="temperatur"):
        METHODS.get("supcon").Params(temperatur=0.1)
    with pytest.raises(ValidationError, match="greater than 0"):
        METHODS.get("simclr").Params(temperature=0)


def test_column_targets() -> None:
    meta = pd.DataFrame({"compound": ["DMSO", "taxol", "PBS", None, "taxol"]})
    t, classes = column_targets(
        ColumnTargetParams(column="compound", control=["DMSO", "PBS"]), meta, np.zeros(5, np.int64), ["x"]
    )
    assert classes == ["control", "treated"] and t.tolist() == [0, 1, 0, -1, 1]
    t, classes = column_targets(ColumnTargetParams(column="compound"), meta, np.zeros(5, np.int64), ["x"])
    assert classes == ["DMSO", "PBS", "taxol"] and t.tolist() == [0, 2, 1, -1, 2]
    with pytest.raises(ConfigError, match="method.column"):
        column_targets(ColumnTargetParams(column="nope"), meta, np.zeros(5, np.int64), ["x"])


class _FakeTrainer:
    def __init__(self) -> None:
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.should_stop = False


@pytest.mark.parametrize(
    ("losses", "stop_at", "reason"),
    [
        ([1.0, 0.8, 0.85, 0.9], 3, "rose twice"),
        ([1.0, 0.8, 1.1], 2, "first epoch"),
        ([1.0, 0.8, 0.79999], 2, "stalled"),
        ([1.0, 0.8, 0.6, 0.5], None, None),
    ],
)
def test_study_early_stop_rule(losses: list[float], stop_at: int | None, reason: str | None) -> None:
    cb, tr = LossTrendStop(stall_tol=1e-3), _FakeTrainer()
    stopped = None
    for epoch, value in enumerate(losses):
        tr.callback_metrics["train/loss"] = torch.tensor(value)
        cb.on_train_epoch_end(tr, None)  # type: ignore[arg-type]
        if tr.should_stop:
            stopped = epoch
            break
    assert stopped == stop_at
    if reason:
        assert reason in cb.reason


def test_reconstruction_bce_from_logits_matches_bce_on_the_sigmoid() -> None:
    import torch

    from biorep.methods.autoencoder import reconstruction_bce, reconstruction_loss
    from biorep.models import SimpleCNN, SimpleDecoder

    torch.manual_seed(0)
    enc, dec = SimpleCNN(1, 16), SimpleDecoder(1, 16)
    x = torch.rand(4, 1, 16, 16)
    h = enc(x)
    torch.testing.assert_close(reconstruction_bce(dec, h, x), reconstruction_loss(dec, dec(h), x))
    plain = torch.nn.Sequential(torch.nn.Unflatten(1, (8, 4, 4)), torch.nn.Upsample(scale_factor=4),
                                torch.nn.Conv2d(8, 1, 1), torch.nn.Sigmoid())  # no forward_logits
    torch.testing.assert_close(reconstruction_bce(plain, h, x), reconstruction_loss(plain, plain(h), x))


def test_tta_averages_the_probabilities_of_the_flips() -> None:
    from biorep.models import ModelConfig

    m = make_method("supervised").eval()
    x, _, _ = toy_batch()
    plain = m.classify(x)
    m.model_cfg = ModelConfig(backbone="simple_cnn", tta=["hflip"])
    tta = m.classify(x)
    torch.testing.assert_close(m.classify(x, tta=False), plain)  # the flips configured but not used
    m.model_cfg = ModelConfig(backbone="simple_cnn")
    flipped = m.classify(x.flip(-1))
    expected = (plain.softmax(1) + flipped.softmax(1)) / 2
    torch.testing.assert_close(tta.softmax(1), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(tta.softmax(1), plain.softmax(1))  # the flip did change something
    # no classifier: still None
    byol = make_method("byol")
    byol.model_cfg = ModelConfig(backbone="simple_cnn", tta=["hflip"])
    assert byol.classify(x) is None


def test_byol_momentum_update_is_lightlys_in_place() -> None:
    """The in-place update gives lightly's values and keeps the target's tensors (no rebinding)."""
    import copy

    from lightly.models.utils import update_momentum as lightly_update

    from biorep.methods.byol import update_momentum

    torch.manual_seed(0)
    online = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 3))
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.data.normal_()
    expected = copy.deepcopy(target)
    lightly_update(online, expected, m=0.8)
    ptrs = [p.data_ptr() for p in target.parameters()]
    update_momentum(online, target, m=0.8)
    for got, want in zip(target.state_dict().values(), expected.state_dict().values()):
        torch.testing.assert_close(got, want)
    assert [p.data_ptr() for p in target.parameters()] == ptrs
    assert any(not torch.equal(a, b) for a, b in zip(target.parameters(), online.parameters()))
