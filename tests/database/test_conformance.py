"""The storage conformance kit on the database backend, on each database."""

import functools

import pytest

from triggers.storages.database import DatabaseStorageBackend
from triggers.testing import StorageBackendTests


class TestDatabaseStorageBackend(StorageBackendTests):
    """Every check of the kit, processes racing for the lock included."""

    locks_across_processes = True

    @pytest.fixture(autouse=True)
    def _database(self, database):
        self.alias = database

    def make_storage(self, uid):
        return DatabaseStorageBackend(uid, using=self.alias)

    def storage_factory(self):
        return functools.partial(DatabaseStorageBackend, using=self.alias)
