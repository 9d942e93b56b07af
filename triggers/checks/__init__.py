"""Django system checks for the mistakes a triggers setup is most likely to have.

One module per theme; importing the package registers every check (the app
does it when it is ready). docs/checks.rst describes each id.
"""

from __future__ import annotations

from . import cache_tables, caches, celery_app, lifetimes, runners, timeouts  # noqa: F401
