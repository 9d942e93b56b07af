"""Settings of the package, read from Django settings with documented defaults."""

from __future__ import annotations

from typing import Any

from django.conf import settings

#: The runner of tasks without ``using`` when no setting names one.
FALLBACK_RUNNER = "threading"

DEFAULTS: dict[str, Any] = {
    # Runner used for a task whose configuration has no ``using``.
    "TRIGGERS_DEFAULT_RUNNER": FALLBACK_RUNNER,
    # Cache alias CacheStorageBackend uses when none is given.
    "TRIGGERS_CACHE_ALIAS": "default",
    # "split" (one key per instance, flat fire cost) or "single" (the 2.x value).
    "TRIGGERS_CACHE_LAYOUT": "split",
    # Lock drivers for caches of other kinds: {"cache class path": "driver class path"}.
    "TRIGGERS_LOCK_DRIVERS": {},
    # The Celery app the celery runner sends through: an app, its dotted path
    # ("proj.celery.app"), or None for the app Celery itself has current.
    "TRIGGERS_CELERY_APP": None,
    # Let the celery runner run tasks while Celery is eager (task_always_eager),
    # that is inline, in the thread that fires: for tests only.
    "TRIGGERS_CELERY_ALLOW_EAGER": False,
}


def get_setting(name: str) -> Any:
    """The value of a ``TRIGGERS_*`` setting, or its default."""
    return getattr(settings, name, DEFAULTS[name])
