"""Bad input through the real ``biorep`` entry point in a subprocess: one line, exit 2, no traceback.

Usage errors (no verb, a typo, a missing argument, an unknown option, a bad value), ``--version``,
bad ``-o KEY=VALUE`` evaluation options, operating-system errors (permission, read-only file
system, full disk while writing the decode cache) and the checks against silent wrong answers
(duplicate manifest paths, one group, tiny classes; predict on another pixel type or size runs
in-process through ``biorep.cli.main``, three predictions per test).

Permission tests run the subprocess without the capabilities that let root ignore file modes
(``setpriv``) when the suite runs as root; read-only and full-disk file systems are real mounts in a private user+mount namespace
(``unshare -Urm``), skipped where that is not allowed. A ``sitecustomize`` hook on ``PYTHONPATH``
fakes what a namespace cannot (a disk that claims room but has none).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

BIOREP = Path(sys.executable).with_name("biorep")
ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "synthetic-smoke.yaml"

#: Test-only faults, switched on by BIOREP_TEST_FAULT in the subprocess.
SITECUSTOMIZE = '''
import errno, os, shutil
_fault = os.environ.get("BIOREP_TEST_FAULT", "")
if "disk_claims_room" in _fault:  # the free-space check passes; the write itself must fail cleanly
    _real = shutil.disk_usage
    def _usage(path):
        u = _real(path)
        return type(u)(u.total, 0, 1 << 40)
    shutil.disk_usage = _usage
if "fallocate_enospc" in _fault:
    def _fallocate(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.posix_fallocate = _fallocate
'''


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="biorep-hooks-"))
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A temp folder every user can enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="biorep-err-"))
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def biorep(*args: object, env: dict[str, str] | None = None, user: int | None = None, prefix: list[str] | None = None,
           cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``biorep ARGS`` as a new process (the console script), with a private cache unless ``env`` sets one."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200", **(env or {})}
    cmd = [*(prefix or []), str(BIOREP), *map(str, args)]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=timeout, user=user,
                          cwd=cwd or ROOT)


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str, code: int = 2) -> str:
    """The process failed with ``code`` and one ``error:`` line naming every needle, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


def _write_pngs(folder: Path, n: int, *, size: int = 24, classes: tuple[str, ...] = ("a", "b"),
                dtype: type = np.uint8) -> list[Path]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        cls = classes[i % len(classes)]
        top = np.iinfo(dtype).max
        arr = rng.integers(0, top, (size, size), dtype=np.int64).astype(dtype)
        p = folder / cls / f"img{i:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(p)
        out.append(p)
    return out


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not _can_unshare(), reason="no unprivileged user+mount namespaces (unshare -Urm)")


def in_namespace(setup: str) -> list[str]:
    """A command prefix running ``setup`` (mounts) in a private user+mount namespace, then biorep."""
    return ["unshare", "-Urm", "sh", "-c", f'{setup} && exec "$@"', "sh"]


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args", [[], ["datasets"]], ids=["biorep", "biorep-datasets"])
def test_group_without_a_verb_prints_help_and_exits_2(args: list[str]) -> None:
    proc = biorep(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Usage: biorep" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert ("train" if not args else "show") in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["trian"], ["No such command 'trian'", "Did you mean 'train'?"]),
        (["datasets", "lst"], ["No such command 'lst'", "'list'"]),
        (["train"], ["Missing argument", "config"]),
        (["train", str(SMOKE), "--ou", "x"], ["No such option: --ou", "--out"]),
        (["karyotype", "run", "--max-images", "-1"], ["--max-images", "-1"]),
        (["predict", "run", "a.png", "--batch-size", "many"], ["--batch-size", "many"]),
    ],
    ids=["typo-verb", "typo-subverb", "missing-argument", "unknown-option", "out-of-range", "not-a-number"],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], needles: list[str]) -> None:
    line = one_line_error(biorep(*args), *needles)
    assert "--help" in line  # where to look next
    assert "Usage:" not in line


