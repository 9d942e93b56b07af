"""A small Django cache kept in one SQLite file, for the lock-driver registration test.

Processes that open the same file share it. Its ``add`` checks and then
writes in two statements, like the file cache's, so two processes may both
"add" the same key: the default lock driver is not safe on it, and a driver
of its own (``tests/sqlite_lock_driver.py``) is registered instead.

Rows hold the full key, the pickled value and an expiry (Unix time, or NULL
for never).
"""

import os
import pickle
import sqlite3
import threading
import time
from contextlib import closing

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB, expires REAL)"


class SQLiteFileCache(BaseCache):
    def __init__(self, location, params=None):
        super().__init__(params or {})
        self.path = location
        self._local = threading.local()
        self.prepare_file()

    def prepare_file(self):
        """Switch the file to WAL and create the table once, before any process forks.

        Processes that each open a fresh file and switch its journal mode at
        the same moment can get "database is locked" at once (the switch does
        not wait for the busy timeout); done here, the children's own switch
        finds WAL already set and changes nothing.
        """
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(SCHEMA)

    def connection(self):
        """This thread's connection in this process (a forked child opens its own)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            local.connection.execute("PRAGMA journal_mode=WAL")
            local.connection.execute(SCHEMA)
            local.pid = os.getpid()
        return local.connection

    def expiry(self, timeout):
        """The ``expires`` column for a cache timeout: a Unix time, or None for never."""
        return self.get_backend_timeout(timeout)

    def get(self, key, default=None, version=None):
        row = (
            self.connection()
            .execute(
                "SELECT value, expires FROM entries WHERE key = ?",
                (self.make_and_validate_key(key, version=version),),
            )
            .fetchone()
        )
        if row is None or (row[1] is not None and row[1] < time.time()):
            return default
        return pickle.loads(row[0])

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self.connection().execute(
            "INSERT OR REPLACE INTO entries (key, value, expires) VALUES (?, ?, ?)",
            (
                self.make_and_validate_key(key, version=version),
                pickle.dumps(value),
                self.expiry(timeout),
            ),
        )

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        # Check, then write: not atomic across processes.
        if self.has_key(key, version=version):
            return False
        self.set(key, value, timeout, version=version)
        return True

    def has_key(self, key, version=None):
        return self.get(key, self, version=version) is not self

    def delete(self, key, version=None):
        cursor = self.connection().execute(
            "DELETE FROM entries WHERE key = ?", (self.make_and_validate_key(key, version=version),)
        )
        return cursor.rowcount == 1

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        cursor = self.connection().execute(
            "UPDATE entries SET expires = ? WHERE key = ?",
            (self.expiry(timeout), self.make_and_validate_key(key, version=version)),
        )
        return cursor.rowcount == 1

    def clear(self):
        self.connection().execute("DELETE FROM entries")
