"""Small generated data sets, deterministic by seed, written as files + a manifest.

They go through exactly the same reader, cache and split code as real data, which makes them the
test fixtures, the demo's stand-in when ``../shared/data`` is absent, and the scale benchmark.

* :func:`make_synthetic_karyotype` — G-banded chromosome crops: per karyogram 46 crops (22 autosome
  pairs + XX or XY), dark on white, 8-bit PNG. Length falls with class number like real chromosomes
  (with per-cell condensation and per-crop jitter, so neighbouring classes overlap) and each class
  has its own banding pattern and centromere position, blurred and noisy: learnable, not trivial.
* :func:`make_synthetic_cells` — fluorescent single-cell crops, ``channels`` × uint16 ``.npy``
  (C×H×W), black background. Channel 0 nucleus, 1 actin-like cortex, 2 tubulin-like texture.
  Treatment shrinks the cell and nucleus, weakens the cortex and coarsens the texture in a
  dose-dependent way (Hill curve, EC50 = 10); every plate has its own gain and offset.

Example:
    >>> manifest = make_synthetic_karyotype(n_karyograms=2, seed=0)     # doctest: +SKIP
    >>> pd.read_csv(manifest).shape[0]                                   # doctest: +SKIP
    92
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

from biorep import paths

GENERATOR_VERSION = 1

KARYOTYPE_CLASSES = [str(i) for i in range(1, 23)] + ["X", "Y"]
# Relative lengths (% of the haploid genome) and centromere positions (p-arm fraction), after ISCN.
_REL_LENGTH = [8.4, 8.0, 6.8, 6.3, 6.1, 5.9, 5.4, 4.9, 4.8, 4.6, 4.6, 4.5,
               3.7, 3.6, 3.5, 3.4, 3.3, 2.9, 2.7, 2.6, 1.9, 2.0, 5.1, 1.9]
_CENTROMERE = [0.49, 0.39, 0.47, 0.29, 0.27, 0.39, 0.39, 0.34, 0.35, 0.31, 0.40, 0.27,
               0.17, 0.18, 0.20, 0.43, 0.34, 0.26, 0.46, 0.45, 0.30, 0.30, 0.40, 0.30]
CELL_CLASSES = ["control", "treated"]
_DOSES = [1.0, 5.0, 15.0, 50.0]


def _band_templates() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Fixed per-class banding (centre, width, strength), independent of the sample seed."""
    rng = np.random.default_rng(20240601)
    out = []
    for rel in _REL_LENGTH:
        n = 3 + int(round(rel * 1.1))
        out.append((np.sort(rng.uniform(0.04, 0.96, n)), rng.uniform(0.015, 0.05, n), rng.uniform(0.35, 1.0, n)))
    return out


_BANDS = _band_templates()


