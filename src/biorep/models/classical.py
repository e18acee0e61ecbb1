"""Classical (CellProfiler-style) single-cell features as a fixed, parameter-free backbone.

Per cell: per channel **intensity** statistics, **shape** of a simple threshold mask, and per channel
**texture** (Haralick / GLCM), the hand-crafted measurements image-based profiling used for a decade
before learned representations (DeepProfiler reports "up to 30 %" over them). They are the baseline
every learned setup should be read against.

- mask: Otsu threshold (scikit-image ``threshold_otsu``) of ``mask_channel`` (channel 0 — DNA in
  BBBC021 — by default); the connected component under the image centre (single-cell crops are
  centred), else the largest one. A constant image has an empty mask.
- intensity, per channel: mean, std, min, max, 10th / 50th / 90th percentile of the whole crop;
  mean and std inside the mask; integrated intensity in the mask divided by the image area.
- shape (from the mask, ``skimage.measure.regionprops``): area and perimeter as fractions of the
  image area and side, eccentricity, solidity, extent, major and minor axis lengths / image side.
- texture, per channel: GLCM (``skimage.feature.graycomatrix``, distance ``distances``, angles 0°,
  45°, 90°, 135°, symmetric, normalised, intensities clipped to [0, 1] and quantised to ``levels``)
  contrast / (levels − 1)², dissimilarity / (levels − 1), homogeneity, energy, ASM and correlation,
  each averaged over the angles (correlation of a constant image is taken as 1, skimage's value).

Every feature is in a unit range (about [0, 1]), so Euclidean distances downstream (the similarity
task, UMAP) are not dominated by one measurement's unit. Inputs are the network's input tensors
(after the run's intensity scaling, usually within [0, 1]).

Use it as ``model.backbone: classical`` with ``train.epochs: 0`` (nothing is trained; the method's
head stays at its seeded initial weights and is not used by the downstream tasks), then
``biorep embed RUN`` writes its features in the same embeddings format as a learned model:

    biorep train configs/….yaml --out runs/classical --set model.backbone=classical --set train.epochs=0

Example:
    >>> import torch
    >>> net = ClassicalFeatures(in_chans=1, img_size=32)
    >>> net(torch.rand(2, 1, 32, 32)).shape == (2, net.num_features)
    True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

INTENSITY = ("mean", "std", "min", "max", "p10", "p50", "p90", "mask_mean", "mask_std", "mask_integrated")
SHAPE = ("area", "perimeter", "eccentricity", "solidity", "extent", "major_axis", "minor_axis")
TEXTURE = ("contrast", "dissimilarity", "homogeneity", "energy", "ASM", "correlation")
ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


def feature_names(n_channels: int) -> list[str]:
    """Names of :func:`cell_features`' output, in order (``ch0_mean``, …, ``area``, …, ``ch0_contrast``…)."""
    names = [f"ch{c}_{k}" for c in range(n_channels) for k in INTENSITY]
    names += list(SHAPE)
    names += [f"ch{c}_{k}" for c in range(n_channels) for k in TEXTURE]
    return names


