"""Private Redis servers for the fault suite: started, snapshotted, restarted,
replicated and promoted by a test, and always killed at its end.

Each :class:`RedisServer` is a ``redis-server`` process of the test's own on
a free loopback port, keeping its RDB file in a directory of the test's
own. It never saves by itself (``--save ''``): a snapshot holds exactly
what the test saved with :meth:`RedisServer.save`, so a test knows which
writes a restart loses. Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.redis_processes import log_tail, poll_until, popen_logged, wait_answering

__all__ = ["RedisServer", "redis_servers", "wait_until"]

#: how long a server may take to answer, to sync or to let its keys expire (seconds)
DEADLINE = 30.0
#: how often a wait polls (seconds)
EVERY = 0.02


def wait_until(
    check: Callable[[], Any], what: str, deadline: float = DEADLINE, every: float = EVERY
) -> Any:
    """Poll ``check()`` until it returns something true, and return that; fail
    the test with ``what`` (and the last error, if any) once ``deadline`` passed."""
    return poll_until(check, what, deadline, every)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def suite_db() -> int:
    """The database number the suite's cache objects use (``make_cache`` takes it
    from REDIS_URL), so that admin commands look at the same database."""
    path = urlparse(settings.REDIS_URL).path.strip("/")
    return int(path or 0)


class RedisServer:
    """One ``redis-server`` of a test's own, in ``directory``."""

    def __init__(self, directory: Path, name: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        self.name = name
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self, db: int | None = None) -> redis.Redis:
        """A plain client of this server for the test's own commands."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=suite_db() if db is None else db,
            socket_timeout=5,
            socket_connect_timeout=5,
            # no retries: a server that went away (SHUTDOWN) says so at once
            retry=Retry(NoBackoff(), 0),
        )

    # ------------------------------------------------------------ life
    def start(self) -> RedisServer:
        """Start (or start again, from the RDB file in its directory) and wait for PING."""
        assert self.process is None or self.process.poll() is not None, "already running"
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": str(self.directory),
            "dbfilename": f"{self.name}.rdb",
            "save": "",  # no snapshot but those the test asks for
            "appendonly": "no",
            "daemonize": "no",
            # a replica syncs at once, without waiting for others to sync with
            "repl-diskless-sync-delay": "0",
        }
        arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
        log = self.directory / f"{self.name}.log"
        self.process = popen_logged([self.binary, *arguments], log)
        server = f"redis-server {self.name} on {self.address}"
        wait_answering(self.process, log, self.admin, server, DEADLINE, EVERY)
        return self

    def log(self) -> str:
        return log_tail(self.directory / f"{self.name}.log")

    def save(self) -> None:
        """Write the RDB snapshot now (SAVE: it holds every write made before)."""
        with self.admin() as client:
            assert client.save()

    def shutdown_nosave(self) -> None:
        """SHUTDOWN NOSAVE NOW: the server stops at once (waiting for no replica),
        and whatever its snapshot lacks is lost."""
        with self.admin() as client, contextlib.suppress(redis.ConnectionError):
            client.shutdown(nosave=True, now=True)
        self._wait_exit()

    def restart_from_rdb(self) -> None:
        """SHUTDOWN NOSAVE, then start again on the same port from the last snapshot."""
        self.shutdown_nosave()
        self.start()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self._wait_exit()

    def _wait_exit(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(DEADLINE)

    # ------------------------------------------------------------ contents
    def dbsize(self) -> int:
        with self.admin() as client:
            return int(client.dbsize())

    def flushdb(self) -> None:
        with self.admin() as client:
            client.flushdb()

    def keys(self) -> list[bytes]:
        """Every key of the test database, found by SCAN."""
        with self.admin() as client:
            return sorted(client.scan_iter(count=1000))

    # ------------------------------------------------------------ replication
    def replicate(self, host: str, port: int) -> None:
        """Become a replica of ``host:port`` (REPLICAOF)."""
        with self.admin() as client:
            client.replicaof(host, port)

    def promote(self) -> None:
        """REPLICAOF NO ONE: a master from now on, with what it has."""
        with self.admin() as client:
            client.replicaof("NO", "ONE")

    def link_up(self) -> bool:
        """Whether this replica's link to its master is up."""
        with self.admin() as client:
            return client.info("replication").get("master_link_status") == "up"

    def wait_in_sync_with(self, master: RedisServer) -> None:
        """Wait until this replica's link is up and it holds all the master wrote."""

        def in_sync() -> bool:
            if not self.link_up():
                return False
            with self.admin() as mine, master.admin() as theirs:
                # WAIT: every write the master acknowledged has reached one replica.
                return int(theirs.execute_command("WAIT", 1, 1000)) >= 1 and (
                    mine.dbsize() == theirs.dbsize()
                )

        wait_until(in_sync, f"replica {self.name} in sync with {master.name}")


@contextlib.contextmanager
def redis_servers(directory: Path, *names: str) -> Iterator[list[RedisServer]]:
    """Servers named ``names``, started in ``directory``; each killed at the end, whatever happened."""
    servers: list[RedisServer] = []
    try:
        for name in names:
            server = RedisServer(directory, name)
            servers.append(server)
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()
