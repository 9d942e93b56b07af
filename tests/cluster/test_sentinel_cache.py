"""django-redis's SentinelClient as the sessions' cache: one master, one
replica and three Sentinels of the suite's own."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import sentinel_cache
from tests.cluster.support import KitOnAlias, Requests
from triggers import CacheStorageBackend, TriggerManager

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


class TestSentinelStorage(KitOnAlias):
    @pytest.fixture(autouse=True)
    def alias(self, sc):
        self.alias = sc


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
