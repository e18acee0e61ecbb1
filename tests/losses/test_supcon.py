"""SupConLoss against pytorch-metric-learning, plus the class-paired InfoNCE and focal CE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import SupConLoss as PMLSupConLoss

from biorep.losses import ClassPairInfoNCE, FocalCrossEntropy, SupConLoss


@pytest.mark.parametrize("temperature", [0.07, 0.5])
@pytest.mark.parametrize("views", [1, 2, 3])
def test_supcon_equals_pytorch_metric_learning(temperature: float, views: int) -> None:
    g = torch.Generator().manual_seed(views)
    z = torch.randn(20, views, 16, generator=g)
    y = torch.randint(0, 5, (20,), generator=g)
    ours = SupConLoss(temperature)(z if views > 1 else z[:, 0], y)
    # PML takes one row per embedding: stack the views (view-major) with repeated labels
    ref = PMLSupConLoss(temperature=temperature)(z.transpose(0, 1).reshape(-1, 16), y.repeat(views))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_supcon_anchors_without_positives_are_left_out() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 8, generator=g)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 3])  # classes 2 and 3 have no positive
    ours = SupConLoss(0.1)(z, y)
    ref = PMLSupConLoss(temperature=0.1)(z, y)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # leaving the positive-less anchors out of the mean = the mean over the others
    only = SupConLoss(0.1)(z[:5], y[:5])
    assert not torch.isclose(ours, only)  # they still act as negatives
    zero = SupConLoss(0.1)(torch.randn(3, 4, requires_grad=True), torch.tensor([0, 1, 2]))
    assert zero.item() == 0.0 and zero.requires_grad


def test_supcon_base_temperature_scales_and_validates() -> None:
    z, y = torch.randn(8, 2, 4), torch.arange(8) % 3
    a = SupConLoss(0.1)(z, y)
    b = SupConLoss(0.1, base_temperature=0.07)(z, y)
    torch.testing.assert_close(b, a * 0.1 / 0.07)
    with pytest.raises(ValueError, match="temperature"):
        SupConLoss(0.0)
    with pytest.raises(ValueError, match="labels"):
        SupConLoss()(z, y[:3])


def test_supcon_pulls_same_class_together() -> None:
    torch.manual_seed(0)
    y = torch.arange(16) % 4
    z = torch.randn(16, 2, 8, requires_grad=True)
    opt = torch.optim.SGD([z], lr=0.5)
    loss_fn = SupConLoss(0.1)
    first = loss_fn(z, y).item()
    for _ in range(50):
        opt.zero_grad()
        loss = loss_fn(z, y)
        loss.backward()
        opt.step()
    assert loss.item() < first - 1.0
    zn = F.normalize(z.detach().mean(1), dim=1)
    sim = zn @ zn.T
    same = y[:, None] == y[None, :]
    assert sim[same].mean() > sim[~same].mean() + 0.5


def test_class_pair_infonce_matches_clip_form_and_masks_same_labels() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    loss_fn = ClassPairInfoNCE(temperature=0.1, within_view=False)
    an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = an @ bn.T / 0.1
    target = torch.arange(6)
    ref = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    torch.testing.assert_close(loss_fn(a, b), ref, rtol=1e-5, atol=1e-5)
    # two rows of the same class: their cross entries leave the denominators
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    masked = loss_fn(a, b, labels)
    logits_m = logits.clone()
    logits_m[0, 1] = logits_m[1, 0] = float("-inf")
    ref_m = 0.5 * (F.cross_entropy(logits_m, target) + F.cross_entropy(logits_m.T, target))
    torch.testing.assert_close(masked, ref_m, rtol=1e-5, atol=1e-5)


def test_class_pair_infonce_learnable_temperature() -> None:
    loss_fn = ClassPairInfoNCE(temperature=0.07)
    assert abs(loss_fn.temperature - 0.07) < 1e-6
    assert isinstance(loss_fn.logit_scale, torch.nn.Parameter)
    loss = loss_fn(torch.randn(4, 8), torch.randn(4, 8))
    loss.backward()
    assert loss_fn.logit_scale.grad is not None
    fixed = ClassPairInfoNCE(learnable_temperature=False)
    assert not any(True for _ in fixed.parameters())


def test_focal_cross_entropy() -> None:
    logits, y = torch.randn(10, 4), torch.randint(0, 4, (10,))
    torch.testing.assert_close(FocalCrossEntropy()(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(
        FocalCrossEntropy(label_smoothing=0.1)(logits, y), F.cross_entropy(logits, y, label_smoothing=0.1)
    )
    focal = FocalCrossEntropy(gamma=2.0)(logits, y)
    assert focal < F.cross_entropy(logits, y)
    y_missing = y.clone()
    y_missing[:5] = -1
    torch.testing.assert_close(FocalCrossEntropy()(logits, y_missing), F.cross_entropy(logits[5:], y[5:]))
