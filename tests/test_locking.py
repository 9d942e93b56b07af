"""Locking over every Django cache, through the public API of triggers.locking.

Every test runs against real caches (see conftest.py). Holders in other
processes are real forked processes; nothing here asserts on durations.
"""

import multiprocessing
import os
import sqlite3
import threading
import time
import traceback

import pytest
from django.core.cache import BaseCache, caches
from django.core.cache.backends.base import InvalidCacheBackendError
from django.db import connections
from django.utils.module_loading import import_string

from tests.storage_support import sibling_cache
from triggers.locking import (
    CacheLock,
    Lockable,
    LockAcquisitionFailed,
    LockBackendError,
    LockLost,
    NotSupported,
    Writes,
    acquire_lock,
    resolve_cache,
)
from triggers.storages.cache import CacheStorageBackend

FORK = multiprocessing.get_context("fork")

#: caches whose writes under a lock are made only while the lock is still the writer's
FENCED_CACHES = {"redis", "dredis", "memcached", "db_sqlite", "db_pg"}
DB_CACHES = {"db_sqlite", "db_pg"}


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def key(uid):
    return f"lock:{uid}"


def is_held(key, cache):
    """Whether someone holds ``key``: a non-blocking attempt of our own fails."""
    try:
        with acquire_lock(key, cache=cache, block=False):
            return False
    except LockAcquisitionFailed:
        return True


def before_fork():
    """Leave no connection for a child to share (and close) with this process."""
    connections.close_all()
    for cache in caches.all(initialized_only=True):
        cache.close()


def _child_main(target, args):
    connections.close_all()
    try:
        target(*args)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def start_process(target, *args):
    """``target(*args)`` in a forked process; its exit code is 0 when it returned."""
    before_fork()
    process = FORK.Process(target=_child_main, args=(target, args))
    process.start()
    return process


def join_all(processes, timeout=120):
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
    return [process.exitcode for process in processes]


def run_threads(count, target, *args):
    errors = []

    def body():
        try:
            target(*args)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=body) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]


def _take_and_crash(alias, key):
    """Take the lock with a 1 s ttl, then die without releasing it."""
    CacheLock(key, alias, ttl=1).acquire(block=False)
    os._exit(0)


def _increment(cache, key, counter_key, times):
    """Read-sleep-write a counter, ``times`` times, each under the lock."""
    cache = resolve_cache(cache)
    for _ in range(times):
        with acquire_lock(key, cache=cache):
            value = cache.get(counter_key, 0)
            time.sleep(0.001)  # let the others run between the read and the write
            cache.set(counter_key, value + 1)
            # Django's DatabaseCache.set() drops a write silently when another
            # connection is writing to SQLite at that moment (a waiter trying
            # to take the lock, say). The write is made again until it shows,
            # so a count can only go missing if two processes held the lock.
            while cache.get(counter_key) != value + 1:
                cache.set(counter_key, value + 1)


# --------------------------------------------------------------------------- every cache


def test_acquire_and_release(any_cache, key):
    with acquire_lock(key, cache=any_cache) as lock:
        assert isinstance(lock, CacheLock)
        assert lock.key == key
        assert is_held(key, any_cache)
    assert not is_held(key, any_cache)
    # and again, now that it is free
    with acquire_lock(key, cache=any_cache, block=False):
        assert is_held(key, any_cache)
    assert not is_held(key, any_cache)


def test_lock_is_released_when_the_block_raises(any_cache, key):
    with pytest.raises(ZeroDivisionError):
        with acquire_lock(key, cache=any_cache):
            1 / 0
    assert not is_held(key, any_cache)


def test_non_blocking_acquisition_of_a_held_lock_fails_naming_the_key(any_cache, key):
    with acquire_lock(key, cache=any_cache):
        with pytest.raises(LockAcquisitionFailed) as info:
            with acquire_lock(key, cache=any_cache, block=False):
                pytest.fail("acquired a lock that is held")
    assert info.value.key == key
    assert key in str(info.value)
    assert not is_held(key, any_cache)


def test_wait_limit(any_cache, key):
    with acquire_lock(key, cache=any_cache):
        with pytest.raises(LockAcquisitionFailed) as info:
            with acquire_lock(key, cache=any_cache, block=0.3):
                pytest.fail("acquired a lock that is held")
    assert info.value.key == key
    assert key in str(info.value)
    assert "0.3" in str(info.value)


def test_only_the_holder_can_release(any_cache, key):
    with acquire_lock(key, cache=any_cache) as mine:
        intruder = CacheLock(key, any_cache)
        assert intruder.token != mine.token
        intruder.held = True  # it believes it holds the lock (say, its own expired)
        assert intruder.release() is False
        assert is_held(key, any_cache)
    assert not is_held(key, any_cache)


