"""Memcached through pymemcache, without the silent misses of its HashClient.

Django's ``PyMemcacheCache`` talks through pymemcache's ``HashClient``,
which hides a failing server: after a call to a server failed, the calls of
the next second (``retry_timeout``) answer as if every key were missing
(``get`` gives the default, ``get_many`` nothing, ``add`` False) without
asking it; a server it marked dead is left out, and its keys go to another
server, or (a server alone) fail for a minute (``dead_timeout``) after it
is back; with ``ignore_exc`` every error is a miss. A session read then
would be empty, and a lock would look taken.

So the drivers talk to each key's own server directly, through the
per-server client the HashClient keeps: an unreachable server raises the
client's own error (the driver reports it as BackendUnavailable), and it is
asked again on the next call, so the cache is back as soon as the server is.
Values are encoded here, once, so that each is sized against the server's
item size limit before the first write of a save.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.core.cache import BaseCache

from ...cache_internals import memcached_servers
from ...errors import LockBackendError, UnserializableValue, ValueTooLarge
from ...forking import watch_forks
from ...process_state import register_state
from .base import UndecodableValue

try:
    from pymemcache.serde import PickleSerde
except ImportError:  # pymemcache is not installed: no cache here uses it

    class PickleSerde:  # type: ignore[no-redef]
        """Stands for pymemcache's serde where pymemcache is absent."""

__all__ = ["ENTRY_OVERHEAD", "MemcachedServers", "decoding", "memcached_servers_of"]

#: bytes an entry takes on the server beside its key and value (the item
#: header, CAS, flags and line ends), with room to spare
ENTRY_OVERHEAD = 96

#: each server's item size limit (``stats settings``: ``item_size_max``), by
#: name (``clear()``: each server is asked again)
_item_size_max: dict[str, int] = register_state(
    "memcached item sizes",
    {},
    settings=("CACHES",),
    about="each Memcached server's item size limit",
)

#: (the server's client, {key as the server sees it: the cache key})
Group = tuple[Any, dict[str, str]]


@contextlib.contextmanager
def decoding(keys: Iterable[str]) -> Iterator[None]:
    """Turn pymemcache's ValueError for a value it cannot decode (an integer
    item whose bytes are not a number) into UndecodableValue: the value is
    damaged, the server is fine."""
    try:
        yield
    except ValueError as exc:
        raise UndecodableValue(f"one of {sorted(keys)!r}: {exc}") from exc


def memcached_servers_of(cache: BaseCache) -> MemcachedServers | None:
    """The direct access for a PyMemcacheCache, None for any other cache."""
    from django.core.cache.backends.memcached import PyMemcacheCache

    return MemcachedServers(cache) if isinstance(cache, PyMemcacheCache) else None


