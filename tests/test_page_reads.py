"""A whole read of a paged session takes its records from their pages in place.

What that read must give is what the read a key at a time gives (the one a
holder of the lock makes), and it must refuse what that read refuses, naming
the entry: records of other forms, damage past a matching checksum, entries
missing or left over, pages of several tasks and of irregular names.
"""

import pickle
import zlib

import pytest
from django.core.cache import caches

from tests.conftest import PAGED_CACHES, prepare_cache
from tests.storage_support import fresh
from tests.test_paged_layout import AWKWARD_NAMES, made, many_instances, redis_client
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import SessionIncomplete, StorageCorrupted
from triggers.locking.pages import PAGE_MARK, decode_page, encode_entries
from triggers.locking.raw_values import RAW_MARK
from triggers.storages.cache.keys import PAGE_RECORDS, SessionKeys
from triggers.storages.cache.records import RECORD_MARK, encode_record


@pytest.fixture(params=sorted(PAGED_CACHES))
def redis_cache(request):
    return prepare_cache(request, request.param)


def _by_name(store):
    return {instance.name: instance.serialize() for instance in store}


def _read_under_the_lock(store):
    """Every record read a key at a time (the lock holder's way), serialized by name."""
    reader = fresh(store)
    with reader.acquire_lock(ttl=30):
        return _by_name(reader)


def _rewrite_entry(alias, store, name, value):
    """Put ``value`` (a stored record) in place of instance ``name``'s entry, by hand."""
    client, page_key = redis_client(alias), made(alias, store.keys.page(name))
    entries = decode_page(page_key, client.get(page_key))
    entries[name] = value
    client.set(page_key, encode_entries(entries), px=60_000)
    return page_key


def _record_with_body(name, fields):
    """A record of this form holding the pickle of ``fields``, its checksum made to match."""
    body = pickle.dumps(fields, 5)[2:]
    crc = zlib.crc32(body, zlib.crc32(name.encode("utf-8")))
    return RECORD_MARK + crc.to_bytes(4, "big") + b"0" + body


NAMES = [
    "t#0", "t#31", "t#32", "t#007", "t#" + "9" * 18, "t#" + "9" * 19, "t#", "#5", "#",
    "t#\u00b2", "a#b#3", "a#b#c", "no number", *AWKWARD_NAMES,
]


@pytest.mark.parametrize("order", ["as given", "reversed"])
def test_pages_of_groups_names_under_the_keys_page_gives(order):
    keys = SessionKeys("u{x}:1", "triggers.storages.cache:u", ":1:triggers.storages.cache:u")
    names = NAMES if order == "as given" else NAMES[::-1]
    groups = keys.pages_of(names)
    assert {name: key for key, group in groups.items() for name in group} == {
        name: keys.page(name) for name in names
    }
    assert sorted(name for group in groups.values() for name in group) == sorted(names)


def test_a_whole_read_gives_what_the_read_a_key_at_a_time_gives(redis_cache, uid):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 70)
    with store.acquire_lock(ttl=30):
        store.update_configuration({name: {"after": ["never"], "run": "r"} for name in AWKWARD_NAMES})
        for name in AWKWARD_NAMES:
            store.create_instance(name, kwargs={"name": name})
        store.save()
    manager = TriggerManager(fresh(store))
    manager.update_instance_status("t_many#40", "failed")  # in the head's delta
    manager.update_instance_status("t_many#3", "abandoned")
    whole = _by_name(fresh(store))
    assert len(whole) == 70 + len(AWKWARD_NAMES)
    assert whole == _read_under_the_lock(store)
    assert whole["t_many#40"]["status"] == "failed" and whole["t_many#3"]["status"] == "abandoned"


def test_an_entry_left_over_is_skipped_and_one_missing_is_incomplete(redis_cache, uid):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    record = encode_record("t_many#45", {"task": "t_many", "status": "unstarted", "metadata": {},
                                         "kwargs": {}, "abandonState": []})
    _rewrite_entry(redis_cache, store, "t_many#45", record)  # an instance the session lacks
    assert len(_by_name(fresh(store))) == 40
    client, page_key = redis_client(redis_cache), made(redis_cache, store.keys.page("t_many#5"))
    entries = decode_page(page_key, client.get(page_key))
    del entries["t_many#5"], entries["t_many#6"]
    client.set(page_key, encode_entries(entries), px=60_000)
    with pytest.raises(SessionIncomplete) as info:
        list(fresh(store))
    assert sorted(info.value.missing) == sorted(store.keys.page_entry(f"t_many#{n}") for n in (5, 6))


@pytest.mark.parametrize("last", ["whole", "damaged"])
def test_a_name_written_twice_in_a_page_is_its_last_entry(redis_cache, uid, last):
    """No save writes a name twice; in a page made so by hand, every reader
    (and the server's merge) takes the last entry of the name."""
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 8)
    client, page_key = redis_client(redis_cache), made(redis_cache, store.keys.page("t_many#3"))
    entries = decode_page(page_key, client.get(page_key))
    whole = entries.pop("t_many#3")
    damaged = whole[:-1] + bytes([whole[-1] ^ 1])
    first, second = (damaged, whole) if last == "whole" else (whole, damaged)
    framed = [encode_entries({"t_many#3": value})[len(PAGE_MARK) :] for value in (first, second)]
    client.set(page_key, encode_entries(entries) + b"".join(framed), px=60_000)
    assert decode_page(page_key, client.get(page_key))["t_many#3"] == (
        whole if last == "whole" else damaged
    )
    if last == "whole":
        assert _by_name(fresh(store)) == _read_under_the_lock(store)
        assert len(_by_name(fresh(store))) == 8
    else:
        with pytest.raises(StorageCorrupted, match="checksum"):
            list(fresh(store))
        with pytest.raises(StorageCorrupted, match="checksum"):
            _read_under_the_lock(store)


