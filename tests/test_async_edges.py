"""The async path at its edges: bad input, damaged or hand-deleted keys, odd
names, an unreachable server, and the client built from the cache's own settings."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django_redis.cache import RedisCache as DjangoRedisPackageCache

from tests.conftest import prepare_cache
from tests.storage_support import fresh
from tests.test_backend_unavailable import assert_unavailable, unreachable
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import (
    InvalidArgument,
    SessionIncomplete,
    StorageCorrupted,
    UnknownInstance,
    UnserializableValue,
)
from triggers.locking import lock_driver

CONFIG = {
    "t0": {"after": ["go"], "run": "tests.add"},
    "t1": {"after": ["other"], "run": "tests.add"},
}


@pytest.fixture(params=["redis", "dredis"])
def alias(request, settings, test_runners):
    settings.TRIGGERS_DEFAULT_RUNNER = "tests-recording"
    return prepare_cache(request, request.param)


def new_manager(uid: str, alias: str) -> TriggerManager:
    return TriggerManager(CacheStorageBackend(uid, cache=alias))


def stored_state(uid: str, alias: str) -> dict:
    return fresh(CacheStorageBackend(uid, cache=alias)).debug_repr()


def test_bad_input_is_refused_and_the_session_is_unchanged(alias, uid):
    manager = new_manager(uid, alias)
    asyncio.run(manager.aupdate_configuration(CONFIG))
    asyncio.run(manager.afire("go", {"n": 1}))
    before = stored_state(uid, alias)
    with pytest.raises(InvalidArgument, match="123"):
        asyncio.run(manager.afire(123))
    with pytest.raises(UnserializableValue):
        asyncio.run(manager.afire("other", {"f": lambda: None}))
    with pytest.raises(UnknownInstance) as sync_error:
        manager.update_instance_metadata(42, {"a": 1})
    with pytest.raises(UnknownInstance) as async_error:
        asyncio.run(manager.aupdate_instance_metadata(42, {"a": 1}))
    assert str(async_error.value) == str(sync_error.value)
    with pytest.raises(InvalidArgument, match="metadata"):
        asyncio.run(manager.aupdate_instance_metadata("t0#0", ["not", "a", "mapping"]))
    with pytest.raises(InvalidArgument, match="cascade"):
        asyncio.run(manager.askip_failed_instance("t0#0", cascade="yes"))
    assert stored_state(uid, alias) == before


def test_a_head_deleted_by_hand_is_named_as_the_sync_path_names_it(alias, uid):
    manager = new_manager(uid, alias)
    asyncio.run(manager.aupdate_configuration(CONFIG))
    storage = manager.storage
    caches[alias].delete(storage.keys.head)
    with pytest.raises(SessionIncomplete) as sync_error:
        new_manager(uid, alias).fire("go")
    with pytest.raises(SessionIncomplete) as async_error:
        asyncio.run(new_manager(uid, alias).afire("go"))
    assert str(async_error.value) == str(sync_error.value)
    # The manager that remembered the session is refused the same way.
    with pytest.raises(SessionIncomplete):
        asyncio.run(manager.afire("go"))


def test_a_session_deleted_by_hand_starts_afresh(alias, uid):
    manager = new_manager(uid, alias)
    asyncio.run(manager.aupdate_configuration(CONFIG))
    asyncio.run(manager.afire("go"))
    storage = manager.storage
    caches[alias].delete_many([storage.keys.head, storage.keys.witness])
    assert asyncio.run(manager.afire("other", {"n": 2})) == []
    stored = fresh(storage)
    assert stored.latest_kwargs == {"other": {"n": 2}} and list(stored) == []


def test_a_damaged_head_is_named(alias, uid):
    asyncio.run(new_manager(uid, alias).aupdate_configuration(CONFIG))
    storage = CacheStorageBackend(uid, cache=alias)
    raw = lock_driver(caches[alias]).asynchronous()
    made = raw.driver.made_key(storage.keys.head)

    async def damage():
        await raw.client().set(made, b"\x80\x05not a pickle")

    asyncio.run(damage())
    with pytest.raises(StorageCorrupted, match="cannot be decoded"):
        asyncio.run(new_manager(uid, alias).afire("go"))


@pytest.mark.parametrize("odd", ["a:b{c}", "tab\there", "esc\x1b[31m", "ü{}:{}"])
def test_odd_names(alias, odd):
    """Odd trigger and task names, in a session whose uid holds ``:`` and braces."""
    uid = f"a:b{{c}}:{uuid.uuid4().hex}"
    manager = new_manager(uid, alias)

    async def main():
        await manager.aupdate_configuration({f"t{odd}": {"after": [odd], "run": "tests.add"}})
        ready = await manager.afire(odd, {odd: odd})
        return ready, await manager.storage.aget_unresolved_instances()

    ready, unresolved = asyncio.run(main())
    assert [i.name for i in ready] == [f"t{odd}#0"] == [i.name for i in unresolved]
    assert fresh(manager).latest_kwargs == {odd: {odd: odd}}


@pytest.mark.parametrize("kind", ["redis", "dredis"])
def test_firing_into_an_unreachable_redis(kind, uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache=unreachable(kind)))
    assert manager.storage.commits_on_loop()
    with pytest.raises(Exception) as info:
        asyncio.run(manager.afire("start", {"subject": 1}))
    assert_unavailable(info, outcome_unknown=False)  # refused: nothing was sent


@pytest.mark.parametrize(
    ("cache", "expected", "tls"),
    [
        (
            DjangoRedisPackageCache(
                "redis://:s3cret@127.0.0.1:6390/7",
                {"OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1.5, "SOCKET_TIMEOUT": 2.5}},
            ),
            {"password": "s3cret", "db": 7, "port": 6390, "socket_timeout": 2.5},
            False,
        ),
        (
            DjangoRedisCache(
                "rediss://user:pw@127.0.0.1:6391/3",
                {"OPTIONS": {"socket_timeout": 4, "ssl_cert_reqs": "none"}},
            ),
            {
                "username": "user",
                "password": "pw",
                "db": 3,
                "socket_timeout": 4,
                "ssl_cert_reqs": "none",
            },
            True,
        ),
    ],
    ids=["django-redis", "django-rediscache-tls"],
)
def test_the_async_client_is_built_from_the_cache_settings(cache, expected, tls):
    twin = lock_driver(cache).asynchronous()
    kwargs = twin.settings.kwargs
    assert {name: kwargs.get(name) for name in expected} == expected
    assert twin.settings.connection_class.__name__ == ("SSLConnection" if tls else "Connection")
