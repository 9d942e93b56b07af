"""A TCP proxy on loopback that a test can make fail: pass, drop, stall, resume.

It sits in front of one real server (Memcached, Redis) so that a test can
break the connection between a real client and that server at a moment of
its choosing, without touching the server itself:

- ``drop()``: every open connection is reset (RST, not a clean close), and
  new ones are accepted and reset at once, until ``resume()``;
- ``stall()``: connections stay open and new ones are accepted, but no byte
  moves either way until ``resume()`` (a server that hangs);
- ``resume()``: back to passing bytes (connections dropped stay dropped; the
  client reconnects);
- ``retarget(host, port)``: new connections go to another server (a replica
  promoted in a failover); open ones are reset, so clients reconnect to it.

Threads only: one accepting, one per connection pumping both directions.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from types import TracebackType

__all__ = ["FaultProxy"]

PASS, DROP, STALL = "pass", "drop", "stall"
#: how often a pump looks at the mode while idle (seconds)
POLL = 0.02


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST, as a server or network that failed would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pair:
    """One client connection and its connection to the server."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            _reset(self.client)
            _reset(self.upstream)


class FaultProxy:
    """Forwards 127.0.0.1:<port> to ``target`` until told to fail."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = PASS
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL * 5)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        #: connections accepted, and connections reset by drop()
        self.accepted = 0
        self.resets = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------ control
    def start(self) -> FaultProxy:
        self._accepting.start()
        return self

    def drop(self) -> None:
        """Reset every connection now, and every new one until resume()."""
        with self._lock:
            self.mode = DROP
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
            self.resets += 1

    def stall(self) -> None:
        """Forward nothing (connections stay open) until resume()."""
        with self._lock:
            self.mode = STALL

    def resume(self) -> None:
        with self._lock:
            self.mode = PASS

    def retarget(self, host: str, port: int) -> None:
        """Forward to ``host:port`` from now on. Every open connection (to the
        old target) is reset, as a failed-over server's are, so that a client
        reaches the new target only through a connection of its own to it."""
        with self._lock:
            self.target = (host, port)
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
            self.resets += 1

    def stop(self) -> None:
        self._stopping.set()
        self._accepting.join(5)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ work
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.mode == DROP:
                _reset(client)
                self.resets += 1
                continue
            target = self.target
            try:
                upstream = socket.create_connection(target, timeout=5)
            except OSError:
                _reset(client)
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                retargeted = self.target != target
                if not retargeted:
                    self._pairs.add(pair)
            if retargeted:  # connected to the old target while retarget() ran
                pair.close()
                continue
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: _Pair) -> None:
        other = {pair.client: pair.upstream, pair.upstream: pair.client}
        selector = selectors.DefaultSelector()
        try:
            for sock in other:
                sock.setblocking(True)
                sock.settimeout(5)
                selector.register(sock, selectors.EVENT_READ)
            while not pair.closed.is_set() and not self._stopping.is_set():
                if self.mode == STALL:
                    time.sleep(POLL)
                    continue
                for key, _ in selector.select(POLL):
                    if self.mode != PASS or pair.closed.is_set():
                        break  # the mode changed while waiting: look again
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    data = sock.recv(65536)
                    if not data:
                        return
                    other[sock].sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            pair.close()
            with self._lock:
                self._pairs.discard(pair)
