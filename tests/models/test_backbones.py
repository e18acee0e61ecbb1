"""Backbone factory: simple_cnn, timm CNNs and transformers at small sizes, any channel count."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from biorep.errors import ConfigError
from biorep.models import BACKBONES, ModelConfig, UpsamplingDecoder, build_backbone, build_decoder


def test_registry_and_simple_cnn() -> None:
    assert "simple_cnn" in BACKBONES
    net = build_backbone(ModelConfig(), in_chans=1, img_size=64)
    assert net.num_features == 2048


@pytest.mark.parametrize(
    ("name", "size", "kwargs"),
    [
        ("resnet18", 32, {}),
        ("vit_tiny_patch16_224", 64, {}),
        ("convnext_atto", 32, {"drop_path_rate": 0.1}),
        ("swin_tiny_patch4_window7_224", 64, {"depths": (1, 1, 1, 1)}),
    ],
)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_timm_backbones_give_flat_representations(name: str, size: int, kwargs: dict, in_chans: int) -> None:
    net = build_backbone(ModelConfig(backbone=name, kwargs=kwargs), in_chans=in_chans, img_size=size)
    out = net(torch.rand(2, in_chans, size, size))
    assert out.shape == (2, net.num_features)
    assert net.training  # the size probe must not leave the model in eval mode


def test_generic_decoder_for_timm_backbone() -> None:
    net = build_backbone(ModelConfig(backbone="resnet18"), in_chans=3, img_size=32)
    dec = build_decoder(net, 3, 32)
    assert isinstance(dec, UpsamplingDecoder)
    rec = dec(net(torch.rand(2, 3, 32, 32)))
    assert rec.shape == (2, 3, 32, 32) and rec.min() >= 0 and rec.max() <= 1
    assert UpsamplingDecoder(64, 1, 224)(torch.rand(1, 64)).shape == (1, 1, 224, 224)


def test_unknown_backbone_is_a_config_error_with_hints() -> None:
    with pytest.raises(ConfigError, match=r"resnet19.*did you mean.*resnet18.*timm.list_models"):
        build_backbone(ModelConfig(backbone="resnet19"), in_chans=1, img_size=32)


def test_incompatible_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'convnext_atto' cannot take 1×8×8 inputs"):
        build_backbone(ModelConfig(backbone="convnext_atto"), in_chans=1, img_size=8)


def test_patch_size_mismatch_warns(caplog: pytest.LogCaptureFixture) -> None:
    build_backbone(ModelConfig(backbone="vit_tiny_patch16_224", kwargs={"depth": 1}), in_chans=1, img_size=40)
    assert "not a multiple of the patch size" in caplog.text


def test_bad_kwargs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="model.kwargs"):
        build_backbone(ModelConfig(backbone="resnet18", kwargs={"no_such_arg": 1}), in_chans=1, img_size=32)
    with pytest.raises(ConfigError, match="simple_cnn"):
        build_backbone(ModelConfig(kwargs={"width": 3}), in_chans=1, img_size=64)
    with pytest.raises(ValidationError, match="never downloads"):
        ModelConfig(backbone="resnet18", kwargs={"pretrained": True})
    with pytest.raises(ValidationError):
        ModelConfig(backbone="resnet18", pretrained=True)
