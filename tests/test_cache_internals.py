"""The private parts of Django caches that triggers.cache_internals names are still there.

Runs in every tox environment, so each supported Django (and the
django-redis it installs) is checked: a failure here means a reliance has
moved and ``triggers/cache_internals.py`` must follow it.
"""

import time

import django
import pytest
from django.core.cache import caches
from django.db import connections, router

from tests.conftest import prepare_cache
from triggers import cache_internals
from triggers.cache_internals import (
    CHECKED_DJANGO_VERSIONS,
    database_cache_table,
    database_row_expiry,
    database_row_value,
    locmem_internals,
    max_entries,
    redis_codec,
)

VALUE = {"tasks": {"t": {"after": ["a"]}}, "n": 12345, "text": "é"}


def test_the_running_django_is_one_the_internals_were_checked_against():
    running = f"{django.VERSION[0]}.{django.VERSION[1]}"
    assert running in CHECKED_DJANGO_VERSIONS, (
        f"Django {running} is not among {CHECKED_DJANGO_VERSIONS}: check every internal in"
        " triggers/cache_internals.py against it, then add it there"
    )


@pytest.mark.parametrize("alias", ["redis", "dredis"])
def test_redis_codec_keys_and_encodes_as_the_cache_does(request, alias, uid):
    cache = caches[prepare_cache(request, alias)]
    codec = redis_codec(cache)
    key = f"internals:{uid}"
    cache.set(key, VALUE, timeout=60)
    raw = codec.client().get(codec.make_key(key))
    assert raw is not None, "make_key() does not give the key the cache wrote"
    assert codec.decode(raw) == VALUE
    assert codec.decode_object(raw) == VALUE
    # What the driver writes raw, the cache reads.
    codec.client().set(codec.make_key(key), codec.encode(VALUE | {"n": 1}), px=60_000)
    assert cache.get(key) == VALUE | {"n": 1}
    assert codec.decode(codec.encode(7)) == 7
    cache.delete(key)


def test_django_redis_client_internals():
    cache = caches["redis"]
    assert callable(cache.client._serializer.loads)
    assert callable(cache.client._compressor.decompress)


def test_django_redis_cache_internals():
    cache = caches["dredis"]
    backend = cache._cache
    assert callable(backend._serializer.dumps) and callable(backend._serializer.loads)
    assert callable(backend.get_client)


def test_memcached_server_clients_key_and_encode_as_the_cache_does(request, uid):
    from triggers.locking.drivers.memcached_client import MemcachedServers

    cache = caches[prepare_cache(request, "memcached")]
    key = f"internals:{uid}"
    cache.set(key, VALUE, timeout=60)
    client, made = MemcachedServers(cache).one(key)
    value, unique = client.gets(made)
    assert value == VALUE, "the server client's key is not the one the cache wrote"
    # What the driver writes through the client, the cache reads.
    assert client.cas(made, VALUE | {"n": 1}, unique, expire=60, noreply=False)
    assert cache.get(key) == VALUE | {"n": 1}
    assert client.append(made, b"", noreply=False)  # the bump
    assert cache.get(key) == VALUE | {"n": 1}
    assert cache.get_backend_timeout(None) == 0 and cache.get_backend_timeout(5) == 5
    cache.delete(key)


@pytest.mark.parametrize("alias", ["db_sqlite", "db_pg"])
def test_database_rows_written_as_the_cache_writes_them(request, alias, uid):
    cache = caches[prepare_cache(request, alias)]
    model, table = database_cache_table(cache)
    assert table == cache._table and model is cache.cache_model_class
    assert isinstance(cache.pickle_protocol, int)
    connection = connections[router.db_for_write(model)]
    q = connection.ops.quote_name
    live, stale = f"live:{uid}", f"stale:{uid}"
    with connection.cursor() as cursor:
        for key, expires in ((live, time.time() + 600), (stale, time.time() - 600)):
            cursor.execute(
                f"INSERT INTO {q(table)} ({q('cache_key')}, {q('value')}, {q('expires')})"
                " VALUES (%s, %s, %s)",
                [
                    cache.make_and_validate_key(key),
                    database_row_value(cache, VALUE),
                    database_row_expiry(connection, expires),
                ],
            )
    assert cache.get(live) == VALUE
    assert cache.get(stale) is None
    # And the other way: a row the cache wrote holds what the driver would write.
    cache.set(live, VALUE, timeout=None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {q('value')}, {q('expires')} FROM {q(table)} WHERE {q('cache_key')} = %s",
            [cache.make_and_validate_key(live)],
        )
        value, expires = cursor.fetchone()
    assert value == database_row_value(cache, VALUE)
    assert str(expires).startswith(str(database_row_expiry(connection, None))[:10])


@pytest.mark.parametrize("alias", ["locmem", "db_sqlite"])
def test_max_entries_is_what_the_cache_culls_by(request, alias):
    from django.conf import settings

    cache = caches[prepare_cache(request, alias)]
    assert max_entries(cache) == settings.CACHES[alias]["OPTIONS"]["MAX_ENTRIES"]
    assert max_entries(cache) == cache._max_entries


def test_locmem_internals_write_and_read_as_the_cache_does(uid):
    import pickle
    import threading

    cache = caches["locmem"]
    internals = locmem_internals(cache)
    assert isinstance(internals.pickle_protocol, int)
    assert isinstance(internals.mutex, type(threading.Lock()))
    live, gone = cache.make_and_validate_key(f"live:{uid}"), cache.make_and_validate_key(f"gone:{uid}")
    with internals.mutex:  # the helpers expect it held, and take it not themselves
        internals.set(live, pickle.dumps(VALUE, internals.pickle_protocol), 60)
        internals.set(gone, pickle.dumps(1, internals.pickle_protocol), 60)
        assert internals.delete(gone) is True and internals.delete(gone) is False
        assert internals.has_expired(live) is False and internals.has_expired(gone) is True
    assert cache.get(f"live:{uid}") == VALUE and cache.get(f"gone:{uid}") is None
    cache.set(f"live:{uid}", VALUE | {"n": 1}, 60)
    with internals.mutex:
        assert pickle.loads(internals.data[live]) == VALUE | {"n": 1}
    # The mutex is the one the cache's own methods take.
    assert internals.mutex.acquire(blocking=False)
    try:
        blocked = threading.Thread(target=cache.get, args=(f"live:{uid}",))
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive()
    finally:
        internals.mutex.release()
    blocked.join(5)
    assert not blocked.is_alive()
    cache.delete(f"live:{uid}")


def test_every_internal_is_listed_once():
    owners = [(owner, attribute) for owner, attribute, _ in cache_internals.INTERNALS]
    assert len(owners) == len(set(owners))
    assert all(purpose for _, _, purpose in cache_internals.INTERNALS)


def test_pymemcache_internals(request, uid):
    from triggers.cache_internals import forget_memcached_client, memcached_servers

    cache = caches[prepare_cache(request, "memcached")]
    hasher, clients = memcached_servers(cache)
    assert clients and set(clients) == {hasher.get_node(cache.make_key(uid))} | set(clients)
    client = next(iter(clients.values()))
    assert isinstance(client.key_prefix, bytes) and isinstance(client.encoding, str)
    assert client.server and callable(client.serde.serialize)
    full = type(hasher)()  # what the driver builds to find a key's server, dead or not
    for name in clients:
        full.add_node(name)
    assert full.get_node(cache.make_key(uid)) in clients
    assert forget_memcached_client(cache) is True
    assert memcached_servers(cache)[1] is not clients  # a new client, made on next use
