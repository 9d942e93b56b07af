"""triggers.E006 and I002: how long sessions live after their last save."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from ..conf import session_timeout_setting
from .scope import loaded_cache, sessions_cache_alias


@checks.register("triggers")
def check_session_timeout(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A bad TRIGGERS_SESSION_TIMEOUT would fail the first save; unset, a session on a
    cache lives only the cache's own TIMEOUT (300 s unless CACHES says otherwise),
    which a project that did not choose it should hear about."""
    try:
        session_timeout_setting()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                f"{exc}.",
                hint="Set a number of seconds above 0 (7 * 24 * 3600 keeps a session a week"
                " after its last save), or None to keep sessions until they are deleted.",
                id="triggers.E006",
            )
        ]
    if hasattr(settings, "TRIGGERS_SESSION_TIMEOUT"):
        return []
    cache = loaded_cache(sessions_cache_alias())
    if cache is None:  # the database backend only (no expiry there), or E001
        return []
    timeout = cache.default_timeout
    lives = "never expires" if timeout is None else f"lives {timeout:g} seconds after its last save"
    return [
        checks.Info(
            f"TRIGGERS_SESSION_TIMEOUT is not set: a session {lives} (the TIMEOUT of the"
            f" cache {sessions_cache_alias()!r}).",
            hint="Set TRIGGERS_SESSION_TIMEOUT to the seconds a session must outlive its"
            " last save, or None (this message then goes away).",
            id="triggers.I002",
        )
    ]
