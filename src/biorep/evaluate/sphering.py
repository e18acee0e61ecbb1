"""Sphering (whitening) fitted on control samples: TVN / pycytominer's ``Spherize``, without pycytominer.

Typical variation normalisation (Ando et al. 2017) and pycytominer's ``normalize(method="spherize")``
whiten features so that the *controls* have identity covariance: directions in which DMSO cells
vary anyway are shrunk, directions in which they do not vary are stretched, before similarity and
mAP. This is the same transform (ZCA, or ZCA on standardised features: ``zca-cor``) written here in
a few lines because pycytominer would add SQLAlchemy, clevercsv, fire and regex to biorep's
dependencies for a 30-line linear map (checked with ``pip install --dry-run pycytominer``).

One difference: controls are often fewer than the feature dimensions (822 DMSO cells of a plate,
2048-d SimpleCNN features), so their covariance is rank-deficient. pycytominer adds ``epsilon`` to
every eigenvalue and so multiplies the null-space directions by 1/√ε (1000× for ε = 1e-6), turning
noise the controls never showed into the largest features. Here eigen-directions with an eigenvalue
below ``rank_tol`` × the largest are dropped (mapped to 0); on the directions kept the controls have
identity covariance exactly (up to ``epsilon``).

Example:
    >>> rng = np.random.default_rng(0)
    >>> ctrl = rng.normal(size=(500, 3)) @ np.array([[2.0, 0, 0], [0.5, 1, 0], [0, 0, 0.1]])
    >>> s = fit_sphering(ctrl)
    >>> np.round(np.cov(s.transform(ctrl), rowvar=False), 2).tolist()
    [[1.0, -0.0, 0.0], [-0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biorep.errors import ConfigError, DataError

SPHERINGS = ("zca", "zca-cor")


@dataclass(frozen=True)
class Sphering:
    """A fitted whitening map ``x ↦ (x − mean) / scale @ W`` (``W`` symmetric for ZCA)."""

    method: str
    mean: np.ndarray
    scale: np.ndarray
    matrix: np.ndarray
    rank: int

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Whitened features (float64, same shape as ``x``)."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.matrix


def fit_sphering(
    controls: np.ndarray, *, method: str = "zca", epsilon: float = 1e-6, rank_tol: float = 1e-6
) -> Sphering:
    """Fit ZCA whitening on ``controls`` (``(n, D)``): afterwards their covariance is the identity.

    Args:
        method: ``"zca"`` (covariance) or ``"zca-cor"`` (features standardised first; correlation).
        epsilon: added to each kept eigenvalue (numerical safety).
        rank_tol: eigen-directions with eigenvalue < ``rank_tol × max`` are dropped (see module doc).
    """
    if method not in SPHERINGS:
        raise ConfigError(f"sphering: method must be one of {SPHERINGS}, got {method!r}")
    x = np.asarray(controls, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise DataError(f"sphering: needs at least 2 control samples, got {len(x)}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0, ddof=1) if method == "zca-cor" else np.ones(x.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    xc = (x - mean) / scale
    cov = np.cov(xc, rowvar=False)
    cov = np.atleast_2d(cov)
    evals, evecs = np.linalg.eigh(cov)
    top = float(evals.max()) if evals.size else 0.0
    if top <= 0:
        raise DataError("sphering: the control samples do not vary (zero covariance)")
    keep = evals > rank_tol * top
    u, lam = evecs[:, keep], evals[keep]
    matrix = (u / np.sqrt(lam + epsilon)) @ u.T
    return Sphering(method, mean, scale, matrix, int(keep.sum()))
