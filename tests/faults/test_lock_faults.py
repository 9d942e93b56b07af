"""Faults of the lock: a stale holder on LocMem, a failed read with the lock,
a holder paused inside the database cache's commit transaction.

Real caches, real threads and processes (paused with SIGSTOP); nothing here
asserts on durations, but every wait is bounded so that a test cannot hang.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import threading
import time
import traceback
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connections, router

from tests.faults.children import end_all, fork
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
    if thread.is_alive():
        import sys
        stack = "".join(traceback.format_stack(sys._current_frames()[thread.ident]))
        pytest.fail(f"{target.__name__} still running after {bound}s, at:\n{stack}")
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


# --------------------------------------------------------------------------- a failed read lets the lock go

#: what no cache can unpickle
GARBAGE = b"\x00not a pickle"


def store_raw(alias: str, key: str, raw: bytes) -> None:
    """Put ``raw`` under cache key ``key`` as stored bytes, below the cache's encoding."""
    cache = caches[alias]
    if alias == "locmem":
        made = cache.make_and_validate_key(key)
        with cache._lock:
            cache._cache[made] = raw
            cache._expire_info[made] = time.time() + 60
    elif alias in ("redis", "dredis"):
        codec = redis_codec(cache)
        codec.client().set(codec.make_key(key), raw, px=60_000)
    elif alias == "memcached":
        # flags=1: pymemcache's pickle_serde mark for a pickled value
        cache._cache.set(cache.make_and_validate_key(key), raw, expire=60, flags=1)
    else:
        model, table = database_cache_table(cache)
        connection = connections[router.db_for_write(model)]
        q = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {q(table)} ({q('cache_key')}, {q('value')}, {q('expires')})"
                " VALUES (%s, %s, %s)",
                [
                    cache.make_and_validate_key(key),
                    base64.b64encode(raw).decode("ascii"),
                    database_row_expiry(connection, time.time() + 60),
                ],
            )


def read_raw(alias: str, key: str) -> Any:
    """What is stored under ``key``, as stored (no decoding)."""
    cache = caches[alias]
    if alias == "locmem":
        with cache._lock:
            return cache._cache.get(cache.make_and_validate_key(key))
    if alias in ("redis", "dredis"):
        codec = redis_codec(cache)
        return codec.client().get(codec.make_key(key))
    if alias == "memcached":
        made = cache.make_and_validate_key(key)
        server = cache._cache._get_client(made)
        return server.raw_command(f"get {made}".encode(), b"END\r\n")
    model, table = database_cache_table(cache)
    connection = connections[router.db_for_write(model)]
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {q('value')} FROM {q(table)} WHERE {q('cache_key')} = %s",
            [cache.make_and_validate_key(key)],
        )
        return cursor.fetchone()


def test_a_head_that_does_not_decode_lets_the_lock_go(any_cache, uid):
    if any_cache == "memcached":
        pytest.skip("pymemcache reads a value it cannot unpickle as missing; see the next test")
    store = CacheStorageBackend(uid, cache=any_cache)
    store_raw(any_cache, store.keys.head, GARBAGE)
    before = read_raw(any_cache, store.keys.head)
    with pytest.raises(StorageCorrupted) as caught:
        with store.acquire_lock(ttl=60, block=0.5):
            pytest.fail("the block ran on a head that does not decode")
    assert repr(store.keys.head) in str(caught.value)
    # The lock went with the error: the next caller takes it at once.
    with acquire_lock(store.keys.lock, ttl=60, cache=any_cache, block=0.5) as lock:
        assert lock is not None and lock.held
    assert read_raw(any_cache, store.keys.head) == before  # left as it was


