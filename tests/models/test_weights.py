"""Loading local weights: containers, prefixes, channel adaptation, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biorep.errors import ConfigError
from biorep.models import ModelConfig, SimpleCNN, adapt_conv_channels, build_backbone, load_weights


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"module." + k: v for k, v in sd.items()},
        lambda sd: {"state_dict": {"backbone." + k: v for k, v in sd.items()}, "epoch": 3},
        lambda sd: {"model": {"model." + k: v for k, v in sd.items()}},
    ],
)
def test_round_trip_with_prefixes(tmp_path: Path, wrap) -> None:
    src = SimpleCNN(1, 64)
    path = tmp_path / "w.pt"
    torch.save(wrap(src.state_dict()), path)
    dst = build_backbone(ModelConfig(weights=str(path)), in_chans=1, img_size=64)
    assert _same(src, dst)


def test_timm_round_trip_and_extra_heads_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = ModelConfig(backbone="resnet18")
    src = build_backbone(cfg, in_chans=3, img_size=32)
    sd = {"backbone." + k: v for k, v in src.state_dict().items()}
    sd["projection_head.0.weight"] = torch.zeros(4, 4)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": sd}, path)
    dst = build_backbone(cfg.model_copy(update={"weights": str(path)}), in_chans=3, img_size=32)
    assert _same(src, dst)
    assert "projection_head.0.weight" in caplog.text
    # raw timm keys (as a timm checkpoint would have them) load into the wrapper too
    torch.save(src.model.state_dict(), path)
    assert _same(src, build_backbone(cfg.model_copy(update={"weights": str(path)}), in_chans=3, img_size=32))


def test_in_chans_adaptation(tmp_path: Path) -> None:
    src = SimpleCNN(3, 32)
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    gray = SimpleCNN(1, 32)
    report = load_weights(gray, path)
    assert report.adapted and "3→1" in report.adapted[0]
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(gray(x), src(x.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-5)
    five = SimpleCNN(5, 32)
    load_weights(five, path)
    torch.testing.assert_close(
        five(x.expand(-1, 5, -1, -1)), src(x.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-5
    )


def test_adapt_conv_channels_shapes() -> None:
    w = torch.rand(8, 2, 3, 3)
    assert adapt_conv_channels(w, 1).shape == (8, 1, 3, 3)
    out = adapt_conv_channels(w, 5)
    assert out.shape == (8, 5, 3, 3)
    torch.testing.assert_close(out.sum(1), w.sum(1))


def test_vit_position_embedding_is_resampled(tmp_path: Path) -> None:
    src = build_backbone(ModelConfig(backbone="vit_tiny_patch16_224", kwargs={"depth": 1}), 1, 64)
    path = tmp_path / "vit.pt"
    torch.save(src.state_dict(), path)
    cfg = ModelConfig(backbone="vit_tiny_patch16_224", weights=str(path), kwargs={"depth": 1})
    dst = build_backbone(cfg, 1, 32)
    assert dst.model.pos_embed.shape[1] == 1 + 4
    assert dst(torch.rand(1, 1, 32, 32)).shape == (1, 192)


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone(ModelConfig(weights=str(tmp_path / "nope.pt")), 1, 64)
    bad = tmp_path / "other.pt"
    torch.save({"foo.weight": torch.zeros(3)}, bad)
    with pytest.raises(ConfigError, match="no key matches"):
        build_backbone(ModelConfig(weights=str(bad)), 1, 64)
    partial = tmp_path / "partial.pt"
    sd = SimpleCNN(1, 64).state_dict()
    sd.pop("encoder.8.weight")
    torch.save(sd, partial)
    with pytest.raises(ConfigError, match="lacks 1 .*encoder.8.weight"):
        build_backbone(ModelConfig(weights=str(partial)), 1, 64)
    wrong = tmp_path / "wrong.pt"
    torch.save(SimpleCNN(1, 32).state_dict() | {"encoder.8.weight": torch.zeros(8, 99, 3, 3)}, wrong)
    with pytest.raises(ConfigError, match="do not fit"):
        build_backbone(ModelConfig(weights=str(wrong)), 1, 64)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read") as caught:
        build_backbone(ModelConfig(weights=str(junk)), 1, 64)
    assert "\n" not in str(caught.value)  # one line, not PyTorch's paragraph
    yaml_file = tmp_path / "config.yaml"  # a config passed where a checkpoint belongs
    yaml_file.write_text("train: {epochs: 1}\n")
    with pytest.raises(ConfigError, match="cannot read .* as a PyTorch checkpoint or state dict") as caught:
        build_backbone(ModelConfig(weights=str(yaml_file)), 1, 64)
    assert "weights_only=False" not in str(caught.value)  # no advice to unpickle an untrusted file