def test_a_holder_whose_lock_expired_cannot_release_its_successors(any_cache, key):
    old = CacheLock(key, any_cache, ttl=1)
    old.acquire(block=False)
    with acquire_lock(key, cache=any_cache, block=5):  # succeeds once the old lock expired
        assert old.release() is False
        assert is_held(key, any_cache)
    assert not is_held(key, any_cache)


def test_writes_of_a_holder_whose_lock_expired_raise_lock_lost(any_cache, key, uid):
    cache = caches[any_cache]
    old = CacheLock(key, any_cache, ttl=1)
    old.acquire(block=False)
    with acquire_lock(key, cache=any_cache, block=5):
        with pytest.raises(LockLost) as info:
            old.release(Writes(({f"value:{uid}": "stale"},)))
        assert info.value.key == key
        assert key in str(info.value)
        assert is_held(key, any_cache)
    if any_cache in FENCED_CACHES:
        assert cache.get(f"value:{uid}") is None  # the write was refused
    cache.delete(f"value:{uid}")


def test_a_storage_whose_lock_expired_cannot_save_over_its_successor(any_cache, uid):
    config = {"t_old": {"after": ["go"], "run": "noop"}}
    late = CacheStorageBackend(uid, cache=any_cache)
    with pytest.raises(LockLost):
        with late.acquire_lock(ttl=1):
            late.update_configuration(config)
            late.save()
            successor = CacheStorageBackend(uid, cache=any_cache)
            with successor.acquire_lock(block=5):  # once the first lock expired
                successor.update_configuration({"t_new": {"after": ["go"], "run": "noop"}})
                successor.save()
    assert not is_held(late.keys.lock, any_cache)
    if any_cache in FENCED_CACHES:
        assert list(CacheStorageBackend(uid, cache=any_cache).tasks) == ["t_new"]


def test_a_crashed_holders_lock_expires_with_its_ttl(any_cache, key):
    if any_cache == "locmem":
        # One process: the crashed holder is a thread that never releases.
        holder = threading.Thread(target=lambda: CacheLock(key, any_cache, ttl=1).acquire(block=False))
        holder.start()
        holder.join()
    else:
        [exitcode] = join_all([start_process(_take_and_crash, any_cache, key)])
        assert exitcode == 0, "the child could not take the lock"
    with acquire_lock(key, cache=any_cache, block=5):
        assert is_held(key, any_cache)
    assert not is_held(key, any_cache)


def test_ttl_false_takes_no_lock(any_cache, key):
    with acquire_lock(key, ttl=False, cache=any_cache) as lock:
        assert lock is None
        assert not is_held(key, any_cache)
    with acquire_lock(key, cache=any_cache):
        # no lock taken, so a held one does not stand in the way
        with acquire_lock(key, ttl=False, cache=any_cache, block=False) as lock:
            assert lock is None


def test_ttl_none_never_expires_and_ttl_true_is_the_caches_default_timeout(any_cache, uid):
    cache = sibling_cache(any_cache, TIMEOUT=1)
    forever = CacheLock(f"forever:{uid}", cache, ttl=None)
    default = CacheLock(f"default:{uid}", cache, ttl=True)
    try:
        forever.acquire(block=False)
        default.acquire(block=False)
        # The default timeout (1 s) lets the second one go...
        with acquire_lock(f"default:{uid}", cache=cache, block=5):
            pass
        # ...by which time the first one, with no expiry, is held all the same.
        assert is_held(f"forever:{uid}", cache)
        assert forever.release() is True
        assert not is_held(f"forever:{uid}", cache)
    finally:
        cache.close()


@pytest.mark.parametrize("ttl", [0, -1, "10", 1j])
def test_bad_ttl(key, ttl):
    with pytest.raises(ValueError, match="ttl"):
        with acquire_lock(key, ttl=ttl, cache="locmem"):
            pass


@pytest.mark.parametrize("block", [-1, "yes", None])
def test_bad_block(key, block):
    with pytest.raises(ValueError, match="block"):
        with acquire_lock(key, cache="locmem", block=block):
            pass
    assert not is_held(key, "locmem")


# --------------------------------------------------------------------------- contention


