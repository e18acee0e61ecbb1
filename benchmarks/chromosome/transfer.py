"""Transfer to a lab's small, differently imaged chromosome set: fine-tuning a Pki-3 run vs from scratch (issue 13).

A lab brings a few thousand crops from about a hundred cells, imaged with another banding technique
and another microscope, with its own class names. This driver builds such a set from what we have and
measures what starting from a biorep run is worth:

1. **the lab set** (:func:`build_lab_set`, written under ``--out``, never committed): Pki-3 cases the
   source run never saw (its *test* cases), contrast-inverted (G-band dark-on-white → bright-on-dark,
   like Q-banding), rescaled ×0.7 (another pixel size) and renamed (``chr1`` … ``chrY``). ``--cases``
   of them (default 20, ≈ 1,500 crops) are the lab's training + validation cases, the others its test
   cases;
2. **two setups × seeds** with ``configs/chromosome-finetune.yaml`` (stronger augmentation, warm-up +
   cosine, polarity detected, the source's physical canvas scale through ``pixel_size``, the class
   map): ``scratch`` (backbone lr = lr) and ``from_source`` (``model.weights`` = the source run,
   backbone lr × 0.1), same epochs;
3. per setup the mean over seeds with 95 % bootstrap CIs over the lab's test cases, before and after
   karyotype assembly, and the paired gain ``from_source − scratch``; written to ``TRANSFER.md`` and
   to the ``transfer`` entry of ``results.json`` beside it.

    python benchmarks/chromosome/run.py --only resnet18-ce@s0        # the source run (Pki-3, ~15 min)
    python benchmarks/chromosome/transfer.py                          # lab set + 6 runs (~40 min, 2 cores)
    python benchmarks/chromosome/transfer.py --seeds 1 --set train.epochs=2   # a quick check
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RECIPE = REPO / "configs" / "chromosome-finetune.yaml"
DEFAULT_SOURCE = REPO / "runs" / "chromosome-cpu" / "runs" / "resnet18-ce@s0"
DEFAULT_OUT = REPO / "runs" / "chromosome-transfer"
DEFAULT_RESULTS = HERE / "TRANSFER.md"
LAB_DIR = "lab-set"
MANIFEST = "manifest.csv"
LAB_INFO = "lab_set.json"
SCRATCH, FROM_SOURCE = "scratch", "from_source"


def _bench() -> Any:
    """``run.py`` of this folder (its collection, CI and paired-comparison code)."""
    name = "chromosome_bench_run"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def lab_name(chromosome: str) -> str:
    """The lab's naming of a chromosome class (``1`` → ``chr1``, ``X`` → ``chrX``)."""
    return f"chr{chromosome}"


def transform_crop(arr: np.ndarray, *, invert: bool, scale: float) -> np.ndarray:
    """One Pki-3 crop ``(H, W)`` uint8 as the lab images it: inverted contrast, another pixel size."""
    from biorep.data.geometry import resize

    out = 255 - arr if invert else arr
    h, w = out.shape
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return resize(out[None], nh, nw)[0]


def source_test_cases(source: Path) -> tuple[list[str], pd.DataFrame, list[str]]:
    """The case ids of the source run's test split, the Pki-3 metadata and its files (no decoding)."""
    from biorep.data import DataConfig, resolve_source
    from biorep.rundir import RunPaths, read_data, read_yaml

    rec = read_data(source)
    cfg = read_yaml(RunPaths(source).config)
    if cfg["data"]["dataset"] != "chromosome-pki3":
        raise SystemExit(f"{source}: the source run must be trained on chromosome-pki3")
    src = resolve_source(DataConfig(dataset="chromosome-pki3", root=cfg["data"].get("root")))
    if len(src.files) != rec.n_images:
        raise SystemExit(f"{source}: data.json has {rec.n_images} images, chromosome-pki3 now {len(src.files)}")
    test = np.asarray(rec.splits.get("test", []), dtype=np.int64)
    if test.size == 0:
        raise SystemExit(f"{source}: the source run has no test split to draw unseen cases from")
    cases = sorted(set(src.meta["case"].iloc[test].astype(str)))
    return cases, src.meta.reset_index(drop=True), list(src.files)


