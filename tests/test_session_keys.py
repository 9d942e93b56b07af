"""Where a session's keys are, and deleting a session: ``storage.delete()`` and ``delete UID``.

Run on every cache and layout the suite has. On Redis, the keys a session
occupies are found on the server itself (SCAN), so nothing here trusts the
storage's own idea of its keys.
"""

from __future__ import annotations

import json

import pytest
from django.core.cache import caches

from tests.ops_support import assert_one_line_refusal, command, python_m, refused
from tests.runner_support import RecordingRunner
from tests.storage_support import populate, raw, stored_head
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import StorageCorrupted
from triggers.storages.cache.keys import CLUSTER_SLOTS, cluster_slot, slot_tag

REDIS_ALIASES = ("redis", "dredis")


def raw_redis(alias):
    """The redis-py client behind a Redis cache alias."""
    cache = caches[alias]
    client = getattr(cache, "client", None)
    if hasattr(client, "get_client"):  # django-redis
        return client.get_client(write=True)
    return cache._cache.get_client(None, write=True)  # Django's RedisCache


def server_keys(alias, uid):
    """Every key on the Redis server whose name holds ``uid``."""
    found = raw_redis(alias).scan_iter(match="*" + uid + "*", count=1000)
    return sorted(key.decode() for key in found)


def test_cluster_slot_is_redis_clusters():
    from redis.crc import key_slot

    for key in ["foo", "{user1000}.following", "a{}b", "a{b}c{d}", "x}{y}", "é{ü}", "{}{x}"]:
        assert cluster_slot(key) == key_slot(key.encode()), key
    for slot in (0, 1, 12182, CLUSTER_SLOTS - 1):
        assert key_slot(slot_tag(slot).encode()) == slot


@pytest.mark.parametrize("alias", REDIS_ALIASES)
@pytest.mark.parametrize("uid_shape", ["plain", "{braced}", "a}b{c", "k:w"])
def test_every_key_of_a_split_session_lock_included_is_in_one_cluster_slot(alias, uid_shape, uid):
    from redis.crc import key_slot

    from tests.conftest import require_service

    require_service("redis")
    uid = f"{uid}-{uid_shape}"
    storage = populate(CacheStorageBackend(uid, cache=alias))
    with storage.acquire_lock():
        held = server_keys(alias, uid)  # the lock is there now
    keys = server_keys(alias, uid)
    assert set(keys) < set(held), (keys, held)
    assert len(held) >= 5, held  # head, witness, table, records, lock
    slots = {key: key_slot(key.encode()) for key in held}
    assert len(set(slots.values())) == 1, slots


@pytest.mark.parametrize("alias", REDIS_ALIASES)
def test_a_single_layout_session_is_under_2x_key_only(alias, uid):
    from tests.conftest import require_service

    require_service("redis")
    populate(CacheStorageBackend(uid, cache=alias, layout="single"))
    made_head = caches[alias].make_key("triggers.storages.cache:" + uid)
    keys = server_keys(alias, uid)
    assert made_head in keys
    assert [key for key in keys if "triggers.storages.cache" in key] == [made_head]


def test_delete_removes_every_key_and_the_uid_starts_empty(any_cache, layout, uid):
    storage = populate(CacheStorageBackend(uid, cache=any_cache, layout=layout))
    names = list(storage.instances)
    version = (stored_head(any_cache, storage) or {}).get("tasks_version")
    keys = [storage.cache_key, storage.witness_key, *(storage.record_key(n) for n in names)]
    if layout == "split":
        keys.append(storage.tasks_key(version))
    assert caches[any_cache].get(storage.cache_key) is not None

    assert CacheStorageBackend(uid, cache=any_cache, layout=layout).delete() is True
    assert raw(any_cache, keys) == {}
    if any_cache in REDIS_ALIASES:
        assert server_keys(any_cache, uid) == []
    again = CacheStorageBackend(uid, cache=any_cache, layout=layout)
    assert not again.tasks and not len(again.instances) and not again.latest_kwargs
    assert again.delete() is False
    # The lock was let go: it can be taken at once.
    with again.acquire_lock(block=False):
        pass


