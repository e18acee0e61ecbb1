"""``biorep evaluate RUN``: run the evaluations that apply (or the ones named) and store them in the run.

Example:
    $ biorep evaluate runs/supcon                                # what applies to the run and its data
    $ biorep evaluate runs/byol --only knn --only similarity -o knn.k=10 --json
    $ biorep evaluate runs/supcon --data ./new_cases/ --only classification
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from biorep.errors import ConfigError
from biorep.rundir import RunPaths

_out = Console()
_err = Console(stderr=True)

KNOWN_HINT = ("classification, knn, linear, karyotype, similarity, treated_vs_control, clustering, "
              "replicate_map, label_map, nsc")


def parse_options(items: list[str], *, section: str | None = None) -> dict[str, dict[str, Any]]:
    """``["knn.k=10", "similarity.a={compound: X}"]`` → ``{"knn": {"k": 10}, "similarity": {...}}``.

    Values are YAML (numbers, lists, ``{column: value}`` mappings); deeper keys (``a.b.c=1``) nest.
    ``section``: every item is ``KEY=VALUE`` of that one (``karyotype``/``review``'s assembly options,
    ``-o doubt_threshold=0.7``); errors quote the item as the user typed it.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        parts = [*([section] if section else []), *(p.strip() for p in key.split("."))]
        if not sep or len(parts) < 2 or not all(parts):
            expected = (f"expected KEY=VALUE (a {section} option); the output file is --out" if section
                        else "expected NAME.KEY=VALUE, e.g. knn.k=10")
            raise ConfigError(f"-o {item!r}: {expected}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"-o {item!r}: value is not valid YAML ({exc})") from None
        node = out.setdefault(parts[0], {})
        for p in parts[1:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"-o {item!r}: {p} is already set to a value")
            node = child
        node[parts[-1]] = value
    return out


def check_options(options: Mapping[str, Mapping[str, Any]], names: list[str] | None = None) -> None:
    """Check evaluation names and every ``-o`` value against the evaluations' option schema, before
    any run is opened (one :class:`ConfigError` line naming the option, the value and what is allowed)."""
    import biorep.evaluate  # noqa: F401 - registers the evaluations
    from biorep.evaluate.context import EVALUATIONS
    from biorep.evaluate.evaluator import check_options as check_evaluation_options

    for n in names or []:
        EVALUATIONS.get(n)
    for n, opts in options.items():
        check_evaluation_options(n, opts, complete=False)


def split_names(values: list[str]) -> list[str] | None:
    """``--only a --only b,c`` → ``["a", "b", "c"]``; nothing given → None (the defaults)."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def headline(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Scalar entries of a summary, and scalars one level down (``overall.roc_auc``), formatted."""
    rows: list[tuple[str, str]] = []

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v)

    for k, v in summary.items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            if v is not None and not str(k).startswith("per_"):
                rows.append((str(k), fmt(v)))
        elif isinstance(v, Mapping) and not str(k).startswith("per_") and len(v) <= 12:
            for sk, sv in v.items():
                if isinstance(sv, (int, float)) and not isinstance(sv, bool):
                    rows.append((f"{k}.{sk}", fmt(sv)))
    return rows


def print_results(results: Mapping[str, Any]) -> None:
    """One small rich table per evaluation (skipped ones in red on stderr)."""
    for key, res in results.items():
        if "error" in res:
            _err.print(f"[yellow]skipped[/] {key}: {res['error']}", highlight=False)
            continue
        scored = (res.get("summary") or {}).get("n")
        part = f"{res.get('split')}, {res.get('n')} images"
        if isinstance(scored, int) and scored != res.get("n"):  # unlabelled images are not scored
            part += f", {scored} scored"
        table = Table(title=f"{key} ({part})", show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        for k, v in headline(res.get("summary") or {}):
            table.add_row(k, v)
        _out.print(table)


def evaluate_cmd(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory (from `biorep train`)."),
    only: list[str] = typer.Option([], "--only", metavar="NAME", help=f"Evaluation to run (repeatable or comma-separated): {KNOWN_HINT}. "
                                   "Default: what applies to the run and its data."),
    option: list[str] = typer.Option([], "--option", "-o", metavar="NAME.KEY=VALUE", help="Evaluation option NAME.KEY=VALUE (YAML value), "
                                     "e.g. -o knn.k=10 -o 'clustering.where={plate: P1}'. Repeatable."),
    data: Optional[str] = typer.Option(None, "--data", metavar="NAME_OR_PATH",
                                       help="Evaluate another data set (built-in name, folder or manifest) with "
                                            "the run's preprocessing."),
    split: Optional[str] = typer.Option(None, "--split", help="test | val | train | all (default: test; all with --data)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout instead of tables."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr while decoding."),
    allow_unfinished: bool = typer.Option(False, "--allow-unfinished",
                                          help="Use a run that has not finished training (its latest "
                                               "checkpoint), with a warning, instead of refusing it."),
) -> None:
    """Run evaluations on a trained run; results go to RUN/evaluation.json (merged) and RUN/evaluation/.

    Probes (knn, linear) and treated_vs_control fit on the run's training split and score the
    chosen split, so every paradigm gets comparable numbers. Embeddings are stored in
    RUN/embeddings/ and reused while newer than the checkpoint.
    """
    from biorep.evaluate.run import evaluate_run

    names, options = split_names(only), parse_options(option)
    check_options(options, names)
    results = evaluate_run(run, names=names, options=options, data=data,
                           split=split, progress=progress and not as_json, data_root=data_root, device=device,
                           allow_unfinished=allow_unfinished)
    if as_json:
        typer.echo(json.dumps(results))
        return
    print_results(results)
    _out.print(f"results in {RunPaths(run).evaluation}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` verb to ``app``."""
    app.command("evaluate")(evaluate_cmd)
