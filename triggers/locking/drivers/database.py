"""Lock driver for Django's database cache: conditional SQL on the cache table."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from django.core.cache import BaseCache
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)

from ...cache_internals import database_cache_table, database_row_expiry, database_row_value
from ...forking import watch_forks
from ..failures import unavailable
from ..writes import Writes
from .base import LockDriver, storable
from .database_pg import take_or_read, upsert_and_release
from .wakeups import lock_wakeups

__all__ = ["DatabaseLockDriver"]

#: PostgreSQL's "lock_not_available" (NOWAIT found the row locked) and
#: "idle_in_transaction_session_timeout" (the server ended a paused transaction)
LOCK_NOT_AVAILABLE = "55P03"
IDLE_IN_TRANSACTION_TIMEOUT = "25P03"
#: the longest a waiter's statement waits for SQLite's write lock, in ms (the
#: lock's own retries, bounded by the waiter's limit, do the rest)
SQLITE_BUSY_SLICE_MS = 200
#: the shortest idle time PostgreSQL allows a holder inside its commit, in ms
#: (a lock this close to expiry still lets a prompt holder commit)
SHORTEST_IDLE_MS = 100


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (psycopg 3 or 2), if it has one."""
    for error in (exc, exc.__cause__):
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


@contextlib.contextmanager
def _short_busy_wait(connection: Any) -> Iterator[None]:
    """On SQLite, bound how long a statement waits for another connection's
    write lock (the connection's own busy timeout may be many seconds)."""
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute(f"PRAGMA busy_timeout = {min(int(previous), SQLITE_BUSY_SLICE_MS)}")
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            raw.execute(f"PRAGMA busy_timeout = {int(previous)}")


