"""HTML report content: sections, numbers, embedded figures, comparison, errors, atomic writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from biorep.errors import RunDirError
from biorep.report.html import key_metrics, write_report

DATA_URI = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"')


def _images(text: str) -> int:
    return len(DATA_URI.findall(text))


def test_single_run_report_answers_first_then_evidence_then_raw_numbers(run_a: Path) -> None:
    out = write_report([run_a], run_a / "report.html", projection="pca")
    text = out.read_text(encoding="utf-8")
    order = [
        "Run: ce",
        "Recall per class",
        "Most-confused class pairs",
        "Most confident wrong",
        "Least confident correct",
        "Karyograms",
        "Embedding map",
        "Learning curves",
        "All numbers",
        "Overview",
        "Key metrics",
        "Time and memory",
        "Evaluation",
        "confusion matrix",
        "Configuration",
    ]
    where = [text.find(f">{heading}<") for heading in order]
    assert all(i > 0 for i in where), [h for h, i in zip(order, where) if i < 0]
    assert where == sorted(where), "sections out of order"
    assert text.index('class="headline"') < where[1]
    # The raw tables are folded at the end: one <details> holds them.
    raw = text[text.index(">All numbers<") : text.index(">Configuration<")]
    assert raw.count("<details>") >= 1 and ">Overview<" in raw and ">Evaluation<" in raw
    # Numbers from evaluation.json and summary.json, formatted to 4 significant digits.
    for value in ("0.8731", "0.8608", "0.9912", "0.8231", "0.7777", "123.4", "30.85", "812.5", "2,346"):
        assert f">{value}<" in text, value
    assert "– (no GPU)" in text
    # figures: recall, karyogram, embedding map, learning curves, confusion matrix; the rest are crops
    assert _images(text) - text.count('<figure class="crop">') == 5
    assert "karyotype/case_c0.png" in text
    assert "PCA of embeddings/test.parquet, 60 of 60 points, coloured by label" in text
    # The config is there, collapsible, as YAML.
    assert re.search(r"<details><summary>config.yaml \(resolved\)</summary><pre>data:\n  dataset: ", text)
    # Nested results are sub-sections; per-class dicts share one table; records become a table.
    assert ">knn, linear<" in text and ">per_class_recall, per_class_precision (24 rows)<" in text
    assert "<th>case</th><th>accuracy</th><th>n</th>" in text
    # Self-contained: no external resources; printable.
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<link" not in text and "@import" not in text
    assert "@media print" in text


def test_learning_curves_leave_out_wall_clock_columns() -> None:
    import pandas as pd

    from biorep.report import figures

    metrics = pd.DataFrame({"epoch": [0, 1], "train/loss": [1.0, 0.5], "epoch_time_s": [10.0, 11.0]})
    only_loss = figures.learning_curves(metrics[["epoch", "train/loss"]])
    assert figures.learning_curves(metrics) == only_loss
    with pytest.raises(ValueError, match="no numeric metric"):
        figures.learning_curves(metrics[["epoch", "epoch_time_s"]])


def test_two_runs_are_compared_side_by_side(comparison_report: Path) -> None:
    text = comparison_report.read_text(encoding="utf-8")
    assert "<title>CE vs SupCon</title>" in text
    comparison = text[text.index('<section id="comparison">') : text.index('<section class="run"')]
    assert "<th>ce</th><th>supcon</th>" in comparison
    row = re.search(r"<th>classification.accuracy</th>(.*?)</tr>", comparison).group(1)
    assert "0.8731" in row and "0.9142" in row
    assert 'class="num best">0.9142<' in row  # the better run is highlighted
    wall = re.search(r"<th>wall time \(s\)</th>(.*?)</tr>", comparison).group(1)
    assert "123.4" in wall and "456.7" in wall
    assert ">Metrics side by side<" in comparison and ">Embedding maps side by side<" in comparison
    assert _images(comparison) == 2
    # Per run: 5 figures for ce (with karyogram) + 4 for supcon, plus the 2 comparison figures (and crops).
    assert _images(text) - text.count('<figure class="crop">') == 11
    assert text.count('<section class="run"') == 2


def test_key_metrics_take_two_levels_and_skip_per_class() -> None:
    evaluation = {
        "classification": {"accuracy": 0.9, "per_class_recall": {"1": 0.8}, "confusion_matrix": [[1]]},
        "probes": {"knn": {"accuracy": 0.7, "deep": {"x": 1.0}}},
        "n_samples": 12,
        "flag": True,
    }
    assert key_metrics(evaluation) == {
        "classification.accuracy": 0.9,
        "probes.knn.accuracy": 0.7,
        "n_samples": 12.0,
    }


def test_minimal_run_renders_what_is_there(tmp_path: Path) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    (run / "summary.json").write_text(
        json.dumps({"method": "byol", "backbone": "simple_cnn", "epochs": 1, "extra": {"note": "<b>hi</b>"}})
    )
    (run / "config.yaml").write_text("data: {dataset: '<script>alert(1)</script>'}\n")
    (run / "metrics.csv").write_text("this,is\nnot,numeric\n")
    (run / "evaluation.json").write_text("{broken")
    text = write_report([run], tmp_path / "r.html").read_text()
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;hi&lt;/b&gt;" in text
    assert _images(text) == 0
    assert "learning curves: metrics table has no numeric metric column to plot" in text
    assert "evaluation.json: cannot read JSON" in text
    assert "summary.json has no timing or memory figures" in text


def test_errors_name_the_path(tmp_path: Path, run_a: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(RunDirError, match=f"run directory {re.escape(str(missing))} does not exist"):
        write_report([run_a, missing], tmp_path / "r.html")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunDirError, match=re.escape(str(empty / "summary.json")) + " is missing"):
        write_report([empty], tmp_path / "r.html")
    (empty / "summary.json").write_text("{}")
    with pytest.raises(RunDirError, match="config.yaml is missing"):
        write_report([empty], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_refuses_to_overwrite_and_writes_atomically(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"method": "simclr"}')
    (run / "config.yaml").write_text("method: {name: simclr}\n")
    out = tmp_path / "sub" / "report.html"
    write_report([run], out)
    first = out.read_text()
    with pytest.raises(RunDirError, match="already exists"):
        write_report([run], out)
    assert out.read_text() == first
    write_report([run], out, title="again", overwrite=True)
    assert "<title>again</title>" in out.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temp files left


def test_key_metrics_unwrap_evaluation_records_and_skip_counts_and_settings():
    from biorep.report.html import key_metrics

    evaluation = {
        "classification": {"name": "classification", "n": 5,
                           "summary": {"n": 5, "accuracy": 0.5, "macro_f1": 0.4, "per_class_recall": {"a": 1.0}}},
        "knn": {"name": "knn", "summary": {"k": 20, "temperature": 0.07, "accuracy": 0.3}},
    }
    assert key_metrics(evaluation) == {"classification.accuracy": 0.5, "classification.macro_f1": 0.4,
                                       "knn.accuracy": 0.3}
