"""bf16 mixed precision vs fp32 on real data: the chromosome CPU recipe (ResNet-18 CE, Pki-3, seed 0)
trained twice, identical but for ``train.precision``; held-out-case accuracy with group-bootstrap CIs.

    python benchmarks/precision/run.py                       # both runs (resumable), then RESULTS.md
    python benchmarks/precision/run.py --epochs 6 --out runs/precision

Writes ``benchmarks/precision/RESULTS.md`` and ``results.json``. Only library calls: train,
evaluate_run, the run directory's records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path

import pandas as pd

from biorep.evaluate.run import evaluate_run
from biorep.evaluate.stats import bootstrap_ci
from biorep.rundir import EVALUATION_DIR, RunPaths, atomic_write_text, read_state, read_summary, write_json
from biorep.training import RunConfig, train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STUDY = ROOT / "configs" / "studies" / "chromosome-cpu.yaml"
PRECISIONS = ("32", "bf16-mixed")


def base_config(epochs: int, precision: str) -> RunConfig:
    import yaml

    raw = yaml.safe_load(STUDY.read_text())["base"]
    raw["train"]["epochs"] = epochs
    raw["train"]["precision"] = precision
    raw["train"]["progress"] = "lines"
    return RunConfig.from_dict(raw, source=str(STUDY))


def per_case_accuracy(run: Path) -> tuple[float, float, float, int]:
    table = pd.read_csv(RunPaths(run).root / EVALUATION_DIR / "classification.csv")
    group = next(c for c in ("case", "karyogram", "group") if c in table.columns)
    correct = (table["true"].astype(str) == table["predicted"].astype(str)).to_numpy(float)
    ci = bootstrap_ci(lambda i: correct[i].mean(), len(correct), groups=table[group].to_numpy(), n_boot=1000)
    return ci.value, ci.low, ci.high, len(correct)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "precision")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    rows = []
    for precision in PRECISIONS:
        run = args.out / f"resnet18-ce-{precision}"
        state = read_state(run) if run.exists() else None
        if state is None or state.status != "finished":
            train(base_config(args.epochs, precision), run, resume=state is not None)
        if not (RunPaths(run).root / EVALUATION_DIR / "classification.csv").is_file():
            evaluate_run(run, ["classification"], split="test")
        acc, low, high, n = per_case_accuracy(run)
        s = read_summary(run)
        rows.append({
            "precision": precision, "test_accuracy": acc, "ci_low": low, "ci_high": high, "n_test": n,
            "val_accuracy": (s.best_metric or {}).get("value"), "epochs": s.epochs,
            "time_per_epoch_s": s.get("time_per_epoch_s"), "images_per_s": s.get("images_per_s"),
            "train_minutes": round((s.wall_time_s or 0) / 60, 2), "run": str(run.relative_to(ROOT)),
        })
    fp32, bf16 = rows
    speed = (bf16["images_per_s"] or 0) / max(fp32["images_per_s"] or 1e-9, 1e-9)
    overlap = not (bf16["ci_high"] < fp32["ci_low"] or fp32["ci_high"] < bf16["ci_low"])
    lines = [
        "# bf16 mixed precision vs fp32 on Pki-3 (ResNet-18, cross-entropy, chromosome CPU recipe)",
        "",
        f"Generated {dt.date.today()} by `python benchmarks/precision/run.py --epochs {args.epochs}`; "
        f"torch {__import__('torch').__version__}, {platform.processor() or platform.machine()}, "
        f"load average at start {load[0]:.2f}.",
        "",
        "| precision | test accuracy (95 % CI over cases) | best val accuracy | epochs | img/s | train min |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['precision']} | {r['test_accuracy']:.4f} ({r['ci_low']:.4f}–{r['ci_high']:.4f}) | "
            f"{r['val_accuracy']:.4f} | {r['epochs']} | {r['images_per_s']:.0f} | {r['train_minutes']:.1f} |"
        )
    lines += [
        "",
        f"bf16 / fp32 training throughput: {speed:.2f}×. Accuracy difference "
        f"{100 * (bf16['test_accuracy'] - fp32['test_accuracy']):+.2f} points; the two CIs "
        + ("overlap (within noise)." if overlap else "do not overlap."),
        "",
        "Throughput is only comparable when the machine was equally quiet for both runs (see the load"
        " average); the accuracy comparison does not depend on it.",
    ]
    atomic_write_text(HERE / "RESULTS.md", "\n".join(lines) + "\n")
    write_json(HERE / "results.json", {"epochs": args.epochs, "load_at_start": load, "runs": rows,
                                       "bf16_over_fp32_throughput": speed, "cis_overlap": overlap})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
