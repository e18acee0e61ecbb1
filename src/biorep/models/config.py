"""``ModelConfig``: which backbone, optional local weights, extra timm keyword arguments."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from biorep.configmodel import ConfigModel

_RESERVED = ("pretrained", "in_chans", "num_classes", "pretrained_cfg_overlay")


class ModelConfig(ConfigModel):
    """The backbone of a run.

    ``backbone``: ``simple_cnn`` (Study B's encoder) or any timm model name
    (``python -c "import timm; print(timm.list_models('*vit*'))"`` lists them).
    ``weights``: a local state dict or checkpoint to start from, or another biorep run (its run
    directory or one of its checkpoints: the backbone is loaded, the heads are reused only for the
    same class list, see :func:`biorep.models.weights.init_heads_from`); nothing is ever downloaded.
    ``kwargs``: passed to ``timm.create_model`` (e.g. ``drop_path_rate``) or the registered factory.
    ``tta``: test-time augmentation of class predictions (``evaluate``, ``karyotype``, ``predict``):
    the class probabilities of the image and of each listed flip are averaged (``hflip`` suits
    upright chromosome crops, which training flips left-right too; ``vflip`` swaps their arms). Only
    inference changes: it may be set or changed on a finished run, and on ``--resume``. The per-epoch
    ``val/acc`` of training (best checkpoint, early stopping) scores the network alone, without flips.

    Example:
        >>> ModelConfig(backbone="resnet18", kwargs={"drop_path_rate": 0.1}).backbone
        'resnet18'
    """

    backbone: str = "simple_cnn"
    weights: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    tta: list[Literal["hflip", "vflip"]] = Field(default_factory=list)

    @field_validator("kwargs")
    @classmethod
    def _no_reserved(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if k in _RESERVED]
        if bad:
            raise ValueError(
                f"model.kwargs may not set {', '.join(bad)}: biorep sets in_chans from the data, "
                "builds without a classifier (num_classes=0) and never downloads (use model.weights "
                "for a local file)"
            )
        return v
