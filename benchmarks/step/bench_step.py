"""biorep's full training step vs a bare model-only loop on the same tensors, per recipe and precision.

Run from the repository root (each invocation should stay under ~10 minutes on 2 shared cores):

    .venv/bin/python benchmarks/step/bench_step.py                        # every recipe, fp32 + bf16
    .venv/bin/python benchmarks/step/bench_step.py --recipes resnet18 ae-multi --old HEAD
    .venv/bin/python benchmarks/step/bench_step.py --quick                # 1 round, no files written

What is measured, in ONE process per (recipe, precision), interleaved round by round:

- **full**: ``biorep.training.train`` itself (the engine, its callbacks, the Lightning loop, the
  loader, intensity scaling, views, the method's loss, logging, the fused optimiser) on a generated
  data set, timed from one ``on_train_batch_end`` to the next — wall time per step as a user gets it.
- **bare**: a plain PyTorch loop on the *same* model and the *same* augmented view tensors (captured
  from the full step): ``method.compute_loss`` (forward + loss), ``backward``, a fused torch optimiser
  step, ``zero_grad`` — under the same autocast and memory layout. What the model alone costs.

The ratio full / bare (img/s) is the share of the step that is model work; the issue's target is
≥ 0.95. Rounds alternate full and bare bursts inside the same training run (the bare burst runs in a
callback and is not counted in the full intervals), so machine load hits both alike; medians over
steps are reported.

``--old COMMIT`` also times today's main: ``git worktree add`` of that commit into a temp folder (a
separate checkout; the shared working tree is not touched) and the same *full* measurement with that
tree's ``src`` first on ``PYTHONPATH``, in the same invocation, alternating with the new code per
recipe. Results merge into ``benchmarks/step/results.json`` (keyed by recipe/precision/code) and
``RESULTS.md`` is rebuilt from it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

CHROMO_VIEWS = {"preset": "chromosome", "override": {"rotate": {"degrees": 15.0, "p": 0.5}, "vflip": {"p": 0.0}}}
CHROMO = {
    "data": {"dataset": "synthetic-karyotype", "options": {"n_karyograms": 30, "seed": 0},
             "geometry": {"mode": "canvas", "size": 64}, "split": {"test": 0.0, "val": 0.0, "seed": 0}},
    "views": {"augment": CHROMO_VIEWS, "crops": "one"},
    "method": {"name": "supervised"},
    "train": {"batch_size": 96, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05},
}
CELLS = {
    "data": {"dataset": "synthetic-cells", "options": {"n_cells": 2400, "seed": 0, "channels": 1, "size": 64},
             "geometry": {"mode": "resize", "size": 64}, "split": {"test": 0.0, "val": 0.0, "seed": 0}},
    "model": {"backbone": "simple_cnn"},
    "views": {"augment": "random"},
    "train": {"batch_size": 256, "optimizer": "adam", "lr": 1e-4},
}
WEAK = {"name": "weak", "column": "treated", "control": ["control"]}
BYOL = {"name": "byol", "proj_hidden_dim": 2048, "proj_out_dim": 64, "pred_hidden_dim": 2048,
        "momentum": 0.8, "momentum_schedule": "constant"}
REG = {"name": "regularized", "column": "treated", "control": ["control"]}


def _cells(method: dict[str, Any], crops: str) -> dict[str, Any]:
    cfg = json.loads(json.dumps(CELLS))
    cfg["method"] = method
    cfg["views"]["crops"] = crops
    if crops == "multi":  # 64 cells × 5 crops = 320 images a step (the study's 256 × 5 is 4× that)
        cfg["train"]["batch_size"] = 64
    return cfg


def _chromo(backbone: str) -> dict[str, Any]:
    cfg = json.loads(json.dumps(CHROMO))
    cfg["model"] = {"backbone": backbone}
    return cfg


RECIPES: dict[str, dict[str, Any]] = {
    "resnet18": _chromo("resnet18"),
    "vit_tiny": _chromo("vit_tiny_patch16_224"),
    "weak-one": _cells(WEAK, "one"),
    "weak-multi": _cells(WEAK, "multi"),
    "ae-one": _cells({"name": "autoencoder"}, "one"),
    "ae-multi": _cells({"name": "autoencoder"}, "multi"),
    "reg-one": _cells(REG, "one"),
    "reg-multi": _cells(REG, "multi"),
    "byol-one": _cells(BYOL, "one"),
    "byol-multi": _cells(BYOL, "multi"),
}
PRECISIONS = {"fp32": "32", "bf16": "bf16-mixed"}


# ----------------------------------------------------------------------------- worker (one process)
def worker(recipe: str, precision: str, rounds: int, steps: int, bare: bool, batch: int | None) -> dict:
    import lightning as L
    import torch

    from biorep.training import RunConfig, train

    raw = json.loads(json.dumps(RECIPES[recipe]))
    warm = 2
    total = warm + rounds * steps
    raw["train"].update(
        epochs=1, limit_train_batches=total, precision=PRECISIONS[precision], seed=0, accelerator="cpu",
        devices=1, num_workers=0, tracemalloc=False, progress=False,
    )
    if batch:
        raw["train"]["batch_size"] = batch
    cfg = RunConfig.from_dict(raw)
    bf16 = precision == "bf16"

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.full: list[float] = []
            self.bare: list[float] = []
            self.images = 0
            self.t: float | None = None
            self.captured: tuple[Any, ...] | None = None
            self.warmed = False

        def on_train_start(self, trainer: L.Trainer, method: Any) -> None:
            make_views = method.make_views

            def capture(x: Any, n: int) -> Any:
                views = make_views(x, n)
                if self.captured is None or self.captured[0] is None:
                    self.captured = ([v.detach().clone() for v in views], None, None)
                return views

            method.make_views = capture
            compute_loss = method.compute_loss

            def capture_loss(views: Any, y: Any, idx: Any) -> Any:
                if self.captured is not None and self.captured[1] is None:
                    self.captured = (self.captured[0], y.clone(), idx.clone())
                return compute_loss(views, y, idx)

            method.compute_loss = capture_loss
            self._compute_loss = compute_loss
            params = method.trainable_parameters()
            o = method.optim_cfg
            kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[o.optimizer]
            self.opt = kind(params, lr=o.lr, fused=True)

        def on_train_batch_end(self, trainer: L.Trainer, method: Any, outputs: Any, batch: Any, i: int) -> None:
            now = time.perf_counter()
            if self.t is not None and i >= warm:
                self.full.append(now - self.t)
            self.images = int(self.captured[0][0].shape[0]) * len(self.captured[0]) if self.captured else 0
            if bare and i >= warm and (i - warm) % steps == steps - 1:
                views, y, idx = self.captured
                first = not self.warmed
                self.warmed = True
                for k in range(steps + (1 if first else 0)):
                    t0 = time.perf_counter()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        loss, _ = self._compute_loss(views, y, idx)
                    loss.backward()
                    self.opt.step()
                    self.opt.zero_grad(set_to_none=True)
                    if not (first and k == 0):  # the first bare step allocates the optimiser state
                        self.bare.append(time.perf_counter() - t0)
            self.t = time.perf_counter()

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run", callbacks=[timer])
    n = timer.images  # images through the network per step (cells × crops)
    full = statistics.median(timer.full)
    out = {"recipe": recipe, "precision": precision, "batch": n, "full_all_s": timer.full,
           "bare_all_s": timer.bare, "steps_full": len(timer.full),
           "full_s": full, "full_img_s": n / full, "threads": torch.get_num_threads(), "torch": torch.__version__}
    if timer.bare:
        b = statistics.median(timer.bare)
        out.update(bare_s=b, bare_img_s=n / b, steps_bare=len(timer.bare), ratio=b / full)
    return out


# ----------------------------------------------------------------------------- driver
def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"loadavg {os.getloadavg()}"


def _run_worker(src: Path, recipe: str, precision: str, args: argparse.Namespace, bare: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", recipe, precision,
           "--rounds", str(args.rounds), "--steps", str(args.steps), "--threads", str(args.threads)]
    if not bare:
        cmd.append("--no-bare")
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=args.timeout)
    if res.returncode != 0:
        return {"recipe": recipe, "precision": precision, "error": (res.stderr or res.stdout)[-1500:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _old_tree(commit: str) -> tuple[Path, str]:
    sha = subprocess.run(["git", "rev-parse", commit], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"biorep-oldmain-{sha[:10]}"
    if not (path / "src" / "biorep").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return path, sha


NOTES = [
    "## Notes",
    "",
    "- Recipes: `resnet18` / `vit_tiny` = the CPU chromosome recipe (64 px canvas, batch 96, AdamW, the",
    "  study's chromosome augmentation) on generated karyotypes; `weak`/`ae`/`reg`/`byol` = Study B's",
    "  SimpleCNN setups (Adam 1e-4, `random` augmentation, one crop: batch 256; multi-crop: 64 cells ×",
    "  5 crops = 320 images a step, a quarter of the study's 256 × 5 to keep one invocation within",
    "  10 minutes) on generated single cells. *batch (images)* counts every view through the network.",
    "- *bare* runs `method.compute_loss` (the model's forward and its loss), `backward`, a fused torch",
    "  optimiser and `zero_grad` on the views captured from the full step; BYOL's EMA update is not in it.",
    "- *today's main* runs at fp32 only: its default, and its bf16 multi-crop step failed (views ran under",
    "  autocast; fixed in c7eab02).",
    "- The autoencoder/regularized speed-up comes from `SimpleDecoder`: the study's transposed",
    "  convolutions run as the equivalent `conv2d` (oneDNN's transposed-convolution backward is slow,",
    "  in bf16 up to ×6; the last one, to 1 channel, stays transposed) and each `Upsample(×2) → conv` pair is one 4-phase 2×2 convolution at the",
    "  low resolution (exactly the same function, 0.44× its multiply-adds; tests check values and",
    "  gradients against the module-by-module form), and from BCE on the decoder's logits.",
    "- Since 2026-12-04 every SimpleCNN encoder and decoder runs on the CPU in cache-sized chunks",
    "  (`biorep.models.simple_cnn.cpu_micro_batches`: 32 images a chunk through the encoder in bf16, 16",
    "  through the decoder; half that in fp32): the network has no batch statistics, so it is the same",
    "  function; its buffers stay under glibc's 32 MiB mmap threshold (the whole batch's maps were mapped",
    "  and page-faulted afresh for every op: 414,000 minor faults, 0.75-1.3 s of system time per bf16",
    "  autoencoder step vs 93,000 and 0.14 s chunked) and in cache. ResNet-18 (batch 128, 96 × 48) has",
    "  2 % system time: nothing to gain there. The",
    "  step was dominated by memory-bound element-wise ops (ReLU and its backward, max-pooling, the",
    "  decoder's phase interleave: 55 % of the bf16 autoencoder step in `torch.profiler`, convolutions",
    "  40 %); chunked, the bf16 multi-crop step went from 2.86× / 3.07× (autoencoder / regularized) to",
    "  4.99× / 4.77× today's main in one invocation each (`--recipes ae-multi reg-multi --old 3d4ac89`).",
    "  `torch.compile` of the same step was 2× slower at one thread.",
    "- BYOL's full step includes its target network's momentum update, which *bare* leaves out. Lightly's",
    "  `update_momentum` rebinds every `param.data` to a new tensor each step; with the chunked network",
    "  that cost ≈ 15 % of the bf16 multi-crop step (ratio 0.83). biorep's own in-place `_foreach_lerp_`",
    "  (`biorep.methods.byol.update_momentum`, same values) leaves ≈ 8 % (0.92): the update itself,",
    "  the two views' augmentation and Lightning's loop.",
    "- With several people on the 2 cores, 2-thread timings swing by 2-4× within a minute (OpenMP",
    "  barriers wait for a descheduled thread); 1 thread per worker gives steadier ratios, so the rows",
    "  here were measured with `--threads 1`.",
    "- Rows come from the invocations listed above, merged by recipe/precision; the SimpleCNN rows",
    "  (weak, ae, reg, byol) are from 2026-12-04, with the chunked network; resnet18 and vit_tiny from",
    "  2026-12-02 (neither has a SimpleCNN).",
    "",
]


def _save(path: Path, results: dict[str, Any]) -> None:
    """Merge this invocation's rows into ``path`` as it is now (another invocation may have added rows)."""
    from biorep.rundir import write_json

    disk = json.loads(path.read_text()) if path.is_file() else {}
    disk.setdefault("rows", {}).update(results.get("rows", {}))
    meta = disk.setdefault("meta", {})
    invs = meta.get("invocations", [])
    for inv in results.get("meta", {}).get("invocations", []):
        if inv not in invs:
            invs.append(inv)
    meta.update({k: v for k, v in results.get("meta", {}).items() if k != "invocations"}, invocations=invs)
    write_json(path, disk)
    for key in ("rows", "meta"):  # the same dict objects: the caller holds references to them
        results.setdefault(key, {}).clear()
        results[key].update(disk[key])


