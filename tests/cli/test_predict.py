"""``biorep predict``: one CSV row per image, probabilities, unreadable files listed, run preprocessing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from biorep.data import resolve_source
from biorep.training import load_run


def test_predict_folder_files_and_manifest(karyotype_copy: Path, tmp_path: Path, cli: Callable) -> None:
    run = load_run(karyotype_copy)
    ds = run.dataset()
    files = resolve_source(run.config.data).files
    rows = run.splits.test[:3]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in rows:
        shutil.copy(files[i], folder / f"img{i:04d}.png")
    (folder / "broken.png").write_text("not an image")
    single = tmp_path / "single.png"
    shutil.copy(files[rows[0]], single)
    manifest = tmp_path / "list.csv"
    pd.DataFrame({"path": ["single.png", "absent.png"], "note": ["one", "two"]}).to_csv(manifest, index=False)
    out = tmp_path / "pred.csv"

    code, stdout, err = cli("predict", karyotype_copy, folder, single, manifest, "--out", out)
    assert code == 0, err
    assert "predicted 5 image(s), 2 could not be read" in stdout
    table = pd.read_csv(out, dtype={"predicted": str})
    assert len(table) == 7  # 3 + broken (folder), single, 2 manifest rows
    probs = table[[f"p_{c}" for c in run.classes]].to_numpy()
    ok = table["error"].isna().to_numpy()
    assert ok.sum() == 5
    np.testing.assert_allclose(probs[ok].sum(1), 1.0, atol=1e-6)
    assert (table.loc[ok, "predicted"].astype(str) == np.asarray(run.classes)[probs[ok].argmax(1)]).all()
    broken = table[table["path"].str.endswith("broken.png")].iloc[0]
    assert "cannot decode" in broken["error"] and pd.isna(broken["predicted"])
    assert "broken.png" in err and "absent.png" in err
    absent = table[table["path"].str.endswith("absent.png")].iloc[0]
    assert absent["note"] == "two" and "not found" in absent["error"]
    # same preprocessing as training (canvas scale + background of the run) → same probabilities
    logits = run.model.classify(torch.from_numpy(np.asarray(ds.images[rows]))).numpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = table[table["path"].str.contains("img0")].sort_values("path")
    np.testing.assert_allclose(got[[f"p_{c}" for c in run.classes]].to_numpy(), expected, atol=1e-5)

    # an existing --out needs --overwrite
    code, _, err = cli("predict", karyotype_copy, single, "--out", out)
    assert code == 2 and "already exists" in err and len(pd.read_csv(out)) == 7
    code, _, err = cli("predict", karyotype_copy, single, "--out", out, "--overwrite")
    assert code == 0 and len(pd.read_csv(out)) == 1


def test_predict_errors(cells_copy: Path, karyotype_copy: Path, tmp_path: Path, cli: Callable) -> None:
    img = tmp_path / "x.png"
    img.write_bytes(b"junk")
    code, _, err = cli("predict", cells_copy, img, "--via", "classifier", "--out", tmp_path / "p.csv")
    assert code == 2 and "has no classifier" in err and "--via knn" in err
    code, _, err = cli("predict", cells_copy, img, "--via", "nearest", "--out", tmp_path / "p.csv")
    assert code == 2 and "choose auto, classifier or knn" in err
    code, _, err = cli("predict", karyotype_copy, img, "--out", tmp_path / "p.csv")
    assert code == 2 and "no image could be read" in err
    assert not (tmp_path / "p.csv").exists()
    code, _, err = cli("predict", tmp_path / "nope", img)
    assert code == 2 and "does not exist" in err


def test_runs_without_a_classifier_predict_by_knn(cells_copy: Path, tmp_path: Path, cli: Callable) -> None:
    """A BYOL run predicts by the kNN vote of its training images: the same numbers as the knn probe."""
    from biorep.evaluate.probes import knn_predict_proba

    run = load_run(cells_copy)
    ds = run.dataset()
    files = resolve_source(run.config.data).files
    rows = run.splits.test[:4]
    paths = [tmp_path / f"c{i}{Path(files[i]).suffix}" for i in rows]
    for i, p in zip(rows, paths):
        shutil.copy(files[i], p)
    out = tmp_path / "pred.csv"
    code, stdout, err = cli("predict", cells_copy, *paths, "--k", "5", "--out", out)
    assert code == 0, err
    table = pd.read_csv(out, dtype={"predicted": str})
    classes = [str(c) for c in ds.classes]
    assert len(table) == 4 and table["error"].isna().all()
    assert set(table["predicted_by"]) == {"knn (k=5, training images)"}
    with torch.inference_mode():
        z_train = run.model.embed(torch.from_numpy(np.asarray(ds.images[run.splits.train]))).numpy()
        z_new = run.model.embed(torch.from_numpy(np.asarray(ds.images[rows]))).numpy()
    expected = knn_predict_proba(z_train, ds.targets[run.splits.train], z_new, len(classes), k=5)
    np.testing.assert_allclose(table[[f"p_{c}" for c in classes]].to_numpy(), expected, atol=1e-4)
    assert (table["predicted"] == np.asarray(classes)[expected.argmax(1)]).all()


def test_predict_output_file_is_checked_before_predicting(karyotype_copy: Path, tmp_path: Path, cli: Callable) -> None:
    """The --out format follows its suffix, and an output that cannot be written is refused before
    any image is predicted; a symbolic link is written through, not replaced."""
    img = tmp_path / "one.png"
    Image.fromarray(np.full((30, 12), 200, np.uint8)).save(img)
    code, _, err = cli("predict", karyotype_copy, img, "--out", tmp_path / "p.parquet")
    assert code == 0, err
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 1
    code, _, err = cli("predict", karyotype_copy, img, "--out", tmp_path / "p.xlsx")
    assert code == 2 and "must end in .csv or .parquet" in err
    (tmp_path / "afile").write_text("x")
    code, _, err = cli("predict", karyotype_copy, img, "--out", tmp_path / "afile" / "p.csv")
    assert code == 2 and "is a file, not a folder" in err and "predicted" not in err
    os.mkfifo(tmp_path / "pipe.csv")
    code, _, err = cli("predict", karyotype_copy, img, "--out", tmp_path / "pipe.csv", "--overwrite")
    assert code == 2 and "not a regular file" in err
    real = tmp_path / "real.csv"
    real.write_text("old")
    (tmp_path / "link.csv").symlink_to(real)
    code, _, err = cli("predict", karyotype_copy, img, "--out", tmp_path / "link.csv", "--overwrite")
    assert code == 0, err
    assert (tmp_path / "link.csv").is_symlink() and len(pd.read_csv(real)) == 1


@pytest.mark.parametrize("device", ["bogus", "meta", *([] if torch.cuda.is_available() else ["cuda"])])
def test_a_device_the_machine_lacks_is_one_line(karyotype_copy: Path, tmp_path: Path, cli: Callable,
                                                device: str) -> None:
    img = tmp_path / "one.png"
    Image.fromarray(np.full((30, 12), 200, np.uint8)).save(img)
    code, _, err = cli("predict", karyotype_copy, img, "--out", tmp_path / "p.csv", "--device", device)
    assert code == 2 and f"--device {device!r}" in err and "Traceback" not in err
    code, _, err = cli("embed", karyotype_copy, "--device", device, "--out", tmp_path / "emb")
    assert code == 2 and f"--device {device!r}" in err
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "emb").exists()


def test_predict_passes_manifest_metadata_through_as_written(karyotype_copy: Path, tmp_path: Path,
                                                             cli: Callable) -> None:
    Image.fromarray(np.full((30, 12), 200, np.uint8)).save(tmp_path / "one.png")
    (tmp_path / "m.csv").write_text("path,plate,note\none.png,001,NA\n")
    code, _, err = cli("predict", karyotype_copy, tmp_path / "m.csv", "--out", tmp_path / "p.csv")
    assert code == 0, err
    row = pd.read_csv(tmp_path / "p.csv", dtype=str, keep_default_na=False).iloc[0]
    assert row["plate"] == "001" and row["note"] == "NA"


def test_many_unreadable_images_make_one_bounded_error(karyotype_copy: Path, tmp_path: Path, cli: Callable,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Every image with the wrong channel count: one line naming the problem, how many files have it
    and a few of them (it listed every file: 20 kB for 300 images), and no "predictions may be wrong"
    warning when nothing is predicted."""
    folder = tmp_path / "rgb"
    folder.mkdir()
    for i in range(6):  # 5-channel arrays for a grey run
        np.save(folder / f"{i}.npy", np.full((5, 40, 20), 30 * i, dtype=np.uint8))
    code, _, err = cli("predict", karyotype_copy, folder, "--out", tmp_path / "p.csv")
    assert code == 2 and "no image could be read" in err, err
    assert "6 files: " in err and "5 channel" in err and "and 3 more" in err and "5.npy" not in err, err
    assert "may be wrong" not in caplog.text
    assert not (tmp_path / "p.csv").exists()
