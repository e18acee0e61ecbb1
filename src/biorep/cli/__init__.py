"""The ``biorep`` command line: verbs that mirror the pipeline stages.

Each verb lives in its own module here and exposes ``register(app)``. User errors
(:class:`biorep.errors.BiorepError`) print one clear message and exit with status 2;
``biorep --debug ...`` shows the traceback as well.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click
import typer
from rich.console import Console

from biorep.errors import BiorepError

console = Console(stderr=True)
app = typer.Typer(
    name="biorep",
    help="Learn, compare and evaluate representations of biological images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_STATE = {"debug": False}

# One module per verb (or verb group); each defines ``register(app: typer.Typer) -> None``.
VERB_MODULES = [
    "datasets",
    "train",
    "embed",
    "predict",
    "evaluate",
    "karyotype",
    "review",
    "report",
    "study",
    "demo",
]


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """biorep: representation learning for biological images."""
    _STATE["debug"] = debug
    if version:
        from biorep import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def _register_verbs() -> None:
    for name in VERB_MODULES:
        modname = f"biorep.cli.{name}"
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:  # a verb not built yet; anything else missing is a real error
            if exc.name == modname:
                continue
            raise
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _register_verbs()
    args = sys.argv[1:] if argv is None else argv
    _STATE["debug"] = "--debug" in args
    try:
        rc = app(args=args, prog_name="biorep", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except BiorepError as exc:
        if _STATE["debug"]:
            traceback.print_exc()
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