def build_lab_set(source: Path, out_dir: Path, *, n_cases: int = 20, scale: float = 0.7, invert: bool = True,
                  seed: int = 0) -> dict[str, Any]:
    """Write the lab set (PNG crops + ``manifest.csv``) under ``out_dir/lab-set``; reuse it when it exists
    with the same settings. Returns its description (also in ``lab_set.json``)."""
    from PIL import Image

    from biorep.rundir import atomic_write, read_json, write_json

    lab = out_dir / LAB_DIR
    settings = {"source": str(source.resolve()), "n_cases": n_cases, "scale": scale, "invert": invert, "seed": seed}
    info_path = lab / LAB_INFO
    if info_path.is_file() and (lab / MANIFEST).is_file():
        info = read_json(info_path)
        if info.get("settings") == settings:
            return info
    cases, meta, files = source_test_cases(source)
    if n_cases >= len(cases):
        raise SystemExit(f"--cases {n_cases}: the source run holds out only {len(cases)} cases")
    rng = np.random.default_rng(seed)
    train_cases = sorted(rng.choice(cases, size=n_cases, replace=False).tolist())
    test_cases = [c for c in cases if c not in set(train_cases)]
    rows = []
    keep = meta["case"].astype(str).isin(cases).to_numpy()
    for i in np.flatnonzero(keep):
        arr = np.asarray(Image.open(files[i]))
        arr = arr if arr.ndim == 2 else arr[..., 0]
        img = transform_crop(arr.astype(np.uint8), invert=invert, scale=scale)
        case = str(meta["case"].iloc[i])
        rel = Path("images") / case / (Path(files[i]).stem + ".png")
        atomic_write(lab / rel, lambda p, img=img: Image.fromarray(img).save(p, format="PNG"))
        rows.append({"path": str(rel), "chromosome": lab_name(str(meta["chromosome"].iloc[i])),
                     "karyogram": str(meta["karyogram"].iloc[i]), "case": case,
                     "part": "lab" if case in set(train_cases) else "test"})
    table = pd.DataFrame(rows)
    atomic_write(lab / MANIFEST, lambda p: table.to_csv(p, index=False))
    info = {"settings": settings, "train_cases": train_cases, "test_cases": test_cases,
            "n_lab_crops": int((table["part"] == "lab").sum()), "n_test_crops": int((table["part"] == "test").sum()),
            "n_lab_karyograms": int(table.loc[table["part"] == "lab", "karyogram"].nunique()),
            "n_test_karyograms": int(table.loc[table["part"] == "test", "karyogram"].nunique())}
    write_json(info_path, info)
    return info


def transfer_study(source: Path, lab: dict[str, Any], out_dir: Path, overrides: Sequence[str], n_seeds: int
                   ) -> tuple[Any, dict[str, Any]]:
    """The two setups (scratch, from the source run) × seeds over the fine-tune recipe on the lab set."""
    from biorep.rundir import RunPaths, read_data, read_yaml
    from biorep.study import StudyConfig
    from biorep.study.grid import set_dotted

    base = yaml.safe_load(RECIPE.read_text())
    rec = read_data(source)
    # the source run's physical canvas scale: its own factor, times the lab's longer pixels
    base["data"]["dataset"] = str((out_dir / LAB_DIR / MANIFEST).resolve())
    base["data"]["split"] = {"val": 0.2, "seed": 0, "holdout": list(lab["test_cases"])}
    base["data"]["geometry"].update(scale=round(float(rec.geometry.scale), 6),
                                    pixel_size=round(1.0 / lab["settings"]["scale"], 6),
                                    size=list(rec.size) if isinstance(rec.size, (list, tuple)) else int(rec.size))
    base["model"]["backbone"] = read_yaml(RunPaths(source).config)["model"]["backbone"]
    for item in overrides:
        key, _, raw = item.partition("=")
        set_dotted(base, key, yaml.safe_load(raw))
    study = StudyConfig(
        name="chromosome-transfer",
        base=base,
        grid={"model": [
            {"label": SCRATCH, "backbone": base["model"]["backbone"]},
            {"label": FROM_SOURCE, "backbone": base["model"]["backbone"], "weights": str(source.resolve())},
        ]},
        set={},
        evaluations=["classification", "karyotype"],
        folds=[{"label": f"s{i}", "train.seed": i} for i in range(n_seeds)],
    )
    return study, base


