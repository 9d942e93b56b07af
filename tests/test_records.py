"""The stored form of a split session's instance records (triggers.storages.cache.records)."""

from __future__ import annotations

import pickle
import zlib

import pytest
from django.core.cache import caches

from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import StorageCorrupted, UnserializableValue
from triggers.locking.driver_table import write_driver
from triggers.locking.writes import Writes
from triggers.storages.cache.records import RECORD_MARK, decode_record, encode_record
from triggers.storages.cache.sealing import seal

from .storage_support import fresh, populate, stored_head, stored_record, stored_value

RECORD = {
    "abandonState": [],
    "kwargs": {"start": {"subject": 7}},
    "metadata": {"result": {"score": 3}},
    "status": "finished",
    "task": "t_score",
}


def settled(uid: str, alias: str) -> CacheStorageBackend:
    """A split session whose records are all in their own keys."""
    store = populate(CacheStorageBackend(uid, cache=alias, layout="split"))
    with store.acquire_lock(ttl=30):
        store.metadata["settle"] = True
        store.save()
    return fresh(store)


def test_a_record_round_trips_and_is_smaller_than_its_pickled_dict():
    stored = encode_record("t_score#1", RECORD)
    assert stored.startswith(RECORD_MARK)
    assert decode_record(stored, "t_score#1", "uid", "key") == RECORD
    assert len(stored) < len(pickle.dumps(RECORD, pickle.HIGHEST_PROTOCOL))


def test_fields_of_another_version_are_kept():
    record = {**RECORD, "addedLater": {"x": 1}}
    assert decode_record(encode_record("t_score#1", record), "t_score#1", "u", "k") == record


def test_an_unpicklable_field_names_the_instance():
    with pytest.raises(UnserializableValue, match="t_score#1"):
        encode_record("t_score#1", {**RECORD, "kwargs": {"f": lambda: None}})


@pytest.mark.parametrize(
    "stored, says",
    [
        (RECORD_MARK + b"\0\0\0\0" + pickle.dumps(("x",)), "checksum"),
        (RECORD_MARK + b"\1", "checksum"),
    ],
)
def test_damaged_bytes_are_refused_naming_the_key(stored, says):
    with pytest.raises(StorageCorrupted, match=says) as info:
        decode_record(stored, "t_score#1", "the-uid", "the-key")
    assert info.value.uid == "the-uid" and "'the-key'" in str(info.value)


@pytest.mark.parametrize(
    "body, says",
    [
        (pickle.dumps([1, 2], 5)[2:], "holds no record"),
        (pickle.dumps((1, 2, 3), 5)[2:], "holds no record"),
        (b"junk", "does not decode"),
        (b"", "does not decode"),
    ],
)
def test_a_body_that_passes_its_checksum_but_is_no_record_is_refused(body, says):
    crc = zlib.crc32(body, zlib.crc32(b"t_score#1")).to_bytes(4, "big")
    with pytest.raises(StorageCorrupted, match=says) as info:
        decode_record(RECORD_MARK + crc + b"0" + body, "t_score#1", "the-uid", "the-key")
    assert "'the-key'" in str(info.value)


def test_every_record_is_stored_in_its_own_form(any_cache, uid):
    store = settled(uid, any_cache)
    for name in store.instances:
        value = stored_value(any_cache, store.record_key(name))
        assert type(value) is bytes and value.startswith(RECORD_MARK), name
        assert stored_record(any_cache, store, name) == store[name].serialize()


def test_on_redis_a_record_is_stored_as_it_is(uid):
    store = settled(uid, "redis")
    key = store.record_key("t_import#0")
    client = caches["redis"].client.get_client(write=True)
    stored = client.get(caches["redis"].make_key(key))
    assert stored.startswith(RECORD_MARK)  # no second pickle around it
    assert stored == stored_value("redis", key)
    # Itself a pickle: the cache's own get still decodes it, to the record's fields.
    fields = caches["redis"].get(key)
    assert type(fields) is tuple and "t_import" in fields and {"subject": 7} in fields[1].values()


def test_a_record_copied_under_another_instances_key_is_refused(any_cache, uid):
    store = settled(uid, any_cache)
    source, target = store.record_key("t_score#0"), store.record_key("t_score#1")
    moved = stored_value(any_cache, source)
    write_driver(caches[any_cache]).write(Writes(({target: moved},), 600))
    with pytest.raises(StorageCorrupted, match="another instance") as info:
        list(fresh(store))
    assert repr(target) in str(info.value) and uid in str(info.value)
    with pytest.raises(StorageCorrupted):
        TriggerManager(fresh(store)).update_instance_metadata("t_score#1", {"seen": 1})
    assert stored_value(any_cache, target) == moved  # nothing written over it


def test_records_stored_by_earlier_versions_still_read_and_are_rewritten(any_cache, uid):
    store = settled(uid, any_cache)
    names = list(store.instances)
    expected = {name: store[name].serialize() for name in names}
    driver = write_driver(caches[any_cache])
    # As the previous release stored them: a sealed pickle of the dict.
    old = {store.record_key(name): seal(expected[name]) for name in names}
    driver.write(Writes((old,), 600))
    assert {i.name: i.serialize() for i in fresh(store)} == expected
    with fresh(store).acquire_lock(ttl=30) as again:
        again["t_score#1"].metadata["seen"] = True
        again.save()
    with fresh(store).acquire_lock(ttl=30) as again:
        again.metadata["settle again"] = True
        again.save()
    value = stored_value(any_cache, store.record_key("t_score#1"))
    assert type(value) is bytes and value.startswith(RECORD_MARK)
    assert fresh(store)["t_score#1"].metadata["seen"] is True


def test_records_read_under_the_lock_and_left_alone_are_not_written_again(any_cache, uid):
    store = settled(uid, any_cache)
    with fresh(store).acquire_lock(ttl=30) as again:
        assert len(list(again)) == 3  # every record read from its own key
        again.metadata["only this"] = True
        again.save()
    assert stored_head(any_cache, store)["delta"] == {}


def test_a_large_read_leaves_the_garbage_collector_as_it_was(uid):
    import gc

    store = CacheStorageBackend(uid, cache="redis")
    with store.acquire_lock(ttl=30):
        store.update_configuration({"t": {"after": ["go"], "andEvery": "go", "run": "r"}})
        for number in range(300):
            store.create_instance("t", kwargs={"go": {"n": number}})
        store.save()
    with fresh(store).acquire_lock(ttl=30) as again:
        again.metadata["settle"] = True
        again.save()
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            assert len(list(fresh(store))) == 300
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


@pytest.mark.parametrize(
    "name", ["t:{x}#0", "t\x1b[2J\x07#1", "t\\0\n#2", "tâ€\u202e#3", "t\ud800#4", "{t}:i:t_score#0"]
)
def test_odd_instance_names_round_trip_and_stay_bound_to_their_record(name):
    stored = encode_record(name, RECORD)
    assert decode_record(stored, name, "u", "k") == RECORD
    # The checksum is of the name as well: a record is never read as another name's.
    with pytest.raises(StorageCorrupted, match="another instance"):
        decode_record(stored, name + "x", "u", "k")


@pytest.mark.parametrize("size", range(len(RECORD_MARK), len(RECORD_MARK) + 6))
def test_a_record_cut_short_is_refused(size):
    stored = encode_record("t_score#1", RECORD)[:size]
    with pytest.raises(StorageCorrupted, match="is damaged") as info:
        decode_record(stored, "t_score#1", "the-uid", "the-key")
    assert "'the-key'" in str(info.value)
