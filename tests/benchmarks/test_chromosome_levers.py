"""The levers benchmark's LEVERS.md on fake run directories (no training): paired verdicts, seeds, ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .conftest import BENCHMARKS, script_module
from .test_chromosome_bench import N_CASES, N_CROPS, fake_run

ACC = {"base": 0.80, "base-s1": 0.81, "base-s2": 0.79, "ema": 0.93, "no-smoothing": 0.70}


@pytest.fixture(scope="module")
def levers():
    with script_module(BENCHMARKS / "chromosome" / "levers.py", "chromosome_levers") as module:
        yield module


def _study(tmp_path: Path) -> Path:
    path = tmp_path / "levers.yaml"
    path.write_text(yaml.safe_dump({
        "name": "fake-levers", "base": {},
        "extra": [{"label": "base"}, {"label": "base-s1", "train.seed": 1}, {"label": "base-s2", "train.seed": 2},
                  {"label": "ema", "train.ema_decay": 0.995}, {"label": "no-smoothing", "method.label_smoothing": 0.0}],
    }))
    return path


def test_levers_report_reads_paired_verdicts_and_the_ensemble(levers, tmp_path: Path) -> None:
    out = tmp_path / "study"
    for name, acc in ACC.items():
        fake_run(out, name, acc)
    # the ensemble's per-crop record, as score_ensemble keeps it: right on all but the first 5 crops
    crops = {"id": [str(1000 + i) for i in range(N_CROPS)], "group": [f"c{i % N_CASES}" for i in range(N_CROPS)],
             "correct": [i >= 5 for i in range(N_CROPS)], "correct_assembled": [i >= 3 for i in range(N_CROPS)]}
    (out / levers.ENSEMBLES).write_text(json.dumps({"base-seeds": {"members": list(levers.SEED_ENSEMBLE),
                                                                   "accuracy": 0.95, "crops": crops}}))
    results = tmp_path / "LEVERS.md"
    rc = levers.main(["--study", str(_study(tmp_path)), "--out", str(out), "--results", str(results),
                      "--report-only", "--no-archive"])
    assert rc == 0
    md = results.read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "**80.00 %**" in rows["base"] and rows["base"].rstrip().endswith("| — |")
    assert rows["ema"].rstrip().endswith("| helps |") and "+13.00" in rows["ema"]
    assert rows["no-smoothing"].rstrip().endswith("| hurts |") and "-10.00" in rows["no-smoothing"]
    assert rows["base-s1"].rstrip().endswith("| a seed of the base |")
    assert "**95.00 %**" in rows["ensemble of 3 seeds"] and "+15.00" in rows["ensemble of 3 seeds"]
    assert "spread over the three seeds: 2.00 points" in md
    payload = json.loads((tmp_path / "levers.json").read_text())
    ema = payload["setups"]["ema"]
    assert ema["test_accuracy"] == pytest.approx(0.93) and ema["difference"] == pytest.approx(0.13)
    assert ema["val_accuracy"] == pytest.approx(0.92) and ema["verdict"] == "helps"
    ens = payload["setups"]["ensemble of 3 seeds"]
    assert ens["members"] == list(levers.SEED_ENSEMBLE)
    assert ens["train_minutes"] == pytest.approx(30.0)  # the three members' 10 minutes each, summed
    assert payload["seed_spread"] == pytest.approx(0.02)


def test_levers_report_names_what_is_missing(levers, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    fake_run(out, "base", 0.8)
    rc = levers.main(["--study", str(_study(tmp_path)), "--out", str(out), "--results", str(tmp_path / "L.md"),
                      "--report-only", "--no-archive"])
    assert rc == 2 and "ema" in capsys.readouterr().err and not (tmp_path / "L.md").exists()


def test_seed_ensemble_leaves_out_seeds_restored_without_checkpoints(levers, tmp_path: Path) -> None:
    out = tmp_path / "study"
    for name in levers.SEED_ENSEMBLE:
        fake_run(out, name, 0.8)
    assert levers.seed_members(out) == list(levers.SEED_ENSEMBLE)  # none restored: all three wait
    for name in ("base-s1", "base-s2"):  # trained in this session: their checkpoints are at hand
        (out / "runs" / name / "checkpoints").mkdir()
    assert levers.seed_members(out) == ["base-s1", "base-s2"]
    (out / "runs" / "base-s2" / "checkpoints").rmdir()
    assert levers.seed_members(out) == list(levers.SEED_ENSEMBLE)  # one left is no ensemble


def test_levers_report_names_the_members_of_a_two_seed_ensemble(levers, tmp_path: Path) -> None:
    out = tmp_path / "study"
    for name, acc in ACC.items():
        fake_run(out, name, acc)
    crops = {"id": [str(1000 + i) for i in range(N_CROPS)], "group": [f"c{i % N_CASES}" for i in range(N_CROPS)],
             "correct": [True] * N_CROPS, "correct_assembled": [True] * N_CROPS}
    (out / levers.ENSEMBLES).write_text(json.dumps({"base-seeds": {"members": ["base-s1", "base-s2"],
                                                                   "accuracy": 1.0, "crops": crops}}))
    results = tmp_path / "LEVERS.md"
    assert levers.main(["--study", str(_study(tmp_path)), "--out", str(out), "--results", str(results),
                        "--report-only", "--no-archive"]) == 0
    md = results.read_text()
    assert "| ensemble of 2 seeds |" in md and "mean class probabilities of base-s1, base-s2" in md
    assert "alone: base-s1 81.00 %, base-s2 79.00 %" in md
    ens = json.loads((tmp_path / "levers.json").read_text())["setups"]["ensemble of 2 seeds"]
    assert ens["members"] == ["base-s1", "base-s2"] and ens["train_minutes"] == pytest.approx(20.0)


def test_levers_report_scores_each_seed_ensemble_the_study_has(levers, tmp_path: Path) -> None:
    long = levers.ENSEMBLE_SETS["long-seeds"]
    path = tmp_path / "levers.yaml"
    path.write_text(yaml.safe_dump({"name": "fake-levers", "base": {}, "extra": [
        {"label": "base"}, {"label": "base-s1", "train.seed": 1}, {"label": "base-s2", "train.seed": 2},
        *({"label": name, "train.seed": 10 + i} for i, name in enumerate(long))]}))
    out = tmp_path / "study"
    accs = {"base": 0.80, "base-s1": 0.81, "base-s2": 0.79, **dict(zip(long, (0.90, 0.91, 0.89)))}
    for name, acc in accs.items():
        fake_run(out, name, acc)

    def record(members: list[str], wrong: int) -> dict:
        crops = {"id": [str(1000 + i) for i in range(N_CROPS)], "group": [f"c{i % N_CASES}" for i in range(N_CROPS)],
                 "correct": [i >= wrong for i in range(N_CROPS)], "correct_assembled": [True] * N_CROPS}
        return {"members": members, "accuracy": 1 - wrong / N_CROPS, "crops": crops}

    (out / levers.ENSEMBLES).write_text(json.dumps({"base-seeds": record(list(levers.SEED_ENSEMBLE), 10),
                                                    "long-seeds": record(list(long), 2)}))
    results = tmp_path / "LEVERS.md"
    assert levers.main(["--study", str(path), "--out", str(out), "--results", str(results),
                        "--report-only", "--no-archive"]) == 0
    md = results.read_text()
    label = f"ensemble of 3 seeds of {long[0]}"
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert {"ensemble of 3 seeds", label} <= set(rows)
    assert f"*{label}*: mean class probabilities of {', '.join(long)}" in md
    assert f"alone: {long[0]} 90.00 %, {long[1]} 91.00 %, {long[2]} 89.00 %" in md
    setups = json.loads((tmp_path / "levers.json").read_text())["setups"]
    assert setups[label]["members"] == list(long) and setups["ensemble of 3 seeds"]["members"] == list(levers.SEED_ENSEMBLE)
    assert setups[label]["test_accuracy"] == pytest.approx(1 - 2 / N_CROPS)
    assert setups[label]["test_accuracy"] > setups["ensemble of 3 seeds"]["test_accuracy"]


def test_levers_partial_report_names_the_setups_not_run(levers, tmp_path: Path) -> None:
    out = tmp_path / "study"
    for name in ("base", "ema"):
        fake_run(out, name, ACC[name])
    results = tmp_path / "LEVERS.md"
    assert levers.main(["--study", str(_study(tmp_path)), "--out", str(out), "--results", str(results),
                        "--report-only", "--no-archive", "--partial"]) == 0
    md = results.read_text()
    assert "**Partial results:** 3 of the study's setups have not run yet (base-s1, base-s2, no-smoothing)" in md
    rows = {line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")}
    assert {"base", "ema"} <= rows and "no-smoothing" not in rows
    assert json.loads((tmp_path / "levers.json").read_text())["missing_runs"] == ["base-s1", "base-s2", "no-smoothing"]
