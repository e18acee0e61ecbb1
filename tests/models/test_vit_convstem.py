"""The conv-stem ViT sized for the chromosome canvas: builds, trains a step, loads its own weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biorep.errors import ConfigError
from biorep.models import ModelConfig, build_backbone


@pytest.mark.parametrize(("stride", "tokens"), [(8, 64), (4, 256)])
def test_builds_for_the_canvas_and_a_step_runs(stride: int, tokens: int) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="vit_convstem", kwargs={"stem_stride": stride, "depth": 2})
    net = build_backbone(cfg, in_chans=1, img_size=64)
    assert net.num_features == 192
    assert net.model.patch_embed.num_patches == tokens
    head = torch.nn.Linear(net.num_features, 24)
    opt = torch.optim.AdamW([*net.parameters(), *head.parameters()], lr=1e-3)
    x, y = torch.rand(4, 1, 64, 64), torch.randint(0, 24, (4,))
    loss = torch.nn.functional.cross_entropy(head(net(x)), y)
    loss.backward()
    stem_grad = net.model.patch_embed.backbone[0].weight.grad
    assert stem_grad is not None and float(stem_grad.abs().sum()) > 0
    opt.step()


def test_wrong_sizes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="stem_stride must be"):
        build_backbone(ModelConfig(backbone="vit_convstem", kwargs={"stem_stride": 6}), 1, 64)
    with pytest.raises(ConfigError, match="not a multiple"):
        build_backbone(ModelConfig(backbone="vit_convstem", kwargs={"stem_stride": 8}), 1, 60)
    with pytest.raises(ConfigError, match="not accepted"):
        build_backbone(ModelConfig(backbone="vit_convstem", kwargs={"depth": 1, "no_such_arg": 1}), 1, 32)


def test_weights_round_trip_at_another_canvas(tmp_path: Path) -> None:
    cfg = ModelConfig(backbone="vit_convstem", kwargs={"stem_stride": 8, "depth": 1})
    src = build_backbone(cfg, 1, 64)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {"backbone." + k: v for k, v in src.state_dict().items()}}, path)
    same = build_backbone(cfg.model_copy(update={"weights": str(path)}), 1, 64)
    x = torch.rand(2, 1, 64, 64)
    src.eval(), same.eval()
    torch.testing.assert_close(src(x), same(x))
    bigger = build_backbone(cfg.model_copy(update={"weights": str(path)}), 1, 128)  # pos. embedding resampled
    assert bigger(torch.rand(1, 1, 128, 128)).shape == (1, 192)
