"""`biorep train` under ``torchrun`` as 2 nodes × 1 process on localhost (gloo): one run, global batch.

Two ``torchrun`` agents (``--node-rank 0`` and ``1``) rendezvous on 127.0.0.1 like two cluster nodes
would. The run must train on the global batch — the same per-epoch loss as one process with the
doubled batch (views are the identity and SimpleCNN has no batch norm, so the two are the same
computation up to float rounding of the gradient all-reduce) — and produce ONE run directory,
written by global rank 0 only.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import SMOKE

pytestmark = pytest.mark.slow

TORCHRUN = Path(sys.executable).with_name("torchrun")

COMMON = [
    "data.split.test=0.2",
    "views.augment=none",
    "views.crops=one",
    "model.backbone=simple_cnn",
    "method.name=supervised",
    "train.epochs=3",
    "train.limit_train_batches=2",
    "train.limit_val_batches=1",
    "train.accelerator=cpu",
    "train.devices=1",
    "train.precision=32",
    "train.scheduler=none",
    "train.lr=0.003",
    "train.progress=none",
    "train.tracemalloc=false",
    "train.checkpoint_every_minutes=null",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE",
                                                                    "MASTER_", "NODE_RANK", "GROUP_RANK"))}
    env.update(BIOREP_CACHE=str(cache), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _train_cmd(cfg: Path, out: Path, *overrides: str) -> list[str]:
    sets = [a for o in (*COMMON, *overrides) for a in ("--set", o)]
    return ["-m", "biorep", "train", str(cfg), "--out", str(out), *sets]


def _losses(run: Path) -> list[float]:
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


def test_two_nodes_train_on_the_global_batch_into_one_run_dir(tmp_path: Path) -> None:
    if not TORCHRUN.is_file():
        pytest.skip("torchrun not installed next to this Python")
    cache = tmp_path / "cache"
    cfg = tmp_path / "smoke.yaml"
    shutil.copy(SMOKE, cfg)
    env = _env(cache)

    # the single-process reference first (also fills the decode cache both nodes then read)
    single = tmp_path / "single"
    ref = subprocess.run(
        [sys.executable, *_train_cmd(cfg, single, "train.batch_size=32")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]

    runs = tmp_path / "runs"
    runs.mkdir()
    out = runs / "ddp"
    port = _free_port()
    procs = []
    for node in (0, 1):
        cmd = [
            str(TORCHRUN), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node),
            "--master-addr", "127.0.0.1", "--master-port", str(port),
            *_train_cmd(cfg, out, "train.batch_size=16", "train.strategy=ddp", "train.num_nodes=2"),
        ]
        # torchrun takes a module with -m after its own options
        procs.append(
            subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        )
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=150)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]

    # one run directory, written once: nothing else appeared next to it or in the working folder
    assert sorted(p.name for p in runs.iterdir()) == ["ddp"]
    assert not (tmp_path / "lightning_logs").exists() and not (tmp_path / "runs" / "lightning_logs").exists()
    summary = yaml.safe_load((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert (out / "checkpoints" / "last.ckpt").is_file()

    got, want = _losses(out), _losses(single)
    assert len(got) == len(want) == 3
    assert got == pytest.approx(want, rel=2e-3, abs=1e-4), (got, want)
    assert summary["global_step"] == yaml.safe_load((single / "summary.json").read_text())["global_step"]
