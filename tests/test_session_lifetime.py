"""A session keeps its lifetime: whoever opens it later, with whatever timeout
their cache has, saves it to expire as it was meant to (or never)."""

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tests.storage_support import CONFIG, keys_of, populate, storage, tasks_version
from triggers import CacheStorageBackend, TriggerManager


def ttls(store):
    """Seconds each stored key of the session has left (None: no expiry), as
    django-redis reads them (records still carried by the head have no key yet)."""
    cache = caches["redis"]
    keys = [*keys_of(store), *task_table_keys(store)]
    return {key: cache.ttl(key) for key in keys if cache.has_key(key)}


def task_table_keys(store):
    return [store.tasks_key(tasks_version("redis", store))]


@pytest.fixture
def redis_cache(request):
    from tests.conftest import prepare_cache

    return prepare_cache(request, "redis")


def test_a_session_that_never_expires_stays_so_when_opened_plainly(redis_cache, uid):
    # Created where TRIGGERS_SESSION_TIMEOUT says "never".
    with override_settings(TRIGGERS_SESSION_TIMEOUT=None):
        populate(storage(uid, redis_cache))
    assert set(ttls(storage(uid, redis_cache)).values()) == {None}
    # An operator opens it with a plain storage object: the cache's default
    # timeout (300 s in the test settings) is not applied to it.
    mender = CacheStorageBackend(uid, cache=redis_cache)
    with mender.acquire_lock():
        mender.metadata["mended"] = True
        mender.save()
    left = ttls(mender)
    assert set(left.values()) == {None}, left


def test_the_lifetime_given_to_the_first_object_is_kept(redis_cache, uid):
    populate(storage(uid, redis_cache, timeout=3600))
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
    manager.fire("pageSaved", {"page": 9})
    left = ttls(manager.storage)
    # Every key lives at least the hour (at most two), none with the cache's 300 s default.
    assert all(seconds is not None and 3600 <= seconds <= 7200 for seconds in left.values()), left


def test_a_given_timeout_changes_the_lifetime_of_every_key(redis_cache, uid):
    populate(storage(uid, redis_cache, timeout=600))
    store = storage(uid, redis_cache, timeout=None)
    with store.acquire_lock():
        store.metadata["forever"] = True
        store.save()
    # Records the save did not change were rewritten too: none expires before the head.
    assert set(ttls(store).values()) == {None}
    # And the next plain object keeps "never".
    later = CacheStorageBackend(uid, cache=redis_cache)
    with later.acquire_lock():
        later.metadata["again"] = True
        later.save()
    assert set(ttls(later).values()) == {None}


def test_the_setting_applies_to_new_sessions_only(redis_cache, uid):
    with override_settings(TRIGGERS_SESSION_TIMEOUT=7200):
        populate(storage(uid, redis_cache))
    with override_settings(TRIGGERS_SESSION_TIMEOUT=60):
        manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
        manager.fire("pageSaved", {"page": 3})
        new = TriggerManager(CacheStorageBackend(uid + "-new", cache=redis_cache))
        new.update_configuration(CONFIG)
    # At least the lifetime after the last save, at most twice it.
    assert all(7200 <= s <= 14400 for s in ttls(manager.storage).values())
    assert all(60 <= s <= 120 for s in ttls(new.storage).values())


def test_the_lifetime_travels_with_the_session_on_every_cache(any_cache, uid):
    def lifetime(uid):
        store = CacheStorageBackend(uid, cache=any_cache)
        store.debug_repr()  # loaded: the stored lifetime is known
        return store._lifetime

    populate(storage(uid, any_cache, timeout=1234))
    assert lifetime(uid) == 1234
    with override_settings(TRIGGERS_SESSION_TIMEOUT=None):
        assert lifetime(uid) == 1234
        populate(storage(uid + "-2", any_cache))
    assert lifetime(uid + "-2") is None


def test_locmem_keys_of_a_session_that_never_expires(uid):
    cache = caches["locmem"]
    populate(storage(uid, "locmem", timeout=None))
    mender = CacheStorageBackend(uid, cache="locmem")
    with mender.acquire_lock():
        mender.metadata["mended"] = True
        mender.save()
    expiry = cache._expire_info
    assert {expiry[cache.make_key(key)] for key in keys_of(mender)} == {None}


@pytest.mark.parametrize("value", [0, -5, "300", True, float("nan"), float("inf"), [60]])
def test_a_bad_setting_is_refused_by_name(redis_cache, uid, value):
    before = caches["redis"].get_many([CacheStorageBackend(uid).cache_key])
    with override_settings(TRIGGERS_SESSION_TIMEOUT=value):
        manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
        with pytest.raises(ImproperlyConfigured, match="TRIGGERS_SESSION_TIMEOUT") as info:
            manager.update_configuration(CONFIG)
    assert repr(value) in str(info.value)
    assert caches["redis"].get_many([CacheStorageBackend(uid).cache_key]) == before == {}


@pytest.mark.parametrize("value", [0, -1, "60", False, float("nan"), float("inf")])
def test_a_bad_timeout_is_refused_by_name(uid, value):
    with pytest.raises(ValueError, match="timeout") as info:
        CacheStorageBackend(uid, cache="locmem", timeout=value)
    assert repr(value) in str(info.value)