def _scratch_lr(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Scratch trains its whole network at the recipe's lr; the fine-tune keeps the backbone at lr × 0.1."""
    if run_dir.name.startswith(SCRATCH):
        cfg = {**cfg, "train": {**cfg["train"], "backbone_lr_scale": 1.0}}
    return cfg


def render(setups: Sequence[Any], pair: Any, lab: dict[str, Any], source: Path, *, command: str,
           finished: str, wall_s: float) -> str:
    b = _bench()
    pct, ci_text, points = b.pct, b.ci_text, b.points
    s = lab["settings"]
    lines = [
        "# Transfer to a lab's small set: fine-tuning a Pki-3 run vs training from scratch",
        "",
        f"Generated by `benchmarks/chromosome/transfer.py` on {finished}. Do not edit by hand; rerun the script.",
        "",
        "## Verdict",
        "",
        f"- **Gain of starting from the Pki-3 run:** {100 * pair.difference:+.2f} points per crop (95 % CI "
        f"{points(pair.ci)}, {'significant' if pair.ci[0] > 0 or pair.ci[1] < 0 else 'not significant'}), "
        f"{100 * pair.assembled_difference:+.2f} after assembly ({points(pair.assembled_ci)}); "
        f"{pair.seeds} seed(s), paired over the lab's {len(lab['test_cases'])} test cases.",
        "",
        "## The lab set",
        "",
        f"- Built from Pki-3 cases the source run (`{os.path.relpath(source, REPO)}`) never trained on (its test "
        f"cases): {s['n_cases']} cases for the lab's training and validation ({lab['n_lab_crops']} crops, "
        f"{lab['n_lab_karyograms']} karyograms), the other {len(lab['test_cases'])} as its test cases "
        f"({lab['n_test_crops']} crops, {lab['n_test_karyograms']} karyograms).",
        f"- Imaged differently: contrast {'inverted (bright chromosomes on black, like Q-banding)' if s['invert'] else 'kept'}, "
        f"rescaled ×{s['scale']} (another pixel size), classes renamed chr1 … chrY. The recipe detects the "
        "polarity, keeps the source's physical canvas scale (`pixel_size` = 1 / scale) and maps the names back.",
        "",
        "## Results on the lab's test cases (mean over seeds, 95 % CI over cases)",
        "",
        "| setup | seeds | val acc | **test acc** [CI] | after assembly [CI] | ECE before → after | train time / seed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for st in setups:
        eb = st.mean(lambda r: r.calibration.get("ece_before"))
        ea = st.mean(lambda r: r.calibration.get("ece_after"))
        lines.append(f"| {st.name} | {len(st.runs)} | {pct(st.mean(lambda r: r.val_accuracy))} "
                     f"| **{pct(st.accuracy, 2)}** {ci_text(st.ci)} | {pct(st.assembled, 2)} {ci_text(st.assembled_ci)} "
                     f"| {'—' if eb is None or ea is None else f'{100 * eb:.2f} → {100 * ea:.2f} %'} "
                     f"| {b.fmt_s(st.train_minutes * 60)} |")
    lines += ["", f"This invocation took {b.fmt_s(wall_s)}.", "", "## How it was run", "", "```", command, "```", ""]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the Pki-3 run to start from (%(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="lab set and runs (%(default)s)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="TRANSFER.md to write")
    p.add_argument("--cases", type=int, default=20, help="lab training + validation cases (%(default)s)")
    p.add_argument("--scale", type=float, default=0.7, help="the lab's pixel scale vs Pki-3 (%(default)s)")
    p.add_argument("--no-invert", action="store_true", help="keep Pki-3's contrast")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--build-only", action="store_true", help="write the lab set and stop")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from biorep.errors import BiorepError
    from biorep.rundir import RunPaths, atomic_write_text, read_json, write_json
    from biorep.study import expand_grid, run_study

    b = _bench()
    t0 = time.perf_counter()
    command = shlex.join(["python", "benchmarks/chromosome/transfer.py", *(argv if argv is not None else sys.argv[1:])])
    source = args.source
    if not RunPaths(source).summary.is_file():
        print(f"error: {source}: no finished source run; make it with\n  python benchmarks/chromosome/run.py "
              "--only resnet18-ce@s0", file=sys.stderr)
        return 2
    try:
        lab = build_lab_set(source, args.out, n_cases=args.cases, scale=args.scale, invert=not args.no_invert)
        print(f"lab set: {lab['n_lab_crops']} crops in {args.cases} cases, test {lab['n_test_crops']} crops")
        if args.build_only:
            return 0
        study, base = transfer_study(source, lab, args.out, args.overrides, args.seeds)
        train_fn, evaluate_fn = b.timed_runner(args.out)
        run_study(study, base, args.out, train_fn=lambda cfg, run_dir, resume: train_fn(_scratch_lr(cfg, run_dir), run_dir, resume),
                  evaluate_fn=evaluate_fn)
        rows = b.collect(args.out, expand_grid(study))
        setups = b.aggregate(rows)
        by = {s.model: s for s in setups}
        pair = b.paired(by[SCRATCH], by[FROM_SOURCE])
        finished = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        atomic_write_text(args.results, render(setups, pair, lab, source, command=command, finished=finished,
                                               wall_s=time.perf_counter() - t0))
        results_path = args.results.parent / b.RESULTS_JSON
        results = read_json(results_path) if results_path.is_file() else {}
        results["transfer"] = {
            "generated": finished, "lab_set": {k: v for k, v in lab.items() if k != "test_cases"},
            "setups": {s.model: {"test_accuracy": s.accuracy, "ci_low": s.ci[0], "ci_high": s.ci[1],
                                 "assembled_accuracy": s.assembled, "assembled_ci_low": s.assembled_ci[0],
                                 "assembled_ci_high": s.assembled_ci[1], "seeds": s.seeds,
                                 "train_minutes": s.train_minutes} for s in setups},
            "gain": {"difference": pair.difference, "ci_low": pair.ci[0], "ci_high": pair.ci[1],
                     "assembled_difference": pair.assembled_difference,
                     "assembled_ci_low": pair.assembled_ci[0], "assembled_ci_high": pair.assembled_ci[1]},
        }
        write_json(results_path, results)
        print(f"wrote {args.results} and the transfer entry of {results_path}")
    except (b.BenchmarkError, BiorepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
