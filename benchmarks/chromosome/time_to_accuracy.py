"""Time to accuracy on Pki-3 held-out cases: biorep's fast CPU recipe vs the hand-written reference
loop, in one invocation on one machine.

Runs, each resumable (a finished run is read back, not trained again):

1. ``fast-bf16``: ``configs/chromosome-cpu-fast.yaml`` (5 epochs, precision auto = bf16 here);
   ``short-bf16``: the same recipe at ``--short-epochs`` (default 4: its one-cycle annealed sooner);
2. ``fast-fp32``: the same recipe at ``train.precision: 32`` (the precision check: accuracy within
   noise, and the end-to-end speed-up of bf16 on the same recipe);
3. ``long-bf16``: the same recipe on the larger 128 × 64 canvas at ``--long-epochs`` (default 11,
   about 20 minutes on 2 cores; ``--long-set`` replaces the canvas override);
4. the reference loop (``reference_loop.py``, 8 epochs, fp32), as a subprocess.

The test accuracy of every epoch is measured by a callback (its time is excluded from the clock) so
the minutes to reach the reference's final accuracy can be read off; it is never used to choose
anything (best checkpoints are chosen on validation cases).

    python benchmarks/chromosome/time_to_accuracy.py            # everything, then RESULTS_time.md
    python benchmarks/chromosome/time_to_accuracy.py --skip-reference --out runs/tta
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from biorep.evaluate.stats import bootstrap_ci
from biorep.rundir import atomic_write_text, read_json, read_state, read_summary, write_json
from biorep.training import load_config, train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECIPE = ROOT / "configs" / "chromosome-cpu-fast.yaml"
CLOCK = "test_clock.json"


class TestClock(L.Callback):
    """After every epoch: training seconds so far (evaluation time excluded) and held-out accuracy."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, groups: np.ndarray, path: Path) -> None:
        self.images, self.targets, self.groups, self.path = images, targets, groups, path
        self.rows: list[dict[str, Any]] = read_json(path)["rows"] if path.is_file() else []
        self._clock = self.rows[-1]["train_s"] if self.rows else 0.0
        self._t = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._clock += time.perf_counter() - self._t
        was_training = pl_module.training
        pl_module.eval()
        correct, correct_tta = [], []
        for i in range(0, len(self.images), 512):
            x = torch.from_numpy(np.ascontiguousarray(self.images[i : i + 512]))
            t = self.targets[i : i + 512]
            logits = pl_module.classify(x, tta=False, precision=trainer.precision)
            correct.append(logits.argmax(1).cpu().numpy() == t)
            if pl_module.model_cfg.tta:  # the recipe's test-time flips, as `biorep evaluate` scores them
                logits = pl_module.classify(x, precision=trainer.precision)
                correct_tta.append(logits.argmax(1).cpu().numpy() == t)
        pl_module.train(was_training)
        ok = np.concatenate(correct).astype(float)
        ci = bootstrap_ci(lambda idx: ok[idx].mean(), len(ok), groups=self.groups, n_boot=300)
        val = trainer.callback_metrics.get("val/acc")
        row = {
            "epoch": trainer.current_epoch + 1, "train_s": round(self._clock, 1),
            "val_acc": None if val is None else float(val), "test_acc": ci.value,
            "ci_low": ci.low, "ci_high": ci.high,
        }
        if correct_tta:
            ok_tta = np.concatenate(correct_tta).astype(float)
            ci_tta = bootstrap_ci(lambda idx: ok_tta[idx].mean(), len(ok_tta), groups=self.groups, n_boot=300)
            row.update(test_acc_tta=ci_tta.value, ci_low_tta=ci_tta.low, ci_high_tta=ci_tta.high)
        self.rows.append(row)
        write_json(self.path, {"rows": self.rows})
        self._t = time.perf_counter()


def run_recipe(name: str, overrides: list[str], out: Path, recipe: Path = RECIPE) -> dict[str, Any]:
    run = out / name
    clock = out / f"{name}.{CLOCK}"
    state = read_state(run) if run.exists() else None
    if state is None or state.status != "finished":
        cfg = load_config(recipe, overrides)
        from biorep.data import load_dataset, split_dataset

        ds = load_dataset(cfg.data)
        test = split_dataset(ds, cfg.data.split).test
        cb = TestClock(ds.images[test], ds.targets[test], ds.meta[ds.group_column].to_numpy()[test], clock)
        train(cfg, run, resume=state is not None, callbacks=[cb])
    s = read_summary(run)
    rows = read_json(clock)["rows"]
    return {"name": name, "overrides": overrides, "rows": rows, "precision": s.precision,
            "images_per_s": s.get("images_per_s"), "wall_min": round((s.wall_time_s or 0) / 60, 2),
            "run": str(run)}


def run_reference(out: Path) -> dict[str, Any]:
    path = out / "reference.json"
    if not path.is_file():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / "reference_loop.py"), "--epochs", "8", "--out", str(path)],
                       check=True)
        res = json.loads(path.read_text())
        res["process_wall_s"] = round(time.perf_counter() - t0, 1)
        write_json(path, res)
    return read_json(path)


def minutes_to(rows: list[dict[str, Any]], target: float, key: str = "test_acc") -> float | None:
    hit = next((r for r in rows if r.get(key, -1.0) >= target), None)
    return None if hit is None else round(hit["train_s"] / 60, 2)


