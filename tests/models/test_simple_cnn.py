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


def test_upsample2_conv3x3_is_upsample_then_conv() -> None:
    from biorep.models.simple_cnn import upsample2_conv3x3

    torch.manual_seed(0)
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    want = torch.nn.functional.conv2d(torch.nn.functional.interpolate(x, scale_factor=2), w, b, padding=1)
    for fmt in (torch.contiguous_format, torch.channels_last):
        got = upsample2_conv3x3(x.contiguous(memory_format=fmt), w, b)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)


def test_fast_decoder_is_the_study_decoder_values_and_gradients() -> None:
    """``forward`` (conv2d form, phase-decomposed upsampling) == the modules run as the study wrote them."""
    torch.manual_seed(0)
    for size, c in ((64, 1), (30, 2), (32, 3)):
        enc, dec = SimpleCNN(c, size).double(), SimpleDecoder(c, size).double()
        for fmt in (torch.contiguous_format, torch.channels_last):
            dec = dec.to(memory_format=fmt)
            z = enc.forward_features(torch.rand(3, c, size, size, dtype=torch.float64)).contiguous(
                memory_format=fmt
            )
            z.requires_grad_(True)
            fast, ref = dec(z), dec.reference_forward(z)
            torch.testing.assert_close(fast, ref)
            gf = torch.autograd.grad(fast.square().sum(), [z, *dec.parameters()])
            gr = torch.autograd.grad(ref.square().sum(), [z, *dec.parameters()])
            for a, b in zip(gf, gr):
                torch.testing.assert_close(a, b)
            torch.testing.assert_close(torch.sigmoid(dec.forward_logits(z)), fast)


def test_fast_decoder_under_bf16_autocast_is_close() -> None:
    torch.manual_seed(0)
    enc, dec = SimpleCNN(1, 32), SimpleDecoder(1, 32)
    z = enc(torch.rand(4, 1, 32, 32))
    ref = dec.reference_forward(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = dec(z)
    assert (fast.float() - ref).abs().max() < 2e-2


def test_encoder_pool_before_relu_is_the_study_order() -> None:
    torch.manual_seed(0)
    net = SimpleCNN(2, 32).double()
    x = torch.randn(3, 2, 32, 32, dtype=torch.float64, requires_grad=True)
    fast, ref = net(x), net.encoder(x).flatten(1)
    torch.testing.assert_close(fast, ref)
    gf = torch.autograd.grad(fast.square().sum(), [x, *net.parameters()])
    gr = torch.autograd.grad(ref.square().sum(), [x, *net.parameters()])
    for a, b in zip(gf, gr):
        torch.testing.assert_close(a, b)


def test_cpu_micro_batches_are_the_whole_batch_values_and_gradients() -> None:
    """Chunked encoder and decoder (3 images a chunk, ragged last chunk) == the batch at once."""
    torch.manual_seed(0)
    x = torch.rand(8, 2, 32, 32, dtype=torch.float64)
    whole_enc = SimpleCNN(2, 32, micro_batch=0).double()
    chunk_enc = SimpleCNN(2, 32, micro_batch=3).double()
    chunk_enc.load_state_dict(whole_enc.state_dict())
    whole_dec, chunk_dec = whole_enc.build_decoder().double(), chunk_enc.build_decoder().double()
    chunk_dec.load_state_dict(whole_dec.state_dict())
    assert chunk_dec.micro_batch == 3
    calls = []
    orig = chunk_enc._features
    chunk_enc._features = lambda t: calls.append(t.shape[0]) or orig(t)  # type: ignore[method-assign]
    outs = []
    for enc, dec in ((whole_enc, whole_dec), (chunk_enc, chunk_dec)):
        loss = dec(enc(x)).square().sum()
        outs.append((loss, torch.autograd.grad(loss, [*enc.parameters(), *dec.parameters()])))
    assert calls == [3, 3, 2]
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b)


def test_cpu_micro_batch_auto_size_follows_the_cache_budget(monkeypatch) -> None:
    """None = as many images as keep the widest maps within the budget, at the precision computed in."""
    from biorep.models import simple_cnn

    seen: list[int] = []
    net = SimpleCNN(1, 16)
    orig = net._features
    net._features = lambda t: seen.append(t.shape[0]) or orig(t)  # type: ignore[method-assign]
    per_image_fp32 = 64 * 16 * 16 * 4
    monkeypatch.setattr(simple_cnn, "CPU_CHUNK_BYTES", 5 * per_image_fp32)
    net(torch.rand(12, 1, 16, 16))
    assert seen == [5, 5, 2]
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # half the bytes per element: twice the images
        net(torch.rand(12, 1, 16, 16))
    assert seen == [10, 2]
    seen.clear()
    net.micro_batch = 0
    net(torch.rand(12, 1, 16, 16))
    assert seen == [12]


def test_simple_cnn_micro_batch_from_model_kwargs() -> None:
    import pytest

    from biorep.errors import ConfigError
    from biorep.models import ModelConfig, build_backbone

    assert build_backbone(ModelConfig(backbone="simple_cnn", kwargs={"micro_batch": 8}), 1, 32).micro_batch == 8
    with pytest.raises(ConfigError, match="micro_batch must be ≥ 0"):
        build_backbone(ModelConfig(backbone="simple_cnn", kwargs={"micro_batch": -1}), 1, 32)
    with pytest.raises(ConfigError, match="only model.kwargs is micro_batch"):
        build_backbone(ModelConfig(backbone="simple_cnn", kwargs={"depth": 3}), 1, 32)
