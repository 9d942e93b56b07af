"""Django system checks for the mistakes a triggers setup is most likely to have."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache

from .conf import get_setting

#: MAX_ENTRIES of a culling cache below which triggers.W001 warns
CULLING_WARNING_BELOW = 10_000

#: the Django caches that delete entries once they hold MAX_ENTRIES (subclasses too);
#: Redis and Memcached evict by their own memory policy, not by Django's count
CULLING_CACHES = (LocMemCache, DatabaseCache, FileBasedCache)


@checks.register("triggers")
def check_storage_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The storage cache alias exists, and that cache can hold a lock."""
    from django.core.cache import caches

    from .locking import cache_lock_problem

    alias = get_setting("TRIGGERS_CACHE_ALIAS")
    if alias not in getattr(settings, "CACHES", {}) and alias != "default":
        return [
            checks.Error(
                f"TRIGGERS_CACHE_ALIAS names the cache {alias!r}, which is not in CACHES.",
                hint=f"Add {alias!r} to CACHES or point TRIGGERS_CACHE_ALIAS at an existing alias.",
                id="triggers.E001",
            )
        ]
    try:
        cache = caches[alias]
    except Exception as exc:
        return [
            checks.Error(
                f"The cache {alias!r} used for trigger sessions cannot be loaded: {exc}",
                id="triggers.E001",
            )
        ]
    problem = cache_lock_problem(cache)
    if problem:
        return [
            checks.Error(
                f"The cache {alias!r} used for trigger sessions cannot lock: {problem}",
                hint="Sessions would lose fires under concurrency; choose another cache.",
                id="triggers.E002",
            )
        ]
    layout = get_setting("TRIGGERS_CACHE_LAYOUT")
    if layout not in ("split", "single"):
        return [
            checks.Error(
                f"TRIGGERS_CACHE_LAYOUT is {layout!r}; expected 'split' or 'single'.",
                id="triggers.E004",
            )
        ]
    max_entries = getattr(cache, "_max_entries", None)
    if isinstance(cache, CULLING_CACHES) and isinstance(max_entries, int):
        if max_entries < CULLING_WARNING_BELOW:
            return [culling_warning(alias, max_entries, layout)]
    return []


def culling_warning(alias: str, max_entries: int, layout: str) -> checks.Warning:
    held = (
        "one entry per task instance beside its head"
        if layout == "split"
        else "its whole state in one entry"
    )
    return checks.Warning(
        f"The cache {alias!r} used for trigger sessions deletes entries once it holds"
        f" MAX_ENTRIES={max_entries}; a session keeps {held}, so sessions can lose entries"
        " and fail to load (SessionIncomplete) or vanish.",
        hint=f"Raise OPTIONS['MAX_ENTRIES'] of {alias!r} well above the entries all live"
        " sessions hold together, or keep sessions in Redis or Memcached.",
        id="triggers.W001",
    )


@checks.register("triggers")
def check_default_runner(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """TRIGGERS_DEFAULT_RUNNER names a registered task runner."""
    from .tasks.runners import task_runners

    name = get_setting("TRIGGERS_DEFAULT_RUNNER")
    if name not in task_runners:
        return [
            checks.Error(
                f"TRIGGERS_DEFAULT_RUNNER is {name!r}, which no 'triggers.runners' entry point provides.",
                hint=f"Registered runners: {', '.join(task_runners.keys()) or 'none'}.",
                id="triggers.E003",
            )
        ]
    return []


@checks.register("triggers")
def check_default_runner_choice(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Without TRIGGERS_DEFAULT_RUNNER, say which runner tasks without ``using`` run on, and why.

    That choice follows the process's setup (whether it has a Celery app), so a project
    upgraded from 2.x learns where its tasks will run; setting the runner silences this.
    """
    from .conf import default_runner_choice

    choice = default_runner_choice()
    if choice.from_setting:
        return []
    return [
        checks.Info(
            f"Tasks whose configuration has no 'using' run on the {choice.name!r} runner:"
            f" {choice.reason}.",
            hint="Set TRIGGERS_DEFAULT_RUNNER to choose the runner yourself (this message"
            " then goes away).",
            id="triggers.I001",
        )
    ]


#: the client options that bound a call to each kind of cache, by the module
#: and name of the cache class (a subclass is matched through its MRO); the
#: first option is the one that bounds a read on a server that stopped answering
TIMEOUT_OPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("django.core.cache.backends.memcached", "PyMemcacheCache"): ("timeout", "connect_timeout"),
    ("django.core.cache.backends.redis", "RedisCache"): ("socket_timeout", "socket_connect_timeout"),
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
    """Every Memcached and Redis cache has client timeouts, so that a server that
    stops answering fails a call (BackendUnavailable) instead of hanging it."""
    messages: list[checks.CheckMessage] = []
    for alias, config in (getattr(settings, "CACHES", {}) or {}).items():
        names = _timeout_options(str(config.get("BACKEND", "")))
        if names is None:
            continue
        missing = _missing_timeouts(config, names)
        if missing:
            messages.append(
                checks.Warning(
                    f"The cache {alias!r} has no client timeout ({', '.join(missing)} not set):"
                    " a call to a server that stops answering waits for as long as it does,"
                    " past any lock wait limit.",
                    hint=f"Set OPTIONS {', '.join(repr(n) for n in missing)} of {alias!r}, in"
                    " seconds (a few seconds above the slowest call you expect).",
                    id="triggers.W002",
                )
            )
    return messages
