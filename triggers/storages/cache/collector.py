"""The cyclic garbage collector paused while a large session is read whole.

Reading 10,000 records builds some 100,000 objects, none of them in a
cycle; the collector, triggered by the allocations, walks the growing heap
again and again meanwhile and doubles the time of the read. Pausing it for
the read (only above :data:`PAUSE_FROM` records) leaves it as it was after:
a process that turned it off keeps it off, concurrent readers share one
pause, and a child forked during a pause starts with the collector as it
was before.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

__all__ = ["PAUSE_FROM", "collector_paused"]

#: the number of records from which a read pauses the collector
PAUSE_FROM = 256


class CollectorPause:
    """One process's pause of the collector, shared by the threads reading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._resume = False
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        """End any pause (a forked child has none of its parent's readers)."""
        self._lock = threading.Lock()
        if self._readers and self._resume:
            gc.enable()
        self._readers, self._resume = 0, False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if not self._readers:
                self._resume = gc.isenabled()
                gc.disable()
            self._readers += 1
        try:
            yield
        finally:
            with self._lock:
                self._readers -= 1
                if not self._readers and self._resume:
                    gc.enable()


_pause = CollectorPause()


def collector_paused(records: int) -> contextlib.AbstractContextManager[None]:
    """A pause of the collector while ``records`` records are read (none for a few)."""
    return _pause.held() if records >= PAUSE_FROM else contextlib.nullcontext()
