"""django-redis's SentinelClient as the sessions' cache: one master, one
replica and three Sentinels of the suite's own."""

from __future__ import annotations

import functools

import pytest

from tests.cluster.conftest import sentinel_cache
from tests.cluster.support import Requests
from triggers import CacheStorageBackend, TriggerManager
from triggers.testing import StorageBackendTests

CONFIG = {"t_hit": {"after": ["hit", "never"], "andEvery": "hit", "run": "hit"}}


@pytest.fixture
def sc(sentinel, on_caches):
    """The alias of a django-redis Sentinel cache on the module's setup, emptied first."""
    master = next(
        n for n in (sentinel.master, sentinel.replica) if n.port == sentinel.master_port()
    )
    with master.admin() as client:
        client.flushall()
    on_caches(sc=sentinel_cache(sentinel))
    return "sc"


class TestSentinelStorage(StorageBackendTests):
    """Every check of the kit; the processes fire 4 x 100 into one session."""

    locks_across_processes = True
    kit_processes = 4
    kit_fires_per_process = 100
    kit_process_timeout = 240.0

    @pytest.fixture(autouse=True)
    def alias(self, sc):
        self.alias = sc

    def make_storage(self, uid):
        return CacheStorageBackend(uid, cache=self.alias)

    def storage_factory(self):
        return functools.partial(CacheStorageBackend, cache=self.alias)


def test_a_fire_is_one_request_to_the_master(sentinel, sc, uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache=sc))
    manager.update_configuration(CONFIG)
    manager.fire("hit", {"n": 0})
    fires = 20
    with Requests([sentinel.master]) as requests:
        for n in range(1, fires + 1):
            manager.fire("hit", {"n": n})
    assert requests.seen == {"evalsha": fires}, requests.seen
    with sentinel.replica.admin() as client:
        assert client.dbsize() > 0, "the replica holds the session too"
