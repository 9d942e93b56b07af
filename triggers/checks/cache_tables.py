"""triggers.E008 and W004: a database cache that holds sessions has its table."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.cache.backends.db import DatabaseCache

from ..cache_internals import database_cache_table
from .scope import loaded_cache, sessions_cache_alias


def _table_exists(cache: DatabaseCache) -> bool:
    """Whether the cache's table is in the database its reads are routed to."""
    from django.db import connections, router

    model, table = database_cache_table(cache)
    connection = connections[router.db_for_read(model) or "default"]
    with connection.cursor() as cursor:
        return table in connection.introspection.table_names(cursor)


@checks.register("triggers")
def check_cache_table(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A database cache without its table fails every session read and write (and
    every lock); ``createcachetable`` makes it. A database that cannot be reached
    while the checks run is said, not raised: the checks must not stop on it."""
    alias = sessions_cache_alias()
    cache = loaded_cache(alias)
    if not isinstance(cache, DatabaseCache):
        return []
    _, table = database_cache_table(cache)
    try:
        exists = _table_exists(cache)
    except Exception as exc:
        return [
            checks.Warning(
                f"Could not look for the table {table!r} of the cache {alias!r} used for"
                f" trigger sessions: the database did not answer ({type(exc).__name__}: {exc}).",
                hint="Run manage.py check again once the database is reachable.",
                id="triggers.W004",
            )
        ]
    if exists:
        return []
    return [
        checks.Error(
            f"The cache {alias!r} used for trigger sessions keeps them in the table"
            f" {table!r}, which does not exist.",
            hint="Run 'python manage.py createcachetable'.",
            id="triggers.E008",
        )
    ]