def acc_within(rows: list[dict[str, Any]], minutes: float, key: str = "test_acc") -> float | None:
    ok = [r for r in rows if r["train_s"] <= minutes * 60]
    return None if not ok else ok[-1].get(key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "time-to-accuracy")
    ap.add_argument("--long-epochs", type=int, default=11)
    ap.add_argument("--short-epochs", type=int, default=4,
                    help="epochs of the short run (the recipe's one-cycle annealed over fewer epochs)")
    ap.add_argument("--long-set", dest="long_overrides", action="append", default=None,
                    help="KEY=VALUE for the long run only (default: data.geometry.size=[128,64], the larger "
                    "canvas that won on validation cases at 5 epochs; 11 epochs ≈ 20 min on 2 cores)")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--only", nargs="*", default=None, help="fast-bf16 short-bf16 fast-fp32 long-bf16 reference")
    ap.add_argument("--recipe", type=Path, default=RECIPE)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for every run (default: torch's)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for every run")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS_time.md",
                    help="where to write the results (results_time.json beside it); exploratory runs go elsewhere")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the results from the results_time.json beside --results; train nothing")
    args = ap.parse_args(argv)
    if args.report_only:
        doc = read_json(args.results.with_name("results_time.json"))
        write_results(doc["runs"], doc["reference"], tuple(doc["load_at_start"]), args.results, args.recipe)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the reference loop's subprocess too
    load = os.getloadavg()
    plan = {
        "fast-bf16": [],
        "short-bf16": [f"train.epochs={args.short_epochs}"],
        "fast-fp32": ["train.precision=32"],
        "long-bf16": [f"train.epochs={args.long_epochs}",
                      *(["data.geometry.size=[128,64]"] if args.long_overrides is None else args.long_overrides)],
    }
    results: dict[str, Any] = {}
    for name, overrides in plan.items():
        if args.only is None or name in args.only:
            results[name] = run_recipe(name, args.overrides + overrides, args.out, args.recipe)
            write_results(results, None, load, args.results, args.recipe)
    ref = None
    if not args.skip_reference and (args.only is None or "reference" in args.only):
        ref = run_reference(args.out)
    write_results(results, ref, load, args.results, args.recipe)
    return 0


def write_results(results: dict[str, Any], ref: dict[str, Any] | None, load: tuple[float, ...],
                  target: Path, recipe: Path = RECIPE) -> None:
    lines = [
        "# Time to accuracy on Pki-3 held-out cases",
        "",
        f"Generated {dt.date.today()} by `python benchmarks/chromosome/time_to_accuracy.py`; torch "
        f"{torch.__version__}; {torch.get_num_threads()} torch thread(s); load average at start {load[0]:.2f} "
        f"(1 min). Recipe: `{_rel(recipe)}`. Test accuracy per epoch with a 95 % CI over held-out cases; "
        "minutes are training time (evaluation excluded). The clock scores the network alone and, where the "
        "recipe has test-time flips (`model.tta`), also as `biorep evaluate` does (class probabilities averaged "
        "over the crop and its flips; inference only, so the training minutes are the same).",
        "",
    ]
    ref_acc = None if ref is None else float(ref["test_accuracy"])
    if ref is not None:
        lines += [f"Reference loop (hand-written timm ResNet-18, 8 epochs, fp32, trains on train+val): "
                  f"**{100 * ref_acc:.2f} %** in {ref['train_time_s'] / 60:.1f} min.", ""]
    for name, r in results.items():
        changes = ", ".join(f"`{o}`" for o in r.get("overrides", [])) or "the recipe as it is"
        lines += [f"## {name} (precision {r['precision']}, {r['images_per_s']:.0f} img/s, "
                  f"{r['wall_min']:.1f} min wall)", "", f"Recipe changes: {changes}.", "",
                  "| epoch | train min | val acc | test acc (95 % CI) | with the recipe's flips (95 % CI) |",
                  "|---|---|---|---|---|"]
        for row in r["rows"]:
            val = "—" if row["val_acc"] is None else f"{row['val_acc']:.4f}"
            tta = ("—" if "test_acc_tta" not in row else
                   f"{row['test_acc_tta']:.4f} ({row['ci_low_tta']:.4f}–{row['ci_high_tta']:.4f})")
            lines.append(f"| {row['epoch']} | {row['train_s'] / 60:.2f} | {val} | {row['test_acc']:.4f} "
                         f"({row['ci_low']:.4f}–{row['ci_high']:.4f}) | {tta} |")
        lines.append("")
        if ref_acc is not None:
            for key, what in (("test_acc", "network alone"), ("test_acc_tta", "with the recipe's flips")):
                if not any(key in row for row in r["rows"]):
                    continue
                reach = minutes_to(r["rows"], ref_acc, key)
                within = acc_within(r["rows"], 20, key)
                lines.append(
                    f"- {what}: minutes to the reference's {100 * ref_acc:.2f} %: "
                    + ("not reached" if reach is None else
                       f"{reach:.1f} ({reach / (ref['train_time_s'] / 60):.2f}× the reference's)")
                    + "; accuracy within 20 training minutes: "
                    + ("—" if within is None else f"{100 * within:.2f} %") + "."
                )
            lines.append("")
    if "fast-bf16" in results and "fast-fp32" in results:
        b, f = results["fast-bf16"], results["fast-fp32"]
        lines += ["## bf16 vs fp32 on the same recipe", "",
                  f"Throughput bf16 / fp32: {b['images_per_s'] / f['images_per_s']:.2f}×; final test accuracy "
                  f"{b['rows'][-1]['test_acc']:.4f} vs {f['rows'][-1]['test_acc']:.4f} (CIs "
                  f"{b['rows'][-1]['ci_low']:.4f}–{b['rows'][-1]['ci_high']:.4f} and "
                  f"{f['rows'][-1]['ci_low']:.4f}–{f['rows'][-1]['ci_high']:.4f}).", ""]
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, "\n".join(lines) + "\n")
    write_json(target.with_name("results_time.json"), {"load_at_start": load, "reference": ref, "runs": results})


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
