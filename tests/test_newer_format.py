"""A session stored in a head format a newer version of this package wrote is
refused with an error that says so, and left exactly as it is."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import StorageCorrupted, StoredByNewerVersion
from triggers.locking.driver_table import write_driver
from triggers.locking.writes import Writes

from .storage_support import populate, raw, sealed_head


def _stored_in(alias: str, uid: str, mark: object) -> tuple[CacheStorageBackend, dict]:
    """A populated split session whose head then carries format ``mark``; its keys as stored."""
    store = populate(CacheStorageBackend(uid, cache=alias, layout="split"))
    head = {**caches[alias].get(store.cache_key), "format": mark}
    write_driver(caches[alias]).write(Writes(({store.cache_key: head},), 600))
    keys = [store.cache_key, store.keys.witness, store.record_key("t_score#0")]
    return store, raw(alias, keys)


@pytest.mark.parametrize("mark", ["triggers/split-5", "triggers/paged-3", "triggers/\x1b[31m{x}:"])
def test_a_newer_format_is_refused_by_name_and_nothing_is_written(any_cache, uid, mark):
    store, before = _stored_in(any_cache, uid, mark)
    manager = TriggerManager(CacheStorageBackend(uid, cache=any_cache, layout="split"))
    with pytest.raises(StoredByNewerVersion) as info:
        manager.fire("upload", {"file": 1})
    assert repr(mark) in str(info.value) and "newer version" in str(info.value)
    assert info.value.stored_format == mark and info.value.key == store.cache_key
    with pytest.raises(StoredByNewerVersion):
        list(CacheStorageBackend(uid, cache=any_cache).iter_instances())
    assert raw(any_cache, list(before)) == before


@pytest.mark.parametrize("mark", [None, 3, "split-4", "Triggers/split-4", b"triggers/split-4"])
def test_a_format_not_of_this_package_is_still_damage(any_cache, uid, mark):
    _stored_in(any_cache, uid, mark)
    with pytest.raises(StorageCorrupted) as info:
        list(CacheStorageBackend(uid, cache=any_cache).iter_instances())
    assert not isinstance(info.value, StoredByNewerVersion)


def test_a_known_development_format_keeps_its_own_message(any_cache, uid):
    _stored_in(any_cache, uid, "triggers/split-2")
    with pytest.raises(StorageCorrupted, match="development version") as info:
        list(CacheStorageBackend(uid, cache=any_cache).iter_instances())
    assert not isinstance(info.value, StoredByNewerVersion)
    assert sealed_head({})["format"] == "triggers/split-4"  # the format this version writes


def test_delete_says_what_goes_of_a_session_in_a_newer_format(request, uid):
    """The operator's delete of such a session says so, rather than quoting the
    refusal (which says the session is intact) after "deleted"."""
    from .conftest import prepare_cache
    from .ops_support import command, refused

    prepare_cache(request, "redis")
    store, _ = _stored_in("redis", uid, "triggers/split-9")
    asked = refused("delete", uid, "--cache", "redis")
    assert "stored by a newer version of triggers, in format 'triggers/split-9'" in asked
    assert "give --yes" in asked
    done = command("delete", uid, "--cache", "redis", "--yes")
    assert done.startswith(f"deleted session {uid!r} in cache 'redis' (stored by a newer version")
    assert "intact" not in done and "damaged" not in done
    assert caches["redis"].get(store.cache_key) is None
    assert CacheStorageBackend(uid, cache="redis").stored_nothing()
