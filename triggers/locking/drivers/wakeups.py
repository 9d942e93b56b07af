"""Waking this process's waiters for a lock when one of its threads releases it.

A waiter for a lock that the cache cannot signal polls it, sleeping a
growing pause between tries (up to tens of milliseconds). When the holder
is another thread of the same process (sibling tasks on the threading
runner, readied by one fire), that sleep is mostly time the lock sat free.
A driver that calls :meth:`Wakeups.released` after a release lets the
longest-waiting of those threads try at once; waiters for a holder in
another process still find the lock free by polling, as before. Nothing
here decides who holds a lock: a wake-up is only an earlier try.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable

from ...process_state import register_state

__all__ = ["Wakeups", "lock_wakeups"]

#: how many conditions the lock names are spread over
STRIPES = 64


class Wakeups:
    """Conditions this process's waiters sleep on, one per stripe of lock names."""

    def __init__(self) -> None:
        self._stripes = [threading.Condition() for _ in range(STRIPES)]
        if hasattr(os, "register_at_fork"):
            # A parent's thread may hold a condition's mutex at the fork.
            os.register_at_fork(after_in_child=self.reset)

    def _condition(self, name: Hashable) -> threading.Condition:
        return self._stripes[hash(name) % STRIPES]

    def wait(self, name: Hashable, seconds: float) -> None:
        """Sleep ``seconds``, or less if a thread of this process releases ``name``
        (or another lock of its stripe) meanwhile."""
        if seconds <= 0:
            return
        condition = self._condition(name)
        with condition:
            condition.wait(seconds)

    def released(self, name: Hashable) -> None:
        """Wake one thread waiting for ``name`` (it tries at once)."""
        condition = self._condition(name)
        with condition:
            condition.notify()

    def reset(self) -> None:
        """New conditions (a waiter on an old one sleeps out its pause)."""
        self._stripes = [threading.Condition() for _ in range(STRIPES)]


#: the waiters of this process, for drivers whose cache cannot signal a release
lock_wakeups = register_state(
    "lock wake-ups",
    Wakeups(),
    about="the conditions this process's lock waiters sleep on",
)
