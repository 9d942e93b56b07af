"""What one fire costs on Memcached, in requests to the server (round trips).

    python benchmarks/memcached_round_trips.py [--fires 50] [--location 127.0.0.1:11211]
        [--delay-ms 0]

Counts every request sent to the server (each write of the socket: one
request and its answers, so several commands pipelined into one write count
once; each is listed by the commands it carries), for ordinary fires into one
session and for marking an instance finished, with the fenced Memcached
driver and with the add-based driver Memcached used before it, and the
milliseconds each takes. ``--delay-ms`` puts a proxy in another process
between the client and the server that holds every chunk of bytes for half
that long each way, as a network with that round trip would. Prints one
JSON line per driver.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import threading
import time
import uuid
from collections import Counter
from typing import Any

import django
from django.conf import settings

COUNTS: Counter[str] = Counter()


#: commands whose line is followed by a data block
STORE_COMMANDS = {b"set", b"add", b"replace", b"append", b"prepend", b"cas"}


def commands_in(request: bytes) -> list[str]:
    """The commands one request carries, in order (several when pipelined)."""
    found = []
    while request:
        line, _, request = request.partition(b"\r\n")
        words = line.split()
        if not words:
            continue
        found.append(words[0].decode())
        if words[0] in STORE_COMMANDS and len(words) >= 5:
            request = request[int(words[4]) + 2 :]  # the data block and its line end
    return found


def count_requests() -> None:
    """Count each request sent to a server (one write of the socket, one
    round trip), by the commands it carries: pipelined commands count once."""
    import socket

    original = socket.socket.sendall

    def sendall(self: Any, data: Any, *args: Any) -> Any:
        COUNTS["+".join(commands_in(bytes(data)))] += 1
        return original(self, data, *args)

    socket.socket.sendall = sendall  # type: ignore[method-assign]


def _pump(source: socket.socket, target: socket.socket, hold: float) -> None:
    while data := source.recv(65536):
        time.sleep(hold)
        target.sendall(data)
    target.close()


def _proxy(listener: socket.socket, upstream: tuple[str, int], hold: float) -> None:
    """Forward each connection to ``upstream``, each chunk held ``hold`` seconds."""
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(upstream)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for source, target in ((client, server), (server, client)):
            threading.Thread(target=_pump, args=(source, target, hold), daemon=True).start()


def delayed(location: str, delay_ms: float) -> str:
    """A location whose round trips take ``delay_ms`` more (a proxy process)."""
    host, port = location.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = multiprocessing.get_context("fork").Process(
        target=_proxy, args=(listener, (host, int(port)), delay_ms / 2000), daemon=True
    )
    proxy.start()
    return f"127.0.0.1:{listener.getsockname()[1]}"


def configure(location: str) -> None:
    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": location,
            }
        },
        INSTALLED_APPS=["triggers"],
        TRIGGERS_DEFAULT_RUNNER="bench-nothing",
    )
    django.setup()


def measure(driver_name: str, fires: int) -> dict[str, Any]:
    from django.core.cache import caches
    from django.core.cache.backends.memcached import PyMemcacheCache

    from triggers import CacheStorageBackend, TriggerManager
    from triggers.locking import register_lock_driver, unregister_lock_driver
    from triggers.locking.drivers.add import AddLockDriver

    if driver_name == "add (before)":
        register_lock_driver(PyMemcacheCache, AddLockDriver)
    else:
        unregister_lock_driver(PyMemcacheCache)
    uid = f"bench-{uuid.uuid4().hex}"
    manager = TriggerManager(CacheStorageBackend(uid, cache=caches["default"], timeout=600))
    manager.update_configuration({"t": {"after": [], "andEvery": "tick", "run": "noop"}})
    manager.fire("tick", {"n": -1})  # warm: the session and its task table exist
    COUNTS.clear()
    started = time.perf_counter()
    for n in range(fires):
        manager.fire("tick", {"n": n})
    fire_ms = (time.perf_counter() - started) * 1000 / fires
    per_fire = {command: round(count / fires, 2) for command, count in sorted(COUNTS.items())}
    fire_total = sum(COUNTS.values()) / fires
    COUNTS.clear()
    started = time.perf_counter()
    for n in range(fires):
        manager.update_instance_status(f"t#{n}", "finished")
    finish_ms = (time.perf_counter() - started) * 1000 / fires
    finish_total = sum(COUNTS.values()) / fires
    return {
        "driver": driver_name,
        "round_trips_per_fire": round(fire_total, 2),
        "by_command": per_fire,
        "round_trips_per_status_change": round(finish_total, 2),
        "ms_per_fire": round(fire_ms, 3),
        "ms_per_status_change": round(finish_ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=50)
    parser.add_argument("--location", default="127.0.0.1:11211")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added to each round trip")
    args = parser.parse_args()
    configure(delayed(args.location, args.delay_ms) if args.delay_ms else args.location)
    from triggers.tasks.runners import BaseTaskRunner, task_runners

    class Nothing(BaseTaskRunner):
        name = "bench-nothing"

        def run(self, manager: Any, task_instance: Any) -> None:
            """Runs nothing: only the manager and the storage are measured."""

    task_runners.register(Nothing.name, Nothing)
    count_requests()
    for driver_name in ("add (before)", "fenced (now)"):
        print(json.dumps(measure(driver_name, args.fires)))


if __name__ == "__main__":
    main()
