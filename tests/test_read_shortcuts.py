"""The shortcuts a whole read of a split session takes, and the general ways
they fall back on: each shortcut must give what the general way gives."""

from __future__ import annotations

import collections
import warnings

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import CacheKeyWarning
from django_redis.cache import RedisCache

from tests.conftest import prepare_cache
from triggers import CacheStorageBackend
from triggers.cache_internals import redis_codec
from triggers.errors import StorageCorrupted, UnknownInstance
from triggers.locking.driver_table import write_driver
from triggers.locking.raw_values import RAW_MARK, decoded_found
from triggers.locking.writes import Writes
from triggers.storages.cache.records import encode_record
from triggers.storages.instances import TaskInstanceCollection
from triggers.storages.validation import stored_record_config
from triggers.types import TaskConfig, TaskInstance

from .storage_support import fresh, populate, sibling_cache, stored_head


def custom_key(key: str, key_prefix: str, version: int) -> str:
    """A KEY_FUNCTION other than Django's: keys the shortcut cannot make."""
    return f"custom|{version}|{key_prefix}|{key}"


@pytest.fixture(params=["redis", "dredis"])
def redis_alias(request):
    """django-redis, and Django's own RedisCache."""
    return prepare_cache(request, request.param)


# ------------------------------------------------------------- Redis keys


@pytest.mark.parametrize(
    "options",
    [{}, {"KEY_PREFIX": "site-a", "VERSION": 7}, {"KEY_PREFIX": "é{x}", "VERSION": "v2"}],
)
def test_redis_keys_made_by_the_shortcut_are_the_caches_own(redis_alias, options):
    cache = sibling_cache(redis_alias, **options)
    assert redis_codec(cache).key_prefix is not None  # the shortcut is taken
    driver = write_driver(cache)
    for key in ["a", "triggers.s:{x}3:abc:i:t#0", "ü:ß", "x" * 230]:
        assert driver.made_key(key) == cache.make_key(key)


@pytest.mark.parametrize(
    "options",
    [
        {"KEY_FUNCTION": custom_key},
        {"KEY_FUNCTION": "tests.test_read_shortcuts.custom_key", "KEY_PREFIX": "p"},
        {"KEY_PREFIX": "with space"},  # a prefix Django's RedisCache warns about
    ],
)
@pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning")
def test_a_cache_the_shortcut_cannot_key_finds_its_records_its_own_way(redis_alias, uid, options):
    cache = sibling_cache(redis_alias, **options)
    assert redis_codec(cache).key_prefix is None
    store = populate(CacheStorageBackend(uid, cache=cache, layout="split"))
    with store.acquire_lock(ttl=30):
        store.metadata["settle"] = True  # every record into its own key
        store.save()
    expected = {i.name: i.serialize() for i in store}
    read = CacheStorageBackend(uid, cache=cache, layout="split")
    assert {i.name: i.serialize() for i in read} == expected
    made = write_driver(cache).made_key(store.record_key("t_score#1"))
    assert made == cache.make_key(store.record_key("t_score#1"))
    if "KEY_FUNCTION" in options:
        assert made.startswith("custom|")
    assert cache.get(store.record_key("t_score#1")) is not None  # where the cache looks


def test_a_key_djangos_redis_cache_warns_about_still_warns(request):
    cache = sibling_cache(prepare_cache(request, "dredis"))
    driver = write_driver(cache)
    long_key = "k" * 260
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = driver.made_key(long_key)
    assert made == cache.make_key(long_key)
    assert any(issubclass(w.category, CacheKeyWarning) for w in caught)


def test_a_whole_read_on_redis_with_a_prefix_and_a_non_ascii_uid(redis_alias):
    cache = sibling_cache(redis_alias, KEY_PREFIX="pré", VERSION=3)
    uid = "sessiön-ü-" + str(id(cache))
    store = populate(CacheStorageBackend(uid, cache=cache, layout="split"))
    with store.acquire_lock(ttl=30):
        store.metadata["settle"] = True
        store.save()
    names = ["t_import#0", "t_score#0", "t_score#1"]
    found = write_driver(cache).read_many([store.record_key(n) for n in names])
    assert len(found) == 3 and all(v.startswith(RAW_MARK) for v in found.values())
    assert [i.name for i in fresh(store)] == names


def test_values_found_are_decoded_unless_stored_as_they_are():
    raw = RAW_MARK + b"rest"
    found = decoded_found(["a", "b", "c", "d"], [raw, None, b"x", 5], lambda v: ("decoded", v))
    assert found == {"a": raw, "c": ("decoded", b"x"), "d": ("decoded", 5)}


