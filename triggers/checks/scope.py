"""Which cache the package keeps sessions in, as the checks need to know it."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ..conf import get_setting


def sessions_cache_alias() -> Any:
    """The alias of the cache that holds sessions, or None when the project keeps
    none in a cache (``TRIGGERS_CACHE_ALIAS = None``: the database backend only),
    so that the cache checks judge the cache the package uses and no other."""
    return get_setting("TRIGGERS_CACHE_ALIAS")


def cache_config(alias: Any) -> dict[str, Any]:
    """The ``CACHES`` entry of ``alias`` ({} when there is none)."""
    configured = getattr(settings, "CACHES", None) or {}
    entry = configured.get(alias) if isinstance(alias, str) else None
    return dict(entry) if isinstance(entry, dict) else {}


def loaded_cache(alias: Any) -> Any:
    """The cache object of ``alias``, or None when it cannot be loaded (E001 says why)."""
    from django.core.cache import caches

    if not isinstance(alias, str):
        return None
    try:
        return caches[alias]
    except Exception:  # reported by check_storage_cache (E001)
        return None
