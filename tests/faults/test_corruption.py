"""Damage to a stored split session is detected, part by part, on every cache.

Each test flips one letter of a known string inside a record's stored
bytes, or one bit of the compressed body of the head or a task table, so
the value still unpickles (before sealing it was read as a different
session), and checks that reading and firing raise StorageCorrupted naming
the uid and the key, and that a fire writes nothing over the session.
"""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connections, router

from tests.conftest import prepare_cache
from tests.ops_support import command
from tests.settings import MEMCACHED
from tests.storage_support import fresh, keys_of, populate, tasks_version
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import StorageCorrupted
from triggers.locking.drivers.memcached import FENCED_MARK, untagged
from triggers.storages.cache.formats import DEVELOPMENT_FORMATS
from triggers.storages.cache.records import RECORD_MARK
from triggers.storages.cache.sealing import COMPRESSED_SEAL_MARK
from triggers.storages.cache.tables import task_tables

CACHES = ["locmem", "redis", "dredis", "memcached", "db_sqlite", "db_pg"]
#: the string each part holds, and the letter-changed one written instead (in
#: a record; the head and the task table are stored compressed, so a bit of
#: their compressed body is flipped instead)
NEEDLES = {
    "head": (b"needle-head", b"needle-heaD"),
    "record": (b"needle-record", b"needle-recorD"),
    "table": (b"import_subject", b"import_subjecT"),
}
#: the pymemcache flag of a pickled value
PICKLE_FLAG = 1


class RawValues:
    """A cache's stored bytes for a key, read and written past the cache object."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.cache: Any = caches[alias]

    def get(self, key: str) -> bytes | None:
        alias, cache = self.alias, self.cache
        if alias == "locmem":
            return cache._cache.get(cache.make_and_validate_key(key))
        if alias == "redis":
            value = cache.client.get_client(write=True).get(cache.make_key(key))
            return None if value is None else bytes(value)
        if alias == "dredis":
            full = cache.make_and_validate_key(key)
            return cache._cache.get_client(full, write=True).get(full)
        if alias == "memcached":
            client = _memcached_client()
            try:
                return client.get(cache.make_and_validate_key(key))
            finally:
                client.close()
        connection, table, q = self._database()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {q('value')} FROM {q(table)} WHERE {q('cache_key')} = %s",
                [cache.make_and_validate_key(key)],
            )
            row = cursor.fetchone()
        return None if row is None else base64.b64decode(row[0])

    def set(self, key: str, value: bytes) -> None:
        alias, cache = self.alias, self.cache
        if alias == "locmem":
            cache._cache[cache.make_and_validate_key(key)] = value
        elif alias == "redis":
            client = cache.client.get_client(write=True)
            assert client.set(cache.make_key(key), value, xx=True, keepttl=True)
        elif alias == "dredis":
            full = cache.make_and_validate_key(key)
            assert cache._cache.get_client(full, write=True).set(full, value, xx=True, keepttl=True)
        elif alias == "memcached":
            client = _memcached_client()
            try:
                assert client.replace(
                    cache.make_and_validate_key(key), value, expire=600, noreply=False, flags=PICKLE_FLAG
                )
            finally:
                client.close()
        else:
            connection, table, q = self._database()
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {q(table)} SET {q('value')} = %s WHERE {q('cache_key')} = %s",
                    [base64.b64encode(value).decode("latin1"), cache.make_and_validate_key(key)],
                )
                assert cursor.rowcount == 1

    def _database(self) -> tuple[Any, str, Any]:
        connection = connections[router.db_for_write(self.cache.cache_model_class)]
        return connection, self.cache._table, connection.ops.quote_name


def _memcached_client() -> Any:
    from pymemcache.client.base import Client

    host, _, port = MEMCACHED.rpartition(":")
    return Client((host, int(port)), connect_timeout=5, timeout=10)


@pytest.fixture(params=CACHES)
def alias(request):
    return prepare_cache(request, request.param)


def stored_session(alias: str, uid: str) -> CacheStorageBackend:
    """A populated split session with a known string in its head, a settled record and its table."""
    store = populate(CacheStorageBackend(uid, cache=alias, layout="split"))
    with store.acquire_lock(ttl=30):
        store["t_import#0"].metadata["tag"] = NEEDLES["record"][0].decode()
        store.metadata["tag"] = NEEDLES["head"][0].decode()
        store.save()
    with store.acquire_lock(ttl=30):
        store.metadata["settled"] = True  # t_import#0 leaves the head's delta for its own key
        store.save()
    return fresh(store)


def part_key(store: CacheStorageBackend, part: str) -> str:
    if part == "head":
        return store.cache_key
    if part == "record":
        return store.record_key("t_import#0")
    version = tasks_version(store.cache, store)
    assert version is not None
    return store.tasks_key(version)


def session_keys(store: CacheStorageBackend) -> list[str]:
    return [*keys_of(store, list(fresh(store).instances)), part_key(store, "table")]


def decoded(stored: bytes) -> Any:
    """A part's stored bytes decoded as the cache client would (a record: as it is)."""
    value = stored if stored.startswith(RECORD_MARK) else pickle.loads(stored)
    if type(value) is tuple and value[0] == FENCED_MARK:
        value = value[2]
    return value


