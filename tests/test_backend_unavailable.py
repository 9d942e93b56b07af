"""A cache that cannot be reached, or that fails mid-operation, raises one
error of this package, BackendUnavailable, with the client's own error chained:
on reads and writes alike, on every cache that can fail that way."""

import contextlib
import os
import socket
import subprocess
import time

import pytest
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.memcached import PyMemcacheCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django_redis.cache import RedisCache as DjangoRedisPackageCache

from tests.storage_support import CONFIG, populate, raw
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import BackendUnavailable, LockBackendError, TriggersError

#: client options bounding every call, so an unreachable server fails fast
REDIS_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
DJANGO_REDIS_OPTIONS = {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}
MEMCACHED_OPTIONS = {"connect_timeout": 1, "timeout": 1}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cache_at(kind, port):
    """A cache object of ``kind`` for a server on ``port`` of loopback."""
    if kind == "redis":
        return DjangoRedisPackageCache(
            f"redis://127.0.0.1:{port}/0", {"OPTIONS": DJANGO_REDIS_OPTIONS}
        )
    if kind == "dredis":
        return DjangoRedisCache(f"redis://127.0.0.1:{port}/0", {"OPTIONS": REDIS_OPTIONS})
    return PyMemcacheCache(f"127.0.0.1:{port}", {"OPTIONS": MEMCACHED_OPTIONS})


def unreachable(kind):
    if kind == "db_sqlite":
        return DatabaseCache("triggers_no_such_cache_table", {})
    return cache_at(kind, free_port())  # nothing listens there


def assert_unavailable(info, outcome_unknown):
    error = info.value
    assert isinstance(error, BackendUnavailable)
    assert error.outcome_unknown is outcome_unknown
    assert error.__cause__ is not None and not isinstance(error.__cause__, TriggersError)
    assert type(error.__cause__).__name__ in str(error)


UNREACHABLE = ["redis", "dredis", "memcached", "db_sqlite"]


@pytest.mark.db_cache
@pytest.mark.parametrize("kind", UNREACHABLE)
def test_reading_an_unreachable_cache(kind, uid):
    with pytest.raises(BackendUnavailable) as info:
        CacheStorageBackend(uid, cache=unreachable(kind)).debug_repr()
    assert_unavailable(info, outcome_unknown=False)


@pytest.mark.db_cache
@pytest.mark.parametrize("kind", UNREACHABLE)
def test_firing_into_an_unreachable_cache(kind, uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache=unreachable(kind)))
    with pytest.raises(BackendUnavailable) as info:
        manager.fire("start", {"subject": 1})
    # On Redis a fire into a session the object knows nothing of commits at
    # once, without reading first; the server refused the connection, so
    # nothing was sent: the outcome is known (nothing landed).
    assert info.value.outcome_unknown is False
    assert "may or may not have landed" not in str(info.value)


@pytest.mark.db_cache
@pytest.mark.parametrize("kind", UNREACHABLE)
def test_taking_the_lock_of_an_unreachable_cache(kind, uid):
    store = CacheStorageBackend(uid, cache=unreachable(kind))
    with pytest.raises(LockBackendError) as info:  # a BackendUnavailable
        with store.acquire_lock(block=False):
            pass
    assert isinstance(info.value, BackendUnavailable)


# ------------------------------------------------------------------ a server lost mid-operation


@contextlib.contextmanager
def private_server(kind):
    """A Redis or Memcached server of this test's own, on a free port."""
    port = free_port()
    if kind == "memcached":
        command = ["memcached", "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
    else:
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"{command[0]} did not start on port {port}")
            time.sleep(0.05)
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def stop(process):
    process.kill()
    process.wait(10)


@pytest.mark.parametrize("kind", ["redis", "dredis", "memcached"])
def test_the_server_lost_while_the_lock_is_held(kind, uid):
    with private_server(kind) as (port, process):
        store = populate(CacheStorageBackend(uid, cache=cache_at(kind, port)))
        with pytest.raises(BackendUnavailable) as info:
            with store.acquire_lock(ttl=30):
                store.metadata["late"] = True
                store.save()
                stop(process)
        assert_unavailable(info, outcome_unknown=True)
        assert "read the session again" in str(info.value)


