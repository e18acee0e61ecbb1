"""``biorep report``: default output places, the message, and exit status 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biorep.cli import main


def _run_dir(root: Path, name: str, accuracy: float) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(
        json.dumps(
            {"method": name, "backbone": "resnet18", "epochs": 2, "wall_time_s": 12.5, "peak_rss_mb": 800.0}
        )
    )
    (run / "config.yaml").write_text(f"data: {{dataset: synthetic-cells}}\nmethod: {{name: {name}}}\n")
    (run / "evaluation.json").write_text(json.dumps({"probe": {"accuracy": accuracy}}))
    return run


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def _main(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_one_run_writes_into_the_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path, "byol", 0.6543)
    assert _main(["report", str(run)]) == 0
    out = run / "report.html"
    assert f"report written to {out.resolve()}" in capsys.readouterr().out
    text = out.read_text()
    assert "Run: byol" in text and ">0.6543<" in text
    # A second time without --overwrite is refused, with --overwrite it works.
    assert _main(["report", str(run)]) == 2
    assert "already exists" in _err(capsys)
    assert _main(["report", str(run), "--overwrite", "--title", "Second"]) == 0
    assert "<title>Second</title>" in out.read_text()


def test_several_runs_default_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _run_dir(tmp_path / "runs", "simclr", 0.7111), _run_dir(tmp_path / "runs", "vicreg", 0.7222)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert _main(["report", str(a), str(b)]) == 0
    text = (work / "report.html").read_text()
    assert "Comparison" in text and ">0.7111<" in text and ">0.7222<" in text
    custom = tmp_path / "out" / "cmp.html"
    assert _main(["report", str(a), str(b), "--out", str(custom)]) == 0
    assert custom.is_file() and str(custom.resolve()) in capsys.readouterr().out


def test_bad_inputs_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert _main(["report", str(missing)]) == 2
    assert f"run directory {missing} does not exist" in _err(capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _main(["report", str(empty)]) == 2
    assert "summary.json is missing" in _err(capsys)
    run = _run_dir(tmp_path, "barlow", 0.5)
    assert _main(["report", str(run), "--projection", "tsne"]) == 2
    assert "--projection 'tsne'" in _err(capsys)
    assert not (run / "report.html").exists()
