"""Several Memcached requests sent at once: one round trip for all of them.

pymemcache sends one kind of command per request (``set_many`` sends many
sets, but an ``append`` and a ``gets``, or a ``cas`` of the head and one of
the lock, go one after the other, each waiting for its answer). Memcached
answers the commands of one connection in the order they came, so a
:class:`Pipeline` writes them all to the server's socket at once and then
reads the answers in that order: the first command is carried out before
the second, as if each had waited, in one round trip.

It speaks the text protocol on the socket of each server's own pymemcache
client, with that client's serde and key prefix. A client that is not
connected yet, or not one connection (a pooled client), gets the commands
one by one through its own methods: the same effect, more round trips. An
error while sending or reading closes the connection (its stream may be
out of step), and the next request makes a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .memcached_client import MemcachedServers, decoding

try:
    from pymemcache.exceptions import (
        MemcacheClientError,
        MemcacheServerError,
        MemcacheUnexpectedCloseError,
        MemcacheUnknownCommandError,
        MemcacheUnknownError,
    )
except ImportError:  # pymemcache is not installed: no pipeline is ever made
    pass

__all__ = ["Pipeline"]

#: bytes asked of the socket at a time
RECV_SIZE = 65536
#: the answers a store command may give, and whether it stored
_STORED = {b"STORED": True, b"NOT_STORED": False, b"EXISTS": False, b"NOT_FOUND": False}


@dataclass
class _Command:
    verb: str  # "append", "add", "cas" or "gets"
    names: list[str]
    value: Any = None
    exptime: int = 0
    unique: int = 0
    #: the answer: True/False for a store, {name: (value, unique)} for gets
    answer: Any = None


@dataclass
class _Batch:
    client: Any
    commands: list[_Command] = field(default_factory=list)


class Pipeline:
    """Commands queued for the servers of one cache, sent by :meth:`run`:
    one round trip per server, each server's commands carried out in order."""

    def __init__(self, servers: MemcachedServers) -> None:
        self._servers = servers
        self._commands: list[_Command] = []

    def __len__(self) -> int:
        return len(self._commands)

    def append(self, name: str, data: bytes) -> _Command:
        return self._queue(_Command("append", [name], data))

    def gets(self, names: Sequence[str]) -> _Command:
        """Each stored key of ``names`` with its cas unique (the answer: a dict)."""
        return self._queue(_Command("gets", list(names)))

    def add(self, name: str, value: Any, exptime: int) -> _Command:
        return self._queue(_Command("add", [name], value, exptime))

    def cas(self, name: str, value: Any, unique: int, exptime: int) -> _Command:
        return self._queue(_Command("cas", [name], value, exptime, unique))

    def _queue(self, command: _Command) -> _Command:
        self._commands.append(command)
        return command

    def run(self) -> None:
        """Send every queued command; each gets its ``answer``."""
        commands, self._commands = self._commands, []
        for batch in self._by_server(commands):
            if getattr(batch.client, "sock", None) is None:
                _one_by_one(batch, self._servers)
            else:
                _Wire(batch.client, self._servers).run(batch.commands)

    def _by_server(self, commands: list[_Command]) -> list[_Batch]:
        """The commands split by server, in order (a gets of keys on several
        servers becomes one gets per server, its answers merged)."""
        batches: dict[str, _Batch] = {}
        for command in commands:
            groups = self._servers.groups(command.names)
            if command.verb == "gets":
                command.answer = {}
            for server, (client, made) in groups.items():
                batch = batches.setdefault(server, _Batch(client))
                part = command if len(groups) == 1 else _Part(command, list(made.values()))
                batch.commands.append(part)
        return list(batches.values())


class _Part(_Command):
    """The keys of a gets that live on one server, answering into the whole."""

    def __init__(self, whole: _Command, names: list[str]) -> None:
        super().__init__("gets", names)
        self.answer = whole.answer  # the same dict: every part fills it


