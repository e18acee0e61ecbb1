"""``biorep datasets list|show`` through the real entry point (``biorep.cli.main``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biorep import paths
from biorep.cli import main


@pytest.fixture(autouse=True)
def cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          monkeypatch: pytest.MonkeyPatch) -> Path | None:
    """A fresh BIOREP_CACHE per test; realdata tests keep the default cache (decode once per machine)."""
    if request.node.get_closest_marker("realdata"):
        return None
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BIOREP_CACHE", str(folder))
    return folder


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``biorep ARGS``; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _png(path: Path, h: int = 20, w: int = 10, value: int = 60) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((h, w), 255, np.uint8)
    arr[2:-2, 2:-2] = value
    Image.fromarray(arr).save(path)
    return path


def _no_cache_left(cache: Path) -> bool:
    folder = cache / "datasets"
    return not folder.exists() or not any(folder.iterdir())


def test_help_on_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["datasets", "--help"], ["datasets", "list", "--help"], ["datasets", "show", "--help"]):
        code, out, _ = run(capsys, *args)
        assert code == 0 and "Usage" in out


def test_list_names_builtins_and_presence(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "datasets", "list", "--json", "--data-root", str(tmp_path))
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["datasets"]}
    assert set(rows) == {"chromosome-pki3", "bbbc021-cycloheximide", "synthetic-karyotype", "synthetic-cells"}
    assert rows["chromosome-pki3"]["present"] is False and rows["synthetic-cells"]["present"] is True
    code, out, _ = run(capsys, "datasets", "list", "--data-root", str(tmp_path))
    assert code == 0 and "missing" in out and "generated" in out


def test_show_synthetic_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "datasets", "show", "synthetic-karyotype", "--json", "-o", "n_karyograms=3",
                       "--size", "48", "--no-progress")
    assert code == 0
    info = json.loads(out)
    assert info["n_samples"] == 138 and info["n_classes"] == 24 and info["channels"] == 1
    assert info["group_column"] == "case" and info["n_groups"] >= 1 and info["size"] == 48
    assert info["class_counts"]["1"] == 6 and info["orig_height"]["max"] > info["orig_height"]["min"]


def test_show_unseen_folder_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "imgs" / "alpha" / f"{i}.png", h=30 + i)
        _png(tmp_path / "imgs" / "beta" / f"{i}.tif", h=12 + i)
    code, out, _ = run(capsys, "datasets", "show", str(tmp_path / "imgs"))
    assert code == 0 and "alpha" in out and "beta" in out and "12–32 px" in out
    code, out, _ = run(capsys, "datasets", "show", str(tmp_path / "imgs"), "--json")
    info = json.loads(out)
    assert info["class_counts"] == {"alpha": 3, "beta": 3} and info["n_groups"] is None


def _fake_pki3(root: Path, chromosome: str) -> Path:
    folder = root / "chromosome_pki3"
    _png(folder / "single_clase" / "k.1.tiff" / "clase1" / "a.png")
    pd.DataFrame({"path": ["single_clase/k.1.tiff/clase1/a.png"], "karyogram": ["k.1"], "class_folder": ["clase1"],
                  "label": [1], "chromosome": [chromosome], "index_in_class": [0]}).to_csv(folder / "labels.csv", index=False)
    return root


def test_builtin_reads_from_data_root(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "datasets", "show", "chromosome-pki3", "--json", "--data-root", str(_fake_pki3(tmp_path, "1")))
    assert code == 0 and json.loads(out)["n_classes"] == 24 and json.loads(out)["n_groups"] == 1


def _write_manifest(folder: Path, rows: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "m.csv", index=False)
    return folder / "m.csv"


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """case → (CLI args after 'datasets show', substrings the error must contain)."""
    cases: dict[str, tuple[list[str], list[str]]] = {}
    d = tmp / "corrupt"
    _png(d / "a" / "ok.png")
    (d / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cases["corrupt"] = ([str(d)], ["broken.png", "cannot decode"])
    (tmp / "empty" / "a").mkdir(parents=True)
    cases["empty folder"] = ([str(tmp / "empty")], ["empty", "no image files"])
    _png(tmp / "m1" / "a.png")
    cases["no path column"] = ([str(_write_manifest(tmp / "m1", {"file": ["a.png"]}))], ["m.csv", "no path column 'path'"])
    _png(tmp / "m2" / "a.png")
    cases["no label column"] = ([str(_write_manifest(tmp / "m2", {"path": ["a.png"]})), "--label", "compound"],
                                ["m.csv", "no label column 'compound'"])
    _png(tmp / "outside.png")
    cases["escaping path"] = ([str(_write_manifest(tmp / "m3", {"path": ["../outside.png"]}))],
                              ["../outside.png", "escapes the manifest folder"])
    cases["missing file"] = ([str(_write_manifest(tmp / "m4", {"path": ["nope.png"]}))], ["nope.png", "does not exist"])
    d = tmp / "mixed"
    for i in range(3):
        _png(d / "a" / f"{i}.png")
    Image.fromarray(np.zeros((20, 10, 3), np.uint8) + np.arange(3, dtype=np.uint8)).save(d / "a" / "colour.png")
    cases["mixed channels"] = ([str(d)], ["colour.png", "has 3 channel(s) but the data set has 1"])
    cases["unknown class"] = (["chromosome-pki3", "--data-root", str(_fake_pki3(tmp / "root", "Z"))],
                              ["label column 'chromosome'", "unknown class 'Z'"])
    d = tmp / "nan"
    arr = np.ones((8, 8), np.float32)
    arr[1, 1] = np.inf
    (d / "a").mkdir(parents=True)
    np.save(d / "a" / "x.npy", arr)
    cases["nan pixels"] = ([str(d)], ["x.npy", "NaN or infinite"])
    d = tmp / "zero"
    (d / "a").mkdir(parents=True)
    np.save(d / "a" / "z.npy", np.zeros((0, 8), np.uint8))
    cases["zero-sized"] = ([str(d)], ["z.npy", "zero-sized"])
    cases["unknown name"] = (["chromosomes-pki9"], ["chromosomes-pki9", "not a built-in"])
    cases["bad option"] = (["synthetic-cells", "-o", "n_cell=3"], ["synthetic-cells", "n_cell"])
    cases["bad size"] = (["synthetic-cells", "--size", "-5"], ["geometry.size"])
    return cases


BAD_IDS = ["corrupt", "empty folder", "no path column", "no label column", "escaping path", "missing file",
           "mixed channels", "unknown class", "nan pixels", "zero-sized", "unknown name", "bad option", "bad size"]


@pytest.mark.parametrize("case", BAD_IDS)
def test_bad_input_exit_2_one_message_no_cache(case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               cache: Path) -> None:
    args, needles = _bad_inputs(tmp_path)[case]
    code, out, err = run(capsys, "datasets", "show", *args, "--json")
    assert code == 2
    assert out == ""
    assert "Traceback" not in err and err.count("error:") == 1
    flat = "".join(err.split())  # rich wraps long paths
    for needle in needles:
        assert "".join(needle.split()) in flat, (needle, err)
    assert _no_cache_left(cache)


@pytest.mark.parametrize("where", ["before the verb", "after the verb"])
def test_debug_shows_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str) -> None:
    args = ["datasets", "show", str(tmp_path / "nowhere")]
    code, _, err = run(capsys, *(["--debug", *args] if where == "before the verb" else [*args, "--debug"]))
    assert code == 2 and "Traceback" in err and "No such option" not in err


def _real(name: str) -> None:
    root = paths.find_data_root(required=False)
    if root is None or not (root / name / "labels.csv").is_file():
        pytest.skip(f"{name} not present under the data root")


@pytest.mark.realdata
def test_acceptance_chromosome_pki3(capsys: pytest.CaptureFixture[str]) -> None:
    _real("chromosome_pki3")
    code, out, _ = run(capsys, "datasets", "show", "chromosome-pki3", "--json")
    info = json.loads(out)
    assert code == 0 and info["n_samples"] == 28135 and info["n_classes"] == 24 and info["n_groups"] == 372
    assert info["class_counts"]["Y"] == 309 and info["class_counts"]["X"] == 922 and info["channels"] == 1
    assert info["orig_height"]["min"] == 6 and info["orig_height"]["max"] == 163
    assert info["orig_width"]["min"] == 9 and info["orig_width"]["max"] == 98


@pytest.mark.realdata
def test_acceptance_bbbc021(capsys: pytest.CaptureFixture[str]) -> None:
    _real("bbbc021_cycloheximide_singlecell")
    code, out, _ = run(capsys, "datasets", "show", "bbbc021-cycloheximide", "--json")
    info = json.loads(out)
    assert code == 0 and info["n_samples"] == 4912 and info["n_classes"] == 2 and info["n_groups"] == 3
    assert info["class_counts"] == {"control": 2456, "treated": 2456} and info["channels"] == 3
    assert info["dtype"] == "uint16" and info["orig_height"] == {"min": 68, "median": 68.0, "max": 68}


def test_show_on_a_tall_canvas(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "imgs" / "alpha" / f"{i}.png", h=30 + i)
    code, out, _ = run(capsys, "datasets", "show", str(tmp_path / "imgs"), "--size", "48x24")
    assert code == 0 and "48×24 px" in " ".join(out.split())
    code, _, err = run(capsys, "datasets", "show", str(tmp_path / "imgs"), "--size", "48xten")
    assert code == 2 and "size" in err and "whole numbers" in err


def test_one_huge_image_does_not_shrink_the_others(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    for i in range(12):
        _png(tmp_path / "imgs" / ("a" if i % 2 else "b") / f"{i}.png", h=40, w=24)
    _png(tmp_path / "imgs" / "a" / "slide.png", h=1000, w=800)
    code, out, err = run(capsys, "datasets", "show", str(tmp_path / "imgs"), "--json")
    assert code == 0
    assert json.loads(out)["scale"] == pytest.approx(64 / 40)
    said = err + caplog.text
    assert "1 of 13 image(s) are more than 3× the median size (40×24 px)" in said and "slide.png" in said
