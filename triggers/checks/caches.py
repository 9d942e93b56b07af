"""Checks of the cache that holds sessions: it exists, it can lock, it keeps entries."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured

from ..cache_internals import max_entries
from ..conf import get_setting
from ..storages.cache.formats import LAYOUT_PAGED, LAYOUTS
from .scope import sessions_cache_alias

#: MAX_ENTRIES of a culling cache below which triggers.W001 warns
CULLING_WARNING_BELOW = 10_000

#: the Django caches that delete entries once they hold MAX_ENTRIES (subclasses too);
#: Redis and Memcached evict by their own memory policy, not by count
CULLING_CACHES = (LocMemCache, DatabaseCache, FileBasedCache)


@checks.register("triggers")
def check_storage_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The storage cache alias exists, and that cache can hold a lock."""
    from django.core.cache import caches

    alias = sessions_cache_alias()
    if alias is None:  # sessions are kept in the database only
        return []
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
    return lock_and_layout_messages(alias, cache)


def lock_and_layout_messages(alias: str, cache: Any) -> list[checks.CheckMessage]:
    """E009, E002, E004 or W001 for a cache that loads: the first problem found."""
    from ..locking import cache_lock_problem

    try:
        problem = cache_lock_problem(cache)
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                f"The lock driver of the cache {alias!r} cannot be chosen: {exc}",
                hint="Correct TRIGGERS_LOCK_DRIVERS: a dict of cache class path to the path"
                " of a LockDriver subclass, every path importable.",
                id="triggers.E009",
            )
        ]
    if problem:
        return [
            checks.Error(
                f"The cache {alias!r} used for trigger sessions cannot lock: {problem}",
                hint="Sessions would lose fires under concurrency; choose another cache.",
                id="triggers.E002",
            )
        ]
    layout = get_setting("TRIGGERS_CACHE_LAYOUT")
    if layout not in LAYOUTS:
        return [
            checks.Error(
                f"TRIGGERS_CACHE_LAYOUT is {layout!r}; expected 'split', 'single' or 'paged'.",
                id="triggers.E004",
            )
        ]
    if layout == LAYOUT_PAGED and not driver_keeps_pages(cache):
        return [
            checks.Error(
                f"TRIGGERS_CACHE_LAYOUT is 'paged', and the cache {alias!r} used for trigger"
                f" sessions is not Redis ({type(cache).__module__}.{type(cache).__qualname__}):"
                " the paged layout merges records into their pages on the server.",
                hint="Use the split layout (the default) on this cache.",
                id="triggers.E004",
            )
        ]
    entries = max_entries(cache)
    if isinstance(cache, CULLING_CACHES) and entries is not None:
        if entries < CULLING_WARNING_BELOW:
            return [culling_warning(alias, entries, layout)]
    return []


def driver_keeps_pages(cache: Any) -> bool:
    """Whether the lock driver of ``cache`` keeps pages (the paged layout's need)."""
    from ..locking import lock_driver

    try:
        return lock_driver(cache).keeps_pages
    except TypeError:  # no lock driver at all: E002 says so first
        return False


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
