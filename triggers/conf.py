"""Settings of the package, read from Django settings with documented defaults."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Runner used for a task whose configuration has no ``using``.
    "TRIGGERS_DEFAULT_RUNNER": "threading",
    # Cache alias CacheStorageBackend uses when none is given.
    "TRIGGERS_CACHE_ALIAS": "default",
    # "split" (one key per instance, flat fire cost) or "single" (the 2.x value).
    "TRIGGERS_CACHE_LAYOUT": "split",
    # Lock drivers for caches of other kinds: {"cache class path": "driver class path"}.
    "TRIGGERS_LOCK_DRIVERS": {},
}


def get_setting(name: str) -> Any:
    """The value of a ``TRIGGERS_*`` setting, or its default."""
    return getattr(settings, name, DEFAULTS[name])
