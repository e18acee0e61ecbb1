"""Study A on real karyotypes: cross-entropy vs supervised contrastive, ResNet and Transformer (issue 5).

One invocation runs the whole comparison and writes ``RESULTS.md`` from what it measured:

1. the lead's hand-written timm ResNet-18 loop (``reference_loop.py``, 64 px, 8 epochs) once, as a
   subprocess, so biorep's numbers and the reference's come from the same machine and session;
2. the study grid (``configs/studies/chromosome-cpu.yaml``: model × method) through
   :func:`biorep.study.run_study` — resumable: finished setups are skipped, interrupted ones resumed;
3. per run: classification (accuracy, macro F1, AUROC, per-class recall), karyotype assembly and a
   kNN probe on the test cases (:func:`biorep.evaluate.run.evaluate_run`);
4. side-by-side UMAP maps of the CE and SupCon test embeddings (``embedding_maps.png`` next to
   ``RESULTS.md``) and the results file with a verdict computed from the numbers.

Every number in RESULTS.md is read from the run directories and the reference's JSON; a missing run or
metric stops the script with an error instead of leaving a gap.

    python benchmarks/chromosome/run.py                                  # CPU study, ~2 h on 2 cores
    python benchmarks/chromosome/run.py --study configs/studies/chromosome-gpu.yaml \\
        --out runs/chromosome-gpu --results runs/chromosome-gpu/RESULTS.md --no-reference
    python benchmarks/chromosome/run.py --set train.epochs=2 --set method.pretrain_epochs=1 \\
        --set train.limit_train_batches=5 --out /tmp/chrom-smoke --results /tmp/chrom-smoke/RESULTS.md

``--set KEY=VALUE`` changes the study's base config and, for keys under a grid axis (e.g.
``method.pretrain_epochs``), every value of that axis that already has the key (so the two-stage setups
get it and the CE setup is left alone).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_STUDY = REPO / "configs" / "studies" / "chromosome-cpu.yaml"
DEFAULT_OUT = REPO / "runs" / "chromosome-cpu"
DEFAULT_RESULTS = HERE / "RESULTS.md"
MAP_NAME = "embedding_maps.png"
TIMINGS = "timings.json"
REFERENCE = "reference.json"

#: The issue's targets.
TARGET_CROP_ACCURACY = 0.97
TARGET_KARYOTYPE_ACCURACY = 0.985
#: The readings of each backbone compared with its cross-entropy baseline.
CE = "ce"


class BenchmarkError(RuntimeError):
    """A run, a metric or the reference result that RESULTS.md needs is missing."""


# ----------------------------------------------------------------------------- small helpers
def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """A JSON file's content, or a :class:`BenchmarkError` naming the file."""
    if not path.is_file():
        raise BenchmarkError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{path}: not valid JSON ({exc})") from None


def dig(tree: Any, dotted: str, where: str) -> Any:
    """``tree[a][b]…`` for ``a.b…``; a missing or null value is a :class:`BenchmarkError`."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            raise BenchmarkError(f"{where}: no value for {dotted!r}")
        node = node[part]
    return node


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages (the machine is shared; they say how busy it was)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, library versions and torch threads of this machine."""
    import lightning
    import timm
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "gpu": gpu,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


# ----------------------------------------------------------------------------- the study
def apply_study_overrides(study: Any, items: Sequence[str]) -> Any:
    """A copy of ``study`` whose grid/extra values under an axis get ``--set`` keys they already have.

    ``method.pretrain_epochs=1`` sets ``pretrain_epochs`` in every ``method`` grid value that has that
    key; the base config gets every override from :func:`biorep.study.load_study` itself.
    """
    from biorep.study.grid import set_dotted

    study = study.model_copy(deep=True)
    for item in items:
        key, _, raw = item.partition("=")
        value = yaml.safe_load(raw)
        for axis, values in study.grid.items():
            if not key.startswith(axis + "."):
                continue
            rest = key[len(axis) + 1 :]
            for v in values:
                if isinstance(v, dict) and rest.split(".")[0] in v:
                    set_dotted(v, rest, value)
        for extra in study.extra:
            for axis, v in extra.items():
                rest = key[len(axis) + 1 :] if key.startswith(axis + ".") else None
                if rest and isinstance(v, dict) and rest.split(".")[0] in v:
                    set_dotted(v, rest, value)
    return study


