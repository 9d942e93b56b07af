"""Forked processes of the fault tests: started sharing no connection with the
test process, and ended (resumed first, should they be paused) whatever the
test did."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import caches
from django.db import connections

FORK = multiprocessing.get_context("fork")


def fork(target: Callable[..., Any], *args: Any) -> Any:
    """``target(*args)`` in a forked process that shares no connection with this one."""
    connections.close_all()
    for cache in caches.all(initialized_only=True):
        cache.close()
    process = FORK.Process(target=target, args=args)
    process.start()
    return process


def end_all(processes: Iterable[Any], bound: float) -> None:
    """Kill every process still there (SIGCONT first, in case it is paused), and
    wait up to ``bound`` seconds for each."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGCONT)
            os.kill(process.pid, signal.SIGKILL)
        process.join(bound)
