"""Heads and task tables are sealed compressed: what is stored, heads of the
earlier (uncompressed) formats, and compressed bodies damaged by hand."""

import functools
import hashlib
import zlib

import pytest
from django.core.cache import caches

from tests.conftest import ALL_CACHES, PAGED_CACHES, prepare_cache
from tests.storage_support import populate, raw, stored_head, stored_value
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import StorageCorrupted
from triggers.locking.driver_table import write_driver
from triggers.locking.writes import Writes
from triggers.process_state import reset_process_state
from triggers.storages.cache import sealing
from triggers.storages.cache.formats import HEAD_FORMAT, PAGED_FORMAT
from triggers.storages.cache.sealing import COMPRESSED_SEAL_MARK, SEAL_MARK, seal, unseal

#: each layout with a head, on a cache that keeps it
LAYOUT_CACHES = [("split", alias) for alias in ALL_CACHES] + [
    ("paged", alias) for alias in sorted(PAGED_CACHES)
]
WRITTEN = {"split": HEAD_FORMAT, "paged": PAGED_FORMAT}
EARLIER = {"split": "triggers/split-3", "paged": "triggers/paged-1"}


#: each test's parameters: a layout and a cache (by alias, so that a
#: database cache's test gets its database)
on_every_cache = pytest.mark.parametrize(("layout", "alias"), LAYOUT_CACHES)


@pytest.fixture
def stored(request, layout, alias):
    """(layout, cache alias) of a session with a head."""
    return layout, prepare_cache(request, alias)


def _session(stored, uid):
    layout, alias = stored
    return populate(CacheStorageBackend(uid, cache=alias, layout=layout))


def _table_key(alias, store):
    return store.keys.tasks(stored_head(alias, store)["tasks_version"])


def _session_keys(store):
    return [store.cache_key, store.keys.witness, store.record_key("t_import#0")]


def _put(alias, key, value):
    write_driver(caches[alias]).write(Writes(({key: value},), 600))


@on_every_cache
def test_a_head_and_its_table_are_stored_compressed(stored, uid):
    layout, alias = stored
    store = _session(stored, uid)
    head = stored_value(alias, store.cache_key)
    assert head["format"] == WRITTEN[layout]
    assert head["sealed"][0] == COMPRESSED_SEAL_MARK
    body = unseal(head["sealed"], uid, store.cache_key)
    assert len(head["sealed"][2]) < len(seal(body)[2])  # smaller than sealed plain
    assert stored_value(alias, _table_key(alias, store))[0] == COMPRESSED_SEAL_MARK
    fresh = CacheStorageBackend(uid, cache=alias, layout=layout)
    assert sorted(fresh.tasks) == sorted(store.tasks)
    assert fresh.instances["t_score#0"].status == "finished"


@on_every_cache
def test_a_head_of_an_earlier_format_is_read_and_saved_anew(stored, uid):
    """A head and table sealed plain under the earlier mark, as the previous
    version wrote them: read as they are, written compressed by the next save."""
    layout, alias = stored
    store = _session(stored, uid)
    content = stored_head(alias, store)
    earlier = {**stored_value(alias, store.cache_key), "format": EARLIER[layout]}
    earlier["sealed"] = seal(content)
    table_key = _table_key(alias, store)
    plain_table = seal(unseal(stored_value(alias, table_key), uid, table_key))
    _put(alias, store.cache_key, earlier)
    _put(alias, table_key, plain_table)
    reset_process_state()  # as a process that never read the table
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias, layout=layout))
    assert manager.storage.instances["t_score#1"].status == "failed"
    manager.fire("upload", {"file": 1})
    head = stored_value(alias, store.cache_key)
    assert head["format"] == WRITTEN[layout] and head["sealed"][0] == COMPRESSED_SEAL_MARK
    reread = CacheStorageBackend(uid, cache=alias, layout=layout)
    assert reread.latest_kwargs["upload"] == {"file": 1}
    assert reread.instances["t_score#0"].status == "finished"


@functools.cache
def _bomb() -> bytes:
    """A zlib stream that inflates past what a sealed body may (zeros compress ~1000:1)."""
    packer = zlib.compressobj(1)
    chunk = bytes(16 * 1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(sealing.MAX_INFLATED // len(chunk) + 1)]
    return b"".join([*parts, packer.flush()])


DAMAGES = {
    "a flipped bit": (lambda packed: bytes([packed[0] ^ 1]) + packed[1:], False, "checksum does not match"),
    "not zlib": (lambda packed: b"\x00not a zlib stream" + packed, True, "does not inflate"),
    "cut short": (lambda packed: packed[: len(packed) // 2], True, "cut short or runs on"),
    "runs on": (lambda packed: packed + b"tail", True, "cut short or runs on"),
}


def _damaged(stored, uid, part, change, redigest):
    """A session whose head or task table has its compressed body changed by
    ``change`` (its digest made to match if ``redigest``); (store, key, keys as stored)."""
    layout, alias = stored
    store = _session(stored, uid)
    key = store.cache_key if part == "head" else _table_key(alias, store)
    value = stored_value(alias, key)
    sealed = value["sealed"] if part == "head" else value
    packed = change(sealed[2])
    digest = hashlib.blake2b(packed, digest_size=sealing.DIGEST_SIZE).digest() if redigest else sealed[1]
    damaged = (sealed[0], digest, packed)
    _put(alias, key, {**value, "sealed": damaged} if part == "head" else damaged)
    reset_process_state()  # as a process that never read it: the table is read too
    return store, key, raw(alias, [*_session_keys(store), key])


def _refused(stored, uid, key, before, message):
    layout, alias = stored
    with pytest.raises(StorageCorrupted) as info:
        TriggerManager(CacheStorageBackend(uid, cache=alias, layout=layout)).fire("upload", {})
    assert repr(key) in str(info.value) and message in str(info.value)
    assert raw(alias, list(before)) == before


@on_every_cache
@pytest.mark.parametrize("part", ["head", "table"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_compressed_body_is_refused_and_kept(stored, uid, part, damage):
    """Damage the digest catches, and damage past a digest made to match it (a
    hand-made or hostile value): StorageCorrupted naming the key, nothing written."""
    change, redigest, message = DAMAGES[damage]
    store, key, before = _damaged(stored, uid, part, change, redigest)
    _refused(stored, uid, key, before, message)


@pytest.mark.parametrize(
    ("layout", "alias", "part"), [("split", "locmem", "head"), ("paged", "redis", "table")]
)
def test_a_body_that_would_inflate_without_bound_is_refused(stored, uid, part):
    store, key, before = _damaged(stored, uid, part, lambda packed: _bomb(), True)
    _refused(stored, uid, key, before, f"inflates past {sealing.MAX_INFLATED} bytes")


def test_a_seal_compresses_only_when_that_is_smaller():
    assert seal(b"x", compress=True)[0] == SEAL_MARK
    value = {"names": ["t_wait"] * 200}
    sealed = seal(value, compress=True)
    assert sealed[0] == COMPRESSED_SEAL_MARK
    assert unseal(sealed, "u", "k") == value
    assert unseal(seal(value), "u", "k") == value
