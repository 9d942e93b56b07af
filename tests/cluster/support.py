"""What the cluster tests count on the servers: keys per node, commands per node."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

from tests.cluster.servers import Node

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