@pytest.mark.parametrize("alias", ["redis", "dredis"])
def test_a_redis_read_that_fails_inside_the_acquiring_script_lets_the_lock_go(request, alias, uid):
    """A head of the wrong type makes the script fail after its SET NX took the lock."""
    from tests.conftest import prepare_cache

    cache = caches[prepare_cache(request, alias)]
    store = CacheStorageBackend(uid, cache=alias)
    codec = redis_codec(cache)
    codec.client().rpush(codec.make_key(store.keys.head), b"a list, not a value")
    try:
        with pytest.raises(LockBackendError):
            with store.acquire_lock(ttl=60, block=0.5):
                pytest.fail("the block ran on a head that cannot be read")
        with acquire_lock(store.keys.lock, ttl=60, cache=alias, block=0.5) as lock:
            assert lock is not None and lock.held
        assert codec.client().lrange(codec.make_key(store.keys.head), 0, -1) == [
            b"a list, not a value"
        ]
    finally:
        codec.client().delete(codec.make_key(store.keys.head))


@pytest.mark.parametrize("alias", ["redis", "dredis"])
def test_in_the_single_layout_on_redis_both_locks_go_when_the_head_does_not_decode(
    request, alias, uid
):
    """There the storage takes Triggers 2.x's lock too: neither is left held."""
    from tests.conftest import prepare_cache
    from triggers.locking.drivers.redis_legacy import legacy_lock_key

    prepare_cache(request, alias)
    store = CacheStorageBackend(uid, cache=alias, layout="single")
    store_raw(alias, store.keys.head, GARBAGE)
    with pytest.raises(StorageCorrupted, match=repr(store.keys.head)):
        with store.acquire_lock(ttl=60, block=0.5):
            pytest.fail("the block ran on a head that does not decode")
    codec = redis_codec(caches[alias])
    assert codec.client().get(codec.make_key(store.keys.lock)) is None
    assert codec.client().get(legacy_lock_key(store.get_lock_name())) is None
    assert read_raw(alias, store.keys.head) == GARBAGE


class FailingHook(CacheStorageBackend):
    """A storage whose reaction to taking the lock fails."""

    def _on_lock_acquired(self, prefetched: dict[str, Any]) -> None:
        raise RuntimeError("the hook failed")


def test_a_failing_lock_acquired_hook_lets_the_lock_go(any_cache, uid):
    store = FailingHook(uid, cache=any_cache)
    with pytest.raises(RuntimeError, match="the hook failed"):
        with store.acquire_lock(ttl=60, block=0.5):
            pytest.fail("the block ran after its hook failed")
    with acquire_lock(store.keys.lock, ttl=60, cache=any_cache, block=0.5) as lock:
        assert lock is not None and lock.held


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_memcached_failing_between_the_add_and_the_read_lets_the_lock_go(uid):
    """Two servers: the lock's key on the live one, the head's on one that is
    down. The add succeeds, the read that follows it fails."""
    from django.conf import settings
    from django.core.cache.backends.memcached import PyMemcacheCache

    from tests.conftest import require_service

    require_service("memcached")
    dead = f"127.0.0.1:{free_port()}"
    # Retry the dead server at every call, rather than reading it as empty.
    options = {"retry_attempts": 10**6, "retry_timeout": 0, "connect_timeout": 1, "timeout": 1}
    cache = PyMemcacheCache([settings.MEMCACHED, dead], {"OPTIONS": options})
    live_only = PyMemcacheCache(settings.MEMCACHED, {})
    for attempt in range(200):
        store = CacheStorageBackend(f"{uid}-{attempt}", cache=cache)
        made = [cache.make_and_validate_key(k) for k in (store.keys.lock, store.keys.head)]
        servers = [cache._cache.hasher.get_node(key) for key in made]
        if servers[0] != dead and servers[1] == dead:
            break
    else:
        pytest.fail("no uid puts the lock on the live server and the head on the dead one")
    try:
        with pytest.raises(BackendUnavailable):
            with store.acquire_lock(ttl=60, block=0.5):
                pytest.fail("the block ran though the head could not be read")
        assert live_only.get(store.keys.lock) is None  # let go
        with acquire_lock(store.keys.lock, ttl=60, cache=cache, block=0.5) as lock:
            assert lock is not None and lock.held
    finally:
        live_only.delete(store.keys.lock)
        cache.close()
        live_only.close()