def describe_augment(spec: Any) -> str:
    """``chromosome`` → ```chromosome```; a preset with overrides → ```chromosome` (rotate degrees=15, …)``."""
    if isinstance(spec, dict) and "preset" in spec:
        changes = "; ".join(f"{op} " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                                for k, v in params.items())
                            for op, params in (spec.get("override") or {}).items())
        return f"`{spec['preset']}`" + (f" ({changes})" if changes else "")
    return f"`{spec}`"


def axis_labels(setup: Any) -> tuple[str, str]:
    """``(model label, method label)`` of a setup from its grid overrides."""
    def label(v: Any, fallback: str) -> str:
        if isinstance(v, dict):
            return str(v.get("label") or v.get("backbone") or v.get("name") or fallback)
        return str(v) if v is not None else fallback

    o = setup.overrides
    return label(o.get("model"), "base"), label(o.get("method"), "base")


def timed_runner(out_dir: Path) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``train_fn`` and ``evaluate_fn`` for :func:`run_study` that record their wall times.

    Times go to ``out_dir/timings.json`` (``{setup: {"train_s", "eval_s", "train_resumed"}}``).
    """
    from biorep.evaluate.run import evaluate_run
    from biorep.training import RunConfig, train

    path = out_dir / TIMINGS

    def record(run_dir: Path, **values: Any) -> None:
        times = json.loads(path.read_text()) if path.is_file() else {}
        times.setdefault(run_dir.name, {}).update(values)
        write_atomic(path, json.dumps(times, indent=1))

    def train_fn(cfg: dict[str, Any], run_dir: Path, resume: bool) -> Path:
        t0 = time.perf_counter()
        out = train(RunConfig.from_dict(cfg, source=str(run_dir)), run_dir, resume=resume)
        record(run_dir, train_s=round(time.perf_counter() - t0, 1), train_resumed=resume,
               load_after_train=loadavg())
        return out

    def evaluate_fn(run_dir: Path, names: list[str] | None, options: dict[str, dict[str, Any]]) -> dict[str, Any]:
        t0 = time.perf_counter()
        res = evaluate_run(run_dir, names=names, options=options)
        record(run_dir, eval_s=round(time.perf_counter() - t0, 1))
        return res

    return train_fn, evaluate_fn


# ----------------------------------------------------------------------------- the reference loop
def reference_command(out_json: Path, epochs: int, size: int) -> list[str]:
    """The command line that runs the reference loop."""
    return [sys.executable, str(HERE / "reference_loop.py"), "--epochs", str(epochs), "--size", str(size),
            "--out", str(out_json)]


def run_reference(out_dir: Path, epochs: int, size: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``reference_loop.py`` (unless ``out_dir/reference.json`` holds the same setting) and return it."""
    path = out_dir / REFERENCE
    if path.is_file():
        old = read_json(path)
        if old.get("epochs") == epochs and old.get("size") == size and "process_wall_s" in old:
            log(f"reference loop: done ({path})")
            return old
    cmd = reference_command(out_dir / ".reference.tmp.json", epochs, size)
    log("reference loop: " + shlex.join(cmd))
    before = loadavg()
    t0 = time.perf_counter()
    with open(out_dir / "reference.log", "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchmarkError(f"reference loop failed (exit {proc.returncode}); see {out_dir / 'reference.log'}")
    result = read_json(out_dir / ".reference.tmp.json")
    result.update(process_wall_s=round(wall, 1), load_before=before, load_after=loadavg(),
                  command=shlex.join(cmd[:-2] + ["--out", str(path)]))
    write_atomic(path, json.dumps(result, indent=2))
    (out_dir / ".reference.tmp.json").unlink(missing_ok=True)
    return result


# ----------------------------------------------------------------------------- collecting numbers
@dataclass
class RunNumbers:
    """The numbers of one setup that RESULTS.md reports (all read from its run directory)."""

    name: str
    model: str
    method: str
    summary: dict[str, Any]
    config: dict[str, Any]
    data: dict[str, Any]
    accuracy: float
    macro_f1: float
    auroc: float
    per_class_recall: dict[str, float | None]
    karyotype_argmax: float
    karyotype_assigned: float
    karyotype_flagged: int
    karyotype_n: int
    knn_accuracy: float | None
    val_accuracy: float | None
    timings: dict[str, Any] = field(default_factory=dict)


def collect_run(run_dir: Path, model: str, method: str, timings: dict[str, Any]) -> RunNumbers:
    """Read one run directory; any missing file or metric is a :class:`BenchmarkError`."""
    summary = read_json(run_dir / "summary.json")
    ev = read_json(run_dir / "evaluation.json")
    where = f"{run_dir}/evaluation.json"
    data = read_json(run_dir / "data.json")
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise BenchmarkError(f"{config_path}: missing")
    config = yaml.safe_load(config_path.read_text())
    for key in ("wall_time_s", "images_per_s", "peak_rss_mb", "epochs"):
        dig(summary, key, f"{run_dir}/summary.json")
    cls = dig(ev, "classification.summary", where)
    kar = dig(ev, "karyotype.summary", where)
    knn = ev.get("knn", {}).get("summary", {}).get("accuracy")
    recall = dig(cls, "per_class_recall", where + " classification")
    best = (summary.get("best_metric") or {})
    return RunNumbers(
        name=run_dir.name, model=model, method=method, summary=summary, config=config, data=data,
        accuracy=float(dig(cls, "accuracy", where)), macro_f1=float(dig(cls, "macro_f1", where)),
        auroc=float(dig(cls, "auroc_macro", where)), per_class_recall=recall,
        karyotype_argmax=float(dig(kar, "accuracy_argmax", where + " karyotype")),
        karyotype_assigned=float(dig(kar, "accuracy_assigned", where + " karyotype")),
        karyotype_flagged=int(kar.get("n_flagged", 0)), karyotype_n=int(kar.get("n_karyograms", 0)),
        knn_accuracy=None if knn is None else float(knn),
        val_accuracy=best.get("value") if best.get("name") == "val/acc" else None,
        timings=timings.get(run_dir.name, {}),
    )


def collect(out_dir: Path, setups: Sequence[Any]) -> list[RunNumbers]:
    """Numbers of every setup under ``out_dir/runs``; lists every missing piece at once."""
    times_path = out_dir / TIMINGS
    timings = json.loads(times_path.read_text()) if times_path.is_file() else {}
    rows, missing = [], []
    for s in setups:
        model, method = axis_labels(s)
        try:
            rows.append(collect_run(out_dir / "runs" / s.name, model, method, timings))
        except BenchmarkError as exc:
            missing.append(str(exc))
    if missing:
        raise BenchmarkError("cannot write RESULTS.md, numbers are missing:\n  " + "\n  ".join(missing))
    return rows


# ----------------------------------------------------------------------------- verdict
def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f} %"


