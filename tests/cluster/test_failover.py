"""Failovers while several processes fire into one session.

A Redis Cluster master killed (``kill -9``) or failed over by hand
(``CLUSTER FAILOVER`` on its replica), Sentinel's own failover
(``SENTINEL FAILOVER``) and a Sentinel-watched master killed, each with ``TRIGGERS_REDIS_WAIT_REPLICAS`` at 0
and at 1. Every fire either returns or raises ``BackendUnavailable``; the
clients go on firing on the new topology without a restart; the session
reads whole afterwards. With the wait setting no acknowledged fire is
lost; without it, the figures are printed (and appended to the file
``TRIGGERS_TEST_FAILOVER_RESULTS`` names): Redis replicates
asynchronously, and what it loses depends on timing.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.cluster.conftest import cluster_cache, sentinel_cache
from tests.cluster.failover import Firing, report
from tests.cluster.servers import Node, replica_online, wait_until
from triggers.storages.cache.keys import KEY_PREFIX, cluster_slot

#: fires the clients must get acknowledged before the failover, and after it
BEFORE, AFTER = 150, 60
#: the caches' default timeout, and so the ttl of a session's lock: a lock
#: whose release the failover dropped (it reached the old master only) is
#: left on the new master until it expires (sessions live longer: see fire_through)
LOCK_TTL = 10
SESSION_TIMEOUT = 600

pytestmark = pytest.mark.parametrize("wait", [0, 1], ids=["no-wait", "wait-1"])


def role(node: Node) -> str:
    with node.admin() as client:
        found = client.execute_command("ROLE")[0]
    return found.decode() if isinstance(found, bytes) else found


def check(name, outcome, wait, folder):
    report(f"{name} wait={wait}", outcome, folder)
    assert outcome.errors == [], outcome.errors[:5]
    assert outcome.acknowledged_after >= AFTER, "the clients did not go on after the failover"
    assert outcome.stored <= outcome.acknowledged | outcome.unavailable
    if wait:
        assert outcome.lost == set(), f"acknowledged fires lost: {sorted(outcome.lost)[:20]}"


def session_master(cluster, alias, uid):
    made_head = str(caches[alias].make_key(KEY_PREFIX + uid))
    return cluster.master_of_slot(cluster_slot(made_head))


def cluster_session(cluster, on_caches, uid):
    """Cache ``cl`` on the healthy cluster: the master of session ``uid``, and its replica."""
    cluster.wait_healthy()
    on_caches(cl={**cluster_cache(cluster), "TIMEOUT": LOCK_TTL})
    master = session_master(cluster, "cl", uid)
    return master, cluster.replica_of(master)


def sentinel_session(sentinel, on_caches):
    """Cache ``sc`` on the Sentinel setup: the master's port, and the master, once its
    replica is online."""
    on_caches(sc={**sentinel_cache(sentinel), "TIMEOUT": LOCK_TTL})
    before = sentinel.master_port()
    master = next(n for n in (sentinel.master, sentinel.replica) if n.port == before)
    wait_until(lambda: replica_online(master), "the master's replica online")
    return before, master


@pytest.fixture
def fire_through(tmp_path):
    """``fire_through(scenario, alias, uid, wait, disrupt, before)``: clients fire into
    session ``uid`` of cache ``alias`` (``wait`` replicas); once ``BEFORE`` fires are
    acknowledged (``before`` says which), ``disrupt()`` fails the master over; then
    ``AFTER`` more, and the outcome is checked and reported as ``scenario``. No client
    is left behind, whatever happened."""
    made = []

    def run(scenario, alias, uid, wait, disrupt, before="fires before the failover"):
        with override_settings(
            TRIGGERS_REDIS_WAIT_REPLICAS=wait, TRIGGERS_SESSION_TIMEOUT=SESSION_TIMEOUT
        ):
            made.append(Firing(alias, uid, tmp_path).start())
            fire = made[-1]
            fire.wait_for_more(BEFORE, before)
            disrupt()
            healed = fire.acknowledged()
            fire.wait_for_more(AFTER, "fires after the failover")
            fire.stop()
            check(scenario, fire.outcome(healed), wait, tmp_path)

    yield run
    for one in made:
        one.kill()


def test_cluster_master_killed(cluster, on_caches, fire_through, uid, wait):
    master, replica = cluster_session(cluster, on_caches, uid)

    def kill():
        master.kill()
        wait_until(lambda: role(replica) == "master", "the replica taking over")
        cluster.wait_healthy(replicas=False)
        master.restart()  # it comes back as the new master's replica
        cluster.wait_healthy()

    fire_through("cluster kill -9", "cl", uid, wait, kill, "fires before the kill")


def test_cluster_failover_by_hand(cluster, on_caches, fire_through, uid, wait):
    master, replica = cluster_session(cluster, on_caches, uid)

    def failover():
        with replica.admin() as client:
            client.execute_command("CLUSTER FAILOVER")
        wait_until(lambda: role(replica) == "master" and role(master) == "slave", "the failover")
        cluster.wait_healthy()

    fire_through("cluster CLUSTER FAILOVER", "cl", uid, wait, failover)


def test_sentinel_failover(sentinel, on_caches, fire_through, uid, wait):
    before, old = sentinel_session(sentinel, on_caches)

    def failover():
        with sentinel.sentinels[0].admin() as client:
            client.execute_command("SENTINEL", "FAILOVER", sentinel.NAME)
        wait_until(lambda: sentinel.master_port() != before, "Sentinel naming a new master")
        wait_until(lambda: role(old) == "slave", "the old master demoted")

    fire_through("Sentinel SENTINEL FAILOVER", "sc", uid, wait, failover)


def test_sentinel_master_killed(sentinel, on_caches, fire_through, uid, wait):
    before, old = sentinel_session(sentinel, on_caches)

    def kill():
        old.kill()
        wait_until(lambda: sentinel.master_port() != before, "Sentinel naming a new master")
        old.restart()  # Sentinel makes it a replica of the new master
        new = next(n for n in (sentinel.master, sentinel.replica) if n is not old)
        wait_until(lambda: role(old) == "slave" and replica_online(new), "the old master rejoining")

    fire_through("Sentinel master kill -9", "sc", uid, wait, kill, "fires before the kill")
