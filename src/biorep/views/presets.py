"""Named augmentation presets: each is a list of op specs (``{"op": name, **params}``).

- ``none``: identity.
- ``random``: Study B (Dmitrenko et al. 2022): horizontal flip p=0.5 + Gaussian blur k=3,
  σ∈[0.1, 2], p=0.2.
- ``chromosome``: Study A's recipe: rotation ±90° with background fill (0 after scaling), horizontal
  and vertical flips, brightness/contrast jitter.
- ``fluorescence``: the dihedral group (flips + 90° turns, exact, no fill) and per-channel intensity
  jitter (stains vary independently).
- ``simclr``: a SimCLR-like photometric set for grayscale/multiplexed images (flip, brightness and
  contrast jitter p=0.8, blur k=7 p=0.5); pair it with ``crops: random_resized``.
"""

from __future__ import annotations

from typing import Any

from biorep.registry import Registry

AUGMENT_PRESETS: Registry[list[dict[str, Any]]] = Registry("augmentation preset")

AUGMENT_PRESETS.add("none", [])
AUGMENT_PRESETS.add(
    "random",
    [
        {"op": "hflip", "p": 0.5},
        {"op": "blur", "kernel": 3, "sigma": [0.1, 2.0], "p": 0.2},
    ],
)
AUGMENT_PRESETS.add(
    "chromosome",
    [
        {"op": "rotate", "degrees": 90.0, "fill": 0.0, "p": 1.0},
        {"op": "hflip", "p": 0.5},
        {"op": "vflip", "p": 0.5},
        {"op": "brightness", "factor": [0.8, 1.2], "p": 0.8},
        {"op": "contrast", "factor": [0.8, 1.2], "p": 0.8},
    ],
)
AUGMENT_PRESETS.add(
    "fluorescence",
    [
        {"op": "hflip", "p": 0.5},
        {"op": "vflip", "p": 0.5},
        {"op": "rot90", "k": [0, 1, 2, 3], "p": 1.0},
        {"op": "brightness", "factor": [0.8, 1.2], "per_channel": True, "p": 0.8},
        {"op": "contrast", "factor": [0.8, 1.2], "per_channel": True, "p": 0.8},
    ],
)
AUGMENT_PRESETS.add(
    "simclr",
    [
        {"op": "hflip", "p": 0.5},
        {"op": "brightness", "factor": [0.6, 1.4], "p": 0.8},
        {"op": "contrast", "factor": [0.6, 1.4], "p": 0.8},
        {"op": "blur", "kernel": 7, "sigma": [0.1, 2.0], "p": 0.5},
    ],
)
