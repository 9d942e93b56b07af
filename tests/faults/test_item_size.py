"""Memcached's limits: an entry over the server's item size, and a server short of memory.

A save with a part over the item size limit (here ``-I 64k``) is refused
before anything is written: the stored bytes of the session do not change.
A session some of whose parts the server evicted reads as incomplete,
never as a smaller session.
"""

from __future__ import annotations

import random
import socket
import urllib.parse
from typing import Any

import pymemcache
import pytest
from django.core.cache import BaseCache

from tests.faults.conftest import SMALL_ITEMS, make_cache, memcached_server
from tests.storage_support import keys_of, populate, tasks_version
from triggers import CacheStorageBackend
from triggers.errors import SessionIncomplete, ValueTooLarge

LIMIT = 64 * 1024


def raw_bytes(cache: BaseCache, keys: list[str]) -> dict[str, Any]:
    """The stored bytes of ``keys``, read past every serializer."""
    host, port = cache._servers[0].split(":")
    client = pymemcache.Client((host, int(port)), timeout=5)
    try:
        made = {cache.make_and_validate_key(key): key for key in keys}
        return {made[k]: v for k, v in client.get_many(list(made)).items()}
    finally:
        client.close()


def test_a_part_over_the_item_size_is_refused_before_anything_is_written(
    small_items: BaseCache, uid: str
) -> None:
    store = populate(CacheStorageBackend(uid, cache=small_items, timeout=600))
    # A change that settles into its record's key with the next save...
    with store.acquire_lock(ttl=30):
        store["t_import#0"].metadata["seen"] = 1
        store.save()
    keys = keys_of(store)
    before = raw_bytes(small_items, keys)
    assert len(before) == len(keys)
    # ...which also puts a part over the limit in the head.
    with pytest.raises(ValueTooLarge) as caught, store.acquire_lock(ttl=30):
        # Random bytes: the head is stored compressed, and a run of one letter
        # would shrink under the limit.
        blob = random.Random(5).randbytes(LIMIT * 2)
        store.create_instance("t_import", kwargs={"start": {"blob": blob}})
        store.save()
    error = caught.value
    assert error.key in keys and error.limit == LIMIT and error.size > LIMIT
    assert repr(error.key) in str(error) and str(LIMIT) in str(error)
    assert raw_bytes(small_items, keys) == before
    # The session reads as it was, and takes the next save.
    again = CacheStorageBackend(uid, cache=small_items, timeout=600)
    assert len(again.instances) == 3
    with again.acquire_lock(ttl=30):
        again.create_instance("t_import", kwargs={"start": {"blob": "x" * (LIMIT // 4)}})
        again.save()
    assert len(CacheStorageBackend(uid, cache=small_items, timeout=600).instances) == 4


def server_keys(address: str) -> set[str]:
    """The keys the server at ``address`` holds, as the cache made them, listed
    by its LRU crawler (which, unlike a read, does not keep them in use)."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(b"lru_crawler metadump all\r\n")
        listed = b""
        while not listed.endswith((b"END\r\n", b"BUSY\r\n")):
            chunk = connection.recv(1 << 16)
            assert chunk, "the server closed the connection mid-listing"
            listed += chunk
    assert not listed.endswith(b"BUSY\r\n"), "the LRU crawler is busy"
    return {
        urllib.parse.unquote(line.split()[0].removeprefix("key="))
        for line in listed.decode().splitlines()
        if line.startswith("key=")
    }


def test_a_session_whose_parts_were_evicted_reads_as_incomplete(uid: str) -> None:
    with memcached_server(*SMALL_ITEMS) as address:
        cache = make_cache("memcached", address)
        store = populate(CacheStorageBackend(uid, cache=cache, timeout=600))
        names = list(store.instances)
        assert len(names) == 3
        keys = keys_of(store, names)
        records = [key for key in keys if key not in (store.cache_key, store.witness_key)]
        kept = [store.cache_key, store.witness_key, store.tasks_key(tasks_version(cache, store))]
        made = {cache.make_and_validate_key(key): key for key in records + kept}
        # Memcached evicts within a size class, the least recently used first:
        # fill the classes of the records (values of sizes around theirs), and
        # keep the head, witness and task table in use meanwhile.
        sizes = sorted(len(value) for value in raw_bytes(cache, records).values())
        value_sizes = range(max(1, sizes[0] - 64), sizes[-1] + 64, 8)
        width = len(records[0])
        evicted: set[str] = set()
        for n in range(400):
            batch = {
                f"{uid}:{n}:{i}:".ljust(width, "f"): b"y" * value_sizes[i % len(value_sizes)]
                for i in range(500)
            }
            cache.set_many(batch, 600)
            cache.get_many(kept)
            if n % 10 == 9:  # listed, not read: a read would keep the records in use
                evicted = set(records) - {made[key] for key in server_keys(address) if key in made}
                if evicted:
                    break
        assert evicted, "the server evicted none of the records"
        assert set(raw_bytes(cache, kept)) == set(kept)  # what was kept in use is there
        reread = CacheStorageBackend(uid, cache=cache, timeout=600)
        assert len(reread.instances) == 3  # counted from the head, which is still there
        with pytest.raises(SessionIncomplete) as caught:
            [reread[name] for name in names]  # each record, read
        assert caught.value.missing and set(caught.value.missing) <= evicted
        assert uid in str(caught.value)
        cache.close()
