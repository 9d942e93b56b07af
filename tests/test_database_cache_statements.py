"""What a fire and a task run cost on the database cache (PostgreSQL), in statements.

A commit on the database cache takes the lock, reads, then writes under it in
one transaction that starts with the owner check. On PostgreSQL taking a free
lock is one statement and the writes with the release are another, so a
commit is four statements whatever it writes (counted, not timed).
"""

from __future__ import annotations

import threading

import pytest
from django.core.cache import caches
from django.db import connections, router

from tests.runner_support import behave
from triggers import CacheStorageBackend, TriggerManager
from triggers.cache_internals import database_cache_table
from triggers.locking import CacheLock, lock_driver
from triggers.locking.drivers.wakeups import Wakeups
from triggers.locking.writes import Writes

pytestmark = pytest.mark.db_cache

#: a commit: take the lock, read, the owner check, the writes with the release
PER_COMMIT = 4


@pytest.fixture
def db_pg(request):
    from .conftest import prepare_cache

    return prepare_cache(request, "db_pg")


class Statements:
    """The statements sent on the cache's connection (this thread's), by first word."""

    def __init__(self, alias):
        model, _ = database_cache_table(caches[alias])
        self.connection = connections[router.db_for_write(model)]
        self.sent = []

    def __call__(self, execute, sql, params, many, context):
        self.sent.append(sql.split(None, 1)[0].upper())
        return execute(sql, params, many, context)

    def __enter__(self):
        self._wrapping = self.connection.execute_wrapper(self)
        self._wrapping.__enter__()
        return self.sent

    def __exit__(self, *exc):
        return self._wrapping.__exit__(*exc)


def test_a_fire_and_its_sync_task_runs_cost_four_statements_a_commit(db_pg, uid, settings):
    settings.TRIGGERS_CACHE_ALIAS = db_pg
    manager = TriggerManager(CacheStorageBackend(uid, cache=db_pg))
    manager.update_configuration(
        {
            name: {"after": [after], "run": "tests.behave", "using": "sync",
                   "withParams": behave(**{"return": {"from": name}})}
            for name, after in {"t_a": "start", "t_b": "t_a", "t_c": "t_b"}.items()
        }
    )
    with Statements(db_pg) as sent:
        manager.fire("start", {"n": 1})
    # The fire, then two commits (running; finished and its result fired) a run.
    commits = 1 + 3 * 2
    assert len(sent) == commits * PER_COMMIT, sent
    # Per commit: the lock taken and the read (WITH ... INSERT, SELECT), the
    # owner check (UPDATE), the writes with the release (WITH ... DELETE, INSERT).
    assert sent.count("UPDATE") == commits
    statuses = {i.name: i.status for i in CacheStorageBackend(uid, cache=db_pg).iter_instances()}
    assert statuses == {"t_a#0": "finished", "t_b#0": "finished", "t_c#0": "finished"}


def test_a_key_written_twice_in_one_commit_keeps_its_last_value(db_pg, uid):
    cache = caches[db_pg]
    lock = CacheLock(f"lock:{uid}", db_pg, ttl=30)
    lock.acquire(block=5)
    with Statements(db_pg) as sent:
        lock.release(Writes(({f"a:{uid}": 1, f"b:{uid}": "x"}, {f"a:{uid}": 2})))
    assert len(sent) == 2  # the owner check, then one statement for every write and the release
    assert cache.get(f"a:{uid}") == 2 and cache.get(f"b:{uid}") == "x"
    assert cache.get(f"lock:{uid}") is None


def test_a_lock_taken_meanwhile_is_not_taken_twice(db_pg, uid):
    key = f"lock:{uid}"
    first = CacheLock(key, db_pg, ttl=30)
    first.acquire(block=5)
    driver = lock_driver(caches[db_pg])
    assert driver.try_acquire(key, "another", 30) is False
    assert driver.try_acquire(key, first.token, 30) is True  # its own token: held already
    first.release()
    assert driver.try_acquire(key, "another", 30) is True
    assert driver.release(key, "another") is True


def test_a_release_wakes_a_waiter_of_the_same_lock():
    wakeups = Wakeups()
    waiting = threading.Event()
    woken = []

    def wait():
        waiting.set()
        wakeups.wait(("default", "table", "lock:x"), 600)
        woken.append(True)

    thread = threading.Thread(target=wait)
    thread.start()
    waiting.wait(60)
    # The waiter may not be inside wait() yet: release until it is woken
    # (it would otherwise sleep its ten minutes out).
    for _ in range(1200):
        wakeups.released(("default", "table", "lock:x"))
        thread.join(0.05)
        if not thread.is_alive():
            break
    assert woken == [True]