def verdict(rows: Sequence[RunNumbers], reference: dict[str, Any] | None) -> list[str]:
    """Plain statements of the issue's questions, computed from the numbers."""
    lines: list[str] = []
    by_model: dict[str, dict[str, RunNumbers]] = {}
    for r in rows:
        by_model.setdefault(r.model, {})[r.method] = r
    beats_all = []
    for model, runs in by_model.items():
        if CE not in runs:
            raise BenchmarkError(f"backbone {model}: no cross-entropy ({CE!r}) run to compare with")
        ce = runs[CE]
        others = {m: r for m, r in runs.items() if m != CE}
        if not others:
            raise BenchmarkError(f"backbone {model}: no SupCon run to compare with {CE!r}")
        parts = [f"{m} {pct(r.accuracy)} ({100 * (r.accuracy - ce.accuracy):+.2f} points)" for m, r in others.items()]
        best = max(others.values(), key=lambda r: r.accuracy)
        win = best.accuracy > ce.accuracy
        beats_all.append(win)
        lines.append(f"- **SupCon vs CE, {model}: {'yes' if win else 'no'}** — CE {pct(ce.accuracy)}; " + "; ".join(parts)
                     + f". Best SupCon reading: {best.method}.")
    both = all(beats_all)
    lines.insert(0, f"- **SupCon beats CE for every backbone family: {'yes' if both else 'no'}** "
                    f"({sum(beats_all)} of {len(beats_all)}).")
    top = max(rows, key=lambda r: r.accuracy)
    lines.append(f"- **Best per-crop accuracy ≥ {pct(TARGET_CROP_ACCURACY, 0)}: "
                 f"{'yes' if top.accuracy >= TARGET_CROP_ACCURACY else 'no'}** — {pct(top.accuracy, 2)} ({top.name}).")
    topk = max(rows, key=lambda r: r.karyotype_assigned)
    lines.append(f"- **Accuracy after karyotype assembly ≥ {pct(TARGET_KARYOTYPE_ACCURACY)}: "
                 f"{'yes' if topk.karyotype_assigned >= TARGET_KARYOTYPE_ACCURACY else 'no'}** — "
                 f"{pct(topk.karyotype_assigned, 2)} ({topk.name}; {pct(topk.karyotype_argmax, 2)} before assembly).")
    if reference is None:
        lines.append("- **biorep vs the reference loop: not measured** (run with --no-reference).")
        return lines
    ref_acc = float(dig(reference, "test_accuracy", REFERENCE))
    ref_s = float(dig(reference, "train_time_s", REFERENCE))
    ref_ips = float(dig(reference, "train_images", REFERENCE)) * float(dig(reference, "epochs", REFERENCE)) / ref_s
    same = [r for r in rows if r.method == CE and "resnet" in str(r.summary.get("backbone", ""))]
    if same:
        r = same[0]
        ips = float(r.summary["images_per_s"])
        lines.append(
            f"- **biorep ({r.name}) vs the reference loop:** accuracy {pct(r.accuracy)} vs {pct(ref_acc)} "
            f"({100 * (r.accuracy - ref_acc):+.1f} points); training time {r.summary['wall_time_s'] / 60:.1f} min "
            f"vs {ref_s / 60:.1f} min (×{r.summary['wall_time_s'] / ref_s:.2f}); throughput {ips:.0f} vs "
            f"{ref_ips:.0f} training images/s (×{ips / ref_ips:.2f}, incl. biorep's validation passes). "
            f"{'Beats' if r.accuracy > ref_acc else 'Does not beat'} the reference's accuracy.")
    lines.append(f"- **Best biorep run vs the reference:** {top.name} {pct(top.accuracy)} vs {pct(ref_acc)} "
                 f"({100 * (top.accuracy - ref_acc):+.1f} points).")
    return lines


