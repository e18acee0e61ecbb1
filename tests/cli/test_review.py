"""``biorep review``: the page for a run's karyograms, and its exported CSV trains (round trip)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))


def _page_data(html: str) -> dict:
    raw = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(raw)


def test_review_writes_a_page_of_the_assembly(karyotype_copy: Path, cli: Callable) -> None:
    code, out, err = cli("review", karyotype_copy, "--no-progress")
    assert code == 0, err
    page = karyotype_copy / "review.html"
    assert f"review page written to {page.resolve()}" in out
    data = _page_data(page.read_text())
    assert not (karyotype_copy / "karyotype").exists()  # review writes nothing else into the run
    code, _, err = cli("karyotype", karyotype_copy, "--max-images", "0", "--no-progress", "--json")
    assert code == 0, err
    crops = pd.read_csv(karyotype_copy / "karyotype" / "assignments.csv", dtype={"karyogram": str})
    assert sorted(k["name"] for k in data["karyograms"]) == sorted(crops["karyogram"].unique())
    shown = [c for k in data["karyograms"] for c in k["crops"]]
    assert len(shown) == len(crops)
    assert sum(c["doubtful"] for c in shown) == int(crops["doubtful"].sum())
    assert {c["file"] for c in shown} == set(crops["file"]) and all(Path(f).is_file() for f in crops["file"])
    # a second time needs --overwrite; an unknown karyogram is named
    code, _, err = cli("review", karyotype_copy, "--no-progress")
    assert code == 2 and "already exists" in err
    code, _, err = cli("review", karyotype_copy, "--no-progress", "--overwrite", "-k", "nope")
    assert code == 2 and "karyogram(s) nope not in the assembly" in err


def test_karyotype_output_lists_the_crops_to_review(karyotype_copy: Path, cli: Callable) -> None:
    code, out, err = cli("karyotype", karyotype_copy, "--max-images", "1", "--no-progress")
    assert code == 0, err
    summary = json.loads((karyotype_copy / "karyotype" / "summary.json").read_text())
    crops = pd.read_csv(karyotype_copy / "karyotype" / "assignments.csv", dtype={"karyogram": str})
    listed = {r["sample_index"] for k in summary["per_karyogram"] for r in k["review"]}
    assert listed == set(crops.loc[crops["changed"] | crops["doubtful"], "sample_index"])
    assert summary["n_review"] == len(listed) > 0
    first = next(k for k in summary["per_karyogram"] if k["review"])["review"]
    changed = [r for r in first if "changed" in r["why"]]
    assert first[: len(changed)] == changed  # changed crops first
    assert "to review:" in out and "crop(s) the assembly changed or doubts" in out
    assert len(summary["images"]) == 1 and (karyotype_copy / "karyotype" / summary["images"][0]).is_file()


def test_exported_corrections_train(karyotype_copy: Path, cli: Callable, tmp_path: Path) -> None:
    """Round trip: review page → move one crop in Chromium → Export → `biorep train` on the CSV."""
    pytest.importorskip("websocket", reason="the browser round trip needs websocket-client (test extra)")
    from cdp import Chromium, find_chromium

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    code, _, err = cli("review", karyotype_copy, "--no-progress", "--out", tmp_path / "review.html")
    assert code == 0, err
    with Chromium(chromium, tmp_path) as browser:
        page = browser.open((tmp_path / "review.html").as_uri())
        page.wait_for("document.body.dataset.ready === 'true'")
        crop = page.eval("document.querySelector('.slot[data-class=\"3\"] figure.crop').id")
        page.click(f"#{crop}")
        page.eval("var s = document.getElementById('panel-class'); s.value = '4';"
                  "s.dispatchEvent(new Event('change'));")
        assert page.eval(f"document.getElementById('{crop}').closest('.slot').dataset.class") == "4"
        page.click("#export")
        exported = browser.wait_download("corrections.csv")
        assert page.errors() == []
        folder = os.environ.get("BIOREP_SCREENSHOTS")
        if folder:  # docs/review.png is this page
            from PIL import Image

            page.eval("document.getElementById('panel').hidden = true; window.scrollTo(0, 0);"
                      "document.querySelectorAll('.selected').forEach(e => e.classList.remove('selected'))")
            shot = page.screenshot(tmp_path / "review.png", 1100, 860)
            Image.open(shot).convert("RGB").quantize(colors=128).save(Path(folder) / "review.png", optimize=True)
    table = pd.read_csv(exported, dtype=str)
    fixed = table[table["corrected"] == "yes"]
    assert len(fixed) == 1 and fixed.iloc[0]["predicted"] == "3" and fixed.iloc[0]["label"] == "4"

    config = {
        "data": {"dataset": str(exported), "label": "label", "group": "karyogram",
                 "geometry": {"mode": "canvas", "size": 32}, "split": {"test": 0.0, "val": 0.0}},
        "views": {"augment": "none", "crops": "one"},
        "model": {"backbone": "simple_cnn"},
        "method": {"name": "supervised"},
        "train": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "accelerator": "cpu", "devices": 1,
                  "tracemalloc": False, "progress": False},
    }
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(config))
    code, _, err = cli("train", tmp_path / "finetune.yaml", "--out", tmp_path / "tuned")
    assert code == 0, err
    info = json.loads((tmp_path / "tuned" / "data.json").read_text())
    assert info["n_images"] == len(table)
    assert set(info["classes"]) == set(table["label"])
    assert (tmp_path / "tuned" / "summary.json").is_file()


def test_review_of_other_data_lays_out_every_karyogram(karyotype_copy: Path, cli: Callable, tmp_path: Path) -> None:
    from biorep.data import resolve_source
    from biorep.training import load_run

    src = resolve_source(load_run(karyotype_copy).config.data)
    manifest = Path(src.files[0]).parents[1] / "manifest.csv"
    assert manifest.is_file()
    code, out, err = cli("review", karyotype_copy, "--data", manifest, "--no-progress", "--max-karyograms", "5")
    assert code == 0, err
    page = karyotype_copy / "review@manifest.html"
    assert page.is_file() and str(page.resolve()) in out
    data = _page_data(page.read_text())
    assert len(data["karyograms"]) == 5  # of the 8, flagged first
    files = {c["file"] for k in data["karyograms"] for c in k["crops"]}
    assert files <= set(src.files) and len(files) == 5 * 46


@pytest.mark.parametrize("verb", ["review", "karyotype"])
def test_option_without_equals_names_what_the_user_typed(verb: str, karyotype_copy: Path, cli: Callable) -> None:
    """``-o page.html`` (read as an output file, as in ``predict``) quoted ``'karyotype.page.html'``,
    text the user never typed; now it quotes their word and points to --out. Nothing is written."""
    code, _, err = cli(verb, karyotype_copy, "-o", "page.html", "--no-progress")
    assert code == 2 and "-o 'page.html': expected KEY=VALUE" in err and "--out" in err
    assert "karyotype.page.html" not in err
    assert not (karyotype_copy / "review.html").exists() and not (karyotype_copy / "page.html").exists()
