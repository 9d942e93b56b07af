"""The fenced Memcached driver on the real server: what an ordinary save meets."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from tests.conftest import prepare_cache
from tests.storage_support import keys_of, populate, raw, tasks_version
from triggers import CacheStorageBackend
from triggers.errors import UnserializableValue
from triggers.locking import lock_driver
from triggers.locking.drivers.memcached import FENCED_MARK, MemcachedLockDriver
from triggers.locking.versions import TOKEN_BITS, generation_of
from triggers.storages.cache.records import decode_record

ALIAS = "memcached"


@pytest.fixture
def session(request, uid):
    prepare_cache(request, ALIAS)
    store = populate(CacheStorageBackend(uid, cache=ALIAS))
    with store.acquire_lock():
        store["t_score#0"].metadata["changed"] = 1  # a record in the head's delta
        store.save()
    return store


def _all_keys(store):
    version = tasks_version(ALIAS, store)
    return [*keys_of(store), store.tasks_key(version)]


def test_pymemcache_caches_get_the_fenced_driver():
    assert type(lock_driver(caches[ALIAS])) is MemcachedLockDriver


def test_an_unstorable_value_raises_a_typed_error_and_writes_nothing(session):
    keys = _all_keys(session)
    before = raw(ALIAS, keys)
    with pytest.raises(UnserializableValue) as info:
        with session.acquire_lock():
            session.metadata["callback"] = lambda: None
            session.save()
    assert "lambda" in str(info.value)
    assert raw(ALIAS, keys) == before
    assert "callback" not in CacheStorageBackend(session.uid, cache=ALIAS).metadata


def test_records_are_stored_tagged_and_read_plain(session):
    record_key = session.record_key("t_score#0")
    with session.acquire_lock():
        session["t_score#0"].metadata["changed"] = 2
        session.save()
    with session.acquire_lock():
        session.metadata["one more"] = True  # settles t_score#0 into its own key
        session.save()
    stored = caches[ALIAS].get(record_key)
    assert type(stored) is tuple and stored[0] == FENCED_MARK and isinstance(stored[1], int)
    record = decode_record(stored[2], "t_score#0", session.uid, record_key)
    assert record["metadata"]["changed"] == 2
    assert CacheStorageBackend(session.uid, cache=ALIAS)["t_score#0"].metadata["changed"] == 2


def test_the_witness_never_goes_back(session):
    cache = caches[ALIAS]
    ahead = cache.get(session.witness_key) + (100 << TOKEN_BITS)  # 100 generations on
    cache.set(session.witness_key, ahead, timeout=600)
    with session.acquire_lock():
        session.metadata["after"] = True
        session.save()
    # The next save's generation builds on the witness it read, so it is above it...
    assert generation_of(cache.get(session.witness_key)) > generation_of(ahead)
    # ...and a save that started below a witness set meanwhile leaves it where it is.
    with session.acquire_lock():
        session.metadata["again"] = True
        highest = cache.get(session.witness_key) + (1000 << TOKEN_BITS)
        cache.set(session.witness_key, highest, timeout=600)
        session.save()
    assert cache.get(session.witness_key) == highest
    assert CacheStorageBackend(session.uid, cache=ALIAS).metadata["again"] is True
