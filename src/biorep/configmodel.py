"""``ConfigModel``: the base of every section a user writes (run, data, views, model, method, study).

It forbids unknown keys and refuses a boolean where a number is meant. Pydantic's lax mode reads
``true`` as ``1`` for an ``int`` or ``float`` field, and YAML reads ``yes``/``no``/``on``/``off`` as
booleans, so ``train.epochs: yes`` or ``--set train.epochs=true`` would otherwise train for one
epoch without a word. Pydantic has no switch for this alone (``strict`` would also refuse the
``"5"`` of ``--set train.epochs=5`` on the command line), hence this validator.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def _number_only(annotation: Any) -> bool:
    """Whether ``annotation`` admits int or float and not bool (``int | None``: yes; ``bool``: no)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
    else:
        args = (annotation,)
    return bool(args) and bool(set(args) & {int, float}) and bool not in args


class ConfigModel(BaseModel):
    """Unknown keys are an error; ``true``/``false`` for a number field is an error naming it."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and _number_only(field.annotation):
                raise PydanticCustomError(
                    "bool_for_number",
                    "Input should be a number, not {value} (YAML reads true/false/yes/no/on/off as booleans)",
                    {"value": str(v).lower()},
                )
        return v
