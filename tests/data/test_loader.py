from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import biorep.data.cache as cache_mod
import biorep.data.decode as decode_mod
from biorep.data import DataConfig, load_dataset
from biorep.errors import DataError

from .conftest import blob, write_image


def test_unseen_folder_of_png_and_tiff_loads(mixed_folder: Path) -> None:
    ds = load_dataset(DataConfig(dataset=str(mixed_folder), geometry={"size": 32}), progress=False)
    assert ds.images.shape == (12, 1, 32, 32) and ds.images.dtype == np.uint8
    assert ds.classes == ["long", "medium", "short"]
    assert np.bincount(ds.targets).tolist() == [4, 4, 4]
    assert ds.background == 255  # auto: median border pixel of dark-on-white crops
    assert ds.meta["orig_height"].tolist()[:4] == [60, 61, 62, 63]
    # one common scale: long crops stay longer than short ones on the canvas
    dark = (np.asarray(ds.images) < 128).any(axis=3).sum(axis=(1, 2))
    assert dark[ds.targets == 0].min() > dark[ds.targets == 2].max()


def test_second_load_reads_the_cache_only(mixed_folder: Path, monkeypatch: pytest.MonkeyPatch,
                                           isolated_cache: Path) -> None:
    cfg = DataConfig(dataset=str(mixed_folder), geometry={"size": 32})
    first = load_dataset(cfg, progress=False)
    files = sorted(p.name for p in (isolated_cache / "datasets").iterdir())
    assert len(files) == 3 and not any(".tmp" in f for f in files)

    def boom(path: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(decode_mod, "read_image", boom)
    monkeypatch.setattr(cache_mod, "read_image", boom)
    second = load_dataset(cfg, progress=False)
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(np.asarray(first.images), np.asarray(second.images))
    pd.testing.assert_frame_equal(first.meta, second.meta)
    # a different geometry is a different cache (and would decode again)
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(DataConfig(dataset=str(mixed_folder), geometry={"size": 16}), progress=False)


def test_changed_file_invalidates_cache(mixed_folder: Path) -> None:
    cfg = DataConfig(dataset=str(mixed_folder), geometry={"size": 32})
    before = np.asarray(load_dataset(cfg, progress=False).images[0])
    assert before.min() > 0
    write_image(mixed_folder / "long" / "long_0.png", np.zeros((60, 16), np.uint8))
    after = np.asarray(load_dataset(cfg, progress=False).images[0])
    assert after.min() == 0 and (after == 0).sum() > 100


def test_process_pool_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "many"
    for i in range(40):
        write_image(root / ("a" if i % 2 else "b") / f"{i}.png", blob(10 + i % 7, 12, seed=i))
    serial = load_dataset(DataConfig(dataset=str(root), workers=1, geometry={"size": 24}), progress=False)
    monkeypatch.setattr(cache_mod, "_SERIAL_BELOW", 1)
    monkeypatch.setattr(cache_mod, "_CHUNK", 8)
    monkeypatch.setenv("BIOREP_CACHE", str(tmp_path / "second-cache"))
    pooled = load_dataset(DataConfig(dataset=str(root), workers=2, geometry={"size": 24}), progress=False)
    np.testing.assert_array_equal(np.asarray(serial.images), np.asarray(pooled.images))


def test_manifest_metadata_travels_and_channels_select(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        write_image(tmp_path / "c" / f"{i}.npy", rng.integers(0, 4000, (68, 68, 3)).astype(np.uint16))
        rows.append({"path": f"c/{i}.npy", "plate": f"P{i % 2}", "well": f"B0{i}", "compound": "x", "dose": i * 1.5})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    ds = load_dataset(DataConfig(dataset=str(tmp_path / "m.csv"), group="plate", channels=[2, 0],
                                 geometry={"mode": "none"}), progress=False)
    assert ds.images.shape == (6, 2, 68, 68) and ds.images.dtype == np.uint16
    assert ds.group_column == "plate" and ds.label_column is None and (ds.targets == -1).all()
    assert ds.meta["dose"].tolist() == [0.0, 1.5, 3.0, 4.5, 6.0, 7.5]
    raw = np.load(tmp_path / "c" / "3.npy")
    np.testing.assert_array_equal(ds.images[3, 0], raw[..., 2])
    sub = ds.subset([1, 3])
    assert sub.meta["well"].tolist() == ["B01", "B03"] and len(sub) == 2 and sub.images.shape[0] == 2


def test_resize_mode_and_declared_channels(mixed_folder: Path) -> None:
    ds = load_dataset(DataConfig(dataset=str(mixed_folder), channels=1, geometry={"mode": "resize", "size": 20}),
                      progress=False)
    assert ds.images.shape == (12, 1, 20, 20)
    with pytest.raises(DataError, match="has 1 channel\\(s\\) but the data set has 3"):
        load_dataset(DataConfig(dataset=str(mixed_folder), channels=3), progress=False)


def test_none_mode_needs_one_size(mixed_folder: Path) -> None:
    with pytest.raises(DataError, match="geometry mode 'none' needs images of one size"):
        load_dataset(DataConfig(dataset=str(mixed_folder), geometry={"mode": "none"}), progress=False)


def test_unknown_dataset_name_lists_builtins() -> None:
    with pytest.raises(DataError, match="not a built-in data set .*chromosome-pki3"):
        load_dataset(DataConfig(dataset="no-such-set"), progress=False)


def test_pooled_decode_error_names_file_and_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            isolated_cache: Path) -> None:
    root = tmp_path / "many"
    for i in range(20):
        write_image(root / "a" / f"{i:02d}.png", blob(10, 12, seed=i))
    (root / "a" / "15.png").write_bytes(b"garbage")
    monkeypatch.setattr(cache_mod, "_SERIAL_BELOW", 1)
    monkeypatch.setattr(cache_mod, "_CHUNK", 4)
    with pytest.raises(DataError, match="15.png: cannot decode"):
        load_dataset(DataConfig(dataset=str(root), workers=2), progress=False)
    assert not any((isolated_cache / "datasets").iterdir())


def test_mixed_pixel_types_are_kept_and_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_image(tmp_path / "a" / "eight.png", blob(20, 20))
    write_image(tmp_path / "b" / "sixteen.tif", blob(20, 20, dtype=np.uint16, value=40_000))
    write_image(tmp_path / "b" / "more.tif", blob(20, 20, dtype=np.uint16, value=40_000, seed=1))
    with caplog.at_level("WARNING", logger="biorep.data"):
        ds = load_dataset(DataConfig(dataset=str(tmp_path), geometry={"size": 24}), progress=False)
    assert ds.images.dtype == np.uint16
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "different pixel types" in text and "1 uint8" in text and "2 uint16" in text
    assert "eight.png" in text and "more.tif" in text  # the first file of each type (natural order)


def test_grey_pictures_in_a_colour_set_get_their_grey_in_each_channel(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """An RGB set with a grey PNG and an RGB-of-grey JPEG (decoded to one channel) loads as RGB;
    a one-channel .npy in a 3-channel .npy set is still refused (a stack channel is no colour)."""
    rng = np.random.default_rng(0)
    (tmp_path / "rgb" / "c").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "rgb" / "c" / f"{i}.png")
    Image.fromarray(np.full((12, 10), 90, np.uint8)).save(tmp_path / "rgb" / "c" / "grey.png")
    Image.fromarray(np.full((12, 10, 3), 120, np.uint8)).save(tmp_path / "rgb" / "c" / "greyish.jpg", quality=100)
    ds = load_dataset(DataConfig(dataset=str(tmp_path / "rgb"), geometry={"mode": "resize", "size": 12}), progress=False)
    assert ds.images.shape == (8, 3, 12, 12)
    grey = ds.images[list(ds.meta["path"]).index("c/grey.png")]
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])
    assert "2 grey picture(s) in a 3-channel (colour) data set" in caplog.text
    (tmp_path / "npy" / "c").mkdir(parents=True)
    for i in range(3):
        np.save(tmp_path / "npy" / "c" / f"{i}.npy", rng.random((3, 12, 10), dtype=np.float32))
    np.save(tmp_path / "npy" / "c" / "one.npy", rng.random((12, 10), dtype=np.float32))
    with pytest.raises(DataError, match="one.npy: has 1 channel"):
        load_dataset(DataConfig(dataset=str(tmp_path / "npy")), progress=False)


