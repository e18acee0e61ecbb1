"""Open the report in headless Chromium: every figure decodes, no console errors, it renders.

Chromium is driven from the command line (``--dump-dom`` / ``--screenshot``), so the test needs no
Python extra. When it is missing, ``ensure_chromium.sh`` installs Debian's ``chromium`` (as root);
where that is impossible the tests skip and say why.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from biorep.report.html import IMAGES_CHECK_SCRIPT

HERE = Path(__file__).resolve().parent
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]
CONSOLE_LINE = re.compile(r":CONSOLE[:(]|Uncaught", re.IGNORECASE)


def _find_chromium() -> str | None:
    env = os.environ.get("BIOREP_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    found = _find_chromium()
    if found is None:
        try:
            proc = subprocess.run(
                ["sh", str(HERE / "ensure_chromium.sh")], capture_output=True, text=True, timeout=900
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"headless Chromium is not installed and installing it failed: {exc}")
        found = _find_chromium()
        if found is None:
            reason = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["unknown reason"]
            pytest.skip(f"headless Chromium is not installed and cannot be installed here: {reason[0]}")
    return found


def _run(chromium: str, tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE_LINE.search(line)]


def test_report_renders_in_chromium(chromium: str, comparison_report: Path, tmp_path: Path) -> None:
    report = comparison_report
    dom = _run(chromium, tmp_path, report, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-images-ok="true"' in dom.stdout, "an embedded figure did not decode"
    assert 'data-images-total="9"' in dom.stdout
    assert _console_lines(dom.stderr) == []

    shot = tmp_path / "shot.png"
    run = _run(chromium, tmp_path, report, f"--screenshot={shot}", "--window-size=1280,2400")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = mpimg.imread(io.BytesIO(shot.read_bytes()), format="png")[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    # Not a blank page: text, tables and figures give plenty of non-white pixels.
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02
    assert pixels.std() > 0.05


def test_the_checks_catch_broken_pages(chromium: str, tmp_path: Path) -> None:
    """Negative control: a broken image and a script error must be seen by the same checks."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
        f"<script>{IMAGES_CHECK_SCRIPT}</script><script>undefinedFunction();</script></body></html>"
    )
    dom = _run(chromium, tmp_path, page, "--dump-dom")
    assert 'data-images-ok="false"' in dom.stdout
    assert any("Uncaught ReferenceError" in line for line in _console_lines(dom.stderr))
