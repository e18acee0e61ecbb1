"""``biorep.rundir``: the one atomic writer, the typed records and the run state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from biorep.errors import BiorepError, RunDirError
from biorep.rundir import (
    DATA,
    RunPaths,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    check_usable,
    embedding_files,
    read_data,
    read_json,
    read_state,
    read_summary,
    read_yaml,
    to_jsonable,
    update_json,
    write_json,
    write_state,
    write_yaml,
)
from biorep.rundir import atomic as atomic_mod


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_replaces_and_honours_the_umask(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "sub" / "a.txt"  # the folder is created
    assert atomic_write_text(target, "one") == target
    assert target.read_text() == "one" and (target.stat().st_mode & 0o777) == 0o644
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and (target.stat().st_mode & 0o777) == 0o644
    os.umask(0o077)
    atomic_write_text(target, "three")
    assert (target.stat().st_mode & 0o777) == 0o600
    assert _leftovers(target.parent) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})

    def boom(p: Path) -> None:
        p.write_text("half")
        raise ValueError("writer failed")

    with pytest.raises(ValueError, match="writer failed"):
        atomic_write(target, boom)
    assert read_json(target) == {"v": 1} and _leftovers(tmp_path) == []

    def full_disk(p: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(BiorepError, match=r"a\.json: cannot write \(No space left on device\)"):
        atomic_write(target, full_disk)
    assert read_json(target) == {"v": 1} and _leftovers(tmp_path) == []


def test_atomic_write_fsyncs_the_file_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic_mod.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(atomic_mod.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic_write_text(tmp_path / "x.txt", "data")
    assert events[:2] == ["fsync", "replace"]  # the file's data is on disk before it gets its name

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic_mod.os, "fsync", failing_fsync)
    with pytest.raises(BiorepError, match="Input/output error"):
        atomic_write_text(tmp_path / "x.txt", "new")
    assert (tmp_path / "x.txt").read_text() == "data" and _leftovers(tmp_path) == []


def test_json_and_yaml_round_trip_numpy_and_nan(tmp_path: Path) -> None:
    obj = {"a": np.float32(0.5), "b": np.nan, "c": np.arange(2), "d": (np.int64(3), None), 1: np.bool_(True)}
    write_json(tmp_path / "x.json", obj)
    assert read_json(tmp_path / "x.json") == {"a": 0.5, "b": None, "c": [0, 1], "d": [3, None], "1": True}
    write_yaml(tmp_path / "x.yaml", {"z": 1, "a": [np.int64(2)]})
    assert list(read_yaml(tmp_path / "x.yaml")) == ["z", "a"]  # keys keep their order
    assert to_jsonable(float("inf")) is None and to_jsonable(tmp_path) == str(tmp_path)


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=rf"{tmp_path / 'nope.json'}: missing"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RunDirError, match=rf"{tmp_path / 'bad.json'}: not valid JSON"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(RunDirError, match=rf"{tmp_path / 'bad.yaml'}: not valid YAML"):
        read_yaml(tmp_path / "bad.yaml")
    with pytest.raises(RunDirError, match=rf"{tmp_path / DATA}: missing"):
        read_data(tmp_path)
    (tmp_path / DATA).write_text(json.dumps({"channels": 1}))
    with pytest.raises(RunDirError, match=rf"{tmp_path / DATA}: dataset: Field required"):
        read_data(tmp_path)


def test_typed_records_keep_extra_fields(tmp_path: Path) -> None:
    write_json(tmp_path / DATA, {"dataset": "d", "channels": 3, "size": 32, "classes": ["a"], "new_key": 7,
                                 "splits": {"train": [0, 1], "val": [], "test": [2]}})
    data = read_data(tmp_path)
    assert data.channels == 3 and data.splits["train"] == [0, 1] and data.model_extra == {"new_key": 7}
    assert data.geometry is None and data.background is None  # a run from before they were recorded
    write_json(RunPaths(tmp_path).summary, {"method": "byol", "epochs": 2, "images_per_s": 10.5})
    summary = read_summary(tmp_path)
    assert summary.method == "byol" and summary.get("images_per_s") == 10.5 and summary.get("x", 1) == 1


def test_run_paths() -> None:
    p = RunPaths(Path("runs/ce"))
    assert p.last == Path("runs/ce/checkpoints/last.ckpt") and p.embedding("test").name == "test.parquet"
    assert p.evaluation.name == "evaluation.json" and p.summary.name == "summary.json"
    assert p.evaluation_result("knn@all", ".csv") == Path("runs/ce/evaluation/knn@all.csv")
    assert p.karyotype_summary == Path("runs/ce/karyotype/summary.json")
    files = embedding_files(p.embeddings, "new.all")
    assert files["logits"] == Path("runs/ce/embeddings/new.all.logits.npy") == p.embedding("new.all", "logits")
    assert sorted(files) == ["h5ad", "info", "logits", "parquet"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_state_reads_interrupted_for_a_dead_process(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None  # not a run (or from before run states, unfinished)
    write_state(tmp_path, "running")
    assert read_state(tmp_path).status == "running"  # this process is alive
    state = json.loads((tmp_path / "state.json").read_text())
    state["pid"] = _dead_pid()
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert read_state(tmp_path).status == "interrupted"
    write_state(tmp_path, "finished")
    assert read_state(tmp_path).status == "finished"
    (tmp_path / "state.json").write_text("{broken")
    with pytest.raises(RunDirError, match="state.json: unreadable run state"):
        read_state(tmp_path)


def test_runs_from_before_run_states(tmp_path: Path) -> None:
    old = tmp_path / "old"
    write_json(old / "summary.json", {"method": "byol"})
    assert read_state(old).status == "finished" and check_usable(old, "evaluate").status == "finished"
    killed = tmp_path / "killed"
    atomic_write_bytes(RunPaths(killed).last, b"x")
    assert read_state(killed).status == "interrupted"


def test_check_usable_refuses_unfinished_runs_and_says_what_to_do(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    write_state(tmp_path, "failed", message="CUDA out of memory")
    with pytest.raises(RunDirError) as exc:
        check_usable(tmp_path, "embed")
    msg = str(exc.value)
    assert "failed during training (CUDA out of memory)" in msg and "--resume" in msg
    assert "--allow-unfinished" in msg and "`embed`" in msg and str(tmp_path / "config.yaml") in msg
    with caplog.at_level("WARNING", logger="biorep.rundir"):
        assert check_usable(tmp_path, "embed", allow_unfinished=True).status == "failed"
    assert "latest checkpoint" in caplog.text
    write_state(tmp_path, "running")
    with pytest.raises(RunDirError, match="is still training; wait for it to finish"):
        check_usable(tmp_path, "predict")


def _add_key(args: tuple[str, int]) -> None:
    path, i = args

    def add(old: dict) -> dict:  # type: ignore[type-arg]
        import time

        time.sleep(0.01)  # widen the read-modify-write window
        return {**old, f"k{i}": i}

    update_json(path, add)


def test_update_json_keeps_every_concurrent_update(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import multiprocessing as mp

    target = tmp_path / "evaluation.json"
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_add_key, [(str(target), i) for i in range(12)])
    assert read_json(target) == {f"k{i}": i for i in range(12)}
    target.write_text("[1, 2")
    with caplog.at_level("WARNING", logger="biorep.rundir"):
        update_json(target, lambda old: {**old, "a": 1})
    assert read_json(target) == {"a": 1} and "not valid JSON" in caplog.text
    assert _leftovers(tmp_path) == []
