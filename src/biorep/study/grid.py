"""A study is a grid of runs that differ in a few config fields and share everything else.

Example (YAML)::

    name: screening-16
    base: ../cells-simplecnn.yaml          # a run config; relative to this file
    grid:                                  # every combination is one setup
      method: [{name: weak}, {name: autoencoder}, {name: regularized}, {name: byol}]
      views.augment: [random, none]
      views.crops: [one, multi]
    evaluations: [treated_vs_control, similarity, clustering, replicate_map]
    folds:                                 # optional: every setup once per fold (leave-one-plate-out)
      - {label: P1, data.split.holdout: [P1]}
      - {label: P2, data.split.holdout: [P2]}

With ``folds`` each setup becomes one run per fold, named ``<setup>@<fold>`` (the fold's overrides
applied last); :mod:`biorep.study.folds` aggregates them (median ± MAD and CIs over folds).
"""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from biorep.errors import ConfigError, validation_message


class SetupSpec(BaseModel):
    """One cell of the grid: its name and the config overrides that make it.

    In a study with folds, one run of a setup on one fold: ``name`` is ``<setup>@<fold>``.
    """

    name: str
    overrides: dict[str, Any]
    setup: str | None = Field(None, description="the setup's name without the fold (studies with folds)")
    fold: str | None = Field(None, description="the fold's label (studies with folds)")

    @property
    def setup_name(self) -> str:
        """The setup this run belongs to (its own name when the study has no folds)."""
        return self.setup or self.name

    def fingerprint(self) -> dict[str, Any]:
        """What ``study.json`` records (``setup``/``fold`` only when set: older studies stay equal)."""
        return self.model_dump(exclude_none=True)


class StudyConfig(BaseModel):
    """A grid of runs over a shared base config (see module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    base: dict[str, Any] | str
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    extra: list[dict[str, Any]] = Field(
        default_factory=list, description="setups added beside the grid, each a dict of overrides"
    )
    set: dict[str, Any] = Field(default_factory=dict, description="overrides applied to every setup")
    evaluations: list[str] | None = None
    evaluation_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    folds: list[dict[str, Any]] = Field(
        default_factory=list,
        description="each a dict of overrides with a 'label'; every setup runs once per fold",
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        """The default study folder is ``runs/<name>``: a name must not reach outside it."""
        if not name.strip() or name in (".", "..") or any(c in name for c in "/\\") or not name.isprintable():
            raise ValueError(f"{name!r} is not a folder name (no '/', '\\', '.' or '..'; the study folder "
                             "is runs/<name> unless --out says otherwise)")
        return name

    @field_validator("folds")
    @classmethod
    def _folds_labelled(cls, folds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        labels = []
        for i, fold in enumerate(folds):
            if "label" not in fold:
                raise ValueError(f"folds[{i}] has no 'label'")
            if len(fold) < 2:
                raise ValueError(f"fold {fold['label']!r} changes nothing (give its overrides)")
            labels.append(str(fold["label"]))
        if len(set(labels)) != len(labels):
            raise ValueError(f"fold labels are not unique: {labels}")
        return folds

    @field_validator("grid")
    @classmethod
    def _axes_not_empty(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid axis {key!r} has no values")
        return grid


def load_study(path: str | Path, overrides: list[str] | None = None) -> tuple[StudyConfig, dict[str, Any]]:
    """Read a study YAML; return it and its resolved base run config (a plain dict)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: study config not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        study = StudyConfig.model_validate(raw)
    except ValidationError as exc:  # name the file and each field
        raise ConfigError(f"{path}: invalid study config: {validation_message(exc)}") from None
    if isinstance(study.base, str):
        base_path = (path.parent / study.base).resolve()
        if not base_path.is_file():
            raise ConfigError(f"{path}: base config {study.base!r} not found (looked at {base_path})")
        base = yaml.safe_load(base_path.read_text()) or {}
    else:
        base = copy.deepcopy(study.base)
    for key, value in study.set.items():
        set_dotted(base, key, value)
    for item in overrides or []:  # the command line wins over the study file
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        set_dotted(base, key.strip(), yaml.safe_load(value))
    return study, base


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``key = "a.b.c"``; a dict value for a section replaces it."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _label(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("label", "name", "backbone", "dataset"):
            if key in value:
                return str(value[key])
        return "-".join(f"{k}{_label(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "+".join(_label(v) for v in value)
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_") or "setup"


def expand_grid(study: StudyConfig) -> list[SetupSpec]:
    """All setups of the study, grid first (in axis order), then the extra ones; names are unique."""
    setups: list[SetupSpec] = []
    keys = list(study.grid)
    for combo in itertools.product(*(study.grid[k] for k in keys)) if keys else [()]:
        overrides = dict(zip(keys, combo, strict=True))
        if not overrides and study.extra:
            continue
        name = "-".join(_slug(_label(v)) for v in combo) or "base"
        setups.append(SetupSpec(name=name, overrides=overrides))
    for extra in study.extra:
        extra = dict(extra)
        label = extra.pop("label", None)
        name = _slug(str(label)) if label else "-".join(_slug(_label(v)) for v in extra.values())
        setups.append(SetupSpec(name=name, overrides=extra))
    seen: set[str] = set()
    for setup in setups:
        if setup.name in seen:
            raise ConfigError(f"study {study.name!r}: two setups are both named {setup.name!r}; add a 'label'")
        seen.add(setup.name)
    if not study.folds:
        return setups
    runs = []
    for fold in study.folds:  # fold-major: a whole fold finishes first, so an early stop has a full table
        fold = dict(fold)
        label = _slug(str(fold.pop("label")))
        for setup in setups:
            runs.append(SetupSpec(name=f"{setup.name}@{label}", overrides={**setup.overrides, **fold},
                                  setup=setup.name, fold=label))
    return runs


def study_setups(study: StudyConfig) -> list[str]:
    """The setup names (without folds), grid first then the extras, in the study's order."""
    return list(dict.fromkeys(s.setup_name for s in expand_grid(study)))


def setup_config(base: dict[str, Any], setup: SetupSpec) -> dict[str, Any]:
    """The run config (plain dict) of one setup: the base with the setup's overrides applied."""
    cfg = copy.deepcopy(base)
    for key, value in setup.overrides.items():
        label_free = {k: v for k, v in value.items() if k != "label"} if isinstance(value, dict) else value
        set_dotted(cfg, key, label_free)
    return cfg
