"""An interrupt of the study's parent process reaches the isolated training child."""

from __future__ import annotations

import multiprocessing
import signal
import time
from concurrent.futures import ProcessPoolExecutor

from biorep.study.session import interrupt_workers, wait_exited


def test_interrupt_reaches_the_worker_and_the_pool_winds_down() -> None:
    # Lightning's Ctrl-C handling (in an earlier test of this process) leaves SIGINT ignored, and a
    # spawned child inherits an ignored signal: give this process (and so the worker) the default.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_a_sleeping_worker()
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_a_sleeping_worker() -> None:
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    # A first task waits until the worker has started (spawning takes seconds on a loaded machine; an
    # interrupt during its start-up kills it instead of interrupting the work); the idle worker then
    # takes the sleep at once.
    assert pool.submit(int, "7").result(timeout=120) == 7
    future = pool.submit(time.sleep, 120)
    time.sleep(2.0)  # let it reach the sleep
    procs = list(pool._processes.values())
    t0 = time.monotonic()
    interrupt_workers(pool, future, grace_s=30)
    assert future.done() and time.monotonic() - t0 < 60  # not the 120 s the work would take
    assert isinstance(future.exception(), KeyboardInterrupt)  # the child was interrupted, not killed
    for proc in procs:
        assert wait_exited(proc, 10)


def test_sigterm_while_waiting_on_a_training_child_is_an_interrupt() -> None:
    """A scheduler's SIGTERM to the study parent becomes the interrupt that winds the child down (the
    parent used to die and leave the child training as an orphan); outside, SIGTERM is as before."""
    import os

    import pytest

    from biorep.errors import Terminated
    from biorep.study.session import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated, match="SIGTERM") as caught:
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before


class _RacedWorker:
    """A pool worker as the thread that lost the waitpid race sees it: ``join`` returns at once and
    ``is_alive()`` says True until the other thread has recorded the exit ``alive_polls`` polls later."""

    def __init__(self, alive_polls: int) -> None:
        self.alive_polls = alive_polls

    def join(self, timeout: float | None = None) -> None:
        return None

    def is_alive(self) -> bool:
        self.alive_polls -= 1
        return self.alive_polls >= 0


def test_wait_exited_outlasts_the_join_race_and_gives_up_at_its_timeout() -> None:
    assert wait_exited(_RacedWorker(alive_polls=3), timeout=5.0)  # a bare join + is_alive said "alive"
    t0 = time.monotonic()
    assert not wait_exited(_RacedWorker(alive_polls=10**9), timeout=0.3)
    assert 0.3 <= time.monotonic() - t0 < 3.0
