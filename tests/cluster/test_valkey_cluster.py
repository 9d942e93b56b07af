"""django-valkey's cluster cache (valkey-py's ValkeyCluster, no BaseCache
subclass) as the sessions' cache, on the suite's Redis Cluster."""

from __future__ import annotations

import pytest

from tests.cluster.support import KitOnAlias, Requests, keys_of
from triggers import CacheStorageBackend, TriggerManager

pytest.importorskip("django_valkey")

CONFIG = {"t_hit": {"after": ["hit", "never"], "andEvery": "hit", "run": "hit"}}


@pytest.fixture
def vk(cluster, on_caches):
    cluster.flush()
    on_caches(
        vk={
            "BACKEND": "django_valkey.cluster_cache.cache.ClusterValkeyCache",
            "LOCATION": f"valkey://{cluster.nodes[0].address}",
            "OPTIONS": {"SOCKET_TIMEOUT": 5, "SOCKET_CONNECT_TIMEOUT": 2},
        }
    )
    return "vk"


class TestValkeyClusterStorage(KitOnAlias):
    @pytest.fixture(autouse=True)
    def alias(self, vk):
        self.alias = vk


def test_a_fire_is_one_request_and_sessions_spread(cluster, vk, uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache=vk))
    manager.update_configuration(CONFIG)
    manager.fire("hit", {"n": 0})
    with Requests(cluster.masters()) as requests:
        for n in range(1, 11):
            manager.fire("hit", {"n": n})
    assert requests.seen == {"evalsha": 10}, requests.seen
    for n in range(30):
        TriggerManager(CacheStorageBackend(f"{uid}-{n}", cache=vk)).update_configuration(CONFIG)
    assert all(keys_of(node) for node in cluster.masters())


def test_a_cache_object_is_taken_as_one(vk, uid):
    from django.core.cache import caches

    cache = caches[vk]
    manager = TriggerManager(CacheStorageBackend(uid, cache=cache))
    manager.update_configuration(CONFIG)
    manager.fire("hit", {"n": 1})
    assert [i.kwargs for i in CacheStorageBackend(uid, cache=cache)] == [{"hit": {"n": 1}}]