def cell_mask(image: np.ndarray) -> np.ndarray:
    """Otsu mask of a 2-D image: the component under the centre, else the largest; empty when constant."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    img = np.asarray(image, dtype=np.float64)
    if not np.isfinite(img).all() or img.max() <= img.min():
        return np.zeros(img.shape, dtype=bool)
    fg = img > threshold_otsu(img)
    lab = label(fg, connectivity=2)
    if lab.max() == 0:
        return fg
    centre = lab[img.shape[0] // 2, img.shape[1] // 2]
    if centre == 0:
        centre = int(np.argmax(np.bincount(lab.ravel())[1:])) + 1
    return lab == centre


def shape_features(mask: np.ndarray) -> dict[str, float]:
    """Area, perimeter, eccentricity, solidity, extent, axis lengths of a mask, in image units."""
    from skimage.measure import regionprops

    h, w = mask.shape
    side = float(max(h, w))
    props = regionprops(mask.astype(np.uint8))
    if not props:
        return dict.fromkeys(SHAPE, 0.0)
    p = props[0]
    return {
        "area": p.area / (h * w),
        "perimeter": p.perimeter / (4 * side),
        "eccentricity": float(p.eccentricity),
        "solidity": float(p.solidity),
        "extent": float(p.extent),
        "major_axis": p.axis_major_length / side,
        "minor_axis": p.axis_minor_length / side,
    }


def intensity_features(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Whole-crop statistics and statistics inside ``mask`` of one channel."""
    img = np.asarray(image, dtype=np.float64)
    p10, p50, p90 = np.percentile(img, [10, 50, 90])
    inside = img[mask]
    return {
        "mean": img.mean(), "std": img.std(), "min": img.min(), "max": img.max(),
        "p10": p10, "p50": p50, "p90": p90,
        "mask_mean": inside.mean() if inside.size else 0.0,
        "mask_std": inside.std() if inside.size else 0.0,
        "mask_integrated": inside.sum() / img.size,
    }


def texture_features(image: np.ndarray, *, levels: int = 32, distances: tuple[int, ...] = (1,)) -> dict[str, float]:
    """Haralick features of one channel (GLCM averaged over four angles and ``distances``)."""
    from skimage.feature import graycomatrix, graycoprops

    q = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float64)), 0.0, 1.0)
    q = np.minimum((q * levels).astype(np.int64), levels - 1).astype(np.uint8)
    glcm = graycomatrix(q, distances=list(distances), angles=list(ANGLES), levels=levels,
                        symmetric=True, normed=True)
    out = {k: float(np.mean(graycoprops(glcm, k))) for k in TEXTURE}
    out["contrast"] /= (levels - 1) ** 2
    out["dissimilarity"] /= levels - 1
    return out


def cell_features(
    image: np.ndarray, *, mask_channel: int = 0, levels: int = 32, distances: tuple[int, ...] = (1,)
) -> np.ndarray:
    """All classical features of one ``(C, H, W)`` cell image, ordered as :func:`feature_names`."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    mask = cell_mask(img[min(mask_channel, len(img) - 1)])
    values: list[float] = []
    for ch in img:
        f = intensity_features(ch, mask)
        values += [float(f[k]) for k in INTENSITY]
    s = shape_features(mask)
    values += [float(s[k]) for k in SHAPE]
    for ch in img:
        t = texture_features(ch, levels=levels, distances=distances)
        values += [float(t[k]) for k in TEXTURE]
    return np.asarray(values, dtype=np.float32)


class ClassicalFeatures(nn.Module):
    """A backbone with no trainable parameters: ``forward(x[B, C, H, W]) -> [B, D]`` classical features.

    Computed on the CPU with scikit-image, cell by cell (about a millisecond per cell and channel);
    the output goes back to the input's device and dtype.
    """

    def __init__(self, in_chans: int = 1, img_size: int | tuple[int, int] = 64, *, mask_channel: int = 0,
                 levels: int = 32, distances: tuple[int, ...] = (1,)) -> None:
        super().__init__()
        if not 0 <= mask_channel < in_chans:
            raise ValueError(f"mask_channel {mask_channel} is not one of the {in_chans} input channels")
        if not 2 <= levels <= 256:
            raise ValueError(f"levels must be within 2..256, got {levels}")
        self.in_chans = in_chans
        self.img_size = img_size
        self.mask_channel = mask_channel
        self.levels = levels
        self.distances = tuple(int(d) for d in distances)
        self.names = feature_names(in_chans)
        self.num_features = len(self.names)
        # one (unused) buffer so .device / .to() behave like any module's
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().float().cpu().numpy()
        feats = np.stack([cell_features(a, mask_channel=self.mask_channel, levels=self.levels,
                                        distances=self.distances) for a in arr]) if len(arr) else \
            np.zeros((0, self.num_features), np.float32)
        return torch.from_numpy(feats).to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
