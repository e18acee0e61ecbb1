"""``biorep datasets list|show``: what data sets exist and what is in one.

Example:
    $ biorep datasets list
    $ biorep datasets show chromosome-pki3 --json
    $ biorep datasets show ./my_images/ --size 96
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from biorep.errors import ConfigError, validation_message

datasets_app = typer.Typer(
    name="datasets",
    help="List the built-in data sets or describe one (or any image folder / manifest).",
    invoke_without_command=True,
)
_out = Console()


@datasets_app.callback()
def _datasets(ctx: typer.Context) -> None:
    """List the built-in data sets or describe one (or any image folder / manifest)."""
    from biorep.cli import help_without_verb

    help_without_verb(ctx)


def _parse_options(items: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            opts[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            opts[key.strip()] = raw
    return opts


def _config(**kwargs: Any) -> Any:
    from pydantic import ValidationError

    from biorep.data import DataConfig

    try:
        return DataConfig(**{k: v for k, v in kwargs.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(f"data config: {validation_message(exc, prefix='data.')}") from None


@datasets_app.command("list")
def list_cmd(
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """List the built-in data sets, one line each, and whether their data is present."""
    from biorep import paths
    from biorep.data import DATASETS

    root = paths.find_data_root(data_root, required=data_root is not None)
    rows = []
    for name in DATASETS:
        spec = DATASETS.get(name)
        present = spec.present(root)
        where = "generated" if spec.folder is None else str(spec.path(root) or f"<data root>/{spec.folder}")
        rows.append({"name": name, "present": present, "location": where, "description": spec.description})
    if as_json:
        typer.echo(json.dumps({"data_root": str(root) if root else None, "datasets": rows}))
        return
    table = Table(title=f"built-in data sets (data root: {root or 'not found'})")
    table.add_column("name", style="bold")
    table.add_column("data")
    table.add_column("description")
    for r in rows:
        status = "[green]generated[/]" if r["location"] == "generated" else (
            "[green]present[/]" if r["present"] else "[red]missing[/]")
        table.add_row(r["name"], status, r["description"])
    _out.print(table)


@datasets_app.command("show")
def show_cmd(
    dataset: str = typer.Argument(..., metavar="NAME_OR_PATH",
                                  help="Built-in name, image folder (class per sub-folder) or CSV/Parquet manifest."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the built-in data sets."),
    label: Optional[str] = typer.Option(None, "--label", help="Label column (default: the data set's)."),
    group: Optional[str] = typer.Option(None, "--group", help="Grouping column (default: the data set's)."),
    path_column: str = typer.Option("path", "--path-column", help="Manifest column holding image paths."),
    size: Optional[str] = typer.Option(None, "--size", help="Canvas size in pixels: N or HxW, e.g. 96x48 (default 64)."),
    geometry: Optional[str] = typer.Option(None, "--geometry", help="canvas | resize | none."),
    option: list[str] = typer.Option([], "--option", "-o", help="Data set option KEY=VALUE (repeatable)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr while decoding."),
) -> None:
    """Describe a data set: samples, classes and counts, groups, channels, original image sizes.

    The first call decodes the images into the cache (progress on stderr); later calls read the cache.
    """
    from biorep.data import describe, load_dataset

    geo: dict[str, Any] = {}
    if size is not None:
        parts = size.lower().replace("×", "x").split("x")
        geo["size"] = parts[0] if len(parts) == 1 else parts  # validated (and named) by GeometryConfig
    if geometry is not None:
        geo["mode"] = geometry
    cfg = _config(dataset=dataset, root=data_root, label=label, group=group, path_column=path_column,
                  options=_parse_options(option), geometry=geo)
    ds = load_dataset(cfg, progress=progress)
    info = describe(ds)
    if as_json:
        typer.echo(json.dumps(info))
        return
    _print_summary(info)


def _print_summary(info: dict[str, Any]) -> None:
    head = Table(title=f"data set {info['name']}", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    h, w = info.get("orig_height", {}), info.get("orig_width", {})
    from biorep.data.geometry import size_label

    rows = [
        ("samples", f"{info['n_samples']:,}"),
        ("label column", str(info["label_column"])),
        ("classes", f"{info['n_classes']}" + (f" ({info['n_unlabeled']:,} unlabeled)" if info["n_unlabeled"] else "")),
        ("group column", str(info["group_column"])),
        ("groups", "-" if info["n_groups"] is None else f"{info['n_groups']:,}"),
        ("channels", f"{info['channels']} × {info['dtype']}"),
        ("original height", f"{h.get('min')}–{h.get('max')} px (median {h.get('median')})" if h else "-"),
        ("original width", f"{w.get('min')}–{w.get('max')} px (median {w.get('median')})" if w else "-"),
        ("cached as", f"{size_label(info['size'])}, background {info['background']:g}"
         + (f", scale {info['scale']:.3f}" if info.get("scale") else "")
         + (f", {info['n_shrunk']} shrunk to fit" if info.get("n_shrunk") else "")),
        ("metadata", ", ".join(info["metadata_columns"])),
    ]
    for k, v in rows:
        head.add_row(k, v)
    _out.print(head)
    if info["class_counts"]:
        t = Table(title="samples per class")
        t.add_column("class")
        t.add_column("count", justify="right")
        for c, n in info["class_counts"].items():
            t.add_row(c, f"{n:,}")
        _out.print(t)


def register(app: typer.Typer) -> None:
    """Attach ``datasets`` to the ``biorep`` app."""
    app.add_typer(datasets_app, name="datasets")
