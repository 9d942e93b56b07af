"""System checks for Redis Cluster and replicas: what must be refused at start-up.

The single (2.x) layout cannot run on a Redis Cluster: 2.x's lock key
(``lock:triggers.storages.cache:<uid>``, named by python-redis-lock without
the cache's prefix) and the session's key are in different hash slots, and
the scripts that take both and write the session would be refused by the
cluster on every fire (``CROSSSLOT``). The split layout keeps every key of
a session in one slot. A cache counts as a cluster when its backend or a
client class its options name has ``cluster`` in its dotted path
(django-valkey's ``ClusterValkeyCache``, this package's
``ClusterConnectionFactory`` for django-redis, redis-py's ``RedisCluster``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .conf import get_setting
from .locking.drivers.redis_cluster import replicas_to_wait_for

__all__ = ["check_cluster_layout", "check_wait_replicas", "cluster_class_of"]

#: the options of a cache that name a client or connection class
_CLASS_OPTIONS = (
    "CLIENT_CLASS",
    "CONNECTION_FACTORY",
    "REDIS_CLIENT_CLASS",
    "CONNECTION_POOL_CLASS",
)


def cluster_class_of(config: dict[str, Any]) -> str | None:
    """The dotted path in a CACHES entry that says it is a cluster, or None."""
    options = config.get("OPTIONS") or {}
    paths = [config.get("BACKEND")]
    if isinstance(options, dict):
        paths += [options.get(name) for name in _CLASS_OPTIONS]
    for path in paths:
        if isinstance(path, str) and "cluster" in path.lower():
            return path
    return None


def check_cluster_layout(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The single layout on a cluster cache is an error: its keys cannot share a slot."""
    alias = get_setting("TRIGGERS_CACHE_ALIAS")
    config = settings.CACHES.get(alias) if isinstance(alias, str) else None
    if not isinstance(config, dict) or get_setting("TRIGGERS_CACHE_LAYOUT") != "single":
        return []
    path = cluster_class_of(config)
    if path is None:
        return []
    return [
        checks.Error(
            f"TRIGGERS_CACHE_LAYOUT is 'single', and the cache {alias!r} used for trigger"
            f" sessions is a Redis Cluster ({path}): the single layout takes Triggers 2.x's"
            " lock key, which cannot share a hash slot with the session's key, so the cluster"
            " would refuse every fire.",
            hint="Use the split layout (TRIGGERS_CACHE_LAYOUT = 'split', the default) on a"
            " cluster; the single layout serves a rolling upgrade from 2.x on one Redis.",
            id="triggers.E021",
        )
    ]


def check_wait_replicas(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """TRIGGERS_REDIS_WAIT_REPLICAS is a whole number, 0 or more."""
    try:
        replicas_to_wait_for()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="triggers.E022")]
    return []


# Registered by call, not as decorators: Django's are untyped to mypy.
checks.register(check_cluster_layout, "triggers")
checks.register(check_wait_replicas, "triggers")
