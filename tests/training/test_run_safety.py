"""The run directory survives the user: bad configs with --overwrite, kill -9, truncated checkpoints,
resumes with other data, and files honour the umask."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from biorep.errors import BiorepError, ConfigError, RunDirError
from biorep.rundir import RunPaths, read_state, read_summary
from biorep.training import load_config, train

from .conftest import SMOKE

CLI = [sys.executable, "-m", "biorep"]


def _digest(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(load_config(SMOKE), tmp_path_factory.mktemp("runs") / "done")


@pytest.mark.parametrize(
    "override",
    ["model.backbone=resnet_eighteen", "views.crops={name: random_resized, scale: [1.5, 2.0]}"],
)
def test_overwrite_with_a_bad_config_keeps_the_old_run(finished: Path, tmp_path: Path, override: str) -> None:
    run = tmp_path / "run"
    import shutil

    shutil.copytree(finished, run)
    before = _digest(run)
    with pytest.raises(BiorepError):
        train(load_config(SMOKE, [override]), run, overwrite=True)
    assert _digest(run) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


class Boom(RuntimeError):
    pass


def test_overwrite_failing_before_first_checkpoint_restores_the_old_run(finished: Path, tmp_path: Path) -> None:
    import shutil

    import lightning as L

    class FailFirstStep(L.Callback):
        def on_train_batch_start(self, *args: object) -> None:
            raise Boom("fails at the first step")

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _digest(run)
    with pytest.raises(Boom):
        train(load_config(SMOKE), run, overwrite=True, callbacks=[FailFirstStep()])
    assert _digest(run) == before


def test_trainer_setup_refused_by_lightning_restores_the_old_run(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A setting Lightning refuses while the Trainer is built (after the old run was moved aside) is a
    ConfigError, and the old run is back in place, not left hidden in ``.NAME.replaced-PID``."""
    import shutil

    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from biorep.training import engine

    def refuse(*args: object, **kwargs: object) -> None:
        raise MisconfigurationException("`devices` selected are not available")

    monkeypatch.setattr(engine, "build_trainer", refuse)
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _digest(run)
    with pytest.raises(ConfigError, match="devices"):
        train(load_config(SMOKE), run, overwrite=True)
    assert _digest(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    fresh = tmp_path / "fresh"
    with pytest.raises(ConfigError):
        train(load_config(SMOKE), fresh)
    assert not fresh.exists()  # nothing trained: no half-made run folder


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_gpu_accelerator_without_a_gpu_is_refused_before_anything_is_written(finished: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _digest(run)
    with pytest.raises(ConfigError, match="train.accelerator=gpu: torch sees no CUDA GPU"):
        train(load_config(SMOKE, ["train.accelerator=gpu"]), run, overwrite=True)
    assert _digest(run) == before


def test_overwrite_replaces_once_the_new_run_has_a_checkpoint(finished: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "stale.txt").write_text("from the old run")
    train(load_config(SMOKE, ["train.epochs=2"]), run, overwrite=True)
    assert not (run / "stale.txt").exists()
    assert read_summary(run).max_epochs == 2
    assert read_state(run).status == "finished"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_truncated_checkpoint_is_a_clear_error(finished: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    last = RunPaths(run).last
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(RunDirError, match="truncated or unreadable") as err:
        train(load_config(SMOKE, ["train.epochs=2"]), run, resume=True)
    assert str(last) in str(err.value)


def test_resume_with_other_data_is_refused_naming_the_field(finished: Path) -> None:
    cfg = load_config(SMOKE, ["data.options.n_karyograms=7", "train.epochs=2"])
    with pytest.raises(RunDirError, match=r"data\.options\.n_karyograms"):
        train(cfg, finished, resume=True)
    cfg = load_config(SMOKE, ["model.backbone=resnet18", "train.epochs=2"])
    with pytest.raises(RunDirError, match=r"model\.backbone"):
        train(cfg, finished, resume=True)


def test_resume_may_extend_epochs_and_records_it(finished: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    train(load_config(SMOKE, ["train.epochs=2"]), run, resume=True)
    s = read_summary(run)
    assert s.epochs == 2 and s.get("resumed") is True
    assert s.get("resume_changes") == ["train.epochs: 1 → 2"]
    assert s.get("sessions") == 2


def test_outputs_honour_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run = train(load_config(SMOKE), tmp_path / "run")
    finally:
        os.umask(old)
    for name in ("config.yaml", "data.json", "summary.json", "metrics.csv", "state.json", "checkpoints/last.ckpt"):
        assert (run / name).stat().st_mode & 0o777 == 0o644, name


def test_precision_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import biorep.precision as prec

    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: False)
    assert prec.resolve_precision("auto", "cpu").value == "32"
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: True)
    assert prec.resolve_precision("auto", "cpu").value == "bf16-mixed"
    assert prec.resolve_precision("32", "cpu").value == "32"
    run = train(load_config(SMOKE), tmp_path / "run")
    s = read_summary(run)
    assert s.precision == "bf16-mixed" and "native bf16" in s.get("precision_reason")


# ------------------------------------------------------------------ through the real entry point
def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["BIOREP_CACHE"] = os.environ.get("BIOREP_CACHE", str(tmp_path / "cache"))
    env["OMP_NUM_THREADS"] = "1"
    return env


def _metrics(run: Path) -> list[dict[str, str]]:
    import csv

    return list(csv.DictReader((run / "metrics.csv").open()))


KILL_SETTINGS = [
    "--set", "train.epochs=4", "--set", "train.limit_train_batches=3", "--set", "train.limit_val_batches=1",
    "--set", "train.checkpoint_every_n_steps=1", "--set", "train.scheduler=warmup_cosine",
    "--set", "train.warmup_epochs=1",
]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    env = _env(tmp_path)
    ref, run = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([*CLI, "train", str(SMOKE), "--out", str(ref), *KILL_SETTINGS], env=env, check=True,
                   capture_output=True, timeout=300)
    proc = subprocess.Popen([*CLI, "train", str(SMOKE), "--out", str(run), *KILL_SETTINGS], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = RunPaths(run).last
    deadline = time.monotonic() + 240
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        if last.is_file():
            try:
                step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
            except Exception:  # being replaced right now: atomic rename, so retry
                continue
            if step >= 4:  # epoch 1 (3 batches per epoch) or later, before the run ends
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    assert read_state(run).status == "interrupted"

    plain = subprocess.run([*CLI, "train", str(SMOKE), "--out", str(run), *KILL_SETTINGS], env=env,
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2 and "--resume" in plain.stderr and "Traceback" not in plain.stderr

    resumed = subprocess.run([*CLI, "train", str(SMOKE), "--out", str(run), "--resume", *KILL_SETTINGS],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    ref_rows, rows = _metrics(ref), _metrics(run)
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    for a, b in zip(ref_rows, rows):
        for key in ("train/loss", "val/acc", "val/loss", "lr", "step"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-5, abs=1e-6), (a["epoch"], key)
    s_ref, s = read_summary(ref), read_summary(run)
    assert s.final_metrics == pytest.approx(s_ref.final_metrics, rel=1e-5, abs=1e-6)
    assert s.get("sessions") == 2 and len(s.get("epoch_times", [None] * 4) or []) == 4
    assert read_state(run).status == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_mid_run_is_an_interruption_with_a_nonzero_status(tmp_path: Path, sig: int) -> None:
    """A scheduler's SIGTERM (Lightning raises a SystemExit without a code for it) or a Ctrl-C: the exit
    status is not 0 and the run is marked interrupted (not failed), so a scheduler and --resume see it."""
    run = tmp_path / "run"
    settings = [*KILL_SETTINGS, "--set", "train.epochs=500"]
    proc = subprocess.Popen([*CLI, "train", str(SMOKE), "--out", str(run), *settings], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not RunPaths(run).last.is_file():
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be signalled"
    os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), out
    assert f"biorep train {run / 'config.yaml'} --out {run} --resume" in out  # the saved config: every --set
    assert "Traceback" not in out
    assert read_state(run).status == "interrupted"
    if sig == signal.SIGTERM:  # the printed command works as printed (a shorter budget: it ends at once)
        again = subprocess.run([*CLI, "train", str(run / "config.yaml"), "--out", str(run), "--resume",
                                "--set", "train.epochs=1"], env=_env(tmp_path), capture_output=True, text=True,
                               timeout=300)
        assert again.returncode == 0, again.stderr
        assert read_state(run).status == "finished"


def test_progress_lines_without_a_tty(tmp_path: Path) -> None:
    out = subprocess.run(
        [*CLI, "train", str(SMOKE), "--out", str(tmp_path / "run"), "--set", "train.epochs=2",
         "--set", "train.progress=auto"],
        env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("train/loss" in line and "img/s" in line for line in lines)
    assert "ETA" in lines[0]


def test_truncated_checkpoint_through_the_cli(finished: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    RunPaths(run).last.write_bytes(b"")
    out = subprocess.run([*CLI, "train", str(SMOKE), "--out", str(run), "--resume", "--set", "train.epochs=2"],
                         env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "last.ckpt" in out.stderr and "Traceback" not in out.stderr


def test_bad_backbone_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        train(load_config(SMOKE, ["model.backbone=resnet_eighteen"]), Path("/nonexistent/never-written"))


@pytest.mark.parametrize("method", ["byol", "autoencoder"])
def test_bf16_training_with_multi_crop_views(tmp_path: Path, method: str) -> None:
    """Views run in float32 outside autocast, so bf16 training works with every crop strategy."""
    cfg = load_config(SMOKE, [
        "train.precision=bf16-mixed", "views.crops=multi", "views.augment=random", f"method.name={method}",
        "data.dataset=synthetic-cells", "data.options={}",
    ])
    run = train(cfg, tmp_path / "run")
    s = read_summary(run)
    assert s.precision == "bf16-mixed"
    assert all(torch.isfinite(torch.tensor(v)) for v in s.final_metrics.values())


def test_resume_may_change_inference_only_model_fields(tmp_path: Path) -> None:
    from biorep.errors import RunDirError
    from biorep.training.rundir import resume_changes

    saved = {"model": {"backbone": "resnet18", "tta": []}, "train": {"epochs": 2}}
    new = {"model": {"backbone": "resnet18", "tta": ["hflip"]}, "train": {"epochs": 3}}
    assert resume_changes(saved, new, tmp_path) == ["model.tta: [] → ['hflip']", "train.epochs: 2 → 3"]
    with pytest.raises(RunDirError, match="model.backbone"):
        resume_changes(saved, {**new, "model": {"backbone": "resnet50", "tta": []}}, tmp_path)
    # one-cycle's total steps are fixed at the start: more epochs on resume would crash torch's scheduler
    cyc = {**saved, "train": {"epochs": 2, "scheduler": "onecycle"}}
    with pytest.raises(RunDirError, match="onecycle"):
        resume_changes(cyc, {**cyc, "train": {"epochs": 3, "scheduler": "onecycle"}}, tmp_path)
    # a two-stage SupCon run's per-stage schedules have fixed lengths too, whatever the schedule
    two = {"method": {"name": "supcon", "mode": "two_stage", "stage_schedule": True},
           "train": {"epochs": 4, "scheduler": "exponential", "limit_train_batches": 1.0}}
    for key, value in (("epochs", 5), ("limit_train_batches", 0.5)):
        with pytest.raises(RunDirError, match=f"train.{key} changed.*own LR schedule"):
            resume_changes(two, {**two, "train": {**two["train"], key: value}}, tmp_path)
    one = {**two, "method": {**two["method"], "stage_schedule": False}}  # one schedule: epochs may grow
    assert resume_changes(one, {**one, "train": {**one["train"], "epochs": 5}}, tmp_path) == ["train.epochs: 4 → 5"]


def test_a_full_disk_before_the_config_is_written_leaves_nothing_that_blocks_the_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from biorep.training import engine

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(engine, "write_yaml", full)
        with pytest.raises(OSError, match="No space left"):
            train(load_config(SMOKE, ["train.epochs=1", "train.limit_train_batches=1"]), run)
    assert not run.exists()  # no empty checkpoints/ that "already exists" would refuse next time
    train(load_config(SMOKE, ["train.epochs=1", "train.limit_train_batches=1", "train.limit_val_batches=1"]), run)
    assert read_state(run).status == "finished"


def test_more_cpu_training_processes_than_cores_is_refused(tmp_path: Path) -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    with pytest.raises(ConfigError, match=f"train.devices={cores + 1}: .* use at most {cores}"):
        train(load_config(SMOKE, ["train.accelerator=cpu", f"train.devices={cores + 1}"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()
