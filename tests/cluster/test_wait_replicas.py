"""TRIGGERS_REDIS_WAIT_REPLICAS on real replicas: a save is acknowledged once
that many replicas hold it, and raises BackendUnavailable (outcome unknown)
when fewer can."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.cluster.conftest import cluster_cache, sentinel_cache
from tests.cluster.servers import Node
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import BackendUnavailable

CONFIG = {"t_hit": {"after": ["hit", "never"], "andEvery": "hit", "run": "hit"}}


def fired(alias, uid):
    return sorted(i.kwargs["hit"]["n"] for i in CacheStorageBackend(uid, cache=alias))


def replica_keys(replica: Node, uid: str) -> list[bytes]:
    """The session's keys the replica holds now (no waiting: WAIT already did)."""
    with replica.admin() as client:
        return [key for key in client.scan_iter(count=1000) if uid.encode() in key]


def check_waits(alias, uid, replica_of_session):
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
    with override_settings(TRIGGERS_REDIS_WAIT_REPLICAS=1):
        manager.update_configuration(CONFIG)
        manager.fire("hit", {"n": 1})
        # Acknowledged: the replica holds the session already.
        assert replica_keys(replica_of_session(), uid)
    with override_settings(TRIGGERS_REDIS_WAIT_REPLICAS=2):  # there is one replica
        with pytest.raises(BackendUnavailable, match="1 of the 2 replicas") as raised:
            TriggerManager(CacheStorageBackend(uid, cache=alias)).fire("hit", {"n": 2})
    assert raised.value.outcome_unknown
    # The write is on the master (and its one replica): the session reads whole.
    assert fired(alias, uid) == [1, 2]
    with override_settings(TRIGGERS_REDIS_WAIT_REPLICAS=1):
        TriggerManager(CacheStorageBackend(uid, cache=alias)).fire("hit", {"n": 3})
    assert fired(alias, uid) == [1, 2, 3]


def test_on_a_cluster(cluster, on_caches, uid):
    cluster.wait_healthy()
    on_caches(cl=cluster_cache(cluster))

    def replica():
        from django.core.cache import caches

        from triggers.storages.cache.keys import KEY_PREFIX, cluster_slot

        head = str(caches["cl"].make_key(KEY_PREFIX + uid))
        return cluster.replica_of(cluster.master_of_slot(cluster_slot(head)))

    check_waits("cl", uid, replica)


def test_behind_sentinel(sentinel, on_caches, uid):
    on_caches(sc=sentinel_cache(sentinel))
    port = sentinel.master_port()
    replica = next(n for n in (sentinel.master, sentinel.replica) if n.port != port)
    check_waits("sc", uid, lambda: replica)
