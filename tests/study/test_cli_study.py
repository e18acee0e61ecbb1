"""``biorep study``: a tiny real grid from the CLI, resuming without retraining, exit-2 guards, and
the screening study configs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from biorep.cli import main
from biorep.cli.study import prepare_study, train_isolated
from biorep.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ROOT / "configs" / "studies"

TINY = {
    "name": "tiny",
    "base": {
        "data": {
            "dataset": "synthetic-cells",
            "options": {"n_cells": 96, "size": 32, "channels": 1, "n_plates": 3},
            "geometry": {"mode": "none", "size": 32},
            "split": {"holdout": ["Plate3"], "val": 0.0},
        },
        "views": {"augment": "random", "crops": "one"},
        "model": {"backbone": "simple_cnn"},
        "method": {"name": "weak"},
        "train": {"epochs": 1, "batch_size": 16, "lr": 1.0e-3, "accelerator": "cpu", "devices": 1,
                  "limit_train_batches": 2, "tracemalloc": False, "progress": False},
    },
    "grid": {"method": [{"name": "weak"}, {"name": "autoencoder"}], "views.augment": ["random", "none"]},
    "evaluations": ["similarity", "replicate_map"],
    "evaluation_options": {
        "similarity": {"a": {"compound": "compound_a", "dose": 50},
                       "b": {"compound": "compound_a", "dose": 15},
                       "control": {"compound": "DMSO"}, "group_by": "plate"},
        "replicate_map": {"treatment": ["compound", "dose"], "profile_by": ["plate", "well", "site"],
                          "control": {"compound": "DMSO"}, "null_size": 50},
    },
}
SETUPS = ["weak-random", "weak-none", "autoencoder-random", "autoencoder-none"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIOREP_CACHE", str(tmp_path_factory.getbasetemp() / "study-cache"))


def _write(tmp_path: Path, study: dict, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    return int(exc.value.code or 0)


def test_study_runs_from_the_cli_and_resumes_without_retraining(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg, out = _write(tmp_path, TINY), tmp_path / "study"
    base = ["study", str(cfg), "--out", str(out), "--no-isolate"]
    assert _run([*base, "--report-projection", "pca"]) == 0
    first = capsys.readouterr().out
    table = pd.read_csv(out / "results.csv", index_col="setup")
    assert list(table.index) == SETUPS
    assert table["similarity.summary.d.median"].notna().all()
    assert table["replicate_map.summary.mean_map"].between(0, 1).all()
    assert set(table["method"]) == {"weak", "autoencoder"}
    report = (out / "report.html").read_text()
    assert all(name in report for name in SETUPS)
    assert "[4/4] autoencoder-none: new" in first and "trained in" in first and "evaluated in" in first
    assert "study tiny" in first  # the combined table is printed

    # interrupt: autoencoder-random lost its summary and evaluation (died after its checkpoint)
    runs = out / "runs"
    ckpts = {n: runs / n / "checkpoints" / "last.ckpt" for n in SETUPS}
    before = {n: p.stat().st_mtime_ns for n, p in ckpts.items()}
    evals_before = {n: (runs / n / "evaluation.json").stat().st_mtime_ns for n in SETUPS}
    (runs / "autoencoder-random" / "summary.json").unlink()
    (runs / "autoencoder-random" / "evaluation.json").unlink()
    report_before = (out / "report.html").stat().st_mtime_ns

    assert _run([*base, "--no-report"]) == 0
    second = capsys.readouterr().out
    for name in ("weak-random", "weak-none", "autoencoder-none"):
        assert f"{name}: done — training skipped" in second
        assert ckpts[name].stat().st_mtime_ns == before[name]  # not retrained
        assert (runs / name / "evaluation.json").stat().st_mtime_ns == evals_before[name]  # not re-evaluated
    assert "autoencoder-random: interrupted — resuming from checkpoints/last.ckpt" in second
    assert second.count("trained in") == 1 and second.count("evaluated in") == 1
    assert json.loads((runs / "autoencoder-random" / "summary.json").read_text())["method"] == "autoencoder"
    assert (runs / "autoencoder-random" / "evaluation.json").is_file()
    assert len(pd.read_csv(out / "results.csv")) == 4
    assert (out / "report.html").stat().st_mtime_ns == report_before  # --no-report leaves it alone


def test_isolated_training_runs_in_a_child_process(tmp_path: Path) -> None:
    prep = prepare_study(_write(tmp_path, TINY), ["train.limit_train_batches=1"], only=["weak-none"])
    from biorep.study import setup_config

    setup = next(s for s in prep.setups if s.name == "weak-none")
    run_dir = train_isolated(setup_config(prep.base, setup), tmp_path / "run", False)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "weak" and summary["global_step"] == 1  # the --set reached the child


def test_bad_study_config_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = copy.deepcopy(TINY)
    bad["grids"] = bad.pop("grid")
    assert _run(["study", str(_write(tmp_path, bad, "a.yaml")), "--out", str(tmp_path / "a")]) == 2
    assert "grids" in capsys.readouterr().err

    bad = copy.deepcopy(TINY)
    bad["base"]["train"]["epochs"] = -1
    assert _run(["study", str(_write(tmp_path, bad, "b.yaml")), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "train.epochs" in err and "weak-random" in err
    assert not (tmp_path / "b").exists()  # nothing started

    bad = copy.deepcopy(TINY)
    bad["evaluation_options"]["similarity"]["colour"] = 1
    assert _run(["study", str(_write(tmp_path, bad, "c.yaml")), "--out", str(tmp_path / "c")]) == 2
    assert "colour" in capsys.readouterr().err

    assert _run(["study", str(_write(tmp_path, TINY)), "--only", "nope", "--out", str(tmp_path / "d")]) == 2
    assert "nope" in capsys.readouterr().err
    cfg = str(_write(tmp_path, TINY))
    assert _run(["study", cfg, "--set", "train.epochs", "--out", str(tmp_path / "e")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_command_line_set_wins_over_the_study_set_section(tmp_path: Path) -> None:
    study = {**copy.deepcopy(TINY), "set": {"train.epochs": 3}}
    cfg = _write(tmp_path, study)
    from biorep.study import setup_config

    assert {setup_config(p.base, s)["train"]["epochs"] for p in [prepare_study(cfg)] for s in p.setups} == {3}
    prep = prepare_study(cfg, ["train.epochs=5"])
    assert {setup_config(prep.base, s)["train"]["epochs"] for s in prep.setups} == {5}
    assert prep.out == Path("runs") / "tiny"


def test_screening_configs_expand_to_the_study_and_differ_only_in_channels() -> None:
    from biorep.study import setup_config, study_setups
    from biorep.training import RunConfig

    gray = prepare_study(STUDIES / "screening-16.yaml")
    rgb = prepare_study(STUDIES / "screening-16-rgb.yaml")
    names = [s.name for s in gray.setups]
    setups = study_setups(gray.study)
    plates = ["Week4_27801", "Week4_27821", "Week4_27861"]
    assert len(setups) == 22 and len(names) == 66 and names == [s.name for s in rgb.setups]
    assert setups[-2:] == ["untrained", "classical"]
    assert names == [f"{n}@{p}" for p in plates for n in setups]  # leave-one-plate-out, fold-major
    untrained = RunConfig.model_validate(setup_config(gray.base, gray.setups[20]))
    classical = RunConfig.model_validate(setup_config(gray.base, gray.setups[21]))
    assert untrained.train.epochs == 0 and untrained.model.backbone == "simple_cnn"  # the extra's epochs win
    assert classical.train.epochs == 0 and classical.model.backbone == "classical"
    runs = [(s, RunConfig.model_validate(setup_config(gray.base, s))) for s in gray.setups]
    assert all(c.data.split.holdout == [s.fold] for s, c in runs)  # every plate held out once
    grid = [c for s, c in runs[:16]]
    assert {(c.method.name, c.views.augment, c.views.crops) for c in grid} == {
        (m, a, c) for m in ("weak", "autoencoder", "regularized", "byol")
        for a in ("random", "none") for c in ("one", "multi")}
    byol = next(c for c in grid if c.method.name == "byol")
    assert byol.method.params.momentum == 0.8 and byol.method.params.study_early_stop
    assert all(c.train.lr == 1e-4 and c.train.batch_size == 256 and c.train.epochs == 20 for c in grid)
    assert gray.base["data"]["channels"] == [0] and rgb.base["data"]["channels"] is None
    assert gray.study.evaluation_options == rgb.study.evaluation_options
    assert gray.study.evaluations == rgb.study.evaluations
    assert {"replicate_map_sphered", "label_map_sphered"} <= set(gray.study.evaluations)
    g, r = copy.deepcopy(gray.base), copy.deepcopy(rgb.base)
    g["data"].pop("channels"), r["data"].pop("channels")
    assert g == r and gray.study.grid == rgb.study.grid and gray.study.extra == rgb.study.extra
    assert gray.study.folds == rgb.study.folds
    # the study's protocol is one --set away
    e50 = prepare_study(STUDIES / "screening-16.yaml", ["train.epochs=50", "train.limit_train_batches=null",
                                                        "method.pretrain_epochs=49"])
    cfgs = [(s, RunConfig.model_validate(setup_config(e50.base, s))) for s in e50.setups]
    trained = [c for s, c in cfgs if s.setup_name not in ("untrained", "classical")]
    assert all(c.train.epochs == 50 and c.train.limit_train_batches is None for c in trained)
    assert all(c.train.epochs == 0 for s, c in cfgs if s.setup_name in ("untrained", "classical"))
    # the budget curve: one setup per paradigm at 1, 4, 16, 50 epochs, the two baselines, same folds
    budget = prepare_study(STUDIES / "screening-16-budget.yaml")
    bset = study_setups(budget.study)
    grid16 = [f"{m}-{e}" for m in ("weak", "autoencoder", "regularized", "byol") for e in (1, 4, 16, 50)]
    assert bset[:16] == grid16 and bset[-2:] == ["untrained", "classical"]
    bcfg = {s.setup_name: RunConfig.model_validate(setup_config(budget.base, s))
            for s in budget.setups if s.fold == budget.study.folds[0]["label"]}
    for name in bset[16:-2]:  # the extras: other views of a 50-epoch grid setup, nothing else changed
        paradigm = name.split("-")[0]
        twin, extra = bcfg[f"{paradigm}-50"], bcfg[name]
        assert extra.train.epochs == 50 and extra.method == twin.method
        assert (extra.views.augment, extra.views.crops) != (twin.views.augment, twin.views.crops)
        assert extra.views.augment == ("none" if "-none" in name else "random")
        assert extra.views.crops == ("multi" if "-multi" in name else "one")
        assert extra.data == twin.data and extra.train == twin.train
    assert budget.study.folds == gray.study.folds and budget.study.evaluation_options == gray.study.evaluation_options


def test_chromosome_configs_share_the_grid_and_differ_in_budget_and_augmentation() -> None:
    from biorep.study import setup_config
    from biorep.training import RunConfig
    from biorep.views.config import resolve_ops

    from biorep.study import study_setups

    cpu = prepare_study(STUDIES / "chromosome-cpu.yaml")
    gpu = prepare_study(STUDIES / "chromosome-gpu.yaml")
    assert [s.name for s in cpu.setups] == [s.name for s in gpu.setups]
    # 6 grid setups + CE given more epochs per backbone (ce_time: the equal-CPU-time comparison)
    assert len(study_setups(cpu.study)) == 8 and len(cpu.setups) == 8 * max(1, len(cpu.study.folds))
    cfgs = {which: [RunConfig.model_validate(setup_config(p.base, s)) for s in p.setups]
            for which, p in (("cpu", cpu), ("gpu", gpu))}
    ops = {which: {o["op"]: o for o in resolve_ops(c[0].views.augment)} for which, c in cfgs.items()}
    assert ops["gpu"]["rotate"]["degrees"] == 90.0 and ops["gpu"]["vflip"]["p"] == 0.5  # the study's recipe
    assert ops["cpu"]["rotate"]["degrees"] == 15.0 and ops["cpu"]["vflip"]["p"] == 0.0  # sized for 6 epochs
    same_budget = {which: [x for x, s in zip(c, p.setups) if "ce_time" not in s.name]
                   for (which, c), p in zip(cfgs.items(), (cpu, gpu))}
    for which, c in same_budget.items():  # identical augmentation, split and schedule across the setups
        assert len({(str(x.views.augment), x.data.split.seed, x.train.epochs, x.train.lr) for x in c}) == 1
    assert cfgs["cpu"][0].train.epochs == 6 and cfgs["gpu"][0].train.epochs == 100
    longer = {which: {x.train.epochs for x, s in zip(c, p.setups) if "ce_time" in s.name}
              for (which, c), p in zip(cfgs.items(), (cpu, gpu))}
    assert longer == {"cpu": {8}, "gpu": {136}}


def test_sigterm_ends_biorep_study_with_143(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A SIGTERM while the study waits on its training child (``sigterm_as_interrupt`` raises
    ``Terminated``) exits 143 with the resume hint, not click's bare 130 "aborted"."""
    import biorep.cli.study as cli_study
    from biorep.errors import Terminated

    def terminated(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(cli_study, "run_prepared", terminated)
    out = tmp_path / "study"
    assert _run(["study", str(_write(tmp_path, TINY)), "--out", str(out)]) == 143
    assert "run the same command again to resume the study" in " ".join(capsys.readouterr().out.split())


def test_study_refuses_a_non_empty_folder_that_is_no_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--out`` on a user's folder (or a training run) used to replace its results.csv / results.md /
    report.html without asking; now refused before anything is written."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.csv").write_text("my,table\n")
    assert _run(["study", str(_write(tmp_path, TINY)), "--out", str(out), "--no-isolate"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is not a biorep study folder" in err and "mine" in err
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"] and (out / "results.csv").read_text() == "my,table\n"


@pytest.mark.parametrize("name", ["/tmp/elsewhere", "../../outside", "..", "a/b"])
def test_study_name_must_be_a_folder_name(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default folder is runs/<name>: a name with a path in it wrote outside runs/."""
    cfg = _write(tmp_path, {**copy.deepcopy(TINY), "name": name})
    assert _run(["study", str(cfg)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "invalid study config: name=" in err and "is not a folder name" in err
    assert "errors.pydantic.dev" not in err  # one line per field, not pydantic's dump
    assert not Path(name).exists() or name == ".."
