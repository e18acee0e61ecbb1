"""``ViewsConfig``: the augmentation × crop strategy of a run, validated before any work starts."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field, ValidationError, field_validator

from biorep.configmodel import ConfigModel
from biorep.errors import BiorepError
from biorep.views.crops import CROPS, CropGroup, CropStrategy
from biorep.views.ops import AUGMENTATIONS, Op, build_op
from biorep.views.presets import AUGMENT_PRESETS


class PresetSpec(ConfigModel):
    """A named preset with some op parameters changed, e.g.
    ``{preset: chromosome, override: {rotate: {degrees: 45}}}``."""

    preset: str
    override: dict[str, dict[str, Any]] = Field(default_factory=dict)


AugmentSpec = str | PresetSpec | list[dict[str, Any]]
CropsSpec = str | list[CropGroup] | dict[str, Any]


def _error_text(err: Exception) -> str:
    if isinstance(err, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in err.errors())
    return str(err)


def resolve_ops(spec: AugmentSpec) -> list[dict[str, Any]]:
    """The explicit op list for a preset name, a :class:`PresetSpec` or an op list."""
    if isinstance(spec, str):
        return copy.deepcopy(AUGMENT_PRESETS.get(spec))
    if isinstance(spec, PresetSpec):
        ops = copy.deepcopy(AUGMENT_PRESETS.get(spec.preset))
        names = [o["op"] for o in ops]
        for name, params in spec.override.items():
            if name not in names:
                raise ValueError(
                    f"override {name!r} is not an op of preset {spec.preset!r} (its ops: {', '.join(names)})"
                )
            for o in ops:
                if o["op"] == name:
                    o.update(params)
        return ops
    return copy.deepcopy(list(spec))


def build_ops(spec: AugmentSpec) -> list[Op]:
    """Instantiate the ops of an augment spec; errors name the op and the parameter."""
    out: list[Op] = []
    for i, op_spec in enumerate(resolve_ops(spec)):
        if not isinstance(op_spec, dict) or "op" not in op_spec:
            raise ValueError(f"augment[{i}] must be a mapping with an 'op' key, got {op_spec!r}")
        if op_spec["op"] not in AUGMENTATIONS:
            raise ValueError(f"augment[{i}]: unknown op {op_spec['op']!r}; known: {', '.join(AUGMENTATIONS)}")
        try:
            out.append(build_op(op_spec))
        except (ValidationError, ValueError) as err:
            raise ValueError(f"augment[{i}] ({op_spec['op']}): {_error_text(err)}") from None
    return out


def build_crops(spec: CropsSpec) -> CropStrategy:
    """Instantiate the crop strategy: a name, a list of crop groups (→ ``multi``) or
    ``{strategy: name, **params}``."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, list):
        name, params = "multi", {"groups": [g.model_dump() if isinstance(g, CropGroup) else g for g in spec]}
    else:
        params = dict(spec)
        name = params.pop("strategy", None)
        if name is None:
            raise ValueError(f"crops mapping needs a 'strategy' key (one of: {', '.join(CROPS)})")
    if name not in CROPS:
        raise ValueError(f"unknown crop strategy {name!r}; known: {', '.join(CROPS)}")
    try:
        return CROPS.get(name)(**params)
    except (ValidationError, ValueError) as err:
        raise ValueError(f"crops ({name}): {_error_text(err)}") from None


class ViewsConfig(ConfigModel):
    """How views are made from a batch: augmentation × crop strategy.

    ``augment``: a preset name (``none``, ``random``, ``chromosome``, ``fluorescence``, ``simclr``),
    a preset with overrides (``{preset: chromosome, override: {rotate: {degrees: 45}}}``) or an
    explicit op list (``[{op: hflip, p: 0.5}, {op: blur, kernel: 3, sigma: [0.1, 2], p: 0.2}]``).

    ``crops``: ``one`` (whole image, ``n_views`` copies), ``multi`` (1 full + 2 at 50–75 % + 2 at
    25–50 % of the area; ``n_views`` ignored), ``random_resized``, a list of groups
    (``[{n: 2, scale: [0.5, 1.0]}]`` → multi) or ``{strategy: name, **params}``.

    Example:
        >>> cfg = ViewsConfig(augment="random", crops="multi")
        >>> [o["op"] for o in cfg.ops()]
        ['hflip', 'blur']
    """

    augment: AugmentSpec = "none"
    crops: CropsSpec = "one"

    @field_validator("augment")
    @classmethod
    def _check_augment(cls, v: AugmentSpec) -> AugmentSpec:
        try:
            build_ops(v)
        except BiorepError as err:  # unknown preset name from the registry
            raise ValueError(str(err)) from None
        return v

    @field_validator("crops")
    @classmethod
    def _check_crops(cls, v: CropsSpec) -> CropsSpec:
        build_crops(v)
        return v

    def ops(self) -> list[dict[str, Any]]:
        """The resolved explicit op list."""
        return resolve_ops(self.augment)
