"""Faults of the lock: a stale holder on LocMem, a failed read with the lock,
a holder paused inside the database cache's commit transaction.

Real caches, real threads and processes (paused with SIGSTOP); nothing here
asserts on durations, but every wait is bounded so that a test cannot hang.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import signal
import threading
import time
import traceback
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connections, router

from triggers import CacheStorageBackend
from triggers.cache_internals import database_cache_table, database_row_expiry, redis_codec
from triggers.errors import BackendUnavailable, StorageCorrupted
from triggers.locking import (
    CacheLock,
    LockAcquisitionFailed,
    LockBackendError,
    LockLost,
    Writes,
    acquire_lock,
)

FORK = multiprocessing.get_context("fork")
#: the longest any one wait of a test may take before the test fails
BOUND = 20.0


# --------------------------------------------------------------------------- helpers


def run_bounded(target: Any, *args: Any, bound: float = BOUND) -> dict[str, Any]:
    """``target(*args)`` in a thread; what it returned or raised, failing the test
    if it has not finished within ``bound`` seconds."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["result"] = target(*args)
        except BaseException as exc:  # the test looks at it
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"{target.__name__} still running after {bound}s"
    return outcome


def locmem_raw(alias: str, uid: str) -> dict[str, bytes]:
    """Every pickled value LocMem holds for session ``uid``, as stored."""
    cache = caches[alias]
    with cache._lock:
        return {key: value for key, value in cache._cache.items() if uid in key}


# --------------------------------------------------------------------------- LocMem: a stale holder


def test_a_stale_holder_on_locmem_writes_nothing_over_its_successor(uid):
    """Thread A saves, then is held in its block past its ttl; thread B takes
    the lock and commits. A's release raises LockLost and what B stored stays,
    byte for byte."""
    entered, b_done = threading.Event(), threading.Event()

    def holder_a() -> None:
        store = CacheStorageBackend(uid, cache="locmem")
        with store.acquire_lock(ttl=0.3, block=5):
            store.metadata["writer"] = "A"
            store.save()
            entered.set()
            assert b_done.wait(BOUND), "B never committed"

    def holder_b() -> dict[str, bytes]:
        assert entered.wait(BOUND)
        store = CacheStorageBackend(uid, cache="locmem")
        with store.acquire_lock(ttl=30, block=10):  # waits for A's lock to expire
            store.metadata["writer"] = "B"
            store.save()
        stored = locmem_raw("locmem", uid)
        b_done.set()
        return stored

    outcome_b: dict[str, Any] = {}
    thread_b = threading.Thread(target=lambda: outcome_b.update(run_bounded(holder_b)))
    thread_b.start()
    outcome_a = run_bounded(holder_a)
    thread_b.join(BOUND)
    assert "error" not in outcome_b, outcome_b
    assert isinstance(outcome_a.get("error"), LockLost), outcome_a
    assert locmem_raw("locmem", uid) == outcome_b["result"]
    assert CacheStorageBackend(uid, cache="locmem").metadata["writer"] == "B"


def test_a_stale_lock_on_locmem_writes_nothing_and_releases_nothing(uid):
    """The same at the lock's level: a lock taken over after its ttl; the
    stale holder's release with writes raises LockLost, writes nothing, and
    leaves the successor's lock in place."""
    key, data = f"lock:{uid}", f"data:{uid}"
    cache = caches["locmem"]
    stale = CacheLock(key, "locmem", ttl=0.3)
    stale.acquire(block=False)
    successor = CacheLock(key, "locmem", ttl=30)
    successor.acquire(block=10)  # once the stale one expired
    successor.write(Writes(({data: "successor"},)))
    before = locmem_raw("locmem", uid)
    with pytest.raises(LockLost):
        stale.release(Writes(({data: "stale"},)))
    assert locmem_raw("locmem", uid) == before
    assert cache.get(data) == "successor"
    with pytest.raises(LockAcquisitionFailed):
        CacheLock(key, "locmem", ttl=30).acquire(block=False)
    assert successor.release() is True
