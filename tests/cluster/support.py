"""What the cluster tests count on the servers: keys per node, commands per node."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Iterable

from tests.cluster.servers import Node
from triggers import CacheStorageBackend
from triggers.testing import StorageBackendTests

#: what servers send each other (Sentinel's checks, replicas' acknowledgements)
#: and connection handshakes: never a request of a fire
SERVERS_TALK = frozenset(
    {"PING", "INFO", "PUBLISH", "SUBSCRIBE", "REPLCONF", "ROLE", "CLIENT", "HELLO"}
)


class Requests:
    """The requests clients send to ``nodes`` while the ``with`` block runs, by
    command name (MONITOR, one thread per node; commands a script runs are not
    requests, nor are the tests' own)."""

    MARK = "triggers-test-end-of-count"

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes = list(nodes)
        self.seen: Counter[str] = Counter()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def __enter__(self) -> Requests:
        for node in self.nodes:
            ready = threading.Event()
            thread = threading.Thread(target=self._watch, args=(node, ready), daemon=True)
            thread.start()
            assert ready.wait(10), f"MONITOR on {node.address} did not start"
            self.threads.append(thread)
        return self

    def _watch(self, node: Node, ready: threading.Event) -> None:
        with node.admin() as client, client.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if self.MARK in command["command"]:
                    return
                name = command["command"].split(" ", 1)[0].upper()
                if command.get("client_type") == "lua" or name in SERVERS_TALK:
                    continue
                with self.lock:
                    self.seen[command["command"].split()[0].lower()] += 1

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            with node.admin() as client:
                client.echo(self.MARK)
        for thread in self.threads:
            thread.join(10)


def keys_of(node: Node) -> list[str]:
    """Every key ``node`` holds itself."""
    with node.admin() as client:
        return [key.decode() for key in client.scan_iter(count=1000)]


class KitOnAlias(StorageBackendTests):
    """Every check of the storage kit on the cache ``self.alias`` (a subclass's
    autouse fixture sets it); the processes fire 4 x 100 into one session."""

    alias: str
    locks_across_processes = True
    kit_processes = 4
    kit_fires_per_process = 100
    kit_process_timeout = 240.0

    def make_storage(self, uid):
        return CacheStorageBackend(uid, cache=self.alias)

    def storage_factory(self):
        return functools.partial(CacheStorageBackend, cache=self.alias)
