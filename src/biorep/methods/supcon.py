"""Supervised contrastive learning for fine-grained recognition (the chromosome study), two readings.

``method: {name: supcon, mode: two_stage | joint}``. The two readings are two method files:
:mod:`biorep.methods.supcon_two_stage` (Khosla et al.: SupCon pre-training, then a classifier) and
:mod:`biorep.methods.supcon_joint` (the group's ICIP 2025 recipe: class-paired InfoNCE + CE in one
stage). This file holds their shared parameters and the ``supcon`` entry of the registry, which
builds the class of the configured ``mode``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from biorep.methods.base import METHODS, BaseMethod, MethodParams


class SupConParams(MethodParams):
    mode: Literal["two_stage", "joint"] = "two_stage"
    temperature: float = Field(0.07, gt=0)
    gather_distributed: bool = True
    # two_stage
    base_temperature: float | None = Field(None, gt=0)
    proj_hidden_dim: int | None = Field(None, gt=0, description="None = the backbone's width")
    proj_dim: int = Field(128, gt=0)
    pretrain_epochs: int = Field(10, ge=0)
    finetune: bool = False
    stage_schedule: bool = Field(
        True, description="the classifier stage gets its own LR schedule (warm-up, peak, anneal) "
        "instead of the tail of one schedule over the whole run",
    )
    classifier_hidden_dim: int = Field(0, ge=0)
    # joint
    embed_hidden_dim: int = Field(4096, gt=0)
    embed_dim: int = Field(1024, gt=0)
    cls_hidden_dim: int = Field(1024, gt=0)
    cls_weight: float = Field(2.0, ge=0)
    focal_gamma: float = Field(0.0, ge=0)
    learnable_temperature: bool = True
    within_view: bool = True
    samples_per_class: int = Field(2, ge=2)


@METHODS.register("supcon")
class SupCon(BaseMethod):
    """Supervised contrastive paradigm; ``SupCon(params, ...)`` returns the class of ``params.mode``.

    Example:
        >>> cfg = {"method": {"name": "supcon", "mode": "two_stage", "pretrain_epochs": 50}}
        >>> cfg = {"method": {"name": "supcon", "mode": "joint", "cls_weight": 2.0}}
    """

    name = "supcon"
    Params: ClassVar = SupConParams
    has_classifier = True
    needs_labels = True
    params: SupConParams
    _modes: ClassVar[dict[str, type[SupCon]]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> SupCon:
        if cls is SupCon:
            from biorep.methods import supcon_joint, supcon_two_stage  # noqa: F401  (register the modes)

            params = args[0] if args else kwargs["params"]
            cls = SupCon._modes[params.mode]
        return super().__new__(cls)

    @classmethod
    def check_train(cls, params: MethodParams, epochs: int) -> str | None:
        p = params
        if isinstance(p, SupConParams) and p.mode == "two_stage" and p.pretrain_epochs >= epochs:
            return (
                f"method.pretrain_epochs: must be < train.epochs ({p.pretrain_epochs} >= {epochs}); "
                "the classifier stage needs at least one epoch"
            )
        return None

    def summary_fields(self) -> dict[str, Any]:
        return {"mode": self.params.mode}


def register_mode(mode: str) -> Any:
    """Class decorator: the :class:`SupCon` reading used for ``mode``."""

    def deco(cls: type[SupCon]) -> type[SupCon]:
        SupCon._modes[mode] = cls
        return cls

    return deco

