"""Study B's SimpleCNN and its decoder."""

from __future__ import annotations

import torch

from biorep.models import SimpleCNN, SimpleDecoder, build_decoder


def test_simple_cnn_is_the_study_architecture() -> None:
    net = SimpleCNN(in_chans=1, img_size=64)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == {
        "encoder.0.weight": (64, 1, 3, 3),
        "encoder.0.bias": (64,),
        "encoder.3.weight": (32, 64, 3, 3),
        "encoder.3.bias": (32,),
        "encoder.6.weight": (16, 32, 3, 3),
        "encoder.6.bias": (16,),
        "encoder.8.weight": (8, 16, 3, 3),
        "encoder.8.bias": (8,),
    }
    out = net(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 2048) and net.num_features == 2048
    assert net.forward_features(torch.rand(1, 1, 64, 64)).shape == (1, 8, 16, 16)


def test_simple_cnn_other_sizes_and_channels() -> None:
    net = SimpleCNN(in_chans=3, img_size=32)
    assert net.num_features == 8 * 8 * 8 == net(torch.rand(2, 3, 32, 32)).shape[1]


def test_decoder_reconstructs_input_shape_in_unit_range() -> None:
    enc = SimpleCNN(in_chans=1, img_size=64)
    dec = build_decoder(enc, 1, 64)
    assert isinstance(dec, SimpleDecoder)
    x = torch.rand(2, 1, 64, 64)
    rec = dec(enc(x))
    assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 1
    assert dec(enc.forward_features(x)).shape == x.shape
    # mirrors the study's decoder layer by layer
    convs = [m for m in dec.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(8, 32), (32, 64), (64, 64), (64, 1)]


def test_decoder_odd_size_is_exact() -> None:
    enc = SimpleCNN(in_chans=2, img_size=30)
    rec = build_decoder(enc, 2, 30)(enc(torch.rand(1, 2, 30, 30)))
    assert rec.shape == (1, 2, 30, 30)


def test_simple_cnn_learns() -> None:
    torch.manual_seed(0)
    enc, dec = SimpleCNN(1, 16), SimpleDecoder(1, 16)
    x = torch.rand(4, 1, 16, 16)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-2)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.binary_cross_entropy(dec(enc(x)), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
