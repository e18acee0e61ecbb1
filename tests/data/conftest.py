"""Fixtures for the data tests: an isolated cache folder and small image folders on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image


@pytest.fixture(autouse=True)
def isolated_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Path | None:
    """Point ``BIOREP_CACHE`` at a fresh folder per test (realdata tests keep the default cache)."""
    if request.node.get_closest_marker("realdata"):
        return None
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BIOREP_CACHE", str(folder))
    return folder


def write_image(path: Path, arr: np.ndarray) -> Path:
    """Write ``arr`` as PNG/BMP/JPEG (Pillow), TIFF (tifffile) or .npy by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, arr)
    elif suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, arr)
    else:
        Image.fromarray(arr).save(path)
    return path


def blob(h: int, w: int, *, dark: bool = True, value: int = 40, dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    """A ``h × w`` crop: an ellipse on a white (``dark``) or black background, with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (h / 2.5)) ** 2 + ((xx - w / 2) / (w / 2.5)) ** 2 < 1
    top = np.iinfo(dtype).max
    bg, fg = (top, value) if dark else (0, value)
    img = np.where(inside, fg, bg).astype(np.float64) + rng.integers(0, 3, (h, w))
    return np.clip(img, 0, top).astype(dtype)


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """Build a class-per-folder tree: ``make_folder({"a": [("x.png", arr), ...], ...})``."""

    def make(spec: dict[str, list[tuple[str, np.ndarray]]], name: str = "images") -> Path:
        root = tmp_path / name
        for cls, files in spec.items():
            for fname, arr in files:
                write_image(root / cls / fname if cls else root / fname, arr)
        return root

    return make


@pytest.fixture
def mixed_folder(make_folder: Callable[..., Path]) -> Path:
    """Three classes of PNG and TIFF crops of varying size (a folder 'never seen before')."""
    spec = {}
    for k, cls in enumerate(["long", "medium", "short"]):
        files = []
        for i in range(4):
            h = [60, 40, 20][k] + i
            ext = ".png" if i % 2 == 0 else ".tif"
            files.append((f"{cls}_{i}{ext}", blob(h, 16 + i, seed=10 * k + i)))
        spec[cls] = files
    return make_folder(spec)
