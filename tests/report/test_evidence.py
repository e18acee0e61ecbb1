"""The headline block (metrics with group-bootstrap CIs, karyotype before/after, time and memory) and
the confusion-pair gallery (it shows the crops of the right samples)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from report_fakes import FAKE_ERRORS, make_assembly

from biorep.evaluate.stats import bootstrap_ci
from biorep.report import evidence
from biorep.report.html import write_report
from biorep.report.rundir import read_run


def _headline(text: str) -> str:
    start = text.index('class="headline"')
    return text[start : text.index("</div>\n", text.index('class="resources"', start))]


def test_headline_states_what_the_metric_its_ci_and_the_resources(run_a: Path) -> None:
    text = write_report([run_a], run_a / "report.html", projection="pca").read_text()
    head = _headline(text)
    assert "supervised on resnet18" in head and "manifest.csv (label label, grouped by case)" in head
    assert "<b>epochs</b>4" in head
    # accuracy per crop from evaluation/classification.csv: 90 of 96 right, CI over the 6 cases
    table = pd.read_csv(run_a / "evaluation" / "classification.csv", dtype=str)
    correct = (table["true"] == table["predicted"]).to_numpy(float)
    ci = bootstrap_ci(lambda i: correct[i].mean(), len(correct), groups=table["case"].to_numpy(), n_boot=1000)
    assert correct.mean() == 90 / 96
    assert ">93.8 %<" in head and "accuracy per crop" in head
    assert f"95 % CI {100 * ci.low:.1f} % – {100 * ci.high:.1f} %" in head
    assert "96 test crops, 6 cases resampled" in head
    assert "macro F1" in head  # from evaluation.json
    assert "<b>wall time</b> 2.1 min" in head and "<b>peak memory (RSS)</b> 2.29 GiB" in head
    assert "– (no GPU)" in head
    # The headline comes before any figure.
    assert text.index('class="headline"') < text.index("<img ")


def test_headline_shows_karyotype_accuracy_before_and_after_assembly(run_a: Path, tmp_path: Path) -> None:
    crops = make_assembly(tmp_path / "cells", n_karyograms=2)
    crops.to_csv(run_a / "karyotype" / "assignments.csv", index=False)
    ev = json.loads((run_a / "evaluation.json").read_text())
    ev["karyotype"] = {"name": "karyotype", "summary": {"n_karyograms": 2, "n_flagged": 0, "n_doubtful": 4,
                                                         "accuracy_argmax": 0.97, "accuracy_assigned": 0.98}}
    (run_a / "evaluation.json").write_text(json.dumps(ev))
    h = evidence.headline(read_run(run_a), [])
    before, after, flagged = h.karyotype
    known = crops["true"].astype(str)
    assert before.value == (crops["argmax"] == known).mean() and after.value == (crops["assigned"] == known).mean()
    assert before.low <= before.value <= before.high and after.low <= after.value <= after.high
    assert flagged.value == 0 and "4 doubtful crops" in flagged.note
    head = _headline(write_report([run_a], tmp_path / "r.html", projection="pca").read_text())
    assert "after karyotype assembly" in head and "before assembly (argmax)" in head and "→" in head


def test_confusion_pairs_show_the_crops_of_the_misclassified_samples(run_a: Path) -> None:
    table = evidence.predictions(read_run(run_a))
    pairs = evidence.confused_pairs(table)
    assert [(p["true"], p["predicted"], p["n"]) for p in pairs] == [("1", "2", 3), ("Y", "7", 2), ("11", "12", 1)]
    assert sorted(table.loc[pairs[0]["rows"], "sample_index"]) == [0, 1, 2]

    text = write_report([run_a], run_a / "report.html", projection="pca").read_text()
    section = text[text.index(">Most-confused class pairs<") : text.index(">Most confident wrong<")]
    blocks = re.findall(r'<div class="pair">(.*?)</div></div></div>', section, flags=re.S)
    assert len(blocks) == 3 and "true 1 → predicted 2: 3 crops (75 % of 1)" in blocks[0]
    data = run_a.parent / "data"
    wrong, refs = blocks[0].split('<div class="crops ref">')
    shown = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', wrong)
    errors_1_to_2 = sorted(i for i, p in FAKE_ERRORS.items() if p == "2")
    assert sorted(alt for _, alt in shown) == [f"crop{i:03d}.png" for i in errors_1_to_2]
    for b64, alt in shown:  # the embedded image is that file's pixels
        embedded = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))
        assert np.array_equal(embedded, np.asarray(Image.open(data / alt)))
    # beside them: the most confidently correct 1 (crop 3: 0, 1, 2 are wrong) and 2 (crop 4)
    assert re.findall(r'alt="([^"]+)"', refs) == ["crop003.png", "crop004.png"]
    assert "a typical 1" in refs and "a typical 2" in refs


def test_confidence_galleries_pick_the_extremes(run_a: Path) -> None:
    table = evidence.predictions(read_run(run_a))
    low, high = evidence.confidence_gallery(table, n=3)
    assert all(table.loc[i, "true"] == table.loc[i, "predicted"] for i in low)
    assert list(table.loc[low, "sample_index"]) == [95, 94, 91]  # lowest confidence among the correct (92, 93 are wrong)
    assert all(table.loc[i, "true"] != table.loc[i, "predicted"] for i in high)
    assert table.loc[high, "confidence"].is_monotonic_decreasing


def test_missing_crops_are_a_note_not_an_error(run_a: Path) -> None:
    for png in (run_a.parent / "data").glob("*.png"):
        png.unlink()
    text = write_report([run_a], run_a / "report.html", projection="pca").read_text()
    assert ">Most-confused class pairs<" in text and "crop image(s) could not be read and are left out" in text
    assert text.count("could not be read") == 1


def test_a_comparison_leads_with_one_ranked_table(comparison_report: Path) -> None:
    text = comparison_report.read_text()
    comparison = text[text.index('<section id="comparison">') : text.index('<section class="run"')]
    assert comparison.index("Ranked by accuracy per crop") < comparison.index('<table class="data"><tr><th></th>')
    ranked = re.search(r'<table class="data ranked">(.*?)</table>', comparison, re.S).group(1)
    rows = re.findall(r'<tr><td class="num">(\d)</td><td><a href="#(run-\d)">([^<]+)</a>', ranked)
    assert rows == [("1", "run-2", "supcon"), ("2", "run-1", "ce")]  # 94/96 right beats 90/96
    assert ">97.9 %<" in ranked and ">93.8 %<" in ranked and "<th>95 % CI</th>" in ranked
    assert re.search(r">\d+\.\d % – \d+\.\d %<", ranked)


def _screening_run(root: Path, name: str, auc: float, seed: int) -> Path:
    from report_fakes import make_run

    run = make_run(root, name, method="byol", seed=seed, karyogram=False)
    ev = {"treated_vs_control": {"name": "treated_vs_control", "summary": {
        "control": "compound=DMSO", "overall": {"n": 40, "accuracy": 0.8, "roc_auc": auc}}},
        "replicate_map": {"name": "replicate_map", "summary": {"mean_map": auc - 0.2, "n_treatments": 3}}}
    (run / "evaluation.json").write_text(json.dumps(ev))
    (run / "evaluation" / "classification.csv").unlink()
    emb = pd.read_parquet(run / "embeddings" / "test.parquet")
    emb.insert(1, "compound", np.where(np.arange(len(emb)) % 2 == 0, "DMSO", "taxol"))
    emb.to_parquet(run / "embeddings" / "test.parquet")
    return run


def test_screening_run_tables_its_tasks_against_the_studys_baselines(tmp_path: Path) -> None:
    runs = tmp_path / "study" / "runs"
    ssl = _screening_run(runs, "byol", 0.91, 1)
    _screening_run(runs, "untrained", 0.62, 2)
    text = write_report([ssl], tmp_path / "r.html", projection="pca").read_text()
    head = _headline(text)
    assert "screening tasks" in head and "treated_vs_control overall.roc_auc" in head
    tasks = text[text.index(">Screening tasks against the baselines<") :]
    tasks = tasks[: tasks.index("</table>")]
    assert "<th>byol</th><th>untrained</th>" in tasks
    row = re.search(r"<th>treated_vs_control overall.roc_auc</th>(.*?)</tr>", tasks).group(1)
    assert 'class="num best">0.91<' in row and ">0.62<" in row
    assert "coloured by compound" in text  # the map of a screening run shows the treatments
