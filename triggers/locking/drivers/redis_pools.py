"""One redis-py client per set of connection settings, for the whole process.

Django keeps one cache object per thread, and its own RedisCache makes its
connection pools per cache object: without this, every new thread (each
task on the threading runner, each request thread) would open a connection
to Redis, and pay its handshake, for its first lock. django-redis keeps its
pools per process already, so only Django's RedisCache comes here.

The first cache object of given connection settings (server, db, password,
timeouts, pool class and size: whatever ``LOCATION`` and ``OPTIONS`` made of
them) lends its client; every later one, in any thread, uses that client's
pool. A pool opens connections only when used, so the pools of the others are
never connected. ``clear()`` (and a change to ``CACHES``) forgets them; a
forked child starts with none of its parent's (and redis-py itself opens new
connections in a child that goes on using a parent's pool).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from typing import Any

from django.core.cache import BaseCache

from ...process_state import register_state

__all__ = ["SharedRedisClients", "pool_settings", "shared_redis_clients"]

#: what a pool puts among its connection arguments for itself (a new object
#: per pool, though the settings are the same)
_PER_POOL = frozenset(
    {
        "himport_registry",
        "maint_notifications_pool_handler",
        "oss_cluster_maint_notifications_handler",
    }
)
#: the pool classes whose whole configuration is in the attributes read below
_PLAIN_POOLS = frozenset({"ConnectionPool", "BlockingConnectionPool"})


def pool_settings(client: Any) -> Hashable | None:
    """What tells the connections of ``client`` apart from those of another
    client: None for a client this module does not share (no plain redis-py
    pool: Sentinel, Cluster, a pool class of the application's own)."""
    pool = getattr(client, "connection_pool", None)
    kind = type(pool)
    if kind.__module__ != "redis.connection" or kind.__name__ not in _PLAIN_POOLS:
        return None
    arguments = getattr(pool, "connection_kwargs", None)
    if not isinstance(arguments, dict):
        return None
    # repr: the values are settings (numbers, strings, classes, the same
    # objects of OPTIONS for every cache object of an alias).
    kept = sorted((name, repr(value)) for name, value in arguments.items() if name not in _PER_POOL)
    return (
        type(client),
        kind,
        getattr(pool, "connection_class", None),
        getattr(pool, "max_connections", None),
        getattr(pool, "timeout", None),  # BlockingConnectionPool's wait for a connection
        tuple(kept),
    )


def _is_django_redis_cache(cache: BaseCache) -> bool:
    """Whether ``cache`` is Django's own RedisCache (or a subclass of it)."""
    from django.core.cache.backends.redis import RedisCache

    return isinstance(cache, RedisCache)


class SharedRedisClients:
    """The clients of this process, one per set of connection settings."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._clients: dict[Hashable, Any] = {}

    def getter(self, cache: BaseCache, client: Callable[[], Any]) -> Callable[[], Any]:
        """How a driver of ``cache`` gets its client, where ``client`` gets the
        cache's own: the process's client of the same settings if ``cache`` is
        Django's RedisCache, else ``client`` itself."""
        if not _is_django_redis_cache(cache):
            return client
        shared = self.client_for(client())
        return lambda: shared

    def client_for(self, own: Any) -> Any:
        """The process's client of the settings of ``own`` (``own`` becomes it
        if there is none yet); ``own`` itself if it cannot be shared."""
        key = pool_settings(own)
        if key is None:
            return own
        if self._pid != os.getpid():  # a forked child: none of the parent's
            self._clients, self._pid = {}, os.getpid()
        # setdefault: two threads making the first at once agree on one.
        return self._clients.setdefault(key, own)

    def __len__(self) -> int:
        return len(self._clients)

    def clear(self) -> None:
        """Forget every client (the next cache object of each settings lends its own)."""
        self._clients = {}


#: the process's shared clients of Django's RedisCache
shared_redis_clients = register_state(
    "redis clients",
    SharedRedisClients(),
    settings=("CACHES",),
    about="the redis-py client shared by every Django RedisCache object of the same settings",
)
