"""Representation-learning paradigms, one file each, looked up by name in :data:`METHODS`.

Example:
    >>> from biorep.methods import METHODS
    >>> METHODS.names()
    ['autoencoder', 'barlow_twins', 'byol', 'regularized', 'simclr', 'supcon', 'supervised', 'vicreg', 'weak']
"""

from __future__ import annotations

from biorep.methods import (  # noqa: F401  (registration side effects)
    autoencoder,
    barlow_twins,
    byol,
    regularized,
    simclr,
    supcon,
    supcon_joint,
    supcon_two_stage,
    supervised,
    vicreg,
    weak,
)
from biorep.methods.base import METHODS, BaseMethod, DataInfo, MethodParams, OptimConfig

__all__ = ["METHODS", "BaseMethod", "DataInfo", "MethodParams", "OptimConfig"]