def test_processes_never_hold_the_lock_together(shared_cache, key, uid):
    cache = caches[shared_cache]
    if shared_cache in DB_CACHES:
        # Past MAX_ENTRIES rows, Django's set() culls the table in key order,
        # a held lock included; earlier tests leave rows behind.
        cache = sibling_cache(shared_cache, OPTIONS={"MAX_ENTRIES": 10**9})
    counter = f"counter:{uid}"
    cache.set(counter, 0)
    processes = [start_process(_increment, cache, key, counter, 50) for _ in range(4)]
    assert join_all(processes) == [0, 0, 0, 0]
    assert cache.get(counter) == 200
    assert not is_held(key, cache)
    cache.delete(counter)


def test_threads_never_hold_the_lock_together_on_locmem(key, uid):
    counter = f"counter:{uid}"
    caches["locmem"].set(counter, 0)
    run_threads(8, _increment, "locmem", key, counter, 100)
    assert caches["locmem"].get(counter) == 800


# --------------------------------------------------------------------------- unsupported caches


@pytest.mark.parametrize(
    ("alias", "class_name"), [("file", "FileBasedCache"), ("dummy", "DummyCache")]
)
def test_caches_without_an_atomic_add_are_refused(alias, class_name, key, uid):
    assert issubclass(NotSupported, TypeError)
    with pytest.raises(NotSupported) as info:
        with acquire_lock(key, cache=alias):
            pytest.fail("locked on a cache that cannot hold a lock")
    message = str(info.value)
    assert class_name in message
    assert "Redis" in message and "Memcached" in message and "database cache" in message
    # The same through a storage, and through a cache object instead of an alias.
    with pytest.raises(NotSupported, match=class_name):
        with CacheStorageBackend(uid, cache=caches[alias]).acquire_lock():
            pass


# --------------------------------------------------------------------------- backend errors


@pytest.mark.db_cache
def test_a_briefly_locked_database_is_retried(key):
    cache = caches["db_sqlite"]
    path = connections["default"].settings_dict["NAME"]
    connection = connections["default"]
    connection.ensure_connection()
    # Let "database is locked" reach the lock at once, rather than SQLite
    # waiting for it: the lock's own retries are what is under test.
    connection.connection.execute("PRAGMA busy_timeout = 0")
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # a write transaction: no one else may write
        releaser = threading.Timer(0.5, blocker.execute, ["ROLLBACK"])
        releaser.start()
        try:
            with acquire_lock(key, cache=cache, block=False):
                assert is_held(key, cache)
        finally:
            releaser.join()
    finally:
        blocker.close()
        connection.close()
    assert not is_held(key, cache)


@pytest.mark.parametrize(
    "backend",
    [
        "django_redis.cache.RedisCache",
        "django.core.cache.backends.redis.RedisCache",
    ],
)
def test_a_cache_that_keeps_failing_raises_lock_backend_error(backend, key):
    cache = import_string(backend)("redis://127.0.0.1:1/0", {})  # nothing listens there
    with pytest.raises(LockBackendError) as info:
        with acquire_lock(key, cache=cache, block=False):
            pytest.fail("locked on a cache that is not there")
    assert info.value.__cause__ is not None
    assert key in str(info.value)


def test_a_memcached_that_is_not_there_raises_lock_backend_error(key):
    cache = import_string("django.core.cache.backends.memcached.PyMemcacheCache")("127.0.0.1:1", {})
    with pytest.raises(LockBackendError) as info:
        with acquire_lock(key, cache=cache):
            pytest.fail("locked on a cache that is not there")
    assert info.value.__cause__ is not None


# --------------------------------------------------------------------------- Lockable


class Session(Lockable):
    """The smallest Lockable: a name and a cache."""

    def __init__(self, name, cache="locmem"):
        self.name = name
        self.cache = cache

    def get_lock_name(self):
        return f"session:{self.name}:lock"

    def get_lock_backend(self):
        return self.cache


def test_lockable_is_reentrant_within_a_thread(uid):
    session = Session(uid)
    assert session.get_lock_name() == f"session:{uid}:lock"
    assert not session.has_lock
    with session.acquire_lock() as held:
        assert held is session
        assert session.has_lock
        with session.acquire_lock(block=False):
            assert session.has_lock
        assert session.has_lock
        assert is_held(session.get_lock_name(), "locmem")
    assert not session.has_lock
    assert not is_held(session.get_lock_name(), "locmem")


def test_lockable_is_not_shared_with_other_threads(uid):
    session = Session(uid)
    seen = {}

    def other():
        seen["has_lock"] = session.has_lock
        try:
            with session.acquire_lock(block=False):
                seen["acquired"] = True
        except LockAcquisitionFailed as exc:
            seen["error"] = exc

    with session.acquire_lock():
        run_threads(1, other)
    assert seen["has_lock"] is False
    assert "acquired" not in seen
    assert seen["error"].key == session.get_lock_name()