@pytest.mark.parametrize("kind", ["redis", "dredis"])
def test_the_server_lost_before_an_optimistic_commit(kind, uid):
    with private_server(kind) as (port, process):
        store = populate(CacheStorageBackend(uid, cache=cache_at(kind, port)))
        with pytest.raises(BackendUnavailable) as info:
            for attempt in store.attempts():
                with attempt:
                    store.metadata["late"] = True
                    store.save()
                    stop(process)
        # Lost before the commit's request: it may have been sent, or not.
        assert info.value.outcome_unknown


@pytest.mark.db_cache
def test_a_dropped_database_connection(uid):
    """PostgreSQL ends the connection of the holder: its reads and its commit fail typed."""
    from tests.conftest import require_service

    require_service("postgresql")
    import psycopg
    from django.conf import settings
    from django.db import connections

    store = populate(CacheStorageBackend(uid, cache="db_pg"))
    before = raw("db_pg", [store.cache_key, store.witness_key])
    pg = settings.DATABASES["pg"]

    def end_connection():
        with connections["pg"].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        with psycopg.connect(
            host=pg["HOST"], port=pg["PORT"], user=pg["USER"], dbname=connections["pg"].settings_dict["NAME"]
        ) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])

    end_connection()
    with pytest.raises(BackendUnavailable) as info:
        CacheStorageBackend(uid, cache="db_pg").debug_repr()
    assert_unavailable(info, outcome_unknown=False)
    connections["pg"].close()

    with pytest.raises(BackendUnavailable) as info:
        with store.acquire_lock(ttl=30):
            store.metadata["late"] = True
            store.save()
            end_connection()
    # The connection was gone before the commit transaction began: known to
    # have written nothing.
    assert not info.value.outcome_unknown
    connections["pg"].close()
    # The commit was all or nothing: here nothing, as the session read again shows.
    assert raw("db_pg", [store.cache_key, store.witness_key]) == before
    assert "late" not in CacheStorageBackend(uid, cache="db_pg").metadata


@pytest.mark.db_cache
def test_a_missing_cache_table_is_a_failing_cache(uid):
    manager = TriggerManager(
        CacheStorageBackend(uid, cache=DatabaseCache("triggers_no_such_cache_table", {}))
    )
    with pytest.raises(BackendUnavailable, match="no such table"):
        manager.update_configuration(CONFIG)


def test_an_error_of_the_caller_is_not_a_cache_failure(uid):
    """Only the cache's own failures become BackendUnavailable: a bug in the block stays itself."""
    store = CacheStorageBackend(uid, cache="locmem")
    with pytest.raises(ZeroDivisionError):
        with store.acquire_lock():
            store.metadata["x"] = 1 / 0
    assert os.getpid()  # the process goes on, and the lock is free again
    with store.acquire_lock(block=False):
        pass


# ------------------------------------------------------------------ the operator's words


def test_a_failing_cache_is_named_by_alias_and_address_without_credentials(uid, settings):
    """The error names the CACHES alias and its address (no password), not only the class."""
    from django.core.cache import caches

    port = free_port()
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://user:secret@127.0.0.1:{port}/4",
            "OPTIONS": DJANGO_REDIS_OPTIONS,
        },
    }
    try:
        with pytest.raises(BackendUnavailable) as info:
            CacheStorageBackend(uid, cache="down").debug_repr()
        message = str(info.value)
        assert f"cache 'down' (redis://127.0.0.1:{port}/4, django_redis.cache.RedisCache) failed" in message
        assert "secret" not in message and "user" not in message
        with pytest.raises(LockBackendError) as info:
            with CacheStorageBackend(uid, cache="down").acquire_lock(block=False):
                pass
        assert f"cache 'down' (redis://127.0.0.1:{port}/4" in str(info.value)
    finally:
        caches["down"].close()


def test_the_commands_say_backend_unavailable_with_a_refused_connection(uid, tmp_path):
    """load as well as show and fire; a refused connection says nothing of writes landing."""
    from tests.ops_support import python_m

    url = f"redis://127.0.0.1:{free_port()}/0"
    dump = tmp_path / "d.json"
    dump.write_text('{"format": "triggers-session", "version": 1, "uid": "x", "tasks": {}, "instances": {}, "metas": {}}')
    for args in (("show", uid), ("load", str(dump)), ("load", str(dump), "--replace"), ("fire", uid, "go")):
        done = python_m(*args, "--cache", url)
        assert done.returncode == 1, (args, done.stderr)
        line = done.stderr.strip()
        assert len(line.splitlines()) == 1, done.stderr
        assert f": BackendUnavailable: cache 'default' ({url}, django_redis.cache.RedisCache) failed" in line
        assert "Connection refused" in line and "may or may not have landed" not in line
