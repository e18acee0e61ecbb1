"""The ``biorep`` command line: verbs that mirror the pipeline stages.

Each verb lives in its own module here and exposes ``register(app)``. Every failure ends in one
line on stderr and a non-zero exit status, never a traceback:

- user errors (:class:`biorep.errors.BiorepError`) and operating-system errors (permission, full
  disk, read-only file system: :class:`OSError`, named by its path) → ``error: ...``, status 2;
- usage errors (unknown verb or option, missing argument, bad value) → click's message with its
  "Did you mean" hint, status 2;
- a group called without a verb (``biorep``, ``biorep datasets``) → its help, status 2 (click's
  convention since 8.2, kept here for every typer/click version);
- Ctrl-C → ``interrupted``, status 130; a training run stopped by Ctrl-C or SIGTERM names the
  command that resumes it and exits 130 or 143 (:func:`training_interruption`).

``biorep --debug ...`` shows the traceback as well. Typer ≥ 0.2x raises exceptions of its own
bundled click copy rather than of the ``click`` package, so they are recognised by behaviour
(:func:`_is_click_error`), not by class.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from biorep.errors import BiorepError, TrainingInterrupted

console = Console(stderr=True)
#: Exit status of user, usage and OS errors (click's usage-error status).
USAGE_EXIT = 2
app = typer.Typer(
    name="biorep",
    help="Learn, compare and evaluate representations of biological images.",
    no_args_is_help=False,  # handled by help_without_verb (the same on every click version)
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_STATE: dict[str, bool] = {"debug": False, "registered": False}

# One module per verb (or verb group); each defines ``register(app: typer.Typer) -> None``.
VERB_MODULES = [
    "datasets",
    "train",
    "embed",
    "predict",
    "evaluate",
    "karyotype",
    "ensemble",
    "review",
    "report",
    "study",
    "demo",
]


def help_without_verb(ctx: typer.Context) -> None:
    """For a group's callback: print the group's help (stdout) and exit 2 when no verb was given.

    Groups use ``invoke_without_command=True`` with this instead of click's ``no_args_is_help``,
    whose exit status changed between click versions (0 before 8.2, 2 since).
    """
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        text = ctx.get_help()  # typer's rich formatter prints the help itself and returns ""
        if text.strip():
            typer.echo(text)
        raise typer.Exit(USAGE_EXIT)


def _version(value: bool) -> None:
    if value:
        from biorep import __version__

        typer.echo(f"biorep {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """biorep: representation learning for biological images."""
    _STATE["debug"] = debug
    help_without_verb(ctx)


@contextmanager
def training_interruption(config: str | None = None) -> Iterator[None]:
    """Around a verb's training: a :class:`TrainingInterrupted` prints its resume hint and exits with
    its status (130 Ctrl-C, 143 SIGTERM). Done inside the verb because typer turns every
    KeyboardInterrupt escaping a command into a bare ``Exit(130)``, losing the message and the 143."""
    try:
        yield
    except TrainingInterrupted as exc:
        console.print(exc.message(config), highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from exc


def _register_verbs() -> None:
    if _STATE.get("registered"):  # main() may run many times in one process (tests)
        return
    _STATE["registered"] = True
    for name in VERB_MODULES:
        modname = f"biorep.cli.{name}"
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:  # a verb not built yet; anything else missing is a real error
            if exc.name == modname:
                continue
            raise
        module.register(app)


def _classes(attr: str) -> tuple[type[BaseException], ...]:
    """``attr`` of every click exceptions module this process may raise from (click's, typer's copy)."""
    found: list[type[BaseException]] = []
    for modname in ("typer._click.exceptions", "click.exceptions", "typer.exceptions", "typer"):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        cls = getattr(mod, attr, None)
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in found:
            found.append(cls)
    return tuple(found)


def _is_click_error(exc: BaseException) -> bool:
    """A click-style exception (any click or typer copy): it can ``show()`` itself and has an exit code."""
    return (callable(getattr(exc, "show", None)) and callable(getattr(exc, "format_message", None))
            and isinstance(getattr(exc, "exit_code", None), int))


_LONG_TOKEN = 240


def _one_line(text: str) -> str:
    """``text`` on one line; a word longer than 240 characters (a path nested thousands of characters
    deep) keeps its first and last 100 (where its file name is), ``--debug`` prints it whole."""
    words = str(text).split()
    if not _STATE["debug"]:
        words = [w if len(w) <= _LONG_TOKEN else f"{w[:100]}…[{len(w) - 200} characters]…{w[-100:]}"
                 for w in words]
    return " ".join(words)


def _fail(message: str, code: int = USAGE_EXIT) -> NoReturn:
    if _STATE["debug"]:
        traceback.print_exc()
    console.print(Text.assemble(("error:", "bold red"), " ", _one_line(message)), soft_wrap=True,
                  highlight=False)
    sys.exit(code)


def os_error_message(exc: OSError) -> str:
    """``PATH: cause`` for an :class:`OSError` (``[Errno 28] No space left on device`` → its words)."""
    cause = exc.strerror or (errno.errorcode.get(exc.errno or -1) if exc.errno else None) or str(exc)
    names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n is not None]
    where = " → ".join(os.fsdecode(n) if isinstance(n, (bytes, os.PathLike)) else str(n) for n in names)
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = " (free some space, or point BIOREP_CACHE / --out at a disk with room)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " (choose a folder you can write to)"
    return f"{where}: {cause}{hint}" if where else f"{cause}{hint}"


def _given_value(exc: Any, args: list[str]) -> str | None:
    """The command-line value of the option a bad-parameter error is about (typer's message omits it)."""
    opts = list(getattr(getattr(exc, "param", None), "opts", None) or [])
    for i, a in enumerate(args):
        for o in opts:
            if a == o and i + 1 < len(args):
                return args[i + 1]
            if o.startswith("--") and a.startswith(o + "="):
                return a[len(o) + 1 :]
    return None


def _suggest_command(exc: Any, msg: str) -> str:
    """Add "Did you mean" to "No such command" where this typer/click does not (older ones)."""
    import difflib
    import re

    m = re.match(r"No such command '([^']*)'", msg)
    ctx = getattr(exc, "ctx", None)
    if m is None or "Did you mean" in msg or ctx is None:
        return msg
    try:
        names = list(ctx.command.list_commands(ctx))
    except Exception:  # pragma: no cover - a context without subcommands
        return msg
    close = difflib.get_close_matches(m.group(1), names, n=1)
    return f"{msg.rstrip()} Did you mean '{close[0]}'?" if close else msg


def _usage_message(exc: Any, args: list[str] | None = None) -> str:
    msg = _suggest_command(exc, _one_line(exc.format_message()))
    given = _given_value(exc, args or [])
    if given is not None and repr(given) not in msg and f" {given} " not in f" {msg} ":
        msg += f" (given: {given!r})"
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        try:
            path = ctx.command_path
            names = ctx.help_option_names
        except Exception:  # pragma: no cover - a click without these
            return msg
        if names:
            msg += f" (see '{path} {names[0]}')"
    return msg


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run one verb, turning every failure into one line and status 2."""
    _register_verbs()
    args = sys.argv[1:] if argv is None else argv
    options = args[: args.index("--")] if "--" in args else args
    _STATE["debug"] = "--debug" in options
    if _STATE["debug"]:  # accepted after the verb too (`biorep train X --debug`): it is the app's option
        args = ["--debug", *(a for a in options if a != "--debug"), *args[len(options):]]
    abort, exit_ = _classes("Abort"), _classes("Exit")
    try:
        rc = app(args=args, prog_name="biorep", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except BiorepError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt as exc:
        console.print(str(exc) if isinstance(exc, TrainingInterrupted) else "interrupted", highlight=False)
        sys.exit(getattr(exc, "exit_code", 130))
    except BaseException as exc:  # noqa: BLE001 - sorted by behaviour below, the rest re-raised
        if isinstance(exc, SystemExit):
            raise
        if abort and isinstance(exc, abort):  # click's wrapping of a KeyboardInterrupt
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, TrainingInterrupted):
                console.print(str(cause), highlight=False, soft_wrap=True)
                sys.exit(cause.exit_code)
            console.print("aborted")
            sys.exit(int(getattr(cause, "exit_code", 130)))  # 143 for a SIGTERM (errors.Terminated)
        if exit_ and isinstance(exc, exit_):
            sys.exit(int(getattr(exc, "exit_code", 0) or 0))
        if _is_click_error(exc):
            if type(exc).__name__ == "NoArgsIsHelpError":  # a verb module's own no_args_is_help group
                typer.echo(exc.format_message())
                sys.exit(USAGE_EXIT)
            if _STATE["debug"]:
                traceback.print_exc()
            text = _usage_message(exc, args) if hasattr(exc, "ctx") else _one_line(exc.format_message())
            console.print(Text.assemble(("error:", "bold red"), " ", text), soft_wrap=True, highlight=False)
            sys.exit(int(exc.exit_code) or USAGE_EXIT)
        if isinstance(exc, OSError):
            _fail(os_error_message(exc))
        raise
