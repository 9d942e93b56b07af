"""Helpers shared by the storage tests: sessions to work on, raw views of the cache.

``fresh`` serves the manager, runner and task tests too.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.utils.module_loading import import_string

from triggers import CacheStorageBackend, TriggerManager
from triggers.locking.driver_table import write_driver
from triggers.locking.drivers.redis import RedisLockDriver
from triggers.storages.cache.formats import HEAD_FORMAT, LEGACY_REFUSAL, READ_FORMATS
from triggers.storages.cache.records import decode_record
from triggers.storages.cache.sealing import seal, unseal

#: Tasks that never become ready on their own in these tests (each waits for
#: a trigger the tests fire only on purpose), so no runner is ever involved.
CONFIG: dict[str, Any] = {
    "t_import": {"after": ["start", "upload"], "run": "import_subject"},
    "t_score": {
        "after": ["t_import"],
        "andEvery": "pageSaved",
        "unless": ["cancel"],
        "run": "score_page",
        "withParams": {"weight": 2},
    },
    "t_report": {"after": ["t_score", "approve"], "run": "report", "description": "kept"},
}


def storage(uid: str, alias: str, **kwargs: Any) -> CacheStorageBackend:
    return CacheStorageBackend(uid, cache=alias, **kwargs)


def populate(store: CacheStorageBackend) -> CacheStorageBackend:
    """Configure CONFIG and make a few instances in various states; saved twice.

    Two saves: instance records reach their own keys with the save after
    the one that changed them. The lock gets a ttl of its own, so a cache
    with a tiny default timeout cannot expire it mid-save.
    """
    with store.acquire_lock(ttl=30):
        store.update_configuration(CONFIG)
        first = store.create_instance("t_import", kwargs={"start": {"subject": 7}})
        store.create_instance(
            "t_score",
            status="finished",
            kwargs={"t_import": {}, "pageSaved": {"page": 1}},
            metadata={"result": {"score": 3}, "timestamps": {"created": datetime.datetime(2024, 1, 2, 3, 4, 5)}},
        )
        store.create_instance(
            "t_score", status="failed", kwargs={"t_import": {}, "pageSaved": {"page": 2}}, metadata={"logLevel": 40}
        )
        store.latest_kwargs.update(start={"subject": 7}, pageSaved={"page": 2})
        assert first.name == "t_import#0"
        store.save()
    with store.acquire_lock(ttl=30):
        store.metadata["note"] = "second save"
        store.save()
    store.invalidate_cache()
    return store


def keys_of(store: CacheStorageBackend, names: list[str] | None = None) -> list[str]:
    """Every cache key the session may occupy: head, witness, instance records."""
    if names is None:
        names = list(fresh(store).instances)
    return [store.cache_key, store.witness_key, *(store.record_key(n) for n in names)]


def fresh(of: CacheStorageBackend | TriggerManager) -> CacheStorageBackend:
    """A new storage object on the same session, cache and layout, nothing loaded: what is saved now.

    ``of`` is a storage, or a manager (then its storage).
    """
    store = of.storage if isinstance(of, TriggerManager) else of
    return CacheStorageBackend(store.uid, cache=store.cache, layout=store.layout)


def raw(alias: Any, keys: list[str]) -> dict[str, Any]:
    """The stored values of ``keys``, read past the storage layer.

    On Redis through the lock driver, which hands back the instance records
    it stores as they are (the cache's ``get_many`` cannot decode those).
    """
    cache = _cache_of(alias)
    driver = write_driver(cache)
    if isinstance(driver, RedisLockDriver):
        return driver.read_many(keys)
    return cache.get_many(keys)


PLAIN_SCALARS = (str, int, float, bool, type(None), datetime.datetime, datetime.date)


def assert_plain(value: Any, path: str = "value") -> None:
    """``value`` is built of dicts (str keys), lists and scalars only."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path} has key {key!r}"
            assert_plain(item, f"{path}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain(item, f"{path}[{index}]")
    else:
        assert isinstance(value, PLAIN_SCALARS), f"{path} is {type(value).__name__}: {value!r}"
        if isinstance(value, datetime.datetime):
            assert value.tzinfo is None, f"{path} is an aware datetime"


def sibling_cache(alias: str, **options: Any):
    """A new cache object of ``alias``'s backend and location (server, table), other options changed."""
    params = dict(settings.CACHES[alias])
    backend = import_string(params.pop("BACKEND"))
    location = params.pop("LOCATION", "")
    params.update(options)
    return backend(location, params)


def _cache_of(alias: Any):
    return caches[alias] if isinstance(alias, str) else alias


def stored_head(alias: Any, store: CacheStorageBackend) -> Any:
    """The session's head as stored, its sealed content opened (None if absent).

    A split or paged head's content (``tasks_version``, ``delta``, ...) is
    sealed inside it; a single-layout value, or a head saved before sealing, is
    returned as it is. ``alias`` is a cache alias or a cache object.
    """
    value = _cache_of(alias).get(store.cache_key)
    if isinstance(value, dict) and value.get("format") in READ_FORMATS:
        return unseal(value["sealed"], store.uid, store.cache_key)
    return value


def sealed_head(content: dict[str, Any]) -> dict[str, Any]:
    """A split head as the storage stores it, sealing ``content``."""
    return {**LEGACY_REFUSAL, "format": HEAD_FORMAT, "sealed": seal(content)}


def stored_value(alias: Any, key: str) -> Any:
    """The value under ``key`` as the storage reads it (None if absent).

    Through the cache's lock driver, as the storage reads: on Redis an
    instance record is stored as it is, which the cache's own ``get``
    cannot decode; on Memcached values come untagged.
    """
    return write_driver(_cache_of(alias)).read_many([key]).get(key)


def stored_record(alias: Any, store: CacheStorageBackend, name: str) -> Any:
    """The record of instance ``name`` as stored, decoded (None if absent)."""
    key = store.record_key(name)
    value = stored_value(alias, key)
    return None if value is None else decode_record(value, name, store.uid, key)


def tasks_version(alias: Any, store: CacheStorageBackend) -> str | None:
    """The version of the task table the session's head names (None: no split head)."""
    try:
        head = stored_head(alias, store)
    except Exception:  # a head some test damaged on purpose: it names no table
        return None
    version = head.get("tasks_version") if isinstance(head, dict) else None
    return version if isinstance(version, str) else None