# ----------------------------------------------------------------------------- figures
def embedding_map_png(out_dir: Path, rows: Sequence[RunNumbers], *, max_points: int = 3000,
                      method: str = "umap", label: str = "chromosome") -> bytes:
    """Side-by-side 2-D maps of each run's test embeddings (one row of panels per backbone)."""
    from biorep.report import embedding_maps
    from biorep.report.projection import project_file

    panels = []
    used = method.upper()
    n_methods = len({r.method for r in rows})
    for r in rows:
        path = out_dir / "runs" / r.name / "embeddings" / "test.parquet"
        if not path.is_file():
            raise BenchmarkError(f"{path}: missing (the test embeddings are written by the evaluation)")
        proj = project_file(path, label=label, method=method, max_points=max_points)
        panels.append((f"{r.model} · {r.method} ({pct(r.accuracy)})", proj.coords, proj.labels))
        used = proj.method
    return embedding_maps(panels, label_name=label, axis_name=used, max_columns=max(n_methods, 1),
                          title=f"Test-case embeddings (backbone representation), {used}")


# ----------------------------------------------------------------------------- RESULTS.md
def mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} MiB"


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def render_results(
    rows: Sequence[RunNumbers],
    reference: dict[str, Any] | None,
    *,
    study_path: str,
    out_dir: Path,
    command: str,
    machine: dict[str, Any],
    invocation: dict[str, Any],
    map_name: str | None,
) -> str:
    """The whole RESULTS.md text."""
    first = rows[0]
    cfg, data, summ = first.config, first.data, first.summary
    tr = cfg["train"]
    geo = data.get("geometry") or {}
    scale = geo.get("scale")
    lines = [
        "# Chromosome study (Study A): cross-entropy vs supervised contrastive, ResNet and Transformer",
        "",
        f"Generated by `benchmarks/chromosome/run.py` on {invocation['finished']} from the runs in "
        f"`{out_dir}` (study `{study_path}`). Do not edit by hand; rerun the script.",
        "",
        "## Verdict",
        "",
        *verdict(rows, reference),
        "",
        "## Setting",
        "",
        f"- Data: `{summ.get('dataset')}`, {summ.get('n_classes')} classes, split by case (seed "
        f"{cfg['data']['split']['seed']}): {summ.get('n_train')} training / {summ.get('n_val')} validation / "
        f"{summ.get('n_test')} test crops. The test cases were scored once, at the end; the evaluated "
        "checkpoint is the epoch with the best validation accuracy.",
        f"- Input: {geo.get('mode', cfg['data']['geometry']['mode'])} {data.get('size')} × {data.get('size')} px, "
        f"one common scale {scale if scale is None else f'{float(scale):.4f}'} (relative sizes kept), "
        f"augmentation {describe_augment(cfg['views']['augment'])}, crops `{cfg['views']['crops']}`.",
        f"- Schedule (every run): up to {tr['epochs']} epochs, batch {tr['batch_size']}, {tr['optimizer']} lr "
        f"{tr['lr']:g}, weight decay {tr['weight_decay']:g}, scheduler {tr['scheduler']}"
        + (f" (γ {tr['gamma']})" if tr.get("gamma") else "")
        + (f", early stopping on {tr['early_stopping']['monitor']} (patience {tr['early_stopping']['patience']})"
           if tr.get("early_stopping") else "")
        + f", precision {tr['precision']}"
        + (f", limit_train_batches {tr['limit_train_batches']}" if tr.get("limit_train_batches") else "")
        + ".",
    ]
    for r in rows:
        m = r.config["method"]
        if m.get("mode") == "two_stage":
            lines.append(f"- {r.name}: two-stage budget = {m['pretrain_epochs']} SupCon epochs (2 views, τ "
                         f"{m['temperature']}) + {tr['epochs'] - m['pretrain_epochs']} classifier epochs on the "
                         f"{'fine-tuned' if m.get('finetune') else 'frozen'} encoder.")
        elif m.get("mode") == "joint":
            lines.append(f"- {r.name}: joint = class-paired InfoNCE + {m['cls_weight']} × CE, class-balanced "
                         f"batches of {m['samples_per_class']} images per class.")
    lines += [
        "",
        "## Results on the test cases",
        "",
        "| setup | backbone | method | epochs | val acc | **test acc** | macro F1 | AUROC | kNN acc "
        "| karyotype before → after assembly | flagged karyograms | train time | eval time | images/s "
        "| peak RSS | peak Python heap | peak GPU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r.summary
        lines.append(
            f"| {r.name} | {s.get('backbone')} | {r.method} | {s['epochs']}/{s.get('max_epochs', s['epochs'])} "
            f"| {pct(r.val_accuracy)} | **{pct(r.accuracy, 2)}** | {r.macro_f1:.4f} | {r.auroc:.4f} "
            f"| {pct(r.knn_accuracy)} | {pct(r.karyotype_argmax, 2)} → {pct(r.karyotype_assigned, 2)} "
            f"| {r.karyotype_flagged}/{r.karyotype_n} | {fmt_s(s['wall_time_s'])} | {fmt_s(r.timings.get('eval_s'))} "
            f"| {s['images_per_s']:.0f} | {mib(s['peak_rss_mb'])} "
            f"| {mib(s.get('peak_tracemalloc_mb'))} | {mib(s.get('peak_gpu_mb'))} |")
    if reference is not None:
        lines.append(
            f"| reference loop | resnet18 | ce (hand-written) | {reference['epochs']}/{reference['epochs']} | — "
            f"| **{pct(reference['test_accuracy'], 2)}** | — | — | — | — | — | {fmt_s(reference['train_time_s'])} "
            f"| — | {reference['train_images'] * reference['epochs'] / reference['train_time_s']:.0f} | — | — | — |")
    lines += [
        "",
        "val acc: the best validation accuracy (the selected checkpoint). kNN: k = 20 on the backbone "
        "representation fitted on the training crops. Karyotype: accuracy of the per-crop argmax and after "
        "the constrained assembly of each test karyogram (each class used twice, sex chromosomes by the "
        "karyogram's sex call). Train time: the Lightning fit (training + validation passes + checkpoints); "
        "images/s: training images per second of training-loop time. Peak RSS is the process's (it includes "
        "the decoded data set); the Python heap is tracemalloc's peak (torch tensors not counted).",
    ]
    if reference is not None:
        lines.append(
            f"The reference loop trains on training + validation crops ({reference['train_images']}) for "
            f"{reference['epochs']} epochs at {reference['size']} px with random flips, AdamW + one-cycle, "
            "batch 128, and reports test accuracy only.")
    # per-class recall
    classes = list(rows[0].per_class_recall)
    lines += ["", "## Per-class recall (test cases)", "",
              "| class | " + " | ".join(r.name for r in rows) + " |",
              "|---|" + "---:|" * len(rows)]
    for c in classes:
        lines.append(f"| {c} | " + " | ".join(pct(r.per_class_recall.get(c)) for r in rows) + " |")
    # timings
    total_train = sum(float(r.summary["wall_time_s"]) for r in rows)
    total_eval = sum(float(r.timings.get("eval_s") or 0) for r in rows)
    lines += ["", "## Wall time", "",
              "| what | train (fit) | evaluation | total per run (train + eval, incl. data loading) |",
              "|---|---:|---:|---:|"]
    for r in rows:
        t = r.timings
        tot = (t.get("train_s") or r.summary.get("total_time_s") or 0) + (t.get("eval_s") or 0)
        lines.append(f"| {r.name} | {fmt_s(r.summary['wall_time_s'])} | {fmt_s(t.get('eval_s'))} | {fmt_s(tot)} |")
    if reference is not None:
        lines.append(f"| reference loop | {fmt_s(reference['train_time_s'])} | — | "
                     f"{fmt_s(reference.get('process_wall_s'))} |")
    ref_total = float(reference.get("process_wall_s") or 0) if reference else 0.0
    lines += ["",
              f"Sum over the runs: training {fmt_s(total_train)}, evaluation {fmt_s(total_eval)}"
              + (f", reference loop {fmt_s(ref_total)}" if reference else "")
              + f". This invocation took {fmt_s(invocation['wall_s'])} "
              f"(runs already done when it started are reused, not rerun: {invocation['reused'] or 'none'}).",
              ""]
    if map_name:
        lines += ["## Embedding maps", "",
                  f"![CE vs SupCon test embeddings]({map_name})", "",
                  "UMAP of the backbone representation of (a sample of) the test crops, coloured by chromosome; "
                  "one row per backbone, CE and the SupCon readings side by side.", ""]
    lines += [
        "## How it was run", "",
        "```",
        command,
        "```", "",
    ]
    if reference is not None:
        lines += ["The reference loop, in the same invocation:", "", "```", reference.get("command", "?"), "```", ""]
    lines += [
        "## Machine", "",
        f"- {machine['nproc']} cores ({machine['cpu']})" + (f", GPU {machine['gpu']}" if machine.get("gpu") else ", no GPU"),
        f"- torch {machine['torch']} ({machine['torch_threads']} threads), timm {machine['timm']}, "
        f"lightning {machine['lightning']}, Python {machine['python']}",
        f"- load average (1/5/15 min) at start {invocation['load_start']}, at end {invocation['load_end']}"
        + (f"; around the reference loop {reference.get('load_before')} → {reference.get('load_after')}"
           if reference else "")
        + ". A load above the core count means other work shared the CPU and every time above is longer "
        "than on a quiet machine.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="study YAML (default: %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="study folder (runs/, timings, reference)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="RESULTS.md to write (the map PNG goes beside it)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (see the module docstring); repeatable")
    p.add_argument("--only", action="append", default=None, metavar="SETUP", help="run only these setups (no RESULTS.md)")
    p.add_argument("--no-reference", action="store_true", help="leave out the reference loop")
    p.add_argument("--reference-epochs", type=int, default=8)
    p.add_argument("--reference-size", type=int, default=64)
    p.add_argument("--map-points", type=int, default=3000, help="test crops per embedding map (subsample)")
    p.add_argument("--map-projection", choices=["umap", "pca"], default="umap")
    p.add_argument("--evaluations", nargs="+", default=None, metavar="NAME",
                   help="replace the study's evaluations (classification and karyotype are required)")
    p.add_argument("--report-only", action="store_true", help="write RESULTS.md from finished runs; train nothing")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from biorep.errors import BiorepError
    from biorep.study import expand_grid, load_study, run_study

    t_start = time.perf_counter()
    load_start = loadavg()
    command = shlex.join(["python", os.path.relpath(__file__, Path.cwd()) if Path(__file__).is_absolute() else __file__,
                          *(argv if argv is not None else sys.argv[1:])])
    try:
        study, base = load_study(args.study, args.overrides)
        study = apply_study_overrides(study, args.overrides)
        if args.evaluations:
            study.evaluations = list(args.evaluations)
        setups = expand_grid(study)
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
        reused = [s.name for s in setups if (out / "runs" / s.name / "summary.json").is_file()]
        reference = None
        if not args.report_only:
            if not args.no_reference:
                reference = run_reference(out, args.reference_epochs, args.reference_size)
            train_fn, evaluate_fn = timed_runner(out)
            run_study(study, base, out, train_fn=train_fn, evaluate_fn=evaluate_fn, only=args.only)
        elif not args.no_reference:
            reference = read_json(out / REFERENCE)
        if args.only:
            print(f"ran {', '.join(args.only)}; RESULTS.md is written when the whole grid is run")
            return 0
        rows = collect(out, setups)
        results = args.results
        map_name = None
        png = embedding_map_png(out, rows, max_points=args.map_points, method=args.map_projection)
        map_name = MAP_NAME
        write_atomic(results.parent / MAP_NAME, png)
        invocation = {"finished": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "load_start": load_start,
                      "load_end": loadavg(), "wall_s": time.perf_counter() - t_start,
                      "reused": ", ".join(reused)}
        text = render_results(rows, reference, study_path=os.path.relpath(args.study, REPO) if args.study.is_absolute()
                              else str(args.study), out_dir=out, command=command, machine=machine_info(),
                              invocation=invocation, map_name=map_name)
        write_atomic(results, text)
        print(f"wrote {results} and {results.parent / MAP_NAME}")
        print("\n".join(verdict(rows, reference)))
    except (BenchmarkError, BiorepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
