"""RunConfig validation, --set overrides and the run-directory guards."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biorep.errors import ConfigError, RunDirError
from biorep.training import RunConfig, load_config, train

from .conftest import SMOKE

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_recipe_validates(path: Path) -> None:
    cfg = load_config(path)
    again = RunConfig.from_dict(cfg.to_dict())  # the resolved form round-trips
    assert again == cfg


def test_overrides_are_yaml_parsed_and_nested() -> None:
    cfg = load_config(
        SMOKE,
        [
            "train.epochs=3",
            "train.lr=1e-4",
            "method.name=byol",
            "method.momentum=0.8",
            "train.early_stopping={monitor: train/loss, patience: 2}",
            "views.crops=multi",
        ],
    )
    assert cfg.train.epochs == 3 and cfg.train.lr == pytest.approx(1e-4)
    assert cfg.method.name == "byol" and cfg.method.params.momentum == 0.8
    assert cfg.train.early_stopping.patience == 2 and cfg.train.early_stopping.resolved_mode() == "min"
    assert cfg.views.crops == "multi"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["method.name=supcon", "method.temperature=-1"],
            "method.temperature: Input should be greater than 0",
        ),
        (["method.name=supcon", "method.temprature=0.1"], "method.temprature: unknown key"),
        (["train.epoch=3"], "train.epoch: unknown key"),
        (["bogus.x=1"], "bogus: unknown key"),
        (["train.batch_size=0"], "train.batch_size"),
        (["train.precision=8"], "train.precision"),
        (["method.name=nope"], "unknown method 'nope'"),
        (
            ["method.name=supcon", "method.pretrain_epochs=5", "train.epochs=5"],
            "method.pretrain_epochs: must be <",
        ),
        (["method.name=byol", "train.early_stopping={monitor: val/acc}"], "train.early_stopping.monitor"),
        (["train.epochs"], "expected KEY=VALUE"),
        (["train.epochs=true"], "train.epochs: Input should be a number, not true"),
        (["train.lr=yes"], "train.lr: Input should be a number, not true"),
        (["method.name=supcon", "method.temperature=off"], "method.temperature: Input should be a number, not false"),
        (["views.augment={preset: chromosome, override: {rotate: {p: on}}}"], "Input should be a number, not true"),
        (["data.class_map={a: yes}"], "class names are text or numbers"),
    ],
)
def test_bad_configs_name_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match="invalid config|KEY=VALUE") as err:
        load_config(SMOKE, overrides)
    assert message in str(err.value)


def test_a_problem_given_with_set_is_marked_as_such(tmp_path: Path) -> None:
    """The file's own mistakes name the file; a bad ``--set`` value says it came from ``--set``."""
    raw = yaml.safe_load(Path(SMOKE).read_text())
    raw["train"]["lr"] = "fast"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.epochs=zero"])
    lines = {line.split(":")[0].strip(): line for line in str(err.value).splitlines()[1:]}
    assert str(err.value).startswith(f"{path}: invalid config")
    assert lines["train.epochs"].endswith("(from --set)") and "(from --set)" not in lines["train.lr"]
    with pytest.raises(ConfigError, match=r"method.temperature: .*\(from --set\)"):
        load_config(SMOKE, ["method.name=supcon", "method.temperature=off"])


def test_booleans_stay_booleans_and_numbers_given_as_text_are_read() -> None:
    cfg = load_config(SMOKE, ["train.tracemalloc=no", "train.progress=false", "train.epochs=2", "train.lr=1e-3"])
    assert cfg.train.tracemalloc is False and cfg.train.progress == "none" and cfg.train.epochs == 2


def test_a_class_map_written_with_numbers_is_read_as_names() -> None:
    cfg = load_config(SMOKE, ["data.class_map={chr1: 1, 2: chr2, x: 3.0}"])
    assert cfg.data.class_map == {"chr1": "1", "2": "chr2", "x": "3"}


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_existing_run_dir_is_not_touched(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    with pytest.raises(RunDirError, match="already exists"):
        train(load_config(SMOKE), run)
    assert [p.name for p in run.iterdir()] == ["precious.txt"]


def test_overwrite_replaces_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("method: {name: autoencoder}\n")  # an earlier run's folder: its
    (run / "data.json").write_text("{}")  # config.yaml beside a run's own file (a config.yaml alone is not)
    (run / "old.txt").write_text("x")
    train(
        load_config(SMOKE, ["train.limit_train_batches=1", "train.limit_val_batches=1"]), run, overwrite=True
    )
    assert not (run / "old.txt").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["name"] == "supervised"
