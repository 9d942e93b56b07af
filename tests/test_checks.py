"""The system checks that report a misconfigured setup at start-up."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.filebased import FileBasedCache
from django.test import override_settings

from tests.settings import CACHES, MEMCACHED, REDIS_URL
from triggers.locking import register_lock_driver, unregister_lock_driver
from triggers.locking.drivers.add import AddLockDriver


def triggers_messages():
    return [m for m in checks.run_checks(tags=["triggers"]) if m.id.startswith("triggers.")]


@pytest.fixture(autouse=True)
def session_timeout(settings):
    """A project that chose its sessions' lifetime (unset, I002 says so: tested apart)."""
    settings.TRIGGERS_SESSION_TIMEOUT = 3600


def with_default_cache(**config):
    return override_settings(CACHES={**CACHES, "default": config})


def test_the_test_setup_passes():
    assert triggers_messages() == []


def test_an_alias_missing_from_caches_is_an_error(settings):
    settings.TRIGGERS_CACHE_ALIAS = "nowhere"
    [message] = triggers_messages()
    assert message.id == "triggers.E001" and "'nowhere'" in message.msg


def test_a_cache_that_cannot_be_loaded_is_an_error():
    with with_default_cache(BACKEND="no.such.Backend"):
        [message] = triggers_messages()
    assert message.id == "triggers.E001" and "'default'" in message.msg


@pytest.mark.parametrize("alias", ["file", "dummy"])
def test_a_cache_that_cannot_lock_is_an_error(settings, alias):
    settings.TRIGGERS_CACHE_ALIAS = alias
    [message] = triggers_messages()
    assert message.id == "triggers.E002" and f"'{alias}'" in message.msg


def test_an_unknown_layout_is_an_error(settings):
    settings.TRIGGERS_CACHE_LAYOUT = "sharded"
    [message] = triggers_messages()
    assert message.id == "triggers.E004" and "'sharded'" in message.msg


def test_an_unknown_default_runner_is_an_error(settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "nosuchrunner"
    [message] = triggers_messages()
    assert message.id == "triggers.E003" and "'nosuchrunner'" in message.msg


class CullingFileCache(FileBasedCache):
    """A file cache that a project gave a lock driver of its own: it still culls."""


class LocMemCacheLookalike(BaseCache):
    """A cache that culls nothing, whatever its class is called."""

    def __init__(self, location, params):
        super().__init__(params)
        self.store = {}

    def add(self, key, value, timeout=None, version=None):
        return self.store.setdefault(key, value) is value

    def get(self, key, default=None, version=None):
        return self.store.get(key, default)

    def set(self, key, value, timeout=None, version=None):
        self.store[key] = value

    def delete(self, key, version=None):
        return self.store.pop(key, None) is not None


LocMemCacheLookalike.__name__ = LocMemCacheLookalike.__qualname__ = "LocMemCache"


def w001(messages):
    return [m for m in messages if m.id == "triggers.W001"]


@pytest.mark.parametrize("alias", sorted(CACHES))
def test_no_alias_of_the_test_settings_gets_w001(settings, alias):
    """Culling caches there hold 10**7 entries; Redis and Memcached do not cull at all."""
    settings.TRIGGERS_CACHE_ALIAS = alias
    messages = triggers_messages()
    assert w001(messages) == []
    if alias in ("file", "dummy"):
        assert [m.id for m in messages] == ["triggers.E002"]
    else:
        assert messages == []


@pytest.mark.db_cache  # the database cache's table is looked for (triggers.E008)
@pytest.mark.parametrize("layout", ["split", "single"])
@pytest.mark.parametrize(
    "config",
    [
        {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "w001"},
        {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "triggers_cache_sqlite",
        },
        {"BACKEND": "tests.test_checks.CullingFileCache", "LOCATION": "/tmp/triggers-w001"},
    ],
    ids=["locmem", "database", "file subclass"],
)
def test_a_culling_cache_with_the_default_300_entries_is_a_warning(config, layout):
    register_lock_driver(CullingFileCache, AddLockDriver)
    try:
        with with_default_cache(**config), override_settings(TRIGGERS_CACHE_LAYOUT=layout):
            [message] = triggers_messages()
    finally:
        unregister_lock_driver(CullingFileCache)
    assert message.id == "triggers.W001" and message.level == checks.WARNING
    assert "MAX_ENTRIES=300" in message.msg and "'default'" in message.msg
    assert "Raise OPTIONS['MAX_ENTRIES'] of 'default'" in message.hint
    assert "single" not in message.hint and "LAYOUT" not in message.hint


@pytest.mark.parametrize(
    "config",
    [
        {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": CACHES["redis"]["OPTIONS"],
        },
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": CACHES["dredis"]["OPTIONS"],
        },
        {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": MEMCACHED,
            "OPTIONS": CACHES["memcached"]["OPTIONS"],
        },
        {"BACKEND": "tests.test_checks.LocMemCacheLookalike"},
    ],
    ids=["django-redis", "django RedisCache", "memcached", "named like LocMem"],
)
def test_caches_that_do_not_cull_by_count_get_no_warning(config):
    # Django gives every cache MAX_ENTRIES=300; only the culling kinds act on it.
    with with_default_cache(**config):
        from django.core.cache import caches

        assert caches["default"]._max_entries == 300
        assert triggers_messages() == []


def test_enough_entries_silence_the_warning():
    with with_default_cache(
        BACKEND="django.core.cache.backends.locmem.LocMemCache",
        LOCATION="w001-large",
        OPTIONS={"MAX_ENTRIES": 1_000_000},
    ):
        assert triggers_messages() == []


TIMEOUTS = [
    (
        "django.core.cache.backends.memcached.PyMemcacheCache",
        MEMCACHED,
        {"timeout": 2, "connect_timeout": 1},
    ),
    (
        "django.core.cache.backends.redis.RedisCache",
        REDIS_URL,
        {"socket_timeout": 2, "socket_connect_timeout": 1},
    ),
    (
        "django_redis.cache.RedisCache",
        REDIS_URL,
        {"SOCKET_TIMEOUT": 2, "SOCKET_CONNECT_TIMEOUT": 1},
    ),
]


@pytest.mark.parametrize(("backend", "location", "timeouts"), TIMEOUTS)
def test_the_sessions_cache_without_client_timeouts_warns(settings, backend, location, timeouts):
    extra = {"BACKEND": backend, "LOCATION": location}
    settings.TRIGGERS_CACHE_ALIAS = "unbounded"
    with override_settings(CACHES={**CACHES, "unbounded": extra}):
        [message] = triggers_messages()
    assert message.id == "triggers.W002" and "'unbounded'" in message.msg
    for option in timeouts:
        assert repr(option) in message.hint
    read_timeout, connect_timeout = timeouts
    with override_settings(CACHES={**CACHES, "unbounded": {**extra, "OPTIONS": {read_timeout: 2}}}):
        [message] = triggers_messages()
    assert repr(connect_timeout) in message.hint and repr(read_timeout) not in message.hint
    with override_settings(CACHES={**CACHES, "unbounded": {**extra, "OPTIONS": timeouts}}):
        assert triggers_messages() == []


@pytest.mark.parametrize(("backend", "location", "timeouts"), TIMEOUTS)
def test_a_cache_this_package_does_not_use_is_not_judged(backend, location, timeouts):
    """W002 is about the sessions' cache; the application's other caches are its own."""
    extra = {"BACKEND": backend, "LOCATION": location}
    with override_settings(CACHES={**CACHES, "unbounded": extra}):
        assert triggers_messages() == []