def _render_chromosome(cls: int, length: float, width: float, rng: np.random.Generator) -> np.ndarray:
    centres, widths, strengths = _BANDS[cls]
    pad = 3
    bend = rng.uniform(0.0, 0.25) * width
    h = int(np.ceil(length)) + 2 * pad
    w = int(np.ceil(width + 2 * bend)) + 2 * pad
    y = (np.arange(h) - pad + 0.5) / length  # position along the chromosome, 0..1 inside
    x = np.arange(w) + 0.5
    t = np.clip(y + 0.02 * np.sin(2 * np.pi * y * rng.uniform(0.5, 1.5) + rng.uniform(0, 6.3)), 0, 1)
    profile = (strengths[None] * np.exp(-0.5 * ((t[:, None] - centres[None]) / widths[None]) ** 2)).sum(1)
    gain = rng.uniform(0.7, 1.1)
    dark = 0.30 + 0.6 * np.clip(profile * gain, 0, 1)
    ends = np.sqrt(np.clip(np.minimum(y, 1 - y) * length / (0.5 * width), 0, 1))
    waist = 1 - 0.3 * np.exp(-0.5 * ((y - _CENTROMERE[cls]) / 0.03) ** 2)
    half = 0.5 * width * ends * waist * ((y >= 0) & (y <= 1))
    cx = w / 2 + bend * np.sin(np.pi * y * rng.uniform(0.5, 1.5) + rng.uniform(0, 6.3))
    mask = np.clip(half[:, None] - np.abs(x[None] - cx[:, None]) + 0.5, 0, 1)
    img = 255.0 - 255.0 * mask * dark[:, None]
    img = gaussian_filter(img, rng.uniform(0.4, 1.3))
    img += rng.normal(0, 7.0, img.shape) * (mask > 0.05)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _atomic_dir(final: Path, build: Callable[[Path], None]) -> None:
    """Build into a temporary sibling folder, then rename it into place (no half-written sets)."""
    if (final / "manifest.csv").exists():
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        if final.exists():  # an empty or broken leftover; replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError:
        if not (final / "manifest.csv").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _default_dir(kind: str, **params: object) -> Path:
    tag = "-".join(f"{k}{v}" for k, v in params.items())
    return paths.cache_dir() / "synthetic" / f"{kind}-{tag}-v{GENERATOR_VERSION}"


