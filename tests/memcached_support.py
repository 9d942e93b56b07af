"""Memcached caches whose server clients let a test act on each request as it leaves.

The fenced driver sends several commands in one request (one write of the
socket), so a test that stops or kills a process "before a write" hooks the
socket: :func:`commands_in` tells which commands a request carries, and
where each starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache.backends.memcached import PyMemcacheCache

#: commands that store a value (their line is followed by a data block)
WRITE_COMMANDS = frozenset({b"set", b"add", b"cas", b"append", b"replace", b"prepend"})


def commands_in(request: bytes) -> list[tuple[int, bytes]]:
    """(offset, command) of each command of a request, in order."""
    found = []
    at = 0
    while at < len(request):
        end = request.find(b"\r\n", at)
        if end == -1:
            break
        words = request[at:end].split()
        found.append((at, words[0] if words else b""))
        at = end + 2
        if words and words[0] in WRITE_COMMANDS and len(words) >= 5:
            at += int(words[4]) + 2  # the data block and its line end
    return found


class HookedSocket:
    """A socket whose sends go through ``send(sock, data)``."""

    def __init__(self, sock: Any, send: Callable[[Any, bytes], None]) -> None:
        self.wrapped = sock
        self.send = send

    def sendall(self, data: Any, *args: Any) -> None:
        self.send(self.wrapped, bytes(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def hooked_memcache(send: Callable[[Any, bytes], None], alias: str = "memcached") -> PyMemcacheCache:
    """A PyMemcacheCache on ``alias``'s server whose every request goes through ``send``."""
    import pymemcache

    class HookedClient(pymemcache.Client):
        """Each server's own client, which the driver writes through."""

        @property
        def sock(self) -> Any:
            return self.__dict__.get("hooked_sock")

        @sock.setter
        def sock(self, value: Any) -> None:
            self.__dict__["hooked_sock"] = None if value is None else HookedSocket(value, send)

    class HookedHashClient(pymemcache.HashClient):
        client_class = HookedClient

    class HookedMemcache(PyMemcacheCache):
        def __init__(self, server: Any, params: Any) -> None:
            super().__init__(server, params)
            self._class = HookedHashClient

    return HookedMemcache(settings.CACHES[alias]["LOCATION"], {})
