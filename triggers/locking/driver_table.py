"""Which lock driver serves which kind of cache, and how an application adds one.

Drivers are chosen by the cache object's class: the first class of its MRO
that the table names decides. The table has three layers, searched in this
order for each class: drivers registered with :func:`register_lock_driver`,
then the ``TRIGGERS_LOCK_DRIVERS`` setting (``{"cache class path": "driver
class path"}``), then the package's own. A cache no layer names gets the
driver for caches with an atomic ``add``; caches known to have none (the
file and dummy caches) are refused with :class:`NotSupported`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, overload

from django.core.cache import BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import get_setting
from ..errors import NotSupported
from ..process_state import register_state
from .drivers.add import AddLockDriver
from .drivers.base import LockDriver, cache_name
from .drivers.database import DatabaseLockDriver
from .drivers.locmem import LocMemLockDriver
from .drivers.memcached import MemcachedLockDriver
from .drivers.redis import RedisLockDriver

__all__ = [
    "cache_lock_problem",
    "lock_driver",
    "register_lock_driver",
    "unregister_lock_driver",
    "write_driver",
]

D = TypeVar("D", bound=type[LockDriver])

_ADVICE = (
    "use Redis (django-redis or django.core.cache.backends.redis.RedisCache), Memcached,"
    " the database cache, or LocMemCache within one process"
)

#: the package's own entries, by the module and name of the cache class; a
#: class is looked up only once its module is imported (a cache object of it
#: exists only then), so no optional client is imported here
_BUILTIN: dict[tuple[str, str], type[LockDriver] | str] = {
    ("django_redis.cache", "RedisCache"): RedisLockDriver,
    ("django.core.cache.backends.redis", "RedisCache"): RedisLockDriver,
    ("django.core.cache.backends.db", "DatabaseCache"): DatabaseLockDriver,
    # django-valkey's caches (no BaseCache subclasses), on one server or a cluster
    ("django_valkey.cache", "ValkeyCache"): RedisLockDriver,
    ("django_valkey.cluster_cache.cache", "ClusterValkeyCache"): RedisLockDriver,
    ("django.core.cache.backends.locmem", "LocMemCache"): LocMemLockDriver,
    ("django.core.cache.backends.memcached", "PyMemcacheCache"): MemcachedLockDriver,
    ("django.core.cache.backends.memcached", "BaseMemcachedCache"): AddLockDriver,
    ("django.core.cache.backends.filebased", "FileBasedCache"): (
        "its add() checks and writes a file in two steps, so two processes can both win"
    ),
    ("django.core.cache.backends.dummy", "DummyCache"): "it stores nothing, so a lock never holds",
}

_registered: dict[type[BaseCache], type[LockDriver]] = {}
_table_lock = threading.Lock()
#: the driver made for each cache object, once (``clear()``: each cache gets a
#: new one on its next lock)
_drivers: weakref.WeakKeyDictionary[BaseCache, LockDriver] = register_state(
    "lock drivers",
    weakref.WeakKeyDictionary(),
    settings=("CACHES", "TRIGGERS_LOCK_DRIVERS"),
    about="the lock driver made for each cache object",
)


def _check_driver(driver: object, what: str) -> type[LockDriver]:
    if not (isinstance(driver, type) and issubclass(driver, LockDriver)):
        raise TypeError(f"{what} must be a subclass of LockDriver, not {driver!r}")
    return driver


@overload
def register_lock_driver(cache_class: type[BaseCache], driver: D) -> D: ...
@overload
def register_lock_driver(cache_class: type[BaseCache], driver: None = None) -> Callable[[D], D]: ...


def register_lock_driver(cache_class: type[BaseCache], driver: Any = None) -> Any:
    """Lock caches of ``cache_class`` (and its subclasses) with ``driver``.

    ``driver`` is a :class:`LockDriver` subclass; without it, this returns a
    class decorator. Takes precedence over the setting and the built-in
    drivers; cache objects locked before keep the driver they had.
    """
    if not (isinstance(cache_class, type) and issubclass(cache_class, BaseCache)):
        raise TypeError(f"cache_class must be a Django cache class, not {cache_class!r}")
    if driver is None:

        def decorator(cls: D) -> D:
            return register_lock_driver(cache_class, cls)

        return decorator
    _check_driver(driver, "driver")
    with _table_lock:
        _registered[cache_class] = driver
        _drivers.clear()
    return driver


def unregister_lock_driver(cache_class: type[BaseCache]) -> None:
    """Forget a driver registered for ``cache_class`` (nothing if none was)."""
    with _table_lock:
        _registered.pop(cache_class, None)
        _drivers.clear()


def _from_setting() -> dict[type, type[LockDriver]]:
    configured = get_setting("TRIGGERS_LOCK_DRIVERS") or {}
    if not isinstance(configured, dict):
        raise ImproperlyConfigured(
            f"TRIGGERS_LOCK_DRIVERS must be a dict of cache class path to driver class path,"
            f" not {configured!r}"
        )
    table: dict[type, type[LockDriver]] = {}
    for cache_path, driver_path in configured.items():
        try:
            cache_class = import_string(cache_path)
            driver = _check_driver(import_string(driver_path), f"the driver for {cache_path}")
        except (ImportError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"TRIGGERS_LOCK_DRIVERS entry {cache_path!r}: {driver_path!r} is not usable: {exc}"
            ) from exc
        table[cache_class] = driver
    return table


def _builtin() -> dict[type, type[LockDriver] | str]:
    table: dict[type, type[LockDriver] | str] = {}
    for (module_name, class_name), entry in _BUILTIN.items():
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type):
            table[cls] = entry
    return table


def _entry(cache: BaseCache) -> type[LockDriver] | str:
    """The table's entry for ``cache``: its driver class, or why it cannot lock."""
    with _table_lock:
        registered = dict(_registered)
    layers = (registered, _from_setting(), _builtin())
    for cls in type(cache).__mro__:
        for layer in layers:
            entry = layer.get(cls)
            if entry is not None:
                return entry
    return AddLockDriver


def cache_lock_problem(cache: BaseCache) -> str | None:
    """Why ``cache`` cannot hold a lock, or None if it can."""
    entry = _entry(cache)
    if isinstance(entry, str):
        return f"{cache_name(cache)} cannot hold a lock: {entry}; {_ADVICE}"
    return None


def lock_driver(cache: BaseCache) -> LockDriver:
    """The driver that locks safely on ``cache`` (made once per cache object)."""
    with contextlib.suppress(KeyError, TypeError):
        return _drivers[cache]
    entry = _entry(cache)
    if isinstance(entry, str):
        raise NotSupported(f"{cache_name(cache)} cannot hold a lock: {entry}; {_ADVICE}")
    driver = entry(cache)
    with contextlib.suppress(TypeError), _table_lock:
        _drivers[cache] = driver
    return driver


def write_driver(cache: BaseCache) -> LockDriver:
    """A driver that can at least write to ``cache``, even one that cannot lock."""
    try:
        return lock_driver(cache)
    except NotSupported:
        return LockDriver(cache)
