"""Downstream verbs and the run directory (issue 11): no verb replaces another run's outputs without
``--overwrite``, output files honour the umask, and ``embed``, ``evaluate`` and ``predict`` treat a
run that has not finished training alike (refused with what to do, or used with
``--allow-unfinished`` and a warning)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from biorep.data import resolve_source
from biorep.rundir import read_json
from biorep.training import load_run


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()}


def test_embed_into_another_runs_folder_is_refused(karyotype_copy: Path, cells_copy: Path, tmp_path: Path,
                                                   cli: Callable) -> None:
    shared = tmp_path / "shared"
    code, _, err = cli("embed", karyotype_copy, "--out", shared, "--json", "--no-progress")
    assert code == 0, err
    assert read_json(shared / "test.json")["run"] == str(karyotype_copy.resolve())
    before = (shared / "test.parquet").read_bytes()
    code, out, _ = cli("embed", karyotype_copy, "--out", shared, "--json")  # its own files: reused
    assert code == 0 and json.loads(out)["reused"] is True

    code, _, err = cli("embed", cells_copy, "--out", shared, "--no-progress")
    assert code == 2
    assert f"written by run {karyotype_copy.resolve()}" in err and "--overwrite" in err and "test.parquet" in err
    assert (shared / "test.parquet").read_bytes() == before  # nothing touched

    code, out, err = cli("embed", cells_copy, "--out", shared, "--overwrite", "--json", "--no-progress")
    assert code == 0 and json.loads(out)["reused"] is False, err
    assert read_json(shared / "test.json")["run"] == str(cells_copy.resolve())
    assert not (shared / "test.logits.npy").exists()  # the karyotype run's logits do not outlive it
    code, _, err = cli("embed", karyotype_copy, "--out", shared, "--no-progress")
    assert code == 2 and f"written by run {cells_copy.resolve()}" in err

    # files of unknown origin count as someone else's too
    other = tmp_path / "other"
    other.mkdir()
    (other / "test.parquet").write_bytes(b"not ours")
    code, _, err = cli("embed", cells_copy, "--out", other, "--no-progress")
    assert code == 2 and "no record of a biorep run" in err
    assert (other / "test.parquet").read_bytes() == b"not ours"
    (other / "test.json").write_text(json.dumps({"checkpoint": "best.ckpt"}))  # a record naming no run
    code, _, err = cli("embed", cells_copy, "--out", other, "--no-progress")
    assert code == 2 and "test.json names no run" in err
    # a run's own folder is its own: what another run left in RUN/embeddings is replaced there
    code, _, err = cli("embed", cells_copy, "--out", karyotype_copy / "embeddings", "--no-progress")
    assert code == 0, err
    code, _, err = cli("embed", cells_copy, "--out", karyotype_copy / "embeddings", "--no-progress")
    assert code == 0, err  # its own files there (the record names it)
    code, out, err = cli("embed", karyotype_copy, "--json", "--no-progress")
    assert code == 0 and json.loads(out)["reused"] is False, err
    assert read_json(karyotype_copy / "embeddings" / "test.json")["run"] == str(karyotype_copy.resolve())


def test_outputs_honour_the_umask(karyotype_copy: Path, tmp_path: Path, cli: Callable, umask_022: None) -> None:
    code, _, err = cli("embed", karyotype_copy, "--no-progress")
    assert code == 0, err
    code, _, err = cli("evaluate", karyotype_copy, "--only", "classification", "--no-progress")
    assert code == 0, err
    image = resolve_source(load_run(karyotype_copy).config.data).files[0]
    csv = tmp_path / "pred.csv"
    code, _, err = cli("predict", karyotype_copy, image, "--out", csv)
    assert code == 0, err
    written = {k: v for k, v in _modes(karyotype_copy).items()
               if k.startswith(("embeddings/", "evaluation")) or k == "evaluation.json"}
    assert {"embeddings/test.parquet", "embeddings/test.h5ad", "embeddings/test.logits.npy",
            "embeddings/test.json", "evaluation.json", "evaluation/classification.json"} <= set(written)
    assert set(written.values()) == {0o644}, written
    assert csv.stat().st_mode & 0o777 == 0o644


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("verb", ["embed", "evaluate", "predict"])
def test_unfinished_runs_are_refused_unless_allowed(verb: str, karyotype_copy: Path, tmp_path: Path,
                                                    cli: Callable, caplog: pytest.LogCaptureFixture) -> None:
    (karyotype_copy / "state.json").write_text(json.dumps({"status": "running", "pid": _dead_pid(),
                                                           "host": socket.gethostname()}))
    extra: list[object] = ["--no-progress"]
    if verb == "predict":
        extra = [resolve_source(load_run(karyotype_copy).config.data).files[0], "--out", tmp_path / "p.csv"]
    elif verb == "evaluate":
        extra += ["--only", "classification"]
    code, _, err = cli(verb, karyotype_copy, *extra)
    assert code == 2
    assert f"{karyotype_copy}: the run was interrupted before it finished training" in err
    assert f"biorep train {karyotype_copy / 'config.yaml'} --out {karyotype_copy} --resume" in err
    assert f"--allow-unfinished to `{verb}`" in err
    assert not (karyotype_copy / "embeddings").exists() and not (karyotype_copy / "evaluation.json").exists()
    with caplog.at_level("WARNING"):
        code, _, err = cli(verb, karyotype_copy, *extra, "--allow-unfinished")
    assert code == 0, err
    assert "interrupted before it finished training" in caplog.text and f"`{verb}` uses its latest" in caplog.text


def test_a_run_without_checkpoints_says_it_was_restored(karyotype_copy: Path, cli: Callable) -> None:
    """A run restored from a study archive (results, no checkpoints/) names that, not a missing epoch."""
    import shutil

    shutil.rmtree(karyotype_copy / "checkpoints")
    code, _, err = cli("evaluate", karyotype_copy, "--only", "classification")
    assert code == 2 and "no checkpoints/ folder" in err and "restored from a study archive" in err


def test_changing_tta_on_a_finished_run_recomputes_the_cached_logits(karyotype_copy: Path, cli: Callable) -> None:
    """model.tta may be edited on a finished run: evaluate must not reuse logits cached without it."""
    import numpy as np
    import torch
    import yaml

    code, _, err = cli("evaluate", karyotype_copy, "--only", "classification")
    assert code == 0, err
    cfg_path = karyotype_copy / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["tta"] = ["hflip"]
    cfg_path.write_text(yaml.safe_dump(cfg))
    code, _, err = cli("evaluate", karyotype_copy, "--only", "classification")
    assert code == 0, err
    run = load_run(karyotype_copy)
    assert run.config.model.tta == ["hflip"]
    ds = run.dataset()
    idx = np.asarray(run.splits.test)
    expected = run.model.classify(torch.from_numpy(np.asarray(ds.images[idx]))).numpy()
    (stored,) = [np.load(p) for p in (karyotype_copy / "embeddings").glob("test*.logits.npy")]
    np.testing.assert_allclose(stored, expected, atol=1e-4)


def test_train_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path: Path, cli: Callable) -> None:
    """``--overwrite`` replaces a run, never a user's folder that merely is not empty."""
    smoke = Path(__file__).resolve().parents[2] / "configs" / "synthetic-smoke.yaml"
    folder = tmp_path / "userdata"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "thesis.txt").write_text("precious")
    code, _, err = cli("train", smoke, "--out", folder, "--overwrite", "--set", "train.epochs=1")
    assert code == 2 and "is not a biorep run directory" in err and "userdata" in err
    assert (folder / "notes" / "thesis.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["userdata"]  # nothing moved aside or left behind


def test_train_overwrite_refuses_a_user_folder_with_a_config_yaml(tmp_path: Path, cli: Callable) -> None:
    """A user's project folder that holds its own ``config.yaml`` is not a run: ``--overwrite`` used to
    delete it whole (the test was "has a config.yaml")."""
    smoke = Path(__file__).resolve().parents[2] / "configs" / "synthetic-smoke.yaml"
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "config.yaml").write_text("mine: true\n")
    (folder / "important.csv").write_text("a,b\n1,2\n")
    code, _, err = cli("train", smoke, "--out", folder, "--overwrite", "--set", "train.epochs=1")
    assert code == 2 and "is not a biorep run directory" in err and "project" in err
    assert (folder / "important.csv").is_file() and (folder / "config.yaml").read_text() == "mine: true\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_train_overwrite_refuses_the_current_folder(tmp_path: Path, cli: Callable,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out . --overwrite`` (or a folder above the current one) was a traceback that left a
    ``state.json`` behind; now a one-line refusal, nothing written."""
    smoke = Path(__file__).resolve().parents[2] / "configs" / "synthetic-smoke.yaml"
    here = tmp_path / "work" / "sub"
    here.mkdir(parents=True)
    (here / "keep.txt").write_text("mine")
    monkeypatch.chdir(here)
    for out in (".", ".."):
        code, _, err = cli("train", smoke, "--out", out, "--overwrite", "--set", "train.epochs=1")
        assert code == 2 and "the folder you work in" in err, err
    assert sorted(p.name for p in here.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["sub"]


def test_train_refuses_resume_with_overwrite(tmp_path: Path, cli: Callable) -> None:
    """The two contradict each other (continue the run, replace the run): refused, nothing written."""
    smoke = Path(__file__).resolve().parents[2] / "configs" / "synthetic-smoke.yaml"
    code, _, err = cli("train", smoke, "--out", tmp_path / "run", "--resume", "--overwrite")
    assert code == 2 and "--resume and --overwrite exclude each other" in err
    assert not (tmp_path / "run").exists()
