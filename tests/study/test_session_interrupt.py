"""An interrupt of the study's parent process reaches the isolated training child."""

from __future__ import annotations

import multiprocessing
import signal
import time
from concurrent.futures import ProcessPoolExecutor

from biorep.study.session import interrupt_workers


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
        proc.join(10)
        assert not proc.is_alive()


def test_sigterm_while_waiting_on_a_training_child_is_an_interrupt() -> None:
    """A scheduler's SIGTERM to the study parent becomes the interrupt that winds the child down (the
    parent used to die and leave the child training as an orphan); outside, SIGTERM is as before."""
    import os

    import pytest

    from biorep.study.session import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once
    assert signal.getsignal(signal.SIGTERM) is before
