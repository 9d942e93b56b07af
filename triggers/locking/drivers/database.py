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
from ..writes import Writes
from .base import LockDriver, storable

__all__ = ["DatabaseLockDriver"]


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
        q = connection.ops.quote_name
        db_key = self.cache.make_and_validate_key(key)
        value = self._encode(token)
        now = database_row_expiry(connection, time.time())
        expires = database_row_expiry(connection, None if ttl is None else time.time() + max(1.0, ttl))
        with self._closing_if_broken(connection):
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
            return bool(cursor.rowcount == 1)

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

    def _upsert(self, cursor: Any, connection: Any, table: str, writes: Writes) -> None:
        q = connection.ops.quote_name
        expires = database_row_expiry(connection, self.cache.get_backend_timeout(writes.timeout))
        for name, value in writes.items():
            db_key = self.cache.make_and_validate_key(name)
            encoded = self._encode(value)
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

    def write(self, writes: Writes) -> None:
        if not writes:
            return
        db, connection, table = self._connection()
        with transaction.atomic(using=db), connection.cursor() as cursor:
            self._upsert(cursor, connection, table, writes)

    def write_and_release(self, key: str, token: str, writes: Writes, release: bool = True) -> bool:
        db, connection, table = self._connection()
        q = connection.ops.quote_name
        lock_key = self.cache.make_and_validate_key(key)
        now = database_row_expiry(connection, time.time())
        with transaction.atomic(using=db), connection.cursor() as cursor:
            # The owner check is a write, so on SQLite it takes the write lock
            # before anything is read: nothing can fail for want of it later.
            cursor.execute(
                f"UPDATE {table} SET {q('expires')} = {q('expires')}"
                f" WHERE {q('cache_key')} = %s AND {q('value')} = %s AND {q('expires')} >= %s",
                [lock_key, self._encode(token), now],
            )
            if cursor.rowcount != 1:
                return False
            self._upsert(cursor, connection, table, writes)
            if release:
                cursor.execute(f"DELETE FROM {table} WHERE {q('cache_key')} = %s", [lock_key])
        return True
