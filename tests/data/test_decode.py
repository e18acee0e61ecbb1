from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biorep.data.decode import read_image
from biorep.errors import DataError

from .conftest import write_image


def test_png_gray_8bit(tmp_path: Path) -> None:
    arr = np.arange(30 * 20, dtype=np.uint8).reshape(30, 20)
    out = read_image(write_image(tmp_path / "a.png", arr))
    assert out.shape == (1, 30, 20) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], arr)


def test_tiff_16bit_and_multichannel(tmp_path: Path) -> None:
    g = (np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 500)
    out = read_image(write_image(tmp_path / "g.tif", g))
    assert out.dtype == np.uint16 and out.shape == (1, 12, 10) and out.max() == g.max()
    chw = np.stack([g, g + 1, g + 2, g + 3])
    tifffile.imwrite(tmp_path / "c.tif", chw, photometric="minisblack")  # 4 channels, C×Y×X
    out = read_image(tmp_path / "c.tif")
    assert out.shape == (4, 12, 10)
    np.testing.assert_array_equal(out, chw)
    rgb = np.stack([g, g // 2, g // 3])
    tifffile.imwrite(tmp_path / "p.tif", rgb, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "p.tif"), rgb)
    tifffile.imwrite(tmp_path / "p1.tif", np.stack([g, g, g]), photometric="rgb", planarconfig="separate")
    assert read_image(tmp_path / "p1.tif").shape == (1, 12, 10)  # RGB of grey → one channel


def test_lzw_tiff_falls_back_to_pillow(tmp_path: Path) -> None:
    arr = (np.arange(40 * 25) % 251).astype(np.uint8).reshape(40, 25)
    Image.fromarray(arr).save(tmp_path / "lzw.tiff", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tiff")[0], arr)


def test_rgba_of_gray_becomes_one_channel(tmp_path: Path) -> None:
    g = np.random.default_rng(0).integers(0, 255, (9, 7), dtype=np.uint8)
    rgba = np.dstack([g, g, g, np.full_like(g, 255)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out.shape == (1, 9, 7)
    np.testing.assert_array_equal(out[0], g)
    tifffile.imwrite(tmp_path / "x.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    assert read_image(tmp_path / "x.tif").shape == (1, 9, 7)


def test_rgb_colour_keeps_three_channels_rgb_gray_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    assert read_image(write_image(tmp_path / "c.png", rgb)).shape == (3, 8, 8)
    g = rgb[..., :1].repeat(3, axis=2)
    assert read_image(write_image(tmp_path / "g.bmp", g)).shape == (1, 8, 8)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((20, 30), (1, 20, 30)), ((20, 30, 3), (3, 20, 30)), ((3, 20, 30), (3, 20, 30)), ((5, 4, 2), (2, 5, 4))],
)
def test_npy_channel_axis_inference(tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    arr = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    out = read_image(write_image(tmp_path / "a.npy", arr))
    assert out.shape == expected


def test_npy_dtypes_normalised(tmp_path: Path) -> None:
    assert read_image(write_image(tmp_path / "b.npy", np.ones((4, 4), bool))).max() == 255
    assert read_image(write_image(tmp_path / "i.npy", np.full((4, 4), 1000, np.int32))).dtype == np.uint16
    assert read_image(write_image(tmp_path / "n.npy", np.full((4, 4), -3, np.int16))).dtype == np.float32
    assert read_image(write_image(tmp_path / "f.npy", np.ones((4, 4), np.float64))).dtype == np.float32


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("bad.png", b"not a png at all", "cannot decode"),
        ("bad.tif", b"II*\x00garbage", "cannot decode"),
        ("bad.npy", b"\x93NUMPY broken", "cannot read .npy"),
    ],
)
def test_corrupt_files_name_the_file(tmp_path: Path, name: str, payload: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(DataError, match=message) as exc:
        read_image(tmp_path / name)
    assert name in str(exc.value)


def test_nan_zero_sized_and_ambiguous_arrays(tmp_path: Path) -> None:
    nan = np.ones((5, 5), np.float32)
    nan[2, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        read_image(write_image(tmp_path / "nan.npy", nan))
    with pytest.raises(DataError, match="zero-sized"):
        read_image(write_image(tmp_path / "empty.npy", np.zeros((0, 5), np.uint8)))
    with pytest.raises(DataError, match="channel axis"):
        read_image(write_image(tmp_path / "cube.npy", np.zeros((20, 20, 20), np.uint8)))
    with pytest.raises(DataError, match="unsupported image type"):
        read_image(tmp_path / "x.gifx")


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A real 1×1 PNG whose IHDR chunk is rewritten to claim ``width`` × ``height``."""
    import struct
    import zlib

    Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # chunk type + 13 bytes of IHDR
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def test_images_claiming_huge_sizes_are_refused_naming_the_file(tmp_path: Path) -> None:
    """A decompression bomb and a .npy header claiming 37 GiB: a DataError, not a traceback."""
    bomb = _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(DataError, match="bomb.png: refused as too large to decode safely"):
        read_image(bomb)
    npy = tmp_path / "huge.npy"
    with open(npy, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)})
    with pytest.raises(DataError, match="huge.npy"):
        read_image(npy)


def test_a_four_channel_stack_tagged_rgb_alpha_keeps_its_fourth_channel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tifffile tags any (4, H, W) array RGB + alpha; a 4th channel that varies like an image is kept,
    a real opacity mask is still dropped."""
    import biorep.data.decode as decode_mod

    monkeypatch.setattr(decode_mod, "_WARNED", set())
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 255, (4, 20, 30), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "mc4.tif", stack, photometric="rgb", planarconfig="separate")  # tifffile's old default
    np.testing.assert_array_equal(read_image(tmp_path / "mc4.tif"), stack)
    assert "the 4th plane is not an opacity mask" in caplog.text
    rgba = np.concatenate([stack[:3], np.full((1, 20, 30), 255, np.uint8)])
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.tif"), stack[:3])
    soft = np.moveaxis(stack, 0, -1).copy()  # painted RGBA: contiguous samples, anti-aliased alpha
    tifffile.imwrite(tmp_path / "soft.tif", soft, photometric="rgb", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_image(tmp_path / "soft.tif"), stack[:3])


def test_sixteen_bit_colour_png_keeps_its_depth(tmp_path: Path) -> None:
    """Pillow reads 48/64-bit PNGs as 8-bit; they are decoded at full depth (grey + alpha too)."""
    import imagecodecs

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65535, (9, 7, 3)).astype(np.uint16)
    (tmp_path / "rgb48.png").write_bytes(imagecodecs.png_encode(rgb))
    out = read_image(tmp_path / "rgb48.png")
    assert out.dtype == np.uint16 and out.shape == (3, 9, 7)
    np.testing.assert_array_equal(out, np.moveaxis(rgb, -1, 0))
    la = np.stack([rgb[..., 0], np.full((9, 7), 65535, np.uint16)], axis=-1)
    (tmp_path / "la32.png").write_bytes(imagecodecs.png_encode(la))
    np.testing.assert_array_equal(read_image(tmp_path / "la32.png"), rgb[None, ..., 0])


def test_an_animated_picture_uses_its_first_frame_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biorep.data.decode as decode_mod

    monkeypatch.setattr(decode_mod, "_WARNED", set())
    frames = [Image.fromarray(np.full((6, 5), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "two.gif", save_all=True, append_images=frames[1:])
    assert read_image(tmp_path / "two.gif").shape == (1, 6, 5)
    assert "has 2 frames; only the first is used" in caplog.text