def test_keys_are_sent_in_the_clients_own_encoding(request):
    alias = prepare_cache(request, "redis")
    # In the URL: django-redis shares one pool per URL, whatever the options.
    location = settings.CACHES[alias]["LOCATION"] + "?encoding=latin-1"
    cache = RedisCache(location, {"KEY_PREFIX": "é"})
    assert cache.client.get_client(write=True).get_encoder().encoding == "latin-1"
    uid = f"latin-é-{id(cache)}"
    store = populate(CacheStorageBackend(uid, cache=cache, layout="split"))
    with store.acquire_lock(ttl=30):
        store.metadata["settle"] = True
        store.save()
    key = store.record_key("t_score#1")
    client = cache.client.get_client(write=True)
    assert client.exists(cache.make_key(key).encode("latin-1"))  # stored under those bytes
    assert [i.name for i in fresh(store)] == ["t_import#0", "t_score#0", "t_score#1"]


def test_a_damaged_record_read_whole_on_redis_is_named(redis_alias, uid):
    cache = caches[redis_alias]
    store = populate(CacheStorageBackend(uid, cache=redis_alias, layout="split"))
    with store.acquire_lock(ttl=30):
        store.metadata["settle"] = True
        store.save()
    key = store.record_key("t_score#0")
    good = write_driver(cache).read_many([key])[key]
    damaged = good[:-3] + bytes([good[-3] ^ 1]) + good[-2:]
    write_driver(cache).write(Writes(({key: damaged},), 600))
    with pytest.raises(StorageCorrupted, match="checksum") as info:
        list(fresh(store))
    assert repr(key) in str(info.value)


# ------------------------------------------------------------- records


CONFIGS = {"t": TaskConfig("t", ["go"], "run_it")}
PLAIN = {
    "abandonState": [],
    "kwargs": {"go": {}},
    "metadata": {},
    "status": "unstarted",
    "task": "t",
}


@pytest.mark.parametrize(
    "record",
    [
        PLAIN,
        {**PLAIN, "abandonState": ["stop", "halt"]},
        # Shapes the shortcut leaves to the general check, which takes them:
        {**PLAIN, "status": None, "metadata": None, "kwargs": None, "abandonState": None},
        {**PLAIN, "metadata": collections.OrderedDict(a=1), "abandonState": ("stop",)},
        {**PLAIN, "abandonState": {"stop"}},
        collections.OrderedDict(PLAIN),
        {"task": "t"},
    ],
)
def test_records_of_a_configured_task_are_accepted(record):
    assert stored_record_config("u", CONFIGS, "t#0", record) is CONFIGS["t"]


@pytest.mark.parametrize(
    "record",
    [
        {**PLAIN, "task": "other"},
        {**PLAIN, "task": 3},
        {**PLAIN, "task": ["t"]},
        {**PLAIN, "status": "sleeping"},
        {**PLAIN, "status": 1},
        {**PLAIN, "status": ["unstarted"]},
        {**PLAIN, "metadata": []},
        {**PLAIN, "kwargs": "go"},
        {**PLAIN, "abandonState": [1]},
        {**PLAIN, "abandonState": "stop"},
        {k: v for k, v in PLAIN.items() if k != "task"},
        ("t", "unstarted"),
    ],
)
def test_records_of_the_wrong_shape_or_task_are_refused(record):
    with pytest.raises(StorageCorrupted, match="t#0"):
        stored_record_config("u", CONFIGS, "t#0", record)


@pytest.mark.parametrize("layout", ["split", "paged"])
@pytest.mark.parametrize("name", ["t_score#0", "t_score-odd"])
def test_a_record_under_its_own_key_naming_another_task_is_refused(redis_alias, uid, layout, name):
    """Regular and irregular names alike: a whole read takes an instance's task
    from the index, and a record naming another is damage."""
    store = populate(CacheStorageBackend(uid, cache=redis_alias, layout=layout))
    with store.acquire_lock(ttl=30):
        if name not in store.instances:
            store.instances.add(TaskInstance(name, store.tasks["t_score"]))
        store.metadata["settle"] = True
        store.save()
    with store.acquire_lock(ttl=30):
        store.metadata["settled"] = True  # the first save's records reach their keys
        store.save()
    # Stored whole and with a good checksum, but for a task the index does not say.
    record = {**store[name].serialize(), "task": "t_import"}
    key = store.record_key(name)
    write_driver(caches[redis_alias]).write(Writes(({key: encode_record(name, record)},), 600))
    with pytest.raises(StorageCorrupted, match="names task 't_import'"):
        list(fresh(store))