def render(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    rows = results.get("rows", {})
    lines = [
        "# Training step: biorep's full step vs a bare model-only loop",
        "",
        "Generated by `benchmarks/step/bench_step.py` (see its docstring for what is timed). img/s are",
        "medians over steps; **ratio** = full img/s ÷ bare img/s in the same process (target ≥ 0.95);",
        "**× old** = new full img/s ÷ today's main's full img/s at fp32 (its default) in the same invocation.",
        "The machine is 2 cores shared by several people: absolute img/s move with the load, ratios",
        "measured in one process much less.",
        "",
    ]
    for inv in meta.get("invocations", []):
        lines.append(f"- `{inv['command']}` — {inv['date']}, {inv.get('threads', 2)} torch thread(s); "
                     f"load at start: `{inv['uptime']}`")
    lines += [
        f"- torch {meta.get('torch')}, {meta.get('cpu')}; "
        f"CPU flags: {' '.join(meta.get('flags', []))}",
        f"- today's main = commit `{meta.get('old_commit', '—')}`" if meta.get("old_commit") else "",
        "",
        "| recipe | batch (images) | precision | full img/s | bare img/s | ratio | old main full img/s | × old (fp32) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for recipe in RECIPES:
        old32 = rows.get(f"{recipe}/fp32/old", {}).get("full_img_s")
        for prec in PRECISIONS:
            r = rows.get(f"{recipe}/{prec}/new")
            if not r:
                continue
            o = rows.get(f"{recipe}/{prec}/old", {})
            if "error" in r:
                lines.append(f"| {recipe} | | {prec} | error: {r['error'].splitlines()[-1][:80]} | | | | |")
                continue

            def f(v: Any, fmt: str = "{:.0f}") -> str:
                return "—" if v is None else fmt.format(v)

            lines.append(
                f"| {recipe} | {r['batch']} | {prec} | {f(r['full_img_s'])} | {f(r.get('bare_img_s'))} | "
                f"{f(r.get('ratio'), '{:.3f}')} | {f(o.get('full_img_s'))} | "
                f"{f(r['full_img_s'] / old32 if old32 else None, '{:.2f}×')} |"
            )
    lines += ["", *NOTES]
    return "\n".join(x for x in lines if x is not None) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", nargs=2, metavar=("RECIPE", "PRECISION"))
    ap.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--precisions", nargs="*", default=list(PRECISIONS), choices=list(PRECISIONS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1,
                    help="steps per burst: full and bare bursts alternate")
    ap.add_argument("--batch", type=int, default=None, help="override every recipe's batch size")
    ap.add_argument("--old", default=None, help="also time this commit (today's main), e.g. HEAD")
    ap.add_argument("--old-recipes", nargs="*", default=["resnet18", "ae-multi", "reg-multi"])
    ap.add_argument("--old-precisions", nargs="*", default=["fp32"], choices=list(PRECISIONS),
                    help="today's main at fp32 only by default: its bf16 multi-crop path fails (fixed in c7eab02)")
    ap.add_argument("--no-bare", action="store_true")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads per worker; 1 is far less noisy on a shared, loaded machine")
    ap.add_argument("--quick", action="store_true", help="1 round, print only")
    ap.add_argument("--render", action="store_true", help="only rebuild RESULTS.md from results.json")
    args = ap.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(worker(*args.worker, args.rounds, args.steps, not args.no_bare, args.batch)))
        return
    if args.quick:
        args.rounds = 1
    if args.render:
        from biorep.rundir import atomic_write_text

        atomic_write_text(HERE / "RESULTS.md", render(json.loads((HERE / "results.json").read_text())))
        return
    import torch

    from biorep.rundir import atomic_write_text

    out_json = HERE / "results.json"
    results: dict[str, Any] = json.loads(out_json.read_text()) if out_json.is_file() else {}
    meta = results.setdefault("meta", {})
    rows = results.setdefault("rows", {})
    from biorep.training.machine import cpu_model

    meta.update(torch=torch.__version__, cpu=cpu_model(), flags=_cpu_flags())
    inv = {"command": " ".join(["bench_step.py", *sys.argv[1:]]), "uptime": _uptime(), "threads": args.threads,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(inv["uptime"], flush=True)
    if not args.quick:
        meta.setdefault("invocations", []).append(inv)
    old = _old_tree(args.old) if args.old else None
    if old:
        meta["old_commit"] = old[1]
    new_src = ROOT / "src"
    for recipe in args.recipes:
        for prec in args.precisions:
            r = _run_worker(new_src, recipe, prec, args, bare=not args.no_bare)
            print(json.dumps(r), flush=True)
            rows[f"{recipe}/{prec}/new"] = r
            if not args.quick:
                _save(out_json, results)
            if old and recipe in args.old_recipes and prec in args.old_precisions:
                o = _run_worker(old[0] / "src", recipe, prec, args, bare=False)
                print("old", json.dumps(o), flush=True)
                rows[f"{recipe}/{prec}/old"] = o
                if not args.quick:
                    _save(out_json, results)
    if args.quick:
        print(render(results))
        return
    _save(out_json, results)
    atomic_write_text(HERE / "RESULTS.md", render(results))
    print(render(results))


if __name__ == "__main__":
    main()