def make_synthetic_karyotype(
    n_karyograms: int = 30, seed: int = 0, size: int = 96, out_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``n_karyograms × 46`` chromosome crops + ``manifest.csv``; return the manifest path.

    Args:
        n_karyograms: cells to generate (about 1.65 karyograms per case).
        seed: everything is a pure function of the arguments.
        size: typical length in pixels of chromosome 1 (crops vary in size around it).
        out_dir: target folder (default: a folder in the biorep cache named by the arguments).

    Manifest columns: ``path, karyogram, case, chromosome, index_in_class``.
    """
    if n_karyograms < 1 or size < 8:
        raise ValueError("n_karyograms must be ≥ 1 and size ≥ 8")
    final = Path(out_dir) if out_dir else _default_dir("karyotype", n=n_karyograms, seed=seed, size=size)

    def build(folder: Path) -> None:
        rows = []
        n_cases = max(1, round(n_karyograms / 1.65))
        for k in range(n_karyograms):
            rng = np.random.default_rng([seed, k])
            case = f"{seed:03d}{k * n_cases // n_karyograms:05d}"
            karyogram = f"{case}.{k + 1}"
            (folder / karyogram).mkdir()
            condensation = rng.uniform(0.8, 1.2)
            width = max(5.0, 0.17 * size * condensation**0.3 * rng.normal(1, 0.05))
            copies = [2] * 22 + ([2, 0] if rng.random() < 0.5 else [1, 1])
            for cls, n_copies in enumerate(copies):
                for i in range(n_copies):
                    length = max(6.0, size * _REL_LENGTH[cls] / 8.4 * condensation * rng.normal(1, 0.07))
                    img = _render_chromosome(cls, length, width * rng.normal(1, 0.04), rng)
                    rel = f"{karyogram}/chr{KARYOTYPE_CLASSES[cls]}_{i}.png"
                    Image.fromarray(img).save(folder / rel)
                    rows.append((rel, karyogram, case, KARYOTYPE_CLASSES[cls], i))
        df = pd.DataFrame(rows, columns=["path", "karyogram", "case", "chromosome", "index_in_class"])
        df.to_csv(folder / "manifest.csv", index=False)

    _atomic_dir(final, build)
    return final / "manifest.csv"


def _blob(size: int, cy: float, cx: float, r: float, ratio: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * dx + s * dy) / r, (-s * dx + c * dy) / (r * ratio)
    return np.sqrt(u**2 + v**2)  # < 1 inside


def _render_cell(size: int, channels: int, effect: float, gain: np.ndarray, offset: float,
                 rng: np.random.Generator) -> np.ndarray:
    cy, cx = size / 2 + rng.normal(0, size * 0.04, 2)
    r_cell = size * 0.30 * rng.normal(1, 0.10) * (1 - 0.30 * effect)
    r_nuc = size * 0.13 * rng.normal(1, 0.12) * (1 - 0.25 * effect)
    d_cell = _blob(size, cy, cx, r_cell, rng.uniform(0.7, 1.0), rng.uniform(0, np.pi))
    d_nuc = _blob(size, cy, cx, r_nuc, rng.uniform(0.75, 1.0), rng.uniform(0, np.pi))
    cell = np.clip((1 - d_cell) * r_cell / 1.5, 0, 1)
    nuc = np.clip((1 - d_nuc) * r_nuc / 1.5, 0, 1)
    chans = []
    speckle = gaussian_filter(rng.normal(0, 1, (size, size)), 1.0)
    chans.append(nuc * (10000 + 2500 * (1 + 0.6 * effect) * speckle))
    ring = np.exp(-0.5 * ((d_cell - 0.92) / 0.08) ** 2)
    chans.append(cell * 2500 + ring * 7000 * (1 - 0.6 * effect))
    fibres = gaussian_filter(rng.normal(0, 1, (size, size)), (0.6 + 2.0 * effect, 2.5 - 1.5 * effect))
    fibres /= fibres.std() + 1e-6
    chans.append(cell * (4000 + 2000 * fibres) * (1 - nuc * 0.5))
    for extra in range(3, channels):  # further channels: smooth cytoplasm stains
        chans.append(cell * (3000 + 500 * extra) * (1 + 0.5 * effect))
    img = np.stack(chans[:channels]) * gain[:channels, None, None] + offset
    img += rng.normal(0, 1, img.shape) * np.sqrt(np.clip(img, 0, None)) * 2 + rng.normal(0, 40, img.shape)
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


def make_synthetic_cells(
    n: int = 1500, seed: int = 0, size: int = 64, channels: int = 3, n_plates: int = 3,
    out_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``n`` fluorescent single-cell crops (C×H×W uint16 ``.npy``) + ``manifest.csv``.

    Half the cells are DMSO controls (well B02 on every plate); the rest are ``compound_a`` at
    1, 5, 15 or 50 µM (wells B03–B06). Manifest columns: ``path, plate, well, site, compound,
    dose, treated`` (``treated`` is ``control`` or ``treated``).

    Returns:
        The manifest path.
    """
    if n < 1 or size < 16 or channels < 1 or n_plates < 1:
        raise ValueError("need n ≥ 1, size ≥ 16, channels ≥ 1 and n_plates ≥ 1")
    final = Path(out_dir) if out_dir else _default_dir(
        "cells", n=n, seed=seed, size=size, c=channels, p=n_plates)

    def build(folder: Path) -> None:
        prng = np.random.default_rng([seed, 10**6])
        gains = prng.uniform(0.75, 1.25, (n_plates, max(3, channels)))
        offsets = prng.uniform(100, 400, n_plates)
        rows = []
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            p = i % n_plates
            j = i // n_plates
            dose = 0.0 if j % 2 == 0 else _DOSES[(j // 2) % len(_DOSES)]
            well = "B02" if dose == 0 else f"B0{3 + _DOSES.index(dose)}"
            effect = dose / (dose + 10.0)
            img = _render_cell(size, channels, effect, gains[p], offsets[p], rng)
            plate = f"Plate{p + 1}"
            rel = f"{plate}/{well}/cell_{i:06d}.npy"
            (folder / plate / well).mkdir(parents=True, exist_ok=True)
            np.save(folder / rel, img)
            rows.append((rel, plate, well, 1 + (j // 8) % 4, "DMSO" if dose == 0 else "compound_a", dose,
                         "control" if dose == 0 else "treated"))
        df = pd.DataFrame(rows, columns=["path", "plate", "well", "site", "compound", "dose", "treated"])
        df.to_csv(folder / "manifest.csv", index=False)

    _atomic_dir(final, build)
    return final / "manifest.csv"