# --------------------------------------------------------------------------- the database cache: a holder paused in its commit

#: what the owner check of a commit transaction says, whatever the vendor
OWNER_CHECK = '= "expires" WHERE'


def database_row(alias: str, key: str) -> tuple[Any, ...] | None:
    """The raw row (value, expires) of cache key ``key`` in the database cache."""
    cache = caches[alias]
    model, table = database_cache_table(cache)
    connection = connections[router.db_for_write(model)]
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {q('value')}, {q('expires')} FROM {q(table)} WHERE {q('cache_key')} = %s",
            [cache.make_and_validate_key(key)],
        )
        row = cursor.fetchone()
    return None if row is None else tuple(row)


def _holder_pausing_in_its_commit(alias: str, key: str, data: str, ttl: float, report: str) -> None:
    """Take the lock, then commit a write, stopping this process (SIGSTOP)
    right after the commit transaction's owner check: its row is locked."""
    lock = CacheLock(key, alias, ttl=ttl)
    lock.acquire(block=5)
    connection = connections[router.db_for_write(database_cache_table(caches[alias])[0])]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            with open(report + ".pid", "w") as out:
                out.write(str(cursor.fetchone()[0]))

    def pause_after_owner_check(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if OWNER_CHECK in sql:
            os.kill(os.getpid(), signal.SIGSTOP)
        return result

    with connection.execute_wrapper(pause_after_owner_check):
        try:
            lock.release(Writes(({data: "stale"},)))
            outcome = "written"
        except LockLost:
            outcome = "LockLost"
        except BackendUnavailable as exc:
            outcome = f"BackendUnavailable outcome_unknown={exc.outcome_unknown}"
    with open(report, "w") as out:
        out.write(outcome)


def _child(target: Any, *args: Any) -> None:
    try:
        target(*args)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def start_child(target: Any, *args: Any) -> Any:
    """``target(*args)`` in a forked process that shares no connection with this one,
    exiting 0 if it returns, 1 (its traceback printed) if it raises."""
    return fork(_child, target, *args)


def wait_stopped(process: Any) -> None:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        with open(f"/proc/{process.pid}/stat") as stat:
            if stat.read().rpartition(")")[2].split()[0] == "T":
                return
        assert process.is_alive(), "the holder ended before it paused"
        time.sleep(0.02)
    pytest.fail("the holder never paused inside its commit")


def take_and_write(alias: str, key: str, data: str, block: float) -> str:
    """Take the lock within ``block``, write ``data`` and let go; what happened."""
    lock = CacheLock(key, alias, ttl=30)
    try:
        lock.acquire(block=block)
    except LockAcquisitionFailed:
        return "not taken"
    lock.release(Writes(({data: "fresh"},)))
    return "taken"


@pytest.fixture
def paused_holder(tmp_path):
    """Start a holder that pauses in its commit; SIGKILLed at the end if still there."""
    started: list[Any] = []

    def start(alias: str, key: str, data: str, ttl: float) -> tuple[Any, Any]:
        report = tmp_path / "outcome"
        process = start_child(_holder_pausing_in_its_commit, alias, key, data, ttl, str(report))
        started.append(process)
        wait_stopped(process)
        return process, report

    yield start
    end_all(started, BOUND)


@pytest.mark.parametrize("alias", ["db_pg"])
def test_a_holder_paused_in_its_commit_on_postgresql_blocks_no_one_past_its_ttl(
    request, alias, uid, paused_holder
):
    from tests.conftest import prepare_cache

    prepare_cache(request, alias)
    key, data = f"lock:{uid}", f"data:{uid}"
    caches[alias].set(data, "initial", timeout=60)
    holder, report = paused_holder(alias, key, data, 2)
    # A waiter returns within its limit, the lock taken or not: it never
    # waits on the paused transaction's row lock.
    first = run_bounded(take_and_write, alias, key, data, 2, bound=10)
    assert first.get("result") in ("taken", "not taken"), first
    # Past the paused holder's ttl, the server has ended its transaction.
    second = run_bounded(take_and_write, alias, key, data, 8, bound=12)
    assert first.get("result") == "taken" or second.get("result") == "taken", (first, second)
    after = run_bounded(database_row, alias, data)["result"]
    assert after is not None and caches[alias].get(data) == "fresh"
    os.kill(holder.pid, signal.SIGCONT)
    holder.join(BOUND)
    assert holder.exitcode == 0
    assert report.read_text() in ("LockLost", "BackendUnavailable outcome_unknown=False")
    assert run_bounded(database_row, alias, data)["result"] == after  # it wrote nothing
    assert caches[alias].get(data) == "fresh"


@pytest.mark.parametrize("alias", ["db_pg"])
def test_a_holder_whose_session_is_ended_in_its_commit_knows_nothing_was_written(
    request, alias, uid, paused_holder
):
    """The server ends the paused holder's session (pg_terminate_backend, as an
    administrator would): on resuming it gets BackendUnavailable saying the
    outcome is known, nothing is written, and its lock is let go."""
    from tests.conftest import prepare_cache

    prepare_cache(request, alias)
    key, data = f"lock:{uid}", f"data:{uid}"
    caches[alias].set(data, "initial", timeout=60)
    before = database_row(alias, data)
    holder, report = paused_holder(alias, key, data, 60)
    backend_pid = int((report.parent / "outcome.pid").read_text())

    def terminate() -> bool:
        with connections["pg"].cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
            return bool(cursor.fetchone()[0])

    assert run_bounded(terminate)["result"] is True
    os.kill(holder.pid, signal.SIGCONT)
    holder.join(BOUND)
    assert holder.exitcode == 0
    assert report.read_text() == "BackendUnavailable outcome_unknown=False"
    assert run_bounded(database_row, alias, data)["result"] == before
    # Its lock went with the error, though its ttl is a minute.
    assert run_bounded(take_and_write, alias, key, data, 0.5)["result"] == "taken"


@pytest.mark.parametrize("alias", ["db_sqlite"])
def test_a_holder_paused_in_its_commit_on_sqlite_keeps_waiters_within_their_limit(
    request, alias, uid, paused_holder
):
    """SQLite has one writer at a time for the whole file: a paused holder keeps
    every writer out, but a waiter still returns within its limit (not after the
    connection's busy timeout), and no one takes the lock meanwhile."""
    from tests.conftest import prepare_cache

    prepare_cache(request, alias)
    key, data = f"lock:{uid}", f"data:{uid}"
    caches[alias].set(data, "initial", timeout=60)
    holder, report = paused_holder(alias, key, data, 1)
    time.sleep(2.5)  # the holder's ttl has passed: a waiter now tries to write
    waiter = run_bounded(take_and_write, alias, key, data, 1, bound=12)
    assert waiter.get("result") == "not taken" or isinstance(
        waiter.get("error"), LockBackendError
    ), waiter
    os.kill(holder.pid, signal.SIGCONT)
    holder.join(BOUND)
    assert holder.exitcode == 0
    # No one could take the lock while it sat in its commit: its write was safe to land.
    assert report.read_text() == "written"
    assert caches[alias].get(data) == "stale"
    assert run_bounded(take_and_write, alias, key, data, 5, bound=12).get("result") == "taken"


@pytest.mark.parametrize("alias", ["db_pg"])
def test_no_transaction_stays_open_while_the_database_lock_is_held(request, alias, uid):
    from tests.conftest import prepare_cache

    prepare_cache(request, alias)
    store = CacheStorageBackend(uid, cache=alias)
    connection = connections[router.db_for_write(database_cache_table(caches[alias])[0])]
    with store.acquire_lock(ttl=30, block=5):
        assert not connection.in_atomic_block
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]

        def state_of_holder() -> Any:
            with connections[connection.alias].cursor() as cursor:
                cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid])
                return cursor.fetchone()[0]

        assert run_bounded(state_of_holder)["result"] == "idle"
