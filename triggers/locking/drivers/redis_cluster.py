"""Running the Redis lock driver's scripts on a Redis Cluster, and waiting for replicas.

On a cluster, a script goes to the master owning its keys' slot, and all
its keys must share that slot (a session's keys do: see
:mod:`triggers.storages.cache.keys`). redis-py's ``RedisCluster`` routes
``EVALSHA`` by its keys itself; this module adds what it does not do:

* ``SCRIPT LOAD`` on the master that answered ``NOSCRIPT`` (a replica
  promoted by a failover has none of the scripts its old master had);
* ``TRIGGERS_REDIS_WAIT_REPLICAS``: after a script that wrote, ``WAIT``
  for that many replicas to hold the write. ``WAIT`` counts the writes of
  the connection it is sent on, so the script and the ``WAIT`` go in one
  pipeline on one connection (on a cluster, to the slot's master itself;
  a ``MOVED`` answer refreshes the cluster's map and tries again, up to
  5 times).
  Too few replicas: :class:`ReplicasBehind`, which the driver counts as a
  failure of the cache (``BackendUnavailable`` with ``outcome_unknown``: the
  write is on the master, and may or may not survive it).

Works with redis-py and with valkey-py (its fork): each call looks at the
client it is given.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ...conf import get_setting
from . import redis_scripts as scripts

__all__ = [
    "CLUSTER_FAILURES",
    "CLUSTER_TRANSIENT",
    "WAIT_SECONDS",
    "ReplicasBehind",
    "is_cluster",
    "read_from_master",
    "replicas_to_wait_for",
    "run_script",
]

#: the longest a write waits for its replicas (seconds): as long as a lock
#: retries a failing cache before giving up, so a fire never waits longer
#: on a replica than it would on the cache itself
WAIT_SECONDS = 2.0


#: how often a waited write on a cluster follows a moved slot before giving up,
#: and the pause before asking the cluster for its map after a lost connection
MAP_REFRESHES = 5
REFRESH_PAUSE = 0.25


#: a node's answers saying it ran nothing, the client's map being stale;
#: and the errors after which a command may or may not have run
_NOT_RUN = ("MovedError", "ClusterDownError", "TryAgainError")
_CONNECTION_LOST = ("ConnectionError", "TimeoutError")


class ReplicasBehind(Exception):
    """Fewer replicas than ``TRIGGERS_REDIS_WAIT_REPLICAS`` acknowledged a write in time."""

    def __init__(self, wanted: int, acknowledged: int, seconds: float) -> None:
        super().__init__(
            f"{acknowledged} of the {wanted} replicas TRIGGERS_REDIS_WAIT_REPLICAS asks for"
            f" acknowledged the write within {seconds:g}s"
        )
        self.wanted = wanted
        self.acknowledged = acknowledged


def _client_errors(module: str, names: Sequence[str]) -> tuple[type[BaseException], ...]:
    """The error classes ``names`` of a client's exceptions module, if it is installed."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        return ()
    return tuple(getattr(found, name) for name in names if hasattr(found, name))


#: what a cluster (or a failover) answers while a slot has no reachable
#: master: worth trying again a moment later; valkey-py's errors too
CLUSTER_TRANSIENT: tuple[type[BaseException], ...] = (
    *_client_errors(
        "redis.exceptions", ["TryAgainError", "MasterDownError", "SlotNotCoveredError"]
    ),
    *_client_errors(
        "valkey.exceptions",
        ["ConnectionError", "TimeoutError", "BusyLoadingError", "TryAgainError", "MasterDownError"],
    ),
)
#: the failures of a cache that are no bug of the caller's
CLUSTER_FAILURES: tuple[type[BaseException], ...] = (
    ReplicasBehind,
    *CLUSTER_TRANSIENT,
    *_client_errors("redis.exceptions", ["RedisClusterException"]),
    *_client_errors(
        "valkey.exceptions",
        ["ReadOnlyError", "OutOfMemoryError", "ClusterDownError", "ValkeyClusterException"],
    ),
)