def _one_by_one(batch: _Batch, servers: MemcachedServers) -> None:
    """The commands through the client's own methods, one round trip each."""
    client = batch.client
    for command in batch.commands:
        made = servers.cache.make_and_validate_key(command.names[0])
        if command.verb == "gets":
            keys = {servers.cache.make_and_validate_key(n): n for n in command.names}
            with decoding(keys.values()):
                found = client.gets_many(list(keys))
            command.answer.update((keys[k], (v, int(u))) for k, (v, u) in found.items())
        elif command.verb == "append":
            command.answer = bool(client.append(made, command.value, noreply=False))
        elif command.verb == "add":
            command.answer = bool(client.add(made, command.value, command.exptime, noreply=False))
        else:
            stored = client.cas(made, command.value, command.unique, command.exptime, noreply=False)
            command.answer = stored is True


class _Wire:
    """One server's commands written to its socket at once, the answers read in order."""

    def __init__(self, client: Any, servers: MemcachedServers) -> None:
        self.client = client
        self.servers = servers
        self.buffer = b""

    def run(self, commands: list[_Command]) -> None:
        request = b"".join(self._encode(command) for command in commands)
        try:
            self.client.sock.sendall(request)
            answers = [self._read_answer(command) for command in commands]
        except Exception:
            self.client.close()  # the stream may be out of step: start afresh
            raise
        for command, answer in zip(commands, answers):
            if command.verb == "gets":
                self._decode(command, answer)
            else:
                command.answer = answer

    def _key(self, name: str) -> bytes:
        made = self.servers.cache.make_and_validate_key(name)
        return bytes(self.client.check_key(made, self.client.key_prefix))

    def _encode(self, command: _Command) -> bytes:
        if command.verb == "gets":
            return b"gets " + b" ".join(self._key(name) for name in command.names) + b"\r\n"
        key = self._key(command.names[0])
        data, flags = self.client.serde.serialize(key, command.value)
        if not isinstance(data, bytes):
            data = str(data).encode(getattr(self.client, "encoding", "ascii"))
        line = b"%s %s %d %d %d" % (command.verb.encode(), key, flags, command.exptime, len(data))
        if command.verb == "cas":
            line += b" %d" % command.unique
        return line + b"\r\n" + data + b"\r\n"

    def _read_answer(self, command: _Command) -> Any:
        if command.verb != "gets":
            line = self._line()
            if line not in _STORED:
                _raise_for(line)
            return _STORED[line]
        values: list[tuple[bytes, int, int, bytes]] = []
        while True:
            line = self._line()
            if line == b"END":
                return values
            parts = line.split()
            if len(parts) != 5 or parts[0] != b"VALUE":
                _raise_for(line)
            _, key, flags, size, unique = parts
            data = self._exactly(int(size) + 2)[:-2]
            values.append((key, int(flags), int(unique), data))

    def _decode(self, command: _Command, values: list[tuple[bytes, int, int, bytes]]) -> None:
        names = {self._key(name): name for name in command.names}
        with decoding(names.values()):
            for key, flags, unique, data in values:
                value = self.client.serde.deserialize(key, data, flags)
                command.answer[names[key]] = (value, unique)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._receive()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._receive()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _receive(self) -> None:
        chunk = self.client.sock.recv(RECV_SIZE)
        if not chunk:
            raise MemcacheUnexpectedCloseError()
        self.buffer += chunk


def _raise_for(line: bytes) -> None:
    """The error pymemcache raises for an answer of that kind."""
    if line.startswith(b"SERVER_ERROR"):
        raise MemcacheServerError(line.decode(errors="replace"))
    if line.startswith(b"CLIENT_ERROR"):
        raise MemcacheClientError(line.decode(errors="replace"))
    if line == b"ERROR":
        raise MemcacheUnknownCommandError(line.decode())
    raise MemcacheUnknownError(line[:32].decode(errors="replace"))
