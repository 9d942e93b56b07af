"""Puts the PostgreSQL cache table in the "pg" database, the SQLite one in "default";
the database storage backend's tables go in both."""

PG_TABLE = "triggers_cache_pg"
SQLITE_TABLE = "triggers_cache_sqlite"


def _table(model):
    return getattr(getattr(model, "_meta", None), "db_table", None)


class CacheTableRouter:
    def db_for_read(self, model, **hints):
        return self._db(model)

    def db_for_write(self, model, **hints):
        return self._db(model)

    def _db(self, model):
        table = _table(model)
        if table == PG_TABLE:
            return "pg"
        if table == SQLITE_TABLE:
            return "default"
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        table = _table(hints.get("model"))
        if table == PG_TABLE:
            return db == "pg"
        if table == SQLITE_TABLE:
            return db == "default"
        if db != "default":
            return app_label == "triggers"  # the database storage backend's tables
        return None
