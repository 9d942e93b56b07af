"""Settings of the package, read from Django settings with documented defaults."""

from __future__ import annotations

import os
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


#: settings that may also come from an environment variable of the same name
#: when the Django settings do not set them, so a deployment can switch the
#: layout of a rolling upgrade without a code change
FROM_ENVIRONMENT = frozenset({"TRIGGERS_CACHE_LAYOUT"})

_UNSET = object()


def get_setting(name: str) -> Any:
    """The value of a ``TRIGGERS_*`` setting: Django's settings, then (for
    :data:`FROM_ENVIRONMENT`) the environment, then the default."""
    value = getattr(settings, name, _UNSET)
    if value is not _UNSET:
        return value
    if name in FROM_ENVIRONMENT and name in os.environ:
        return os.environ[name]
    return DEFAULTS[name]
