from __future__ import annotations

import json
from pathlib import Path

import pytest

from biorep.errors import RunDirError
from biorep.study import StudyConfig, run_state, run_study


class FakeEngine:
    """Cheap stand-ins for train/evaluate that record calls and can die mid-study."""

    def __init__(self, die_on: str | None = None) -> None:
        self.trained: list[tuple[str, bool]] = []
        self.evaluated: list[str] = []
        self.die_on = die_on

    def train(self, cfg, run_dir: Path, resume: bool) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.trained.append((run_dir.name, resume))
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        (run_dir / "checkpoints" / "last.ckpt").write_text("ckpt")
        if run_dir.name == self.die_on:
            raise KeyboardInterrupt  # killed mid-training: checkpoint exists, no summary
        (run_dir / "summary.json").write_text(
            json.dumps({"method": cfg["method"]["name"], "wall_time_s": 1.5, "epochs": 2})
        )

    def evaluate(self, run_dir: Path, names, options) -> dict:
        self.evaluated.append(run_dir.name)
        result = {"knn": {"accuracy": 0.5 + 0.1 * len(self.evaluated)}}
        (run_dir / "evaluation.json").write_text(json.dumps(result))
        return result


def _study() -> StudyConfig:
    return StudyConfig(
        name="tiny",
        base={"method": {"name": "weak"}},
        grid={"method": [{"name": "weak"}, {"name": "byol"}], "views.crops": ["one", "multi"]},
        evaluations=["knn"],
    )


def test_interrupted_study_resumes_without_retraining_finished_setups(tmp_path: Path):
    first = FakeEngine(die_on="byol-one")
    with pytest.raises(KeyboardInterrupt):
        run_study(_study(), _study().base, tmp_path, train_fn=first.train, evaluate_fn=first.evaluate, log=lambda s: None)
    assert [n for n, _ in first.trained] == ["weak-one", "weak-multi", "byol-one"]
    assert run_state(tmp_path / "runs" / "byol-one") == "partial"

    second = FakeEngine()
    table = run_study(
        _study(), _study().base, tmp_path, train_fn=second.train, evaluate_fn=second.evaluate, log=lambda s: None
    )
    # finished setups are neither trained nor evaluated again; the interrupted one resumes
    assert second.trained == [("byol-one", True), ("byol-multi", False)]
    assert second.evaluated == ["byol-one", "byol-multi"]
    assert list(table.index) == ["weak-one", "weak-multi", "byol-one", "byol-multi"]
    assert table.loc["weak-one", "method"] == "weak"
    assert table.loc["byol-multi", "knn.accuracy"] == pytest.approx(0.7)
    assert (tmp_path / "results.csv").is_file()
    assert "byol-multi" in (tmp_path / "results.md").read_text()


def test_a_different_study_in_the_same_folder_is_refused(tmp_path: Path):
    engine = FakeEngine()
    run_study(_study(), _study().base, tmp_path, train_fn=engine.train, evaluate_fn=engine.evaluate, log=lambda s: None)
    other = _study()
    other.grid["views.crops"] = ["one"]
    with pytest.raises(RunDirError, match="different study"):
        run_study(other, other.base, tmp_path, train_fn=engine.train, evaluate_fn=engine.evaluate, log=lambda s: None)


def test_a_study_extended_by_new_setups_keeps_its_finished_runs(tmp_path: Path):
    first = FakeEngine()
    run_study(_study(), _study().base, tmp_path, train_fn=first.train, evaluate_fn=first.evaluate, log=lambda s: None)
    grown = _study()
    grown.grid["method"].append({"name": "simclr"})
    second, said = FakeEngine(), []
    table = run_study(grown, grown.base, tmp_path, train_fn=second.train, evaluate_fn=second.evaluate, log=said.append)
    assert second.trained == [("simclr-one", False), ("simclr-multi", False)]  # only the new setups
    assert any("extended by 2 setup(s): simclr-one, simclr-multi" in line for line in said)
    assert len(table) == 6
    stored = json.loads((tmp_path / "study.json").read_text())
    assert [s["name"] for s in stored["setups"]][-2:] == ["simclr-one", "simclr-multi"]


def test_a_changed_setup_or_base_is_refused_by_name(tmp_path: Path):
    engine = FakeEngine()
    run_study(_study(), _study().base, tmp_path, train_fn=engine.train, evaluate_fn=engine.evaluate, log=lambda s: None)
    changed = _study()
    changed.grid["method"][1] = {"name": "byol", "momentum": 0.9}
    with pytest.raises(RunDirError, match="setup 'byol-one' has changed"):
        run_study(changed, changed.base, tmp_path, train_fn=engine.train, evaluate_fn=engine.evaluate, log=lambda s: None)
    other_base = _study()
    with pytest.raises(RunDirError, match="base settings differ"):
        run_study(other_base, {"method": {"name": "byol"}}, tmp_path, train_fn=engine.train,
                  evaluate_fn=engine.evaluate, log=lambda s: None)
