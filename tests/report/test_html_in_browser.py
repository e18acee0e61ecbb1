"""The report and the review page in real headless Chromium (driven over the DevTools Protocol).

Every figure decodes, no console errors, the headline renders; on the review page a scripted drag
moves one crop and the *Export* button's download holds the corrected label. When Chromium is
missing, ``ensure_chromium.sh`` installs Debian's ``chromium`` (as root); where that is impossible
the tests skip and say why. ``BIOREP_SCREENSHOTS=docs`` also writes the report screenshot committed
as ``docs/report-top.png`` (``docs/review.png`` comes from ``tests/cli/test_review.py``, a real run).
"""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
from cdp import Chromium, find_chromium
from report_fakes import make_assembly

from biorep.report.html import IMAGES_CHECK_SCRIPT

HERE = Path(__file__).resolve().parent
pytest.importorskip("websocket", reason="the browser tests need websocket-client (the test extra)")


@pytest.fixture(scope="session")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        try:
            proc = subprocess.run(
                ["sh", str(HERE / "ensure_chromium.sh")], capture_output=True, text=True, timeout=900
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"headless Chromium is not installed and installing it failed: {exc}")
        found = find_chromium()
        if found is None:
            reason = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["unknown reason"]
            pytest.skip(f"headless Chromium is not installed and cannot be installed here: {reason[0]}")
    return found


def _pixels(png: Path):
    return mpimg.imread(io.BytesIO(png.read_bytes()), format="png")[..., :3]


def _keep_screenshot(shot: Path, name: str) -> None:
    folder = os.environ.get("BIOREP_SCREENSHOTS")
    if folder:
        from PIL import Image

        img = Image.open(shot).convert("RGB")
        img = img.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        img.save(Path(folder) / name, optimize=True)


def test_report_renders_in_chromium(chromium: str, comparison_report: Path, tmp_path: Path) -> None:
    html = comparison_report.read_text()
    n_images = len(re.findall(r"<img ", html))
    with Chromium(chromium, tmp_path) as browser:
        page = browser.open(comparison_report.as_uri())
        page.wait_for("document.body.dataset.imagesOk !== undefined")
        assert page.eval("document.body.dataset.imagesOk") == "true", "an embedded figure did not decode"
        assert int(page.eval("document.body.dataset.imagesTotal")) == n_images > 20
        assert page.errors() == []
        # The ranked table and the headline blocks are on the page, with the crops of the confused pairs.
        assert page.eval("document.querySelectorAll('table.ranked tr').length") == 3
        assert page.eval("document.querySelectorAll('.headline').length") == 2
        assert page.eval("document.querySelectorAll('.pair figure.crop img').length") > 5
        assert page.eval("Array.from(document.images).every(i => i.naturalWidth > 0)")

        single = comparison_report.parent / "single.html"
        from biorep.report.html import write_report

        write_report([comparison_report.parent / "runs" / "ce"], single, projection="pca", overwrite=True)
        page = browser.open(single.as_uri())
        page.wait_for("document.body.dataset.imagesOk !== undefined")
        assert page.eval("document.body.dataset.imagesOk") == "true" and page.errors() == []
        # printable: print media renders to a PDF of a few pages (answers and evidence; folded raw tables stay out)
        pdf = base64.b64decode(page.sock.call("Page.printToPDF", printBackground=False)["data"])
        assert pdf[:5] == b"%PDF-" and pdf.count(b"/Type /Page") >= 3
        shot = page.screenshot(tmp_path / "report-top.png", 1100, 1300)
    pixels = _pixels(shot)
    assert pixels.shape[:2] == (1300, 1100)
    # Not a blank page: text, tables and figures give plenty of non-white pixels.
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02 and pixels.std() > 0.05
    _keep_screenshot(shot, "report-top.png")


def test_review_page_moves_a_crop_and_exports_the_csv(chromium: str, tmp_path: Path) -> None:
    from biorep.report.review import EXPORT_FILE, write_review

    crops = make_assembly(tmp_path / "images", n_karyograms=2)
    page_path = write_review(crops, tmp_path / "review.html", title="Karyotype review: demo",
                             subtitle="2 karyograms")
    with Chromium(chromium, tmp_path) as browser:
        page = browser.open(page_path.as_uri())
        page.wait_for("document.body.dataset.ready === 'true'")
        assert page.errors() == []
        assert page.eval("document.querySelectorAll('section.karyogram').length") == 2
        assert page.eval("document.querySelectorAll('figure.crop').length") == len(crops)
        assert page.eval("document.querySelectorAll('figure.crop.doubtful').length") == 4
        page.wait_for("Array.from(document.querySelectorAll('figure.crop img'))"
                      ".every(i => i.complete && i.naturalWidth > 0)")
        # crop 0 of the first karyogram (true 1) sits in slot 2, doubtful: drag it to slot 1
        first = page.eval("document.querySelector('.slot[data-k=\"0\"][data-class=\"2\"] figure.crop.doubtful').id")
        page.eval(
            "(function(){var src=document.getElementById(%r);"
            "var dst=document.querySelector('.slot[data-k=\"0\"][data-class=\"1\"]');"
            "var dt=new DataTransfer();"
            "src.dispatchEvent(new DragEvent('dragstart',{dataTransfer:dt,bubbles:true}));"
            "dst.dispatchEvent(new DragEvent('dragover',{dataTransfer:dt,bubbles:true,cancelable:true}));"
            "dst.dispatchEvent(new DragEvent('drop',{dataTransfer:dt,bubbles:true,cancelable:true}));})()" % first
        )
        assert page.eval(f"document.getElementById('{first}').closest('.slot').dataset.class") == "1"
        assert page.eval(f"document.getElementById('{first}').classList.contains('moved')")
        # mark another crop through the click-and-choose panel
        page.click("section.karyogram:nth-of-type(2) .slot[data-class='5'] figure.crop")
        page.click("#panel-mark")
        assert page.eval("document.getElementById('count').textContent") == "2 corrections"
        page.click("#export")
        exported = browser.wait_download(EXPORT_FILE)
        page.eval("window.scrollTo(0, 0)")
        shot = page.screenshot(tmp_path / "review.png", 1100, 820)
        assert page.errors() == []
    table = pd.read_csv(exported, dtype=str)
    assert list(table.columns) == ["path", "karyogram", "predicted", "label", "corrected", "marked", "argmax",
                                   "p_predicted"]
    assert len(table) == len(crops)
    moved = table[table["corrected"] == "yes"]
    assert len(moved) == 1
    row = moved.iloc[0]
    assert (row["predicted"], row["label"], row["karyogram"]) == ("2", "1", "0.1")
    assert row["path"] == crops.loc[0, "file"] and Path(row["path"]).is_file()
    marked = table[table["marked"] == "yes"]
    assert len(marked) == 1 and marked.iloc[0]["karyogram"] == "1.1" and marked.iloc[0]["label"] == "5"
    assert (table["label"] == table["predicted"]).sum() == len(table) - 1


def test_the_checks_catch_broken_pages(chromium: str, tmp_path: Path) -> None:
    """Negative control: a broken image and a script error must be seen by the same checks."""
    page_path = tmp_path / "broken.html"
    page_path.write_text(
        '<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
        f"<script>{IMAGES_CHECK_SCRIPT}</script><script>undefinedFunction();</script></body></html>"
    )
    with Chromium(chromium, tmp_path) as browser:
        page = browser.open(page_path.as_uri())
        page.wait_for("document.body.dataset.imagesOk !== undefined")
        assert page.eval("document.body.dataset.imagesOk") == "false"
        assert any("undefinedFunction" in e for e in page.errors())
