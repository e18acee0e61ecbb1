"""ViewsConfig: presets, explicit op lists, overrides, crop specs, clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from biorep.views import AUGMENT_PRESETS, ViewsConfig, build_crops, build_ops


def test_presets_resolve_to_the_study_recipes() -> None:
    assert ViewsConfig(augment="none").ops() == []
    rnd = ViewsConfig(augment="random").ops()
    assert rnd == [{"op": "hflip", "p": 0.5}, {"op": "blur", "kernel": 3, "sigma": [0.1, 2.0], "p": 0.2}]
    chrom = {o["op"]: o for o in ViewsConfig(augment="chromosome").ops()}
    assert chrom["rotate"]["degrees"] == 90.0 and chrom["rotate"]["fill"] == 0.0
    assert {"hflip", "vflip", "brightness", "contrast"} <= set(chrom)
    for name in AUGMENT_PRESETS:
        build_ops(name)


def test_explicit_op_list() -> None:
    cfg = ViewsConfig(
        augment=[{"op": "hflip", "p": 0.5}, {"op": "blur", "kernel": 5, "sigma": [0.1, 2], "p": 0.2}]
    )
    ops = build_ops(cfg.augment)
    assert [o.name for o in ops] == ["hflip", "blur"] and ops[1].params.kernel == 5


def test_preset_override() -> None:
    cfg = ViewsConfig(augment={"preset": "chromosome", "override": {"rotate": {"degrees": 45}}})
    rot = next(o for o in cfg.ops() if o["op"] == "rotate")
    assert rot["degrees"] == 45
    with pytest.raises(ValidationError, match="not an op of preset"):
        ViewsConfig(augment={"preset": "random", "override": {"rotate": {"degrees": 45}}})


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ("fancy", "unknown augmentation preset 'fancy'"),
        ([{"op": "zoom"}], "unknown op 'zoom'"),
        ([{"op": "blur", "kernel": 4}], r"augment\[0\] \(blur\).*odd"),
        ([{"op": "hflip", "prob": 0.5}], r"augment\[0\] \(hflip\): prob"),
        ([{"p": 0.5}], "'op' key"),
    ],
)
def test_bad_augment_names_the_problem(augment: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ViewsConfig(augment=augment)


def test_crop_specs() -> None:
    assert build_crops("one").n_crops(2) == 2
    assert build_crops("multi").n_crops(2) == 5
    explicit = ViewsConfig(crops=[{"n": 1, "scale": [1, 1]}, {"n": 4, "scale": [0.25, 0.5]}])
    assert build_crops(explicit.crops).n_crops() == 5
    rrc = ViewsConfig(crops={"strategy": "random_resized", "scale": [0.2, 1.0]})
    assert build_crops(rrc.crops).scales(2) == [(0.2, 1.0), (0.2, 1.0)]


@pytest.mark.parametrize(
    ("crops", "message"),
    [
        ("many", "unknown crop strategy 'many'"),
        ([{"n": 2, "scale": [0.5, 2.0]}], "scale"),
        ({"scale": [0.2, 1.0]}, "'strategy' key"),
        ({"strategy": "one", "n": 3}, r"crops \(one\)"),
    ],
)
def test_bad_crops_name_the_problem(crops: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ViewsConfig(crops=crops)


def test_unknown_field_is_rejected_and_yaml_roundtrip() -> None:
    with pytest.raises(ValidationError):
        ViewsConfig(augmentation="random")
    cfg = ViewsConfig(
        augment={"preset": "chromosome", "override": {"rotate": {"degrees": 30}}}, crops="multi"
    )
    assert ViewsConfig.model_validate(cfg.model_dump(mode="json")) == cfg
