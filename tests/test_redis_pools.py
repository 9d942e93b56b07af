"""Django's RedisCache: task threads share one connection pool per settings (real Redis).

Django makes a cache object per thread, and its RedisCache a pool per cache
object; the lock driver takes the process's client of the same settings
instead, so a task thread does not open a connection of its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from tests.runner_support import behave
from triggers import CacheStorageBackend, TriggerManager
from triggers.cache_internals import redis_codec
from triggers.locking import lock_driver
from triggers.locking.drivers.redis_pools import pool_settings, shared_redis_clients
from triggers.process_state import reset_process_state
from triggers.tasks.runners import ThreadingTaskRunner

RUNS = 12


@pytest.fixture
def dredis(request):
    from .conftest import prepare_cache

    return prepare_cache(request, "dredis")


@contextlib.contextmanager
def counted_connections():
    """Counts the connections redis-py's pools make (each is opened on first use)."""
    from redis.connection import ConnectionPool

    made = []
    original = ConnectionPool.make_connection

    def counting(self):
        made.append(self)
        return original(self)

    ConnectionPool.make_connection = counting
    try:
        yield made
    finally:
        ConnectionPool.make_connection = original


def _in_thread(work):
    out = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join()
    return out[0]


def _client(location, **options):
    """The client a new RedisCache object of these settings makes."""
    return redis_codec(RedisCache(location, {"OPTIONS": options})).client()


def test_threaded_task_runs_share_one_connection(dredis, uid, settings):
    settings.TRIGGERS_CACHE_ALIAS = dredis
    manager = TriggerManager(CacheStorageBackend(uid, cache=dredis))
    manager.update_configuration(
        {
            f"t_{i}": {"after": ["start"], "run": "tests.behave", "using": "threading",
                       "withParams": behave(**{"return": {}})}
            for i in range(RUNS)
        }
    )
    lock_driver(caches[dredis])  # this thread's client: the one the task threads take
    with counted_connections() as made:
        manager.fire("start", {"n": 1})
        ThreadingTaskRunner.join_all(timeout=60)
    # Each task thread has a cache object of its own; before, each opened a
    # connection (RUNS of them). Now they take turns on the process's pool
    # (a second connection only if two threads happen to send at once).
    assert len(made) <= 2, len(made)
    statuses = {i.status for i in CacheStorageBackend(uid, cache=dredis).iter_instances()}
    assert statuses == {"finished"}


def test_cache_objects_of_one_alias_share_a_client_across_threads(dredis):
    def client_here():
        return shared_redis_clients.client_for(redis_codec(caches[dredis]).client())

    mine = client_here()
    theirs = _in_thread(client_here)
    assert _in_thread(lambda: caches[dredis]) is not caches[dredis]  # a cache object per thread
    assert theirs is mine


@pytest.mark.parametrize(
    "other",
    [
        ("redis://127.0.0.1:6379/3", {}),  # another db
        ("redis://:secret@127.0.0.1:6379/2", {}),  # a password
        ("redis://127.0.0.1:6379/2", {"socket_timeout": 7}),  # an option
        ("redis://127.0.0.1:6380/2", {}),  # another server
    ],
)
def test_other_settings_get_clients_of_their_own(other):
    first = _client("redis://127.0.0.1:6379/2")
    location, options = other
    second = _client(location, **options)
    assert pool_settings(first) != pool_settings(second)
    shared_redis_clients.clear()
    assert shared_redis_clients.client_for(first) is first
    assert shared_redis_clients.client_for(second) is second
    same = _client("redis://127.0.0.1:6379/2")
    assert shared_redis_clients.client_for(same) is first


def test_the_same_settings_in_two_cache_objects_are_one_key():
    options = {"socket_timeout": 3, "socket_connect_timeout": 2}
    one = _client("redis://:pw@127.0.0.1:6379/4", **options)
    two = _client("redis://:pw@127.0.0.1:6379/4", **options)
    assert one.connection_pool is not two.connection_pool
    assert pool_settings(one) == pool_settings(two) is not None


def test_a_pool_class_of_its_own_is_not_shared():
    from redis.connection import ConnectionPool

    class OwnPool(ConnectionPool):
        pass

    assert pool_settings(_client("redis://127.0.0.1:6379/2", pool_class=OwnPool)) is None


def test_django_redis_keeps_its_own_clients():
    pytest.importorskip("django_redis")
    cache = caches["redis"]
    own = cache.client.get_client
    getter = shared_redis_clients.getter(cache, own)
    assert getter is own


def test_reset_forgets_the_shared_clients():
    shared_redis_clients.clear()
    first = _client("redis://127.0.0.1:6379/2")
    assert shared_redis_clients.client_for(first) is first
    assert len(shared_redis_clients) == 1
    reset_process_state(["redis clients"])
    assert len(shared_redis_clients) == 0
    second = _client("redis://127.0.0.1:6379/2")
    assert shared_redis_clients.client_for(second) is second


def _child_takes(queue):
    fresh = _client("redis://127.0.0.1:6379/2")
    queue.put(shared_redis_clients.client_for(fresh) is fresh)


def test_a_forked_child_starts_without_its_parents_clients():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    parent = _client("redis://127.0.0.1:6379/2")
    shared_redis_clients.client_for(parent)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_takes, args=(queue,))
    child.start()
    took_its_own = queue.get(timeout=30)
    child.join(30)
    assert took_its_own is True
    same = _client("redis://127.0.0.1:6379/2")
    assert shared_redis_clients.client_for(same) is not same  # the parent keeps its own
