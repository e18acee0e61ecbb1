from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biorep.errors import ConfigError
from biorep.study import StudyConfig, expand_grid, load_study, setup_config


def _study(**kw):
    base = {"data": {"dataset": "synthetic-cells"}, "method": {"name": "weak"}, "views": {"augment": "none"}}
    return StudyConfig(name="s", base=base, **kw)


def test_grid_has_every_combination_with_unique_names():
    study = _study(
        grid={
            "method": [{"name": "weak"}, {"name": "autoencoder"}, {"name": "regularized"}, {"name": "byol"}],
            "views.augment": ["random", "none"],
            "views.crops": ["one", "multi"],
        }
    )
    setups = expand_grid(study)
    assert len(setups) == 16
    assert len({s.name for s in setups}) == 16
    assert setups[0].name == "weak-random-one"
    assert setups[-1].name == "byol-none-multi"


def test_setup_config_applies_overrides_without_touching_base():
    study = _study(grid={"method": [{"name": "byol", "tau": 0.8}], "views.crops": ["multi"]})
    (setup,) = expand_grid(study)
    cfg = setup_config(study.base, setup)
    assert cfg["method"] == {"name": "byol", "tau": 0.8}
    assert cfg["views"] == {"augment": "none", "crops": "multi"}
    assert study.base["method"] == {"name": "weak"}  # base untouched
    assert "crops" not in study.base["views"]


def test_extra_setups_and_duplicate_names():
    study = _study(grid={"method": [{"name": "weak"}]}, extra=[{"method": {"name": "simclr"}}])
    assert [s.name for s in expand_grid(study)] == ["weak", "simclr"]
    dup = _study(grid={"method": [{"name": "weak"}]}, extra=[{"method": {"name": "weak"}}])
    with pytest.raises(ConfigError, match="both named"):
        expand_grid(dup)


def test_load_study_resolves_base_file_and_overrides(tmp_path: Path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"train": {"epochs": 50}, "method": {"name": "weak"}}))
    (tmp_path / "study.yaml").write_text(
        yaml.safe_dump({"name": "x", "base": "base.yaml", "grid": {"views.crops": ["one", "multi"]}})
    )
    study, base = load_study(tmp_path / "study.yaml", ["train.epochs=2"])
    assert base["train"]["epochs"] == 2
    (tmp_path / "study2.yaml").write_text(
        yaml.safe_dump({"name": "y", "base": "base.yaml", "set": {"train.epochs": 8, "train.lr": 0.1}})
    )
    _, base = load_study(tmp_path / "study2.yaml", ["train.epochs=50"])
    assert base["train"] == {"epochs": 50, "lr": 0.1}  # the command line wins over the study's set
    assert [s.name for s in expand_grid(study)] == ["one", "multi"]


@pytest.mark.parametrize(
    "text, message",
    [
        ({"name": "x", "base": "missing.yaml"}, "not found"),
        ({"name": "x", "base": {}, "bogus": 1}, "bogus"),
        ({"name": "x", "base": {}, "grid": {"views.crops": []}}, "no values"),
    ],
)
def test_bad_study_configs_name_the_problem(tmp_path: Path, text, message):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(text))
    with pytest.raises(ConfigError, match=message):
        load_study(path)
