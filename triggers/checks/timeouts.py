"""triggers.W002: the cache that holds sessions has client timeouts."""

from __future__ import annotations

from typing import Any

from django.core import checks

from .scope import cache_config, sessions_cache_alias

#: the client options that bound a call to each kind of cache, by the module
#: and name of the cache class (a subclass is matched through its MRO); the
#: first option is the one that bounds a read on a server that stopped answering
TIMEOUT_OPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("django.core.cache.backends.memcached", "PyMemcacheCache"): ("timeout", "connect_timeout"),
    ("django.core.cache.backends.redis", "RedisCache"): (
        "socket_timeout",
        "socket_connect_timeout",
    ),
    ("django_redis.cache", "RedisCache"): ("SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT"),
}


def _timeout_options(backend: str) -> tuple[str, ...] | None:
    """The timeout options of a cache backend path, or None if it needs none here."""
    from django.utils.module_loading import import_string

    try:
        cls = import_string(backend)
    except ImportError:  # reported by Django itself when the cache is used
        return None
    for klass in getattr(cls, "__mro__", ()):
        options = TIMEOUT_OPTIONS.get((klass.__module__, klass.__name__))
        if options is not None:
            return options
    return None


def _missing_timeouts(config: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    options = config.get("OPTIONS") or {}
    pool = options.get("CONNECTION_POOL_KWARGS") or {}  # django-redis passes these on
    location = str(config.get("LOCATION", ""))  # redis-py reads ?socket_timeout= in a URL
    return [
        name
        for name in names
        if options.get(name) is None
        and pool.get(name.lower()) is None
        and f"{name.lower()}=" not in location
    ]


@checks.register("triggers")
def check_client_timeouts(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The Memcached or Redis cache that holds sessions has client timeouts, so that
    a server that stops answering fails a call (BackendUnavailable) instead of
    hanging it. Other aliases of CACHES are the application's business."""
    alias = sessions_cache_alias()
    config = cache_config(alias)
    names = _timeout_options(str(config.get("BACKEND", "")))
    if names is None:
        return []
    missing = _missing_timeouts(config, names)
    if not missing:
        return []
    return [
        checks.Warning(
            f"The cache {alias!r} has no client timeout ({', '.join(missing)} not set):"
            " a call to a server that stops answering waits for as long as it does,"
            " past any lock wait limit.",
            hint=f"Set OPTIONS {', '.join(repr(n) for n in missing)} of {alias!r}, in"
            " seconds (a few seconds above the slowest call you expect).",
            id="triggers.W002",
        )
    ]