def test_version() -> None:
    from biorep import __version__

    proc = biorep("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"biorep {__version__}"


def test_error_handling_recognises_click_and_typer_exception_classes() -> None:
    """Whichever click copy raises (typer's bundled one or the click package), it is handled."""
    from biorep.cli import _classes, _is_click_error

    exits = _classes("Exit")
    import typer

    assert typer.Exit in exits
    try:
        import click
    except ImportError:  # pragma: no cover - typer without click
        return
    assert click.exceptions.Exit in exits
    assert _is_click_error(click.UsageError("x")) and _is_click_error(click.BadParameter("x"))
    assert not _is_click_error(ValueError("x"))


def _exception_sources() -> list[object]:
    mods = []
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            mods.append(__import__(name, fromlist=["UsageError"]))
        except ImportError:
            pass
    return mods


@pytest.mark.parametrize("mod", _exception_sources(), ids=lambda m: m.__name__)
def test_main_handles_usage_errors_and_exits_of_either_click(mod: object, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The error path with the click package's classes and with typer's bundled copy (other versions)."""
    import biorep.cli as cli

    def raising(exc: BaseException):  # noqa: ANN202
        def app(**_: object) -> None:
            raise exc
        return app

    for exc, code, text in [
        (mod.UsageError("No such option: --ou"), 2, "error: No such option: --ou"),
        (mod.BadParameter("not a number", param_hint="'--k'"), 2, "error: Invalid value for '--k': not a number"),
        (mod.Exit(0) if hasattr(mod, "Exit") else SystemExit(0), 0, ""),
        (OSError(28, "No space left on device", "/full/disk/file"), 2,
         "error: /full/disk/file: No space left on device"),
    ]:
        monkeypatch.setattr(cli, "_register_verbs", lambda: None)
        monkeypatch.setattr(cli, "app", raising(exc))
        with pytest.raises(SystemExit) as done:
            cli.main(["train"])
        err = capsys.readouterr().err
        assert (done.value.code or 0) == code, (exc, err)
        assert text in err and "Traceback" not in err
        assert len([ln for ln in err.splitlines() if ln.strip()]) == (1 if text else 0)


# --------------------------------------------------------------------------- option schemas


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["evaluate", "RUN", "-o", "knn.k=zero"], ["'knn'", "k='zero'", "int", "≥ 1"]),
        (["evaluate", "RUN", "-o", "knn.k=0"], ["'knn'", "k=0", "≥ 1"]),
        (["karyotype", "RUN", "-o", "doubt_threshold=high"], ["'karyotype'", "doubt_threshold='high'", "≤ 1"]),
        (["evaluate", "RUN", "-o", "knn.kk=3"], ["unknown option", "kk", "allowed: k, temperature"]),
        (["datasets", "show", "synthetic-karyotype", "-o", "n_karyograms=abc"], ["n_karyograms='abc'", "integer"]),
        (["datasets", "show", "synthetic-karyotype", "--geometry", "blob"], ["data.geometry.mode='blob'", "'canvas'"]),
    ],
    ids=["knn-k-word", "knn-k-zero", "karyotype-threshold-word", "unknown-key", "dataset-option", "geometry"],
)
def test_bad_evaluation_option_is_refused_before_work(args: list[str], needles: list[str], tmp_path: Path) -> None:
    # RUN does not exist: the options are checked before the run is even opened
    proc = biorep(*[str(tmp_path / "run") if a == "RUN" else a for a in args])
    one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()


def test_bad_set_override_names_the_key(tmp_path: Path) -> None:
    proc = biorep("train", SMOKE, "--set", "train.epochs=zero", "--out", tmp_path / "run",
                  env={"BIOREP_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "train.epochs" in proc.stderr
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- OS errors


def _unprivileged() -> dict[str, object]:
    """Obey file modes: root without the capabilities that bypass them (setpriv), anyone else as is."""
    if os.geteuid() != 0:
        return {}
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file modes cannot be enforced")
    return {"prefix": ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]}


def test_read_only_cache_folder_is_one_line(public_tmp: Path) -> None:
    images = public_tmp / "imgs"
    _write_pngs(images, 4)
    cache = public_tmp / "cache"
    cache.mkdir(mode=0o555)
    os.chmod(cache, 0o555)
    proc = biorep("datasets", "show", images, "--no-progress", env={"BIOREP_CACHE": str(cache), "HOME": str(public_tmp)},
                  **_unprivileged())
    one_line_error(proc, str(cache), "ermission denied", "BIOREP_CACHE")
    assert list(cache.iterdir()) == []


def test_read_only_output_folder_for_train_is_one_line(public_tmp: Path) -> None:
    locked = public_tmp / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    cache = public_tmp / "cache"
    cache.mkdir(mode=0o777)
    os.chmod(cache, 0o777)
    proc = biorep("train", SMOKE, "--out", locked / "run", env={"BIOREP_CACHE": str(cache), "HOME": str(public_tmp)},
                  **_unprivileged())
    one_line_error(proc, str(locked), "ermission denied")
    assert list(locked.iterdir()) == []


@needs_unshare
def test_read_only_file_system_is_one_line(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    _write_pngs(images, 4)
    cache = tmp_path / "cache"
    cache.mkdir()
    proc = biorep("datasets", "show", images, "--no-progress", env={"BIOREP_CACHE": str(cache)},
                  prefix=in_namespace(f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache}"))
    one_line_error(proc, str(cache), "Read-only file system")
    assert list(cache.iterdir()) == []


@needs_unshare
def test_full_disk_is_checked_before_the_cache_is_written(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    _write_pngs(images, 24)
    cache = tmp_path / "cache"
    cache.mkdir()
    # 24 images at 256 px = 1.5 MiB of cache on a 1 MiB file system
    proc = biorep("datasets", "show", images, "--size", "256", "--no-progress", env={"BIOREP_CACHE": str(cache)},
                  prefix=in_namespace(f"mount -t tmpfs -o size=1m none {cache}"))
    one_line_error(proc, str(cache), "not enough free space", "BIOREP_CACHE")


@needs_unshare
def test_full_disk_that_claims_room_fails_cleanly_not_with_a_bus_error(tmp_path: Path, hooks: Path) -> None:
    """The free-space check is fooled; the preallocation must turn ENOSPC into one line (no SIGBUS)."""
    images = tmp_path / "imgs"
    _write_pngs(images, 24)
    cache = tmp_path / "cache"
    cache.mkdir()
    probe = tmp_path / "left.txt"
    setup = f"mount -t tmpfs -o size=1m none {cache}"
    # list what is left on the tmpfs from inside the namespace, after biorep exits
    prefix = ["unshare", "-Urm", "sh", "-c",
              f'{setup} && "$@"; rc=$?; find {cache} -type f > {probe}; exit $rc', "sh"]
    proc = biorep("datasets", "show", images, "--size", "256", "--no-progress", prefix=prefix,
                  env={"BIOREP_CACHE": str(cache), "PYTHONPATH": str(hooks), "BIOREP_TEST_FAULT": "disk_claims_room"})
    assert proc.returncode != 135 and proc.returncode != -7, "bus error"
    one_line_error(proc, str(cache), "No space left on device")
    assert probe.read_text().strip() == "", f"left behind: {probe.read_text()}"


def test_no_space_while_writing_the_cache_leaves_nothing(tmp_path: Path, hooks: Path) -> None:
    images = tmp_path / "imgs"
    _write_pngs(images, 6)
    cache = tmp_path / "cache"
    proc = biorep("datasets", "show", images, "--no-progress",
                  env={"BIOREP_CACHE": str(cache), "PYTHONPATH": str(hooks), "BIOREP_TEST_FAULT": "fallocate_enospc"})
    one_line_error(proc, str(cache), "No space left on device")
    assert [p for p in cache.rglob("*") if p.is_file()] == []


# --------------------------------------------------------------------------- data checks


def _manifest(folder: Path, rows: list[tuple[str, str]], **extra: list[str]) -> Path:
    for path, _ in rows:
        if not (folder / path).exists():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 20), 7 * len(path), np.uint8)).save(folder / path)
    m = folder / "list.csv"
    pd.DataFrame({"path": [r[0] for r in rows], "label": [r[1] for r in rows], **extra}).to_csv(m, index=False)
    return m


def test_duplicate_paths_with_conflicting_labels_are_refused(tmp_path: Path) -> None:
    m = _manifest(tmp_path, [("a.png", "x"), ("b.png", "y"), ("./a.png", "y")])
    one_line_error(biorep("datasets", "show", m, "--no-progress", env={"BIOREP_CACHE": str(tmp_path / "c")}),
                   str(m), "a.png", "lines 2, 4", "'x', 'y'")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.npy"))


def test_duplicate_paths_with_the_same_label_are_dropped_with_a_warning(tmp_path: Path) -> None:
    m = _manifest(tmp_path, [("a.png", "x"), ("b.png", "y"), ("a.png", "x")])
    proc = biorep("datasets", "show", m, "--json", "--no-progress", env={"BIOREP_CACHE": str(tmp_path / "c")})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_samples"] == 2
    assert "listed more than once" in proc.stderr and "a.png" in proc.stderr


def _tiny_config(tmp_path: Path, manifest: Path, **split: object) -> Path:
    cfg = {
        "data": {"dataset": str(manifest), "group": "case", "geometry": {"mode": "resize", "size": 16},
                 "split": {"test": 0.25, "val": 0.0, "seed": 0, **split}},
        "views": {"augment": "none", "crops": "one"},
        "model": {"backbone": "simple_cnn"},
        "method": {"name": "supervised"},
        "train": {"epochs": 1, "batch_size": 8, "accelerator": "cpu", "devices": 1, "tracemalloc": False,
                  "progress": False},
    }
    import yaml

    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_one_group_split_error_names_manifest_and_column(tmp_path: Path) -> None:
    rows = [(f"i{i}.png", "xy"[i % 2]) for i in range(8)]
    m = _manifest(tmp_path, rows, case=["c1"] * 8)
    proc = biorep("train", _tiny_config(tmp_path, m), "--out", tmp_path / "run", env={"BIOREP_CACHE": str(tmp_path / "c")})
    one_line_error(proc, str(m), "'case'", "split.test")
    assert not (tmp_path / "run").exists()


def test_class_without_enough_images_is_named_in_a_warning(tmp_path: Path) -> None:
    rows = [(f"i{i}.png", "xy"[i % 2]) for i in range(12)] + [("lonely.png", "z")]
    m = _manifest(tmp_path, rows, case=[f"c{i % 4}" for i in range(12)] + ["c9"])
    proc = biorep("train", _tiny_config(tmp_path, m), "--out", tmp_path / "run", env={"BIOREP_CACHE": str(tmp_path / "c")})
    assert proc.returncode == 0, proc.stderr
    warning = " ".join(proc.stderr.split())
    assert "fewer images than the split needs" in warning and "'z' (1 image(s)" in warning


def test_one_class_manifest_is_refused_for_a_classifier(tmp_path: Path) -> None:
    rows = [(f"i{i}.png", "x") for i in range(8)]
    m = _manifest(tmp_path, rows, case=[f"c{i % 4}" for i in range(8)])
    proc = biorep("train", _tiny_config(tmp_path, m), "--out", tmp_path / "run", env={"BIOREP_CACHE": str(tmp_path / "c")})
    one_line_error(proc, str(m), "'supervised'", "only class 'x'")
    assert not (tmp_path / "run").exists()


def test_predict_on_another_pixel_type_warns_and_strict_refuses(karyotype_run: Path, tmp_path: Path,
                                                                cli: Callable[..., tuple[int, str, str]],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """In-process through the real entry point (``biorep.cli.main``): three predictions, one import of
    torch; warnings are read from the log records (pytest holds the logging handlers in-process)."""
    from biorep.data import resolve_source
    from biorep.training import load_run

    run = load_run(karyotype_run)
    src = resolve_source(run.config.data).files[int(run.splits.test[0])]
    eight = np.asarray(Image.open(src))
    assert eight.dtype == np.uint8
    sixteen = tmp_path / "sixteen.tif"
    import tifffile

    tifffile.imwrite(sixteen, eight.astype(np.uint16) * 257)
    code, _, err = cli("predict", karyotype_run, sixteen, "--out", tmp_path / "p.csv")
    assert code == 0, err
    warned = " ".join(caplog.text.split())
    assert "pixel type" in warned and "uint16" in warned and "uint8" in warned and "--strict" in warned
    caplog.clear()

    code, _, err = cli("predict", karyotype_run, sixteen, "--out", tmp_path / "q.csv", "--strict")
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err, err
    assert "--strict" in err and "uint16" in err and "uint8" in err, err
    assert not (tmp_path / "q.csv").exists()

    code, _, err = cli("predict", karyotype_run, src, "--out", tmp_path / "r.csv", "--strict")
    assert code == 0 and "pixel type" not in caplog.text, err


def test_predict_on_images_of_another_size_warns(karyotype_copy: Path, tmp_path: Path,
                                                 cli: Callable[..., tuple[int, str, str]],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """With the training images' statistics in data.json (``images``: data.checks.image_stats)."""
    from biorep.data import resolve_source
    from biorep.data.checks import image_stats
    from biorep.rundir import DATA, read_json, write_json
    from biorep.training import load_run

    run = load_run(karyotype_copy)
    record = read_json(karyotype_copy / DATA)
    write_json(karyotype_copy / DATA, {**record, "images": image_stats(run.dataset())})
    src = resolve_source(run.config.data).files[int(run.splits.test[0])]
    img = Image.open(src)
    big = tmp_path / "big.png"
    img.resize((img.width * 4, img.height * 4)).save(big)
    code, _, err = cli("predict", karyotype_copy, big, "--out", tmp_path / "p.csv")
    assert code == 0, err
    warned = " ".join(caplog.text.split())
    assert "size: the images' median height" in warned and "pixel type" not in warned
    code, _, err = cli("predict", karyotype_copy, big, "--out", tmp_path / "q.csv", "--strict")
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err, err
    assert "--strict" in err and "median height" in err, err
    assert not (tmp_path / "q.csv").exists()
    code, _, err = cli("predict", karyotype_copy, src, "--out", tmp_path / "r.csv", "--strict")
    assert code == 0, err


def test_read_only_run_and_output_folders_for_evaluate_and_predict(karyotype_copy: Path, tmp_path: Path,
                                                                   cli_cache: Path) -> None:
    from biorep.data import resolve_source
    from biorep.training import load_run

    run = load_run(karyotype_copy)
    src = resolve_source(run.config.data).files[int(run.splits.test[0])]
    before = sorted(p.relative_to(karyotype_copy) for p in karyotype_copy.rglob("*"))
    for d in [karyotype_copy, *[p for p in karyotype_copy.rglob("*") if p.is_dir()]]:
        os.chmod(d, 0o555)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    os.chmod(locked, 0o555)
    env = {"BIOREP_CACHE": str(cli_cache)}
    try:
        proc = biorep("evaluate", karyotype_copy, "--only", "knn", "--no-progress", env=env, **_unprivileged())
        one_line_error(proc, str(karyotype_copy), "ermission denied")
        proc = biorep("predict", karyotype_copy, src, "--out", locked / "p.csv", env=env, **_unprivileged())
        one_line_error(proc, str(locked / "p.csv"), "ermission denied")
    finally:
        for d in [karyotype_copy, *[p for p in karyotype_copy.rglob("*") if p.is_dir()]]:
            os.chmod(d, 0o755)
    assert sorted(p.relative_to(karyotype_copy) for p in karyotype_copy.rglob("*")) == before
    assert list(locked.iterdir()) == []


def test_a_very_long_path_is_shortened_in_the_error_line(tmp_path: Path,
                                                          cli: Callable[..., tuple[int, str, str]]) -> None:
    deep = tmp_path.joinpath(*[f"level{i:03d}" for i in range(600)], "cells.csv")  # ~6,000 characters
    code, _, err = cli("datasets", "show", deep)
    assert code == 2 and err.startswith("error:") and "Traceback" not in err, err[:300]
    assert len(err) < 700 and "characters]" in err and str(deep)[-90:] in err, err
    code, _, err = cli("--debug", "datasets", "show", deep)
    assert code == 2 and str(deep) in err