def test_lockable_makes_another_thread_wait(uid):
    session = Session(uid)
    acquired = threading.Event()

    def other():
        with session.acquire_lock():
            acquired.set()

    with session.acquire_lock():
        thread = threading.Thread(target=other)
        thread.start()
        assert not acquired.wait(0.3), "another thread got the lock while this one held it"
    assert acquired.wait(10)
    thread.join(10)
    assert not session.has_lock


def test_lockable_on_every_cache(any_cache, uid):
    session = Session(uid, cache=any_cache)
    with session.acquire_lock(), session.acquire_lock():
        assert is_held(session.get_lock_name(), any_cache)
    assert not is_held(session.get_lock_name(), any_cache)


def test_lockable_needs_a_lock_name():
    with pytest.raises(NotImplementedError):
        with Lockable().acquire_lock():
            pass


def test_storage_lock_name(uid):
    storage = CacheStorageBackend(uid, cache="locmem")
    assert storage.get_lock_name() == f"triggers:{uid}:lock"
    with storage.acquire_lock() as held:
        assert held is storage
        assert storage.has_lock
        # Held beside the session's other keys; the name is the one 2.x locks by.
        assert is_held(storage.keys.lock, "locmem")
        assert not is_held(f"triggers:{uid}:lock", "locmem")
    assert not storage.has_lock


@pytest.mark.parametrize("alias", ["file", "dummy"])
def test_ttl_false_needs_no_lock_so_any_cache_will_do(alias, uid):
    with acquire_lock(f"lock:{uid}", ttl=False, cache=alias) as lock:
        assert lock is None
    storage = CacheStorageBackend(uid, cache=alias)
    with storage.acquire_lock(ttl=False):
        storage.update_configuration({"t_one": {"after": ["go"], "run": "noop"}})
        storage.save()
    if alias == "file":
        assert list(CacheStorageBackend(uid, cache=alias).tasks) == ["t_one"]
        storage.cache.delete_many([storage.cache_key, storage.witness_key])


def test_storage_saves_under_ttl_false(any_cache, uid):
    """ttl=False takes no lock, but what is saved in the block is written all the same."""
    storage = CacheStorageBackend(uid, cache=any_cache)
    with storage.acquire_lock(ttl=False):
        assert not is_held(storage.get_lock_name(), any_cache)
        storage.update_configuration({"t_one": {"after": ["go"], "run": "noop"}})
        storage.save()
    assert list(CacheStorageBackend(uid, cache=any_cache).tasks) == ["t_one"]


# --------------------------------------------------------------------------- resolve_cache


def test_resolve_cache():
    assert resolve_cache("locmem") is caches["locmem"]
    cache = caches["default"]
    assert resolve_cache(cache) is cache
    assert isinstance(resolve_cache("default"), BaseCache)
    with pytest.raises(TypeError, match="42"):
        resolve_cache(42)
    with pytest.raises(TypeError):
        resolve_cache(None)
    with pytest.raises(InvalidCacheBackendError):
        resolve_cache("no-such-alias")


# --------------------------------------------------------------------------- docs/locking.rst


def test_the_page_includes_an_existing_example():
    from tests.test_docs_storage import DOCS

    text = (DOCS / "locking.rst").read_text(encoding="utf-8")
    included = [line.split("::", 1)[1].strip() for line in text.splitlines() if "literalinclude::" in line]
    assert included == ["examples/locking_work.py"]
    assert (DOCS / included[0]).is_file()


def test_the_pages_example():
    from tests.runner_support import load_example

    example = load_example("locking_work")
    store = caches["locmem"]
    store.delete("billing:total")
    try:
        assert example.add_to_total(5, cache="locmem") == 5
        run_threads(4, lambda: [example.add_to_total(1, cache="locmem") for _ in range(25)])
        assert store.get("billing:total") == 105
    finally:
        store.delete("billing:total")

    sent = []
    assert example.send_daily_report(lambda: sent.append("first"), cache="locmem") is True
    with acquire_lock("billing:daily-report:lock", cache="locmem"):
        assert example.send_daily_report(lambda: sent.append("second"), cache="locmem") is False
    assert sent == ["first"]


def test_the_pages_session_snippet(uid):
    from triggers import TriggerManager

    storage = CacheStorageBackend(uid, cache="locmem")
    manager = TriggerManager(storage)
    with storage.acquire_lock(block=10):
        if "t_report" not in storage.tasks:
            manager.update_configuration({"t_report": {"after": ["done"], "run": "reports.send"}})
    assert list(CacheStorageBackend(uid, cache="locmem").tasks) == ["t_report"]
