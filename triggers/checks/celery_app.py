"""Checks of the Celery side: the app the runner sends through, eager mode, and a
sessions' cache that workers, other processes, cannot see."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache

from ..conf import get_setting
from ..importlib import dl
from ..tasks.celery_state import current_celery_app, describe_app
from .runners import default_runner_class, needs_celery
from .scope import loaded_cache, sessions_cache_alias

#: the caches whose entries only the process that wrote them sees
PER_PROCESS_CACHES = (LocMemCache, DummyCache)


def _configured_app() -> tuple[Any, checks.CheckMessage | None]:
    """The app TRIGGERS_CELERY_APP names (None if unset), or why it cannot be had (E007)."""
    value = get_setting("TRIGGERS_CELERY_APP")
    if value is None:
        return None, None
    hint = (
        "Name the app by its dotted path ('proj.celery.app' or 'proj.celery:app') in a module"
        " this process can import, or set None to use the app Celery has current."
    )
    if isinstance(value, str):
        try:
            return dl(value), None
        except Exception as exc:  # the application's module may raise anything
            message = f"TRIGGERS_CELERY_APP is {value!r}, which cannot be imported: {exc}"
            return None, checks.Error(message, hint=hint, id="triggers.E007")
    if hasattr(value, "conf") and hasattr(value, "send_task"):
        return value, None
    message = f"TRIGGERS_CELERY_APP is {value!r}, which is neither a Celery app nor its path."
    return None, checks.Error(message, hint=hint, id="triggers.E007")


def _app_in_use() -> tuple[Any, list[checks.CheckMessage]]:
    """The app the ``celery`` runner would send through, if it is the default runner or
    TRIGGERS_CELERY_APP names one; and E007 when the setting is bad."""
    app, problem = _configured_app()
    if problem is not None:
        return None, [problem]
    if app is None and needs_celery(default_runner_class()):
        app = current_celery_app()  # never imports Celery: only an app already made
    return app, []


def _eager(app: Any) -> bool:
    conf = getattr(app, "conf", None)
    return bool(getattr(conf, "task_always_eager", False))


@checks.register("triggers")
def check_celery_app(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """TRIGGERS_CELERY_APP imports (E007); the app is not eager unless allowed (W003)."""
    app, messages = _app_in_use()
    if app is None or not _eager(app) or get_setting("TRIGGERS_CELERY_ALLOW_EAGER"):
        return messages
    return [
        checks.Warning(
            f"The Celery app {describe_app(app)} runs tasks eagerly (task_always_eager): the"
            " 'celery' runner refuses to send through it, so every task it is given fails"
            " (EagerModeRefused).",
            hint="Turn eager mode off outside tests; in tests, set"
            " TRIGGERS_CELERY_ALLOW_EAGER = True (or run tasks with the 'sync' runner).",
            id="triggers.W003",
        )
    ]


@checks.register("triggers")
def check_cache_shared_with_workers(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A runner that runs tasks in other processes needs a cache they share: in a
    per-process cache a worker never finds the session, and the instance stays
    ``scheduled`` for ever."""
    runner_class = default_runner_class()
    if runner_class is None or getattr(runner_class, "runs_in_process", False):
        return []
    if needs_celery(runner_class):
        app, _ = _app_in_use()
        if app is not None and _eager(app) and get_setting("TRIGGERS_CELERY_ALLOW_EAGER"):
            return []  # tasks run inline, in the process that fires
    alias = sessions_cache_alias()
    cache = loaded_cache(alias)
    if not isinstance(cache, PER_PROCESS_CACHES):
        return []
    return [
        checks.Error(
            f"The cache {alias!r} used for trigger sessions is {type(cache).__name__}, which"
            f" only this process sees, but tasks without 'using' run on the"
            f" {runner_class.name!r} runner, which runs them in other processes: they"
            " would never find their session.",
            hint="Keep sessions in a cache every process shares (Redis, Memcached, the"
            " database cache), or run tasks in this process (TRIGGERS_DEFAULT_RUNNER ="
            " 'threading').",
            id="triggers.E005",
        )
    ]