class DatabaseLockDriver(LockDriver):
    """Django's database cache: conditional SQL on the cache table.

    Django's own ``add`` checks and writes in two statements, so two
    processes may both take an expired key; a conditional UPDATE (or an
    INSERT against the primary key) cannot be won twice. Waiters poll with
    a plain SELECT: on SQLite a write takes the whole file, and a waiter
    that wrote while polling would make the holder's own writes fail.

    Writes under the lock go in one transaction that first checks, with a
    write, that the lock is still this holder's. Rows are read and written
    exactly as Django's ``DatabaseCache`` does (key, base64 pickle, expiry),
    so ``cache.get`` reads them; unlike Django's ``set``, which swallows
    database errors, a failed write here raises.

    A holder paused inside that transaction must not hold everyone up. On
    PostgreSQL, a waiter takes over an expired row only with NOWAIT, and
    the transaction may sit idle no longer than the lock has left to live:
    the server then ends it, nothing is written, and the holder gets
    LockLost. On SQLite a waiter's statements wait a short slice for the
    file's write lock, not the connection's whole busy timeout.
    """

    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        *LockDriver.transient_errors,
        OperationalError,
        InterfaceError,
        sqlite3.OperationalError,
        sqlite3.InterfaceError,
    )
    # Any database error but a broken constraint: the cache table is gone,
    # the server refuses, a statement timed out.
    failure_errors: ClassVar[tuple[type[BaseException], ...]] = (DatabaseError, sqlite3.Error)

    def __init__(self, cache: BaseCache) -> None:
        super().__init__(cache)
        watch_forks()  # a forked child opens a connection of its own

    def is_failure(self, exc: BaseException) -> bool:
        return super().is_failure(exc) and not isinstance(exc, IntegrityError)

    def is_transient(self, exc: BaseException) -> bool:
        # A missing cache table is an OperationalError on SQLite, and lasting.
        return super().is_transient(exc) and "no such table" not in str(exc)

    def _connection(self) -> tuple[str, Any, str]:
        model, table = database_cache_table(self.cache)
        db = router.db_for_write(model)
        connection = connections[db]
        return db, connection, connection.ops.quote_name(table)

    def _wake_name(self, key: str) -> tuple[str, str, str]:
        """What names ``key``'s lock among every cache table this process locks in."""
        db, _, table = self._connection()
        return db, table, self.cache.make_and_validate_key(key)

    def wait_for_release(self, key: str, pause: float, longest: float | None) -> None:
        # Polls the table, but a release by another thread of this process
        # (a sibling task) wakes a waiter at once rather than after its pause.
        lock_wakeups.wait(self._wake_name(key), pause)

    def _encode(self, value: Any) -> str:
        encoded: str = storable(lambda v: database_row_value(self.cache, v))(value)
        return encoded

    @contextlib.contextmanager
    def _statement(self, db: str, connection: Any) -> Iterator[Any]:
        """A cursor for one statement that may fail (inside a transaction: a savepoint)."""
        atomic = (
            transaction.atomic(using=db) if connection.in_atomic_block else contextlib.nullcontext()
        )
        with atomic, connection.cursor() as cursor:
            yield cursor

    @contextlib.contextmanager
    def _closing_if_broken(self, connection: Any) -> Iterator[None]:
        """On a database error, close a connection the server dropped (so the
        next attempt opens a new one), and let the error go on."""
        try:
            yield
        except DatabaseError:
            if not connection.in_atomic_block and connection.connection is not None:
                with contextlib.suppress(Exception):
                    if not connection.is_usable():
                        connection.close()
            raise

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        db, connection, table = self._connection()
        try:
            with self._closing_if_broken(connection), _short_busy_wait(connection):
                return self._take(db, connection, table, key, token, ttl)
        except OperationalError as exc:
            if _sqlstate(exc) == LOCK_NOT_AVAILABLE:
                return False  # a holder's transaction has the row: the lock is in use
            raise

    def _take(
        self, db: str, connection: Any, table: str, key: str, token: str, ttl: float | None
    ) -> bool:
        """One attempt, in autocommit statements: no transaction stays open
        across the holder's work, and none of them waits on another's."""
        q = connection.ops.quote_name
        db_key = self.cache.make_and_validate_key(key)
        value = self._encode(token)
        now = database_row_expiry(connection, time.time())
        expires = database_row_expiry(connection, None if ttl is None else time.time() + max(1.0, ttl))
        if connection.vendor == "postgresql":
            # One statement: insert the row if there is none, else read it.
            try:
                with self._statement(db, connection) as cursor:
                    cursor.execute(take_or_read(q, table), [now, db_key, db_key, value, expires])
                    current, expired, inserted = cursor.fetchone()
            except IntegrityError:
                return False  # taken since the statement's snapshot
            if inserted:
                return True
            row = (current, expired)
        else:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {q('value')}, CASE WHEN {q('expires')} < %s THEN 1 ELSE 0 END"
                    f" FROM {table} WHERE {q('cache_key')} = %s",
                    [now, db_key],
                )
                row = cursor.fetchone()
        if row is not None:
            current, expired = row
            if not expired:
                # Held; by this token only if an earlier attempt took it and then failed.
                return bool(current == value)
            with self._statement(db, connection) as cursor:
                if connection.vendor == "postgresql":
                    # Take over the expired row only if no transaction has it
                    # (a holder paused in its commit): NOWAIT fails at once
                    # rather than wait for that transaction to end.
                    cursor.execute(
                        f"WITH free AS (SELECT {q('cache_key')} FROM {table}"
                        f" WHERE {q('cache_key')} = %s AND {q('expires')} < %s FOR UPDATE NOWAIT)"
                        f" UPDATE {table} SET {q('value')} = %s, {q('expires')} = %s"
                        f" WHERE {q('cache_key')} IN (SELECT {q('cache_key')} FROM free)"
                        f" AND {q('expires')} < %s",
                        [db_key, now, value, expires, now],
                    )
                else:
                    cursor.execute(
                        f"UPDATE {table} SET {q('value')} = %s, {q('expires')} = %s"
                        f" WHERE {q('cache_key')} = %s AND {q('expires')} < %s",
                        [value, expires, db_key, now],
                    )
                return bool(cursor.rowcount == 1)
        try:
            with self._statement(db, connection) as cursor:
                cursor.execute(
                    f"INSERT INTO {table} ({q('cache_key')}, {q('value')}, {q('expires')})"
                    " VALUES (%s, %s, %s)",
                    [db_key, value, expires],
                )
        except IntegrityError:
            return False  # taken since the SELECT
        return True

    def release(self, key: str, token: str) -> bool:
        db, connection, table = self._connection()
        q = connection.ops.quote_name
        with self._closing_if_broken(connection), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {q('cache_key')} = %s AND {q('value')} = %s",
                [self.cache.make_and_validate_key(key), self._encode(token)],
            )
            released = bool(cursor.rowcount == 1)
        if released:
            lock_wakeups.released(self._wake_name(key))
        return released

    def owns(self, key: str, token: str) -> bool:
        # Not cache.get(): Django's database cache deletes a row it reads as
        # expired, unconditionally, and could delete a lock just taken over.
        db, connection, table = self._connection()
        q = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {table}"
                f" WHERE {q('cache_key')} = %s AND {q('value')} = %s AND {q('expires')} >= %s",
                [
                    self.cache.make_and_validate_key(key),
                    self._encode(token),
                    database_row_expiry(connection, time.time()),
                ],
            )
            return cursor.fetchone() is not None

    def _rows(self, connection: Any, writes: Writes) -> tuple[Any, list[tuple[str, str]]]:
        """The expiry and the (key, encoded value) rows of ``writes``, made before
        any transaction opens (so nothing is pickled while rows are locked)."""
        expires = database_row_expiry(connection, self.cache.get_backend_timeout(writes.timeout))
        rows = [
            (self.cache.make_and_validate_key(name), self._encode(value))
            for name, value in writes.items()
        ]
        return expires, rows

    def _upsert(
        self, cursor: Any, connection: Any, table: str, expires: Any, rows: list[tuple[str, str]]
    ) -> None:
        q = connection.ops.quote_name
        for db_key, encoded in rows:
            cursor.execute(
                f"UPDATE {table} SET {q('value')} = %s, {q('expires')} = %s"
                f" WHERE {q('cache_key')} = %s",
                [encoded, expires, db_key],
            )
            if cursor.rowcount == 0:
                cursor.execute(
                    f"INSERT INTO {table} ({q('cache_key')}, {q('value')}, {q('expires')})"
                    " VALUES (%s, %s, %s)",
                    [db_key, encoded, expires],
                )

    def _write_rows(
        self,
        cursor: Any,
        connection: Any,
        table: str,
        expires: Any,
        rows: list[tuple[str, str]],
        lock_key: str,
        release: bool,
    ) -> None:
        """Inside the commit transaction, past its owner check: write ``rows``,
        and delete the lock's row if ``release`` (on PostgreSQL in one statement)."""
        q = connection.ops.quote_name
        if connection.vendor == "postgresql" and rows:
            sql, params = upsert_and_release(q, table, rows, expires, lock_key if release else None)
            cursor.execute(sql, params)
            return
        self._upsert(cursor, connection, table, expires, rows)
        if release:
            cursor.execute(f"DELETE FROM {table} WHERE {q('cache_key')} = %s", [lock_key])

    def write(self, writes: Writes) -> None:
        if not writes:
            return
        db, connection, table = self._connection()
        expires, rows = self._rows(connection, writes)
        with transaction.atomic(using=db), connection.cursor() as cursor:
            self._upsert(cursor, connection, table, expires, rows)

    def _owner_check(self, connection: Any, table: str, bound_idle: bool) -> str:
        """The statement that checks (with a write) that the lock is still the
        holder's. On PostgreSQL it also bounds how long the transaction may sit
        idle to what is left of the lock's time: a holder paused inside it has
        its transaction ended by the server, and the lock expires as any other."""
        q = connection.ops.quote_name
        check = (
            f"UPDATE {table} SET {q('expires')} = {q('expires')}"
            f" WHERE {q('cache_key')} = %s AND {q('value')} = %s AND {q('expires')} >= %s"
        )
        if connection.vendor != "postgresql" or not bound_idle:
            return check
        left_ms = f"ceil(extract(epoch from ({q('expires')} - clock_timestamp())) * 1000)"
        return (
            f"{check} RETURNING set_config('idle_in_transaction_session_timeout',"
            f" greatest({SHORTEST_IDLE_MS}, least({left_ms}, 2147483647))::bigint::text, true)"
        )

    def write_and_release(self, key: str, token: str, writes: Writes, release: bool = True) -> bool:
        db, connection, table = self._connection()
        lock_key = self.cache.make_and_validate_key(key)
        now = database_row_expiry(connection, time.time())
        expires, rows = self._rows(connection, writes)
        owner = [lock_key, self._encode(token), now]
        committing = False
        # Inside a caller's transaction the setting would outlive this commit.
        bound_idle = not connection.in_atomic_block
        try:
            with transaction.atomic(using=db):
                with connection.cursor() as cursor:
                    # The owner check is a write, so on SQLite it takes the write
                    # lock before anything is read: nothing can fail for want of
                    # it later.
                    cursor.execute(self._owner_check(connection, table, bound_idle), owner)
                    if cursor.rowcount != 1:
                        return False
                    self._write_rows(cursor, connection, table, expires, rows, lock_key, release)
                committing = True  # leaving the block commits
        except DatabaseError as exc:
            if _sqlstate(exc) == IDLE_IN_TRANSACTION_TIMEOUT:
                # The holder sat in its commit past its lock's time: the server
                # ended the transaction (nothing was written) and the lock is lost.
                if release:
                    with contextlib.suppress(DatabaseError):
                        self.release(key, token)
                return False
            if committing or not self.is_failure(exc):
                raise  # whether a failed commit landed cannot be told here
            # Failed before the commit: rolled back, nothing was written.
            raise unavailable(self, f"writing under lock {key!r}", exc) from exc
        if release:
            lock_wakeups.released(self._wake_name(key))
        return True
