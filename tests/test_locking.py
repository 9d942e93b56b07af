"""Locking over every Django cache, through the public API of triggers.locking.

Every test runs against real caches (see conftest.py). Holders in other
processes are real forked processes; nothing here asserts on durations.
"""

import contextlib
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

#: the short ttl of every lock that is to expire, and the wait for them
EXPIRY_TTL = 1
#: how long a successor may wait for an expired lock to go
EXPIRY_BLOCK = 5


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
    """Take the lock with the short ttl, then die without releasing it."""
    CacheLock(key, alias, ttl=EXPIRY_TTL).acquire(block=False)
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


def test_ttl_false_takes_no_lock(any_cache, key):
    with acquire_lock(key, ttl=False, cache=any_cache) as lock:
        assert lock is None
        assert not is_held(key, any_cache)
    with acquire_lock(key, cache=any_cache):
        # no lock taken, so a held one does not stand in the way
        with acquire_lock(key, ttl=False, cache=any_cache, block=False) as lock:
            assert lock is None


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


# --------------------------------------------------------------------------- expiry
#
# Every scenario that needs a lock to expire is set up at once, its locks
# taken together with the same short ttl, so that each cache waits for
# expiry once rather than once per scenario. Each scenario is a pair of
# helpers: one sets it up before the wait, the other checks it after.
# Memcached and the database caches count expiry in whole seconds, so a
# lock may outlive the wait by up to a second: the first check after the
# wait takes its lock with a blocking acquisition, which waits for that.


def _crashed_holder_before(cache, key):
    """A holder takes ``key`` with the short ttl, then dies without releasing it."""
    if cache == "locmem":
        # One process: the crashed holder is a thread that never releases.
        lock = CacheLock(key, cache, ttl=EXPIRY_TTL)
        holder = threading.Thread(target=lock.acquire, kwargs={"block": False})
        holder.start()
        holder.join()
    else:
        [exitcode] = join_all([start_process(_take_and_crash, cache, key)])
        assert exitcode == 0, "the child could not take the lock"


def _crashed_holder_after(cache, key):
    """The crashed holder's lock expired with its ttl: another takes it."""
    with acquire_lock(key, cache=cache, block=EXPIRY_BLOCK):
        assert is_held(key, cache), "crashed holder: its successor's lock is not held"
    assert not is_held(key, cache), "crashed holder: its successor's lock outlived its release"


def _hold_past_the_ttl(cache, key):
    """A holder takes ``key`` with the short ttl, and keeps it past that."""
    old = CacheLock(key, cache, ttl=EXPIRY_TTL)
    old.acquire(block=False)
    return old


def _stale_release_after(cache, key, old):
    """A holder whose lock expired cannot release its successor's."""
    with acquire_lock(key, cache=cache, block=EXPIRY_BLOCK):  # the old lock expired
        assert old.release() is False, "stale release: an expired holder claims to have released"
        assert is_held(key, cache), "stale release: an expired holder released its successor's lock"
    assert not is_held(key, cache), "stale release: the successor's lock outlived its release"


def _stale_writes_after(cache, key, old, value_key):
    """The writes of a holder whose lock expired raise LockLost (and are refused
    where writes are fenced)."""
    with acquire_lock(key, cache=cache, block=EXPIRY_BLOCK):
        with pytest.raises(LockLost) as info:
            old.release(Writes(({value_key: "stale"},)))
        assert info.value.key == key, "stale writes: LockLost names another key"
        assert key in str(info.value), "stale writes: LockLost's message does not name the key"
        assert is_held(key, cache), "stale writes: an expired holder released its successor's lock"
    if cache in FENCED_CACHES:
        assert caches[cache].get(value_key) is None, "stale writes: the expired write was made"
    caches[cache].delete(value_key)


def _stale_storage_before(cache, uid):
    """A storage saves under its lock, taken with the short ttl, and keeps the
    lock past that: the save is written when the block ends, closing ``stack``."""
    late = CacheStorageBackend(uid, cache=cache)
    stack = contextlib.ExitStack()
    stack.enter_context(late.acquire_lock(ttl=EXPIRY_TTL))
    late.update_configuration({"t_old": {"after": ["go"], "run": "noop"}})
    late.save()
    return late, stack


def _stale_storage_after(cache, uid, late, stack):
    """A storage whose lock expired cannot save over its successor's save."""
    successor = CacheStorageBackend(uid, cache=cache)
    with successor.acquire_lock(block=EXPIRY_BLOCK):  # the first lock expired
        successor.update_configuration({"t_new": {"after": ["go"], "run": "noop"}})
        successor.save()
    with pytest.raises(LockLost):
        stack.close()  # the late storage's block ends, its save with it
    assert not is_held(late.keys.lock, cache), "stale storage: its lock outlived the block"
    if cache in FENCED_CACHES:
        tasks = list(CacheStorageBackend(uid, cache=cache).tasks)
        assert tasks == ["t_new"], f"stale storage: saved over its successor: {tasks}"


def _ttl_none_and_true_before(short_default_cache, uid):
    """``ttl=None`` and ``ttl=True`` locks, in a cache whose default timeout is the short ttl."""
    forever = CacheLock(f"forever:{uid}", short_default_cache, ttl=None)
    default = CacheLock(f"default:{uid}", short_default_cache, ttl=True)
    forever.acquire(block=False)
    default.acquire(block=False)
    return forever


def _ttl_none_and_true_after(short_default_cache, uid, forever):
    """ttl=True lasts the cache's default timeout; ttl=None never expires."""
    # The default timeout lets the ttl=True lock go...
    with acquire_lock(f"default:{uid}", cache=short_default_cache, block=EXPIRY_BLOCK):
        pass
    # ...by which time the one with no expiry is held all the same.
    assert is_held(f"forever:{uid}", short_default_cache), "ttl=None: the lock expired"
    assert forever.release() is True, "ttl=None: its holder could not release it"
    assert not is_held(f"forever:{uid}", short_default_cache), "ttl=None: held after its release"


def test_locks_expire_with_their_ttl(any_cache, uid):
    """Each scenario whose lock expires, on one wait: a crashed holder's lock
    goes; a holder whose lock expired can neither release its successor's
    lock, nor write (LockLost), nor, as a storage, save over its successor;
    ttl=True is the cache's default timeout and ttl=None never expires."""
    short_default_cache = sibling_cache(any_cache, TIMEOUT=EXPIRY_TTL)
    forever = None
    try:
        # First, as it forks: the others' connections are not closed under them.
        _crashed_holder_before(any_cache, f"crashed:{uid}")
        stale_release = _hold_past_the_ttl(any_cache, f"release:{uid}")
        stale_writes = _hold_past_the_ttl(any_cache, f"writes:{uid}")
        late, late_block = _stale_storage_before(any_cache, uid)
        forever = _ttl_none_and_true_before(short_default_cache, uid)

        time.sleep(EXPIRY_TTL)  # the one wait for every lock above to expire

        _crashed_holder_after(any_cache, f"crashed:{uid}")
        _stale_release_after(any_cache, f"release:{uid}", stale_release)
        _stale_writes_after(any_cache, f"writes:{uid}", stale_writes, f"value:{uid}")
        _stale_storage_after(any_cache, uid, late, late_block)
        _ttl_none_and_true_after(short_default_cache, uid, forever)
    finally:
        if forever is not None and forever.held:  # a failed check leaves no lock held for ever
            with contextlib.suppress(Exception):
                forever.release()
        short_default_cache.close()


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
