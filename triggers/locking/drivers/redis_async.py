"""The Redis lock driver's asyncio twin: the very same scripts, sent with ``redis.asyncio``.

What a call sends and how its answer reads are the sync driver's
(:class:`~triggers.locking.drivers.redis.RedisLockDriver`, its ``*_call``
methods and answer readers); only the sending differs. The client is built
from the connection settings of the cache's own client (host, port, db,
password, TLS, socket timeouts: whatever ``LOCATION`` and ``OPTIONS`` made
of them), one per event loop and per set of settings, kept for the process
(Django makes a cache object per request under ASGI: the connections outlive them).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from ...errors import NotSupported
from ...process_state import register_state
from ..pages import PagedRead, damaged_page_refusal
from ..writes import CommitGuard, CommitResult, Writes
from . import redis_scripts as scripts

__all__ = [
    "AsyncRedisClients",
    "AsyncRedisDriver",
    "ConnectionSettings",
    "ScriptCall",
    "async_clients",
    "connection_settings",
]

#: one script call: its source, its keys (made) and its arguments (encoded)
ScriptCall: TypeAlias = "tuple[str, list[Any], list[Any]]"


class ScriptDriver(Protocol):
    """What the sync driver gives its twin: how each call is made and read."""

    def made_key(self, key: str) -> str: ...
    def decode(self, raw: Any) -> Any: ...
    def acquire_call(
        self, key: str, token: str, ttl: float | None, read: Sequence[str]
    ) -> ScriptCall: ...
    def taken_and_read(self, result: Any, read: Sequence[str]) -> tuple[bool, dict[str, Any]]: ...
    def release_call(self, key: str, token: str) -> ScriptCall: ...
    def write_call(
        self, key: str, token: str, writes: Writes, release: bool = True
    ) -> ScriptCall: ...
    def commit_call(self, guard: CommitGuard, writes: Writes) -> ScriptCall: ...
    def commit_result(self, guard: CommitGuard, call: ScriptCall, result: Any) -> CommitResult: ...


#: connection settings of the sync client that an asyncio connection cannot
#: take as they are (objects of the sync client's own kind, or its internals)
_NOT_CARRIED = frozenset(
    {
        "retry",
        "redis_connect_func",
        "event_dispatcher",
        "parser_class",
        "command_packer",
        "himport_registry",
        "maint_notifications_config",
        "maint_notifications_pool_handler",
        "maintenance_state",
        "maintenance_notification_hash",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
        "oss_cluster_maint_notifications_handler",
    }
)


#: connections per loop when the sync pool sets no limit
DEFAULT_CONNECTIONS = 100


@functools.cache
def _accepted(cls: type) -> frozenset[str]:
    """The keyword arguments ``cls()`` takes, along its whole MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    return frozenset(names - {"self", "args", "kwargs"})


@dataclass(frozen=True)
class ConnectionSettings:
    """How an asyncio client reaches the server a sync client reaches."""

    connection_class: type
    kwargs: dict[str, Any]
    max_connections: int | None
    #: what tells these settings apart from others (the kwargs as text)
    key: Hashable


def connection_settings(sync_client: Any) -> ConnectionSettings:
    """The asyncio connection class, its arguments and the pool size that
    reach the server ``sync_client`` reaches, as it reaches it.

    NotSupported for a client that is not one plain connection pool (Sentinel, Cluster).
    """
    from redis.asyncio import connection as aio

    pool = getattr(sync_client, "connection_pool", None)
    kind = getattr(pool, "connection_class", None)
    twins = {
        "Connection": aio.Connection,
        "SSLConnection": aio.SSLConnection,
        "UnixDomainSocketConnection": aio.UnixDomainSocketConnection,
    }
    twin = twins.get(getattr(kind, "__name__", ""))
    if pool is None or twin is None or kind.__module__ != "redis.connection":
        raise NotSupported(f"no asyncio twin for the Redis client {sync_client!r}")
    accepted = _accepted(twin)
    kwargs = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name in accepted and name not in _NOT_CARRIED
    }
    size = getattr(pool, "max_connections", None)
    key = (twin, repr(sorted(kwargs.items(), key=lambda item: item[0])), size)
    return ConnectionSettings(twin, kwargs, size, key)


class AsyncRedisClients:
    """The asyncio clients of this process: one per event loop and connection settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Any]]
        self._clients = weakref.WeakKeyDictionary()

    def for_settings(self, settings: ConnectionSettings) -> Any:
        """The running loop's asyncio client for ``settings``."""
        from redis.asyncio import BlockingConnectionPool, Redis

        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._clients.setdefault(loop, {})
            client = clients.get(settings.key)
            if client is None:
                # As many connections as the sync pool may open; past that a
                # coroutine waits for one to come free (the sync pool would raise).
                pool = BlockingConnectionPool(
                    connection_class=settings.connection_class,
                    max_connections=settings.max_connections or DEFAULT_CONNECTIONS,
                    **settings.kwargs,
                )
                client = clients[settings.key] = Redis(connection_pool=pool)
            return client

    def clear(self) -> None:
        """Forget every client (their connections close as they are collected)."""
        with self._lock:
            self._clients = weakref.WeakKeyDictionary()


async_clients = register_state(
    "async redis clients",
    AsyncRedisClients(),
    settings=("CACHES",),
    about="the asyncio Redis clients made per event loop",
)


class AsyncRedisDriver:
    """The asyncio side of one Redis lock driver: same keys, codec and scripts."""

    def __init__(self, driver: ScriptDriver, sync_client: Callable[[], Any]) -> None:
        self.driver = driver
        #: NotSupported now rather than on first use
        self.settings = connection_settings(sync_client())

    def client(self) -> Any:
        """The running loop's client."""
        return async_clients.for_settings(self.settings)

    async def run(self, call: ScriptCall) -> Any:
        """Run a script by its digest, loading it first where the server lacks it."""
        from redis.exceptions import NoScriptError

        source, keys, args = call
        client = self.client()
        digest = scripts.digest(source)
        try:
            try:
                return await client.evalsha(digest, len(keys), *keys, *args)
            except NoScriptError:
                await client.script_load(source)
                return await client.evalsha(digest, len(keys), *keys, *args)
        except Exception as exc:
            refusal = damaged_page_refusal(exc)
            if refusal is None:
                raise
            raise refusal from exc

    async def read_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The values of ``keys`` that are stored, decoded (one MGET)."""
        if PagedRead.needed(keys):
            plan = PagedRead(keys)
            raw = await self.client().mget([self.driver.made_key(key) for key in plan.server_keys])
            return plan.found(raw, self.driver.decode)
        made = [self.driver.made_key(key) for key in keys]
        raw = await self.client().mget(made)
        return {
            key: self.driver.decode(value) for key, value in zip(keys, raw) if value is not None
        }

    async def try_acquire_and_read(
        self, key: str, token: str, ttl: float | None, read: Sequence[str]
    ) -> tuple[bool, dict[str, Any]]:
        answer = await self.run(self.driver.acquire_call(key, token, ttl, read))
        return self.driver.taken_and_read(answer, read)

    async def release(self, key: str, token: str) -> bool:
        return bool(await self.run(self.driver.release_call(key, token)))

    async def write_and_release(self, key: str, token: str, writes: Writes) -> bool:
        return bool(await self.run(self.driver.write_call(key, token, writes)))

    async def commit_if_unchanged(self, guard: CommitGuard, writes: Writes) -> CommitResult:
        call = self.driver.commit_call(guard, writes)
        return self.driver.commit_result(guard, call, await self.run(call))
