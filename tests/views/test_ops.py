"""Batched augmentation ops: exactness, probabilities, per-sample independence, seeding."""

from __future__ import annotations

import pytest
import torch

from biorep.views.ops import (
    AUGMENTATIONS,
    Augment,
    Brightness,
    Contrast,
    GaussianBlur,
    GaussianNoise,
    HFlip,
    Rot90,
    Rotate,
    VFlip,
    build_op,
)


def _distinct_batch(n: int = 16, c: int = 2, s: int = 16) -> torch.Tensor:
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(1))


def test_registry_has_every_op() -> None:
    assert set(AUGMENTATIONS.names()) >= {
        "hflip",
        "vflip",
        "rot90",
        "rotate",
        "blur",
        "brightness",
        "contrast",
        "noise",
    }


def test_flips_are_exact() -> None:
    x = _distinct_batch()
    assert torch.equal(HFlip(p=1.0)(x), x.flip(-1))
    assert torch.equal(VFlip(p=1.0)(x), x.flip(-2))


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rot90_matches_torch(k: int) -> None:
    x = _distinct_batch()
    assert torch.equal(Rot90(k=[k], p=1.0)(x), torch.rot90(x, k, dims=(-2, -1)))


def test_rot90_mixes_turns_per_sample() -> None:
    x = _distinct_batch(64)
    out = Rot90(p=1.0)(x, torch.Generator().manual_seed(0))
    found = set()
    for i in range(len(x)):
        ks = [k for k in range(4) if torch.equal(out[i], torch.rot90(x[i], k, dims=(-2, -1)))]
        assert len(ks) == 1
        found.add(ks[0])
    assert found == {0, 1, 2, 3}


@pytest.mark.parametrize(("deg", "k"), [(90.0, 1), (-90.0, 3), (180.0, 2)])
def test_rotate_by_quarter_turns_matches_rot90(deg: float, k: int) -> None:
    x = _distinct_batch()
    out = Rotate(degrees=(deg, deg), p=1.0)(x)
    torch.testing.assert_close(out, torch.rot90(x, k, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_rotate_fills_corners_with_fill_value() -> None:
    x = torch.full((4, 1, 32, 32), 0.5)
    out = Rotate(degrees=(45.0, 45.0), fill=0.2, p=1.0)(x)
    assert out[:, :, 0, 0].allclose(torch.tensor(0.2), atol=1e-6)  # corner comes from outside
    assert out[:, :, 16, 16].allclose(torch.tensor(0.5), atol=1e-6)  # centre stays
    out0 = Rotate(degrees=(45.0, 45.0), p=1.0)(x)
    assert out0[:, :, 0, 0].abs().max() < 1e-6  # default fill = 0 (scaled background)


def test_rotate_per_channel_fill() -> None:
    x = torch.zeros(2, 3, 16, 16)
    out = Rotate(degrees=(45.0, 45.0), fill=[0.1, 0.2, 0.3], p=1.0)(x)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.1, 0.2, 0.3]))


def test_blur_preserves_mean_and_constants_and_smooths() -> None:
    x = _distinct_batch()
    out = GaussianBlur(kernel=3, sigma=(0.5, 2.0), p=1.0)(x)
    torch.testing.assert_close(out.mean((-2, -1)), x.mean((-2, -1)), atol=0.02, rtol=0)
    assert out.std() < x.std() * 0.9
    const = torch.full((3, 1, 8, 8), 0.3)
    torch.testing.assert_close(GaussianBlur(kernel=5, p=1.0)(const), const)


def test_blur_matches_torchvision_for_a_fixed_sigma() -> None:
    from torchvision.transforms.v2 import functional as TF

    x = _distinct_batch(4, 1, 12)
    out = GaussianBlur(kernel=5, sigma=(1.3, 1.3), p=1.0)(x)
    ref = TF.gaussian_blur(x, kernel_size=[5, 5], sigma=[1.3, 1.3])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_blur_sigma_is_per_sample() -> None:
    x = _distinct_batch(1).expand(32, -1, -1, -1).contiguous()
    out = GaussianBlur(kernel=3, sigma=(0.1, 2.0), p=1.0)(x, torch.Generator().manual_seed(0))
    assert len({round(float(o.std()), 5) for o in out}) > 20


def test_jitter_ops_keep_range_and_background() -> None:
    x = _distinct_batch()
    x[:, :, :4] = 0.0
    b = Brightness(factor=(0.5, 1.5), p=1.0)(x)
    assert b.min() >= 0 and b.max() <= 1
    assert torch.all(b[:, :, :4] == 0)  # multiplicative: background 0 stays 0
    c = Contrast(factor=(0.5, 1.5), p=1.0)(x)
    assert c.min() >= 0 and c.max() <= 1
    assert not torch.allclose(c, x)


def test_per_channel_jitter_differs_between_channels() -> None:
    x = torch.full((8, 3, 4, 4), 0.5)
    shared = Brightness(factor=(0.5, 1.5), p=1.0)(x)
    assert torch.allclose(shared[:, 0], shared[:, 1])
    per = Brightness(factor=(0.5, 1.5), per_channel=True, p=1.0)(x)
    assert not torch.allclose(per[:, 0], per[:, 1])


def test_noise_changes_and_clamps() -> None:
    x = _distinct_batch()
    out = GaussianNoise(sigma=(0.05, 0.1), p=1.0)(x)
    assert not torch.allclose(out, x) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    "name", ["hflip", "vflip", "rot90", "rotate", "blur", "brightness", "contrast", "noise"]
)
def test_p0_is_identity(name: str) -> None:
    x = _distinct_batch()
    assert torch.equal(build_op({"op": name, "p": 0.0})(x), x)


def test_p_half_applies_to_some_samples_only() -> None:
    x = _distinct_batch(200, 1, 4)
    out = HFlip(p=0.5)(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert torch.all(flipped ^ kept)
    assert 70 < int(flipped.sum()) < 130


def test_seeded_generator_is_reproducible() -> None:
    x = _distinct_batch()
    aug = Augment([HFlip(p=0.5), Rotate(degrees=30.0, p=0.7), GaussianBlur(p=0.5)])
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_params_are_rejected() -> None:
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur(kernel=4)
    with pytest.raises(ValueError):
        HFlip(p=1.5)
    with pytest.raises(ValueError, match="extra"):
        HFlip(prob=0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_ops_run_on_gpu_with_cpu_generator() -> None:
    x = _distinct_batch().cuda()
    aug = Augment(
        [HFlip(p=0.5), Rot90(), Rotate(), GaussianBlur(p=0.5), Brightness(), Contrast(), GaussianNoise()]
    )
    out = aug(x, torch.Generator().manual_seed(0))
    assert out.device == x.device and out.shape == x.shape
    ref = aug(x.cpu(), torch.Generator().manual_seed(0))
    assert ref.shape == out.shape


def test_augment_never_mutates_its_input() -> None:
    x = _distinct_batch()
    keep = x.clone()
    aug = Augment([HFlip(p=0.0), VFlip(p=0.5), Brightness(p=0.5), GaussianBlur(p=0.5)])
    out = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, keep) and not torch.equal(out, x)
