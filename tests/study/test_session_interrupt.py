"""An interrupt of the study's parent process reaches the isolated training child."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from biorep.study.session import interrupt_workers


def test_interrupt_reaches_the_worker_and_the_pool_winds_down() -> None:
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(time.sleep, 120)
    deadline = time.monotonic() + 30
    while not pool._processes and time.monotonic() < deadline:  # the worker is spawned lazily
        time.sleep(0.1)
    time.sleep(2.0)  # let it reach the sleep
    procs = list(pool._processes.values())
    t0 = time.monotonic()
    interrupt_workers(pool, future, grace_s=30)
    assert future.done() and time.monotonic() - t0 < 30  # not the 120 s the work would take
    assert isinstance(future.exception(), KeyboardInterrupt)  # the child was interrupted, not killed
    for proc in procs:
        proc.join(10)
        assert not proc.is_alive()
