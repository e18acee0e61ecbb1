"""Run state (``state.json``): is a run ``running``, ``finished``, ``failed`` or ``interrupted``?

Training writes ``running`` (with its pid and host) when it starts, ``finished`` or ``failed`` when it
ends. A run killed with ``kill -9`` never gets to write anything, so a ``running`` state whose
process is gone on this host reads as ``interrupted``. Downstream verbs call :func:`check_usable`
so that every verb treats an unfinished run the same way.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from biorep.errors import RunDirError
from biorep.rundir.atomic import read_json, write_json
from biorep.rundir.layout import CKPT_DIR, CONFIG, LAST, STATE, SUMMARY

log = logging.getLogger("biorep.rundir")

Status = Literal["running", "finished", "failed", "interrupted"]


class RunState(BaseModel):
    """The content of ``state.json``."""

    model_config = ConfigDict(extra="allow")
    status: Status
    pid: int | None = None
    host: str | None = None
    updated: str | None = None
    message: str | None = None
    sessions: int = 1


def is_rank_zero_process() -> bool:
    """False in the extra processes a distributed launch starts (they re-run the command)."""
    keys = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in keys)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(run_dir: str | Path, status: Status, message: str | None = None) -> RunState:
    """Record ``status`` for the run (this process's pid and host); keeps the count of sessions."""
    run_dir = Path(run_dir)
    path = run_dir / STATE
    sessions = 1
    if path.is_file():
        try:
            old = RunState.model_validate(read_json(path))
            sessions = old.sessions + (1 if status == "running" and old.pid != os.getpid() else 0)
        except Exception:  # a broken state file is replaced
            pass
    state = RunState(
        status=status, pid=os.getpid(), host=socket.gethostname(), updated=_now(), message=message,
        sessions=sessions,
    )
    write_json(path, state)
    return state


def read_state(run_dir: str | Path) -> RunState | None:
    """The run's state, ``None`` when it has no ``state.json`` (a run from before run states).

    A ``running`` state whose process no longer exists on this host is reported as ``interrupted``.
    """
    run_dir = Path(run_dir)
    path = run_dir / STATE
    if not path.is_file():
        if (run_dir / SUMMARY).is_file():
            return RunState(status="finished")
        if (run_dir / CKPT_DIR / LAST).is_file():
            return RunState(status="interrupted")
        return None
    try:
        state = RunState.model_validate(read_json(path))
    except Exception as exc:
        raise RunDirError(f"{path}: unreadable run state ({exc})") from None
    if state.status == "running" and state.host == socket.gethostname() and state.pid is not None:
        if not _alive(state.pid):
            state = state.model_copy(update={"status": "interrupted"})
    return state


def check_usable(run_dir: str | Path, verb: str, *, allow_unfinished: bool = False) -> RunState | None:
    """Refuse (or, with ``allow_unfinished``, warn about) a run that has not finished training.

    Every downstream verb (``embed``, ``evaluate``, ``predict``, ``karyotype``, ``report``) calls this,
    so they all treat a killed or failed run the same way: refused, with what to do.
    """
    run_dir = Path(run_dir)
    state = read_state(run_dir)
    if state is None or state.status == "finished":
        return state
    what = {
        "running": "is still training",
        "interrupted": "was interrupted before it finished training",
        "failed": "failed during training" + (f" ({state.message})" if state.message else ""),
    }[state.status]
    advice = (
        f"finish it with `biorep train {run_dir / CONFIG} --out {run_dir} --resume`"
        if state.status != "running"
        else "wait for it to finish"
    )
    msg = f"{run_dir}: the run {what}; {advice}"
    if allow_unfinished:
        log.warning("%s — `%s` uses its latest checkpoint as it is", msg, verb)
        return state
    raise RunDirError(f"{msg}, or pass --allow-unfinished to `{verb}` its latest checkpoint")