def _stored_as(redis_alias: str, uid: str, record: dict) -> CacheStorageBackend:
    """A populated split session whose record of ``t_score#0`` is ``record``, as
    this package stores a record under its own key."""
    store = populate(CacheStorageBackend(uid, cache=redis_alias, layout="split"))
    with store.acquire_lock(ttl=30):
        store.metadata["settle"] = True
        store.save()
    key = store.record_key("t_score#0")
    write_driver(caches[redis_alias]).write(
        Writes(({key: encode_record("t_score#0", record)},), 600)
    )
    return store


def _fields(instance) -> tuple:
    return (
        instance.config.name,
        instance.status,
        instance.metadata,
        instance.kwargs,
        instance.abandon_state,
    )


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"abandonState": ["stop", "halt"]},
        # Shapes the read builds through the general check, which takes them:
        {"status": None, "metadata": None, "kwargs": None, "abandonState": None},
        {"metadata": collections.OrderedDict(a=1), "abandonState": ("stop",)},
        {"abandonState": {"stop"}},
    ],
)
def test_a_whole_read_builds_every_accepted_record_as_under_the_lock(redis_alias, uid, change):
    record = {**PLAIN, "task": "t_score", "kwargs": {"t_import": {}}, **change}
    store = _stored_as(redis_alias, uid, record)
    outside = {i.name: _fields(i) for i in fresh(store).iter_instances()}
    reader = fresh(store)
    with reader.acquire_lock(ttl=30):
        under = {i.name: _fields(i) for i in reader.iter_instances()}
    assert outside == under
    expected = TaskInstance(
        "t_score#0",
        fresh(store).tasks["t_score"],
        record["status"],
        record["metadata"],
        record["kwargs"],
        record["abandonState"],
    )
    assert outside["t_score#0"] == _fields(expected)


@pytest.mark.parametrize(
    "change",
    [
        {"task": "unconfigured"},
        {"task": 3},
        {"status": "sleeping"},
        {"metadata": []},
        {"kwargs": "go"},
        {"abandonState": [1]},
        {"abandonState": "stop"},
    ],
)
def test_a_whole_read_refuses_a_record_of_the_wrong_shape_outside_the_lock_and_under_it(
    redis_alias, uid, change
):
    store = _stored_as(redis_alias, uid, {**PLAIN, "task": "t_score", **change})
    with pytest.raises(StorageCorrupted, match="t_score#0"):
        list(fresh(store).iter_instances())
    reader = fresh(store)
    with reader.acquire_lock(ttl=30), pytest.raises(StorageCorrupted, match="t_score#0"):
        list(reader.iter_instances())


def test_a_save_after_a_whole_read_under_the_lock_writes_only_what_changed(redis_alias, uid):
    store = _stored_as(redis_alias, uid, {**PLAIN, "task": "t_score", "kwargs": {"t_import": {}}})
    reader = fresh(store)
    with reader.acquire_lock(ttl=30):
        names = [instance.name for instance in reader.iter_instances()]
        reader["t_score#1"].metadata["seen"] = True
        reader.save()
    assert names == ["t_import#0", "t_score#0", "t_score#1"]
    assert list(stored_head(redis_alias, store)["delta"]) == ["t_score#1"]


# ------------------------------------------------------------- the index


def test_the_index_knows_regular_and_irregular_names():
    collection = TaskInstanceCollection(counts={"t": 12, "a#1": 2}, irregular={"u": ["t#20", "x"]})
    assert [collection.task_of(n) for n in ["t#0", "t#9", "t#11", "t#12", "t#20", "x"]] == [
        "t",
        "t",
        "t",
        None,
        "u",
        "u",
    ]
    assert collection.task_of("a#1#1") == "a#1"
    for odd in ["t#01", "t#00", "t#-1", "t#+1", "t# 1", "t#1 ", "t#", "t", "#1", "t#١", "t#²", 5]:
        assert collection.task_of(odd) is None, odd


def test_the_task_of_a_name_the_index_holds_is_the_indexs():
    collection = TaskInstanceCollection(
        counts={"t": 12, "a#1": 2, "u": 1}, irregular={"u": ["t#20", "x", "t#05"], "t": ["u#3"]}
    )
    names = list(collection)
    assert {"t#20", "x", "t#05", "u#3", "a#1#1", "u#0"} <= set(names)
    assert [collection.indexed_task(name) for name in names] == [
        collection.task_of(name) for name in names
    ]


def test_an_instance_name_with_unicode_digits_is_unknown(uid):
    store = populate(CacheStorageBackend(uid, cache="locmem"))
    for name in ["t_score#²", "t_score#١"]:
        with pytest.raises(UnknownInstance):
            store[name]