def test_a_process_that_remembers_a_deleted_session_writes_nothing_into_the_new_one(
    any_cache, layout, uid, test_runners
):
    config = {"t_rec": {"after": ["go"], "andEvery": "go", "run": "x", "using": RecordingRunner.name}}
    old = TriggerManager(CacheStorageBackend(uid, cache=any_cache, layout=layout))
    old.update_configuration(config)
    for n in range(3):
        old.fire("go", {"by": "old", "n": n})
    assert CacheStorageBackend(uid, cache=any_cache, layout=layout).delete() is True
    new = TriggerManager(CacheStorageBackend(uid, cache=any_cache, layout=layout))
    new.update_configuration(config)
    for n in range(2):
        new.fire("go", {"by": "new", "n": n})
    old.fire("go", {"by": "old", "n": 3})  # remembers the deleted session
    reader = CacheStorageBackend(uid, cache=any_cache, layout=layout)
    fired = [
        (name, reader[name].kwargs["go"]["by"], reader[name].kwargs["go"]["n"])
        for name in sorted(reader.instances)
    ]
    assert fired == [("t_rec#0", "new", 0), ("t_rec#1", "new", 1), ("t_rec#2", "old", 3)]


def test_a_session_whose_head_is_damaged_can_be_deleted(any_cache, uid):
    storage = populate(CacheStorageBackend(uid, cache=any_cache))
    caches[any_cache].set(storage.cache_key, ["not", "a", "session"])
    with pytest.raises(StorageCorrupted):
        CacheStorageBackend(uid, cache=any_cache).tasks  # noqa: B018
    assert CacheStorageBackend(uid, cache=any_cache).delete() is True
    assert caches[any_cache].get_many([storage.cache_key, storage.witness_key]) == {}
    assert not CacheStorageBackend(uid, cache=any_cache).tasks


def test_a_head_saved_by_a_development_version_is_refused_with_what_to_do(uid):
    storage = populate(CacheStorageBackend(uid, cache="locmem"))
    head = caches["locmem"].get(storage.cache_key)
    caches["locmem"].set(storage.cache_key, {**head, "format": "triggers/split-2"})
    with pytest.raises(StorageCorrupted, match="development version.*dump it"):
        CacheStorageBackend(uid, cache="locmem").tasks  # noqa: B018
    assert caches["locmem"].get(storage.cache_key)["format"] == "triggers/split-2"  # untouched


# --------------------------------------------------------------------------- the command


def test_delete_command_needs_yes_and_then_deletes(uid):
    populate(CacheStorageBackend(uid, cache="locmem"))
    message = refused("delete", uid, "--cache", "locmem")
    assert "--yes" in message and uid in message and "instances" in message
    assert CacheStorageBackend(uid, cache="locmem").tasks  # nothing was deleted
    out = command("delete", uid, "--cache", "locmem", "--yes")
    assert out.startswith(f"deleted session {uid!r} in cache 'locmem'")
    assert not CacheStorageBackend(uid, cache="locmem").tasks
    assert "nothing to delete" in refused("delete", uid, "--cache", "locmem", "--yes")


def test_delete_command_json_and_both_entry_points(uid):
    from tests.conftest import require_service

    require_service("redis")
    populate(CacheStorageBackend(uid, cache="redis"))
    done = python_m("delete", uid, "--cache", "redis", "--yes", "--json", DJANGO_SETTINGS_MODULE="tests.settings")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["uid"] == uid and report["deleted"] is True and report["instances"] > 0
    assert server_keys("redis", uid) == []
    again = python_m("delete", uid, "--cache", "redis", "--yes", DJANGO_SETTINGS_MODULE="tests.settings")
    assert_one_line_refusal(again, uid, "nothing to delete")