def test_a_record_of_another_version_in_a_page_is_read_the_general_way(redis_cache, uid):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 8)
    before = _by_name(fresh(store))
    record = dict(before["t_many#2"], fromANewerVersion=1)  # a field this version lacks
    _rewrite_entry(redis_cache, store, "t_many#2", encode_record("t_many#2", record))
    read = _by_name(fresh(store))
    assert read["t_many#2"] == before["t_many#2"]  # its fields, checked in full
    assert read == _read_under_the_lock(store)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ((1, 2, 3), "holds no record"),  # a tuple of another length
        ("not a tuple", "holds no record"),
        (([], {}, {}, "no such status", "t_many"), "is stored as"),
        (([], {}, {}, "unstarted", "other_task"), "belongs to task 'other_task'"),
    ],
)
def test_a_record_past_its_checksum_is_still_checked(redis_cache, uid, fields, says):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 8)
    _rewrite_entry(redis_cache, store, "t_many#4", _record_with_body("t_many#4", fields))
    keys = [store.cache_key, store.witness_key, made(redis_cache, store.keys.page("t_many#4"))]
    before = {key: redis_client(redis_cache).get(key) for key in keys}
    with pytest.raises(StorageCorrupted, match=says) as info:
        list(fresh(store))
    assert uid in str(info.value)
    assert {key: redis_client(redis_cache).get(key) for key in keys} == before


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (RAW_MARK + b"x-not-a-record", "is stored as"),
        (RAW_MARK, "is stored as"),
        (RAW_MARK + b"r", "checksum does not match"),
        (RAW_MARK + b"r\x00\x00", "checksum does not match"),
        (RAW_MARK + b"r\x00\x00\x00\x00", "checksum does not match"),
    ],
    ids=["another mark", "empty", "mark alone", "cut in the checksum", "nothing past the checksum"],
)
def test_an_entry_that_is_no_record_is_refused(redis_cache, uid, value, says):
    """Refused as the read a key at a time refuses it (a value of no form this
    version knows is named by its instance, a cut record by its entry)."""
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    page_key = _rewrite_entry(redis_cache, store, "t_many#35", value)  # the second page
    before = redis_client(redis_cache).get(page_key)
    with pytest.raises(StorageCorrupted, match=says) as info:
        list(fresh(store))
    assert "t_many#35" in str(info.value) and uid in str(info.value)
    if "checksum" in says:
        assert repr(store.keys.page_entry("t_many#35")) in str(info.value)
    with pytest.raises(StorageCorrupted, match=says):
        _read_under_the_lock(store)
    assert redis_client(redis_cache).get(page_key) == before


def test_a_page_the_cache_cannot_decode_names_an_entry(redis_cache, uid):
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    page_key = made(redis_cache, store.keys.page("t_many#33"))
    redis_client(redis_cache).set(page_key, b"\x80\x05not a pickle", px=60_000)
    with pytest.raises(StorageCorrupted) as info:
        list(fresh(store))
    assert store.keys.page("t_many#33") in str(info.value)
    assert redis_client(redis_cache).get(page_key) == b"\x80\x05not a pickle"


@pytest.mark.parametrize("value", [{"not": "a page"}, b"bytes the cache pickled", 7])
def test_a_value_of_another_kind_under_a_page_key_names_an_entry(redis_cache, uid, value):
    """What the cache's own ``set`` stored there (pickled by its codec) is no page."""
    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 40)
    caches[redis_cache].set(store.keys.page("t_many#33"), value, 60)
    with pytest.raises(StorageCorrupted, match="does not hold a page") as info:
        list(fresh(store))
    assert repr(store.keys.page_entry("t_many#32")) in str(info.value) and uid in str(info.value)
    assert caches[redis_cache].get(store.keys.page("t_many#33")) == value


def test_every_page_of_a_large_session_is_asked_for_once(redis_cache, uid):
    """One request for all the pages, each by its own key, however many instances."""
    import redis

    store = many_instances(CacheStorageBackend(uid, cache=redis_cache, layout="paged"), 200)
    reader = fresh(store)
    assert len(reader.instances) == 200  # the head read: the index, no record yet
    asked = []
    original = redis.Redis.execute_command

    def counting(client, *args, **options):
        asked.append(args)
        return original(client, *args, **options)

    redis.Redis.execute_command = counting
    try:
        assert len(list(reader)) == 200
    finally:
        redis.Redis.execute_command = original
    mgets = [args for args in asked if args[0] == "MGET"]
    assert len(mgets) == 1
    pages = [key for key in mgets[0][1:] if ":p:" in str(key)]
    assert len(pages) == len(set(pages)) == -(-200 // PAGE_RECORDS)
    assert not any("\n" in str(key) for key in mgets[0][1:])  # pages, not entries
