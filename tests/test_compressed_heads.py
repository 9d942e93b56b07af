"""The paged layout seals its head and task tables compressed: what is stored,
heads of the earlier paged format, and compressed bodies damaged by hand."""

import functools
import hashlib
import zlib

import pytest
from django.core.cache import caches

from tests.conftest import PAGED_CACHES, prepare_cache
from tests.storage_support import populate, raw, stored_head
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import StorageCorrupted
from triggers.locking.driver_table import write_driver
from triggers.locking.writes import Writes
from triggers.process_state import reset_process_state
from triggers.storages.cache import sealing
from triggers.storages.cache.formats import PAGED_FORMAT
from triggers.storages.cache.sealing import COMPRESSED_SEAL_MARK, SEAL_MARK, seal, unseal


@pytest.fixture(params=sorted(PAGED_CACHES))
def redis_cache(request):
    return prepare_cache(request, request.param)


def _paged(alias, uid):
    return populate(CacheStorageBackend(uid, cache=alias, layout="paged"))


def _table_key(alias, store):
    return store.keys.tasks(stored_head(alias, store)["tasks_version"])


def _session_keys(store):
    return [store.cache_key, store.keys.witness, store.record_key("t_import#0")]


def _put(alias, key, value):
    write_driver(caches[alias]).write(Writes(({key: value},), 600))


def test_a_paged_head_and_its_table_are_stored_compressed(redis_cache, uid):
    store = _paged(redis_cache, uid)
    head = caches[redis_cache].get(store.cache_key)
    assert head["format"] == PAGED_FORMAT == "triggers/paged-2"
    assert head["sealed"][0] == COMPRESSED_SEAL_MARK
    body = unseal(head["sealed"], uid, store.cache_key)
    assert len(head["sealed"][2]) < len(seal(body)[2])  # smaller than sealed plain
    table = raw(redis_cache, [_table_key(redis_cache, store)])
    assert next(iter(table.values()))[0] == COMPRESSED_SEAL_MARK
    fresh = CacheStorageBackend(uid, cache=redis_cache, layout="paged")
    assert sorted(fresh.tasks) == sorted(store.tasks)
    assert fresh.instances["t_score#0"].status == "finished"


def test_a_split_head_stays_uncompressed(redis_cache, uid):
    store = populate(CacheStorageBackend(uid, cache=redis_cache, layout="split"))
    assert caches[redis_cache].get(store.cache_key)["sealed"][0] == SEAL_MARK


def test_a_head_of_the_earlier_paged_format_is_read_and_saved_anew(redis_cache, uid):
    store = _paged(redis_cache, uid)
    content = stored_head(redis_cache, store)
    earlier = {**caches[redis_cache].get(store.cache_key), "format": "triggers/paged-1"}
    earlier["sealed"] = seal(content)  # as the earlier format sealed it: plain
    _put(redis_cache, store.cache_key, earlier)
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache, layout="paged"))
    assert manager.storage.instances["t_score#1"].status == "failed"
    manager.fire("upload", {"file": 1})
    head = caches[redis_cache].get(store.cache_key)
    assert head["format"] == PAGED_FORMAT and head["sealed"][0] == COMPRESSED_SEAL_MARK
    reread = CacheStorageBackend(uid, cache=redis_cache, layout="paged")
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
    "a bomb": (lambda packed: _bomb(), True, "inflates past"),
}


@pytest.mark.parametrize("part", ["head", "table"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_compressed_body_is_refused_and_kept(redis_cache, uid, part, damage):
    """Damage the digest catches, and damage past a digest made to match it (a
    hand-made or hostile value): StorageCorrupted naming the key, nothing written."""
    store = _paged(redis_cache, uid)
    change, redigest, message = DAMAGES[damage]
    key = store.cache_key if part == "head" else _table_key(redis_cache, store)
    stored = raw(redis_cache, [key])[key]
    sealed = stored["sealed"] if part == "head" else stored
    packed = change(sealed[2])
    digest = hashlib.blake2b(packed, digest_size=sealing.DIGEST_SIZE).digest() if redigest else sealed[1]
    damaged = (sealed[0], digest, packed)
    _put(redis_cache, key, {**stored, "sealed": damaged} if part == "head" else damaged)
    before = raw(redis_cache, [*_session_keys(store), key])
    reset_process_state()  # as a process that never read it: the table is read too
    with pytest.raises(StorageCorrupted) as info:
        TriggerManager(CacheStorageBackend(uid, cache=redis_cache, layout="paged")).fire("upload", {})
    assert repr(key) in str(info.value) and message in str(info.value)
    assert raw(redis_cache, list(before)) == before


def test_a_seal_compresses_only_when_that_is_smaller():
    assert seal(b"x", compress=True)[0] == SEAL_MARK
    value = {"names": ["t_wait"] * 200}
    sealed = seal(value, compress=True)
    assert sealed[0] == COMPRESSED_SEAL_MARK
    assert unseal(sealed, "u", "k") == value
    assert unseal(seal(value), "u", "k") == value
