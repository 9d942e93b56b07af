"""Real Redis Cluster and Sentinel setups on loopback ports of the suite's own.

:class:`Cluster`: six ``redis-server --cluster-enabled yes`` processes made
into three masters with a replica each by ``redis-cli --cluster create``.
:class:`SentinelSetup`: one master, one replica and three
``redis-server --sentinel`` processes watching them. Every process runs in
a temporary directory of its test, saves nothing by itself, and is killed
by :meth:`stop` (the fixtures call it whatever the test did). Every wait
polls with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.redis_processes import log_tail, poll_until, popen_logged, wait_answering

__all__ = ["DEADLINE", "Cluster", "Node", "SentinelSetup", "base_port", "wait_until"]

#: how long servers may take to start, to agree on a topology or to fail over (seconds)
DEADLINE = 60.0
#: how often a wait polls (seconds)
EVERY = 0.05
#: a cluster node (or Sentinel) holds a master for failed after this (milliseconds)
NODE_TIMEOUT_MS = 1500


def base_port(offset: int) -> int:
    """A loopback port of the suite: ``TRIGGERS_TEST_CLUSTER_PORT`` (default 7000) + offset."""
    return int(os.environ.get("TRIGGERS_TEST_CLUSTER_PORT", "7000")) + offset


def wait_until(check: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``check()`` until it returns something true; fail the test after ``deadline``."""
    return poll_until(check, what, deadline, EVERY)


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


class Node:
    """One ``redis-server`` process on ``port``, its files in ``directory``."""

    def __init__(self, directory: Path, port: int, *extra: str) -> None:
        self.directory = directory
        self.port = port
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.arguments: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self) -> redis.Redis:
        """A plain client of this one server, without retries."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=5,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )

    def restart(self) -> Node:
        """Start again, as last started (a cluster node rejoins with its config file)."""
        return self.start(*self.arguments)

    def start(self, *arguments: str) -> Node:
        """Start the server and wait for PING."""
        self.arguments = arguments
        command = [
            _binary("redis-server"),
            *arguments,
            *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            *self.extra,
        ]
        log = self.directory / f"{self.port}.log"
        self.process = popen_logged(command, log)
        server = f"redis-server on {self.address}"
        wait_answering(self.process, log, self.admin, server, DEADLINE, EVERY)
        return self

    def log(self) -> str:
        return log_tail(self.directory / f"{self.port}.log")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """``kill -9``: the server dies at once, whatever it had not sent on."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(DEADLINE)

    def info(self, section: str) -> dict[str, Any]:
        with self.admin() as client:
            return dict(client.info(section))


class Cluster:
    """Three masters with a replica each, on ports ``first`` to ``first + 5``."""

    SIZE = 6

    def __init__(self, directory: Path, first: int) -> None:
        self.nodes = [Node(directory, first + i) for i in range(self.SIZE)]

    def start(self) -> Cluster:
        for node in self.nodes:
            conf = f"nodes-{node.port}.conf"
            node.start(
                *("--cluster-enabled", "yes", "--cluster-config-file", conf),
                *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                # a replica of a master dead for long still takes over
                *("--cluster-replica-validity-factor", "0"),
            )
        create = [
            _binary("redis-cli"),
            *("--cluster", "create", *(node.address for node in self.nodes)),
            *("--cluster-replicas", "1", "--cluster-yes"),
        ]
        done = subprocess.run(create, capture_output=True, text=True, timeout=DEADLINE)
        if done.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        self.wait_healthy()
        return self

    def wait_healthy(self, masters: int = 3, replicas: bool = True) -> None:
        """Wait until every live node says the cluster is ok, with ``masters`` masters
        each holding a share of the slots, and (``replicas``) each with a replica
        online, in sync."""

        def healthy() -> bool:
            for node in self.live():
                if node.info_cluster().get("cluster_state") != "ok":
                    return False
            found = self.masters()
            if len(found) != masters:
                return False
            return not replicas or all(replica_online(master) for master in found)

        wait_until(healthy, f"a healthy cluster of {masters} masters")

    def live(self) -> list[ClusterNode]:
        return [ClusterNode(node) for node in self.nodes if node.alive()]

    def masters(self) -> list[Node]:
        """The live nodes that are masters owning slots, as each says of itself."""
        found = []
        for node in self.live():
            with node.node.admin() as client:
                role = client.execute_command("ROLE")[0]
            if role in (b"master", "master") and node.slot_count() > 0:
                found.append(node.node)
        return found

    def replica_of(self, master: Node) -> Node:
        """The live replica of ``master``."""
        with master.admin() as client:
            me = client.execute_command("CLUSTER MYID")
        me = me.decode() if isinstance(me, bytes) else me
        for node in self.live():
            with node.node.admin() as client:
                role = client.execute_command("ROLE")
            if role[0] in (b"slave", "slave") and int(role[2]) == master.port:
                return node.node
        pytest.fail(f"master {master.address} ({me}) has no live replica")

    def master_of_slot(self, slot: int) -> Node:
        """The node serving ``slot``, as a live node's slot table says."""
        with self.live()[0].node.admin() as client:
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    port = int(master[1])
                    return next(node for node in self.nodes if node.port == port)
        pytest.fail(f"no node serves slot {slot}")

    def url(self) -> str:
        return f"redis://{self.nodes[0].address}/0"

    def flush(self) -> None:
        for node in self.masters():
            with node.admin() as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.kill()


