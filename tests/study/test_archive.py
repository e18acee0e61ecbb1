"""Study archives: the small files of finished runs out and back, never checkpoints or embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biorep.errors import RunDirError
from biorep.rundir import RunPaths, write_json, write_state
from biorep.study import (
    StudyConfig,
    archive_study,
    check_checkpoints,
    is_restored,
    restore_study,
    results_table,
    run_state,
    run_study,
)
from biorep.study.archive import archivable
from biorep.study.runner import _needs_evaluation

BIG = b"\0" * 200_000  # stands in for checkpoints (~20 MB) and embeddings (~56 MB)


class FakeEngine:
    """Train/evaluate stand-ins writing the files a real run has, big ones included."""

    def __init__(self) -> None:
        self.trained: list[str] = []
        self.evaluated: list[str] = []

    def train(self, cfg, run_dir: Path, resume: bool) -> None:
        self.trained.append(run_dir.name)
        paths = RunPaths(run_dir)
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        paths.last.write_bytes(BIG)
        paths.best.write_bytes(BIG)
        (run_dir / "config.yaml").write_text(f"method:\n  name: {cfg['method']['name']}\n")
        write_json(paths.data, {"dataset": "fake", "classes": ["a", "b"]})
        paths.metrics.write_text("epoch,loss\n0,1.0\n1,0.5\n")
        write_json(paths.summary, {"method": cfg["method"]["name"], "wall_time_s": 1.5, "epochs": 2})
        write_state(run_dir, "finished")

    def evaluate(self, run_dir: Path, names, options) -> dict:
        self.evaluated.append(run_dir.name)
        paths = RunPaths(run_dir)
        paths.embeddings.mkdir(exist_ok=True)
        paths.embedding("test").write_bytes(BIG)
        paths.evaluation_result("knn", ".csv").parent.mkdir(exist_ok=True)
        paths.evaluation_result("knn", ".csv").write_text("path,true,predicted\nx.png,a,a\ny.png,b,a\n")
        paths.evaluation_result("knn").write_text(json.dumps({"name": "knn", "summary": {"accuracy": 0.5}}))
        paths.karyotype.mkdir(exist_ok=True)
        (paths.karyotype / "k1.png").write_bytes(BIG)
        result = {"knn": {"name": "knn", "summary": {"accuracy": 0.5 + 0.1 * len(self.evaluated)}}}
        write_json(paths.evaluation, result)
        return result


def _study(**changes) -> StudyConfig:
    fields = {"name": "tiny", "base": {"method": {"name": "weak"}},
              "grid": {"method": [{"name": "weak"}, {"name": "byol"}], "views.crops": ["one", "multi"]},
              "evaluations": ["knn"], **changes}
    return StudyConfig(**fields)


def _run(study: StudyConfig, out: Path, engine: FakeEngine | None = None) -> FakeEngine:
    engine = engine or FakeEngine()
    run_study(study, study.base, out, train_fn=engine.train, evaluate_fn=engine.evaluate, log=lambda s: None)
    return engine


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """A study folder: two runs done and evaluated, one done but not evaluated, one partial, one still
    'running' although its summary is there (the moment between summary.json and state.json)."""
    out = tmp_path / "local" / "tiny"
    _run(_study(), out)
    runs = out / "runs"
    (runs / "byol-one" / "evaluation.json").unlink()  # done, not evaluated
    (runs / "byol-multi" / "summary.json").unlink()  # partial: a checkpoint, no summary
    write_state(runs / "weak-multi", "running")  # this process: alive, so still running
    (runs / "weak-one" / "evaluation" / "stray.csv").write_text("not (yet) in evaluation.json\n")
    write_json(out / "benchmark.json", {"sessions": [{"started": "1", "wall_time_s": 10.0}]})
    return out


def _files(folder: Path) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def test_only_finished_evaluated_runs_and_small_files_are_archived(study_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    names = archive_study(study_dir, archive, extra_files=("benchmark.json",))
    assert names == ["weak-one"]
    assert sorted(p.name for p in (archive / "runs").iterdir()) == ["weak-one"]
    assert set(_files(archive / "runs" / "weak-one")) == {
        "config.yaml", "data.json", "state.json", "metrics.csv", "evaluation.json", "summary.json",
        "evaluation/knn.csv.gz"}  # no checkpoints, embeddings, karyograms, stray tables or summary copies
    assert sum(len(b) for b in _files(archive).values()) < 10_000
    assert {"study.json", "results.csv", "results.md", "benchmark.json"} <= set(_files(archive))
    assert not any(p.name.startswith(".") for p in archive.rglob("*"))  # no staging or lock files left


def test_a_run_still_being_written_is_not_archived(study_dir: Path) -> None:
    runs = study_dir / "runs"
    assert not archivable(runs / "weak-multi")  # summary there, state still 'running'
    write_state(runs / "weak-multi", "finished")
    assert archivable(runs / "weak-multi")
    assert not archivable(runs / "byol-one") and not archivable(runs / "byol-multi")


def test_restored_runs_are_done_and_evaluated_for_the_runner(study_dir: Path, tmp_path: Path) -> None:
    write_state(study_dir / "runs" / "weak-multi", "finished")
    archive = tmp_path / "archive"
    archive_study(study_dir, archive)
    fresh = tmp_path / "fresh" / "tiny"
    assert restore_study(archive, fresh) == ["weak-multi", "weak-one"]
    for name in ("weak-one", "weak-multi"):
        run = fresh / "runs" / name
        assert run_state(run) == "done"
        assert not _needs_evaluation(run, ["knn"]) and not _needs_evaluation(run, None)
        assert is_restored(run) and not is_restored(study_dir / "runs" / name)
    assert (fresh / "study.json").read_bytes() == (study_dir / "study.json").read_bytes()
    names = ["weak-one", "weak-multi"]
    assert results_table(fresh / "runs", names).equals(results_table(study_dir / "runs", names))

    engine = _run(_study(), fresh)  # the next session: only what the archive lacks is trained
    assert engine.trained == ["byol-one", "byol-multi"]
    assert engine.evaluated == ["byol-one", "byol-multi"]


def test_round_trip_keeps_every_archived_byte(study_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_study(study_dir, archive)
    fresh = tmp_path / "fresh"
    restore_study(archive, fresh)
    back = _files(fresh / "runs" / "weak-one")
    archived = _files(archive / "runs" / "weak-one")
    assert set(back) == {rel.removesuffix(".gz") for rel in archived}  # tables restored as plain CSV
    original = _files(study_dir / "runs" / "weak-one")
    assert all(original[rel] == data for rel, data in back.items())


def test_restore_never_overwrites_a_local_run(study_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_study(study_dir, archive)
    other = tmp_path / "other" / "tiny"
    (other / "runs" / "weak-one").mkdir(parents=True)
    RunPaths(other / "runs" / "weak-one").checkpoints.mkdir()
    RunPaths(other / "runs" / "weak-one").last.write_bytes(b"local")  # an interrupted local run
    write_json(other / "study.json", json.loads((study_dir / "study.json").read_text()))
    said: list[str] = []
    assert restore_study(archive, other, echo=said.append) == []
    assert _files(other / "runs" / "weak-one") == {"checkpoints/last.ckpt": b"local"}
    assert "weak-one (partial)" in said[0]


def test_archiving_again_updates_files_and_keeps_archived_runs(study_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_study(study_dir, archive)
    run = study_dir / "runs" / "weak-one"
    write_json(RunPaths(run).evaluation, {"knn": {"summary": {"accuracy": 0.9}}})
    assert archive_study(study_dir, archive) == ["weak-one"]
    assert json.loads((archive / "runs" / "weak-one" / "evaluation.json").read_text())["knn"]["summary"] == {
        "accuracy": 0.9}
    import shutil

    shutil.rmtree(run)  # lost locally: the archive keeps it
    assert archive_study(study_dir, archive) == []
    assert (archive / "runs" / "weak-one" / "summary.json").is_file()


def test_study_files_with_a_merge_keep_both_sides(study_dir: Path, tmp_path: Path) -> None:
    def sessions(archived: dict, local: dict) -> dict:
        both = {s["started"]: s for s in [*archived["sessions"], *local["sessions"]]}
        return {"sessions": [both[k] for k in sorted(both)]}

    archive = tmp_path / "archive"
    write_json(archive / "benchmark.json", {"sessions": [{"started": "0", "wall_time_s": 5.0}]})
    archive_study(study_dir, archive, extra_files=("benchmark.json",), merge={"benchmark.json": sessions})
    got = json.loads((archive / "benchmark.json").read_text())
    assert [s["started"] for s in got["sessions"]] == ["0", "1"]

    fresh = tmp_path / "fresh"
    write_json(fresh / "benchmark.json", {"sessions": [{"started": "2", "wall_time_s": 1.0}]})
    restore_study(archive, fresh, extra_files=("benchmark.json",), merge={"benchmark.json": sessions})
    got = json.loads((fresh / "benchmark.json").read_text())
    assert [s["started"] for s in got["sessions"]] == ["0", "1", "2"]


def test_an_archive_of_another_study_is_refused(study_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_study(study_dir, archive)
    with pytest.raises(RunDirError, match="different study.*base"):
        restore_study(archive, tmp_path / "x", study={"name": "tiny", "base": {"method": {"name": "byol"}}})
    other = tmp_path / "other"
    _run(_study(base={"method": {"name": "byol"}}), other)
    with pytest.raises(RunDirError, match="different study"):
        archive_study(other, archive)
    same = {"name": "tiny", "base": {"method": {"name": "weak"}}}
    assert restore_study(archive, tmp_path / "y", study=same)


def test_a_restored_run_names_itself_when_a_checkpoint_is_needed(study_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_study(study_dir, archive)
    fresh = tmp_path / "fresh"
    restore_study(archive, fresh)
    check_checkpoints(study_dir / "runs" / "weak-one", "evaluated")  # a local run: fine
    with pytest.raises(RunDirError, match="'weak-one' was restored from the study archive without"):
        check_checkpoints(fresh / "runs" / "weak-one", "evaluated (linear)")


def test_a_missing_archive_restores_nothing(tmp_path: Path) -> None:
    assert restore_study(tmp_path / "none", tmp_path / "study") == []
    assert archive_study(tmp_path / "empty", tmp_path / "archive") == []