def damage(raw: RawValues, key: str, part: str) -> None:
    """Change one letter of the part's known string in its stored bytes (a
    record), or one bit in the middle of its compressed body (the head, a table)."""
    value = raw.get(key)
    assert value is not None, key
    if part == "record":
        needle, changed = NEEDLES[part]
        assert value.count(needle) == 1, (key, value)
        raw.set(key, value.replace(needle, changed))
    else:
        opened = decoded(value)
        body = (opened["sealed"] if part == "head" else opened)[2]
        assert value.count(body) == 1, key
        at = value.find(body) + len(body) // 2
        raw.set(key, value[:at] + bytes([value[at] ^ 0x10]) + value[at + 1 :])
    task_tables.clear()  # as a process that has not read this table yet


@pytest.mark.parametrize("part", sorted(NEEDLES))
def test_a_damaged_part_that_still_unpickles_is_refused(alias, uid, part):
    store = stored_session(alias, uid)
    raw = RawValues(alias)
    key = part_key(store, part)
    keys = session_keys(store)
    damage(raw, key, part)
    before = {k: raw.get(k) for k in keys}
    # (a) reading the session
    for read in (lambda s: s.debug_repr(), lambda s: list(s), lambda s: s.get_unresolved_tasks()):
        task_tables.clear()
        with pytest.raises(StorageCorrupted) as info:
            read(fresh(store))
        assert info.value.uid == uid
        assert uid in str(info.value) and repr(key) in str(info.value)
        assert "checksum" in str(info.value)
    # (b) a fire that reaches the damaged record (t_import waits for "upload"),
    # and one more fire; nothing of the session is written over
    for trigger in ("upload", "start"):
        task_tables.clear()
        with pytest.raises(StorageCorrupted) as info:
            TriggerManager(fresh(store)).fire(trigger, {"file": "x"})
        assert repr(key) in str(info.value) and uid in str(info.value)
    assert {k: raw.get(k) for k in keys} == before


def test_a_witness_that_is_not_a_generation_is_refused(alias, uid):
    store = stored_session(alias, uid)
    raw = RawValues(alias)
    keys = session_keys(store)
    caches[alias].set(store.witness_key, "garbage")
    before = {k: raw.get(k) for k in keys}
    with pytest.raises(StorageCorrupted) as info:
        fresh(store).debug_repr()
    assert info.value.uid == uid and repr(store.witness_key) in str(info.value)
    with pytest.raises(StorageCorrupted) as info:
        TriggerManager(fresh(store)).fire("upload", {"file": "x"})
    assert repr(store.witness_key) in str(info.value)
    assert {k: raw.get(k) for k in keys} == before


@pytest.mark.parametrize("mark", DEVELOPMENT_FORMATS)
def test_a_head_saved_by_a_development_version_is_refused_then_replaced(alias, uid, mark, tmp_path):
    store = stored_session(alias, uid)
    path = tmp_path / "dump.json"
    command("dump", uid, "--cache", alias, "--output", str(path))
    cache = caches[alias]
    old = cache.get(store.cache_key)
    cache.set(store.cache_key, {**untagged(old), "format": mark}, timeout=600)
    stored = RawValues(alias).get(store.cache_key)
    for attempt in (fresh(store).debug_repr, lambda: TriggerManager(fresh(store)).fire("approve")):
        with pytest.raises(StorageCorrupted, match="development version of triggers 3"):
            attempt()
    assert RawValues(alias).get(store.cache_key) == stored  # left as it was
    out = command("load", str(path), "--cache", alias, "--replace")
    assert out.startswith(f"replaced session {uid} ")
    assert json.loads(command("dump", uid, "--cache", alias)) == json.loads(path.read_text())


def test_every_stored_part_is_sealed(alias, uid):
    store = stored_session(alias, uid)
    raw = RawValues(alias)
    for part in NEEDLES:
        # Records are stored as they are where the cache can (Redis), else pickled.
        value = decoded(raw.get(part_key(store, part)))
        if part == "record":  # its own mark and checksum (see records.py)
            assert type(value) is bytes and value.startswith(RECORD_MARK), value[:8]
            continue
        sealed = value["sealed"] if part == "head" else value
        assert type(sealed) is tuple and sealed[0] == COMPRESSED_SEAL_MARK, part


@pytest.mark.parametrize("part", [*sorted(NEEDLES), "witness"])
def test_a_damaged_session_is_restored_from_its_dump(alias, uid, part, tmp_path):
    store = stored_session(alias, uid)
    # A process that committed to the session before the damage, and remembers it.
    rememberer = TriggerManager(fresh(store))
    rememberer.fire("approve", {"by": "before"})
    path = tmp_path / "dump.json"
    command("dump", uid, "--cache", alias, "--output", str(path))
    witness = caches[alias].get(store.witness_key)
    if part == "witness":
        caches[alias].set(store.witness_key, "garbage")
    else:
        damage(RawValues(alias), part_key(store, part), part)
    with pytest.raises(StorageCorrupted):
        fresh(store).debug_repr()
    out = command("load", str(path), "--cache", alias, "--replace")
    assert out.startswith(f"replaced session {uid} ")
    task_tables.clear()
    # A new witness: a process remembering the old state cannot commit over it.
    assert caches[alias].get(store.witness_key) != witness
    dumped = json.loads(path.read_text())
    assert json.loads(command("dump", uid, "--cache", alias)) == dumped
    rememberer.fire("approve", {"by": "x"})
    after = fresh(store)
    assert after.latest_kwargs["approve"] == {"by": "x"}
    assert set(dumped["instances"]) <= set(after.instances)