def replica_online(master: Node) -> bool:
    """Whether ``master`` has a replica linked and online."""
    info = master.info("replication")
    first = info.get("slave0")
    return isinstance(first, dict) and first.get("state") == "online"


class ClusterNode:
    """A live cluster node, with the questions the cluster helpers ask it."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def info_cluster(self) -> dict[str, Any]:
        with self.node.admin() as client:
            return dict(client.cluster("info"))

    def slot_count(self) -> int:
        with self.node.admin() as client:
            raw = client.execute_command("CLUSTER MYID")
            me = raw.decode() if isinstance(raw, bytes) else raw
            count = 0
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                master_id = master[2].decode() if isinstance(master[2], bytes) else master[2]
                if master_id == me:
                    count += int(end) - int(start) + 1
            return count


class SentinelSetup:
    """A master, its replica, and three Sentinels watching them as ``NAME``."""

    NAME = "triggers"

    def __init__(self, directory: Path, first: int) -> None:
        self.directory = directory
        self.master = Node(directory, first)
        self.replica = Node(directory, first + 1)
        self.sentinels = [Node(directory, first + 2 + i) for i in range(3)]

    def start(self) -> SentinelSetup:
        self.master.start()
        self.replica.start("--replicaof", "127.0.0.1", str(self.master.port))
        wait_until(lambda: replica_online(self.master), "the replica linked to its master")
        for sentinel in self.sentinels:
            conf = self.directory / f"sentinel-{sentinel.port}.conf"
            conf.write_text(
                f"port {sentinel.port}\nbind 127.0.0.1\n"
                f"sentinel monitor {self.NAME} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.NAME} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {self.NAME} 10000\n"
                f"sentinel parallel-syncs {self.NAME} 1\n"
            )
            sentinel.start(str(conf), "--sentinel")
        wait_until(self._all_see_replica, "every Sentinel knowing the master and its replica")
        return self

    def _all_see_replica(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.admin() as client:
                replicas = client.execute_command("SENTINEL", "REPLICAS", self.NAME)
                if not replicas:
                    return False
                others = client.execute_command("SENTINEL", "SENTINELS", self.NAME)
                if len(others) < len(self.sentinels) - 1:
                    return False
        return True

    def master_port(self) -> int:
        """The master's port as the first live Sentinel names it."""
        for sentinel in self.sentinels:
            if sentinel.alive():
                with sentinel.admin() as client:
                    _host, port = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.NAME
                    )
                return int(port)
        pytest.fail("no Sentinel is alive")

    def url(self, db: int = 0) -> str:
        """A django-redis Sentinel LOCATION: the service name as host, and the db."""
        return f"redis://{self.NAME}/{db}"

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", sentinel.port) for sentinel in self.sentinels]

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.master]:
            with contextlib.suppress(Exception):
                node.kill()
