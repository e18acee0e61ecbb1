"""``biorep train``: a real subprocess run, --resume, and the exit-2 guards (bad config, existing run dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from biorep.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "synthetic-smoke.yaml"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-cache")


def _run_main(args: list[str], monkeypatch: pytest.MonkeyPatch, cache: Path) -> int:
    monkeypatch.setenv("BIOREP_CACHE", str(cache))
    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    return int(exc.value.code or 0)


def test_cli_trains_in_a_subprocess_and_resumes(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "BIOREP_CACHE": str(cache), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "biorep",
        "train",
        str(SMOKE),
        "--out",
        str(out),
        "--set",
        "method.name=supcon",
        "--set",
        "method.mode=joint",
        "--set",
        "method.embed_hidden_dim=64",
        "--set",
        "method.embed_dim=32",
        "--set",
        "method.cls_hidden_dim=32",
        "--set",
        "model.backbone=resnet18",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "supcon" and summary["mode"] == "joint" and summary["epochs"] == 1
    assert "run " in proc.stdout and "best val/acc" in proc.stdout  # the rich summary table

    # --resume with more epochs continues from last.ckpt (in-process to save a second start-up)
    rc = _run_main(
        [
            "train",
            str(SMOKE),
            "--out",
            str(out),
            "--resume",
            "--set",
            "method.name=supcon",
            "--set",
            "method.mode=joint",
            "--set",
            "method.embed_hidden_dim=64",
            "--set",
            "method.embed_dim=32",
            "--set",
            "method.cls_hidden_dim=32",
            "--set",
            "model.backbone=resnet18",
            "--set",
            "train.epochs=2",
        ],
        monkeypatch,
        cache,
    )
    assert rc == 0
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["epochs"] == 2 and resumed["resumed"] is True and resumed["global_step"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "method.temperatur=0.1", "--set", "method.name=supcon"], "method.temperatur: unknown key"),
        (["--set", "train.lr=-1"], "train.lr: Input should be greater than 0"),
        (["--set", "model.bogus=1"], "model.bogus: unknown key"),
    ],
)
def test_bad_config_exits_2_before_work(
    args: list[str],
    message: str,
    tmp_path: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    rc = _run_main(["train", str(SMOKE), "--out", str(out), *args], monkeypatch, cache)
    assert rc == 2
    assert message in " ".join(capsys.readouterr().err.split())  # rich may wrap the line
    assert not out.exists()


def test_existing_run_dir_exits_2_untouched(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("keep: me\n")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    rc = _run_main(["train", str(SMOKE), "--out", str(out)], monkeypatch, cache)
    assert rc == 2
    assert "already exists" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert (out / "config.yaml").read_text() == "keep: me\n"


def test_missing_config_file_exits_2(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run_main(["train", str(tmp_path / "nope.yaml")], monkeypatch, cache) == 2
