"""Settings of the package, read from Django settings with documented defaults."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import ImproperlyConfigured

from .tasks.celery_state import celery_apps, celery_installed, describe_app

#: The runner of tasks without ``using`` when no setting names one and the
#: process has no Celery app.
FALLBACK_RUNNER = "threading"

DEFAULTS: dict[str, Any] = {
    # Runner used for a task whose configuration has no ``using``. When the
    # setting is absent, default_runner_choice() decides: this value, or
    # "celery" for a process that has a Celery app.
    "TRIGGERS_DEFAULT_RUNNER": FALLBACK_RUNNER,
    # Runner keys served by another runner: {"celery": "threading"} runs the
    # tasks whose runner is "celery" on the "threading" runner (the test mixin
    # sets it while each test runs). One step: an alias's target is not looked up again.
    "TRIGGERS_RUNNER_ALIASES": {},
    # Cache alias CacheStorageBackend uses when none is given.
    "TRIGGERS_CACHE_ALIAS": "default",
    # "split" (one key per instance, flat fire cost), "single" (the 2.x value) or
    # "paged" (split, the records kept together; Redis only).
    "TRIGGERS_CACHE_LAYOUT": "split",
    # Seconds a session lives after its last save (None: it never expires),
    # for sessions that do not carry a lifetime of their own yet; by default
    # the cache's own default timeout.
    "TRIGGERS_SESSION_TIMEOUT": DEFAULT_TIMEOUT,
    # Lock drivers for caches of other kinds: {"cache class path": "driver class path"}.
    "TRIGGERS_LOCK_DRIVERS": {},
    # Replicas of a Redis master that must hold a write before a save counts
    # as made (Redis WAIT after the commit); 0: none, the master's word is enough.
    "TRIGGERS_REDIS_WAIT_REPLICAS": 0,
    # The Celery app the celery runner sends through: an app, its dotted path
    # ("proj.celery.app"), or None for the app Celery itself has current.
    "TRIGGERS_CELERY_APP": None,
    # Let the celery runner run tasks while Celery is eager (task_always_eager),
    # that is inline, in the thread that fires: for tests only.
    "TRIGGERS_CELERY_ALLOW_EAGER": False,
    # Send each task with the session state the firing process committed (a
    # signed header), and start runs from such a header: off, workers read first.
    "TRIGGERS_CELERY_HANDOFF": True,
}


class RunnerChoice(NamedTuple):
    """The default runner's key, and why it is that one (for the system check)."""

    name: str
    reason: str
    #: whether ``TRIGGERS_DEFAULT_RUNNER`` named it (rather than the process's setup)
    from_setting: bool


def default_runner_choice() -> RunnerChoice:
    """Which runner tasks without ``using`` run on, and why.

    The setting wins. Without it, a process that has a Celery app runs them
    on ``celery``, as Triggers 2.x did for every application (all of them
    had Celery); any other process on ``threading``. Celery is never
    imported to decide: an app can exist only where the application
    imported Celery already.
    """
    if hasattr(settings, "TRIGGERS_DEFAULT_RUNNER"):
        name = settings.TRIGGERS_DEFAULT_RUNNER
        return RunnerChoice(name, "the TRIGGERS_DEFAULT_RUNNER setting names it", True)
    apps = celery_apps()
    if apps:
        named = ", ".join(describe_app(app) for app in apps)
        return RunnerChoice(
            "celery",
            f"Celery is installed and this process has a Celery app ({named}); Triggers 2.x"
            " ran every task on Celery",
            False,
        )
    if celery_installed():
        reason = (
            "Celery is installed, but this process has no Celery app (in Celery's Django"
            " setup, <project>/__init__.py imports the app from <project>/celery.py)"
        )
    else:
        reason = "Celery is not installed"
    return RunnerChoice(FALLBACK_RUNNER, reason, False)


#: settings that may also come from an environment variable of the same name
#: when the Django settings do not set them, so a deployment can switch the
#: layout of a rolling upgrade without a code change
FROM_ENVIRONMENT = frozenset({"TRIGGERS_CACHE_LAYOUT"})

_UNSET = object()


def get_setting(name: str) -> Any:
    """The value of a ``TRIGGERS_*`` setting: Django's settings, then (for
    :data:`FROM_ENVIRONMENT`) the environment, then the default (for the
    default runner, :func:`default_runner_choice` decides)."""
    if name == "TRIGGERS_DEFAULT_RUNNER":
        return default_runner_choice().name
    value = getattr(settings, name, _UNSET)
    if value is not _UNSET:
        return value
    if name in FROM_ENVIRONMENT and name in os.environ:
        return os.environ[name]
    return DEFAULTS[name]


def runner_alias(key: str) -> str:
    """The key of the runner that serves ``key`` (``TRIGGERS_RUNNER_ALIASES``; itself if none)."""
    if not settings.configured:
        return key
    aliases = get_setting("TRIGGERS_RUNNER_ALIASES")
    if not aliases:
        return key
    if not isinstance(aliases, Mapping) or not all(
        isinstance(name, str) and isinstance(target, str) for name, target in aliases.items()
    ):
        raise ImproperlyConfigured(
            f"TRIGGERS_RUNNER_ALIASES must be a dict of runner key to runner key, not {aliases!r}"
        )
    target: str = aliases.get(key, key)
    return target


def session_timeout_setting() -> Any:
    """TRIGGERS_SESSION_TIMEOUT: seconds, None (no expiry) or DEFAULT_TIMEOUT (unset)."""
    value = get_setting("TRIGGERS_SESSION_TIMEOUT")
    if value is DEFAULT_TIMEOUT or value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ImproperlyConfigured(
            f"TRIGGERS_SESSION_TIMEOUT must be a positive, finite number of seconds or None,"
            f" not {value!r}"
        )
    return value
