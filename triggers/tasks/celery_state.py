"""What this process knows of Celery, found without importing it.

Celery is an optional extra. The default runner depends on whether the
application made a Celery app (:func:`triggers.conf.default_runner_choice`),
and the Celery runner sends through that app, so both need to see Celery's
apps; neither may import Celery where the application did not. An app can
only exist once Celery was imported, so this module reads Celery's own
bookkeeping from ``sys.modules`` and never imports anything of Celery.

The private parts of Celery read here, checked against Celery 5.3 to 5.6:
``celery._state._get_active_apps()`` (every app made, weakly held),
``celery._state.default_app`` and ``celery._state._tls.current_app`` (the
app of each thread). ``celery._state`` makes a *fallback* app, named
``"default"``, when something asks for the current app before any was made;
it is nobody's configuration and is never counted as the application's.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["celery_apps", "celery_installed", "current_celery_app", "describe_app"]


def celery_installed() -> bool:
    """Whether Celery can be imported here (it is not imported to tell)."""
    if sys.modules.get("celery") is not None:
        return True
    if "celery" in sys.modules:  # set to None: imports of it are blocked
        return False
    try:
        return importlib.util.find_spec("celery") is not None
    except (ImportError, ValueError):
        return False


def _state() -> Any:
    return sys.modules.get("celery._state")


def _is_fallback(app: Any, state: Any) -> bool:
    """Whether ``app`` is the fallback app ``celery._state`` made by itself."""
    return (
        app is getattr(state, "default_app", None)
        and getattr(app, "main", None) == "default"
        and getattr(app, "set_as_current", True) is False
    )


def celery_apps() -> list[Any]:
    """The Celery apps the application made in this process, by name (fallback excluded)."""
    state = _state()
    if state is None:
        return []
    get_active = getattr(state, "_get_active_apps", None)
    found = list(get_active()) if callable(get_active) else []
    apps = [app for app in found if not _is_fallback(app, state)]
    return sorted(apps, key=lambda app: str(getattr(app, "main", "") or ""))


def current_celery_app() -> Any | None:
    """The app tasks are sent through when none is named, or None.

    This thread's current app (the last one made in it, as Celery keeps it),
    else the app made default for every thread, else the only app made in
    the process. None when there is none, or several and none of them is
    current or default.
    """
    state = _state()
    if state is None:
        return None
    tls = getattr(state, "_tls", None)
    for candidate in (getattr(tls, "current_app", None), getattr(state, "default_app", None)):
        if candidate is not None and not _is_fallback(candidate, state):
            return candidate
    apps = celery_apps()
    return apps[0] if len(apps) == 1 else None


def describe_app(app: Any) -> str:
    """A short name of a Celery app for messages: its ``main``, or its repr."""
    main = getattr(app, "main", None)
    return repr(main) if main else repr(app)