def test_a_label_column_named_for_a_folder_is_a_warning(mixed_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = load_dataset(DataConfig(dataset=str(mixed_folder), label="nosuch"), progress=False)
    assert ds.classes == ["long", "medium", "short"]
    assert "data.label='nosuch' only names the class column" in caplog.text


def test_a_scale_that_shrinks_the_images_to_nothing_is_a_warning(mixed_folder: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    load_dataset(DataConfig(dataset=str(mixed_folder), geometry={"scale": 1e-3}), progress=False)
    assert "at scale 0.001 the median image becomes 0.0×0.0 px on the 64 px canvas" in caplog.text
    caplog.clear()
    load_dataset(DataConfig(dataset=str(mixed_folder), geometry={"scale": 0.5}), progress=False)
    assert "median image becomes" not in caplog.text


def test_blank_and_tiny_images_and_an_out_of_range_background_are_noted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "set"
    for i in range(4):
        write_image(root / "a" / f"ok{i}.png", blob(16, 16, seed=i))
    write_image(root / "a" / "zero.png", np.zeros((16, 16), np.uint8))
    write_image(root / "b" / "dot.png", np.full((1, 1), 7, np.uint8))
    ds = load_dataset(DataConfig(dataset=str(root), geometry={"mode": "canvas", "size": 16, "scale": 1.0,
                                                                  "background": 1e9}), progress=False)
    assert len(ds) == 6  # noted, not refused
    text = " ".join(caplog.text.split())
    assert "2 of 6 image(s) hold one value everywhere" in text and "zero.png" in text and "dot.png" in text
    assert "1 of 6 image(s) are under 4 px on a side" in text
    assert "background 1e+09 is outside the uint8 pixel range 0-255; 255 is used" in text
    caplog.clear()
    load_dataset(DataConfig(dataset=str(root / "a"), geometry={"size": 16}), progress=False)
    assert "under 4 px" not in caplog.text and "background" not in caplog.text
