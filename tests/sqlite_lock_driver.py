"""The lock driver a contributor writes for the SQLite file cache of ``tests/sqlite_cache.py``.

One module and one registration (``register_lock_driver(SQLiteFileCache,
SQLiteLockDriver)``) are all it takes: taking the lock is a single
statement that only one process can win, and release deletes the row only
while it still holds the holder's token.
"""

import pickle
import time

from triggers.locking import LockDriver


class SQLiteLockDriver(LockDriver):
    def _expired_or_free(self, connection, key):
        connection.execute("DELETE FROM entries WHERE key = ? AND expires < ?", (key, time.time()))

    def try_acquire(self, key, token, ttl):
        connection = self.cache.connection()
        db_key = self.cache.make_and_validate_key(key)
        expires = None if ttl is None else time.time() + ttl
        connection.execute("BEGIN IMMEDIATE")
        try:
            self._expired_or_free(connection, db_key)
            cursor = connection.execute(
                "INSERT OR IGNORE INTO entries (key, value, expires) VALUES (?, ?, ?)",
                (db_key, pickle.dumps(token), expires),
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return cursor.rowcount == 1

    def release(self, key, token):
        cursor = self.cache.connection().execute(
            "DELETE FROM entries WHERE key = ? AND value = ?",
            (self.cache.make_and_validate_key(key), pickle.dumps(token)),
        )
        return cursor.rowcount == 1
