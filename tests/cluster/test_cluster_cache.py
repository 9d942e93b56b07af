"""A Django cache on a real Redis Cluster as the sessions' cache.

django-redis with redis-py's ``RedisCluster`` (through
:class:`triggers.redis_cluster.ClusterConnectionFactory`): the storage
conformance kit with 4 processes x 100 fires into one session, sessions
spread over every master with each session's keys on one of them, a fire
in one request, and a lock whose holder was killed expiring.
"""

from __future__ import annotations

import os
import signal

import pytest
from django.core.cache import caches

from tests.cluster.conftest import cluster_cache
from tests.cluster.servers import wait_until
from tests.cluster.support import KitOnAlias, Requests, keys_of
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import InvalidSessionUid
from triggers.storages.cache.keys import KEY_PREFIX, PART_PREFIX, cluster_slot

CONFIG = {"t_hit": {"after": ["hit", "never"], "andEvery": "hit", "run": "hit"}}


@pytest.fixture
def cl(cluster, on_caches):
    """The alias of a django-redis cache on the module's cluster, emptied first."""
    cluster.flush()
    on_caches(cl=cluster_cache(cluster))
    return "cl"


class TestClusterStorage(KitOnAlias):
    @pytest.fixture(autouse=True)
    def alias(self, cl):
        self.alias = cl


def test_sessions_spread_over_every_master_each_on_one(cluster, cl, uid):
    uids = [f"{uid}-{n}" for n in range(48)]
    for one in uids:
        TriggerManager(CacheStorageBackend(one, cache=cl)).update_configuration(CONFIG)
        TriggerManager(CacheStorageBackend(one, cache=cl)).fire("hit", {"n": 1})
    per_master = {node.port: keys_of(node) for node in cluster.masters()}
    assert len(per_master) == 3
    for port, keys in per_master.items():
        sessions_here = {one for one in uids if any(one in key for key in keys)}
        assert sessions_here, f"master {port} holds no session: {per_master}"
    for one in uids:
        holders = [
            port
            for port, keys in per_master.items()
            if any(key.endswith(one) or f":{one}:" in key for key in keys)
        ]
        assert len(holders) == 1, f"session {one} is on {holders}"
        mine = [key for key in per_master[holders[0]] if key.endswith(one) or f":{one}:" in key]
        assert any(KEY_PREFIX in key for key in mine) and any(PART_PREFIX in key for key in mine)
        assert len({cluster_slot(key) for key in mine}) == 1, mine


def test_a_fire_is_one_request(cluster, cl, uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache=cl))
    manager.update_configuration(CONFIG)
    manager.fire("hit", {"n": 0})  # the process knows the session from here on
    fires = 20
    with Requests(cluster.masters()) as requests:
        for n in range(1, fires + 1):
            manager.fire("hit", {"n": n})
    assert requests.seen == {"evalsha": fires}, requests.seen
    stored = CacheStorageBackend(uid, cache=cl)
    assert len(stored.instances_of_task("t_hit")) == fires + 1


def test_names_with_braces_colons_and_escapes(cluster, cl):
    for uid in ["{a}", "x:{y}:z", "}{", "\\{0}", "{}", "é{ü}"]:
        manager = TriggerManager(CacheStorageBackend(uid, cache=cl))
        manager.update_configuration(CONFIG)
        manager.fire("hit", {"uid": uid})
        stored = CacheStorageBackend(uid, cache=cl)
        assert [i.kwargs for i in stored] == [{"hit": {"uid": uid}}]
    with pytest.raises(InvalidSessionUid, match="whitespace"):
        CacheStorageBackend("a {b}", cache=cl)


def test_a_killed_holders_lock_expires(cluster, cl, uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache=cl))
    manager.update_configuration(CONFIG)
    caches[cl].close()
    pid = os.fork()
    if pid == 0:  # the holder: takes the lock for 2 seconds and dies holding it
        try:
            with CacheStorageBackend(uid, cache=cl).acquire_lock(ttl=2):
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

    def locks() -> list[str]:
        return [k for node in cluster.masters() for k in keys_of(node) if k.endswith(f"{uid}:lock")]

    assert len(locks()) == 1, "the killed holder's lock is there"
    wait_until(lambda: not locks(), "the killed holder's lock expiring")
    manager.fire("hit", {"after": "expiry"})
    stored = CacheStorageBackend(uid, cache=cl)
    assert [i.kwargs for i in stored] == [{"hit": {"after": "expiry"}}]


def test_a_run_from_a_handed_record_is_checked_on_the_cluster(cluster, cl, uid, test_runners):
    """The commit's check of a record taken on trust runs in the same script,
    on the session's one node: kept when the record is as handed, refused (and
    the change kept) when it changed since."""
    from tests.test_state_handoff import _fired_two, _statuses
    from triggers.storages.cache.committed import committed_heads
    from triggers.tasks.execution import run_task

    _, payloads, tokens = _fired_two(uid, cl)
    other = TriggerManager(CacheStorageBackend(uid, cache=cl))
    other.update_instance_metadata("t_b#0", {"note": "kept"})
    committed_heads.clear()
    assert run_task(payloads["t_a#0"], handoff=tokens["t_a#0"]) == {"from": "t_a"}
    with Requests(cluster.masters()) as requests:
        assert run_task(payloads["t_b#0"], handoff=tokens["t_b#0"]) == {"from": "t_b"}
    assert requests.seen == {"evalsha": 3}, requests.seen  # refused on the record, then two
    assert _statuses(uid, cl) == {"t_a#0": "finished", "t_b#0": "finished"}
    assert CacheStorageBackend(uid, cache=cl).instances["t_b#0"].metadata["note"] == "kept"

    _, payloads, tokens = _fired_two(uid + "-2", cl)
    committed_heads.clear()
    assert run_task(payloads["t_a#0"], handoff=tokens["t_a#0"]) == {"from": "t_a"}
    with Requests(cluster.masters()) as requests:
        assert run_task(payloads["t_b#0"], handoff=tokens["t_b#0"]) == {"from": "t_b"}
    assert requests.seen == {"evalsha": 2}, requests.seen


def test_paged_sessions_keep_their_pages_on_their_node(cluster, cl, uid):
    """The paged layout on the cluster: a fire is still one request (the pages
    are merged into by the script that commits, on the session's node), and
    every page shares the session's slot."""
    for one in [uid, f"{uid}:{{p}}", f"{uid}\\x1b"]:
        manager = TriggerManager(CacheStorageBackend(one, cache=cl, layout="paged"))
        manager.update_configuration(CONFIG)
        manager.fire("hit", {"n": 0})
        with Requests(cluster.masters()) as requests:
            for n in range(1, 41):
                manager.fire("hit", {"n": n})
        assert requests.seen == {"evalsha": 40}, requests.seen
        stored = CacheStorageBackend(one, cache=cl, layout="paged")
        assert sorted(i.kwargs["hit"]["n"] for i in stored) == list(range(41))
        mine = [
            key
            for node in cluster.masters()
            for key in keys_of(node)
            if key.endswith(one) or f":{one}:" in key
        ]
        assert any(":p:" in key for key in mine) and not any(":i:" in key for key in mine)
        assert len({cluster_slot(key) for key in mine}) == 1, mine