def replicas_to_wait_for() -> int:
    """``TRIGGERS_REDIS_WAIT_REPLICAS``, checked: a whole number, 0 or more."""
    value = get_setting("TRIGGERS_REDIS_WAIT_REPLICAS")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured(
            f"TRIGGERS_REDIS_WAIT_REPLICAS must be a whole number of replicas, 0 or more,"
            f" not {value!r}"
        )
    return value


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a cluster client (redis-py's or valkey-py's)."""
    return hasattr(client, "nodes_manager") and hasattr(client, "get_node_from_key")


def read_from_master(client: Any, keys: Sequence[Any]) -> list[Any]:
    """The raw values of ``keys`` (None where missing), read from the master
    (on a cluster, each key from its slot's master: one MGET per slot)."""
    if not keys:
        return []
    if is_cluster(client):
        return list(client.mget_nonatomic(list(keys)))
    return list(client.mget(list(keys)))


def _is(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is of a class called ``name`` (redis-py's or valkey-py's)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _node_client(cluster: Any, key: Any) -> Any:
    """The plain client of the master owning ``key``'s slot (redis-py or valkey-py)."""
    node = cluster.get_node_from_key(key)
    connect = getattr(cluster, "get_redis_connection", None) or cluster.get_valkey_connection
    return connect(node)


def _load_and_run(client: Any, source: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    digest = scripts.digest(source)
    try:
        return client.evalsha(digest, len(keys), *keys, *args)
    except Exception as exc:
        if not _is(exc, "NoScriptError"):
            raise
    if is_cluster(client):
        # Loaded on the master of the keys' slot: the one that said NOSCRIPT.
        _node_client(client, keys[0]).script_load(source)
    else:
        client.script_load(source)
    return client.evalsha(digest, len(keys), *keys, *args)


def _script_then_wait(
    server: Any, source: str, keys: Sequence[Any], args: Sequence[Any], replicas: int
) -> tuple[Any, int]:
    """The script and ``WAIT`` in one pipeline (one connection) on one server."""
    digest = scripts.digest(source)
    for attempt in range(2):
        pipe = server.pipeline(transaction=False)
        pipe.evalsha(digest, len(keys), *keys, *args)
        pipe.execute_command("WAIT", replicas, int(WAIT_SECONDS * 1000))
        result, acknowledged = pipe.execute(raise_on_error=False)
        if isinstance(result, Exception) and _is(result, "NoScriptError") and attempt == 0:
            server.script_load(source)
            continue
        if isinstance(result, Exception):
            raise result
        return result, int(acknowledged)
    raise AssertionError("unreachable")  # pragma: no cover


def _waited(
    client: Any, source: str, keys: Sequence[Any], args: Sequence[Any], replicas: int
) -> tuple[Any, int]:
    if not is_cluster(client):
        return _script_then_wait(client, source, keys, args, replicas)
    for attempt in range(MAP_REFRESHES + 1):
        try:
            return _script_then_wait(_node_client(client, keys[0]), source, keys, args, replicas)
        except Exception as exc:
            # The map may be stale (a failover moved the slot): ask for it again.
            # Only an answer saying the script did not run (MOVED, CLUSTERDOWN)
            # is tried again; after a lost connection it may have run, so the
            # error goes on (the next call uses the new map).
            if not any(_is(exc, name) for name in (*_NOT_RUN, *_CONNECTION_LOST)):
                raise
            with contextlib.suppress(Exception):
                time.sleep(REFRESH_PAUSE * attempt)
                client.nodes_manager.initialize()
            if attempt == MAP_REFRESHES or not any(_is(exc, name) for name in _NOT_RUN):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def run_script(
    client: Any,
    source: str,
    keys: Sequence[Any],
    args: Sequence[Any],
    wrote: Any = None,
) -> Any:
    """Run a script by its digest on ``client`` (plain or cluster).

    ``wrote``: for a script that may write, a function telling from its
    result whether it did; then ``TRIGGERS_REDIS_WAIT_REPLICAS`` replicas
    must acknowledge it, or :class:`ReplicasBehind` is raised.
    """
    replicas = replicas_to_wait_for() if wrote is not None else 0
    if not replicas:
        return _load_and_run(client, source, keys, args)
    result, acknowledged = _waited(client, source, keys, args, replicas)
    if acknowledged < replicas and wrote(result):
        raise ReplicasBehind(replicas, acknowledged, WAIT_SECONDS)
    return result
