"""The database lock driver's statements on PostgreSQL, where one does the work of several.

Each statement is a round trip, and a task run on the database cache is two
commits, each of which takes the lock, reads, and writes under it. On
PostgreSQL taking a free lock is one statement (not a SELECT, then an INSERT),
and the writes of a commit with the lock's release are one statement (not an
UPDATE, or an UPDATE then an INSERT, per key, then a DELETE). What each
decides is what the statements it replaces decided, from the same snapshot
rules: a row another transaction holds is never waited on when it is there,
and the commit's owner check stays a statement of its own, first in the
transaction (it locks the lock's row and bounds the transaction's idle time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["take_or_read", "upsert_and_release"]

Quote = Callable[[str], str]


def take_or_read(q: Quote, table: str) -> str:
    """Insert the lock's row if there is none; else read the row that is there.

    Parameters: now, key, key, value, expires. Answers one row: the value
    there (NULL if none was), whether it had expired (NULL if none was), and
    whether the row was inserted. An INSERT that loses a race to another
    raises IntegrityError, as the plain INSERT it replaces did.
    """
    return (
        f"WITH there AS (SELECT {q('value')} AS value,"
        f" CASE WHEN {q('expires')} < %s THEN 1 ELSE 0 END AS expired"
        f" FROM {table} WHERE {q('cache_key')} = %s),"
        f" taken AS (INSERT INTO {table} ({q('cache_key')}, {q('value')}, {q('expires')})"
        f" SELECT %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM there) RETURNING 1)"
        " SELECT (SELECT value FROM there), (SELECT expired FROM there),"
        " EXISTS (SELECT 1 FROM taken)"
    )


def unique_rows(rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``rows`` with each key once, its last value kept (one statement cannot
    write a row twice; the later batch's value is the one that stays)."""
    return list(dict(rows).items())


def upsert_and_release(
    q: Quote, table: str, rows: Sequence[tuple[str, str]], expires: Any, lock_key: str | None
) -> tuple[str, list[Any]]:
    """One statement writing ``rows`` (key, encoded value), all expiring at
    ``expires``, and deleting the lock's row ``lock_key`` (None: keep it).

    The statement and its parameters; ``rows`` must not be empty.
    """
    rows = unique_rows(rows)
    values = ", ".join(["(%s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for db_key, encoded in rows:
        params += [db_key, encoded, expires]
    upsert = (
        f"INSERT INTO {table} ({q('cache_key')}, {q('value')}, {q('expires')}) VALUES {values}"
        f" ON CONFLICT ({q('cache_key')}) DO UPDATE SET {q('value')} = EXCLUDED.{q('value')},"
        f" {q('expires')} = EXCLUDED.{q('expires')}"
    )
    if lock_key is None:
        return upsert, params
    # The lock's row and the written rows differ: one statement may touch each once.
    release = f"DELETE FROM {table} WHERE {q('cache_key')} = %s"
    return f"WITH released AS ({release}) {upsert}", [lock_key, *params]