class MemcachedServers:
    """The servers of one PyMemcacheCache, and which key lives on which."""

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache
        self._for: Any = None  # the clients dict the hasher below was made for
        self._hasher: Any = None
        watch_forks(cache)

    def _clients(self) -> tuple[Any, dict[str, Any]]:
        """A hasher over every server (the HashClient's loses dead ones), and their clients."""
        hasher, clients = memcached_servers(self.cache)
        if self._for is not clients or self._hasher is None:
            full = type(hasher)()
            for name in clients:
                full.add_node(name)
            self._for, self._hasher = clients, full
        return self._hasher, clients

    def groups(self, keys: Sequence[str]) -> dict[str, Group]:
        """``keys`` by the server each belongs to."""
        hasher, clients = self._clients()
        if len(clients) == 1:  # one server holds every key: no need to hash them
            ((name, client),) = clients.items()
            make = self.cache.make_and_validate_key
            return {name: (client, {make(key): key for key in keys})} if keys else {}
        found: dict[str, Group] = {}
        for key in keys:
            made = self.cache.make_and_validate_key(key)
            name = hasher.get_node(made)
            if name not in found:
                found[name] = (clients[name], {})
            found[name][1][made] = key
        return found

    def one(self, key: str) -> tuple[Any, str]:
        """The client of ``key``'s own server, and the key as that server sees it."""
        ((client, made),) = self.groups([key]).values()
        return client, next(iter(made))

    # ------------------------------------------------------------ reads
    def read_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The stored values of ``keys``; a server that cannot answer raises."""
        values: dict[str, Any] = {}
        for client, made in self.groups(keys).values():
            with decoding(made.values()):
                found = client.get_many(list(made))
            for key, value in found.items():
                values[made[key]] = value
        return values

    def get(self, key: str) -> Any:
        return self.read_many([key]).get(key)

    # ------------------------------------------------------------ lock
    def add(self, key: str, value: Any, timeout: float | None) -> bool:
        """Store ``value`` if ``key`` is absent; False only if the server said it is there."""
        client, made = self.one(key)
        return bool(client.add(made, value, self.cache.get_backend_timeout(timeout), noreply=False))

    def delete(self, key: str) -> None:
        client, made = self.one(key)
        client.delete(made, noreply=False)

    # ------------------------------------------------------------ writes
    def write(self, batches: Sequence[Mapping[str, Any]], timeout: Any) -> None:
        """Write ``batches`` in order, each value sized against its server's
        limit before anything is written (ValueTooLarge names the first too large)."""
        expire = self.cache.get_backend_timeout(timeout)
        encoded = [self._encode(dict(batch)) for batch in batches if batch]
        for batch in encoded:
            for client, by_flags in batch:
                for flags, values in by_flags.items():
                    failed = client.set_many(values, expire, noreply=False, flags=flags)
                    if failed:
                        raise LockBackendError(f"the cache did not store {sorted(failed)}")

    def check_sizes(self, values: Mapping[str, Any]) -> None:
        """ValueTooLarge (or UnserializableValue) now if a value of ``values``
        could not be stored; nothing is written."""
        self._encode(dict(values))

    def _encode(self, batch: dict[str, Any]) -> list[tuple[Any, dict[int | None, dict[str, Any]]]]:
        """A batch encoded as each server's client would, by server and flags; sized.

        With pymemcache's pickle serde (Django's) the encoded bytes are sent
        as they are, with their flags; another serde gets the values again
        (flags None), since it might encode bytes once more.
        """
        out = []
        for client, made in self.groups(list(batch)).values():
            limit = self.item_size_max(client)
            as_encoded = isinstance(client.serde, PickleSerde)
            by_flags: dict[int | None, dict[str, Any]] = defaultdict(dict)
            for server_key, key in made.items():
                data, flags = self._serialize(client, server_key, batch[key])
                size = len(data) + len(server_key) + len(client.key_prefix) + ENTRY_OVERHEAD
                if size > limit:
                    raise ValueTooLarge(key, size, limit, f"memcached server {client.server!r}")
                if as_encoded:
                    by_flags[flags][server_key] = data
                else:
                    by_flags[None][server_key] = batch[key]
            out.append((client, dict(by_flags)))
        return out

    @staticmethod
    def _serialize(client: Any, key: str, value: Any) -> tuple[bytes, int]:
        try:
            data, flags = client.serde.serialize(key, value)
        except Exception as exc:  # no I/O here: the value's own doing
            raise UnserializableValue(f"the value of {key!r} to write to the cache", value, exc) from exc
        if not isinstance(data, bytes):
            data = str(data).encode(getattr(client, "encoding", "ascii"))
        return data, int(flags)

    def item_size_max(self, client: Any) -> int:
        """The server's largest entry in bytes: asked once per server."""
        name = str(client.server)
        limit = _item_size_max.get(name)
        if limit is None:
            stats = client.stats("settings")
            limit = int(stats.get(b"item_size_max", stats.get("item_size_max", 1024 * 1024)))
            _item_size_max[name] = limit
        return limit
